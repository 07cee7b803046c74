r"""Robust gradient descent for the linear estimators (``gradient=`` other than "mean").

The smooth objective's gradient is the weighted mean of per-sample gradients,

    grad J = sum_i s_i L'(y_i, F_i) x1_i / sum_i s_i + l2 penalty,   x1_i = (1, x_i),

that is the plain mean of the rows z_i = (n s_i / sum s) L'(y_i, F_i) x1_i (the outer
product L'_i x1_i^T, flattened, for row losses).  :class:`RobustGradientObjective`
returns instead :func:`lossgrad.robust.robust_mean` of those rows (median of means,
trimmed mean, coordinate-wise M-estimate) plus the penalty's gradient, so a first-order
solver of :mod:`lossgrad.optim` runs robust gradient descent (Prasad, Suggala,
Balakrishnan & Ravikumar 2020; Holland & Ikeda 2019).  The value it reports (the loss
curve) stays the ordinary objective J.  Memory: the (n, size of theta) matrix of rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._config import config_context
from ..robust._gradient import robust_mean
from ._objective import LinearObjective

__all__ = ["RobustGradientObjective"]


@dataclass
class RobustGradientObjective(LinearObjective):
    gradient: str = "median_of_means"
    gradient_params: dict[str, Any] = field(default_factory=dict)

    def _rows(self, g: np.ndarray) -> np.ndarray:
        """The rows z_i (n, size) from the weighted per-sample loss gradients s_i L'_i (n,) or
        (n, K): their plain mean is the gradient of the smooth loss term."""
        g = g * (len(self.X) / self.sw_total)
        X1 = np.c_[np.ones(len(self.X)), self.X] if self.fit_intercept else self.X
        if g.ndim == 1:
            return X1 * g[:, None]
        return (X1[:, :, None] * g[:, None, :]).reshape(len(self.X), -1)

    def smooth_value_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        with config_context(assume_valid=True):  # one pass of the loss for the value and the rows
            v, g = self.loss.value_grad(self.y, self.scores(theta), self.sw)
        estimate = robust_mean(self._rows(g), self.gradient, **self.gradient_params)
        return self.smooth_value_of_terms(theta, (v,)), estimate + self.l2 * self._penalty_mask() * theta

    def value(self, theta: np.ndarray) -> float:
        return self.smooth_value(theta) + self.l1_value(theta)
