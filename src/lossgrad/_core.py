"""Base classes for the three shapes of loss, the reductions and the scaled meta-loss.

* :class:`PointwiseLoss`: value, grad, hess have the shape of ``y_pred``.
  :class:`ResidualLoss` (functions of r = y_pred - y_true) and :class:`MarginLoss`
  (functions of z = y * f) do the chain rule once for their whole family.
* :class:`RowLoss`: ``y_pred`` is (N, K) class scores; value (N,), grad (N, K),
  hess (N, K, K), ``hess_diag`` and ``hvp``.
* :class:`BatchLoss`: named inputs (embeddings, pairs, lists, masks); ``grad``
  returns a dict from input name to gradient.

Only ``__call__`` aggregates; every other method returns per-sample arrays, already
multiplied by ``sample_weight``.
"""

from __future__ import annotations

import contextlib
import enum
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import _validation as V
from . import _xp
from ._config import get_config
from ._props import Formula, Kink, Props, Shape

__all__ = [
    "Loss",
    "PointwiseLoss",
    "ResidualLoss",
    "MarginLoss",
    "Scaled",
    "Reduction",
    "NotDifferentiableError",
]

Array = Any


class NotDifferentiableError(TypeError):
    """Raised by ``grad``/``hess`` of a loss that declares them absent (e.g. zero_one)."""


class Reduction(str, enum.Enum):
    """How ``__call__`` aggregates per-sample losses."""

    MEAN = "mean"  #: weighted mean sum(w * l) / sum(w)
    SUM = "sum"  #: sum(w * l)
    NONE = "none"  #: the weighted per-sample array

    @classmethod
    def parse(cls, value: Any) -> Reduction:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"reduction must be one of 'mean', 'sum', 'none'; got {value!r}") from None


def _finish(x: Array, was_scalar: bool) -> Any:
    """Scalars in give scalars out (a NumPy float of the input's precision)."""
    if was_scalar and isinstance(x, np.ndarray):
        return x[()]
    return x


def _ieee_overflow(xp: Any) -> Any:
    """NumPy: overflow to inf and underflow to 0 are the correct IEEE results of a formula
    whose true value is infinite or tiny, so they raise no warning; invalid operations still do."""
    if _xp.is_numpy(xp):
        return np.errstate(over="ignore", under="ignore")
    return contextlib.nullcontext()


def _reduce(xp: Any, values: Array, weight_total: Array | None, reduction: Any, count: int | None = None) -> Any:
    reduction = Reduction.parse(reduction)
    if reduction is Reduction.NONE:
        return values
    total = xp.sum(values)
    if reduction is Reduction.SUM:
        return total
    if weight_total is None:
        return _keep_dtype(total, total / (count if count is not None else math.prod(values.shape)))
    if not bool(weight_total > 0):
        raise ValueError("sample_weight sums to zero: the weighted mean is undefined (use reduction='sum')")
    return total / weight_total


def _keep_dtype(operand: Any, result: Any) -> Any:
    """``result`` (of a float32 NumPy scalar and a Python number) in the dtype of ``operand``:
    NumPy < 2 promotes ``np.float32(x) / 3`` and ``2.5 * np.float32(x)`` to float64 (value-based
    casting); NumPy >= 2 (NEP 50) and the other namespaces keep float32.  Where the Python
    number is a float32 value (a count below 2**24, k = 2.5) the rounded float64 result is
    exactly NumPy 2's float32 one."""
    if isinstance(result, np.generic) and isinstance(operand, np.generic) and result.dtype != operand.dtype:
        return result.astype(operand.dtype)
    return result


