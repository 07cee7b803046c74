"""Binary cross-entropy (logit and probability forms) and binary focal loss."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

import lossgrad
from lossgrad._registry import catalog


def _focal_exact(f, y, gamma, alpha):
    """-alpha_t (1 - p_t)^gamma log p_t in 50-digit arithmetic."""
    import mpmath

    with mpmath.workdps(50):
        z = mpmath.mpf(float(f)) if y == 1 else -mpmath.mpf(float(f))
        p = 1 / (1 + mpmath.exp(-z))
        a = 1 if alpha is None else (alpha if y == 1 else 1 - alpha)
        return float(-a * (1 - p) ** gamma * mpmath.log(p))


def _enable_x64(jax):
    """``jax.enable_x64(True)``; before jax had it, ``jax.experimental.enable_x64()``."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()


BCE_INSTANCES = [pytest.param(i, id=repr(i)) for i in
                 next(e for e in catalog(family="binary") if e.name == "binary_cross_entropy").instances()]
FOCAL_INSTANCES = [pytest.param(i, id=repr(i)) for i in
                   next(e for e in catalog(family="binary") if e.name == "binary_focal").instances()]
ALL = BCE_INSTANCES + FOCAL_INSTANCES
LOG2 = math.log(2.0)


def test_catalog():
    assert {e.name for e in catalog(family="binary")} == {"binary_cross_entropy", "binary_focal"}


# ------------------------------------------------------------ hand-computed tables
BCE_TABLE = [
    # (params, y, y_pred, value, grad, hess)
    ({}, 1.0, 0.0, LOG2, -0.5, 0.25),
    ({}, 0.0, math.log(3.0), math.log(4.0), 0.75, 0.1875),
    ({}, 1.0, math.log(3.0), math.log(4.0 / 3.0), -0.25, 0.1875),
    ({}, 0.25, 0.0, LOG2, 0.25, 0.25),
    ({"pos_weight": 3.0}, 1.0, 0.0, 3 * LOG2, -1.5, 0.75),
    ({"pos_weight": 3.0}, 0.5, 0.0, 2 * LOG2, -0.5, 0.5),
    ({"label_smoothing": 0.2}, 1.0, 0.0, LOG2, -0.4, 0.25),  # y' = 0.9
    ({"label_smoothing": 0.2}, 0.0, math.log(3.0), 0.9 * math.log(4.0) + 0.1 * math.log(4.0 / 3.0), 0.65, 0.1875),
    ({"from_logits": False}, 1.0, 0.5, LOG2, -2.0, 4.0),
    ({"from_logits": False}, 0.0, 0.25, -math.log(0.75), 1 / 0.75, 1 / 0.5625),
    ({"from_logits": False}, 0.3, 0.3, -(0.3 * math.log(0.3) + 0.7 * math.log(0.7)), 0.0, 0.3 / 0.09 + 0.7 / 0.49),
    ({"from_logits": False}, 1.0, 0.0, math.inf, -math.inf, math.inf),  # exact, no clipping
    ({"from_logits": False}, 0.0, 0.0, 0.0, 1.0, 1.0),  # 0 log 0 = 0
    ({"from_logits": False}, 1.0, 1.0, 0.0, -1.0, 1.0),
    ({"from_logits": False}, 0.0, 1.0, math.inf, math.inf, math.inf),
    ({"from_logits": False, "pos_weight": 2.0}, 1.0, 0.5, 2 * LOG2, -4.0, 8.0),
    # p^2 underflows here; the exact Hessian y/p^2 + 1 = 1e20 + 1 does not
    ({"from_logits": False}, 1e-300, 1e-160, 1e-300 * 160 * math.log(10) + 1e-160, 1.0 - 1e-140, 1e20),
    ({"from_logits": False, "label_smoothing": 0.5}, 1.0, 0.75, -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)),
     -1.0 + 1.0, 0.75 / 0.5625 + 0.25 / 0.0625),
]


@pytest.mark.parametrize("params,y,f,v,g,h", BCE_TABLE)
def test_bce_hand_computed(params, y, f, v, g, h):
    loss = lossgrad.BinaryCrossEntropy(**params)
    out = [float(o) for o in loss.value_grad_hess(y, f)]
    np.testing.assert_allclose(out, [v, g, h], rtol=1e-14, atol=1e-15)
    assert not np.signbit(out[0])  # no -0.0 for a zero loss


