r"""Activation functions with their exact local derivatives, for backpropagation.

Every activation is an object with one uniform API, written once against the array
namespace of its input (NumPy, PyTorch, JAX):

* ``value(x)``: the activation;
* ``derivative(x)``: the elementwise derivative (elementwise activations only;
  a vector activation raises TypeError and points to ``jacobian``);
* ``jacobian(x)``: (..., n, n) for x of shape (..., n); for ``logsumexp`` (a scalar per row)
  the gradient (..., n);
* ``jvp(x, v)`` = J v and ``vjp(x, u)`` = u^T J, without forming J: what backprop uses.

Vector activations (softmax, log_softmax, sparsemax, logsumexp) act on the last axis.
``get(name, **params)`` builds one by name; ``names()`` lists them.

Stability: sigmoid, log_sigmoid and softplus never overflow; softmax/log_softmax/logsumexp
use the max shift; elu uses expm1 of min(x, 0); gelu's tanh form clips its argument at
+-1000 where tanh is exactly +-1 (so no inf * 0); every function is finite for every
finite input (float32 and float64).

>>> import numpy as np
>>> from lossgrad import activations
>>> sm = activations.get("softmax")
>>> J = sm.jacobian(np.array([0.0, 0.0]))
>>> J.tolist()
[[0.25, -0.25], [-0.25, 0.25]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import array_api_compat

from . import _validation as V
from . import _xp

__all__ = [
    "Activation",
    "Sigmoid",
    "LogSigmoid",
    "Softmax",
    "LogSoftmax",
    "LogSumExp",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "GELU",
    "Softplus",
    "Sparsemax",
    "get",
    "names",
    "sigmoid",
    "log_sigmoid",
    "softmax",
    "log_softmax",
    "logsumexp",
    "sparsemax",
]

Array = Any


def _prep(x: Any, name: str = "x") -> tuple[Any, Array]:
    xp, arr, _ = V.as_prediction(x, name=name)
    return xp, arr


def _like(xp: Any, v: Any, x: Array, name: str) -> Array:
    return V.as_target(v, xp, x, name=name)


def _device(x: Array) -> Any:
    return array_api_compat.device(x)


def _eye(xp: Any, n: int, like: Array) -> Array:
    return xp.eye(n, dtype=like.dtype, device=_device(like))


# ----------------------------------------------------------------- functional forms


def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)), without overflow."""
    xp, x = _prep(x)
    return _xp.sigmoid(xp, x)


def log_sigmoid(x: Any) -> Any:
    """log sigmoid(x) = -softplus(-x)."""
    xp, x = _prep(x)
    return _xp.log_sigmoid(xp, x)


def softmax(x: Any, axis: int = -1) -> Any:
    """exp(x - logsumexp(x)) along ``axis``."""
    xp, x = _prep(x)
    return xp.exp(x - _xp.logsumexp(xp, x, axis=axis, keepdims=True))


def log_softmax(x: Any, axis: int = -1) -> Any:
    """x - logsumexp(x) along ``axis``."""
    xp, x = _prep(x)
    return x - _xp.logsumexp(xp, x, axis=axis, keepdims=True)


def logsumexp(x: Any, axis: int = -1) -> Any:
    """log sum exp(x) along ``axis``, with the max shift."""
    xp, x = _prep(x)
    return _xp.logsumexp(xp, x, axis=axis)


def _sparsemax(xp: Any, z: Array) -> tuple[Array, Array]:
    """(sparsemax(z), tau) along the last axis (Martins & Astudillo 2016, Algorithm 1)."""
    z = z - xp.max(z, axis=-1, keepdims=True)
    n = z.shape[-1]
    zs = xp.sort(z, axis=-1, descending=True)
    cs = xp.cumulative_sum(zs, axis=-1)
    k = xp.arange(1, n + 1, dtype=z.dtype, device=_device(z))
    support = (1.0 + k * zs) > cs
    ks = xp.sum(xp.astype(support, z.dtype), axis=-1, keepdims=True)
    csum = xp.sum(xp.where(support, zs, xp.zeros_like(zs)), axis=-1, keepdims=True)
    tau = (csum - 1.0) / ks
    return xp.maximum(z - tau, xp.zeros_like(z)), tau


