r"""Pair losses: contrastive (Hadsell et al. 2006), margin ranking and cosine embedding (PyTorch).

Every loss here takes ``x1``, ``x2`` and ``target``, returns one value per pair and the
gradients w.r.t. ``x1`` and ``x2`` of sum(sample_weight * value), and its exact
Hessian-vector product (``hvp``; the formulas are in each class, the shared cosine
Hessian in :mod:`lossgrad.losses._pair_second`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .. import _validation as V
from .._batch import BatchLoss
from .._props import Basis, Formula, Props
from .._registry import register
from . import _embedding_common as C
from . import _pair_second as S

__all__ = ["Contrastive", "MarginRanking", "CosineEmbedding"]


def _cosine(loss: BatchLoss, xp: Any, x1: Any, x2: Any) -> tuple[Any, ...]:
    """cos(x1_i, x2_i) with the unit vectors and norms (zero rows rejected)."""
    u1, n1 = C.normalize(xp, x1)
    u2, n2 = C.normalize(xp, x2)
    C.check_nonzero_rows(loss, xp, n1, "x1")
    C.check_nonzero_rows(loss, xp, n2, "x2")
    c = xp.clip(xp.sum(u1 * u2, axis=-1), -1.0, 1.0)
    return c, u1, n1, u2, n2


def _cosine_grads(xp: Any, dc: Any, c: Any, u1: Any, n1: Any, u2: Any, n2: Any) -> tuple[Any, Any]:
    """dL/dx1, dL/dx2 from dL/dc:  dc/dx1 = (u2 - c u1) / ||x1||,  dc/dx2 = (u1 - c u2) / ||x2||."""
    dc, c = dc[:, None], c[:, None]
    return dc * (u2 - c * u1) / n1, dc * (u1 - c * u2) / n2


class _PairLoss(BatchLoss):
    inputs: ClassVar[tuple[str, ...]] = ("x1", "x2", "target")
    differentiable: ClassVar[tuple[str, ...]] = ("x1", "x2")
    _ndim: ClassVar[Any] = 2
    _allowed: ClassVar[tuple[float, ...]] = (-1.0, 1.0)
    _meaning: ClassVar[str] = "targets in {-1, +1}"

    def _prepare(self, inputs, sample_weight):
        xp, a = self._coerce_inputs(inputs, {"x1": self._ndim, "x2": self._ndim})
        x1, x2 = a["x1"], a["x2"]
        if x1.shape != x2.shape:
            what = "embedding dimensions differ" if x1.ndim == 2 and x1.shape[0] == x2.shape[0] else "shapes differ"
            raise ValueError(f"{self.name}: x1 and x2 must have the same shape ({what}); got {tuple(x1.shape)} and {tuple(x2.shape)}")
        item_shape = tuple(x1.shape[:1]) if x1.ndim == 2 and self._ndim == 2 else tuple(x1.shape)
        t = self._targets(xp, inputs["target"], "target", x1, item_shape, self._allowed, self._meaning)
        w = self._item_weight(xp, sample_weight, item_shape, x1)
        return xp, {"x1": x1, "x2": x2, "target": t}, w

    def _value(self, xp, d):
        return self._compute(xp, d, None, grad=False)[0]

    def _value_grad(self, xp, d, w):
        v, g1, g2 = self._compute(xp, d, w, grad=True)
        return C.weighted(xp, v, w), {"x1": g1, "x2": g2}

    # --- second order: each loss defines _second (H v) and _tangent (per-pair dl along v)
    has_hvp: ClassVar[bool] = True

    def _hvp(self, xp, d, w, v):
        h1, h2 = self._second(xp, d, w, *self._directions(xp, d, v))
        return {"x1": h1, "x2": h2}

    def _item_jvp(self, xp, d, v):
        return self._tangent(xp, d, *self._directions(xp, d, v))

    def _directions(self, xp, d, v):
        return self._direction(xp, v, "x1", d["x1"]), self._direction(xp, v, "x2", d["x2"])


@register("contrastive", "embedding", variants=({"distance": "cosine", "margin": 0.5}, {"margin": 2.0}))
@dataclass(frozen=True)
class Contrastive(_PairLoss):
    r"""Contrastive loss of Hadsell, Chopra & LeCun (2006) on pairs (x1_i, x2_i).

    l_i = 1/2 [ t_i D_i^2 + (1 - t_i) max(0, margin - D_i)^2 ]

    with ``target`` t = 1 for a similar pair and t = 0 for a dissimilar one.  (The
    paper writes Y = 0 for similar and Y = 1 for dissimilar pairs; lossgrad's target is
    1 - Y, the convention of sentence-transformers' ContrastiveLoss.)  D is

    * ``distance="euclidean"``: D = ||x1 - x2||_2 (no epsilon);
      dl/dx1 = t (x1 - x2) - (1 - t) max(0, m - D) (x1 - x2) / D = -dl/dx2;
      at D = 0 the dissimilar term returns the subgradient 0.
    * ``distance="cosine"``: D = 1 - cos(x1, x2) in [0, 2]; dl/dD = t D - (1 - t) max(0, m - D),
      dl/dx1 = -dl/dD (u2 - c u1) / ||x1|| (u = x / ||x||), and symmetrically for x2.

    Second order (``hvp``; w the pair weights, (v1, v2) the direction, h = max(0, m - D)):

    * euclidean: l depends on d = x1 - x2 only, with the Hessian (u = d / D)

          H_d = [t - (1 - t) h / D] I + (1 - t) 1{h > 0} (m / D) u u^T,

      so H v = (w H_d (v1 - v2), -w H_d (v1 - v2)).  At the tie D = m the gradient's
      h = 0 makes the dissimilar term flat, and the Hessian takes that side (1{h > 0} = 0).
      At D = 0, (m - D)^2 / 2 = m^2 / 2 - m D + D^2 / 2 has the cone -m D, whose Hessian
      (m / D)(u u^T - I) is infinite; following the gradient, which takes the cone's
      subgradient 0 there, it contributes nothing and H_d = I.
    * cosine: l = f(c), c = cos(x1, x2), with f'(c) = -dl/dD and f''(c) = d^2l/dD^2 =
      t + (1 - t) 1{h > 0} (the same side at the tie); H v is that of F(c) =
      w f(c) in :mod:`lossgrad.losses._pair_second`:  f'' dc grad(c) + f' (grad^2 c) v with
      dc = grad(c) . v, through the normalisation u = x / ||x||.

    Inputs: x1, x2 (N, D); target (N,) in {0, 1}.  Value (N,).
    Reference: R. Hadsell, S. Chopra, Y. LeCun, Dimensionality reduction by learning an
    invariant mapping, CVPR 2006, eq. (4) (with the factor 1/2 of both terms).

    >>> import numpy as np, lossgrad
    >>> loss = lossgrad.get("contrastive", margin=1.0)
    >>> x1, x2 = np.array([[0.0, 0.0], [0.0, 0.0]]), np.array([[0.6, 0.0], [0.6, 0.0]])
    >>> loss.value(x1=x1, x2=x2, target=np.array([1, 0]))
    array([0.18, 0.08])
    """

    margin: float = 1.0
    distance: str = "euclidean"
    _allowed: ClassVar[tuple[float, ...]] = (0.0, 1.0)
    _meaning: ClassVar[str] = "targets 1 (similar pair) or 0 (dissimilar pair)"
    _formula = Formula(
        r"\tfrac12\,[t D^2 + (1 - t)\max(0, m - D)^2]",
        r"\partial l/\partial D = t D - (1 - t)\max(0, m - D)",
        r"\text{euclidean: } \nabla^2_{d}\, l = \big[t - (1 - t)\tfrac{h}{D}\big] I"
        r" + (1 - t)\,\mathbf{1}\{h > 0\}\tfrac{m}{D}\,\hat d \hat d^\top,\ d = x_1 - x_2,\ h = \max(0, m - D);"
        r"\quad \text{cosine: } \nabla^2 l = l''(D)\,\nabla c\,\nabla c^\top - l'(D)\,\nabla^2 c,"
        r"\ l''(D) = t + (1 - t)\,\mathbf{1}\{D < m\}",
        "D = ||x_1 - x_2|| or 1 - cos(x_1, x_2)",
    )
    references: ClassVar[tuple[str, ...]] = ("Hadsell, Chopra & LeCun (2006), CVPR",)

    def __post_init__(self) -> None:
        self._set("margin", V.param_positive(self._owner, "margin", self.margin))
        V.param_choice(self._owner, "distance", self.distance, ("euclidean", "cosine"))

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=0 if self.distance == "euclidean" else 1,
                     basis=Basis.OTHER)

    def _euclidean(self, xp, d):
        """(value, d = x1 - x2, D = ||d||, h = max(0, m - D), coef) with dl/dd = coef d,
        coef = t - (1 - t) h / D (the D = 0 rows divide by 1: d = 0 there)."""
        t = d["target"]
        diff = d["x1"] - d["x2"]
        D = C.row_norm(xp, diff)[:, 0]
        h = xp.clip(self.margin - D, 0.0, None)
        v = 0.5 * (t * D * D + (1.0 - t) * h * h)
        return v, diff, D, h, t - (1.0 - t) * h / xp.where(D > 0, D, xp.ones_like(D))

    def _cosine_parts(self, xp, d):
        """(value, dl/dc, d^2l/dc^2, (c, u1, n1, u2, n2)) of the cosine distance D = 1 - c."""
        t = d["target"]
        cos = _cosine(self, xp, d["x1"], d["x2"])
        D = 1.0 - cos[0]
        h = xp.clip(self.margin - D, 0.0, None)
        v = 0.5 * (t * D * D + (1.0 - t) * h * h)
        return v, -(t * D - (1.0 - t) * h), t + (1.0 - t) * C.as_float(xp, h > 0, h), cos

    def _compute(self, xp, d, w, grad):
        if self.distance == "euclidean":
            v, diff, _, _, coef = self._euclidean(xp, d)
            if not grad:
                return (v,)
            g1 = (C.ones_weight(xp, w, v) * coef)[:, None] * diff
            return v, g1, -g1
        v, dl_dc, _, cos = self._cosine_parts(xp, d)
        if not grad:
            return (v,)
        return (v, *_cosine_grads(xp, C.ones_weight(xp, w, v) * dl_dc, *cos))

    def _second(self, xp, d, w, v1, v2):
        if self.distance == "cosine":
            v, dl_dc, d2l_dc2, (_, u1, n1, u2, n2) = self._cosine_parts(xp, d)
            sw = C.ones_weight(xp, w, v)
            return S.cosine_hvp(xp, u1, n1, u2, n2, sw * dl_dc, sw * d2l_dc2, v1, v2)
        v, diff, D, h, coef = self._euclidean(xp, d)
        t, dv = d["target"], v1 - v2
        moved = D > 0
        Dsafe = xp.where(moved, D, xp.ones_like(D))
        u = diff / Dsafe[:, None]
        scale = xp.where(moved, coef, xp.ones_like(coef))  # D = 0: H_d = I (see the docstring)
        rank_one = xp.where(moved, (1.0 - t) * C.as_float(xp, h > 0, h) * self.margin / Dsafe, xp.zeros_like(D))
        sw = C.ones_weight(xp, w, v)
        hd = (sw * scale)[:, None] * dv + (sw * rank_one * xp.sum(u * dv, axis=-1))[:, None] * u
        return hd, -hd

    def _tangent(self, xp, d, v1, v2):
        if self.distance == "cosine":
            _, dl_dc, _, (_, u1, n1, u2, n2) = self._cosine_parts(xp, d)
            return dl_dc * S.cosine_tangent(xp, u1, n1, u2, n2, v1, v2)[0]
        _, diff, _, _, coef = self._euclidean(xp, d)
        return coef * xp.sum(diff * (v1 - v2), axis=-1)

    def _example_inputs(self, rng):
        n, dim = 10, 4
        x1 = rng.normal(size=(n, dim))
        if self.distance == "euclidean":
            x2 = x1 + rng.normal(scale=0.7 * self.margin / math.sqrt(dim), size=(n, dim))
        else:
            x2 = x1 + rng.normal(scale=0.8, size=(n, dim))
        return {"x1": x1, "x2": x2, "target": rng.permutation(np.arange(n) % 2).astype(float)}

    def _extreme_inputs(self, rng):
        ex = self._example_inputs(rng)
        return {"x1": 1e100 * ex["x1"], "x2": 1e-100 * ex["x2"], "target": ex["target"]}


@register("margin_ranking", "embedding", variants=({"margin": 0.5},))
@dataclass(frozen=True)
class MarginRanking(_PairLoss):
    r"""Margin ranking loss, as PyTorch ``MarginRankingLoss(margin)``.

    l_i = max(0, -t_i (x1_i - x2_i) + margin), ``target`` t = +1 when x1 should rank
    higher than x2 and -1 otherwise.  dl/dx1 = -t 1{z > 0}, dl/dx2 = t 1{z > 0} with
    z = -t (x1 - x2) + margin; at z = 0 the gradient returned is 0.

    Second order: l is piecewise linear, so its Hessian is 0 wherever it exists (z != 0);
    ``hvp`` returns that exact 0 everywhere (at z = 0 too, the side the gradient takes).
    The per-pair directional derivative along (v1, v2) is -t 1{z > 0} (v1 - v2).

    Inputs: x1, x2 scores of one shape (N,) (any shape is accepted); target of that
    shape (or a scalar) in {-1, +1}.  Value: the shape of x1.  Convex in (x1, x2).
    Reference: PyTorch documentation of torch.nn.MarginRankingLoss.

    >>> import numpy as np, lossgrad
    >>> lossgrad.get("margin_ranking", margin=0.5).value(x1=np.array([1.0, 1.0]), x2=np.array([0.8, 0.0]), target=np.array([1, -1]))
    array([0.3, 1.5])
    """

    margin: float = 0.0
    _ndim: ClassVar[Any] = None
    _formula = Formula(r"\max(0, -t (x_1 - x_2) + m)", r"\mp t\,\mathbf{1}\{-t (x_1 - x_2) + m > 0\}",
                       r"0 \quad (z = -t (x_1 - x_2) + m \neq 0)", "x_1, x_2 scores")
    references: ClassVar[tuple[str, ...]] = ("PyTorch torch.nn.MarginRankingLoss",)

    def __post_init__(self) -> None:
        self._set("margin", V.param_nonnegative(self._owner, "margin", self.margin))

    @property
    def props(self) -> Props:
        return Props(convex=True, differentiability=0, basis=Basis.OTHER)

    def _compute(self, xp, d, w, grad):
        x1, x2, t = d["x1"], d["x2"], d["target"]
        z = -t * (x1 - x2) + self.margin
        v = xp.clip(z, 0.0, None)
        if not grad:
            return (v,)
        g = C.ones_weight(xp, w, v) * t * C.as_float(xp, z > 0, z)
        return v, -g, g

    def _second(self, xp, d, w, v1, v2):
        return xp.zeros_like(d["x1"]), xp.zeros_like(d["x2"])

    def _tangent(self, xp, d, v1, v2):
        t = d["target"]
        z = -t * (d["x1"] - d["x2"]) + self.margin
        return -t * C.as_float(xp, z > 0, z) * (v1 - v2)

    def _example_inputs(self, rng):
        x1 = rng.normal(size=12)
        x2 = x1 + rng.choice([-1.0, 1.0], 12) * rng.uniform(0.1, 2.0, 12)
        t = rng.choice([-1.0, 1.0], 12)
        return {"x1": x1, "x2": x2, "target": t}

    def _extreme_inputs(self, rng):
        ex = self._example_inputs(rng)
        return {"x1": 1e150 * ex["x1"], "x2": 1e150 * ex["x2"], "target": ex["target"]}


@register("cosine_embedding", "embedding", variants=({"margin": 0.3}, {"margin": -0.5}))
@dataclass(frozen=True)
class CosineEmbedding(_PairLoss):
    r"""Cosine embedding loss, as PyTorch ``CosineEmbeddingLoss(margin)``.

    With c_i = cos(x1_i, x2_i):  l_i = 1 - c_i if t_i = 1,  max(0, c_i - margin) if t_i = -1.
    dl/dc = -1 (t = 1) or 1{c > margin} (t = -1); dc/dx1 = (u2 - c u1) / ||x1||,
    dc/dx2 = (u1 - c u2) / ||x2|| with u = x / ||x||.

    Second order: d^2l/dc^2 = 0 on both pieces (at the tie c = margin the gradient's side,
    1{c > margin} = 0, is taken), so the Hessian is dl/dc times that of the cosine,
    H v = w dl/dc (grad^2 c) v; along (v1, v2), with du_k = (v_k - (u_k . v_k) u_k) / ||x_k||,
    (grad^2 c) v |_{x1} = through_normalize(du2) + dP1[v1] u2 (the curvature of the
    normalisation, :mod:`lossgrad.losses._pair_second`), and symmetrically for x2.

    Inputs: x1, x2 (N, D); target (N,) in {-1, +1}.  Value (N,).  ``margin`` in [-1, 1].
    Convention: PyTorch adds 1e-12 to both squared norms; lossgrad uses the exact cosine
    and rejects zero vectors (a relative difference of ~1e-12 for unit-scale inputs).
    Reference: PyTorch documentation of torch.nn.CosineEmbeddingLoss.

    >>> import numpy as np, lossgrad
    >>> x1, x2 = np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 1.0], [1.0, 1.0]])
    >>> np.round(lossgrad.get("cosine_embedding").value(x1=x1, x2=x2, target=np.array([1, -1])), 6)
    array([0.292893, 0.707107])
    """

    margin: float = 0.0
    _formula = Formula(r"\begin{cases}1 - c & t = 1\\ \max(0, c - m) & t = -1\end{cases}",
                       r"\partial l/\partial c = -1 \text{ or } \mathbf{1}\{c > m\}",
                       r"\tfrac{\partial l}{\partial c}\,\nabla^2 c,\ \nabla^2_{x_1 x_1} c = -\tfrac{u_1 u_2^\top"
                       r" + u_2 u_1^\top + c\,(I - 3 u_1 u_1^\top)}{\|x_1\|^2},\ \nabla^2_{x_1 x_2} c"
                       r" = \tfrac{(I - u_1 u_1^\top)(I - u_2 u_2^\top)}{\|x_1\|\,\|x_2\|}",
                       "c = cos(x_1, x_2)")
    references: ClassVar[tuple[str, ...]] = ("PyTorch torch.nn.CosineEmbeddingLoss",)

    def __post_init__(self) -> None:
        self._set("margin", V.param_in_interval(self._owner, "margin", self.margin, -1.0, 1.0, closed="both"))

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=0, basis=Basis.OTHER)

    def _parts(self, xp, d):
        """(value, dl/dc, (c, u1, n1, u2, n2))."""
        t = d["target"]
        cos = _cosine(self, xp, d["x1"], d["x2"])
        c, sim = cos[0], t > 0
        v = xp.where(sim, 1.0 - c, xp.clip(c - self.margin, 0.0, None))
        return v, xp.where(sim, -xp.ones_like(c), C.as_float(xp, c > self.margin, c)), cos

    def _compute(self, xp, d, w, grad):
        v, dl_dc, cos = self._parts(xp, d)
        if not grad:
            return (v,)
        return (v, *_cosine_grads(xp, C.ones_weight(xp, w, v) * dl_dc, *cos))

    def _second(self, xp, d, w, v1, v2):
        v, dl_dc, (_, u1, n1, u2, n2) = self._parts(xp, d)
        a = C.ones_weight(xp, w, v) * dl_dc
        return S.cosine_hvp(xp, u1, n1, u2, n2, a, xp.zeros_like(a), v1, v2)

    def _tangent(self, xp, d, v1, v2):
        _, dl_dc, (_, u1, n1, u2, n2) = self._parts(xp, d)
        return dl_dc * S.cosine_tangent(xp, u1, n1, u2, n2, v1, v2)[0]

    def _example_inputs(self, rng):
        n, dim = 12, 4
        x1 = rng.normal(size=(n, dim))
        x2 = x1 + rng.normal(scale=1.2, size=(n, dim))
        return {"x1": x1, "x2": x2, "target": rng.choice([-1.0, 1.0], n)}

    def _extreme_inputs(self, rng):
        ex = self._example_inputs(rng)
        return {"x1": 1e-200 * ex["x1"], "x2": 1e200 * ex["x2"], "target": ex["target"]}
