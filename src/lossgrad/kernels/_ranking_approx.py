r"""List kernels of ApproxNDCG (:class:`lossgrad.ApproxNDCG`): value, gradient and Hessian diagonal,
or the Hessian blocks, per list.

The reference forms a dozen (n_lists, L, L) arrays (differences, sigmoids, their
derivatives, the Jacobian, the pair weights and products of them): about twenty passes
over n L^2 entries.  Here each list is two loops over its pairs of real items, one
exponential per pair and loop, in float64 (float32 scores are promoted, the outputs
cast back).  With u_kj = (s_j - s_k) / T, e = exp(-|u_kj|), d = 1 / (1 + e),

    sigmoid(u_kj) = (1 if u_kj >= 0 else e) d,   sigmoid(u_jk) = (e if u_kj >= 0 else 1) d,
    S_kj = sigmoid'(u_kj) / T = e d^2 / T                  (symmetric),
    C_kj = sigmoid''(u_kj) / T^2 = S_kj (1 - 2 sigmoid(u_kj)) / T
         = S_kj (e - 1 if u_kj >= 0 else 1 - e) d / T       (C_jk = -C_kj),

all exact in both tails: a saturated sigmoid is exactly 0 or 1 and its derivatives 0,
with no NaN however large |u| (exp's argument is clamped).  The gains arrive
normalised, g_k = (2^{rel_k} - 1) / Z (all 0 on a list with Z = 0: value, gradient and
curvature 0), computed in NumPy with the ideal DCG Z (a sort per list, O(n L log L)).

First loop: the smooth ranks pi_k = 1 + sum_{j != k} sigmoid(u_kj) and the sums
sum_j S_kj; then per item, with l_k = ln(1 + pi_k),

    value = -sum_k g_k ln 2 / l_k,
    a_k = dNDCG/dpi_k = -g_k ln 2 / ((1 + pi_k) l_k^2),
    b_k = d^2NDCG/dpi_k^2 = -a_k (l_k + 2) / ((1 + pi_k) l_k).

Second loop, with the Jacobian J = dpi/ds = S - diag(S 1) (:class:`lossgrad.ApproxNDCG`):

    dL/ds_k = -(J^T a)_k = sum_j S_kj (a_k - a_j),
    d^2L/ds_k^2 = -( sum_{j != k} b_j S_kj^2 + b_k (sum_j S_kj)^2 + sum_j (M_kj + M_jk) ),

the first two terms the diagonal of J^T diag(b) J, the last the degree of
Lap(M + M^T) with M_kj = a_k C_kj, so that M_kj + M_jk = (a_k - a_j) C_kj.

Both loops run over the pairs k < j only and credit both items (one exponential per
unordered pair): pi_j gains sigmoid(u_jk), the gradient of j gets -S_kj (a_k - a_j),
the curvature of j gets b_k S_kj^2 and the same (a_k - a_j) C_kj.  The loops over j
have no branch: the pair indicator is a 0/1 factor and u = 0 off the pairs, so that
LLVM vectorises them with the branch-free exp of :mod:`._fastmath`; they run over
slices that start after k (indexed from k + 1 in the full row, the loop stayed
scalar).  Measured at 2000 lists of 120 items, one thread: 48 ms for value, gradient
and diagonal (value alone: 24 ms), against 145 ms with libm's exp, 290 ms for the
unsliced scalar loops and 2.3 s for the reference.  The sums are reassociated
(``fastmath="reassoc"``): a few ulps from the reference.  Padding is marked by a NaN
gain in the kernel's copy, so padded scores are never read.  Lists run in blocks
through :func:`._row_margin.launch`.  Inputs arrive validated (RankingLoss checks
them), so the kernel counts nothing.  The pair terms (sigmoids, S, C: :func:`_pair`),
the first loop and the per-item a, b are helpers inlined into both kernels.

Blocks (:func:`approx_ndcg_blocks`): per list, after the same first loop and a, b, one
loop over the pairs k < j writes S_kj into the upper triangle of J (its diagonal
-sum_j S_kj), M_kj + M_jk = (a_k - a_j) C_kj into the upper triangle of the block and
the degrees of Lap(M + M^T) onto its diagonal with a minus.  As b >= 0 (a <= 0 and
ln(1 + pi) >= ln 2), J^T diag(b) J = J diag(b) J = R R^T with R = J[:, c] diag(sqrt(b_c))
over the items c with b_c > 0 (no padding, no gain-less item), so that the O(L^3) part
is one dot product of two rows of R per entry of the upper triangle, over the real
items only; the block is mirrored in scratch and copied out: no (n, L, L) array but the
output.  The lists run in parts on Python threads (:func:`._parallel.run_in_parts`: launch's
outputs are (n, L) rows; a thread's wake-up is small next to a block's O(L^3)).  Measured,
float64, one thread: 1.5 ms at 300 lists of 29 items, 175-200 ms at 2000 of 120; two
threads 0.8 and 93-102 ms, against 15-19 ms and 1.0-2.1 s for the reference's blocks.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import _fastmath as fm
from ._parallel import run_in_parts, split_plan
from ._row_margin import launch

__all__ = ["approx_ndcg_blocks", "approx_ndcg_lists"]

_LN2 = math.log(2.0)


_JIT = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": {"reassoc", "contract"}}


@njit(inline="always")
def _pair(s_k, s_j, real, tinv):
    """(sigmoid(u_kj), sigmoid(u_jk), S_kj, C_kj) of the items k < j, all 0 off the pairs
    (``real`` false: j, or k, is padding, and its score is not read)."""
    u = (np.float64(s_j) - s_k) * tinv if real else 0.0
    e = fm.exp(-abs(u))
    d = 1.0 / (1.0 + e)
    pf = 1.0 if real else 0.0
    s_kj = pf * e * d * d * tinv
    c_kj = s_kj * tinv * ((e - 1.0) if u >= 0.0 else (1.0 - e)) * d  # S_kj (1 - 2 sigmoid(u_kj)) / T
    return pf * (1.0 if u >= 0.0 else e) * d, pf * (e if u >= 0.0 else 1.0) * d, s_kj, c_kj


@njit(inline="always")
def _smooth_ranks(row, gn, tinv, pi, s_sum):
    """First loop: pi_k = 1 + sum_{j != k} sigmoid(u_kj) and s_sum_k = sum_j S_kj."""
    pi[:] = 1.0
    s_sum[:] = 0.0
    for k in range(row.size - 1):
        if math.isnan(gn[k]):  # padding
            continue
        s_k = np.float64(row[k])
        pi_k = ssum_k = 0.0
        # the items after k as slices: indices from 0 let LLVM prove them non-negative and vectorise
        s_tail, gain_tail, pi_tail, ssum_tail = row[k + 1:], gn[k + 1:], pi[k + 1:], s_sum[k + 1:]
        for j in range(s_tail.size):
            sig_kj, sig_jk, s_kj, _ = _pair(s_k, s_tail[j], not math.isnan(gain_tail[j]), tinv)
            pi_k += sig_kj
            pi_tail[j] += sig_jk
            ssum_k += s_kj
            ssum_tail[j] += s_kj
        pi[k] += pi_k
        s_sum[k] += ssum_k


@njit(inline="always")
def _rank_derivatives(gn, pi, a, b):
    """Per item: a_k = dNDCG/dpi_k and b_k = d^2NDCG/dpi_k^2 (0 at padding); returns the value -NDCG."""
    total = 0.0
    for k in range(gn.size):
        gain_k = gn[k]
        if math.isnan(gain_k):
            a[k] = b[k] = 0.0
            continue
        p1 = 1.0 + pi[k]
        lg = math.log(p1)
        total += gain_k / lg
        a[k] = -gain_k * _LN2 / (p1 * lg * lg)
        b[k] = -a[k] * (lg + 2.0) / (p1 * lg)
    return -total * _LN2


@njit(**_JIT)
def _approx_ndcg_lists(s, gain, tinv, sw, has_sw, v_out, g_out, h_out, want_g, want_h, counts):
    n, width = s.shape
    pi, s_sum, a, b = np.empty(width), np.empty(width), np.empty(width), np.empty(width)
    g_acc = np.empty(width)
    h_acc = np.empty(width)
    for li in range(n):
        row, gn = s[li], gain[li]
        _smooth_ranks(row, gn, tinv, pi, s_sum)
        v_out[li] = _rank_derivatives(gn, pi, a, b)
        if not (want_g or want_h):
            continue
        g_acc[:] = 0.0
        h_acc[:] = 0.0
        for k in range(width - 1):  # second loop: gradient and curvature
            if math.isnan(gn[k]):
                continue
            s_k, a_k, b_k = np.float64(row[k]), a[k], b[k]
            g_k = h_k = 0.0
            s_tail, gain_tail, a_tail, b_tail = row[k + 1:], gn[k + 1:], a[k + 1:], b[k + 1:]
            g_tail, h_tail = g_acc[k + 1:], h_acc[k + 1:]
            for j in range(s_tail.size):
                _, _, s_kj, c_kj = _pair(s_k, s_tail[j], not math.isnan(gain_tail[j]), tinv)
                da = a_k - a_tail[j]
                g_k += s_kj * da
                g_tail[j] -= s_kj * da
                h_k += b_tail[j] * s_kj * s_kj + c_kj * da
                h_tail[j] += b_k * s_kj * s_kj + c_kj * da
            g_acc[k] += g_k
            h_acc[k] += h_k
        if want_g:
            for k in range(width):
                g_out[li, k] = g_acc[k]
        if want_h:
            for k in range(width):
                h_out[li, k] = -(h_acc[k] + b[k] * s_sum[k] * s_sum[k])


@njit(**_JIT)
def _approx_ndcg_blocks(s, gain, tinv, out):
    n, width = s.shape
    pi, s_sum, a, b, degree = np.empty(width), np.empty(width), np.empty(width), np.empty(width), np.empty(width)
    jac = np.empty((width, width))  # J = S - diag(S 1)
    curved = np.empty(width, np.int64)  # the items c with b_c > 0
    root_b = np.empty(width)  # sqrt(b_c)
    root = np.empty((width, width))  # R = J[:, c] diag(sqrt(b_c)), so that J^T diag(b) J = R R^T
    block = np.empty((width, width))
    for li in range(n):
        row, gn = s[li], gain[li]
        _smooth_ranks(row, gn, tinv, pi, s_sum)
        _rank_derivatives(gn, pi, a, b)
        degree[:] = 0.0
        for k in range(width):  # the pairs k < j: S_kj into J, M_kj + M_jk = (a_k - a_j) C_kj into the block
            real_k = not math.isnan(gn[k])
            s_k, a_k = np.float64(row[k]), a[k]
            degree_k = 0.0
            s_tail, gain_tail, a_tail, degree_tail = row[k + 1:], gn[k + 1:], a[k + 1:], degree[k + 1:]
            jac_tail, block_tail = jac[k, k + 1:], block[k, k + 1:]
            for j in range(s_tail.size):
                _, _, s_kj, c_kj = _pair(s_k, s_tail[j], real_k and not math.isnan(gain_tail[j]), tinv)
                m_kj = (a_k - a_tail[j]) * c_kj
                jac_tail[j] = s_kj
                block_tail[j] = m_kj
                degree_k += m_kj
                degree_tail[j] += m_kj
            jac[k, k] = -s_sum[k]
            block[k, k] = -(degree[k] + degree_k)  # the block so far: -Lap(M + M^T), upper triangle
        n_curved = 0
        for i in range(width):
            if b[i] > 0.0:
                curved[n_curved] = i
                root_b[n_curved] = math.sqrt(b[i])
                n_curved += 1
        for k in range(width):  # J's lower triangle, then R's row k
            for j in range(k):
                jac[k, j] = jac[j, k]
            jac_k, root_k = jac[k], root[k, :n_curved]
            for c in range(n_curved):
                root_k[c] = jac_k[curved[c]] * root_b[c]
        for k in range(width):  # minus R R^T, upper triangle (the rows of R at padding are 0)
            if math.isnan(gn[k]):
                continue
            root_k = root[k, :n_curved]
            for j in range(k, width):
                if math.isnan(gn[j]):
                    continue
                root_j = root[j, :n_curved]
                dot = 0.0
                for c in range(n_curved):
                    dot += root_k[c] * root_j[c]
                block[k, j] -= dot
        out_block = out[li]
        for k in range(width):  # the lower triangle, then the rows out
            for j in range(k):
                block[k, j] = block[j, k]
            out_k, block_k = out_block[k], block[k]
            for j in range(width):
                out_k[j] = block_k[j]


def _normalised_gains(rel: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(2^rel - 1) / Z per real item (0 on lists with Z = 0), NaN at padding, float64:
    Z the ideal DCG, sum_r G_(r) / log2(r + 1) over the gains sorted in decreasing order."""
    gain = np.where(mask, np.exp2(rel.astype(np.float64)) - 1.0, 0.0)
    ideal = -np.sort(-gain, axis=-1)
    # a row sum, not ``ideal @ discounts``: OpenBLAS's threads spin after a product, and on
    # two cores they halved the speed of the list kernel that runs next (20 -> 40 ms at 20000 x 24)
    z = np.einsum("ij,j->i", ideal, _LN2 / np.log(np.arange(2.0, gain.shape[-1] + 2.0)))
    zinv = np.divide(1.0, z, out=np.zeros_like(z), where=z > 0.0)
    return np.where(mask, gain * zinv[:, None], np.nan)


