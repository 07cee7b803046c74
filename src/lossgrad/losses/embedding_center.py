r"""Center loss (Wen, Zhang, Li & Qiao 2016): pull each embedding towards its class center.

Inputs ``embeddings`` x (N, D), integer ``labels`` y (N,) in [0, C) and the class
``centers`` c (C, D); with per-sample weights w (ones when none are given), the value
per sample and the derivatives of F = sum_i w_i l_i are

    l_i = 1/2 ||x_i - c_{y_i}||^2,
    dF/dx_i = w_i (x_i - c_{y_i}),    dF/dc_j = -sum_{i: y_i = j} w_i (x_i - c_j).

F is a quadratic form in (x, c), so its Hessian is constant, with the D x D blocks

    (x_i, x_i) = w_i I,   (c_j, c_j) = (sum_{i: y_i = j} w_i) I,   (x_i, c_{y_i}) = -w_i I,

and every other block 0: along (dx, dc), with r_i = w_i (dx_i - dc_{y_i}),
H[v]_x = r and H[v]_c = -(sum of r_i over the samples of each class).  The per-sample
directional derivative is dl_i = (x_i - c_{y_i}) . (dx_i - dc_{y_i}).

Reference: Y. Wen, K. Zhang, Z. Li, Y. Qiao, A discriminative feature learning approach
for deep face recognition, ECCV 2016, eqs. (2)-(4) and Algorithm 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .. import _validation as V
from .._batch import BatchLoss
from .._props import Basis, Formula, Props
from .._registry import register
from . import _embedding_common as C

__all__ = ["CenterLoss"]


@register("center", "embedding")
@dataclass(frozen=True)
class CenterLoss(BatchLoss):
    r"""Center loss of Wen et al. (2016): half the squared distance of each embedding to its class center.

    l_i = 1/2 ||x_i - c_{y_i}||^2, so that sum_i l_i is the paper's
    L_C = 1/2 sum_i ||x_i - c_{y_i}||^2 (eq. 2) and ``reduction="mean"`` its mean over the
    batch.  Both ``embeddings`` and ``centers`` are differentiable:

    * gradient of F = sum_i w_i l_i:  dF/dx_i = w_i (x_i - c_{y_i}) (the paper's eq. 3),
      dF/dc_j = -sum_{i: y_i = j} w_i (x_i - c_j) (0 for a class without a sample);
    * Hessian (constant): blocks (x_i, x_i) = w_i I, (c_j, c_j) = (sum_{y_i = j} w_i) I,
      (x_i, c_{y_i}) = (c_{y_i}, x_i) = -w_i I.  It is the sum over samples of
      w_i [[I, -I], [-I, I]] on (x_i, c_{y_i}), each positive semidefinite, so F is convex
      jointly in (x, c) for non-negative weights (not strictly: moving x_i and c_{y_i}
      together leaves F unchanged).  ``hvp`` returns H v exactly; ``_item_jvp`` returns
      (x_i - c_{y_i}) . (dx_i - dc_{y_i}).  The Hessian's largest eigenvalue grows with the
      weight of a class, so no smoothness constant is declared.

    Other conventions: PyTorch re-implementations (KaiyangZhou/pytorch-center-loss and its
    many copies) return the batch mean of ||x_i - c_{y_i}||^2 without the 1/2, that is
    2 x this loss with ``reduction="mean"``; they expand the distance as
    ||x||^2 + ||c||^2 - 2 x . c (cancellation for nearby x and c) and clamp every entry of
    the masked N x C distance matrix to [1e-12, 1e12], which adds (C - 1) 1e-12 and stops
    the gradient of pairs farther than 1e6 apart.  lossgrad uses the plain difference.
    Finiteness: the value is finite while ||x_i - c_{y_i}||^2 / 2 is representable
    (entries below ~1e154 in float64, ~1e19 in float32); beyond that the true value
    exceeds the largest float and is returned as inf.

    The paper does not follow the gradient on the centers: its mini-batch update
    (eq. 4, Algorithm 1) is :meth:`update_centers`.

    Inputs: embeddings (N, D), labels (N,) integers in [0, C), centers (C, D); value (N,).
    Reference: Y. Wen, K. Zhang, Z. Li, Y. Qiao, A discriminative feature learning approach
    for deep face recognition, ECCV 2016.

    >>> import numpy as np, lossgrad
    >>> loss = lossgrad.get("center")
    >>> x = np.array([[1.0, 2.0], [3.0, 3.0]]); c = np.array([[0.0, 0.0], [1.0, 1.0]])
    >>> loss.value(embeddings=x, labels=[0, 1], centers=c)
    array([2.5, 4. ])
    >>> loss.grad(embeddings=x, labels=[0, 1], centers=c)["centers"]
    array([[-1., -2.],
           [-2., -2.]])
    >>> loss.update_centers(embeddings=x, labels=[0, 1], centers=c, alpha=0.5)
    array([[0.25, 0.5 ],
           [1.5 , 1.5 ]])
    """

    inputs: ClassVar[tuple[str, ...]] = ("embeddings", "labels", "centers")
    differentiable: ClassVar[tuple[str, ...]] = ("embeddings", "centers")
    has_hvp: ClassVar[bool] = True
    _formula = Formula(
        r"\tfrac12 \lVert x_i - c_{y_i} \rVert^2",
        r"\partial l_i/\partial x_i = x_i - c_{y_i},\quad \partial l_i/\partial c_{y_i} = -(x_i - c_{y_i})",
        r"\nabla^2_{(x_i, c_{y_i})}\, l_i = \begin{pmatrix} I & -I \\ -I & I \end{pmatrix},\ "
        r"\text{so } \nabla^2_{c_j c_j} \textstyle\sum_i w_i l_i = \big(\sum_{y_i = j} w_i\big) I",
        "x_i embedding, c_{y_i} the center of its class",
    )
    references: ClassVar[tuple[str, ...]] = ("Wen, Zhang, Li & Qiao (2016), center loss, ECCV",)

    @property
    def props(self) -> Props:
        return Props(convex=True, differentiability=2, basis=Basis.OTHER)

    # --- inputs -----------------------------------------------------------------
    def _prepare(self, inputs, sample_weight):
        xp, a = self._coerce_inputs(inputs, {"embeddings": 2, "centers": 2})
        x, c = a["embeddings"], a["centers"]
        C.check_class_rows(self, x, c, "centers")
        n_classes = int(c.shape[0])
        y = self._class_labels(xp, inputs["labels"], "labels", x, int(x.shape[0]))
        V.check_all(xp, (y >= 0) & (y < n_classes), f"{self.name}: input labels",
                    f"class labels in [0, {n_classes}) (the number of rows of centers)")
        w = self._item_weight(xp, sample_weight, tuple(x.shape[:1]), x)
        return xp, {"embeddings": x, "labels": y, "centers": c}, w

    def _residual(self, xp, d):
        """x_i - c_{y_i}, (N, D)."""
        return d["embeddings"] - xp.take(d["centers"], d["labels"], axis=0)

    def _per_class(self, xp, d, rows):
        """(C, D): the sum of ``rows`` (N, D) over the samples of each class (0 for an empty class)."""
        member = C.as_float(xp, C.onehot(xp, d["labels"], int(d["centers"].shape[0]), rows), rows)
        return xp.matrix_transpose(member) @ rows

    # --- value and derivatives -------------------------------------------------------
    def _value(self, xp, d):
        r = self._residual(xp, d)
        return 0.5 * xp.sum(r * r, axis=1)

    def _value_grad(self, xp, d, w):
        r = self._residual(xp, d)
        v = 0.5 * xp.sum(r * r, axis=1)
        gx = r if w is None else w[:, None] * r
        return C.weighted(xp, v, w), {"embeddings": gx, "centers": -self._per_class(xp, d, gx)}

    def _hvp(self, xp, d, w, v):
        dx = self._direction(xp, v, "embeddings", d["embeddings"])
        dc = self._direction(xp, v, "centers", d["centers"])
        moved = dx - xp.take(dc, d["labels"], axis=0)
        hx = moved if w is None else w[:, None] * moved
        return {"embeddings": hx, "centers": -self._per_class(xp, d, hx)}

    def _item_jvp(self, xp, d, v):
        dx = self._direction(xp, v, "embeddings", d["embeddings"])
        dc = self._direction(xp, v, "centers", d["centers"])
        return xp.sum(self._residual(xp, d) * (dx - xp.take(dc, d["labels"], axis=0)), axis=1)

    # --- the paper's center update -------------------------------------------------------
    def update_centers(self, embeddings: Any, labels: Any, centers: Any, alpha: float = 0.5) -> Any:
        r"""The centers after one mini-batch update of Wen et al. (eq. 4 and Algorithm 1).

        With n_j = #{i : y_i = j} the number of samples of class j in the batch,

            Delta c_j = sum_{i: y_i = j} (c_j - x_i) / (1 + n_j),   c_j <- c_j - alpha Delta c_j,

        that is c_j <- c_j + alpha n_j / (1 + n_j) (mean_j - c_j), mean_j the batch mean of
        class j: each center moves a fraction alpha n_j / (1 + n_j) < 1 of the way towards
        its class's batch mean; a class without a sample (n_j = 0) stays put, and centers
        equal to their class means are a fixed point.

        Unlike a gradient step: the gradient of the summed loss is
        dL_C/dc_j = sum_{i: y_i = j} (c_j - x_i) = n_j (c_j - mean_j), so a step of rate lr
        moves c_j by lr n_j (c_j - mean_j), a step growing with the class's count that
        overshoots the mean once lr n_j > 1.  The paper divides by 1 + n_j instead (the 1
        keeps an empty class's step 0 / 1), which is a gradient step with the per-class
        rate alpha / (1 + n_j).  ``alpha`` in (0, 1] is the paper's center learning rate.
        Sample weights are not part of the rule and are not taken.

        Returns a new (C, D) array of the inputs' library and dtype; the inputs are not
        modified.  The inputs are validated as for the loss.

        >>> import numpy as np, lossgrad
        >>> x = np.array([[2.0, 0.0], [4.0, 0.0]])
        >>> lossgrad.get("center").update_centers(x, [0, 0], np.zeros((2, 2)), alpha=1.0)
        array([[2., 0.],
               [0., 0.]])
        """
        alpha = V.param_in_interval(f"{self._owner}.update_centers", "alpha", alpha, 0.0, 1.0, closed="right")
        xp, d, _ = self._prepare_batch({"embeddings": embeddings, "labels": labels, "centers": centers}, None)
        c = d["centers"]
        ones = xp.ones((int(d["embeddings"].shape[0]), 1), dtype=c.dtype, device=C.device(c))
        count = self._per_class(xp, d, ones)  # (C, 1): n_j
        delta = (count * c - self._per_class(xp, d, d["embeddings"])) / (1.0 + count)
        return c - alpha * delta

    # --- what verify samples ------------------------------------------------------------
    def _example_inputs(self, rng):
        """8 samples of 5 classes in 4 dimensions; class 4 has no sample (its gradient is 0)."""
        labels = rng.permutation(np.array([0, 0, 0, 1, 1, 2, 2, 3]))
        centers = rng.normal(size=(5, 4))
        return {"embeddings": centers[labels] + rng.normal(scale=0.8, size=(8, 4)), "labels": labels,
                "centers": centers}

    def _extreme_inputs(self, rng):
        """Embeddings at 1e150 and centers at 1e-200: the value (~1e300) stays below the largest
        float64 (1.8e308); at 1e200 the true value ~1e400 would not be representable."""
        ex = self._example_inputs(rng)
        return {"embeddings": 1e150 * ex["embeddings"], "labels": ex["labels"], "centers": 1e-200 * ex["centers"]}
