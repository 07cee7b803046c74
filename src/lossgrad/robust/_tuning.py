r"""Tuning constants from a target asymptotic efficiency under normal errors.

For an M-estimator with score psi, the asymptotic variance at the standard normal
is E[psi(Z)^2] / E[psi'(Z)]^2, so its efficiency relative to least squares is

    eff(psi) = E[psi'(Z)]^2 / E[psi(Z)^2].

:func:`tuning` solves eff = target for the loss's tuning constant by quadrature
(piecewise Gauss-Legendre with the declared kinks as break points) and a bracketing
root finder; nothing is looked up.  Huber gives 1.345 and Tukey's biweight 4.685
at 95 %, the constants of Huber (1981) and Beaton & Tukey (1974).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import optimize, stats

from .._core import ResidualLoss
from .._registry import get

__all__ = ["efficiency", "tuning"]


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(24)


def _expect(fn, breaks: list[float]) -> float:
    """E[fn(Z)] for Z ~ N(0, 1): 24-point Gauss-Legendre on pieces of width <= 0.25 over [-12, 12].

    The declared kinks and the loss's parameters are break points, so every piece is
    smooth and the rule is exact to rounding; the tails beyond 12 weigh < 1e-32.
    """
    pts = np.unique(np.concatenate([np.linspace(-12.0, 12.0, 97), [b for b in breaks if -12 < b < 12]]))
    a, b = pts[:-1, None], pts[1:, None]
    z = (0.5 * (b - a) * _NODES + 0.5 * (a + b)).ravel()
    w = (0.5 * (b - a) * _WEIGHTS).ravel() * stats.norm.pdf(z)
    return float(np.sum(w * fn(z)))


def efficiency(loss: ResidualLoss) -> float:
    """Asymptotic efficiency at the normal of the M-estimator of location defined by ``loss``."""
    if not isinstance(loss, ResidualLoss):
        raise TypeError(f"efficiency needs a residual loss (rho of r), got {type(loss).__name__}")
    params = [abs(getattr(loss, f.name)) for f in dataclasses.fields(loss) if isinstance(getattr(loss, f.name), float)]
    breaks = [k.at for k in loss.kinks] + params + [-v for v in params]
    e_dpsi = _expect(lambda z: loss.hess(0.0, z), breaks)
    e_psi2 = _expect(lambda z: loss.grad(0.0, z) ** 2, breaks)
    return e_dpsi * e_dpsi / e_psi2


_efficiency = efficiency  # the public name is shadowed by tuning()'s argument below


def _tuning_parameter(name: str, param: str | None) -> str:
    loss = get(name)
    fields = [f.name for f in dataclasses.fields(loss) if isinstance(getattr(loss, f.name), float)]
    if param is not None:
        if param not in fields:
            raise ValueError(f"param must be one of {fields} for {name}, got {param!r}")
        return param
    if len(fields) != 1:
        raise ValueError(f"{name} has parameters {fields}; say which one to tune with param=")
    return fields[0]


@functools.lru_cache(maxsize=64)
def tuning(loss_name: str, efficiency: float = 0.95, param: str | None = None) -> float:
    """The tuning constant giving ``efficiency`` at the normal (e.g. huber -> 1.345, tukey_biweight -> 4.685).

    >>> round(tuning("huber", 0.95), 3)
    1.345
    """
    target = efficiency
    if not 0 < target < 1:
        raise ValueError(f"efficiency must lie in (0, 1), got {target!r}")
    p = _tuning_parameter(loss_name, param)

    def gap(c: float) -> float:
        return _efficiency_of(loss_name, p, c) - target

    lo, hi = 1e-2, 1.0
    while gap(hi) < 0:
        lo, hi = hi, hi * 2.0
        if hi > 1e3:
            raise ValueError(f"no {p} reaches efficiency {target} for {loss_name}")
    return float(optimize.brentq(gap, lo, hi, xtol=1e-12, rtol=1e-12))


def _efficiency_of(name: str, param: str, value: float) -> float:
    return _efficiency(get(name, **{param: value}))
