"""BerHu (reverse Huber): closed forms, its two pieces as catalog losses, IRLS weights, kernel."""

from __future__ import annotations

import numpy as np
import pytest

import lossgrad


@pytest.mark.parametrize("c", [0.2, 1.0, 3.0])
def test_pieces_are_absolute_error_inside_and_a_scaled_square_outside(c):
    loss = lossgrad.BerHu(c=c)
    r = np.linspace(-4 * c, 4 * c, 801)
    y = np.full_like(r, 0.7)
    f = y + r
    v, g, h = loss.value_grad_hess(y, f)
    inside = np.abs(r) <= c
    av, ag = lossgrad.AbsoluteError().value_grad(y, f)
    sv, sg, sh = lossgrad.SquaredError().value_grad_hess(y, f)
    np.testing.assert_allclose(v[inside], av[inside], rtol=1e-15)
    np.testing.assert_allclose(g[inside], ag[inside], rtol=0)
    assert np.all(h[inside] == 0.0)
    np.testing.assert_allclose(v[~inside], sv[~inside] / (2 * c) + c / 2, rtol=1e-14)
    np.testing.assert_allclose(g[~inside], sg[~inside] / (2 * c), rtol=1e-14)
    np.testing.assert_allclose(h[~inside], sh[~inside] / (2 * c), rtol=1e-15)


def test_continuity_at_the_switch_and_the_documented_example():
    loss = lossgrad.BerHu(c=2.0)
    for side in (-1.0, 1.0):
        at = side * 2.0
        below, above = np.nextafter(at, -np.inf), np.nextafter(at, np.inf)
        vals = loss.value(0.0, np.array([below, at, above]))
        grads = loss.grad(0.0, np.array([below, at, above]))
        np.testing.assert_allclose(vals, 2.0, rtol=1e-15)
        np.testing.assert_allclose(grads, side, rtol=1e-15)
    assert loss.hess(0.0, 2.0) == 0.0 and loss.hess(0.0, 2.0 + 1e-12) == 0.5
    v, g = lossgrad.BerHu(c=1.0).value_grad(0.0, 3.0)
    assert (v, g) == (5.0, 3.0)  # (9 + 1) / 2 and 3 / 1
    assert lossgrad.BerHu().grad(0.0, 0.0) == 0.0  # the midpoint of the corner at 0


def test_irls_weight_and_huge_residuals():
    loss = lossgrad.BerHu(c=0.5)
    r = np.array([-3.0, -0.25, 0.0, 0.1, 0.5, 2.0])
    w = loss.weight(np.zeros_like(r), r)
    np.testing.assert_allclose(w, [2.0, 4.0, np.inf, 10.0, 2.0, 2.0])
    big = lossgrad.BerHu(c=1e100)
    assert np.isfinite(big.value(0.0, 1e200)) and np.isclose(big.value(0.0, 1e200), 0.5 * (1e300 + 1e100))


def test_kernel_equals_reference_on_the_pieces_and_the_switch():
    loss = lossgrad.BerHu(c=0.75)
    rng = np.random.default_rng(0)
    y = rng.normal(size=300_000)
    r = rng.normal(scale=1.5, size=y.size)
    r[:1000] = np.where(rng.random(1000) < 0.5, -0.75, 0.75)  # exactly at the switch
    f = y + r
    r = f - y  # what the loss sees
    with lossgrad.config_context(kernel_threshold=0):
        fused = loss.value_grad_hess(y, f)
    with lossgrad.config_context(use_kernels=False):
        reference = loss.value_grad_hess(y, f)
    for a, b in zip(fused, reference):
        np.testing.assert_array_max_ulp(a, b, maxulp=2)
    assert np.all(fused[2][np.abs(r) <= 0.75] == 0.0)


def test_bad_parameter():
    with pytest.raises(ValueError, match="c"):
        lossgrad.BerHu(c=0.0)
    with pytest.raises((TypeError, ValueError), match="c"):
        lossgrad.BerHu(c="big")
