"""Shared machinery of the linear estimators: parameter checks, loss resolution, fitting."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .._core import Loss
from .._registry import get
from ..kernels._parallel import blas_single_thread
from ..robust._gradient import METHODS
from ._objective import LinearObjective
from ._robust_gradient import RobustGradientObjective
from ._solvers import SOLVERS, FitWarning, solve

__all__ = ["LinearBase"]


class LinearBase(BaseEstimator):
    """Common constructor arguments and the fit routine of the linear models."""

    _default_loss = "squared_error"

    def __init__(self, loss: Any = None, *, alpha: float | None = None, l1_ratio: float = 0.0, fit_intercept: bool = True,
                 solver: str = "auto", max_iter: int = 500, tol: float = 1e-10, learning_rate: float = 0.1,
                 gradient: str = "mean", gradient_params: dict | None = None):
        self.loss = loss
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.learning_rate = learning_rate
        self.gradient = gradient
        self.gradient_params = gradient_params

    # ------------------------------------------------------------ helpers
    def _resolve_loss(self, shape: str) -> Loss:
        spec = self._default_loss if self.loss is None else self.loss
        loss = get(spec) if isinstance(spec, str) else spec
        if not isinstance(loss, Loss):
            raise TypeError(f"loss must be a lossgrad loss or a catalog name, got {spec!r}")
        if loss.shape.value != shape:
            raise ValueError(f"{type(self).__name__} needs a {shape} loss; {loss.name!r} is a {loss.shape.value} loss")
        if not loss.props.has_grad:
            raise ValueError(f"loss {loss.name!r} has no gradient and cannot be trained")
        return loss

    #: alpha used when the constructor gets None: 0 for regression; classifiers use a small
    #: ridge (1e-4, as scikit-learn's SGDClassifier) because an unpenalised classification loss
    #: has no minimiser on separable data (the weights diverge).
    _default_alpha = 0.0

    @property
    def _alpha(self) -> float:
        return self._default_alpha if self.alpha is None else self.alpha

    def _check_params(self) -> None:
        if self.alpha is not None and not (isinstance(self.alpha, numbers.Real) and self.alpha >= 0 and np.isfinite(self.alpha)):
            raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
        if not (isinstance(self.l1_ratio, numbers.Real) and 0 <= self.l1_ratio <= 1):
            raise ValueError(f"l1_ratio must lie in [0, 1], got {self.l1_ratio!r}")
        if not (isinstance(self.max_iter, numbers.Integral) and self.max_iter >= 1):
            raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        if not (isinstance(self.tol, numbers.Real) and self.tol > 0):
            raise ValueError(f"tol must be > 0, got {self.tol!r}")
        if not isinstance(self.solver, str):
            raise ValueError(f"solver must be a string, got {self.solver!r}")
        if self.gradient not in METHODS:
            raise ValueError(f"gradient must be one of {METHODS} (how the per-sample gradients are averaged), "
                             f"got {self.gradient!r}")
        if self.gradient_params is not None and not isinstance(self.gradient_params, dict):
            raise ValueError(f"gradient_params must be None or a dict of robust_mean options, got {self.gradient_params!r}")

    def _pick_solver(self, loss: Loss) -> str:
        l1 = self._alpha * self.l1_ratio > 0
        props = loss.props
        solver = self.solver
        if self.gradient != "mean":
            if l1:
                raise ValueError(f"gradient={self.gradient!r} cannot handle the L1 penalty (alpha * l1_ratio > 0)")
            if solver == "auto":
                return "sgd"  # robust gradient descent: plain steps along the robust estimate
            if solver in SOLVERS:
                raise ValueError(f"gradient={self.gradient!r} needs a first-order solver (an optimizer of "
                                 f"lossgrad.optim: sgd, momentum, adam, ...); got solver={solver!r}")
        if solver == "auto":
            if l1:
                return "proximal"
            return "newton" if props.has_hess and props.convex and props.differentiability >= 1 else "lbfgs"
        if solver in ("newton", "lbfgs") and l1:
            raise ValueError(f"solver={solver!r} cannot handle the L1 penalty (alpha * l1_ratio > 0); use solver='proximal'")
        if solver == "newton":
            if not props.has_hess:
                raise ValueError(f"solver='newton' needs a Hessian; loss {loss.name!r} declares none")
            if not props.convex:
                warnings.warn(f"loss {loss.name!r} is not convex: Newton's method may stop at a saddle or a local "
                              "minimum; a first-order solver is safer", FitWarning, stacklevel=3)
        elif solver not in SOLVERS:
            from .. import optim

            if solver not in optim.OPTIMIZERS:
                raise ValueError(f"solver must be 'auto', one of {SOLVERS} or an optimizer of lossgrad.optim "
                                 f"(sgd, momentum, adam, ...); got {solver!r}")
        return solver

    def _fit_objective(self, loss: Loss, X: np.ndarray, y: Any, sample_weight: Any, n_outputs: int | None) -> np.ndarray:
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if not np.sum(sw) > 0:
            raise ValueError("sample_weight sums to zero")
        solver = self._pick_solver(loss)
        args = (loss, X, y, sw, float(self._alpha), float(self.l1_ratio), self.fit_intercept, n_outputs)
        if self.gradient == "mean":
            obj = LinearObjective(*args)
        else:
            obj = RobustGradientObjective(*args, gradient=self.gradient, gradient_params=dict(self.gradient_params or {}))
        theta0 = np.zeros(obj.size)
        with blas_single_thread():  # the products run as lossgrad kernels (models/_products.py)
            theta, n_iter, converged, history = solve(obj, solver, theta0, tol=self.tol, max_iter=self.max_iter,
                                                      learning_rate=self.learning_rate)
            self.objective_ = obj.value(theta)
        if not converged:
            warnings.warn(f"solver {solver!r} stopped after {n_iter} iterations without reaching tol={self.tol}",
                          FitWarning, stacklevel=3)
        self.solver_, self.n_iter_, self.converged_, self.loss_ = solver, n_iter, converged, loss
        self.loss_curve_ = history  # the objective J at each accepted iterate
        return theta

    def _validate_fit_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        return validate_data(self, X, y, dtype=np.float64, y_numeric=False)

    def _decision(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_ + self.intercept_
