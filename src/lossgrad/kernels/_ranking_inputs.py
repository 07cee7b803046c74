r"""The ranking family's input checks in one pass: :class:`lossgrad.losses._ranking_base.RankingLoss`.

The reference checks of a ranking loss's inputs (scores, relevance, mask) take about
seven passes over (n_lists, L) arrays: the real items per list, the scores with their
padding zeroed, then checked finite, the relevance zeroed at padding, then checked
finite and non-negative.  On a ListNet call at 2000 x 120 they cost more than the list
kernel itself (0.49 of 0.84 ms), and each zeroed copy is fresh memory that may
page-fault on every call (see :mod:`._output_pool`).  Here one loop per list reads the
score, relevance and mask of each item once, counts what the reference would reject

* a list with fewer than 2 real items,
* a non-finite score on a real item (x - x is 0 for a finite x, NaN otherwise),
* a non-finite or negative relevance on a real item,

and writes the relevance twice into pooled buffers: with its padding zeroed (the ``rel``
the losses' reference code reads) and with its padding NaN (what the list kernels read:
a NaN grade marks a padded item, so that they take no mask).  The marked copy was a
NumPy ``where`` of its own in each kernel's wrapper, fresh memory every call: 0.26 ms
at 2000 x 120 and 0.59 ms at 20000 x 24 float64 (one thread), against 0.01-0.03 ms
for the second store here.  The loop is branch-free (the mask a 0/1 factor, the zeroing
and the marking selects), so it vectorises.  When any count is non-zero the caller runs the reference checks, which
raise their own error: the messages are the reference's, only the passes are fewer.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import _output_pool
from ._parallel import run_in_parts, split_plan

__all__ = ["check_lists"]

_THREADED_MIN = 1 << 18  # below, a part handed to a thread costs about what the pass saves


@njit(cache=True, nogil=True, error_model="numpy")
def _check_lists(s, rel, mask, relv, marked, counts):
    n, width = s.shape
    for li in range(n):
        row, r, m, out, mk = s[li], rel[li], mask[li], relv[li], marked[li]
        real = 0
        bad_score = 0
        bad_rel = 0
        for j in range(width):
            on = m[j] != 0
            x = np.float64(row[j])
            y = np.float64(r[j])
            real += 1 if on else 0
            bad_score += 1 if on and not (x - x == 0.0) else 0
            bad_rel += 1 if on and not (y - y == 0.0 and y >= 0.0) else 0
            out[j] = r[j] if on else 0.0
            mk[j] = r[j] if on else np.nan
        counts[0] += 1 if real < 2 else 0
        counts[1] += bad_score
        counts[2] += bad_rel


def check_lists(scores: np.ndarray, rel: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(relevance zeroed at padding, relevance NaN at padding, both in ``rel``'s dtype;
    whether any list fails a check): ``scores`` and ``rel`` (n_lists, L) float arrays of
    one dtype, ``mask`` boolean."""
    s = np.ascontiguousarray(scores)
    r = np.ascontiguousarray(rel)
    m = np.ascontiguousarray(mask).view(np.uint8)
    relv = _output_pool.empty(s.shape, r.dtype)
    marked = _output_pool.empty(s.shape, r.dtype)
    n = s.shape[0]
    parts = split_plan(s.size, n)[1] if s.size >= _THREADED_MIN else 1
    counts = np.zeros((parts, 3), np.int64)

    def run(i: int, lo: int, hi: int) -> None:
        _check_lists(s[lo:hi], r[lo:hi], m[lo:hi], relv[lo:hi], marked[lo:hi], counts[i])

    run_in_parts(n, parts, run)
    return relv, marked, bool(counts.any())
