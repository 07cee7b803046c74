"""ApproxNDCG's Hessian blocks and their absolute row sums (the upper bound a boosting
engine takes), per list; the smooth ranks, a and b as in :mod:`._ranking_approx`.

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

Bounds (:func:`approx_ndcg_grad_bound`): the gradient and the absolute row sums of each
block, sum_j |H_kj|, what a boosting engine's ``hessian="upper_bound"`` takes
(:meth:`lossgrad.losses._ranking_base.RankingLoss.grad_hess_bound`), without an
(n, L, L) output.  Per list the blocks kernel's block, then dL/ds_k = sum_j J_kj (a_k -
a_j) and the row sums of its absolute values.  Lists of up to 40 items go 64 at a time
into the lanes (:func:`_lane_bounds`): the first loop and a, b as :func:`_lane_groups`,
J whole in [k, c, lane] scratch from the pair cache, then for each entry (k, j) of the
upper triangle (J diag(b) J)_kj = sum_c J_kc b_c J_jc over the items c curved in some
lane, H_kj = (a_k - a_j) C_kj - (J diag(b) J)_kj (on the diagonal -(degree_k +
(J diag(b) J)_kk)), |H_kj| credited to rows k and j.  Measured, one thread, the kernel
alone, per list -> lanes (ms): 300 lists of up to 29 items (examples/engine_ranking.py's
queries) 1.37 -> 0.68, 640 x 16 1.53 -> 0.59, 640 x 24 2.8 -> 1.6, 640 x 32 4.6 -> 3.5,
320 x 40 3.3 -> 3.0, 320 x 44 4.2 -> 4.6, 128 x 64 3.6 -> 6.3: the per-list dot products
skip the items with b = 0 (padding, grade 0), the lanes only those with b = 0 in every
lane, and their sums live in memory, not registers, hence the bound of 40.  The XGBoost
objective of the example, grad and upper bound per round (300 lists of up to 29),
3.97 -> 1.02 ms in one thread; before, ``grad`` and ``hess`` (input checks, gains and
smooth ranks twice, the blocks into fresh memory, NumPy's abs and row sum).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import _output_pool
from ._parallel import run_in_parts, split_plan
from ._ranking import mark_padding
from ._ranking_approx import (
    _JIT,
    _LANES,
    _lanes_first,
    _lanes_load,
    _lanes_rank_derivatives,
    _list_gains,
    _n_lane_groups,
    _pair,
    _rank_derivatives,
    _smooth_ranks,
    ideal_dcg,
)

__all__ = ["approx_ndcg_blocks", "approx_ndcg_grad_bound"]

_LANE_BOUNDS_MAX_WIDTH = 40  # wider lists: approx_ndcg_grad_bound's loop per list (faster from about 44 items)


@njit(**_JIT)
def _lane_bounds(s, marked, z, tinv, g_out, bound_out):
    """:func:`_lane_groups` for the gradient and the absolute row sums of the Hessian blocks
    (:func:`approx_ndcg_grad_bound`); returns how many lists it did (the rest: per list)."""
    n, width = s.shape
    n_groups = _n_lane_groups(n)
    gain = np.empty(width)
    s_lanes, gains = np.empty((width, _LANES)), np.empty((width, _LANES))
    pi, s_sum, a, b = (np.empty((width, _LANES)), np.empty((width, _LANES)), np.empty((width, _LANES)),
                       np.empty((width, _LANES)))
    g_acc, degree, bound, total = (np.empty((width, _LANES)), np.empty((width, _LANES)), np.empty((width, _LANES)),
                                   np.empty(_LANES))
    n_cached = max(width * (width - 1) // 2, 1)
    s_pair, c_pair = np.empty((n_cached, _LANES)), np.empty((n_cached, _LANES))
    jac = np.empty((width, width, _LANES))  # J, whole ([k, c, lane]; rows and columns of some_real items)
    row_kb = np.empty((width, _LANES))  # J_kc b_c of the row k at hand
    dot = np.empty(_LANES)
    some_real = np.empty(width, np.bool_)
    curved = np.empty(width, np.int64)  # the items c with b_c > 0 in some lane
    for grp in range(n_groups):
        first = grp * _LANES
        m = min(_LANES, n - first)
        _lanes_load(s, marked, z, first, m, gain, gains, s_lanes, some_real)
        _lanes_first(s_lanes, some_real, tinv, pi, s_sum, s_pair, c_pair, 1)
        _lanes_rank_derivatives(gains, pi, a, b, total)
        g_acc[:] = 0.0
        degree[:] = 0.0
        p = 0
        for k in range(width - 1):  # J whole, the gradient and the degrees of Lap(M + M^T), from the cache
            if not some_real[k]:
                p += width - 1 - k
                continue
            a_k, g_k, deg_k = a[k], g_acc[k], degree[k]
            for j in range(k + 1, width):
                if not some_real[j]:
                    p += 1
                    continue
                a_j, g_j, deg_j, sp, cp, jac_kj, jac_jk = a[j], g_acc[j], degree[j], s_pair[p], c_pair[p], jac[k, j], \
                    jac[j, k]
                for lane in range(_LANES):
                    s_kj = sp[lane]
                    da = a_k[lane] - a_j[lane]
                    m_kj = da * cp[lane]  # M_kj + M_jk
                    g_k[lane] += s_kj * da
                    g_j[lane] -= s_kj * da
                    deg_k[lane] += m_kj
                    deg_j[lane] += m_kj
                    jac_kj[lane] = s_kj
                    jac_jk[lane] = s_kj
                p += 1
        n_curved = 0
        for k in range(width):
            if some_real[k]:
                jac_kk, ssum_k = jac[k, k], s_sum[k]
                for lane in range(_LANES):
                    jac_kk[lane] = -ssum_k[lane]
                b_k, some_b = b[k], False
                for lane in range(_LANES):
                    some_b |= b_k[lane] > 0.0
                curved[n_curved] = k
                n_curved += 1 if some_b else 0
        bound[:] = 0.0
        p = 0
        for k in range(width):  # H_kj = (a_k - a_j) C_kj - (J diag(b) J)_kj, H_kk = -(degree_k + (J diag(b) J)_kk)
            if not some_real[k]:
                p += width - 1 - k
                continue
            jac_k = jac[k]
            for q in range(n_curved):
                c = curved[q]
                jac_kc, b_c, kb_c = jac_k[c], b[c], row_kb[c]
                for lane in range(_LANES):
                    kb_c[lane] = jac_kc[lane] * b_c[lane]
            a_k, bound_k = a[k], bound[k]
            for j in range(k, width):  # (j = k: some_real)
                if not some_real[j]:
                    p += 1
                    continue
                jac_j = jac[j]
                dot[:] = 0.0
                for q in range(n_curved):
                    c = curved[q]
                    kb_c, jac_jc = row_kb[c], jac_j[c]
                    for lane in range(_LANES):
                        dot[lane] += kb_c[lane] * jac_jc[lane]
                if j == k:
                    deg_k = degree[k]
                    for lane in range(_LANES):
                        bound_k[lane] += abs(deg_k[lane] + dot[lane])
                    continue
                a_j, bound_j, cp = a[j], bound[j], c_pair[p]
                for lane in range(_LANES):
                    h = abs((a_k[lane] - a_j[lane]) * cp[lane] - dot[lane])
                    bound_k[lane] += h
                    bound_j[lane] += h
                p += 1
        for lane in range(m):
            for k in range(width):
                g_out[first + lane, k] = g_acc[k, lane]
                bound_out[first + lane, k] = bound[k, lane]
    return min(n, n_groups * _LANES)




@njit(inline="always")
def _list_block(row, gn, tinv, pi, s_sum, a, b, degree, jac, curved, root_b, root, block):
    """One list's Hessian block, whole and symmetric, into ``block`` (and J, whole, into
    ``jac``); a, b its per-item derivatives (the rest: scratch).  See the module docstring."""
    width = row.size
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
    for k in range(width):  # the lower triangle
        for j in range(k):
            block[k, j] = block[j, k]


@njit(**_JIT)
def _approx_ndcg_blocks(s, marked, z, tinv, want_blocks, out, g_out, bound_out):
    """Per list, its Hessian block into ``out`` (``want_blocks``), else the gradient into
    ``g_out`` and the absolute row sums of the block into ``bound_out``."""
    n, width = s.shape
    gn = np.empty(width)
    pi, s_sum, a, b, degree = np.empty(width), np.empty(width), np.empty(width), np.empty(width), np.empty(width)
    jac = np.empty((width, width))  # J = S - diag(S 1)
    curved = np.empty(width, np.int64)  # the items c with b_c > 0
    root_b = np.empty(width)  # sqrt(b_c)
    root = np.empty((width, width))  # R = J[:, c] diag(sqrt(b_c)), so that J^T diag(b) J = R R^T
    block = np.empty((width, width))
    done = 0 if want_blocks or width > _LANE_BOUNDS_MAX_WIDTH else _lane_bounds(s, marked, z, tinv, g_out, bound_out)
    for li in range(done, n):
        _list_gains(marked[li], z[li], gn)
        _list_block(s[li], gn, tinv, pi, s_sum, a, b, degree, jac, curved, root_b, root, block)
        if want_blocks:
            out_block = out[li]
            for k in range(width):
                out_k, block_k = out_block[k], block[k]
                for j in range(width):
                    out_k[j] = block_k[j]
            continue
        g_row, bound_row = g_out[li], bound_out[li]
        for k in range(width):  # dL/ds_k = sum_j S_kj (a_k - a_j) (J's diagonal meets a_k - a_k = 0)
            jac_k, block_k, a_k = jac[k], block[k], a[k]
            g_k = bound_k = 0.0
            for j in range(width):
                g_k += jac_k[j] * (a_k - a[j])
                bound_k += abs(block_k[j])
            g_row[k] = g_k
            bound_row[k] = bound_k


def approx_ndcg_blocks(scores: np.ndarray, rel: np.ndarray, mask: np.ndarray, temperature: float,
                       marked: np.ndarray | None = None) -> np.ndarray:
    """Hessian blocks (n, L, L) of the unweighted losses, in the scores' dtype: symmetric,
    0 in the rows and columns of padding.  ``marked`` as :func:`approx_ndcg_lists`."""
    n, width = scores.shape
    if marked is None:
        marked = mark_padding(rel, mask)
    out = np.empty((n, width, width), scores.dtype)
    unused = np.empty((0, width), scores.dtype)
    _blocks_in_parts(scores, marked, temperature, True, out, unused, unused)
    return out


def approx_ndcg_grad_bound(scores: np.ndarray, rel: np.ndarray, mask: np.ndarray, temperature: float,
                           marked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(gradient (n, L), absolute row sums of the Hessian blocks (n, L)) of the unweighted
    losses, in the scores' dtype, from the blocks kernel without an (n, L, L) output: a
    boosting engine's ``upper_bound`` Hessian.  ``marked`` as :func:`approx_ndcg_lists`."""
    if marked is None:
        marked = mark_padding(rel, mask)
    g = _output_pool.empty(scores.shape, scores.dtype)
    bound = _output_pool.empty(scores.shape, scores.dtype)
    _blocks_in_parts(scores, marked, temperature, False, np.empty((0, 1, scores.shape[1]), scores.dtype), g, bound)
    return g, bound


def _blocks_in_parts(scores: np.ndarray, marked: np.ndarray, temperature: float, want_blocks: bool, out: np.ndarray,
                     g: np.ndarray, bound: np.ndarray) -> None:
    """:func:`_approx_ndcg_blocks` over the lists in parts on Python threads (the outputs not
    asked for: empty arrays)."""
    n, width = scores.shape
    z = ideal_dcg(marked)
    tinv = 1.0 / float(temperature)
    parts = split_plan(n * width * width, n)[1]
    run_in_parts(n, parts, lambda _, lo, hi: _approx_ndcg_blocks(
        scores[lo:hi], marked[lo:hi], z[lo:hi], tinv, want_blocks, out[lo:hi] if want_blocks else out,
        g if want_blocks else g[lo:hi], bound if want_blocks else bound[lo:hi]))