def approx_ndcg_lists(scores: np.ndarray, rel: np.ndarray, mask: np.ndarray, temperature: float,
                      want_grad: bool, want_diag: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(value (n,), gradient (n, L) or None, Hessian diagonal (n, L) or None), unweighted,
    in the scores' dtype."""
    gains = _normalised_gains(rel, mask)
    v, g, h, _ = launch(_approx_ndcg_lists, scores, gains, (1.0 / float(temperature),), None, want_grad, want_diag,
                        work=scores.size * scores.shape[-1])
    return v, (g if want_grad else None), (h if want_diag else None)


def approx_ndcg_blocks(scores: np.ndarray, rel: np.ndarray, mask: np.ndarray, temperature: float) -> np.ndarray:
    """Hessian blocks (n, L, L) of the unweighted losses, in the scores' dtype: symmetric,
    0 in the rows and columns of padding."""
    n, width = scores.shape
    gains = _normalised_gains(rel, mask)
    out = np.empty((n, width, width), scores.dtype)
    tinv = 1.0 / float(temperature)
    parts = split_plan(n * width * width, n)[1]
    run_in_parts(n, parts, lambda _, lo, hi: _approx_ndcg_blocks(scores[lo:hi], gains[lo:hi], tinv, out[lo:hi]))
    return out
