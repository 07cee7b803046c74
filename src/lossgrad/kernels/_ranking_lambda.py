r"""List kernel of LambdaLoss (:class:`lossgrad.LambdaLoss`): value, gradient and Hessian diagonal per list.

The reference forms (n_lists, L, L) arrays of pair masks, rank gaps, weights w_ij, score
differences, exponentials and products.  Here each list is one loop over its ordered
pairs (i, j) of real items, the weight formed on the fly from per-item pieces and one
exponential per pair, in float64 (float32 scores are promoted, the outputs cast back).

Per list, in the kernel (nothing per item is formed in NumPy: RankingLoss's one-pass
input check, :mod:`._ranking_inputs`, hands it the relevance with NaN at padding): the real items compacted in index
order; their ranks pi_i, by score, descending, ties by index, as the reference's stable
sort (:meth:`LambdaLoss._ranks`), and their places in an ideal order, by grade
(:func:`_positions`); the scaled gains a_i = G_i / maxDCG with the ideal DCG@k
(:func:`_scaled_gains`, as :meth:`LambdaLoss._gains`); the discounts d_i = 1/D(pi_i),
0 beyond rank k, read from one table per call (:func:`discount_table`).

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

Ranks.  Up to 300 real items, by counting: the rank of item i is 1 + the number of items
before it, i.e. with s_j > s_i, or s_j = s_i and j < i (the stable sort's tie rule,
exactly), and its ideal place the same count over grades; both in one branch-free loop
over j, O(L^2) comparisons that vectorise.  Beyond, two stable merge sorts, O(L log L)
(one thread, per list of random scores: counting 3.4 us at 128 items, 12 at 256, 46 at
512, the sorts 6.5, 14 and 30).  With no rank-dependent weight ("ranknet", k None) the
index order stands in, as in the reference.

Rank order.  Each list is then copied in rank order (i, j below are 0-based ranks,
pi = i + 1; O(L), the gradient and diagonal scattered back at the end), which gives:

* delta without a logarithm: the gap |pi_i - pi_j| = |i - j| is an integer in 1..L-1, so
  delta is read from one table of the signed gaps, table[L - 1 + t] = delta(|t|),
  computed once per call (:func:`gap_table`); row i reads table[L - 1 - i + j], contiguous
  in j.  An indexed load delta[|pi_i - pi_j|] in item order is a gather (and Numba wraps
  a possibly negative index), which kept the loop scalar: 500 ms against 85 ms, one
  thread, ndcg2 gradient + diagonal at 2000 lists of 120 items (an earlier version).
* the truncation as a loop bound: min(pi_i, pi_j) <= k is every j for i < k and
  j < k otherwise, so with k = 10 of 100 items a fifth of the pairs (about 2 k L) is visited;
* the padding out of the loops: the real items come first, padded ones are skipped
  (their scores are never used).

The loop over j has no branch: the pair indicator is a 0/1 choice, x = 0 off the pairs,
exp and log1p the branch-free ones of :mod:`._fastmath` and every load contiguous, so
LLVM vectorises it.  It runs to the bound rounded up to a multiple of 8 lanes, the lanes
past it masked out of the pair indicator (the buffers and tables are padded to match):
LLVM's vector body takes whole blocks and leaves no scalar remainder, which for short
lists was most of the work (one thread, ndcg2 gradient at 20000 x 24: 72 -> 41 ms; at
2000 x 120: 106 -> 92 ms).  (On the AVX-512 machine of these figures LLVM also
if-converts a body under ``if not pair: continue`` into masked SIMD code: both ran in
75-90 ms in an earlier version, equal within the noise of a shared VM; the branch-free
form does not rely on masked stores.)  The sums are reassociated
(``fastmath="reassoc"``): a few ulps from the reference.  Lists run in blocks through
:func:`._row_margin.launch`.  Inputs arrive validated (LambdaLoss checks them); the
kernel counts only lists with a non-finite real score, which do not rank (an internal
error, raised as ValueError).

Figures (2-core AMD EPYC VM, idle, median of 21 calls, ms, value_grad, lists with 3
padded items, grades 0-4), the ranks, gains and discounts formed in NumPy before (two
argsorts, a sort, casts and an (n, 4, L) stack: about 30 ms of 65 at 20000 x 24) against
in the kernel now:

                        2000 x 120                      20000 x 24
                        float64         float32         float64         float32
    ndcg2 (default)     73.9 -> 47.6    71.6 -> 45.9    67.2 -> 21.8    67.1 -> 21.7
    lambdarank, k = 10  29.6 -> 14.5    29.5 -> 14.3    59.7 -> 19.3    62.8 -> 19.1

grad_hess_diag alike (ndcg2 2000 x 120: 65.6 -> 46.4, 20000 x 24: 57.6 -> 22.1).  One
thread, ndcg2 gradient + diagonal: 92 ms at 2000 x 120, of which 7.3 ranking the lists;
41 ms at 20000 x 24, of which 5.9.  Long lists with truncation gain the most from the
sort beyond 300 items: lambdarank k = 10 at 50 x 4000, 42 -> 20 ms.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import _fastmath as fm
from ._ranking import mark_padding
from ._row_margin import launch

__all__ = ["SCHEME_COEFFICIENTS", "discount_table", "gap_table", "lambdaloss_lists"]

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


_LANES = 8  # the counting and pair loops run to a multiple of this (the SIMD width of float64 on AVX-512)
_SORT_FROM = 300  # longer lists are ranked by a sort, shorter ones by counting (see _positions)


@njit(cache=True)
def _padded(n):
    """n rounded up to a multiple of _LANES: a loop to there has no scalar remainder."""
    return (n + _LANES - 1) // _LANES * _LANES


@njit(cache=True, nogil=True, error_model="numpy")
def _real_items(s, marked, li, idx, key, grade):
    """List li's real items (relevance not NaN) in index order: idx their index in the list,
    key their score (float64), grade their relevance; key and grade -inf from n_real to the
    next multiple of _LANES.  Returns n_real, or -1 if a real score is not finite (the
    checks reject it before: an internal error).  (Rows are indexed, not sliced: a view costs
    Numba's reference counting, about 8 ns, where compacting a list of 24 items takes 20.)"""
    n_real = 0
    finite = True
    for j in range(s.shape[1]):  # branch-free compaction: every item written, the real ones kept
        r = marked[li, j]
        x = np.float64(s[li, j])
        idx[n_real] = j
        key[n_real] = x
        grade[n_real] = r
        real = not np.isnan(r)
        n_real += 1 if real else 0
        finite &= (x - x == 0.0) | (not real)
    for j in range(n_real, _padded(n_real)):
        key[j] = grade[j] = -np.inf
    return n_real if finite else -1


@njit(cache=True, nogil=True, error_model="numpy")
def _positions(key, grade, n_real, by_score, pos, ideal):
    """pos[i] = the number of real items ranked before item i by score, i.e. with a higher
    score or the same score and a lower index (its 0-based rank in the reference's stable
    sort); ideal[i] the same by grade (its place in an ideal order: any tie rule gives the
    same ideal DCG).  Without ``by_score`` (RankNet's weights, which need neither) the
    index order, pos[i] = i, and no ideal.

    Up to _SORT_FROM items, by counting: O(n_real^2) comparisons, branch-free, to a multiple
    of _LANES (the -inf there is never before a real item), so the loop vectorises; beyond,
    two stable sorts (O(n_real log n_real), the counting's cost grows past theirs)."""
    if not by_score:
        for i in range(n_real):
            pos[i] = i
        return
    if n_real > _SORT_FROM:
        by = np.argsort(-key[:n_real], kind="mergesort")  # stable: equal scores in index order
        for q in range(n_real):
            pos[by[q]] = q
        by = np.argsort(-grade[:n_real], kind="mergesort")
        for q in range(n_real):
            ideal[by[q]] = q
        return
    stop = _padded(n_real)
    for i in range(n_real):
        si, gi = key[i], grade[i]
        above = ahead = 0
        for j in range(stop):
            before = j < i
            above += 1 if (key[j] > si) | (before & (key[j] >= si)) else 0
            ahead += 1 if (grade[j] > gi) | (before & (grade[j] >= gi)) else 0
        pos[i] = above
        ideal[i] = ahead


@njit(cache=True, nogil=True, error_model="numpy")
def _scaled_gains(grade, ideal, n_real, disc, out):
    """out[i] = a_i = G_i / maxDCG (0 where maxDCG = 0), G_i = 2^(rel_i - top) - 2^(-top) with
    top the largest grade (finite for any grade: the factor 2^top cancels in a), and
    maxDCG = sum_i G_i disc[ideal_i], disc = 1/D(position), 0 beyond k: the ideal DCG@k."""
    top = 0.0  # grades are >= 0 (as the reference's max over the row, whose padding is 0)
    for i in range(n_real):
        top = max(top, grade[i])
    floor = fm.exp(-top * _LN2)
    for i in range(n_real):  # vectorises
        out[i] = fm.exp((grade[i] - top) * _LN2) - floor
    maxdcg = 0.0
    for i in range(n_real):
        maxdcg += out[i] * disc[ideal[i]]
    zinv = 1.0 / maxdcg if maxdcg != 0.0 else 0.0
    for i in range(n_real):
        out[i] *= zinv


@njit(cache=True, nogil=True, error_model="numpy")
def _rank_order(n_real, pos, idx, key, grade, a, order, score, rel, gain):
    """The real items in rank order, q = pos = pi - 1 (a permutation of 0..n_real - 1): order[q]
    the index in the list of the item of rank q + 1, score, rel and gain (a = G / maxDCG) its
    pieces."""
    for i in range(n_real):
        q = pos[i]
        order[q] = idx[i]
        score[q] = key[i]
        rel[q] = grade[i]
        gain[q] = a[i]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _lambda_lists(s, marked, disc, gaps, by_score, with_gains, flat_gain, flat_one, c_rho, c_delta, all_pairs,
                  top_k, sigma, sw, has_sw, v_out, g_out, h_out, want_g, want_h, counts):
    """marked[l]: the relevance, NaN at padding; disc[r] = 1/D(r + 1), 0 beyond k;
    gaps[L - 1 + t] = delta[|t|].  A list with a non-finite real score is counted in counts[0]."""
    n, width = s.shape
    padded = _padded(width)
    idx = np.empty(width, np.int64)
    pos = np.empty(width, np.int64)
    ideal = np.empty(width, np.int64)
    key = np.empty(padded)
    grade = np.empty(padded)
    a = np.zeros(width)
    order = np.empty(width, np.int64)
    score = np.zeros(padded)
    rel = np.zeros(padded)
    gain = np.zeros(padded)
    gacc = np.empty(padded)
    hacc = np.empty(padded)
    for li in range(n):
        n_real = _real_items(s, marked, li, idx, key, grade)
        if n_real < 0:
            counts[0] += 1
            continue
        _positions(key, grade, n_real, by_score, pos, ideal)
        if with_gains:
            _scaled_gains(grade, ideal, n_real, disc, a)
        _rank_order(n_real, pos, idx, key, grade, a, order, score, rel, gain)
        gacc[:] = 0.0
        hacc[:] = 0.0
        total = 0.0
        for i in range(n_real):  # i, j: 0-based ranks, pi = i + 1
            ri, si, a_i, d_i = rel[i], score[i], gain[i], disc[i]
            f_i = flat_gain * a_i * d_i + flat_one
            delta = gaps[width - 1 - i:width - 1 - i + padded]  # delta[j] = 1/D(|i - j|) - 1/D(|i - j| + 1)
            lim = n_real if i < top_k else min(top_k, n_real)  # min(pi_i, pi_j) <= k
            gi = hi = 0.0
            for j in range(_padded(lim)):  # branch-free over j: the loop vectorises
                pair = ((ri > rel[j]) | (all_pairs & (j != i))) & (j < lim)
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
            _scatter(g_out, li, gacc, order, n_real, sigma / _LN2)
        if want_h:
            _scatter(h_out, li, hacc, order, n_real, sigma * sigma / _LN2)


@njit(cache=True, nogil=True, error_model="numpy")
def _scatter(out, li, acc, order, n_real, scale):
    """out[li, order[q]] = scale acc[q] for the real items, 0 at padding."""
    for j in range(out.shape[1]):
        out[li, j] = 0.0
    for q in range(n_real):
        out[li, order[q]] = acc[q] * scale


def discount_table(width: int, k: int) -> np.ndarray:
    """disc[r] = 1/D(r + 1) = ln 2 / ln(2 + r) for the ranks r + 1 = 1..L, 0 beyond rank k (and
    to the padded length): the discounts of the ranks and of the ideal positions, as the
    reference computes them."""
    disc = np.zeros(_padded(width))
    disc[:k] = _LN2 / np.log1p(np.arange(1.0, k + 1.0))
    return disc


def gap_table(width: int) -> np.ndarray:
    """The symmetric table of delta over the signed rank gaps t = j - i in -(L-1)..L-1:
    table[L - 1 + t] = delta(|t|) = 1/D(|t|) - 1/D(|t| + 1) = ln 2 / ln(1 + |t|) - ln 2 / ln(2 + |t|)
    (as the reference computes it), 0 at t = 0 (never a pair).  Row i reads it from
    L - 1 - i on: contiguous in j, unlike an indexed load at |i - j|, which stops the vectoriser.
    Zeros follow, to the length L - 1 + (L rounded up to a multiple of _LANES) row 0 reads."""
    gap = np.abs(np.arange(1 - width, width, dtype=np.float64))
    out = np.zeros(width - 1 + _padded(width))
    on = gap > 0
    out[:2 * width - 1][on] = _LN2 / np.log1p(gap[on]) - _LN2 / np.log1p(gap[on] + 1.0)
    return out


def lambdaloss_lists(scores: np.ndarray, rel: np.ndarray, mask: np.ndarray, scheme: str, mu: float, k: int | None,
                     sigma: float, want_grad: bool, want_diag: bool,
                     marked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(value (n,), gradient (n, L) or None, Hessian diagonal (n, L) or None), unweighted,
    in the scores' dtype.  ``scores``, ``rel`` (validated: finite, >= 0 on the real items)
    and ``mask`` (n, L); ``scheme`` one of :data:`SCHEME_COEFFICIENTS`, ``k`` None or the
    truncation rank; ``marked`` the relevance with NaN at padding where the caller has it
    (:func:`._ranking.ranknet_lists`).  The ranks, gains and discounts are formed per list
    in the kernel."""
    if scheme not in SCHEME_COEFFICIENTS:
        raise ValueError(f"lambdaloss_lists: unknown scheme {scheme!r}, expected one of {tuple(SCHEME_COEFFICIENTS)}")
    flat_gain, flat_one, c_rho, c_delta, all_pairs = SCHEME_COEFFICIENTS[scheme]
    width = scores.shape[-1]
    top_k = width if k is None else min(int(k), width)
    if marked is None:
        marked = mark_padding(rel, mask)  # in the relevance's dtype
    by_score = not (scheme == "ranknet" and k is None)  # else no weight depends on the ranks
    args = (discount_table(width, top_k), gap_table(width), by_score, scheme != "ranknet", flat_gain, flat_one,
            c_rho, float(mu) if c_delta is None else c_delta, all_pairs, top_k, float(sigma))
    v, g, h, counts = launch(_lambda_lists, scores, marked, args, None, want_grad, want_diag, work=scores.size * width)
    if counts[0]:
        raise ValueError(f"lambdaloss_lists: {counts[0]} list(s) with non-finite real scores: they do not rank")
    return v, (g if want_grad else None), (h if want_diag else None)
