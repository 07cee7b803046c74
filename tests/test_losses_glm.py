"""GLM half deviances on the log link: poisson, gamma, tweedie(power).

Peers and their conventions (f = y_pred = raw prediction = log mean):
* scikit-learn ``sklearn._loss.loss.HalfPoissonLoss``, ``HalfGammaLoss`` and
  ``HalfTweedieLoss(power)``: ``loss(y_true, raw_prediction)`` is our value exactly
  (both drop the same f-free terms; for power = 0 both keep the full half squared
  error); ``loss + constant_to_optimal_zero(y_true)`` is the half deviance, >= 0 and
  0 at f = log y; ``gradient_hessian`` is our (grad, hess) exactly (these are the
  exact derivatives for these losses, unlike scikit-learn's pinball surrogate).
* PyTorch ``poisson_nll_loss(f, y, log_input=True, full=False)`` = exp(f) - y f.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sklearn._loss.loss import HalfGammaLoss, HalfPoissonLoss, HalfTweedieLoss

import lossgrad
from lossgrad import Gamma, Poisson, Tweedie
from lossgrad._props import Basis

POWERS = [-1.0, 0.0, 1.0, 1.2, 1.5, 1.99, 2.0, 2.5, 3.0]
ALL = [Poisson(), Gamma()] + [Tweedie(power=p) for p in POWERS]
IDS = [repr(L) for L in ALL]


def _sklearn(loss):
    if isinstance(loss, Poisson):
        return HalfPoissonLoss()
    if isinstance(loss, Gamma):
        return HalfGammaLoss()
    return HalfTweedieLoss(power=loss.power)


# ------------------------------------------------------------------ hand table
E = math.e
HAND = [
    # Poisson y=3, f=0: 1 - 0 = 1, grad 1 - 3 = -2, hess 1
    (Poisson(), 3.0, 0.0, 1.0, -2.0, 1.0),
    # Poisson y=0, f=1: e, e, e
    (Poisson(), 0.0, 1.0, E, E, E),
    # Poisson y=2, f=log 2 (the optimum): 2 - 2 log 2, grad 0, hess 2
    (Poisson(), 2.0, math.log(2.0), 2.0 - 2.0 * math.log(2.0), 0.0, 2.0),
    # Gamma y=2, f=0: 0 + 2 = 2, grad 1 - 2 = -1, hess 2
    (Gamma(), 2.0, 0.0, 2.0, -1.0, 2.0),
    # Gamma y=1, f=1: 1 + 1/e, grad 1 - 1/e, hess 1/e
    (Gamma(), 1.0, 1.0, 1.0 + 1.0 / E, 1.0 - 1.0 / E, 1.0 / E),
    # Tweedie p=1.5, y=1, f=0: mu=1: 1/0.5 - 1/(-0.5) = 4, grad 1 - 1 = 0, hess 0.5 + 0.5 = 1
    (Tweedie(power=1.5), 1.0, 0.0, 4.0, 0.0, 1.0),
    # Tweedie p=1.5, y=0, f=2: e^{0.5*2}/0.5 = 2e, grad e, hess 0.5 e
    (Tweedie(power=1.5), 0.0, 2.0, 2.0 * E, E, 0.5 * E),
    # Tweedie p=3, y=1, f=0: 1/(-1) - 1/(-2) = -1/2, grad 1 - 1 = 0, hess -1 + 2 = 1
    (Tweedie(power=3.0), 1.0, 0.0, -0.5, 0.0, 1.0),
    # Tweedie p=3, y=1, f=1: mu^-1/(-1) - mu^-2/(-2) = -1/e + 1/(2e^2); grad 1/e - 1/e^2;
    # hess (2-3) e^{-1} - (1-3) e^{-2} = -1/e + 2/e^2 < 0 (not convex)
    (Tweedie(power=3.0), 1.0, 1.0, -1.0 / E + 0.5 / E**2, 1.0 / E - 1.0 / E**2, -1.0 / E + 2.0 / E**2),
    # Tweedie p=0, y=3, f=0: (1 - 3)^2/2 = 2, grad 1*(1 - 3) = -2, hess 1*(2 - 3) = -1 (not convex)
    (Tweedie(power=0.0), 3.0, 0.0, 2.0, -2.0, -1.0),
    # Tweedie p=-1, y=-1, f=0: mu^3/3 - y mu^2/2 = 1/3 + 1/2, grad 1 + 1 = 2, hess 3 + 2 = 5
    (Tweedie(power=-1.0), -1.0, 0.0, 1.0 / 3.0 + 0.5, 2.0, 5.0),
]


@pytest.mark.parametrize("loss,y,f,v,g,h", HAND, ids=[f"{i}-{c[0]!r}" for i, c in enumerate(HAND)])
def test_hand_computed_values(loss, y, f, v, g, h):
    assert loss.value_grad_hess(y, f) == pytest.approx((v, g, h), rel=1e-14, abs=1e-15)


def test_registry_and_special_cases():
    for name, cls in [("poisson", Poisson), ("gamma", Gamma), ("tweedie", Tweedie)]:
        assert type(lossgrad.get(name)) is cls and cls.family == "glm"
        assert cls().props.basis is Basis.LIKELIHOOD and cls().kinks == ()
    rng = np.random.default_rng(0)
    y, f = Poisson()._example_inputs(rng, 200)
    for a, b in [(Tweedie(power=1), Poisson()), (Tweedie(power=2), Gamma())]:
        yy = y + 0.5  # positive for gamma
        for m in ("value", "grad", "hess"):
            assert np.array_equal(getattr(a, m)(yy, f), getattr(b, m)(yy, f))
    # the natural variable is f itself (no residual)
    assert np.array_equal(Poisson()._natural(y, f), f)
    assert np.array_equal(Gamma()._from_natural(y, f), f)


# ------------------------------------------------------------------ scikit-learn
@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_equal_to_sklearn(loss):
    rng = np.random.default_rng(1)
    y, f = loss._example_inputs(rng, 500)
    sk = _sklearn(loss)
    assert sk.in_y_true_range(y)
    np.testing.assert_allclose(loss.value(y, f), sk.loss(y, f), rtol=1e-13, atol=1e-13)
    g, h = sk.gradient_hessian(y, f)
    np.testing.assert_allclose(loss.grad(y, f), g, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(loss.hess(y, f), h, rtol=1e-13, atol=1e-13)
    # adding scikit-learn's constant gives the half deviance: >= 0, and 0 at f = log y
    deviance = loss.value(y, f) + sk.constant_to_optimal_zero(y)
    assert np.all(deviance >= -1e-12 * (1 + np.abs(loss.value(y, f))))
    pos = y > 0
    at_opt = loss.value(y[pos], np.log(y[pos])) + sk.constant_to_optimal_zero(y[pos])
    np.testing.assert_allclose(at_opt, 0.0, atol=1e-12 * (1 + np.max(np.abs(y))))
    assert np.all(np.abs(loss.grad(y[pos], np.log(y[pos]))) < 1e-12 * (1 + np.max(y)))


def test_poisson_equals_torch():
    rng = np.random.default_rng(2)
    y, f = Poisson()._example_inputs(rng, 300)
    tf = torch.tensor(f, requires_grad=True)
    ty = torch.tensor(y)
    t = torch.nn.functional.poisson_nll_loss(tf, ty, log_input=True, full=False, reduction="none")
    np.testing.assert_allclose(Poisson().value(y, f), t.detach().numpy(), rtol=1e-14)
    t.sum().backward()
    np.testing.assert_allclose(Poisson().grad(y, f), tf.grad.numpy(), rtol=1e-14, atol=1e-15)


# ------------------------------------------------------------------ derivatives and convexity
@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_grad_and_hess_by_central_differences(loss):
    rng = np.random.default_rng(3)
    y, f = loss._example_inputs(rng, 300)
    h = 1e-6
    g_fd = (loss.value(y, f + h) - loss.value(y, f - h)) / (2 * h)
    h_fd = (loss.grad(y, f + h) - loss.grad(y, f - h)) / (2 * h)
    g, H = loss.grad_hess(y, f)
    np.testing.assert_allclose(g, g_fd, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(H, h_fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_declared_convexity_is_true(loss):
    # convex exactly for 1 <= power <= 2; elsewhere a point with negative Hessian exists
    rng = np.random.default_rng(4)
    y, _ = loss._example_inputs(rng, 2000)
    f = np.linspace(-6, 6, 2000)
    H = loss.hess(y, f)
    p = loss.props
    assert p.convex == bool(np.all(H >= 0))
    if p.convex:
        assert p.strictly_convex and np.all(H > 0)
    assert p.lipschitz is None and p.smoothness is None and p.strong_convexity == 0.0
    assert p.convex == (1.0 <= getattr(loss, "power", 1.0) <= 2.0)


# ------------------------------------------------------------------ arrays, dtypes, extremes
@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_float32_torch_and_jax_match_numpy(loss):
    rng = np.random.default_rng(5)
    y, f = loss._example_inputs(rng, 64)
    ref = [loss.value(y, f), loss.grad(y, f), loss.hess(y, f)]
    y32, f32 = y.astype(np.float32), f.astype(np.float32)
    for name, want in zip(["value", "grad", "hess"], ref):
        s = max(1.0, float(np.max(np.abs(want))))
        got = getattr(loss, name)(y32, f32)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * s)
        t = getattr(loss, name)(torch.from_numpy(y), torch.from_numpy(f))
        assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
        np.testing.assert_allclose(t.numpy(), want, rtol=1e-14, atol=1e-14 * s)
        j = getattr(loss, name)(jnp.asarray(y32), jnp.asarray(f32))
        assert j.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(j), want, rtol=1e-4, atol=1e-5 * s)
    assert loss.grad(torch.from_numpy(y32), torch.from_numpy(f32)).dtype == torch.float32


@pytest.mark.parametrize("loss", [Poisson(), Gamma(), Tweedie(power=1.5), Tweedie(power=1.2)], ids=repr)
def test_extreme_log_means(loss):
    # f in [-700, 700]: exp(+-700) ~ 1e+-304 is finite, so is every value here
    f = np.array([-700.0, -300.0, 300.0, 700.0])
    y = np.array([1.0, 2.0, 3.0, 4.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        v, g, h = loss.value_grad_hess(y, f)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g)) and np.all(np.isfinite(h))
    if isinstance(loss, Poisson):
        np.testing.assert_allclose(v, np.exp(f) - y * f, rtol=1e-15)
        assert v[-1] == pytest.approx(math.exp(700.0), rel=1e-15)
    if isinstance(loss, Gamma):
        assert v[0] == pytest.approx(-700.0 + math.exp(700.0), rel=1e-15)
    # float32 at its own extreme: exp(80) ~ 5.5e34 is finite
    f32 = np.array([-80.0, 80.0], np.float32)
    v32 = loss.value(np.array([1.0, 1.0], np.float32), f32)
    assert v32.dtype == np.float32 and np.all(np.isfinite(v32))


@pytest.mark.parametrize("loss", ALL, ids=IDS)
def test_never_nan_on_a_wide_grid(loss):
    # f far beyond overflow: a value may be +-inf where the true value is, never NaN (no 0 * inf, no inf - inf)
    y, _ = loss._example_inputs(np.random.default_rng(7), 9)
    if not isinstance(loss, Gamma) and getattr(loss, "power", 1.0) < 2:
        y[0] = 0.0
    f = np.array([-1e6, -1e3, -700.0, -50.0, 0.0, 50.0, 700.0, 1e3, 1e6])
    yy, ff = np.repeat(y, f.size), np.tile(f, y.size)
    with np.errstate(over="ignore", under="ignore", invalid="raise"):
        for out in loss.value_grad_hess(yy, ff):
            assert not np.any(np.isnan(out))


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
def test_overflowing_terms_resolve_to_the_dominant_infinity():
    # p = 1.5, y = 0, f -> -inf: the y-term vanishes exactly; value 2 mu^{1/2} -> 0
    assert Tweedie(power=1.5).value_grad_hess(0.0, -1e6) == (0.0, 0.0, 0.0)
    # p = 3, y > 0, f -> -inf: y mu^{-2}/2 dominates -mu^{-1}: +inf; grad -inf; hess +inf
    assert Tweedie(power=3.0).value_grad_hess(0.5, -1e6) == (math.inf, -math.inf, math.inf)
    # p = -1, f -> +inf: mu^3/3 dominates y mu^2/2 whatever the sign of y
    for y in (5.0, -5.0):
        assert Tweedie(power=-1.0).value_grad_hess(y, 400.0) == (math.inf, math.inf, math.inf)
    # finite where the true value is: p = 1.5, y = 2, f = -1300: -y e^{650}/(1 - p) = 4 e^{650} ~ 8e282
    v = Tweedie(power=1.5).value(2.0, -1300.0)
    assert v == pytest.approx(4.0 * math.exp(650.0), rel=1e-12)


def test_inputs_not_mutated_and_zero_counts():
    y = np.array([0.0, 1.0, 5.0])
    f = np.array([0.3, -1.0, 2.0])
    y0, f0 = y.copy(), f.copy()
    for loss in (Poisson(), Tweedie(power=1.5)):
        loss.value_grad_hess(y, f)
    assert np.array_equal(y, y0) and np.array_equal(f, f0)
    # y = 0 is a valid count: Poisson value exp(f), no log(0) anywhere
    assert Poisson().value(0.0, 0.3) == pytest.approx(math.exp(0.3))


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "loss,bad_y",
    [(Poisson(), -1.0), (Gamma(), 0.0), (Gamma(), -2.0), (Tweedie(power=1.5), -0.1), (Tweedie(power=1.0), -3.0),
     (Tweedie(power=2.0), 0.0), (Tweedie(power=2.5), 0.0)],
    ids=lambda x: repr(x),
)
def test_labels_outside_domain(loss, bad_y):
    y = np.array([1.0, bad_y, 2.0])
    for m in ("value", "grad", "hess"):
        with pytest.raises(ValueError, match="y_true must contain"):
            getattr(loss, m)(y, np.zeros(3))


def test_labels_inside_domain_accepted():
    assert np.isfinite(Tweedie(power=0.0).value(-5.0, 0.0))  # real y for power <= 0
    assert np.isfinite(Tweedie(power=-1.0).value(-5.0, 0.0))
    assert np.isfinite(Tweedie(power=1.5).value(0.0, 0.0))  # zeros for 1 <= power < 2
    assert np.isfinite(Poisson().value(2.5, 0.0))  # rates, not only integers


@pytest.mark.parametrize("power", [0.5, 0.01, 0.999])
def test_power_between_zero_and_one_rejected(power):
    with pytest.raises(ValueError, match="power"):
        Tweedie(power=power)


@pytest.mark.parametrize("power", [float("nan"), float("inf"), -float("inf")])
def test_power_not_finite(power):
    with pytest.raises(ValueError, match="power"):
        Tweedie(power=power)


def test_power_type():
    with pytest.raises(TypeError, match="power"):
        Tweedie(power="1.5")


def test_bad_arrays():
    with pytest.raises(ValueError, match="y_pred"):
        Poisson().value(np.ones(2), np.array([0.0, np.inf]))
    with pytest.raises(TypeError, match="y_pred"):
        Gamma().grad(np.ones(2), np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="same shape"):
        Tweedie().hess(np.ones(2), np.zeros(3))
