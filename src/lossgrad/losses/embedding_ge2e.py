r"""Generalized end-to-end (GE2E) loss for speaker verification (Wan et al. 2018)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .. import _validation as V
from .. import _xp
from .._batch import BatchLoss
from .._props import Basis, Formula, Props
from .._registry import register
from . import _embedding_common as C

__all__ = ["GE2E"]


@register("ge2e", "embedding", variants=({"kind": "contrast"}, {"w": 3.0, "b": 1.0}))
@dataclass(frozen=True)
class GE2E(BatchLoss):
    r"""GE2E loss (Wan, Wang, Papir & Lopez Moreno, ICASSP 2018).

    ``embeddings`` e of shape (speakers J, utterances M, D).  Centroids
    c_k = mean_m e_km; for the utterance's own speaker the exclusive centroid
    c_j^(-i) = (sum_m e_jm - e_ji) / (M - 1) (paper, eq. 8).  Similarity matrix

        S_ji,k = w cos(e_ji, c_j^(-i)) + b   (k = j),     w cos(e_ji, c_k) + b   (k != j).

    * ``kind="softmax"`` (eq. 6): l_ji = -S_ji,j + log sum_k exp S_ji,k;
    * ``kind="contrast"`` (eq. 7): l_ji = 1 - sigmoid(S_ji,j) + max_{k != j} sigmoid(S_ji,k).

    Value: (J, M), one loss per utterance; the paper's L_G is the sum
    (``reduction="sum"``).  ``w`` and ``b`` are inputs too (optional; the fields are their
    defaults) and ``grad`` returns dL/dw = sum dL/dS * cos and dL/db = sum dL/dS in the
    shape they were given (a number or an array of one element).  With ``kind="softmax"``
    b cancels (a shift of every logit of a row), so dL/db is exactly 0.  The paper constrains
    w > 0 so that the similarity grows with the cosine: lossgrad raises a ValueError
    for w <= 0 (optimise an unconstrained parameter, e.g. w = softplus(rho) or a clamp
    after each step, and chain its derivative).

    Gradient: dl/dS from the softmax (softmax - onehot) or the contrast form
    (-sigmoid'(S_ji,j) at the own speaker, sigmoid'(S_ji,k*) at the hardest other speaker);
    dL/dcos = w dl/dS; through the normalisation of e_ji and of each centroid, then
    through the means (1/M for c_k, 1/(M - 1) for the exclusive centroids, which also
    subtract e_ji).  Requires J >= 2 speakers and M >= 2 utterances.

    Hessian-vector product (``hvp``, exact): forward-over-reverse written by hand.  Along
    v = (v_e, v_w, v_b), forward mode gives the change of every intermediate: of the means
    dm_k = mean_m v_km and dx_ji = (sum_m v_jm - v_ji) / (M - 1); of each unit vector
    u = x / ||x|| (utterances, shared and exclusive centroids) du = (I - u u^T) dx / ||x||;
    of the cosines dcos_ji,k = du_ji . c_k + u_ji . dc_k (the exclusive centroid at k = j);
    of the similarities dS = v_w cos + w dcos + v_b (softmax: without v_b, which shifts a
    whole row).  The change of g = dl/dS is, per row,

    * softmax: dg = p * (dS - sum_k p_k dS_k)  (p = softmax(S_ji): diag(p) - p p^T times dS);
    * contrast: dg = -sigma''(S_ji,j) dS_ji,j at the own speaker and sigma''(S_ji,k*) dS_ji,k*
      at the hardest other speaker k*, with sigma''(s) = sigma(s) sigma(-s) (sigma(-s) - sigma(s)).

    Then the gradient's chain is run again with each cotangent replaced by its change
    (product rule): H_w v = sum (dg cos + g dcos), H_b v = sum dg (softmax: exactly 0),
    dH = v_w g + w dg for H = dL/dcos, and through each normalisation the Jacobian times
    the cotangent's change plus the curvature of the normalisation itself,
    d[(I - u u^T) g_u / ||x||] = -(du (u . g_u) + u (du . g_u)) / ||x|| - (I - u u^T) g_u (u . dx) / ||x||^2
    (:func:`~lossgrad.losses._embedding_common.normalize_second`); the means and the
    leave-one-out sums are linear.  Every step costs what the gradient's does,
    O(J^2 M D).  The sample weights multiply g and dg.  ``_item_jvp``, the per-utterance
    change of the values, is sum_k dl/dS_ji,k dS_ji,k.  With ``kind="contrast"`` the
    max over the other speakers makes l only piecewise smooth: the Hessian is that of
    the active piece (the hardest speaker k*); at a tie k* is the first of the tied
    speakers, the gradient's choice.  A direction for w or b is a number or one element,
    of shape () or (1,), like the input.

    Reference: L. Wan, Q. Wang, A. Papir, I. Lopez Moreno, Generalized end-to-end loss
    for speaker verification, ICASSP 2018, eqs. (5)-(10).

    >>> import numpy as np, lossgrad
    >>> e = np.array([[[1.0, 0.0], [1.0, 0.1]], [[0.0, 1.0], [0.1, 1.0]]])
    >>> v = lossgrad.get("ge2e").value(embeddings=e)
    >>> v.shape, bool(np.all(v < 1e-3))
    ((2, 2), True)
    """

    w: float = 10.0
    b: float = -5.0
    kind: str = "softmax"
    inputs: ClassVar[tuple[str, ...]] = ("embeddings", "w", "b")
    differentiable: ClassVar[tuple[str, ...]] = ("embeddings", "w", "b")
    _optional_inputs: ClassVar[tuple[str, ...]] = ("w", "b")
    has_hvp: ClassVar[bool] = True
    _formula = Formula(r"-S_{ji,j} + \log\sum_k e^{S_{ji,k}},\ S_{ji,k} = w\cos(e_{ji}, c_k) + b",
                       r"\partial l/\partial S_{ji,k} = \mathrm{softmax}(S_{ji})_k - \delta_{jk}",
                       r"\dot g_{ji} = p_{ji} \odot (\dot S_{ji} - p_{ji}^\top \dot S_{ji}),\ "
                       r"\dot S = \dot w \cos + w\,\dot{\cos},\ \dot{\hat x} = (I - \hat x \hat x^\top)\dot x / \|x\|;\ "
                       r"\text{then the gradient's chain in } (g, \dot g) \text{ plus } "
                       r"-\big(\dot{\hat x}\,(\hat x^\top g) + \hat x\,(\dot{\hat x}^\top g)\big)/\|x\| "
                       r"- (I - \hat x \hat x^\top) g\,(\hat x^\top \dot x)/\|x\|^2 \text{ per normalisation}",
                       "e_ji utterance embeddings, c_k centroids; dots: changes along v")
    references: ClassVar[tuple[str, ...]] = ("Wan et al. (2018), GE2E, ICASSP",)

    def __post_init__(self) -> None:
        self._set("w", V.param_positive(self._owner, "w", self.w))
        self._set("b", V._number(self._owner, "b", self.b))
        if abs(self.b) == float("inf"):
            raise ValueError(f"{self._owner}: b must be finite, got {self.b!r}")
        V.param_choice(self._owner, "kind", self.kind, ("softmax", "contrast"))

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=2 if self.kind == "softmax" else 0,
                     basis=Basis.OTHER)

    def _prepare(self, inputs, sample_weight):
        given = dict(inputs)
        given.setdefault("w", self.w)
        given.setdefault("b", self.b)
        xp, a = self._coerce_inputs(given, {"embeddings": 3, "w": (0, 1), "b": (0, 1)})
        e = a["embeddings"]
        J, M = int(e.shape[0]), int(e.shape[1])
        if J < 2:
            raise ValueError(f"{self.name}: embeddings must hold at least 2 speakers (shape (speakers, utterances, dim)); "
                             f"got {J} speaker(s): the loss needs other speakers' centroids")
        if M < 2:
            raise ValueError(f"{self.name}: embeddings must hold at least 2 utterances per speaker; got {M}: "
                             "the exclusive centroid of the own speaker needs another utterance")
        for name in ("w", "b"):
            if a[name].ndim == 1 and int(a[name].shape[0]) != 1:
                raise ValueError(f"{self.name}: input {name} must be a scalar (or one element), got shape {tuple(a[name].shape)}")
        V.check_all(xp, a["w"] > 0, f"{self.name}: input w", "a value > 0 (GE2E keeps w positive, Wan et al. 2018)")
        _, n = C.normalize(xp, e)
        C.check_nonzero_rows(self, xp, n, "embeddings")
        sw = self._item_weight(xp, sample_weight, (J, M), e)
        return xp, {**a, "_shapes": (a["w"].shape, a["b"].shape)}, sw

    def _value(self, xp, d):
        return self._outer(xp, self._forward(xp, d), "value")[0]

    def _value_grad(self, xp, d, sw):
        f = self._forward(xp, d)
        v, dl, _ = self._outer(xp, f, "grad")
        g = self._backward(xp, f, dl * C.ones_weight(xp, sw, v)[:, :, None])
        return C.weighted(xp, v, sw), self._shaped(xp, d, g["embeddings"], g["w"], g["b"])

    # ------------------------------------------------------------ the chain, forward
    def _forward(self, xp, d) -> _Primal:
        """Normalised utterances, centroids (shared and exclusive), cosines, similarities S."""
        e = d["embeddings"]
        w, b = xp.reshape(d["w"], ()), xp.reshape(d["b"], ())
        J, M = int(e.shape[0]), int(e.shape[1])
        u, ne = C.normalize(xp, e)  # (J, M, D), (J, M, 1)
        cen, nc = C.normalize(xp, xp.mean(e, axis=1))  # (J, D), (J, 1)
        excl = (xp.sum(e, axis=1, keepdims=True) - e) / (M - 1)  # (J, M, D)
        cex, nx = C.normalize(xp, excl)
        own = C.eye(xp, J, e)[:, None, :]  # (J, 1, J): k == j
        cos = _own_or_shared(xp, own, xp.sum(u * cex, axis=-1), u @ xp.matrix_transpose(cen))
        fown = C.as_float(xp, xp.broadcast_to(own, cos.shape), cos)
        return _Primal(w, b, J, M, u, ne, cen, nc, cex, nx, own, fown, cos, w * cos + b)

    def _outer(self, xp, f: _Primal, need: str):
        """(per-utterance values, unweighted dl/dS or None, the second-order piece or None).

        ``need`` is "value", "grad" or "second"; the second-order piece is the softmax
        rows p (softmax) or sigma'' at the own and the hardest other speaker (contrast).
        """
        S, own = f.S, f.own
        if self.kind == "softmax":
            v, prob = C.cross_entropy_rows(xp, S, xp.broadcast_to(own, S.shape))
            dl = prob - f.fown if need != "value" else None
            return v, dl, prob if need == "second" else None
        s_own = xp.sum(xp.where(own, S, xp.zeros_like(S)), axis=-1)
        others = xp.where(own, xp.full(S.shape, -float("inf"), dtype=S.dtype, device=C.device(S)), S)
        hard = xp.argmax(others, axis=-1)  # (J, M); at a tie the first index, for grad and Hessian alike
        s_hard = xp.max(others, axis=-1)
        v = _xp.sigmoid(xp, -s_own) + _xp.sigmoid(xp, s_hard)
        if need == "value":
            return v, None, None
        kidx = xp.arange(f.J, device=C.device(S))
        at_hard = C.as_float(xp, kidx[None, None, :] == hard[:, :, None], S)
        d_own = -(_xp.sigmoid(xp, s_own) * _xp.sigmoid(xp, -s_own))
        d_hard = _xp.sigmoid(xp, s_hard) * _xp.sigmoid(xp, -s_hard)
        dl = xp.where(own, d_own[:, :, None], d_hard[:, :, None] * at_hard)
        if need != "second":
            return v, dl, None
        dd_own = -_sigmoid_second(xp, s_own)  # d/ds of -sigma'(s)
        dd_hard = _sigmoid_second(xp, s_hard)
        return v, dl, xp.where(own, dd_own[:, :, None], dd_hard[:, :, None] * at_hard)

    def _tangent(self, xp, f: _Primal, d, v) -> _Tangent:
        """Forward mode along the direction v: every intermediate's change, up to dS."""
        ve = self._direction(xp, v, "embeddings", d["embeddings"])
        vw, vb = self._scalar_direction(xp, v, "w", d["w"]), self._scalar_direction(xp, v, "b", d["b"])
        dm = xp.mean(ve, axis=1)  # change of the shared centroid's mean
        dexcl = (xp.sum(ve, axis=1, keepdims=True) - ve) / (f.M - 1)
        du = C.through_normalize(xp, ve, f.u, f.ne)  # (I - u u^T) ve / ||e||
        dcen = C.through_normalize(xp, dm, f.cen, f.nc)
        dcex = C.through_normalize(xp, dexcl, f.cex, f.nx)
        dcos = _own_or_shared(xp, f.own, xp.sum(du * f.cex + f.u * dcex, axis=-1),
                              du @ xp.matrix_transpose(f.cen) + f.u @ xp.matrix_transpose(dcen))
        dS = vw * f.cos + f.w * dcos
        if self.kind == "contrast":  # softmax: b shifts a whole row, the loss does not move
            dS = dS + vb
        return _Tangent(ve, vw, dm, dexcl, du, dcen, dcex, dcos, dS)

    # ------------------------------------------------------------ the chain, reverse
    def _backward(self, xp, f: _Primal, gS) -> dict:
        """Reverse through the chain from gS = dL/dS (weighted): gradients, and the cotangents of the
        three normalisations (g_u, g_cen, g_cex) that the second order needs."""
        J, M = f.J, f.M
        gw = xp.sum(gS * f.cos)
        # softmax: sum_k dl/dS_ji,k = 0, the loss does not depend on b (returned as an exact 0)
        gb = xp.sum(gS) if self.kind == "contrast" else xp.zeros_like(gw)
        H = f.w * gS  # dL/dcos
        H_own = xp.sum(H * f.fown, axis=-1)  # (J, M)
        H_inc = H * (1.0 - f.fown)
        g_u = H_inc @ f.cen + H_own[:, :, None] * f.cex
        g_cen = xp.matrix_transpose(xp.reshape(H_inc, (J * M, J))) @ xp.reshape(f.u, (J * M, -1))  # (J, D)
        g_cex = H_own[:, :, None] * f.u
        g_c = C.through_normalize(xp, g_cen, f.cen, f.nc)  # dL/d(mean_m e_km)
        g_x = C.through_normalize(xp, g_cex, f.cex, f.nx)  # dL/d(exclusive centroid)
        g_e = C.through_normalize(xp, g_u, f.u, f.ne) + g_c[:, None, :] / M + _leave_one_out(xp, g_x, M)
        return {"embeddings": g_e, "w": gw, "b": gb, "H_own": H_own, "H_inc": H_inc,
                "g_u": g_u, "g_cen": g_cen, "g_cex": g_cex}

    def _hvp(self, xp, d, sw, v):
        """Forward-over-reverse: the tangents along v, the change t_gS of the weighted
        gS = dL/dS, then :meth:`_backward_tangent` (see the class docstring)."""
        f = self._forward(xp, d)
        t = self._tangent(xp, f, d, v)
        val, dl, second = self._outer(xp, f, "second")
        weight = C.ones_weight(xp, sw, val)[:, :, None]
        gS = dl * weight
        if self.kind == "softmax":  # the change of softmax - onehot: p (dS - sum p dS)
            t_gS = weight * second * (t.dS - xp.sum(second * t.dS, axis=-1, keepdims=True))
        else:  # sigma'' at the own and the hardest other speaker: a diagonal curvature
            t_gS = weight * second * t.dS
        g = self._backward(xp, f, gS)
        return self._shaped(xp, d, *self._backward_tangent(xp, f, t, g, gS, t_gS))

    def _backward_tangent(self, xp, f: _Primal, t: _Tangent, g: dict, gS, t_gS):
        """The tangent of :meth:`_backward` along t, given gS and its tangent t_gS:
        (H v in the embeddings, in w, in b)."""
        J, M = f.J, f.M
        t_gw = xp.sum(t_gS * f.cos + gS * t.dcos)
        t_gb = xp.sum(t_gS) if self.kind == "contrast" else xp.zeros_like(t_gw)
        t_H = t.vw * gS + f.w * t_gS
        t_H_own = xp.sum(t_H * f.fown, axis=-1)
        t_H_inc = t_H * (1.0 - f.fown)
        H_own, H_inc = g["H_own"], g["H_inc"]
        t_g_u = (t_H_inc @ f.cen + H_inc @ t.dcen
                 + t_H_own[:, :, None] * f.cex + H_own[:, :, None] * t.dcex)
        t_g_cen = (xp.matrix_transpose(xp.reshape(t_H_inc, (J * M, J))) @ xp.reshape(f.u, (J * M, -1))
                   + xp.matrix_transpose(xp.reshape(H_inc, (J * M, J))) @ xp.reshape(t.du, (J * M, -1)))
        t_g_cex = t_H_own[:, :, None] * f.u + H_own[:, :, None] * t.du
        # each normalisation: its Jacobian times the cotangent's tangent, plus its own curvature
        _, curv_u = C.normalize_second(xp, f.u, f.ne, g["g_u"], t.ve)
        _, curv_c = C.normalize_second(xp, f.cen, f.nc, g["g_cen"], t.dm)
        _, curv_x = C.normalize_second(xp, f.cex, f.nx, g["g_cex"], t.dexcl)
        t_g_c = C.through_normalize(xp, t_g_cen, f.cen, f.nc) + curv_c
        t_g_x = C.through_normalize(xp, t_g_cex, f.cex, f.nx) + curv_x
        t_g_e = (C.through_normalize(xp, t_g_u, f.u, f.ne) + curv_u
                 + t_g_c[:, None, :] / M + _leave_one_out(xp, t_g_x, M))
        return t_g_e, t_gw, t_gb

    def _item_jvp(self, xp, d, v):
        f = self._forward(xp, d)
        dl = self._outer(xp, f, "grad")[1]
        return xp.sum(dl * self._tangent(xp, f, d, v).dS, axis=-1)

    def _scalar_direction(self, xp, v, name, like):
        """v[name] for the scalar w or b, as a 0-d array: like the input itself it may be a
        number or one element of shape () or (1,) (the PyTorch adapter hands back (1,))."""
        if tuple(np.shape(v.get(name, 0.0))) in ((), (1,)):
            like = xp.reshape(like, tuple(np.shape(v.get(name, 0.0))))
        return xp.reshape(self._direction(xp, v, name, like), ())

    def _shaped(self, xp, d, g_e, gw, gb) -> dict:
        ws, bs = d["_shapes"]
        return {"embeddings": g_e, "w": xp.reshape(gw, ws), "b": xp.reshape(gb, bs)}

    def _example_inputs(self, rng):
        J, M, dim = 3, 4, 5
        centers = rng.normal(size=(J, 1, dim))
        e = centers + rng.normal(scale=0.6, size=(J, M, dim))
        return {"embeddings": e, "w": np.asarray(rng.uniform(2.0, 8.0)), "b": np.asarray(rng.uniform(-3.0, 1.0))}

    def _extreme_inputs(self, rng):
        ex = self._example_inputs(rng)
        return {"embeddings": 1e200 * ex["embeddings"], "w": 1e6 * ex["w"], "b": ex["b"]}


