r"""Regression losses of the residual r = y_pred - y_true.

Each class gives rho(r) (``value``), psi(r) = rho'(r) (``grad``), psi'(r) (``hess``)
and the IRLS weight psi(r)/r (``weight``).  Stability: pseudo-Huber avoids the
cancellation in sqrt(1 + t^2) - 1, log-cosh uses log1p(2 sinh^2(r/2)) near 0 and
|r| + log1p(exp(-2|r|)) - log 2 elsewhere, its Hessian is 4e/(1+e)^2 with e = exp(-2|r|).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import _validation as V
from .. import _xp
from .._core import ResidualLoss
from .._props import Formula, Kink, Props, Side
from .._registry import register

__all__ = [
    "SquaredError",
    "AbsoluteError",
    "Huber",
    "SmoothL1",
    "BerHu",
    "PseudoHuber",
    "LogCosh",
    "Lp",
    "EpsilonInsensitive",
    "SquaredEpsilonInsensitive",
]

_INF = math.inf


def _ones(xp: Any, r: Any) -> Any:
    return xp.ones_like(r)


@register("squared_error", "regression")
@dataclass(frozen=True)
class SquaredError(ResidualLoss):
    r"""Squared error: L = r^2, L' = 2r, L'' = 2 (note: no factor 1/2).

    Strongly convex with modulus 2; its minimiser over a sample is the mean.

    >>> import lossgrad
    >>> lossgrad.SquaredError().grad_hess(1.0, 3.0)
    (np.float64(4.0), np.float64(2.0))
    """

    _formula = Formula("r^2", "2r", "2")

    @property
    def props(self) -> Props:
        return Props(convex=True, strictly_convex=True, strong_convexity=2.0, smoothness=2.0, symmetric=True)

    def _rho(self, xp, r):
        return r * r

    def _psi(self, xp, r):
        return 2.0 * r

    def _dpsi(self, xp, r):
        return 2.0 * _ones(xp, r)

    def _weight(self, xp, r):
        return 2.0 * _ones(xp, r)


@register("absolute_error", "regression")
@dataclass(frozen=True)
class AbsoluteError(ResidualLoss):
    r"""Absolute error: L = |r|, L' = sign(r) (0 at r = 0, the midpoint subgradient), L'' = 0.

    Its minimiser over a sample is the median.  The IRLS weight 1/|r| is +inf at 0.

    >>> import lossgrad
    >>> lossgrad.AbsoluteError().grad(2.0, 1.0)
    np.float64(-1.0)
    """

    _formula = Formula(r"|r|", r"\operatorname{sign}(r)", "0")

    @property
    def props(self) -> Props:
        return Props(convex=True, lipschitz=1.0, smoothness=None, differentiability=0, symmetric=True)

    @property
    def kinks(self):
        return (Kink(0.0, 1, Side.MIDPOINT),)

    def _rho(self, xp, r):
        return xp.abs(r)

    def _psi(self, xp, r):
        return xp.sign(r)

    def _dpsi(self, xp, r):
        return xp.zeros_like(r)

    def _weight(self, xp, r):
        return _xp.safe_divide(xp, _ones(xp, r), xp.abs(r), _INF)


@register("huber", "regression", variants=({"delta": 0.3}, {"delta": 2.5}))
@dataclass(frozen=True)
class Huber(ResidualLoss):
    r"""Huber loss, as PyTorch ``HuberLoss(delta)``.

    L = r^2/2 for |r| < delta, delta (|r| - delta/2) otherwise;
    L' = clip(r, -delta, delta) (the "clip function" of the notes); L'' = 1{|r| < delta}.
    IRLS weight min(1, delta/|r|).  At |r| = delta the Hessian returns 0.
    Reference: Huber (1964), Robust estimation of a location parameter.

    >>> import lossgrad
    >>> lossgrad.Huber(delta=1.0).value(0.0, 3.0)
    np.float64(2.5)
    """

    delta: float = 1.0
    _formula = Formula(
        r"\begin{cases} r^2/2 & |r| < \delta \\ \delta(|r| - \delta/2) & \text{else}\end{cases}",
        r"\operatorname{clip}(r, -\delta, \delta)",
        r"\mathbf{1}\{|r| < \delta\}",
    )

    def __post_init__(self) -> None:
        self._set("delta", V.param_positive(self._owner, "delta", self.delta))

    @property
    def props(self) -> Props:
        return Props(convex=True, lipschitz=self.delta, smoothness=1.0, differentiability=1, symmetric=True)

    @property
    def kinks(self):
        return (Kink(-self.delta, 2, Side.LEFT), Kink(self.delta, 2, Side.RIGHT))

    def _rho(self, xp, r):
        a = xp.abs(r)
        return xp.where(a < self.delta, 0.5 * r * r, self.delta * (a - 0.5 * self.delta))

    def _psi(self, xp, r):
        return xp.clip(r, -self.delta, self.delta)

    def _dpsi(self, xp, r):
        return xp.astype(xp.abs(r) < self.delta, r.dtype)

    def _weight(self, xp, r):
        return self.delta / xp.maximum(xp.abs(r), self.delta)


@register("smooth_l1", "regression", variants=({"beta": 0.0}, {"beta": 0.5}, {"beta": 2.0}))
@dataclass(frozen=True)
class SmoothL1(ResidualLoss):
    r"""Smooth L1, as PyTorch ``SmoothL1Loss(beta)``: Huber(beta) / beta; beta = 0 is |r|.

    L = r^2/(2 beta) for |r| < beta, |r| - beta/2 otherwise; L' = clip(r/beta, -1, 1);
    L'' = 1{|r| < beta}/beta.  Reference: Girshick (2015), Fast R-CNN.
    """

    beta: float = 1.0
    _formula = Formula(
        r"\begin{cases} r^2/(2\beta) & |r| < \beta \\ |r| - \beta/2 & \text{else}\end{cases}",
        r"\operatorname{clip}(r/\beta, -1, 1)",
        r"\mathbf{1}\{|r| < \beta\}/\beta",
    )

    def __post_init__(self) -> None:
        self._set("beta", V.param_nonnegative(self._owner, "beta", self.beta))

    @property
    def props(self) -> Props:
        if self.beta == 0:
            return AbsoluteError().props
        return Props(convex=True, lipschitz=1.0, smoothness=1.0 / self.beta, differentiability=1, symmetric=True)

    @property
    def kinks(self):
        if self.beta == 0:
            return AbsoluteError().kinks
        return (Kink(-self.beta, 2, Side.LEFT), Kink(self.beta, 2, Side.RIGHT))

    def _rho(self, xp, r):
        a = xp.abs(r)
        if self.beta == 0:
            return a
        return xp.where(a < self.beta, 0.5 * r * r / self.beta, a - 0.5 * self.beta)

    def _psi(self, xp, r):
        if self.beta == 0:
            return xp.sign(r)
        return xp.clip(r / self.beta, -1.0, 1.0)

    def _dpsi(self, xp, r):
        if self.beta == 0:
            return xp.zeros_like(r)
        return xp.astype(xp.abs(r) < self.beta, r.dtype) / self.beta

    def _weight(self, xp, r):
        if self.beta == 0:
            return AbsoluteError()._weight(xp, r)
        return 1.0 / xp.maximum(xp.abs(r), self.beta)


@register("berhu", "regression", variants=({"c": 0.2}, {"c": 3.0}))
@dataclass(frozen=True)
class BerHu(ResidualLoss):
    r"""BerHu, the reverse Huber loss (Owen 2007): absolute inside [-c, c], quadratic outside.

    L = |r| for |r| <= c, (r^2 + c^2) / (2c) outside; L' = sign(r) inside, r/c outside;
    L'' = 0 inside, 1/c outside (at |r| = c the inner side's 0).  Value and gradient are
    continuous at |r| = c (L = c, |L'| = 1); the gradient jumps at 0.  Convex, with an
    unbounded gradient (no Lipschitz constant): the opposite trade of Huber, robust to
    small residuals (sparse, like the lasso) and quadratic on large ones (like ridge).
    IRLS weight L'/r: 1/|r| inside (+inf at 0), 1/c outside.  The quadratic piece is
    computed as (|r| (|r|/c) + c)/2, which overflows only where the value does.
    Laina et al. (2016) use it for depth regression with c = max_i |r_i| / 5 per batch
    (compute that c and pass it).
    References: Owen (2007), A robust hybrid of lasso and ridge regression, Contemporary
    Mathematics 443; Laina, Rupprecht, Belagiannis, Tombari & Navab (2016), Deeper depth
    prediction with fully convolutional residual networks, 3DV.

    >>> import lossgrad
    >>> lossgrad.BerHu(c=1.0).value_grad(0.0, 3.0)
    (np.float64(5.0), np.float64(3.0))
    """

    c: float = 1.0
    _formula = Formula(
        r"\begin{cases} |r| & |r| \le c \\ (r^2 + c^2)/(2c) & \text{else}\end{cases}",
        r"\begin{cases} \operatorname{sign}(r) & |r| \le c \\ r/c & \text{else}\end{cases}",
        r"\mathbf{1}\{|r| > c\}/c",
    )

    def __post_init__(self) -> None:
        self._set("c", V.param_positive(self._owner, "c", self.c))

    @property
    def props(self) -> Props:
        return Props(convex=True, lipschitz=None, smoothness=None, differentiability=0, symmetric=True)

    @property
    def kinks(self):
        return (Kink(-self.c, 2, Side.RIGHT), Kink(0.0, 1, Side.MIDPOINT), Kink(self.c, 2, Side.LEFT))

    def _rho(self, xp, r):
        a = xp.abs(r)
        return xp.where(a <= self.c, a, 0.5 * (a * (a / self.c) + self.c))

    def _psi(self, xp, r):
        return xp.where(xp.abs(r) <= self.c, xp.sign(r), r / self.c)

    def _dpsi(self, xp, r):
        return xp.astype(xp.abs(r) > self.c, r.dtype) / self.c

    def _weight(self, xp, r):
        a = xp.abs(r)
        return xp.where(a <= self.c, _xp.safe_divide(xp, _ones(xp, r), a, _INF), _ones(xp, r) / self.c)


@register("pseudo_huber", "regression", variants=({"delta": 0.5}, {"delta": 3.0}))
@dataclass(frozen=True)
class PseudoHuber(ResidualLoss):
    r"""Pseudo-Huber: L = delta^2 (sqrt(1 + (r/delta)^2) - 1), smooth everywhere.

    L' = r / sqrt(1 + (r/delta)^2), L'' = (1 + (r/delta)^2)^{-3/2}; XGBoost's
    ``reg:pseudohubererror`` with ``huber_slope = delta``.  Reference: Charbonnier et
    al. (1997); Hartley & Zisserman, Multiple View Geometry (2003), A6.8.
    """

    delta: float = 1.0
    _formula = Formula(
        r"\delta^2\left(\sqrt{1 + (r/\delta)^2} - 1\right)",
        r"r / \sqrt{1 + (r/\delta)^2}",
        r"\left(1 + (r/\delta)^2\right)^{-3/2}",
    )

    def __post_init__(self) -> None:
        self._set("delta", V.param_positive(self._owner, "delta", self.delta))

    @property
    def props(self) -> Props:
        return Props(convex=True, strictly_convex=True, lipschitz=self.delta, smoothness=1.0, symmetric=True)

    def _s(self, xp, r):
        t = r / self.delta
        return t, xp.hypot(xp.ones_like(t), t)

    def _rho(self, xp, r):
        t, s = self._s(xp, r)
        small = xp.abs(t) < 1.0
        t_small = xp.where(small, t, xp.zeros_like(t))
        d2 = self.delta * self.delta
        return xp.where(small, d2 * t_small * t_small / (s + 1.0), d2 * (s - 1.0))

    def _psi(self, xp, r):
        _, s = self._s(xp, r)
        return r / s

    def _dpsi(self, xp, r):
        _, s = self._s(xp, r)
        return 1.0 / (s * s * s)

    def _weight(self, xp, r):
        _, s = self._s(xp, r)
        return 1.0 / s


@register("log_cosh", "regression")
@dataclass(frozen=True)
class LogCosh(ResidualLoss):
    r"""Log-cosh: L = log cosh r, L' = tanh r, L'' = sech^2 r = 1 - tanh^2 r.

    Strictly convex but *not* strongly convex (L'' -> 0 as |r| -> infinity;
    LossFunctions.jl declares it strongly convex, which is wrong).  1-Lipschitz,
    1-smooth.  Computed without overflow or cancellation for every finite r.
    """

    _formula = Formula(r"\log\cosh r", r"\tanh r", r"\operatorname{sech}^2 r")

    @property
    def props(self) -> Props:
        return Props(convex=True, strictly_convex=True, lipschitz=1.0, smoothness=1.0, symmetric=True)

    def _rho(self, xp, r):
        a = xp.abs(r)
        small = a < 1.0
        half = xp.sinh(0.5 * xp.where(small, r, xp.zeros_like(r)))
        near = xp.log1p(2.0 * half * half)
        far = a + xp.log1p(xp.exp(-2.0 * a)) - math.log(2.0)
        return xp.where(small, near, far)

    def _psi(self, xp, r):
        return xp.tanh(r)

    def _dpsi(self, xp, r):
        e = xp.exp(-2.0 * xp.abs(r))
        return 4.0 * e / ((1.0 + e) * (1.0 + e))

    def _weight(self, xp, r):
        return _xp.safe_divide(xp, xp.tanh(r), r, 1.0)


@register("lp", "regression", variants=({"p": 1.0}, {"p": 2.0}, {"p": 3.0}, {"p": 2.5}))
@dataclass(frozen=True)
class Lp(ResidualLoss):
    r"""L_p loss |r|^p for p >= 1: L' = p |r|^{p-1} sign(r), L'' = p (p-1) |r|^{p-2}.

    For 1 < p < 2 the exact Hessian at r = 0 is +inf (the true limit); for p > 2 it is 0.
    """

    p: float = 1.5
    _formula = Formula(r"|r|^p", r"p\,|r|^{p-1}\operatorname{sign}(r)", r"p(p-1)\,|r|^{p-2}")

    def __post_init__(self) -> None:
        self._set("p", V.param_at_least(self._owner, "p", self.p, 1.0))

    @property
    def props(self) -> Props:
        p = self.p
        if p == 1:
            return AbsoluteError().props
        if p == 2:
            return SquaredError().props
        return Props(convex=True, strictly_convex=True, differentiability=1 if p < 2 else 2, symmetric=True)

    @property
    def kinks(self):
        if self.p == 1:
            return AbsoluteError().kinks
        if self.p < 2:
            return (Kink(0.0, 2, Side.MIDPOINT),)
        return ()

    def _at_zero(self) -> float:
        p = self.p
        return _INF if p < 2 else (2.0 if p == 2 else 0.0)

    def _rho(self, xp, r):
        return xp.abs(r) ** self.p

    def _psi(self, xp, r):
        return self.p * xp.abs(r) ** (self.p - 1.0) * xp.sign(r)

    def _dpsi(self, xp, r):
        if self.p == 1:
            return xp.zeros_like(r)
        a = xp.abs(r)
        zero = a == 0
        body = self.p * (self.p - 1.0) * xp.where(zero, xp.ones_like(a), a) ** (self.p - 2.0)
        return xp.where(zero, _xp.full_like(xp, a, self._at_zero()), body)

    def _weight(self, xp, r):
        a = xp.abs(r)
        zero = a == 0
        body = self.p * xp.where(zero, xp.ones_like(a), a) ** (self.p - 2.0)
        return xp.where(zero, _xp.full_like(xp, a, self._at_zero()), body)


@register("epsilon_insensitive", "regression", variants=({"epsilon": 0.0}, {"epsilon": 1.0}))
@dataclass(frozen=True)
class EpsilonInsensitive(ResidualLoss):
    r"""Epsilon-insensitive loss of support vector regression: L = max(0, |r| - epsilon).

    L' = sign(r) 1{|r| > epsilon} (0 at |r| = epsilon), L'' = 0.  Reference: Vapnik (1995).
    """

    epsilon: float = 0.1
    _formula = Formula(
        r"\max(0, |r| - \epsilon)", r"\operatorname{sign}(r)\,\mathbf{1}\{|r| > \epsilon\}", "0"
    )

    def __post_init__(self) -> None:
        self._set("epsilon", V.param_nonnegative(self._owner, "epsilon", self.epsilon))

    @property
    def props(self) -> Props:
        return Props(convex=True, lipschitz=1.0, differentiability=0, symmetric=True)

    @property
    def kinks(self):
        if self.epsilon == 0:
            return (Kink(0.0, 1, Side.MIDPOINT),)
        return (Kink(-self.epsilon, 1, Side.RIGHT), Kink(self.epsilon, 1, Side.LEFT))

    def _rho(self, xp, r):
        return xp.maximum(xp.abs(r) - self.epsilon, 0.0)

    def _psi(self, xp, r):
        return xp.sign(r) * xp.astype(xp.abs(r) > self.epsilon, r.dtype)

    def _dpsi(self, xp, r):
        return xp.zeros_like(r)

    def _weight(self, xp, r):
        at_zero = _INF if self.epsilon == 0 else 0.0
        return _xp.safe_divide(xp, self._psi(xp, r), r, at_zero)


@register("squared_epsilon_insensitive", "regression", variants=({"epsilon": 0.0}, {"epsilon": 1.0}))
@dataclass(frozen=True)
class SquaredEpsilonInsensitive(ResidualLoss):
    r"""Squared epsilon-insensitive loss: L = max(0, |r| - epsilon)^2.

    L' = 2 sign(r) max(0, |r| - epsilon), L'' = 2 * 1{|r| > epsilon} (0 at |r| = epsilon).
    """

    epsilon: float = 0.1
    _formula = Formula(
        r"\max(0, |r| - \epsilon)^2",
        r"2\operatorname{sign}(r)\max(0, |r| - \epsilon)",
        r"2\cdot\mathbf{1}\{|r| > \epsilon\}",
    )

    def __post_init__(self) -> None:
        self._set("epsilon", V.param_nonnegative(self._owner, "epsilon", self.epsilon))

    @property
    def props(self) -> Props:
        if self.epsilon == 0:
            return SquaredError().props
        return Props(convex=True, smoothness=2.0, differentiability=1, symmetric=True)

    @property
    def kinks(self):
        if self.epsilon == 0:
            return ()
        return (Kink(-self.epsilon, 2, Side.RIGHT), Kink(self.epsilon, 2, Side.LEFT))

    def _rho(self, xp, r):
        m = xp.maximum(xp.abs(r) - self.epsilon, 0.0)
        return m * m

    def _psi(self, xp, r):
        return 2.0 * xp.sign(r) * xp.maximum(xp.abs(r) - self.epsilon, 0.0)

    def _dpsi(self, xp, r):
        if self.epsilon == 0:
            return 2.0 * _ones(xp, r)
        return 2.0 * xp.astype(xp.abs(r) > self.epsilon, r.dtype)

    def _weight(self, xp, r):
        return _xp.safe_divide(xp, self._psi(xp, r), r, 2.0 if self.epsilon == 0 else 0.0)
