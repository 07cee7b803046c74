r"""Supervised contrastive loss (Khosla et al. 2020): every same-label sample of the batch is a positive.

Inputs ``embeddings`` x (N, D) and integer ``labels`` y (N,).  With u_i = x_i / ||x_i||,
S_ij = u_i . u_j / temperature, the positives P(i) = {p != i : y_p = y_i} and the soft
target t_ij = 1/|P(i)| on P(i) (0 elsewhere), the value per anchor is the paper's
L^sup_out term

    l_i = log sum_{a != i} exp S_ia - sum_j t_ij S_ij
        = -1/|P(i)| sum_{p in P(i)} log( exp S_ip / sum_{a != i} exp S_ia ),

and l_i = 0 for an anchor without a positive (a label seen once in the batch).

It is a row-wise cross-entropy with the soft target t over the logits S with the
diagonal masked, so with the row softmax p (p_ii = 0) and the per-anchor weights
w'_i = w_i [|P(i)| > 0], F = sum_i w_i l_i has dF/dS = A = w' (p - t) and, S being
U U^T / temperature,

    dF/dU = (A + A^T) U / temperature,   dF/dx_i = (g_i - (g_i . u_i) u_i) / ||x_i||.

Second order along dX (pieces in :mod:`._softmax_embedding_second`): dU = P dX with
P = (I - u u^T) / ||x|| per row, dS = (dU U^T + U dU^T) / temperature, dA = w' p * (dS -
sum_j p_j dS_j) (the softmax Jacobian, row by row), and

    H[v] = P ((dA + dA^T) U + (A + A^T) dU) / temperature + dP[v] ((A + A^T) U / temperature),

dP[v] g the curvature of normalisation (:func:`._embedding_common.normalize_second`).
The per-anchor directional derivative is dl_i = [|P(i)| > 0] sum_j (p_ij - t_ij) dS_ij.
Cost: a few N x N x D products, the order of the gradient.

Reference: Khosla, Teterwak, Wang, Sarna, Tian, Isola, Maschinot, Liu & Krishnan (2020),
Supervised contrastive learning, NeurIPS, eq. 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import _validation as V
from .._batch import BatchLoss
from .._props import Basis, Formula, Props
from .._registry import register
from . import _embedding_common as C
from . import _softmax_embedding_second as S2

__all__ = ["SupCon"]


@register("supcon", "embedding", variants=({"temperature": 0.5},))
@dataclass(frozen=True)
class SupCon(BatchLoss):
    r"""Supervised contrastive loss (SupCon, Khosla et al. 2020), the L^sup_out form.

    l_i = log sum_{a != i} exp(S_ia) - mean_{p in P(i)} S_ip with S_ij = cos(x_i, x_j) /
    temperature and P(i) the other samples of anchor i's label; 0 for an anchor whose
    label occurs once in the batch.  Several augmented views of a sample are rows of
    ``embeddings`` that share its label (stack the views, repeat the labels).

    * gradient of F = sum_i w_i l_i: A = w' (softmax_{a != i}(S_i) - t_i) row by row
      (w'_i = w_i, 0 without a positive; t_i the uniform distribution over P(i)),
      dF/du = (A + A^T) U / temperature, then dF/dx = (g - (g . u) u) / ||x||;
    * Hessian-vector product (exact, no N D x N D matrix): along dX, dU = P dX,
      dS = (dU U^T + U dU^T) / temperature, dA = w' p * (dS - <p, dS>) per row,
      H[v] = P ((dA + dA^T) U + (A + A^T) dU) / temperature + dP[dX] (dF/du).

    With labels 0..N-1 repeated over two views, P(i) is the other view of sample i and
    l_i is SimCLR's NT-Xent term of view i: the mean of l over the two views of a pair is
    ``info_nce(symmetric=True)`` (a test holds them equal).

    Conventions of the peers: the authors' code (HobbitLong/SupContrast ``SupConLoss``,
    ``contrast_mode="all"``) returns (temperature / base_temperature) times the mean of
    l over all N anchors (the factor is 1 at its defaults 0.07 / 0.07); anchors without a
    positive contribute 0 there too.  pytorch-metric-learning's ``SupConLoss`` averages
    over the anchors that have a positive only.  The paper's experiments use
    temperature 0.1; the authors' code defaults to 0.07 (also lossgrad's default).

    Inputs: embeddings (N, D) with N >= 2 and no zero row, labels (N,) integers (any
    values: only equality matters); value (N,).
    Reference: Khosla et al. (2020), Supervised contrastive learning, NeurIPS.

    >>> import numpy as np, lossgrad
    >>> x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> np.round(lossgrad.get("supcon", temperature=1.0).value(embeddings=x, labels=[0, 0, 1]), 6)
    array([0.313262, 0.313262, 0.      ])
    """

    temperature: float = 0.07
    inputs: ClassVar[tuple[str, ...]] = ("embeddings", "labels")
    differentiable: ClassVar[tuple[str, ...]] = ("embeddings",)
    has_hvp: ClassVar[bool] = True
    _formula = Formula(
        r"\log\sum_{a\ne i} e^{S_{ia}} - \frac{1}{|P(i)|}\sum_{p\in P(i)} S_{ip},\ S_{ij} = \cos(x_i, x_j)/\tau",
        r"\partial F/\partial S = A = w'(\mathrm{softmax}_{a\ne i}(S) - T),\ "
        r"\partial F/\partial U = (A + A^\top) U/\tau",
        r"H[v] = P\,((\dot A + \dot A^\top) U + (A + A^\top)\dot U)/\tau + \dot P[v]\,(A + A^\top)U/\tau,\ "
        r"\dot A = w'\,p \odot (\dot S - \langle p, \dot S\rangle),\ \dot S = (\dot U U^\top + U \dot U^\top)/\tau,\ "
        r"\dot U = P v",
        "x embeddings, T_{ij} = 1/|P(i)| on the positives of anchor i")
    references: ClassVar[tuple[str, ...]] = ("Khosla et al. (2020), Supervised contrastive learning, NeurIPS",)

    def __post_init__(self) -> None:
        self._set("temperature", V.param_positive(self._owner, "temperature", self.temperature))

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=2, basis=Basis.OTHER)

    # --- inputs -----------------------------------------------------------------
    def _prepare(self, inputs, sample_weight):
        xp, a = self._coerce_inputs(inputs, {"embeddings": 2})
        x = a["embeddings"]
        n = int(x.shape[0])
        if n < 2:
            raise ValueError(f"{self.name}: needs at least 2 embeddings (the other samples of the batch are the "
                             f"contrast set); got {tuple(x.shape)}")
        C.check_nonzero_rows(self, xp, C.row_norm(xp, x), "embeddings")
        y = self._class_labels(xp, inputs["labels"], "labels", x, n)
        return xp, {"embeddings": x, "labels": y}, self._item_weight(xp, sample_weight, (n,), x)

    def _pieces(self, xp, d):
        """(u, ||x||, soft target T, has-a-positive 0/1, l, softmax) of the batch."""
        x, y = d["embeddings"], d["labels"]
        u, nx = C.normalize(xp, x)
        scores = (u @ xp.matrix_transpose(u)) / self.temperature
        self_mask = C.eye(xp, int(x.shape[0]), x)
        positive = (y[:, None] == y[None, :]) & ~self_mask
        count = xp.sum(C.as_float(xp, positive, x), axis=1)
        has_pos = C.as_float(xp, count > 0, x)
        target = C.as_float(xp, positive, x) / xp.where(count > 0, count, xp.ones_like(count))[:, None]
        masked = xp.where(self_mask, xp.full(scores.shape, -float("inf"), dtype=x.dtype, device=C.device(x)), scores)
        lse, prob = C.cross_entropy_rows(xp, masked, xp.zeros_like(self_mask))  # picks nothing: l = logsumexp
        values = has_pos * (lse - xp.sum(target * scores, axis=1))
        return u, nx, target, has_pos, values, prob

    # --- value and derivatives -------------------------------------------------------
    def _value(self, xp, d):
        return self._pieces(xp, d)[4]

    def _value_grad(self, xp, d, w):
        u, nx, target, has_pos, v, prob = self._pieces(xp, d)
        scale = 1.0 / self.temperature
        A = (C.ones_weight(xp, w, v) * has_pos)[:, None] * (prob - target) * scale
        gu = (A + xp.matrix_transpose(A)) @ u
        return C.weighted(xp, v, w), {"embeddings": C.through_normalize(xp, gu, u, nx)}

    def _hvp(self, xp, d, w, v):
        dx = self._direction(xp, v, "embeddings", d["embeddings"])
        u, nx, target, has_pos, values, prob = self._pieces(xp, d)
        scale = 1.0 / self.temperature
        t = xp.matrix_transpose
        wrow = (C.ones_weight(xp, w, values) * has_pos)[:, None]
        A = wrow * (prob - target) * scale
        As = A + t(A)
        du, curvature = S2.unit_second(xp, u, nx, As @ u, dx)
        dA = wrow * S2.softmax_tangent(xp, prob, scale * (du @ t(u) + u @ t(du))) * scale
        return {"embeddings": S2.back_second(xp, (dA + t(dA)) @ u + As @ du, u, nx, curvature)}

    def _item_jvp(self, xp, d, v):
        dx = self._direction(xp, v, "embeddings", d["embeddings"])
        u, nx, target, has_pos, _, prob = self._pieces(xp, d)
        du = S2.unit_tangent(xp, u, nx, dx)
        dS = (du @ xp.matrix_transpose(u) + u @ xp.matrix_transpose(du)) / self.temperature
        return has_pos * S2.cross_entropy_tangent(xp, prob, target, dS)  # p_ii = T_ii = 0: dS_ii not read

    # --- what verify samples ------------------------------------------------------------
    def _example_inputs(self, rng):
        """9 samples in 5 dimensions: labels with 4, 3, 1 and 1 members (the two single ones have
        no positive: value 0 and no terms of their own, yet each is a negative of every anchor)."""
        labels = rng.permutation(np.array([0, 0, 0, 0, 1, 1, 1, 2, 7]))
        x = rng.normal(size=(9, 5)) + 1.5 * np.eye(9, 5)[labels % 5]
        return {"embeddings": x, "labels": labels}

    def _extreme_inputs(self, rng):
        ex = self._example_inputs(rng)
        x = ex["embeddings"].copy()
        x[::2] *= 1e200
        x[1::2] *= 1e-200
        return {"embeddings": x, "labels": ex["labels"]}
