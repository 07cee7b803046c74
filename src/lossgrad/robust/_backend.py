"""The passes over the data that IRLS needs, for in-memory NumPy and for chunked Dask arrays.

IRLS only ever needs p x p summaries of the data (weighted Gram matrices), residual
medians and a few sums, so both backends expose the same five operations and the
solver in ``_mestimator.py`` never touches the rows itself.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._scale import MAD_NORMAL, huber_scale, mad

__all__ = ["NumpyBackend", "DaskBackend"]


class NumpyBackend:
    """X (n, p) and y (n,) in memory; an intercept is handled by augmenting the normal equations."""

    def __init__(self, X: np.ndarray, y: np.ndarray, fit_intercept: bool):
        self.X, self.y, self.fit_intercept = X, y, fit_intercept
        self.n, self.p = X.shape

    def normal_equations(self, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(X1^T W X1, X1^T W y), X1 = (1, X) with an intercept, W = diag(w) (the identity
        for None): one chunked pass of BLAS over X for the Gram block and one compiled pass
        for X^T (w y) and X^T w (:mod:`lossgrad.models._products`), no n x p temporary."""
        # imported on first use: `import lossgrad.robust` does not load lossgrad.models
        from ..models import _products

        X, y = self.X, self.y
        w = np.ones(self.n) if w is None else np.asarray(w, dtype=np.float64)
        yw = y * w
        G, b, xs = _products.gram_and_moments(X, yw, w)
        if not self.fit_intercept:
            return G, b
        top = np.concatenate([[float(np.sum(w))], xs])
        G = np.block([[top[None, :]], [xs[:, None], G]])
        return G, np.concatenate([[np.sum(yw)], b])

    def y_scale(self) -> float:
        """Root mean square of y: the yardstick below which a residual scale counts as 0."""
        return float(np.sqrt(np.mean(self.y * self.y)))

    def residuals(self, beta: np.ndarray) -> np.ndarray:
        from ..models import _products

        if self.fit_intercept:
            return self.y - _products.matmul(self.X, beta[1:], beta[0])
        return self.y - _products.matmul(self.X, beta)

    def scale(self, r: np.ndarray, how: Any, df_resid: float) -> float:
        if how == "mad":
            return mad(r, center=0.0)
        if how == "huber":
            return huber_scale(r, df_resid=df_resid)
        return float(how(r))

    def weights(self, fn: Callable[[np.ndarray], np.ndarray], r: np.ndarray) -> np.ndarray:
        return fn(r)

    def score_sums(self, psi: Callable, dpsi: Callable, u: np.ndarray) -> tuple[float, float, float]:
        """(sum psi(u)^2, sum psi'(u), sum psi'(u)^2)."""
        p, d = psi(u), dpsi(u)
        return float(np.sum(p * p)), float(np.sum(d)), float(np.sum(d * d))

    def materialize(self, r: Any) -> np.ndarray:
        return r


class DaskBackend(NumpyBackend):
    """X and y as Dask arrays: every pass is a chunked reduction to p x p or smaller."""

    def normal_equations(self, w: Any) -> tuple[np.ndarray, np.ndarray]:
        import dask
        import dask.array as da

        X, y = self.X, self.y
        Xw = X if w is None else X * w[:, None]
        yw = y if w is None else y * w
        sw = da.sum(w) if w is not None else float(self.n)
        G, b, xs, sy, sw = dask.compute(Xw.T @ X, Xw.T @ y, da.sum(Xw, axis=0), da.sum(yw), sw)
        G, b = np.asarray(G), np.asarray(b)
        if not self.fit_intercept:
            return G, b
        xs = np.asarray(xs)
        top = np.concatenate([[float(sw)], xs])
        return np.block([[top[None, :]], [xs[:, None], G]]), np.concatenate([[float(sy)], b])

    def y_scale(self) -> float:
        import dask.array as da

        return float(da.sqrt(da.mean(self.y * self.y)).compute())

    def scale(self, r: Any, how: Any, df_resid: float) -> float:
        from ._dask import dask_median

        if how == "mad":
            return dask_median(abs(r)) / MAD_NORMAL
        if how == "huber":
            return huber_scale(np.asarray(r.compute()), df_resid=df_resid)
        return float(how(r))

    def weights(self, fn: Callable[[np.ndarray], np.ndarray], r: Any) -> Any:
        return r.map_blocks(fn, dtype=float)

    def score_sums(self, psi: Callable, dpsi: Callable, u: Any) -> tuple[float, float, float]:
        import dask
        import dask.array as da

        p = u.map_blocks(psi, dtype=float)
        d = u.map_blocks(dpsi, dtype=float)
        return tuple(float(v) for v in dask.compute(da.sum(p * p), da.sum(d), da.sum(d * d)))

    def materialize(self, r: Any) -> np.ndarray:
        return np.asarray(r.compute())
