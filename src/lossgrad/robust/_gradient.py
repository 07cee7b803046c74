r"""Robust estimates of a mean gradient, for robust gradient descent.

Gradient descent on an average loss (1/n) sum_i L_i(theta) steps along the sample mean of
the per-sample gradients g_i = grad L_i(theta).  One gross outlier (or a heavy tail)
moves that mean arbitrarily.  Robust gradient descent replaces it by a robust estimate
of the mean of the g_i at every step (Prasad, Suggala, Balakrishnan & Ravikumar 2020;
Holland & Ikeda 2019; Lecué, Lerasle & Mathieu 2020): :func:`robust_mean` of the rows of
the (n, p) matrix of per-sample gradients, by

* ``"median_of_means"``: the rows, shuffled once by ``seed``, are cut into ``n_blocks``
  blocks of near-equal size; the estimate is the geometric median of the block means
  (Weiszfeld's iteration; Prasad et al., Minsker 2015) or their coordinate-wise median
  (``median="coordinate"``).  It stays near the mean while fewer than half of the
  blocks hold an outlier;
* ``"trimmed_mean"``: per coordinate, the mean after dropping the ``trim`` fraction of
  smallest and of largest values (``scipy.stats.trim_mean``);
* ``"m_estimate"``: per coordinate, an M-estimate of location with a residual loss of
  the catalog (default Huber, delta 1.345, 95% efficient at the normal), its scale the
  normalised MAD about the median (Holland & Ikeda's coordinate-wise robust gradient,
  with the catalog's psi in place of Catoni's): IRLS as :func:`lossgrad.robust.location`;
* ``"mean"``: the plain mean (ordinary gradient descent), for comparison.

The linear estimators take these through ``gradient=`` (:class:`lossgrad.models.LinearRegressor`).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from scipy import stats

from .._core import ResidualLoss
from .._registry import get
from ._location import irls_location
from ._scale import MAD_NORMAL

__all__ = ["robust_mean", "geometric_median", "METHODS"]

METHODS = ("mean", "median_of_means", "trimmed_mean", "m_estimate")


def robust_mean(samples: Any, method: str = "median_of_means", *, n_blocks: int = 10, median: str = "geometric",
                trim: float = 0.1, loss: Any = "huber", seed: int = 0, tol: float = 1e-10,
                max_iter: int = 200) -> np.ndarray:
    """A robust estimate of the mean of the rows of ``samples`` (n, p) or of a sample (n,).

    Parameters: ``method`` (see the module docstring: "median_of_means", "trimmed_mean",
    "m_estimate", "mean"); ``n_blocks`` (median of means: 1 <= n_blocks <= n; 1 is the
    mean); ``median`` ("geometric" or "coordinate"); ``trim`` in [0, 0.5) (trimmed mean);
    ``loss`` (m_estimate: a residual loss or its catalog name; "huber" uses delta 1.345);
    ``seed`` (median of means: the shuffle of the rows before cutting the blocks);
    ``tol``, ``max_iter`` (the Weiszfeld and IRLS iterations; their last iterate is returned
    without a warning when they have not settled: a gradient step needs an estimate, not a root).

    Returns a float64 array of shape (p,) (a 0-d array for a 1-d sample).

    >>> import numpy as np
    >>> from lossgrad.robust import robust_mean
    >>> x = np.array([1.0, 2.0, 3.0, 4.0, 1000.0])
    >>> float(robust_mean(x, "median_of_means", n_blocks=5))
    3.0
    >>> float(robust_mean(x, "trimmed_mean", trim=0.2))
    3.0
    """
    a = np.asarray(samples, dtype=np.float64)
    if a.ndim not in (1, 2) or a.shape[0] == 0:
        raise ValueError(f"samples must be a non-empty (n,) or (n, p) array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("samples must be finite (a non-finite gradient cannot be averaged, robustly or not)")
    one_d = a.ndim == 1
    a = a[:, None] if one_d else a
    if method == "mean":
        out = np.mean(a, axis=0)
    elif method == "median_of_means":
        out = _median_of_means(a, n_blocks, median, seed, tol, max_iter)
    elif method == "trimmed_mean":
        if not (isinstance(trim, numbers.Real) and 0.0 <= trim < 0.5):
            raise ValueError(f"trim must lie in [0, 0.5) (the fraction cut at each end), got {trim!r}")
        out = np.asarray(stats.trim_mean(a, trim, axis=0), dtype=np.float64)
    elif method == "m_estimate":
        out = _m_estimate(a, loss, tol, max_iter)
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return out[0] if one_d else out


def _median_of_means(a: np.ndarray, n_blocks: Any, median: str, seed: int, tol: float, max_iter: int) -> np.ndarray:
    n = a.shape[0]
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, numbers.Integral) or not 1 <= n_blocks <= n:
        raise ValueError(f"n_blocks must be an integer in [1, n] = [1, {n}] (one sample at least per block), "
                         f"got {n_blocks!r}")
    if median not in ("geometric", "coordinate"):
        raise ValueError(f"median must be 'geometric' or 'coordinate', got {median!r}")
    order = np.random.default_rng(seed).permutation(n)
    means = np.stack([np.mean(a[block], axis=0) for block in np.array_split(order, int(n_blocks))])
    if median == "coordinate":
        return np.median(means, axis=0)
    return geometric_median(means, tol=tol, max_iter=max_iter)


def geometric_median(points: Any, tol: float = 1e-10, max_iter: int = 200) -> np.ndarray:
    """The point minimising the sum of Euclidean distances to the rows of ``points`` (k, p).

    Weiszfeld's iteration m <- sum_j b_j/d_j / sum_j 1/d_j (d_j = ||b_j - m||) from the
    coordinate-wise median, with Vardi & Zhang's (2000) step where m sits on eta of the
    points (plain Weiszfeld would divide by 0): m moves by (1 - eta/r)^+ of the Weiszfeld
    step over the others, r = ||sum_{j: d_j > 0} (b_j - m)/d_j||, and stays put when
    r <= eta (m is then the median).
    Stops when m moves by at most tol max(1, ||m||).
    """
    b = np.asarray(points, dtype=np.float64)
    m = np.median(b, axis=0)
    scale = max(1.0, float(np.max(np.abs(b))))
    for _ in range(max_iter):
        diff = b - m
        d = np.sqrt(np.sum(diff * diff, axis=1))
        at_point = d <= 1e-15 * scale
        inv = np.where(at_point, 0.0, 1.0 / np.where(at_point, 1.0, d))
        if not np.any(inv > 0):
            return m  # every block mean coincides
        step = (inv @ b) / np.sum(inv) - m  # the Weiszfeld step over the other points
        eta = int(np.sum(at_point))  # how many of the points m sits on
        if eta:
            r = float(np.linalg.norm(inv @ diff))
            step = step * max(0.0, 1.0 - eta / r) if r > 0 else 0.0 * step
        m = m + step
        if np.linalg.norm(step) <= tol * max(1.0, float(np.linalg.norm(m))):
            break
    return m


def _m_estimate(a: np.ndarray, loss: Any, tol: float, max_iter: int) -> np.ndarray:
    from ._mestimator import CONVENTIONAL_PARAMS

    rho = get(loss, **CONVENTIONAL_PARAMS.get(loss, {})) if isinstance(loss, str) else loss
    if not isinstance(rho, ResidualLoss):
        raise TypeError(f"loss must name or be a residual loss (m_estimate), got {loss!r}")
    med = np.median(a, axis=0)
    s = np.median(np.abs(a - med), axis=0) / MAD_NORMAL
    spread = s > 0  # a coordinate whose MAD is 0 (over half the values equal) keeps its median
    out = med.copy()
    if np.any(spread):
        mu, _ = irls_location(a[:, spread], rho, s[spread], tol, max_iter)
        out[spread] = mu
    return out

