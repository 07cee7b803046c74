r"""Multi-label classification: an independent sigmoid cross-entropy per column."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _validation as V
from .. import _xp
from .._props import Basis, Formula, Props
from .._registry import register
from .._row import RowLoss, RowTarget
from .multiclass import _as_array, _class_vector, _ClassVectorMixin

__all__ = ["Multilabel"]


@register("multilabel", "multilabel", variants=({"pos_weight": (2.0, 0.5, 1.0, 3.0)},))
@dataclass(frozen=True)
class Multilabel(_ClassVectorMixin, RowLoss):
    r"""Multi-label sigmoid cross-entropy: one binary cross-entropy per column, summed over the row.

    y_true (N, K) with entries in [0, 1] (each column its own label or probability; rows
    need not sum to 1), y_pred (N, K) logits, w = pos_weight per class (1 by default):

        l = sum_c [ w_c y_c softplus(-f_c) + (1 - y_c) softplus(f_c) ]
        grad_c = (1 - y_c) sigma(f_c) - w_c y_c sigma(-f_c)
        hess = diag((w_c y_c + 1 - y_c) sigma(f_c) sigma(-f_c))

    Convention: the value is the **sum over the K columns** of a row.  PyTorch's
    ``BCEWithLogitsLoss(pos_weight=w)`` with reduction "mean" averages over all N K
    elements, so it equals this loss's mean divided by K (``reduction="sum"`` agrees
    exactly).  Strictly convex (a positive diagonal Hessian), not strongly; smoothness
    max(1, max w) / 4; Lipschitz (l2)
    sqrt(sum_c max(1, w_c)^2) when pos_weight fixes K, otherwise None (sqrt(K) grows with K).

    >>> import numpy as np, lossgrad
    >>> float(lossgrad.Multilabel().value(np.array([[1.0, 0.0]]), np.array([[0.0, 0.0]]))[0]) == float(2 * np.log(2))
    True
    """

    pos_weight: tuple[float, ...] | None = None
    accepts_labels = False
    min_classes = 1
    _class_params = ("pos_weight",)
    _formula = Formula(
        r"\sum_c w_c y_c \log(1 + e^{-f_c}) + (1 - y_c) \log(1 + e^{f_c})",
        r"(1 - y) \sigma(f) - w y \sigma(-f)",
        r"\operatorname{diag}((w y + 1 - y) \sigma(f) \sigma(-f))",
        variable="f (logits, one row)",
    )

    def __post_init__(self) -> None:
        self._set("pos_weight", _class_vector(self._owner, "pos_weight", self.pos_weight))

    @property
    def props(self) -> Props:
        wmax = 1.0 if self.pos_weight is None else max(1.0, max(self.pos_weight))
        lip = None if self.pos_weight is None else math.sqrt(sum(max(1.0, w) ** 2 for w in self.pos_weight))
        return Props(convex=True, strictly_convex=True, lipschitz=lip, smoothness=wmax / 4.0, basis=Basis.LIKELIHOOD)

    def _check_probabilities(self, xp: Any, y: Any) -> None:
        V.check_all(xp, (y >= 0) & (y <= 1), "y_true", "per-column labels or probabilities in [0, 1]")

    def _wy(self, xp: Any, t: RowTarget, f: Any) -> Any:
        y = t.Y
        return y if self.pos_weight is None else y * _as_array(xp, self.pos_weight, f)[None, :]

    def _value(self, xp, t, f):
        wy = self._wy(xp, t, f)
        return xp.sum(wy * _xp.softplus(xp, -f) + (1.0 - t.Y) * _xp.softplus(xp, f), axis=-1)

    def _grad(self, xp, t, f):
        return (1.0 - t.Y) * _xp.sigmoid(xp, f) - self._wy(xp, t, f) * _xp.sigmoid(xp, -f)

    def _hess_diag(self, xp, t, f):
        e = xp.exp(-xp.abs(f))
        return (self._wy(xp, t, f) + 1.0 - t.Y) * (e / ((1.0 + e) * (1.0 + e)))

    def _hess(self, xp, t, f):
        import array_api_compat

        eye = xp.eye(f.shape[-1], dtype=f.dtype, device=array_api_compat.device(f))
        return eye[None, :, :] * self._hess_diag(xp, t, f)[:, None, :]

    def _hvp(self, xp, t, f, v):
        return self._hess_diag(xp, t, f) * v

    def _example_inputs(self, rng: np.random.Generator, n: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
        k = self._fixed_classes() or k
        y = np.where(rng.random((n, k)) < 0.7, rng.integers(0, 2, (n, k)).astype(float), rng.random((n, k)))
        return y, rng.normal(0.0, 3.0, (n, k))

    def _vertex_targets(self, k: int) -> np.ndarray:
        return np.array(list(itertools.product([0.0, 1.0], repeat=min(k, 10))))
