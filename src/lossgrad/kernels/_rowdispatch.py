"""Dispatch of the row losses' public methods to their row kernels.

:func:`evaluate_row` is the row counterpart of :func:`lossgrad.kernels.evaluate_pointwise`:
``RowLoss._compute`` calls it for NumPy ``y_pred`` of at least ``kernel_threshold``
elements (N K) while ``use_kernels`` is on, and runs the reference when it returns None.
Served: :class:`lossgrad.CrossEntropy` with ``from_logits=True`` (every other option:
class weights, ``ignore_index``, label smoothing, z-loss, labels or probability rows,
``sample_weight``), for the ops value, grad, hess_diag and their combinations; the other
row losses through the tables ``KERNELS`` of :mod:`._row_softmax`, :mod:`._row_margin`
and :mod:`._row_multilabel` (class -> (supports(loss, ops), evaluate(loss, ops, y_true,
y_pred, sample_weight))): value and grad of every one, hess_diag of focal, poly1,
kl_divergence and multilabel; :func:`evaluate_row_hvp` serves ``hvp`` of
CrossEntropy (logits, no z-loss; :mod:`._cross_entropy_hvp`).  The full Hessian and the
other losses' products use the reference, as does the diagonal of the hinges (zero
where defined) and of sparsemax_loss (its support indicator, where a score at the
threshold would have to round as the reference's does).

Validation costs no extra pass over the logits: the kernel counts non-finite logits and
invalid targets in its pass, and only when a count is non-zero are the reference checks
run, which raise their own error.  The probability-row sum is tested in float64 at half
the reference tolerance, so a row the kernel flags but the reference accepts falls back
to the reference (never a different answer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _validation as V
from .._config import get_config
from .._row import prob_tolerance
from ._cross_entropy import cross_entropy_value_grad
from ._cross_entropy_hvp import cross_entropy_hvp

__all__ = ["evaluate_row", "evaluate_row_hvp", "row_kernel_supports"]


_TABLE: dict[type, tuple[Callable, Callable]] = {}


def _table() -> dict[type, tuple[Callable, Callable]]:
    if not _TABLE:
        from ..losses.multiclass import CrossEntropy
        from . import _row_margin, _row_multilabel, _row_softmax

        _TABLE[CrossEntropy] = (_cross_entropy_supports, _cross_entropy)
        _TABLE.update(_row_softmax.KERNELS)
        _TABLE.update(_row_margin.KERNELS)
        _TABLE.update(_row_multilabel.KERNELS)
    return _TABLE


def row_kernel_supports(loss: Any, ops: tuple[str, ...]) -> bool:
    """Whether :func:`evaluate_row` serves ``ops`` of ``loss``."""
    entry = _table().get(type(loss))
    return entry is not None and bool(entry[0](loss, ops))


def evaluate_row(loss: Any, ops: tuple[str, ...], y_true: Any, y_pred: Any, sample_weight: Any) -> tuple | None:
    """The fused row kernel's result of ``loss``'s ``ops``, or None (then the reference runs)."""
    entry = _table().get(type(loss))
    if entry is None or not entry[0](loss, ops):
        return None
    return entry[1](loss, ops, y_true, y_pred, sample_weight)


_CE_OPS = frozenset(("value", "grad", "hess_diag"))


def _cross_entropy_supports(loss: Any, ops: tuple[str, ...]) -> bool:
    return loss.from_logits and _CE_OPS.issuperset(ops)


def _cross_entropy_inputs(loss: Any, y_true: Any, y_pred: Any, sample_weight: Any) -> tuple | None:
    """(f, y, sample weights or None, class weights or None) for the cross-entropy
    kernels, None where they do not serve (then the reference runs, or raises)."""
    xp, f, _ = V.as_prediction(y_pred, name="y_pred")
    if not isinstance(f, np.ndarray) or f.dtype not in (np.float32, np.float64) or f.ndim != 2:
        return None
    n, k = f.shape
    y = V.as_target(y_true, xp, f, name="y_true", same_shape=False)
    labels_ok = y.ndim == 1 and y.shape[0] == n
    probs_ok = y.ndim == 2 and y.shape == f.shape and loss.ignore_index is None
    if k < loss.min_classes or not (labels_ok or probs_ok):
        loss._prepare(y_true, y_pred, sample_weight)  # raises the reference's own error
        return None  # pragma: no cover - the reference accepted it: let it compute
    loss._check_classes(k)
    if sample_weight is None:
        w = None
    else:
        try:
            w = V.as_sample_weight(sample_weight, xp, (n,), f)
        except ValueError:
            loss._prepare(y_true, y_pred, sample_weight)  # the reference's first error (it checks the logits first)
            raise
        w = np.broadcast_to(w, (n,))
    class_weight = loss.__dict__.get("_cached_class_weight", False)
    if class_weight is False:  # the loss is immutable: convert its class weights once
        class_weight = loss.__dict__["_cached_class_weight"] = (
            None if loss.weight is None else np.asarray(loss.weight, np.float64))
    return f, y, w, class_weight


def _cross_entropy(loss: Any, ops: tuple[str, ...], y_true: Any, y_pred: Any, sample_weight: Any) -> tuple | None:
    inputs = _cross_entropy_inputs(loss, y_true, y_pred, sample_weight)
    if inputs is None:
        return None
    f, y, w, class_weight = inputs
    v, g, hd, counts = cross_entropy_value_grad(
        f, y, class_weight=class_weight, label_smoothing=loss.label_smoothing, ignore_index=loss.ignore_index,
        z_loss=loss.z_loss, sample_weight=w, prob_tol=0.5 * prob_tolerance(np, f.dtype),
        hess_diag="hess_diag" in ops,
    )
    bad_f, bad_y = counts.tolist()
    if (bad_f or bad_y) and not get_config().assume_valid:
        loss._prepare(y_true, y_pred, sample_weight)  # raises the reference's own error
        return None  # the reference accepted what the kernel flagged: let it compute
    return tuple(v if op == "value" else g if op == "grad" else hd for op in ops)


def evaluate_row_hvp(loss: Any, y_true: Any, y_pred: Any, v: Any, sample_weight: Any) -> Any:
    """``loss.hvp`` through the row kernel (:class:`lossgrad.CrossEntropy` with
    ``from_logits=True`` and no z-loss; NumPy v of y_pred's shape), or None: then the
    reference runs, and raises where an input is invalid (also when the kernel flagged one)."""
    from ..losses.multiclass import CrossEntropy

    if type(loss) is not CrossEntropy or not loss.from_logits or loss.z_loss != 0:
        return None
    if not isinstance(v, np.ndarray) or v.dtype.kind not in "fiu":
        return None
    inputs = _cross_entropy_inputs(loss, y_true, y_pred, sample_weight)
    if inputs is None or v.shape != inputs[0].shape:
        return None
    f, y, w, class_weight = inputs
    out, counts = cross_entropy_hvp(
        f, v.astype(f.dtype, copy=False), y, class_weight=class_weight, label_smoothing=loss.label_smoothing,
        ignore_index=loss.ignore_index, sample_weight=w, prob_tol=0.5 * prob_tolerance(np, f.dtype))
    bad_f, bad_y = counts.tolist()
    return None if bad_f or bad_y else out
