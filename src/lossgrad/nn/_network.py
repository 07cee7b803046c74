r"""``Sequential`` networks and the seeding of backpropagation by a catalog loss.

The training objective of a network F with parameters theta on data (X, y, s) is the
loss's weighted mean, exactly as its ``__call__`` computes it:

* pointwise loss: J = sum_{n,k} s_n L(y_nk, F_nk) / (K sum_n s_n), output (N, K)
  (an (N,) target meets an (N, 1) output);
* row loss: J = sum_n s_n L(y_n, F_n) / sum_n s_n r_n, with r_n the loss's row weight
  (class weight, 0 for an ignored label; 1 otherwise).

Backpropagation starts from dJ/dF = s * grad(y, F) / denominator, the loss's exact ``grad``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import array_api_compat
import numpy as np

from .. import _validation as V
from .._batch import BatchLoss
from .._config import config_context
from .._core import Loss, Scaled
from .._props import Shape
from .._registry import get
from .._row import RowLoss
from ._layers import Layer, _as_rng

__all__ = ["Sequential", "resolve_loss", "loss_value_grad"]

Array = Any


def resolve_loss(loss: Any) -> Loss:
    """A loss object from a catalog name or a loss; ValueError for losses a network cannot use."""
    obj = get(loss) if isinstance(loss, str) else loss
    if not isinstance(obj, Loss):
        raise TypeError(f"loss must be a lossgrad loss or a catalog name, got {loss!r}")
    base = obj.loss if isinstance(obj, Scaled) else obj
    if isinstance(base, BatchLoss) or obj.shape == Shape.BATCH:
        raise ValueError(f"loss {obj.name!r} is a batch loss (several named inputs); a network output takes a "
                         "pointwise or row loss")
    if not obj.props.has_grad:
        raise ValueError(f"loss {obj.name!r} has no gradient and cannot train a network")
    return obj


def _unscaled(loss: Loss) -> tuple[Loss, float]:
    if isinstance(loss, Scaled):
        return loss.loss, loss.k
    return loss, 1.0


def _pointwise_target(xp: Any, y: Any, f: Array) -> Array:
    if not _same_ns(y, f):
        y = xp.asarray(np.asarray(y), device=array_api_compat.device(f))
    if tuple(y.shape) != tuple(f.shape) and f.ndim == 2 and int(f.shape[1]) == 1 and tuple(y.shape) == (int(f.shape[0]),):
        y = xp.reshape(y, (-1, 1))
    return y


def _same_ns(a: Any, b: Any) -> bool:
    try:
        return array_api_compat.array_namespace(a) is array_api_compat.array_namespace(b)
    except TypeError:
        return False


def loss_value_grad(loss: Loss, y_true: Any, y_pred: Array, sample_weight: Any = None) -> tuple[float, Array]:
    """(J, dJ/dy_pred): the weighted mean loss of a network output and its exact gradient.

    J equals ``loss(y_true, y_pred, sample_weight=...)`` (the mean reduction); the gradient is
    the loss's per-sample ``grad`` divided by the same denominator.  ``sample_weight`` is one
    weight per row of ``y_pred``.
    """
    xp = array_api_compat.array_namespace(y_pred)
    n = int(y_pred.shape[0])
    if loss.shape == Shape.ROW:
        base, k = _unscaled(loss)
        assert isinstance(base, RowLoss)
        if all(getattr(base, name, None) is None for name in base.row_weight_options):
            # every row weighs 1: the denominator needs no targets (value_grad checks the inputs)
            v, g = base.value_grad(y_true, y_pred, sample_weight)
            w = None if sample_weight is None else V.as_sample_weight(sample_weight, xp, (n,), g)
            denom = float(n) if w is None else float(xp.sum(w))
            if not denom > 0:
                raise ValueError("the weighted mean loss is undefined: the sample (and class) weights sum to zero")
            return k * float(xp.sum(v)) / denom, g * (k / denom)
        _, t, f, w = base._prepare(y_true, y_pred, sample_weight)
        with config_context(assume_valid=True):
            v, g = base.value_grad(y_true, y_pred, sample_weight)
        rw = base._row_weight(xp, t, f)
        if rw is None:
            denom = float(n) if w is None else float(xp.sum(w))
        else:
            denom = float(xp.sum(rw if w is None else rw * w))
        if not denom > 0:
            raise ValueError("the weighted mean loss is undefined: the sample (and class) weights sum to zero")
        return k * float(xp.sum(v)) / denom, g * (k / denom)
    y = _pointwise_target(xp, y_true, y_pred)
    w = None
    if sample_weight is not None:
        w = xp.asarray(sample_weight, dtype=y_pred.dtype, device=array_api_compat.device(y_pred))
        if tuple(w.shape) != (n,):
            raise ValueError(f"sample_weight must have shape ({n},) (one weight per sample), got {tuple(w.shape)}")
        w = xp.broadcast_to(xp.reshape(w, (n,) + (1,) * (y_pred.ndim - 1)), tuple(y_pred.shape))
    v, g = loss.value_grad(y, y_pred, w)
    denom = float(np.prod(y_pred.shape)) if w is None else float(xp.sum(w))
    if not denom > 0:
        raise ValueError("the weighted mean loss is undefined: sample_weight sums to zero")
    return float(xp.sum(v)) / denom, g / denom


class Sequential:
    r"""Layers applied one after the other; backward by the chain rule, layer by layer.

    ``params`` is a dict ``{str(i): layer_params}`` over the layers that have parameters
    (``{"0": {"weight": W, "bias": b}, "2": {...}}``, the keys of torch's ``Sequential``),
    compatible with :mod:`lossgrad.optim`; ``grads`` has the same structure after
    :meth:`backward`.  :meth:`value_and_grad` runs forward, seeds backpropagation with the
    loss's exact gradient (see :func:`loss_value_grad`) and returns (J, grads).

    >>> import numpy as np
    >>> from lossgrad import nn
    >>> net = nn.Sequential(nn.Dense(3, 4, seed=0), nn.Tanh(), nn.Dense(4, 1, seed=1))
    >>> X, y = np.ones((5, 3)), np.zeros(5)
    >>> J, grads = net.value_and_grad("squared_error", X, y)
    >>> sorted(grads), sorted(grads["0"]), grads["0"]["weight"].shape
    (['0', '2'], ['bias', 'weight'], (3, 4))
    """

    def __init__(self, *layers: Layer) -> None:
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: layer {i} must be a lossgrad.nn layer, got {type(layer).__name__}")
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        self.layers = list(layers)

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner}\n)"

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    # ------------------------------------------------------------------ parameters
    @property
    def params(self) -> dict[str, dict[str, Array]]:
        return {str(i): layer.params for i, layer in enumerate(self.layers) if layer.params}

    def set_params(self, params: Mapping[str, Mapping[str, Array]]) -> None:
        """Replace every layer's parameters (the structure of :attr:`params`)."""
        expected = {str(i) for i, layer in enumerate(self.layers) if layer.params}
        if not isinstance(params, Mapping) or set(params) != expected:
            got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
            raise ValueError(f"Sequential: params must have the keys {sorted(expected)}, got {got}")
        for key, p in params.items():
            self.layers[int(key)].set_params(dict(p))

    @property
    def grads(self) -> dict[str, dict[str, Array]]:
        return {str(i): dict(layer.grads) for i, layer in enumerate(self.layers) if layer.params}

    def initialize(self, seed: Any = None) -> Sequential:
        """Draw new parameters for every layer from ``numpy.random.default_rng(seed)``
        (one generator, layers in order: deterministic for an integer seed)."""
        rng = _as_rng(seed)
        for layer in self.layers:
            layer.reset_parameters(rng)
        return self

    def astype(self, dtype: Any) -> Sequential:
        """Convert every parameter (NumPy arrays) to ``dtype``; returns self."""
        for key, p in self.params.items():
            self.layers[int(key)].set_params({k: np.asarray(v).astype(dtype) for k, v in p.items()})
            if hasattr(self.layers[int(key)], "dtype"):
                self.layers[int(key)].dtype = np.dtype(dtype)
        return self

    @property
    def n_params(self) -> int:
        return sum(int(np.prod(v.shape)) for p in self.params.values() for v in p.values())

    # ------------------------------------------------------------------ passes
    def forward(self, x: Array) -> Array:
        """The output; every layer keeps what its backward pass needs."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def predict(self, x: Array) -> Array:
        """The output, keeping nothing (inference)."""
        for layer in self.layers:
            x = layer.predict(x)
        return x

    __call__ = predict

    def backward(self, grad: Array) -> Array:
        """Backpropagate dL/d(output); returns dL/d(input) and fills :attr:`grads`."""
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def value_and_grad(self, loss: Any, X: Array, y: Any, sample_weight: Any = None) -> tuple[float, dict]:
        """(J, dJ/dtheta) for the weighted mean ``loss`` of the network's output on (X, y)."""
        loss = resolve_loss(loss)
        out = self.forward(X)
        value, g = loss_value_grad(loss, y, out, sample_weight)
        self.backward(g)
        return value, self.grads

    def loss(self, loss: Any, X: Array, y: Any, sample_weight: Any = None) -> float:
        """The weighted mean loss of the network's output on (X, y) (no gradient)."""
        loss = resolve_loss(loss)
        return loss_value_grad(loss, y, self.predict(X), sample_weight)[0]
