"""The per-call fast paths: plain NumPy inputs skip the array-namespace coercion, a loss
resolves its kernel once (a cached plan), ``loss(y, f)`` reduces the kernel's values.

Each must give the numbers and the errors of the general path it short-cuts.
"""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

import lossgrad
from lossgrad import _validation as V
from lossgrad import kernels
from lossgrad._core import NotDifferentiableError


def _pair(n=500, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n).astype(dtype)
    return y, (y + rng.normal(0, 2, n)).astype(dtype)


def test_plain_numpy_coercion_equals_the_array_api_path():
    """as_prediction / as_target return what the namespace machinery returns, and raise
    the same errors, for the NumPy forms their fast path takes."""
    rng = np.random.default_rng(1)
    f = rng.normal(size=(4, 3))
    xp, g, was_scalar = V.as_prediction(f)
    assert xp is V.NUMPY and g is f and was_scalar is False
    for y in (rng.integers(0, 3, (4, 3)), rng.normal(size=(4, 3)).astype(np.float32), np.asarray(2.0)):
        fast = V.as_target(y, xp, f)
        slow = V.as_target(y.tolist() if y.ndim else float(y), xp, f)
        assert fast.dtype == slow.dtype == f.dtype and fast.shape == slow.shape == f.shape
        np.testing.assert_array_equal(fast, slow)
    with pytest.raises(ValueError, match=re.escape("y_true and y_pred must have the same shape; got (3,) and (4, 3)")):
        V.as_target(np.ones(3), xp, f)
    with pytest.raises(ValueError, match="y_pred is empty"):
        V.as_prediction(np.ones((0, 3)))
    with pytest.raises(ValueError, match="y_pred must be 1-dimensional"):
        V.as_prediction(f, ndim=1)
    with pytest.raises(TypeError, match="y_true must be numeric"):
        V.as_target(np.array(["a"] * 12).reshape(4, 3), xp, f)
    with pytest.raises(TypeError, match="must be real"):
        V.as_target(np.ones((4, 3), complex), xp, f)


def test_kernel_plan_is_resolved_once_and_stays_out_of_pickles():
    loss = lossgrad.Huber(delta=0.7)
    y, f = _pair()
    with lossgrad.config_context(kernel_threshold=0):
        g = loss.grad(y, f)
    plan = kernels.plan_for(loss, f.dtype)
    assert plan is kernels.plan_for(loss, f.dtype)  # cached in the instance
    assert plan.params[0] == 0.7 and ("grad", "hess") in plan.serves
    assert kernels.plan_for(loss, np.dtype(np.float32)) is not plan
    state = pickle.dumps(loss)
    assert b"_cached_" not in state
    clone = pickle.loads(state)
    assert clone == loss and "_cached_kernel_plans" not in clone.__dict__
    with lossgrad.config_context(kernel_threshold=0):
        np.testing.assert_array_equal(clone.grad(y, f), g)
    # a changed parameter is a new instance with a plan of its own
    import dataclasses

    other = dataclasses.replace(loss, delta=2.0)
    assert kernels.plan_for(other, f.dtype).params[0] == 2.0


