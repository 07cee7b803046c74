r"""Learning-to-rank losses over padded lists: ListNet, RankNet, XE-NDCG, ApproxNDCG.

Inputs, by name: ``scores`` (n_lists, list_len) floating model scores, ``relevance`` of
the same shape (graded relevance >= 0 on real items) and an optional boolean ``mask``
of the same shape (True = real item, False = padding).  Padded items enter neither the
value nor the gradient: their gradient is exactly 0 and their ``relevance`` and
``scores`` entries are never read (they may hold any finite value, e.g. TF-Ranking's -1).
Every list needs at least 2 real items.

``value`` is one number per list, ``grad`` returns ``{"scores": array}``, the gradient
of sum_l w_l value_l.  Every softmax is computed with the max shift over the real items
only, every log-sigmoid through a stable softplus.  The Hessian is not provided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import array_api_compat
import numpy as np

from .. import _validation as V
from .. import _xp
from .._batch import BatchLoss
from .._config import get_config
from .._props import Basis, Formula, Props
from .._registry import register

__all__ = ["ListNet", "RankNet", "XENDCG", "ApproxNDCG"]

_LN2 = math.log(2.0)


class _RankingLoss(BatchLoss):
    """Shared input handling of the list losses."""

    inputs: ClassVar[tuple[str, ...]] = ("scores", "relevance", "mask")
    differentiable: ClassVar[tuple[str, ...]] = ("scores",)
    _optional_inputs: ClassVar[tuple[str, ...]] = ("mask",)

    def _prepare(self, inputs: dict[str, Any], sample_weight: Any) -> tuple[Any, dict[str, Any], Any]:
        xp, s, _ = V.as_prediction(inputs["scores"], "scores")
        if s.ndim != 2:
            raise ValueError(f"scores must be 2-dimensional (n_lists, list_len), got shape {tuple(s.shape)}")
        rel = _same_shape(xp, inputs["relevance"], s, "relevance", s.dtype)
        mask = inputs.get("mask")
        if mask is None:
            mb = xp.ones(s.shape, dtype=xp.bool, device=array_api_compat.device(s))
        else:
            mb = _same_shape(xp, mask, s, "mask", None)
            if not xp.isdtype(mb.dtype, "bool"):
                raise TypeError(f"mask must be a boolean array (True = real item, False = padding), got dtype {mb.dtype}")
        counts = xp.sum(xp.astype(mb, xp.int64), axis=-1)
        if not bool(xp.all(counts >= 2)):
            bad = np.flatnonzero(np.asarray(array_api_compat.to_device(counts, "cpu")) < 2).tolist()
            raise ValueError(
                f"scores: list(s) {bad[:10]} have fewer than 2 real items (list_len={s.shape[1]}, after mask); "
                "a ranking loss needs lists of length >= 2"
            )
        zero = xp.zeros_like(s)
        V.check_finite(xp, xp.where(mb, s, zero), "scores")
        relv = xp.where(mb, rel, zero)
        V.check_finite(xp, relv, "relevance")
        V.check_all(xp, relv >= 0, "relevance", "non-negative graded relevance on real (unmasked) items")
        data = {"s": s, "rel": relv, "mb": mb}
        data.update(self._extra(xp, inputs, s, mb))
        w = V.as_sample_weight(sample_weight, xp, (s.shape[0],), s)
        return xp, data, w

    def _extra(self, xp: Any, inputs: dict[str, Any], s: Any, mb: Any) -> dict[str, Any]:
        return {}

    def _value(self, xp: Any, data: dict[str, Any]) -> Any:
        return self._vg(xp, data)[0]

    def _value_grad(self, xp: Any, data: dict[str, Any], w: Any) -> tuple[Any, dict[str, Any]]:
        value, g = self._vg(xp, data)
        if w is None:
            return value, {"scores": g}
        return value * w, {"scores": g * w[:, None]}

    def _vg(self, xp: Any, data: dict[str, Any]) -> tuple[Any, Any]:
        """(per-list values, d sum(values) / d scores), unweighted."""
        raise NotImplementedError  # pragma: no cover

    def _example_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        n, m = 4, 6
        scores = rng.normal(size=(n, m))
        relevance = rng.integers(0, 4, size=(n, m)).astype(np.float64)
        relevance[:, 0] = 3.0  # every list has a relevant item and distinct grades
        relevance[:, 1] = 0.0
        mask = np.ones((n, m), dtype=bool)
        mask[1, 4:] = False
        mask[3, 5:] = False
        return {"scores": scores, "relevance": relevance, "mask": mask}

    def _extreme_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Scores of magnitude ~1e3 and grades up to 60 (2^60 gains)."""
        ex = self._example_inputs(rng)
        return {**ex, "scores": 1e3 * ex["scores"], "relevance": 20.0 * ex["relevance"]}

    @property
    def props(self) -> Props:
        return Props(convex=True, differentiability=2, basis=Basis.OTHER, has_hess=False)


