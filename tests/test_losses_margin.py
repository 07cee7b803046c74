"""Margin losses phi(z), z = y f: values, derivatives, declared properties, peers, stability."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

import lossgrad
from lossgrad import Side
from lossgrad._registry import catalog


def _enable_x64(jax):
    """``jax.enable_x64(True)``; before jax had it, ``jax.experimental.enable_x64()``."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()


E2 = math.exp(2.0)
MARGIN = [e.name for e in catalog(family="margin")]
DIFFERENTIABLE = [n for n in MARGIN if n != "zero_one"]
INSTANCES = [pytest.param(inst, id=repr(inst)) for e in catalog(family="margin") for inst in e.instances()]
DIFF_INSTANCES = [p for p in INSTANCES if not isinstance(p.values[0], lossgrad.ZeroOne)]


def test_catalog_lists_every_margin_loss():
    expected = {"logistic", "hinge", "squared_hinge", "smoothed_hinge", "modified_huber", "perceptron",
                "exponential", "sigmoid_loss", "dwd", "zero_one"}
    assert set(MARGIN) == expected
    for name in MARGIN:
        assert lossgrad.get(name).props.basis is lossgrad.Basis.MARGIN


# ------------------------------------------------------------ hand-computed table
# (loss, z, phi(z), phi'(z), phi''(z)); at a kink the declared one-sided value.
TABLE = [
    (lossgrad.Logistic(), 0.0, math.log(2.0), -0.5, 0.25),
    (lossgrad.Logistic(), 2.0, math.log1p(1 / E2), -1 / (1 + E2), E2 / (1 + E2) ** 2),
    (lossgrad.Logistic(), -2.0, 2.0 + math.log1p(1 / E2), -E2 / (1 + E2), E2 / (1 + E2) ** 2),
    (lossgrad.Hinge(), 0.25, 0.75, -1.0, 0.0),
    (lossgrad.Hinge(), -1.0, 2.0, -1.0, 0.0),
    (lossgrad.Hinge(), 2.0, 0.0, 0.0, 0.0),
    (lossgrad.Hinge(), 1.0, 0.0, 0.0, 0.0),  # kink: right limit
    (lossgrad.SquaredHinge(), -1.0, 4.0, -4.0, 2.0),
    (lossgrad.SquaredHinge(), 0.5, 0.25, -1.0, 2.0),
    (lossgrad.SquaredHinge(), 1.0, 0.0, 0.0, 0.0),  # hess kink: right limit
    (lossgrad.SmoothedHinge(), 0.5, 0.125, -0.5, 1.0),
    (lossgrad.SmoothedHinge(), -1.0, 1.5, -1.0, 0.0),
    (lossgrad.SmoothedHinge(), 2.0, 0.0, 0.0, 0.0),
    (lossgrad.SmoothedHinge(gamma=2.0), 0.0, 0.25, -0.5, 0.5),
    (lossgrad.SmoothedHinge(gamma=2.0), -2.0, 2.0, -1.0, 0.0),
    (lossgrad.SmoothedHinge(gamma=2.0), -1.0, 1.0, -1.0, 0.0),  # kink 1 - gamma: left limit
    (lossgrad.ModifiedHuber(), -3.0, 12.0, -4.0, 0.0),
    (lossgrad.ModifiedHuber(), 0.0, 1.0, -2.0, 2.0),
    (lossgrad.ModifiedHuber(), 0.5, 0.25, -1.0, 2.0),
    (lossgrad.ModifiedHuber(), -1.0, 4.0, -4.0, 2.0),  # kink: right limit
    (lossgrad.ModifiedHuber(), 2.0, 0.0, 0.0, 0.0),
    (lossgrad.Perceptron(), -2.0, 2.0, -1.0, 0.0),
    (lossgrad.Perceptron(), 3.0, 0.0, 0.0, 0.0),
    (lossgrad.Perceptron(), 0.0, 0.0, 0.0, 0.0),  # kink: right limit
    (lossgrad.Exponential(), 0.0, 1.0, -1.0, 1.0),
    (lossgrad.Exponential(), -2.0, E2, -E2, E2),
    (lossgrad.SigmoidLoss(), 0.0, 0.5, -0.25, 0.0),
    (lossgrad.SigmoidLoss(), math.log(3.0), 0.25, -0.1875, 0.09375),
    (lossgrad.SigmoidLoss(), -math.log(3.0), 0.75, -0.1875, -0.09375),
    (lossgrad.DWD(), 0.0, 1.0, -1.0, 0.0),
    (lossgrad.DWD(), 1.0, 0.25, -0.25, 0.5),
    (lossgrad.DWD(), 2.0, 0.125, -0.0625, 0.0625),
    (lossgrad.DWD(), 0.5, 0.5, -1.0, 0.0),  # kink z0 = 1/2: left limit
    (lossgrad.DWD(q=2.0), 1.0, 4 / 27, -8 / 27, 8 / 9),
    (lossgrad.DWD(q=2.0), 0.5, 0.5, -1.0, 0.0),
]


