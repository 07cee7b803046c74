"""The fused pointwise kernels (lossgrad.kernels) against the array-API reference.

Every registered pointwise loss and parameter variant, float32 and float64, with and
without sample_weight, every op-set of the public API: the kernel path (forced on
small arrays with ``kernel_threshold=0``) must equal the reference path
(``use_kernels=False``) to a few ulps, and exactly in float64 for the losses whose
kernel performs the reference's own arithmetic (no transcendental function).  Bad
input raises the reference's own error; ``assume_valid`` skips the checks; dispatch
happens above the threshold only.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import lossgrad
from lossgrad import kernels
from lossgrad._registry import catalog
from lossgrad.kernels._table import F_UNIT, Y_MARGIN, Y_NONNEG, Y_POS, Y_UNIT

POINTWISE = catalog(shape="pointwise")
CASES = [(e.name, i, v) for e in POINTWISE for i, v in enumerate(e.variants)]
OPSETS = (("value",), ("grad",), ("hess",), ("value", "grad"), ("grad", "hess"), ("value", "grad", "hess"))
METHOD = {
    ("value",): "value", ("grad",): "grad", ("hess",): "hess", ("value", "grad"): "value_grad",
    ("grad", "hess"): "grad_hess", ("value", "grad", "hess"): "value_grad_hess",
}
# Kernels doing exactly the reference's float64 arithmetic (+ - * / and comparisons only).
EXACT = {
    "squared_error", "absolute_error", "huber", "smooth_l1", "epsilon_insensitive", "squared_epsilon_insensitive",
    "quantile", "expectile", "huber_quantile", "tukey_biweight", "hampel", "hinge", "squared_hinge",
    "smoothed_hinge", "modified_huber", "perceptron", "zero_one",
}


def test_every_registered_pointwise_loss_has_a_kernel():
    missing = [e.name for e in POINTWISE if e.cls not in kernels.POINTWISE]
    assert missing == []
    for e in POINTWISE:
        for inst in e.instances():
            for dt in (np.float32, np.float64):
                assert kernels.spec_for(inst, dt) is not None, (e.name, inst)
    assert set(kernels.VALUE_ONLY) <= set(kernels.POINTWISE)


def _inputs(loss, n=240, seed=0):
    rng = np.random.default_rng(seed)
    y, f = loss._example_inputs(rng, n)
    y, f = np.array(y, float), np.array(f, float)
    # put a few predictions exactly on the declared kinks (one-sided conventions)
    inexact32 = np.zeros(n, bool)
    for j, kink in enumerate(loss.kinks):
        idx = np.arange(j, n, 37)
        f[idx] = loss._from_natural(y[idx], np.full(idx.size, kink.at))
        inexact32[idx] = True
    w = rng.uniform(0.0, 3.0, n)
    w[::11] = 0.0
    return y, f, w, inexact32


def _both(loss, method, y, f, w):
    with lossgrad.config_context(use_kernels=False):
        ref = getattr(loss, method)(y, f, sample_weight=w)
    with lossgrad.config_context(kernel_threshold=0):
        ker = getattr(loss, method)(y, f, sample_weight=w)
    return (ref,) if not isinstance(ref, tuple) else ref, (ker,) if not isinstance(ker, tuple) else ker


def _close(name, r, k, dt):
    assert k.dtype == r.dtype == dt and k.shape == r.shape
    if dt == np.float64 and name in EXACT:
        np.testing.assert_array_equal(k, r)
        return
    finite = np.isfinite(r)
    np.testing.assert_array_equal(np.isfinite(k), finite)
    np.testing.assert_array_equal(k[~finite], r[~finite])
    eps = float(np.finfo(dt).eps)
    scale = float(np.max(np.abs(r[finite]), initial=1.0))
    # a few ulps of each value, plus a few ulps of the largest term where terms cancel
    np.testing.assert_allclose(k[finite], r[finite], rtol=16 * eps, atol=16 * eps * scale)


@pytest.mark.parametrize("name,i,params", CASES, ids=[f"{n}-{i}" for n, i, _ in CASES])
@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_kernel_equals_reference(name, i, params, dt):
    loss = lossgrad.get(name, **params)
    y, f, w, inexact32 = _inputs(loss)
    y, f, w = y.astype(dt), f.astype(dt), w.astype(dt)
    # At a kink, float32 is ambiguous: the reference rounds the natural variable (r = f - y)
    # and the kink to float32 before comparing them, the kernel compares them exactly in
    # float64, so each may take a different one-sided limit.  Kink points are compared
    # in float64 (exactly) only.
    keep = ~inexact32 if dt == np.float32 else slice(None)
    opsets = OPSETS if loss.props.has_grad else (("value",),)
    for ops in opsets:
        for weights in (None, w):
            ref, ker = _both(loss, METHOD[ops], y, f, weights)
            assert len(ref) == len(ker) == len(ops)
            for r, k in zip(ref, ker):
                _close(name, r[keep], k[keep], dt)


EXTREME = [("tweedie", {"power": q}) for q in (-1.0, 1.5, 2.5, 3.0)] + [
    ("poisson", {}), ("gamma", {}), ("logistic", {}), ("exponential", {}), ("binary_cross_entropy", {}),
]


@pytest.mark.parametrize("name,params", EXTREME, ids=[f"{n}-{p}" for n, p in EXTREME])
@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_kernel_equals_reference_at_extremes(name, params, dt):
    """Predictions up to and past the overflow range, targets from tiny to huge, scattered
    among ordinary lanes: blocks of the fused loop where a fast path (tweedie's factored
    form) is left and the block recomputed, infinities where the reference has them."""
    loss = lossgrad.get(name, **params)
    big = float(np.log(np.finfo(dt).max))
    f_vals = np.array([0.0, 0.3, -0.9, 1.5, -4.0, 30.0, -30.0, 0.6 * big, -0.6 * big, 0.97 * big, -0.97 * big,
                       1.2 * big, -1.2 * big, 2.5 * big, -2.5 * big])
    if name in ("logistic", "exponential"):
        y_vals = np.array([-1.0, 1.0])
    elif name == "binary_cross_entropy":
        y_vals = np.array([0.0, 0.25, 1.0])
    else:
        q = params.get("power", {"poisson": 1.0, "gamma": 2.0}.get(name))
        lo = 0.0 if 1 <= q < 2 else 1e-30
        y_vals = np.array([lo, 1e-30, 0.5, 3.0, 1e10, 1e30, 0.5 * float(np.finfo(dt).max)])
        if q < 1:
            y_vals = np.concatenate([y_vals, -y_vals[1:]])
    yy, ff = (a.ravel() for a in np.meshgrid(y_vals, f_vals))
    rng = np.random.default_rng(7)
    y_ok, f_ok = loss._example_inputs(rng, 3000)
    y = np.concatenate([np.asarray(y_ok, float), yy])
    f = np.concatenate([np.asarray(f_ok, float), ff])
    order = rng.permutation(y.size)
    order = np.concatenate([order[order < 1500], order[order >= 1500]])  # first blocks stay ordinary
    y, f = y[order].astype(dt), f[order].astype(dt)
    with np.errstate(all="ignore"):
        ref, ker = _both(loss, "value_grad_hess", y, f, None)
    for r, k in zip(ref, ker):
        _close(name, r, k, dt)


@pytest.mark.parametrize("name", ["huber", "logistic", "tweedie"])
def test_threaded_chunks_and_shapes(name):
    """Above 2^17 elements the array is cut into per-core chunks; 2-d shapes are kept."""
    loss = lossgrad.get(name)
    y, f, w, _ = _inputs(loss, n=(1 << 17) + 1234, seed=1)
    y, f, w = y.reshape(2, -1), f.reshape(2, -1), w.reshape(2, -1)
    ref, ker = _both(loss, "value_grad_hess", y, f, w)
    for r, k in zip(ref, ker):
        _close(name, r, k, np.float64)


def _bad_target(spec):
    return {Y_NONNEG: -1.0, Y_POS: 0.0, Y_UNIT: 1.5, Y_MARGIN: 0.5}.get(spec.ydom)


def _errors(loss, y, f, w):
    msgs = []
    for ctx in ({"use_kernels": False}, {"kernel_threshold": 0}):
        with lossgrad.config_context(**ctx), pytest.raises(ValueError) as info:
            loss.grad(y, f, sample_weight=w) if loss.props.has_grad else loss.value(y, f, sample_weight=w)
        msgs.append(str(info.value))
    return msgs


@pytest.mark.parametrize("name", [e.name for e in POINTWISE])
def test_kernel_raises_the_reference_errors(name):
    loss = lossgrad.get(name)
    spec = kernels.spec_for(loss, np.float64)
    y, f, w, _ = _inputs(loss, n=64)
    cases = []
    for arr, value in (("f", np.nan), ("f", np.inf), ("y", np.nan), ("y", -np.inf), ("w", np.nan), ("w", -1.0)):
        yy, ff, ww = y.copy(), f.copy(), w.copy()
        {"y": yy, "f": ff, "w": ww}[arr][[3, 9]] = value
        cases.append((yy, ff, ww))
    bad = _bad_target(spec)
    if bad is not None:
        yy = y.copy()
        yy[5] = bad
        cases.append((yy, f, w))
    if spec.fdom == F_UNIT:
        ff = f.copy()
        ff[7] = 1.5
        cases.append((y, ff, w))
    if spec.ydom == Y_MARGIN:  # mixing the {-1, +1} and {0, 1} encodings
        yy = np.where(y > 0, 1.0, -1.0)
        yy[0] = 0.0
        cases.append((yy, f, w))
    for yy, ff, ww in cases:
        ref_msg, ker_msg = _errors(loss, yy, ff, ww)
        assert ker_msg == ref_msg
    # assume_valid skips every check (garbage in, garbage out, no error)
    for yy, ff, ww in cases:
        with lossgrad.config_context(kernel_threshold=0, assume_valid=True):
            out = loss.value(yy, ff, sample_weight=ww)
        assert out.shape == ff.shape


def test_dispatch_happens_above_the_threshold_only(monkeypatch):
    calls = []
    real = kernels.evaluate_pointwise

    def spy(*args, **kw):
        out = real(*args, **kw)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(kernels, "evaluate_pointwise", spy)
    loss = lossgrad.Huber()
    y = np.zeros(1000)
    f = np.linspace(-3, 3, 1000)
    with lossgrad.config_context(kernel_threshold=1000):
        loss.grad(y, f)
        assert calls == [True]
        loss.grad(y[:999], f[:999])
        assert calls == [True]
    with lossgrad.config_context(kernel_threshold=10, use_kernels=False):
        loss.grad(y, f)
        assert calls == [True]
    with lossgrad.config_context(kernel_threshold=10):
        loss.grad(list(y), list(f))  # not a NumPy y_pred: the reference
        (2.0 * loss).grad_hess(y, f)  # Scaled forwards to the kernel
        assert calls == [True, True]
    assert lossgrad.get_config().kernel_threshold == 10_000


def test_inputs_not_mutated_and_scalar_weight():
    loss = lossgrad.Logistic()
    y, f, w, _ = _inputs(loss, n=100)
    y0, f0 = y.copy(), f.copy()
    with lossgrad.config_context(kernel_threshold=0):
        g1 = loss.grad(y, f, sample_weight=2.0)
    with lossgrad.config_context(use_kernels=False):
        g2 = loss.grad(y, f, sample_weight=2.0)
    np.testing.assert_allclose(g1, g2, rtol=1e-15)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(f, f0)
    with lossgrad.config_context(kernel_threshold=0), pytest.raises(ValueError, match=re.escape("sample_weight must have shape")):
        loss.grad(y, f, sample_weight=np.ones(3))


def test_out_buffers_are_written_in_place():
    loss = lossgrad.get("tweedie", power=1.5)
    y, f, w, _ = _inputs(loss, n=1000, seed=4)
    g, h = np.full(1000, np.nan), np.full(1000, np.nan)
    res = kernels.evaluate_pointwise(loss, ("grad", "hess"), y, f, w, out=(g, h))
    assert res[0] is g and res[1] is h
    with lossgrad.config_context(use_kernels=False):
        rg, rh = loss.grad_hess(y, f, sample_weight=w)
    _close("tweedie", rg, g, np.float64)
    _close("tweedie", rh, h, np.float64)
    with pytest.raises(ValueError, match="out must hold"):
        kernels.evaluate_pointwise(loss, ("grad",), y, f, None, out=(np.empty(999),))
    with pytest.raises(ValueError, match="out must hold"):
        kernels.evaluate_pointwise(loss, ("grad",), y, f, None, out=(np.empty(1000, np.float32),))
    with pytest.raises(TypeError, match="out must be a tuple of 2"):
        kernels.evaluate_pointwise(loss, ("grad", "hess"), y, f, None, out=(g,))
    with pytest.raises(ValueError, match="overlap"):
        kernels.evaluate_pointwise(loss, ("grad",), y, f, None, out=(f,))


def test_plain_numpy_fast_path_matches_the_coercing_path():
    """Same-dtype NumPy arrays skip the namespace coercion; every other input form (int
    targets, a scalar target, Fortran order, float32 prediction with float64 targets)
    still reaches the kernel through it, and all give the same numbers."""
    rng = np.random.default_rng(4)
    f = rng.normal(size=(300, 250))
    y = np.round(rng.normal(size=(300, 250)) * 3)
    loss = lossgrad.Huber(delta=1.5)
    assert kernels._plain(y, f) and not kernels._plain(y.astype(np.int64), f) and not kernels._plain(y, f[:0])
    ref = loss.value_grad(y, f)
    for yy, ff in ((y.astype(np.int64), f), (np.asfortranarray(y), np.asfortranarray(f)), (y.tolist(), f)):
        for a, b in zip(loss.value_grad(yy, ff), ref):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loss.grad(2.0, f), loss.grad(np.full_like(f, 2.0), f))
    f32 = f.astype(np.float32)
    assert not kernels._plain(y, f32)
    g = loss.grad(y, f32)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, loss.grad(y.astype(np.float32), f32))
    bad = y.copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match="y_true"):
        loss.value(bad, f)
