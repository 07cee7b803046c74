"""Named optimizers: short chains of :mod:`lossgrad.optim.transforms`.

Each returns a :class:`~lossgrad.optim.GradientTransformation`. ``learning_rate`` is a float
(> 0) or a schedule ``step -> eta`` (see :mod:`lossgrad.optim.schedules`), evaluated at the
number of updates already done. Names and default values of the hyper-parameters follow optax;
the arithmetic follows torch.optim where the two differ (epsilon outside the square root,
momentum before the learning rate); every difference is stated below with its mapping.

``weight_decay`` is coupled (L2: ``g + weight_decay * theta`` enters the moments, as the
``weight_decay`` of torch's SGD, Adagrad, RMSprop, Adam, NAdam) except in :func:`adamw` and in
``nadam(decoupled_weight_decay=True)``, where ``theta <- theta - eta * weight_decay * theta`` is
applied apart from the rescaled step (torch's AdamW, NAdam(decoupled_weight_decay=True)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _base as B
from ._base import GradientTransformation, chain
from .transforms import (
    add_decayed_weights,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_nadam,
    scale_by_rms,
    scale_by_rss,
    trace,
)

__all__ = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "nadam", "OPTIMIZERS"]

LearningRate = float | Callable[[int], float]


def _coupled(owner: str, weight_decay: float) -> list[GradientTransformation]:
    wd = B.nonnegative(owner, "weight_decay", weight_decay)
    return [add_decayed_weights(wd)] if wd > 0 else []


def _momentum(owner: str, momentum: float | None, nesterov: bool, dampening: float = 0.0) -> list[GradientTransformation]:
    nest = B.flag(owner, "nesterov", nesterov)
    if momentum is None or momentum == 0:
        if nest:
            raise ValueError(f"{owner}: nesterov=True needs momentum > 0")
        return []
    B.unit_interval(owner, "momentum", momentum)
    return [trace(momentum, nesterov=nest, dampening=dampening)]


def sgd(
    learning_rate: LearningRate,
    momentum: float | None = None,
    nesterov: bool = False,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """Stochastic gradient descent, with optional (Nesterov) momentum: torch.optim.SGD.

    ``g'_t = g_t + weight_decay * theta_{t-1}``;
    without momentum ``theta_t = theta_{t-1} - eta_t g'_t``; with momentum ``mu``
    ``b_1 = g'_1``, ``b_t = mu b_{t-1} + (1 - dampening) g'_t``,
    ``theta_t = theta_{t-1} - eta_t b_t`` or, Nesterov, ``theta_t = theta_{t-1} - eta_t (g'_t + mu b_t)``.

    Same as ``torch.optim.SGD(lr, momentum, dampening, weight_decay, nesterov)`` and, for
    ``dampening = weight_decay = 0``, as ``optax.sgd(learning_rate, momentum, nesterov)``.

    >>> import numpy as np
    >>> from lossgrad import optim
    >>> opt = optim.sgd(0.1)
    >>> theta = np.array([1.0, -2.0])
    >>> u, state = opt.update(2 * theta, opt.init(theta), theta)   # gradient of ||theta||^2
    >>> optim.apply_updates(theta, u).tolist()
    [0.8, -1.6]
    """
    return chain(*_coupled("sgd", weight_decay), *_momentum("sgd", momentum, nesterov, dampening),
                 scale_by_learning_rate(learning_rate))


def momentum(learning_rate: LearningRate, momentum: float = 0.9, weight_decay: float = 0.0) -> GradientTransformation:
    """Heavy-ball momentum (Polyak 1964): :func:`sgd` with ``momentum`` (default 0.9).

    ``b_t = mu b_{t-1} + g_t`` (``b_0 = 0``), ``theta_t = theta_{t-1} - eta_t b_t``.
    """
    return sgd(learning_rate, momentum=momentum, weight_decay=weight_decay)


def nesterov(learning_rate: LearningRate, momentum: float = 0.9, weight_decay: float = 0.0) -> GradientTransformation:
    """Nesterov momentum: :func:`sgd` with ``momentum`` and ``nesterov=True``.

    ``b_t = mu b_{t-1} + g_t``, ``theta_t = theta_{t-1} - eta_t (g_t + mu b_t)``: the gradient is
    taken at the current point and the look-ahead is folded into the update (Sutskever et al.
    2013; the form of torch.optim.SGD(nesterov=True) and optax.sgd(nesterov=True)), not
    evaluated at ``theta + mu b`` as in Nesterov's original scheme.
    """
    return sgd(learning_rate, momentum=momentum, nesterov=True, weight_decay=weight_decay)


def adagrad(
    learning_rate: LearningRate,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
    eps_in_sqrt: bool = False,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """Adagrad (Duchi, Hazan & Singer 2011).

    ``s_t = s_{t-1} + g_t**2`` (``s_0 = initial_accumulator_value``),
    ``theta_t = theta_{t-1} - eta_t g_t / (sqrt(s_t) + eps)``.

    torch.optim.Adagrad(lr, lr_decay, weight_decay, initial_accumulator_value, eps) is this with
    ``learning_rate = schedules.inverse_time(lr, decay_rate=lr_decay)`` (torch's
    ``lr / (1 + (t - 1) lr_decay)``). optax.adagrad puts eps inside the root and skips
    entries with ``s_t = 0``: ``eps_in_sqrt=True``. Defaults are optax's (torch: 0 and 1e-10).
    """
    return chain(*_coupled("adagrad", weight_decay), scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt),
                 scale_by_learning_rate(learning_rate))


def rmsprop(
    learning_rate: LearningRate,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = False,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """RMSprop (Tieleman & Hinton 2012), centered variant (Graves 2013) with ``centered=True``.

    ``v_t = decay v_{t-1} + (1 - decay) g_t**2``; centered: ``a_t = decay a_{t-1} + (1 - decay) g_t``
    and ``s_t = v_t - a_t**2``, else ``s_t = v_t``;  ``r_t = g_t / (sqrt(s_t) + eps)``;
    without momentum ``theta_t = theta_{t-1} - eta_t r_t``; with momentum ``mu``
    ``b_t = mu b_{t-1} + r_t``, ``theta_t = theta_{t-1} - eta_t b_t``.

    This is torch.optim.RMSprop(lr, alpha=decay, eps, weight_decay, momentum, centered) (torch's
    default alpha is 0.99). optax.rmsprop differs in two places: eps inside the root by default
    (``eps_in_sqrt=True`` here) and momentum applied after the learning rate (the same
    trajectory only for a constant learning rate).
    """
    return chain(*_coupled("rmsprop", weight_decay),
                 scale_by_rms(decay, eps, initial_scale, eps_in_sqrt=eps_in_sqrt, centered=centered),
                 *_momentum("rmsprop", momentum, nesterov), scale_by_learning_rate(learning_rate))


def adam(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """Adam (Kingma & Ba 2015).

    ``m_t = b1 m_{t-1} + (1 - b1) g_t``, ``v_t = b2 v_{t-1} + (1 - b2) g_t**2``,
    ``theta_t = theta_{t-1} - eta_t (m_t / (1 - b1**t)) / (sqrt(v_t / (1 - b2**t) + eps_root) + eps)``.

    Equals torch.optim.Adam(lr, betas=(b1, b2), eps, weight_decay) (coupled L2 weight decay) and
    optax.adam(learning_rate, b1, b2, eps, eps_root) (which has no weight decay).
    """
    return chain(*_coupled("adam", weight_decay), scale_by_adam(b1, b2, eps, eps_root),
                 scale_by_learning_rate(learning_rate))


def adamw(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 1e-4,
    mask: Any = None,
) -> GradientTransformation:
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019).

    ``m_t, v_t`` as in :func:`adam` from the raw gradient;
    ``theta_t = theta_{t-1} - eta_t [ m^_t / (sqrt(v^_t + eps_root) + eps) + weight_decay * theta_{t-1} ]``.

    Equals torch.optim.AdamW(lr, betas, eps, weight_decay), which writes it
    ``theta <- (1 - eta_t weight_decay) theta`` then the Adam step (default weight_decay 1e-2 there),
    and optax.adamw (default 1e-4, used here). ``mask`` selects the params that decay (see
    :func:`~lossgrad.optim.add_decayed_weights`).
    """
    wd = B.nonnegative("adamw", "weight_decay", weight_decay)
    return chain(scale_by_adam(b1, b2, eps, eps_root), add_decayed_weights(wd, mask),
                 scale_by_learning_rate(learning_rate))


def nadam(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    momentum_decay: float = 4e-3,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
) -> GradientTransformation:
    """NAdam: Adam with Nesterov momentum (Dozat 2016), as torch.optim.NAdam computes it.

    ``mu_t = b1 (1 - 0.5 * 0.96**(t * momentum_decay))``, ``P_t = mu_1 ... mu_t``,
    ``m_t, v_t`` as in Adam, ``d_t = sqrt(v_t / (1 - b2**t)) + eps``,
    ``theta_t = theta_{t-1} - eta_t [ (1 - mu_t) / (1 - P_t) g_t + mu_{t+1} / (1 - P_t mu_{t+1}) m_t ] / d_t``.

    Same as torch.optim.NAdam(lr, betas, eps, weight_decay, momentum_decay, decoupled_weight_decay).
    optax.nadam has no momentum schedule (``mu_t = b1``): pass ``momentum_decay=math.inf``.
    """
    dec = B.flag("nadam", "decoupled_weight_decay", decoupled_weight_decay)
    wd = B.nonnegative("nadam", "weight_decay", weight_decay)
    core = scale_by_nadam(b1, b2, eps, momentum_decay)
    if wd > 0 and dec:
        return chain(core, add_decayed_weights(wd), scale_by_learning_rate(learning_rate))
    return chain(*_coupled("nadam", wd), core, scale_by_learning_rate(learning_rate))


#: The named optimizers, by name: a solver name can be looked up here.
OPTIMIZERS: dict[str, Callable[..., GradientTransformation]] = {
    f.__name__: f for f in (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, nadam)
}
