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

__all__ = ["Triplet"]

_MINING = (None, "batch_all", "batch_hard")


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
        r"\text{(not provided)}",
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

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=0, basis=Basis.OTHER, has_hess=False)

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

    # --- plain triplets --------------------------------------------------
    def _value(self, xp, d):
        return self._evaluate(xp, d, None, grad=False)[0]

    def _value_grad(self, xp, d, w):
        v, g = self._evaluate(xp, d, w, grad=True)
        return C.weighted(xp, v, w), g

    def _evaluate(self, xp, d, w, grad):
        if self.mining is not None:
            return self._mined(xp, d["embeddings"], d["labels"], w, grad)
        a, pos, neg = d["anchor"], d["positive"], d["negative"]
        d_ap, g_ap = self._dist(xp, a, pos)
        d_an, g_an = self._dist(xp, a, neg)
        if self.swap:
            d_pn, g_pn = self._dist(xp, pos, neg)
            swapped = d_pn < d_an
            d_neg = xp.where(swapped, d_pn, d_an)
        else:
            d_neg = d_an
        z = d_ap - d_neg + self.margin
        v = xp.clip(z, 0.0, None)
        if not grad:
            return (v, None)
        act = (C.ones_weight(xp, w, v) * C.as_float(xp, z > 0, z))[:, None]
        if self.swap:
            s = C.as_float(xp, swapped, z)[:, None]
            neg_a, neg_p = act * (1.0 - s) * g_an, act * s * g_pn
        else:
            neg_a, neg_p = act * g_an, 0.0 * g_an
        g = {
            "anchor": act * g_ap - neg_a,
            "positive": -act * g_ap - neg_p,
            "negative": neg_a + neg_p,
        }
        return v, g

    # --- mining -----------------------------------------------------------
    def _mined(self, xp, e, labels, w, grad):
        n = int(e.shape[0])
        D, dD = self._dist(xp, e[:, None, :], e[None, :, :])  # (n, n), (n, n, dim)
        same = labels[:, None] == labels[None, :]
        pos = same & ~C.eye(xp, n, e)
        neg = ~same
        sw = C.ones_weight(xp, w, D[:, 0])
        if self.mining == "batch_all":
            v, G = self._batch_all(xp, D, pos, neg, sw)
        else:
            v, G = self._batch_hard(xp, D, pos, neg, sw)
        if not grad:
            return (v, None)
        # D_ij depends on e_i - e_j:  dL/de_i += G_ij dD_ij,  dL/de_j -= G_ij dD_ij
        GD = G[:, :, None] * dD
        return v, {"embeddings": xp.sum(GD, axis=1) - xp.sum(GD, axis=0)}

    def _batch_all(self, xp, D, pos, neg, sw):
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
        return v, G

    def _batch_hard(self, xp, D, pos, neg, sw):
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
        return v, G

    @staticmethod
    def triplet_counts(labels: Any) -> np.ndarray:
        """Number of valid (positive, negative) pairs of every anchor, for batch-all weighting."""
        y = np.asarray(labels).reshape(-1)
        same = y[:, None] == y[None, :]
        n_pos = same.sum(axis=1) - 1
        return (n_pos * (~same).sum(axis=1)).astype(float)

    # --- verification ------------------------------------------------------
    def _example_inputs(self, rng):
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
