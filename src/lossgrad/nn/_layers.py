r"""Layers with a forward pass and a backward pass: ``Dense``, one layer per activation.

A layer's ``forward(x)`` returns its output and keeps what its ``backward`` needs (its
input); ``backward(g)`` takes g = dL/d(output) and returns dL/d(input), storing the
gradients of its own parameters in ``grads`` (a dict of arrays with the keys of ``params``).
Each layer owns its local derivative; :class:`~lossgrad.nn.Sequential` chains them.

Every formula is written against the array namespace of its input, so NumPy, PyTorch and
JAX arrays work unchanged (the parameters and the input must share a namespace).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import array_api_compat
import numpy as np

from .. import activations as A

__all__ = [
    "Layer",
    "Dense",
    "ActivationLayer",
    "INITIALIZERS",
    "Sigmoid",
    "LogSigmoid",
    "Softplus",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "GELU",
    "Softmax",
    "LogSoftmax",
    "LogSumExp",
    "Sparsemax",
    "activation_layer",
]

Array = Any

#: Weight initialisers: name -> (distribution, scale). U(-a, a) with
#: a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010) or sqrt(6 / fan_in) (He et al. 2015);
#: the normal forms have std sqrt(2 / (fan_in + fan_out)) and sqrt(2 / fan_in).
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "zeros")


def _namespace(*arrays: Array) -> Any:
    return array_api_compat.array_namespace(*arrays)


def _as_rng(seed: Any) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be None, an integer >= 0 or a numpy.random.Generator, got {seed!r}")


class Layer:
    """Base class: ``forward``, ``backward``, ``params``, ``grads``, ``set_params``."""

    def __init__(self) -> None:
        self._x: Array | None = None
        self.grads: dict[str, Array] = {}

    @property
    def params(self) -> dict[str, Array]:
        """The layer's parameters by name (empty for a layer without any)."""
        return {}

    def set_params(self, params: dict[str, Array]) -> None:
        """Replace the parameters (same names and shapes); the arrays are used as given."""
        if params:
            raise ValueError(f"{type(self).__name__} has no parameters, got {sorted(params)}")

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Draw new parameters from ``rng`` (nothing to do without parameters)."""

    def forward(self, x: Array) -> Array:
        """The output; the input is kept for :meth:`backward`."""
        out = self._forward(x)
        self._x = x
        return out

    def predict(self, x: Array) -> Array:
        """The output, keeping nothing (inference)."""
        return self._forward(x)

    __call__ = predict

    def backward(self, grad: Array) -> Array:
        """dL/d(input) from dL/d(output); parameter gradients go to ``grads``."""
        if self._x is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._backward(self._x, grad)

    def _forward(self, x: Array) -> Array:  # pragma: no cover
        raise NotImplementedError

    def _backward(self, x: Array, grad: Array) -> Array:  # pragma: no cover
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_x"] = None  # a pickled layer carries no activations
        state["grads"] = {}
        return state


class Dense(Layer):
    r"""Fully connected layer: y = x W + b with W of shape (in_features, out_features).

    ``W[i, j]`` is the weight from input i to unit j (the w_ij of most course notes;
    torch's ``Linear.weight`` is its transpose).  For x of shape (N, in):

    * dL/dW = x^T g,  dL/db = sum_n g_n,  dL/dx = g W^T   (g = dL/dy, shape (N, out)).

    Initialisation (``init``): ``glorot_uniform`` (default) U(-a, a), a = sqrt(6 / (in + out));
    ``he_uniform`` a = sqrt(6 / in); ``glorot_normal`` / ``he_normal`` N(0, 2 / (in + out)) /
    N(0, 2 / in); ``zeros``.  Biases start at zero.  ``seed`` (an int or a
    ``numpy.random.Generator``) makes it deterministic: ``numpy.random.default_rng(seed)``.

    References: Glorot & Bengio (2010), Understanding the difficulty of training deep
    feedforward neural networks; He et al. (2015), Delving deep into rectifiers.

    >>> import numpy as np
    >>> layer = Dense(2, 1, seed=0)
    >>> layer.set_params({"weight": np.array([[1.0], [2.0]]), "bias": np.array([0.5])})
    >>> layer.forward(np.array([[1.0, 1.0]])).tolist()
    [[3.5]]
    >>> layer.backward(np.array([[1.0]])).tolist(), layer.grads["weight"].tolist()
    ([[1.0, 2.0]], [[1.0], [1.0]])
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, init: str = "glorot_uniform",
                 seed: Any = None, dtype: Any = np.float64) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Dense: {name} must be an integer >= 1, got {v!r}")
        if init not in INITIALIZERS:
            raise ValueError(f"Dense: init must be one of {INITIALIZERS}, got {init!r}")
        if not isinstance(bias, bool):
            raise TypeError(f"Dense: bias must be True or False, got {bias!r}")
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Dense: dtype must be a floating dtype, got {dtype}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.use_bias, self.init, self.dtype = bias, init, dtype
        self.reset_parameters(_as_rng(seed))

    def reset_parameters(self, rng: np.random.Generator) -> None:
        n_in, n_out = self.in_features, self.out_features
        shape = (n_in, n_out)
        if self.init == "zeros":
            w = np.zeros(shape)
        elif self.init.endswith("uniform"):
            a = math.sqrt(6.0 / (n_in + n_out if self.init.startswith("glorot") else n_in))
            w = rng.uniform(-a, a, shape)
        else:
            s = math.sqrt(2.0 / (n_in + n_out if self.init.startswith("glorot") else n_in))
            w = rng.normal(0.0, s, shape)
        self.weight = w.astype(self.dtype)
        self.bias = np.zeros(n_out, dtype=self.dtype) if self.use_bias else None

    @property
    def params(self) -> dict[str, Array]:
        return {"weight": self.weight, "bias": self.bias} if self.use_bias else {"weight": self.weight}

    def set_params(self, params: dict[str, Array]) -> None:
        expected = {"weight": (self.in_features, self.out_features)}
        if self.use_bias:
            expected["bias"] = (self.out_features,)
        if not isinstance(params, dict) or set(params) != set(expected):
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"Dense: params must be a dict with keys {sorted(expected)}, got {got}")
        for k, shape in expected.items():
            if not hasattr(params[k], "shape") or tuple(params[k].shape) != shape:
                got = tuple(params[k].shape) if hasattr(params[k], "shape") else type(params[k]).__name__
                raise ValueError(f"Dense: params[{k!r}] must have shape {shape}, got {got}")
        self.weight = params["weight"]
        self.bias = params.get("bias")

    def _check_input(self, x: Array) -> None:
        if getattr(x, "ndim", None) != 2 or int(x.shape[1]) != self.in_features:
            got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise ValueError(f"Dense: input must have shape (N, {self.in_features}), got {got}")

    def _forward(self, x: Array) -> Array:
        self._check_input(x)
        y = x @ self.weight
        return y + self.bias if self.bias is not None else y

    def _backward(self, x: Array, grad: Array) -> Array:
        xp = _namespace(grad)
        self.grads = {"weight": x.T @ grad}
        if self.bias is not None:
            self.grads["bias"] = xp.sum(grad, axis=0)
        return grad @ self.weight.T

    def __repr__(self) -> str:
        return f"Dense({self.in_features}, {self.out_features}, bias={self.use_bias}, init={self.init!r})"