class Loss:
    """Behaviour shared by every loss: scaling, reduction and the declared records.

    Subclasses are frozen dataclasses whose fields are their parameters; change one
    with :func:`dataclasses.replace`.
    """

    name: ClassVar[str] = "loss"
    family: ClassVar[str] = "other"
    shape: ClassVar[Shape] = Shape.POINTWISE
    _formula: ClassVar[Formula | None] = None
    references: ClassVar[tuple[str, ...]] = ()

    # --- declared records -------------------------------------------------
    @property
    def props(self) -> Props:  # pragma: no cover - every concrete loss overrides
        raise NotImplementedError

    @property
    def kinks(self) -> tuple[Kink, ...]:
        """Points of the natural variable where a derivative jumps (see :class:`Kink`)."""
        return ()

    @property
    def formula(self) -> Formula:
        if self._formula is None:  # pragma: no cover
            raise NotImplementedError(f"{type(self).__name__} declares no formula")
        return self._formula

    # --- helpers for subclasses -------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        # Caches a call fills in (``_cached_*``: kernel plans, derivative flags) stay out of pickles.
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_cached_")}

    def _set(self, field: str, value: Any) -> None:
        object.__setattr__(self, field, value)

    @property
    def _owner(self) -> str:
        return type(self).__name__

    # --- meta-loss --------------------------------------------------------
    def __mul__(self, k: Any) -> Scaled:
        if not isinstance(k, (int, float)) or isinstance(k, bool):
            return NotImplemented
        return Scaled(self, float(k))

    __rmul__ = __mul__


# ============================================================== pointwise


