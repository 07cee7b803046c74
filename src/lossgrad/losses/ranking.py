r"""Learning-to-rank losses over padded lists: ListNet, RankNet, XE-NDCG, ApproxNDCG.

Inputs, by name: ``scores`` (n_lists, list_len) floating model scores, ``relevance`` of
the same shape (graded relevance >= 0 on real items) and an optional boolean ``mask``
of the same shape (True = real item, False = padding).  Padded items enter neither the
value nor the gradient: their gradient is exactly 0 and their ``relevance`` and
``scores`` entries are never read (they may hold any finite value, e.g. TF-Ranking's -1).
Every list needs at least 2 real items.

``value`` is one number per list, ``grad`` returns ``{"scores": array}``, the gradient
of sum_l w_l value_l.  Every softmax is computed with the max shift over the real items
only, every log-sigmoid through a stable softplus.

Second derivatives, exact and in closed form: lists do not interact, so the Hessian of
sum_l w_l value_l w.r.t. the scores is block diagonal with one (list_len, list_len)
block per list.  ``hess`` returns the blocks ``{"scores": (n_lists, L, L)}``,
``hess_diag`` their diagonals ``{"scores": (n_lists, L)}`` (what a boosting engine
takes per document), ``grad_hess_diag`` both first- and second-order parts in one
pass, ``grad_hess_bound`` the gradient and the absolute row sums of the blocks (a
diagonal majoriser: a boosting engine's ``hessian="upper_bound"``), and ``hvp(v)`` the
product with a direction ``{"scores": (n_lists, L)}`` without forming the blocks.  Rows and columns of padded items are 0.  Two shapes recur:

* softmax: d^2/ds^2 of -sum_i t_i log softmax(s)_i with sum_i t_i = 1 is
  diag(p) - p p^T (ListNet, XE-NDCG; independent of the target t);
* pairwise: a sum over pairs of c_ij (e_i - e_j)(e_i - e_j)^T is the graph Laplacian
  diag(A 1) - A of the symmetric weights A = C + C^T (RankNet; half of ApproxNDCG).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import array_api_compat
import numpy as np

from .. import _validation as V
from .. import _xp
from .._config import get_config
from .._props import Basis, Formula, Props
from .._registry import register
from ._ranking_base import LN2 as _LN2
from ._ranking_base import (
    RankingLoss,
    diag_embed,
    laplacian_second,
    list_kernel_applies,
    masked_softmax,
    same_shape,
    softmax_second,
)

__all__ = ["ListNet", "RankNet", "XENDCG", "ApproxNDCG"]


class _SoftmaxList(RankingLoss):
    """ListNet and XE-NDCG: a cross-entropy between a target distribution over each list and
    softmax(scores), so gradient p - q and Hessian diag(p) - p p^T.  Value, gradient and
    Hessian diagonal of float32/float64 NumPy scores come from one list kernel
    (:mod:`lossgrad.kernels._ranking_softmax`); blocks and hvp from the reference."""

    def _second(self, xp, data, what, v):
        p, _ = masked_softmax(xp, data["s"], data["mb"])
        return softmax_second(xp, p, what, v)

    def _grad_and_bound(self, xp, data):
        return self._grad_and_twice_diag(xp, data)  # |p_k - p_k^2| + sum_{j != k} p_k p_j = 2 p_k (1 - p_k)

    def _list_kernel(self, xp, data, want_grad, want_diag):
        from ..kernels._ranking_softmax import softmax_lists

        # XE-NDCG's inputs carry its gamma draw; ListNet's have none (its target is softmax(relevance))
        return softmax_lists(data["s"], data["rel"], data["mb"], data.get("gamma"), want_grad, want_diag,
                             data.get("marked"))


@register("listnet", "ranking")
@dataclass(frozen=True)
class ListNet(_SoftmaxList):
    r"""ListNet top-one loss: cross-entropy between softmax(relevance) and softmax(scores).

    Per list, over its real items: q = softmax(relevance) (the "top-one probability" of
    Cao et al. with the exponential as phi, as allRank's ``listNet``), p = softmax(scores),

        L = -sum_i q_i log p_i,        dL/ds_i = p_i - q_i    (sum_i q_i = 1),
        d^2L/ds_i ds_j = p_i delta_ij - p_i p_j     (positive semidefinite).

    TF-Ranking's ``SoftmaxLoss`` (optax ``ranking_softmax_loss``) uses the linear target
    relevance / sum(relevance) instead; on lists whose relevances are all positive it
    equals this loss evaluated at log(relevance).
    Convex in the scores.  Value, gradient and Hessian diagonal of float32/float64 NumPy
    scores come from a list kernel (:mod:`lossgrad.kernels._ranking_softmax`, shared with
    XE-NDCG: three branch-free loops per list); the blocks and the hvp from the reference.
    Reference: Cao, Qin, Liu, Tsai & Li (2007), Learning to rank: from pairwise approach
    to listwise approach, ICML.

    >>> import numpy as np, lossgrad
    >>> s = np.array([[0.0, 0.0]]); r = np.array([[1.0, 1.0]])
    >>> lossgrad.ListNet().value(scores=s, relevance=r).round(6)
    array([0.693147])
    """

    _formula = Formula(r"-\sum_i \operatorname{softmax}(y)_i \log \operatorname{softmax}(s)_i",
                       r"\operatorname{softmax}(s)_i - \operatorname{softmax}(y)_i",
                       r"\operatorname{diag}(p) - p p^\top,\ p = \operatorname{softmax}(s)", "s")

    def _vg(self, xp, data):
        s, rel, mb = data["s"], data["rel"], data["mb"]
        p, logp = masked_softmax(xp, s, mb)
        q, _ = masked_softmax(xp, rel, mb)
        value = -xp.sum(q * logp, axis=-1)
        return value, p - q



@register("ranknet", "ranking", variants=({"sigma": 2.0, "normalize": False},))
@dataclass(frozen=True)
class RankNet(RankingLoss):
    r"""RankNet pairwise logistic loss over the pairs with relevance_i > relevance_j.

    Per list, with P = {(i, j) real items: rel_i > rel_j} and d_ij = s_i - s_j,

        L = (1/|P|) sum_{(i,j) in P} log(1 + exp(-sigma d_ij))       (normalize=True)
        dL/ds_k = (1/|P|) [ sum_{(j,k) in P} lam_jk - sum_{(k,j) in P} lam_kj ],
        lam_ij = sigma * sigmoid(-sigma d_ij),
        d^2L/ds^2 = (1/|P|) sum_{(i,j) in P} c_ij (e_i - e_j)(e_i - e_j)^T,
        c_ij = sigma^2 sigmoid(sigma d_ij) sigmoid(-sigma d_ij) > 0,

    the Laplacian of the pair graph weighted by c (positive semidefinite, with the
    constant vector in its null space: adding a constant to a list changes nothing).

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
                       r"\frac{1}{|P|}\sum_{(i,j)\in P} \sigma^2 \sigma(\sigma d_{ij})\sigma(-\sigma d_{ij})"
                       r"(e_i - e_j)(e_i - e_j)^\top", "s")

    def __post_init__(self) -> None:
        self._set("sigma", V.param_positive(self._owner, "sigma", self.sigma))
        self._set("normalize", V.param_bool(self._owner, "normalize", self.normalize))

    def _vg(self, xp, data):
        x, e, pf, inv = self._pairs(xp, data)
        loss = xp.where(pf > 0, xp.maximum(-x, 0.0) + xp.log1p(e), xp.zeros_like(x))  # softplus(-x) on the pairs
        value = xp.sum(xp.sum(loss, axis=-1), axis=-1)
        return (value if inv is None else value * inv), self._grad(xp, x, e, pf, inv)

    def _grad(self, xp, x, e, pf, inv):
        lam = pf * (self.sigma * xp.where(x >= 0, e, xp.ones_like(e)) / (1.0 + e))  # sigma sigmoid(-x)
        if inv is not None:
            lam = lam * inv[:, None, None]
        return xp.sum(lam, axis=-2) - xp.sum(lam, axis=-1)

    def _second(self, xp, data, what, v, pairs=None):
        x, e, pf, inv = self._pairs(xp, data) if pairs is None else pairs
        c = pf * (self.sigma**2 * e / ((1.0 + e) * (1.0 + e)))
        if inv is not None:
            c = c * inv[:, None, None]
        return laplacian_second(xp, c + xp.matrix_transpose(c), what, v)

    def _grad_and_diag(self, xp, data):
        pairs = self._pairs(xp, data)
        return self._grad(xp, *pairs), self._second(xp, data, "diag", None, pairs)

    def _grad_and_bound(self, xp, data):
        return self._grad_and_twice_diag(xp, data)  # the Laplacian of c >= 0

    def _list_kernel(self, xp, data, want_grad, want_diag):
        from ..kernels._ranking import ranknet_lists

        return ranknet_lists(data["s"], data["rel"], data["mb"], self.sigma, self.normalize, want_grad, want_diag,
                             data.get("marked"))

    def _pairs(self, xp, data):
        """x = sigma (s_i - s_j), e = exp(-|x|) (the one exponential: softplus(-x) = max(-x, 0)
        + log1p(e), sigmoid(-x) = e / (1 + e) or 1 / (1 + e), sigmoid(x) sigmoid(-x) = e / (1 + e)^2),
        the pair indicator as 0/1 floats (the gradient and Hessian factors it multiplies stay
        finite even where x overflows) and, with ``normalize``, 1/|P| per list (else None)."""
        s, rel, mb = data["s"], data["rel"], data["mb"]
        s = xp.where(mb, s, xp.zeros_like(s))  # padded scores are never read, whatever they hold
        x = self.sigma * (s[:, :, None] - s[:, None, :])
        pf = xp.astype((rel[:, :, None] > rel[:, None, :]) & mb[:, :, None] & mb[:, None, :], s.dtype)
        inv = None
        if self.normalize:
            npairs = xp.sum(xp.sum(pf, axis=-1), axis=-1)
            inv = _xp.safe_divide(xp, xp.ones_like(npairs), npairs, 0.0)
        return x, xp.exp(-xp.abs(x)), pf, inv


