r"""lossgrad losses as XGBoost custom objectives and metrics.

>>> import numpy as np, xgboost as xgb
>>> from lossgrad.integrations import xgboost as lgx
>>> obj = lgx.objective("pseudo_huber", hessian="exact")
>>> X = np.arange(20.0)[:, None]; y = np.sin(X[:, 0])
>>> dtrain = xgb.DMatrix(X, y, base_margin=lgx.base_margin(obj.loss, y))
>>> booster = xgb.train({"tree_method": "hist"}, dtrain, 3, obj=obj)

One callable serves both APIs: ``xgb.train(params, dtrain, obj=objective(...))``
(called as ``obj(predt, dtrain)``) and ``XGBRegressor(objective=objective(...))`` /
``XGBClassifier`` (called as ``obj(y_true, y_pred, sample_weight=None)``).  The same
holds for :func:`metric` (``custom_metric=`` and ``eval_metric=``).

Ranking losses (``listnet``, ``ranknet``, ``lambdaloss``, ``xendcg``, ``approx_ndcg``) need the query
groups, which only the ``xgb.train`` path hands over: ``DMatrix(X, relevance,
group=sizes)`` or ``qid=``; the weights of a ranking DMatrix are one per group.

Conventions (``docs/engines.md``): the prediction handed to the objective is the raw
margin (the link is the loss's own: logistic loss takes logits); multi-output models
hand (n, K) margins, with labels (n,) for a row loss (``num_class=K``) or (n, K) for
a pointwise loss (multi-target regression); sample weights multiply grad and hess.
A custom objective does not estimate its intercept: pass :func:`base_score` (or the
per-row :func:`base_margin`) so that boosting starts at the loss's optimal constant.
XGBoost's ``reg:squarederror`` is half the squared error: use
``0.5 * lossgrad.get("squared_error")`` to reproduce it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._config import config_context, get_config
from ._boosting import BoostingObjective, Hessian, as_boosting_loss, fit_intercept_only

__all__ = ["objective", "metric", "base_score", "base_margin", "XGBObjective", "XGBMetric", "Hessian"]


#: Below this many predictions the objective and the metric run lossgrad's kernels in the
#: calling thread: XGBoost's OpenMP threads spin for milliseconds after each of its
#: parallel regions, and a kernel split over the same cores waits for them (measured,
#: huber objective, 2 cores: 6.2 ms a call split, 0.29 ms serial at 10^5 predictions;
#: 6.9 against 2.8 ms at 10^6).  Above it the split pays for the wait.
SERIAL_BELOW = 1 << 22


def _in_engine(size: int) -> Any:
    """The configuration for one call from inside XGBoost (module constant SERIAL_BELOW);
    a ``kernel_threads`` the user set is kept."""
    if get_config().kernel_threads is not None or size >= SERIAL_BELOW:
        return contextlib.nullcontext()
    return config_context(kernel_threads=1)


def _is_dmatrix(x: Any) -> bool:
    import xgboost

    return isinstance(x, xgboost.DMatrix)


def _group_ptr(dtrain: Any) -> np.ndarray | None:
    ptr = dtrain.get_uint_info("group_ptr")
    return ptr if ptr.size else None


def _reshape_label(label: np.ndarray, predt: np.ndarray) -> np.ndarray:
    if predt.ndim == 2 and label.size == predt.size:
        return label.reshape(predt.shape)
    return label


@dataclass(frozen=True)
class XGBObjective(BoostingObjective):
    """A lossgrad loss as an XGBoost objective (see :func:`objective`)."""

    def __call__(self, a: Any, b: Any, sample_weight: Any = None) -> tuple[np.ndarray, np.ndarray]:
        if _is_dmatrix(b):  # xgb.train: obj(predt, dtrain)
            predt = np.asarray(a)
            label = _reshape_label(b.get_label(), predt)
            w = b.get_weight()
            with _in_engine(predt.size):
                return self.grad_hess(label, predt, w if w.size else None, _group_ptr(b), group_pointers=True)
        with _in_engine(np.size(b)):
            return self.grad_hess(a, b, sample_weight)  # scikit-learn API: obj(y_true, y_pred, sample_weight)


def objective(loss: Any, hessian: Any = "exact", *, floor: float = 1e-6, hessian_scale: float = 1.0) -> XGBObjective:
    """An XGBoost custom objective computing the loss's exact gradient and the chosen Hessian.

    Parameters
    ----------
    loss:
        A pointwise, row or ranking lossgrad loss, or a registered name.
    hessian:
        "exact" (``loss.hess``; row losses its diagonal), "floor" (max(exact, floor)),
        "expected" (Fisher Hessian) or "upper_bound" (a majoriser: the smoothness
        constant, or for row losses the absolute row sums of the Hessian, which for
        softmax cross-entropy is XGBoost's 2 p (1 - p)).  See
        :mod:`lossgrad.integrations._boosting`.
    floor, hessian_scale:
        The floor of ``"floor"`` and a positive factor applied to every Hessian.

    Raises TypeError/ValueError at once for a loss without a Hessian, a batch loss, or
    an option the loss cannot honour; labels outside the loss's domain and a 1-D
    prediction given to a row loss raise ValueError at the first call.
    """
    return XGBObjective(loss, hessian, floor, hessian_scale)


@dataclass(frozen=True)
class XGBMetric:
    """The weighted mean loss as an XGBoost metric (see :func:`metric`)."""

    loss: Any
    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "_objective", BoostingObjective(self.loss))

    @property
    def __name__(self) -> str:  # XGBoost's scikit-learn wrapper names the metric by __name__
        return self.name

    def __call__(self, a: Any, b: Any, sample_weight: Any = None) -> Any:
        if _is_dmatrix(b):  # custom_metric(predt, dtrain) -> (name, value)
            predt = np.asarray(a)
            w = b.get_weight()
            label = _reshape_label(b.get_label(), predt)
            with _in_engine(predt.size):
                return self.name, self._objective.value(label, predt, w if w.size else None, _group_ptr(b),
                                                        group_pointers=True)
        with _in_engine(np.size(b)):
            return self._objective.value(a, b, sample_weight)


def metric(loss: Any, name: str | None = None) -> XGBMetric:
    """The weighted mean of ``loss`` on the raw margins, for ``custom_metric=`` or ``eval_metric=``.

    Lower is better.  With a built-in objective XGBoost hands metrics the transformed
    prediction (probabilities): pick the loss accordingly (e.g. ``from_logits=False``).
    """
    loss = as_boosting_loss(loss)
    return XGBMetric(loss, name or f"lossgrad-{loss.name}")


def base_score(loss: Any, y_true: Any, sample_weight: Any = None) -> float:
    """The optimal constant raw score of a pointwise loss: ``params["base_score"]`` for a custom objective.

    With a custom objective XGBoost uses ``base_score`` as a raw margin (no link).  A
    row loss has one constant per class: use :func:`base_margin`.
    """
    loss = as_boosting_loss(loss)
    if loss.shape.value == "row":
        raise ValueError(f"{loss.name} is a row loss with one intercept per class; use base_margin(...)")
    return float(fit_intercept_only(loss, y_true, sample_weight))


def base_margin(loss: Any, y_true: Any, sample_weight: Any = None, *, n_classes: int | None = None) -> np.ndarray:
    """The optimal constant raw score repeated per row: (n,) or (n, K), for ``DMatrix(base_margin=...)``."""
    loss = as_boosting_loss(loss)
    y = np.asarray(y_true)
    c = fit_intercept_only(loss, y, sample_weight, n_classes=n_classes)
    n = y.shape[0]
    if np.ndim(c) == 0:
        return np.full(y.shape if y.ndim == 2 else (n,), float(c))
    return np.tile(np.asarray(c, dtype=np.float64), (n, 1))
