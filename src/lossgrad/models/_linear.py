"""Linear regression and binary classification with any pointwise loss of the catalog."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target

from .. import _xp
from .._validation import NUMPY
from ._base import LinearBase

__all__ = ["LinearRegressor", "LinearClassifier"]

#: Margin/binary losses whose score is a log-odds, so sigmoid(score) is a probability.
_LOGIT_LOSSES = {"logistic", "binary_cross_entropy", "binary_focal"}


class LinearRegressor(RegressorMixin, LinearBase):
    """Linear model y ~ X w + b fitted with any pointwise loss (default squared_error).

    Minimises sum_i s_i L(y_i, x_i^T w + b) / sum_i s_i + alpha (l1_ratio ||w||_1 +
    (1 - l1_ratio)/2 ||w||^2).  With ``loss="squared_error"`` (L = r^2) this is
    scikit-learn's ``ElasticNet(alpha=alpha/2, l1_ratio)`` and ``Ridge(alpha=n*alpha/2)``:
    the factor 2 comes from lossgrad's r^2 against their r^2/2.

    ``gradient`` other than "mean" ("median_of_means", "trimmed_mean", "m_estimate", with
    the options of :func:`lossgrad.robust.robust_mean` in ``gradient_params``) runs robust
    gradient descent: a first-order solver steps along a robust estimate of the mean of the
    per-sample gradients (:mod:`lossgrad.models._robust_gradient`); all the linear
    estimators take it.
    """

    _default_loss = "squared_error"

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearRegressor:
        self._check_params()
        loss = self._resolve_loss("pointwise")
        X, y = self._validate_fit_data(X, y)
        y = np.asarray(y, dtype=np.float64)
        loss._check_target(NUMPY, y)
        theta = self._fit_objective(loss, X, y, sample_weight, None)
        self.intercept_ = float(theta[0]) if self.fit_intercept else 0.0
        self.coef_ = theta[1:] if self.fit_intercept else theta
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self._decision(X)


class LinearClassifier(ClassifierMixin, LinearBase):
    """Binary linear classifier with any margin or binary loss (default logistic).

    Labels may be any two values; the second of ``classes_`` is the positive class.
    The objective is that of :class:`LinearRegressor`; with ``loss="logistic"`` and
    ``alpha = 1/(C n)`` it is scikit-learn's ``LogisticRegression(C=C)``.
    ``predict_proba`` exists for log-odds losses (logistic, binary_cross_entropy, binary_focal).
    """

    _default_loss = "logistic"
    _default_alpha = 1e-4

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearClassifier:
        self._check_params()
        loss = self._resolve_loss("pointwise")
        X, y = self._validate_fit_data(X, y)
        check_classification_targets(y)
        classes, y01 = np.unique(y, return_inverse=True)
        if len(classes) != 2:
            raise ValueError(f"Only binary classification is supported. The type of the target is "
                             f"{type_of_target(y)} with {len(classes)} class(es) ({classes[:5].tolist()}): "
                             "LinearClassifier needs exactly 2; use SoftmaxClassifier for more")
        self.classes_ = classes
        theta = self._fit_objective(loss, X, y01.astype(np.float64), sample_weight, None)
        self.intercept_ = float(theta[0]) if self.fit_intercept else 0.0
        self.coef_ = theta[1:] if self.fit_intercept else theta
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        return self._decision(X)

    def predict(self, X: Any) -> np.ndarray:
        scores = self.decision_function(X)
        return self.classes_[(scores > 0).astype(int)]

    def _has_proba(self) -> bool:
        spec = self._default_loss if self.loss is None else self.loss
        name = spec if isinstance(spec, str) else getattr(spec, "name", "")
        if name not in _LOGIT_LOSSES:
            raise AttributeError(f"predict_proba needs a log-odds loss ({sorted(_LOGIT_LOSSES)}); this model uses {name!r}")
        return True

    @available_if(_has_proba)
    def predict_proba(self, X: Any) -> np.ndarray:
        p = _xp.sigmoid(np, self.decision_function(X))
        return np.c_[1.0 - p, p]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    @available_if(_has_proba)
    def predict_log_proba(self, X: Any) -> np.ndarray:
        f = self.decision_function(X)
        return np.c_[_xp.log_sigmoid(np, -f), _xp.log_sigmoid(np, f)]