_GAMMA_CACHE: dict = {}  # XENDCG's last gamma draw: (seed, shape, dtype) -> read-only array
_GAMMA_CACHE_BYTES = 1 << 26


@register("xendcg", "ranking", variants=({"seed": 7},))
@dataclass(frozen=True)
class XENDCG(_SoftmaxList):
    r"""XE-NDCG: cross-entropy between a gamma-perturbed NDCG gain distribution and softmax(scores).

    Per list, over its real items, with gamma_i ~ U[0, 1) drawn once per item,

        phi_i = (2^{rel_i} - gamma_i) / sum_j (2^{rel_j} - gamma_j),   p = softmax(s),
        L = -sum_i phi_i log p_i,        dL/ds_i = p_i - phi_i   (exact, given gamma),
        d^2L/ds_i ds_j = p_i delta_ij - p_i p_j   (sum_i phi_i = 1).

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
    on its own draw after removing those terms.  Convex in the scores.  Value, gradient
    and Hessian diagonal of float32/float64 NumPy scores come from ListNet's list kernel
    (:mod:`lossgrad.kernels._ranking_softmax`, gamma drawn before the call); the blocks
    and the hvp from the reference.
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
                       r"\operatorname{softmax}(s)_i - \phi_i",
                       r"\operatorname{diag}(p) - p p^\top,\ p = \operatorname{softmax}(s)", "s")

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
            gamma = xp.asarray(self._last_draw(tuple(s.shape), s.dtype), dtype=s.dtype, device=array_api_compat.device(s))
        else:
            gamma = same_shape(xp, gamma, s, "gamma", s.dtype)
            if not get_config().assume_valid:
                V.check_all(xp, (gamma >= 0) & (gamma < 1), "gamma", "values in [0, 1)")
        return {"gamma": gamma}

    def _last_draw(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """:meth:`draw_gamma` in ``dtype`` (a NumPy dtype, or float64 for another namespace's),
        read-only, the last one kept (up to :data:`_GAMMA_CACHE_BYTES`): a loop of calls
        with one seed and shape draws once (0.42 ms of a 0.99 ms value_grad at 2000 x 120)."""
        dtype = dtype if dtype in (np.float32, np.float64) else np.float64
        key = (self.seed, shape, np.dtype(dtype).str)
        hit = _GAMMA_CACHE.get(key)
        if hit is None:
            hit = self.draw_gamma(shape).astype(dtype, copy=False)
            hit.flags.writeable = False
            _GAMMA_CACHE.clear()
            if hit.nbytes <= _GAMMA_CACHE_BYTES:
                _GAMMA_CACHE[key] = hit
        return hit

    def _vg(self, xp, data):
        s, rel, mb, gamma = data["s"], data["rel"], data["mb"], data["gamma"]
        zero = xp.zeros_like(s)
        top = xp.max(rel, axis=-1, keepdims=True)  # padded rel are 0 and real rel >= 0
        raw = xp.where(mb, xp.exp((rel - top) * _LN2) - gamma * xp.exp(-top * _LN2), zero)
        phi = raw / xp.sum(raw, axis=-1, keepdims=True)
        p, logp = masked_softmax(xp, s, mb)
        value = -xp.sum(phi * logp, axis=-1)
        return value, p - phi



@register("approx_ndcg", "ranking", variants=({"temperature": 0.3},))
@dataclass(frozen=True)
class ApproxNDCG(RankingLoss):
    r"""ApproxNDCG: minus a smooth NDCG whose ranks are sums of sigmoids of score differences.

    Per list, over its real items, with T the temperature,

        pi_i = 1 + sum_{j != i} sigmoid((s_j - s_i) / T)          (smooth rank of item i)
        NDCG = (1/Z) sum_i (2^{rel_i} - 1) / log2(1 + pi_i),     Z = ideal DCG of the list,
        L = -NDCG.

    Exact gradient of this surrogate: with a_i = dNDCG/dpi_i
    = -(G_i / Z) ln 2 / ((1 + pi_i) ln^2(1 + pi_i)) and the symmetric
    S_ij = sigmoid'((s_j - s_i)/T) / T (i != j),

        dL/ds_k = -[ sum_i a_i S_ik - a_k sum_j S_kj ] = -(J^T a)_k,

    J = dpi/ds = S - diag(S 1) (symmetric).  Exact Hessian: with
    b_i = d^2NDCG/dpi_i^2 = -a_i (ln(1 + pi_i) + 2) / ((1 + pi_i) ln(1 + pi_i)) and the pair
    weights M_ij = a_i sigmoid''((s_j - s_i)/T) / T^2 (sigmoid'' = sigmoid' (1 - 2 sigmoid)),

        d^2L/ds^2 = -( J^T diag(b) J + Lap(M + M^T) ),   Lap(A) = diag(A 1) - A:

    the first term from the curvature of 1/log2(1 + pi), the second from that of each
    sigmoid in pi.  Indefinite in general (the loss is not convex).

    A list with no relevant item (Z = 0) has value 0 and gradient 0 (as TF-Ranking).
    Not convex; bounded in [-1, 0].  Value, gradient and Hessian diagonal of float32/float64
    NumPy scores come from a list kernel (:mod:`lossgrad.kernels._ranking_approx`: one
    exponential per pair and pass, no (L, L) array), and so do the blocks (and the hvp, as
    blocks times v): O(L^3) per list, with no (n, L, L) array but the blocks; and
    ``grad_hess_bound``'s absolute row sums of the blocks, with no (n, L, L) array at all.
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
                       r"-\Big[\sum_i a_i S_{ik} - a_k \sum_j S_{kj}\Big]",
                       r"-\big(J^\top \operatorname{diag}(b) J + \operatorname{Lap}(M + M^\top)\big)", "s")

    def __post_init__(self) -> None:
        self._set("temperature", V.param_positive(self._owner, "temperature", self.temperature))

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=2, basis=Basis.OTHER, bounded=True)

    def _vg(self, xp, data):
        q = self._smooth_ranks(xp, data)
        ndcg = xp.sum(q["gain"] * _LN2 / q["lg"], axis=-1) * q["zinv"][:, 0]
        return -ndcg, -_symmetric_t_times(xp, q["jac"], q["a"])

    def _grad_and_diag(self, xp, data):
        q = self._smooth_ranks(xp, data)
        return -_symmetric_t_times(xp, q["jac"], q["a"]), self._second(xp, data, "diag", None, q)

    def _grad_and_bound(self, xp, data):
        if not list_kernel_applies(data["s"]):
            return super()._grad_and_bound(xp, data)
        from ..kernels._ranking_approx_blocks import approx_ndcg_grad_bound

        return approx_ndcg_grad_bound(data["s"], data["rel"], data["mb"], self.temperature, data.get("marked"))

    def _list_kernel(self, xp, data, want_grad, want_diag):
        from ..kernels._ranking_approx import approx_ndcg_lists

        return approx_ndcg_lists(data["s"], data["rel"], data["mb"], self.temperature, want_grad, want_diag,
                                 data.get("marked"))

    def _second(self, xp, data, what, v, q=None):
        """-(J^T diag(b) J + Lap(M + M^T)) with b = d^2NDCG/dpi^2 and M_ij = a_i sigma''(u_ij) / T^2."""
        if what != "diag" and list_kernel_applies(data["s"]):  # the blocks kernel; the hvp as blocks @ v
            from ..kernels._ranking_approx_blocks import approx_ndcg_blocks

            blocks = approx_ndcg_blocks(data["s"], data["rel"], data["mb"], self.temperature, data.get("marked"))
            return blocks if what == "full" else np.squeeze(blocks @ v[:, :, None], axis=-1)
        q = self._smooth_ranks(xp, data) if q is None else q
        a, jac = q["a"], q["jac"]
        b = -a * (q["lg"] + 2.0) / ((1.0 + q["pi"]) * q["lg"])
        # sigmoid''(u) / T^2 = S (1 - 2 sigmoid(u)) / T, with S = sigmoid'(u) / T (0 off the pairs)
        m = a[:, :, None] * q["sp"] * (1.0 - 2.0 * q["sg"]) / self.temperature
        pairs = laplacian_second(xp, m + xp.matrix_transpose(m), what, v)
        if what == "diag":
            return -(xp.sum(b[:, :, None] * jac * jac, axis=-2) + pairs)
        if what == "hvp":
            return -(_symmetric_t_times(xp, jac, b * _symmetric_t_times(xp, jac, v)) + pairs)
        return -(xp.matrix_transpose(jac) @ (b[:, :, None] * jac) + pairs)

    def _smooth_ranks(self, xp, data):
        """The pieces of value and derivatives: gains, 1/Z, smooth ranks pi, ln(1 + pi),
        a = dNDCG/dpi and the symmetric Jacobian J = dpi/ds = S - diag(S 1)."""
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
        a = -(gain * zinv) * _LN2 / ((1.0 + pi) * lg * lg)
        sp = xp.where(pm, sg * _xp.sigmoid(xp, -u) / t, xp.zeros_like(u))  # S, symmetric
        jac = sp - diag_embed(xp, xp.sum(sp, axis=-1))
        return {"gain": gain, "zinv": zinv, "pi": pi, "lg": lg, "a": a, "jac": jac, "sg": sg, "sp": sp}


def _symmetric_t_times(xp: Any, jac: Any, x: Any) -> Any:
    """J^T x per list, (n, L, L) and (n, L) -> (n, L)."""
    return xp.squeeze(xp.matrix_transpose(jac) @ x[:, :, None], axis=-1)
