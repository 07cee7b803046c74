r"""M-estimate of location: mu solving sum_i psi((x_i - mu)/s) = 0 by IRLS.

Starts from the median, holds s fixed (default: the MAD about the median) and iterates
mu <- sum w_i x_i / sum w_i with w_i = psi(u_i)/u_i, u_i = (x_i - mu)/s, as
statsmodels ``norms.estimate_location`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._config import config_context
from .._core import ResidualLoss
from .._registry import get
from ._scale import _as_1d, huber_scale, mad, qn_scale

__all__ = ["location", "irls_location"]


def location(x: Any, loss: Any = "huber", scale: Any = "mad", tol: float = 1e-10, max_iter: int = 200) -> float:
    """Robust location of a sample (``loss`` a catalog name or residual loss; huber uses 1.345).

    ``scale``: "mad" (about the median), "qn", "huber" (proposal 2) or a positive number.
    """
    from ._mestimator import CONVENTIONAL_PARAMS, ConvergenceWarning

    a = _as_1d(x, "x")
    rho = get(loss, **CONVENTIONAL_PARAMS.get(loss, {})) if isinstance(loss, str) else loss
    if not isinstance(rho, ResidualLoss):
        raise TypeError(f"loss must name or be a residual loss, got {loss!r}")
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        s = float(scale)
    elif scale == "mad":
        s = mad(a, center=None)
    elif scale == "qn":
        s = qn_scale(a)
    elif scale == "huber":
        s = huber_scale(a - np.median(a))
    else:
        raise ValueError(f"scale must be 'mad', 'qn', 'huber' or a positive number, got {scale!r}")
    if s == 0:
        return float(np.median(a))
    mu, converged = irls_location(a[:, None], rho, np.array([s]), tol, max_iter)
    if not converged:
        import warnings

        warnings.warn(f"location did not converge in {max_iter} iterations", ConvergenceWarning, stacklevel=2)
    return float(mu[0])


def irls_location(a: np.ndarray, rho: ResidualLoss, s: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, bool]:
    """Column by column M-estimates of location of ``a`` (n, p) with scales ``s`` (p,) > 0:
    IRLS from the column medians, mu <- sum w x / sum w with w = psi(u)/u, u = (x - mu)/s
    (capped at 1e12: psi(u)/u is infinite at 0 for L1-like losses), until every column
    moves by at most tol max(1, |mu|).  Returns (mu (p,), converged)."""
    mu = np.median(a, axis=0)
    for _ in range(max_iter):
        with config_context(assume_valid=True):
            w = np.minimum(rho.weight(0.0, (a - mu) / s), 1e12)
        total = np.sum(w, axis=0)
        if not np.all(total > 0):
            raise ValueError("every observation got weight 0: the scale is too small for this loss")
        new = np.sum(w * a, axis=0) / total
        done = np.all(np.abs(new - mu) <= tol * np.maximum(1.0, np.abs(mu)))
        mu = new
        if done:
            return mu, True
    return mu, False
