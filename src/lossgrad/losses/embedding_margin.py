r"""Angular-margin softmax losses: SphereFace (multiplicative angular margin), ArcFace (additive
angular margin) and CosFace (additive cosine margin).

All take ``embeddings`` (N, D), integer ``labels`` (N,) in [0, C) and the class
``weight`` matrix (C, D).  With u_i = x_i / ||x_i||, v_j = W_j / ||W_j|| and
c_ij = u_i . v_j = cos(theta_ij), the logits are z_ij = s phi_ij with phi_ij = c_ij for
j != y_i and phi_iy = psi(c_iy) for the target class (psi the loss's margin function);
l_i = logsumexp_j(z_i) - z_iy.  The scale s is the constant ``scale``, or, for SphereFace
with ``scale=None`` (its original form), the feature norm s_i = ||x_i||.  Gradient: with
G = w (softmax - onehot) and H = dl/dc = s G (times psi'(c_iy) in the target column),
dL/du = H V, dL/dv = H^T U, then through both normalisations; with s_i = ||x_i|| also
dL/d||x_i|| = a_i = sum_j G_ij phi_ij, which adds a_i u_i to dL/dx_i (d||x|| / dx = u).

Hessian-vector product (pieces in :mod:`._softmax_embedding_second`): along (dx, dW),
dU = P_x dx, dV = P_W dW with P = (I - u u^T) / ||x|| row by row, dc = dU V^T + U dV^T,
dz = s psi'_c dc (psi'_c = psi'(c_iy) in the target column, 1 elsewhere),
dG = w p * (dz - sum_j p_j dz_j) (softmax Jacobian, row by row) and
dH = s (dG psi'_c + G psi''(c_iy) dc_iy [target column]); then

    H[v]_x = P_x (dH V + H dV) + dP_x[dx] (H V),
    H[v]_W = P_W (dH^T U + H^T dU) + dP_W[dW] (H^T U),

dP[v] g the curvature of normalisation (:func:`._embedding_common.normalize_second`).
With s_i = ||x_i|| the norm moves too, ds_i = u_i . dx_i: dz gains ds phi, dH gains
ds G psi'_c, and H[v]_x gains da u + a dU with da_i = sum_j (dG_ij phi_ij + G_ij psi'_c dc_ij).
The per-item directional derivative is dl_i = sum_j (p_ij - delta_{j y_i}) dz_ij.  The
clip of c to [-1, 1] (a guard against rounding) is not differentiated, as in the gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import _validation as V
from .._batch import BatchLoss
from .._props import Basis, Formula, Props
from .._registry import register
from . import _embedding_common as C
from . import _softmax_embedding_second as S2
from ._sphereface_psi import sphereface_psi

__all__ = ["ArcFace", "CosFace", "SphereFace"]


class _AngularMargin(BatchLoss):
    inputs: ClassVar[tuple[str, ...]] = ("embeddings", "labels", "weight")
    differentiable: ClassVar[tuple[str, ...]] = ("embeddings", "weight")

    def _prepare(self, inputs, sample_weight):
        xp, a = self._coerce_inputs(inputs, {"embeddings": 2, "weight": 2})
        x, W = a["embeddings"], a["weight"]
        C.check_class_rows(self, x, W, "weight")
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

    @property
    def _norm_scaled(self) -> bool:
        """True when the logits scale with the feature norm ||x_i|| (SphereFace's ``scale=None``)."""
        return self.scale is None

    def _logit_scale(self, d):
        """s of the logits s phi: the constant ``scale``, or the (N, 1) column ||x_i||."""
        return d["_u"][1] if self._norm_scaled else self.scale

    def _pieces(self, xp, d, order):
        """(c, target, (psi, psi'[, psi'']) of the target cosines, phi, l, softmax); logits s phi."""
        ux, _, uw, _ = d["_u"]
        c = xp.clip(ux @ xp.matrix_transpose(uw), -1.0, 1.0)
        target = C.onehot(xp, d["labels"], int(uw.shape[0]), c)
        ct = xp.sum(xp.where(target, c, xp.zeros_like(c)), axis=1)
        psis = self._psi(xp, ct, order)
        phi = xp.where(target, psis[0][:, None], c)
        v, prob = C.cross_entropy_rows(xp, self._logit_scale(d) * phi, target)
        return c, target, psis, phi, v, prob

    def _evaluate(self, xp, d, w, grad):
        ux, nx, uw, nw = d["_u"]
        c, target, (_, dpsi), phi, v, prob = self._pieces(xp, d, 1)
        if not grad:
            return v, None
        G = C.ones_weight(xp, w, v)[:, None] * (prob - C.as_float(xp, target, prob))
        H = self._logit_scale(d) * G * xp.where(target, dpsi[:, None], xp.ones_like(c))
        gx = C.through_normalize(xp, H @ uw, ux, nx)
        if self._norm_scaled:  # dl/d||x|| = sum_j G_j phi_j, times d||x|| / dx = u
            gx = gx + xp.sum(G * phi, axis=1, keepdims=True) * ux
        gW = C.through_normalize(xp, xp.matrix_transpose(H) @ ux, uw, nw)
        return v, {"embeddings": gx, "weight": gW}

    # --- second order ---------------------------------------------------------
    has_hvp: ClassVar[bool] = True

    def _hvp(self, xp, d, w, v):
        ux, nx, uw, nw = d["_u"]
        dx = self._direction(xp, v, "embeddings", d["embeddings"])
        dW = self._direction(xp, v, "weight", d["weight"])
        c, target, (_, dpsi, d2psi), phi, values, prob = self._pieces(xp, d, 2)
        t = xp.matrix_transpose
        s = self._logit_scale(d)
        slope = xp.where(target, dpsi[:, None], xp.ones_like(c))
        wrow = C.ones_weight(xp, w, values)[:, None]
        G = wrow * (prob - C.as_float(xp, target, prob))
        H = s * G * slope
        dux, curv_x = S2.unit_second(xp, ux, nx, H @ uw, dx)
        duw, curv_w = S2.unit_second(xp, uw, nw, t(H) @ ux, dW)
        dc = dux @ t(uw) + ux @ t(duw)
        dz = s * slope * dc
        if self._norm_scaled:  # s = ||x|| moves by u . dx
            ds = xp.sum(ux * dx, axis=1, keepdims=True)
            dz = dz + ds * phi
        dG = wrow * S2.softmax_tangent(xp, prob, dz)
        bend = xp.where(target, d2psi[:, None] * dc, xp.zeros_like(c))
        dH = s * (dG * slope + G * bend)
        if self._norm_scaled:
            dH = dH + ds * G * slope
        hx = S2.back_second(xp, dH @ uw + H @ duw, ux, nx, curv_x)
        if self._norm_scaled:  # the change of the gradient's a u term, a = sum_j G_j phi_j
            a = xp.sum(G * phi, axis=1, keepdims=True)
            da = xp.sum(dG * phi + G * slope * dc, axis=1, keepdims=True)
            hx = hx + da * ux + a * dux
        return {"embeddings": hx, "weight": S2.back_second(xp, t(dH) @ ux + t(H) @ dux, uw, nw, curv_w)}

    def _item_jvp(self, xp, d, v):
        ux, nx, uw, nw = d["_u"]
        dx = self._direction(xp, v, "embeddings", d["embeddings"])
        dux = S2.unit_tangent(xp, ux, nx, dx)
        duw = S2.unit_tangent(xp, uw, nw, self._direction(xp, v, "weight", d["weight"]))
        c, target, (_, dpsi), phi, _, prob = self._pieces(xp, d, 1)
        dc = dux @ xp.matrix_transpose(uw) + ux @ xp.matrix_transpose(duw)
        dz = self._logit_scale(d) * xp.where(target, dpsi[:, None], xp.ones_like(c)) * dc
        if self._norm_scaled:
            dz = dz + xp.sum(ux * dx, axis=1, keepdims=True) * phi
        return S2.cross_entropy_tangent(xp, prob, target, dz)

    def _example_inputs(self, rng):
        n, k, dim = 8, 4, 5
        x = rng.normal(size=(n, dim))
        W = rng.normal(size=(k, dim))
        return {"embeddings": x, "labels": rng.integers(0, k, n), "weight": W}

    def _extreme_inputs(self, rng):
        ex = self._example_inputs(rng)
        return {"embeddings": 1e200 * ex["embeddings"], "labels": ex["labels"], "weight": 1e-200 * ex["weight"]}


@register("sphereface", "embedding",
          variants=({"margin": 2, "scale": 16.0}, {"margin": 3, "lambda_": 5.0, "scale": 8.0}, {"scale": None},
                    {"margin": 1, "lambda_": 2.0, "scale": None}))
@dataclass(frozen=True)
class SphereFace(_AngularMargin):
    r"""SphereFace, the multiplicative angular margin softmax A-Softmax (Liu et al. 2017).

    Target logit s phi(c_y) with c_y = cos(theta_y), other logits s c_j;
    l = -s phi(c_y) + log(e^{s phi(c_y)} + sum_{j != y} e^{s c_j}), where for an integer
    margin m >= 1 and the annealing weight lambda_ >= 0

        phi(c) = (lambda_ c + psi(c)) / (1 + lambda_),
        psi(theta) = (-1)^k cos(m theta) - 2k  for theta in [k pi / m, (k + 1) pi / m], k = 0..m-1,

    the monotone continuation of cos(m theta) (from L-Softmax, Liu et al. 2016): decreasing
    from psi(0) = 1 to psi(pi) = 1 - 2m.  In c it is a Chebyshev polynomial on each piece,
    psi(c) = (-1)^k T_m(c) - 2k (k = floor(m arccos(c) / pi), clipped to m - 1), with

        psi'(c) = (-1)^k m U_{m-1}(c),   psi''(c) = (-1)^k T_m''(c),

    T_m, U_{m-1} and T_m'' from their three-term recurrences (:mod:`._sphereface_psi`),
    phi' = (lambda_ + psi') / (1 + lambda_), phi'' = psi'' / (1 + lambda_).  lambda_ = 0 is the
    pure A-Softmax; a large lambda_ is close to plain softmax (the authors' training
    anneals lambda_ downwards); m = 1 gives psi(c) = c, the plain (normalised) softmax.

    Scale:

    * ``scale=s`` (float > 0, default 30): features normalised too, logits s cos theta_j
      and s phi(c_y), as in later practice (NormFace, CosFace, ArcFace, insightface);
    * ``scale=None``: the paper's original form, weights normalised and features not, logits
      ||x|| cos theta_j and ||x|| phi(c_y).  ||x|| is then differentiable: the gradient in x
      gains the term a u (u = x / ||x||, a = dl/d||x|| = sum_j (p_j - delta_jy) phi_j), and the
      Hessian-vector product its change (see the module docstring).

    Smoothness and kinks: psi' vanishes from both sides at the piece boundaries
    theta_y = j pi / m (j = 1..m-1; c_y = cos(j pi / m)), so value and gradient are
    continuous (differentiability 1), but psi'' jumps there by 2 m^2 / sin^2(j pi / m)
    (a kink of order 2); ``hvp`` returns the Hessian of the piece of larger theta at a
    boundary itself.  m = 1 has no boundary (differentiability 2).  At theta_y = 0 or pi
    (c_y = +-1) the Chebyshev forms stay finite (psi' = m^2, no division by sin theta, unlike
    ArcFace's psi').  The clip of c to [-1, 1] (rounding guard) is not differentiated.
    Not convex.

    Relation to the other angular margins: insightface's combined margin
    cos(m1 theta + m2) - m3 has m1 = SphereFace's multiplicative margin, m2 = ArcFace's and
    m3 = CosFace's additive ones; that formula itself has no monotone continuation for
    m1 theta > pi, which psi above supplies.  CosFace with margin 0 and ``sphereface`` with
    m = 1 (and the same ``scale``) are the same normalised softmax cross-entropy.

    Inputs: embeddings (N, D), labels (N,) in [0, C), weight (C, D); value (N,);
    ``reduction="mean"`` is the usual batch loss.
    Reference: W. Liu, Y. Wen, Z. Yu, M. Li, B. Raj, L. Song, SphereFace, CVPR 2017.
    (The A-Softmax loss with the lambda_-weighted target of the authors' training; the
    paper also defines the psi above, taken from L-Softmax.)

    With x at 45 degrees to W_0 and m = 2, psi(pi / 4) = cos(pi / 2) = 0, so the loss is
    log(1 + e^{s cos(pi / 4)}); with scale=None and x = (2, 2), s cos(pi / 4) = ||x|| / sqrt 2 = 2:

    >>> import numpy as np, lossgrad
    >>> x = np.array([[1.0, 1.0]]); W = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> np.round(lossgrad.get("sphereface", scale=1.0, margin=2).value(embeddings=x, labels=[0], weight=W), 6)
    array([1.10794])
    >>> np.round(lossgrad.get("sphereface", scale=None, margin=2).value(embeddings=2 * x, labels=[0], weight=W), 6)
    array([2.126928])
    """

    scale: float | None = 30.0
    margin: int = 4
    lambda_: float = 0.0
    _formula = Formula(r"-s\,\phi(c_y) + \log(e^{s\phi(c_y)} + \sum_{j\ne y} e^{s c_j}),\ "
                       r"\phi = \frac{\lambda c + \psi}{1 + \lambda},\ "
                       r"\psi(\theta) = (-1)^k \cos(m\theta) - 2k\ \ "
                       r"(\theta \in [\tfrac{k\pi}{m}, \tfrac{(k+1)\pi}{m}]),\ s = \text{scale or } \lVert x\rVert",
                       r"\partial l/\partial c_y = s(p_y - 1)\frac{\lambda + (-1)^k m\,U_{m-1}(c_y)}{1 + \lambda},\ "
                       r"\partial l/\partial c_j = s p_j\ (j \ne y);\ s = \lVert x\rVert:\ "
                       r"\partial l/\partial \lVert x\rVert = \sum_j (p_j - \delta_{jy})\phi_j",
                       r"\frac{\partial^2 l}{\partial c_j \partial c_k} = "
                       r"s^2 \phi'_j \phi'_k (p_j \delta_{jk} - p_j p_k) + "
                       r"s (p_y - 1)\frac{(-1)^k T_m''(c_y)}{1 + \lambda}\delta_{jy}\delta_{ky},\ "
                       r"\text{then through } c_{ij} = u_i \cdot v_j,\ u = x/\lVert x\rVert,\ v = W/\lVert W\rVert"
                       r"\ (s = \lVert x\rVert:\ \text{plus the } \lVert x\rVert \text{ terms})",
                       "c = cos(theta), theta angle between x and W_j")
    references: ClassVar[tuple[str, ...]] = (
        "Liu et al. (2017), SphereFace: deep hypersphere embedding for face recognition, CVPR",
        "Liu et al. (2016), Large-margin softmax loss for convolutional neural networks, ICML",
        "Deng et al. (2019), ArcFace, CVPR (the combined margin cos(m1 theta + m2) - m3)",
    )

    def __post_init__(self) -> None:
        if self.scale is not None:
            self._set("scale", V.param_positive(self._owner, "scale", self.scale))
        m = V.param_at_least(self._owner, "margin", self.margin, 1.0)
        if m != math.floor(m):
            raise ValueError(f"{self._owner}: margin must be an integer >= 1 (the multiplicative angular margin), "
                             f"got {self.margin!r}")
        self._set("margin", int(m))
        self._set("lambda_", V.param_nonnegative(self._owner, "lambda_", self.lambda_))

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=2 if self.margin == 1 else 1, basis=Basis.OTHER)

    def _psi(self, xp, c, order=1):
        """(phi, phi') of the target cosines c, and phi'' when order is 2 (see the class docstring)."""
        psis = sphereface_psi(xp, c, self.margin, order)
        lam = self.lambda_
        if lam == 0.0:
            return psis
        out = ((lam * c + psis[0]) / (1.0 + lam), (lam + psis[1]) / (1.0 + lam))
        return out if order < 2 else (*out, psis[2] / (1.0 + lam))

    def _example_inputs(self, rng):
        """The base draw, again until every target angle keeps min(0.02, pi / (8m)) rad from the
        piece boundaries j pi / m (psi'' jumps there)."""
        bounds = [j * math.pi / self.margin for j in range(1, self.margin)]
        gap = min(0.02, math.pi / (8 * self.margin))
        while True:
            ex = super()._example_inputs(rng)
            x, W = ex["embeddings"], ex["weight"][ex["labels"]]
            theta = np.arccos(np.clip(np.sum(x * W, axis=1) / np.linalg.norm(x, axis=1) / np.linalg.norm(W, axis=1),
                                      -1.0, 1.0))
            if all(np.all(np.abs(theta - b) >= gap) for b in bounds):
                return ex

    def _extreme_inputs(self, rng):
        """scale=None: tiny features against huge weights (the logits scale with ||x||; the
        mirrored 1e200 x, 1e-200 W would have a true weight gradient near 1e400)."""
        if not self._norm_scaled:
            return super()._extreme_inputs(rng)
        ex = self._example_inputs(rng)
        return {"embeddings": 1e-200 * ex["embeddings"], "labels": ex["labels"], "weight": 1e200 * ex["weight"]}


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

