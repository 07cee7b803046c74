r"""M-estimation of a linear model by iteratively reweighted least squares (IRLS).

Minimise sum_i rho((y_i - x_i^T beta) / s) over beta, with rho any residual loss of
the catalog.  Setting the derivative to zero gives sum_i psi(u_i) x_i = 0, u = r/s;
writing psi(u) = w(u) u with the weight w = psi(u)/u turns it into weighted least
squares, solved again with updated weights until beta and s stop moving:

    1. beta_0 = OLS,  s_0 = scale(r_0)
    2. w_i = loss.weight(u_i)  with u = r / s_t
    3. beta_{t+1} = argmin sum_i w_i (y_i - x_i^T beta)^2;  s_{t+1} = scale(r_{t+1})

This is the algorithm of R's ``MASS::rlm`` and statsmodels' ``RLM``, whose fixed point
it reaches (tested on stackloss to 1e-6).  Covariances H1, H2, H3 follow Huber (1981,
section 7.6) as statsmodels implements them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import linalg, stats
from sklearn.base import BaseEstimator, RegressorMixin

from .._config import config_context
from .._core import ResidualLoss
from .._registry import get
from .._validation import LossgradWarning
from ..kernels._parallel import blas_single_thread
from ._backend import DaskBackend, NumpyBackend
from ._scale import _is_dask

__all__ = ["MEstimator", "ConvergenceWarning", "CONVENTIONAL_PARAMS"]

#: Parameters used when a loss is named by string: the 95%-efficiency constants of R and statsmodels.
CONVENTIONAL_PARAMS: dict[str, dict[str, float]] = {"huber": {"delta": 1.345}}

_WEIGHT_CAP = 1e12  # losses with psi(r)/r -> inf at 0 (L1, quantile) get a finite weight there


class ConvergenceWarning(LossgradWarning):
    """IRLS stopped before the coefficients and scale settled, or the scale collapsed to 0."""


class MEstimator(RegressorMixin, BaseEstimator):
    """Robust linear regression by M-estimation with any residual loss of the catalog.

    Parameters
    ----------
    loss : str or ResidualLoss
        A catalog name ("huber" uses delta = 1.345, the others their registry
        defaults, which are the conventional 95%-efficiency constants) or an instance.
    scale : "mad", "huber", float or callable
        "mad": median(|r|)/0.6745 (centre 0, as R and statsmodels); "huber": Huber's
        proposal 2 (d = 2.5, as statsmodels ``HuberScale``); a float holds the scale
        fixed; a callable maps residuals to a scale.
    update_scale : bool
        Re-estimate the scale at every iteration (True) or hold the starting value.
    fit_intercept : bool
        Add an unpenalised intercept.
    cov : "H1", "H2" or "H3"
        Huber's covariance estimators, as statsmodels ``RLM.fit(cov=...)``.
    tol : float
        Stop when max|beta_t+1 - beta_t| <= tol * max(1, max|beta|) and the scale
        changes by at most tol * scale.
    max_iter : int
        Iteration cap; reaching it raises a :class:`ConvergenceWarning`.

    Attributes
    ----------
    coef_, intercept_, scale_, weights_ (final IRLS weights), n_iter_, converged_,
    cov_params_ (intercept first), bse_ (standard errors, intercept first), loss_.
    """

    def __init__(self, loss: Any = "huber", *, scale: Any = "mad", update_scale: bool = True, fit_intercept: bool = True, cov: str = "H1", tol: float = 1e-8, max_iter: int = 200):
        self.loss = loss
        self.scale = scale
        self.update_scale = update_scale
        self.fit_intercept = fit_intercept
        self.cov = cov
        self.tol = tol
        self.max_iter = max_iter

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any) -> MEstimator:
        loss = self._resolve_loss()
        self._check_settings()
        backend = self._backend(X, y)
        with blas_single_thread():  # the products run as lossgrad kernels (lossgrad.models._products)
            return self._fit(backend, loss)

    def _fit(self, backend, loss: ResidualLoss) -> MEstimator:
        n, p = backend.n, backend.p + int(self.fit_intercept)
        self.n_features_in_ = backend.p
        df_resid = n - p

        G, b = backend.normal_equations(None)
        self._check_design(G, backend)
        xtx_inv = linalg.inv(G)
        beta = linalg.solve(G, b, assume_a="pos")
        r = backend.residuals(beta)
        s = self._scale_of(backend, r, df_resid, start=True)
        collapse = 1e-12 * backend.y_scale()

        def weight_fn(u: np.ndarray) -> np.ndarray:
            with config_context(assume_valid=True):
                return np.minimum(loss.weight(0.0, u), _WEIGHT_CAP)

        converged, it = False, 0
        while it < self.max_iter:
            if s <= collapse:
                warnings.warn("the residual scale is 0 (a perfect fit of the data): IRLS stops at the least-squares start; "
                              "robust weights are undefined", ConvergenceWarning, stacklevel=3)
                break
            it += 1
            w = backend.weights(lambda rr, s=s: weight_fn(rr / s), r)
            G, b = backend.normal_equations(w)
            try:
                beta_new = linalg.solve(G, b, assume_a="pos")
            except (linalg.LinAlgError, ValueError):
                warnings.warn(f"the weighted normal equations became singular at iteration {it} (too many zero weights); "
                              "stopping at the previous iterate", ConvergenceWarning, stacklevel=3)
                break
            r = backend.residuals(beta_new)
            s_new = self._scale_of(backend, r, df_resid, start=False) if self.update_scale else s
            step = float(np.max(np.abs(beta_new - beta)))
            done = step <= self.tol * max(1.0, float(np.max(np.abs(beta_new)))) and abs(s_new - s) <= self.tol * max(s, 1e-300)
            beta, s = beta_new, s_new
            if done:
                converged = True
                break
        else:
            warnings.warn(f"IRLS did not converge in max_iter={self.max_iter} iterations (tol={self.tol}); "
                          "increase max_iter or loosen tol", ConvergenceWarning, stacklevel=3)

        self.loss_ = loss
        self.n_iter_, self.converged_, self.scale_ = it, converged, float(s)
        self.intercept_ = float(beta[0]) if self.fit_intercept else 0.0
        self.coef_ = beta[1:] if self.fit_intercept else beta
        self.params_ = beta
        self.nobs_, self.df_resid_ = n, df_resid
        if s > collapse:
            u = r / s
            self.weights_ = backend.materialize(backend.weights(weight_fn, u))
            self.cov_params_ = self._covariance(backend, loss, u, s, xtx_inv, n, p, weight_fn)
        else:
            self.scale_ = 0.0
            self.weights_ = np.ones(n)
            self.cov_params_ = np.full((p, p), np.nan)
        self.bse_ = np.sqrt(np.diag(self.cov_params_))
        return self

    def predict(self, X: Any) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "coef_")
        if _is_dask(X):
            return X @ self.coef_ + self.intercept_
        X = self._validate_X(X, reset=False)
        return X @ self.coef_ + self.intercept_

    # ------------------------------------------------------------ inference
    def _covariance(self, backend, loss, u, s, xtx_inv, n, p, weight_fn) -> np.ndarray:
        def psi(v):
            with config_context(assume_valid=True):
                return np.asarray(loss.grad(0.0, v))

        def dpsi(v):
            with config_context(assume_valid=True):
                return np.asarray(loss.hess(0.0, v))

        ss_psi, s_dpsi, ss_dpsi = backend.score_sums(psi, dpsi, u)
        m = s_dpsi / n
        var_dpsi = ss_dpsi / n - m * m
        if m <= 0:
            warnings.warn("the mean of psi'(r/s) is not positive: standard errors are undefined", ConvergenceWarning, stacklevel=4)
            return np.full((p, p), np.nan)
        df_model_plus_1 = p if self.fit_intercept else p + 1
        k = 1.0 + df_model_plus_1 / n * var_dpsi / (m * m)
        base = ss_psi * s * s / (n - p)
        if self.cov == "H1":
            return k * k * base / (m * m) * xtx_inv
        W, _ = backend.normal_equations(backend.weights(dpsi, u))
        W_inv = linalg.inv(W)
        if self.cov == "H2":
            return k * base / m * W_inv
        return base / k * (W_inv @ linalg.inv(xtx_inv) @ W_inv)

    def summary(self, feature_names: list[str] | None = None) -> str:
        """A coefficient table: estimate, standard error, z, P>|z| and the 95% interval."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "coef_")
        names = list(feature_names) if feature_names is not None else [f"x{j + 1}" for j in range(self.n_features_in_)]
        if len(names) != self.n_features_in_:
            raise ValueError(f"feature_names must have {self.n_features_in_} entries, got {len(names)}")
        if self.fit_intercept:
            names = ["const", *names]
        z = self.params_ / self.bse_
        pval = 2 * stats.norm.sf(np.abs(z))
        q = stats.norm.ppf(0.975)
        lines = [
            f"M-estimation (IRLS): loss={self.loss_!r}, scale={self.scale!r} -> {self.scale_:.6g}, cov={self.cov}",
            f"n={self.nobs_}, df_resid={self.df_resid_}, iterations={self.n_iter_}, converged={self.converged_}",
            f"{'':>10} {'coef':>11} {'std err':>10} {'z':>8} {'P>|z|':>6} {'[0.025':>11} {'0.975]':>11}",
        ]
        for name, b, se, zz, pv in zip(names, self.params_, self.bse_, z, pval):
            lines.append(f"{name[:10]:>10} {b:11.6g} {se:10.4g} {zz:8.3f} {pv:6.3f} {b - q * se:11.6g} {b + q * se:11.6g}")
        return "\n".join(lines)

    # ------------------------------------------------------------ checking
    def _resolve_loss(self) -> ResidualLoss:
        if isinstance(self.loss, str):
            loss = get(self.loss, **CONVENTIONAL_PARAMS.get(self.loss, {}))
        else:
            loss = self.loss
        if not isinstance(loss, ResidualLoss):
            raise TypeError(f"loss must name or be a residual loss (a function of y_pred - y_true) with a weight; "
                            f"got {loss!r}")
        return loss

    def _check_settings(self) -> None:
        if self.cov not in ("H1", "H2", "H3"):
            raise ValueError(f"cov must be 'H1', 'H2' or 'H3', got {self.cov!r}")
        if not (isinstance(self.scale, (int, float)) and not isinstance(self.scale, bool)) and self.scale not in ("mad", "huber") and not callable(self.scale):
            raise ValueError(f"scale must be 'mad', 'huber', a positive number or a callable, got {self.scale!r}")
        if isinstance(self.scale, (int, float)) and not self.scale > 0:
            raise ValueError(f"a fixed scale must be > 0, got {self.scale!r}")
        if not (isinstance(self.max_iter, (int, np.integer)) and self.max_iter >= 1):
            raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        if not (isinstance(self.tol, (int, float)) and self.tol > 0):
            raise ValueError(f"tol must be > 0, got {self.tol!r}")

    def _scale_of(self, backend, r, df_resid: float, start: bool) -> float:
        if isinstance(self.scale, (int, float)):
            return float(self.scale)
        return backend.scale(r, self.scale, df_resid)

    def _validate_X(self, X: Any, reset: bool) -> np.ndarray:
        from sklearn.utils.validation import validate_data

        return validate_data(self, X, reset=reset, dtype=np.float64, ensure_min_samples=1)

    def _backend(self, X: Any, y: Any):
        if _is_dask(X):
            import dask.array as da

            if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
                raise ValueError(f"X must be 2-D and y 1-D with as many rows; got {X.shape} and {y.shape}")
            X, y = X.astype(float), y.astype(float)
            if not bool(da.isfinite(X).all().compute()) or not bool(da.isfinite(y).all().compute()):
                raise ValueError("X or y contains NaN or infinite values")
            backend = DaskBackend(X, y, self.fit_intercept)
        else:
            from sklearn.utils.validation import validate_data

            X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, ensure_min_samples=2)
            backend = NumpyBackend(X, y, self.fit_intercept)
        p = backend.p + int(self.fit_intercept)
        if backend.n <= p:
            raise ValueError(f"M-estimation needs more rows than coefficients: X has {backend.n} rows and the model "
                             f"{p} coefficients{' (intercept included)' if self.fit_intercept else ''}")
        return backend

    def _check_design(self, G: np.ndarray, backend) -> None:
        n = backend.n
        if self.fit_intercept:
            mean = G[0, 1:] / n
            var = np.diag(G)[1:] / n - mean * mean
            const = np.flatnonzero(var <= 1e-12 * np.maximum(1.0, np.diag(G)[1:] / n))
            if const.size:
                raise ValueError(f"column(s) {const.tolist()} of X are constant: they duplicate the intercept "
                                 "(drop them or use fit_intercept=False)")
        eig = np.linalg.eigvalsh(G)
        if eig[0] <= eig[-1] * 1e-13:
            raise ValueError("X is rank deficient (collinear columns): the coefficients are not identified")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


