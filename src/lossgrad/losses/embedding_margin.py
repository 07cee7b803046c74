r"""Angular-margin softmax losses: ArcFace (additive angular margin) and CosFace (additive cosine margin).

Both take ``embeddings`` (N, D), integer ``labels`` (N,) in [0, C) and the class
``weight`` matrix (C, D).  With u_i = x_i / ||x_i||, v_j = W_j / ||W_j|| and
c_ij = u_i . v_j = cos(theta_ij), the logits are s c_ij for j != y_i and s psi(c_iy) for the
target class; l_i = logsumexp_j(logits_i) - logit_iy.  Gradient: with
G = w (softmax - onehot) and H = dl/dc = s G (times psi'(c_iy) in the target column),
dL/du = H V, dL/dv = H^T U, then through both normalisations.
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

    def _evaluate(self, xp, d, w, grad):
        ux, nx, uw, nw = d["_u"]
        c = xp.clip(ux @ xp.matrix_transpose(uw), -1.0, 1.0)
        target = C.onehot(xp, d["labels"], int(uw.shape[0]), c)
        ct = xp.sum(xp.where(target, c, xp.zeros_like(c)), axis=1)
        psi, dpsi = self._psi(xp, ct)
        logits = self.scale * xp.where(target, psi[:, None], c)
        v, prob = C.cross_entropy_rows(xp, logits, target)
        if not grad:
            return v, None
        G = C.ones_weight(xp, w, v)[:, None] * (prob - C.as_float(xp, target, prob))
        H = self.scale * G * xp.where(target, dpsi[:, None], xp.ones_like(c))
        gx = C.through_normalize(xp, H @ uw, ux, nx)
        gW = C.through_normalize(xp, xp.matrix_transpose(H) @ ux, uw, nw)
        return v, {"embeddings": gx, "weight": gW}

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
    psi(c) = c cos m - sqrt(1 - c^2) sin m,  psi'(c) = cos m + c sin m / sqrt(1 - c^2).

    theta_y + m > pi (where cos(theta + m) would stop decreasing in theta), handled as
    the authors' insightface code does:

    * ``easy_margin=False`` (default, insightface's threshold): for c_y <= cos(pi - m)
      the target logit is s (c_y - m sin m) (psi' = 1);
    * ``easy_margin=True``: for c_y <= 0 the margin is dropped, logit s c_y (psi' = 1).

    Either fallback makes the value jump where it switches (at theta_y = pi - m, resp.
    pi / 2): a discontinuity of the reference method, declared (differentiability -1).
    At theta_y = 0 (x parallel to W_y) the angle has a corner and the term
    c sin m / sqrt(1 - c^2) (u - ...) is returned as 0; near it the chain rule product
    stays bounded because ||v - c u|| = sin theta.
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
                       r"\text{(not provided)}", "c = cos(theta), theta angle between x and W_j")
    references: ClassVar[tuple[str, ...]] = ("Deng et al. (2019), ArcFace, CVPR",)

    def __post_init__(self) -> None:
        self._set("scale", V.param_positive(self._owner, "scale", self.scale))
        self._set("margin", V.param_in_interval(self._owner, "margin", self.margin, 0.0, math.pi / 2, closed="left"))
        self._set("easy_margin", V.param_bool(self._owner, "easy_margin", self.easy_margin))

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=-1, basis=Basis.OTHER, has_hess=False)

    def _psi(self, xp, c):
        cm, sm = math.cos(self.margin), math.sin(self.margin)
        sin_t = xp.sqrt(xp.clip(1.0 - c * c, 0.0, None))
        psi = c * cm - sin_t * sm
        dpsi = cm + sm * c / xp.where(sin_t > 0, sin_t, xp.ones_like(sin_t)) * C.as_float(xp, sin_t > 0, c)
        if self.easy_margin:
            keep = c > 0
            fallback = c
        else:
            keep = c > math.cos(math.pi - self.margin)
            fallback = c - math.sin(math.pi - self.margin) * self.margin
        return xp.where(keep, psi, fallback), xp.where(keep, dpsi, xp.ones_like(c))


@register("cosface", "embedding", variants=({"margin": 0.1, "scale": 8.0},))
@dataclass(frozen=True)
class CosFace(_AngularMargin):
    r"""CosFace, the large margin cosine loss (Wang et al. 2018).

    Target logit s (cos(theta_y) - m), other logits s cos(theta_j); psi(c) = c - m, psi' = 1.
    l_i = -s (c_iy - m) + log(e^{s (c_iy - m)} + sum_{j != y} e^{s c_ij}).

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
                       r"\partial l/\partial c_j = s(p_j - \delta_{jy})", r"\text{(not provided)}",
                       "c = cos(theta)")
    references: ClassVar[tuple[str, ...]] = ("Wang et al. (2018), CosFace, CVPR",)

    def __post_init__(self) -> None:
        self._set("scale", V.param_positive(self._owner, "scale", self.scale))
        self._set("margin", V.param_nonnegative(self._owner, "margin", self.margin))

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=2, basis=Basis.OTHER, has_hess=False)

    def _psi(self, xp, c):
        return c - self.margin, xp.ones_like(c)

