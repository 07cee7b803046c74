"""Fused compiled kernels (Numba) for NumPy inputs: one pass, every output, the checks included.

The public methods of a pointwise loss (``value``, ``grad``, ``hess``, ``value_grad``,
``grad_hess``, ``value_grad_hess``) come here automatically for NumPy arrays with at
least ``get_config().kernel_threshold`` elements while ``use_kernels`` is on, and use
the array-API reference otherwise.  Tests hold both equal to a few ulps.

* :func:`evaluate_pointwise` -- the pointwise entry point (value/grad/hess in any
  combination, float32/float64, with or without ``sample_weight``);
  :data:`POINTWISE` -- the table from loss class to scalar kernel.
* :func:`evaluate_row` -- the row entry point (value/grad of cross_entropy, focal, poly1,
  kl_divergence, multiclass_hinge, categorical_hinge, multilabel, sparsemax_loss, every
  option; the Hessian diagonal of cross_entropy, focal, poly1, kl_divergence and
  multilabel), for ``RowLoss._compute`` and ``__call__``;
  :func:`cross_entropy_value_grad` -- the cross-entropy kernel;
  :func:`evaluate_row_hvp` -- the cross-entropy's Hessian-vector product (``RowLoss.hvp``).
* :mod:`lossgrad.kernels.bench` -- the benchmark suites against the peers.
* :func:`compile_all` -- compile (or load from the on-disk cache) every kernel.
* :func:`output_pool_bytes`, :func:`clear_output_pool` -- the memory kept for the
  kernels' large outputs (:mod:`lossgrad.kernels._output_pool`; its size limit is
  ``Config.output_pool_bytes``).

Bad inputs raise the reference's own ValueError: the kernel counts non-finite values,
out-of-domain labels and negative weights in the pass it makes anyway, and only when
a count is non-zero are the reference checks run (to build the same message).
``assume_valid=True`` skips that too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _validation as V
from .._config import get_config
from ._cross_entropy import cross_entropy_value_grad
from ._driver import code_of, kernel, run_pointwise
from ._output_pool import clear as clear_output_pool
from ._output_pool import pooled_bytes as output_pool_bytes
from ._parallel import _SPLIT_MIN, layer_threads, n_threads
from ._rowdispatch import evaluate_row, evaluate_row_hvp, row_kernel_supports
from ._table import POINTWISE, STREAM, VALUE_ONLY, Y_MARGIN, Spec, spec_for

__all__ = [
    "evaluate_pointwise",
    "plan_for",
    "Plan",
    "check_out",
    "evaluate_row",
    "evaluate_row_hvp",
    "row_kernel_supports",
    "cross_entropy_value_grad",
    "compile_all",
    "spec_for",
    "POINTWISE",
    "VALUE_ONLY",
    "Spec",
    "n_threads",
    "output_pool_bytes",
    "clear_output_pool",
]

_OPS = ("value", "grad", "hess")


_plain = V.plain_numpy_pair


def _plain_weight(sample_weight: Any, y_pred: np.ndarray) -> bool:
    return sample_weight is None or (type(sample_weight) is np.ndarray and sample_weight.dtype == y_pred.dtype
                                     and sample_weight.shape == y_pred.shape)


def _weights(sample_weight: Any, xp: Any, f: np.ndarray) -> np.ndarray:
    """Shape and dtype coercion of sample_weight, as ``V.as_sample_weight`` without its data checks."""
    w = V.as_target(sample_weight, xp, f, name="sample_weight", same_shape=False)
    if w.shape != f.shape:
        if w.ndim == 0:
            return np.broadcast_to(w, f.shape)
        raise ValueError(f"sample_weight must have shape {tuple(f.shape)} (one weight per sample), got {tuple(w.shape)}")
    return w


@dataclass(frozen=True)
class Plan:
    """What one loss instance runs on one dtype, resolved once (a loss is immutable).

    ``serves`` maps an op tuple to the (value, grad, hess) flags the kernel is called
    with, for the op tuples the loss declares (no entry: the caller runs the reference,
    which raises NotDifferentiableError where a derivative does not exist).
    """

    chunk: Any  # the compiled driver (see _driver.kernel)
    params: tuple
    margin: bool  # labels are checked for a mix of the {-1, 1} and {0, 1} encodings
    serves: dict[tuple[str, ...], tuple[bool, bool, bool]]
    stream: int | None = None  # the kernel's code where a streaming driver exists (_driver.stream_kernel)


_PLANS = "_cached_kernel_plans"  # key of a loss instance's __dict__ (dropped when pickled)


def plan_for(loss: Any, dtype: np.dtype) -> Plan | None:
    """The kernel :class:`Plan` of ``loss`` for ``dtype``, or None (no kernel: use the reference).

    Cached in the instance: selecting the kernel reads the loss's parameters and
    properties (~3 us), more than a whole kernel call on a small array.
    """
    plans = loss.__dict__.get(_PLANS)
    if plans is None:
        plans = loss.__dict__[_PLANS] = {}  # the instance dict: a frozen dataclass allows it
    plan = plans.get(dtype, False)
    if plan is not False:
        return plan
    spec = spec_for(loss, dtype)
    if spec is None:
        plan = None
    else:
        props = loss.props
        value_only = type(loss) in VALUE_ONLY or not props.has_grad
        serves = {ops: tuple(op in ops for op in _OPS) for ops in _OP_SETS
                  if not (value_only and ops != ("value",)) and not ("hess" in ops and not props.has_hess)}
        code = code_of(spec.kind, spec.ydom, spec.fdom)
        streams = spec.fn in STREAM and dtype == np.float64
        plan = Plan(kernel(code), spec.params, spec.ydom == Y_MARGIN, serves, code if streams else None)
    plans[dtype] = plan
    return plan


_OP_SETS = (("value",), ("grad",), ("hess",), ("value", "grad"), ("grad", "hess"), ("value", "grad", "hess"))
#: op tuple -> the results it returns, picked from (value, grad, hess)
_PICK = {
    ("value",): lambda v, g, h: (v,), ("grad",): lambda v, g, h: (g,), ("hess",): lambda v, g, h: (h,),
    ("value", "grad"): lambda v, g, h: (v, g), ("grad", "hess"): lambda v, g, h: (g, h),
    ("value", "grad", "hess"): lambda v, g, h: (v, g, h),
}


def evaluate_pointwise(loss: Any, ops: tuple[str, ...], y_true: Any, y_pred: Any, sample_weight: Any,
                       out: tuple[np.ndarray, ...] | None = None) -> tuple | None:
    """The fused-kernel result of ``loss``'s ``ops`` (a tuple of 'value', 'grad', 'hess'), or None.

    None means "no kernel here" (a loss or dtype without one); the caller then runs
    the reference.  Raises the reference's ValueError/TypeError on bad input.
    ``out``: one preallocated C-contiguous array per op (y_pred's shape and dtype) to
    write into, as a hot loop reusing its buffers does (new memory costs a page fault
    per 4 KiB on first touch: about half of the bandwidth of a memory-bound loss).
    """
    if _plain(y_true, y_pred) and _plain_weight(sample_weight, y_pred):
        # the common case: no coercion at all (a call costs a few microseconds)
        xp, f, was_scalar, y, w = V.NUMPY, y_pred, False, y_true, sample_weight
    else:
        xp, f, was_scalar = V.as_prediction(y_pred)
        if not isinstance(f, np.ndarray) or f.dtype not in (np.float32, np.float64):
            return None
        y = w = None  # converted below, once a kernel is known to serve
    plan = plan_for(loss, f.dtype)
    want = None if plan is None else plan.serves.get(ops)
    if want is None:
        return None
    if y is None:
        y = V.as_target(y_true, xp, f)
        w = None if sample_weight is None else _weights(sample_weight, xp, f)
    bufs = None if out is None else _by_op(check_out(out, ops, f), ops)
    outs, counts = run_pointwise(plan.chunk, plan.params, y.ravel(), f.ravel(), None if w is None else w.ravel(),
                                 want, bufs, plan.stream)
    if _flagged(counts, plan.margin) and not get_config().assume_valid:
        # Rerun the reference checks (only now, on bad input) to raise their exact error.
        loss._prepare(y_true, y_pred, sample_weight)
        return None  # pragma: no cover - the reference accepted what the kernel flagged
    if out is not None:
        return out
    if was_scalar or f.ndim != 1:
        outs = tuple(None if o is None else o[()] if was_scalar else o.reshape(f.shape) for o in outs)
    return _PICK[ops](*outs)


def _by_op(out: tuple[np.ndarray, ...], ops: tuple[str, ...]) -> tuple[np.ndarray | None, ...]:
    """The (value, grad, hess) buffers, flat views of ``out`` (one per op), None where not asked."""
    by_name = dict(zip(ops, out))
    return tuple(None if op not in by_name else by_name[op].reshape(-1) for op in _OPS)


def check_out(out: Any, ops: tuple[str, ...], y_pred: Any) -> tuple[np.ndarray, ...]:
    """``out`` (one buffer per quantity of ``ops``) if each is usable for y_pred, else a clear error."""
    f = y_pred
    if not isinstance(out, tuple) or len(out) != len(ops):
        what = "one array" if len(ops) == 1 else f"a tuple of {len(ops)} arrays (one per quantity {ops})"
        raise TypeError(f"out must be {what}, got {type(out).__name__}"
                        + (f" of length {len(out)}" if isinstance(out, tuple) else ""))
    for o in out:
        if not (isinstance(o, np.ndarray) and isinstance(f, np.ndarray) and o.shape == f.shape and o.dtype == f.dtype
                and o.flags.c_contiguous and o.flags.writeable):
            raise ValueError(f"out must hold writeable C-contiguous arrays of y_pred's shape {np.shape(f)} and dtype "
                             f"{getattr(f, 'dtype', None)}")
        if np.shares_memory(o, f):
            raise ValueError("out must not overlap y_pred")
    return out


def _flagged(counts: np.ndarray, margin: bool) -> bool:
    """Whether the kernel saw a bad value, or (margin labels) both encodings of the negative class."""
    bad, minus, zero = counts.tolist()
    return bad > 0 or (margin and minus > 0 and zero > 0)


def _registered_variants(cls: type) -> tuple[dict, ...]:
    from .._registry import catalog

    for e in catalog():
        if e.cls is cls:
            return e.variants
    return ({},)


def _compile_rows(dt: Any, parallel: bool) -> None:
    """Run every registered variant of every row loss with a kernel on small inputs (4 and
    32 classes: the few-class and the wide cross-entropy kernels), and with ``parallel``
    on 2^14 elements too (their threading-layer wrappers)."""
    from .._config import config_context
    from .._registry import catalog

    rng = np.random.default_rng(0)
    for e in catalog(shape="row"):
        for inst in e.instances():
            if not row_kernel_supports(inst, ("value", "grad")):
                continue
            k = inst._fixed_classes()
            shapes = [(4, k or 4), (4, k or 32)] + ([(-(-_SPLIT_MIN // (k or 4)), k or 4)] if parallel else [])
            for n, kk in shapes:
                y, f = inst._example_inputs(rng, n, kk)
                with config_context(kernel_threshold=0):
                    inst.value_grad(np.asarray(y), np.asarray(f, dt))


def compile_all(dtypes: tuple[Any, ...] = (np.float32, np.float64), parallel: bool = True) -> dict[str, float]:
    """Compile (or load from the cache) every pointwise kernel and every row kernel, and
    with ``parallel`` (where Numba's threading layer is used, see
    :func:`._parallel.layer_threads`) their parallel wrappers (about 1 s each to compile).

    Returns seconds per dtype name.  The second process loads them from
    ``__pycache__`` in a fraction of the time.
    """
    parallel = parallel and layer_threads() > 1
    times = {}
    for dt in dtypes:
        t0 = time.perf_counter()
        arrays = [np.ones(4, dt)] + ([np.ones(_SPLIT_MIN, dt)] if parallel else [])
        for cls in POINTWISE:
            for params in _registered_variants(cls):
                plan = plan_for(cls(**params), np.dtype(dt))
                for y in arrays:
                    run_pointwise(plan.chunk, plan.params, y, y, None, (True, True, True))
        _compile_rows(dt, parallel)
        times[np.dtype(dt).name] = time.perf_counter() - t0
    return times


