"""Array-namespace helpers shared by every formula.

Each function takes the namespace ``xp`` of its inputs explicitly (from
:func:`namespace`), so one formula serves NumPy, PyTorch, JAX, CuPy and Dask.
Numerical stability lives here: softplus and log-sigmoid without overflow,
logsumexp with a max shift, the normal CDF through each library's own ``ndtr``.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat
import numpy as np

Array = Any

__all__ = [
    "namespace",
    "is_numpy",
    "softplus",
    "log_sigmoid",
    "sigmoid",
    "logsumexp",
    "xlogy",
    "erf",
    "ndtr",
    "normal_pdf",
    "safe_divide",
    "full_like",
]


def namespace(*arrays: Array) -> Any:
    """The array namespace of the array arguments (Python scalars are ignored)."""
    arrays = tuple(a for a in arrays if a is not None and not isinstance(a, (int, float, bool)))
    if not arrays:
        return array_api_compat.array_namespace(np.empty(0))
    return array_api_compat.array_namespace(*arrays)


def is_numpy(xp: Any) -> bool:
    return array_api_compat.is_numpy_namespace(xp)


def full_like(xp: Any, x: Array, value: float) -> Array:
    return xp.full(x.shape, value, dtype=x.dtype, device=array_api_compat.device(x))


def softplus(xp: Any, x: Array) -> Array:
    """log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))."""
    return xp.maximum(x, 0.0) + xp.log1p(xp.exp(-xp.abs(x)))


def log_sigmoid(xp: Any, x: Array) -> Array:
    """log(sigmoid(x)) = -softplus(-x), finite for every finite x."""
    return xp.minimum(x, 0.0) - xp.log1p(xp.exp(-xp.abs(x)))


def sigmoid(xp: Any, x: Array) -> Array:
    """1 / (1 + exp(-x)) without overflow in either tail."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def logsumexp(xp: Any, x: Array, axis: int = -1, keepdims: bool = False) -> Array:
    """log(sum(exp(x))) along ``axis`` with the max shift."""
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else xp.squeeze(out, axis=axis)


def xlogy(xp: Any, x: Array, y: Array) -> Array:
    """x * log(y) with the convention 0 * log(0) = 0."""
    zero = x == 0
    return xp.where(zero, xp.zeros_like(x), x * xp.log(xp.where(zero, xp.ones_like(y), y)))


def safe_divide(xp: Any, num: Array, den: Array, at_zero: Array | float) -> Array:
    """num / den, and ``at_zero`` wherever den == 0 (no warning, no NaN)."""
    zero = den == 0
    quotient = num / xp.where(zero, xp.ones_like(den), den)
    if not hasattr(at_zero, "shape"):
        at_zero = full_like(xp, quotient, float(at_zero))
    return xp.where(zero, at_zero, quotient)


def erf(xp: Any, x: Array) -> Array:
    """The error function, through each library's own special function."""
    return _special(xp, "erf", x)


def ndtr(xp: Any, x: Array) -> Array:
    """The standard normal CDF, through each library's own special function."""
    return _special(xp, "ndtr", x)


def _special(xp: Any, name: str, x: Array) -> Array:
    """scipy.special-style function ``name`` in the namespace of ``x`` (not in the array API standard)."""
    if array_api_compat.is_numpy_namespace(xp):
        import scipy.special

        return xp.asarray(getattr(scipy.special, name)(x))
    if array_api_compat.is_torch_namespace(xp):
        import torch

        return getattr(torch.special, name)(x)
    if array_api_compat.is_jax_namespace(xp):
        import jax.scipy.special

        return getattr(jax.scipy.special, name)(x)
    if array_api_compat.is_cupy_namespace(xp):
        import cupyx.scipy.special

        return getattr(cupyx.scipy.special, name)(x)
    # Last resort for other namespaces: evaluate on the host with SciPy.
    import scipy.special

    return xp.asarray(getattr(scipy.special, name)(np.asarray(x)))


_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def normal_pdf(xp: Any, x: Array) -> Array:
    """The standard normal density exp(-x^2/2) / sqrt(2 pi)."""
    return _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
