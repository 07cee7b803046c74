"""Base class of batch losses: named inputs (embeddings, pairs, lists, masks)."""

from __future__ import annotations

from typing import Any, ClassVar

from . import _validation as V
from ._core import Loss, Reduction, _reduce
from ._props import Shape

Array = Any

__all__ = ["BatchLoss"]


class BatchLoss(Loss):
    """A loss over named inputs (embeddings, pairs, lists, masks).

    ``inputs`` names every argument, ``differentiable`` those ``grad`` returns a
    gradient for.  ``value(**inputs)`` is per-anchor (or per-sample) and weighted,
    ``grad(**inputs)`` a dict, ``__call__(**inputs, reduction=...)`` aggregates.
    """

    shape: ClassVar[Shape] = Shape.BATCH
    inputs: ClassVar[tuple[str, ...]] = ()
    differentiable: ClassVar[tuple[str, ...]] = ()

    def value(self, sample_weight: Any = None, **inputs: Any) -> Any:
        xp, data, w = self._prepare_batch(inputs, sample_weight)
        v = self._value(xp, data)
        return v if w is None else v * w

    def grad(self, sample_weight: Any = None, **inputs: Any) -> dict[str, Any]:
        return self.value_grad(sample_weight=sample_weight, **inputs)[1]

    def value_grad(self, sample_weight: Any = None, **inputs: Any) -> tuple[Any, dict[str, Any]]:
        """(per-item values, gradient of sum(w * value) w.r.t. every differentiable input)."""
        xp, data, w = self._prepare_batch(inputs, sample_weight)
        return self._value_grad(xp, data, w)

    def __call__(self, *, sample_weight: Any = None, reduction: str = "mean", **inputs: Any) -> Any:
        reduction = Reduction.parse(reduction)
        xp, data, w = self._prepare_batch(inputs, sample_weight)
        v = self._value(xp, data)
        if w is not None:
            v = v * w
        return _reduce(xp, v, None if w is None else xp.sum(w), reduction)

    def _prepare_batch(self, inputs: dict[str, Any], sample_weight: Any) -> tuple[Any, dict[str, Any], Any]:
        unknown = set(inputs) - set(self.inputs)
        missing = [n for n in self.inputs if n not in inputs and n not in self._optional_inputs]
        if unknown:
            raise TypeError(f"{self.name} got unexpected input(s) {sorted(unknown)}; it takes {list(self.inputs)}")
        if missing:
            raise TypeError(f"{self.name} is missing input(s) {missing}; it takes {list(self.inputs)}")
        return self._prepare(inputs, sample_weight)

    _optional_inputs: ClassVar[tuple[str, ...]] = ()

    def _prepare(self, inputs: dict[str, Any], sample_weight: Any) -> tuple[Any, dict[str, Any], Any]:
        raise NotImplementedError  # pragma: no cover

    def _value(self, xp: Any, data: dict[str, Any]) -> Any:
        raise NotImplementedError  # pragma: no cover

    def _value_grad(self, xp: Any, data: dict[str, Any], w: Any) -> tuple[Any, dict[str, Any]]:
        raise NotImplementedError  # pragma: no cover


