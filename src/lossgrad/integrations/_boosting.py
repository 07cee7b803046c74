r"""What XGBoost and LightGBM need from a loss: per-sample (grad, hess) and a starting score.

A gradient-boosting tree is fitted to a second-order expansion of the loss: leaf value
-sum(g) / (sum(h) + lambda), split gain from the same sums, and splits refused when a
child's sum(h) is below ``min_child_weight`` (XGBoost) / ``min_sum_hessian_in_leaf``
(LightGBM).  So the Hessian handed to the engine decides both the step length and
which splits exist.  :class:`Hessian` names the choices (see ``docs/engines.md``):

``exact``
    The exact second derivative ``loss.hess`` (row losses: the diagonal of the exact
    Hessian, ``hess_diag``: engines take one number per output).  Where it is zero
    (Huber beyond delta, absolute and quantile losses everywhere, hinge) the trees
    stall: a leaf of outliers has sum(h) = 0 < min_child_weight and is never split,
    and its value -sum(g)/lambda is governed by the regularisation alone
    (dmlc/xgboost #2602, #7674).
``floor``
    max(exact, floor): the exact Hessian where it is informative, ``floor`` where it
    vanishes.  Keeps every split admissible; with a small floor the steps of
    zero-curvature leaves become -sum(g)/(n floor + lambda), i.e. large.
``expected``
    The expected (Fisher) Hessian: the exact Hessian with y_true replaced by the
    value the prediction estimates.  Residual losses (basis "distance"): psi'(0), the
    curvature at a perfect fit, a constant (Huber and pseudo-Huber: 1, i.e. exactly
    LightGBM's built-in ``huber``); likelihood losses (GLM deviances, BCE): the
    Hessian at the mean mu(f), found as the root in y of the gradient, which is affine
    in y for these losses (gamma deviance with log link: a constant); refused for a
    likelihood loss whose gradient is not affine in y (focal).  Not defined for
    margin and row losses.
``upper_bound``
    A majoriser: pointwise losses, the smoothness constant sup|hess|
    (``loss.props.smoothness``: squared error 2, Huber 1, logistic 1/4), a constant;
    row losses, the diagonal majoriser of the exact Hessian by its absolute row sums,
    D_kk = sum_j |H_kj| (D - H is diagonally dominant, hence positive semi-definite).
    For softmax cross-entropy D_kk = 2 p_k (1 - p_k): XGBoost's ``multi:softprob``.

``hessian_scale`` multiplies the chosen Hessian (LightGBM's ``multiclass`` uses
K/(K-1) p(1-p), i.e. ``hessian="exact", hessian_scale=K/(K-1)``).

Ranking losses (ListNet, RankNet, LambdaLoss, XE-NDCG, ApproxNDCG) take the query groups as well:
one list per group, per-document (grad, hess) from the diagonal of each list's exact
Hessian block (:mod:`lossgrad.integrations._boosting_ranking`).
"""

from __future__ import annotations

import enum
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core import Loss, Scaled
from .._props import Basis, Shape
from . import _boosting_ranking as R

__all__ = ["Hessian", "BoostingObjective", "fit_intercept_only", "as_boosting_loss"]


class Hessian(str, enum.Enum):
    """The second-order information handed to a boosting engine (module docstring)."""

    EXACT = "exact"
    FLOOR = "floor"
    EXPECTED = "expected"
    UPPER_BOUND = "upper_bound"

    @classmethod
    def parse(cls, value: Any) -> Hessian:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"hessian must be one of 'exact', 'floor', 'expected', 'upper_bound'; got {value!r}"
            ) from None


