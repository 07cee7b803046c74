r"""List kernel of LambdaLoss (:class:`lossgrad.LambdaLoss`): value, gradient and Hessian diagonal per list.

The reference forms (n_lists, L, L) arrays of pair masks, rank gaps, weights w_ij, score
differences, exponentials and products.  Here each list is one loop over its ordered
pairs (i, j) of real items, the weight formed on the fly from per-item pieces and one
exponential per pair, in float64 (float32 scores are promoted, the outputs cast back).

Per item, from a sort (O(n L log L), computed by the caller with LambdaLoss's own
helpers, so that tied scores rank exactly as in the reference): the rank pi_i, the
scaled gain a_i = G_i / maxDCG and the discount d_i = 1/D(pi_i) (0 beyond rank k).
The weight of a pair, one formula for every scheme, with delta(g) = 1/D(g) - 1/D(g + 1):

    w_ij = [(i, j) in P] [min(pi_i, pi_j) <= k] (f_i + |a_i - a_j| (c_rho |d_i - d_j| + c_delta delta(|pi_i - pi_j|)))

    scheme       f_i          c_rho  c_delta   P
    ndcg2        0            0      1         rel_i > rel_j
    ndcg2++      0            1      mu        rel_i > rel_j
    lambdarank   0            1      0         rel_i > rel_j
    ndcg1        a_i d_i      0      0         i != j
    ranknet      1            0      0         rel_i > rel_j

(no truncation: k = L).  Then, as RankNet's kernel (:mod:`._ranking`), with
x = sigma (s_i - s_j) (0 where w = 0, so that no overflow meets a zero weight, as the
reference's ``where(w > 0, ...)``) and e = exp(-|x|):

    value += w (max(-x, 0) + log1p(e)) / ln 2                     (w softplus(-x) / ln 2)
    g_i -= lam, g_j += lam,   lam = w sigma sigmoid(-x) / ln 2 = w sigma (e if x >= 0 else 1) / ((1 + e) ln 2)
    h_i += c,   h_j += c,     c = w sigma^2 sigmoid(x) sigmoid(-x) / ln 2 = w sigma^2 e / ((1 + e)^2 ln 2)

(the factors 1/ln 2, sigma/ln 2 and sigma^2/ln 2 applied once per list).  The Hessian
diagonal is the degree of the pair Laplacian (see :mod:`lossgrad.losses.ranking_lambda`).

Rank order.  Each list is first copied in rank order (i, j below are 0-based ranks,
pi = i + 1; O(L), the gradient and diagonal scattered back at the end), which gives:

* delta without a logarithm: the gap |pi_i - pi_j| = |i - j| is an integer in 1..L-1, so
  delta is read from one table of the signed gaps, table[L - 1 + t] = delta(|t|),
  computed once per call (:func:`gap_table`); row i reads table[L - 1 - i + j], contiguous
  in j.  An indexed load delta[|pi_i - pi_j|] in item order is a gather (and Numba wraps
  a possibly negative index), which kept the loop scalar: 500 ms against 85 ms, one
  thread, ndcg2 gradient + diagonal at 2000 lists of 120 items.
* the truncation as a loop bound: min(pi_i, pi_j) <= k is every j for i < k and
  j < k otherwise, so with k = 10 of 100 items a fifth of the pairs (about 2 k L) is visited;
* the padding out of the loops: the real items come first, padded ones (NaN-marked in
  the kernel's copy, their scores never read) are skipped.

The loop over j has no branch: the pair indicator is a 0/1 choice, x = 0 off the pairs,
exp and log1p the branch-free ones of :mod:`._fastmath` and every load contiguous, so
LLVM vectorises it.  (On the AVX-512 machine of these figures LLVM also if-converts a
body under ``if not pair: continue`` into masked SIMD code: both ran in 75-90 ms,
equal within the noise of a shared VM; the branch-free form does not rely on masked
stores.)  The sums are reassociated (``fastmath="reassoc"``): a few ulps from the
reference.  Lists run in blocks through :func:`._row_margin.launch`.  Inputs arrive
validated (LambdaLoss checks them); the kernel counts only lists whose ranks are not a
permutation of 1..n_real (an internal error, raised as ValueError).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import _fastmath as fm
from ._row_margin import launch

__all__ = ["SCHEME_COEFFICIENTS", "gap_table", "lambdaloss_lists"]

_LN2 = math.log(2.0)

#: scheme -> (flat_gain, flat_one, c_rho, c_delta, all_pairs) of the table above: f_i = flat_gain a_i d_i
#: + flat_one, c_delta None for mu, all_pairs for P = {i != j} (else {rel_i > rel_j})
SCHEME_COEFFICIENTS = {
    "ndcg2": (0.0, 0.0, 0.0, 1.0, False),
    "ndcg2++": (0.0, 0.0, 1.0, None, False),
    "lambdarank": (0.0, 0.0, 1.0, 0.0, False),
    "ndcg1": (1.0, 0.0, 0.0, 0.0, True),
    "ranknet": (0.0, 1.0, 0.0, 0.0, False),
}


@njit(cache=True, nogil=True, error_model="numpy")
def _rank_order(row, item, order, score, rel, gain, disc):
    """The list's real items in rank order: order[q] = the index of the item of rank q + 1,
    score, rel, gain, disc its pieces (padding, NaN-marked, skipped: its score is not read).
    Returns the number of real items, or -1 if their ranks are not 1..n_real, each once."""
    n_real = 0
    for idx in range(row.size):
        n_real += 0 if np.isnan(item[0, idx]) else 1
    order[:n_real] = -1
    for idx in range(row.size):
        r = item[0, idx]
        if np.isnan(r):
            continue
        q = int(item[1, idx]) - 1
        if q < 0 or q >= n_real or order[q] >= 0 or item[1, idx] != q + 1:
            return -1
        order[q] = idx
        score[q] = row[idx]
        rel[q] = r
        gain[q] = item[2, idx]
        disc[q] = item[3, idx]
    return n_real


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _lambda_lists(s, items, gaps, flat_gain, flat_one, c_rho, c_delta, all_pairs, top_k, sigma,
                  sw, has_sw, v_out, g_out, h_out, want_g, want_h, counts):
    """items[l] = (relevance, NaN at padding; rank pi; a = G / maxDCG; d = 1/D(pi)) per item;
    gaps[L - 1 + t] = delta[|t|].  A list whose ranks are invalid is counted in counts[0]."""
    n, width = s.shape
    order = np.empty(width, np.int64)
    score = np.empty(width)
    rel = np.empty(width)
    gain = np.empty(width)
    disc = np.empty(width)
    gacc = np.empty(width)
    hacc = np.empty(width)
    for li in range(n):
        n_real = _rank_order(s[li], items[li], order, score, rel, gain, disc)
        if n_real < 0:
            counts[0] += 1
            continue
        gacc[:] = 0.0
        hacc[:] = 0.0
        total = 0.0
        for i in range(n_real):  # i, j: 0-based ranks, pi = i + 1
            ri, si, a_i, d_i = rel[i], score[i], gain[i], disc[i]
            f_i = flat_gain * a_i * d_i + flat_one
            delta = gaps[width - 1 - i:2 * width - 1 - i]  # delta[j] = 1/D(|i - j|) - 1/D(|i - j| + 1)
            stop = n_real if i < top_k else min(top_k, n_real)  # min(pi_i, pi_j) <= k
            gi = hi = 0.0
            for j in range(stop):  # branch-free over j: the loop vectorises
                pair = (ri > rel[j]) | (all_pairs & (j != i))
                w = f_i + abs(a_i - gain[j]) * (c_rho * abs(d_i - disc[j]) + c_delta * delta[j]) if pair else 0.0
                x = sigma * (si - score[j]) if w > 0.0 else 0.0  # 0 where w = 0, even where s_i - s_j overflows
                e = fm.exp(-abs(x))
                d = 1.0 / (1.0 + e)
                total += w * (max(-x, 0.0) + fm.log1p01(e))
                lam = w * (e if x >= 0.0 else 1.0) * d
                c = w * e * d * d
                gi -= lam
                gacc[j] += lam
                hi += c
                hacc[j] += c
            gacc[i] += gi
            hacc[i] += hi
        v_out[li] = total / _LN2
        if want_g:
            _scatter(g_out[li], gacc, order, n_real, sigma / _LN2)
        if want_h:
            _scatter(h_out[li], hacc, order, n_real, sigma * sigma / _LN2)


@njit(cache=True, nogil=True, error_model="numpy")
def _scatter(out, acc, order, n_real, scale):
    """out[order[q]] = scale acc[q] for the real items, 0 at padding."""
    out[:] = 0.0
    for q in range(n_real):
        out[order[q]] = acc[q] * scale


def gap_table(width: int) -> np.ndarray:
    """The symmetric table of delta over the signed rank gaps t = j - i in -(L-1)..L-1:
    table[L - 1 + t] = delta(|t|) = 1/D(|t|) - 1/D(|t| + 1) = ln 2 / ln(1 + |t|) - ln 2 / ln(2 + |t|)
    (as the reference computes it), 0 at t = 0 (never a pair).  Row i reads it from
    L - 1 - i on: contiguous in j, unlike an indexed load at |i - j|, which stops the vectoriser."""
    gap = np.abs(np.arange(1 - width, width, dtype=np.float64))
    out = np.zeros(2 * width - 1)
    on = gap > 0
    out[on] = _LN2 / np.log1p(gap[on]) - _LN2 / np.log1p(gap[on] + 1.0)
    return out


def lambdaloss_lists(scores: np.ndarray, rel: np.ndarray, mask: np.ndarray, ranks: np.ndarray, gains: np.ndarray,
                     discounts: np.ndarray, scheme: str, mu: float, k: int | None, sigma: float,
                     want_grad: bool, want_diag: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(value (n,), gradient (n, L) or None, Hessian diagonal (n, L) or None), unweighted,
    in the scores' dtype.  Per item (n, L): ``ranks`` pi (the real items of a list ranked
    1..n_real, each rank once; padded items' entries are not read), ``gains`` G / maxDCG
    and ``discounts`` 1/D(pi) (0 beyond k); ``scheme`` one of :data:`SCHEME_COEFFICIENTS`,
    ``k`` None or the truncation rank."""
    if scheme not in SCHEME_COEFFICIENTS:
        raise ValueError(f"lambdaloss_lists: unknown scheme {scheme!r}, expected one of {tuple(SCHEME_COEFFICIENTS)}")
    flat_gain, flat_one, c_rho, c_delta, all_pairs = SCHEME_COEFFICIENTS[scheme]
    width = scores.shape[-1]
    items = np.empty((scores.shape[0], 4, width))
    items[:, 0] = np.where(mask, rel, np.nan)
    items[:, 1] = ranks
    items[:, 2] = gains
    items[:, 3] = discounts
    args = (gap_table(width), flat_gain, flat_one, c_rho, float(mu) if c_delta is None else c_delta, all_pairs,
            width if k is None else min(int(k), width), float(sigma))
    v, g, h, counts = launch(_lambda_lists, scores, items, args, None, want_grad, want_diag, work=scores.size * width)
    if counts[0]:
        raise ValueError(f"lambdaloss_lists: {counts[0]} list(s) whose ranks are not 1..n_real on the real items")
    return v, (g if want_grad else None), (h if want_diag else None)
