r"""Angular-margin softmax losses: ArcFace (additive angular margin) and CosFace (additive cosine margin).

Both take ``embeddings`` (N, D), integer ``labels`` (N,) in [0, C) and the class
``weight`` matrix (C, D).  With u_i = x_i / ||x_i||, v_j = W_j / ||W_j|| and
c_ij = u_i . v_j = cos(theta_ij), the logits are s c_ij for j != y_i and s psi(c_iy) for the
target class; l_i = logsumexp_j(logits_i) - logit_iy.  Gradient: with
G = w (softmax - onehot) and H = dl/dc = s G (times psi'(c_iy) in the target column),
dL/du = H V, dL/dv = H^T U, then through both normalisations.

Hessian-vector product (pieces in :mod:`._softmax_embedding_second`): along (dx, dW),
dU = P_x dx, dV = P_W dW with P = (I - u u^T) / ||x|| row by row, dc = dU V^T + U dV^T,
dz = s psi'_c dc (psi'_c = psi'(c_iy) in the target column, 1 elsewhere),
dG = w p * (dz - sum_j p_j dz_j) (softmax Jacobian, row by row) and
dH = s (dG psi'_c + G psi''(c_iy) dc_iy [target column]); then

    H[v]_x = P_x (dH V + H dV) + dP_x[dx] (H V),
    H[v]_W = P_W (dH^T U + H^T dU) + dP_W[dW] (H^T U),

dP[v] g the curvature of normalisation (:func:`._embedding_common.normalize_second`).
The per-item directional derivative is dl_i = sum_j (p_ij - delta_{j y_i}) dz_ij.  The
clip of c to [-1, 1] (a guard against rounding) is not differentiated, as in the gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from .. import _validation as V
from .._batch import BatchLoss
from .._props import Basis, Formula, Props
from .._registry import register
from . import _embedding_common as C
from . import _softmax_embedding_second as S2

__all__ = ["ArcFace", "CosFace"]


class _AngularMargin(BatchLoss):
    inputs: ClassVar[tuple[str, ...]] = ("embeddings", "labels", "weight")
    differentiable: ClassVar[tuple[str, ...]] = ("embeddings", "weight")

    def _prepare(self, inputs, sample_weight):
        xp, a = self._coerce_inputs(inputs, {"embeddings": 2, "weight": 2})
        x, W = a["embeddings"], a["weight"]
        if x.shape[1] != W.shape[1]:
            raise ValueError(f"{self.name}: embeddings (N, D) and weight (classes, D) must have the same D "
                             f"(embedding dimensions differ); got {tuple(x.shape)} and {tuple(W.shape)}")
        y = self._class_labels(xp, inputs["labels"], "labels", x, int(x.shape[0]), int(W.shape[0]))
        ux, nx = C.normalize(xp, x)
        uw, nw = C.normalize(xp, W)
        C.check_nonzero_rows(self, xp, nx, "embeddings")
        C.check_nonzero_rows(self, xp, nw, "weight")
        w = self._item_weight(xp, sample_weight, tuple(x.shape[:1]), x)
        return xp, {"embeddings": x, "labels": y, "weight": W, "_u": (ux, nx, uw, nw)}, w

    def _value(self, xp, d):
        return self._evaluate(xp, d, None, grad=False)[0]

    def _value_grad(self, xp, d, w):
        v, g = self._evaluate(xp, d, w, grad=True)
        return C.weighted(xp, v, w), g

    def _pieces(self, xp, d, order):
        """(c, target, (psi, psi'[, psi'']) of the target cosines, l, softmax)."""
        ux, _, uw, _ = d["_u"]
        c = xp.clip(ux @ xp.matrix_transpose(uw), -1.0, 1.0)
        target = C.onehot(xp, d["labels"], int(uw.shape[0]), c)
        ct = xp.sum(xp.where(target, c, xp.zeros_like(c)), axis=1)
        psis = self._psi(xp, ct, order)
        logits = self.scale * xp.where(target, psis[0][:, None], c)
        v, prob = C.cross_entropy_rows(xp, logits, target)
        return c, target, psis, v, prob

    def _evaluate(self, xp, d, w, grad):
        ux, nx, uw, nw = d["_u"]
        c, target, (_, dpsi), v, prob = self._pieces(xp, d, 1)
        if not grad:
            return v, None
        G = C.ones_weight(xp, w, v)[:, None] * (prob - C.as_float(xp, target, prob))
        H = self.scale * G * xp.where(target, dpsi[:, None], xp.ones_like(c))
        gx = C.through_normalize(xp, H @ uw, ux, nx)
        gW = C.through_normalize(xp, xp.matrix_transpose(H) @ ux, uw, nw)
        return v, {"embeddings": gx, "weight": gW}

    # --- second order ---------------------------------------------------------
    has_hvp: ClassVar[bool] = True

    def _hvp(self, xp, d, w, v):
        ux, nx, uw, nw = d["_u"]
        dx = self._direction(xp, v, "embeddings", d["embeddings"])
        dW = self._direction(xp, v, "weight", d["weight"])
        c, target, (_, dpsi, d2psi), values, prob = self._pieces(xp, d, 2)
        t = xp.matrix_transpose
        slope = xp.where(target, dpsi[:, None], xp.ones_like(c))
        wrow = C.ones_weight(xp, w, values)[:, None]
        G = wrow * (prob - C.as_float(xp, target, prob))
        H = self.scale * G * slope
        dux, curv_x = S2.unit_second(xp, ux, nx, H @ uw, dx)
        duw, curv_w = S2.unit_second(xp, uw, nw, t(H) @ ux, dW)
        dc = dux @ t(uw) + ux @ t(duw)
        dG = wrow * S2.softmax_tangent(xp, prob, self.scale * slope * dc)
        bend = xp.where(target, d2psi[:, None] * dc, xp.zeros_like(c))
        dH = self.scale * (dG * slope + G * bend)
        return {"embeddings": S2.back_second(xp, dH @ uw + H @ duw, ux, nx, curv_x),
                "weight": S2.back_second(xp, t(dH) @ ux + t(H) @ dux, uw, nw, curv_w)}

    def _item_jvp(self, xp, d, v):
        ux, nx, uw, nw = d["_u"]
        dux = S2.unit_tangent(xp, ux, nx, self._direction(xp, v, "embeddings", d["embeddings"]))
        duw = S2.unit_tangent(xp, uw, nw, self._direction(xp, v, "weight", d["weight"]))
        c, target, (_, dpsi), _, prob = self._pieces(xp, d, 1)
        dc = dux @ xp.matrix_transpose(uw) + ux @ xp.matrix_transpose(duw)
        dz = self.scale * xp.where(target, dpsi[:, None], xp.ones_like(c)) * dc
        return S2.cross_entropy_tangent(xp, prob, target, dz)

    def _example_inputs(self, rng):
        n, k, dim = 8, 4, 5
        x = rng.normal(size=(n, dim))
        W = rng.normal(size=(k, dim))
        return {"embeddings": x, "labels": rng.integers(0, k, n), "weight": W}

    def _extreme_inputs(self, rng):
        ex = self._example_inputs(rng)
        return {"embeddings": 1e200 * ex["embeddings"], "labels": ex["labels"], "weight": 1e-200 * ex["weight"]}


@register("arcface", "embedding", variants=({"margin": 0.2, "scale": 8.0}, {"easy_margin": True, "scale": 16.0}))
@dataclass(frozen=True)
class ArcFace(_AngularMargin):
    r"""ArcFace, the additive angular margin loss (Deng et al. 2019).

    Target logit s cos(theta_y + m) with theta_y = arccos(c_y):
    psi(c) = c cos m - sqrt(1 - c^2) sin m,  psi'(c) = cos m + c sin m / sqrt(1 - c^2),
    psi''(c) = sin m / (1 - c^2)^{3/2} = sin m / sin^3 theta_y  (> 0: cos(theta + m) is
    convex in c on the branch theta + m < pi).

    theta_y + m > pi (where cos(theta + m) would stop decreasing in theta), handled as
    the authors' insightface code does:

    * ``easy_margin=False`` (default, insightface's threshold): for c_y <= cos(pi - m)
      the target logit is s (c_y - m sin m) (psi' = 1);
    * ``easy_margin=True``: for c_y <= 0 the margin is dropped, logit s c_y (psi' = 1).

    Either fallback makes the value jump where it switches (at theta_y = pi - m, resp.
    pi / 2): a discontinuity of the reference method, declared (differentiability -1).
    Both fallbacks are linear in c (psi'' = 0); ``hvp`` is the Hessian of the branch active
    at the given point (the jump itself has no derivative).
    At theta_y = 0 (x parallel to W_y) the angle has a corner and the term
    c sin m / sqrt(1 - c^2) (u - ...) is returned as 0; near it the chain rule product
    stays bounded because ||v - c u|| = sin theta.  The second order follows the same
    convention: at sin theta_y = 0, psi'' is taken as 0 (psi' as cos m).  Near it the true
    Hessian grows without bound (psi'' ~ 1 / sin^3 theta_y against dc_y = O(sin theta_y));
    for sin theta_y below ~1e-103 (float64) sin^3 underflows and ``hvp`` is not finite.

    Hessian-vector product: see the module docstring, with psi'' above in dH.
    Other conventions: PyTorch/insightface normalise with an epsilon of 1e-12; lossgrad
    rejects zero rows instead.  The value is per sample (N,); ``reduction="mean"`` is the
    usual batch loss.
    Reference: J. Deng, J. Guo, N. Xue, S. Zafeiriou, ArcFace: additive angular margin loss
    for deep face recognition, CVPR 2019; insightface (threshold cos(pi - m), sin(pi - m) m).

    >>> import numpy as np, lossgrad
    >>> x = np.array([[1.0, 0.0]]); W = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> np.round(lossgrad.get("arcface", scale=1.0, margin=0.5).value(embeddings=x, labels=[0], weight=W), 6)
    array([0.347685])
    """

    scale: float = 64.0
    margin: float = 0.5
    easy_margin: bool = False
    _formula = Formula(r"-s\cos(\theta_y + m) + \log(e^{s\cos(\theta_y+m)} + \sum_{j\ne y} e^{s\cos\theta_j})",
                       r"\partial l/\partial c_y = s(p_y - 1)(\cos m + c_y \sin m/\sqrt{1 - c_y^2})",
                       r"\frac{\partial^2 l}{\partial c_j \partial c_k} = "
                       r"s^2 \psi'_j \psi'_k (p_j \delta_{jk} - p_j p_k) + s (p_y - 1)\,\psi''(c_y)\,\delta_{jy}\delta_{ky},\ "
                       r"\psi'' = \frac{\sin m}{(1 - c_y^2)^{3/2}}"
                       r"\ (0 \text{ on the fallback}),\ \text{then through } c_{ij} = u_i \cdot v_j,\ "
                       r"u = x/\lVert x\rVert,\ v = W/\lVert W\rVert",
                       "c = cos(theta), theta angle between x and W_j")
    references: ClassVar[tuple[str, ...]] = ("Deng et al. (2019), ArcFace, CVPR",)

    def __post_init__(self) -> None:
        self._set("scale", V.param_positive(self._owner, "scale", self.scale))
        self._set("margin", V.param_in_interval(self._owner, "margin", self.margin, 0.0, math.pi / 2, closed="left"))
        self._set("easy_margin", V.param_bool(self._owner, "easy_margin", self.easy_margin))

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=-1, basis=Basis.OTHER)

    def _psi(self, xp, c, order=1):
        """(psi, psi') of the target cosines c, and psi'' when order is 2 (see the class docstring)."""
        cm, sm = math.cos(self.margin), math.sin(self.margin)
        sin_t = xp.sqrt(xp.clip(1.0 - c * c, 0.0, None))
        psi = c * cm - sin_t * sm
        inside = sin_t > 0
        safe = xp.where(inside, sin_t, xp.ones_like(sin_t))
        dpsi = cm + sm * c / safe * C.as_float(xp, inside, c)
        if self.easy_margin:
            keep = c > 0
            fallback = c
        else:
            keep = c > math.cos(math.pi - self.margin)
            fallback = c - math.sin(math.pi - self.margin) * self.margin
        out = (xp.where(keep, psi, fallback), xp.where(keep, dpsi, xp.ones_like(c)))
        if order < 2:
            return out
        d2psi = sm / safe / safe / safe * C.as_float(xp, inside, c)  # 0 at theta = 0, as psi' drops its term
        return (*out, xp.where(keep, d2psi, xp.zeros_like(c)))


@register("cosface", "embedding", variants=({"margin": 0.1, "scale": 8.0},))
@dataclass(frozen=True)
class CosFace(_AngularMargin):
    r"""CosFace, the large margin cosine loss (Wang et al. 2018).

    Target logit s (cos(theta_y) - m), other logits s cos(theta_j); psi(c) = c - m, psi' = 1.
    l_i = -s (c_iy - m) + log(e^{s (c_iy - m)} + sum_{j != y} e^{s c_ij}).
    Second order: psi'' = 0, so in the cosines d^2 l / dc dc = s^2 (diag(p) - p p^T) and
    the Hessian-vector product in (x, W) is the module docstring's with dz = s dc and
    dH = s dG.

    Inputs: embeddings (N, D), labels (N,) in [0, C), weight (C, D); value (N,).
    Reference: H. Wang et al., CosFace: large margin cosine loss for deep face
    recognition, CVPR 2018.

    >>> import numpy as np, lossgrad
    >>> x = np.array([[1.0, 0.0]]); W = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> np.round(lossgrad.get("cosface", scale=1.0, margin=0.35).value(embeddings=x, labels=[0], weight=W), 6)
    array([0.420055])
    """

    scale: float = 64.0
    margin: float = 0.35
    _formula = Formula(r"-s(c_y - m) + \log(e^{s(c_y - m)} + \sum_{j\ne y} e^{s c_j})",
                       r"\partial l/\partial c_j = s(p_j - \delta_{jy})",
                       r"\frac{\partial^2 l}{\partial c_j \partial c_k} = s^2 (p_j \delta_{jk} - p_j p_k),\ "
                       r"\text{then through } c_{ij} = u_i \cdot v_j,\ u = x/\lVert x\rVert,\ v = W/\lVert W\rVert",
                       "c = cos(theta)")
    references: ClassVar[tuple[str, ...]] = ("Wang et al. (2018), CosFace, CVPR",)

    def __post_init__(self) -> None:
        self._set("scale", V.param_positive(self._owner, "scale", self.scale))
        self._set("margin", V.param_nonnegative(self._owner, "margin", self.margin))

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=2, basis=Basis.OTHER)

    def _psi(self, xp, c, order=1):
        """(psi, psi') = (c - m, 1), and psi'' = 0 when order is 2."""
        out = (c - self.margin, xp.ones_like(c))
        return out if order < 2 else (*out, xp.zeros_like(c))

