"""Robust rho functions: value = rho, grad = psi, hess = psi', weight = psi(r)/r.

Peers and their conventions: statsmodels' ``statsmodels.robust.norms`` take the
residual z and return rho(z), psi(z), psi_deriv(z) and weights(z).  We pass
z = r = y_pred - y_true (every rho here is even and psi odd, so the sign convention
of the residual changes nothing for rho, psi' and the weight, and d/dy_pred of
rho(y_pred - y_true) is psi(r)).  statsmodels 0.15 has ``TukeyBiweight``,
``Hampel``, ``AndrewWave`` and ``StudentT(c, df)``, whose df = 1 case is our
Cauchy: (c^2/2) log(1 + (z/c)^2).  It has no Welsch and no Fair norm: for those
(and for Cauchy once more) the derivatives are checked against sympy's symbolic
derivatives of the value formula, and values against mpmath at 50 digits.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import sympy
import torch
from statsmodels.robust import norms

import lossgrad
from lossgrad import Andrews, Cauchy, Fair, Hampel, TukeyBiweight, Welsch

ALL = [
    TukeyBiweight(),
    TukeyBiweight(c=1.0),
    Hampel(),
    Hampel(a=1.0, b=1.0, c=3.0),
    Hampel(a=1.5, b=3.5, c=4.0),
    Andrews(),
    Andrews(a=0.5),
    Cauchy(),
    Cauchy(c=0.5),
    Welsch(),
    Welsch(c=5.0),
    Fair(),
    Fair(c=0.3),
]
IDS = [repr(L) for L in ALL]


def _r_grid(loss):
    r = np.linspace(-4 * loss._span, 4 * loss._span, 4001)
    kinks = np.array([k.at for k in loss.kinks])
    return np.concatenate([r, kinks, [0.0, 1e-300, -1e-8]])


# ------------------------------------------------------------------ hand table
# (loss, r, value, grad, hess, weight), r = y_pred - y_true
HAND = [
    # Tukey c=2, r=1: t^2 = 1/4, q = 3/4; rho = (4/6)(1 - 27/64) = (2/3)(37/64) = 37/96;
    # psi = 1 * 9/16; psi' = (3/4)(1 - 5/4) = -3/16; weight = 9/16
    (TukeyBiweight(c=2.0), 1.0, 37 / 96, 9 / 16, -3 / 16, 9 / 16),
    # beyond c: rho = c^2/6 = 2/3, psi = psi' = weight = 0
    (TukeyBiweight(c=2.0), -3.0, 2 / 3, 0.0, 0.0, 0.0),
    # Hampel(2, 4, 8): r = 1 -> 1/2, 1, 1, 1
    (Hampel(), 1.0, 0.5, 1.0, 1.0, 1.0),
    # r = -3 (a < s <= b): a s - a^2/2 = 6 - 2 = 4, psi = -a = -2, psi' = 0, weight a/s = 2/3
    (Hampel(), -3.0, 4.0, -2.0, 0.0, 2 / 3),
    # r = 6 (b < s <= c): a(b+c-a)/2 - a(c-s)^2/(2(c-b)) = 10 - 2*4/8 = 9; psi = 2*2/4 = 1;
    # psi' = -a/(c-b) = -1/2; weight = 1/6
    (Hampel(), 6.0, 9.0, 1.0, -0.5, 1 / 6),
    # r = -9 (beyond c): 10, 0, 0, 0
    (Hampel(), -9.0, 10.0, 0.0, 0.0, 0.0),
    # Andrews a=1, r = pi/2: 1 - cos = 1, psi = sin = 1, psi' = cos = 0, weight = 1/(pi/2)
    (Andrews(a=1.0), math.pi / 2, 1.0, 1.0, 0.0, 2 / math.pi),
    # Andrews a=2, r = -10 > a pi: 2 a^2 = 8, rest 0
    (Andrews(a=2.0), -10.0, 8.0, 0.0, 0.0, 0.0),
    # Cauchy c=1, r=1: (1/2) log 2, psi 1/2, psi' 0, weight 1/2
    (Cauchy(c=1.0), 1.0, 0.5 * math.log(2.0), 0.5, 0.0, 0.5),
    # Cauchy c=2, r=-2*sqrt(3): t^2=3: 2 log 4, psi = -2 sqrt 3/4, psi' = -2/16, weight 1/4
    (Cauchy(c=2.0), -2 * math.sqrt(3.0), 2 * math.log(4.0), -math.sqrt(3.0) / 2, -0.125, 0.25),
    # Welsch c=1, r=1: (1/2)(1 - e^-1), e^-1, (1 - 2) e^-1, e^-1
    (Welsch(c=1.0), 1.0, 0.5 * (1 - math.exp(-1)), math.exp(-1), -math.exp(-1), math.exp(-1)),
    # Fair c=1, r=-1: 1 - log 2, psi -1/2, psi' 1/4, weight 1/2
    (Fair(c=1.0), -1.0, 1 - math.log(2.0), -0.5, 0.25, 0.5),
    # Fair c=2, r=2: 4 (1 - log 2), psi 1, psi' 1/4, weight 1/2
    (Fair(c=2.0), 2.0, 4 * (1 - math.log(2.0)), 1.0, 0.25, 0.5),
]


@pytest.mark.parametrize("loss,r,v,g,h,w", HAND, ids=[f"{i}-{c[0]!r}" for i, c in enumerate(HAND)])
def test_hand_computed_values(loss, r, v, g, h, w):
    y = 0.5
    got = (*loss.value_grad_hess(y, y + r), loss.weight(y, y + r))
    assert got == pytest.approx((v, g, h, w), rel=1e-13, abs=1e-15)


def test_registry_names_and_family():
    for name, cls in [("tukey_biweight", TukeyBiweight), ("hampel", Hampel), ("andrews", Andrews),
                      ("cauchy", Cauchy), ("welsch", Welsch), ("fair", Fair)]:
        assert type(lossgrad.get(name)) is cls and cls.family == "robust"
    # defaults are the usual 95%-efficiency tuning constants, as in statsmodels
    assert (TukeyBiweight().c, Andrews().a, Cauchy().c) == (norms.TukeyBiweight().c, norms.AndrewWave().a, norms.StudentT().c)
    assert (Hampel().a, Hampel().b, Hampel().c) == (2.0, 4.0, 8.0)
    assert (Welsch().c, Fair().c) == (2.9846, 1.3998)


# ------------------------------------------------------------------ statsmodels
PAIRS = [
    (TukeyBiweight(), norms.TukeyBiweight()),
    (TukeyBiweight(c=1.0), norms.TukeyBiweight(c=1.0)),
    (Hampel(), norms.Hampel()),
    (Hampel(a=1.0, b=1.0, c=3.0), norms.Hampel(a=1.0, b=1.0, c=3.0)),
    (Hampel(a=1.5, b=3.5, c=4.0), norms.Hampel(a=1.5, b=3.5, c=4.0)),
    (Andrews(), norms.AndrewWave()),
    (Andrews(a=0.5), norms.AndrewWave(a=0.5)),
    (Cauchy(), norms.StudentT(c=2.3849, df=1)),
    (Cauchy(c=0.5), norms.StudentT(c=0.5, df=1)),
]


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=[repr(p[0]) for p in PAIRS])
def test_equal_to_statsmodels_norms(ours, theirs):
    r = _r_grid(ours)  # includes the kinks themselves: both put a boundary on the inner piece
    r = r[r != 1e-300]  # statsmodels' Andrews weight is 0/0-unsafe only below eps; ours is exact
    y = np.full_like(r, -1.25)
    f = y + r
    np.testing.assert_allclose(ours.value(y, f), theirs.rho(r), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours.grad(y, f), theirs.psi(r), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours.hess(y, f), theirs.psi_deriv(r), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours.weight(y, f), theirs.weights(r), rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ sympy / mpmath for the rest
def _sympy_rho(loss):
    r = sympy.Symbol("r", real=True)
    c = sympy.Float(loss.c, 30)
    t = r / c
    if isinstance(loss, Welsch):
        return r, c**2 / 2 * (1 - sympy.exp(-t**2))
    if isinstance(loss, Cauchy):
        return r, c**2 / 2 * sympy.log(1 + t**2)
    return r, c**2 * (sympy.Abs(t) - sympy.log(1 + sympy.Abs(t)))  # Fair


@pytest.mark.parametrize("loss", [Welsch(), Welsch(c=0.7), Fair(), Fair(c=4.0), Cauchy()], ids=repr)
def test_derivatives_equal_sympy(loss):
    r, rho = _sympy_rho(loss)
    psi = sympy.diff(rho, r)
    dpsi = sympy.diff(psi, r)
    pts = [-7.3, -2.0, -0.6, 0.05, 0.9, 1.7, 3.3, 11.0]
    for x in pts:
        want = [float(e.subs(r, sympy.Float(x, 30)).evalf(30)) for e in (rho, psi, dpsi)]
        got = loss.value_grad_hess(0.0, x)
        # exp(-t^2) has condition number 2 t^2: rounding t = x/c costs that many ulps
        rel = 2e-15 * max(1.0, 2 * (x / loss.c) ** 2)
        assert got == pytest.approx(tuple(want), rel=rel, abs=1e-300)
        assert float(loss.weight(0.0, x)) == pytest.approx(want[1] / x, rel=rel)


@pytest.mark.parametrize("loss", [Fair(), Cauchy(), Welsch(), TukeyBiweight(), Andrews(), Hampel()], ids=repr)
def test_values_accurate_near_zero_and_far(loss):
    # relative accuracy where a naive formula cancels (1 - cos, 1 - exp, s - log1p(s)) or overflows
    mpmath.mp.dps = 50
    c = mpmath.mpf(getattr(loss, "c", getattr(loss, "a", None)))
    exact = {
        Fair: lambda s: c**2 * (abs(s) / c - mpmath.log1p(abs(s) / c)),
        Cauchy: lambda s: c**2 / 2 * mpmath.log1p((s / c) ** 2),
        Welsch: lambda s: -(c**2) / 2 * mpmath.expm1(-((s / c) ** 2)),
        TukeyBiweight: lambda s: c**2 / 6 * (1 - (1 - (s / c) ** 2) ** 3) if abs(s) <= c else c**2 / 6,
        Andrews: lambda s: c**2 * (1 - mpmath.cos(s / c)) if abs(s) <= c * mpmath.pi else 2 * c**2,
        Hampel: lambda s: s**2 / 2,  # only evaluated on |r| <= a below
    }[type(loss)]
    pts = [1e-12, -3e-9, 1e-5, 0.01, -0.3, 0.49 * loss._span / 3]
    if isinstance(loss, (Fair, Cauchy, Welsch)):
        pts += [1e6, -1e150, 1e300]
    for x in pts:
        want = float(exact(mpmath.mpf(x)))
        assert float(loss.value(0.0, x)) == pytest.approx(want, rel=4e-15), x


# ------------------------------------------------------------------ declared properties
@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_declared_constants_are_the_suprema(loss):
    kinks = [k.at for k in loss.kinks]
    r = np.concatenate([np.linspace(-6 * loss._span, 6 * loss._span, 400001), kinks, [-1e8, 1e8]])
    v, g, h = loss.value_grad_hess(np.zeros_like(r), r)
    p = loss.props
    assert np.max(np.abs(g)) <= p.lipschitz * (1 + 1e-12)
    assert np.max(np.abs(g)) == pytest.approx(p.lipschitz, rel=1e-6)
    assert np.max(np.abs(h)) <= p.smoothness * (1 + 1e-12)
    assert np.max(np.abs(h)) == pytest.approx(p.smoothness, rel=1e-6)
    assert p.symmetric and np.array_equal(v, loss.value(0.0 * r, -r))
    assert (np.min(h) >= 0) == p.convex
    if p.bounded:
        assert np.max(v) == pytest.approx(float(loss.value(0.0, 1e300)), rel=1e-12)
    else:
        assert float(loss.value(0.0, 1e300)) > 10 * np.max(v)  # Cauchy grows like c^2 log|r|
    # redescending: psi -> 0 far out
    assert (abs(float(loss.grad(0.0, 1e12))) < 1e-6) == p.redescending
    assert p.differentiability == (2 if not loss.kinks else 1)


def test_props_closed_forms():
    assert TukeyBiweight(c=5.0).props.lipschitz == pytest.approx(5.0 * 16 / (25 * math.sqrt(5)))
    assert Hampel(a=1.5, b=3.5, c=4.0).props.smoothness == 3.0  # a/(c - b)
    assert Welsch(c=2.0).props.lipschitz == pytest.approx(2.0 * math.exp(-0.5) / math.sqrt(2))
    assert Cauchy(c=3.0).props.lipschitz == 1.5
    assert Fair(c=3.0).props.convex and Fair().props.strictly_convex and not Fair().props.redescending
    assert not Cauchy().props.bounded and Cauchy().props.redescending
    assert [k.at for k in Hampel().kinks] == [-8.0, -4.0, -2.0, 2.0, 4.0, 8.0]
    assert [k.at for k in Hampel(a=1.0, b=1.0, c=3.0).kinks] == [-3.0, -1.0, 1.0, 3.0]


@pytest.mark.parametrize("loss", [L for L in ALL if L.kinks], ids=repr)
def test_kinks_are_where_psi_prime_jumps(loss):
    for k in loss.kinks:
        left, right = (float(loss.hess(0.0, k.at + s * 1e-9)) for s in (-1, 1))
        assert abs(left - right) > 0.1  # a real jump
        assert float(loss.hess(0.0, k.at)) == (left if k.side.value == "left" else right)
        # psi itself is continuous there (order 2)
        assert float(loss.grad(0.0, k.at - 1e-9)) == pytest.approx(float(loss.grad(0.0, k.at + 1e-9)), abs=1e-8)


# ------------------------------------------------------------------ derivatives
@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_grad_and_hess_by_central_differences(loss):
    rng = np.random.default_rng(5)
    y, f = loss._example_inputs(rng, 400)
    r = f - y
    keep = np.ones(r.shape, bool)
    for k in loss.kinks:
        keep &= np.abs(r - k.at) > 1e-3
    y, f = y[keep], f[keep]
    h = 1e-6
    g_fd = (loss.value(y, f + h) - loss.value(y, f - h)) / (2 * h)
    h_fd = (loss.grad(y, f + h) - loss.grad(y, f - h)) / (2 * h)
    g, H = loss.grad_hess(y, f)
    np.testing.assert_allclose(g, g_fd, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(H, h_fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_weight_is_psi_over_r_with_limit_one(loss):
    r = _r_grid(loss)
    r = r[r != 0]
    np.testing.assert_allclose(loss.weight(0.0 * r, r), loss.grad(0.0 * r, r) / r, rtol=1e-13, atol=1e-300)
    assert float(loss.weight(0.0, 0.0)) == 1.0 == float(loss.hess(0.0, 0.0))
    assert float(loss.weight(0.0, 1e-7)) == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------------ arrays, dtypes, extremes
@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_float32_torch_and_jax_match_numpy(loss):
    rng = np.random.default_rng(6)
    y, f = loss._example_inputs(rng, 64)
    f[:3] = y[:3]
    ref = [loss.value(y, f), loss.grad(y, f), loss.hess(y, f), loss.weight(y, f)]
    y32, f32 = y.astype(np.float32), f.astype(np.float32)
    scale = [max(1.0, float(np.max(np.abs(a)))) for a in ref]
    for got, want, s in zip([loss.value(y32, f32), loss.grad(y32, f32), loss.hess(y32, f32), loss.weight(y32, f32)], ref, scale):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * s)
    for name, want, s in zip(["value", "grad", "hess", "weight"], ref, scale):
        t = getattr(loss, name)(torch.from_numpy(y), torch.from_numpy(f))
        assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
        np.testing.assert_allclose(t.numpy(), want, rtol=1e-14, atol=1e-15)
        j = getattr(loss, name)(jnp.asarray(y32), jnp.asarray(f32))
        assert j.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(j), want, rtol=1e-4, atol=1e-5 * s)
    assert loss.hess(torch.from_numpy(y32), torch.from_numpy(f32)).dtype == torch.float32


@pytest.mark.parametrize("loss", ALL, ids=IDS)
@pytest.mark.parametrize("dtype,big", [(np.float64, [1e6, 1e100, 1e300]), (np.float32, [1e6, 1e20, 3e38])])
def test_extreme_residuals_finite(loss, dtype, big):
    r = np.array([-b for b in big] + big, dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = (*loss.value_grad_hess(np.zeros_like(r), r), loss.weight(np.zeros_like(r), r))
    for o in out:
        assert o.dtype == dtype and np.all(np.isfinite(o))
    if loss.props.redescending:
        assert np.all(np.abs(out[1]) <= 1e-5)


def test_inputs_not_mutated():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    f = np.array([5.0, -9.0, 2.0, 3.5])
    y0, f0 = y.copy(), f.copy()
    for loss in ALL:
        loss.value_grad_hess(y, f)
        loss.weight(y, f)
    assert np.array_equal(y, y0) and np.array_equal(f, f0)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("cls,name", [(TukeyBiweight, "c"), (Andrews, "a"), (Cauchy, "c"), (Welsch, "c"), (Fair, "c")])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_tuning_constant(cls, name, bad):
    with pytest.raises(ValueError, match=f"{cls.__name__}: {name} must"):
        cls(**{name: bad})
    with pytest.raises(TypeError, match=name):
        cls(**{name: "1.0"})


@pytest.mark.parametrize("a,b,c", [(3.0, 2.0, 8.0), (2.0, 4.0, 4.0), (2.0, 5.0, 4.0)])
def test_hampel_ordering(a, b, c):
    with pytest.raises(ValueError, match="0 < a <= b < c"):
        Hampel(a=a, b=b, c=c)


def test_hampel_positive():
    with pytest.raises(ValueError, match="Hampel: a must"):
        Hampel(a=0.0)


def test_bad_arrays():
    loss = TukeyBiweight()
    with pytest.raises(ValueError, match="y_pred"):
        loss.weight(np.zeros(2), np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match="same shape"):
        loss.weight(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="sample_weight"):
        loss.weight(np.zeros(2), np.zeros(2), sample_weight=np.array([1.0, -1.0]))
