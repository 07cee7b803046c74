"""CrossEntropy's public methods go through the row kernel above the threshold only
(needs the RowLoss._compute hook of lossgrad._row)."""

from __future__ import annotations

import numpy as np

import lossgrad
from lossgrad import kernels


def test_cross_entropy_public_methods_dispatch_to_the_row_kernel(monkeypatch):
    calls = []
    real = kernels.evaluate_row

    def spy(*args, **kw):
        out = real(*args, **kw)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(kernels, "evaluate_row", spy)
    rng = np.random.default_rng(0)
    f = rng.normal(0, 3, (200, 10)).astype(np.float32)
    y = rng.integers(0, 10, 200)
    loss = lossgrad.CrossEntropy(label_smoothing=0.1)
    with lossgrad.config_context(use_kernels=False):
        rv, rg = loss.value_grad(y, f)
        rh = loss.hess(y, f)
    assert calls == []
    with lossgrad.config_context(kernel_threshold=2000):
        v, g = loss.value_grad(y, f)
        assert calls == [True]
        loss.value(y[:150], f[:150])  # 1500 elements: under the threshold
        assert calls == [True]
        h = loss.hess(y, f)  # not served by the kernel: the reference
        assert calls == [True]
        (2.0 * loss).grad(y, f)  # Scaled forwards to the kernel
        assert calls == [True, True]
    assert v.dtype == g.dtype == np.float32
    np.testing.assert_allclose(v, rv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g, rg, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(h, rh)
