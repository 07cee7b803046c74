"""Dask reductions for M-estimation: exact medians and weighted Gram matrices in one pass.

Nothing here materialises the data matrix: every pass is a chunked reduction whose
result is p x p or smaller, so the same code runs on a laptop or a Dask cluster.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["dask_median", "weighted_moments"]


def dask_median(a: Any, margin: float = 1.0) -> float:
    """Exact median of a Dask array: approximate percentiles bracket it, then the bracket is sorted.

    1. ``da.percentile`` (approximate, per-chunk merge) gives [lo, hi] around the 50th
       percentile with ``margin`` percentage points on each side;
    2. one pass counts the values below lo and inside [lo, hi];
    3. if the middle order statistics fall inside, only the bracket is pulled to memory
       and partitioned exactly; otherwise the margin widens and we retry.
    """
    import dask
    import dask.array as da

    a = a.ravel()
    n = int(a.size)
    if n == 0:
        raise ValueError("median of an empty array")
    k_lo, k_hi = (n - 1) // 2, n // 2  # 0-based order statistics to average
    while True:
        lo, hi = (float(v) for v in da.percentile(a, [max(50 - margin, 0), min(50 + margin, 100)]).compute())
        below, inside = dask.compute(da.sum(a < lo), da.sum((a >= lo) & (a <= hi)))
        below, inside = int(below), int(inside)
        if below <= k_lo and below + inside > k_hi:
            values = a[(a >= lo) & (a <= hi)].compute()
            part = np.partition(values, [k_lo - below, k_hi - below])
            return float(0.5 * (part[k_lo - below] + part[k_hi - below]))
        if margin >= 50:
            values = np.sort(a.compute())
            return float(0.5 * (values[k_lo] + values[k_hi]))
        margin = min(margin * 4, 50)


def weighted_moments(X: Any, y: Any, w: Any) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, float]:
    """One pass: (X^T W X, X^T W y, sum w, X^T w, sum w y) for the intercept-augmented normal equations."""
    import dask
    import dask.array as da

    Xw = X * w[:, None]
    return tuple(
        np.asarray(v)
        for v in dask.compute(Xw.T @ X, Xw.T @ y, da.sum(w), da.sum(Xw, axis=0), da.sum(w * y))
    )
