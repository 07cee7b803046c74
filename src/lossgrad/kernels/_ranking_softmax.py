r"""List kernel of ListNet and XE-NDCG (:class:`lossgrad.ListNet`, :class:`lossgrad.XENDCG`):
value, gradient and Hessian diagonal per list.

Both losses are a cross-entropy -sum_i q_i log p_i between a target distribution q and
p = softmax(s) over the real items of a list; they differ in q only.  The reference
(``masked_softmax`` twice, then products and sums) makes about a dozen passes over
(n_lists, L) arrays.  Here each list takes three loops over its L entries, in float64
(float32 inputs are promoted, the outputs cast back):

1. m = max s_i, top = max r_i over the real items (integer maxima of order keys,
   :func:`._fastmath.order_key`, which vectorise where a float max does not);
2. z_i = s_i - m, e_i = exp(z_i), and the unnormalised target t_i:

       ListNet   t_i = exp(r_i - top)                              (q = softmax(r))
       XE-NDCG   t_i = 2^{r_i - top} - gamma_i 2^{-top}           (q = phi, gains shifted
                 by 2^{-top} so that large grades do not overflow, as the reference)

   with the sums E = sum e_i, T = sum t_i and Z = sum t_i z_i;
3. p_i = e_i / E, q_i = t_i / T and

       value = log E - Z / T       (= -sum q_i (z_i - log E), sum q_i = 1; both terms >= 0)
       grad_i = p_i - q_i,         Hessian diagonal_i = p_i (1 - p_i)

   (the diagonal of diag(p) - p p^T, :func:`lossgrad.losses._ranking_base.softmax_second`).

Every loop is branch-free: padding (marked by a NaN grade in the kernel's copy) is a
select to 0 (to z = 0 before the exponential, so that a padded score is never used),
exp is the vectorisable one of :mod:`._fastmath`, and the sums are reassociated
(``fastmath="reassoc"``): a few ulps from the reference.  The grades arrive marked
(NaN at padding) from RankingLoss's one-pass check, and XE-NDCG's gamma travels in
``launch``'s per-row weight slot, which it slices by list as it does the scores and
the grades (the kernel applies no weight: the loss does), so that no (n_lists, 2, L)
stack of the two is formed.  Lists run in blocks through :func:`._row_margin.launch`.  Inputs arrive
validated (RankingLoss checks them in one pass, :mod:`._ranking_inputs`), so the
kernel counts nothing.

Measured (2-core AMD EPYC VM, 2 threads, median of 5, ms; benchmarks/bench_ranking.py's
inputs; whole calls, input checks included; PyTorch CPU autograd of allRank's listNet;
session 13, after the input checks became one pass, :mod:`._ranking_inputs`):

    ListNet value+grad       2000 x 120 float64    1.0 (reference 4.5, torch 66)
                             2000 x 120 float32    0.8 (reference 3.8, torch 40)
                             20000 x 24 float64    2.1 (reference 11.6, torch 31)
                             20000 x 24 float32    1.7 (reference 9.9, torch 8-20)
    ListNet grad+hess diag   0.6-0.9 (reference 5.3-6.3) at 2000 x 120, 2.2-2.3 (14-17) at 20000 x 24

Of a call the kernel itself takes 0.24 ms (2000 x 120) or 0.75 ms (20000 x 24); the
checks' pass 0.09 or 0.25 ms, the rest the NaN-marked copy and the outputs.  Session 14
moved the NaN-marked copy into the checks' pass (a NumPy ``where`` into fresh memory:
0.26 ms at 2000 x 120, 0.59 at 20000 x 24, float64, one thread) and XE-NDCG's gamma
into the row slot (the (n, 2, L) stack: 0.10 and 0.34 ms); value_grad, one thread,
best of 3 runs' medians of 25: ListNet 1.16 -> 0.88 ms (2000 x 120) and 3.08 -> 2.48
(20000 x 24), XE-NDCG 1.45 -> 0.96 and 4.15 -> 2.78.  XE-NDCG's
default gamma draw is kept between calls of one seed and shape.  One thread, the kernel
against the same loops with ``math.exp`` and branches (scalar): 0.46 against 2.9 ms at
2000 x 120, 2.0 against 6.3 ms at 20000 x 24.  A float32 variant computing in float32
(16 lanes) took 0.29 and 1.4 ms there, at 2-4e-7 of the largest entry from the float64
computation: at most 0.25 ms of a 0.8-2.1 ms call, so float32 stays promoted.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import _fastmath as fm
from ._ranking import mark_padding
from ._row_margin import launch

__all__ = ["softmax_lists"]

_I64_MIN = -(1 << 63)
_LN2 = math.log(2.0)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _softmax_lists(s, y, xendcg, sw, has_sw, v_out, g_out, h_out, want_g, want_h, counts):
    """y: the grades, NaN at padding; sw: XE-NDCG's gamma (n, L) with ``xendcg`` (ListNet: not read)."""
    n, width = s.shape
    e = np.empty(width)
    t = np.empty(width)
    for li in range(n):
        row, r = s[li], y[li]
        ks = _I64_MIN
        kr = _I64_MIN
        for j in range(width):  # the maxima over the real items
            real = r[j] == r[j]  # False at padding (NaN)
            ks = max(ks, fm.order_key(np.float64(row[j])) if real else _I64_MIN)
            kr = max(kr, fm.order_key(np.float64(r[j])) if real else _I64_MIN)
        m = fm.from_order_key(ks)
        top = fm.from_order_key(kr)
        se = 0.0
        st = 0.0
        sz = 0.0
        if xendcg:
            gam = sw[li]
            low = math.exp(-top * _LN2)  # 2^{-top}
            for j in range(width):
                real = r[j] == r[j]
                z = np.float64(row[j]) - m if real else 0.0
                ej = fm.exp(z) if real else 0.0
                tj = fm.exp((np.float64(r[j]) - top) * _LN2) - np.float64(gam[j]) * low if real else 0.0
                e[j] = ej
                t[j] = tj
                se += ej
                st += tj
                sz += tj * z
        else:
            for j in range(width):
                real = r[j] == r[j]
                z = np.float64(row[j]) - m if real else 0.0
                ej = fm.exp(z) if real else 0.0
                tj = fm.exp(np.float64(r[j]) - top) if real else 0.0
                e[j] = ej
                t[j] = tj
                se += ej
                st += tj
                sz += tj * z
        v_out[li] = math.log(se) - sz / st
        ie = 1.0 / se
        it = 1.0 / st
        if want_g:
            for j in range(width):
                g_out[li, j] = e[j] * ie - t[j] * it
        if want_h:
            for j in range(width):
                p = e[j] * ie
                h_out[li, j] = p * (1.0 - p)


def softmax_lists(scores: np.ndarray, rel: np.ndarray, mask: np.ndarray, gamma: np.ndarray | None,
                  want_grad: bool, want_diag: bool,
                  marked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(value (n,), gradient (n, L) or None, Hessian diagonal (n, L) or None), unweighted,
    in the scores' dtype: ListNet's (``gamma`` None) or XE-NDCG's (``gamma`` its draw,
    (n, L)).  ``marked``: the relevance with NaN at padding in the scores' dtype, where the
    caller has it (RankingLoss's one-pass check writes it); else formed here."""
    if marked is None:
        marked = mark_padding(rel, mask, scores.dtype)
    # gamma rides in launch's per-row slot (a row kernel's sample weights), which launch slices
    # by list as it does the scores and the grades: no (n, 2, L) copy of the two; ListNet's
    # slot holds an empty (n, 0) array, so that both compile the same code
    rows = np.empty((scores.shape[0], 0), scores.dtype) if gamma is None else \
        np.ascontiguousarray(gamma, dtype=scores.dtype)
    v, g, h, _ = launch(_softmax_lists, scores, marked, (gamma is not None,), rows, want_grad, want_diag,
                        work=4 * scores.size)
    return v, (g if want_grad else None), (h if want_diag else None)