class ActivationLayer(Layer):
    """A layer applying an activation of :mod:`lossgrad.activations` (no parameters).

    Elementwise activations backpropagate g * f'(x) with the activation's ``derivative``;
    vector activations (softmax, log_softmax, sparsemax, logsumexp) act on the last axis and
    backpropagate through their ``vjp`` u^T J(x), without forming the Jacobian.
    """

    activation_name: ClassVar[str] = ""

    def __init__(self, activation: Any = None, **params: Any) -> None:
        super().__init__()
        if activation is None:
            activation = self.activation_name
        if isinstance(activation, str):
            activation = A.get(activation, **params)
        elif params:
            raise TypeError("ActivationLayer: parameters go with an activation name, not an activation object")
        if not isinstance(activation, A.Activation):
            raise TypeError(f"ActivationLayer: activation must be a name or a lossgrad.activations.Activation, "
                            f"got {activation!r}")
        self.activation = activation

    def _forward(self, x: Array) -> Array:
        return self.activation.value(x)

    def _backward(self, x: Array, grad: Array) -> Array:
        if self.activation.elementwise:
            return self.activation.derivative(x) * grad
        return self.activation.vjp(x, grad)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.activation!r})" if type(self) is ActivationLayer else repr(self.activation)


def _activation_class(name: str, doc: str) -> type:
    def __init__(self: ActivationLayer, **params: Any) -> None:
        ActivationLayer.__init__(self, name, **params)

    cls_name = type(A.get(name)).__name__
    return type(cls_name, (ActivationLayer,), {"activation_name": name, "__init__": __init__, "__doc__": doc,
                                               "__module__": __name__, "__qualname__": cls_name})


Sigmoid = _activation_class("sigmoid", "Layer sigma(x); backward g * sigma(x) sigma(-x).")
LogSigmoid = _activation_class("log_sigmoid", "Layer log sigma(x); backward g * sigma(-x).")
Softplus = _activation_class("softplus", "Layer log(1 + e^x); backward g * sigma(x).")
Tanh = _activation_class("tanh", "Layer tanh(x); backward g * (1 - tanh(x)^2).")
ReLU = _activation_class("relu", "Layer max(x, 0); backward g * 1{x > 0}.")
LeakyReLU = _activation_class("leaky_relu", "Layer LeakyReLU(negative_slope=0.01); backward g * (1 or slope).")
ELU = _activation_class("elu", "Layer ELU(alpha=1); backward g * (1 or alpha e^x).")
GELU = _activation_class("gelu", "Layer GELU(approximate='none'|'tanh'); backward g * GELU'(x).")
Softmax = _activation_class("softmax", "Layer softmax on the last axis; backward p * (g - p.g) (the vjp).")
LogSoftmax = _activation_class("log_softmax", "Layer log_softmax on the last axis; backward g - p sum(g).")
LogSumExp = _activation_class("logsumexp", "Layer logsumexp of the last axis (N, K) -> (N,); backward g[:, None] p.")
Sparsemax = _activation_class("sparsemax", "Layer sparsemax on the last axis; backward s * (g - s.g / |S|).")

_LAYERS = {cls.activation_name: cls for cls in (Sigmoid, LogSigmoid, Softplus, Tanh, ReLU, LeakyReLU, ELU, GELU,
                                                Softmax, LogSoftmax, LogSumExp, Sparsemax)}


def activation_layer(name: str, **params: Any) -> ActivationLayer:
    """The layer of the activation called ``name`` (any of ``lossgrad.activations.names()``)."""
    cls = _LAYERS.get(name)
    if cls is None:
        return ActivationLayer(name, **params)  # validates the name with a clear error
    return cls(**params)
