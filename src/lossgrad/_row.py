"""Base class of row losses: y_pred (N, K) class scores."""

from __future__ import annotations

from typing import Any, ClassVar

from . import _validation as V
from ._core import Loss, Reduction, _reduce
from ._props import Shape

Array = Any

__all__ = ["RowLoss"]


class RowLoss(Loss):
    """A loss over rows of class scores: y_pred (N, K); y_true (N,) labels or (N, K) probabilities.

    value (N,), grad (N, K), hess (N, K, K), hess_diag (N, K), hvp (N, K).  Subclasses
    implement ``_value``, ``_grad``, ``_hess`` (and may override ``_hess_diag``,
    ``_hvp``, ``_evaluate``) on (xp, target, f) where ``target`` is a :class:`RowTarget`.
    ``_row_weight`` returns the per-row weight that the mean reduction divides by
    (class weights, ignored rows), as PyTorch's weighted mean does.
    """

    shape: ClassVar[Shape] = Shape.ROW
    accepts_labels: ClassVar[bool] = True
    accepts_probabilities: ClassVar[bool] = True

    def value(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        return self._compute(("value",), y_true, y_pred, sample_weight)[0]

    def grad(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        return self._compute(("grad",), y_true, y_pred, sample_weight)[0]

    def hess(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        return self._compute(("hess",), y_true, y_pred, sample_weight)[0]

    def hess_diag(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        return self._compute(("hess_diag",), y_true, y_pred, sample_weight)[0]

    def value_grad(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[Any, Any]:
        return self._compute(("value", "grad"), y_true, y_pred, sample_weight)

    def grad_hess(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[Any, Any]:
        return self._compute(("grad", "hess"), y_true, y_pred, sample_weight)

    def hvp(self, y_true: Any, y_pred: Any, v: Any, sample_weight: Any = None) -> Any:
        """Hessian-vector product per row: (hess @ v[..., None])[..., 0], without forming hess."""
        xp, t, f, w = self._prepare(y_true, y_pred, sample_weight)
        v = V.as_target(v, xp, f, name="v")
        V.check_finite(xp, v, "v")
        out = self._hvp(xp, t, f, v)
        return out if w is None else out * w[:, None]

    def __call__(self, y_true: Any, y_pred: Any, *, sample_weight: Any = None, reduction: str = "mean") -> Any:
        reduction = Reduction.parse(reduction)
        xp, t, f, w = self._prepare(y_true, y_pred, sample_weight)
        (v,) = self._evaluate(xp, t, f, ("value",))
        if w is not None:
            v = v * w
        if reduction is Reduction.NONE:
            return v
        rw = self._row_weight(xp, t, f)
        if rw is None:
            denom = None if w is None else xp.sum(w)
        else:
            denom = xp.sum(rw if w is None else rw * w)
        return _reduce(xp, v, denom, reduction)

    # --- machinery --------------------------------------------------------
    def _compute(self, ops: tuple[str, ...], y_true: Any, y_pred: Any, sample_weight: Any) -> tuple[Any, ...]:
        xp, t, f, w = self._prepare(y_true, y_pred, sample_weight)
        out = self._evaluate(xp, t, f, ops)
        if w is None:
            return out
        return tuple(o * xp.reshape(w, (-1,) + (1,) * (o.ndim - 1)) for o in out)

    def _evaluate(self, xp: Any, t: Any, f: Array, ops: tuple[str, ...]) -> tuple[Array, ...]:
        return tuple(getattr(self, "_" + op)(xp, t, f) for op in ops)

    def _prepare(self, y_true: Any, y_pred: Any, sample_weight: Any) -> tuple[Any, Any, Array, Array | None]:
        raise NotImplementedError  # provided by lossgrad.losses._rowbase

    def _row_weight(self, xp: Any, t: Any, f: Array) -> Array | None:
        return None

    def _hess_diag(self, xp: Any, t: Any, f: Array) -> Array:
        h = self._hess(xp, t, f)
        k = f.shape[-1]
        return xp.stack([h[:, i, i] for i in range(k)], axis=1)

    def _hvp(self, xp: Any, t: Any, f: Array, v: Array) -> Array:
        h = self._hess(xp, t, f)
        return xp.sum(h * v[:, None, :], axis=-1)