def _focal_half(gamma):
    """Focal value, dL/dz and d2L/dz2 at z = 0 (p = q = 1/2), alpha_t = 1, by hand."""
    a = 0.5**gamma
    return a * LOG2, a * (-gamma * 0.5 * LOG2 - 0.5), a * 0.5 * (gamma * LOG2 * (0.5 * gamma - 0.5) + 0.5 * (2 * gamma + 1))


FOCAL_TABLE = [
    ({"gamma": 2.0}, 1.0, 0.0, 0.25 * LOG2, 0.25 * (-LOG2 - 0.5), 0.125 * (LOG2 + 2.5)),
    ({"gamma": 2.0}, 0.0, 0.0, 0.25 * LOG2, -0.25 * (-LOG2 - 0.5), 0.125 * (LOG2 + 2.5)),
    ({"gamma": 2.0, "alpha": 0.25}, 1.0, 0.0, 0.0625 * LOG2, 0.0625 * (-LOG2 - 0.5), 0.03125 * (LOG2 + 2.5)),
    ({"gamma": 2.0, "alpha": 0.25}, 0.0, 0.0, 0.1875 * LOG2, -0.1875 * (-LOG2 - 0.5), 0.09375 * (LOG2 + 2.5)),
    # z = log 3: p = 3/4, q = 1/4, log p = log(3/4)
    ({"gamma": 1.0}, 1.0, math.log(3.0), -0.25 * math.log(0.75), 0.25 * (0.75 * math.log(0.75) - 0.25),
     0.25 * 0.75 * (math.log(0.75) * (0.25 - 0.75) + 0.25 * 3)),
    ({"gamma": 0.0}, 1.0, math.log(3.0), -math.log(0.75), -0.25, 0.1875),
    ({"gamma": 0.5}, -1.0, 0.0, *[c * s for c, s in zip(_focal_half(0.5), (1, -1, 1))]),  # {-1,+1} labels
]


@pytest.mark.parametrize("params,y,f,v,g,h", FOCAL_TABLE)
def test_focal_hand_computed(params, y, f, v, g, h):
    out = [float(o) for o in lossgrad.BinaryFocal(**params).value_grad_hess(y, f)]
    np.testing.assert_allclose(out, [v, g, h], rtol=1e-14, atol=1e-16)


def test_focal_gamma_zero_is_logistic_and_bce():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500).astype(float)
    f = rng.normal(0, 8, 500)
    focal = lossgrad.BinaryFocal(gamma=0.0).value_grad_hess(y, f)
    for other in (lossgrad.Logistic().value_grad_hess(y, f), lossgrad.BinaryCrossEntropy().value_grad_hess(y, f)):
        for a, b in zip(focal, other):
            np.testing.assert_allclose(a, b, rtol=2e-15, atol=1e-300)
    np.testing.assert_array_equal(lossgrad.BinaryFocal(gamma=2.0).value(y, f), lossgrad.BinaryFocal(gamma=2.0).value(2 * y - 1, f))


# ------------------------------------------------------------ finite differences


def _inputs(loss, n=400, seed=1):
    rng = np.random.default_rng(seed)
    y, f = loss._example_inputs(rng, n)
    if isinstance(loss, lossgrad.BinaryCrossEntropy) and not loss.from_logits:
        f = rng.uniform(0.05, 0.95, n)
    return y, f


@pytest.mark.parametrize("loss", ALL)
def test_grad_and_hess_match_central_differences(loss):
    y, f = _inputs(loss)
    h = 1e-6 * np.maximum(1.0, np.abs(f)) if (getattr(loss, "from_logits", True)) else 1e-7
    fd_g = (loss.value(y, f + h) - loss.value(y, f - h)) / (2 * h)
    fd_h = (loss.grad(y, f + h) - loss.grad(y, f - h)) / (2 * h)
    g, hs = loss.grad_hess(y, f)
    np.testing.assert_allclose(fd_g, g, rtol=1e-6, atol=1e-8 * max(1.0, np.abs(loss.value(y, f)).max()))
    np.testing.assert_allclose(fd_h, hs, rtol=1e-5, atol=1e-7 * max(1.0, np.abs(g).max()))


# ------------------------------------------------------------ peer oracles


