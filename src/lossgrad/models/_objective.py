r"""The penalised objective of the linear estimators, with its exact gradient and Hessian.

For parameters theta = (b, W) (intercept first; W is (p,) for pointwise losses and
(p, K) for row losses), scores F = X W + b and sample weights s:

    J(theta) = sum_i s_i L(y_i, F_i) / sum_i s_i + alpha (rho ||W||_1 + (1 - rho)/2 ||W||_2^2)

the intercept unpenalised, as scikit-learn's SGD estimators and ElasticNet define it.
``smooth`` is J without the L1 term; its gradient is X1^T (s * L') / sum s + alpha (1-rho) W
and its Hessian X1^T diag(s * L'') X1 / sum s + alpha (1-rho) [0 (+) I], with the loss's
exact ``grad`` and ``hess`` (``hvp`` for row losses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._config import config_context
from . import _products

__all__ = ["LinearObjective"]


@dataclass
class LinearObjective:
    loss: Any
    X: np.ndarray
    y: Any
    sw: np.ndarray
    alpha: float
    l1_ratio: float
    fit_intercept: bool
    n_outputs: int | None = None  # K for row losses, None for pointwise

    def __post_init__(self) -> None:
        self.sw_total = float(np.sum(self.sw))
        self.p = self.X.shape[1]
        self.n_coef = self.p + int(self.fit_intercept)
        self.l2 = self.alpha * (1.0 - self.l1_ratio)
        self.l1 = self.alpha * self.l1_ratio
        self._last_scores: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def size(self) -> int:
        return self.n_coef * (self.n_outputs or 1)

    def unpack(self, theta: np.ndarray) -> tuple[Any, np.ndarray]:
        shape = (self.n_coef,) if self.n_outputs is None else (self.n_coef, self.n_outputs)
        t = theta.reshape(shape)
        return (t[0] if self.fit_intercept else 0.0), (t[1:] if self.fit_intercept else t)

    def scores(self, theta: np.ndarray) -> np.ndarray:
        """F = X W + b.  The last (theta, F) is kept: trust-region Newton-CG asks for the
        value, the gradient and every Hessian-vector product of one iterate at the same
        theta (SoftmaxClassifier, 2 x 10^5 x 20, K = 5: 83 products X W of 5 ms, 33 of
        them repeats).  Callers never write into F."""
        last = self._last_scores
        if last is not None and last[0].shape == theta.shape and np.array_equal(last[0], theta):
            return last[1]
        b, W = self.unpack(theta)
        F = _products.matmul(self.X, W, b)
        self._last_scores = (theta.copy(), F)
        return F

    def _penalty_mask(self) -> np.ndarray:
        shape = (self.n_coef,) if self.n_outputs is None else (self.n_coef, self.n_outputs)
        mask = np.ones(shape)
        if self.fit_intercept:
            mask[0] = 0.0
        return mask.ravel()

    def _back(self, G: np.ndarray) -> np.ndarray:
        """X1^T G for G (n,) or (n, K)."""
        top = [G.sum(axis=0, keepdims=True)] if self.fit_intercept else []
        XG = _products.rmatmul(self.X, G)
        return np.concatenate(top + [XG.reshape((self.p,) + G.shape[1:])], axis=0).ravel()

    def smooth_value_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        F = self.scores(theta)
        with config_context(assume_valid=True):
            v, g = self.loss.value_grad(self.y, F, self.sw)
        mask = self._penalty_mask()
        value = float(np.sum(v)) / self.sw_total + 0.5 * self.l2 * float(np.sum(mask * theta * theta))
        return value, self._back(g) / self.sw_total + self.l2 * mask * theta

    def smooth_value(self, theta: np.ndarray) -> float:
        F = self.scores(theta)
        with config_context(assume_valid=True):
            v = self.loss.value(self.y, F, self.sw)
        mask = self._penalty_mask()
        return float(np.sum(v)) / self.sw_total + 0.5 * self.l2 * float(np.sum(mask * theta * theta))

    def l1_value(self, theta: np.ndarray) -> float:
        return self.l1 * float(np.sum(self._penalty_mask() * np.abs(theta)))

    def value(self, theta: np.ndarray) -> float:
        return self.smooth_value_grad(theta)[0] + self.l1_value(theta)

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """The exact Hessian of the smooth part (pointwise losses)."""
        return self.newton_system(theta)[2]

    def loss_terms(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The weighted per-sample (value, grad, hess) of the loss at scores F, in one fused call."""
        with config_context(assume_valid=True):
            return self.loss.value_grad_hess(self.y, F, self.sw)

    def smooth_value_of_terms(self, theta: np.ndarray, terms: tuple) -> float:
        """The smooth part of J at theta from its :meth:`loss_terms`."""
        mask = self._penalty_mask()
        return float(np.sum(terms[0])) / self.sw_total + 0.5 * self.l2 * float(np.sum(mask * theta * theta))

    def newton_system(self, theta: np.ndarray, F: np.ndarray | None = None, hessian_rows: np.ndarray | None = None,
                      terms: tuple | None = None) -> tuple[float, np.ndarray, np.ndarray]:
        """(smooth value, gradient, Hessian) from one pass over X (pointwise losses).

        ``F`` are the scores at theta, or ``terms`` the loss terms there, when the caller
        has them (a line search does).
        X^T g, X^T h and X^T diag(h) X are accumulated together over row chunks that
        stay in cache, so X is read once, without an n x p temporary.

        ``hessian_rows`` (sorted row indices) estimates the block X^T diag(h) X from
        those rows, scaled by n / len(rows) (sub-sampled Newton: Byrd, Chin, Neveitt &
        Nocedal 2011; Roosta-Khorasani & Mahoney 2019); the value, the gradient and the
        other Hessian entries stay exact.  Used by the Newton solver on large n, where
        the Gram matrix costs p times more than the gradient.
        """
        if terms is None:
            terms = self.loss_terms(self.scores(theta) if F is None else F)
        v, g, h = terms
        mask = self._penalty_mask()
        value = float(np.sum(v)) / self.sw_total + 0.5 * self.l2 * float(np.sum(mask * theta * theta))
        if hessian_rows is None:
            Hxx, xg, xh = _products.gram_and_moments(self.X, g / self.sw_total, h / self.sw_total)
        else:
            xg, xh = _products.rmatmul2(self.X, g, h)
            xg, xh = xg / self.sw_total, xh / self.sw_total
            scale = len(self.X) / (len(hessian_rows) * self.sw_total)
            Hxx = _products.gram(self._rows(hessian_rows), h[hessian_rows]) * scale
        grad = (np.concatenate(([np.sum(g) / self.sw_total], xg)) if self.fit_intercept else xg) + self.l2 * mask * theta
        if self.fit_intercept:
            H = np.empty((self.n_coef, self.n_coef))
            H[0, 0], H[0, 1:], H[1:, 0], H[1:, 1:] = np.sum(h) / self.sw_total, xh, xh, Hxx
        else:
            H = Hxx
        H[np.diag_indices_from(H)] += self.l2 * mask
        return value, grad, H

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        """X[rows], gathered once per row set."""
        cached = getattr(self, "_row_cache", None)
        if cached is None or cached[0] is not rows:
            cached = (rows, np.ascontiguousarray(self.X[rows]))
            self._row_cache = cached
        return cached[1]

    def hessp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Hessian-vector product of the smooth part (row losses), without forming the Hessian."""
        F = self.scores(theta)
        b, V = self.unpack(v)
        dF = _products.matmul(self.X, V, b)
        with config_context(assume_valid=True):
            HdF = self.loss.hvp(self.y, F, dF, self.sw)
        return self._back(HdF) / self.sw_total + self.l2 * self._penalty_mask() * v

    def prox_l1(self, theta: np.ndarray, step: float) -> np.ndarray:
        """Soft-thresholding of the penalised coordinates by step * alpha * rho."""
        t = step * self.l1 * self._penalty_mask()
        return np.sign(theta) * np.maximum(np.abs(theta) - t, 0.0)

    def lipschitz_bound(self) -> float | None:
        """An upper bound on the smoothness of the smooth part, from the loss's declared constant."""
        beta = self.loss.props.smoothness
        if beta is None:
            return None
        X1 = np.c_[np.ones(len(self.X)), self.X] if self.fit_intercept else self.X
        w = self.sw / self.sw_total
        top = np.linalg.eigvalsh((X1 * w[:, None]).T @ X1)[-1]
        return float(beta * top + self.l2)

