r"""Cross-entropy of GPU tensors through one fused Triton kernel, inside PyTorch autograd.

On a CUDA device::

    import torch
    from lossgrad.integrations import triton as lgtr
    logits = torch.randn(8, 50000, device="cuda", requires_grad=True)
    labels = torch.randint(0, 50000, (8,), device="cuda")
    lgtr.cross_entropy(labels, logits, label_smoothing=0.1).backward()

The forward pass runs :mod:`._triton_ce` once: per row it reads the logits, then
reads them again to write the gradient (already multiplied by the row's share of
the reduction), so the backward pass only returns it (times the incoming gradient
when that is not 1).  Every option of :class:`lossgrad.CrossEntropy` with
``from_logits=True`` is supported: class weights, ``ignore_index``, label smoothing,
z-loss, labels or probability rows as targets, sample weights, the three
reductions, with PyTorch's weighted-mean convention.  A double backward
(``create_graph=True``) goes through the exact Hessian of the array-API reference.

:func:`lossgrad.integrations.torch.function` sends CUDA tensors of a plain
``CrossEntropy`` here when Triton is installed; other losses, devices and
differentiable sample weights take the generic path.  Bad inputs raise lossgrad's
errors: in the pass it already makes, the kernel ors a bit for each bad row
(non-finite logit, label out of range, target entry outside [0, 1], target row sum
off 1) into one status word, read back with the mean's denominator in one
synchronisation (``config_context(assume_valid=True)`` skips it: no synchronisation).

On a machine without a GPU the kernel runs in Triton's interpreter
(``TRITON_INTERPRET=1`` before Triton is imported) on CPU tensors: that is how the
test suite checks it against the reference.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from .._config import get_config
from .._core import Reduction
from .._row import check_labels, check_simplex_rows, prob_tolerance
from .._validation import check_finite
from ..losses.multiclass import CrossEntropy
from . import _triton_ce as kernel
from .torch import _check_pred, _Grad, _target, _weights, as_loss

__all__ = ["cross_entropy", "cross_entropy_value_grad", "supports"]


def supports(loss: Any) -> bool:
    """Whether the fused kernel computes ``loss``: a CrossEntropy on logits."""
    return type(loss) is CrossEntropy and loss.from_logits


@functools.lru_cache(maxsize=64)
def _class_weights(weight: tuple[float, ...] | None, device: torch.device, acc: torch.dtype) -> torch.Tensor | None:
    return None if weight is None else torch.tensor(weight, dtype=acc, device=device)


@functools.lru_cache(maxsize=64)
def _named_loss(items: tuple[tuple[str, str, Any], ...]) -> Any:
    return as_loss("cross_entropy", **{name: value for name, _, value in items})


def _plain(value: Any) -> bool:
    """Whether ``value`` is an immutable number, string or tuple of them (a safe cache key;
    a tensor or array of class weights can change between calls)."""
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _cross_entropy_loss(loss: Any, params: dict[str, Any]) -> CrossEntropy:
    """The CrossEntropy of a call (built once per parameter set of plain values: building
    one validates its parameters, a quarter of a small call's Python time)."""
    if loss is None and all(_plain(v) for v in params.values()):
        ce = _named_loss(tuple(sorted((name, type(v).__name__, v) for name, v in params.items())))
    else:
        ce = as_loss("cross_entropy" if loss is None else loss, **params)
    if not supports(ce):
        raise ValueError(f"the fused kernel computes CrossEntropy(from_logits=True), got {ce!r}")
    return ce


def _xp() -> Any:
    import array_api_compat.torch as xp

    return xp


def _raise_input_error(loss: CrossEntropy, y: torch.Tensor, f: torch.Tensor, labels: bool) -> None:
    """The reference's error for what the kernel's status words flagged (error path only)."""
    xp = _xp()
    check_finite(xp, f, "y_pred")
    if labels:
        check_labels(xp, y, f.shape[1], loss.ignore_index)
    else:
        check_finite(xp, y, "y_true")
        check_simplex_rows(xp, y, "y_true")


def _inputs(loss: CrossEntropy, y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(logits, targets, are they labels?) after the reference's shape checks (no pass over the values)."""
    f = _check_pred(loss, y_pred)
    n, k = loss._check_prediction_shape(tuple(f.shape))
    y = _target(y_true, f)
    if y.ndim == 1:
        loss._check_label_shape(tuple(y.shape), n, k)
        return f, y, True
    if y.ndim == 2:
        if not y.is_floating_point():
            y = y.to(f.dtype)
        if loss.ignore_index is not None:
            loss._prob_target(None, y, f, False)  # raises: ignore_index needs labels
        loss._check_probability_shape(tuple(y.shape), (n, k))
        return f, y, False
    raise ValueError(loss._target_ndim_message(tuple(y.shape), (n, k)))


def _fused(loss: CrossEntropy, y: torch.Tensor, f: torch.Tensor, labels: bool, sample_weight: Any,
           reduction: Reduction, want_grad: bool, config: dict[str, Any],
           in_place: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(per-row values times the row scale, gradient times the row scale, row scale: (N,)
    or (1,) when every row has the same); ``config``: launch overrides (block, num_warps,
    rows_per_program); ``in_place``: the gradient overwrites ``f`` (which must have unit
    column stride)."""
    n, k = f.shape
    if in_place and f.stride(1) != 1:
        raise ValueError("grad_into_logits=True needs logits with unit stride along classes (contiguous rows)")
    acc = kernel.accumulator(f.dtype)
    check = not get_config().assume_valid
    w = _weights(sample_weight, f, (n,))
    sw = None if w is None else w.detach().to(acc)
    cw = _class_weights(loss.weight, f.device, acc)
    if f.stride(1) != 1:
        f = f.contiguous()
    float_labels = labels and y.is_floating_point()
    y_kernel = y.to(torch.int64) if float_labels else y.contiguous()
    if not labels and y.stride(1) != 1:
        y_kernel = y.contiguous()

    denom = None
    if reduction is Reduction.MEAN and labels and (cw is not None or loss.ignore_index is not None):
        inside = (y_kernel >= 0) & (y_kernel < k)
        rw = inside.to(acc) if cw is None else cw[y_kernel.clamp(0, k - 1)] * inside
        if loss.ignore_index is not None:
            rw = rw * (y_kernel != loss.ignore_index)
        denom = (rw if sw is None else rw * sw).sum()
    elif reduction is Reduction.MEAN and sw is not None:
        denom = sw.sum()
    if sw is not None:
        scale = sw if denom is None else sw / denom
    elif denom is not None:
        scale = (1.0 / denom).reshape(1)
    else:  # every row has the same scale, known here: no device work
        scale = kernel.constant((1.0 / n if reduction is Reduction.MEAN else 1.0,), f.device, acc)

    weight_total = float(sum(loss.weight)) if loss.weight is not None else float(k)
    rows, g, status = kernel.launch(
        f, y_kernel, labels=labels, weight=cw, weight_total=weight_total, ignore_index=loss.ignore_index,
        eps=loss.label_smoothing, z_loss=loss.z_loss, sum_tolerance=0.0 if labels else prob_tolerance(_xp(), y.dtype),
        scale=scale, want_grad=want_grad, grad_out=f.detach() if in_place else None, **config,
    )
    # One synchronisation reads what the kernel flagged (and whether the mean is defined).
    flags = [status] if check else []
    if check and float_labels:
        flags.append(y.ne(torch.round(y)).any().reshape(1))
    if denom is not None:
        flags.append(denom.le(0).reshape(1))
    found = [bool(v) for v in (flags[0] if len(flags) == 1 else torch.cat(flags)).tolist()] if flags else []
    if any(found[:-1] if denom is not None else found):
        # Raises, except for a target row sum within rounding of the tolerance that the
        # reference's own sum accepts: then the kernel's results stand.
        _raise_input_error(loss, y, f, labels)
    if denom is not None and found[-1]:
        raise ValueError("the weighted mean is undefined (the weights sum to zero); use reduction='sum'")
    return rows, g, scale


class _FusedCrossEntropy(torch.autograd.Function):
    """Values from the kernel; backward returns the kernel's gradient (times the incoming one)."""

    @staticmethod
    def forward(ctx: Any, f: torch.Tensor, y: torch.Tensor, loss: CrossEntropy, labels: bool, sample_weight: Any,
                reduction: Reduction, config: dict[str, Any], in_place: bool) -> torch.Tensor:
        want_grad = bool(ctx.needs_input_grad[0])
        in_place = in_place and want_grad
        rows, g, scale = _fused(loss, y, f, labels, sample_weight, reduction, want_grad, config, in_place)
        ctx.loss, ctx.per_row, ctx.in_place = loss, reduction is Reduction.NONE, in_place
        out = (rows if reduction is Reduction.NONE else rows.sum()).to(f.dtype)
        if in_place:
            # The logits now hold the gradient: any other node that saved them raises at its
            # backward ("modified by an inplace operation") instead of reading the gradient.
            torch.autograd.graph.increment_version(f)
            ctx.gradient = g  # f's memory: not save_for_backward, whose version check would fail
            ctx.save_for_backward(y, scale)
        else:
            ctx.save_for_backward(f, y, g, scale)
        return out

    @staticmethod
    def backward(ctx: Any, go: torch.Tensor) -> tuple[Any, ...]:
        none = (None,) * 7
        if ctx.in_place:
            (y, scale), f, g = ctx.saved_tensors, None, ctx.gradient
        else:
            f, y, g, scale = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: the exact Hessian through the reference
            if f is None:
                raise RuntimeError("double backward needs the logits, which grad_into_logits=True overwrote")
            coef = scale * go  # (N,) times a scalar, or times the per-row incoming gradient
            return coef.to(f.dtype)[:, None] * _Grad.apply(f, y, ctx.loss), *none
        if ctx.per_row:
            return g * go.to(g.dtype)[:, None], *none
        if bool(go == 1):
            return g, *none
        return g * go.to(g.dtype), *none


def cross_entropy(y_true: Any, y_pred: Any, sample_weight: Any = None, reduction: str = "mean", *,
                  loss: Any = None, grad_into_logits: bool = False, block: int | None = None,
                  num_warps: int | None = None, rows_per_program: int | None = None, **params: Any) -> torch.Tensor:
    """Softmax cross-entropy of ``y_pred`` (N, K) logits through the fused kernel, differentiable.

    ``loss`` is a :class:`lossgrad.CrossEntropy` (or pass its parameters: ``weight``,
    ``ignore_index``, ``label_smoothing``, ``z_loss``).  Argument order and reductions
    are those of :func:`lossgrad.integrations.torch.function`.  ``block`` (columns a
    step, a power of two; at least K keeps each row in registers), ``num_warps`` and
    ``rows_per_program`` (a power of two) override the launch configuration.

    ``grad_into_logits=True`` writes the gradient over the logits (one (N, K) array less
    at the peak, as a language model's output layer wants): ``y_pred`` holds the gradient
    after the forward pass.  Safe when nothing else needs the logits, e.g. they come
    from a matrix product; another node that saved them raises PyTorch's in-place error
    at its backward, and double backward raises.
    """
    ce = _cross_entropy_loss(loss, params)
    red = Reduction.parse(reduction)
    f, y, labels = _inputs(ce, y_true, y_pred)
    if isinstance(sample_weight, torch.Tensor) and sample_weight.requires_grad:
        raise ValueError("sample_weight must not require grad on the fused path; use integrations.torch.function")
    config = {"block": block, "num_warps": num_warps, "rows_per_program": rows_per_program}
    return _FusedCrossEntropy.apply(f, y, ce, labels, sample_weight, red, config, grad_into_logits)


def cross_entropy_value_grad(y_true: Any, y_pred: Any, sample_weight: Any = None, reduction: str = "mean", *,
                             loss: Any = None, block: int | None = None, num_warps: int | None = None,
                             rows_per_program: int | None = None, **params: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(reduced value, its gradient with respect to ``y_pred``) in one kernel, outside autograd.

    ``reduction="none"`` gives the per-row values and the per-row gradients (each row's
    own gradient, times its sample weight).
    """
    ce = _cross_entropy_loss(loss, params)
    red = Reduction.parse(reduction)
    f, y, labels = _inputs(ce, y_true, y_pred)
    with torch.no_grad():
        config = {"block": block, "num_warps": num_warps, "rows_per_program": rows_per_program}
        rows, g, _ = _fused(ce, y, f.detach(), labels, sample_weight, red, True, config)
    out = rows if red is Reduction.NONE else rows.sum()
    return out.to(f.dtype), g
