"""The softmax classifier of the source documents: multinomial linear model with any row loss."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .. import _xp
from ._base import LinearBase

__all__ = ["SoftmaxClassifier"]


class SoftmaxClassifier(ClassifierMixin, LinearBase):
    """Softmax (multinomial) classifier: scores F = X W + b, W (p, K), trained with a row loss.

    ``fit`` (alias ``train``), ``predict``, ``predict_proba`` = softmax(F), and
    ``cross_entropy_loss(X, y)`` the mean cross-entropy on data.  With
    ``loss="cross_entropy"`` and ``alpha = 1/(C n)`` it is scikit-learn's multinomial
    ``LogisticRegression(C=C)``; intercepts are centred to sum to zero (the softmax is
    invariant to a common shift), as scikit-learn's are.
    """

    _default_loss = "cross_entropy"
    _default_alpha = 1e-4

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SoftmaxClassifier:
        self._check_params()
        loss = self._resolve_loss("row")
        X, y = self._validate_fit_data(X, y)
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has 1 class only ({self.classes_[0]!r}); a classifier needs at least 2")
        K = len(self.classes_)
        theta = self._fit_objective(loss, X, labels.astype(np.int64), sample_weight, K)
        T = theta.reshape(-1, K)
        b = T[0] - T[0].mean() if self.fit_intercept else np.zeros(K)
        self.intercept_ = b
        self.coef_ = (T[1:] if self.fit_intercept else T).T.copy()  # (K, p), as scikit-learn
        return self

    train = fit

    def _scores(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        from sklearn.utils.validation import validate_data

        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_.T + self.intercept_

    def decision_function(self, X: Any) -> np.ndarray:
        """Class scores (n, K); for two classes the log-odds f_1 - f_0 (n,), as scikit-learn."""
        F = self._scores(X)
        return F[:, 1] - F[:, 0] if F.shape[1] == 2 else F

    def predict_proba(self, X: Any) -> np.ndarray:
        F = self._scores(X)
        return np.exp(F - _xp.logsumexp(np, F, axis=1, keepdims=True))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        F = self._scores(X)
        return F - _xp.logsumexp(np, F, axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        scores = self._scores(X)
        return self.classes_[np.argmax(scores, axis=1)]

    def cross_entropy_loss(self, X: Any, y: Any) -> float:
        """Mean cross-entropy -log p(y | x) of the fitted model on (X, y)."""
        logp = self.predict_log_proba(X)
        index = {c: i for i, c in enumerate(self.classes_)}
        try:
            idx = np.array([index[v] for v in np.asarray(y).tolist()])
        except KeyError as e:
            raise ValueError(f"y contains a label the model was not trained on: {e.args[0]!r}") from None
        return float(-np.mean(logp[np.arange(len(idx)), idx]))