def _same_shape(xp: Any, x: Any, like: Any, name: str, dtype: Any) -> Any:
    if x is None:
        raise TypeError(f"{name} is required, got None")
    try:
        arr = xp.asarray(x, device=array_api_compat.device(like))
    except Exception:
        arr = xp.asarray(np.asarray(x), device=array_api_compat.device(like))
    if tuple(arr.shape) != tuple(like.shape):
        raise ValueError(f"{name} must have the shape of scores {tuple(like.shape)}, got {tuple(arr.shape)}")
    if dtype is not None:
        if not (xp.isdtype(arr.dtype, "real floating") or xp.isdtype(arr.dtype, "integral") or xp.isdtype(arr.dtype, "bool")):
            raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
        arr = xp.astype(arr, dtype)
    return arr


def _masked_softmax(xp: Any, s: Any, mb: Any) -> tuple[Any, Any]:
    """(softmax, log_softmax) over the real items of each row; 0 at padding."""
    zero = xp.zeros_like(s)
    mx = xp.max(xp.where(mb, s, _xp.full_like(xp, s, -math.inf)), axis=-1, keepdims=True)
    z = xp.where(mb, s - mx, zero)
    e = xp.where(mb, xp.exp(z), zero)
    tot = xp.sum(e, axis=-1, keepdims=True)
    return e / tot, xp.where(mb, z - xp.log(tot), zero)


@register("listnet", "ranking")
@dataclass(frozen=True)
class ListNet(_RankingLoss):
    r"""ListNet top-one loss: cross-entropy between softmax(relevance) and softmax(scores).

    Per list, over its real items: q = softmax(relevance) (the "top-one probability" of
    Cao et al. with the exponential as phi, as allRank's ``listNet``), p = softmax(scores),

        L = -sum_i q_i log p_i,        dL/ds_i = p_i - q_i    (sum_i q_i = 1).

    TF-Ranking's ``SoftmaxLoss`` (optax ``ranking_softmax_loss``) uses the linear target
    relevance / sum(relevance) instead; on lists whose relevances are all positive it
    equals this loss evaluated at log(relevance).
    Convex in the scores.
    Reference: Cao, Qin, Liu, Tsai & Li (2007), Learning to rank: from pairwise approach
    to listwise approach, ICML.

    >>> import numpy as np, lossgrad
    >>> s = np.array([[0.0, 0.0]]); r = np.array([[1.0, 1.0]])
    >>> lossgrad.ListNet().value(scores=s, relevance=r).round(6)
    array([0.693147])
    """

    _formula = Formula(r"-\sum_i \operatorname{softmax}(y)_i \log \operatorname{softmax}(s)_i",
                       r"\operatorname{softmax}(s)_i - \operatorname{softmax}(y)_i", r"\text{not provided}", "s")

    def _vg(self, xp, data):
        s, rel, mb = data["s"], data["rel"], data["mb"]
        p, logp = _masked_softmax(xp, s, mb)
        q, _ = _masked_softmax(xp, rel, mb)
        value = -xp.sum(q * logp, axis=-1)
        return value, p - q


