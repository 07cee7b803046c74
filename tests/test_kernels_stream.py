"""The streaming-store driver (lossgrad.kernels._driver.stream_kernel) of the cheap float64 kernels.

Above ``STREAM_MIN`` elements the losses of ``kernels._table.STREAM`` (squared error)
run a scalar loop whose stores skip the cache.  Here ``STREAM_MIN`` is lowered so that
small arrays take that path: its results must equal the block driver's bit for bit
(and the reference's, the arithmetic being the same), with weights, into ``out=``
buffers and over the threaded split; bad input must raise the reference's error;
float32 and the other losses must not take it.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossgrad
from lossgrad.kernels import _driver

OPS = ("value", "grad", "hess", "value_grad", "grad_hess", "value_grad_hess")


@pytest.fixture
def streaming(monkeypatch):
    monkeypatch.setattr(_driver, "STREAM_MIN", 0)


def _data(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    y, f, w = rng.normal(size=n), rng.normal(size=n) * 3, rng.uniform(0, 2, n)
    w[::7] = 0.0
    return y, f, w


def _run(loss, op, y, f, w, **kw):
    with lossgrad.config_context(kernel_threshold=0):
        out = getattr(loss, op)(y, f, w, **kw)
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("weighted", [False, True])
def test_stream_driver_equals_block_driver_and_reference_bit_for_bit(monkeypatch, op, weighted):
    loss = lossgrad.SquaredError()
    y, f, w = _data()
    w = w if weighted else None
    monkeypatch.setattr(_driver, "STREAM_MIN", 1 << 62)
    block = _run(loss, op, y, f, w)
    monkeypatch.setattr(_driver, "STREAM_MIN", 0)
    _driver._STREAM_KERNELS.clear()
    stream = _run(loss, op, y, f, w)
    assert sorted(_driver._STREAM_KERNELS) != []  # the streaming driver ran
    with lossgrad.config_context(use_kernels=False):
        ref = getattr(loss, op)(y, f, w)
    ref = ref if isinstance(ref, tuple) else (ref,)
    for a, b, r in zip(stream, block, ref):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, r)


def test_stream_driver_writes_into_out_buffers_and_over_threads(streaming, force_split):
    loss = lossgrad.SquaredError()
    y, f, w = _data(n=200_000, seed=1)
    asked = force_split("threading layer")
    g, h = np.full_like(f, np.nan), np.full_like(f, np.nan)
    got = _run(loss, "grad_hess", y, f, w, out=(g, h))
    assert got[0] is g and got[1] is h
    np.testing.assert_array_equal(g, 2.0 * (f - y) * w)
    np.testing.assert_array_equal(h, 2.0 * w)
    asked_threads = force_split("python threads")
    v = _run(loss, "value", y, f, None)[0]
    np.testing.assert_array_equal(v, (f - y) ** 2)
    assert asked and asked_threads  # both split paths ran, not the serial one


@pytest.mark.parametrize(("where", "value", "message"), [
    ("f", np.nan, "y_pred"), ("y", np.inf, "y_true"), ("w", -1.0, "sample_weight")])
def test_stream_driver_flags_bad_input_with_the_reference_error(streaming, where, value, message):
    y, f, w = _data()
    {"f": f, "y": y, "w": w}[where][1234] = value
    with pytest.raises(ValueError, match=message):
        _run(lossgrad.SquaredError(), "value_grad", y, f, w)


def test_only_float64_squared_error_streams(streaming):
    _driver._STREAM_KERNELS.clear()
    y, f, w = _data()
    _run(lossgrad.SquaredError(), "value_grad", y.astype(np.float32), f.astype(np.float32), None)
    _run(lossgrad.Huber(), "value_grad", y, f, None)
    assert _driver._STREAM_KERNELS == {}
    assert _driver.stream_kernel(_driver.code_of(1, 0, 0)) is None  # absolute error: not in STREAM
