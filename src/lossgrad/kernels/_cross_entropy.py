r"""Row kernel of the softmax cross-entropy: value, gradient (and the Hessian diagonal), one pass per row.

For a row f (K logits), target coefficients a_c = w_c ((1 - eps) q_c + eps / K) (q the
one-hot label or a probability row, w the class weights, eps the label smoothing) and
S = sum_c a_c:

    lse = m + log sum_c e^{f_c - m},  m = max_c f_c
    value = -sum_c a_c (f_c - lse) + z lse^2
    grad_c = S p_c - a_c + 2 z lse p_c,  p_c = e^{f_c - m} / sum_j e^{f_j - m}
    hess_cc = (S + 2 z lse) p_c (1 - p_c) + 2 z p_c^2      (the diagonal, on request)

(:class:`lossgrad.CrossEntropy`, ``from_logits=True``).  Per row: one read of the logits
for the max, one for the sum of exponentials (which are stored in the gradient row),
one rescaling of that row in place; the row (K <= a few thousand) stays in cache, so
memory sees one read of f and one write of the gradient.  exp is the vectorised one
of :mod:`._fastmath`.  Blocks of rows run in Numba's threading layer from 2^14 elements
(Python threads from 2^17 where that layer is not safe; see :mod:`._parallel`).

The diagonal of the Hessian (what gradient boosting takes per class) costs one more
write of an (N, K) array in the same pass.

Rows of at most 24 classes go to :mod:`._cross_entropy_narrow` (SIMD across rows).

Covered: class labels (with ``ignore_index``: an ignored row gives value 0 and a zero
gradient) and probability targets; class weights; label smoothing; z-loss;
``sample_weight`` per row; float32 (e^{f - m} in float32, the sums and the rest in
float64) and float64.  Not covered
(the reference runs): ``from_logits=False``, the full Hessian and its products.
The kernel counts non-finite logits and invalid labels/probability rows in its pass.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from numba import njit, prange

from . import _cross_entropy_narrow as _narrow
from . import _fastmath as fm
from . import _output_pool
from ._driver import not_probability
from ._parallel import parallel_copy, part_bounds, run_in_parts, split_plan, sum_parts

__all__ = ["cross_entropy_value_grad"]


@njit(cache=True, error_model="numpy")
def _row_max(row):
    """max_c row[c], reduced on integer order keys so that LLVM vectorises it (a row
    holding a NaN gives NaN or an unspecified shift: :func:`_row_exp` flags that row)."""
    m = -(1 << 63)
    for c in range(row.size):
        key = fm.order_key(np.float64(row[c]))
        m = key if key > m else m
    return fm.from_order_key(m)


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _row_exp(row, g, m, cw, weighted):
    """g_c = e^{f_c - m} (in the row's dtype); returns (sum_c g_c, sum_c w_c f_c (weighted) or sum_c f_c,
    whether some f_c is non-finite).  ``reassoc`` lets the sums be vectorised (their order
    changes: a few ulps, no cancellation)."""
    se = 0.0
    sf = 0.0
    bad = False  # a boolean OR reduction: an int64 counter halves the float32 SIMD width
    mm = fm.like(row[0], m)  # the row's max, exact in the row's dtype
    for c in range(row.size):
        x = row[c]
        e = fm.exp(x - mm)  # float32 rows: float32 exp (16 SIMD lanes), as the reference's
        g[c] = e
        se += np.float64(e)
        sf += np.float64(x) * (cw[c] if weighted else 1.0)
        bad |= x - x != 0
    return se, sf, bad


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _row_prob(row, q, cw, eps, spread, weighted):
    """For a probability row q: (S = sum a_c, sum a_c f_c, sum q_c, invalid q count),
    a_c = w_c ((1 - eps) q_c + eps / K)."""
    s_coef = 0.0
    af = 0.0
    qsum = 0.0
    bad = 0
    for c in range(row.size):
        qc = np.float64(q[c])
        bad += not_probability(qc)
        qsum += qc
        a = (cw[c] if weighted else 1.0) * ((1.0 - eps) * qc + spread)
        s_coef += a
        af += a * np.float64(row[c])
    return s_coef, af, qsum, bad


@njit(cache=True, error_model="numpy")
def _row_hess_diag(e, inv, coef_p, z, wi, h):
    """h_c = ((S + 2 z lse) p_c (1 - p_c) + 2 z p_c^2) w_i from e_c = e^{f_c - m}, p_c = e_c inv."""
    for c in range(e.size):
        p = np.float64(e[c]) * inv
        h[c] = (coef_p * p * (1.0 - p) + 2.0 * z * p * p) * wi


@njit(cache=True, nogil=True, error_model="numpy")
def _rows(f, y, labels, cw, weighted, eps, ignore, z, sw, has_sw, ptol, v_out, g_out, h_out, want_h, counts):
    n, k = f.shape
    sum_w = 0.0
    for c in range(k):
        sum_w += cw[c]
    spread = eps / k
    bad_f = bad_y = 0
    for i in range(n):
        row = f[i]
        g = g_out[i]
        wi = np.float64(sw[i]) if has_sw else 1.0
        if labels:
            lab = np.float64(y[i, 0])
            if lab == ignore:
                v_out[i] = 0.0
                bad_f += _row_exp(row, g, 0.0, cw, False)[2]
                g[:] = 0.0
                if want_h:
                    h_out[i, :] = 0.0
                continue
        m = _row_max(row)
        se, sf, nonfinite = _row_exp(row, g, m, cw, weighted)
        bad_f += nonfinite
        lse = m + math.log(se)
        inv = 1.0 / se
        if labels:
            ok = (lab >= 0) & (lab < k) & (lab == math.floor(lab))
            if not ok:
                bad_y += 1
                lab = 0.0
            yl = int(lab)
            wy = cw[yl] if weighted else 1.0
            s_coef = (1.0 - eps) * wy + spread * sum_w
            af = (1.0 - eps) * wy * np.float64(row[yl]) + spread * sf  # sum_c a_c f_c
            coef_p = s_coef + 2.0 * z * lse
            if want_h:
                _row_hess_diag(g, inv, coef_p, z, wi, h_out[i])
            for c in range(k):  # a_c = w_c (eps/K + (1 - eps) [c == y])
                a = (cw[c] if weighted else 1.0) * (spread + ((1.0 - eps) if c == yl else 0.0))
                g[c] = (coef_p * (np.float64(g[c]) * inv) - a) * wi
        else:
            s_coef, af, qsum, badq = _row_prob(row, y[i], cw, eps, spread, weighted)
            bad_y += badq + (1 if abs(qsum - 1.0) > ptol else 0)
            coef_p = s_coef + 2.0 * z * lse
            if want_h:
                _row_hess_diag(g, inv, coef_p, z, wi, h_out[i])
            for c in range(k):
                a = (cw[c] if weighted else 1.0) * ((1.0 - eps) * np.float64(y[i, c]) + spread)
                g[c] = (coef_p * (np.float64(g[c]) * inv) - a) * wi
        # value = -sum_c a_c (f_c - lse) + z lse^2 = S lse - sum_c a_c f_c + z lse^2
        v_out[i] = ((s_coef * lse - af) + z * lse * lse) * wi
    counts[0] = bad_f
    counts[1] = bad_y


def _parallel_template(f, y, labels, cw, weighted, eps, ignore, z, sw, has_sw, ptol, v_out, g_out, h_out, want_h,
                       counts):
    """The row kernel ``_kernel`` over counts.shape[0] blocks of rows, one per thread of
    Numba's threading layer (see :mod:`._parallel`); the counts summed into counts[0]."""
    k = counts.shape[0]
    for i in prange(k):
        lo, hi = part_bounds(f.shape[0], i, k, 1)
        _kernel(f[lo:hi], y[lo:hi], labels, cw, weighted, eps, ignore, z, sw[lo:hi] if has_sw else sw, has_sw, ptol,
                v_out[lo:hi], g_out[lo:hi], h_out[lo:hi] if want_h else h_out, want_h, counts[i])
    sum_parts(counts)


