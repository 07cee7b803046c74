"""Input and parameter checks with messages that name the argument and the expectation."""

from __future__ import annotations

import math
import numbers
from typing import Any

import array_api_compat
import array_api_compat.numpy
import numpy as np

from . import _xp
from ._config import get_config

__all__ = [
    "as_prediction",
    "as_target",
    "as_sample_weight",
    "check_finite",
    "plain_numpy_pair",
    "NUMPY",
    "check_all",
    "param_positive",
    "param_nonnegative",
    "param_in_interval",
    "param_at_least",
    "param_choice",
    "param_bool",
]


class LossgradWarning(UserWarning):
    """Base class of the warnings lossgrad emits."""


NUMPY = array_api_compat.numpy  #: the namespace as_prediction gives NumPy arrays


def plain_numpy_pair(y_true: Any, y_pred: Any) -> bool:
    """NumPy float32/float64 arrays of one shape and dtype, not empty: inputs that
    :func:`as_prediction` and :func:`as_target` would return unchanged (their fast path)."""
    return (type(y_pred) is np.ndarray and type(y_true) is np.ndarray and y_pred.dtype == y_true.dtype
            and y_pred.dtype in (np.float32, np.float64) and y_pred.shape == y_true.shape and y_pred.size > 0)


def _is_python_scalar(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, np.ndarray)


def as_prediction(y_pred: Any, name: str = "y_pred", ndim: int | None = None) -> tuple[Any, Any, bool]:
    """Return (xp, array, was_scalar) for a floating prediction; TypeError/ValueError otherwise."""
    if type(y_pred) is np.ndarray and y_pred.dtype in (np.float32, np.float64):  # the common case, ~10x quicker
        if ndim is not None and y_pred.ndim != ndim:
            raise ValueError(f"{name} must be {ndim}-dimensional, got shape {tuple(y_pred.shape)}")
        if y_pred.size == 0:
            raise ValueError(f"{name} is empty (shape {tuple(y_pred.shape)}); a loss needs at least one element")
        return NUMPY, y_pred, False
    was_scalar = _is_python_scalar(y_pred) or isinstance(y_pred, np.generic)
    if isinstance(y_pred, bool) or isinstance(y_pred, np.bool_):
        raise TypeError(f"{name} must be a floating-point array, got a boolean")
    if was_scalar:
        y_pred = np.asarray(float(y_pred))
    elif isinstance(y_pred, (list, tuple)):
        y_pred = np.asarray(y_pred, dtype=float)
    try:
        xp = array_api_compat.array_namespace(y_pred)
    except TypeError:
        raise TypeError(f"{name} must be an array (NumPy, PyTorch, JAX, ...) or a number, got {type(y_pred).__name__}") from None
    if not xp.isdtype(y_pred.dtype, "real floating"):
        raise TypeError(
            f"{name} must have a real floating-point dtype (float32 or float64), got {y_pred.dtype}; "
            f"convert it first, e.g. {name}.astype(float)"
        )
    if ndim is not None and y_pred.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {tuple(y_pred.shape)}")
    if _size(y_pred) == 0:
        raise ValueError(f"{name} is empty (shape {tuple(y_pred.shape)}); a loss needs at least one element")
    return xp, y_pred, was_scalar


def _size(x: Any) -> int:
    return math.prod(int(s) for s in x.shape)


