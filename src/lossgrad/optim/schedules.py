"""Learning-rate schedules: callables ``step -> learning rate``.

``step`` counts the updates already done (0 at the first update), an int, a float or a NumPy
array of them (>= 0); the result is a float, or a float64 array of the same shape. Each schedule
is a frozen dataclass: printable, comparable, picklable, validated when it is built. Names and
arguments follow optax (``init_value``, ``transition_steps``, ``alpha``...); each docstring gives
the formula and the matching torch.optim.lr_scheduler, stepped once per update.

>>> from lossgrad.optim import schedules
>>> s = schedules.step_decay(0.1, step_size=10, gamma=0.5)
>>> s(0), s(9), s(10), s(25)
(0.1, 0.1, 0.05, 0.025)
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _base as B

__all__ = [
    "Schedule",
    "constant",
    "step_decay",
    "piecewise_constant",
    "exponential",
    "inverse_time",
    "polynomial",
    "linear",
    "cosine",
    "cosine_warm_restarts",
    "linear_warmup",
    "warmup_cosine",
    "join",
]


def _steps(step: Any) -> tuple[np.ndarray, bool]:
    if isinstance(step, (bool, np.bool_)):
        raise TypeError(f"step must be a number or an array of numbers, got {step!r}")
    scalar = isinstance(step, numbers.Real) or (isinstance(step, np.ndarray) and step.ndim == 0)
    try:
        t = np.asarray(step)
    except (TypeError, ValueError):
        t = np.asarray(None)
    if t.dtype.kind not in "iuf":
        raise TypeError(f"step must be a number or an array of numbers, got {type(step).__name__}")
    t = t.astype(np.float64)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"step must be finite and >= 0, got {step!r}")
    return t, scalar


def _integer(owner: str, name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{owner}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class Schedule:
    """Base class: ``__call__`` checks the step and evaluates ``_value`` on a float64 array."""

    def __call__(self, step: Any) -> Any:
        t, scalar = _steps(step)
        out = np.asarray(self._value(t), dtype=np.float64)
        return float(out) if scalar else out

    def _value(self, t: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Schedule):
    """``eta(t) = value``."""

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", B.nonnegative("constant", "value", self.value))

    def _value(self, t: np.ndarray) -> np.ndarray:
        return np.full(t.shape, self.value)


@dataclass(frozen=True)
class PiecewiseConstant(Schedule):
    """``eta(t) = init_value * prod of the scales whose boundary b <= t``.

    torch's MultiStepLR(milestones, gamma) is ``{m: gamma for m in milestones}``; optax's
    ``piecewise_constant_schedule``.
    """

    init_value: float
    boundaries_and_scales: tuple[tuple[int, float], ...] = field(default=())

    def __post_init__(self) -> None:
        o = "piecewise_constant"
        object.__setattr__(self, "init_value", B.positive(o, "init_value", self.init_value))
        items = self.boundaries_and_scales
        items = items.items() if isinstance(items, Mapping) else items
        pairs = tuple(sorted((_integer(o, "boundary", b, 0), B.nonnegative(o, "scale", s)) for b, s in items))
        object.__setattr__(self, "boundaries_and_scales", pairs)

    def _value(self, t: np.ndarray) -> np.ndarray:
        out = np.full(t.shape, self.init_value)
        for b, s in self.boundaries_and_scales:
            out = np.where(t >= b, out * s, out)
        return out


@dataclass(frozen=True)
class Exponential(Schedule):
    """``eta(t) = init_value * decay_rate ** p``, ``p = (t - transition_begin) / transition_steps``.

    ``p`` is floored with ``staircase=True`` and is 0 before ``transition_begin``; the value is
    bounded by ``end_value`` (below when decaying, above when growing). optax's
    ``exponential_decay``; torch's ExponentialLR(gamma) is ``exponential(lr, gamma)``.
    """

    init_value: float
    decay_rate: float
    transition_steps: int = 1
    transition_begin: int = 0
    staircase: bool = False
    end_value: float | None = None

    def __post_init__(self) -> None:
        o = "exponential"
        object.__setattr__(self, "init_value", B.positive(o, "init_value", self.init_value))
        object.__setattr__(self, "decay_rate", B.positive(o, "decay_rate", self.decay_rate))
        _integer(o, "transition_steps", self.transition_steps, 1)
        _integer(o, "transition_begin", self.transition_begin, 0)
        B.flag(o, "staircase", self.staircase)
        if self.end_value is not None:
            object.__setattr__(self, "end_value", B.nonnegative(o, "end_value", self.end_value))

    def _value(self, t: np.ndarray) -> np.ndarray:
        p = np.maximum(t - self.transition_begin, 0.0) / self.transition_steps
        p = np.floor(p) if self.staircase else p
        out = self.init_value * self.decay_rate**p
        if self.end_value is not None:
            out = np.maximum(out, self.end_value) if self.decay_rate < 1 else np.minimum(out, self.end_value)
        return out


@dataclass(frozen=True)
class InverseTime(Schedule):
    """``eta(t) = init_value / (1 + decay_rate * p)``, ``p = t / decay_steps`` (floored if staircase).

    Keras' InverseTimeDecay; torch's Adagrad ``lr_decay`` is ``inverse_time(lr, lr_decay)``.
    """

    init_value: float
    decay_rate: float
    decay_steps: int = 1
    staircase: bool = False

    def __post_init__(self) -> None:
        o = "inverse_time"
        object.__setattr__(self, "init_value", B.positive(o, "init_value", self.init_value))
        object.__setattr__(self, "decay_rate", B.nonnegative(o, "decay_rate", self.decay_rate))
        _integer(o, "decay_steps", self.decay_steps, 1)
        B.flag(o, "staircase", self.staircase)

    def _value(self, t: np.ndarray) -> np.ndarray:
        p = t / self.decay_steps
        p = np.floor(p) if self.staircase else p
        return self.init_value / (1.0 + self.decay_rate * p)


@dataclass(frozen=True)
class Polynomial(Schedule):
    """``eta(t) = (init_value - end_value) * (1 - s / transition_steps) ** power + end_value``,
    ``s = clip(t - transition_begin, 0, transition_steps)``.

    optax's ``polynomial_schedule`` (``power=1``: ``linear_schedule``); torch's
    PolynomialLR(total_iters, power) is ``polynomial(lr, 0.0, power, total_iters)`` and
    LinearLR(start_factor, end_factor, total_iters) is
    ``linear(lr * start_factor, lr * end_factor, total_iters)``.
    """

    init_value: float
    end_value: float
    power: float
    transition_steps: int
    transition_begin: int = 0

    def __post_init__(self) -> None:
        o = "polynomial"
        object.__setattr__(self, "init_value", B.nonnegative(o, "init_value", self.init_value))
        object.__setattr__(self, "end_value", B.nonnegative(o, "end_value", self.end_value))
        object.__setattr__(self, "power", B.positive(o, "power", self.power))
        _integer(o, "transition_steps", self.transition_steps, 1)
        _integer(o, "transition_begin", self.transition_begin, 0)

    def _value(self, t: np.ndarray) -> np.ndarray:
        s = np.clip(t - self.transition_begin, 0.0, self.transition_steps)
        return (self.init_value - self.end_value) * (1.0 - s / self.transition_steps) ** self.power + self.end_value


@dataclass(frozen=True)
class Cosine(Schedule):
    """``eta(t) = init_value * ((1 - alpha) * c(t) ** exponent + alpha)``,
    ``c(t) = (1 + cos(pi * min(t, decay_steps) / decay_steps)) / 2`` (Loshchilov & Hutter 2017).

    optax's ``cosine_decay_schedule``. torch's CosineAnnealingLR(T_max, eta_min) is
    ``cosine(lr, T_max, alpha=eta_min / lr)`` for ``t <= T_max``; past T_max torch's curve rises
    again (the cosine is periodic) while this one stays at ``alpha * init_value``.
    """

    init_value: float
    decay_steps: int
    alpha: float = 0.0
    exponent: float = 1.0

    def __post_init__(self) -> None:
        o = "cosine"
        object.__setattr__(self, "init_value", B.positive(o, "init_value", self.init_value))
        _integer(o, "decay_steps", self.decay_steps, 1)
        a = B.number(o, "alpha", self.alpha)
        if not 0 <= a <= 1:
            raise ValueError(f"{o}: alpha must lie in [0, 1] (the final fraction of init_value), got {self.alpha!r}")
        object.__setattr__(self, "alpha", a)
        object.__setattr__(self, "exponent", B.positive(o, "exponent", self.exponent))

    def _value(self, t: np.ndarray) -> np.ndarray:
        c = 0.5 * (1.0 + np.cos(np.pi * np.minimum(t, self.decay_steps) / self.decay_steps))
        return self.init_value * ((1.0 - self.alpha) * c**self.exponent + self.alpha)


@dataclass(frozen=True)
class CosineWarmRestarts(Schedule):
    """SGDR, cosine annealing with warm restarts (Loshchilov & Hutter 2017).

    Periods have lengths ``T_i = t_0 * t_mult**i``; inside period i, at ``T_cur`` steps from its start,
    ``eta(t) = init_value * (alpha + (1 - alpha) * (1 + cos(pi * T_cur / T_i)) / 2)``.
    torch's CosineAnnealingWarmRestarts(T_0, T_mult, eta_min) is
    ``cosine_warm_restarts(lr, T_0, T_mult, alpha=eta_min / lr)``.
    """

    init_value: float
    t_0: int
    t_mult: int = 1
    alpha: float = 0.0

    def __post_init__(self) -> None:
        o = "cosine_warm_restarts"
        object.__setattr__(self, "init_value", B.positive(o, "init_value", self.init_value))
        _integer(o, "t_0", self.t_0, 1)
        _integer(o, "t_mult", self.t_mult, 1)
        a = B.number(o, "alpha", self.alpha)
        if not 0 <= a <= 1:
            raise ValueError(f"{o}: alpha must lie in [0, 1] (eta_min / init_value), got {self.alpha!r}")
        object.__setattr__(self, "alpha", a)

    def _value(self, t: np.ndarray) -> np.ndarray:
        if self.t_mult == 1:
            t_cur, t_i = np.mod(t, self.t_0), np.full(t.shape, float(self.t_0))
        else:
            t_cur, t_i = t.copy(), np.full(t.shape, float(self.t_0))
            while np.any(over := t_cur >= t_i):  # one pass per restart: logarithmic in t
                t_cur = np.where(over, t_cur - t_i, t_cur)
                t_i = np.where(over, t_i * self.t_mult, t_i)
        c = 0.5 * (1.0 + np.cos(np.pi * t_cur / t_i))
        return self.init_value * (self.alpha + (1.0 - self.alpha) * c)


@dataclass(frozen=True)
class Join(Schedule):
    """``schedules[i](t - boundaries[i-1])`` for ``boundaries[i-1] <= t < boundaries[i]``.

    Each schedule restarts its own count at its boundary; optax's ``join_schedules``.
    """

    schedules: tuple[Callable[[Any], Any], ...]
    boundaries: tuple[int, ...]

    def __post_init__(self) -> None:
        o = "join"
        sch, bnd = tuple(self.schedules), tuple(_integer(o, "boundary", b, 0) for b in self.boundaries)
        if not sch or not all(callable(s) for s in sch):
            raise TypeError(f"{o}: schedules must be a non-empty sequence of callables")
        if len(bnd) != len(sch) - 1:
            raise ValueError(f"{o}: needs len(schedules) - 1 = {len(sch) - 1} boundaries, got {len(bnd)}")
        if any(b1 >= b2 for b1, b2 in zip(bnd, bnd[1:])):
            raise ValueError(f"{o}: boundaries must be strictly increasing, got {bnd}")
        object.__setattr__(self, "schedules", sch)
        object.__setattr__(self, "boundaries", bnd)

    def _value(self, t: np.ndarray) -> np.ndarray:
        out = np.asarray(self.schedules[0](t), dtype=np.float64)
        for b, s in zip(self.boundaries, self.schedules[1:]):
            after = t >= b
            if np.any(after):
                out = np.where(after, np.asarray(s(np.where(after, t - b, 0.0)), dtype=np.float64), out)
        return out


# ------------------------------------------------------------------- the public constructors


def constant(value: float) -> Constant:
    """``eta(t) = value`` (optax's ``constant_schedule``)."""
    return Constant(value)


def step_decay(init_value: float, step_size: int, gamma: float = 0.1) -> Exponential:
    """``eta(t) = init_value * gamma ** floor(t / step_size)``: torch's StepLR(step_size, gamma)."""
    _integer("step_decay", "step_size", step_size, 1)
    return Exponential(init_value, B.positive("step_decay", "gamma", gamma), step_size, staircase=True)


def piecewise_constant(init_value: float, boundaries_and_scales: Mapping[int, float] | Sequence[tuple[int, float]]) -> PiecewiseConstant:
    """See :class:`PiecewiseConstant`."""
    return PiecewiseConstant(init_value, boundaries_and_scales)


def exponential(init_value: float, decay_rate: float, transition_steps: int = 1, transition_begin: int = 0,
                staircase: bool = False, end_value: float | None = None) -> Exponential:
    """See :class:`Exponential`."""
    return Exponential(init_value, decay_rate, transition_steps, transition_begin, staircase, end_value)


def inverse_time(init_value: float, decay_rate: float, decay_steps: int = 1, staircase: bool = False) -> InverseTime:
    """See :class:`InverseTime`."""
    return InverseTime(init_value, decay_rate, decay_steps, staircase)


def polynomial(init_value: float, end_value: float, power: float, transition_steps: int,
               transition_begin: int = 0) -> Polynomial:
    """See :class:`Polynomial`."""
    return Polynomial(init_value, end_value, power, transition_steps, transition_begin)


def linear(init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0) -> Polynomial:
    """From ``init_value`` to ``end_value`` in a straight line over ``transition_steps`` (optax's ``linear_schedule``)."""
    return Polynomial(init_value, end_value, 1.0, transition_steps, transition_begin)


def cosine(init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0) -> Cosine:
    """See :class:`Cosine`."""
    return Cosine(init_value, decay_steps, alpha, exponent)


def cosine_warm_restarts(init_value: float, t_0: int, t_mult: int = 1, alpha: float = 0.0) -> CosineWarmRestarts:
    """See :class:`CosineWarmRestarts`."""
    return CosineWarmRestarts(init_value, t_0, t_mult, alpha)


def join(schedules: Sequence[Callable[[Any], Any]], boundaries: Sequence[int]) -> Join:
    """See :class:`Join`."""
    return Join(tuple(schedules), tuple(boundaries))


def linear_warmup(schedule: float | Callable[[Any], Any], warmup_steps: int, init_value: float = 0.0) -> Join:
    """Rise linearly from ``init_value`` to ``schedule(0)`` over ``warmup_steps``, then follow ``schedule``.

    ``eta(t) = init_value + (peak - init_value) * t / warmup_steps`` for ``t < warmup_steps``,
    ``schedule(t - warmup_steps)`` afterwards (a float is a constant schedule). torch's
    LinearLR(start_factor, 1.0, total_iters) is ``linear_warmup(lr, total_iters, lr * start_factor)``.
    """
    after = schedule if callable(schedule) else Constant(schedule)
    peak = float(after(0))
    return Join((Polynomial(init_value, peak, 1.0, _integer("linear_warmup", "warmup_steps", warmup_steps, 1)), after),
                (warmup_steps,))


def warmup_cosine(init_value: float, peak_value: float, warmup_steps: int, decay_steps: int,
                  end_value: float = 0.0, exponent: float = 1.0) -> Join:
    """Linear warm-up from ``init_value`` to ``peak_value``, then cosine decay to ``end_value``;
    ``decay_steps`` counts the warm-up too (optax's ``warmup_cosine_decay_schedule``)."""
    _integer("warmup_cosine", "decay_steps", decay_steps, warmup_steps + 1 if isinstance(warmup_steps, int) else 1)
    peak = B.positive("warmup_cosine", "peak_value", peak_value)
    end = B.nonnegative("warmup_cosine", "end_value", end_value)
    return linear_warmup(Cosine(peak, decay_steps - warmup_steps, end / peak, exponent), warmup_steps, init_value)
