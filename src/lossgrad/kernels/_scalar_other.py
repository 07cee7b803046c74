r"""Scalar (value, grad, hess) of the GLM, margin and binary losses, for the fused kernels.

Same contract as :mod:`._scalar_residual`: float64 ``y``, ``f``, a four-float parameter
tuple ``p``, except the functions of :data:`._table.NATIVE` (GLM, logistic, exponential,
bce_logit), which take float32 as float32 and keep it (constants through ``fm.one``,
``fm.zero``, ``fm.like``); returns (L, dL/df, d2L/df2), following the reference formulas of
:mod:`lossgrad.losses.glm`, ``margin`` and ``binary`` operation by operation.
Margin losses take s = +1 for y > 0 and -1 otherwise, z = s f, and return
(phi(z), s phi'(z), phi''(z)).
"""

from __future__ import annotations

import math

from numba import njit

from . import _fastmath as fm

jit = njit(inline="always", cache=True, error_model="numpy")

_TINY = 2.2250738585072014e-308  # smallest normal float64


# ----------------------------------------------------------------------- glm


@jit
def poisson(y, f, p):
    mu = fm.exp(f)
    return mu - y * f, mu - y, mu


@jit
def gamma(y, f, p):
    e = y * fm.exp(-f)
    return f + e, fm.one(f) - e, e


@jit
def tweedie_normal(y, f, p):  # power 0: the half squared error in mu, f-free term kept
    mu = fm.exp(f)
    d = mu - y
    return fm.like(f, 0.5) * d * d, mu * (mu - y), mu * (fm.like(f, 2.0) * mu - y)


@jit
def _factored(y, k1, k2, near, e1, em1, eq):
    """e^{(1-q) f} [k1 e^f - k2 y], the bracket k1 expm1(f) + (k1 - k2 y) for |f| < 1."""
    return eq * ((k1 * em1 + (k1 - k2 * y)) if near else (k1 * e1 - k2 * y))


@jit
def _two_terms(y, f, k1, k2, safe, factored, ea, eb):
    """k1 e^{(2-q) f} - k2 y e^{(1-q) f}, as the reference (:class:`lossgrad.Tweedie`): the
    factored form where the factors are normal floats and it is finite; otherwise the
    unfactored terms, and where both overflow the infinity of the larger one.
    |k1| e^{(2-q) f} > |k2 y| e^{(1-q) f} exactly when |k1| e^f > |k2 y|: no logarithm,
    so the loop stays vectorisable."""
    if safe & (factored - factored == 0):
        return factored
    a = k1 * ea
    b = k2 * y * eb
    if math.isinf(a) & math.isinf(b):
        a_wins = abs(k1) * fm.exp(f) > abs(k2) * (fm.one(y) if y == 0 else abs(y))
        return a if a_wins else -b
    return a - b


@jit
def _tweedie_factors(y, f, p):
    q = p[0]
    one = fm.one(f)
    safe = abs(f) < p[1]
    fs = f if safe else fm.zero(f)
    return safe, fs, abs(fs) < one, one - q, fm.like(f, 2.0) - q


@jit
def tweedie(y, f, p):  # p = (power q not in {0, 1, 2}, limit of |f| for the factored form, 1/(2-q), 1/(1-q))
    safe, fs, near, one_q, two_q = _tweedie_factors(y, f, p)
    # Two exponentials per element: (e^f with expm1(f) from the same polynomial,
    # e^{(1-q) f}) where the factored form is used, (e^{(2-q) f}, e^{(1-q) f_b}) of the
    # unfactored terms elsewhere; e^f once more only where both terms overflow (the
    # comparison of their sizes).  (With y = 0 the term in e^{(1-q) f_b} is 0 either way.)
    e_one, em1 = fm.exp_expm1(fs if safe else two_q * f)
    e_two = fm.exp(one_q * (fs if safe else (fm.zero(f) if y == 0 else f)))
    # unfactored terms; where safe (the factored product overflowed: huge |y|) e^{(2-q) f}
    # is the product e^f e^{(1-q) f}, finite there
    ea = e_one * e_two if safe else e_one
    one = fm.one(f)
    v = _two_terms(y, f, p[2], p[3], safe, _factored(y, p[2], p[3], near, e_one, em1, e_two), ea, e_two)
    g = _two_terms(y, f, one, one, safe, _factored(y, one, one, near, e_one, em1, e_two), ea, e_two)
    h = _two_terms(y, f, two_q, one_q, safe, _factored(y, two_q, one_q, near, e_one, em1, e_two), ea, e_two)
    return v, g, h


@jit
def tweedie_fast(y, f, p):
    """:func:`tweedie`'s factored form alone, and whether it is the answer (ok): where
    every factor is a normal float and the three results finite, ``tweedie`` returns
    exactly these numbers.  The driver recomputes a block with ``tweedie`` where a lane
    is not ok (|f| near the overflow range, or a huge |y|), so the common case pays two
    exponentials and no fallback arithmetic (measured: 3.9 -> 2.4 ns/element in float64)."""
    safe, fs, near, one_q, two_q = _tweedie_factors(y, f, p)
    e_one, em1 = fm.exp_expm1(fs)
    e_two = fm.exp(one_q * fs)
    one = fm.one(f)
    v = _factored(y, p[2], p[3], near, e_one, em1, e_two)
    g = _factored(y, one, one, near, e_one, em1, e_two)
    h = _factored(y, two_q, one_q, near, e_one, em1, e_two)
    return v, g, h, safe & (v - v == 0) & (g - g == 0) & (h - h == 0)


