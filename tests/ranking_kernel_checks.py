"""Shared checks of the ranking list kernels' tests (test_kernels_ranking*.py): a kernel
against the array-API reference on the same inputs."""

from __future__ import annotations

import numpy as np

import lossgrad


def first_order_outputs(loss, **inputs):
    """(value, grad, grad_hess_diag's grad, grad_hess_diag's diag, hess_diag) as arrays."""
    out = (loss.value(**inputs), loss.grad(**inputs), *loss.grad_hess_diag(**inputs), loss.hess_diag(**inputs))
    return [np.asarray(a["scores"] if isinstance(a, dict) else a) for a in out]


def fused_and_reference(loss, **inputs):
    """:func:`first_order_outputs` with the defaults (the kernel above the threshold) and
    under ``use_kernels=False`` (the reference)."""
    fused = first_order_outputs(loss, **inputs)
    with lossgrad.config_context(use_kernels=False):
        return fused, first_order_outputs(loss, **inputs)


def assert_close(fused, reference, rtol):
    """Finite, and equal to ``rtol`` relative to the largest |reference| entry (sums over
    pairs cancel to a few ulps of the largest term)."""
    for a, b in zip(fused, reference):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


def rtol_of(dtype):
    return 1e-13 if dtype == np.float64 else 2e-6
