r"""Row kernels of multiclass_hinge and categorical_hinge, and the pieces all row kernels share.

One pass over a row of scores f (K entries) gives the row's value and gradient; q is
the target row (the one-hot e_y of a label y, or a probability row), w the row's
``sample_weight`` (both outputs are multiplied by it, as the reference does before
any reduction).  The reference (:mod:`lossgrad.losses.multiclass_margin`) stays the
definition; the kernels reproduce its arithmetic in the dtype of f wherever a
comparison decides a kink, so that the subgradient chosen at a kink or tie is the
reference's own:

* :class:`~lossgrad.MulticlassHinge`, margins t_j = (m + f_j) - f_y rounded in f's dtype.
  Weston-Watkins: l = sum_{j != y} max(0, t_j), g_j = 1{t_j > 0} (j != y), g_y = -(number
  of active j).  Crammer-Singer: l = max(0, T), T = max_{j != y} t_j, g = e_J - e_y when
  T > 0 (J the first j != y with t_j = T), else 0.  Rounding is monotone, so
  T = (m + max_{j != y} f_j) - f_y exactly: a max over the row, then J as an integer
  min reduction over the j with t_j = T (both loops vectorise; distinct scores whose
  margins round to T tie, and J is the first of them, as in the reference).
* :class:`~lossgrad.CategoricalHinge` (Keras): pos = sum_c q_c f_c, n_c = (1 - q_c) f_c,
  neg = max_c n_c, M = (1 + neg) - pos; l = max(0, M), g = (1 - q_J) e_J - q when M > 0
  (J the first arg-max of n, over every class), else 0.  For a label pos = f_y and
  n_y = 0 f_y (a signed zero), as in the reference.

The hinge gradients are bit-for-bit the reference's (0/1 entries and counts, products
with w in f's dtype), and so are the Crammer-Singer values and the categorical_hinge
values on labels; a value that is a row sum (Weston-Watkins, categorical_hinge's pos
on a probability row) differs only by the order of the sum (here in float64, NumPy's
pairwise in f's dtype): a few ulps of the row's largest term.  The hinge sums are
written to a scratch row by a loop compiled without fast-math and summed by one
compiled with ``reassoc`` only, so that reassociation can only reorder the sum, never
the margin arithmetic (m + f_j) - f_y.

Every option is served (WW/CS, any margin, labels and probability rows of
categorical_hinge), for the ops value, grad and value+grad, float32 and float64, with
or without ``sample_weight``; the Hessian (zero where it exists) and its products use
the reference.  Blocks of rows run over the cores from N K >= 2^14 (see :func:`launch`);
an op not asked for writes no (N, K) array (value alone: a scratch row).
Validation is counted in the pass: non-finite scores, invalid targets (non-integral or
out-of-range labels, entries outside [0, 1], rows summing off 1 by more than half the
reference tolerance) and non-finite or negative weights; only when a count is non-zero
is ``loss._prepare`` called, which raises the reference's own error (or, if it
accepts, the reference computes).  With ``assume_valid`` an invalid label acts as the
reference's zero one-hot row.  :func:`row_inputs`, :func:`launch` and :func:`finish`
are this contract for every row kernel of this module, :mod:`._row_multilabel` and
:mod:`._row_sparsemax`.

References: J. Weston & C. Watkins (1999), Support vector machines for multi-class
pattern recognition, ESANN; K. Crammer & Y. Singer (2001), On the algorithmic
implementation of multiclass kernel-based vector machines, JMLR 2; Keras
``categorical_hinge``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, prange

from .. import _validation as V
from .._config import get_config
from . import _fastmath as fm
from . import _output_pool
from ._driver import not_probability
from ._parallel import parallel_copy, part_bounds, run_in_parts, split_plan, sum_parts

__all__ = ["KERNELS", "row_inputs", "launch", "finish"]

_I64_MIN = -(1 << 63)


# ----------------------------------------------------------------- shared pieces


@njit(cache=True, error_model="numpy")
def _label(lab, k):
    """(class index, valid): -1 for an invalid label (the reference's zero one-hot row)."""
    ok = (lab >= 0) & (lab < k) & (lab == np.floor(lab))
    return (int(lab) if ok else -1), ok


@njit(cache=True, error_model="numpy")
def _weight(sw, i, has_sw, like):
    """(w_i in f's dtype, whether it is non-finite or negative)."""
    if not has_sw:
        return fm.one(like), False
    wi = sw[i]
    return wi, not ((wi >= 0) & (wi - wi == 0))


@njit(cache=True, error_model="numpy")
def _row_max(row, skip):
    """(max_{j != skip} row[j] as float64, whether some row[j] is non-finite): an integer
    max of order keys (:func:`._fastmath.order_key`) and a boolean flag, which vectorise."""
    m = _I64_MIN
    nf = False
    for j in range(row.size):
        x = np.float64(row[j])
        key = fm.order_key(x)
        key = key if j != skip else _I64_MIN
        m = max(m, key)  # (written as `key if key > m else m`, the loop stayed scalar)
        nf |= x - x != 0.0
    return fm.from_order_key(m), nf


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _sum(buf):
    """sum_j buf[j] in float64 (``reassoc``: vectorised, a pure reduction)."""
    s = 0.0
    for j in range(buf.size):
        s += np.float64(buf[j])
    return s


# ----------------------------------------------------------------- multiclass hinge


@njit(cache=True, error_model="numpy")
def _ww_pass(row, yl, fy, mt, wi, g, buf):
    """t_j = (m + f_j) - f_y in f's dtype; g_j = w [t_j > 0, j != y], buf_j = the active t_j."""
    cnt = 0
    nf = False
    z = fm.zero(wi)
    for j in range(row.size):
        x = row[j]
        t = (mt + x) - fy
        a = (t > 0) & (j != yl)
        g[j] = wi if a else z
        buf[j] = t if a else z
        cnt += 1 if a else 0
        nf |= x - x != 0
    return cnt, nf


@njit(cache=True, error_model="numpy")
def _first_cs(row, yl, mt, fy, top):
    """The first j != y with (m + f_j) - f_y = top (the reference's arg-max), as an integer
    min reduction (vectorised, unlike a loop that stops at the first hit); K if none."""
    k = row.size
    jj = k
    for j in range(k):
        hit = (j != yl) & ((mt + row[j]) - fy == top)
        jj = min(jj, j if hit else k)
    return jj


@njit(cache=True, nogil=True, error_model="numpy")
def _hinge_rows(f, y, mt, crammer, sw, has_sw, v_out, g_out, want_g, counts):
    n, k = f.shape
    buf = np.empty(k, f.dtype)
    scratch = np.empty(k, f.dtype)
    for i in range(n):
        row = f[i]
        g = g_out[i] if want_g else scratch
        yl, ok = _label(y[i], k)
        wi, bw = _weight(sw, i, has_sw, row[0])
        fy = row[yl] if yl >= 0 else fm.zero(row[0])
        if not crammer:
            cnt, nf = _ww_pass(row, yl, fy, mt, wi, g, buf)
            if yl >= 0:
                g[yl] = fm.like(wi, -cnt) * wi
            v_out[i] = fm.like(wi, _sum(buf)) * wi
        else:
            fmax, nf = _row_max(row, yl)
            top = (mt + fm.like(fy, fmax)) - fy  # = max_{j != y} (m + f_j) - f_y: rounding is monotone
            v_out[i] = top * wi if top > 0 else fm.zero(wi)
            if want_g:
                g[:] = 0
            if want_g and top > 0:
                jj = _first_cs(row, yl, mt, fy, top)
                if jj < k:
                    g[jj] = wi
                if yl >= 0:
                    g[yl] = -wi
        counts[0] += 1 if nf else 0
        counts[1] += 0 if ok else 1
        counts[2] += 1 if bw else 0


# ----------------------------------------------------------------- categorical hinge


@njit(cache=True, error_model="numpy")
def _cat_prob_pass(row, q, buf):
    """n_c = (1 - q_c) f_c in f's dtype: (max_c n_c as float64, non-finite f, q outside
    [0, 1]); buf_c = q_c f_c."""
    m = _I64_MIN
    nf = False
    nq = False
    one = fm.one(row[0])
    zero = fm.zero(one)
    for j in range(row.size):
        x = row[j]
        qc = q[j]
        m = max(m, fm.order_key(np.float64((one - qc) * x)))
        buf[j] = qc * x
        nf |= x - x != zero
        nq |= not_probability(qc)
    return fm.from_order_key(m), nf, nq


@njit(cache=True, error_model="numpy")
def _first_cat(row, q, yl, ny, neg, labels):
    """The first c with n_c = neg (the reference's _first_argmax_onehot), as an integer min
    reduction; n_c = f_c (c != y), n_y = ny for a label, n_c = (1 - q_c) f_c for a row q."""
    k = row.size
    one = fm.one(row[0])
    jj = k
    for j in range(k):
        if labels:
            nj = row[j] if j != yl else ny
        else:
            nj = (one - q[j]) * row[j]
        jj = min(jj, j if nj == neg else k)
    return jj


@njit(cache=True, nogil=True, error_model="numpy")
def _categorical_rows(f, y, labels, ptol, sw, has_sw, v_out, g_out, want_g, counts):
    n, k = f.shape
    buf = np.empty(k, f.dtype)
    scratch = np.empty(k, f.dtype)
    for i in range(n):
        row = f[i]
        q = y[i]
        g = g_out[i] if want_g else scratch
        one = fm.one(row[0])
        zero = fm.zero(one)
        wi, bw = _weight(sw, i, has_sw, row[0])
        ny = zero
        if labels:
            yl, ok = _label(q[0], k)
            fmax, nf = _row_max(row, yl)
            pos = row[yl] if yl >= 0 else zero
            neg = fm.like(one, fmax)
            ny = zero * pos  # n_y = (1 - 1) f_y: a signed zero
            if yl >= 0 and ny > neg:
                neg = ny
        else:
            yl = -1
            fmax, nf, nq = _cat_prob_pass(row, q, buf)
            ok = not (nq or abs(_sum(q) - 1.0) > ptol)
            pos = fm.like(one, _sum(buf))
            neg = fm.like(one, fmax)
        counts[0] += 1 if nf else 0
        counts[1] += 0 if ok else 1
        counts[2] += 1 if bw else 0
        mm = (one + neg) - pos
        act = mm > 0
        v_out[i] = mm * wi if act else zero
        if not want_g:
            continue
        if labels or not act:
            g[:] = 0
        else:
            for j in range(k):  # -q_j w: the gradient off the arg-max
                g[j] = -q[j] * wi
        if not act:
            continue
        jj = _first_cat(row, q, yl, ny, neg, labels)
        if jj < k and jj != yl:
            g[jj] = wi if labels else ((one - q[jj]) - q[jj]) * wi
        if yl >= 0:
            g[yl] = -wi


# ----------------------------------------------------------------- dispatch


def row_inputs(loss: Any, y_true: Any, y_pred: Any, sample_weight: Any,
               labels_ok: bool, probs_ok: bool) -> tuple | None:
    """(f, y, labels, w) coerced as the reference does (y and w in f's dtype, C order), or
    None where the kernel does not apply; a shape the reference rejects raises its error.
    Labels come back as (N, 1)."""
    xp, f, _ = V.as_prediction(y_pred, name="y_pred")
    if not isinstance(f, np.ndarray) or f.dtype not in (np.float32, np.float64):
        return None
    if f.ndim != 2 or f.shape[1] < loss.min_classes:
        loss._prepare(y_true, y_pred, sample_weight)  # raises the reference's own error
        return None  # pragma: no cover
    n, k = f.shape
    loss._check_classes(k)
    try:
        y = V.as_target(y_true, xp, f, name="y_true", same_shape=False)
        w = None if sample_weight is None else V.as_target(sample_weight, xp, f, name="sample_weight",
                                                           same_shape=False)
    except (TypeError, ValueError):
        loss._prepare(y_true, y_pred, sample_weight)  # an earlier check of the reference may come first
        raise
    labels = y.ndim == 1 and labels_ok and y.shape[0] == n
    probs = y.ndim == 2 and probs_ok and y.shape == f.shape
    w_ok = w is None or w.shape == (n,) or w.ndim == 0
    if not (labels or probs) or not w_ok:
        loss._prepare(y_true, y_pred, sample_weight)
        return None  # pragma: no cover
    if w is not None:
        w = np.ascontiguousarray(np.broadcast_to(w, (n,)))
    y = np.ascontiguousarray(y.reshape(n, 1) if labels else y)
    return np.ascontiguousarray(f), y, labels, w


def _kernel(*args):  # pragma: no cover - bound per parallel wrapper: the serial row kernel
    raise NotImplementedError


def _parallel_template(f, y, args, sw, has_sw, v, g, want_g, counts):
    """``_kernel`` over counts.shape[0] blocks of rows, one per thread of Numba's layer;
    the counts summed into counts[0]."""
    k = counts.shape[0]
    for i in prange(k):
        lo, hi = part_bounds(f.shape[0], i, k, 1)
        swi = sw[lo:hi] if has_sw else sw  # (Numba: no conditional expressions in a call with *args)
        gi = g[lo:hi] if want_g else g
        _kernel(f[lo:hi], y[lo:hi], *args, swi, has_sw, v[lo:hi], gi, want_g, counts[i])
    sum_parts(counts)


def _parallel_template_h(f, y, args, sw, has_sw, v, g, h, want_g, want_h, counts):
    """:func:`_parallel_template` for a kernel that also writes the Hessian diagonal."""
    k = counts.shape[0]
    for i in prange(k):
        lo, hi = part_bounds(f.shape[0], i, k, 1)
        swi = sw[lo:hi] if has_sw else sw
        gi = g[lo:hi] if want_g else g
        hh = h[lo:hi] if want_h else h
        _kernel(f[lo:hi], y[lo:hi], *args, swi, has_sw, v[lo:hi], gi, hh, want_g, want_h, counts[i])
    sum_parts(counts)


_PARALLEL: dict[Any, Any] = {}
_PARALLEL_H: dict[Any, Any] = {}


def launch(kernel: Callable, f: np.ndarray, y: np.ndarray, args: tuple, w: np.ndarray | None,
           want_g: bool, want_h: bool | None = None, work: int | None = None) -> tuple:
    """Run ``kernel(f, y, *args, sw, has_sw, v, g, want_g, counts)`` over blocks of rows; a
    kernel that also writes the Hessian diagonal (``want_h`` not None) is called as
    ``kernel(f, y, *args, sw, has_sw, v, g, h, want_g, want_h, counts)``.  The blocks run
    in Numba's threading layer from N K >= 2^14 elements (a parallel wrapper per kernel,
    see :mod:`._parallel`), in Python threads from 2^17 where that layer is not safe, else
    in the calling thread.  Returns (value (N,), grad (N, K) or a dummy, Hessian diagonal
    (N, K) or None, counts summed over the blocks: [non-finite f, invalid targets,
    invalid weights]).  ``work``: the element count that decides the split, when a row
    costs more than its K elements (RankNet's lists: K^2 pairs)."""
    n, k = f.shape
    v = _output_pool.empty(n, f.dtype)
    g = _output_pool.empty((n, k) if want_g else (1, k), f.dtype)
    h = _output_pool.empty((n, k) if want_h else (1, k), f.dtype)
    sw = np.ones(1, f.dtype) if w is None else w
    layer, nt = split_plan(n * k if work is None else work, n)
    if layer:
        counts = np.zeros((nt, 3), np.int64)
        if want_h is None:
            parallel_copy(_parallel_template, kernel, _PARALLEL)(f, y, args, sw, w is not None, v, g, want_g, counts)
        else:
            parallel_copy(_parallel_template_h, kernel, _PARALLEL_H)(f, y, args, sw, w is not None, v, g, h, want_g,
                                                                     want_h, counts)
        return v, g, (h if want_h else None), counts[0]  # summed by the wrapper
    counts = np.zeros((nt, 3), np.int64)

    def run(t: int, lo: int, hi: int) -> None:
        rows = (f[lo:hi], y[lo:hi], *args, sw if w is None else sw[lo:hi], w is not None, v[lo:hi],
                g[lo:hi] if want_g else g)
        if want_h is None:
            kernel(*rows, want_g, counts[t])
        else:
            kernel(*rows, h[lo:hi] if want_h else h, want_g, want_h, counts[t])

    run_in_parts(n, nt, run)
    return v, g, (h if want_h else None), counts.sum(axis=0)


def finish(loss: Any, ops: tuple[str, ...], out: tuple, y_true: Any, y_pred: Any, sample_weight: Any) -> tuple | None:
    """The outputs in ``ops`` order, or (on a flagged input) the reference's error / None."""
    v, g, h, counts = out
    if counts.any() and not get_config().assume_valid:
        loss._prepare(y_true, y_pred, sample_weight)  # raises the reference's own error
        return None  # the reference accepted what the kernel flagged: let it compute
    return tuple(v if op == "value" else g if op == "grad" else h for op in ops)


def _value_grad_only(loss: Any, ops: tuple[str, ...]) -> bool:
    return bool(ops) and set(ops) <= {"value", "grad"}


def _hinge(loss, ops, y_true, y_pred, sample_weight):
    inputs = row_inputs(loss, y_true, y_pred, sample_weight, True, False)
    if inputs is None:
        return None
    f, y, _, w = inputs
    mt = f.dtype.type(loss.margin)  # the margin meets f as NumPy rounds a Python float
    out = launch(_hinge_rows, f, y[:, 0], (mt, loss.kind == "crammer_singer"), w, "grad" in ops)
    return finish(loss, ops, out, y_true, y_pred, sample_weight)


def _categorical(loss, ops, y_true, y_pred, sample_weight):
    inputs = row_inputs(loss, y_true, y_pred, sample_weight, True, True)
    if inputs is None:
        return None
    from .._row import prob_tolerance

    f, y, labels, w = inputs
    out = launch(_categorical_rows, f, y, (labels, 0.5 * prob_tolerance(np, f.dtype)), w, "grad" in ops)
    return finish(loss, ops, out, y_true, y_pred, sample_weight)


def _sparsemax(loss, ops, y_true, y_pred, sample_weight):
    from ._row_sparsemax import sparsemax_evaluate  # imported here: it imports this module's helpers

    return sparsemax_evaluate(loss, ops, y_true, y_pred, sample_weight)


def _table() -> dict[type, tuple[Callable, Callable]]:
    from ..losses.multiclass_margin import CategoricalHinge, MulticlassHinge
    from ..losses.sparsemax import SparsemaxLoss

    return {
        MulticlassHinge: (_value_grad_only, _hinge),
        CategoricalHinge: (_value_grad_only, _categorical),
        SparsemaxLoss: (_value_grad_only, _sparsemax),
    }


KERNELS: dict[type, tuple[Callable, Callable]] = _table()
