"""A small backpropagation network trained with any loss of the catalog.

* Layers (:class:`Dense` and one layer per activation of :mod:`lossgrad.activations`: :class:`Sigmoid`,
  :class:`Tanh`, :class:`ReLU`, :class:`Softmax`, :class:`Sparsemax`, ...) with ``forward`` and
  ``backward``, each owning its local derivative; :class:`Sequential` chains them.
* Parameters and gradients are dicts of arrays, the trees of :mod:`lossgrad.optim`.
* A pointwise or row loss at the output seeds backpropagation with its exact ``grad`` of the
  weighted mean (:func:`loss_value_grad`); :func:`fit` trains with epochs, mini-batches,
  validation, early stopping, callbacks and an optional rich progress bar.

>>> import numpy as np
>>> from lossgrad import nn, optim
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(64, 2)); y = (X[:, 0] * X[:, 1] > 0).astype(float)
>>> net = nn.Sequential(nn.Dense(2, 8, seed=0), nn.Tanh(), nn.Dense(8, 1, seed=1))
>>> h = nn.fit(net, "logistic", X, y, optimizer=optim.adam(0.05), epochs=50, batch_size=16, seed=0)
>>> h.loss[-1] < h.loss[0]
True
"""

from . import _layers
from ._layers import (
    ELU,
    GELU,
    INITIALIZERS,
    ActivationLayer,
    Dense,
    Layer,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    LogSumExp,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Sparsemax,
    Tanh,
    activation_layer,
)
from ._network import Sequential, loss_value_grad, resolve_loss
from ._train import Callback, EarlyStopping, History, LambdaCallback, Trainer, fit

__all__ = [
    *_layers.__all__,
    "Sequential",
    "loss_value_grad",
    "resolve_loss",
    "fit",
    "History",
    "Trainer",
    "Callback",
    "EarlyStopping",
    "LambdaCallback",
]