# -------------------------------------------------------------------- margin


@jit
def _s(y):
    return 1.0 if y > 0 else -1.0


@jit
def _sign(y, f):
    """_s(y) in the float type of f."""
    return fm.one(f) if y > 0 else -fm.one(f)


@jit
def logistic(y, f, p):
    s = _sign(y, f)
    z = s * f
    e = fm.exp(-abs(z))
    d = fm.one(f) + e
    return fm.softplus(-z), s * -fm.sigmoid(-z), e / (d * d)


@jit
def hinge(y, f, p):
    s = _s(y)
    z = s * f
    return max(1.0 - z, 0.0), s * -(1.0 if z < 1.0 else 0.0), 0.0


@jit
def squared_hinge(y, f, p):
    s = _s(y)
    z = s * f
    m = max(1.0 - z, 0.0)
    return m * m, s * (-2.0 * m), 2.0 * (1.0 if z < 1.0 else 0.0)


@jit
def smoothed_hinge(y, f, p):
    gm = p[0]
    s = _s(y)
    z = s * f
    u = 1.0 - z
    quad = u * u / (2.0 * gm) if u > 0 else 0.0
    v = u - 0.5 * gm if u >= gm else quad
    h = (1.0 if (z > 1.0 - gm) and (z < 1.0) else 0.0) / gm
    return v, s * -min(max(u / gm, 0.0), 1.0), h


@jit
def modified_huber(y, f, p):
    s = _s(y)
    z = s * f
    m = max(1.0 - z, 0.0)
    if z >= -1.0:
        return m * m, s * (-2.0 * m), 2.0 * (1.0 if z < 1.0 else 0.0)
    return -4.0 * z, s * -4.0, 0.0


@jit
def perceptron(y, f, p):
    s = _s(y)
    z = s * f
    return max(-z, 0.0), s * -(1.0 if z < 0.0 else 0.0), 0.0


@jit
def exponential(y, f, p):
    s = _sign(y, f)
    e = fm.exp(-(s * f))
    return e, s * -e, e


@jit
def sigmoid_loss(y, f, p):
    s = _s(y)
    z = s * f
    e = fm.exp(-abs(z))
    ss = e / ((1.0 + e) * (1.0 + e))
    return fm.sigmoid(-z), s * -ss, ss * math.tanh(0.5 * z)


@jit
def dwd(y, f, p):
    q = p[0]
    z0 = q / (q + 1.0)
    s = _s(y)
    z = s * f
    if z > z0:
        t = z0 / z
        tq1 = t ** (q + 1.0)
        return t**q / (q + 1.0), s * -tq1, (q + 1.0) / z * tq1
    return 1.0 - z, s * -1.0, 0.0


@jit
def zero_one(y, f, p):  # value only: grad and hess do not exist (never requested)
    z = _s(y) * f
    return 1.0 if z <= 0.0 else 0.0, math.nan, math.nan


# -------------------------------------------------------------------- binary


@jit
def _smooth(y, p):
    ls = p[1]
    t = y if ls == 0 else y * (fm.one(ls) - ls) + fm.like(ls, 0.5) * ls
    return p[0] * t, fm.one(ls) - t  # (a, b): weights of the positive and negative terms


@jit
def bce_logit(y, f, p):  # p = (pos_weight, label_smoothing)
    a, b = _smooth(y, p)
    v = a * fm.softplus(-f) + b * fm.softplus(f)
    g = b * fm.sigmoid(f) - a * fm.sigmoid(-f)
    e = fm.exp(-abs(f))
    d = fm.one(f) + e
    return v, g, e / (d * d) * (a + b)


@jit
def _xlog(x, log_u, singular):
    if x == 0:
        return 0.0
    return -math.inf if singular else x * log_u


@jit
def _ratio(x, d):
    if x == 0:
        return 0.0
    return math.inf if d == 0 else x / d


@jit
def bce_prob(y, f, p):
    a, b = _smooth(y, p)
    one_minus = 1.0 - f
    log_p = math.log(1.0 if f == 0 else f)
    log_1mp = math.log1p(-(0.0 if f == 1 else f))
    v = 0.0 - _xlog(a, log_p, f == 0) - _xlog(b, log_1mp, f == 1)
    g = _ratio(b, one_minus) - _ratio(a, f)
    h = _ratio(a, f * f) + _ratio(b, one_minus * one_minus)
    return v, g, h


@jit
def binary_focal(y, f, p):  # p = (gamma, alpha or -1 for None)
    gm, alpha = p[0], p[1]
    s = _s(y)
    z = s * f
    logp = fm.log_sigmoid(z)
    q = fm.sigmoid(-z)
    if gm == 0:
        qg = 1.0
    elif q >= _TINY:
        qg = q**gm
    else:
        qg = math.exp(gm * fm.log_sigmoid(-z))
    at = 1.0 if alpha < 0 else (alpha if y > 0 else 1.0 - alpha)
    pz = fm.sigmoid(z)
    v = -qg * logp
    g = s * qg * (gm * pz * logp - q)
    h = qg * pz * (gm * logp * (q - gm * pz) + q * (2.0 * gm + 1.0))
    return at * v, at * g, at * h
