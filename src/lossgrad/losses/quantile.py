r"""Asymmetric losses of the residual r = y_pred - y_true whose minimisers are quantiles or expectiles.

All four weight the two sides of the residual by

    a(r) = tau      for r <= 0  (under-prediction, u = y_true - y_pred >= 0)
    a(r) = 1 - tau  for r > 0   (over-prediction),

so that tau > 1/2 penalises under-prediction more.  At r = 0 every one-sided
quantity returns the limit from the left (r -> 0-), as scikit-learn's
``PinballLoss`` does for its gradient.  tau always lies in the open interval (0, 1).
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

__all__ = ["Quantile", "Expectile", "HuberQuantile", "SmoothedQuantile"]

_INF = math.inf
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def _tau(owner: str, tau: Any) -> float:
    return V.param_in_interval(owner, "tau", tau, 0.0, 1.0, closed="neither")


def _side_weight(xp: Any, r: Any, tau: float) -> Any:
    """a(r): tau for r <= 0, 1 - tau for r > 0, in the dtype of r."""
    return xp.where(r > 0, _xp.full_like(xp, r, 1.0 - tau), _xp.full_like(xp, r, tau))


@register("quantile", "quantile", variants=({"tau": 0.1}, {"tau": 0.9}))
@dataclass(frozen=True)
class Quantile(ResidualLoss):
    r"""Pinball (quantile) loss on u = y_true - y_pred: L = u (tau - 1{u < 0}).

    In r = y_pred - y_true: L = max(-tau r, (1 - tau) r);
    L' = -tau for r <= 0 and 1 - tau for r > 0 (at r = 0 the left limit -tau, as
    scikit-learn's ``PinballLoss``); L'' = 0.  The IRLS weight psi(r)/r is
    tau/|r| for r < 0, (1 - tau)/r for r > 0 and +inf at r = 0.
    Its minimiser over a sample is the tau-quantile; tau = 1/2 gives |r|/2.
    Reference: Koenker & Bassett (1978), Regression quantiles, Econometrica 46(1).

    >>> import lossgrad
    >>> q = lossgrad.Quantile(tau=0.75)
    >>> float(q.value(2.0, 1.0)), float(q.grad(2.0, 1.0)), float(q.grad(1.0, 2.0))
    (0.75, -0.75, 0.25)
    """

    tau: float = 0.5
    _formula = Formula(
        r"\max(-\tau r, (1 - \tau) r)",
        r"\begin{cases} -\tau & r \le 0 \\ 1 - \tau & r > 0 \end{cases}",
        "0",
    )

    def __post_init__(self) -> None:
        self._set("tau", _tau(self._owner, self.tau))

    @property
    def props(self) -> Props:
        return Props(
            convex=True, lipschitz=max(self.tau, 1.0 - self.tau), smoothness=None, differentiability=0,
            symmetric=self.tau == 0.5,
        )

    @property
    def kinks(self):
        return (Kink(0.0, 1, Side.LEFT),)

    def _rho(self, xp, r):
        return xp.maximum(-self.tau * r, (1.0 - self.tau) * r)

    def _psi(self, xp, r):
        return xp.where(r > 0, _xp.full_like(xp, r, 1.0 - self.tau), _xp.full_like(xp, r, -self.tau))

    def _dpsi(self, xp, r):
        return xp.zeros_like(r)

    def _weight(self, xp, r):
        return _xp.safe_divide(xp, self._psi(xp, r), r, _INF)


@register("expectile", "quantile", variants=({"tau": 0.2}, {"tau": 0.95}))
@dataclass(frozen=True)
class Expectile(ResidualLoss):
    r"""Expectile (asymmetric squared) loss: L = |tau - 1{u < 0}| u^2 = a(r) r^2.

    L' = 2 a(r) r, L'' = 2 a(r) with a(r) = tau for r <= 0 and 1 - tau for r > 0,
    so the Hessian jumps at r = 0 unless tau = 1/2 (where L = r^2 / 2) and returns
    its left limit 2 tau there.  Strongly convex with modulus 2 min(tau, 1 - tau),
    smooth with constant 2 max(tau, 1 - tau).  IRLS weight 2 a(r).  Equals twice
    statsmodels' ``MQuantileNorm(tau, LeastSquares())`` applied to u.
    Reference: Newey & Powell (1987), Asymmetric least squares estimation and
    testing, Econometrica 55(4).

    >>> import lossgrad
    >>> lossgrad.Expectile(tau=0.25).value_grad_hess(0.0, -2.0)
    (np.float64(1.0), np.float64(-1.0), np.float64(0.5))
    """

    tau: float = 0.5
    _formula = Formula(
        r"a(r)\, r^2,\quad a(r) = \begin{cases} \tau & r \le 0 \\ 1 - \tau & r > 0 \end{cases}",
        r"2\, a(r)\, r",
        r"2\, a(r)",
    )

    def __post_init__(self) -> None:
        self._set("tau", _tau(self._owner, self.tau))

    @property
    def props(self) -> Props:
        lo, hi = min(self.tau, 1.0 - self.tau), max(self.tau, 1.0 - self.tau)
        return Props(
            convex=True, strictly_convex=True, strong_convexity=2.0 * lo, smoothness=2.0 * hi,
            differentiability=2 if self.tau == 0.5 else 1, symmetric=self.tau == 0.5,
        )

    @property
    def kinks(self):
        return () if self.tau == 0.5 else (Kink(0.0, 2, Side.LEFT),)

    def _rho(self, xp, r):
        return _side_weight(xp, r, self.tau) * r * r

    def _psi(self, xp, r):
        return 2.0 * _side_weight(xp, r, self.tau) * r

    def _dpsi(self, xp, r):
        return 2.0 * _side_weight(xp, r, self.tau)

    def _weight(self, xp, r):
        return 2.0 * _side_weight(xp, r, self.tau)


@register(
    "huber_quantile", "quantile",
    variants=({"tau": 0.2, "delta": 0.5}, {"tau": 0.9, "delta": 2.0}, {"tau": 0.5, "delta": 1.5}),
)
@dataclass(frozen=True)
class HuberQuantile(ResidualLoss):
    r"""Huber quantile (generalized Huber) loss: L = a(r) H_delta(r).

    H_delta(r) = r^2/2 for |r| < delta, delta (|r| - delta/2) otherwise (the
    :class:`~lossgrad.Huber` loss); a(r) = tau for r <= 0, 1 - tau for r > 0.
    L' = a(r) clip(r, -delta, delta), L'' = a(r) 1{|r| < delta}.  The Hessian jumps
    at r = +-delta (returning 0 there, as Huber does) and at r = 0 unless
    tau = 1/2 (returning the left value tau).  Its minimiser is the Huber
    quantile, which interpolates between the tau-expectile (delta -> infinity) and
    the tau-quantile (delta -> 0).  IRLS weight a(r) min(1, delta/|r|).  Equals
    statsmodels' ``MQuantileNorm(tau, HuberT(delta))`` applied to u = y_true - y_pred.
    Reference: Taggart (2022), Point forecasting and forecast evaluation with
    generalized Huber loss, Electronic Journal of Statistics 16(1), 201-231.

    >>> import lossgrad
    >>> lossgrad.HuberQuantile(tau=0.25, delta=1.0).value_grad(0.0, 3.0)
    (np.float64(1.875), np.float64(0.75))
    """

    tau: float = 0.5
    delta: float = 1.0
    _formula = Formula(
        r"a(r) \begin{cases} r^2/2 & |r| < \delta \\ \delta(|r| - \delta/2) & \text{else}\end{cases}",
        r"a(r)\,\operatorname{clip}(r, -\delta, \delta)",
        r"a(r)\,\mathbf{1}\{|r| < \delta\}",
    )

    def __post_init__(self) -> None:
        self._set("tau", _tau(self._owner, self.tau))
        self._set("delta", V.param_positive(self._owner, "delta", self.delta))

    @property
    def props(self) -> Props:
        hi = max(self.tau, 1.0 - self.tau)
        return Props(
            convex=True, lipschitz=hi * self.delta, smoothness=hi, differentiability=1,
            symmetric=self.tau == 0.5,
        )

    @property
    def kinks(self):
        edges = (Kink(-self.delta, 2, Side.LEFT), Kink(self.delta, 2, Side.RIGHT))
        if self.tau == 0.5:
            return edges
        return (edges[0], Kink(0.0, 2, Side.LEFT), edges[1])

    def _rho(self, xp, r):
        s = xp.abs(r)
        inner = s < self.delta
        r_in = xp.where(inner, r, xp.zeros_like(r))
        h = xp.where(inner, 0.5 * r_in * r_in, self.delta * (s - 0.5 * self.delta))
        return _side_weight(xp, r, self.tau) * h

    def _psi(self, xp, r):
        return _side_weight(xp, r, self.tau) * xp.clip(r, -self.delta, self.delta)

    def _dpsi(self, xp, r):
        return _side_weight(xp, r, self.tau) * xp.astype(xp.abs(r) < self.delta, r.dtype)

    def _weight(self, xp, r):
        return _side_weight(xp, r, self.tau) * (self.delta / xp.maximum(xp.abs(r), self.delta))


_KERNELS = ("gaussian", "logistic")


@register(
    "smoothed_quantile", "quantile",
    variants=(
        {"tau": 0.2, "h": 0.3},
        {"tau": 0.8, "h": 2.0},
        {"kernel": "logistic"},
        {"tau": 0.1, "h": 0.2, "kernel": "logistic"},
    ),
)
@dataclass(frozen=True)
class SmoothedQuantile(ResidualLoss):
    r"""Convolution-smoothed pinball loss ("conquer"): L = E[rho_tau(r + h Z)], Z ~ kernel.

    With the pinball rho_tau(r) = (1 - tau) r + max(-r, 0) and a symmetric kernel of
    bandwidth h > 0 this is, in closed form,

    * ``kernel="gaussian"`` (Z standard normal; Phi, phi its CDF and density):
      L = -r (tau - Phi(r/h)) + h phi(r/h),  L' = Phi(r/h) - tau,  L'' = phi(r/h) / h;
    * ``kernel="logistic"`` (Z with density sigmoid(z) sigmoid(-z)):
      L = (1 - tau) r + h softplus(-r/h),  L' = sigmoid(r/h) - tau,
      L'' = sigmoid(r/h) sigmoid(-r/h) / h.

    L'' > 0 everywhere (strictly convex, not strongly: L'' -> 0 in the tails);
    Lipschitz constant max(tau, 1 - tau) (the pinball's), smoothness
    1/(h sqrt(2 pi)) (gaussian) or 1/(4h) (logistic).  L -> pinball as h -> 0.
    IRLS weight psi(r)/r: at r = 0 it is psi'(0) when tau = 1/2 (the limit) and
    otherwise the left limit -sign(1/2 - tau) * inf (psi(0) = 1/2 - tau != 0).
    Reference: He, Pan, Tan & Zhou (2023), Smoothed quantile regression with
    large-scale inference, Journal of Econometrics 232(2), 367-388; Fernandes,
    Guerre & Horta (2021), Smoothing quantile regressions, JBES 39(1).

    >>> import lossgrad
    >>> float(lossgrad.SmoothedQuantile(tau=0.5, h=1.0).grad(0.0, 0.0))
    0.0
    """

    tau: float = 0.5
    h: float = 0.5
    kernel: str = "gaussian"
    _formula = Formula(
        r"-r\,(\tau - \Phi(r/h)) + h\,\varphi(r/h) \;\text{(gaussian)};\quad (1-\tau) r + h \log(1 + e^{-r/h}) \;\text{(logistic)}",
        r"\Phi(r/h) - \tau \;\text{(gaussian)};\quad \sigma(r/h) - \tau \;\text{(logistic)}",
        r"\varphi(r/h)/h \;\text{(gaussian)};\quad \sigma(r/h)\,\sigma(-r/h)/h \;\text{(logistic)}",
    )

    def __post_init__(self) -> None:
        self._set("tau", _tau(self._owner, self.tau))
        self._set("h", V.param_positive(self._owner, "h", self.h))
        self._set("kernel", V.param_choice(self._owner, "kernel", self.kernel, _KERNELS))

    @property
    def _gaussian(self) -> bool:
        return self.kernel == "gaussian"

    @property
    def props(self) -> Props:
        smooth = 1.0 / (self.h * _SQRT_2PI) if self._gaussian else 0.25 / self.h
        return Props(
            convex=True, strictly_convex=True, lipschitz=max(self.tau, 1.0 - self.tau), smoothness=smooth,
            differentiability=2, symmetric=self.tau == 0.5,
        )

    def _rho(self, xp, r):
        t = r / self.h
        if self._gaussian:
            return r * self._psi(xp, r) + self.h * _xp.normal_pdf(xp, t)
        return (1.0 - self.tau) * r + self.h * _xp.softplus(xp, -t)

    def _psi(self, xp, r):
        # F(t) - tau written as (F(t) - 1/2) + (1/2 - tau), with F(t) - 1/2 = erf(t/sqrt 2)/2
        # or tanh(t/2)/2: no cancellation near r = 0 (exact when tau = 1/2).
        t = r / self.h
        centred = 0.5 * (_xp.erf(xp, t * _INV_SQRT2) if self._gaussian else xp.tanh(0.5 * t))
        return centred + (0.5 - self.tau)

    def _dpsi(self, xp, r):
        t = r / self.h
        if self._gaussian:
            return _xp.normal_pdf(xp, t) / self.h
        return _xp.sigmoid(xp, t) * _xp.sigmoid(xp, -t) / self.h

    def _weight(self, xp, r):
        if self.tau == 0.5:
            at_zero = self._dpsi(xp, xp.zeros_like(r))
        else:
            at_zero = -math.copysign(_INF, 0.5 - self.tau)
        return _xp.safe_divide(xp, self._psi(xp, r), r, at_zero)