def test_torch_bce_with_logits_pos_weight_and_weights():
    """F.binary_cross_entropy_with_logits(f, y', weight=w, pos_weight=pw, reduction='none')
    = our value(y, f, sample_weight=w), where torch gets the smoothed label y' (it has no
    label smoothing); autograd's first and second derivatives equal our grad and hess."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(2)
    y = np.where(rng.random(300) < 0.5, rng.random(300), rng.integers(0, 2, 300).astype(float))
    f = rng.normal(0, 6, 300)
    w = rng.uniform(0.1, 2.0, 300)
    for pw, ls in ((1.0, 0.0), (3.0, 0.0), (0.5, 0.2)):
        loss = lossgrad.BinaryCrossEntropy(pos_weight=pw, label_smoothing=ls)
        tf = torch.tensor(f, requires_grad=True)
        ys = torch.tensor(y * (1 - ls) + ls / 2)
        val = F.binary_cross_entropy_with_logits(tf, ys, weight=torch.tensor(w), pos_weight=torch.tensor(pw),
                                                 reduction="none")
        (g,) = torch.autograd.grad(val.sum(), tf, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), tf)
        v, gg, hh = loss.value_grad_hess(y, f, sample_weight=w)
        # torch forms the value as (1 - y) f + softplus(-f): absolute error about eps |f|
        np.testing.assert_array_less(np.abs(v - val.detach().numpy()), 1e-15 * w * (1 + np.abs(f)) * max(pw, 1))
        np.testing.assert_allclose(gg, g.detach().numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(hh, h.numpy(), rtol=1e-12, atol=1e-15)
        mean = loss(y, f, sample_weight=w)
        assert mean == pytest.approx(float(val.detach().sum()) / w.sum(), rel=1e-13)


def test_torch_bce_probability_form_and_its_clamp():
    """F.binary_cross_entropy(p, y) with its logs clamped at -100: equal wherever the clamp
    is inactive; where it is active torch is wrong and we are exact (mpmath).  torch's
    second derivative carries its 1e-12 denominator guard and is off by ~1e-10
    relative: held to 1e-9 there, and ours to mpmath at 1e-14."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(3)
    y = rng.random(300)
    p = rng.uniform(0.01, 0.99, 300)
    w = rng.uniform(0.1, 2.0, 300)
    loss = lossgrad.BinaryCrossEntropy(from_logits=False)
    tp = torch.tensor(p, requires_grad=True)
    val = F.binary_cross_entropy(tp, torch.tensor(y), weight=torch.tensor(w), reduction="none")
    (g,) = torch.autograd.grad(val.sum(), tp, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), tp)
    v, gg, hh = loss.value_grad_hess(y, p, sample_weight=w)
    np.testing.assert_allclose(v, val.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(gg, g.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hh, h.numpy(), rtol=1e-9)
    for yi, pi, hi, wi in list(zip(y, p, hh, w))[:20]:
        exact = wi * (mp.mpf(yi) / mp.mpf(pi) ** 2 + (1 - mp.mpf(yi)) / (1 - mp.mpf(pi)) ** 2)
        assert abs(hi - float(exact)) <= 1e-14 * float(exact)
    clamped = F.binary_cross_entropy(torch.tensor([1e-50, 0.0]), torch.tensor([1.0, 1.0]), reduction="none")
    assert clamped.tolist() == [100.0, 100.0]
    ours = loss.value(np.ones(2), np.array([1e-50, 0.0]))
    assert ours[0] == pytest.approx(float(-mp.log(mp.mpf("1e-50"))), rel=1e-15) and ours[1] == math.inf


def test_optax_bce_and_focal():
    """optax.sigmoid_binary_cross_entropy(logits, labels in [0, 1]) is our logit BCE;
    optax.sigmoid_focal_loss(logits, labels in {0, 1}, alpha, gamma) weights by
    alpha for label 1 and 1 - alpha for label 0 (no weighting for alpha=None), as we do;
    jax autodiff of optax's focal gives our grad and hess (moderate logits)."""
    import jax
    import jax.numpy as jnp
    import optax

    rng = np.random.default_rng(4)
    f = rng.normal(0, 5, 200)
    y01 = rng.integers(0, 2, 200).astype(float)
    ysoft = rng.random(200)
    with _enable_x64(jax):
        bce = np.asarray(optax.sigmoid_binary_cross_entropy(jnp.asarray(f), jnp.asarray(ysoft)))
        np.testing.assert_allclose(lossgrad.BinaryCrossEntropy().value(ysoft, f), bce, rtol=1e-13)
        for gamma, alpha in ((2.0, None), (0.5, 0.25), (5.0, 0.75)):
            def one(fi, yi, gamma=gamma, alpha=alpha):
                return optax.sigmoid_focal_loss(fi, yi, alpha=alpha, gamma=gamma)

            val = np.array(jax.vmap(one)(jnp.asarray(f), jnp.asarray(y01)))  # a writable copy
            g = np.asarray(jax.vmap(jax.grad(one))(jnp.asarray(f), jnp.asarray(y01)))
            h = np.asarray(jax.vmap(jax.grad(jax.grad(one)))(jnp.asarray(f), jnp.asarray(y01)))
            v, gg, hh = lossgrad.BinaryFocal(gamma=gamma, alpha=alpha).value_grad_hess(y01, f)
            # optax <= 0.2.5 forms 1 - p by subtraction, up to 1e-9 off for |f| > 9: where it
            # disagrees with ours, the exact value (mpmath) is the reference
            far = np.flatnonzero(~np.isclose(v, val, rtol=1e-12, atol=1e-300))
            val[far] = [_focal_exact(f[i], y01[i], gamma, alpha) for i in far]
            np.testing.assert_allclose(v, val, rtol=1e-12, atol=1e-300)
            np.testing.assert_allclose(gg, g, rtol=1e-11, atol=1e-14)
            np.testing.assert_allclose(hh, h, rtol=1e-10, atol=1e-14)


def test_torch_autograd_focal():
    """A naive torch focal -alpha_t (1 - p_t)^gamma log p_t, differentiated twice by
    autograd, on logits where naive is safe (|f| <= 15)."""
    import torch

    rng = np.random.default_rng(5)
    f = rng.uniform(-15, 15, 300)
    y = rng.integers(0, 2, 300).astype(float)
    for gamma, alpha in ((2.0, None), (0.3, 0.25), (3.0, 0.6)):
        tf, ty = torch.tensor(f, requires_grad=True), torch.tensor(y)
        p = torch.sigmoid(tf)
        pt = ty * p + (1 - ty) * (1 - p)
        at = 1.0 if alpha is None else ty * alpha + (1 - ty) * (1 - alpha)
        val = -at * (1 - pt) ** gamma * torch.log(pt)
        (g,) = torch.autograd.grad(val.sum(), tf, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), tf)
        v, gg, hh = lossgrad.BinaryFocal(gamma=gamma, alpha=alpha).value_grad_hess(y, f)
        # (1 - pt) cancels for pt near 1: naive torch is the less accurate side here
        np.testing.assert_allclose(v, val.detach().numpy(), rtol=1e-8, atol=1e-15)
        np.testing.assert_allclose(gg, g.detach().numpy(), rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(hh, h.numpy(), rtol=1e-6, atol=1e-12)


def test_sklearn_half_binomial_bce():
    """HalfBinomialLoss(y in [0, 1], raw = f): log(1 + e^f) - y f, our logit BCE, with its
    gradient and Hessian; sklearn's value cancels where it is small (absolute error
    about eps |f|), so the value is held to that, derivatives to a few ulps."""
    from sklearn._loss.loss import HalfBinomialLoss

    rng = np.random.default_rng(6)
    f = rng.normal(0, 5, 300)
    y = np.where(rng.random(300) < 0.5, rng.random(300), rng.integers(0, 2, 300).astype(float))
    sk = HalfBinomialLoss()
    g, h = sk.gradient_hessian(y, f)
    loss = lossgrad.BinaryCrossEntropy()
    np.testing.assert_array_less(np.abs(loss.value(y, f) - sk.loss(y, f)), 1e-14 * (1 + np.abs(f)))
    np.testing.assert_allclose(loss.grad(y, f), g, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(loss.hess(y, f), h, rtol=1e-13)


# ------------------------------------------------------------ mpmath, extreme grid

GRID = [s * v for v in (1e-8, 1.0, 30.0, 700.0, 1e4) for s in (1.0, -1.0)]
TINY = np.finfo(float).tiny


def _check(ours, refs, where):
    for o, r, what in zip(ours, refs, "vgh"):
        r = float(r)
        if abs(r) >= TINY:
            assert abs(float(o) - r) <= 1e-14 * abs(r), (where, what, float(o), r)
        else:
            assert abs(float(o) - r) <= 1e-300, (where, what, float(o), r)


def _dps(f):
    return 60 + int(abs(f) / 2)  # 50 digits after e^{|f|} has been formed exactly


@pytest.mark.parametrize("pw,ls", [(1.0, 0.0), (3.0, 0.0), (0.5, 0.1)])
def test_mpmath_bce_extreme_grid(pw, ls):
    loss = lossgrad.BinaryCrossEntropy(pos_weight=pw, label_smoothing=ls)
    for y in (0.0, 1.0, 0.3):
        for f in GRID:
            with mp.workdps(_dps(f)):
                t = mp.mpf(y) * (1 - mp.mpf(ls)) + mp.mpf(ls) / 2
                sp, sm = 1 / (1 + mp.exp(-mp.mpf(f))), 1 / (1 + mp.exp(mp.mpf(f)))
                ref = (-(pw * t * mp.log(sp) + (1 - t) * mp.log(sm)), -pw * t * sm + (1 - t) * sp,
                       sp * sm * (pw * t + 1 - t))
            _check(loss.value_grad_hess(y, f), ref, (y, f))


@pytest.mark.parametrize("gamma", [0.0, 0.3, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, 0.25])
def test_mpmath_focal_extreme_grid(gamma, alpha):
    loss = lossgrad.BinaryFocal(gamma=gamma, alpha=alpha)
    for y in (0.0, 1.0):
        for f in GRID:
            with mp.workdps(_dps(f)):
                z = mp.mpf(f) * (1 if y else -1)
                p, q = 1 / (1 + mp.exp(-z)), 1 / (1 + mp.exp(z))
                lp, at = mp.log(p), 1 if alpha is None else (alpha if y else 1 - alpha)
                a = q**gamma if gamma else mp.mpf(1)
                ref = (-at * a * lp, (1 if y else -1) * at * a * (gamma * p * lp - q),
                       at * a * p * (gamma * lp * (q - gamma * p) + q * (2 * gamma + 1)))
            _check(loss.value_grad_hess(y, f), ref, (y, f))


@pytest.mark.parametrize("loss", [pytest.param(lossgrad.BinaryFocal(gamma=g), id=f"focal{g}") for g in
                                  (0.0, 0.01, 0.3, 0.5, 1.0, 2.0, 7.5)] +
                         [pytest.param(lossgrad.BinaryCrossEntropy(pos_weight=2.0, label_smoothing=0.1), id="bce")])
def test_finite_and_dtype_preserving_at_extreme_logits(loss):
    for dtype, mags in ((np.float64, (80.0, 700.0, 1e4)), (np.float32, (80.0, 200.0, 1e3))):
        f = np.array([s * m for m in mags for s in (1, -1)], dtype=dtype)
        for y in (np.ones_like(f), np.zeros_like(f)):
            for o in loss.value_grad_hess(y, f):
                assert o.dtype == dtype and np.all(np.isfinite(o))


# ------------------------------------------------------------ declared properties, measured

F = np.linspace(-60.0, 40.0, 200_001)


@pytest.mark.parametrize("loss", FOCAL_INSTANCES + [pytest.param(lossgrad.BinaryFocal(gamma=0.05), id="g0.05")])
def test_focal_constants_convexity_and_calibration(loss):
    p = loss.props
    sups = []
    for y in (0.0, 1.0):
        g, h = loss.grad_hess(np.full_like(F, y), F)
        sups.append((np.abs(g).max(), np.abs(h).max(), h.min()))
    lip, smooth, hmin = max(s[0] for s in sups), max(s[1] for s in sups), min(s[2] for s in sups)
    assert lip <= p.lipschitz <= lip * (1 + 1e-6)
    assert smooth <= p.smoothness <= smooth * (1 + 1e-6)
    assert p.convex == (hmin >= 0.0)
    if loss.gamma > 0:  # non-convex, and steeper than the (alpha-weighted) logistic loss
        assert hmin < 0 and p.lipschitz > (1.0 if loss.alpha is None else max(loss.alpha, 1 - loss.alpha))
    _assert_calibration(loss, np.linspace(-20, 20, 40_001))


def _assert_calibration(loss, f):
    pos, neg = loss.value(np.ones_like(f), f), loss.value(np.zeros_like(f), f)
    gaps = []
    for eta in (0.05, 0.2, 0.4, 0.45, 0.55, 0.6, 0.8, 0.95):
        c = eta * pos + (1 - eta) * neg
        decision = f if getattr(loss, "from_logits", True) else f - 0.5
        gaps.append(c[decision * (2 * eta - 1) <= 0].min() - c.min())
    assert loss.props.class_calibrated == bool(min(gaps) > 1e-6)


@pytest.mark.parametrize("loss", BCE_INSTANCES + [pytest.param(lossgrad.BinaryCrossEntropy(label_smoothing=1.0),
                                                               id="ls1")])
def test_bce_constants_convexity_and_calibration(loss):
    p = loss.props
    ys = np.linspace(0.0, 1.0, 11)
    if loss.from_logits:
        g = np.array([np.abs(loss.grad(np.full_like(F, y), F)).max() for y in ys])
        h = np.array([loss.hess(np.full_like(F, y), F).max() for y in ys])
        F30 = F[np.abs(F) < 30]
        hmin = min(loss.hess(np.full_like(F30, y), F30).min() for y in ys)
        assert g.max() <= p.lipschitz <= g.max() * (1 + 1e-6)
        assert h.max() <= p.smoothness <= h.max() * (1 + 1e-6)
        assert p.strictly_convex and hmin > 0
        _assert_calibration(loss, np.linspace(-20, 20, 40_001))
    else:
        pp = np.linspace(0.0, 1.0, 100_001)
        hmin = min(loss.hess(np.full_like(pp, y), pp).min() for y in ys)
        assert p.lipschitz is None and p.smoothness is None
        assert 0 < p.strong_convexity <= hmin * (1 + 1e-12) and hmin <= p.strong_convexity * (1 + 1e-6)
        _assert_calibration(loss, pp)


# ------------------------------------------------------------ namespaces and bad input


@pytest.mark.parametrize("loss", ALL)
def test_torch_and_jax_inputs_match_numpy(loss):
    import jax.numpy as jnp
    import torch

    y, f = _inputs(loss, 60, seed=7)
    ref = loss.value_grad_hess(y, f)
    ref32 = loss.value_grad_hess(y.astype(np.float32), f.astype(np.float32))
    tout = loss.value_grad_hess(torch.tensor(y), torch.tensor(f))
    jout = loss.value_grad_hess(jnp.asarray(y, dtype=jnp.float32), jnp.asarray(f, dtype=jnp.float32))
    for r, t, r32, j in zip(ref, tout, ref32, jout):
        assert t.dtype == torch.float64 and j.dtype == jnp.float32 and r32.dtype == np.float32
        np.testing.assert_allclose(t.numpy(), r, rtol=1e-14, atol=1e-300)
        np.testing.assert_allclose(np.asarray(j), r32, rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("params,y,f,arg", [
    ({}, 1.5, 0.0, "y_true"),
    ({}, -1.0, 0.0, "y_true"),
    ({}, math.nan, 0.0, "y_true"),
    ({"from_logits": False}, 1.0, -0.1, "y_pred"),
    ({"from_logits": False}, 1.0, 1.1, "y_pred"),
    ({"from_logits": False}, 2.0, 0.5, "y_true"),
    ({}, 1.0, math.inf, "y_pred"),
])
def test_bce_bad_input(params, y, f, arg):
    with pytest.raises(ValueError, match=arg):
        lossgrad.BinaryCrossEntropy(**params).value(np.array([y]), np.array([f]))


def test_focal_bad_labels():
    for bad in ([0.5, 1.0], [2.0, 1.0], [-1.0, 0.0]):
        with pytest.raises(ValueError, match="y_true"):
            lossgrad.BinaryFocal().value(np.array(bad), np.zeros(2))


@pytest.mark.parametrize("cls,param,bad,exc", [
    (lossgrad.BinaryCrossEntropy, "pos_weight", 0.0, ValueError),
    (lossgrad.BinaryCrossEntropy, "pos_weight", -2.0, ValueError),
    (lossgrad.BinaryCrossEntropy, "label_smoothing", 1.5, ValueError),
    (lossgrad.BinaryCrossEntropy, "label_smoothing", -0.1, ValueError),
    (lossgrad.BinaryCrossEntropy, "from_logits", "yes", TypeError),
    (lossgrad.BinaryCrossEntropy, "from_logits", 1, TypeError),
    (lossgrad.BinaryFocal, "gamma", -1.0, ValueError),
    (lossgrad.BinaryFocal, "gamma", math.inf, ValueError),
    (lossgrad.BinaryFocal, "alpha", 1.5, ValueError),
    (lossgrad.BinaryFocal, "alpha", "0.25", TypeError),
])
def test_bad_parameters_name_the_argument(cls, param, bad, exc):
    with pytest.raises(exc, match=param):
        cls(**{param: bad})


def test_inputs_not_mutated():
    y = np.array([1.0, 0.0, 0.3])
    p = np.array([0.0, 0.5, 1.0])
    y0, p0 = y.copy(), p.copy()
    lossgrad.BinaryCrossEntropy(from_logits=False, label_smoothing=0.1).value_grad_hess(y, p)
    lossgrad.BinaryFocal(alpha=0.3).value_grad_hess(y.round(), p)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(p, p0)
