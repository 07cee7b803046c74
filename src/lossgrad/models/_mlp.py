r"""Multi-layer perceptrons trained with any suitable loss of the catalog, on :mod:`lossgrad.nn`.

The network is Dense -> activation -> ... -> Dense (the output layer linear: it gives the loss's
raw prediction, a residual-space value, a margin score or logits); each epoch runs mini-batch
steps of a :mod:`lossgrad.optim` optimizer on

    J(theta) = sum_i s_i L(y_i, F(x_i)) / sum_i s_i + alpha/2 sum_l ||W_l||^2

(biases unpenalised).  Training stops when the training loss (or, with ``early_stopping``,
the validation loss on a held-out ``validation_fraction``) has not improved by more than
``tol`` for ``n_iter_no_change`` epochs, or after ``max_iter`` epochs, as in scikit-learn's
MLP estimators.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .. import _xp, nn, optim
from .._core import Loss, Scaled
from .._props import Shape
from .._registry import get

__all__ = ["MLPRegressor", "MLPClassifier"]

_RELU_FAMILY = {"relu", "leaky_relu", "elu", "gelu"}
_HIDDEN_ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "softplus", "log_sigmoid")
#: Row losses on logits whose probabilities are softmax(F).
_SOFTMAX_LOSSES = {"cross_entropy", "focal", "poly1"}
#: Binary losses on a log-odds score, probability sigmoid(f).
_LOGIT_LOSSES = {"logistic", "binary_cross_entropy", "binary_focal"}


def _base(loss: Loss) -> Loss:
    return loss.loss if isinstance(loss, Scaled) else loss


def _link(loss: Loss) -> str | None:
    """How the raw output becomes probabilities: 'softmax', 'sparsemax', 'sigmoid',
    'identity' (the network ends in a Softmax/Sigmoid layer), or None (no probabilities)."""
    base = _base(loss)
    name = base.name
    from_logits = getattr(base, "from_logits", True)
    if name in _SOFTMAX_LOSSES:
        return "softmax" if from_logits else "identity"
    if name == "sparsemax_loss":
        return "sparsemax"
    if name in _LOGIT_LOSSES:
        return "sigmoid" if from_logits else "identity"
    return None


class _MLPBase(BaseEstimator):
    _default_loss = "squared_error"

    def __init__(self, loss: Any = None, *, hidden_layer_sizes: tuple[int, ...] = (32,), activation: str = "relu",
                 alpha: float = 1e-4, solver: str = "adam", learning_rate: float = 1e-2, batch_size: Any = "auto",
                 max_iter: int = 200, tol: float = 1e-4, n_iter_no_change: int = 10, early_stopping: bool = False,
                 validation_fraction: float = 0.1, shuffle: bool = True, random_state: Any = None,
                 verbose: bool = False):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.solver = solver
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _resolve_loss(self) -> Loss:
        spec = self._default_loss if self.loss is None else self.loss
        loss = get(spec) if isinstance(spec, str) else spec
        if not isinstance(loss, Loss):
            raise TypeError(f"loss must be a lossgrad loss or a catalog name, got {spec!r}")
        return nn.resolve_loss(loss)

    def _check_params(self) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = (sizes,)
        if not isinstance(sizes, (tuple, list)) or not all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be a tuple of integers >= 1, got {self.hidden_layer_sizes!r}")
        if self.activation not in _HIDDEN_ACTIVATIONS:
            raise ValueError(f"activation must be one of {_HIDDEN_ACTIVATIONS}, got {self.activation!r}")
        for name in ("alpha", "tol"):
            v = getattr(self, name)
            if not (isinstance(v, numbers.Real) and np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if not (isinstance(self.learning_rate, numbers.Real) and np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a finite number > 0, got {self.learning_rate!r}")
        for name in ("max_iter", "n_iter_no_change"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not (self.batch_size == "auto" or (isinstance(self.batch_size, numbers.Integral)
                                              and not isinstance(self.batch_size, bool) and self.batch_size >= 1)):
            raise ValueError(f"batch_size must be 'auto' or an integer >= 1, got {self.batch_size!r}")
        if not (isinstance(self.validation_fraction, numbers.Real) and 0 < self.validation_fraction < 1):
            raise ValueError(f"validation_fraction must lie in (0, 1), got {self.validation_fraction!r}")
        if not isinstance(self.solver, str) or self.solver not in optim.OPTIMIZERS:
            raise ValueError(f"solver must be an optimizer of lossgrad.optim ({', '.join(optim.OPTIMIZERS)}), "
                             f"got {self.solver!r}")
        return tuple(int(s) for s in sizes)

    # ------------------------------------------------------------------ training
    def _build(self, sizes: tuple[int, ...], n_in: int, n_out: int, loss: Loss, seed: int) -> nn.Sequential:
        init = "he_uniform" if self.activation in _RELU_FAMILY else "glorot_uniform"
        dims = (n_in, *sizes, n_out)
        layers: list[nn.Layer] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Dense(a, b, init=init if i < len(sizes) else "glorot_uniform"))
            if i < len(sizes):
                layers.append(nn.activation_layer(self.activation))
        if _link(loss) == "identity":  # a loss on probabilities: end in the matching layer
            layers.append(nn.Softmax() if loss.shape == Shape.ROW else nn.Sigmoid())
        return nn.Sequential(*layers).initialize(seed)

    def _train(self, X: np.ndarray, y: np.ndarray, n_out: int, sample_weight: Any, loss: Loss) -> None:
        sizes = self._check_params()
        sw = None if sample_weight is None else _check_sample_weight(sample_weight, X, dtype=np.float64,
                                                                      ensure_non_negative=True)
        if sw is not None and not np.sum(sw) > 0:
            raise ValueError("sample_weight sums to zero")
        rs = check_random_state(self.random_state)
        init_seed, fit_seed = (int(s) for s in rs.randint(0, np.iinfo(np.int32).max, size=2))
        net = self._build(sizes, X.shape[1], n_out, loss, init_seed)
        n = X.shape[0]
        batch = min(200, n) if self.batch_size == "auto" else int(self.batch_size)
        use_val = bool(self.early_stopping) and n >= 2  # a validation split needs a row to spare
        es = nn.EarlyStopping(monitor="val_loss" if use_val else "loss", patience=self.n_iter_no_change,
                              min_delta=float(self.tol), restore_best=use_val)
        history = nn.fit(net, loss, X, y, optimizer=optim.OPTIMIZERS[self.solver](learning_rate=self.learning_rate),
                         epochs=int(self.max_iter), batch_size=batch, shuffle=bool(self.shuffle), seed=fit_seed,
                         sample_weight=sw, validation_split=float(self.validation_fraction) if use_val else 0.0,
                         alpha=float(self.alpha), early_stopping=es, progress=bool(self.verbose))
        if not history.stopped_early:
            warnings.warn(f"{type(self).__name__}: stopped after max_iter={self.max_iter} epochs without the loss "
                          f"improving by less than tol={self.tol} for {self.n_iter_no_change} epochs (not converged)",
                          ConvergenceWarning, stacklevel=3)
        self.net_, self.loss_, self.history_ = net, loss, history
        self.n_iter_ = history.epochs
        self.loss_curve_ = list(history.loss)
        self.validation_loss_curve_ = list(history.val_loss) if history.val_loss else None
        self.n_outputs_ = n_out

    def _output(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "net_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.net_.predict(X)

    def _validate_X(self, X: Any, y: Any, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
        return validate_data(self, X, y, dtype=np.float64, **kw)


class MLPRegressor(RegressorMixin, _MLPBase):
    """Multi-layer perceptron regressor with any pointwise loss (default squared_error).

    ``predict`` returns the network output (the loss's y_pred: for a GLM deviance such as
    poisson that is the log-mean, as in :class:`LinearRegressor`).  Targets (n,) or (n, k):
    k outputs, the loss applied to each.

    >>> import numpy as np
    >>> from lossgrad.models import MLPRegressor
    >>> X = np.linspace(-2, 2, 80)[:, None]; y = np.sin(2 * X[:, 0])
    >>> model = MLPRegressor("huber", hidden_layer_sizes=(16,), activation="tanh", max_iter=400,
    ...                      random_state=0).fit(X, y)
    >>> bool(model.score(X, y) > 0.9)
    True
    """

    _default_loss = "squared_error"

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        loss = self._resolve_loss()
        if loss.shape != Shape.POINTWISE:
            raise ValueError(f"MLPRegressor needs a pointwise loss; {loss.name!r} is a {loss.shape.value} loss")
        X, y = self._validate_X(X, y, multi_output=True, y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        self._y_ndim = y.ndim
        self._train(X, y, 1 if y.ndim == 1 else y.shape[1], sample_weight, loss)
        return self

    def predict(self, X: Any) -> np.ndarray:
        out = self._output(X)
        return out[:, 0] if self._y_ndim == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class MLPClassifier(ClassifierMixin, _MLPBase):
    """Multi-layer perceptron classifier with a row loss (default cross_entropy: K outputs,
    softmax probabilities) or a binary margin/log-odds loss (one output; two classes only).

    ``predict_proba`` exists for the losses whose output maps to probabilities: softmax for
    cross_entropy, focal and poly1 on logits; sparsemax for sparsemax_loss; sigmoid for
    logistic, binary_cross_entropy and binary_focal; a loss on probabilities
    (``from_logits=False``) gets a Softmax or Sigmoid output layer.  Hinge-type losses give
    ``predict`` only (argmax of the scores, or the sign of the margin).

    >>> import numpy as np
    >>> from lossgrad.models import MLPClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(150, 2)); y = np.where(X[:, 0] ** 2 + X[:, 1] ** 2 < 1.0, "in", "out")
    >>> model = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, y)
    >>> bool(model.score(X, y) > 0.9), model.predict_proba(X[:2]).shape
    (True, (2, 2))
    """

    _default_loss = "cross_entropy"

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        loss = self._resolve_loss()
        X, y = self._validate_X(X, y)
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        if k < 2:
            raise ValueError(f"y has 1 class only ({self.classes_[0]!r}); a classifier needs at least 2 classes")
        if loss.shape == Shape.ROW:
            if not getattr(_base(loss), "accepts_labels", True):
                raise ValueError(f"loss {loss.name!r} takes probability rows, not class labels; MLPClassifier needs a "
                                 "loss on labels (cross_entropy, focal, poly1, sparsemax_loss, multiclass_hinge, ...)")
            self._train(X, labels.astype(np.float64), k, sample_weight, loss)
        else:
            if loss.family not in ("margin", "binary"):
                raise ValueError(f"MLPClassifier needs a classification loss (a row loss, or a margin/binary loss); "
                                 f"{loss.name!r} is a {loss.family} loss")
            if k != 2:
                raise ValueError(f"Only binary classification is supported with the binary loss {loss.name!r}; y has "
                                 f"{k} classes ({type_of_target(y)}): use a row loss such as cross_entropy")
            self._train(X, labels.astype(np.float64), 1, sample_weight, loss)
        return self

    def _scores(self, X: Any) -> np.ndarray:
        return self._output(X)

    def predict(self, X: Any) -> np.ndarray:
        out = self._scores(X)
        if out.shape[1] > 1:
            return self.classes_[np.argmax(out, axis=1)]
        threshold = 0.5 if _link(self.loss_) == "identity" else 0.0
        return self.classes_[(out[:, 0] > threshold).astype(int)]

    def _has_proba(self) -> bool:
        loss = getattr(self, "loss_", None) or self._resolve_loss()
        if _link(loss) is None:
            raise AttributeError(f"predict_proba needs a loss whose output is a probability model (e.g. "
                                 f"cross_entropy, logistic); this model uses {loss.name!r}")
        return True

    @available_if(_has_proba)
    def predict_proba(self, X: Any) -> np.ndarray:
        out = self._scores(X)
        link = _link(self.loss_)
        if link == "softmax":
            return np.exp(out - _xp.logsumexp(np, out, axis=1, keepdims=True))
        if link == "sparsemax":
            from ..activations import sparsemax

            return sparsemax(out)
        if out.shape[1] == 1:
            p = _xp.sigmoid(np, out[:, 0]) if link == "sigmoid" else out[:, 0]
            return np.c_[1.0 - p, p]
        return out

    @available_if(_has_proba)
    def predict_log_proba(self, X: Any) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        try:
            loss = self._resolve_loss()
        except (TypeError, ValueError):
            return tags
        tags.classifier_tags.multi_class = loss.shape == Shape.ROW
        return tags
