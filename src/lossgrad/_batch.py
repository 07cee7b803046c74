"""Base class of batch losses: named inputs (embeddings, pairs, lists, masks).

A batch loss takes its inputs by name (``anchor=..., positive=...``), returns one
value per item (anchor, pair, utterance, image...) and the gradient of
``sum(sample_weight * value)`` as a dict from input name to an array of that input's
shape.  Subclasses implement three methods on validated arrays:

* ``_prepare(inputs, sample_weight) -> (xp, data, w)``: check and convert the inputs
  (the helpers :meth:`BatchLoss._coerce_inputs`, :meth:`BatchLoss._targets`,
  :meth:`BatchLoss._class_labels` and :meth:`BatchLoss._item_weight` give the
  standard checks with messages naming the argument);
* ``_value(xp, data)``: the per-item values (unweighted);
* ``_value_grad(xp, data, w)``: (weighted values, dict of gradients of sum(w * value)).

and, for :func:`lossgrad.verify`, ``_example_inputs(rng) -> dict`` of valid float64
NumPy inputs (optionally ``_extreme_inputs(rng)``: inputs at which the value and the
gradient must stay finite).  A Hessian-vector product is declared absent by default
(``has_hvp = False``: :meth:`BatchLoss.hvp` raises); a loss that has one sets
``has_hvp = True`` and implements

* ``_hvp(xp, data, w, v)``: the Hessian of sum(w * value) times the direction ``v`` (a
  dict from differentiable input name to an array of that input's shape; names left
  out mean 0; :meth:`BatchLoss._direction` converts and checks one entry), returned as
  a dict with every differentiable input given;
* ``_item_jvp(xp, data, v)``: the per-item directional derivatives of the unweighted
  values, d/dt value(x + t v) at t = 0, of the shape of ``value`` (what the PyTorch
  adapter's double backward needs for the weights' path; verify checks it).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import array_api_compat
import numpy as np

from . import _validation as V
from ._config import get_config
from ._core import Loss, NotDifferentiableError, Reduction, _reduce
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
    has_hvp: ClassVar[bool] = False

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

    def hvp(self, v: dict[str, Any], sample_weight: Any = None, **inputs: Any) -> dict[str, Any]:
        """Hessian of sum(w * value) times the direction ``v`` (a dict like ``grad``'s).

        Declared absent unless the class sets ``has_hvp = True``: then this raises
        :class:`~lossgrad.NotDifferentiableError`.
        """
        if not self.has_hvp:
            raise NotDifferentiableError(
                f"{self.name} declares no Hessian-vector product (has_hvp is False); "
                "differentiate its gradient numerically or with an autodiff engine"
            )
        if not isinstance(v, dict):
            raise TypeError(f"v must be a dict from input name to direction array, got {type(v).__name__}")
        xp, data, w = self._prepare_batch(inputs, sample_weight)
        return self._hvp(xp, data, w, v)

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

    def _hvp(self, xp: Any, data: dict[str, Any], w: Any, v: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover

    def _item_jvp(self, xp: Any, data: dict[str, Any], v: dict[str, Any]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} declares has_hvp but defines no _item_jvp")

    def _direction(self, xp: Any, v: dict[str, Any], name: str, like: Array, read: Array | None = None) -> Array:
        """v[name] as an array of ``like``'s dtype, device and shape (zeros when absent), finite;
        with a boolean ``read`` mask, entries outside it are set to 0 and not checked (padding)."""
        unknown = sorted(set(v) - set(self.differentiable))
        if unknown:
            raise ValueError(f"{self.name}: v has key(s) {unknown}; the differentiable inputs are "
                             f"{list(self.differentiable)}")
        if name not in v or v[name] is None:
            return xp.zeros_like(like)
        d = xp.astype(_as_numeric(self, xp, v[name], f"v['{name}']", like), like.dtype)
        if tuple(d.shape) != tuple(like.shape):
            raise ValueError(f"v['{name}'] must have the shape of {name} {tuple(like.shape)}, got {tuple(d.shape)}")
        if read is not None:
            d = xp.where(read, d, xp.zeros_like(d))
        V.check_finite(xp, d, f"v['{name}']")
        return d

    # --- what verify samples ----------------------------------------------
    def _example_inputs(self, rng: np.random.Generator) -> dict[str, Any]:
        """Valid inputs (float64 NumPy arrays, labels) away from kinks, for verification."""
        raise NotImplementedError(f"{type(self).__name__} defines no _example_inputs(rng)")

    def _extreme_inputs(self, rng: np.random.Generator) -> dict[str, Any] | None:
        """Valid inputs at extreme magnitudes where value and grad must stay finite (None: none)."""
        return None

    # --- input helpers for subclasses ---------------------------------------
    def _coerce_inputs(self, inputs: dict[str, Any], spec: dict[str, Any]) -> tuple[Any, dict[str, Array]]:
        """Check and convert the floating inputs named in ``spec``.

        ``spec`` maps an input name to its required number of dimensions (an int, a
        tuple of allowed ints, or None for any).  Names absent from ``inputs`` are
        skipped (optional inputs).  Every array must be a real floating array of one
        namespace, non-empty and finite; Python numbers and lists are accepted and
        become arrays.  All arrays are brought to one floating dtype (the promoted
        dtype of the array inputs, so float32 stays float32).  Returns (xp, arrays).
        """
        present = [n for n in spec if n in inputs]
        for name in present:
            if inputs[name] is None:
                raise TypeError(f"{self.name}: input {name} is required, got None")
            if isinstance(inputs[name], (bool, np.bool_)):
                raise TypeError(f"{self.name}: input {name} must be a floating-point array, got a boolean")
        # the namespace comes from the first true array; numbers and lists join it
        xp, first = None, None
        for name in present:
            value = inputs[name]
            if _is_hostlike(value):
                continue
            try:
                ns = array_api_compat.array_namespace(value)
            except TypeError:
                raise TypeError(
                    f"{self.name}: input {name} must be an array (NumPy, PyTorch, JAX, ...), got {type(value).__name__}"
                ) from None
            if xp is None:
                xp, first = ns, name
            elif ns is not xp:
                raise TypeError(
                    f"{self.name}: input {name} is a {type(value).__module__}.{type(value).__name__} while input "
                    f"{first} is a {type(inputs[first]).__module__}.{type(inputs[first]).__name__}; "
                    "pass every input from one array library"
                )
        if xp is None:
            xp = array_api_compat.array_namespace(np.empty(0))
        device = None if first is None else array_api_compat.device(inputs[first])
        arrays: dict[str, Any] = {}
        for name in present:
            value, ndim = inputs[name], spec[name]
            if first is None or name != first and _is_hostlike(value):
                try:
                    host = np.asarray(value, dtype=float) if not isinstance(value, np.generic) else np.asarray(value)
                except (TypeError, ValueError):
                    raise TypeError(f"{self.name}: input {name} must be a numeric array, got a ragged or non-numeric list") from None
                value = host if first is None else xp.asarray(host, device=device)
            if not xp.isdtype(value.dtype, "real floating"):
                raise TypeError(
                    f"{self.name}: input {name} must have a real floating-point dtype (float32 or float64), "
                    f"got {value.dtype}; convert it first"
                )
            allowed = (ndim,) if isinstance(ndim, int) else ndim
            if allowed is not None and value.ndim not in allowed:
                want = " or ".join(str(a) for a in allowed)
                raise ValueError(f"{self.name}: input {name} must be {want}-dimensional, got shape {tuple(value.shape)}")
            if math.prod(int(s) for s in value.shape) == 0:
                raise ValueError(f"{self.name}: input {name} is empty (shape {tuple(value.shape)})")
            arrays[name] = value
        if not arrays:
            raise TypeError(f"{self.name}: no array input given; it takes {list(self.inputs)}")
        # one dtype: promote the array inputs (0-d inputs that came from Python numbers follow)
        from_arrays = [a.dtype for n, a in arrays.items() if not _is_hostlike(inputs[n])]
        dtype = from_arrays[0] if from_arrays else next(iter(arrays.values())).dtype
        for dt in from_arrays[1:]:
            dtype = xp.result_type(dtype, dt)
        for name, a in arrays.items():
            if a.dtype != dtype:
                arrays[name] = xp.astype(a, dtype)
            V.check_finite(xp, arrays[name], f"{self.name}: input {name}")
        return xp, arrays

    def _targets(
        self, xp: Any, value: Any, name: str, like: Array, shape: tuple[int, ...], allowed: tuple[float, ...], meaning: str
    ) -> Array:
        """A target array of ``shape`` whose entries lie in ``allowed``, in like's dtype."""
        t = _as_numeric(self, xp, value, name, like)
        if tuple(t.shape) != tuple(shape):
            if t.ndim == 0:
                t = xp.broadcast_to(t, tuple(shape))
            else:
                raise ValueError(f"{self.name}: input {name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
        t = xp.astype(t, like.dtype)
        if not get_config().assume_valid:
            ok = xp.zeros(t.shape, dtype=xp.bool, device=array_api_compat.device(t))
            for a in allowed:
                ok = ok | (t == a)
            V.check_all(xp, ok, f"{self.name}: input {name}", meaning)
        return t

    def _class_labels(
        self, xp: Any, value: Any, name: str, like: Array, n: int, n_classes: int | None = None
    ) -> Array:
        """Integer class labels of shape (n,), in [0, n_classes) when n_classes is given (int64)."""
        t = _as_numeric(self, xp, value, name, like)
        if t.ndim != 1 or int(t.shape[0]) != n:
            raise ValueError(f"{self.name}: input {name} must have shape ({n},) (one label per row), got {tuple(t.shape)}")
        if xp.isdtype(t.dtype, "real floating"):
            V.check_finite(xp, t, f"{self.name}: input {name}")
            V.check_all(xp, t == xp.round(t), f"{self.name}: input {name}", "integer class labels")
        t = xp.astype(t, xp.int64)
        if n_classes is not None:
            V.check_all(xp, (t >= 0) & (t < n_classes), f"{self.name}: input {name}",
                        f"class labels in [0, {n_classes}) (the number of rows of weight)")
        return t

    def _item_weight(self, xp: Any, sample_weight: Any, shape: tuple[int, ...], like: Array) -> Array | None:
        """None, or a finite non-negative weight of the per-item value's ``shape``."""
        return V.as_sample_weight(sample_weight, xp, tuple(shape), like)


def _was_python_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_hostlike(x: Any) -> bool:
    """Python numbers, lists and NumPy scalars: they join the namespace and dtype of the arrays."""
    return _was_python_number(x) or isinstance(x, (list, tuple, np.generic))


def _as_numeric(loss: BatchLoss, xp: Any, value: Any, name: str, like: Array) -> Array:
    if value is None:
        raise TypeError(f"{loss.name}: input {name} is required, got None")
    if isinstance(value, bool):
        value = int(value)
    try:
        arr = xp.asarray(value, device=array_api_compat.device(like))
    except Exception:
        try:
            arr = xp.asarray(np.asarray(value), device=array_api_compat.device(like))
        except Exception:
            raise TypeError(f"{loss.name}: input {name} must be array-like, got {type(value).__name__}") from None
    if xp.isdtype(arr.dtype, "bool"):
        arr = xp.astype(arr, xp.int64)
    if not xp.isdtype(arr.dtype, "numeric") or xp.isdtype(arr.dtype, "complex floating"):
        raise TypeError(f"{loss.name}: input {name} must be real numbers, got dtype {arr.dtype}")
    return arr