@register("ranknet", "ranking", variants=({"sigma": 2.0, "normalize": False},))
@dataclass(frozen=True)
class RankNet(_RankingLoss):
    r"""RankNet pairwise logistic loss over the pairs with relevance_i > relevance_j.

    Per list, with P = {(i, j) real items: rel_i > rel_j} and d_ij = s_i - s_j,

        L = (1/|P|) sum_{(i,j) in P} log(1 + exp(-sigma d_ij))       (normalize=True)
        dL/ds_k = (1/|P|) [ sum_{(j,k) in P} lam_jk - sum_{(k,j) in P} lam_kj ],
        lam_ij = sigma * sigmoid(-sigma d_ij).

    ``normalize=True`` divides each list's sum by its number of ordered pairs |P| (so
    lists of different lengths weigh alike; Burges et al. sum); ``normalize=False``
    returns the plain sum.  A list whose real items all share one relevance grade has
    no pair: value 0, gradient 0.  Convex in the scores.
    Reference: Burges, Shaked, Renshaw, Lazier, Deeds, Hamilton & Hullender (2005),
    Learning to rank using gradient descent, ICML.

    >>> import numpy as np, lossgrad
    >>> s = np.array([[0.0, 0.0]]); r = np.array([[1.0, 0.0]])
    >>> lossgrad.RankNet().value(scores=s, relevance=r).round(6)
    array([0.693147])
    """

    sigma: float = 1.0
    normalize: bool = True
    _formula = Formula(r"\frac{1}{|P|}\sum_{(i,j)\in P} \log(1 + e^{-\sigma (s_i - s_j)})",
                       r"\frac{1}{|P|}\Big[\sum_{(j,k)\in P}\lambda_{jk} - \sum_{(k,j)\in P}\lambda_{kj}\Big]",
                       r"\text{not provided}", "s")

    def __post_init__(self) -> None:
        self._set("sigma", V.param_positive(self._owner, "sigma", self.sigma))
        self._set("normalize", V.param_bool(self._owner, "normalize", self.normalize))

    def _vg(self, xp, data):
        s, rel, mb = data["s"], data["rel"], data["mb"]
        d = s[:, :, None] - s[:, None, :]
        pair = (rel[:, :, None] > rel[:, None, :]) & mb[:, :, None] & mb[:, None, :]
        pf = xp.astype(pair, s.dtype)
        zero = xp.zeros_like(d)
        loss = xp.where(pair, _xp.softplus(xp, -self.sigma * d), zero)
        lam = pf * (self.sigma * _xp.sigmoid(xp, -self.sigma * d))
        value = xp.sum(xp.sum(loss, axis=-1), axis=-1)
        if self.normalize:
            npairs = xp.sum(xp.sum(pf, axis=-1), axis=-1)
            inv = _xp.safe_divide(xp, xp.ones_like(npairs), npairs, 0.0)
            value = value * inv
            lam = lam * inv[:, None, None]
        g = xp.sum(lam, axis=-2) - xp.sum(lam, axis=-1)
        return value, g


@register("xendcg", "ranking", variants=({"seed": 7},))
@dataclass(frozen=True)
class XENDCG(_RankingLoss):
    r"""XE-NDCG: cross-entropy between a gamma-perturbed NDCG gain distribution and softmax(scores).

    Per list, over its real items, with gamma_i ~ U[0, 1) drawn once per item,

        phi_i = (2^{rel_i} - gamma_i) / sum_j (2^{rel_j} - gamma_j),   p = softmax(s),
        L = -sum_i phi_i log p_i,        dL/ds_i = p_i - phi_i   (exact, given gamma).

    gamma comes from ``numpy.random.default_rng(seed).random(scores.shape)``
    (:meth:`draw_gamma`), or from the optional input ``gamma`` (same shape, in [0, 1))
    to reuse another draw.  The draw depends only on ``seed`` and the shape, so repeated
    calls see the same gamma (the loss is a pure function); change ``seed`` (or pass
    ``gamma``) to resample per step, as the paper and LightGBM do.  The gains are
    computed as 2^{rel - max rel} so large grades do not overflow.

    LightGBM's ``rank_xendcg`` uses the same phi (its own LCG draw, seeded with
    objective_seed + query index, gamma = k/32768) but returns, as its "gradient",
    p - phi plus second- and third-order correction terms of the paper's Newton-step
    approximation, and the Hessian p(1 - p); tests/test_ranking.py matches it exactly
    on its own draw after removing those terms.  Convex in the scores.
    Reference: Bruch (2021), An alternative cross entropy loss for learning-to-rank, WWW.

    >>> import numpy as np, lossgrad
    >>> s = np.array([[0.0, 0.0]]); r = np.array([[1.0, 1.0]]); g = np.zeros((1, 2))
    >>> lossgrad.XENDCG().value(scores=s, relevance=r, gamma=g).round(6)
    array([0.693147])
    """

    seed: int = 0
    inputs: ClassVar[tuple[str, ...]] = ("scores", "relevance", "mask", "gamma")
    _optional_inputs: ClassVar[tuple[str, ...]] = ("mask", "gamma")
    _formula = Formula(r"-\sum_i \phi_i \log \operatorname{softmax}(s)_i,\ \phi_i \propto 2^{y_i} - \gamma_i",
                       r"\operatorname{softmax}(s)_i - \phi_i", r"\text{not provided}", "s")

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise TypeError(f"{self._owner}: seed must be a non-negative integer, got {self.seed!r}")
        self._set("seed", int(self.seed))

    def draw_gamma(self, shape: tuple[int, ...]) -> np.ndarray:
        """The gamma draw used when no ``gamma`` input is given (float64, in [0, 1))."""
        return np.random.default_rng(self.seed).random(tuple(shape))

    def _extra(self, xp, inputs, s, mb):
        gamma = inputs.get("gamma")
        if gamma is None:
            gamma = xp.asarray(self.draw_gamma(tuple(s.shape)), dtype=s.dtype, device=array_api_compat.device(s))
        else:
            gamma = _same_shape(xp, gamma, s, "gamma", s.dtype)
            if not get_config().assume_valid:
                V.check_all(xp, (gamma >= 0) & (gamma < 1), "gamma", "values in [0, 1)")
        return {"gamma": gamma}

    def _vg(self, xp, data):
        s, rel, mb, gamma = data["s"], data["rel"], data["mb"], data["gamma"]
        zero = xp.zeros_like(s)
        top = xp.max(rel, axis=-1, keepdims=True)  # padded rel are 0 and real rel >= 0
        raw = xp.where(mb, xp.exp((rel - top) * _LN2) - gamma * xp.exp(-top * _LN2), zero)
        phi = raw / xp.sum(raw, axis=-1, keepdims=True)
        p, logp = _masked_softmax(xp, s, mb)
        value = -xp.sum(phi * logp, axis=-1)
        return value, p - phi