def test_a_value_only_kernel_never_serves_a_derivative():
    loss = lossgrad.get("zero_one")
    y, f = _pair()
    y = np.sign(y)
    plan = kernels.plan_for(loss, f.dtype)
    assert list(plan.serves) == [("value",)]
    with lossgrad.config_context(kernel_threshold=0):
        assert loss.value(y, f).shape == f.shape
        with pytest.raises(NotDifferentiableError):
            loss.grad(y, f)
        with pytest.raises(NotDifferentiableError):
            loss.value_grad(y, f, out=(np.empty_like(f), np.empty_like(f)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_aggregated_call_reduces_the_kernel_values(monkeypatch, dtype, reduction):
    """``loss(y, f)`` goes through the fused kernel and equals the reference reduction."""
    calls = []
    real = kernels.evaluate_pointwise
    monkeypatch.setattr(kernels, "evaluate_pointwise", lambda *a, **k: calls.append(1) or real(*a, **k))
    loss = lossgrad.get("logistic")
    y, f = _pair(dtype=dtype)
    y = np.where(y > 0, 1.0, -1.0).astype(dtype)
    w = np.linspace(0.0, 2.0, f.size).astype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    for sw in (None, w, 0.5):
        with lossgrad.config_context(use_kernels=False):
            ref = loss(y, f, sample_weight=sw, reduction=reduction)
        calls.clear()
        with lossgrad.config_context(kernel_threshold=0):
            got = loss(y, f, sample_weight=sw, reduction=reduction)
        assert calls == [1]
        assert np.asarray(got).dtype == np.asarray(ref).dtype and np.shape(got) == np.shape(ref)
        np.testing.assert_allclose(got, ref, rtol=rtol)
    with lossgrad.config_context(kernel_threshold=0):
        if reduction == "mean":
            with pytest.raises(ValueError, match="sample_weight sums to zero"):
                loss(y, f, sample_weight=np.zeros_like(f), reduction=reduction)
        bad = f.copy()
        bad[3] = np.nan
        with pytest.raises(ValueError, match=re.escape("y_pred contains 1 NaN or infinite value(s)")):
            loss(y, bad, reduction=reduction)


def test_out_buffers_through_the_fast_path_are_checked_and_returned():
    loss = lossgrad.get("poisson")
    rng = np.random.default_rng(3)
    f = rng.normal(size=(20, 30))
    y = rng.poisson(2.0, size=(20, 30)).astype(float)
    g, h = np.empty_like(f), np.empty_like(f)
    res = loss.grad_hess(y, f, out=(g, h))
    assert res[0] is g and res[1] is h
    with lossgrad.config_context(use_kernels=False):
        rg, rh = loss.grad_hess(y, f)
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
        np.testing.assert_allclose(g, rg, rtol=1e-14)
    else:  # g = exp(f) - y: NumPy 1's exp and the kernel's may differ by an ulp of exp(f), which
        # the cancellation makes large relative to g (NumPy 1.26.4: 3.7e-14)
        np.testing.assert_array_less(np.abs(g - rg), 1e-14 * np.abs(rg) + 4 * np.spacing(np.exp(f)))
    np.testing.assert_allclose(h, rh, rtol=1e-14)
    with pytest.raises(ValueError, match="out must hold"):
        loss.grad(y, f, out=np.empty(600))  # flat, not y_pred's shape
    with pytest.raises(ValueError, match="overlap"):
        loss.grad(y, f, out=f)


def test_cross_entropy_small_batch_path_equals_the_reference():
    """Row kernels below 2^17 elements run in the calling thread without the split; weights,
    class weights (converted once per loss) and label smoothing as in the threaded path."""
    rng = np.random.default_rng(5)
    f = rng.normal(0, 3, (32, 10))
    y = rng.integers(0, 10, 32)
    w = rng.uniform(0, 2, 32)
    loss = lossgrad.CrossEntropy(weight=np.linspace(0.5, 2.0, 10), label_smoothing=0.1)
    with lossgrad.config_context(use_kernels=False):
        rv, rg = loss.value_grad(y, f, sample_weight=w)
    for _ in range(2):  # the second call uses the cached class weights
        with lossgrad.config_context(kernel_threshold=0):
            v, g = loss.value_grad(y, f, sample_weight=w)
        np.testing.assert_allclose(v, rv, rtol=1e-13)
        np.testing.assert_allclose(g, rg, rtol=1e-12, atol=1e-15)
    assert b"_cached_" not in pickle.dumps(loss)


def test_fit_runs_small_batches_through_the_kernels_when_an_epoch_is_large(monkeypatch):
    """nn.fit: an epoch of at least kernel_threshold output elements pays for the kernels,
    so every batch uses them; a smaller epoch keeps the reference; same training either way."""
    from lossgrad import nn

    sizes = []
    real = kernels.evaluate_pointwise

    def spy(loss, ops, y_true, y_pred, *a, **k):
        out = real(loss, ops, y_true, y_pred, *a, **k)
        if out is not None:
            sizes.append(y_pred.size)
        return out

    monkeypatch.setattr(kernels, "evaluate_pointwise", spy)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(0, 0.1, 2000)
    losses = {}
    for threshold, expect_batches in ((2000, True), (2001, False)):
        sizes.clear()
        net = nn.Sequential(nn.Dense(3, 1, seed=0))
        with lossgrad.config_context(kernel_threshold=threshold):
            losses[threshold] = nn.fit(net, "huber", X, y, epochs=2, batch_size=50, seed=0).loss
        assert (50 in sizes) is expect_batches, (threshold, sizes[:5])
    np.testing.assert_allclose(losses[2000], losses[2001], rtol=1e-12)
