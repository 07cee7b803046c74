"""The public ``out=`` of pointwise losses: results written into the caller's arrays.

The buffers come back (the same objects), hold what the allocating call returns, work
on both paths (fused kernel; reference with ``use_kernels=False``), under a scalar
multiple, with weights, and reject unusable buffers with an error naming ``out``.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossgrad

N_LARGE = 200_000  # above the kernel threshold: both calls take the same kernel
OPS = ("value", "grad", "hess", "value_grad", "grad_hess", "value_grad_hess")
LOSSES = [("squared_error", {}), ("huber", {"delta": 0.7}), ("logistic", {}), ("poisson", {}), ("tweedie", {"power": 1.5}),
          ("quantile", {"tau": 0.3})]


def _data(name, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n)
    if name == "logistic":
        y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    elif name in ("poisson", "tweedie"):
        y = rng.poisson(2.0, n).astype(float)
    else:
        y = f + rng.normal(size=n)
    return y.astype(dtype), f.astype(dtype), rng.uniform(0.5, 2.0, n).astype(dtype)


def _buffers(op, f):
    k = len(op.split("_"))
    bufs = tuple(np.full_like(f, np.nan) for _ in range(k))
    return bufs[0] if k == 1 else bufs


@pytest.mark.parametrize("name,params", LOSSES, ids=[n for n, _ in LOSSES])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("op", OPS)
def test_out_holds_the_allocating_result_and_is_returned(name, params, dtype, op):
    loss = lossgrad.get(name, **params)
    y, f, w = _data(name, N_LARGE, dtype)
    expected = getattr(loss, op)(y, f, w)
    out = _buffers(op, f)
    got = getattr(loss, op)(y, f, w, out=out)
    assert got is out
    for e, g in zip(expected if isinstance(expected, tuple) else (expected,), out if isinstance(out, tuple) else (out,)):
        np.testing.assert_array_equal(g, e)  # the same kernel: bit for bit


@pytest.mark.parametrize("use_kernels", [True, False])
@pytest.mark.parametrize("n", [7, N_LARGE])
def test_out_on_small_arrays_and_on_the_reference_path(use_kernels, n):
    loss = lossgrad.Huber(delta=0.5)
    y, f, w = _data("huber", n, np.float64, seed=1)
    with lossgrad.config_context(use_kernels=False):
        ref = loss.value_grad_hess(y, f, w)
    out = tuple(np.empty_like(f) for _ in range(3))
    with lossgrad.config_context(use_kernels=use_kernels):
        got = loss.value_grad_hess(y, f, w, out=out)
    assert all(g is o for g, o in zip(got, out))
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-14, atol=1e-300)


def test_out_under_a_scalar_multiple():
    loss = 2.5 * lossgrad.get("logistic")
    y, f, _ = _data("logistic", N_LARGE, np.float64)
    g, h = np.empty_like(f), np.empty_like(f)
    got = loss.grad_hess(y, f, out=(g, h))
    assert got[0] is g and got[1] is h
    exp_g, exp_h = loss.grad_hess(y, f)
    np.testing.assert_allclose(g, exp_g, rtol=1e-15)
    np.testing.assert_allclose(h, exp_h, rtol=1e-15)


def test_out_keeps_input_validation():
    y, f, _ = _data("poisson", N_LARGE, np.float64)
    y[3] = -1.0
    with pytest.raises(ValueError, match="y_true"):
        lossgrad.get("poisson").grad(y, f, out=np.empty_like(f))


def test_unusable_out_buffers_raise_clear_errors():
    loss = lossgrad.SquaredError()
    y, f, _ = _data("squared_error", 64, np.float64)
    with pytest.raises(TypeError, match=r"out must be a tuple of 2 arrays"):
        loss.value_grad(y, f, out=np.empty_like(f))
    with pytest.raises(TypeError, match=r"out must be a tuple of 2 arrays .* of length 3"):
        loss.value_grad(y, f, out=(np.empty_like(f),) * 3)
    with pytest.raises(ValueError, match="out must hold .* shape \\(64,\\) and dtype float64"):
        loss.grad(y, f, out=np.empty(63))
    with pytest.raises(ValueError, match="out must hold"):
        loss.grad(y, f, out=np.empty(64, np.float32))
    with pytest.raises(ValueError, match="out must hold"):
        loss.grad(y, f, out=np.empty(128)[::2])
    with pytest.raises(ValueError, match="out must not overlap y_pred"):
        loss.grad(y, f, out=f)
    with pytest.raises(TypeError, match="out= needs y_pred as a float32 or float64 NumPy array, got list"):
        loss.grad(list(y), list(f), out=np.empty(64))
