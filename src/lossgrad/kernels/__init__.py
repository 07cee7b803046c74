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
  option; the Hessian diagonal of cross_entropy), for ``RowLoss._compute`` and ``__call__``; :func:`cross_entropy_value_grad` --
  the cross-entropy kernel.
* :mod:`lossgrad.kernels.bench` -- the benchmark suites against the peers.
* :func:`compile_all` -- compile (or load from the on-disk cache) every kernel.

Bad inputs raise the reference's own ValueError: the kernel counts non-finite values,
out-of-domain labels and negative weights in the pass it makes anyway, and only when
a count is non-zero are the reference checks run (to build the same message).
``assume_valid=True`` skips that too.
"""

from __future__ import annotations

import time
from typing import Any

import array_api_compat.numpy
import numpy as np

from .. import _validation as V
from .._config import get_config
from ._cross_entropy import cross_entropy_value_grad
from ._driver import code_of, n_threads, run_pointwise
from ._rowdispatch import evaluate_row, row_kernel_supports
from ._table import POINTWISE, VALUE_ONLY, Y_MARGIN, Spec, spec_for

__all__ = [
    "evaluate_pointwise",
    "check_out",
    "evaluate_row",
    "row_kernel_supports",
    "cross_entropy_value_grad",
    "compile_all",
    "spec_for",
    "POINTWISE",
    "VALUE_ONLY",
    "Spec",
    "n_threads",
]

_OPS = ("value", "grad", "hess")


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1)


def _plain(y_true: Any, y_pred: Any) -> bool:
    """NumPy float32/float64 arrays of one shape and dtype, not empty: what ``as_prediction``
    and ``as_target`` would return unchanged."""
    return (type(y_pred) is np.ndarray and type(y_true) is np.ndarray and y_pred.dtype == y_true.dtype
            and y_pred.dtype in (np.float32, np.float64) and y_pred.shape == y_true.shape and y_pred.size > 0)


def _weights(sample_weight: Any, xp: Any, f: np.ndarray) -> np.ndarray:
    """Shape and dtype coercion of sample_weight, as ``V.as_sample_weight`` without its data checks."""
    w = V.as_target(sample_weight, xp, f, name="sample_weight", same_shape=False)
    if w.shape != f.shape:
        if w.ndim == 0:
            return np.broadcast_to(w, f.shape)
        raise ValueError(f"sample_weight must have shape {tuple(f.shape)} (one weight per sample), got {tuple(w.shape)}")
    return w


def evaluate_pointwise(loss: Any, ops: tuple[str, ...], y_true: Any, y_pred: Any, sample_weight: Any,
                       out: tuple[np.ndarray, ...] | None = None) -> tuple | None:
    """The fused-kernel result of ``loss``'s ``ops`` (a tuple of 'value', 'grad', 'hess'), or None.

    None means "no kernel here" (a loss or dtype without one); the caller then runs
    the reference.  Raises the reference's ValueError/TypeError on bad input.
    ``out``: one preallocated C-contiguous array per op (y_pred's shape and dtype) to
    write into, as a hot loop reusing its buffers does (new memory costs a page fault
    per 4 KiB on first touch: about half of the bandwidth of a memory-bound loss).
    """
    if out is not None:
        out = check_out(out, ops, y_pred)
    if _plain(y_true, y_pred):  # the common case, without the namespace machinery (~5 us a call)
        xp, f, was_scalar, y = array_api_compat.numpy, y_pred, False, y_true
    else:
        xp, f, was_scalar = V.as_prediction(y_pred)
        y = None
    if not isinstance(f, np.ndarray) or f.dtype not in (np.float32, np.float64):
        return None
    spec = spec_for(loss, f.dtype)
    if spec is None or (type(loss) in VALUE_ONLY and ops != ("value",)):
        return None
    if y is None:
        y = V.as_target(y_true, xp, f)
    w = None if sample_weight is None else _weights(sample_weight, xp, f)
    want = tuple(op in ops for op in _OPS)
    code = code_of(spec.kind, spec.ydom, spec.fdom)
    bufs = None
    if out is not None:
        by_name = dict(zip(ops, out))
        bufs = tuple(None if by_name.get(op) is None else by_name[op].reshape(-1) for op in _OPS)
    outs, counts = run_pointwise(code, spec.params, _flat(y), _flat(f), None if w is None else _flat(w), want, bufs)
    if not get_config().assume_valid and _flagged(counts, spec):
        # Rerun the reference checks (only now, on bad input) to raise their exact error.
        loss._prepare(y_true, y_pred, sample_weight)
        return None  # pragma: no cover - the reference accepted what the kernel flagged
    by_op = dict(zip(_OPS, outs))
    result = []
    for op in ops:
        o = by_name[op] if out is not None else by_op[op].reshape(f.shape)
        result.append(o[()] if was_scalar else o)
    return tuple(result)


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


def _flagged(counts: np.ndarray, spec: Spec) -> bool:
    if counts[0] > 0:
        return True
    return spec.ydom == Y_MARGIN and counts[1] > 0 and counts[2] > 0


def _registered_variants(cls: type) -> tuple[dict, ...]:
    from .._registry import catalog

    for e in catalog():
        if e.cls is cls:
            return e.variants
    return ({},)


def _compile_rows(dt: Any) -> None:
    """Run every registered variant of every row loss with a kernel on a small input."""
    from .._config import config_context
    from .._registry import catalog

    rng = np.random.default_rng(0)
    for e in catalog(shape="row"):
        for inst in e.instances():
            if not row_kernel_supports(inst, ("value", "grad")):
                continue
            y, f = inst._example_inputs(rng, 4)
            with config_context(kernel_threshold=0):
                inst.value_grad(np.asarray(y), np.asarray(f, dt))


def compile_all(dtypes: tuple[Any, ...] = (np.float32, np.float64)) -> dict[str, float]:
    """Compile (or load from the cache) every pointwise kernel and every row kernel.

    Returns seconds per dtype name.  The second process loads them from
    ``__pycache__`` in a fraction of the time.
    """
    times = {}
    for dt in dtypes:
        t0 = time.perf_counter()
        y = np.ones(4, dt)
        for cls, select in POINTWISE.items():
            for params in _registered_variants(cls):
                spec = select(cls(**params), np.dtype(dt))
                run_pointwise(code_of(spec.kind, spec.ydom, spec.fdom), spec.params, y, y, None, (True, True, True))
        _compile_rows(dt)
        times[np.dtype(dt).name] = time.perf_counter() - t0
    return times