def sparsemax(x: Any) -> Any:
    """The Euclidean projection of x onto the probability simplex, along the last axis."""
    xp, x = _prep(x)
    return _sparsemax(xp, x)[0]


# ----------------------------------------------------------------- the objects


class Activation:
    """Base class: ``value``, ``derivative``, ``jacobian``, ``jvp``, ``vjp``."""

    name: ClassVar[str] = "activation"
    elementwise: ClassVar[bool] = True

    def value(self, x: Any) -> Any:
        xp, x = _prep(x)
        return self._value(xp, x)

    __call__ = value

    def derivative(self, x: Any) -> Any:
        """The elementwise derivative d value(x)_i / d x_i."""
        if not self.elementwise:
            raise TypeError(f"{self.name} is not elementwise: use jacobian, jvp or vjp")
        xp, x = _prep(x)
        return self._derivative(xp, x)

    def jacobian(self, x: Any) -> Any:
        """(..., n, n) Jacobian of the last axis (diagonal for elementwise activations)."""
        xp, x = _prep(x)
        if self.elementwise:
            d = self._derivative(xp, x)
            return _eye(xp, x.shape[-1], x) * d[..., None, :]
        return self._jacobian(xp, x)

    def jvp(self, x: Any, v: Any) -> Any:
        """J v (forward mode): the change of the output along v."""
        xp, x = _prep(x)
        v = _like(xp, v, x, "v")
        if self.elementwise:
            return self._derivative(xp, x) * v
        return self._jvp(xp, x, v)

    def vjp(self, x: Any, u: Any) -> Any:
        """u^T J (reverse mode): the gradient with respect to x of sum(u * value(x))."""
        xp, x = _prep(x)
        if self.elementwise:
            u = _like(xp, u, x, "u")
            return self._derivative(xp, x) * u
        return self._vjp(xp, x, u)

    def __repr__(self) -> str:
        fields = getattr(self, "__dataclass_fields__", {})
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in fields)
        return f"{type(self).__name__}({args})"

    # subclasses
    def _value(self, xp: Any, x: Array) -> Array:  # pragma: no cover
        raise NotImplementedError

    def _derivative(self, xp: Any, x: Array) -> Array:  # pragma: no cover
        raise NotImplementedError


_REGISTRY: dict[str, type] = {}


def _register(cls: type) -> type:
    _REGISTRY[cls.name] = cls
    return cls


@_register
@dataclass(frozen=True)
class Sigmoid(Activation):
    """sigma(x) = 1 / (1 + e^-x); sigma' = sigma(x) sigma(-x) = e / (1 + e)^2, e = exp(-|x|)."""

    name: ClassVar[str] = "sigmoid"

    def _value(self, xp, x):
        return _xp.sigmoid(xp, x)

    def _derivative(self, xp, x):
        e = xp.exp(-xp.abs(x))
        return e / ((1.0 + e) * (1.0 + e))


@_register
@dataclass(frozen=True)
class LogSigmoid(Activation):
    """log sigma(x) = -softplus(-x); derivative sigma(-x)."""

    name: ClassVar[str] = "log_sigmoid"

    def _value(self, xp, x):
        return _xp.log_sigmoid(xp, x)

    def _derivative(self, xp, x):
        return _xp.sigmoid(xp, -x)


@_register
@dataclass(frozen=True)
class Softplus(Activation):
    """softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|); derivative sigma(x)."""

    name: ClassVar[str] = "softplus"

    def _value(self, xp, x):
        return _xp.softplus(xp, x)

    def _derivative(self, xp, x):
        return _xp.sigmoid(xp, x)


@_register
@dataclass(frozen=True)
class Tanh(Activation):
    """tanh(x); derivative 1 - tanh(x)^2 = 4 e / (1 + e)^2 with e = exp(-2|x|) (no cancellation)."""

    name: ClassVar[str] = "tanh"

    def _value(self, xp, x):
        return xp.tanh(x)

    def _derivative(self, xp, x):
        e = xp.exp(-2.0 * xp.abs(x))
        return 4.0 * e / ((1.0 + e) * (1.0 + e))


