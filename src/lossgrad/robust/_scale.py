r"""Robust scale estimators: MAD, Qn, Huber's proposal 2, and exact order statistics.

* ``mad(x, center=0.0)``: median(|x - center|) / Phi^{-1}(3/4), consistent for the
  normal standard deviation.  Regression uses center 0 on residuals, as R's ``rlm``
  and statsmodels' ``RLM`` do.
* ``qn_scale(x)``: Rousseeuw & Croux (1993) Qn = c * the k-th smallest |x_i - x_j|,
  i < j, k = h(h-1)/2, h = n//2 + 1, c = 1/(sqrt 2 Phi^{-1}(5/8)) (no small-sample
  correction, as statsmodels).  O(n log n) memory-light selection (bracket, then exact).
* ``huber_scale(resid, df_resid, d=2.5)``: Huber's proposal 2 for regression,
  s^2 = sum chi(r/s) s^2 / (n h), chi(u) = min(u^2, d^2)/2, h = (df_resid/n) E[chi(Z)].
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["mad", "qn_scale", "huber_scale", "exact_median", "MAD_NORMAL", "QN_NORMAL"]

MAD_NORMAL = float(stats.norm.ppf(0.75))  #: 0.67449..., median |Z|
QN_NORMAL = float(1.0 / (math.sqrt(2.0) * stats.norm.ppf(5.0 / 8.0)))  #: 2.21914...


def _as_1d(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        a = a.ravel()
    if a.size == 0:
        raise ValueError(f"{name} is empty; a scale needs at least one value")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def mad(x: Any, center: float | None = 0.0) -> float:
    """Normalised median absolute deviation median(|x - center|)/0.6745; ``center=None`` uses the median.

    Dask arrays are reduced without materialising them (see :func:`exact_median`).
    """
    if _is_dask(x):
        from ._dask import dask_median

        c = dask_median(x) if center is None else float(center)
        return dask_median(abs(x - c)) / MAD_NORMAL
    a = _as_1d(x, "x")
    c = float(np.median(a)) if center is None else float(center)
    return float(np.median(np.abs(a - c)) / MAD_NORMAL)


def exact_median(x: Any) -> float:
    """The exact sample median, for NumPy or Dask arrays."""
    if _is_dask(x):
        from ._dask import dask_median

        return dask_median(x)
    return float(np.median(_as_1d(x, "x")))


def qn_scale(x: Any, c: float = QN_NORMAL) -> float:
    """Rousseeuw-Croux Qn scale; equals statsmodels ``qn_scale``."""
    a = np.sort(_as_1d(x, "x"))
    n = a.size
    if n < 2:
        raise ValueError("qn_scale needs at least 2 values")
    h = n // 2 + 1
    k = h * (h - 1) // 2
    if n <= 2000:
        i, j = np.triu_indices(n, k=1)
        return float(c * np.partition(a[j] - a[i], k - 1)[k - 1])
    return float(c * _kth_pairwise_difference(a, k))


def _count_le(a: np.ndarray, t: float) -> int:
    idx = np.searchsorted(a, a + t, side="right")
    return int(np.sum(idx - np.arange(1, a.size + 1)))


def _kth_pairwise_difference(a: np.ndarray, k: int) -> float:
    """k-th smallest a_j - a_i (i < j) of sorted ``a``: bisection to a narrow bracket, then exact."""
    lo, hi = 0.0, float(a[-1] - a[0])
    if _count_le(a, lo) >= k:
        return 0.0
    budget = max(4 * a.size, 100_000)
    for _ in range(200):
        if _count_le(a, hi) - _count_le(a, lo) <= budget:
            break
        mid = 0.5 * (lo + hi)
        if _count_le(a, mid) >= k:
            hi = mid
        else:
            lo = mid
    below = _count_le(a, lo)
    start = np.searchsorted(a, a + lo, side="right")
    stop = np.searchsorted(a, a + hi, side="right")
    cand = [a[s:e] - a[i] for i, (s, e) in enumerate(zip(start, stop)) if e > s]
    values = np.concatenate(cand) if cand else np.empty(0)
    return float(np.partition(values, k - below - 1)[k - below - 1])


def _huber_h(d: float) -> float:
    """E[chi(Z)] for chi(u) = min(u^2, d^2)/2 and Z standard normal."""
    return d * d + (1.0 - d * d) * stats.norm.cdf(d) - 0.5 - d * stats.norm.pdf(d)


def huber_scale(resid: Any, df_resid: float | None = None, d: float = 2.5, tol: float = 1e-8, maxiter: int = 30) -> float:
    """Huber's proposal 2 scale of regression residuals (statsmodels ``HuberScale``).

    Starts from ``mad(resid, center=None)`` and iterates
    s_{t+1}^2 = sum(chi(r / s_t)) s_t^2 / (n h) with h = (df_resid / n) E[chi(Z)].
    """
    r = _as_1d(resid, "resid")
    n = r.size
    df = float(n if df_resid is None else df_resid)
    if not 0 < df <= n:
        raise ValueError(f"df_resid must lie in (0, {n}], got {df_resid!r}")
    h = df / n * _huber_h(d)
    s_prev, s = math.inf, mad(r, center=None)
    it = 1
    while abs(s_prev - s) > tol and it < maxiter:
        if s == 0:
            return 0.0
        u = r / s
        chi = np.where(np.abs(u) < d, 0.5 * u * u, 0.5 * d * d)
        s_prev, s = s, math.sqrt(np.sum(chi) * s * s / (n * h))
        it += 1
    return float(s)


def _is_dask(x: Any) -> bool:
    return type(x).__module__.startswith("dask.")