def _kernel(*args):  # pragma: no cover - bound per parallel wrapper: _rows or the narrow rows
    raise NotImplementedError


_PARALLEL: dict[Any, Any] = {}


@functools.lru_cache(maxsize=64)
def _ones(k: int, dtype: Any = np.float64) -> np.ndarray:
    """A shared array of ones (absent class or sample weights); the kernels only read it."""
    return np.ones(k, dtype)


def cross_entropy_value_grad(
    f: np.ndarray, y: np.ndarray, *, class_weight: np.ndarray | None = None, label_smoothing: float = 0.0,
    ignore_index: int | None = None, z_loss: float = 0.0, sample_weight: np.ndarray | None = None,
    prob_tol: float = 1e-6, hess_diag: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """(value (N,), grad (N, K), Hessian diagonal (N, K) or None, counts) of the softmax
    cross-entropy on logits ``f`` (N, K); the diagonal only with ``hess_diag=True``.

    ``y``: (N,) class labels (any numeric dtype; ``ignore_index`` rows give zeros) or
    (N, K) probability rows.  counts = [non-finite logits, invalid targets (non-integer
    or out-of-range labels, probabilities outside [0, 1] or rows whose sum is off 1 by
    more than ``prob_tol``)].  No check raises here: the caller decides.
    """
    f = np.ascontiguousarray(f)
    if f.dtype not in (np.float32, np.float64) or f.ndim != 2:
        raise TypeError("cross_entropy_value_grad: f must be a 2-d float32 or float64 array")
    n, k = f.shape
    labels = y.ndim == 1
    yy = np.ascontiguousarray(y.reshape(n, 1) if labels else y)
    if labels and yy.dtype.kind not in "fiu":
        raise TypeError("cross_entropy_value_grad: labels must be numeric")
    cw = _ones(k) if class_weight is None else np.ascontiguousarray(class_weight, dtype=np.float64)
    sw = _ones(1, f.dtype) if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=f.dtype)
    ign = math.nan if ignore_index is None else float(ignore_index)  # NaN never equals a label
    v = _output_pool.empty(n, f.dtype)
    g = _output_pool.empty((n, k), f.dtype)
    h = _output_pool.empty((n, k), f.dtype) if hess_diag else _ones(1, f.dtype)[:, None]
    rows = _narrow.rows_narrow if k <= _narrow.NARROW_MAX_CLASSES else _rows
    args = (cw, class_weight is not None, float(label_smoothing), ign, float(z_loss))
    layer, parts = split_plan(n * k, n)
    if layer:  # Numba's threading layer: a hand-off of 1-2 us
        counts = np.zeros((parts, 2), np.int64)
        parallel_copy(_parallel_template, rows, _PARALLEL)(f, yy, labels, *args, sw, sample_weight is not None,
                                                           float(prob_tol), v, g, h, hess_diag, counts)
        return v, g, h if hess_diag else None, counts[0]
    if parts == 1:  # one thread, whole arrays (no closure: 0.6 us a call)
        counts = np.zeros(2, np.int64)
        rows(f, yy, labels, *args, sw, sample_weight is not None, float(prob_tol), v, g, h, hess_diag, counts)
        return v, g, h if hess_diag else None, counts
    counts = np.zeros((parts, 2), np.int64)  # Python threads (~60 us a hand-off) where the layer is not safe

    def run(i: int, lo: int, hi: int) -> None:
        rows(f[lo:hi], yy[lo:hi], labels, *args, sw if sample_weight is None else sw[lo:hi],
              sample_weight is not None, float(prob_tol), v[lo:hi], g[lo:hi], h[lo:hi] if hess_diag else h,
              hess_diag, counts[i])

    run_in_parts(n, parts, run)
    return v, g, h if hess_diag else None, counts.sum(axis=0)
