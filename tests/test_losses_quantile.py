"""Quantile family: pinball, expectile, Huber quantile and convolution-smoothed pinball.

Peers and their conventions (r = y_pred - y_true, u = y_true - y_pred = -r):
* scikit-learn ``PinballLoss(quantile=tau).loss(y_true, raw_prediction)`` is our value;
  its ``gradient`` is our grad (both return -tau at r = 0); its Hessian is a
  surrogate 1, so it is not compared.
* statsmodels ``MQuantileNorm(tau, base)`` is a function of u: rho_q(u) = q(u) rho_base(u)
  with q(u) = 1 - tau for u < 0 (r > 0), tau otherwise.  d/dy_pred = -d/du, so
  grad = -psi(u), hess = psi'(u).  Expectile = 2 * MQuantileNorm(tau, LeastSquares())
  (LeastSquares rho = u^2/2); Huber quantile = MQuantileNorm(tau, HuberT(delta)).
* The smoothed pinball is checked against its definition E[pinball(r + h Z)] by
  numerical quadrature (scipy.integrate.quad).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
from sklearn._loss.loss import PinballLoss
from statsmodels.robust.norms import HuberT, LeastSquares, MQuantileNorm

import lossgrad
from lossgrad import Expectile, HuberQuantile, Quantile, SmoothedQuantile

ALL = [
    Quantile(),
    Quantile(tau=0.1),
    Quantile(tau=0.9),
    Expectile(),
    Expectile(tau=0.2),
    Expectile(tau=0.95),
    HuberQuantile(),
    HuberQuantile(tau=0.2, delta=0.5),
    HuberQuantile(tau=0.9, delta=2.0),
    SmoothedQuantile(),
    SmoothedQuantile(tau=0.2, h=0.3),
    SmoothedQuantile(tau=0.8, h=2.0, kernel="logistic"),
]
IDS = [repr(L) for L in ALL]


def _away_from_kinks(loss, y, f, gap=1e-3):
    r = f - y
    keep = np.ones(r.shape, bool)
    for k in loss.kinks:
        keep &= np.abs(r - k.at) > gap
    return y[keep], f[keep]


# ------------------------------------------------------------------ hand table
# (loss, y_true, y_pred, value, grad, hess); r = y_pred - y_true
HAND = [
    # pinball tau=0.75, r = -2: value -tau r = 1.5, grad -0.75
    (Quantile(tau=0.75), 3.0, 1.0, 1.5, -0.75, 0.0),
    # r = +2: value (1 - tau) r = 0.5, grad 0.25
    (Quantile(tau=0.75), 1.0, 3.0, 0.5, 0.25, 0.0),
    # r = 0: value 0, grad is the left limit -tau
    (Quantile(tau=0.75), 2.0, 2.0, 0.0, -0.75, 0.0),
    # expectile tau=0.25, r = 2 (over-prediction, a = 0.75): 0.75 * 4 = 3, grad 2*0.75*2 = 3, hess 1.5
    (Expectile(tau=0.25), 0.0, 2.0, 3.0, 3.0, 1.5),
    # r = -2 (a = 0.25): 1, grad -1, hess 0.5
    (Expectile(tau=0.25), 2.0, 0.0, 1.0, -1.0, 0.5),
    # r = 0: value 0, grad 0, hess its left limit 2 tau = 0.5
    (Expectile(tau=0.25), 1.0, 1.0, 0.0, 0.0, 0.5),
    # Huber quantile tau=0.25 delta=1: r = 0.5 (a = 0.75): 0.75*0.125 = 0.09375, grad 0.375, hess 0.75
    (HuberQuantile(tau=0.25, delta=1.0), 0.0, 0.5, 0.09375, 0.375, 0.75),
    # r = -3 (a = 0.25): 0.25 * (3 - 0.5) = 0.625, grad 0.25 * (-1) = -0.25, hess 0
    (HuberQuantile(tau=0.25, delta=1.0), 3.0, 0.0, 0.625, -0.25, 0.0),
    # r = 4, delta = 2 (a = 0.75): 0.75 * 2 * (4 - 1) = 4.5, grad 0.75 * 2 = 1.5, hess 0
    (HuberQuantile(tau=0.25, delta=2.0), 0.0, 4.0, 4.5, 1.5, 0.0),
    # smoothed gaussian at r = 0: value h phi(0) = h / sqrt(2 pi), grad 1/2 - tau, hess phi(0)/h
    (SmoothedQuantile(tau=0.3, h=2.0), 1.0, 1.0, 2.0 / math.sqrt(2 * math.pi), 0.2, 1.0 / (2.0 * math.sqrt(2 * math.pi))),
    # smoothed logistic at r = 0: value h log 2, grad 1/2 - tau, hess 1/(4h)
    (SmoothedQuantile(tau=0.3, h=2.0, kernel="logistic"), 1.0, 1.0, 2.0 * math.log(2.0), 0.2, 0.125),
    # smoothed logistic tau=0.5 h=1, r = log 3: sigmoid(log 3) = 3/4 -> grad 0.25, hess 3/16,
    # value 0.5 log 3 + log(1 + 1/3) = 0.5 log 3 + log 4 - log 3
    (SmoothedQuantile(tau=0.5, h=1.0, kernel="logistic"), 0.0, math.log(3.0),
     math.log(4.0) - 0.5 * math.log(3.0), 0.25, 3.0 / 16.0),
]


@pytest.mark.parametrize("loss,y,f,v,g,h", HAND, ids=[f"{i}-{c[0]!r}" for i, c in enumerate(HAND)])
def test_hand_computed_values(loss, y, f, v, g, h):
    got = loss.value_grad_hess(y, f)
    assert got == pytest.approx((v, g, h), rel=1e-14, abs=1e-15)


def test_registry_names_and_family():
    for name, cls in [("quantile", Quantile), ("expectile", Expectile), ("huber_quantile", HuberQuantile),
                      ("smoothed_quantile", SmoothedQuantile)]:
        assert type(lossgrad.get(name)) is cls
        assert cls.family == "quantile"
    assert lossgrad.get("smoothed_quantile", tau=0.3, kernel="logistic") == SmoothedQuantile(tau=0.3, kernel="logistic")


# ------------------------------------------------------------------ peers
@pytest.mark.parametrize("tau", [0.1, 0.5, 0.83])
def test_pinball_equals_sklearn(tau):
    rng = np.random.default_rng(0)
    y = rng.normal(0, 2, 500)
    f = y + rng.normal(0, 2, 500)
    f[:50] = y[:50]  # exact ties r = 0: both return the left limit -tau
    sk = PinballLoss(quantile=tau)
    L = Quantile(tau=tau)
    np.testing.assert_allclose(L.value(y, f), sk.loss(y, f), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(L.grad(y, f), sk.gradient(y, f), rtol=0, atol=1e-15)
    assert np.all(L.grad(y[:50], f[:50]) == -tau)


@pytest.mark.parametrize("tau", [0.2, 0.5, 0.9])
def test_expectile_and_huber_quantile_equal_statsmodels_mquantile(tau):
    rng = np.random.default_rng(1)
    y = rng.normal(0, 2, 400)
    f = y + rng.normal(0, 2, 400)
    f[:20] = y[:20]
    u = y - f
    sm = MQuantileNorm(tau, LeastSquares())
    E = Expectile(tau=tau)
    np.testing.assert_allclose(E.value(y, f), 2 * sm.rho(u), rtol=1e-14)
    np.testing.assert_allclose(E.grad(y, f), -2 * sm.psi(u), rtol=1e-14)
    np.testing.assert_allclose(E.hess(y, f), 2 * sm.psi_deriv(u), rtol=1e-14)  # includes r = 0
    np.testing.assert_allclose(E.weight(y, f), 2 * sm.weights(u), rtol=1e-14)
    for delta in (0.5, 1.345):
        H = HuberQuantile(tau=tau, delta=delta)
        smh = MQuantileNorm(tau, HuberT(delta))
        np.testing.assert_allclose(H.value(y, f), smh.rho(u), rtol=1e-14)
        np.testing.assert_allclose(H.grad(y, f), -smh.psi(u), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(H.weight(y, f), smh.weights(u), rtol=1e-14)
        off = np.abs(np.abs(u) - delta) > 1e-9  # HuberT puts |u| = delta on the inner piece
        np.testing.assert_allclose(H.hess(y, f)[off], smh.psi_deriv(u)[off], rtol=1e-14)


@pytest.mark.parametrize("kernel", ["gaussian", "logistic"])
@pytest.mark.parametrize("tau,h", [(0.5, 0.5), (0.15, 0.3), (0.9, 2.0)])
def test_smoothed_quantile_is_the_convolution(kernel, tau, h):
    # Definition: E[pinball_tau(r + h Z)] with pinball(r) = max(-tau r, (1 - tau) r), Z ~ kernel.
    dens = scipy.stats.norm.pdf if kernel == "gaussian" else scipy.stats.logistic.pdf
    L = SmoothedQuantile(tau=tau, h=h, kernel=kernel)
    for r in (-3.0, -0.4, 0.0, 0.25, 1.7):
        def integrand(z, r=r):
            s = r + h * z
            return max(-tau * s, (1 - tau) * s) * dens(z)

        def d_integrand(z, r=r):
            return ((1 - tau) if r + h * z > 0 else -tau) * dens(z)

        kink = -r / h
        val = sum(scipy.integrate.quad(integrand, a, b, epsabs=1e-13, epsrel=1e-13)[0]
                  for a, b in ((-np.inf, kink), (kink, np.inf)))
        grd = sum(scipy.integrate.quad(d_integrand, a, b, epsabs=1e-13, epsrel=1e-13)[0]
                  for a, b in ((-np.inf, kink), (kink, np.inf)))
        assert float(L.value(0.0, r)) == pytest.approx(val, rel=1e-10, abs=1e-12)
        assert float(L.grad(0.0, r)) == pytest.approx(grd, rel=1e-10, abs=1e-12)
        # the Hessian is the kernel density of r at bandwidth h
        assert float(L.hess(0.0, r)) == pytest.approx(dens(r / h) / h, rel=1e-13)


def test_smoothed_quantile_tends_to_pinball():
    r = np.linspace(-3, 3, 61)
    for kernel in ("gaussian", "logistic"):
        L = SmoothedQuantile(tau=0.3, h=1e-4, kernel=kernel)
        np.testing.assert_allclose(L.value(0.0 * r, r), Quantile(tau=0.3).value(0.0 * r, r), atol=1e-4)


def test_torch_pinball_by_autograd():
    # torch has no pinball loss; its autograd of max(-tau r, (1 - tau) r) is an independent oracle away from 0.
    tau = 0.3
    f = torch.tensor([-2.0, -0.1, 0.4, 5.0], dtype=torch.float64, requires_grad=True)
    y = torch.zeros_like(f)
    torch.maximum(-tau * (f - y), (1 - tau) * (f - y)).sum().backward()
    np.testing.assert_allclose(Quantile(tau=tau).grad(y.numpy(), f.detach().numpy()), f.grad.numpy(), rtol=1e-15)


# ------------------------------------------------------------------ minimisers
def test_minimisers_are_quantile_and_expectile():
    rng = np.random.default_rng(2)
    y = rng.standard_exponential(301)
    grid = np.linspace(0, 4, 8001)
    for tau in (0.1, 0.5, 0.8):
        risk = [float(Quantile(tau=tau)(y, np.full_like(y, c))) for c in grid]
        c_star = grid[int(np.argmin(risk))]
        assert abs(c_star - np.quantile(y, tau, method="inverted_cdf")) < 1e-3
        # expectile: the zero of the mean gradient, which is monotone in c
        E = Expectile(tau=tau)
        mean_grad = [float(np.mean(E.grad(y, np.full_like(y, c)))) for c in grid]
        c_e = grid[int(np.argmin(np.abs(mean_grad)))]
        # first-order condition of the tau-expectile: tau E(y - c)_+ = (1 - tau) E(c - y)_+
        assert tau * np.mean(np.maximum(y - c_e, 0)) == pytest.approx((1 - tau) * np.mean(np.maximum(c_e - y, 0)), abs=2e-3)


# ------------------------------------------------------------------ derivatives
@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_grad_and_hess_by_central_differences(loss):
    rng = np.random.default_rng(3)
    y, f = _away_from_kinks(loss, *loss._example_inputs(rng, 300))
    h = 1e-6
    g_fd = (loss.value(y, f + h) - loss.value(y, f - h)) / (2 * h)
    h_fd = (loss.grad(y, f + h) - loss.grad(y, f - h)) / (2 * h)
    g, H = loss.grad_hess(y, f)
    np.testing.assert_allclose(g, g_fd, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(H, h_fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_kink_sides(loss):
    # at a declared kink the returned one-sided value is the limit from the declared side
    for k in loss.kinks:
        side = -1 if k.side.value == "left" else 1
        at = loss.hess if k.order == 2 else loss.grad
        assert float(at(0.0, k.at)) == pytest.approx(float(at(0.0, k.at + side * 1e-9)), abs=1e-6)
        assert float(at(0.0, k.at)) != pytest.approx(float(at(0.0, k.at - side * 1e-9)), abs=1e-6)


@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_declared_constants_are_attained(loss):
    r = np.concatenate([np.linspace(-50, 50, 200001), [-1e6, 1e6]])
    g, H = loss.grad_hess(np.zeros_like(r), r)
    p = loss.props
    if p.lipschitz is not None:
        assert np.max(np.abs(g)) <= p.lipschitz * (1 + 1e-12)
        assert np.max(np.abs(g)) == pytest.approx(p.lipschitz, rel=1e-6)
    else:
        assert np.max(np.abs(g)) > 1e5
    if p.smoothness is not None:
        assert np.max(np.abs(H)) == pytest.approx(p.smoothness, rel=1e-6)
        assert np.max(np.abs(H)) <= p.smoothness * (1 + 1e-12)
    assert np.min(H) >= p.strong_convexity * (1 - 1e-12)
    if p.strong_convexity > 0:
        assert np.min(H) == pytest.approx(p.strong_convexity, rel=1e-12)
    if loss.props.symmetric:
        np.testing.assert_allclose(loss.value(0.0 * r, r), loss.value(0.0 * r, -r), rtol=1e-13)
    else:
        assert not np.allclose(loss.value(0.0 * r, r), loss.value(0.0 * r, -r))


def test_smoothed_quantile_hessian_strictly_positive():
    r = np.linspace(-8, 8, 1001)
    for kernel in ("gaussian", "logistic"):
        assert np.all(SmoothedQuantile(h=0.5, kernel=kernel).hess(0.0 * r, r) > 0)


# ------------------------------------------------------------------ weight
@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_weight_is_psi_over_r(loss):
    r = np.concatenate([np.linspace(-7, -0.01, 50), np.linspace(0.01, 7, 50)])
    y = np.ones_like(r)
    np.testing.assert_allclose(loss.weight(y, y + r), loss.grad(y, y + r) / r, rtol=1e-13)


def test_weight_at_zero():
    assert float(Quantile(tau=0.3).weight(1.0, 1.0)) == math.inf  # tau/|r| and (1-tau)/r both -> +inf
    assert float(Expectile(tau=0.3).weight(1.0, 1.0)) == 0.6  # 2 tau, the left limit (= hess there)
    assert float(HuberQuantile(tau=0.3).weight(1.0, 1.0)) == 0.3
    for kernel in ("gaussian", "logistic"):
        L = SmoothedQuantile(tau=0.5, h=0.7, kernel=kernel)
        assert float(L.weight(0.0, 0.0)) == pytest.approx(float(L.weight(0.0, 1e-7)), rel=1e-6)
        assert float(L.weight(0.0, 0.0)) == float(L.hess(0.0, 0.0))
        # tau != 1/2: psi(0) = 1/2 - tau, so the left limit of psi/r is -sign(1/2 - tau) inf
        assert float(SmoothedQuantile(tau=0.2, kernel=kernel).weight(0.0, 0.0)) == -math.inf
        assert float(SmoothedQuantile(tau=0.2, kernel=kernel).weight(0.0, -1e-9)) < -1e8
        assert float(SmoothedQuantile(tau=0.8, kernel=kernel).weight(0.0, 0.0)) == math.inf


# ------------------------------------------------------------------ arrays, dtypes, extremes
@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_float32_torch_and_jax_match_numpy(loss):
    rng = np.random.default_rng(4)
    y, f = loss._example_inputs(rng, 64)
    f[:4] = y[:4]
    ref = [loss.value(y, f), loss.grad(y, f), loss.hess(y, f), loss.weight(y, f)]
    y32, f32 = y.astype(np.float32), f.astype(np.float32)
    for got, want in zip([loss.value(y32, f32), loss.grad(y32, f32), loss.hess(y32, f32), loss.weight(y32, f32)], ref):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    ty, tf = torch.from_numpy(y), torch.from_numpy(f)
    jy, jf = jnp.asarray(y32), jnp.asarray(f32)
    for name, want in zip(["value", "grad", "hess", "weight"], ref):
        t = getattr(loss, name)(ty, tf)
        assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
        np.testing.assert_allclose(t.numpy(), want, rtol=1e-14, atol=1e-15)
        j = getattr(loss, name)(jy, jf)
        assert j.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(j), want, rtol=2e-5, atol=2e-5)
    t32 = loss.value(torch.from_numpy(y32), torch.from_numpy(f32))
    assert t32.dtype == torch.float32


@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_extreme_residuals_stay_finite_and_right(loss):
    r = np.array([-1e6, -1e3, 1e3, 1e6])
    v, g, H = loss.value_grad_hess(np.zeros_like(r), r)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g)) and np.all(np.isfinite(H))
    a = np.where(r > 0, 1 - loss.tau, loss.tau)
    if isinstance(loss, Expectile):
        np.testing.assert_allclose(v, a * r * r, rtol=1e-15)
    elif isinstance(loss, HuberQuantile):
        np.testing.assert_allclose(v, a * loss.delta * (np.abs(r) - loss.delta / 2), rtol=1e-15)
    elif isinstance(loss, SmoothedQuantile):  # far from 0 the smoothing vanishes: the pinball itself
        np.testing.assert_allclose(v, a * np.abs(r), rtol=1e-12)
        np.testing.assert_allclose(g, np.where(r > 0, 1 - loss.tau, -loss.tau), rtol=1e-12)
    else:
        np.testing.assert_allclose(v, a * np.abs(r), rtol=1e-15)
    v32 = loss.value(np.zeros(4, np.float32), r.astype(np.float32))
    assert v32.dtype == np.float32 and np.all(np.isfinite(v32))


def test_inputs_not_mutated_and_scalars_out():
    y = np.array([0.0, 1.0, 2.0])
    f = np.array([1.0, 1.0, -1.0])
    y0, f0 = y.copy(), f.copy()
    for loss in ALL:
        loss.value_grad_hess(y, f)
        loss.weight(y, f)
    assert np.array_equal(y, y0) and np.array_equal(f, f0)
    assert np.ndim(SmoothedQuantile().value(0.0, 1.0)) == 0


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("cls", [Quantile, Expectile, HuberQuantile, SmoothedQuantile])
@pytest.mark.parametrize("tau", [0.0, 1.0, -0.2, 1.5, float("nan")])
def test_bad_tau(cls, tau):
    with pytest.raises(ValueError, match="tau"):
        cls(tau=tau)


def test_bad_other_params():
    with pytest.raises(TypeError, match="tau"):
        Quantile(tau="0.5")
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="delta"):
            HuberQuantile(delta=bad)
        with pytest.raises(ValueError, match="h"):
            SmoothedQuantile(h=bad)
    with pytest.raises(ValueError, match="kernel"):
        SmoothedQuantile(kernel="epanechnikov")


@pytest.mark.parametrize("loss", [Quantile(), SmoothedQuantile()], ids=repr)
def test_bad_arrays(loss):
    with pytest.raises(ValueError, match="y_pred"):
        loss.value(np.zeros(3), np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="y_true"):
        loss.grad(np.array([0.0, np.inf, 1.0]), np.zeros(3))
    with pytest.raises(ValueError, match="same shape"):
        loss.hess(np.zeros(3), np.zeros(4))
    with pytest.raises(TypeError, match="y_pred"):
        loss.weight(np.zeros(3), np.zeros(3, dtype=int))
