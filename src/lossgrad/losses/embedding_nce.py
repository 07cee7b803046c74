r"""In-batch softmax losses: InfoNCE / NT-Xent and multiple negatives ranking.

Both are a cross-entropy over a similarity matrix whose diagonal holds the positives.
With S the (scaled) similarity matrix and G = w (softmax(S) - I) row by row, the
gradient w.r.t. the unit vectors is G U_k * scale for the queries and G^T U_q * scale for
the keys, then through normalisation (see :mod:`._embedding_common`).

Second order (``hvp``, ``_item_jvp``; pieces in :mod:`._softmax_embedding_second`): along
a direction (dQ, dK) of the raw embeddings, dU = P dX with P = (I - u u^T) / ||x|| row by
row (dU = dX for the dot product), dS = scale (dU_q U_k^T + U_q dU_k^T), and the
softmax Jacobian gives dG = w p * (dS - sum_j p_j dS_j) * scale.  Then

    H[v]_q = P_q (dG U_k + G dU_k) + dP_q[dQ] (G U_k),
    H[v]_k = P_k (dG^T U_q + G^T dU_q) + dP_k[dK] (G^T U_q),

dP[v] g the curvature of normalisation (:func:`._embedding_common.normalize_second`; 0
for the dot product).  The per-item directional derivative is dl_i = sum_j (p_ij -
delta_ij) dS_ij: an item's value moves with every row of the batch.  The cost is a few
(N, M) x (M, D) products, that of the gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import _validation as V
from .._batch import BatchLoss
from .._props import Basis, Formula, Props
from .._registry import register
from . import _embedding_common as C
from . import _softmax_embedding_second as S2

__all__ = ["InfoNCE", "MultipleNegativesRanking"]


class _InBatch(BatchLoss):
    differentiable: ClassVar[tuple[str, ...]] = ("anchors", "positives")

    def _prepare(self, inputs, sample_weight):
        xp, a = self._coerce_inputs(inputs, {"anchors": 2, "positives": 2, "negatives": 2})
        q = a["anchors"]
        for name in ("positives", "negatives"):
            if name in a and a[name].shape[1] != q.shape[1]:
                raise ValueError(f"{self.name}: anchors and {name} must have the same embedding dimension; "
                                 f"got {tuple(q.shape)} and {tuple(a[name].shape)} (embedding dimensions differ)")
        if a["positives"].shape[0] != q.shape[0]:
            raise ValueError(f"{self.name}: positives must have one row per anchor (row i is the positive of "
                             f"anchor i); got {tuple(a['positives'].shape)} for anchors {tuple(q.shape)}")
        n_candidates = int(q.shape[0]) + (int(a["negatives"].shape[0]) if "negatives" in a else 0)
        if n_candidates < 2:
            raise ValueError(f"{self.name}: needs at least 2 candidates per anchor (in-batch negatives); got a batch "
                             "of 1 pair and no negatives")
        if self._cosine:
            for name, x in a.items():
                C.check_nonzero_rows(self, xp, C.row_norm(xp, x), name)
        return xp, a, self._item_weight(xp, sample_weight, tuple(q.shape[:1]), q)

    _cosine: ClassVar[bool] = True

    def _value(self, xp, d):
        return self._evaluate(xp, d, None, grad=False)[0]

    def _value_grad(self, xp, d, w):
        v, g = self._evaluate(xp, d, w, grad=True)
        return C.weighted(xp, v, w), g

    def _unit(self, xp, x):
        if self._cosine:
            return C.normalize(xp, x)
        return x, None

    def _back(self, xp, g, u, n):
        return g if n is None else C.through_normalize(xp, g, u, n)

    def _asymmetric_pieces(self, xp, q, keys, scale):
        """(uq, nq, uk, nk, target, l, softmax) of l_i = logsumexp_j S_ij - S_ii, S = scale * sim(q_i, k_j)."""
        uq, nq = self._unit(xp, q)
        uk, nk = self._unit(xp, keys)
        S = scale * (uq @ xp.matrix_transpose(uk))
        target = C.eye(xp, int(keys.shape[0]), keys)[: q.shape[0], :]
        v, prob = C.cross_entropy_rows(xp, S, target)
        return uq, nq, uk, nk, target, v, prob

    def _asymmetric(self, xp, q, keys, scale, w, grad):
        """l_i = logsumexp_j S_ij - S_ii with S = scale * sim(q_i, k_j); keys = [positives; negatives]."""
        uq, nq, uk, nk, target, v, prob = self._asymmetric_pieces(xp, q, keys, scale)
        if not grad:
            return v, None, None
        G = C.ones_weight(xp, w, v)[:, None] * (prob - C.as_float(xp, target, prob)) * scale
        gq = self._back(xp, G @ uk, uq, nq)
        gk = self._back(xp, xp.matrix_transpose(G) @ uq, uk, nk)
        return v, gq, gk

    def _asymmetric_second(self, xp, q, keys, dq, dk, scale, w, hvp):
        """Along (dq, dk): the Hessian-vector products (hq, hk) of sum(w * l) (hvp=True), or
        the per-item derivatives dl_i = sum_j (p_ij - delta_ij) dS_ij (hvp=False)."""
        uq, nq, uk, nk, target, v, prob = self._asymmetric_pieces(xp, q, keys, scale)
        t = xp.matrix_transpose
        if not hvp:
            dS = scale * (S2.unit_tangent(xp, uq, nq, dq) @ t(uk) + uq @ t(S2.unit_tangent(xp, uk, nk, dk)))
            return S2.cross_entropy_tangent(xp, prob, target, dS)
        wrow = C.ones_weight(xp, w, v)[:, None]
        G = wrow * (prob - C.as_float(xp, target, prob)) * scale
        duq, curv_q = S2.unit_second(xp, uq, nq, G @ uk, dq)
        duk, curv_k = S2.unit_second(xp, uk, nk, t(G) @ uq, dk)
        dG = wrow * S2.softmax_tangent(xp, prob, scale * (duq @ t(uk) + uq @ t(duk))) * scale
        hq = S2.back_second(xp, dG @ uk + G @ duk, uq, nq, curv_q)
        hk = S2.back_second(xp, t(dG) @ uq + t(G) @ duq, uk, nk, curv_k)
        return hq, hk

    # --- second order ---------------------------------------------------------
    has_hvp: ClassVar[bool] = True

    def _hvp(self, xp, d, w, v):
        return self._second(xp, d, w, self._directions(xp, d, v), hvp=True)

    def _item_jvp(self, xp, d, v):
        return self._second(xp, d, None, self._directions(xp, d, v), hvp=False)

    def _directions(self, xp, d, v):
        """The direction of every differentiable input given (zeros where v leaves it out)."""
        for name in self.differentiable:
            if name not in d and v.get(name) is not None:
                raise ValueError(f"{self.name}: v['{name}'] is given but input {name} is not "
                                 "(nothing to differentiate)")
        return {name: self._direction(xp, v, name, d[name]) for name in self.differentiable if name in d}


@register("info_nce", "embedding", variants=({"symmetric": True}, {"temperature": 0.5}, {"temperature": 0.2, "symmetric": True}))
@dataclass(frozen=True)
class InfoNCE(_InBatch):
    r"""InfoNCE with in-batch negatives (van den Oord et al. 2018); NT-Xent (SimCLR) when symmetric.

    With u = x / ||x|| and s(x, y) = u_x . u_y / temperature (the cosine similarity of
    SimCLR's NT-Xent; InfoNCE allows any critic, lossgrad uses this one):

    * ``symmetric=False``: l_i = -s(a_i, p_i) + log sum_j exp s(a_i, p_j) (each anchor
      against every positive of the batch; row i of ``positives`` is anchor i's positive).
    * ``symmetric=True`` (SimCLR, Chen et al. 2020): the 2N views z = [anchors; positives];
      for view k with partner k' (k' = k +- N), l_k = -s(z_k, z_k') + log sum_{j != k} exp s(z_k, z_j);
      the value of pair i is (l_i + l_{i+N}) / 2, so the mean over pairs is SimCLR's mean
      over the 2N views.

    Gradient: with G = w (softmax(S) - onehot) per row, dL/du = G U / temperature (and
    its transpose for the keys), then dL/dx = (g - (g.u) u) / ||x||.
    Hessian-vector product (exact, never forming a Hessian): along (da, dp), with
    P = (I - u u^T) / ||x|| per row, dU = P dX, dS = (dU_a U_p^T + U_a dU_p^T) / temperature
    and dG = w p * (dS - sum_j p_j dS_j) / temperature (the softmax Jacobian),
    H[v]_a = P_a (dG U_p + G dU_p) + dP_a[da] (G U_p) and H[v]_p = P_p (dG^T U_a + G^T dU_a)
    + dP_p[dp] (G^T U_a), dP[v] g = -(du (u.g) + u (du.g)) / ||x|| - (g - (u.g) u)(u.v) / ||x||^2
    the curvature of normalisation.  Symmetric: the same with U = U_z on both sides of the
    masked 2N x 2N matrix, G + G^T in place of G and of G^T, per-view weights w / 2.

    Inputs: anchors, positives (N, D), N >= 2; value (N,).  Zero vectors are rejected.
    References: van den Oord, Li & Vinyals, Representation learning with contrastive
    predictive coding, arXiv:1807.03748; Chen et al., A simple framework for contrastive
    learning of visual representations (SimCLR), ICML 2020.

    >>> import numpy as np, lossgrad
    >>> a = np.eye(2); loss = lossgrad.get("info_nce", temperature=1.0)
    >>> np.round(loss.value(anchors=a, positives=a), 6)
    array([0.313262, 0.313262])
    """

    temperature: float = 0.07
    symmetric: bool = False
    inputs: ClassVar[tuple[str, ...]] = ("anchors", "positives")
    _formula = Formula(r"-s_{ii} + \log\sum_j e^{s_{ij}},\ s_{ij} = \cos(a_i, p_j)/\tau",
                       r"\partial l/\partial s_{ij} = \mathrm{softmax}(s_i)_j - \delta_{ij}",
                       r"H[v]_a = P_a(\dot G U_p + G\,\dot U_p) + \dot P_a[v_a]\,G U_p,\ "
                       r"G = w(\mathrm{softmax}(S) - I)/\tau,\ "
                       r"\dot G = w\,p \odot (\dot S - \langle p, \dot S\rangle)/\tau,\ "
                       r"\dot S = (\dot U_a U_p^\top + U_a \dot U_p^\top)/\tau,\ "
                       r"\dot U = P v,\ P = (I - u u^\top)/\lVert x\rVert",
                       "a, p embeddings")
    references: ClassVar[tuple[str, ...]] = ("van den Oord et al. (2018), arXiv:1807.03748",
                                             "Chen et al. (2020), SimCLR, ICML")

    def __post_init__(self) -> None:
        self._set("temperature", V.param_positive(self._owner, "temperature", self.temperature))
        self._set("symmetric", V.param_bool(self._owner, "symmetric", self.symmetric))

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=2, basis=Basis.OTHER)

    def _evaluate(self, xp, d, w, grad):
        a, p = d["anchors"], d["positives"]
        scale = 1.0 / self.temperature
        if not self.symmetric:
            v, ga, gp = self._asymmetric(xp, a, p, scale, w, grad)
            return v, (None if not grad else {"anchors": ga, "positives": gp})
        u, nz, partner, lk, prob = self._symmetric_pieces(xp, a, p, scale)
        n = int(a.shape[0])
        v = 0.5 * (lk[:n] + lk[n:])
        if not grad:
            return v, None
        wk = 0.5 * xp.concat([C.ones_weight(xp, w, v)] * 2, axis=0)
        G = wk[:, None] * (prob - C.as_float(xp, partner, prob)) * scale
        gz = C.through_normalize(xp, (G + xp.matrix_transpose(G)) @ u, u, nz)
        return v, {"anchors": gz[:n], "positives": gz[n:]}

    def _symmetric_pieces(self, xp, a, p, scale):
        """(u, ||z||, partner mask, l per view, softmax) over the 2N views z = [a; p], self-similarity masked."""
        n = int(a.shape[0])
        z = xp.concat([a, p], axis=0)
        u, nz = C.normalize(xp, z)
        S = scale * (u @ xp.matrix_transpose(u))
        self_mask = C.eye(xp, 2 * n, z)
        S = xp.where(self_mask, xp.full(S.shape, -float("inf"), dtype=S.dtype, device=C.device(S)), S)
        idx = xp.arange(2 * n, device=C.device(z))
        partner = (idx[:, None] + n) % (2 * n) == idx[None, :]
        lk, prob = C.cross_entropy_rows(xp, S, partner)
        return u, nz, partner, lk, prob

    def _second(self, xp, d, w, dirs, hvp):
        a, p = d["anchors"], d["positives"]
        scale = 1.0 / self.temperature
        if not self.symmetric:
            out = self._asymmetric_second(xp, a, p, dirs["anchors"], dirs["positives"], scale, w, hvp)
            return {"anchors": out[0], "positives": out[1]} if hvp else out
        u, nz, partner, lk, prob = self._symmetric_pieces(xp, a, p, scale)
        n = int(a.shape[0])
        dz = xp.concat([dirs["anchors"], dirs["positives"]], axis=0)
        t = xp.matrix_transpose
        if not hvp:  # the masked diagonal has p = 0 and p - partner = 0: its finite dS is not read
            du = S2.unit_tangent(xp, u, nz, dz)
            dlk = S2.cross_entropy_tangent(xp, prob, partner, scale * (du @ t(u) + u @ t(du)))
            return 0.5 * (dlk[:n] + dlk[n:])
        wk = 0.5 * xp.concat([C.ones_weight(xp, w, lk[:n])] * 2, axis=0)
        G = wk[:, None] * (prob - C.as_float(xp, partner, prob)) * scale
        Gs = G + t(G)
        du, curvature = S2.unit_second(xp, u, nz, Gs @ u, dz)
        dG = wk[:, None] * S2.softmax_tangent(xp, prob, scale * (du @ t(u) + u @ t(du))) * scale
        hz = S2.back_second(xp, (dG + t(dG)) @ u + Gs @ du, u, nz, curvature)
        return {"anchors": hz[:n], "positives": hz[n:]}

    def _example_inputs(self, rng):
        n, dim = 6, 5
        a = rng.normal(size=(n, dim))
        return {"anchors": a, "positives": a + rng.normal(scale=0.7, size=(n, dim))}

    def _extreme_inputs(self, rng):
        ex = self._example_inputs(rng)
        return {"anchors": 1e200 * ex["anchors"], "positives": 1e-200 * ex["positives"]}


@register("multiple_negatives_ranking", "embedding",
          variants=({"similarity": "dot", "scale": 1.0}, {"scale": 5.0}))
@dataclass(frozen=True)
class MultipleNegativesRanking(_InBatch):
    r"""Multiple negatives ranking loss (Henderson et al. 2017), as sentence-transformers.

    S_ij = scale * sim(a_i, c_j) over the candidates c = [positives; negatives] and
    l_i = -S_ii + log sum_j exp S_ij: every other anchor's positive (and every hard
    negative) is a negative of anchor i.  ``similarity="cosine"`` (the default of
    sentence-transformers, ``util.cos_sim``) or ``"dot"`` (``util.dot_score``).
    Gradient: G = w (softmax(S) - onehot) row by row; dL/da = scale G C', dL/dc =
    scale G^T A' (C', A' the unit vectors for cosine, the raw ones for dot), then through
    normalisation for cosine.
    Hessian-vector product along (da, dc) (dc = [dp; dn]): dA' = P_a da, dC' = P_c dc
    (P = (I - u u^T) / ||x|| per row for cosine, the identity for dot), dS = scale (dA' C'^T +
    A' dC'^T), dG = w p * (dS - sum_j p_j dS_j) (softmax Jacobian, row by row);
    H[v]_a = P_a scale (dG C' + G dC') + dP_a[da] (scale G C'),
    H[v]_c = P_c scale (dG^T A' + G^T dA') + dP_c[dc] (scale G^T A'), with dP[v] g the
    curvature of normalisation (:func:`._embedding_common.normalize_second`; 0 for dot).

    Inputs: anchors, positives (N, D); optional ``negatives`` (K, D) of hard negatives
    shared by every anchor (sentence-transformers concatenates the negative columns of
    all anchors the same way); value (N,).  Gradients for anchors and positives, and for
    negatives when given.
    Reference: Henderson et al., Efficient natural language response suggestion for
    smart reply, arXiv:1705.00652; sentence-transformers MultipleNegativesRankingLoss.

    >>> import numpy as np, lossgrad
    >>> a = np.eye(2); loss = lossgrad.get("multiple_negatives_ranking", scale=1.0)
    >>> np.round(loss.value(anchors=a, positives=a), 6)
    array([0.313262, 0.313262])
    """

    scale: float = 20.0
    similarity: str = "cosine"
    inputs: ClassVar[tuple[str, ...]] = ("anchors", "positives", "negatives")
    differentiable: ClassVar[tuple[str, ...]] = ("anchors", "positives", "negatives")
    _optional_inputs: ClassVar[tuple[str, ...]] = ("negatives",)
    _formula = Formula(r"-S_{ii} + \log\sum_j e^{S_{ij}},\ S = \text{scale}\cdot\mathrm{sim}(a, [p; n])",
                       r"\partial l/\partial S_{ij} = \mathrm{softmax}(S_i)_j - \delta_{ij}",
                       r"H[v]_a = P_a\,\text{scale}(\dot G C' + G\,\dot C') + \dot P_a[v_a]\,\text{scale}\,G C',\ "
                       r"G = w(\mathrm{softmax}(S) - I),\ \dot G = w\,p \odot (\dot S - \langle p, \dot S\rangle),\ "
                       r"\dot S = \text{scale}(\dot A' C'^\top + A' \dot C'^\top),\ \dot X' = P v"
                       r"\ (P = (I - u u^\top)/\lVert x\rVert \text{ cosine}, I \text{ dot})",
                       "a, p, n embeddings")
    references: ClassVar[tuple[str, ...]] = ("Henderson et al. (2017), arXiv:1705.00652",)

    def __post_init__(self) -> None:
        self._set("scale", V.param_positive(self._owner, "scale", self.scale))
        V.param_choice(self._owner, "similarity", self.similarity, ("cosine", "dot"))

    @property
    def _cosine(self) -> bool:  # type: ignore[override]
        return self.similarity == "cosine"

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=2, basis=Basis.OTHER)

    def _evaluate(self, xp, d, w, grad):
        a, p = d["anchors"], d["positives"]
        has_neg = "negatives" in d
        keys = xp.concat([p, d["negatives"]], axis=0) if has_neg else p
        v, ga, gk = self._asymmetric(xp, a, keys, self.scale, w, grad)
        if not grad:
            return v, None
        n = int(p.shape[0])
        g = {"anchors": ga, "positives": gk[:n]}
        if has_neg:
            g["negatives"] = gk[n:]
        return v, g

    def _second(self, xp, d, w, dirs, hvp):
        has_neg = "negatives" in d
        keys = xp.concat([d["positives"], d["negatives"]], axis=0) if has_neg else d["positives"]
        dk = xp.concat([dirs["positives"], dirs["negatives"]], axis=0) if has_neg else dirs["positives"]
        out = self._asymmetric_second(xp, d["anchors"], keys, dirs["anchors"], dk, self.scale, w, hvp)
        if not hvp:
            return out
        n = int(d["positives"].shape[0])
        h = {"anchors": out[0], "positives": out[1][:n]}
        if has_neg:
            h["negatives"] = out[1][n:]
        return h

    def _example_inputs(self, rng):
        n, dim = 5, 4
        a = rng.normal(size=(n, dim))
        return {"anchors": a, "positives": a + rng.normal(scale=0.7, size=(n, dim)),
                "negatives": rng.normal(size=(3, dim))}

    def _extreme_inputs(self, rng):
        ex = self._example_inputs(rng)
        k = 1e100 if self.similarity == "dot" else 1e200
        return {"anchors": k * ex["anchors"], "positives": k * ex["positives"], "negatives": ex["negatives"]}