class PointwiseLoss(Loss):
    """A loss applied elementwise: l_i = L(y_true_i, y_pred_i).

    Subclasses implement ``_value``, ``_grad`` and ``_hess`` on validated arrays of
    the input namespace (and may override ``_evaluate`` to share work between them),
    plus ``_check_target``/``_check_prediction`` for their domains.
    """

    shape: ClassVar[Shape] = Shape.POINTWISE

    # --- public API -------------------------------------------------------
    # ``out``: preallocated NumPy arrays (y_pred's shape and dtype, C-contiguous,
    # writeable, not overlapping y_pred) to write the results into -- one array, or
    # a tuple of one per quantity -- returned in place of new arrays.  A hot loop that
    # reuses its buffers skips the page faults of fresh memory (about half the
    # bandwidth of a memory-bound loss; see docs/benchmarks.md).
    def value(self, y_true: Any, y_pred: Any, sample_weight: Any = None, *, out: Any = None) -> Any:
        """Per-sample loss, multiplied by ``sample_weight``."""
        return self._compute(("value",), y_true, y_pred, sample_weight, out)[0]

    def grad(self, y_true: Any, y_pred: Any, sample_weight: Any = None, *, out: Any = None) -> Any:
        """dL/dy_pred per sample, multiplied by ``sample_weight``."""
        return self._compute(("grad",), y_true, y_pred, sample_weight, out)[0]

    def hess(self, y_true: Any, y_pred: Any, sample_weight: Any = None, *, out: Any = None) -> Any:
        """d^2L/dy_pred^2 per sample (the exact second derivative), times ``sample_weight``."""
        return self._compute(("hess",), y_true, y_pred, sample_weight, out)[0]

    def value_grad(self, y_true: Any, y_pred: Any, sample_weight: Any = None, *, out: Any = None) -> tuple[Any, Any]:
        """(value, grad) computed together."""
        return self._compute(("value", "grad"), y_true, y_pred, sample_weight, out)

    def grad_hess(self, y_true: Any, y_pred: Any, sample_weight: Any = None, *, out: Any = None) -> tuple[Any, Any]:
        """(grad, hess) computed together: the hot path of Newton steps and boosting."""
        return self._compute(("grad", "hess"), y_true, y_pred, sample_weight, out)

    def value_grad_hess(self, y_true: Any, y_pred: Any, sample_weight: Any = None, *,
                        out: Any = None) -> tuple[Any, Any, Any]:
        """(value, grad, hess) computed together."""
        return self._compute(("value", "grad", "hess"), y_true, y_pred, sample_weight, out)

    def __call__(self, y_true: Any, y_pred: Any, *, sample_weight: Any = None, reduction: str = "mean") -> Any:
        """The aggregated loss: weighted mean (default), sum, or the per-sample array."""
        reduction = Reduction.parse(reduction)
        fused = _fused_kernel(self, ("value",), y_true, y_pred, sample_weight)
        if fused is not None:  # weighted values of a NumPy y_pred; the weights were checked in the same pass
            (v,) = fused
            if reduction is Reduction.NONE:
                return v
            w_total = None if sample_weight is None else np.sum(np.broadcast_to(np.asarray(sample_weight, v.dtype),
                                                                                v.shape))
            return _reduce(np, v, w_total, reduction)
        xp, y, f, w, was_scalar = self._prepare(y_true, y_pred, sample_weight)
        with _ieee_overflow(xp):
            (v,) = self._evaluate(xp, y, f, ("value",))
        if w is not None:
            v = v * w
        if reduction is Reduction.NONE:
            return _finish(v, was_scalar)
        return _reduce(xp, v, None if w is None else xp.sum(w), reduction)

    # --- machinery --------------------------------------------------------
    def _compute(self, ops: tuple[str, ...], y_true: Any, y_pred: Any, sample_weight: Any,
                 out: Any = None) -> tuple[Any, ...]:
        if out is None:
            fused = _fused_kernel(self, ops, y_true, y_pred, sample_weight)  # serves declared derivatives only
            if fused is not None:
                return fused
        has_grad, has_hess = _derivatives(self)
        if ("grad" in ops and not has_grad) or ("hess" in ops and not has_hess):
            raise NotDifferentiableError(f"{self.name} declares no derivatives (props.has_grad/has_hess are False)")
        if out is not None:
            return self._compute_into(ops, y_true, y_pred, sample_weight, out)
        xp, y, f, w, was_scalar = self._prepare(y_true, y_pred, sample_weight)
        with _ieee_overflow(xp):
            out = self._evaluate(xp, y, f, ops)
        if w is not None:
            out = tuple(o * w for o in out)
        return tuple(_finish(o, was_scalar) for o in out)

    def _compute_into(self, ops: tuple[str, ...], y_true: Any, y_pred: Any, sample_weight: Any,
                      out: Any) -> tuple[Any, ...]:
        """:meth:`_compute` writing into ``out``: the fused kernel where one serves (any
        size: there is no allocation to save below the threshold either), else the
        reference's results copied in."""
        from . import kernels

        if not (isinstance(y_pred, np.ndarray) and y_pred.dtype in (np.float32, np.float64)):
            raise TypeError(f"out= needs y_pred as a float32 or float64 NumPy array, got {type(y_pred).__name__}"
                            + (f" of dtype {y_pred.dtype}" if isinstance(y_pred, np.ndarray) else ""))
        buffers = out if isinstance(out, tuple) or len(ops) > 1 else (out,)
        if get_config().use_kernels:  # the kernel checks the buffers and writes into them
            result = kernels.evaluate_pointwise(self, ops, y_true, y_pred, sample_weight, out=buffers)
            if result is not None:
                return result
        buffers = kernels.check_out(buffers, ops, y_pred)
        for buffer, result in zip(buffers, self._compute(ops, y_true, y_pred, sample_weight)):
            np.copyto(buffer, result)
        return buffers

    def _prepare(self, y_true: Any, y_pred: Any, sample_weight: Any) -> tuple[Any, Array, Array, Array | None, bool]:
        xp, f, was_scalar = V.as_prediction(y_pred)
        y = V.as_target(y_true, xp, f)
        V.check_finite(xp, f, "y_pred")
        V.check_finite(xp, y, "y_true")
        self._check_target(xp, y)
        self._check_prediction(xp, f)
        w = V.as_sample_weight(sample_weight, xp, f.shape, f)
        return xp, y, f, w, was_scalar

    def _evaluate(self, xp: Any, y: Array, f: Array, ops: tuple[str, ...]) -> tuple[Array, ...]:
        """Compute the requested quantities; override to share intermediate work."""
        return tuple(getattr(self, "_" + op)(xp, y, f) for op in ops)

    def _check_target(self, xp: Any, y: Array) -> None:
        """Raise ValueError if y_true lies outside the loss's domain."""

    def _check_prediction(self, xp: Any, f: Array) -> None:
        """Raise ValueError if y_pred lies outside the loss's domain."""

    def _value(self, xp: Any, y: Array, f: Array) -> Array:  # pragma: no cover
        raise NotImplementedError

    def _grad(self, xp: Any, y: Array, f: Array) -> Array:  # pragma: no cover
        raise NotImplementedError

    def _hess(self, xp: Any, y: Array, f: Array) -> Array:  # pragma: no cover
        raise NotImplementedError

    # --- what verify samples ----------------------------------------------
    def _example_inputs(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Valid (y_true, y_pred) float64 samples covering the interesting range."""
        y = rng.normal(0.0, 2.0, n)
        return y, y + rng.normal(0.0, 3.0, n)

    def _natural(self, y: np.ndarray, f: np.ndarray) -> np.ndarray:
        """The natural variable (r, z or f) at which kinks are declared."""
        return f - y

    def _from_natural(self, y: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The y_pred whose natural variable is t, for the given y_true."""
        return y + t


def _fused_kernel(loss: PointwiseLoss, ops: tuple[str, ...], y_true: Any, y_pred: Any, sample_weight: Any) -> Any:
    """The fused compiled kernel's result (:mod:`lossgrad.kernels`) for a NumPy y_pred of
    at least ``kernel_threshold`` elements while ``use_kernels`` is on, or None (then the
    reference runs)."""
    if type(y_pred) is not np.ndarray or y_pred.dtype not in (np.float32, np.float64):
        return None
    config = get_config()
    if not config.use_kernels or y_pred.size < config.kernel_threshold:
        return None
    global _kernels
    if _kernels is None:
        from . import kernels as _kernels  # Numba loads on the first call that needs it
    return _kernels.evaluate_pointwise(loss, ops, y_true, y_pred, sample_weight)


_kernels: Any = None  # lossgrad.kernels once imported


def _derivatives(loss: Loss) -> tuple[bool, bool]:
    """(props.has_grad, props.has_hess), cached in the instance: props are built per access."""
    cached = loss.__dict__.get("_cached_derivatives")
    if cached is None:
        props = loss.props
        cached = loss.__dict__["_cached_derivatives"] = (props.has_grad, props.has_hess)
    return cached


class ResidualLoss(PointwiseLoss):
    """L(y, f) = rho(r) with r = f - y: grad = psi(r), hess = psi'(r), weight = psi(r)/r.

    Subclasses implement ``_rho``, ``_psi``, ``_dpsi`` (and ``_weight`` where the
    limit at r = 0 needs care).
    """

    def _value(self, xp: Any, y: Array, f: Array) -> Array:
        return self._rho(xp, f - y)

    def _grad(self, xp: Any, y: Array, f: Array) -> Array:
        return self._psi(xp, f - y)

    def _hess(self, xp: Any, y: Array, f: Array) -> Array:
        return self._dpsi(xp, f - y)

    def weight(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """The IRLS weight psi(r)/r, with its limit psi'(0) at r = 0."""
        xp, y, f, w, was_scalar = self._prepare(y_true, y_pred, sample_weight)
        out = self._weight(xp, f - y)
        if w is not None:
            out = out * w
        return _finish(out, was_scalar)

    def _weight(self, xp: Any, r: Array) -> Array:
        at_zero = self._dpsi(xp, xp.zeros_like(r))
        return _xp.safe_divide(xp, self._psi(xp, r), r, at_zero)

    def _rho(self, xp: Any, r: Array) -> Array:  # pragma: no cover
        raise NotImplementedError

    def _psi(self, xp: Any, r: Array) -> Array:  # pragma: no cover
        raise NotImplementedError

    def _dpsi(self, xp: Any, r: Array) -> Array:  # pragma: no cover
        raise NotImplementedError


class MarginLoss(PointwiseLoss):
    """L(y, f) = phi(z) with z = y f and y in {-1, +1} ({0, 1} accepted, 0 meaning -1).

    grad = y phi'(z), hess = phi''(z) (y^2 = 1).  Subclasses implement ``_phi``,
    ``_dphi`` and ``_d2phi``.
    """

    def _check_target(self, xp: Any, y: Array) -> None:
        if _config_assume_valid():
            return
        if isinstance(y, np.ndarray) and bool(((np.abs(y) == 1) | (y == 0)).all()):  # NumPy, without the wrappers
            mixed = y.min() == -1 and bool((y == 0).any())
        else:
            V.check_all(xp, (y == 1) | (y == -1) | (y == 0), "y_true", "binary labels in {-1, +1} or {0, 1}")
            mixed = bool(xp.any(y == -1)) and bool(xp.any(y == 0))
        if mixed:
            raise ValueError("y_true mixes the label encodings {-1, +1} and {0, 1}; use one of them")

    @staticmethod
    def _sign(xp: Any, y: Array) -> Array:
        one = xp.ones_like(y)
        return xp.where(y > 0, one, -one)

    def _evaluate(self, xp: Any, y: Array, f: Array, ops: tuple[str, ...]) -> tuple[Array, ...]:
        cls = type(self)
        if (cls._value, cls._grad, cls._hess) != (MarginLoss._value, MarginLoss._grad, MarginLoss._hess):
            return super()._evaluate(xp, y, f, ops)  # a subclass with formulas of its own
        s = self._sign(xp, y)  # once for all the quantities asked
        z = s * f
        return tuple(self._phi(xp, z) if op == "value" else s * self._dphi(xp, z) if op == "grad"
                     else self._d2phi(xp, z) for op in ops)

    def _value(self, xp: Any, y: Array, f: Array) -> Array:
        return self._phi(xp, self._sign(xp, y) * f)

    def _grad(self, xp: Any, y: Array, f: Array) -> Array:
        s = self._sign(xp, y)
        return s * self._dphi(xp, s * f)

    def _hess(self, xp: Any, y: Array, f: Array) -> Array:
        return self._d2phi(xp, self._sign(xp, y) * f)

    def _example_inputs(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.choice([-1.0, 1.0], n), rng.normal(0.0, 3.0, n)

    def _natural(self, y: np.ndarray, f: np.ndarray) -> np.ndarray:
        return np.where(y > 0, 1.0, -1.0) * f

    def _from_natural(self, y: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.where(y > 0, 1.0, -1.0) * t

    def _phi(self, xp: Any, z: Array) -> Array:  # pragma: no cover
        raise NotImplementedError

    def _dphi(self, xp: Any, z: Array) -> Array:  # pragma: no cover
        raise NotImplementedError

    def _d2phi(self, xp: Any, z: Array) -> Array:  # pragma: no cover
        raise NotImplementedError


def _config_assume_valid() -> bool:
    return get_config().assume_valid


# ============================================================== meta-loss


@dataclass(frozen=True)
class Scaled(Loss):
    """k * loss for k > 0: value, every derivative and the IRLS weight scale by k.

    Convexity, kinks, symmetry and calibration pass through; the Lipschitz,
    smoothness and strong-convexity constants scale by k.

    >>> import lossgrad
    >>> (2 * lossgrad.Huber()).value(0.0, 3.0)
    np.float64(5.0)
    """

    loss: Loss
    k: float

    def __post_init__(self) -> None:
        if not isinstance(self.loss, Loss):
            raise TypeError(f"Scaled: loss must be a lossgrad loss, got {type(self.loss).__name__}")
        self._set("k", V.param_positive("Scaled", "k", self.k))
        if isinstance(self.loss, Scaled):  # fold k1 * (k2 * L) into (k1 k2) * L
            inner = self.loss
            self._set("loss", inner.loss)
            self._set("k", self.k * inner.k)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.k:g}*{self.loss.name}"

    @property
    def family(self) -> str:  # type: ignore[override]
        return self.loss.family

    @property
    def shape(self) -> Shape:  # type: ignore[override]
        return self.loss.shape

    @property
    def props(self) -> Props:
        return self.loss.props.scaled(self.k)

    @property
    def kinks(self) -> tuple[Kink, ...]:
        return self.loss.kinks

    @property
    def formula(self) -> Formula:
        f = self.loss.formula
        k = f"{self.k:g}"
        return Formula(f"{k}\\,({f.value})", f"{k}\\,({f.grad})", f"{k}\\,({f.hess})", f.variable)

    def _scale(self, out: Any) -> Any:
        if isinstance(out, dict):
            return {n: self.k * g for n, g in out.items()}
        if isinstance(out, tuple):
            return tuple(self._scale(o) for o in out)
        return self.k * out

    def _scale_result(self, result: Any, in_place: bool) -> Any:
        if not in_place:
            return self._scale(result)
        for buffer in result if isinstance(result, tuple) else (result,):
            np.multiply(buffer, self.k, out=buffer)  # the caller's out= buffers, scaled where they are
        return result

    def __getattr__(self, attr: str) -> Any:
        # Forward the per-sample methods of the wrapped loss and scale their output.
        if attr in {"value", "grad", "hess", "hess_diag", "hvp", "weight", "value_grad", "grad_hess", "value_grad_hess",
                    "grad_hess_diag"}:
            method = getattr(self.loss, attr)
            return lambda *a, **kw: self._scale_result(method(*a, **kw), kw.get("out") is not None)
        if attr in {"_example_inputs", "_extreme_inputs", "_natural", "_from_natural", "inputs",
                    "differentiable", "has_hvp", "_optional_inputs"}:
            return getattr(self.loss, attr)
        raise AttributeError(attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.loss(*args, **kwargs)
        return _keep_dtype(out, self.k * out)
