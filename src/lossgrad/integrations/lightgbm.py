r"""lossgrad losses as LightGBM custom objectives and metrics.

One callable serves both APIs: ``lgb.train({"objective": objective(...)}, dataset)``
(called as ``obj(preds, train_data)``) and ``LGBMRegressor(objective=objective(...))``
/ ``LGBMClassifier`` / ``lightgbm.dask`` (called as ``obj(y_true, y_pred, weight)``).

Conventions (``docs/engines.md``): predictions are raw scores, (n, K) for a
multiclass model (``num_class=K``, labels (n,)).  A custom objective starts from
score 0: give the dataset :func:`init_score` (``Dataset(init_score=...)`` or
``fit(init_score=...)``) to start at the loss's optimal constant; remember to add it
to ``predict(raw_score=True)`` yourself, as LightGBM does not store it.  LightGBM's
built-ins map to: ``rank_xendcg`` = ``objective("xendcg")`` up to the correction terms
LightGBM adds to its gradient (same Hessian p (1 - p); ranking losses read the groups
of ``Dataset(group=...)`` / ``LGBMRanker.fit(group=...)``); ``huber`` (alpha) = ``Huber(delta=alpha)`` with
``hessian="expected"`` (its Hessian is the constant 1 = psi'(0), not the exact
indicator); ``fair`` (fair_c) = ``Fair(c=fair_c)`` with ``hessian="exact"``;
``multiclass`` = ``cross_entropy`` with ``hessian="exact", hessian_scale=K/(K-1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._boosting import BoostingObjective, Hessian, as_boosting_loss, fit_intercept_only

__all__ = ["objective", "metric", "init_score", "LGBMObjective", "LGBMMetric", "Hessian"]


def _is_dataset(x: Any) -> bool:
    import lightgbm

    return isinstance(x, lightgbm.Dataset)


@dataclass(frozen=True)
class LGBMObjective(BoostingObjective):
    """A lossgrad loss as a LightGBM objective (see :func:`objective`)."""

    def __call__(self, a: Any, b: Any, weight: Any = None, group: Any = None) -> tuple[np.ndarray, np.ndarray]:
        if _is_dataset(b):  # lgb.train: objective(preds, train_data)
            return self.grad_hess(b.get_label(), a, b.get_weight(), b.get_group())
        return self.grad_hess(a, b, weight, group)  # scikit-learn API: objective(y_true, y_pred, weight, group)


def objective(loss: Any, hessian: Any = "exact", *, floor: float = 1e-6, hessian_scale: float = 1.0) -> LGBMObjective:
    """A LightGBM custom objective: the loss's exact gradient and the chosen Hessian.

    The options are those of :func:`lossgrad.integrations.xgboost.objective`.
    """
    return LGBMObjective(loss, hessian, floor, hessian_scale)


@dataclass(frozen=True)
class LGBMMetric:
    """The weighted mean loss as a LightGBM metric: (name, value, is_higher_better=False)."""

    loss: Any
    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "_objective", BoostingObjective(self.loss))

    def __call__(self, a: Any, b: Any, weight: Any = None, group: Any = None) -> tuple[str, float, bool]:
        if _is_dataset(b):  # feval(preds, eval_data)
            return self.name, self._objective.value(b.get_label(), a, b.get_weight(), b.get_group()), False
        return self.name, self._objective.value(a, b, weight, group), False


def metric(loss: Any, name: str | None = None) -> LGBMMetric:
    """The weighted mean of ``loss`` on raw scores, for ``feval=`` or ``eval_metric=``."""
    loss = as_boosting_loss(loss)
    return LGBMMetric(loss, name or f"lossgrad-{loss.name}")


def init_score(loss: Any, y_true: Any, sample_weight: Any = None, *, n_classes: int | None = None) -> np.ndarray:
    """The loss's optimal constant raw score per row: (n,) or (n, K) for ``init_score=``."""
    loss = as_boosting_loss(loss)
    y = np.asarray(y_true)
    c = fit_intercept_only(loss, y, sample_weight, n_classes=n_classes)
    if np.ndim(c) == 0:
        return np.full(y.shape[0], float(c))
    return np.tile(np.asarray(c, dtype=np.float64), (y.shape[0], 1))
