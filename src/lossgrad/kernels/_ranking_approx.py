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
with no NaN however large |u| (exp's argument is clamped).  The gains are
g_k = (2^{rel_k} - 1) / Z (all 0 on a list with Z = 0: value, gradient and curvature 0),
Z the list's ideal DCG.  The kernels take the grades with NaN at padding (as RankingLoss's
one-pass check, :mod:`._ranking_inputs`, writes them) and Z per list in launch's per-row
slot (a row kernel's sample weights, sliced by list as the scores are), and form g per
list (:func:`_list_gains`: one vectorised exp per item).  Z (:func:`ideal_dcg`) needs the
gains in decreasing order: one Numba pass writes them into a pooled buffer, NumPy sorts
it in place (vectorised) and a row sum meets the discounts.  Before, the normalised
gains were an (n, L) array of their own, from Numba passes with libm's ``2.0 ** rel``
into fresh memory, NumPy's sort of a copy and a scaling pass: 1.7 ms at 2000 x 120 and
3.9 ms at 20000 x 24 float64 (one thread), against 0.7 and 1.7 ms for Z now (the sort
1.1 ms of it at 20000 x 24).  Z formed in the kernel instead, per list, took longer:
a histogram of integer grades 3.1 ms, counting the items ahead of each 2.6-5 ms at
20000 x 24 (short loops per list; Numba's sort was 12 ms).

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
grade, and a NaN gain in the kernel's scratch, so padded scores are never read.  Lists run in blocks
through :func:`._row_margin.launch`.  Inputs arrive validated (RankingLoss checks
them), so the kernel counts nothing.  The pair terms (sigmoids, S, C: :func:`_pair`),
the first loop and the per-item a, b are helpers inlined into both kernels.

Lists in lanes (:func:`_lane_groups`, lists of up to 128 items): the loops over j above
run L - 1 - k times, 12 on average at L = 24, mostly in the vector loop's scalar
remainder (AVX-512: 8 float64, 16 a step), so that a pair cost 9 ns at 20000 x 24 and
20 ns at 40000 x 12 against 3.3 ns at 2000 x 120.  Instead a block's lists go in groups
of 64, transposed into [item, lane] scratch, and both loops run over the pairs (k, j)
with an innermost loop over the 64 lists: a constant trip count, 8 vectors and no
remainder, the same one exponential per pair.  Padding is a NaN score in the scratch (a
NaN difference: pair factor 0), an item that is padding in every list of the group is
skipped, and a, b come from ``fm.log_normal`` in the lanes.  The first loop keeps S_kj
and C_kj per pair and list (L(L - 1)/2 x 64 x 16 bytes: 0.28 MB at L = 24, 8.3 MB at
128, hence the bound), so the second loop computes no exponential and no division.
Lists left after the full groups: a partial group when at least 32 (the empty lanes
cost less than the loop per list), else the loop per list; so a block of under 32
lists, and lists of over 128 items, take the loop per list only.  Measured on a 2-core
AMD EPYC VM (busy: other jobs on the cores), best of 11, one thread, the kernel alone
(value, gradient and diagonal, float64), before -> after in ms (ns per pair of real
items): 2000 x 120 45.5 -> 32.3 (3.4 -> 2.4), 20000 x 24 39.9 -> 11.8 (9.5 -> 2.8),
40000 x 12 28.8 -> 4.7 (20 -> 3.3), 8000 x 48 44.2 -> 17.6 (5.6 -> 2.2); the value alone
at 2000 x 120 20.7 -> 20.5 (there the pair terms are all stored into one row: a branch
around the stores made the loop 20x slower).  ``value_grad`` in one thread, gains
included: 47.8 -> 34.9, 48.5 -> 17.6, 37.4 -> 8.4 and 50.8 -> 20.8 ms.  Groups of 32
lists were 3-8% slower than 64, of 16 1.5-2x and of 8 4-5x slower (the per-pair
overhead: pointers, alias checks); the pair cache saved 15-35% against a second
exponential; the loop per list was 15% faster at 200 items (a 20 MB cache), 20% slower
at 160.

The Hessian blocks and their absolute row sums: :mod:`._ranking_approx_blocks`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import _fastmath as fm
from . import _output_pool
from ._ranking import mark_padding
from ._row_margin import launch

__all__ = ["approx_ndcg_lists", "ideal_dcg", "normalised_gains"]

_LN2 = math.log(2.0)


_LANES = 64  # lists per group of the lane kernel: a constant trip count, 8 AVX-512 vectors of float64
_LANES_MAX_WIDTH = 128  # wider lists: the loop per list (the lanes' pair cache would outgrow the caches)

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
def _gain(r):
    """2^r - 1 of a grade r (float64, vectorises; NaN for a NaN grade)."""
    return fm.exp(np.float64(r) * _LN2) - 1.0


@njit(inline="always")
def _list_gains(r, z, gn):
    """gn = (2^r - 1) / z at the real items of a list (all 0 where z = 0), NaN at padding
    (r NaN there: the grades as RankingLoss's check marks them); z its ideal DCG
    (:func:`ideal_dcg`, from the same gains)."""
    zinv = 1.0 / z if z > 0.0 else 0.0
    for k in range(r.size):
        x = r[k]
        gn[k] = _gain(x) * zinv if x == x else np.nan


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


@njit(inline="always")
def _n_lane_groups(n):
    """The groups of _LANES lists of a block of n: the full ones, and a partial one of at
    least half a group (a tail under half a group: the loop per list)."""
    return n // _LANES + (1 if n % _LANES >= _LANES // 2 else 0)


@njit(inline="always")
def _lanes_load(s, marked, z, first, m, gain, gains, s_lanes, some_real):
    """The gains of lists first..first + m - 1, transposed with their scores into the lanes
    ([item, lane], NaN at padding and in the lanes past m); some_real[k]: item k is real in
    at least one lane.  ``gain``: one list's scratch."""
    some_real[:] = False
    for lane in range(_LANES):
        if lane < m:
            _list_gains(marked[first + lane], z[first + lane], gain)
        for k in range(s.shape[1]):
            real = lane < m and not math.isnan(gain[k])
            gains[k, lane] = gain[k] if real else np.nan
            s_lanes[k, lane] = np.float64(s[first + lane, k]) if real else np.nan
            some_real[k] |= real


@njit(inline="always")
def _lanes_first(s_lanes, some_real, tinv, pi, s_sum, s_pair, c_pair, step):
    """First loop, over the pairs k < j of every lane at once: pi, s_sum as :func:`_smooth_ranks`,
    and S_kj, C_kj into the pair cache (rows p * step: all in row 0 where step = 0)."""
    width = s_lanes.shape[0]
    pi[:] = 1.0
    s_sum[:] = 0.0
    p = 0  # the pair (k, j) in the pair cache
    for k in range(width - 1):
        if not some_real[k]:
            p += width - 1 - k
            continue
        s_k, pi_k, ssum_k = s_lanes[k], pi[k], s_sum[k]
        for j in range(k + 1, width):
            if not some_real[j]:  # (written as ``if some_real[j]: ...`` the loop ran 1.6x slower)
                p += 1
                continue
            s_j, pi_j, ssum_j, sp, cp = s_lanes[j], pi[j], s_sum[j], s_pair[p * step], c_pair[p * step]
            for lane in range(_LANES):
                real = not math.isnan(s_j[lane] - s_k[lane])  # NaN: k or j is padding in this lane
                sig_kj, sig_jk, s_kj, c_kj = _pair(s_k[lane], s_j[lane], real, tinv)
                pi_k[lane] += sig_kj
                pi_j[lane] += sig_jk
                ssum_k[lane] += s_kj
                ssum_j[lane] += s_kj
                sp[lane] = s_kj
                cp[lane] = c_kj
            p += 1


@njit(inline="always")
def _lanes_rank_derivatives(gains, pi, a, b, total):
    """a_k, b_k as :func:`_rank_derivatives`, in the lanes (log_normal: 1 + pi >= 2), and each
    lane's sum_k g_k / l_k into ``total``."""
    total[:] = 0.0
    for k in range(gains.shape[0]):
        gain_k, pi_k, a_k, b_k = gains[k], pi[k], a[k], b[k]
        for lane in range(_LANES):
            g0 = 0.0 if math.isnan(gain_k[lane]) else gain_k[lane]
            p1 = 1.0 + pi_k[lane]
            lg = fm.log_normal(p1)
            total[lane] += g0 / lg
            ak = -g0 * _LN2 / (p1 * lg * lg)
            a_k[lane] = ak
            b_k[lane] = -ak * (lg + 2.0) / (p1 * lg)


@njit(**_JIT)
def _lane_groups(s, marked, z, tinv, v_out, g_out, h_out, want_g, want_h):
    """The first lists of the block in groups of _LANES, the lists of a group in the lanes of
    the loops over its pairs; returns how many lists it did (the rest: the kernel's loop per list)."""
    n, width = s.shape
    n_groups = _n_lane_groups(n)
    gain = np.empty(width)  # one list's gains
    s_lanes, gains = np.empty((width, _LANES)), np.empty((width, _LANES))  # [item, lane], NaN at padding
    pi, s_sum, a, b = (np.empty((width, _LANES)), np.empty((width, _LANES)), np.empty((width, _LANES)),
                       np.empty((width, _LANES)))
    g_acc, h_acc, total = np.empty((width, _LANES)), np.empty((width, _LANES)), np.empty(_LANES)
    # S_kj and C_kj of the pairs k < j, [pair, lane], for the second loop; for the value alone
    # all in row 0 (a branch around the stores made the first loop 20x slower at 120 items)
    step = 1 if want_g or want_h else 0
    n_cached = max(step * width * (width - 1) // 2, 1)
    s_pair, c_pair = np.empty((n_cached, _LANES)), np.empty((n_cached, _LANES))
    some_real = np.empty(width, np.bool_)  # item k real in at least one list of the group
    for grp in range(n_groups):
        first = grp * _LANES
        m = min(_LANES, n - first)
        _lanes_load(s, marked, z, first, m, gain, gains, s_lanes, some_real)
        _lanes_first(s_lanes, some_real, tinv, pi, s_sum, s_pair, c_pair, step)
        _lanes_rank_derivatives(gains, pi, a, b, total)
        for lane in range(m):
            v_out[first + lane] = -total[lane] * _LN2
        if not (want_g or want_h):
            continue
        g_acc[:] = 0.0
        h_acc[:] = 0.0
        p = 0
        for k in range(width - 1):  # second loop, S_kj and C_kj from the cache (0 off the pairs)
            if not some_real[k]:
                p += width - 1 - k
                continue
            a_k, b_k, g_k, h_k = a[k], b[k], g_acc[k], h_acc[k]
            for j in range(k + 1, width):
                if not some_real[j]:
                    p += 1
                    continue
                a_j, b_j, g_j, h_j, sp, cp = a[j], b[j], g_acc[j], h_acc[j], s_pair[p], c_pair[p]
                for lane in range(_LANES):
                    s_kj, c_kj = sp[lane], cp[lane]
                    da = a_k[lane] - a_j[lane]
                    g_k[lane] += s_kj * da
                    g_j[lane] -= s_kj * da
                    h_k[lane] += b_j[lane] * s_kj * s_kj + c_kj * da
                    h_j[lane] += b_k[lane] * s_kj * s_kj + c_kj * da
                p += 1
        for lane in range(m):
            for k in range(width):
                if want_g:
                    g_out[first + lane, k] = g_acc[k, lane]
                if want_h:
                    h_out[first + lane, k] = -(h_acc[k, lane] + b[k, lane] * s_sum[k, lane] * s_sum[k, lane])
    return min(n, n_groups * _LANES)


@njit(**_JIT)
def _approx_ndcg_lists(s, marked, tinv, z, has_z, v_out, g_out, h_out, want_g, want_h, counts):
    """marked: the grades, NaN at padding; z: the lists' ideal DCG (launch's per-row slot)."""
    n, width = s.shape
    done = _lane_groups(s, marked, z, tinv, v_out, g_out, h_out, want_g, want_h) if width <= _LANES_MAX_WIDTH else 0
    pi, s_sum, a, b = np.empty(width), np.empty(width), np.empty(width), np.empty(width)
    g_acc = np.empty(width)
    h_acc = np.empty(width)
    gn = np.empty(width)
    for li in range(done, n):
        row = s[li]
        _list_gains(marked[li], z[li], gn)
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
def _gains_rows(marked, out):
    """out = 2^rel - 1 at the real items, 0 at padding (NaN grades there)."""
    n, width = marked.shape
    for li in range(n):
        r, o = marked[li], out[li]
        for k in range(width):
            o[k] = _gain(r[k]) if r[k] == r[k] else 0.0


def ideal_dcg(marked: np.ndarray) -> np.ndarray:
    """Z per list (float64): the ideal DCG, sum_r G_(r) / log2(r + 1) over the gains
    G = 2^rel - 1 of its real items in decreasing order, from the grades with NaN at
    padding (the kernels form the gains again per list, G / Z).  See the module docstring."""
    gains = _output_pool.empty(marked.shape, np.dtype(np.float64))
    _gains_rows(marked, gains)
    gains.sort(axis=-1)
    # a row sum, not ``gains @ discounts``: OpenBLAS's threads spin after a product, and on two
    # cores they halved the speed of the list kernel that runs next (20 -> 40 ms at 20000 x 24);
    # the gains sorted in increasing order meet the discounts reversed
    return np.einsum("ij,j->i", gains, _LN2 / np.log(np.arange(marked.shape[1] + 1.0, 1.0, -1.0)))


@njit(**_JIT)
def _gains_of_lists(marked, z, out):
    for li in range(marked.shape[0]):
        _list_gains(marked[li], z[li], out[li])


def normalised_gains(marked: np.ndarray) -> np.ndarray:
    """(2^rel - 1) / Z per real item (0 on lists with Z = 0), NaN at padding, float64, from
    the grades with NaN at padding: what the kernels form per list (:func:`_list_gains`)."""
    out = np.empty(marked.shape)
    _gains_of_lists(marked, ideal_dcg(marked), out)
    return out


def approx_ndcg_lists(scores: np.ndarray, rel: np.ndarray, mask: np.ndarray, temperature: float,
                      want_grad: bool, want_diag: bool,
                      marked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(value (n,), gradient (n, L) or None, Hessian diagonal (n, L) or None), unweighted,
    in the scores' dtype.  ``marked``: the relevance with NaN at padding, where the caller
    has it (RankingLoss's one-pass check writes it); else formed here."""
    if marked is None:
        marked = mark_padding(rel, mask)
    # the ideal DCG rides in launch's per-row slot (a row kernel's sample weights), sliced by list
    v, g, h, _ = launch(_approx_ndcg_lists, scores, marked, (1.0 / float(temperature),), ideal_dcg(marked),
                        want_grad, want_diag, work=scores.size * scores.shape[-1])
    return v, (g if want_grad else None), (h if want_diag else None)
