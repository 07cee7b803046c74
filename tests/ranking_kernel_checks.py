"""Shared checks of the ranking list kernels' tests (test_kernels_ranking*.py): a kernel
against the array-API reference on the same inputs."""

from __future__ import annotations

import numpy as np

import lossgrad


def random_lists(seed, n, width):
    """(scores, relevance, mask) float64 (n, width): scores N(0, 4), grades 0-4, about 15%
    padding after the first two items of each list (edit rows, then :func:`padded`)."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n, width)) * 2.0
    rel = rng.integers(0, 5, (n, width)).astype(np.float64)
    mask = rng.random((n, width)) > 0.15
    mask[:, :2] = True
    return scores, rel, mask


def padded(scores, rel, mask, dtype):
    """NaN scores and -1 grades at the padding (a kernel must never read them), scores in ``dtype``."""
    scores[~mask] = np.nan
    rel[~mask] = -1.0
    return scores.astype(dtype), rel, mask


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


def weighted_kernel_outputs(loss, make_lists, n, width, dtype):
    """The kernel's :func:`first_order_outputs` on ``make_lists(n + width, n, width, dtype)``
    with list weights 0.5..2, after checking their dtype and that they equal the
    reference's; returns (outputs, mask)."""
    s, r, m = make_lists(n + width, n, width, dtype)
    w = np.linspace(0.5, 2.0, n)
    fused, reference = fused_and_reference(loss, scores=s, relevance=r, mask=m, sample_weight=w)
    assert all(a.dtype == dtype for a in fused)
    assert_close(fused, reference, rtol_of(dtype))
    return fused, m
