r"""Scalar (value, grad, hess) of the residual losses, for the fused kernels.

Each function takes float64 ``y``, ``f`` and the parameter tuple ``p`` (four floats,
unused slots 0) and returns (L, dL/df, d2L/df2) at r = f - y.  The bodies follow the
reference formulas of :mod:`lossgrad.losses.regression`, ``quantile`` and ``robust``
operation by operation (same branches at the kinks, same stable forms), so that the
kernel and the reference agree to a few ulps and exactly on piecewise-polynomial
pieces.  The fused driver inlines them and LLVM removes nothing it needs: the three
quantities share their intermediate work.  Transcendentals are libm's (``math``),
except exp and log1p of softplus-like terms, which use the vectorisable versions of
:mod:`._fastmath`.
"""

from __future__ import annotations

import math

from numba import njit

from . import _fastmath as fm

_LOG2 = math.log(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)

jit = njit(inline="always", cache=True, error_model="numpy")


@jit
def _clip(x, lo, hi):
    return min(max(x, lo), hi)


@jit
def _sign(x):
    return 1.0 if x > 0 else (-1.0 if x < 0 else (0.0 if x == 0 else x))


@jit
def squared_error(y, f, p):
    r = f - y
    return r * r, 2.0 * r, 2.0


@jit
def absolute_error(y, f, p):
    r = f - y
    return abs(r), _sign(r), 0.0


@jit
def huber(y, f, p):
    d = p[0]
    r = f - y
    a = abs(r)
    inside = a < d
    v = 0.5 * r * r if inside else d * (a - 0.5 * d)
    return v, _clip(r, -d, d), 1.0 if inside else 0.0


@jit
def smooth_l1(y, f, p):  # beta > 0 (beta = 0 uses absolute_error)
    b = p[0]
    r = f - y
    a = abs(r)
    inside = a < b
    v = 0.5 * r * r / b if inside else a - 0.5 * b
    return v, _clip(r / b, -1.0, 1.0), (1.0 if inside else 0.0) / b


@jit
def berhu(y, f, p):
    c = p[0]
    r = f - y
    a = abs(r)
    inside = a <= c
    v = a if inside else 0.5 * (a * (a / c) + c)
    return v, _sign(r) if inside else r / c, 0.0 if inside else 1.0 / c


@jit
def pseudo_huber(y, f, p):
    d = p[0]
    r = f - y
    t = r / d
    s = math.hypot(1.0, t)
    d2 = d * d
    v = d2 * t * t / (s + 1.0) if abs(t) < 1.0 else d2 * (s - 1.0)
    return v, r / s, 1.0 / (s * s * s)


@jit
def log_cosh(y, f, p):
    r = f - y
    a = abs(r)
    e = fm.exp(-2.0 * a)
    if a < 1.0:
        half = math.sinh(0.5 * r)
        v = math.log1p(2.0 * half * half)
    else:
        v = a + fm.log1p01(e) - _LOG2
    return v, math.tanh(r), 4.0 * e / ((1.0 + e) * (1.0 + e))


@jit
def lp(y, f, p):  # p[0] = exponent, p[1] = the Hessian at r = 0
    q = p[0]
    r = f - y
    a = abs(r)
    v = a**q
    g = q * a ** (q - 1.0) * _sign(r)
    if q == 1.0:
        h = 0.0
    elif a == 0:
        h = p[1]
    else:
        h = q * (q - 1.0) * a ** (q - 2.0)
    return v, g, h


@jit
def epsilon_insensitive(y, f, p):
    eps = p[0]
    r = f - y
    a = abs(r)
    return max(a - eps, 0.0), _sign(r) * (1.0 if a > eps else 0.0), 0.0


@jit
def squared_epsilon_insensitive(y, f, p):
    eps = p[0]
    r = f - y
    a = abs(r)
    m = max(a - eps, 0.0)
    h = 2.0 if eps == 0 else 2.0 * (1.0 if a > eps else 0.0)
    return m * m, 2.0 * _sign(r) * m, h


# ------------------------------------------------------------------ quantile


@jit
def quantile(y, f, p):
    tau = p[0]
    r = f - y
    return max(-tau * r, (1.0 - tau) * r), (1.0 - tau) if r > 0 else -tau, 0.0


@jit
def expectile(y, f, p):
    tau = p[0]
    r = f - y
    s = (1.0 - tau) if r > 0 else tau
    return s * r * r, 2.0 * s * r, 2.0 * s


