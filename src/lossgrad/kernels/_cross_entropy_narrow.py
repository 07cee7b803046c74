r"""The cross-entropy row kernel for few classes (K <= :data:`NARROW_MAX_CLASSES`): SIMD across rows.

The same quantities as :mod:`._cross_entropy` (value, gradient, the Hessian diagonal on
request; every option: labels with ``ignore_index`` or probability rows, class weights,
label smoothing, z-loss, ``sample_weight``; the same validity counts), computed in a
different order.  A row of 10 logits is too short for SIMD along the row: the
per-row work (views, loop set-up, a remainder loop, the log) costs about 60 ns, 6-7 ns
per element at K = 10, where a row of 1000 costs 1.2 ns per element.  Here a block of
:data:`BLOCK` rows is transposed into a (K, BLOCK) float64 scratch that stays in L1,
every step runs down the columns of the block (one SIMD lane per row: the max, the
exponentials, the sums, lse, the coefficients) and the gradient block is transposed back
on the way out.  Arithmetic is float64 for float32 inputs too (the results are rounded
once on the store), except e^{f - m}, taken in the logits' dtype as the row kernel and
the reference take it: float32's exp has half the polynomial terms (session 16, 2^20 x
10 float32 value_grad: see docs/benchmarks.md).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import _fastmath as fm
from ._driver import not_probability

__all__ = ["NARROW_MAX_CLASSES", "BLOCK", "rows_narrow"]

#: Largest K served by this kernel (in cache, one core, float64 ns per element, this kernel vs the
#: row kernel: K = 10 2.1 vs 6.6, K = 24 1.9 vs 3.3, K = 32 1.8 vs 2.0).
NARROW_MAX_CLASSES = 24
#: Rows per block: three (K, BLOCK) float64 scratch arrays of 24 KiB each at K = 24.
BLOCK = 128


@njit(cache=True, nogil=True, error_model="numpy")  # no reassociation: every SIMD lane is a row of its own
def rows_narrow(f, y, labels, cw, weighted, eps, ignore, z, sw, has_sw, ptol, v_out, g_out, h_out, want_h, counts):
    """The arguments of ``_cross_entropy._rows``; fills v_out, g_out (h_out when
    ``want_h``) and counts = [non-finite logits, invalid targets]."""
    n, k = f.shape
    sum_w = 0.0
    for c in range(k):
        sum_w += cw[c]
    spread = eps / k
    T = np.empty((k, BLOCK))  # logits, then e^{f - m}
    G = np.empty((k, BLOCK))
    H = np.empty((k, BLOCK))
    m = np.empty(BLOCK)
    se = np.empty(BLOCK)
    sf = np.empty(BLOCK)
    lse_ = np.empty(BLOCK)
    coef_p = np.empty(BLOCK)
    inv = np.empty(BLOCK)
    wrow = np.empty(BLOCK)
    lab = np.zeros(BLOCK, np.int64)
    bad_f = False
    bad_y = 0
    f0 = f[0, 0] if n > 0 else f.dtype.type(0)  # a value of the logits' dtype (for fm.like)
    for i0 in range(0, n, BLOCK):
        nb = min(BLOCK, n - i0)
        for j in range(nb):  # transpose the block in, with the row max on the way
            mx = np.float64(f[i0 + j, 0])
            for c in range(k):
                x = np.float64(f[i0 + j, c])
                T[c, j] = x
                mx = x if x > mx else mx
            m[j] = mx
            se[j] = 0.0
            sf[j] = 0.0
        for c in range(k):
            wc = cw[c] if weighted else 1.0
            for j in range(nb):
                x = T[c, j]
                bad_f |= x - x != 0
                # e^{f - m} in the logits' dtype, as the row kernel and the reference take it
                # (float32: its difference rounded, its exp in float32 with half the terms)
                e = np.float64(fm.exp(fm.like(f0, x) - fm.like(f0, m[j])))
                T[c, j] = e
                se[j] += e
                sf[j] += x * wc
        # per row (SIMD across rows as well, branch-free): lse, targets, coefficients, value
        for j in range(nb):
            lse = m[j] + fm.log_normal(se[j])  # se in [1, K]
            inv[j] = 1.0 / se[j]
            lse_[j] = lse
        if labels:
            for j in range(nb):
                i = i0 + j
                lb = np.float64(y[i, 0])
                ignored = lb == ignore
                ok = (lb >= 0) & (lb < k) & (lb == math.floor(lb))
                bad_y += (not ok) & (not ignored)
                yl = int(lb if ok else 0.0)
                lab[j] = -1 if ignored else yl
                wy = cw[yl] if weighted else 1.0
                sc = (1.0 - eps) * wy + spread * sum_w
                af = (1.0 - eps) * wy * np.float64(f[i, yl]) + spread * sf[j]
                wi = np.float64(sw[i]) if has_sw else 1.0
                wrow[j] = 0.0 if ignored else wi
                lse = lse_[j]
                coef_p[j] = sc + 2.0 * z * lse
                v_out[i] = 0.0 if ignored else ((sc * lse - af) + z * lse * lse) * wi
        else:
            for j in range(nb):
                i = i0 + j
                sc = 0.0
                af = 0.0
                qsum = 0.0
                for c in range(k):
                    qc = np.float64(y[i, c])
                    bad_y += not_probability(qc)
                    qsum += qc
                    a = (cw[c] if weighted else 1.0) * ((1.0 - eps) * qc + spread)
                    sc += a
                    af += a * np.float64(f[i, c])
                bad_y += 1 if abs(qsum - 1.0) > ptol else 0
                wi = np.float64(sw[i]) if has_sw else 1.0
                wrow[j] = wi
                lse = lse_[j]
                coef_p[j] = sc + 2.0 * z * lse
                v_out[i] = ((sc * lse - af) + z * lse * lse) * wi
        # gradient (and Hessian diagonal) down the columns: a_c from the label or the row
        for c in range(k):
            wc = cw[c] if weighted else 1.0
            for j in range(nb):
                p = T[c, j] * inv[j]
                if labels:
                    a = wc * (spread + ((1.0 - eps) if lab[j] == c else 0.0))
                    a = a if lab[j] >= 0 else 0.0
                else:
                    a = wc * ((1.0 - eps) * np.float64(y[i0 + j, c]) + spread)
                G[c, j] = (coef_p[j] * p - a) * wrow[j]
                if want_h:
                    H[c, j] = (coef_p[j] * p * (1.0 - p) + 2.0 * z * p * p) * wrow[j]
        for j in range(nb):
            for c in range(k):
                g_out[i0 + j, c] = G[c, j]
        if want_h:
            for j in range(nb):
                for c in range(k):
                    h_out[i0 + j, c] = H[c, j]
    counts[0] = 1 if bad_f else 0
    counts[1] = bad_y
