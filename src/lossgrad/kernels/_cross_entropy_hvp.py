r"""Row kernel of the softmax cross-entropy's Hessian-vector product, one pass per row.

For logits f (one row, K classes), p = softmax(f) and target coefficients
a_c = w_c ((1 - eps) q_c + eps / K) with S = sum_c a_c (:mod:`._cross_entropy`), the
Hessian of :class:`lossgrad.CrossEntropy` (``from_logits=True``, no z-loss) is
S (diag(p) - p p^T), so

    (H v)_c = S p_c (v_c - p.v),

with v_c - p.v at the arg-max class c* taken as sum_k p_k (v_{c*} - v_k), exact as
p_{c*} -> 1 (the reference's ``_centered``).  This is what trust-region Newton-CG asks
for at every inner step of :class:`lossgrad.models.SoftmaxClassifier`.  The kernel
reproduces the reference's order of operations (p = e / (e_{c*} + R), R the sum of the
other shifted exponentials) in float64, and rounds once to float32 for float32 inputs
(the float32 reference computes in float32: a few float32 ulps apart).

Validation in the same pass: non-finite logits or v, invalid labels or probability
rows are counted; the caller then runs the reference, which raises its own error.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from . import _fastmath as fm
from . import _output_pool
from ._cross_entropy import _row_prob
from ._parallel import parallel_copy, part_bounds, run_in_parts, split_plan, sum_parts

__all__ = ["cross_entropy_hvp"]


@njit(cache=True, nogil=True, error_model="numpy")
def _rows_hvp(f, v, y, labels, cw, weighted, eps, ignore, sw, has_sw, ptol, out, counts):
    """out = (H v) per row, times sw; counts = [non-finite f or v, invalid targets]."""
    n, k = f.shape
    sum_w = 0.0
    for c in range(k):
        sum_w += cw[c]
    spread = eps / k
    e = np.empty(k)
    bad_f = False
    bad_y = 0
    for i in range(n):
        m = np.float64(f[i, 0])
        top_c = 0  # the first arg-max, as NumPy's argmax
        for c in range(1, k):
            x = np.float64(f[i, c])
            if x > m:
                m = x
                top_c = c
        rest = 0.0
        for c in range(k):
            x = np.float64(f[i, c])
            vc = np.float64(v[i, c])
            bad_f |= (x - x != 0) | (vc - vc != 0)
            ec = fm.exp(x - m)
            e[c] = ec
            if c != top_c:
                rest += ec
        total = e[top_c] + rest
        pv = 0.0
        for c in range(k):
            e[c] = e[c] / total  # p_c
            pv += e[c] * np.float64(v[i, c])
        v_top = np.float64(v[i, top_c])
        centred_top = 0.0
        for c in range(k):
            centred_top += e[c] * (v_top - np.float64(v[i, c]))
        if labels:
            lb = np.float64(y[i, 0])
            ignored = lb == ignore
            ok = (lb >= 0) & (lb < k) & (lb == math.floor(lb))
            bad_y += (not ok) & (not ignored)
            wy = (cw[int(lb)] if ok else 1.0) if weighted else 1.0
            s_coef = 0.0 if ignored else (1.0 - eps) * wy + spread * sum_w
        else:
            s_coef, _, qsum, badq = _row_prob(f[i], y[i], cw, eps, spread, weighted)
            bad_y += badq + (1 if abs(qsum - 1.0) > ptol else 0)
        wi = np.float64(sw[i]) if has_sw else 1.0
        for c in range(k):
            centred = centred_top if c == top_c else np.float64(v[i, c]) - pv
            out[i, c] = s_coef * e[c] * centred * wi
    counts[0] = bad_f
    counts[1] = bad_y


def _parallel_template(f, v, y, labels, cw, weighted, eps, ignore, sw, has_sw, ptol, out, counts):
    """``_kernel`` over counts.shape[0] blocks of rows in Numba's threading layer."""
    k = counts.shape[0]
    for i in prange(k):
        lo, hi = part_bounds(f.shape[0], i, k, 1)
        _kernel(f[lo:hi], v[lo:hi], y[lo:hi], labels, cw, weighted, eps, ignore, sw[lo:hi] if has_sw else sw,
                has_sw, ptol, out[lo:hi], counts[i])
    sum_parts(counts)


def _kernel(*args):  # pragma: no cover - bound per parallel wrapper: _rows_hvp
    raise NotImplementedError


_PARALLEL: dict[Any, Any] = {}


def cross_entropy_hvp(
    f: np.ndarray, v: np.ndarray, y: np.ndarray, *, class_weight: np.ndarray | None = None,
    label_smoothing: float = 0.0, ignore_index: int | None = None, sample_weight: np.ndarray | None = None,
    prob_tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    """((H v) per row (N, K) times ``sample_weight``, counts) for logits ``f`` and ``v`` of
    one shape and dtype (float32 or float64), ``y`` (N,) labels or (N, K) probability
    rows; counts = [non-finite f or v, invalid targets].  No check raises here."""
    n, k = f.shape
    labels = y.ndim == 1
    yy = np.ascontiguousarray(y.reshape(n, 1) if labels else y)
    cw = np.ones(k) if class_weight is None else np.ascontiguousarray(class_weight, dtype=np.float64)
    sw = np.ones(1, f.dtype) if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=f.dtype)
    ign = math.nan if ignore_index is None else float(ignore_index)  # NaN never equals a label
    f, v = np.ascontiguousarray(f), np.ascontiguousarray(v)
    out = _output_pool.empty((n, k), f.dtype)
    args = (labels, cw, class_weight is not None, float(label_smoothing), ign)
    has_sw, tol = sample_weight is not None, float(prob_tol)
    layer, parts = split_plan(n * k, n)
    if layer:
        counts = np.zeros((parts, 2), np.int64)
        parallel_copy(_parallel_template, _rows_hvp, _PARALLEL)(f, v, yy, *args, sw, has_sw, tol, out, counts)
        return out, counts[0]
    counts = np.zeros((parts, 2), np.int64)

    def run(i: int, lo: int, hi: int) -> None:
        _rows_hvp(f[lo:hi], v[lo:hi], yy[lo:hi], *args, sw[lo:hi] if has_sw else sw, has_sw, tol, out[lo:hi],
                  counts[i])

    run_in_parts(n, parts, run)
    return out, counts.sum(axis=0)
