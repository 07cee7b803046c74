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

    @property
    def size(self) -> int:
        return self.n_coef * (self.n_outputs or 1)

    def unpack(self, theta: np.ndarray) -> tuple[Any, np.ndarray]:
        shape = (self.n_coef,) if self.n_outputs is None else (self.n_coef, self.n_outputs)
        t = theta.reshape(shape)
        return (t[0] if self.fit_intercept else 0.0), (t[1:] if self.fit_intercept else t)

    def scores(self, theta: np.ndarray) -> np.ndarray:
        b, W = self.unpack(theta)
        return self.X @ W + b

    def _penalty_mask(self) -> np.ndarray:
        shape = (self.n_coef,) if self.n_outputs is None else (self.n_coef, self.n_outputs)
        mask = np.ones(shape)
        if self.fit_intercept:
            mask[0] = 0.0
        return mask.ravel()

    def _back(self, G: np.ndarray) -> np.ndarray:
        """X1^T G for G (n,) or (n, K)."""
        top = [G.sum(axis=0, keepdims=True)] if self.fit_intercept else []
        XG = self.X.T @ G
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

    def newton_system(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """(smooth value, gradient, Hessian) from one pass over the scores (pointwise losses).

        The Hessian X1^T diag(h) X1 is assembled from blocks (sum h, X^T h, X^T diag(h) X)
        without copying X; the last block accumulates over row chunks that stay in cache.
        """
        F = self.scores(theta)
        with config_context(assume_valid=True):
            v, g, h = self.loss.value_grad_hess(self.y, F, self.sw)
        mask = self._penalty_mask()
        value = float(np.sum(v)) / self.sw_total + 0.5 * self.l2 * float(np.sum(mask * theta * theta))
        grad = self._back(g) / self.sw_total + self.l2 * mask * theta
        h = h / self.sw_total
        Hxx = _weighted_gram(self.X, h)
        if self.fit_intercept:
            xh = self.X.T @ h
            H = np.empty((self.n_coef, self.n_coef))
            H[0, 0], H[0, 1:], H[1:, 0], H[1:, 1:] = np.sum(h), xh, xh, Hxx
        else:
            H = Hxx
        H[np.diag_indices_from(H)] += self.l2 * mask
        return value, grad, H

    def hessp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Hessian-vector product of the smooth part (row losses), without forming the Hessian."""
        F = self.scores(theta)
        b, V = self.unpack(v)
        dF = self.X @ V + b
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


_CHUNK = 65536


def _weighted_gram(X: np.ndarray, h: np.ndarray) -> np.ndarray:
    """X^T diag(h) X accumulated over row chunks with one reused buffer (no n x p temporary)."""
    n, p = X.shape
    out = np.zeros((p, p))
    buf = np.empty((min(_CHUNK, n), p))
    for start in range(0, n, _CHUNK):
        Xc = X[start : start + _CHUNK]
        b = buf[: len(Xc)]
        np.multiply(Xc, h[start : start + _CHUNK, None], out=b)
        out += b.T @ Xc
    return out
