"""The contract every pointwise loss keeps, checked over the whole registry (every variant,
plus a Scaled wrapper): derivatives against lossgrad.numdiff, joint methods, weights,
reductions, dtypes, scalars, broadcasting, pickling, no mutation, and NumPy = PyTorch = JAX."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import lossgrad
from lossgrad import numdiff

N = 48


def _inputs(loss, n=N, seed=0):
    y, f = loss._example_inputs(np.random.default_rng(seed), n)
    return np.asarray(y, dtype=float), np.asarray(f, dtype=float)


def _away_from_kinks(loss, y, f, radius=0.05):
    t = loss._natural(y, f)
    keep = np.ones(f.shape, dtype=bool)
    for k in loss.kinks:
        keep &= np.abs(t - k.at) > radius * max(1.0, abs(k.at))
    return y[keep], f[keep]


def _derivative_matches(loss, what, of):
    y, f = _away_from_kinks(loss, *_inputs(loss))
    assert f.size >= N // 4
    base = getattr(loss, of)
    numeric, err = numdiff.derivative(lambda ff: base(y, ff), f, method="richardson", return_error=True, step=2e-3 * np.maximum(1.0, np.abs(f)))
    analytic = getattr(loss, what)(y, f)
    # tolerance: 1e-6 relative, plus the extrapolation's own error estimate, plus round-off
    # of differencing values of size |of| (a derivative can be far smaller than its function)
    tol = 1e-6 * np.abs(numeric) + 10 * err + 1e-9 * np.abs(base(y, f))
    bad = ~(np.abs(analytic - numeric) <= tol)
    assert not np.any(bad), (what, y[bad][:3], f[bad][:3], analytic[bad][:3], numeric[bad][:3])


def test_grad_matches_numdiff(pointwise_loss):
    loss = pointwise_loss
    if not loss.props.has_grad:
        y, f = _inputs(loss)
        with pytest.raises(lossgrad.NotDifferentiableError):
            loss.grad(y, f)
        return
    _derivative_matches(loss, "grad", "value")


def test_hess_matches_numdiff(pointwise_loss):
    loss = pointwise_loss
    if not loss.props.has_hess:
        y, f = _inputs(loss)
        with pytest.raises(lossgrad.NotDifferentiableError):
            loss.hess(y, f)
        return
    _derivative_matches(loss, "hess", "grad")


def test_joint_methods_equal_separate_calls(pointwise_loss):
    loss = pointwise_loss
    y, f = _inputs(loss)
    p = loss.props
    if p.has_grad:
        v, g = loss.value_grad(y, f)
        np.testing.assert_allclose(v, loss.value(y, f), rtol=1e-13, atol=0)
        np.testing.assert_allclose(g, loss.grad(y, f), rtol=1e-13, atol=0)
    if p.has_hess:
        g, h = loss.grad_hess(y, f)
        np.testing.assert_allclose(g, loss.grad(y, f), rtol=1e-13, atol=0)
        np.testing.assert_allclose(h, loss.hess(y, f), rtol=1e-13, atol=0)


def _methods(loss):
    p = loss.props
    return ["value"] + ["grad"] * p.has_grad + ["hess"] * p.has_hess


def test_sample_weight_multiplies_and_reductions(pointwise_loss):
    loss = pointwise_loss
    y, f = _inputs(loss)
    w = np.random.default_rng(1).uniform(0.0, 3.0, f.size)
    for m in _methods(loss):
        np.testing.assert_allclose(getattr(loss, m)(y, f, sample_weight=w), w * getattr(loss, m)(y, f), rtol=1e-14)
    v = loss.value(y, f)
    assert np.isclose(loss(y, f), np.mean(v), rtol=1e-13)
    assert np.isclose(loss(y, f, reduction="sum"), np.sum(v), rtol=1e-13)
    np.testing.assert_allclose(loss(y, f, reduction="none"), v, rtol=1e-14)
    assert np.isclose(loss(y, f, sample_weight=w), np.sum(w * v) / np.sum(w), rtol=1e-13)
    assert np.isclose(loss(y, f, sample_weight=w, reduction="sum"), np.sum(w * v), rtol=1e-13)
    np.testing.assert_allclose(loss(y, f, sample_weight=w, reduction="none"), w * v, rtol=1e-14)
    with pytest.raises(ValueError, match="reduction"):
        loss(y, f, reduction="average")


def test_float32_in_float32_out(pointwise_loss):
    loss = pointwise_loss
    y, f = (a.astype(np.float32) for a in _inputs(loss))
    for m in _methods(loss):
        out = getattr(loss, m)(y, f)
        assert out.dtype == np.float32, m
        assert np.allclose(out, getattr(loss, m)(y.astype(float), f.astype(float)), rtol=1e-3, atol=1e-3), m
    assert np.asarray(loss(y, f)).dtype == np.float32


def test_python_scalars_give_scalars(pointwise_loss):
    loss = pointwise_loss
    y, f = _inputs(loss)
    for m in _methods(loss):
        out = getattr(loss, m)(float(y[0]), float(f[0]))
        assert np.ndim(out) == 0 and not isinstance(out, np.ndarray), m
        if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
            assert out == getattr(loss, m)(y[:1], f[:1])[0], m
        else:  # NumPy 1 evaluates a scalar's power with the C library and an array's with its
            # own SIMD loops: 2 ulps apart on dwd (NumPy 1.26.4)
            np.testing.assert_array_max_ulp(out, getattr(loss, m)(y[:1], f[:1])[0], maxulp=4)


def test_broadcasting_rules(pointwise_loss):
    loss = pointwise_loss
    y, f = _inputs(loss, n=12)
    for m in _methods(loss):
        full = getattr(loss, m)(y, f)
        # any shape, as long as y_true and y_pred agree
        np.testing.assert_array_equal(getattr(loss, m)(y.reshape(3, 4), f.reshape(3, 4)), full.reshape(3, 4))
        # a 0-d y_true broadcasts
        np.testing.assert_array_equal(getattr(loss, m)(y[0], f), getattr(loss, m)(np.full_like(f, y[0]), f))
    with pytest.raises(ValueError, match="same shape"):
        loss.value(y[:5], f)
    with pytest.raises(ValueError, match="sample_weight"):
        loss.value(y, f, sample_weight=np.ones(5))


def test_pickle_round_trip(pointwise_loss):
    loss = pointwise_loss
    clone = pickle.loads(pickle.dumps(loss))
    assert clone == loss and clone.props == loss.props and clone.kinks == loss.kinks
    y, f = _inputs(loss)
    for m in _methods(loss):
        np.testing.assert_array_equal(getattr(clone, m)(y, f), getattr(loss, m)(y, f))


def test_inputs_not_mutated(pointwise_loss):
    loss = pointwise_loss
    y, f = _inputs(loss)
    w = np.linspace(0.1, 2.0, f.size)
    copies = (y.copy(), f.copy(), w.copy())
    for m in _methods(loss) + ["value_grad", "grad_hess"]:
        if m in ("value_grad", "grad_hess") and not loss.props.has_hess:
            continue
        getattr(loss, m)(y, f, sample_weight=w)
    loss(y, f, sample_weight=w)
    for a, b in zip((y, f, w), copies):
        np.testing.assert_array_equal(a, b)


def test_numpy_torch_jax_agree(pointwise_loss):
    import jax.numpy as jnp
    import torch

    loss = pointwise_loss
    y, f = _inputs(loss)
    w = np.linspace(0.5, 1.5, f.size)
    for m in _methods(loss):
        ref = getattr(loss, m)(y, f, sample_weight=w)
        t = getattr(loss, m)(torch.from_numpy(y), torch.from_numpy(f), sample_weight=torch.from_numpy(w))
        j = getattr(loss, m)(jnp.asarray(y), jnp.asarray(f), sample_weight=jnp.asarray(w))
        assert isinstance(t, torch.Tensor) and t.dtype == torch.float64, m
        assert j.dtype == jnp.float64 and not isinstance(j, np.ndarray), m
        np.testing.assert_allclose(t.numpy(), ref, rtol=1e-12, atol=1e-300, err_msg=f"torch {m}")
        np.testing.assert_allclose(np.asarray(j), ref, rtol=1e-12, atol=1e-300, err_msg=f"jax {m}")
    ref = loss(y, f, sample_weight=w)
    assert float(loss(torch.from_numpy(y), torch.from_numpy(f), sample_weight=torch.from_numpy(w))) == pytest.approx(ref, rel=1e-12)
    assert float(loss(jnp.asarray(y), jnp.asarray(f), sample_weight=jnp.asarray(w))) == pytest.approx(ref, rel=1e-12)


def test_registry_is_fully_covered():
    from conftest import pointwise_cases

    names = {c[0].split("[")[0] for c in pointwise_cases() if "*" not in c[0]}
    assert names == {e.name for e in lossgrad.catalog(shape="pointwise")}
    assert len(pointwise_cases()) == sum(len(e.variants) + 1 for e in lossgrad.catalog(shape="pointwise"))