def as_target(y_true: Any, xp: Any, like: Any, name: str = "y_true", same_shape: bool = True, dtype: Any = None) -> Any:
    """Bring y_true into the namespace, device and dtype of ``like``; check its shape."""
    if type(y_true) is np.ndarray and type(like) is np.ndarray and y_true.dtype.kind in "fiu":  # the common case
        arr = y_true.astype(like.dtype if dtype is None else dtype, copy=False)
        if same_shape and arr.shape != like.shape:
            if arr.ndim == 0:
                return np.broadcast_to(arr, like.shape)
            raise ValueError(
                f"{name} and y_pred must have the same shape; got {tuple(arr.shape)} and {tuple(like.shape)}"
            )
        return arr
    if isinstance(y_true, bool):
        y_true = float(y_true)
    if y_true is None:
        raise TypeError(f"{name} is required, got None")
    try:
        arr = xp.asarray(y_true, device=array_api_compat.device(like))
    except Exception:
        if hasattr(y_true, "__array__") and not _xp.is_numpy(xp):
            arr = xp.asarray(np.asarray(y_true), device=array_api_compat.device(like))
        else:
            raise TypeError(f"{name} must be array-like, got {type(y_true).__name__}") from None
    if not (xp.isdtype(arr.dtype, "numeric") or xp.isdtype(arr.dtype, "bool")):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if xp.isdtype(arr.dtype, "complex floating"):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    arr = xp.astype(arr, like.dtype if dtype is None else dtype, copy=False)
    if same_shape and arr.shape != like.shape:
        if arr.ndim == 0:
            arr = xp.broadcast_to(arr, like.shape)
        else:
            raise ValueError(
                f"{name} and y_pred must have the same shape; got {tuple(arr.shape)} and {tuple(like.shape)}"
            )
    return arr


def as_sample_weight(sample_weight: Any, xp: Any, shape: tuple[int, ...], like: Any) -> Any:
    """None, or a non-negative finite weight array broadcastable to ``shape``."""
    if sample_weight is None:
        return None
    w = as_target(sample_weight, xp, like, name="sample_weight", same_shape=False)
    if w.shape != tuple(shape):
        if w.ndim == 0:
            w = xp.broadcast_to(w, tuple(shape))
        else:
            raise ValueError(f"sample_weight must have shape {tuple(shape)} (one weight per sample), got {tuple(w.shape)}")
    if not get_config().assume_valid:
        check_finite(xp, w, "sample_weight")
        check_all(xp, w >= 0, "sample_weight", "non-negative weights")
    return w


def check_finite(xp: Any, x: Any, name: str) -> None:
    if get_config().assume_valid:
        return
    if xp is NUMPY and isinstance(x, np.ndarray):  # np.isfinite directly: a third of the wrapped call's time
        finite = bool(np.isfinite(x).all())
    else:
        finite = bool(xp.all(xp.isfinite(x)))
    if not finite:
        bad = int(xp.count_nonzero(~xp.isfinite(x)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); all entries must be finite")


def check_all(xp: Any, condition: Any, name: str, expectation: str) -> None:
    """Raise ValueError unless every element satisfies ``condition``."""
    if get_config().assume_valid:
        return
    if not bool(xp.all(condition)):  # count_nonzero: also in NumPy 1's own namespace, which has no astype
        bad = int(xp.count_nonzero(~condition))
        raise ValueError(f"{name} must contain {expectation}; {bad} element(s) do not")


# ---------------------------------------------------------------- parameters


def _number(owner: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{owner}: {name} must not be NaN")
    return value


def param_positive(owner: str, name: str, value: Any, allow_inf: bool = False) -> float:
    v = _number(owner, name, value)
    if not v > 0 or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{owner}: {name} must be a finite number > 0, got {value!r}")
    return v


def param_nonnegative(owner: str, name: str, value: Any) -> float:
    v = _number(owner, name, value)
    if not (0 <= v < math.inf):
        raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {value!r}")
    return v


def param_in_interval(owner: str, name: str, value: Any, low: float, high: float, closed: str = "neither") -> float:
    """closed: 'neither', 'left', 'right' or 'both'."""
    v = _number(owner, name, value)
    lo_ok = v >= low if closed in ("left", "both") else v > low
    hi_ok = v <= high if closed in ("right", "both") else v < high
    if not (lo_ok and hi_ok):
        lb = "[" if closed in ("left", "both") else "("
        rb = "]" if closed in ("right", "both") else ")"
        raise ValueError(f"{owner}: {name} must lie in {lb}{low}, {high}{rb}, got {value!r}")
    return v


def param_at_least(owner: str, name: str, value: Any, low: float) -> float:
    v = _number(owner, name, value)
    if not (low <= v < math.inf):
        raise ValueError(f"{owner}: {name} must be a finite number >= {low}, got {value!r}")
    return v


def param_choice(owner: str, name: str, value: Any, choices: tuple[Any, ...]) -> Any:
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def param_bool(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)
