r"""Triplet margin loss (FaceNet; PyTorch semantics) with optional batch-all / batch-hard mining."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .. import _validation as V
from .._batch import BatchLoss
from .._props import Basis, Formula, Props
from .._registry import register
from . import _embedding_common as C
from . import _pair_second as S

__all__ = ["Triplet"]

_MINING = (None, "batch_all", "batch_hard")
_PAIRS = (("anchor", "positive"), ("anchor", "negative"), ("positive", "negative"))


@register(
    "triplet",
    "embedding",
    variants=(
        {"swap": True},
        {"p": 1.0, "margin": 0.5},
        {"p": 3.0},
        {"mining": "batch_all"},
        {"mining": "batch_hard"},
        {"mining": "batch_all", "swap": True},
        {"mining": "batch_hard", "swap": True, "p": 1.5},
    ),
)
@dataclass(frozen=True)
class Triplet(BatchLoss):
    r"""Triplet margin loss, as PyTorch ``TripletMarginLoss(margin, p, eps, swap)``.

    l_i = max(0, d(a_i, p_i) - d(a_i, n_i) + margin),   d(x, y) = ||x - y + eps||_p

    where eps is added to every component of the difference (as
    ``torch.nn.functional.pairwise_distance`` does, so d(x, y) != d(y, x) when eps > 0).
    With ``swap=True`` (Balntas et al. 2016) the negative distance is
    min(d(a, n), d(p, n)).  Gradient: with active = 1{l > 0} (0 returned at l = 0) and
    delta(v) = d||v||_p / dv = sign(v) (|v| / ||v||_p)^(p - 1),
    dl/da = active [delta(a - p + eps) - delta(a - n + eps)], dl/dp = -active delta(a - p + eps),
    dl/dn = active delta(a - n + eps) (the (p, n) pair takes the negative term's share
    when the swap distance is the smaller).

    Inputs without mining: ``anchor``, ``positive``, ``negative`` (N, D); value (N,).

    Mining (``mining="batch_all"`` or ``"batch_hard"``, Hermans, Beyer & Leibe 2017):
    inputs ``embeddings`` (N, D) and integer ``labels`` (N,); every row is an anchor, a
    positive is another row with the same label, a negative a row with another label,
    and d is the same eps-shifted p-distance (d(e_i, e_j) = ||e_i - e_j + eps||_p).

    * ``batch_all``: l_i = mean over the anchor's valid triplets (p, n) of the triplet
      loss above (0 for an anchor without a positive or a negative).  The mean over all
      valid triplets of the batch is ``loss(..., sample_weight=counts)`` with
      ``counts[i]`` the anchor's number of valid triplets (:meth:`triplet_counts`).
    * ``batch_hard``: l_i = max(0, max_p d(e_i, e_p) - min_n d(e_i, e_n) + margin), with
      the swap applied to the hardest (p, n) pair; 0 for an anchor without a positive or
      a negative.  The max/min are kinks of the value (the gradient flows to the argmax).

    Second order (``hvp``).  On each active piece (fixed hinge side, swap choice and
    hardest pair) the loss is a signed sum of distances, sum(w * l) = sum_pairs c d(x, y)
    + const, with the coefficients c of the gradient (w 1{l > 0} for the positive
    distance, -w 1{l > 0} for the negative one taken; batch-all divides by the anchor's
    count).  Its Hessian is therefore sum_pairs c H_p(x - y + eps) on the blocks
    (x, x), (y, y) and -H_p on (x, y), (y, x), where H_p is the Hessian of ||y||_p:

        H_p(y) = (p - 1) / ||y||_p [ diag(rho^(p - 2)) - delta delta^T ],   rho = |y| / ||y||_p,

    delta = sign(y) rho^(p - 1) as above (p = 2: (I - u u^T) / ||y||; p = 1: 0).  The
    Hessian is that of the piece the gradient takes: 0 at l = 0, the (a, n) distance at
    a swap tie d(p, n) = d(a, n), the first argmax / argmin at a batch-hard tie.  Where
    H_p is infinite the gradient's convention (0 at a corner) is kept: at y = 0 (possible
    with eps = 0) H_p is taken as 0, and for p < 2 a zero coordinate y_k = 0 contributes
    no diagonal term (its gradient entry is sign(0) = 0).

    Reference: Schroff, Kalenichenko & Philbin, FaceNet, CVPR 2015; PyTorch
    documentation of torch.nn.TripletMarginLoss; Hermans et al., In defense of the
    triplet loss for person re-identification, arXiv:1703.07737.

    >>> import numpy as np, lossgrad
    >>> a, p, n = np.zeros((1, 2)), np.array([[1.0, 0.0]]), np.array([[0.0, 1.5]])
    >>> np.round(lossgrad.get("triplet", eps=0.0).value(anchor=a, positive=p, negative=n), 6)
    array([0.5])
    """

    margin: float = 1.0
    p: float = 2.0
    swap: bool = False
    eps: float = 1e-6
    mining: str | None = None
    _formula = Formula(
        r"\max(0, \|a - p + \epsilon\|_p - \|a - n + \epsilon\|_p + m)",
        r"\partial l/\partial a = \mathbf{1}\{l>0\}[\delta(a-p+\epsilon) - \delta(a-n+\epsilon)]",
        r"\mathbf{1}\{l>0\}\,[H_p(a - p + \epsilon) - H_p(a - n + \epsilon)] \text{ on } (x - y)\text{-blocks},\ "
        r"H_p(y) = \tfrac{p - 1}{\|y\|_p}\big[\operatorname{diag}(\rho^{p - 2}) - \delta\delta^\top\big],\ "
        r"\rho = |y| / \|y\|_p",
        "a, p, n embeddings",
    )
    references: ClassVar[tuple[str, ...]] = (
        "Schroff et al. (2015), FaceNet, CVPR",
        "Balntas et al. (2016), BMVC (swap)",
        "Hermans et al. (2017), arXiv:1703.07737 (batch-all, batch-hard)",
    )

    def __post_init__(self) -> None:
        o = self._owner
        self._set("margin", V.param_nonnegative(o, "margin", self.margin))
        self._set("p", V.param_at_least(o, "p", self.p, 1.0))
        self._set("swap", V.param_bool(o, "swap", self.swap))
        self._set("eps", V.param_nonnegative(o, "eps", self.eps))
        V.param_choice(o, "mining", self.mining, _MINING)

    @property
    def inputs(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("anchor", "positive", "negative") if self.mining is None else ("embeddings", "labels")

    @property
    def differentiable(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("anchor", "positive", "negative") if self.mining is None else ("embeddings",)

    has_hvp: ClassVar[bool] = True

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=0, basis=Basis.OTHER)

    # --- preparation -----------------------------------------------------
    def _prepare(self, inputs, sample_weight):
        if self.mining is None:
            xp, a = self._coerce_inputs(inputs, {"anchor": 2, "positive": 2, "negative": 2})
            shape = tuple(a["anchor"].shape)
            for name in ("positive", "negative"):
                if tuple(a[name].shape) != shape:
                    what = "embedding dimensions differ" if a[name].shape[0] == shape[0] else "batch sizes differ"
                    raise ValueError(f"{self.name}: anchor and {name} must have the same shape ({what}); "
                                     f"got {shape} and {tuple(a[name].shape)}")
            w = self._item_weight(xp, sample_weight, shape[:1], a["anchor"])
            return xp, a, w
        xp, a = self._coerce_inputs(inputs, {"embeddings": 2})
        e = a["embeddings"]
        labels = self._class_labels(xp, inputs["labels"], "labels", e, int(e.shape[0]))
        w = self._item_weight(xp, sample_weight, tuple(e.shape[:1]), e)
        return xp, {"embeddings": e, "labels": labels}, w

    def _dist(self, xp, x, y):
        """(d(x, y), d d / d(x - y)) with d(x, y) = ||x - y + eps||_p, on broadcast shapes."""
        return C.pnorm(xp, x - y + self.eps, self.p)

    def _dist_hvp(self, xp, x, y, dist, ddist, dx, dy):
        """(d^2 d / d(x - y)^2) (dx - dy): the p-norm's Hessian at x - y + eps (_pair_second.pnorm_hvp)."""
        return S.pnorm_hvp(xp, x - y + self.eps, dist, ddist, self.p, dx - dy)

    # --- plain triplets --------------------------------------------------
    def _value(self, xp, d):
        return self._evaluate(xp, d, None, grad=False)[0]

    def _value_grad(self, xp, d, w):
        v, g = self._evaluate(xp, d, w, grad=True)
        return C.weighted(xp, v, w), g

    def _evaluate(self, xp, d, w, grad):
        if self.mining is not None:
            return self._mined(xp, d["embeddings"], d["labels"], w, grad)
        v, dist, coef = self._plain(xp, d, w)
        if not grad:
            return (v, None)
        g = {name: xp.zeros_like(d[name]) for name in ("anchor", "positive", "negative")}
        for (x, y), (_, ddist) in dist.items():
            share = coef[(x, y)][:, None] * ddist
            g[x], g[y] = g[x] + share, g[y] - share
        return v, g

    def _plain(self, xp, d, w):
        """(values, {pair: (d, d d / d(x - y))}, {pair: c}) with sum(w * l) = sum_pairs c d(x, y)
        + const on the active piece: c = w 1{l > 0} for (a, p), -w 1{l > 0} for the negative
        distance taken ((a, n), or (p, n) where swapped: d(p, n) < d(a, n))."""
        pairs = _PAIRS if self.swap else _PAIRS[:2]
        dist = {(x, y): self._dist(xp, d[x], d[y]) for x, y in pairs}
        d_ap, d_an = dist[_PAIRS[0]][0], dist[_PAIRS[1]][0]
        if self.swap:
            d_pn = dist[_PAIRS[2]][0]
            swapped = d_pn < d_an
            d_neg = xp.where(swapped, d_pn, d_an)
        else:
            d_neg = d_an
        z = d_ap - d_neg + self.margin
        v = xp.clip(z, 0.0, None)
        act = C.ones_weight(xp, w, v) * C.as_float(xp, z > 0, z)
        if self.swap:
            s = C.as_float(xp, swapped, z)
            coef = {_PAIRS[0]: act, _PAIRS[1]: -(act * (1.0 - s)), _PAIRS[2]: -(act * s)}
        else:
            coef = {_PAIRS[0]: act, _PAIRS[1]: -act}
        return v, dist, coef

    # --- second order -------------------------------------------------------
    def _hvp(self, xp, d, w, v):
        names = self.differentiable
        dirs = {name: self._direction(xp, v, name, d[name]) for name in names}
        if self.mining is not None:
            e, de = d["embeddings"], dirs["embeddings"]
            D, dD = self._dist(xp, e[:, None, :], e[None, :, :])
            _, G, _ = self._mined_coefficients(xp, D, d["labels"], w, None)
            HD = G[:, :, None] * self._dist_hvp(xp, e[:, None, :], e[None, :, :], D, dD, de[:, None, :], de[None, :, :])
            return {"embeddings": xp.sum(HD, axis=1) - xp.sum(HD, axis=0)}
        _, dist, coef = self._plain(xp, d, w)
        out = {name: xp.zeros_like(d[name]) for name in names}
        for (x, y), (n, dn) in dist.items():
            share = coef[(x, y)][:, None] * self._dist_hvp(xp, d[x], d[y], n, dn, dirs[x], dirs[y])
            out[x], out[y] = out[x] + share, out[y] - share
        return out

    def _item_jvp(self, xp, d, v):
        dirs = {name: self._direction(xp, v, name, d[name]) for name in self.differentiable}
        if self.mining is not None:
            e, de = d["embeddings"], dirs["embeddings"]
            D, dD = self._dist(xp, e[:, None, :], e[None, :, :])
            T = xp.sum(dD * (de[:, None, :] - de[None, :, :]), axis=-1)  # T_ij: D_ij's change along v
            return self._mined_coefficients(xp, D, d["labels"], None, T)[2]
        _, dist, coef = self._plain(xp, d, None)
        out = 0.0
        for (x, y), (_, dn) in dist.items():
            out = out + coef[(x, y)] * xp.sum(dn * (dirs[x] - dirs[y]), axis=-1)
        return out

    # --- mining -----------------------------------------------------------
    def _mined(self, xp, e, labels, w, grad):
        D, dD = self._dist(xp, e[:, None, :], e[None, :, :])  # (n, n), (n, n, dim)
        v, G, _ = self._mined_coefficients(xp, D, labels, w, None)
        if not grad:
            return (v, None)
        # D_ij depends on e_i - e_j:  dL/de_i += G_ij dD_ij,  dL/de_j -= G_ij dD_ij
        GD = G[:, :, None] * dD
        return v, {"embeddings": xp.sum(GD, axis=1) - xp.sum(GD, axis=0)}

    def _mined_coefficients(self, xp, D, labels, w, T):
        """(values, G = d sum(w * l) / dD, per-anchor sum_jk (dl_i / dD_jk) T_jk or None).

        On the active piece (fixed hinge sides, swaps and, batch-hard, fixed hardest pair)
        the loss is linear in D, so G is also the coefficient of every D_ij's Hessian.
        With w None the weights are 1 (the per-anchor directional derivative is unweighted).
        """
        n = int(D.shape[0])
        same = labels[:, None] == labels[None, :]
        pos = same & ~C.eye(xp, n, D)
        neg = ~same
        sw = C.ones_weight(xp, w, D[:, 0])
        if self.mining == "batch_all":
            return self._batch_all(xp, D, pos, neg, sw, T)
        return self._batch_hard(xp, D, pos, neg, sw, T)

    def _batch_all(self, xp, D, pos, neg, sw, T=None):
        valid = pos[:, :, None] & neg[:, None, :]  # (anchor, positive, negative)
        dneg = D[:, None, :]
        if self.swap:
            dswap = D[None, :, :]  # d(e_p, e_n)
            swapped = dswap < dneg
            dneg = xp.where(swapped, dswap, dneg)
        z = D[:, :, None] - dneg + self.margin
        fvalid = C.as_float(xp, valid, z)
        count = xp.sum(fvalid, axis=(1, 2))
        denom = xp.where(count > 0, count, xp.ones_like(count))
        v = xp.sum(xp.clip(z, 0.0, None) * fvalid, axis=(1, 2)) / denom
        A = fvalid * C.as_float(xp, z > 0, z) * (sw / denom)[:, None, None]
        if self.swap:
            s = C.as_float(xp, swapped, z)
            G = xp.sum(A, axis=2) - xp.sum(A * (1.0 - s), axis=1) - xp.sum(A * s, axis=0)
        else:
            G = xp.sum(A, axis=2) - xp.sum(A, axis=1)
        if T is None:
            return v, G, None
        Tneg = T[:, None, :]  # the change of the negative distance taken, (anchor, positive, negative)
        if self.swap:
            Tneg = (1.0 - s) * Tneg + s * T[None, :, :]
        return v, G, xp.sum(A * (T[:, :, None] - Tneg), axis=(1, 2))

    def _batch_hard(self, xp, D, pos, neg, sw, T=None):
        n = int(D.shape[0])
        inf = xp.full(D.shape, float("inf"), dtype=D.dtype, device=C.device(D))
        hp_idx = xp.argmax(xp.where(pos, D, -inf), axis=1)
        hn_idx = xp.argmin(xp.where(neg, D, inf), axis=1)
        P = C.onehot(xp, hp_idx, n, D)
        Q = C.onehot(xp, hn_idx, n, D)
        fP, fQ = C.as_float(xp, P, D), C.as_float(xp, Q, D)
        valid = xp.any(pos, axis=1) & xp.any(neg, axis=1)
        d_ap = xp.sum(fP * D, axis=1)
        d_an = xp.sum(fQ * D, axis=1)
        if self.swap:
            d_pn = xp.sum((fP @ D) * fQ, axis=1)  # D[p*_i, n*_i]
            swapped = d_pn < d_an
            d_neg = xp.where(swapped, d_pn, d_an)
        else:
            d_neg = d_an
        z = d_ap - d_neg + self.margin
        fvalid = C.as_float(xp, valid, z)
        v = xp.clip(z, 0.0, None) * fvalid
        A = sw * fvalid * C.as_float(xp, z > 0, z)
        if self.swap:
            s = C.as_float(xp, swapped, z)
            G = A[:, None] * fP - (A * (1.0 - s))[:, None] * fQ - xp.matrix_transpose(fP * (A * s)[:, None]) @ fQ
        else:
            G = A[:, None] * (fP - fQ)
        if T is None:
            return v, G, None
        t_neg = xp.sum(fQ * T, axis=1)  # the change of the negative distance taken
        if self.swap:
            t_neg = (1.0 - s) * t_neg + s * xp.sum((fP @ T) * fQ, axis=1)
        return v, G, A * (xp.sum(fP * T, axis=1) - t_neg)

    @staticmethod
    def triplet_counts(labels: Any) -> np.ndarray:
        """Number of valid (positive, negative) pairs of every anchor, for batch-all weighting."""
        y = np.asarray(labels).reshape(-1)
        same = y[:, None] == y[None, :]
        n_pos = same.sum(axis=1) - 1
        return (n_pos * (~same).sum(axis=1)).astype(float)

    # --- verification ------------------------------------------------------
    def _example_inputs(self, rng):
        """Random triplets (or clusters); for 1 < p < 2 redrawn until no coordinate of a
        compared difference lies within 0.01 of 0, where the Hessian of ||.||_p (a term
        |y_k|^(p - 2)) is singular and central differences of the gradient need far
        smaller steps than a verification takes."""
        while True:
            ex = self._draw_example(rng)
            if not 1.0 < self.p < 2.0:
                return ex
            if self.mining is None:
                a, pos, neg = ex["anchor"], ex["positive"], ex["negative"]
                gaps = np.concatenate([a - pos, a - neg, pos - neg])
            else:
                e = ex["embeddings"]
                gaps = (e[:, None, :] - e[None, :, :])[~np.eye(e.shape[0], dtype=bool)]
            if np.min(np.abs(gaps)) >= 0.01:
                return ex

    def _draw_example(self, rng):
        dim = 4
        if self.mining is None:
            n = 10
            a = rng.normal(size=(n, dim))
            return {"anchor": a, "positive": a + rng.normal(scale=0.6, size=(n, dim)),
                    "negative": a + rng.normal(scale=0.8, size=(n, dim))}
        labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3])
        centers = rng.normal(scale=0.6, size=(4, dim))
        e = centers[labels] + rng.normal(scale=0.5, size=(labels.size, dim))
        return {"embeddings": e, "labels": labels}

    def _extreme_inputs(self, rng):
        ex = self._example_inputs(rng)
        return {k: (1e100 * v if k != "labels" else v) for k, v in ex.items()}
