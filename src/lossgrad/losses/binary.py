r"""Binary classification losses on a logit (or a probability): cross-entropy and focal.

Stability: the logit forms never form sigmoid(f) then take its log; they use
softplus(+-f) = -log sigmoid(-+f) and sigmoid(f) sigmoid(-f) = e/(1 + e)^2 with
e = exp(-|f|), so value, grad and hess are finite (and accurate to a few ulps) for
every finite logit.  The focal loss forms its modulating factor q^gamma as a power of
a normal float or as exp(gamma log sigmoid(-z)) where q underflows, and its derivatives
never contain q^(gamma - 1) (infinite at q = 0 for gamma < 1, NaN under autodiff).
The probability form of the cross-entropy is exact: 0 log 0 = 0, +inf where the true
value is infinite, no epsilon clipping and no -100 clamp.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _validation as V
from .. import _xp
from .._core import MarginLoss, PointwiseLoss
from .._props import Basis, Formula, Props
from .._registry import register

__all__ = ["BinaryCrossEntropy", "BinaryFocal"]


def _sig_prod(xp: Any, f: Any) -> Any:
    """sigmoid(f) sigmoid(-f) without cancellation in either tail."""
    e = xp.exp(-xp.abs(f))
    return e / ((1.0 + e) * (1.0 + e))


def _xlog(xp: Any, x: Any, log_u: Any, singular: Any) -> Any:
    """x * log(u) given log(u) off the points where u = 0 (``singular``).

    Conventions: 0 log 0 = 0, and x log 0 = -inf for x > 0 (the true value).
    """
    body = xp.where(singular, _xp.full_like(xp, log_u, -math.inf), x * log_u)
    return xp.where(x == 0, xp.zeros_like(x), body)


def _ratio(xp: Any, x: Any, d: Any) -> Any:
    """x / d for x >= 0, d >= 0, with 0/0 = 0 and x/0 = +inf (no warnings)."""
    zero_d = d == 0
    body = x / xp.where(zero_d, xp.ones_like(d), d)
    body = xp.where(zero_d, _xp.full_like(xp, d, math.inf), body)
    return xp.where(x == 0, xp.zeros_like(x), body)


@register(
    "binary_cross_entropy",
    "binary",
    variants=(
        {"pos_weight": 3.0},
        {"pos_weight": 0.5, "label_smoothing": 0.2},
        {"from_logits": False},
        {"from_logits": False, "pos_weight": 2.0, "label_smoothing": 0.1},
    ),
)
@dataclass(frozen=True)
class BinaryCrossEntropy(PointwiseLoss):
    r"""Binary cross-entropy on a logit f (default) or a probability p; labels y in [0, 1].

    Soft labels are allowed.  Label smoothing uses the Keras ``BinaryCrossentropy``
    convention y' = y (1 - ls) + ls / 2.  With pw = ``pos_weight``:

    * logit form, as ``torch.nn.BCEWithLogitsLoss(pos_weight=pw)``:
      L = pw y' softplus(-f) + (1 - y') softplus(f)
      = -[pw y' log sigmoid(f) + (1 - y') log(1 - sigmoid(f))];
      L' = -pw y' sigmoid(-f) + (1 - y') sigmoid(f);
      L'' = sigmoid(f) sigmoid(-f) (pw y' + 1 - y').
      Strictly convex; Lipschitz max(pw, 1)(1 - ls/2); smoothness
      max(pw (1 - ls/2) + ls/2, 1 - ls/2 + pw ls/2) / 4.
    * probability form (``from_logits=False``), p in [0, 1], as ``torch.nn.BCELoss``
      but exact (no -100 clamp of the log): L = -[pw y' log p + (1 - y') log(1 - p)];
      L' = -pw y'/p + (1 - y')/(1 - p); L'' = pw y'/p^2 + (1 - y')/(1 - p)^2, all
      derivatives with respect to p.  Convex in p with 0 log 0 = 0; +inf where the true
      value is infinite.  Strongly convex on [0, 1] with modulus the minimum over
      the label range of (a^{1/3} + b^{1/3})^3, a = pw y', b = 1 - y'.

    Class-calibrated (the decision sign(f), resp. sign(2p - 1), recovers sign(2 eta - 1))
    exactly when pw = 1 and ls < 1: with pw != 1 the risk minimiser is
    sigmoid(f*) = pw eta / (pw eta + 1 - eta).
    Reference: Goodfellow, Bengio & Courville (2016), Deep Learning, section 6.2.2.2;
    Szegedy et al. (2016) for label smoothing.

    >>> import lossgrad
    >>> bce = lossgrad.BinaryCrossEntropy()
    >>> bce.grad_hess(1.0, 0.0)
    (np.float64(-0.5), np.float64(0.25))
    >>> float(lossgrad.BinaryCrossEntropy(from_logits=False).value(1.0, 0.5)) == math.log(2)
    True
    """

    from_logits: bool = True
    pos_weight: float = 1.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        o = self._owner
        self._set("from_logits", V.param_bool(o, "from_logits", self.from_logits))
        self._set("pos_weight", V.param_positive(o, "pos_weight", self.pos_weight))
        self._set("label_smoothing", V.param_in_interval(o, "label_smoothing", self.label_smoothing, 0.0, 1.0, "both"))

    @property
    def formula(self) -> Formula:  # type: ignore[override]
        if self.from_logits:
            return Formula(
                r"w y' \log(1 + e^{-f}) + (1 - y') \log(1 + e^{f})",
                r"-w y' \sigma(-f) + (1 - y') \sigma(f)",
                r"\sigma(f)\,\sigma(-f)\,(w y' + 1 - y')",
                r"f \text{ (logit)},\ y' = y(1 - \epsilon) + \epsilon/2",
            )
        return Formula(
            r"-w y' \log p - (1 - y') \log(1 - p)",
            r"-w y'/p + (1 - y')/(1 - p)",
            r"w y'/p^2 + (1 - y')/(1 - p)^2",
            r"p \in [0, 1],\ y' = y(1 - \epsilon) + \epsilon/2",
        )

    # --- declared records ---------------------------------------------------
    def _label_range(self) -> tuple[float, float]:
        ls = self.label_smoothing
        return 0.5 * ls, 1.0 - 0.5 * ls

    @property
    def props(self) -> Props:
        pw = self.pos_weight
        lo, hi = self._label_range()
        calibrated = pw == 1.0 and self.label_smoothing < 1.0
        if self.from_logits:
            return Props(
                convex=True,
                strictly_convex=True,
                lipschitz=max(pw * hi, 1.0 - lo),
                smoothness=0.25 * max(pw * hi + 1.0 - hi, pw * lo + 1.0 - lo),
                basis=Basis.LIKELIHOOD,
                class_calibrated=calibrated,
            )

        def min_hess(y: float) -> float:
            return ((pw * y) ** (1.0 / 3.0) + (1.0 - y) ** (1.0 / 3.0)) ** 3

        return Props(
            convex=True,
            strictly_convex=True,
            strong_convexity=min(min_hess(lo), min_hess(hi)),
            basis=Basis.LIKELIHOOD,
            class_calibrated=calibrated,
        )

    # --- checks -------------------------------------------------------------
    def _check_target(self, xp, y):
        V.check_all(xp, (y >= 0) & (y <= 1), "y_true", "labels in [0, 1] (hard or soft positive-class probabilities)")

    def _check_prediction(self, xp, f):
        if not self.from_logits:
            V.check_all(xp, (f >= 0) & (f <= 1), "y_pred", "probabilities in [0, 1] (from_logits=False)")

    # --- formulas -----------------------------------------------------------
    def _smooth(self, y):
        ls = self.label_smoothing
        return y if ls == 0 else y * (1.0 - ls) + 0.5 * ls

    def _evaluate(self, xp, y, f, ops):
        t = self._smooth(y)
        a = self.pos_weight * t  # weight of the positive term
        b = 1.0 - t  # weight of the negative term
        out = []
        if self.from_logits:
            for op in ops:
                if op == "value":
                    out.append(a * _xp.softplus(xp, -f) + b * _xp.softplus(xp, f))
                elif op == "grad":
                    out.append(b * _xp.sigmoid(xp, f) - a * _xp.sigmoid(xp, -f))
                else:
                    out.append(_sig_prod(xp, f) * (a + b))
            return tuple(out)
        one_minus = 1.0 - f
        for op in ops:
            if op == "value":
                at0, at1 = f == 0, f == 1
                log_p = xp.log(xp.where(at0, xp.ones_like(f), f))
                log_1mp = xp.log1p(-xp.where(at1, xp.zeros_like(f), f))
                out.append(0.0 - _xlog(xp, a, log_p, at0) - _xlog(xp, b, log_1mp, at1))
            elif op == "grad":
                out.append(_ratio(xp, b, one_minus) - _ratio(xp, a, f))
            else:
                # (a / p) / p: p * p would underflow for p < 1e-154 with a finite quotient
                out.append(_ratio(xp, _ratio(xp, a, f), f) + _ratio(xp, b, one_minus * one_minus))
        return tuple(out)

    # --- what verify samples --------------------------------------------------
    def _example_inputs(self, rng, n):
        y = np.where(rng.random(n) < 0.3, rng.random(n), rng.integers(0, 2, n).astype(float))
        if self.from_logits:
            return y, rng.normal(0.0, 3.0, n)
        return y, rng.uniform(0.02, 0.98, n)

    def _natural(self, y, f):
        """The logit f itself; for the probability form the decision margin p - 1/2."""
        return f if self.from_logits else f - 0.5

    def _from_natural(self, y, t):
        return t if self.from_logits else t + 0.5


# ------------------------------------------------------------------- focal


def _focal_dz(gamma: float, z: np.ndarray) -> np.ndarray:
    """dL/dz of the focal loss with alpha_t = 1 (NumPy, for the constants below)."""
    logp = _xp.log_sigmoid(np, z)
    p, q = _xp.sigmoid(np, z), _xp.sigmoid(np, -z)
    return _modulating(np, z, gamma) * (gamma * p * logp - q)


def _focal_d2z(gamma: float, z: np.ndarray) -> np.ndarray:
    logp = _xp.log_sigmoid(np, z)
    p, q = _xp.sigmoid(np, z), _xp.sigmoid(np, -z)
    a = _modulating(np, z, gamma)
    return a * p * (gamma * logp * (q - gamma * p) + q * (2.0 * gamma + 1.0))


def _modulating(xp: Any, z: Any, gamma: float) -> Any:
    """q^gamma with q = sigmoid(-z), finite and accurate for every z and gamma >= 0.

    Where q is a normal float, q ** gamma (relative error about gamma ulps); where q
    is subnormal or underflows (z beyond about 708 in float64, 87 in float32), the
    log-space form exp(gamma log sigmoid(-z)), which keeps full relative accuracy.
    No q^(gamma - 1) is ever formed, so 0 < gamma < 1 is as safe as gamma >= 1.
    """
    if gamma == 0:
        return xp.ones_like(z)
    q = _xp.sigmoid(xp, -z)
    in_log_space = xp.exp(gamma * _xp.log_sigmoid(xp, -z))
    return xp.where(q >= xp.finfo(z.dtype).smallest_normal, q**gamma, in_log_space)


@functools.lru_cache(maxsize=64)
def _focal_sup(gamma: float, which: str) -> float:
    """sup over z of |dL/dz| (which='grad') or |d2L/dz2| (which='hess'), alpha_t = 1.

    No closed form exists for gamma > 0: a dense grid locates the maximum and a
    bounded Brent search refines it to about 1e-13 relative; the result is rounded
    up by 1e-12 relative so that it stays an upper bound.
    """
    from scipy.optimize import minimize_scalar

    fn = _focal_dz if which == "grad" else _focal_d2z
    if which == "grad" and gamma == 0:
        return 1.0  # sup of sigmoid(-z), approached as z -> -inf
    if which == "hess" and gamma == 0:
        return 0.25
    # The extremum of the gradient sits near z = -(2 + 1/gamma); keep it inside the grid.
    lo = -min(740.0, 40.0 + 4.0 / gamma)
    z = np.linspace(lo, 40.0, 8_001)
    g = np.abs(fn(gamma, z))
    i = int(np.argmax(g))
    a, b = z[max(i - 1, 0)], z[min(i + 1, z.size - 1)]
    res = minimize_scalar(lambda t: -abs(float(fn(gamma, np.asarray(t)))), bounds=(a, b), method="bounded",
                          options={"xatol": 1e-12})
    best = max(float(g[i]), -float(res.fun))
    if which == "grad":
        best = max(best, 1.0)  # the limit z -> -inf
    return best * (1.0 + 1e-12)


@register(
    "binary_focal",
    "binary",
    variants=({"gamma": 0.0}, {"gamma": 0.5}, {"gamma": 1.0, "alpha": 0.25}, {"gamma": 5.0, "alpha": 0.75}),
)
@dataclass(frozen=True)
class BinaryFocal(MarginLoss):
    r"""Binary focal loss on a logit f, labels y in {0, 1} ({-1, +1} accepted).

    With z = (2y - 1) f, p = sigmoid(z), q = sigmoid(-z) = 1 - p and alpha_t = alpha for
    y = 1, 1 - alpha for y = 0 (1 when alpha is None):

    L = -alpha_t q^gamma log p;
    dL/dz = alpha_t q^gamma (gamma p log p - q);
    d2L/dz2 = alpha_t q^gamma p [gamma log p (q - gamma p) + q (2 gamma + 1)];
    grad = (2y - 1) dL/dz, hess = d2L/dz2.

    log p = log sigmoid(z) and q^gamma (``_modulating``: a plain power where q is a
    normal float, exp(gamma log sigmoid(-z)) in log space where q underflows) keep
    value, grad and hess finite and accurate to a few ulps for every gamma >= 0
    (0 < gamma < 1 included) and every finite logit.  gamma = 0, alpha = None is the logistic loss.
    Not convex for any gamma > 0 (d2L/dz2 < 0 for z < -(2 gamma + 1)/gamma roughly);
    its Lipschitz and smoothness constants have no closed form and are computed
    numerically (``_focal_sup``), times max(alpha, 1 - alpha).  Class-calibrated for
    alpha None or 0.5 (phi strictly decreasing: Charoenphakdee et al. 2021); a
    different alpha moves the risk minimiser's threshold away from eta = 1/2.
    Reference: Lin, Goyal, Girshick, He & Dollar (2017), Focal loss for dense object
    detection, ICCV.

    >>> import lossgrad
    >>> lossgrad.BinaryFocal(gamma=2.0).value(1.0, 0.0) == 0.25 * math.log(2)
    np.True_
    """

    gamma: float = 2.0
    alpha: float | None = None

    def __post_init__(self) -> None:
        self._set("gamma", V.param_nonnegative(self._owner, "gamma", self.gamma))
        if self.alpha is not None:
            self._set("alpha", V.param_in_interval(self._owner, "alpha", self.alpha, 0.0, 1.0, "both"))

    _formula = Formula(
        r"-\alpha_t\,q^\gamma \log p",
        r"(2y - 1)\,\alpha_t\,q^\gamma (\gamma\,p \log p - q)",
        r"\alpha_t\,q^\gamma p\,[\gamma \log p\,(q - \gamma p) + q(2\gamma + 1)]",
        r"z = (2y - 1) f,\ p = \sigma(z),\ q = \sigma(-z)",
    )

    @property
    def _balanced(self) -> bool:
        return self.alpha is None or self.alpha == 0.5

    @property
    def props(self) -> Props:
        amax = 1.0 if self.alpha is None else max(self.alpha, 1.0 - self.alpha)
        strict = self.gamma == 0 and (self.alpha is None or 0.0 < self.alpha < 1.0)
        return Props(
            convex=self.gamma == 0,
            strictly_convex=strict,
            lipschitz=amax * _focal_sup(self.gamma, "grad"),
            smoothness=amax * _focal_sup(self.gamma, "hess"),
            basis=Basis.MARGIN if self._balanced else Basis.LIKELIHOOD,
            class_calibrated=self._balanced,
        )

    def _alpha_t(self, xp, y, like):
        if self.alpha is None:
            return None
        return xp.where(y > 0, _xp.full_like(xp, like, self.alpha), _xp.full_like(xp, like, 1.0 - self.alpha))

    def _evaluate(self, xp, y, f, ops):
        s = self._sign(xp, y)
        z = s * f
        g = self.gamma
        logp = _xp.log_sigmoid(xp, z)
        qg = _modulating(xp, z, g)
        at = self._alpha_t(xp, y, z)
        out = []
        for op in ops:
            if op == "value":
                v = -qg * logp
            else:
                p, q = _xp.sigmoid(xp, z), _xp.sigmoid(xp, -z)
                if op == "grad":
                    v = s * qg * (g * p * logp - q)
                else:
                    v = qg * p * (g * logp * (q - g * p) + q * (2.0 * g + 1.0))
            out.append(v if at is None else at * v)
        return tuple(out)

    def _value(self, xp, y, f):
        return self._evaluate(xp, y, f, ("value",))[0]

    def _grad(self, xp, y, f):
        return self._evaluate(xp, y, f, ("grad",))[0]

    def _hess(self, xp, y, f):
        return self._evaluate(xp, y, f, ("hess",))[0]

    def _example_inputs(self, rng, n):
        return rng.integers(0, 2, n).astype(float), rng.normal(0.0, 3.0, n)