@register("approx_ndcg", "ranking", variants=({"temperature": 0.3},))
@dataclass(frozen=True)
class ApproxNDCG(_RankingLoss):
    r"""ApproxNDCG: minus a smooth NDCG whose ranks are sums of sigmoids of score differences.

    Per list, over its real items, with T the temperature,

        pi_i = 1 + sum_{j != i} sigmoid((s_j - s_i) / T)          (smooth rank of item i)
        NDCG = (1/Z) sum_i (2^{rel_i} - 1) / log2(1 + pi_i),     Z = ideal DCG of the list,
        L = -NDCG.

    Exact gradient of this surrogate: with a_i = dNDCG/dpi_i
    = -(G_i / Z) ln 2 / ((1 + pi_i) ln^2(1 + pi_i)) and the symmetric
    S_ij = sigmoid'((s_j - s_i)/T) / T (i != j),

        dL/ds_k = -[ sum_i a_i S_ik - a_k sum_j S_kj ].

    A list with no relevant item (Z = 0) has value 0 and gradient 0 (as TF-Ranking).
    Not convex; bounded in [-1, 0].
    Reference: Qin, Liu & Li (2010), A general approximation framework for direct
    optimization of information retrieval measures, Information Retrieval 13(4);
    TF-Ranking ``ApproxNDCGLoss`` (temperature = 1/alpha).

    >>> import numpy as np, lossgrad
    >>> s = np.array([[5.0, -5.0]]); r = np.array([[1.0, 0.0]])
    >>> float(lossgrad.ApproxNDCG(temperature=0.1).value(scores=s, relevance=r)[0]) < -0.999
    True
    """

    temperature: float = 1.0
    _formula = Formula(r"-\frac{1}{Z}\sum_i \frac{2^{y_i}-1}{\log_2(1+\pi_i)},\ "
                       r"\pi_i = 1 + \sum_{j\ne i}\sigma\big(\tfrac{s_j - s_i}{T}\big)",
                       r"-\Big[\sum_i a_i S_{ik} - a_k \sum_j S_{kj}\Big]", r"\text{not provided}", "s")

    def __post_init__(self) -> None:
        self._set("temperature", V.param_positive(self._owner, "temperature", self.temperature))

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=2, basis=Basis.OTHER, bounded=True, has_hess=False)

    def _vg(self, xp, data):
        s, rel, mb = data["s"], data["rel"], data["mb"]
        t = self.temperature
        zero = xp.zeros_like(s)
        gain = xp.where(mb, xp.exp(rel * _LN2) - 1.0, zero)
        ideal = xp.sort(gain, axis=-1, descending=True)
        ranks = xp.arange(1, s.shape[-1] + 1, dtype=s.dtype, device=array_api_compat.device(s))
        z = xp.sum(ideal / (xp.log(ranks + 1.0) / _LN2), axis=-1)
        n = s.shape[-1]
        off = ~xp.eye(n, dtype=xp.bool, device=array_api_compat.device(s))
        pm = off[None, :, :] & mb[:, :, None] & mb[:, None, :]
        u = (s[:, None, :] - s[:, :, None]) / t  # u[l, i, j] = (s_j - s_i) / T
        sg = xp.where(pm, _xp.sigmoid(xp, u), xp.zeros_like(u))
        pi = 1.0 + xp.sum(sg, axis=-1)
        lg = xp.log1p(pi)  # ln(1 + pi)
        zinv = _xp.safe_divide(xp, xp.ones_like(z), z, 0.0)[:, None]
        ndcg = xp.sum(gain * _LN2 / lg, axis=-1) * zinv[:, 0]
        a = -(gain * zinv) * _LN2 / ((1.0 + pi) * lg * lg)
        sp = xp.where(pm, sg * _xp.sigmoid(xp, -u) / t, xp.zeros_like(u))
        dndcg = xp.sum(a[:, :, None] * sp, axis=-2) - a * xp.sum(sp, axis=-1)
        return -ndcg, -dndcg
