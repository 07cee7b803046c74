r"""Multi-class margin losses: Weston-Watkins and Crammer-Singer hinge, Keras' categorical hinge.

Piecewise linear in the scores f (N, K): the Hessian is zero wherever it exists; the
gradient jumps on the kinks, which are declared in the margin variable
t = margin + f_j - f_y (a term switches on at t = 0) and where two competing scores tie.
At a kink the gradient returns the left limit (a term at t = 0 counts as inactive) and
ties in a max go to the first index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _validation as V
from .._props import Basis, Formula, Kink, Props, Side
from .._registry import register
from .._row import RowLoss, RowTarget

__all__ = ["MulticlassHinge", "CategoricalHinge"]


def _device(x: Any) -> Any:
    import array_api_compat

    return array_api_compat.device(x)


def _first_argmax_onehot(xp: Any, x: Any) -> Any:
    k = x.shape[-1]
    idx = xp.argmax(x, axis=-1)
    cols = xp.arange(k, device=_device(x))
    return xp.astype(cols[None, :] == xp.astype(idx, cols.dtype)[:, None], x.dtype)


class _PiecewiseLinear(RowLoss):
    def _hess(self, xp: Any, t: RowTarget, f: Any) -> Any:
        return xp.zeros((f.shape[0], f.shape[1], f.shape[1]), dtype=f.dtype, device=_device(f))

    def _hess_diag(self, xp: Any, t: RowTarget, f: Any) -> Any:
        return xp.zeros_like(f)

    def _hvp(self, xp: Any, t: RowTarget, f: Any, v: Any) -> Any:
        return xp.zeros_like(f)


def _top2_gap(x: np.ndarray) -> np.ndarray:
    s = np.sort(x, axis=1)
    return s[:, -1] - s[:, -2] if x.shape[1] > 1 else np.full(x.shape[0], np.inf)


@register("multiclass_hinge", "multiclass", variants=({"kind": "crammer_singer"}, {"margin": 0.5}))
@dataclass(frozen=True)
class MulticlassHinge(_PiecewiseLinear):
    r"""Multi-class hinge loss on class labels, Weston-Watkins or Crammer-Singer.

    With m the margin and y the label:

    * ``kind="weston_watkins"`` (Weston & Watkins 1999): l = sum_{j != y} max(0, m + f_j - f_y);
      grad_j = 1{m + f_j - f_y > 0} (j != y), grad_y = -(number of active terms).
    * ``kind="crammer_singer"`` (Crammer & Singer 2001): l = max(0, m + max_{j != y} f_j - f_y);
      grad = e_{j*} - e_y when active (j* the first arg-max), else 0.  With m = 1 this is
      optax's ``multiclass_hinge_loss``.

    hess = 0 (piecewise linear).  Convex (a max of affine functions).  Lipschitz (l2):
    Crammer-Singer sqrt(2); Weston-Watkins sqrt(a + a^2) with a <= K - 1 active terms, which
    grows with K (declared None).

    >>> import numpy as np, lossgrad
    >>> ww = lossgrad.MulticlassHinge()
    >>> ww.value(np.array([0]), np.array([[1.0, 0.5, -2.0]]))
    array([0.5])
    """

    kind: str = "weston_watkins"
    margin: float = 1.0
    accepts_probabilities = False
    _formula = Formula(
        r"\sum_{j \ne y} \max(0, m + f_j - f_y)",
        r"g_j = \mathbf{1}\{m + f_j - f_y > 0\},\ g_y = -\textstyle\sum_{j\ne y} g_j",
        "0",
        variable="t = m + f_j - f_y (one row, label y)",
    )

    def __post_init__(self) -> None:
        self._set("kind", V.param_choice(self._owner, "kind", self.kind, ("weston_watkins", "crammer_singer")))
        self._set("margin", V.param_positive(self._owner, "margin", self.margin))

    @property
    def formula(self) -> Formula:
        if self.kind == "weston_watkins":
            return self._formula
        return Formula(r"\max(0, m + \max_{j \ne y} f_j - f_y)", r"\mathbf{1}\{\cdot > 0\}(e_{j^*} - e_y)", "0",
                       variable="t = m + max_{j != y} f_j - f_y (one row, label y)")

    @property
    def props(self) -> Props:
        lip = 2.0**0.5 if self.kind == "crammer_singer" else None
        return Props(convex=True, lipschitz=lip, smoothness=None, differentiability=0, basis=Basis.MARGIN)

    @property
    def kinks(self) -> tuple[Kink, ...]:
        return (Kink(0.0, 1, Side.LEFT),)

    def _margins(self, xp: Any, t: RowTarget, f: Any) -> tuple[Any, Any]:
        Y = t.Y
        fy = xp.sum(Y * f, axis=-1, keepdims=True)
        return self.margin + f - fy, Y

    def _evaluate(self, xp: Any, t: RowTarget, f: Any, ops: tuple[str, ...]) -> tuple[Any, ...]:
        if not set(ops) & {"value", "grad"}:
            return super()._evaluate(xp, t, f, ops)
        mg, Y = self._margins(xp, t, f)
        neg_inf = xp.full_like(mg, -float("inf"))
        if self.kind == "weston_watkins":
            act = xp.astype((mg > 0) & (Y == 0), f.dtype)
            val = xp.sum(act * mg, axis=-1)
            grad = act - Y * xp.sum(act, axis=-1, keepdims=True)
        else:
            others = xp.where(Y == 0, mg, neg_inf)
            top = xp.max(others, axis=-1)
            act = xp.astype(top > 0, f.dtype)
            val = act * top
            grad = act[:, None] * (_first_argmax_onehot(xp, others) - Y)
        res = {"value": val, "grad": grad}
        return tuple(res[o] if o in res else getattr(self, "_" + o)(xp, t, f) for o in ops)

    def _value(self, xp, t, f):
        return self._evaluate(xp, t, f, ("value",))[0]

    def _grad(self, xp, t, f):
        return self._evaluate(xp, t, f, ("grad",))[0]

    def _kink_gap(self, y: np.ndarray, f: np.ndarray) -> np.ndarray:
        n, k = f.shape
        Y = np.eye(k)[y.astype(int)]
        mg = self.margin + f - (Y * f).sum(axis=1, keepdims=True)
        others = np.where(Y == 0, mg, -np.inf)
        if self.kind == "weston_watkins":
            return np.min(np.where(Y == 0, np.abs(mg), np.inf), axis=1)
        top = others.max(axis=1)
        return np.minimum(np.abs(top), np.where(top > 0, _top2_gap(others), np.inf))


@register("categorical_hinge", "multiclass")
@dataclass(frozen=True)
class CategoricalHinge(_PiecewiseLinear):
    r"""Keras' categorical hinge: l = max(0, 1 + neg - pos), pos = sum_c y_c f_c, neg = max_c (1 - y_c) f_c.

    y_true: one-hot/probability rows (labels are turned into one-hot rows).  Keras' ``neg``
    takes the max over *all* classes of (1 - y_c) f_c, which is 0 at the true class of a
    one-hot target: for a label it is max(0, 1 + max(0, max_{j != y} f_j) - f_y), the
    Crammer-Singer hinge except where every other score is negative.
    grad = (1 - y_{j*}) e_{j*} - y when active (j* the first arg-max of (1 - y) f), else 0;
    hess = 0.  Convex; Lipschitz sqrt(2) (l2).

    >>> import numpy as np, lossgrad
    >>> lossgrad.CategoricalHinge().value(np.array([[0.0, 1.0]]), np.array([[0.3, 0.2]]))
    array([1.1])
    """

    _formula = Formula(
        r"\max(0, 1 + \max_c (1 - y_c) f_c - \textstyle\sum_c y_c f_c)",
        r"\mathbf{1}\{\cdot > 0\}((1 - y_{j^*}) e_{j^*} - y)",
        "0",
        variable="t = 1 + neg - pos (one row)",
    )

    @property
    def props(self) -> Props:
        return Props(convex=True, lipschitz=2.0**0.5, smoothness=None, differentiability=0, basis=Basis.MARGIN)

    @property
    def kinks(self) -> tuple[Kink, ...]:
        return (Kink(0.0, 1, Side.LEFT),)

    def _evaluate(self, xp: Any, t: RowTarget, f: Any, ops: tuple[str, ...]) -> tuple[Any, ...]:
        if not set(ops) & {"value", "grad"}:
            return super()._evaluate(xp, t, f, ops)
        Y = t.Y
        pos = xp.sum(Y * f, axis=-1)
        negv = (1.0 - Y) * f
        neg = xp.max(negv, axis=-1)
        m = 1.0 + neg - pos
        act = xp.astype(m > 0, f.dtype)
        J = _first_argmax_onehot(xp, negv)
        res = {"value": act * m, "grad": act[:, None] * ((1.0 - Y) * J - Y)}
        return tuple(res[o] if o in res else getattr(self, "_" + o)(xp, t, f) for o in ops)

    def _value(self, xp, t, f):
        return self._evaluate(xp, t, f, ("value",))[0]

    def _grad(self, xp, t, f):
        return self._evaluate(xp, t, f, ("grad",))[0]

    def _kink_gap(self, y: np.ndarray, f: np.ndarray) -> np.ndarray:
        Y = np.eye(f.shape[1])[y.astype(int)] if y.ndim == 1 else y
        negv = (1.0 - Y) * f
        m = 1.0 + negv.max(axis=1) - (Y * f).sum(axis=1)
        return np.minimum(np.abs(m), np.where(m > 0, _top2_gap(negv), np.inf))