def as_boosting_loss(loss: Any) -> Loss:
    """A pointwise, row or ranking lossgrad loss with a gradient and a Hessian (a name is looked up)."""
    if isinstance(loss, str):
        from .._registry import get

        loss = get(loss)
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a lossgrad loss or a registered name, got {type(loss).__name__}")
    if loss.shape is Shape.BATCH and not R.is_ranking(loss):
        raise TypeError(
            f"loss {loss.name} is a batch loss (named inputs); boosting engines take pointwise losses "
            "(one score per sample), row losses (K scores per sample) or ranking losses (query groups)"
        )
    props = loss.props
    if not (props.has_grad and props.has_hess):
        raise ValueError(
            f"loss {loss.name} declares no gradient/Hessian (props.has_grad={props.has_grad}, "
            f"has_hess={props.has_hess}); a boosting engine needs both"
        )
    return loss


def _base(loss: Loss) -> Loss:
    return loss.loss if isinstance(loss, Scaled) else loss


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < float(value) < math.inf):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class BoostingObjective:
    """(grad, hess) of a loss for a boosting engine; shared by the XGBoost and LightGBM adapters.

    Parameters
    ----------
    loss:
        A pointwise, row or ranking lossgrad loss (or a registered name) with grad and hess.
    hessian:
        One of :class:`Hessian` ("exact", "floor", "expected", "upper_bound").
    floor:
        The lower bound of ``hessian="floor"``.
    hessian_scale:
        A positive factor on the Hessian (engine conventions, e.g. K/(K-1)).
    """

    loss: Any
    hessian: Any = "exact"
    floor: float = 1e-6
    hessian_scale: float = 1.0

    def __post_init__(self) -> None:
        loss = as_boosting_loss(self.loss)
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "hessian", Hessian.parse(self.hessian))
        object.__setattr__(self, "floor", _positive("floor", self.floor))
        object.__setattr__(self, "hessian_scale", _positive("hessian_scale", self.hessian_scale))
        props, h = loss.props, self.hessian
        if h is Hessian.UPPER_BOUND and loss.shape is Shape.POINTWISE and props.smoothness is None:
            raise ValueError(
                f"hessian='upper_bound' needs a bounded Hessian, but {loss.name} declares smoothness=None "
                "(its curvature is unbounded or infinite at a kink); use 'exact', 'floor' or 'expected'"
            )
        if h is Hessian.EXPECTED and R.is_ranking(loss):
            raise ValueError(f"hessian='expected' is not defined for the ranking loss {loss.name}; "
                             "use 'exact', 'floor' or 'upper_bound'")
        rng = np.random.default_rng(loss.seed) if R.is_ranking(loss) and hasattr(loss, "draw_gamma") else None
        object.__setattr__(self, "_gamma_rng", rng)  # XE-NDCG: a fresh gamma every round
        if h is Hessian.EXPECTED:
            if loss.shape is Shape.ROW or props.basis not in (Basis.DISTANCE, Basis.LIKELIHOOD):
                raise ValueError(
                    f"hessian='expected' is defined for residual (distance) and likelihood losses; {loss.name} "
                    f"is a {loss.shape.value} loss with basis {props.basis.value}; use 'exact', 'floor' or 'upper_bound'"
                )
            if props.basis is Basis.LIKELIHOOD and not _affine_in_target(loss):
                raise ValueError(
                    f"hessian='expected' of {loss.name} is undefined here: its gradient is not affine in y_true, "
                    "so the mean target mu(f) and E[hess] do not follow from the closed forms; use 'exact' or 'floor'"
                )
            if props.basis is Basis.DISTANCE:
                h0 = float(loss.hess(np.zeros(1), np.zeros(1))[0])
                if not h0 > 0:
                    raise ValueError(
                        f"hessian='expected' of {loss.name} is psi'(0) = {h0:g}: no curvature at a perfect fit; "
                        "use hessian='floor'"
                    )

    @property
    def is_row(self) -> bool:
        return self.loss.shape is Shape.ROW

    @property
    def is_ranking(self) -> bool:
        return R.is_ranking(self.loss)

    def grad_hess(self, y_true: Any, y_pred: Any, sample_weight: Any = None,
                  group: Any = None, *, group_pointers: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample (grad, hess) of the shape of ``y_pred`` (float64), weights applied.

        ``group``: the query groups of a ranking loss, as sizes (LightGBM) or, with
        ``group_pointers``, as boundaries (XGBoost's group_ptr); ignored by other losses.
        """
        f = np.asarray(y_pred, dtype=np.float64)
        y = np.asarray(y_true)
        w = None if sample_weight is None or np.size(sample_weight) == 0 else np.asarray(sample_weight, dtype=np.float64)
        if self.is_ranking:
            sizes = R.group_sizes(group, f.size, pointers=group_pointers)
            g, H = R.ranking_grad_hess(self.loss, self.hessian.value, self.floor, y, f, w, sizes, self._gamma_rng)
            return g.reshape(f.shape), (H * self.hessian_scale).reshape(f.shape)
        if self.is_row:
            if f.ndim != 2:
                raise ValueError(
                    f"the row loss {self.loss.name} needs (n_samples, n_classes) predictions, got shape {f.shape}; "
                    "set num_class (XGBoost/LightGBM) to the number of classes"
                )
            y = y.reshape(-1) if y.size == f.shape[0] else y.reshape(f.shape)
            return self._row(y, f, w)
        if y.size == f.size and y.shape != f.shape:
            y = y.reshape(f.shape)  # engines hand multi-target labels flattened
        if w is not None and f.ndim == 2 and w.ndim == 1:
            w = np.broadcast_to(w[:, None], f.shape)
        return self._pointwise(y, f, w)

    def _pointwise(self, y: np.ndarray, f: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        loss, h = self.loss, self.hessian
        if h is Hessian.EXACT or h is Hessian.FLOOR:
            g, H = loss.grad_hess(y, f)
            if h is Hessian.FLOOR:
                H = _floored(H, self.floor)
        elif h is Hessian.UPPER_BOUND:
            g = loss.grad(y, f)
            H = np.full(f.shape, float(loss.props.smoothness))
        elif loss.props.basis is Basis.DISTANCE:
            g = loss.grad(y, f)
            H = np.asarray(loss.hess(f, f), dtype=np.float64)  # r = 0
        else:
            g = loss.grad(y, f)
            H = np.asarray(loss.hess(_mean_target(loss, f), f), dtype=np.float64)
        return self._finish(np.asarray(g, dtype=np.float64), np.asarray(H, dtype=np.float64), w)

    def _row(self, y: np.ndarray, f: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        loss, h = self.loss, self.hessian
        if h is Hessian.UPPER_BOUND:
            g, H = loss.grad_hess(y, f)
            H = np.sum(np.abs(H), axis=-1)
        else:
            g, H = loss.grad_hess_diag(y, f)  # one pass through a row kernel where one serves it
            if h is Hessian.FLOOR:
                H = _floored(H, self.floor)
        if w is not None:
            w = w[:, None]
        return self._finish(np.asarray(g, dtype=np.float64), np.asarray(H, dtype=np.float64), w)

    def _finish(self, g: np.ndarray, H: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if self.hessian_scale != 1.0:
            H = H * self.hessian_scale
        if w is not None:
            g, H = g * w, H * w
        return g, H

    def value(self, y_true: Any, y_pred: Any, sample_weight: Any = None,
              group: Any = None, *, group_pointers: bool = False) -> float:
        """The weighted mean loss (the engines' metric); per query group for a ranking loss."""
        f = np.asarray(y_pred, dtype=np.float64)
        y = np.asarray(y_true)
        if self.is_ranking:
            w = None if sample_weight is None or np.size(sample_weight) == 0 else sample_weight
            return R.ranking_value(self.loss, y, f, w, R.group_sizes(group, f.size, pointers=group_pointers))
        if self.is_row:
            y = y.reshape(-1) if y.size == f.shape[0] else y.reshape(f.shape)
        elif y.size == f.size:
            y = y.reshape(f.shape)
        w = None if sample_weight is None or np.size(sample_weight) == 0 else np.asarray(sample_weight, dtype=np.float64)
        if w is not None and not self.is_row and f.ndim == 2:
            w = np.broadcast_to(w[:, None], f.shape)
        return float(self.loss(y, f, sample_weight=w))


def _floored(H: Any, floor: float) -> np.ndarray:
    """max(H, floor), in place when H is a float64 array of our own (the loss returns new
    arrays): a new 8 MB array per call at 10^6 predictions costs its page faults."""
    if isinstance(H, np.ndarray) and H.dtype == np.float64 and H.flags.writeable:
        return np.maximum(H, floor, out=H)
    return np.maximum(np.asarray(H, dtype=np.float64), floor)


def _affine_in_target(loss: Loss) -> bool:
    """Are grad and hess affine in y_true (GLM deviances, cross-entropy)?  Then the Hessian at
    the mean target mu(f) is the expected Hessian E_y[hess(y, f)]."""
    from .._config import config_context

    f = np.array([-1.3, -0.2, 0.4, 1.7])
    ys = [np.full_like(f, v) for v in (0.0, 0.25, 1.0)]
    with config_context(assume_valid=True), np.errstate(all="ignore"):
        for method in (loss.grad, loss.hess):
            a, b, c = (np.asarray(method(y, f), dtype=np.float64) for y in ys)
            if not np.allclose(b, 0.75 * a + 0.25 * c, rtol=1e-9, atol=1e-12):
                return False
    return True


def _mean_target(loss: Loss, f: np.ndarray) -> np.ndarray:
    """mu(f): the y with grad(y, f) = 0, for a gradient affine in y (likelihood losses)."""
    from .._config import config_context

    with config_context(assume_valid=True):  # y = 0 or 1 may sit outside the target domain
        g0 = np.asarray(loss.grad(np.zeros_like(f), f), dtype=np.float64)
        g1 = np.asarray(loss.grad(np.ones_like(f), f), dtype=np.float64)
    return -g0 / (g1 - g0)


# ------------------------------------------------------------------ intercept


def fit_intercept_only(
    loss: Any, y_true: Any, sample_weight: Any = None, *, n_classes: int | None = None, tol: float = 1e-12
) -> Any:
    """The constant raw score minimising the weighted mean loss: float (pointwise) or (K,) (row).

    Pointwise: the root of G(c) = sum_i w_i grad(y_i, c), bracketed by stepping out from
    a start point (the weighted median of y_true for residual losses, 0 otherwise) and
    refined by safeguarded Newton steps with the exact sum of Hessians (bisection where
    the Hessian vanishes, as for the absolute error).  Row losses: damped Newton on the
    K-vector with the summed exact Hessians (pseudo-inverse: softmax losses are
    invariant to a common shift) and a backtracking line search on the loss.

    Ranking losses: 0.0 (a constant shift of a list's scores changes nothing).

    Raises ValueError when the infimum is not attained (e.g. logistic loss with one class).
    """
    loss = as_boosting_loss(loss)
    y = np.asarray(y_true)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if y.size == 0:
        raise ValueError("y_true is empty: no intercept to fit")
    if R.is_ranking(loss):
        return 0.0  # a ranking loss is invariant to a constant shift of the scores: every constant is optimal
    if loss.shape is Shape.ROW:
        return _fit_row(loss, y, w, n_classes, tol)
    return _fit_scalar(loss, y.astype(np.float64), w, tol)


def _fit_scalar(loss: Loss, y: np.ndarray, w: np.ndarray | None, tol: float) -> float:
    y = y.reshape(-1)
    wt = np.ones_like(y) if w is None else np.broadcast_to(w.reshape(-1) if w.size == y.size else w, y.shape)

    def G(c: float) -> float:
        return float(np.sum(wt * loss.grad(y, np.full_like(y, c))))

    def H(c: float) -> float:
        return float(np.sum(wt * loss.hess(y, np.full_like(y, c))))

    loss.grad(y, y)  # validates y_true (domain, finiteness) with a clear message
    if _base(loss).props.basis is Basis.DISTANCE:
        order = np.argsort(y)
        cw = np.cumsum(wt[order])
        c0 = float(y[order][np.searchsorted(cw, 0.5 * cw[-1])])
        scale = max(1.0, float(np.max(np.abs(y - c0))))
    else:
        c0, scale = 0.0, 1.0
    g0 = G(c0)
    if g0 == 0.0:
        return c0
    # step out until the gradient sum changes sign
    step, lo, hi = scale, c0, c0
    likelihood = _base(loss).props.basis is not Basis.DISTANCE
    for _ in range(80):
        c = c0 - step if g0 > 0 else c0 + step
        gc = G(c)
        if gc == 0.0 and likelihood and step > 100.0 and H(c) == 0.0:
            # no sign change, only an underflow to 0 far out (e.g. logistic loss with one class)
            break
        if (gc > 0) != (g0 > 0) or gc == 0.0:
            lo, hi = (c, c0) if g0 > 0 else (c0, c)
            break
        step *= 2.0
    if lo == hi:
        raise ValueError(
            f"the intercept of {loss.name} is not attained (the loss keeps decreasing as the constant "
            "goes to infinity, e.g. a single class); pass base_score/init_score yourself"
        )
    c = 0.5 * (lo + hi)
    for _ in range(200):
        g = G(c)
        if g == 0.0:
            return c
        if g > 0:
            hi = c
        else:
            lo = c
        h = H(c)
        nxt = c - g / h if h > 0 else 0.5 * (lo + hi)
        if not (lo < nxt < hi):
            nxt = 0.5 * (lo + hi)
        if abs(nxt - c) <= tol * max(1.0, abs(c)) or hi - lo <= tol * max(1.0, abs(c)):
            return float(nxt)
        c = nxt
    return float(c)


def _fit_row(loss: Loss, y: np.ndarray, w: np.ndarray | None, n_classes: int | None, tol: float) -> np.ndarray:
    n = y.shape[0]
    if y.ndim == 2:
        k = y.shape[1]
    elif n_classes is not None:
        k = int(n_classes)
    else:
        k = int(np.max(y)) + 1
    k = max(k, 2)
    c = np.zeros(k)

    def total(c: np.ndarray) -> float:
        return float(loss(y, np.broadcast_to(c, (n, k)), sample_weight=w, reduction="sum"))

    current = total(c)
    for _ in range(100):
        F = np.broadcast_to(c, (n, k))
        g = np.sum(loss.grad(y, F, sample_weight=w), axis=0)
        Hm = np.sum(loss.hess(y, F, sample_weight=w), axis=0)
        step = -np.linalg.pinv(Hm, rcond=1e-12, hermitian=True) @ g
        if not np.all(np.isfinite(step)) or float(step @ g) >= 0:
            step = -g
        t = 1.0
        while t > 1e-10:
            trial = total(c + t * step)
            if trial <= current:
                break
            t *= 0.5
        c_new = c + t * step
        done = np.max(np.abs(c_new - c)) <= 1e3 * tol * max(1.0, float(np.max(np.abs(c))))
        c, current = c_new, min(trial, current)
        if done or np.max(np.abs(g)) <= tol * max(1.0, float(n)):
            break
    return c - np.mean(c) if _shift_invariant(loss, y, k) else c


def _shift_invariant(loss: Loss, y: np.ndarray, k: int) -> bool:
    """Does adding a constant to every score leave the loss unchanged (softmax losses)?"""
    f = np.linspace(-1.0, 1.0, k)[None, :]
    y1 = y[:1]
    a = float(loss(y1, f, reduction="sum"))
    b = float(loss(y1, f + 0.7, reduction="sum"))
    return abs(a - b) <= 1e-12 * max(1.0, abs(a))
