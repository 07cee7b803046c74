r"""Batch losses (named inputs) in JAX: exact first and second derivatives in every mode.

The loss runs on the host (NumPy) through ``jax.pure_callback``, so it works under
``jit`` and ``vmap`` (sequentially) without tracing lossgrad's data-dependent code.
The scalar output f(x) (reduction "mean" or "sum") is a ``jax.custom_jvp`` function
whose tangent is ``sum_n <G_n(x), dx_n>``, with G(x) the gradient of f with respect to
the differentiable inputs: the loss's own ``grad`` with the item weights as
``sample_weight`` (the sample weights, over their sum for "mean", or over the number
of items).  That tangent is linear in dx through ``jax.numpy`` operations, so JAX
transposes it for reverse mode (``ct * G(x)``).  G is itself a ``custom_jvp`` function
whose tangent ``H(x) dx`` (the loss's exact Hessian-vector product, on the host) is a
small primitive of this module that JAX knows to be linear in dx and its own transpose
(the Hessian is symmetric), with a sequential batching rule.  So ``jax.grad``,
``jax.jvp``, ``jax.jacfwd``/``jax.jacrev`` of the value and of the gradient,
``jax.hessian`` (forward over reverse), ``jax.jacrev(jax.grad(f))`` and
``jax.jacfwd(jax.jacfwd(f))`` all give lossgrad's exact first and second derivatives,
also under ``jit`` and ``vmap`` (over directions or points); chain-rule terms such as
the one of ``f(x) ** 2`` are JAX's own.  Third derivatives are not available
(NotDifferentiableError), nor any second derivative of a loss without a
Hessian-vector product (``has_hvp`` False; its first derivatives work in every mode).
The sample weights and the non-differentiable inputs (labels, masks, relevance)
receive no gradient.  Under tracing, ``reduction="none"`` is refused (the per-item
shape depends on the loss); use "mean" or "sum" inside ``jit``.
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.interpreters import ad, batching, mlir

from .._config import config_context, get_config
from .._core import NotDifferentiableError, Reduction

try:  # jax >= 0.4.31
    from jax.extend.core import Primitive
except ImportError:  # pragma: no cover
    from jax.core import Primitive  # type: ignore[no-redef]

__all__ = ["batch_function"]

# Under vmap the host callbacks loop over the batch ("sequential"): jax >= 0.4.34 spells it
# vmap_method="sequential"; before, vectorized=False (the default) meant the same, and an
# unknown keyword would be handed on to the callback.
_SEQUENTIAL: dict[str, Any] = (
    {"vmap_method": "sequential"} if "vmap_method" in inspect.signature(jax.pure_callback).parameters
    else {"vectorized": False}
)


def _callback(host: Any, specs: Any, *args: Any) -> Any:
    """``jax.pure_callback(host, specs, *args)``, looped sequentially under vmap."""
    return jax.pure_callback(host, specs, *args, **_SEQUENTIAL)


# --- the Hessian-vector product as a linear, self-transposed primitive ------------------
# hvp_p.bind(*arrs, *dirs, host=..., n_arrs=..., batch=k): H(arrs) dirs computed on the host
# by ``host(*arrs, *dirs)`` (a tuple of the dirs' shapes); every operand carries the same k
# leading batch dimensions (added by the batching rule, looped over sequentially).  Linear
# in dirs, its transpose is itself (the Hessian is symmetric); no derivative in arrs (that
# would be a third derivative).
_hvp_p = Primitive("lossgrad_batch_hvp")
_hvp_p.multiple_results = True


def _hvp_eval(*args: Any, host: Any, n_arrs: int, batch: int) -> Any:
    def one(*a: Any) -> Any:
        specs = tuple(jax.ShapeDtypeStruct(jnp.shape(d), jnp.result_type(d)) for d in a[n_arrs:])
        return _callback(host, specs, *a)

    for _ in range(batch):
        one = jax.vmap(one)
    return list(one(*args))


def _hvp_abstract(*avals: Any, host: Any, n_arrs: int, batch: int) -> Any:
    return list(avals[n_arrs:])


def _hvp_jvp(primals: Any, tangents: Any, *, host: Any, n_arrs: int, batch: int) -> Any:
    if any(type(t) is not ad.Zero for t in tangents[:n_arrs]):
        raise NotDifferentiableError(
            "lossgrad batch losses in JAX have exact first and second derivatives only: "
            "no third derivative (the Hessian-vector product is not differentiated)"
        )
    out = _hvp_p.bind(*primals, host=host, n_arrs=n_arrs, batch=batch)
    dirs = [jnp.zeros(t.aval.shape, t.aval.dtype) if type(t) is ad.Zero else t for t in tangents[n_arrs:]]
    return out, _hvp_p.bind(*primals[:n_arrs], *dirs, host=host, n_arrs=n_arrs, batch=batch)


def _hvp_transpose(cts: Any, *args: Any, host: Any, n_arrs: int, batch: int) -> Any:
    fixed = args[:n_arrs]
    if any(ad.is_undefined_primal(a) for a in fixed):  # pragma: no cover - the rules never ask this
        raise NotDifferentiableError("the Hessian-vector product is linear only in its direction")
    cts = [jnp.zeros(a.aval.shape, a.aval.dtype) if type(ct) is ad.Zero else ct
           for ct, a in zip(cts, args[n_arrs:])]
    return [None] * len(fixed) + _hvp_p.bind(*fixed, *cts, host=host, n_arrs=n_arrs, batch=batch)


def _hvp_batch(args: Any, dims: Any, *, host: Any, n_arrs: int, batch: int) -> Any:
    size = next(jnp.shape(a)[d] for a, d in zip(args, dims) if d is not None)
    moved = [jnp.broadcast_to(a, (size, *jnp.shape(a))) if d is None else jnp.moveaxis(a, d, 0)
             for a, d in zip(args, dims)]
    # the new axis goes in front of the existing batch axes: vmap loops over the outermost first
    out = _hvp_p.bind(*moved, host=host, n_arrs=n_arrs, batch=batch + 1)
    return out, [0] * len(out)


_hvp_p.def_impl(_hvp_eval)
_hvp_p.def_abstract_eval(_hvp_abstract)
ad.primitive_jvps[_hvp_p] = _hvp_jvp
ad.primitive_transposes[_hvp_p] = _hvp_transpose
batching.primitive_batchers[_hvp_p] = _hvp_batch
mlir.register_lowering(_hvp_p, mlir.lower_fun(_hvp_eval, multiple_results=True))


def _is_float(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)


def _is_zero(t: Any) -> bool:
    return isinstance(t, jax.custom_derivatives.SymbolicZero)


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

        def denominator(shape: tuple[int, ...], ww: np.ndarray | None) -> float:
            """What the output divides sum(w * value) by, for values of ``shape``: the sum of
            the weights (or the number of items) for "mean", else 1."""
            if red is not Reduction.MEAN:
                return 1.0
            return float(np.sum(np.broadcast_to(ww, shape))) if ww is not None else float(np.prod(shape))

        def item_weights(shape: tuple[int, ...], ww: np.ndarray | None) -> np.ndarray:
            """d(output)/d(value_l) for values of ``shape``: the weights over :func:`denominator`."""
            return (np.ones(shape) if ww is None else np.broadcast_to(ww, shape)) / denominator(shape, ww)

        def host_grad(*arrs: Any) -> tuple[np.ndarray, ...]:
            inp, ww = host_inputs(arrs)
            with config_context(assume_valid=True):  # one evaluation gives the values' shape and the gradient
                value, grads = loss.value_grad(sample_weight=ww, **inp)
            scale = 1.0 / denominator(np.shape(value), ww)
            return tuple(np.asarray(grads[n] * scale, dtype=inp[n].dtype) for n in names)

        def host_hvp(*arrs_dirs: Any) -> tuple[np.ndarray, ...]:
            inp, ww = host_inputs(arrs_dirs[:len(keys) + 1])
            direction = {n: np.asarray(d) for n, d in zip(names, arrs_dirs[len(keys) + 1:])}
            with config_context(assume_valid=True):
                xp, data, _ = loss._prepare_batch(inp, None)
                item = np.shape(loss._value(xp, data))
                hv = loss._hvp(xp, data, np.asarray(item_weights(item, ww), dtype=dtype), direction)
            return tuple(np.asarray(hv[n], dtype=inp[n].dtype) for n in names)

        def specs_of(arrs: Any) -> tuple[Any, ...]:
            return tuple(jax.ShapeDtypeStruct(arrs[keys.index(n)].shape, arrs[keys.index(n)].dtype) for n in names)

        @jax.custom_jvp
        def grad_of(*arrs: Any) -> Any:
            """The gradient of the (scalar) output w.r.t. the differentiable inputs (a tuple over names)."""
            return _callback(host_grad, specs_of(arrs), *arrs)

        def grad_jvp(arrs: Any, darrs: Any) -> Any:
            out = grad_of(*arrs)
            dirs = [darrs[keys.index(n)] for n in names]
            if all(_is_zero(d) for d in dirs):
                return out, tuple(jnp.zeros_like(o) for o in out)
            if not getattr(loss, "has_hvp", False):
                raise NotDifferentiableError(
                    f"{loss.name} declares no Hessian-vector product (has_hvp is False): no second derivative "
                    "in JAX; its first derivatives (jax.grad, jax.jvp, jax.jacrev) work")
            dirs = [jnp.zeros(o.shape, o.dtype) if _is_zero(d) else d for d, o in zip(dirs, out)]
            return out, tuple(_hvp_p.bind(*arrs, *dirs, host=host_hvp, n_arrs=len(arrs), batch=0))

        grad_of.defjvp(grad_jvp, symbolic_zeros=True)

        @jax.custom_jvp
        def run(*arrs: Any) -> Any:
            return _callback(host_value, jax.ShapeDtypeStruct(shape, dtype), *arrs)

        def run_jvp(primals: Any, tangents: Any) -> Any:
            out = run(*primals)
            dirs = [(i, tangents[keys.index(n)]) for i, n in enumerate(names)]
            dirs = [(i, d) for i, d in dirs if not _is_zero(d)]
            tangent = jnp.zeros(jnp.shape(out), out.dtype)
            if dirs:
                g = grad_of(*primals)
                for i, d in dirs:
                    tangent = tangent + jnp.sum(g[i] * d)
            return out, tangent

        run.defjvp(run_jvp, symbolic_zeros=True)
        return run(*arrays, w)

    fn.__name__ = loss.name
    fn.__doc__ = f"lossgrad {loss.name} on JAX arrays: fn(sample_weight=None, reduction='mean', **inputs)."
    fn.loss = loss  # type: ignore[attr-defined]
    return fn
