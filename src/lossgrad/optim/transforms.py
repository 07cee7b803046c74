"""Gradient transformations: the building blocks that :mod:`lossgrad.optim.optimizers` chains.

Notation: ``g_t`` is the incoming update (the gradient, or the output of the previous
transformation) at step ``t = 1, 2, ...``, ``u_t`` the outgoing update, ``theta`` the params.
All operations are element-wise unless said otherwise; every array is new (nothing is updated
in place), and ``float32`` in gives ``float32`` out.

Conventions (each is a choice where the peers differ; the default is PyTorch's):

* epsilon **outside** the square root, ``g / (sqrt(v) + eps)`` (torch.optim); optax's
  ``rmsprop``/``adagrad`` put it inside, ``g / sqrt(v + eps)``: pass ``eps_in_sqrt=True``.
* momentum is the heavy-ball buffer ``b_t = mu b_{t-1} + g_t`` applied *before* the learning
  rate (torch.optim's SGD and RMSprop); optax's ``rmsprop(momentum=...)`` applies it after the
  learning rate, which is the same trajectory only for a constant learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import array_api_compat

from . import _base as B
from ._base import EmptyState, GradientTransformation, sqrt, tree_map, zeros_like

__all__ = [
    "scale",
    "scale_by_learning_rate",
    "trace",
    "scale_by_adam",
    "scale_by_nadam",
    "scale_by_rms",
    "scale_by_rss",
    "add_decayed_weights",
    "clip",
    "clip_by_global_norm",
    "ScaleByLearningRateState",
    "TraceState",
    "ScaleByAdamState",
    "ScaleByNadamState",
    "ScaleByRmsState",
    "ScaleByRssState",
]


class ScaleByLearningRateState(NamedTuple):
    count: int  # number of updates done so far: the step handed to the schedule


class TraceState(NamedTuple):
    count: int
    trace: Any


class ScaleByAdamState(NamedTuple):
    count: int
    mu: Any  # first moment m_t
    nu: Any  # second moment v_t


class ScaleByNadamState(NamedTuple):
    count: int
    mu_product: float  # prod_{i<=t} mu_i
    mu: Any
    nu: Any


class ScaleByRmsState(NamedTuple):
    nu: Any  # running mean of g**2
    mu: Any  # running mean of g (centered), else None


class ScaleByRssState(NamedTuple):
    sum_of_squares: Any


def scale(step_size: float) -> GradientTransformation:
    """``u_t = step_size * g_t``."""
    c = B.number("scale", "step_size", step_size)
    return GradientTransformation(
        lambda params: EmptyState(), lambda grads, state, params=None: (tree_map(lambda g: c * g, grads), state)
    )


def scale_by_learning_rate(learning_rate: float | Callable[[int], float]) -> GradientTransformation:
    """``u_t = -eta(t - 1) * g_t``: a descent step with a fixed or scheduled learning rate.

    The schedule ``eta`` receives the number of updates already done (0 at the first update),
    the convention of optax and of ``torch.optim.lr_scheduler`` stepped once per update.
    """
    lr = B.as_learning_rate("scale_by_learning_rate", learning_rate)

    def update(grads: Any, state: ScaleByLearningRateState, params: Any = None):
        eta = float(lr(state.count))
        return tree_map(lambda g: -eta * g, grads), ScaleByLearningRateState(state.count + 1)

    return GradientTransformation(lambda params: ScaleByLearningRateState(0), update)


def trace(decay: float, nesterov: bool = False, dampening: float = 0.0) -> GradientTransformation:
    """Momentum (heavy ball), as torch.optim.SGD defines it.

    ``b_1 = g_1``,  ``b_t = decay * b_{t-1} + (1 - dampening) * g_t`` for t > 1;
    ``u_t = b_t``, or with ``nesterov=True``, ``u_t = g_t + decay * b_t``
    (Sutskever et al. 2013, in the form of torch and optax; Nesterov needs ``dampening=0``).
    With ``dampening=0`` this is optax's ``trace`` (whose ``b_0 = 0`` gives the same ``b_1``).
    """
    mu = B.unit_interval("trace", "decay", decay)
    nest = B.flag("trace", "nesterov", nesterov)
    damp = B.unit_interval("trace", "dampening", dampening)
    if nest and (mu <= 0 or damp != 0):
        raise ValueError("trace: nesterov=True requires decay > 0 and dampening = 0")

    def update(grads: Any, state: TraceState, params: Any = None):
        if state.count == 0:
            buf = tree_map(lambda g: 1.0 * g, grads)  # a copy: torch's buf = clone(g)
        else:
            buf = tree_map(lambda g, b: mu * b + (1.0 - damp) * g, grads, state.trace)
        out = tree_map(lambda g, b: g + mu * b, grads, buf) if nest else buf
        return out, TraceState(state.count + 1, buf)

    return GradientTransformation(lambda params: TraceState(0, zeros_like(params)), update)


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, eps_root: float = 0.0) -> GradientTransformation:
    """Adam's rescaling (Kingma & Ba 2015, Algorithm 1).

    ``m_t = b1 m_{t-1} + (1 - b1) g_t``,  ``v_t = b2 v_{t-1} + (1 - b2) g_t**2`` (``m_0 = v_0 = 0``),
    ``m^_t = m_t / (1 - b1**t)``,  ``v^_t = v_t / (1 - b2**t)``,
    ``u_t = m^_t / (sqrt(v^_t + eps_root) + eps)``.

    torch.optim.Adam computes ``(m_t / (1 - b1**t)) / (sqrt(v_t) / sqrt(1 - b2**t) + eps)``: the same
    number with ``eps_root = 0``; optax's ``scale_by_adam`` is this one, ``eps_root`` included.
    """
    b1 = B.unit_interval("scale_by_adam", "b1", b1)
    b2 = B.unit_interval("scale_by_adam", "b2", b2)
    eps = B.nonnegative("scale_by_adam", "eps", eps)
    eps_root = B.nonnegative("scale_by_adam", "eps_root", eps_root)

    def init(params: Any) -> ScaleByAdamState:
        return ScaleByAdamState(0, zeros_like(params), zeros_like(params))

    def update(grads: Any, state: ScaleByAdamState, params: Any = None):
        t = state.count + 1
        m = tree_map(lambda g, m: b1 * m + (1.0 - b1) * g, grads, state.mu)
        v = tree_map(lambda g, v: b2 * v + (1.0 - b2) * (g * g), grads, state.nu)
        c1, c2 = 1.0 - b1**t, 1.0 - b2**t
        u = tree_map(lambda m, v: (m / c1) / (sqrt(v / c2 + eps_root) + eps), m, v)
        return u, ScaleByAdamState(t, m, v)

    return GradientTransformation(init, update)


def scale_by_nadam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, momentum_decay: float = 4e-3
) -> GradientTransformation:
    """NAdam's rescaling (Dozat 2016), with torch.optim.NAdam's momentum schedule.

    ``mu_t = b1 (1 - 0.5 * 0.96**(t * momentum_decay))``,  ``P_t = mu_1 ... mu_t``,
    ``m_t, v_t`` as in Adam,  ``d_t = sqrt(v_t / (1 - b2**t)) + eps``,
    ``u_t = [(1 - mu_t) / (1 - P_t)] g_t / d_t + [mu_{t+1} / (1 - P_t mu_{t+1})] m_t / d_t``.

    ``momentum_decay=math.inf`` makes ``mu_t = b1`` for every t: the coefficients become
    ``(1 - b1) / (1 - b1**t)`` and ``b1 / (1 - b1**(t+1))``, which is optax's ``nadam``
    (``scale_by_adam(nesterov=True)``).
    """
    b1 = B.unit_interval("scale_by_nadam", "b1", b1)
    b2 = B.unit_interval("scale_by_nadam", "b2", b2)
    eps = B.nonnegative("scale_by_nadam", "eps", eps)
    if isinstance(momentum_decay, bool) or not isinstance(momentum_decay, (int, float)) or not momentum_decay >= 0:
        raise ValueError(f"scale_by_nadam: momentum_decay must be a number >= 0 (math.inf allowed), got {momentum_decay!r}")
    psi = float(momentum_decay)

    def mu_at(t: int) -> float:
        return b1 * (1.0 - 0.5 * 0.96 ** (t * psi)) if psi < math.inf else b1

    def init(params: Any) -> ScaleByNadamState:
        return ScaleByNadamState(0, 1.0, zeros_like(params), zeros_like(params))

    def update(grads: Any, state: ScaleByNadamState, params: Any = None):
        t = state.count + 1
        mu_t, mu_next = mu_at(t), mu_at(t + 1)
        prod = state.mu_product * mu_t
        m = tree_map(lambda g, m: b1 * m + (1.0 - b1) * g, grads, state.mu)
        v = tree_map(lambda g, v: b2 * v + (1.0 - b2) * (g * g), grads, state.nu)
        c2 = 1.0 - b2**t
        cg = (1.0 - mu_t) / (1.0 - prod)
        cm = mu_next / (1.0 - prod * mu_next)

        def step(g: Any, m: Any, v: Any) -> Any:
            d = sqrt(v / c2) + eps
            return cg * g / d + cm * m / d

        return tree_map(step, grads, m, v), ScaleByNadamState(t, prod, m, v)

    return GradientTransformation(init, update)


def scale_by_rms(
    decay: float = 0.9, eps: float = 1e-8, initial_scale: float = 0.0, eps_in_sqrt: bool = False, centered: bool = False
) -> GradientTransformation:
    """RMSprop's rescaling (Tieleman & Hinton 2012; centered: Graves 2013).

    ``v_t = decay v_{t-1} + (1 - decay) g_t**2`` (``v_0 = initial_scale``); centered also tracks
    ``a_t = decay a_{t-1} + (1 - decay) g_t`` (``a_0 = 0``) and uses ``s_t = v_t - a_t**2`` instead of ``v_t``.
    ``u_t = g_t / (sqrt(s_t) + eps)`` (torch.optim.RMSprop, ``alpha = decay``), or with
    ``eps_in_sqrt=True``, ``u_t = g_t / sqrt(s_t + eps)`` (optax's default).
    """
    decay = B.unit_interval("scale_by_rms", "decay", decay)
    eps = B.nonnegative("scale_by_rms", "eps", eps)
    v0 = B.nonnegative("scale_by_rms", "initial_scale", initial_scale)
    inside = B.flag("scale_by_rms", "eps_in_sqrt", eps_in_sqrt)
    cent = B.flag("scale_by_rms", "centered", centered)

    def init(params: Any) -> ScaleByRmsState:
        return ScaleByRmsState(zeros_like(params, v0), zeros_like(params) if cent else None)

    def update(grads: Any, state: ScaleByRmsState, params: Any = None):
        v = tree_map(lambda g, v: decay * v + (1.0 - decay) * (g * g), grads, state.nu)
        a = tree_map(lambda g, a: decay * a + (1.0 - decay) * g, grads, state.mu) if cent else None

        def step(g: Any, v: Any, a: Any = None) -> Any:
            s = v if a is None else v - a * a
            s = s * (s > 0)  # rounding can make the centered variance -0.0 or a hair below 0
            return g / sqrt(s + eps) if inside else g / (sqrt(s) + eps)

        u = tree_map(step, grads, v, a) if cent else tree_map(step, grads, v)
        return u, ScaleByRmsState(v, a)

    return GradientTransformation(init, update)


def scale_by_rss(initial_accumulator_value: float = 0.1, eps: float = 1e-7, eps_in_sqrt: bool = False) -> GradientTransformation:
    """Adagrad's rescaling by the root of the sum of squares (Duchi, Hazan & Singer 2011).

    ``s_t = s_{t-1} + g_t**2`` (``s_0 = initial_accumulator_value``),
    ``u_t = g_t / (sqrt(s_t) + eps)`` (torch.optim.Adagrad), or with ``eps_in_sqrt=True``,
    ``u_t = g_t / sqrt(s_t + eps)`` (optax, which also returns 0 where ``s_t = 0``; so does this one then).
    """
    s0 = B.nonnegative("scale_by_rss", "initial_accumulator_value", initial_accumulator_value)
    eps = B.nonnegative("scale_by_rss", "eps", eps)
    inside = B.flag("scale_by_rss", "eps_in_sqrt", eps_in_sqrt)

    def update(grads: Any, state: ScaleByRssState, params: Any = None):
        s = tree_map(lambda g, s: s + g * g, grads, state.sum_of_squares)
        if inside:
            u = tree_map(lambda g, s: (s > 0) * g / sqrt(s + eps + (s <= 0)), grads, s)
        else:
            u = tree_map(lambda g, s: g / (sqrt(s) + eps), grads, s)
        return u, ScaleByRssState(s)

    return GradientTransformation(lambda params: ScaleByRssState(zeros_like(params, s0)), update)


def _masked(fn: Callable[[Any, Any], Any], grads: Any, params: Any, mask: Any, path: str = "") -> Any:
    """fn(g, p) where mask is True, g where False; a bool of the mask covers a whole subtree."""
    if isinstance(mask, bool):
        return tree_map(fn, grads, params) if mask else grads
    if not isinstance(mask, Mapping) or not isinstance(grads, Mapping) or set(mask) != set(grads):
        raise ValueError(f"add_decayed_weights: mask{path} must be a bool or a dict with the keys of the params")
    return {k: _masked(fn, grads[k], params[k], mask[k], f"{path}[{k!r}]") for k in grads}


def add_decayed_weights(weight_decay: float, mask: Any = None) -> GradientTransformation:
    """``u_t = g_t + weight_decay * theta`` (the gradient of ``weight_decay/2 * ||theta||^2``).

    Before a rescaling (Adam, RMSprop) this is coupled L2 regularisation (``weight_decay`` of
    torch's SGD/Adam/RMSprop/Adagrad); after it and before the learning rate it is decoupled
    weight decay (Loshchilov & Hutter 2019, AdamW). ``mask``: None (decay everything), a bool,
    a dict of bools with the keys of the params (a bool covers its subtree), or a callable
    ``params -> mask``.
    """
    wd = B.nonnegative("add_decayed_weights", "weight_decay", weight_decay)

    def update(grads: Any, state: EmptyState, params: Any = None):
        if params is None:
            raise ValueError("add_decayed_weights: update needs params (call update(grads, state, params))")
        m = mask(params) if callable(mask) else (True if mask is None else mask)
        return _masked(lambda g, p: g + wd * p, grads, params, m), state

    return GradientTransformation(lambda params: EmptyState(), update)


def clip(max_delta: float) -> GradientTransformation:
    """``u_t = min(max(g_t, -max_delta), max_delta)`` (torch.nn.utils.clip_grad_value_, optax.clip)."""
    c = B.positive("clip", "max_delta", max_delta)

    def one(g: Any) -> Any:
        return array_api_compat.array_namespace(g).clip(g, min=-c, max=c)

    return GradientTransformation(lambda params: EmptyState(), lambda grads, state, params=None: (tree_map(one, grads), state))


def clip_by_global_norm(max_norm: float, eps: float = 0.0) -> GradientTransformation:
    """``u_t = g_t * min(1, max_norm / (||g_t|| + eps))``, ``||.||`` the norm of all leaves together.

    ``eps=0`` is optax's ``clip_by_global_norm``; torch.nn.utils.clip_grad_norm_ uses ``eps=1e-6``.
    """
    c = B.positive("clip_by_global_norm", "max_norm", max_norm)
    eps = B.nonnegative("clip_by_global_norm", "eps", eps)

    def update(grads: Any, state: EmptyState, params: Any = None):
        norm = B.global_norm(grads)
        factor = c / (norm + eps) if norm + eps > 0 else math.inf
        if factor >= 1.0:
            return tree_map(lambda g: 1.0 * g, grads), state
        return tree_map(lambda g: factor * g, grads), state

    return GradientTransformation(lambda params: EmptyState(), update)
