r"""List kernel of RankNet (:class:`lossgrad.RankNet`): value, gradient and Hessian diagonal per list.

The reference forms (n_lists, L, L) arrays of score differences, pair masks,
exponentials and products: about fifteen passes over n L^2 entries.  Here each list
is one loop over its ordered pairs (i, j) of real items with rel_i > rel_j, one
exponential each, in float64 (float32 scores are promoted, the outputs cast back):

    x = sigma (s_i - s_j),  e = exp(-|x|),
    value += max(-x, 0) + log1p(e)                       (softplus(-x))
    g_i -= lam, g_j += lam,   lam = sigma sigmoid(-x) = sigma (e if x >= 0 else 1) / (1 + e)
    h_i += c,   h_j += c,     c = sigma^2 sigmoid(x) sigmoid(-x) = sigma^2 e / (1 + e)^2

then, with ``normalize``, everything times 1/|P| (0 for a list without a pair).  The
Hessian diagonal is the degree of the pair Laplacian (see :mod:`lossgrad.losses.ranking`).
The loop over j runs over every item of the list, the pair indicator a 0/1 factor and
x = 0 off the pairs, so that it has no branch and LLVM vectorises it with the
branch-free exp and log1p of :mod:`._fastmath` (a libm call per pair kept it scalar:
measured 190 ms against 500 ms for the reference at 2000 lists of 120 items);
the sums are reassociated (``fastmath="reassoc"``): a few ulps from the reference.
Padding is marked by a NaN relevance in the kernel's copy (written by RankingLoss's
one-pass input check, :mod:`._ranking_inputs`), so padded scores are never read.  Lists run in blocks through :func:`._row_margin.launch` (Numba's threading layer
or Python threads, as the row kernels do).  Inputs arrive validated (RankingLoss
checks them), so the kernel counts nothing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import _fastmath as fm
from ._row_margin import launch

__all__ = ["mark_padding", "ranknet_lists"]


def mark_padding(rel: np.ndarray, mask: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
    """The relevance with NaN at padding, in ``dtype`` (None: the relevance's own, float64
    for integers): what the list kernels read, where the caller does not hand it over
    (RankingLoss's one-pass input check, :mod:`._ranking_inputs`, writes it)."""
    marked = np.where(mask, rel, np.nan)
    return marked if dtype is None else marked.astype(dtype, copy=False)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _ranknet_lists(s, rel, sigma, normalize, sw, has_sw, v_out, g_out, h_out, want_g, want_h, counts):
    n, width = s.shape
    gacc = np.empty(width)
    hacc = np.empty(width)
    for li in range(n):
        row, r = s[li], rel[li]
        gacc[:] = 0.0
        hacc[:] = 0.0
        total = 0.0
        pairs = 0.0
        for i in range(width):
            ri = r[i]
            if ri != ri:  # padding
                continue
            si = np.float64(row[i])
            gi = hi = 0.0
            for j in range(width):  # branch-free over j: the loop vectorises (fm.exp, fm.log1p01)
                pf = 1.0 if ri > r[j] else 0.0  # 0 for a padded j (NaN)
                x = sigma * (si - np.float64(row[j])) if ri > r[j] else 0.0  # a padded score is not read
                e = fm.exp(-abs(x))
                d = 1.0 / (1.0 + e)
                total += pf * (max(-x, 0.0) + fm.log1p01(e))
                lam = pf * sigma * (e if x >= 0.0 else 1.0) * d
                c = pf * sigma * sigma * e * d * d
                gi -= lam
                gacc[j] += lam
                hi += c
                hacc[j] += c
                pairs += pf
            gacc[i] += gi
            hacc[i] += hi
        scale = 1.0
        if normalize:
            scale = 1.0 / pairs if pairs > 0.0 else 0.0
        v_out[li] = total * scale
        if want_g:
            for k in range(width):
                g_out[li, k] = gacc[k] * scale
        if want_h:
            for k in range(width):
                h_out[li, k] = hacc[k] * scale


def ranknet_lists(scores: np.ndarray, rel: np.ndarray, mask: np.ndarray, sigma: float, normalize: bool,
                  want_grad: bool, want_diag: bool,
                  marked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(value (n,), gradient (n, L) or None, Hessian diagonal (n, L) or None), unweighted,
    in the scores' dtype.  ``marked``: the relevance with NaN at padding in the scores'
    dtype, where the caller has it (RankingLoss's one-pass check writes it); else formed here."""
    if marked is None:
        marked = mark_padding(rel, mask, scores.dtype)
    v, g, h, _ = launch(_ranknet_lists, scores, marked, (float(sigma), bool(normalize)), None, want_grad, want_diag,
                        work=scores.size * scores.shape[-1])
    return v, (g if want_grad else None), (h if want_diag else None)
