r"""Half deviances of generalised linear models on the log link: y_pred = f = log(mean).

These are negative log-likelihoods up to terms free of f, written as functions of
the raw prediction f, the natural variable of the family (kinks, example inputs and
plots use f itself, not a residual).  Each equals scikit-learn's
``sklearn._loss.loss.HalfPoissonLoss``, ``HalfGammaLoss`` and ``HalfTweedieLoss``
``loss(y_true, raw_prediction)``, which drop the same terms; adding their
``constant_to_optimal_zero(y_true)`` gives the half deviance, 0 at f = log y.
Gradient and Hessian are the exact derivatives in f.  exp(f) is finite for
f up to about 709 in float64, so the values stay finite for |f| <= 700 wherever
the true value is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _validation as V
from .._core import PointwiseLoss
from .._props import Basis, Formula, Props
from .._registry import register

__all__ = ["Poisson", "Gamma", "Tweedie"]

_LOG_LINK = "f = \\log\\mu"


class _LogLinkDeviance(PointwiseLoss):
    """Shared machinery: the natural variable is f itself."""

    def _natural(self, y: np.ndarray, f: np.ndarray) -> np.ndarray:
        return f

    def _from_natural(self, y: np.ndarray, t: np.ndarray) -> np.ndarray:
        return t


def _poisson_target(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    f = rng.normal(0.5, 1.0, n)
    y = rng.poisson(np.exp(f + rng.normal(0.0, 0.5, n))).astype(float)
    return y, rng.normal(0.5, 1.5, n)


def _positive_target(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.gamma(2.0, 1.0, n)
    return y, rng.normal(np.log(2.0), 1.5, n)


@register("poisson", "glm")
@dataclass(frozen=True)
class Poisson(_LogLinkDeviance):
    r"""Half Poisson deviance on the log link, without its f-free terms: L = exp(f) - y f.

    L' = exp(f) - y, L'' = exp(f) > 0: strictly convex, neither Lipschitz nor
    smooth.  y_true >= 0 (counts or rates).  Adding y log y - y gives the half
    deviance y log(y/mu) - y + mu, zero at f = log y.  Equals scikit-learn's
    ``HalfPoissonLoss`` and PyTorch's ``PoissonNLLLoss(log_input=True, full=False)``.
    Reference: McCullagh & Nelder (1989), Generalized Linear Models, 2nd ed., ch. 6.

    >>> import lossgrad
    >>> lossgrad.Poisson().value_grad_hess(3.0, 0.0)
    (np.float64(1.0), np.float64(-2.0), np.float64(1.0))
    """

    _formula = Formula(r"e^{f} - y f", r"e^{f} - y", r"e^{f}", _LOG_LINK)

    @property
    def props(self) -> Props:
        return Props(convex=True, strictly_convex=True, basis=Basis.LIKELIHOOD)

    def _check_target(self, xp, y):
        V.check_all(xp, y >= 0, "y_true", "non-negative values (counts or rates) for the Poisson deviance")

    def _example_inputs(self, rng, n):
        return _poisson_target(rng, n)

    def _value(self, xp, y, f):
        return xp.exp(f) - y * f

    def _grad(self, xp, y, f):
        return xp.exp(f) - y

    def _hess(self, xp, y, f):
        return xp.exp(f)


@register("gamma", "glm")
@dataclass(frozen=True)
class Gamma(_LogLinkDeviance):
    r"""Half Gamma deviance on the log link, without its f-free terms: L = f + y exp(-f).

    L' = 1 - y exp(-f), L'' = y exp(-f) > 0: strictly convex in f (the Gamma
    deviance is not convex in mu, it is on the log link).  y_true > 0.  Adding
    -log y - 1 gives the half deviance log(mu/y) + y/mu - 1, zero at f = log y.
    Equals scikit-learn's ``HalfGammaLoss``.
    Reference: McCullagh & Nelder (1989), Generalized Linear Models, 2nd ed., ch. 8.

    >>> import lossgrad
    >>> lossgrad.Gamma().value_grad_hess(2.0, 0.0)
    (np.float64(2.0), np.float64(-1.0), np.float64(2.0))
    """

    _formula = Formula(r"f + y e^{-f}", r"1 - y e^{-f}", r"y e^{-f}", _LOG_LINK)

    @property
    def props(self) -> Props:
        return Props(convex=True, strictly_convex=True, basis=Basis.LIKELIHOOD)

    def _check_target(self, xp, y):
        V.check_all(xp, y > 0, "y_true", "positive values (y > 0) for the Gamma deviance")

    def _example_inputs(self, rng, n):
        return _positive_target(rng, n)

    def _value(self, xp, y, f):
        return f + y * xp.exp(-f)

    def _grad(self, xp, y, f):
        return 1.0 - y * xp.exp(-f)

    def _hess(self, xp, y, f):
        return y * xp.exp(-f)


@register(
    "tweedie", "glm",
    variants=({"power": 0.0}, {"power": 1.0}, {"power": 1.2}, {"power": 2.0}, {"power": 3.0}, {"power": -1.0}),
)
@dataclass(frozen=True)
class Tweedie(_LogLinkDeviance):
    r"""Half Tweedie deviance with power p on the log link, without its f-free terms.

    With mu = exp(f), for p not in {0, 1, 2}:
    L = mu^(2-p)/(2-p) - y mu^(1-p)/(1-p),  L' = mu^(2-p) - y mu^(1-p),
    L'' = (2-p) mu^(2-p) - (1-p) y mu^(1-p);
    p = 0 (normal): L = (mu - y)^2 / 2, L' = mu (mu - y), L'' = mu (2 mu - y) (here the
    f-free term y^2/2 is kept, as scikit-learn does: L is the half deviance itself);
    p = 1 is :class:`Poisson`, p = 2 is :class:`Gamma`.  Equals scikit-learn's
    ``HalfTweedieLoss(power=p)`` ``loss`` for every p (the dropped terms depend on p,
    so the loss is not continuous in p at 0, 1, 2).  Domains: y real for p <= 0, y >= 0 for
    1 <= p < 2, y > 0 for p >= 2; 0 < p < 1 is rejected (no Tweedie distribution
    exists there).  L'' = mu^(1-p) ((2-p) mu + (p-1) y) >= 0 for 1 <= p <= 2, so the
    loss is convex (strictly) exactly there; for p < 1 or p > 2 it is not
    (e.g. p = 0 with y > 2 mu, p = 3 with mu > 2 y).
    Reference: Jorgensen (1997), The Theory of Dispersion Models, ch. 4.

    >>> import lossgrad
    >>> lossgrad.Tweedie(power=1.5).value_grad(1.0, 0.0)  # 1/0.5 - 1/(-0.5)
    (np.float64(4.0), np.float64(0.0))
    """

    power: float = 1.5
    _formula = Formula(
        r"\frac{e^{(2-p) f}}{2-p} - y \frac{e^{(1-p) f}}{1-p} \;(p \ne 0, 1, 2)",
        r"e^{(2-p) f} - y e^{(1-p) f}",
        r"(2-p) e^{(2-p) f} - (1-p) y e^{(1-p) f}",
        _LOG_LINK,
    )

    def __post_init__(self) -> None:
        p = V.param_in_interval(self._owner, "power", self.power, -math.inf, math.inf)
        if 0.0 < p < 1.0:
            raise ValueError(
                f"{self._owner}: power must be <= 0 or >= 1 (no Tweedie distribution has 0 < power < 1), got {self.power!r}"
            )
        self._set("power", p)

    @property
    def props(self) -> Props:
        convex = 1.0 <= self.power <= 2.0
        return Props(convex=convex, strictly_convex=convex, basis=Basis.LIKELIHOOD)

    def _check_target(self, xp, y):
        p = self.power
        if p >= 2:
            V.check_all(xp, y > 0, "y_true", f"positive values (y > 0) for the Tweedie deviance with power={p:g}")
        elif p >= 1:
            V.check_all(xp, y >= 0, "y_true", f"non-negative values for the Tweedie deviance with power={p:g}")

    def _example_inputs(self, rng, n):
        p = self.power
        if p <= 0:
            y = rng.normal(1.0, 2.0, n)
            return y, rng.normal(0.0, 1.0, n)
        if p < 2:
            y, f = _poisson_target(rng, n)
            return y * rng.gamma(2.0, 0.5, n), f
        return _positive_target(rng, n)

    def _value(self, xp, y, f):
        p = self.power
        if p == 0:
            d = xp.exp(f) - y
            return 0.5 * d * d
        if p == 1:
            return xp.exp(f) - y * f
        if p == 2:
            return f + y * xp.exp(-f)
        return self._two_terms(xp, y, f, 1.0 / (2.0 - p), 1.0 / (1.0 - p))

    def _grad(self, xp, y, f):
        p = self.power
        if p == 0:
            mu = xp.exp(f)
            return mu * (mu - y)
        if p == 1:
            return xp.exp(f) - y
        if p == 2:
            return 1.0 - y * xp.exp(-f)
        return self._two_terms(xp, y, f, 1.0, 1.0)

    def _hess(self, xp, y, f):
        p = self.power
        if p == 0:
            mu = xp.exp(f)
            return mu * (2.0 * mu - y)
        if p == 1:
            return xp.exp(f)
        if p == 2:
            return y * xp.exp(-f)
        return self._two_terms(xp, y, f, 2.0 - p, 1.0 - p)

    def _two_terms(self, xp, y, f, k1, k2):
        """k1 exp((2-p) f) - k2 y exp((1-p) f), accurate where the two terms nearly cancel.

        Factored as exp((1-p) f) [k1 exp(f) - k2 y], the bracket written
        k1 expm1(f) + (k1 - k2 y) for |f| < 1: no cancellation beyond the function's own
        conditioning (near f = 0 the naive difference lost up to 1e-9 relative in float64).  Where the factors overflow or
        underflow the unfactored form takes over: a term with y = 0 is 0 (never
        0 * inf), and where both terms overflow the result is the infinity of the larger
        one, compared through their logarithms.
        """
        p = self.power
        info = xp.finfo(f.dtype)
        # lanes where exp(f) and exp((1-p) f) are normal floats; others are masked to 0
        safe = xp.abs(f) * max(1.0, abs(1.0 - p)) < 0.95 * math.log(info.max)
        fm = xp.where(safe, f, xp.zeros_like(f))
        near_one = xp.abs(fm) < 1.0
        bracket = xp.where(near_one, k1 * xp.expm1(xp.where(near_one, fm, xp.zeros_like(fm))) + (k1 - k2 * y),
                           k1 * xp.exp(fm) - k2 * y)
        factored = xp.exp((1.0 - p) * fm) * bracket
        usable = safe & xp.isfinite(factored)
        zero_y = y == 0
        a = k1 * xp.exp((2.0 - p) * f)
        f_b = xp.where(zero_y, xp.zeros_like(f), f)
        b = k2 * y * xp.exp((1.0 - p) * f_b)
        both = xp.isinf(a) & xp.isinf(b)
        abs_y = xp.where(zero_y, xp.ones_like(y), xp.abs(y))
        a_wins = (2.0 - p) * f + math.log(abs(k1)) > (1.0 - p) * f + math.log(abs(k2)) + xp.log(abs_y)
        safe = a - xp.where(both, xp.zeros_like(b), b)
        return xp.where(usable, factored, xp.where(both, xp.where(a_wins, a, -b), safe))
