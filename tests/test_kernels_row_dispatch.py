"""CrossEntropy's public methods go through the row kernel above the threshold only
(needs the RowLoss._compute hook of lossgrad._row)."""

from __future__ import annotations

import numpy as np
import pytest

import lossgrad


def test_cross_entropy_public_methods_dispatch_to_the_row_kernel(kernel_calls):
    calls = kernel_calls
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


def test_reductions_of_row_losses_use_the_kernel_where_row_weights_are_one(kernel_calls):
    """``loss(y, f, reduction=...)``: "none" and "sum" always reduce the kernel's rows;
    "mean" does where no option weights the rows (class weights, ignore_index), and
    otherwise builds the targets to find the row weights.  Both equal the reference."""
    calls = kernel_calls
    rng = np.random.default_rng(1)
    f = rng.normal(0, 3, (300, 7))
    y = rng.integers(0, 7, 300)
    w = rng.uniform(0, 2, 300)
    cases = [
        (lossgrad.CrossEntropy(), {"none": True, "sum": True, "mean": True}),
        (lossgrad.CrossEntropy(weight=np.linspace(0.5, 2, 7)), {"none": True, "sum": True, "mean": False}),
        (lossgrad.CrossEntropy(ignore_index=3), {"none": True, "sum": True, "mean": False}),
        (lossgrad.get("multiclass_hinge"), {"none": True, "sum": True, "mean": True}),
    ]
    for loss, uses_kernel in cases:
        for reduction, expected in uses_kernel.items():
            for sw in (None, w):
                with lossgrad.config_context(use_kernels=False):
                    ref = loss(y, f, sample_weight=sw, reduction=reduction)
                calls.clear()
                with lossgrad.config_context(kernel_threshold=0):
                    got = loss(y, f, sample_weight=sw, reduction=reduction)
                assert calls == ([True] if expected else []), (loss, reduction)
                np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_cross_entropy_kernel_reports_the_reference_error_first():
    """NaN logits and a negative weight together: the same error as the reference (the logits')."""
    f = np.zeros((50, 4))
    f[3, 1] = np.nan
    y = np.zeros(50, int)
    w = np.ones(50)
    w[7] = -1.0
    loss = lossgrad.CrossEntropy()
    with lossgrad.config_context(use_kernels=False), pytest.raises(ValueError) as ref:
        loss.value_grad(y, f, sample_weight=w)
    with lossgrad.config_context(kernel_threshold=0), pytest.raises(ValueError) as ker:
        loss.value_grad(y, f, sample_weight=w)
    assert str(ker.value) == str(ref.value)
