"""Bad input over the whole registry (hypothesis): every public method of every pointwise
loss answers a ValueError/TypeError that names the offending argument, and
``config_context(assume_valid=True)`` switches the data checks off."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import pointwise_cases
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lossgrad

CASES = pointwise_cases()
LOSSES = st.sampled_from([c[1] for c in CASES])
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BAD_FLOATS = st.sampled_from([np.nan, np.inf, -np.inf])


def _methods(loss):
    p = loss.props
    calls = [("value", loss.value), ("__call__", loss)]
    if p.has_grad:
        calls += [("grad", loss.grad), ("value_grad", loss.value_grad)]
    if p.has_hess:
        calls += [("hess", loss.hess), ("grad_hess", loss.grad_hess)]
    return calls


def _inputs(loss, n, seed):
    y, f = loss._example_inputs(np.random.default_rng(seed), n)
    return np.asarray(y, dtype=float), np.asarray(f, dtype=float)


def _raises_naming(call, arg, *a, **kw):
    with pytest.raises((ValueError, TypeError)) as info:
        call(*a, **kw)
    assert arg in str(info.value), f"message does not name {arg!r}: {info.value}"


@SETTINGS
@given(loss=LOSSES, n=st.integers(2, 20), m=st.integers(1, 20), seed=st.integers(0, 2**16))
def test_mismatched_shapes(loss, n, m, seed):
    if m == n:
        m = n + 1
    y, f = _inputs(loss, max(n, m), seed)
    for _, call in _methods(loss):
        _raises_naming(call, "y_true", y[:m], f[:n])
        _raises_naming(call, "sample_weight", y[:n], f[:n], sample_weight=np.ones(m))


@SETTINGS
@given(loss=LOSSES, n=st.integers(1, 20), seed=st.integers(0, 2**16), bad=BAD_FLOATS, where=st.integers(0, 19),
       arg=st.sampled_from(["y_true", "y_pred", "sample_weight"]))
def test_non_finite_inputs(loss, n, seed, bad, where, arg):
    y, f = _inputs(loss, n, seed)
    w = np.ones(n)
    {"y_true": y, "y_pred": f, "sample_weight": w}[arg][where % n] = bad
    for _, call in _methods(loss):
        _raises_naming(call, arg, y, f, sample_weight=w)


@SETTINGS
@given(loss=LOSSES, n=st.integers(1, 20), seed=st.integers(0, 2**16), where=st.integers(0, 19),
       neg=st.floats(-1e6, -1e-300, allow_nan=False))
def test_negative_weights(loss, n, seed, where, neg):
    y, f = _inputs(loss, n, seed)
    w = np.ones(n)
    w[where % n] = neg
    for _, call in _methods(loss):
        _raises_naming(call, "sample_weight", y, f, sample_weight=w)


@SETTINGS
@given(loss=LOSSES, seed=st.integers(0, 2**16), dtype=st.sampled_from([np.int64, np.int32, np.bool_]))
def test_integer_or_boolean_predictions(loss, seed, dtype):
    y, f = _inputs(loss, 6, seed)
    fi = (f > np.median(f)).astype(dtype)
    for _, call in _methods(loss):
        _raises_naming(call, "y_pred", y, fi)


@pytest.mark.parametrize("shape", [(0,), (0, 3)])
def test_empty_arrays(shape):
    for _, loss in CASES:
        for _, call in _methods(loss):
            _raises_naming(call, "y_pred", np.zeros(shape), np.zeros(shape))


def test_margin_losses_reject_labels_outside_their_domain():
    margin = [loss for _, loss in CASES if loss.props.basis == lossgrad.Basis.MARGIN]
    assert margin
    for loss in margin:
        for _, call in _methods(loss):
            _raises_naming(call, "y_true", np.array([1.0, 2.0]), np.array([0.5, 0.5]))


@SETTINGS
@given(loss=LOSSES, n=st.integers(1, 20), seed=st.integers(0, 2**16), bad=BAD_FLOATS, where=st.integers(0, 19))
def test_assume_valid_skips_the_data_checks(loss, n, seed, bad, where):
    y, f = _inputs(loss, n, seed)
    f[where % n] = bad
    w = np.ones(n)
    if n >= 2:  # a negative weight too (keeping sum(w) > 0 so the mean stays defined)
        w[(where + 1) % n] = -0.5
    with lossgrad.config_context(assume_valid=True):
        with np.errstate(all="ignore"):
            for _, call in _methods(loss):
                call(y, f, sample_weight=w)  # no exception: the checks are off
    assert not lossgrad.get_config().assume_valid
    with pytest.raises(ValueError):
        loss.value(y, f, sample_weight=w)


@SETTINGS
@given(loss=LOSSES, n=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_valid_examples_are_accepted(loss, n, seed):
    # the other half of the contract: the checks never reject the loss's own valid inputs
    y, f = _inputs(loss, n, seed)
    for _, call in _methods(loss):
        call(y, f, sample_weight=np.full(n, 0.5))
