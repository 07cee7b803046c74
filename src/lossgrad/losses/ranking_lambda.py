r"""The LambdaLoss framework (Wang et al. 2018): RankNet pairs weighted by rank-dependent metric weights.

Inputs and padding as the rest of the ranking family (:mod:`lossgrad.losses.ranking`):
``scores`` and ``relevance`` (n_lists, list_len), an optional boolean ``mask``; padded
entries are never read.  One class, :class:`LambdaLoss`, with the weighing schemes of
the paper (and of allRank's ``lambdaLoss`` and TF-Ranking's lambda weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import array_api_compat
import numpy as np

from .. import _validation as V
from .. import _xp
from .._props import Basis, Formula, Props
from .._registry import register
from ._ranking_base import LN2 as _LN2
from ._ranking_base import RankingLoss, laplacian_second

__all__ = ["LambdaLoss"]

SCHEMES = ("ndcg2", "ndcg2++", "lambdarank", "ndcg1", "ranknet")

# smallest gap between two real scores of a list in the example inputs: verify's 4th-order
# differences move one score by up to 2 h0 = 2 eps^(1/5) max(1, |s|) <= 6e-3 at |s| <= 4,
# eight times less, so no rank swap happens inside a difference stencil
_EXAMPLE_GAP = 0.05

_WEIGHT_TEX = {
    "ndcg2": r"\frac{|G_i - G_j|}{\mathrm{maxDCG}}\,\delta_{ij},\ "
             r"\delta_{ij} = \frac{1}{D(|\pi_i - \pi_j|)} - \frac{1}{D(|\pi_i - \pi_j| + 1)}",
    "ndcg2++": r"\frac{|G_i - G_j|}{\mathrm{maxDCG}}\,(\rho_{ij} + \mu\,\delta_{ij}),\ "
               r"\rho_{ij} = \Big|\frac{1}{D(\pi_i)} - \frac{1}{D(\pi_j)}\Big|",
    "lambdarank": r"\frac{|G_i - G_j|}{\mathrm{maxDCG}}\Big|\frac{1}{D(\pi_i)} - \frac{1}{D(\pi_j)}\Big|",
    "ndcg1": r"\frac{G_i}{D(\pi_i)\,\mathrm{maxDCG}}\ \text{(all pairs } i \ne j)",
    "ranknet": r"1",
}


@register("lambdaloss", "ranking", variants=(
    {"scheme": "ndcg2++"},
    {"scheme": "ndcg2++", "mu": 2.0, "sigma": 2.0},
    {"scheme": "lambdarank"},
    {"scheme": "ndcg1"},
    {"scheme": "ranknet", "sigma": 0.5},
    {"scheme": "ndcg2", "k": 3},
    {"scheme": "lambdarank", "k": 2},
))
@dataclass(frozen=True)
class LambdaLoss(RankingLoss):
    r"""LambdaLoss: a RankNet loss whose pairs carry rank-dependent NDCG weights w_ij.

    Per list, over its real items, with gains G_i = 2^{rel_i} - 1, discounts
    D(r) = log2(1 + r), maxDCG the ideal DCG of the list (DCG@k with ``k``), and pi_i the
    current 1-based rank of item i when the real items are sorted by score, descending,

        L = sum_{(i,j) in P} w_ij log2(1 + exp(-sigma (s_i - s_j))),

    P = {(i, j): rel_i > rel_j} (all ordered pairs i != j for "ndcg1"), and the weighing
    ``scheme``:

    * "ndcg2" (NDCG-Loss2, the default): w_ij = |G_i - G_j| delta_ij / maxDCG,
      delta_ij = 1/D(|pi_i - pi_j|) - 1/D(|pi_i - pi_j| + 1);
    * "ndcg2++" (NDCG-Loss2++): w_ij = |G_i - G_j| (rho_ij + mu delta_ij) / maxDCG with
      the LambdaRank rho_ij = |1/D(pi_i) - 1/D(pi_j)| (the paper's eq. for NDCG-Loss2++,
      allRank's ``mu * ndcgLoss2 + lambdaRank``; mu = 10 by default);
    * "lambdarank": w_ij = |G_i - G_j| rho_ij / maxDCG, the |Delta NDCG| of swapping i and
      j: the gradient is LambdaRank's lambdas |Delta NDCG| sigma sigmoid(-sigma d_ij), / ln 2;
    * "ndcg1" (NDCG-Loss1): w_ij = G_i / (D(pi_i) maxDCG) on every ordered pair of
      distinct real items, whatever their grades, i.e. -sum_i (G_i / (D(pi_i) maxDCG))
      sum_{j != i} log2 sigmoid(sigma (s_i - s_j)).  allRank's ``ndcgLoss1`` also sums the
      j = i terms, G_i / (D(pi_i) maxDCG) log2(2) in all: the piecewise constant NDCG(pi),
      no derivative; they are left out here;
    * "ranknet": w_ij = 1, i.e. RankNet(normalize=False, sigma) / ln 2.

    Truncation ``k`` (None: every pair): only the pairs with min(pi_i, pi_j) <= k count
    (the paper's NDCG@k form, TF-Ranking's ``topn`` pair mask; allRank keeps only pairs
    with both ranks <= k), maxDCG is the ideal DCG@k, and the discounts 1/D(pi) of rho_ij
    and of "ndcg1" are 0 beyond rank k (so "lambdarank" is |Delta NDCG@k|).  Gains are
    computed as 2^{rel - max rel} - 2^{-max rel} (the common factor 2^{max rel} cancels
    in w), so large grades do not overflow.  A list whose grades are all 0 has no pair.

    Ranks: a stable sort of the real scores, descending; tied scores are ranked by
    position in the list (the lower index first).  The ranks, hence w, are piecewise
    constant in the scores and the value jumps where two items swap ranks (declared
    differentiability -1, not convex).  Derivatives treat w as constant, which is exact
    everywhere but on the swap set (measure 0; the derivative of the ranks is 0 a.e.):
    on each piece the loss is a weighted RankNet, so with d_ij = s_i - s_j

        dL/ds_k = sum_{(j,k) in P} lam_jk - sum_{(k,j) in P} lam_kj,
        lam_ij = w_ij sigma sigmoid(-sigma d_ij) / ln 2,
        d^2L/ds^2 = sum_{(i,j) in P} c_ij (e_i - e_j)(e_i - e_j)^T,
        c_ij = w_ij sigma^2 sigmoid(sigma d_ij) sigmoid(-sigma d_ij) / ln 2,

    the Laplacian of the pair weights C + C^T (positive semidefinite on each piece).  At a
    score tie the value and all derivatives are those of the piece on which the lower
    index ranks first, i.e. the one-sided limits from where it scores higher.

    Float32/float64 NumPy inputs of at least ``kernel_threshold`` pair entries run through
    a Numba list kernel (:mod:`lossgrad.kernels._ranking_lambda`: weights formed per pair,
    no (n, L, L) array) for the value, gradient and Hessian diagonal; full blocks, Hessian-vector
    products and :meth:`pair_weights` use the reference.

    Parameters: ``scheme`` (above), ``mu`` >= 0 (the weight of delta in "ndcg2++"; the
    other schemes ignore it), ``k`` (None or an integer >= 1), ``sigma`` > 0.

    From Wang, Li, Golbandi, Bendersky & Najork (2018), The LambdaLoss framework for
    ranking metric optimization, CIKM; the LambdaRank weights from Burges (2010); both
    listed in ``references``.

    Two items at a tie, the relevant one first (by index): pi = (1, 2), G = (1, 0),
    maxDCG = 1, w = delta = 1/D(1) - 1/D(2) = 1 - 1/log2(3) = 0.369070, times
    log2(1 + e^0) = 1; with w = 1 ("ranknet") the value is 1:

    >>> import numpy as np
    >>> from lossgrad.losses.ranking_lambda import LambdaLoss
    >>> s = np.array([[0.0, 0.0]]); r = np.array([[1.0, 0.0]])
    >>> LambdaLoss().value(scores=s, relevance=r).round(6)
    array([0.36907])
    >>> LambdaLoss(scheme="ranknet").value(scores=s, relevance=r)
    array([1.])
    """

    references: ClassVar[tuple[str, ...]] = (
        ("Wang, Li, Golbandi, Bendersky & Najork (2018), The LambdaLoss framework for ranking metric "
         "optimization, CIKM"),
        ("Burges (2010), From RankNet to LambdaRank to LambdaMART: an overview, Microsoft Research "
         "MSR-TR-2010-82"),
    )

    scheme: str = "ndcg2"
    mu: float = 10.0
    k: int | None = None
    sigma: float = 1.0

    def __post_init__(self) -> None:
        self._set("scheme", V.param_choice(self._owner, "scheme", self.scheme, SCHEMES))
        self._set("mu", V.param_nonnegative(self._owner, "mu", self.mu))
        if self.k is not None:
            if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)):
                raise TypeError(f"{self._owner}: k must be None or an integer >= 1 (the truncation rank), "
                                f"got {self.k!r}")
            self._set("k", int(V.param_at_least(self._owner, "k", self.k, 1)))
        self._set("sigma", V.param_positive(self._owner, "sigma", self.sigma))

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=-1, basis=Basis.OTHER)

    @property
    def formula(self) -> Formula:
        return Formula(
            r"\sum_{(i,j)\in P} w_{ij} \log_2\big(1 + e^{-\sigma (s_i - s_j)}\big),\ w_{ij} = "
            + _WEIGHT_TEX[self.scheme],
            r"\sum_{(j,k)\in P}\lambda_{jk} - \sum_{(k,j)\in P}\lambda_{kj},\ "
            r"\lambda_{ij} = \frac{\sigma w_{ij}}{\ln 2}\,\operatorname{sigmoid}(-\sigma (s_i - s_j))",
            r"\sum_{(i,j)\in P} \frac{\sigma^2 w_{ij}}{\ln 2}\operatorname{sigmoid}(\sigma d_{ij})"
            r"\operatorname{sigmoid}(-\sigma d_{ij}) (e_i - e_j)(e_i - e_j)^\top,\ d_{ij} = s_i - s_j",
            "s")

    def pair_weights(self, **inputs: Any) -> Any:
        """The weights w_ij (n_lists, L, L) at the current ranks: 0 off the pairs P."""
        xp, data, _ = self._prepare_batch(inputs, None)
        return self._weights(xp, data)

    # ------------------------------------------------------------------ value and derivatives
    def _vg(self, xp, data):
        x, e, w = self._pairs(xp, data)
        # softplus(-x) = max(-x, 0) + log1p(e) on the pairs (0 elsewhere, even where x overflows)
        loss = xp.where(w > 0, w * (xp.maximum(-x, 0.0) + xp.log1p(e)), xp.zeros_like(x))
        return xp.sum(xp.sum(loss, axis=-1), axis=-1) / _LN2, self._grad(xp, x, e, w)

    def _grad(self, xp, x, e, w):
        lam = w * ((self.sigma / _LN2) * xp.where(x >= 0, e, xp.ones_like(e)) / (1.0 + e))  # sigmoid(-x)
        return xp.sum(lam, axis=-2) - xp.sum(lam, axis=-1)

    def _second(self, xp, data, what, v, pairs=None):
        _, e, w = self._pairs(xp, data) if pairs is None else pairs
        c = w * ((self.sigma**2 / _LN2) * e / ((1.0 + e) * (1.0 + e)))  # sigmoid(x) sigmoid(-x)
        return laplacian_second(xp, c + xp.matrix_transpose(c), what, v)

    def _grad_and_diag(self, xp, data):
        pairs = self._pairs(xp, data)
        return self._grad(xp, *pairs), self._second(xp, data, "diag", None, pairs)

    def _grad_and_bound(self, xp, data):
        return self._grad_and_twice_diag(xp, data)  # the Laplacian of w c >= 0

    def _list_kernel(self, xp, data, want_grad, want_diag):
        """:mod:`lossgrad.kernels._ranking_lambda`, which forms each list's ranks, gains
        G/maxDCG and discounts itself, as :meth:`_ranks`, :meth:`_gains` and :meth:`_discount`
        define them (ties ranked by index), in float64."""
        from ..kernels._ranking_lambda import lambdaloss_lists

        return lambdaloss_lists(data["s"], data["rel"], data["mb"], self.scheme, self.mu, self.k, self.sigma,
                                want_grad, want_diag, data.get("marked"))

    def _pairs(self, xp, data):
        """x = sigma (s_i - s_j), e = exp(-|x|) (the one exponential per pair, as RankNet's)
        and the weights w (n, L, L), 0 off the pairs."""
        s, mb = data["s"], data["mb"]
        s = xp.where(mb, s, xp.zeros_like(s))  # padded scores are never read
        x = self.sigma * (s[:, :, None] - s[:, None, :])
        return x, xp.exp(-xp.abs(x)), self._weights(xp, data)

    # ------------------------------------------------------------------ the weights
    def _weights(self, xp, data):
        s, rel, mb = data["s"], data["rel"], data["mb"]
        dev = array_api_compat.device(s)
        zero3 = xp.zeros((s.shape[0], s.shape[1], s.shape[1]), dtype=s.dtype, device=dev)
        pair = mb[:, :, None] & mb[:, None, :]
        if self.scheme == "ndcg1":
            pair = pair & ~xp.eye(s.shape[1], dtype=xp.bool, device=dev)[None, :, :]
        else:
            pair = pair & (rel[:, :, None] > rel[:, None, :])
        if self.scheme == "ranknet" and self.k is None:
            return xp.where(pair, zero3 + 1.0, zero3)
        pi = self._ranks(xp, s, mb)
        if self.k is not None:
            pair = pair & (xp.minimum(pi[:, :, None], pi[:, None, :]) <= self.k)
        if self.scheme == "ranknet":
            return xp.where(pair, zero3 + 1.0, zero3)
        gain, zinv = self._gains(xp, rel, mb)
        if self.scheme == "ndcg1":
            return xp.where(pair, zero3 + (gain * zinv * self._discount(xp, pi))[:, :, None], zero3)
        gdiff = xp.abs(gain[:, :, None] - gain[:, None, :]) * zinv[:, :, None]
        rank_part = zero3
        if self.scheme in ("lambdarank", "ndcg2++"):
            disc = self._discount(xp, pi)
            rank_part = xp.abs(disc[:, :, None] - disc[:, None, :])
        if self.scheme in ("ndcg2", "ndcg2++"):
            gap = xp.maximum(xp.abs(pi[:, :, None] - pi[:, None, :]), zero3 + 1.0)  # >= 1 on the pairs
            delta = _LN2 / xp.log1p(gap) - _LN2 / xp.log1p(gap + 1.0)
            rank_part = rank_part + (self.mu * delta if self.scheme == "ndcg2++" else delta)
        return xp.where(pair, gdiff * rank_part, zero3)

    @staticmethod
    def _ranks(xp, s, mb):
        """1-based ranks pi of the real items by score, descending, ties by index (stable);
        padded items rank after every real one."""
        key = xp.where(mb, -s, _xp.full_like(xp, s, math.inf))
        order = xp.argsort(key, axis=-1, stable=True)
        return xp.astype(xp.argsort(order, axis=-1, stable=True), s.dtype) + 1.0

    def _discount(self, xp, ranks):
        """1 / D(r) = ln 2 / ln(1 + r), 0 beyond rank k."""
        d = _LN2 / xp.log1p(ranks)
        return d if self.k is None else xp.where(ranks <= self.k, d, xp.zeros_like(d))

    def _gains(self, xp, rel, mb):
        """(G / 2^top, 2^top / maxDCG) per list, top = max rel: both finite for any grade."""
        top = xp.max(rel, axis=-1, keepdims=True)  # padded rel are 0 and real rel >= 0
        gain = xp.where(mb, xp.exp((rel - top) * _LN2) - xp.exp(-top * _LN2), xp.zeros_like(rel))
        ideal = xp.sort(gain, axis=-1, descending=True)
        positions = xp.arange(1, rel.shape[-1] + 1, dtype=rel.dtype, device=array_api_compat.device(rel))
        maxdcg = xp.sum(ideal * self._discount(xp, positions)[None, :], axis=-1, keepdims=True)
        return gain, _xp.safe_divide(xp, xp.ones_like(maxdcg), maxdcg, 0.0)

    # ------------------------------------------------------------------ what verify samples
    def _example_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The family's example lists, each list's scores redrawn until every two of its real
        scores are more than ``_EXAMPLE_GAP`` apart (no rank swap inside a difference stencil)."""
        ex = super()._example_inputs(rng)
        s, m = ex["scores"], ex["mask"]
        for li in range(s.shape[0]):
            while np.min(np.diff(np.sort(s[li][m[li]]))) <= _EXAMPLE_GAP:
                s[li] = rng.normal(size=s.shape[1])
        return ex
