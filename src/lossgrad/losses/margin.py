r"""Margin losses phi(z) of the margin z = y f, labels y in {-1, +1} ({0, 1} accepted).

The base class :class:`~lossgrad.MarginLoss` does the chain rule: grad = y phi'(z),
hess = phi''(z).  Kinks are declared in z.  Stability: the logistic loss uses the
stable softplus, its derivatives the two-tailed sigmoid; the exponential loss returns
+inf (the true value) without an overflow warning where e^{-z} exceeds the largest
float of the dtype; DWD evaluates its tail as (z0/z)^q, never forming the constant
q^q/(q+1)^(q+1) that would overflow for large q.

Calibration (``class_calibrated``) follows Bartlett, Jordan & McAuliffe (2006),
"Convexity, classification, and risk bounds", JASA 101: a convex phi is calibrated iff
it is differentiable at 0 with phi'(0) < 0; a non-convex but strictly decreasing phi
(sigmoid) is calibrated because C(f) - C(-f) = (2 eta - 1)(phi(f) - phi(-f)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _validation as V
from .. import _xp
from .._core import MarginLoss, NotDifferentiableError
from .._props import Basis, Formula, Kink, Props, Side
from .._registry import register

__all__ = [
    "Logistic",
    "Hinge",
    "SquaredHinge",
    "SmoothedHinge",
    "ModifiedHuber",
    "Perceptron",
    "Exponential",
    "SigmoidLoss",
    "DWD",
    "ZeroOne",
]

_M = "z = y f"


def _ind(xp: Any, cond: Any, like: Any) -> Any:
    """The indicator of ``cond`` in the dtype of ``like``."""
    return xp.astype(cond, like.dtype)


def _margin_props(**kw: Any) -> Props:
    return Props(basis=Basis.MARGIN, **kw)


@register("logistic", "margin")
@dataclass(frozen=True)
class Logistic(MarginLoss):
    r"""Logistic loss: phi(z) = log(1 + e^{-z}), the negative Bernoulli log-likelihood.

    phi'(z) = -sigmoid(-z), phi''(z) = sigmoid(z) sigmoid(-z).  Strictly convex,
    1-Lipschitz, 1/4-smooth, calibrated.  Equals ``binary_cross_entropy`` with labels
    mapped {-1, +1} -> {0, 1}.  Reference: Bartlett, Jordan & McAuliffe (2006).

    >>> import lossgrad
    >>> round(float(lossgrad.Logistic().value(1.0, 0.0)), 12)
    0.69314718056
    >>> lossgrad.Logistic().grad_hess(1.0, 0.0)
    (np.float64(-0.5), np.float64(0.25))
    """

    _formula = Formula(r"\log(1 + e^{-z})", r"-\sigma(-z)", r"\sigma(z)\,\sigma(-z)", _M)

    @property
    def props(self) -> Props:
        return _margin_props(convex=True, strictly_convex=True, lipschitz=1.0, smoothness=0.25, class_calibrated=True)

    def _phi(self, xp, z):
        return _xp.softplus(xp, -z)

    def _dphi(self, xp, z):
        return -_xp.sigmoid(xp, -z)

    def _d2phi(self, xp, z):
        e = xp.exp(-xp.abs(z))
        return e / ((1.0 + e) * (1.0 + e))


@register("hinge", "margin")
@dataclass(frozen=True)
class Hinge(MarginLoss):
    r"""Hinge loss of the support vector machine: phi(z) = max(0, 1 - z).

    phi'(z) = -1{z < 1} (0 at z = 1: the limit from the right), phi'' = 0.
    Convex, 1-Lipschitz, calibrated.  Reference: Cortes & Vapnik (1995).

    >>> import lossgrad
    >>> lossgrad.Hinge().value(1.0, 0.25), lossgrad.Hinge().grad(-1.0, 0.25)
    (np.float64(0.75), np.float64(1.0))
    """

    _formula = Formula(r"\max(0, 1 - z)", r"-\mathbf{1}\{z < 1\}", "0", _M)

    @property
    def props(self) -> Props:
        return _margin_props(convex=True, lipschitz=1.0, differentiability=0, class_calibrated=True)

    @property
    def kinks(self):
        return (Kink(1.0, 1, Side.RIGHT),)

    def _phi(self, xp, z):
        return xp.maximum(1.0 - z, 0.0)

    def _dphi(self, xp, z):
        return -_ind(xp, z < 1.0, z)

    def _d2phi(self, xp, z):
        return xp.zeros_like(z)


@register("squared_hinge", "margin")
@dataclass(frozen=True)
class SquaredHinge(MarginLoss):
    r"""Squared hinge loss: phi(z) = max(0, 1 - z)^2.

    phi'(z) = -2 max(0, 1 - z), phi''(z) = 2 * 1{z < 1} (0 at z = 1, the right limit).
    Convex, 2-smooth, gradient unbounded as z -> -inf, calibrated.
    Equals scikit-learn's ``SquaredHinge`` SGD loss.

    >>> import lossgrad
    >>> lossgrad.SquaredHinge().grad_hess(1.0, -1.0)
    (np.float64(-4.0), np.float64(2.0))
    """

    _formula = Formula(r"\max(0, 1 - z)^2", r"-2\max(0, 1 - z)", r"2\cdot\mathbf{1}\{z < 1\}", _M)

    @property
    def props(self) -> Props:
        return _margin_props(convex=True, smoothness=2.0, differentiability=1, class_calibrated=True)

    @property
    def kinks(self):
        return (Kink(1.0, 2, Side.RIGHT),)

    def _phi(self, xp, z):
        m = xp.maximum(1.0 - z, 0.0)
        return m * m

    def _dphi(self, xp, z):
        return -2.0 * xp.maximum(1.0 - z, 0.0)

    def _d2phi(self, xp, z):
        return 2.0 * _ind(xp, z < 1.0, z)


@register("smoothed_hinge", "margin", variants=({"gamma": 0.5}, {"gamma": 2.0}))
@dataclass(frozen=True)
class SmoothedHinge(MarginLoss):
    r"""Quadratically smoothed hinge with smoothing width gamma > 0.

    phi(z) = 0 for z >= 1; 1 - z - gamma/2 for z <= 1 - gamma; (1 - z)^2 / (2 gamma) between.
    phi'(z) = -clip((1 - z)/gamma, 0, 1); phi''(z) = 1{1 - gamma < z < 1} / gamma
    (0 at both kinks: the left limit at 1 - gamma, the right limit at 1).
    Convex, 1-Lipschitz, (1/gamma)-smooth, calibrated.
    Reference: Shalev-Shwartz & Zhang (2013), Stochastic dual coordinate ascent
    methods for regularized loss minimization, JMLR 14, section 5.3.

    >>> import lossgrad
    >>> lossgrad.SmoothedHinge(gamma=1.0).value(1.0, 0.5)
    np.float64(0.125)
    """

    gamma: float = 1.0
    _formula = Formula(
        r"\begin{cases} 0 & z \ge 1 \\ 1 - z - \gamma/2 & z \le 1 - \gamma \\ (1 - z)^2/(2\gamma) & \text{else}\end{cases}",
        r"-\operatorname{clip}((1 - z)/\gamma, 0, 1)",
        r"\mathbf{1}\{1 - \gamma < z < 1\}/\gamma",
        _M,
    )

    def __post_init__(self) -> None:
        self._set("gamma", V.param_positive(self._owner, "gamma", self.gamma))

    @property
    def props(self) -> Props:
        return _margin_props(
            convex=True, lipschitz=1.0, smoothness=1.0 / self.gamma, differentiability=1, class_calibrated=True
        )

    @property
    def kinks(self):
        return (Kink(1.0 - self.gamma, 2, Side.LEFT), Kink(1.0, 2, Side.RIGHT))

    def _phi(self, xp, z):
        g = self.gamma
        u = 1.0 - z
        quad = xp.where(u > 0, u * u / (2.0 * g), xp.zeros_like(u))
        return xp.where(u >= g, u - 0.5 * g, quad)

    def _dphi(self, xp, z):
        return -xp.clip((1.0 - z) / self.gamma, 0.0, 1.0)

    def _d2phi(self, xp, z):
        return _ind(xp, (z > 1.0 - self.gamma) & (z < 1.0), z) / self.gamma


@register("modified_huber", "margin")
@dataclass(frozen=True)
class ModifiedHuber(MarginLoss):
    r"""Modified Huber loss: phi(z) = max(0, 1 - z)^2 for z >= -1, -4z for z < -1.

    phi'(z) = -2 max(0, 1 - z) for z >= -1, -4 otherwise;
    phi''(z) = 2 * 1{-1 <= z < 1} (the right limit at both kinks z = -1 and z = 1).
    Convex, 4-Lipschitz, 2-smooth, calibrated; its minimiser f* = clip(2 eta - 1, -1, 1)
    gives probability estimates.  Equals scikit-learn's ``ModifiedHuber`` SGD loss.
    Reference: Zhang (2004), Solving large scale linear prediction problems using
    stochastic gradient descent algorithms, ICML.

    >>> import lossgrad
    >>> lossgrad.ModifiedHuber().value(1.0, -3.0), lossgrad.ModifiedHuber().value(1.0, 0.0)
    (np.float64(12.0), np.float64(1.0))
    """

    _formula = Formula(
        r"\begin{cases} \max(0, 1 - z)^2 & z \ge -1 \\ -4z & z < -1\end{cases}",
        r"\begin{cases} -2\max(0, 1 - z) & z \ge -1 \\ -4 & z < -1\end{cases}",
        r"2\cdot\mathbf{1}\{-1 \le z < 1\}",
        _M,
    )

    @property
    def props(self) -> Props:
        return _margin_props(convex=True, lipschitz=4.0, smoothness=2.0, differentiability=1, class_calibrated=True)

    @property
    def kinks(self):
        return (Kink(-1.0, 2, Side.RIGHT), Kink(1.0, 2, Side.RIGHT))

    def _phi(self, xp, z):
        m = xp.maximum(1.0 - z, 0.0)
        return xp.where(z >= -1.0, m * m, -4.0 * z)

    def _dphi(self, xp, z):
        return xp.where(z >= -1.0, -2.0 * xp.maximum(1.0 - z, 0.0), xp.full_like(z, -4.0))

    def _d2phi(self, xp, z):
        return 2.0 * _ind(xp, (z >= -1.0) & (z < 1.0), z)


@register("perceptron", "margin")
@dataclass(frozen=True)
class Perceptron(MarginLoss):
    r"""Perceptron loss: phi(z) = max(0, -z).

    phi'(z) = -1{z < 0} (0 at z = 0, the right limit), phi'' = 0.  Convex and
    1-Lipschitz but NOT classification-calibrated: it is not differentiable at 0, and
    f = 0 minimises every conditional risk (Bartlett, Jordan & McAuliffe 2006).
    Reference: Rosenblatt (1958).

    >>> import lossgrad
    >>> lossgrad.Perceptron().value(-1.0, 2.0), lossgrad.Perceptron().grad(-1.0, 2.0)
    (np.float64(2.0), np.float64(1.0))
    """

    _formula = Formula(r"\max(0, -z)", r"-\mathbf{1}\{z < 0\}", "0", _M)

    @property
    def props(self) -> Props:
        return _margin_props(convex=True, lipschitz=1.0, differentiability=0, class_calibrated=False)

    @property
    def kinks(self):
        return (Kink(0.0, 1, Side.RIGHT),)

    def _phi(self, xp, z):
        return xp.maximum(-z, 0.0)

    def _dphi(self, xp, z):
        return -_ind(xp, z < 0.0, z)

    def _d2phi(self, xp, z):
        return xp.zeros_like(z)


def _exp_neg(xp: Any, z: Any) -> Any:
    """e^{-z}: +inf (the true value rounded) where it exceeds the dtype's range.

    NumPy's overflow warning is silenced: the infinity is the correctly rounded
    result, not an accident (other namespaces do not warn).
    """
    with np.errstate(over="ignore"):
        return xp.exp(-z)


@register("exponential", "margin")
@dataclass(frozen=True)
class Exponential(MarginLoss):
    r"""Exponential loss of AdaBoost: phi(z) = e^{-z}, phi' = -e^{-z}, phi'' = e^{-z}.

    Strictly convex, calibrated; neither Lipschitz nor smooth.  The value is +inf
    (its true, unrepresentable value) for z below -log(max float) (about -709.8 in
    float64, -88.7 in float32).  Reference: Freund & Schapire (1997); Friedman,
    Hastie & Tibshirani (2000), Additive logistic regression.

    >>> import lossgrad
    >>> lossgrad.Exponential().value_grad_hess(1.0, 0.0)
    (np.float64(1.0), np.float64(-1.0), np.float64(1.0))
    """

    _formula = Formula(r"e^{-z}", r"-e^{-z}", r"e^{-z}", _M)

    @property
    def props(self) -> Props:
        return _margin_props(convex=True, strictly_convex=True, class_calibrated=True)

    def _phi(self, xp, z):
        return _exp_neg(xp, z)

    def _dphi(self, xp, z):
        return -_exp_neg(xp, z)

    def _d2phi(self, xp, z):
        return _exp_neg(xp, z)


_SQRT3_OVER_18 = math.sqrt(3.0) / 18.0


@register("sigmoid_loss", "margin")
@dataclass(frozen=True)
class SigmoidLoss(MarginLoss):
    r"""Sigmoid loss: phi(z) = 1 / (1 + e^{z}) = sigmoid(-z).

    With s = sigmoid(-z): phi'(z) = -s(1 - s), phi''(z) = s(1 - s)(1 - 2s) = s(1 - s) tanh(z/2).
    Non-convex, bounded in (0, 1), symmetric (phi(z) + phi(-z) = 1), calibrated, and
    redescending (phi' -> 0 in both tails: gross outliers stop pulling).
    Lipschitz 1/4 (at z = 0); smoothness sqrt(3)/18, the maximum of
    |u(1 - u)(1 - 2u)| over u in (0, 1), reached at u = (3 -+ sqrt 3)/6.
    Reference: Mason, Baxter, Bartlett & Frean (2000), Boosting algorithms as gradient
    descent; Masnadi-Shirazi & Vasconcelos (2009) on symmetric losses.

    >>> import lossgrad
    >>> lossgrad.SigmoidLoss().value_grad_hess(1.0, 0.0)
    (np.float64(0.5), np.float64(-0.25), np.float64(0.0))
    """

    _formula = Formula(
        r"\sigma(-z)", r"-\sigma(z)\,\sigma(-z)", r"\sigma(z)\,\sigma(-z)\tanh(z/2)", _M
    )

    @property
    def props(self) -> Props:
        return _margin_props(
            convex=False,
            lipschitz=0.25,
            smoothness=_SQRT3_OVER_18,
            symmetric=True,
            bounded=True,
            redescending=True,
            class_calibrated=True,
        )

    @staticmethod
    def _ss(xp, z):
        """sigmoid(z) sigmoid(-z) = e/(1 + e)^2 with e = exp(-|z|), exact in both tails."""
        e = xp.exp(-xp.abs(z))
        return e / ((1.0 + e) * (1.0 + e))

    def _phi(self, xp, z):
        return _xp.sigmoid(xp, -z)

    def _dphi(self, xp, z):
        return -self._ss(xp, z)

    def _d2phi(self, xp, z):
        return self._ss(xp, z) * xp.tanh(0.5 * z)


@register("dwd", "margin", variants=({"q": 0.5}, {"q": 2.0}, {"q": 10.0}))
@dataclass(frozen=True)
class DWD(MarginLoss):
    r"""Generalized distance-weighted discrimination loss with index q > 0.

    With z0 = q/(q + 1): phi(z) = 1 - z for z <= z0, q^q / ((q+1)^{q+1} z^q) =
    (z0/z)^q / (q + 1) for z > z0.  phi'(z) = -1 for z <= z0, -(z0/z)^{q+1} beyond;
    phi''(z) = 0 for z <= z0 (the left limit at the kink), (q + 1)/z * (z0/z)^{q+1}
    beyond.  Convex, 1-Lipschitz, ((q+1)^2/q)-smooth (the right limit of phi'' at z0),
    continuously differentiable, calibrated.  q = 1 is the DWD of Marron, Todd & Ahn (2007).
    Reference: Wang & Zou (2018), Another look at distance-weighted discrimination,
    JRSS-B 80.

    >>> import lossgrad
    >>> lossgrad.DWD(q=1.0).value(1.0, 0.0), lossgrad.DWD(q=1.0).value(1.0, 1.0)
    (np.float64(1.0), np.float64(0.25))
    """

    q: float = 1.0
    _formula = Formula(
        r"\begin{cases} 1 - z & z \le \frac{q}{q+1} \\ \frac{q^q}{(q+1)^{q+1}} z^{-q} & \text{else}\end{cases}",
        r"\begin{cases} -1 & z \le \frac{q}{q+1} \\ -\frac{q^{q+1}}{(q+1)^{q+1}} z^{-q-1} & \text{else}\end{cases}",
        r"\begin{cases} 0 & z \le \frac{q}{q+1} \\ \frac{q^{q+1}}{(q+1)^{q}} z^{-q-2} & \text{else}\end{cases}",
        _M,
    )

    def __post_init__(self) -> None:
        self._set("q", V.param_positive(self._owner, "q", self.q))

    @property
    def z0(self) -> float:
        """The junction q/(q + 1) of the linear and the power part."""
        return self.q / (self.q + 1.0)

    @property
    def props(self) -> Props:
        q = self.q
        return _margin_props(
            convex=True, lipschitz=1.0, smoothness=(q + 1.0) ** 2 / q, differentiability=1, class_calibrated=True
        )

    @property
    def kinks(self):
        return (Kink(self.z0, 2, Side.LEFT),)

    def _ratio(self, xp, z):
        """(tail mask, z0/z on the tail, the safe z) without dividing by z <= z0."""
        tail = z > self.z0
        zs = xp.where(tail, z, xp.full_like(z, self.z0))
        return tail, self.z0 / zs, zs

    def _phi(self, xp, z):
        tail, t, _ = self._ratio(xp, z)
        return xp.where(tail, t**self.q / (self.q + 1.0), 1.0 - z)

    def _dphi(self, xp, z):
        tail, t, _ = self._ratio(xp, z)
        return xp.where(tail, -(t ** (self.q + 1.0)), -xp.ones_like(z))

    def _d2phi(self, xp, z):
        tail, t, zs = self._ratio(xp, z)
        return xp.where(tail, (self.q + 1.0) / zs * t ** (self.q + 1.0), xp.zeros_like(z))


@register("zero_one", "margin")
@dataclass(frozen=True)
class ZeroOne(MarginLoss):
    r"""Zero-one loss: phi(z) = 1{z <= 0}, the misclassification indicator.

    Convention: z = 0 (a score of exactly 0, no decision) counts as an error, value 1,
    the limit from the left.  The value is discontinuous, so ``grad`` and ``hess`` are
    declared absent and raise :class:`lossgrad.NotDifferentiableError`.  Bounded,
    non-convex, not Lipschitz (LossFunctions.jl's claim otherwise is wrong), calibrated.
    Not ``symmetric``: phi(z) + phi(-z) = 1 except at z = 0, where it is 2.

    >>> import lossgrad
    >>> lossgrad.ZeroOne().value(1.0, 0.0), lossgrad.ZeroOne().value(-1.0, -2.0)
    (np.float64(1.0), np.float64(0.0))
    """

    _formula = Formula(r"\mathbf{1}\{z \le 0\}", r"\text{undefined}", r"\text{undefined}", _M)

    @property
    def props(self) -> Props:
        return _margin_props(
            convex=False, differentiability=-1, bounded=True, class_calibrated=True, has_grad=False, has_hess=False
        )

    @property
    def kinks(self):
        return (Kink(0.0, 0, Side.LEFT),)

    def _phi(self, xp, z):
        return _ind(xp, z <= 0.0, z)

    def _dphi(self, xp, z):
        raise NotDifferentiableError("zero_one has no derivative (its value jumps at z = 0)")

    _d2phi = _dphi
