r"""Batch losses (named inputs) in JAX: exact first derivatives through ``jax.custom_vjp``.

The loss runs on the host (NumPy) through ``jax.pure_callback``, so it works under
``jit`` and ``vmap`` (sequentially) without tracing lossgrad's data-dependent code.
The backward pass of ``sum(c * value)`` for the incoming cotangent c is the loss's own
``grad`` with ``sample_weight = c`` (times the weights and divided by the mean's
denominator), itself a ``custom_vjp`` function whose backward is the loss's exact
``hvp`` in the inputs and the per-item directional derivative (``_item_jvp``) in c:
reverse over reverse (``jax.grad`` of a function of ``jax.grad``, ``jax.jacrev(jax.grad(f))``)
gives exact second derivatives.  Forward mode (``jax.jvp``, hence ``jax.hessian``, which
is ``jacfwd(jacrev)``) is not available for a ``custom_vjp`` function: use ``jacrev``
twice.  A loss without a Hessian-vector product raises on the second derivative.
Under tracing, ``reduction="none"`` is refused (the per-item shape depends on the
loss); use "mean" or "sum" inside ``jit``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._config import config_context, get_config
from .._core import NotDifferentiableError, Reduction

__all__ = ["batch_function"]


def _is_float(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)


def batch_function(loss: Any) -> Any:
    """``fn(sample_weight=None, reduction="mean", **inputs)`` for a lossgrad batch loss."""

    def fn(sample_weight: Any = None, reduction: str = "mean", **inputs: Any) -> Any:
        red = Reduction.parse(reduction)
        unknown = set(inputs) - set(loss.inputs)
        if unknown:
            raise TypeError(f"{loss.name} got unexpected input(s) {sorted(unknown)}; it takes {list(loss.inputs)}")
        keys = tuple(inputs)
        arrays = [jnp.asarray(inputs[k]) for k in keys]
        names = tuple(k for k, a in zip(keys, arrays) if k in loss.differentiable and _is_float(a))
        if not names:
            raise TypeError(f"{loss.name}: pass at least one of {list(loss.differentiable)} as a floating JAX array")
        dtype = dict(zip(keys, arrays))[names[0]].dtype
        has_w = sample_weight is not None
        w = jnp.asarray(sample_weight, dtype=dtype) if has_w else jnp.zeros((), dtype)
        traced = any(isinstance(a, jax.core.Tracer) for a in (*arrays, w))
        out_shape: tuple[int, ...] = ()
        if not traced:  # validate once, with lossgrad's messages
            host = {k: np.asarray(a) for k, a in zip(keys, arrays)}
            v = loss.value(sample_weight=np.asarray(w) if has_w else None, **host) if not get_config().assume_valid \
                else loss.value(**host)
            out_shape = tuple(np.shape(v))
        if red is Reduction.NONE and traced:
            raise ValueError(
                f"reduction='none' of the batch loss {loss.name} needs concrete inputs (its per-item shape depends "
                "on the inputs); use reduction='mean' or 'sum' under jit/vmap/grad"
            )
        shape = out_shape if red is Reduction.NONE else ()

        def host_inputs(arrs: Any) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
            inp = {k: np.asarray(a) for k, a in zip(keys, arrs[:-1])}
            return inp, (np.asarray(arrs[-1]) if has_w else None)

        def host_value(*arrs: Any) -> np.ndarray:
            inp, ww = host_inputs(arrs)
            with config_context(assume_valid=True):
                out = loss(sample_weight=ww, reduction=red.value, **inp)
            return np.asarray(out, dtype=dtype)

        def item_weights(shape: tuple[int, ...], ww: np.ndarray | None) -> np.ndarray:
            """d(output)/d(value_l) for values of ``shape``: the weights, over the mean's
            denominator for "mean"."""
            base = np.ones(shape) if ww is None else np.broadcast_to(ww, shape)
            if red is Reduction.MEAN:
                base = base / (float(np.sum(base)) if ww is not None else float(np.prod(shape)))
            return base

        def host_grad(c: Any, *arrs: Any) -> tuple[np.ndarray, ...]:
            inp, ww = host_inputs(arrs)
            with config_context(assume_valid=True):  # signed cotangents as weights
                shape = np.shape(loss.value(**inp))
                grads = loss.grad(sample_weight=np.asarray(c) * item_weights(shape, ww), **inp)
            return tuple(np.asarray(grads[n], dtype=inp[n].dtype) for n in names)

        def host_second(c: Any, *arrs_dirs: Any) -> tuple[np.ndarray, ...]:
            inp, ww = host_inputs(arrs_dirs[:len(keys) + 1])
            direction = {n: np.asarray(d) for n, d in zip(names, arrs_dirs[len(keys) + 1:])}
            c = np.asarray(c)
            with config_context(assume_valid=True):
                xp, data, _ = loss._prepare_batch(inp, None)
                jvp = np.asarray(loss._item_jvp(xp, data, direction))  # per item: the values' shape
                base = item_weights(jvp.shape, ww)
                hv = loss._hvp(xp, data, np.asarray(c * base, dtype=jvp.dtype), direction)
                along = base * jvp  # d<dirs, grad>/d(c base)
            dc = along if c.ndim else np.sum(along)
            return (np.asarray(dc, dtype=c.dtype), *(np.asarray(hv[n], dtype=inp[n].dtype) for n in names))

        @jax.custom_vjp
        def run(*arrs: Any) -> Any:
            return jax.pure_callback(host_value, jax.ShapeDtypeStruct(shape, dtype), *arrs, vmap_method="sequential")

        def run_fwd(*arrs: Any) -> Any:
            return run(*arrs), arrs

        def specs_of(arrs: Any) -> tuple[Any, ...]:
            return tuple(jax.ShapeDtypeStruct(arrs[keys.index(n)].shape, arrs[keys.index(n)].dtype) for n in names)

        @jax.custom_vjp
        def grad_of(c: Any, *arrs: Any) -> Any:
            return jax.pure_callback(host_grad, specs_of(arrs), c, *arrs, vmap_method="sequential")

        def grad_fwd(c: Any, *arrs: Any) -> Any:
            return grad_of(c, *arrs), (c, arrs)

        def grad_bwd(res: Any, dirs: Any) -> Any:
            c, arrs = res
            if not getattr(loss, "has_hvp", False):
                raise NotDifferentiableError(f"{loss.name} declares no Hessian-vector product: no second derivative")
            spec_c = jax.ShapeDtypeStruct(jnp.shape(c), jnp.result_type(c))
            dc, *hv = jax.pure_callback(host_second, (spec_c, *specs_of(arrs)), c, *arrs, *dirs,
                                        vmap_method="sequential")
            second = dict(zip(names, hv))
            return (dc, *(second.get(k) for k in keys), None)

        grad_of.defvjp(grad_fwd, grad_bwd)

        def run_bwd(arrs: Any, c: Any) -> Any:
            grads = dict(zip(names, grad_of(c, *arrs)))
            return tuple(grads.get(k) for k in keys) + (None,)

        run.defvjp(run_fwd, run_bwd)
        return run(*arrays, w)

    fn.__name__ = loss.name
    fn.__doc__ = f"lossgrad {loss.name} on JAX arrays: fn(sample_weight=None, reduction='mean', **inputs)."
    fn.loss = loss  # type: ignore[attr-defined]
    return fn