@pytest.mark.parametrize("loss,z,v,g,h", TABLE, ids=[f"{t[0]!r}-z={t[1]:g}" for t in TABLE])
def test_hand_computed_values(loss, z, v, g, h):
    for y in (1.0, -1.0, 0.0):  # 0 is the {0, 1} encoding of -1
        s = 1.0 if y > 0 else -1.0
        f = s * z
        val, grd, hes = loss.value_grad_hess(y, f)
        np.testing.assert_allclose([val, grd, hes], [v, s * g, h], rtol=1e-14, atol=1e-15)
        assert float(loss.value(y, f)) == float(val) and float(loss.grad(y, f)) == float(grd)
        assert float(loss.hess(y, f)) == float(hes)


def test_zero_one_values_and_declared_absent_derivatives():
    loss = lossgrad.ZeroOne()
    y = np.array([1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
    f = np.array([0.0, -1e-300, 1e-300, 0.0, 2.0, -3.0])
    np.testing.assert_array_equal(loss.value(y, f), [1.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(loss.value((y + 1) / 2, f), loss.value(y, f))
    for method in (loss.grad, loss.hess, loss.value_grad, loss.grad_hess):
        with pytest.raises(lossgrad.NotDifferentiableError):
            method(y, f)
    p = loss.props
    assert (p.has_grad, p.has_hess, p.differentiability, p.lipschitz) == (False, False, -1, None)
    assert loss(y, f) == pytest.approx(4 / 6, rel=1e-15)


# ------------------------------------------------------------ finite differences


def _away_from_kinks(loss, z, gap=1e-3):
    keep = np.ones(z.shape, bool)
    for k in loss.kinks:
        keep &= np.abs(z - k.at) > gap
    return z[keep]


@pytest.mark.parametrize("loss", DIFF_INSTANCES)
def test_grad_and_hess_match_central_differences(loss):
    rng = np.random.default_rng(0)
    z = _away_from_kinks(loss, np.concatenate([rng.uniform(-4, 4, 400), rng.uniform(-30, 30, 100)]))
    y = rng.choice([-1.0, 1.0], z.size)
    f = y * z
    h = 1e-6 * np.maximum(1.0, np.abs(f))
    fd_grad = (loss.value(y, f + h) - loss.value(y, f - h)) / (2 * h)
    fd_hess = (loss.grad(y, f + h) - loss.grad(y, f - h)) / (2 * h)
    g, hs = loss.grad_hess(y, f)
    scale_g = np.maximum(1.0, np.abs(loss.value(y, f)))
    np.testing.assert_allclose(fd_grad, g, rtol=1e-6, atol=1e-8 * scale_g.max())
    np.testing.assert_allclose(fd_hess, hs, rtol=1e-6, atol=1e-7 * np.abs(g).max())


@pytest.mark.parametrize("loss", INSTANCES)
def test_kinks_are_real_and_return_the_declared_side(loss):
    method = {0: "value", 1: "grad", 2: "hess"}
    for k in loss.kinks:
        fn = getattr(loss, method[k.order])
        at, left, right = (float(fn(1.0, k.at + d)) for d in (0.0, -1e-9, 1e-9))
        assert abs(left - right) > 1e-3, f"declared kink at {k.at} is not a jump"
        want = {Side.LEFT: left, Side.RIGHT: right, Side.MIDPOINT: 0.5 * (left + right)}[k.side]
        assert at == pytest.approx(want, abs=1e-6)


# ------------------------------------------------------------ declared properties, measured

Z = np.linspace(-50.0, 50.0, 200_001)


def _phi(loss, z, op="value"):
    return getattr(loss, op)(np.ones_like(z), z)


@pytest.mark.parametrize("loss", DIFF_INSTANCES)
def test_lipschitz_and_smoothness_constants_are_tight_bounds(loss):
    p = loss.props
    g, h = loss.grad_hess(np.ones_like(Z), Z)
    if p.lipschitz is None:
        assert np.abs(g).max() > 50.0
    else:
        assert np.abs(g).max() <= p.lipschitz * (1 + 1e-12)
        assert np.abs(g).max() >= 0.999 * p.lipschitz
    if p.smoothness is None:  # a corner (infinite curvature) or an unbounded Hessian
        assert any(k.order == 1 for k in loss.kinks) or np.abs(h).max() > 50.0
    else:
        assert np.abs(h).max() <= p.smoothness * (1 + 1e-12)
        assert np.abs(h).max() >= 0.99 * p.smoothness


@pytest.mark.parametrize("loss", INSTANCES)
def test_convexity_symmetry_boundedness(loss):
    p = loss.props
    v = _phi(loss, Z)
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-6, 6, (2, 4000))
    mid_gap = _phi(loss, (a + b) / 2) - (_phi(loss, a) + _phi(loss, b)) / 2
    if p.convex:
        assert mid_gap.max() <= 1e-12 and _phi(loss, Z, "hess").min() >= 0.0
    else:
        assert mid_gap.max() > 1e-3
    if p.strictly_convex:
        assert _phi(loss, Z[np.abs(Z) < 30], "hess").min() > 0.0
    if p.has_grad:  # redescending: phi' -> 0 in both tails
        tails = np.abs(loss.grad(np.ones(2), np.array([-50.0, 50.0])))
        assert p.redescending == bool(tails.max() < 1e-9)
    sym = _phi(loss, Z) + _phi(loss, -Z)
    assert p.symmetric == bool(np.ptp(sym) < 1e-12)
    assert p.bounded == bool(v.max() < 10.0)


@pytest.mark.parametrize("loss", INSTANCES)
def test_class_calibration_as_declared(loss):
    """Minimise C(f) = eta phi(f) + (1 - eta) phi(-f); calibrated iff the best wrong-sign
    risk is strictly worse than the best risk for every eta != 1/2 (Bartlett et al. 2006)."""
    f = np.linspace(-20.0, 20.0, 40_001)
    pos, neg = _phi(loss, f), _phi(loss, -f)
    gaps = []
    for eta in (0.05, 0.2, 0.4, 0.45, 0.55, 0.6, 0.8, 0.95):
        c = eta * pos + (1 - eta) * neg
        wrong = f * (2 * eta - 1) <= 0
        gaps.append(c[wrong].min() - c.min())
    assert loss.props.class_calibrated == bool(min(gaps) > 1e-6)


def test_sigmoid_loss_smoothness_closed_form():
    u = (3 - math.sqrt(3)) / 6
    assert lossgrad.SigmoidLoss().props.smoothness == pytest.approx(u * (1 - u) * (1 - 2 * u), rel=1e-15)
    z = math.log((1 - u) / u)  # sigmoid(-z) = u
    assert float(lossgrad.SigmoidLoss().hess(1.0, z)) == pytest.approx(math.sqrt(3) / 18, rel=1e-12)


# ------------------------------------------------------------ peer oracles


def test_sklearn_sgd_losses():
    """sklearn.linear_model._sgd_fast: py_loss(p, y), py_dloss(p, y) = dL/dp with p = f and
    y in {-1, +1}; Hinge(threshold=1) and SquaredHinge(threshold=1) are our hinge and
    squared hinge, ModifiedHuber ours.  sklearn returns the left limit at a kink, so
    points within 1e-6 of a kink are left out."""
    from sklearn.linear_model import _sgd_fast as sgd

    rng = np.random.default_rng(2)
    f = rng.uniform(-4, 4, 300)
    y = rng.choice([-1.0, 1.0], 300)
    for ours, theirs in ((lossgrad.Hinge(), sgd.Hinge(1.0)), (lossgrad.SquaredHinge(), sgd.SquaredHinge(1.0)),
                         (lossgrad.ModifiedHuber(), sgd.ModifiedHuber())):
        keep = np.all([np.abs(y * f - k.at) > 1e-6 for k in ours.kinks], axis=0)
        v = [theirs.py_loss(a, b) for a, b in zip(f[keep], y[keep])]
        d = [theirs.py_dloss(a, b) for a, b in zip(f[keep], y[keep])]
        np.testing.assert_allclose(ours.value(y[keep], f[keep]), v, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(ours.grad(y[keep], f[keep]), d, rtol=1e-14, atol=1e-15)


def test_sklearn_half_binomial_is_logistic():
    """HalfBinomialLoss(y in {0, 1}, raw = f) = log(1 + e^f) - y f = logistic(2y - 1, f).

    scikit-learn forms the value as a difference, which cancels where the loss is small
    (|f| large, right side): its absolute error is about eps * |f|, so the value is held
    to that; gradient and Hessian agree to a few ulps.  At f = 30, y = 1 mpmath shows
    that ours is the accurate one."""
    from sklearn._loss.loss import HalfBinomialLoss

    rng = np.random.default_rng(3)
    f = np.concatenate([rng.normal(0, 5, 300), [-700.0, -30.0, 30.0, 700.0]])
    y01 = rng.integers(0, 2, f.size).astype(float)
    sk = HalfBinomialLoss()
    g, h = sk.gradient_hessian(y01, f)
    ours = lossgrad.Logistic()
    np.testing.assert_array_less(np.abs(ours.value(y01, f) - sk.loss(y01, f)), 1e-14 * (1 + np.abs(f)))
    exact = float(mp.log1p(mp.exp(-30)))
    assert abs(float(ours.value(1.0, 30.0)) - exact) <= 1e-16 * exact
    assert abs(float(sk.loss(np.array([1.0]), np.array([30.0]))[0]) - exact) > 1e-3 * exact
    np.testing.assert_allclose(ours.grad(2 * y01 - 1, f), g, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(ours.hess(y01, f), h, rtol=1e-13, atol=1e-300)


def test_torch_soft_margin_and_autograd():
    """torch.nn.SoftMarginLoss(reduction='none')(f, y) = log(1 + exp(-y f)), y in {-1, +1};
    autograd of naive torch formulas gives phi' and phi'' of the smooth losses."""
    import torch

    rng = np.random.default_rng(4)
    f = rng.uniform(-5, 5, 200)
    y = rng.choice([-1.0, 1.0], 200)
    tf, ty = torch.tensor(f, requires_grad=True), torch.tensor(y)
    soft = torch.nn.SoftMarginLoss(reduction="none")(tf, ty)
    np.testing.assert_allclose(lossgrad.Logistic().value(y, f), soft.detach().numpy(), rtol=1e-14)
    naive = {
        "logistic": lambda z: torch.nn.functional.softplus(-z),
        "exponential": lambda z: torch.exp(-z),
        "sigmoid_loss": lambda z: torch.sigmoid(-z),
        "dwd": lambda z: torch.where(z <= 0.5, 1 - z, 0.25 / z.clamp(min=0.5)),
        "modified_huber": lambda z: torch.where(z >= -1, torch.clamp(1 - z, min=0) ** 2, -4 * z),
        "smoothed_hinge": lambda z: torch.where(z >= 1, 0 * z, torch.where(z <= 0, 0.5 - z, (1 - z) ** 2 / 2)),
    }
    for name, fn in naive.items():
        loss = lossgrad.get(name)
        keep = np.all([np.abs(y * f - k.at) > 1e-6 for k in loss.kinks], axis=0) if loss.kinks else slice(None)
        (g,) = torch.autograd.grad(fn(ty * tf).sum(), tf, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), tf)
        np.testing.assert_allclose(loss.value(y, f), fn(ty * tf).detach().numpy(), rtol=1e-13)
        np.testing.assert_allclose(loss.grad(y, f)[keep], g.detach().numpy()[keep], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(loss.hess(y, f)[keep], h.numpy()[keep], rtol=1e-12, atol=1e-15)


def test_optax_hinge():
    """optax.hinge_loss(predictor_outputs=f, targets=y), y in {-1, +1}: max(0, 1 - y f)."""
    import jax
    import optax

    rng = np.random.default_rng(5)
    f = rng.uniform(-3, 3, 100)
    y = rng.choice([-1.0, 1.0], 100)
    with _enable_x64(jax):
        theirs = np.asarray(optax.hinge_loss(jax.numpy.asarray(f), jax.numpy.asarray(y)))
    np.testing.assert_allclose(lossgrad.Hinge().value(y, f), theirs, rtol=1e-15)


# ------------------------------------------------------------ extremes

GRID = np.array([s * v for v in (1e-8, 1.0, 30.0, 700.0, 1e4) for s in (1.0, -1.0)])
TINY = np.finfo(float).tiny


def _close_to(ours, ref, rel=1e-14):
    """A few ulps where the reference is a normal float; subnormal/zero results absolutely."""
    ref = float(ref)
    if abs(ref) >= TINY:
        return abs(float(ours) - ref) <= rel * abs(ref)
    return abs(float(ours) - ref) <= 1e-300


def _mp_margin(name, z):
    """The naive formulas at 50 digits plus enough to hold e^{|z|} exactly."""
    with mp.workdps(60 + int(abs(z) / 2)):
        z = mp.mpf(z)
        if name == "logistic":
            return mp.log(1 + mp.exp(-z)), -1 / (1 + mp.exp(z)), mp.exp(z) / (1 + mp.exp(z)) ** 2
        if name == "sigmoid_loss":
            s = 1 / (1 + mp.exp(z))
            return s, -s * (1 - s), s * (1 - s) * (1 - 2 * s)
        e = mp.exp(-z)
        return e, -e, e


@pytest.mark.parametrize("name", ["logistic", "sigmoid_loss", "exponential"])
def test_mpmath_extreme_grid(name):
    loss = lossgrad.get(name)
    for y in (1.0, -1.0):
        for f in GRID:
            ours = loss.value_grad_hess(y, float(f))
            ref = _mp_margin(name, y * f)
            ref = (ref[0], y * ref[1], ref[2])
            for o, r, what in zip(ours, ref, "vgh"):
                if abs(r) > np.finfo(float).max:
                    assert np.isinf(o) and np.sign(o) == np.sign(float(r)), (name, y, f, what)
                else:
                    assert _close_to(o, r), (name, y, f, what, float(o), float(r))


@pytest.mark.parametrize("loss", DIFF_INSTANCES)
def test_finite_and_dtype_preserving_at_extremes(loss):
    for dtype, mags in ((np.float64, (80.0, 700.0, 1e4)), (np.float32, (80.0, 200.0, 1e3))):
        f = np.array([s * m for m in mags for s in (1, -1)], dtype=dtype)
        for y in (np.ones_like(f), -np.ones_like(f), np.zeros_like(f)):
            out = loss.value_grad_hess(y, f)
            z = np.where(y > 0, 1.0, -1.0) * f.astype(float)
            # e^{-z} beyond the largest float: the true value is infinite, nothing else is
            infinite_truth = (-z > math.log(np.finfo(dtype).max)) if isinstance(loss, lossgrad.Exponential) else 0 * z > 0
            for o in out:
                assert o.dtype == dtype
                assert np.all(np.isfinite(o[~infinite_truth])) and np.all(np.isinf(o[infinite_truth]))


# ------------------------------------------------------------ namespaces, encodings, bad input


@pytest.mark.parametrize("loss", DIFF_INSTANCES)
def test_torch_and_jax_inputs_match_numpy(loss):
    import jax.numpy as jnp
    import torch

    rng = np.random.default_rng(6)
    y = rng.choice([-1.0, 1.0], 50)
    f = rng.normal(0, 3, 50)
    ref = loss.value_grad_hess(y, f)
    tout = loss.value_grad_hess(torch.tensor(y), torch.tensor(f))
    ref32 = loss.value_grad_hess(y.astype(np.float32), f.astype(np.float32))
    jout = loss.value_grad_hess(jnp.asarray(y, dtype=jnp.float32), jnp.asarray(f, dtype=jnp.float32))
    for r, t, r32, j in zip(ref, tout, ref32, jout):
        assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
        np.testing.assert_allclose(t.numpy(), r, rtol=1e-14, atol=1e-300)  # pow may differ by ulps
        assert j.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(j), r32, rtol=2e-6, atol=1e-30)


@pytest.mark.parametrize("loss", INSTANCES)
def test_label_encodings_and_bad_labels(loss):
    f = np.array([-1.5, 0.3, 2.0])
    np.testing.assert_array_equal(loss.value(np.array([0.0, 1.0, 0.0]), f), loss.value(np.array([-1.0, 1.0, -1.0]), f))
    for bad in (np.array([2.0, 1.0, 1.0]), np.array([0.5, 1.0, 1.0]), np.array([-1.0, 0.0, 1.0])):
        with pytest.raises(ValueError, match="y_true"):
            loss.value(bad, f)
    with pytest.raises(ValueError, match="y_pred"):
        loss.value(np.ones(3), np.array([np.nan, 0.0, 1.0]))
    with pytest.raises(TypeError, match="y_pred"):
        loss.value(np.ones(3), np.array([1, 0, 1]))


@pytest.mark.parametrize("cls,param,bad,exc", [
    (lossgrad.SmoothedHinge, "gamma", 0.0, ValueError),
    (lossgrad.SmoothedHinge, "gamma", -1.0, ValueError),
    (lossgrad.SmoothedHinge, "gamma", math.inf, ValueError),
    (lossgrad.SmoothedHinge, "gamma", "1", TypeError),
    (lossgrad.DWD, "q", 0.0, ValueError),
    (lossgrad.DWD, "q", math.nan, ValueError),
    (lossgrad.DWD, "q", None, TypeError),
])
def test_bad_parameters_name_the_argument(cls, param, bad, exc):
    with pytest.raises(exc, match=param):
        cls(**{param: bad})


def test_inputs_not_mutated_and_sample_weight_multiplies():
    y = np.array([1.0, -1.0, 1.0])
    f = np.array([0.2, 0.4, -3.0])
    w = np.array([1.0, 2.0, 0.5])
    y0, f0 = y.copy(), f.copy()
    for name in DIFFERENTIABLE:
        loss = lossgrad.get(name)
        for a, b in zip(loss.value_grad_hess(y, f, sample_weight=w), loss.value_grad_hess(y, f)):
            np.testing.assert_array_equal(a, w * b)
        assert loss(y, f, sample_weight=w) == pytest.approx(np.sum(w * loss.value(y, f)) / w.sum(), rel=1e-15)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(f, f0)
