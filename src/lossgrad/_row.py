r"""Base class of row losses: y_pred (N, K) class scores, one loss value per row.

Targets come in two kinds, told apart by their number of dimensions:

* labels, shape (N,): integer class indices 0 <= y < K (integral floats accepted),
  except rows equal to the loss's ``ignore_index`` (if it has one), which are masked;
* probabilities, shape (N, K): rows in [0, 1] summing to 1 within a tolerance of
  max(1e-6, 1000 eps) of the dtype (subclasses may ask for other domains, e.g. the
  multi-label loss takes independent per-column probabilities).

Both reach the formulas as a :class:`RowTarget`, whose ``Y`` is the (N, K) one-hot or
probability matrix in the dtype of ``y_pred`` (a zero row for an ignored label).

Constants declared by a row loss (:class:`~lossgrad.Props`): ``lipschitz`` is the sup
of the Euclidean (l2) norm of a row's gradient, ``smoothness`` the sup of the spectral
norm of a row's Hessian, both over every admissible target and score row *and* every
number of classes K (the K of the class weights where those fix it); ``None`` where
that sup is infinite (growing with the scores or with K), unless the name is listed in
``undeclared_constants`` (a finite bound exists but is not derived).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import _validation as V
from ._config import get_config
from ._core import Loss, Reduction, _reduce
from ._props import Shape

Array = Any

__all__ = ["RowLoss", "RowTarget"]


@dataclass(frozen=True)
class RowTarget:
    """A validated target of a row loss.

    Attributes
    ----------
    Y:
        (N, K) one-hot rows (labels) or the probability rows, dtype of ``y_pred``;
        an ignored label gives a zero row.
    labels:
        (N,) labels as floats in the dtype of ``y_pred``, or None for probabilities.
    keep:
        (N,) 1.0 for a row that counts, 0.0 for an ignored label; None when no row
        is ignored (probabilities, or no ``ignore_index``).
    raw:
        y_true as given (converted to the namespace and dtype), for losses whose
        target is not a probability row (log-probabilities, per-column labels).
    """

    Y: Array
    labels: Array | None
    keep: Array | None
    raw: Array

    @property
    def is_labels(self) -> bool:
        return self.labels is not None


def _onehot(xp: Any, labels: Array, k: int, like: Array) -> Array:
    cols = xp.arange(k, dtype=like.dtype, device=_device(like))
    return xp.astype(labels[:, None] == cols[None, :], like.dtype)


def _device(x: Array) -> Any:
    import array_api_compat

    return array_api_compat.device(x)


@functools.lru_cache(maxsize=64)
def prob_tolerance(xp: Any, dtype: Any) -> float:
    """Tolerance on a probability row's sum: max(1e-6, 1000 eps) (cached: ``finfo`` costs
    about 1 us, a fifth of a small row-kernel call)."""
    return max(1e-6, 1e3 * float(xp.finfo(dtype).eps))


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
    min_classes: ClassVar[int] = 2
    #: Props constants that are finite but not derived (see the module docstring).
    undeclared_constants: ClassVar[tuple[str, ...]] = ()
    #: Options whose being set gives rows a weight other than 1 in the mean reduction
    #: (:meth:`_row_weight`); with all of them None the mean divides by sum(w) (or N),
    #: and ``__call__`` can reduce a fused kernel's rows without building the targets.
    row_weight_options: ClassVar[tuple[str, ...]] = ("ignore_index",)

    def value(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """Per-row loss (N,), multiplied by ``sample_weight``."""
        return self._compute(("value",), y_true, y_pred, sample_weight)[0]

    def grad(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """dL/dy_pred per row (N, K), multiplied by ``sample_weight``."""
        return self._compute(("grad",), y_true, y_pred, sample_weight)[0]

    def hess(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """The full Hessian per row (N, K, K), multiplied by ``sample_weight``."""
        return self._compute(("hess",), y_true, y_pred, sample_weight)[0]

    def hess_diag(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """The diagonal of the Hessian per row (N, K), without forming it."""
        return self._compute(("hess_diag",), y_true, y_pred, sample_weight)[0]

    def value_grad(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[Any, Any]:
        return self._compute(("value", "grad"), y_true, y_pred, sample_weight)

    def grad_hess(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[Any, Any]:
        return self._compute(("grad", "hess"), y_true, y_pred, sample_weight)

    def value_grad_hess(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[Any, Any, Any]:
        return self._compute(("value", "grad", "hess"), y_true, y_pred, sample_weight)

    def grad_hess_diag(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> tuple[Any, Any]:
        """(grad, the Hessian diagonal), both (N, K): what gradient boosting takes per class;
        one pass where a row kernel serves it (cross_entropy, focal, poly1, kl_divergence,
        multilabel)."""
        return self._compute(("grad", "hess_diag"), y_true, y_pred, sample_weight)

    def hvp(self, y_true: Any, y_pred: Any, v: Any, sample_weight: Any = None) -> Any:
        """Hessian-vector product per row: (hess @ v[..., None])[..., 0], without forming hess."""
        fused = _fused_row_kernel(self, ("hvp",), y_true, y_pred, sample_weight, v)
        if fused is not None:
            return fused
        xp, t, f, w = self._prepare(y_true, y_pred, sample_weight)
        v = V.as_target(v, xp, f, name="v")
        V.check_finite(xp, v, "v")
        out = self._hvp(xp, t, f, v)
        return out if w is None else out * w[:, None]

    def __call__(self, y_true: Any, y_pred: Any, *, sample_weight: Any = None, reduction: str = "mean") -> Any:
        """Aggregate: "mean" = sum(w l) / sum(w rw) with rw the row weight (class weight,
        0 for ignored rows; 1 by default), "sum" = sum(w l), "none" the weighted (N,) array."""
        reduction = Reduction.parse(reduction)
        unit_rows = all(getattr(self, name, None) is None for name in self.row_weight_options)
        if reduction is not Reduction.MEAN or unit_rows:
            fused = _fused_row_kernel(self, ("value",), y_true, y_pred, sample_weight)
            if fused is not None:  # the kernel's weighted rows; mean divides by sum(w) (row weights 1)
                v = fused[0]
                if reduction is Reduction.NONE:
                    return v
                w = None if sample_weight is None else V.as_sample_weight(sample_weight, np, (v.shape[0],), v)
                denom = None if w is None else np.sum(np.broadcast_to(w, v.shape))
                return _reduce(np, v, denom, reduction, count=int(v.shape[0]))
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
            if reduction is Reduction.MEAN and not bool(denom > 0):
                raise ValueError(
                    "the weighted mean is undefined: every row is ignored (ignore_index) or has zero "
                    "class/sample weight; use reduction='sum'"
                )
        return _reduce(xp, v, denom, reduction, count=int(f.shape[0]))

    # --- machinery --------------------------------------------------------
    def _compute(self, ops: tuple[str, ...], y_true: Any, y_pred: Any, sample_weight: Any) -> tuple[Any, ...]:
        fused = _fused_row_kernel(self, ops, y_true, y_pred, sample_weight)
        if fused is not None:
            return fused
        xp, t, f, w = self._prepare(y_true, y_pred, sample_weight)
        out = self._evaluate(xp, t, f, ops)
        if w is None:
            return out
        return tuple(o * xp.reshape(w, (-1,) + (1,) * (o.ndim - 1)) for o in out)

    def _evaluate(self, xp: Any, t: Any, f: Array, ops: tuple[str, ...]) -> tuple[Array, ...]:
        return tuple(getattr(self, "_" + op)(xp, t, f) for op in ops)

    def _prepare(self, y_true: Any, y_pred: Any, sample_weight: Any) -> tuple[Any, RowTarget, Array, Array | None]:
        xp, f, _ = V.as_prediction(y_pred, name="y_pred")
        n, k = self._check_prediction_shape(tuple(f.shape))
        check = not get_config().assume_valid
        if check:
            V.check_finite(xp, f, "y_pred")
            self._check_prediction(xp, f)
        y = V.as_target(y_true, xp, f, name="y_true", same_shape=False)
        if y.ndim == 1:
            t = self._label_target(xp, y, f, check)
        elif y.ndim == 2:
            t = self._prob_target(xp, y, f, check)
        else:
            raise ValueError(self._target_ndim_message(tuple(y.shape), (n, k)))
        w = V.as_sample_weight(sample_weight, xp, (n,), f)
        return xp, t, f, w

    # --- shape checks (also used by the GPU path, lossgrad.integrations.triton) ----------
    def _check_prediction_shape(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """(N, K) of a y_pred of this shape, or the ValueError naming what is expected."""
        if len(shape) != 2:
            raise ValueError(
                f"y_pred must be 2-dimensional (N samples, K classes) for the row loss {self.name}, got shape {shape}"
            )
        n, k = int(shape[0]), int(shape[1])
        if k < self.min_classes:
            raise ValueError(f"y_pred must have at least {self.min_classes} columns (classes), got shape {(n, k)}")
        self._check_classes(k)
        return n, k

    def _check_label_shape(self, shape: tuple[int, ...], n: int, k: int) -> None:
        if not self.accepts_labels:
            raise ValueError(
                f"{self.name} needs y_true of shape (N, K) = {(n, k)} (one row per sample), got class labels "
                f"of shape {shape}"
            )
        if int(shape[0]) != n:
            raise ValueError(f"y_true has {int(shape[0])} labels but y_pred has {n} rows")

    def _check_probability_shape(self, shape: tuple[int, ...], f_shape: tuple[int, int]) -> None:
        if not self.accepts_probabilities:
            raise ValueError(f"{self.name} takes class labels of shape (N,), got y_true of shape {shape}")
        if shape != f_shape:
            raise ValueError(f"y_true probabilities must have the shape of y_pred {f_shape}, got {shape}")

    @staticmethod
    def _target_ndim_message(shape: tuple[int, ...], f_shape: tuple[int, int]) -> str:
        return (f"y_true must be (N,) class labels or (N, K) probabilities, got shape {shape} "
                f"for y_pred of shape {f_shape}")

    def _label_target(self, xp: Any, y: Array, f: Array, check: bool) -> RowTarget:
        n, k = int(f.shape[0]), int(f.shape[1])
        self._check_label_shape(tuple(y.shape), n, k)
        ignore = getattr(self, "ignore_index", None)
        if check:
            check_labels(xp, y, k, ignore)
        keep = None
        if ignore is not None:
            mask = y == ignore
            if not check or bool(xp.any(mask)):  # no data-dependent branch when traced (jit)
                keep = xp.astype(~mask, f.dtype)
        Y = _onehot(xp, y, k, f)  # an ignored (out-of-range) label gives a zero row
        if keep is not None:
            Y = Y * keep[:, None]
        return RowTarget(Y=Y, labels=y, keep=keep, raw=y)

    def _prob_target(self, xp: Any, y: Array, f: Array, check: bool) -> RowTarget:
        self._check_probability_shape(tuple(y.shape), tuple(f.shape))
        if check:
            V.check_finite(xp, y, "y_true")
            self._check_probabilities(xp, y)
        return RowTarget(Y=self._target_matrix(xp, y), labels=None, keep=None, raw=y)

    # --- hooks ------------------------------------------------------------
    def _check_classes(self, k: int) -> None:
        """Raise ValueError if the loss's parameters do not fit K classes (e.g. class weights)."""

    def _check_prediction(self, xp: Any, f: Array) -> None:
        """Raise ValueError if y_pred is outside the loss's domain (runs unless assume_valid)."""

    def _check_probabilities(self, xp: Any, y: Array) -> None:
        """Rows in [0, 1] summing to 1 (subclasses with other target domains override)."""
        check_simplex_rows(xp, y, "y_true")

    def _target_matrix(self, xp: Any, y: Array) -> Array:
        """The (N, K) target matrix the formulas use, from the validated y_true."""
        return y

    def _row_weight(self, xp: Any, t: RowTarget, f: Array) -> Array | None:
        return t.keep

    def _hess_diag(self, xp: Any, t: Any, f: Array) -> Array:
        h = self._hess(xp, t, f)
        k = f.shape[-1]
        return xp.stack([h[:, i, i] for i in range(k)], axis=1)

    def _hvp(self, xp: Any, t: Any, f: Array, v: Array) -> Array:
        h = self._hess(xp, t, f)
        return xp.sum(h * v[:, None, :], axis=-1)

    # --- what verify samples ----------------------------------------------
    def _example_inputs(self, rng: np.random.Generator, n: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """Valid (y_true, y_pred) float64 samples: labels (or Dirichlet rows) and logits of mixed scale.

        Rows are shifted by a common offset in [-6, 6] (to reach negative log-partitions)
        and scaled by 1 or 4, so probabilities near 0 and 1 both occur.
        """
        k = self._fixed_classes() or k
        f = rng.normal(0.0, 1.5, (n, k)) * rng.choice([1.0, 4.0], (n, 1)) + rng.uniform(-6, 6, (n, 1))
        if self.accepts_labels:
            y = rng.integers(0, k, n).astype(float)
        else:
            y = rng.dirichlet(np.full(k, 0.7), n)
        return y, f

    def _fixed_classes(self) -> int | None:
        """The number of classes the parameters fix (class weights), or None."""
        return None

    def _vertex_targets(self, k: int) -> np.ndarray:
        """The extreme targets (every label, or every one-hot row) at which constants are reached."""
        return np.arange(k, dtype=float) if self.accepts_labels else np.eye(k)

    def _kink_gap(self, y: np.ndarray, f: np.ndarray) -> np.ndarray:
        """(N,) distance of each row to the nearest declared kink (inf for a smooth loss)."""
        return np.full(f.shape[0], np.inf)


def _fused_row_kernel(loss: RowLoss, ops: tuple[str, ...], y_true: Any, y_pred: Any, sample_weight: Any,
                      v: Any = None) -> Any:
    """The fused row kernel's result (:mod:`lossgrad.kernels`) for a large NumPy y_pred
    while ``use_kernels`` is on, or None (then the reference runs); ``ops == ("hvp",)``:
    the Hessian-vector product with ``v``."""
    if not isinstance(y_pred, np.ndarray) or y_pred.dtype not in (np.float32, np.float64):
        return None
    config = get_config()
    if not config.use_kernels or y_pred.size < config.kernel_threshold:
        return None
    global _kernels
    if _kernels is None:
        from . import kernels as _kernels  # Numba loads on the first call that needs it
    if ops == ("hvp",):
        return _kernels.evaluate_row_hvp(loss, y_true, y_pred, v, sample_weight)
    if not _kernels.row_kernel_supports(loss, ops):
        return None
    return _kernels.evaluate_row(loss, ops, y_true, y_pred, sample_weight)


_kernels: Any = None  # lossgrad.kernels once imported


def check_labels(xp: Any, y: Array, k: int, ignore: int | None) -> None:
    """y_true holds finite integer class labels in [0, k), or ``ignore`` (integer dtypes
    skip the finiteness and integrality checks, which they pass by construction)."""
    if xp.isdtype(y.dtype, "real floating"):
        V.check_finite(xp, y, "y_true")
        V.check_all(xp, y == xp.round(y), "y_true", "integer class labels")
    ok = (y >= 0) & (y < k)
    what = f"class labels in [0, {k - 1}] (y_pred has K={k} columns)"
    if ignore is not None:
        ok = ok | (y == ignore)
        what += f" or ignore_index={ignore}"
    V.check_all(xp, ok, "y_true", what)


def check_simplex_rows(xp: Any, p: Array, name: str) -> None:
    """Every entry in [0, 1] and every row summing to 1 within :func:`prob_tolerance`."""
    V.check_all(xp, (p >= 0) & (p <= 1), name, "probabilities in [0, 1]")
    tol = prob_tolerance(xp, p.dtype)
    s = xp.sum(p, axis=-1)
    if not bool(xp.all(xp.abs(s - 1.0) <= tol)):
        bad = int(xp.sum(xp.astype(xp.abs(s - 1.0) > tol, xp.int64)))
        raise ValueError(
            f"{name} must have rows that sum to 1 (probability distributions, tolerance {tol:g}); "
            f"{bad} row(s) do not"
        )