@_register
@dataclass(frozen=True)
class ReLU(Activation):
    """max(x, 0); derivative 1{x > 0} (0 at x = 0, as PyTorch)."""

    name: ClassVar[str] = "relu"

    def _value(self, xp, x):
        return xp.maximum(x, xp.zeros_like(x))

    def _derivative(self, xp, x):
        return xp.astype(x > 0, x.dtype)


@_register
@dataclass(frozen=True)
class LeakyReLU(Activation):
    """x for x > 0, negative_slope * x otherwise; derivative 1 or negative_slope (at 0, as PyTorch)."""

    name: ClassVar[str] = "leaky_relu"
    negative_slope: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "negative_slope", V.param_nonnegative("LeakyReLU", "negative_slope", self.negative_slope))

    def _value(self, xp, x):
        return xp.where(x > 0, x, self.negative_slope * x)

    def _derivative(self, xp, x):
        pos = xp.astype(x > 0, x.dtype)
        return pos + self.negative_slope * (1.0 - pos)


@_register
@dataclass(frozen=True)
class ELU(Activation):
    """x for x > 0, alpha (e^x - 1) otherwise; derivative 1 or alpha e^x (x <= 0 branch at 0, as PyTorch)."""

    name: ClassVar[str] = "elu"
    alpha: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", V.param_positive("ELU", "alpha", self.alpha))

    def _value(self, xp, x):
        neg = xp.minimum(x, xp.zeros_like(x))
        return xp.where(x > 0, x, self.alpha * xp.expm1(neg))

    def _derivative(self, xp, x):
        neg = xp.minimum(x, xp.zeros_like(x))
        return xp.where(x > 0, xp.ones_like(x), self.alpha * xp.exp(neg))


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


@_register
@dataclass(frozen=True)
class GELU(Activation):
    """Gaussian error linear unit (Hendrycks & Gimpel 2016), as PyTorch's ``gelu``.

    approximate="none": x Phi(x), derivative Phi(x) + x phi(x).
    approximate="tanh": x (1 + tanh(g)) / 2 = x sigmoid(2 g), g = sqrt(2/pi) (x + 0.044715 x^3);
    derivative sigmoid(2 g) + x (1 - tanh^2 g) g' / 2, g' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    (the sigmoid form avoids the cancellation of 1 + tanh g for x << 0).
    """

    name: ClassVar[str] = "gelu"
    approximate: str = "none"

    def __post_init__(self) -> None:
        V.param_choice("GELU", "approximate", self.approximate, ("none", "tanh"))

    def _g(self, xp, x):
        xc = xp.clip(x, -1000.0, 1000.0)  # tanh is exactly +-1 there: no inf * 0 downstream
        return xc, _SQRT_2_OVER_PI * (xc + _GELU_C * xc * xc * xc)

    def _value(self, xp, x):
        if self.approximate == "tanh":  # (1 + tanh g) / 2 = sigmoid(2 g): no cancellation for x << 0
            _, g = self._g(xp, x)
            return x * _xp.sigmoid(xp, 2.0 * g)
        return x * _xp.ndtr(xp, x)

    def _derivative(self, xp, x):
        if self.approximate == "tanh":
            xc, g = self._g(xp, x)
            e = xp.exp(-2.0 * xp.abs(g))
            sech2 = 4.0 * e / ((1.0 + e) * (1.0 + e))
            return _xp.sigmoid(xp, 2.0 * g) + 0.5 * xc * sech2 * _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * xc * xc)
        xc = xp.clip(x, -60.0, 60.0)  # phi(60) underflows to 0 in float64: the same value, no overflow in x^2
        return _xp.ndtr(xp, x) + xc * _xp.normal_pdf(xp, xc)


@_register
@dataclass(frozen=True)
class Softmax(Activation):
    """p = softmax(x) on the last axis; J = diag(p) - p p^T; J v = p (v - p.v); u^T J = p (u - p.u)."""

    name: ClassVar[str] = "softmax"
    elementwise: ClassVar[bool] = False

    def _value(self, xp, x):
        return xp.exp(x - _xp.logsumexp(xp, x, axis=-1, keepdims=True))

    def _jacobian(self, xp, x):
        p = self._value(xp, x)
        return _eye(xp, x.shape[-1], x) * p[..., None, :] - p[..., :, None] * p[..., None, :]

    def _jvp(self, xp, x, v):
        p = self._value(xp, x)
        return p * (v - xp.sum(p * v, axis=-1, keepdims=True))

    def _vjp(self, xp, x, u):
        u = _like(xp, u, x, "u")
        return self._jvp(xp, x, u)  # J is symmetric


