r"""lossgrad losses as JAX functions whose derivatives are the closed forms (``jax.custom_jvp``).

>>> import jax, jax.numpy as jnp
>>> from lossgrad.integrations import jax as lgj
>>> huber = lgj.function("huber", delta=1.0)
>>> f = jnp.array([0.5, 3.0])
>>> [float(g) for g in jax.grad(lambda f: huber(jnp.zeros(2), f, reduction="sum"))(f)]
[0.5, 1.0]

The per-sample value is a ``jax.custom_jvp`` function whose tangent is
``grad . f_dot`` (row losses: ``sum_k grad_k f_dot_k``), with ``grad`` itself a
``custom_jvp`` function whose tangent is the exact Hessian applied to ``f_dot``
(``loss.hess * f_dot`` pointwise, ``loss.hvp`` for row losses).  Reverse mode is the
transpose of these linear rules, so ``jit``, ``grad``, ``jacfwd``/``jacrev``,
``hessian`` and ``vmap`` all work and give lossgrad's exact first and second
derivatives.  Sample weights and the reduction are ordinary ``jax.numpy``
operations.  Targets are constants (``stop_gradient``).

Input checks: on concrete arrays the inputs are validated once (lossgrad's messages);
under tracing (``jit``, ``vmap``, ``grad``) values are unknown and the formulas run with
``lossgrad.config_context(assume_valid=True)``: validate your data before tracing.
Enable float64 with ``jax.config.update("jax_enable_x64", True)`` for 1e-12 work.
Batch losses (named inputs) get their exact derivatives through ``jax.custom_jvp`` and
``jax.pure_callback`` (NumPy on the host; see :mod:`._jax_batch`): the value's tangent is
``<grad, dx>`` and the gradient's is the loss's ``hvp`` (a linear, self-transposed
primitive), so ``jax.grad``, ``jax.jvp``, ``jacfwd``/``jacrev``, ``jax.hessian``,
``jax.jacrev(jax.grad(f))`` and ``jax.jacfwd(jax.jacfwd(f))`` give the exact first and
second derivatives, under ``jit`` and ``vmap`` too (reduction "mean"/"sum"; no third
derivative).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from .._config import config_context, get_config
from .._core import Loss, Reduction, Scaled
from .._props import Shape

__all__ = ["function", "as_loss"]


def as_loss(loss: Any, **params: Any) -> Loss:
    """A pointwise or row lossgrad loss from an instance or a registered name."""
    if isinstance(loss, str):
        from .._registry import get

        loss = get(loss, **params)
    elif params:
        raise TypeError("parameters are only accepted with a registered loss name")
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a lossgrad loss or a registered name, got {type(loss).__name__}")
    if loss.shape is Shape.BATCH:
        return loss
    if not (loss.props.has_grad and loss.props.has_hess):
        raise ValueError(f"{loss.name} declares no gradient/Hessian (props.has_grad/has_hess): nothing to differentiate")
    return loss


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _trusted(method: Any, *args: Any) -> Any:
    with config_context(assume_valid=True):
        return method(*args)


def _derivatives(loss: Loss) -> tuple[Any, Any]:
    """(value, grad) as custom_jvp functions of (y, f) for this loss."""
    row = loss.shape is Shape.ROW

    @jax.custom_jvp
    def value(y: Any, f: Any) -> Any:
        return _trusted(loss.value, y, f)

    @jax.custom_jvp
    def grad(y: Any, f: Any) -> Any:
        return _trusted(loss.grad, y, f)

    @value.defjvp
    def _value_jvp(primals: Any, tangents: Any) -> Any:
        y, f = primals
        _, f_dot = tangents
        G = grad(y, f)
        tangent = jnp.sum(G * f_dot, axis=-1) if row else G * f_dot
        return value(y, f), tangent

    @grad.defjvp
    def _grad_jvp(primals: Any, tangents: Any) -> Any:
        y, f = primals
        _, f_dot = tangents
        if row:  # the internal hvp: tangents (batched under jax.hessian/vmap) skip target coercion
            base = loss.loss if isinstance(loss, Scaled) else loss
            with config_context(assume_valid=True):
                xp, t, ff, _ = base._prepare(y, f, None)
                Hv = base._hvp(xp, t, ff, f_dot.astype(ff.dtype))
            if isinstance(loss, Scaled):
                Hv = loss.k * Hv
        else:
            Hv = _trusted(loss.hess, y, f) * f_dot
        return grad(y, f), Hv

    return value, grad


def _without_ignore(loss: Loss) -> Loss:
    """The same loss with ignore_index=None (the mask is applied outside, with jnp ops,
    because lossgrad tests ``any(y == ignore_index)`` in Python, which tracing forbids)."""
    if isinstance(loss, Scaled):
        return Scaled(dataclasses.replace(loss.loss, ignore_index=None), loss.k)
    return dataclasses.replace(loss, ignore_index=None)


def _row_weight(loss: Loss, y: Any, f: Any) -> Any:
    base = loss.loss if isinstance(loss, Scaled) else loss
    with config_context(assume_valid=True):
        xp, t, ff, _ = base._prepare(y, f, None)
        return base._row_weight(xp, t, ff)


def function(loss: Any, **params: Any) -> Any:
    """``fn(y_true, y_pred, sample_weight=None, reduction="mean")`` on JAX arrays
    (batch losses: ``fn(sample_weight=None, reduction="mean", **inputs)``).

    Reductions are lossgrad's: "mean" (weighted mean; row losses divide by the summed
    row weights), "sum", "none".  Differentiable to order 2 in ``y_pred`` with the
    closed-form derivatives; works under ``jit``/``vmap`` (reduction is static).
    """
    loss = as_loss(loss, **params)
    if loss.shape is Shape.BATCH:
        from ._jax_batch import batch_function

        return batch_function(loss)
    row = loss.shape is Shape.ROW
    ignore = getattr(loss.loss if isinstance(loss, Scaled) else loss, "ignore_index", None) if row else None
    inner = _without_ignore(loss) if ignore is not None else loss
    value, _ = _derivatives(inner)

    def fn(y_true: Any, y_pred: Any, sample_weight: Any = None, reduction: str = "mean") -> Any:
        red = Reduction.parse(reduction)
        f = jnp.asarray(y_pred)
        if not jnp.issubdtype(f.dtype, jnp.floating):
            raise TypeError(f"y_pred must have a floating dtype, got {f.dtype}")
        if row and f.ndim != 2:
            raise ValueError(f"the row loss {loss.name} needs y_pred of shape (N, K) class scores, got shape {f.shape}")
        y = jax.lax.stop_gradient(jnp.asarray(y_true))
        if jnp.issubdtype(y.dtype, jnp.floating) or jnp.issubdtype(y.dtype, jnp.bool_):
            y = y.astype(f.dtype)
        if not row and y.shape != f.shape:
            if y.ndim != 0:
                raise ValueError(f"y_true and y_pred must have the same shape; got {y.shape} and {f.shape}")
            y = jnp.broadcast_to(y, f.shape)
        traced = any(_is_tracer(a) for a in (y, f, sample_weight))
        if not traced and not get_config().assume_valid:
            loss.value(y, f, sample_weight)  # validates targets, predictions and weights (clear messages)
        keep = None
        if ignore is not None and y.ndim == 1:  # ignored rows: label 0 masked out (traceable)
            keep = (y != ignore).astype(f.dtype)
            y = jnp.where(y != ignore, y, jnp.zeros_like(y))
        v = value(y, f)
        if keep is not None:
            v = v * keep
        w = None
        if sample_weight is not None:
            w = jnp.broadcast_to(jnp.asarray(sample_weight, dtype=v.dtype), v.shape)
            v = v * w
        if red is Reduction.NONE:
            return v
        total = jnp.sum(v)
        if red is Reduction.SUM:
            return total
        rw = _row_weight(inner, y, f) if row else None
        if keep is not None:
            rw = keep if rw is None else rw * keep
        if rw is None:
            denom = jnp.sum(w) if w is not None else v.size
        else:
            denom = jnp.sum(rw * w) if w is not None else jnp.sum(rw)
        return total / denom

    fn.__name__ = loss.name
    fn.__doc__ = f"lossgrad {loss.name} on JAX arrays: fn(y_true, y_pred, sample_weight=None, reduction='mean')."
    fn.loss = loss  # type: ignore[attr-defined]
    return fn
