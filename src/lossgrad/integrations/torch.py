r"""lossgrad losses inside PyTorch autograd: exact backward and exact double backward.

>>> import torch, lossgrad
>>> from lossgrad.integrations import torch as lgt
>>> huber = lgt.function("huber", delta=1.0)
>>> f = torch.tensor([0.5, 3.0], dtype=torch.float64, requires_grad=True)
>>> loss = huber(torch.zeros(2, dtype=torch.float64), f, reduction="sum")
>>> (g,) = torch.autograd.grad(loss, f, create_graph=True)
>>> g.detach().tolist(), torch.autograd.grad(g.sum(), f)[0].tolist()
([0.5, 1.0], [1.0, 0.0])

How the derivatives are wired (pointwise and row losses):

* the forward pass is ``loss.value`` (per sample; sample weights and the reduction
  are ordinary torch operations on it, so they are differentiable too);
* its backward multiplies the incoming gradient by ``loss.grad``, computed by a
  second :class:`torch.autograd.Function`;
* the backward of that one uses the exact Hessian: ``loss.hess`` (pointwise, the
  second derivative times the incoming gradient) or ``loss.hvp`` (row losses, the
  Hessian is symmetric so H^T v = H v).  So ``create_graph=True`` gives exact
  Hessian-vector products and ``torch.autograd.functional.hessian`` the exact
  Hessian; a third derivative raises (lossgrad stops at order 2).

Batch losses (named inputs) get the exact first derivative: the backward of
``sum(c * value)`` for the incoming per-item gradient c is the loss's own
``grad`` with ``sample_weight = c``.  Those with a Hessian-vector product
(``has_hvp``: every batch loss of the catalog) get the exact double backward as well:
along v the gradient changes by ``hvp(v, sample_weight=c)`` in the inputs and by the
per-item directional derivative of the values (``_item_jvp``) in c.  A batch loss
declaring none raises on double backward.

Arrays: float32/float64 CPU tensors go through NumPy views of the same memory
(``Tensor.numpy()``, no copy), hence the fused kernels for large inputs; CUDA
tensors of a ``CrossEntropy`` on logits take the fused Triton kernel of
:mod:`lossgrad.integrations.triton` when Triton is installed; other devices and
dtypes go through the array-API reference on the tensors themselves.
Targets (``y_true``, labels, masks) are constants: no gradient flows to them.
Argument order is lossgrad's, ``(y_true, y_pred)`` (PyTorch's built-in losses take
``(input, target)``, i.e. the reverse): see ``docs/engines.md``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .._config import config_context, get_config
from .._core import Loss, Reduction, Scaled
from .._props import Shape

__all__ = ["function", "LossModule", "as_loss"]

_FAST_DTYPES = (torch.float32, torch.float64)


def as_loss(loss: Any, **params: Any) -> Loss:
    """A lossgrad loss from an instance or a registered name (with parameters)."""
    if isinstance(loss, str):
        from .._registry import get

        return get(loss, **params)
    if params:
        raise TypeError("parameters are only accepted with a registered loss name")
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a lossgrad loss or a registered name, got {type(loss).__name__}")
    return loss


# ------------------------------------------------------------------ array bridge


def _fast(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype in _FAST_DTYPES and not t.is_sparse


def _host(t: Any, like: torch.Tensor) -> Any:
    """The array handed to lossgrad: a NumPy view for CPU float tensors, else the tensor."""
    if not isinstance(t, torch.Tensor):
        return t
    t = t.detach()
    if _fast(like) and t.device.type == "cpu":
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.to(like.dtype)
        return t.numpy()  # a view of the tensor's memory (strides included): no copy
    return t


def _back(a: Any, like: torch.Tensor) -> torch.Tensor:
    """lossgrad's output as a tensor of like's dtype and device."""
    if isinstance(a, torch.Tensor):
        return a.to(dtype=like.dtype)
    arr = np.asarray(a, dtype=_np_dtype(like.dtype))
    if not arr.flags.c_contiguous:  # (np.ascontiguousarray would also turn a 0-d array into shape (1,))
        arr = np.ascontiguousarray(arr)
    return torch.from_numpy(arr).to(like.device)


def _np_dtype(dt: torch.dtype) -> Any:
    return np.float32 if dt == torch.float32 else np.float64


def _call(method: Any, like: torch.Tensor, *args: Any, trusted: bool = False) -> torch.Tensor:
    hosted = [_host(a, like) for a in args]
    if trusted and not get_config().assume_valid:
        with config_context(assume_valid=True):
            return _back(method(*hosted), like)
    return _back(method(*hosted), like)


# ------------------------------------------------------------------ pointwise and row


class _Value(torch.autograd.Function):
    """Per-sample loss values; backward = g * grad (through :class:`_Grad`)."""

    @staticmethod
    def forward(ctx: Any, f: torch.Tensor, y: torch.Tensor, loss: Loss) -> torch.Tensor:
        ctx.loss = loss
        ctx.save_for_backward(f, y)
        return _call(loss.value, f, y, f)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        f, y = ctx.saved_tensors
        G = _Grad.apply(f, y, ctx.loss)
        if ctx.loss.shape is Shape.ROW:
            return g[:, None] * G, None, None
        return g * G, None, None


class _Grad(torch.autograd.Function):
    """The exact gradient; backward = the exact Hessian applied to the incoming vector."""

    @staticmethod
    def forward(ctx: Any, f: torch.Tensor, y: torch.Tensor, loss: Loss) -> torch.Tensor:
        ctx.loss = loss
        ctx.save_for_backward(f, y)
        return _call(loss.grad, f, y, f, trusted=True)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, v: torch.Tensor) -> tuple[Any, ...]:
        f, y = ctx.saved_tensors
        loss = ctx.loss
        if loss.shape is Shape.ROW:
            return _call(loss.hvp, f, y, f, v, trusted=True), None, None
        return v * _call(loss.hess, f, y, f, trusted=True), None, None


def _row_weight(loss: Loss, y: torch.Tensor, f: torch.Tensor) -> torch.Tensor | None:
    """The per-row weight the mean divides by (class weights, ignored rows), or None."""
    base = loss.loss if isinstance(loss, Scaled) else loss
    yh, fh = _host(y, f), _host(f.detach(), f)
    with config_context(assume_valid=True):
        xp, t, ff, _ = base._prepare(yh, fh, None)
        rw = base._row_weight(xp, t, ff)
    return None if rw is None else _back(rw, f)


def _weights(sample_weight: Any, f: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor | None:
    if sample_weight is None:
        return None
    w = torch.as_tensor(sample_weight, dtype=f.dtype, device=f.device)
    if tuple(w.shape) != shape:
        if w.ndim == 0:
            w = w.expand(shape)
        else:
            raise ValueError(f"sample_weight must have shape {shape} (one weight per sample), got {tuple(w.shape)}")
    if not get_config().assume_valid:
        wd = w.detach()
        if not bool(torch.all(torch.isfinite(wd))) or bool(torch.any(wd < 0)):
            raise ValueError("sample_weight must contain finite non-negative weights")
    return w


def _check_pred(loss: Loss, y_pred: Any) -> torch.Tensor:
    if not isinstance(y_pred, torch.Tensor):
        raise TypeError(f"y_pred must be a torch.Tensor, got {type(y_pred).__name__}")
    if not y_pred.is_floating_point():
        raise TypeError(f"y_pred must have a floating dtype, got {y_pred.dtype}")
    if loss.shape is Shape.ROW and y_pred.ndim != 2:
        raise ValueError(
            f"the row loss {loss.name} needs y_pred of shape (N, K) class scores, got shape {tuple(y_pred.shape)}"
        )
    return y_pred


def _target(y_true: Any, f: torch.Tensor) -> torch.Tensor:
    if isinstance(y_true, torch.Tensor):
        return y_true.detach().to(f.device)
    arr = np.asarray(y_true)
    if arr.dtype.kind == "f":
        return torch.as_tensor(arr, dtype=f.dtype, device=f.device)
    return torch.as_tensor(arr, device=f.device)


# Devices whose tensors take the fused Triton cross-entropy (the tests add "cpu" with
# Triton's interpreter); see lossgrad.integrations.triton.
_FUSED_DEVICES: tuple[str, ...] = ("cuda",)


def _fused_module(loss: Loss, f: torch.Tensor, sample_weight: Any) -> Any:
    """lossgrad.integrations.triton when it computes this call, else None."""
    if f.device.type not in _FUSED_DEVICES:
        return None
    if isinstance(sample_weight, torch.Tensor) and sample_weight.requires_grad:
        return None  # differentiable weights: the generic path
    if importlib.util.find_spec("triton") is None:  # Triton is not installed
        return None
    from . import triton as fused

    return fused if fused.supports(loss) else None


def _pointwise_or_row(loss: Loss, y_true: Any, y_pred: Any, sample_weight: Any, reduction: Any) -> torch.Tensor:
    reduction = Reduction.parse(reduction)
    f = _check_pred(loss, y_pred)
    fused = _fused_module(loss, f, sample_weight) if loss.shape is Shape.ROW else None
    if fused is not None:
        return fused.cross_entropy(y_true, f, sample_weight, reduction.value, loss=loss)
    y = _target(y_true, f)
    if loss.shape is Shape.POINTWISE and y.ndim == 0 and f.ndim > 0:
        y = y.to(f.dtype).expand(f.shape)
    v = _Value.apply(f, y, loss)  # validates y_true/y_pred with lossgrad's messages
    n_shape = tuple(v.shape)
    w = _weights(sample_weight, f, n_shape)
    if w is not None:
        v = v * w
    if reduction is Reduction.NONE:
        return v
    total = v.sum()
    if reduction is Reduction.SUM:
        return total
    rw = _row_weight(loss, y, f) if loss.shape is Shape.ROW else None
    if rw is None:
        denom = w.sum() if w is not None else torch.tensor(float(v.numel()), dtype=v.dtype, device=v.device)
    else:
        denom = (rw * w).sum() if w is not None else rw.sum()
    if not bool(denom.detach() > 0):
        raise ValueError("the weighted mean is undefined (the weights sum to zero); use reduction='sum'")
    return total / denom


# ------------------------------------------------------------------ batch losses


class _Batch(torch.autograd.Function):
    """Per-item values of a batch loss; backward through ``loss.grad`` with the incoming
    per-item gradient as the sample weight (exact; no double backward)."""

    @staticmethod
    def forward(ctx: Any, loss: Any, names: tuple[str, ...], static: dict[str, Any], *tensors: torch.Tensor) -> Any:
        like = next(t for t in tensors if isinstance(t, torch.Tensor) and t.is_floating_point())
        ctx.loss, ctx.names, ctx.static, ctx.like_dtype = loss, names, static, like.dtype
        ctx.save_for_backward(*tensors)
        inputs = {**{k: _host(v, like) for k, v in static.items()}, **{n: _host(t, like) for n, t in zip(names, tensors)}}
        return _back(loss.value(**inputs), like)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        tensors = ctx.saved_tensors
        if getattr(ctx.loss, "has_hvp", False):
            grads = _BatchGrad.apply(ctx.loss, ctx.names, ctx.static, g, *tensors)
        else:
            grads = _BatchGrad.first_order(ctx.loss, ctx.names, ctx.static, g, tensors)
        return (None, None, None, *(gr if ctx.needs_input_grad[3 + i] else None for i, gr in enumerate(grads)))


class _BatchGrad(torch.autograd.Function):
    """The gradient of sum(c * value) w.r.t. the named tensors; its backward (losses with
    ``has_hvp``) is the exact Hessian-vector product in the tensors and the per-item
    directional derivative in c."""

    @staticmethod
    def first_order(loss: Any, names: tuple[str, ...], static: dict[str, Any], g: torch.Tensor,
                    tensors: tuple[torch.Tensor, ...]) -> tuple[Any, ...]:
        like = next(t for t in tensors if t.is_floating_point())
        inputs = {**{k: _host(v, like) for k, v in static.items()}, **{n: _host(t, like) for n, t in zip(names, tensors)}}
        with config_context(assume_valid=True):  # a signed incoming gradient as the weight
            grads = loss.grad(sample_weight=_host(g.detach().contiguous(), like), **inputs)
        return tuple(_back(grads[n], t) if n in grads else None for n, t in zip(names, tensors))

    @staticmethod
    def forward(ctx: Any, loss: Any, names: tuple[str, ...], static: dict[str, Any], g: torch.Tensor,
                *tensors: torch.Tensor) -> Any:
        ctx.loss, ctx.names, ctx.static = loss, names, static
        ctx.save_for_backward(g, *tensors)
        return _BatchGrad.first_order(loss, names, static, g, tensors)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *vs: torch.Tensor) -> tuple[Any, ...]:
        g, *tensors = ctx.saved_tensors
        like = next(t for t in tensors if t.is_floating_point())
        inputs = {**{k: _host(v, like) for k, v in ctx.static.items()},
                  **{n: _host(t, like) for n, t in zip(ctx.names, tensors)}}
        direction = {n: _host(torch.zeros_like(t) if v is None else v.contiguous(), like)
                     for n, t, v in zip(ctx.names, tensors, vs)}
        dg = None
        with config_context(assume_valid=True):  # the signed incoming gradient as the weights
            xp, data, w = ctx.loss._prepare_batch(inputs, _host(g.contiguous(), like))
            hv = ctx.loss._hvp(xp, data, w, direction)
            if ctx.needs_input_grad[3]:  # d/dc_l of sum_i v_i G_i: the item's directional derivative
                dg = _back(ctx.loss._item_jvp(xp, data, direction), g)
        return (None, None, None, dg, *(_back(hv[n], t) for n, t in zip(ctx.names, tensors)))


def _batch(loss: Any, sample_weight: Any, reduction: Any, inputs: dict[str, Any]) -> torch.Tensor:
    reduction = Reduction.parse(reduction)
    diff = set(loss.differentiable)
    names = tuple(n for n, v in inputs.items() if n in diff and isinstance(v, torch.Tensor) and v.is_floating_point())
    if not names:
        raise TypeError(f"{loss.name}: pass at least one of {sorted(diff)} as a floating torch.Tensor")
    static = {n: v for n, v in inputs.items() if n not in names}
    v = _Batch.apply(loss, names, static, *(inputs[n] for n in names))
    w = _weights(sample_weight, inputs[names[0]], tuple(v.shape))
    if w is not None:
        v = v * w
    if reduction is Reduction.NONE:
        return v
    if reduction is Reduction.SUM:
        return v.sum()
    denom = w.sum() if w is not None else float(v.numel())
    if w is not None and not bool(denom.detach() > 0):
        raise ValueError("sample_weight sums to zero: the weighted mean is undefined (use reduction='sum')")
    return v.sum() / denom


# ------------------------------------------------------------------ public API


def function(loss: Any, **params: Any) -> Any:
    """A PyTorch function computing ``loss`` with exact first and second derivatives.

    Pointwise and row losses: ``fn(y_true, y_pred, sample_weight=None, reduction="mean")``
    with lossgrad's reductions (row losses: the mean divides by the summed row
    weights, e.g. class weights, as PyTorch's weighted cross-entropy does).  Batch
    losses: ``fn(sample_weight=None, reduction="mean", **inputs)``.
    """
    loss = as_loss(loss, **params)
    if loss.shape is Shape.BATCH:

        def batch_fn(sample_weight: Any = None, reduction: str = "mean", **inputs: Any) -> torch.Tensor:
            return _batch(loss, sample_weight, reduction, inputs)

        batch_fn.__name__ = loss.name
        batch_fn.__doc__ = f"lossgrad {loss.name} on torch tensors (named inputs {list(loss.inputs)})."
        batch_fn.loss = loss  # type: ignore[attr-defined]
        return batch_fn
    if not loss.props.has_grad:
        raise ValueError(f"{loss.name} declares no gradient (props.has_grad is False): it cannot drive autograd")

    def fn(y_true: Any, y_pred: Any, sample_weight: Any = None, reduction: str = "mean") -> torch.Tensor:
        return _pointwise_or_row(loss, y_true, y_pred, sample_weight, reduction)

    fn.__name__ = loss.name
    fn.__doc__ = f"lossgrad {loss.name} on torch tensors: fn(y_true, y_pred, sample_weight=None, reduction='mean')."
    fn.loss = loss  # type: ignore[attr-defined]
    return fn


class LossModule(torch.nn.Module):
    """A lossgrad loss as a ``torch.nn.Module``: ``module(y_true, y_pred, sample_weight=None)``.

    >>> import torch
    >>> from lossgrad.integrations.torch import LossModule
    >>> ce = LossModule("cross_entropy")
    >>> round(float(ce(torch.tensor([0, 1]), torch.zeros(2, 3, dtype=torch.float64))), 12)  # log 3
    1.098612288668
    """

    def __init__(self, loss: Any, reduction: str = "mean", **params: Any) -> None:
        super().__init__()
        self.loss = as_loss(loss, **params)
        self.reduction = Reduction.parse(reduction).value
        self._fn = function(self.loss)

    def forward(self, *args: Any, sample_weight: Any = None, **inputs: Any) -> torch.Tensor:
        if self.loss.shape is Shape.BATCH:
            if args:
                raise TypeError(f"{self.loss.name} takes its inputs by name: {list(self.loss.inputs)}")
            return self._fn(sample_weight=sample_weight, reduction=self.reduction, **inputs)
        if len(args) != 2 or inputs:
            raise TypeError("forward takes (y_true, y_pred) (lossgrad's argument order) and sample_weight=")
        return self._fn(args[0], args[1], sample_weight=sample_weight, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"{self.loss!r}, reduction={self.reduction!r}"