@_register
@dataclass(frozen=True)
class LogSoftmax(Activation):
    """x - logsumexp(x) on the last axis; J = I - 1 p^T; J v = v - p.v; u^T J = u - p sum(u)."""

    name: ClassVar[str] = "log_softmax"
    elementwise: ClassVar[bool] = False

    def _value(self, xp, x):
        return x - _xp.logsumexp(xp, x, axis=-1, keepdims=True)

    def _jacobian(self, xp, x):
        p = xp.exp(self._value(xp, x))
        return _eye(xp, x.shape[-1], x) - xp.ones_like(p)[..., :, None] * p[..., None, :]

    def _jvp(self, xp, x, v):
        p = xp.exp(self._value(xp, x))
        return v - xp.sum(p * v, axis=-1, keepdims=True)

    def _vjp(self, xp, x, u):
        u = _like(xp, u, x, "u")
        p = xp.exp(self._value(xp, x))
        return u - p * xp.sum(u, axis=-1, keepdims=True)


@_register
@dataclass(frozen=True)
class LogSumExp(Activation):
    """logsumexp(x) on the last axis (one number per row); its gradient (``jacobian``) is softmax(x).

    jvp(x, v) = p . v (shape (...,)); vjp(x, u) = u[..., None] p (u of shape (...,)).
    """

    name: ClassVar[str] = "logsumexp"
    elementwise: ClassVar[bool] = False

    def _value(self, xp, x):
        return _xp.logsumexp(xp, x, axis=-1)

    def _jacobian(self, xp, x):
        return xp.exp(x - _xp.logsumexp(xp, x, axis=-1, keepdims=True))

    def _jvp(self, xp, x, v):
        return xp.sum(self._jacobian(xp, x) * v, axis=-1)

    def _vjp(self, xp, x, u):
        u = V.as_target(u, xp, x, name="u", same_shape=False)
        if tuple(u.shape) != tuple(x.shape[:-1]):
            raise ValueError(f"u must have shape {tuple(x.shape[:-1])} (one cotangent per row), got {tuple(u.shape)}")
        return u[..., None] * self._jacobian(xp, x)


@_register
@dataclass(frozen=True)
class Sparsemax(Activation):
    """sparsemax(x) = argmin_{p in simplex} ||p - x|| (Martins & Astudillo 2016) on the last axis.

    p = max(x - tau, 0) with tau the threshold of Algorithm 1.  J = diag(s) - s s^T / |S|
    with s the support indicator (p > 0); symmetric, so J v = u^T J with u = v.  J jumps
    where the support changes (x_j = tau).
    """

    name: ClassVar[str] = "sparsemax"
    elementwise: ClassVar[bool] = False

    def _value(self, xp, x):
        return _sparsemax(xp, x)[0]

    def _support(self, xp, x):
        p = _sparsemax(xp, x)[0]
        s = xp.astype(p > 0, x.dtype)
        return s, xp.sum(s, axis=-1, keepdims=True)

    def _jacobian(self, xp, x):
        s, n = self._support(xp, x)
        return _eye(xp, x.shape[-1], x) * s[..., None, :] - s[..., :, None] * s[..., None, :] / n[..., None]

    def _jvp(self, xp, x, v):
        s, n = self._support(xp, x)
        return s * v - s * xp.sum(s * v, axis=-1, keepdims=True) / n

    def _vjp(self, xp, x, u):
        u = _like(xp, u, x, "u")
        return self._jvp(xp, x, u)


def names() -> list[str]:
    """The names ``get`` accepts."""
    return sorted(_REGISTRY)


def get(name: str, **params: Any) -> Activation:
    """The activation called ``name`` (see :func:`names`), built with ``params``."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(names())}")
    return _REGISTRY[name](**params)