@jit
def huber_quantile(y, f, p):
    tau, d = p[0], p[1]
    r = f - y
    s = (1.0 - tau) if r > 0 else tau
    a = abs(r)
    inner = a < d
    hub = 0.5 * r * r if inner else d * (a - 0.5 * d)
    return s * hub, s * _clip(r, -d, d), s * (1.0 if inner else 0.0)


@jit
def _ndtr(t):
    return 0.5 * math.erfc(-t * _INV_SQRT2)


@jit
def smoothed_quantile_gaussian(y, f, p):
    tau, h = p[0], p[1]
    r = f - y
    t = r / h
    cdf = _ndtr(t)
    pdf = _INV_SQRT_2PI * math.exp(-0.5 * t * t)
    return -r * (tau - cdf) + h * pdf, cdf - tau, pdf / h


@jit
def smoothed_quantile_logistic(y, f, p):
    tau, h = p[0], p[1]
    r = f - y
    t = r / h
    s = fm.sigmoid(t)
    return (1.0 - tau) * r + h * fm.softplus(-t), s - tau, s * fm.sigmoid(-t) / h


# -------------------------------------------------------------------- robust


@jit
def tukey_biweight(y, f, p):
    c = p[0]
    r = f - y
    inside = abs(r) <= c
    t = (r if inside else 0.0) / c
    t2 = t * t
    q = 1.0 - t2
    v = (c * c / 6.0) * (t2 * (3.0 - 3.0 * t2 + t2 * t2) if inside else 1.0)
    g = r * q * q if inside else 0.0
    h = (1.0 - t2) * (1.0 - 5.0 * t2) if inside else 0.0
    return v, g, h


@jit
def hampel(y, f, p):
    a, b, c = p[0], p[1], p[2]
    r = f - y
    s = abs(r)
    sign = _sign(r)
    top = 0.5 * a * (b + c - a)
    if s <= a:
        return 0.5 * r * r, r, 1.0
    if s <= b:
        return a * s - 0.5 * a * a, a * sign, 0.0
    if s <= c:
        d3 = c - s
        return top - 0.5 * a * d3 * d3 / (c - b), a * sign * (c - s) / (c - b), -a / (c - b)
    return top, a * sign * (c - c) / (c - b), 0.0


@jit
def andrews(y, f, p):
    a = p[0]
    r = f - y
    inside = abs(r) <= a * math.pi
    t = (r if inside else 0.0) / a
    half = math.sin(0.5 * t)
    v = 2.0 * a * a * (half * half if inside else 1.0)
    return v, a * math.sin(t) if inside else 0.0, math.cos(t) if inside else 0.0


@jit
def cauchy(y, f, p):
    c = p[0]
    r = f - y
    if abs(r) <= c:
        tn = r / c
        a = tn * tn
        return (0.5 * c * c) * math.log1p(a), c * (tn / (1.0 + a)), (1.0 - a) / ((1.0 + a) * (1.0 + a))
    u = c / r
    b = u * u
    v = (0.5 * c * c) * (math.log1p(b) + 2.0 * (math.log(abs(r)) - math.log(c)))
    return v, c * (u / (1.0 + b)), b * (b - 1.0) / ((1.0 + b) * (1.0 + b))


@jit
def welsch(y, f, p):
    c = p[0]
    r = f - y
    t = _clip(r / c, -1e3, 1e3)
    t2 = t * t
    e = fm.exp(-t2)
    return (-0.5 * c * c) * math.expm1(-t2), r * e, (1.0 - 2.0 * t2) * e


@jit
def _t_minus_log1p(s):
    """s - log1p(s) for 0 <= s < 1/2 through the atanh series (as the reference)."""
    w = s / (2.0 + s)
    w2 = w * w
    series = 1.0 / 27.0
    for k in range(11, -1, -1):
        series = series * w2 + 1.0 / (2 * k + 3)
    return s * s / (2.0 + s) - 2.0 * w * w2 * series


@jit
def fair(y, f, p):
    c, huge_at = p[0], p[1]  # huge_at = c * max_float / 4 of the input dtype
    r = f - y
    a = abs(r)
    if a > huge_at:
        v = c * a - (c * c) * (math.log(a) - math.log(c))
    else:
        s = a / c
        v = (c * c) * _t_minus_log1p(s) if s < 0.5 else c * a - (c * c) * math.log1p(s)
    w = c / (c + a)
    return v, _sign(r) * c * (a / (c + a)), w * w