@dataclass(frozen=True)
class _Primal:
    """The forward chain of GE2E (see :meth:`GE2E._forward`)."""

    w: Any
    b: Any
    J: int
    M: int
    u: Any  # e / ||e||, (J, M, D)
    ne: Any  # ||e||, (J, M, 1)
    cen: Any  # normalised shared centroids, (J, D)
    nc: Any
    cex: Any  # normalised exclusive centroids, (J, M, D)
    nx: Any
    own: Any  # boolean (J, 1, J): k == j
    fown: Any  # the same as floats, (J, M, J)
    cos: Any  # (J, M, J)
    S: Any  # w cos + b


@dataclass(frozen=True)
class _Tangent:
    """The change of each intermediate along a direction (see :meth:`GE2E._tangent`)."""

    ve: Any  # the direction in the embeddings
    vw: Any
    dm: Any  # of the shared centroids' means, (J, D)
    dexcl: Any  # of the exclusive centroids, (J, M, D)
    du: Any
    dcen: Any
    dcex: Any
    dcos: Any
    dS: Any


def _own_or_shared(xp, own, at_own, shared):
    """Cosines (J, M, J): the exclusive centroid's at k == j, the shared centroid's elsewhere."""
    return xp.where(own, at_own[:, :, None], shared)


def _leave_one_out(xp, g, M):
    """Through excl_ji = (sum_m e_jm - e_ji) / (M - 1): dL/de_jm = (sum_i g_ji - g_jm) / (M - 1)."""
    return (xp.sum(g, axis=1, keepdims=True) - g) / (M - 1)


def _sigmoid_second(xp, s):
    """sigma''(s) = sigma(s) sigma(-s) (sigma(-s) - sigma(s)), without overflow."""
    p, q = _xp.sigmoid(xp, s), _xp.sigmoid(xp, -s)
    return p * q * (q - p)
