"""Composable first-order optimizers and learning-rate schedules.

An optimizer is a :class:`GradientTransformation`, a pair of pure functions::

    opt = optim.adam(learning_rate=1e-2)
    state = opt.init(params)
    for _ in range(n_steps):
        grads = loss_grad(params)
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)

``params`` is a floating array (NumPy, PyTorch, JAX) or a dict (nested or not) of them.
Named optimizers (:func:`sgd`, :func:`momentum`, :func:`nesterov`, :func:`adagrad`,
:func:`rmsprop`, :func:`adam`, :func:`adamw`, :func:`nadam`) are chains of transforms
(:func:`scale_by_adam`, :func:`trace`, :func:`add_decayed_weights`, :func:`clip_by_global_norm`...),
and :func:`chain` builds others, e.g. ``chain(clip_by_global_norm(1.0), adam(1e-3))``.
Schedules live in :mod:`lossgrad.optim.schedules`.

Conventions against the peers (every named optimizer reproduces torch.optim's trajectory):

=====================  ==============================  =====================================
choice                 here (= torch.optim)            optax
=====================  ==============================  =====================================
epsilon (RMSprop,      outside: g / (sqrt(v) + eps)    inside: g / sqrt(v + eps);
Adagrad)                                               ``eps_in_sqrt=True``
momentum in RMSprop    before the learning rate        after it (same if eta is constant)
Nesterov               g + mu * b_t (both libraries)   same
NAdam                  torch's mu_t schedule           mu_t = b1: ``momentum_decay=math.inf``
weight_decay           coupled L2 (AdamW: decoupled)   adamw only (decoupled)
global-norm clipping   ``eps=0`` (optax)               torch's clip_grad_norm_: ``eps=1e-6``
=====================  ==============================  =====================================
"""

from . import schedules
from ._base import (
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    global_norm,
    identity,
    tree_leaves,
    tree_map,
)
from .optimizers import OPTIMIZERS, adagrad, adam, adamw, momentum, nadam, nesterov, rmsprop, sgd
from .transforms import (
    ScaleByAdamState,
    ScaleByLearningRateState,
    ScaleByNadamState,
    ScaleByRmsState,
    ScaleByRssState,
    TraceState,
    add_decayed_weights,
    clip,
    clip_by_global_norm,
    scale,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_nadam,
    scale_by_rms,
    scale_by_rss,
    trace,
)

__all__ = [
    "GradientTransformation",
    "EmptyState",
    "identity",
    "chain",
    "apply_updates",
    "tree_map",
    "tree_leaves",
    "global_norm",
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
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "nadam",
    "OPTIMIZERS",
    "schedules",
]
