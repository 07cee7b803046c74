r"""Generalized end-to-end (GE2E) loss for speaker verification (Wan et al. 2018)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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
    _formula = Formula(r"-S_{ji,j} + \log\sum_k e^{S_{ji,k}},\ S_{ji,k} = w\cos(e_{ji}, c_k) + b",
                       r"\partial l/\partial S_{ji,k} = \mathrm{softmax}(S_{ji})_k - \delta_{jk}",
                       r"\text{(not provided)}", "e_ji utterance embeddings, c_k centroids")
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
                     basis=Basis.OTHER, has_hess=False)

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
        u, n = C.normalize(xp, e)
        C.check_nonzero_rows(self, xp, n, "embeddings")
        sw = self._item_weight(xp, sample_weight, (J, M), e)
        return xp, {**a, "_shapes": (a["w"].shape, a["b"].shape)}, sw

    def _value(self, xp, d):
        return self._evaluate(xp, d, None, grad=False)[0]

    def _value_grad(self, xp, d, sw):
        v, g = self._evaluate(xp, d, sw, grad=True)
        return C.weighted(xp, v, sw), g

    def _evaluate(self, xp, d, sw, grad):
        e = d["embeddings"]
        w, b = xp.reshape(d["w"], ()), xp.reshape(d["b"], ())
        J, M = int(e.shape[0]), int(e.shape[1])
        u, ne = C.normalize(xp, e)  # (J, M, D), (J, M, 1)
        cen, nc = C.normalize(xp, xp.mean(e, axis=1))  # (J, D), (J, 1)
        excl = (xp.sum(e, axis=1, keepdims=True) - e) / (M - 1)  # (J, M, D)
        cex, nx = C.normalize(xp, excl)
        cos_inc = u @ xp.matrix_transpose(cen)  # (J, M, J)
        cos_own = xp.sum(u * cex, axis=-1)  # (J, M)
        own = C.eye(xp, J, e)[:, None, :]  # (J, 1, J): k == j
        cos = xp.where(own, cos_own[:, :, None], cos_inc)
        S = w * cos + b
        if self.kind == "softmax":
            v, prob = C.cross_entropy_rows(xp, S, xp.broadcast_to(own, S.shape))
            dS = prob - C.as_float(xp, xp.broadcast_to(own, S.shape), prob) if grad else None
        else:
            s_own = xp.sum(xp.where(own, S, xp.zeros_like(S)), axis=-1)
            others = xp.where(own, xp.full(S.shape, -float("inf"), dtype=S.dtype, device=C.device(S)), S)
            hard = xp.argmax(others, axis=-1)  # (J, M)
            s_hard = xp.max(others, axis=-1)
            v = _xp.sigmoid(xp, -s_own) + _xp.sigmoid(xp, s_hard)
            if grad:
                kidx = xp.arange(J, device=C.device(S))
                at_hard = C.as_float(xp, kidx[None, None, :] == hard[:, :, None], S)
                d_own = -(_xp.sigmoid(xp, s_own) * _xp.sigmoid(xp, -s_own))
                d_hard = _xp.sigmoid(xp, s_hard) * _xp.sigmoid(xp, -s_hard)
                dS = xp.where(own, d_own[:, :, None], d_hard[:, :, None] * at_hard)
        if not grad:
            return v, None
        dS = dS * C.ones_weight(xp, sw, v)[:, :, None]
        gw = xp.sum(dS * cos)
        # softmax: sum_k dl/dS_ji,k = 0, the loss does not depend on b (returned as an exact 0)
        gb = xp.sum(dS) if self.kind == "contrast" else xp.zeros_like(gw)
        H = w * dS  # dL/dcos
        fown = C.as_float(xp, xp.broadcast_to(own, S.shape), S)
        H_own = xp.sum(H * fown, axis=-1)  # (J, M)
        H_inc = H * (1.0 - fown)
        g_u = H_inc @ cen + H_own[:, :, None] * cex
        g_cen = xp.matrix_transpose(xp.reshape(H_inc, (J * M, J))) @ xp.reshape(u, (J * M, -1))  # (J, D)
        g_c = C.through_normalize(xp, g_cen, cen, nc)  # dL/d(mean_m e_km)
        g_x = C.through_normalize(xp, H_own[:, :, None] * u, cex, nx)  # dL/d(exclusive centroid)
        g_e = (C.through_normalize(xp, g_u, u, ne) + g_c[:, None, :] / M
               + (xp.sum(g_x, axis=1, keepdims=True) - g_x) / (M - 1))
        ws, bs = d["_shapes"]
        return v, {"embeddings": g_e, "w": xp.reshape(gw, ws), "b": xp.reshape(gb, bs)}

    def _example_inputs(self, rng):
        import numpy as np

        J, M, dim = 3, 4, 5
        centers = rng.normal(size=(J, 1, dim))
        e = centers + rng.normal(scale=0.6, size=(J, M, dim))
        return {"embeddings": e, "w": np.asarray(rng.uniform(2.0, 8.0)), "b": np.asarray(rng.uniform(-3.0, 1.0))}

    def _extreme_inputs(self, rng):
        ex = self._example_inputs(rng)
        return {"embeddings": 1e200 * ex["embeddings"], "w": 1e6 * ex["w"], "b": ex["b"]}
