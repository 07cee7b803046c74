"""lossgrad.numdiff: orders of accuracy, exactness of the complex step, Jacobians and Hessians,
and gradcheck/hesscheck that pass right derivatives and fail wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

from lossgrad import numdiff as nd

X = np.linspace(-2.0, 2.0, 9)


def _err(method, step, order=1, f=np.sin, df=None):
    if df is None:
        df = np.cos if order == 1 else (lambda x: -np.sin(x))
    return np.max(np.abs(nd.derivative(f, X, method=method, step=step, order=order) - df(X)))


@pytest.mark.parametrize(
    ("method", "order", "rate"),
    [("forward", 1, 1), ("backward", 1, 1), ("central", 1, 2), ("central4", 1, 4), ("central", 2, 2), ("central4", 2, 4)],
)
def test_order_of_accuracy(method, order, rate):
    # halving h divides the truncation error by 2^rate (steps large enough that round-off is negligible)
    h = 0.1 if order == 1 else 0.2
    e1, e2 = _err(method, h, order), _err(method, h / 2, order)
    observed = np.log2(e1 / e2)
    assert abs(observed - rate) < 0.25, observed


@pytest.mark.parametrize(
    ("method", "order", "tol"),
    [
        ("forward", 1, 3e-8),
        ("backward", 1, 3e-8),
        ("central", 1, 3e-10),
        ("central4", 1, 3e-12),
        ("complex", 1, 1e-15),
        ("richardson", 1, 1e-13),
        ("central", 2, 3e-8),
        ("central4", 2, 3e-10),
        ("richardson", 2, 1e-11),
    ],
)
@pytest.mark.parametrize(("f", "df", "d2f"), [(np.sin, np.cos, lambda x: -np.sin(x)), (np.exp, np.exp, np.exp)])
def test_default_steps_reach_expected_accuracy(method, order, tol, f, df, d2f):
    d = nd.derivative(f, X, method=method, order=order)
    ref = df(X) if order == 1 else d2f(X)
    assert np.max(np.abs(d - ref) / np.maximum(1.0, np.abs(ref))) < tol


def test_polynomials_exact_within_their_order():
    p = lambda x: 3 * x**3 - x + 2  # noqa: E731
    dp = lambda x: 9 * x**2 - 1  # noqa: E731
    # central4 is exact for polynomials of degree <= 4: only round-off remains
    assert np.allclose(nd.derivative(p, X, method="central4", step=0.5), dp(X), rtol=0, atol=1e-12)
    assert np.allclose(nd.derivative(p, X, method="central4", step=0.5, order=2), 18 * X, rtol=0, atol=1e-11)
    # central is exact for quadratics only: on a cubic its error is h^2 p'''/6 = 9 h^2 / ... > 0
    assert not np.allclose(nd.derivative(p, X, method="central", step=0.5), dp(X), atol=1e-3)


def test_complex_step_exact_to_rounding():
    x = np.array([1e-3, 0.5, 3.0, 30.0])
    f = lambda z: np.exp(z) * np.sin(z) / (1 + z * z)  # noqa: E731
    df = lambda x: (np.exp(x) * (np.sin(x) + np.cos(x)) * (1 + x * x) - np.exp(x) * np.sin(x) * 2 * x) / (1 + x * x) ** 2  # noqa: E731
    rel = np.abs(nd.derivative(f, x, method="complex") - df(x)) / np.abs(df(x))
    assert np.max(rel) < 4e-15


def test_richardson_beats_central_and_reports_error():
    d_c = nd.derivative(np.exp, X, method="central")
    d_r, err = nd.derivative(np.exp, X, method="richardson", return_error=True)
    e_c = np.max(np.abs(d_c - np.exp(X)))
    e_r = np.max(np.abs(d_r - np.exp(X)))
    assert e_r < e_c / 100
    assert err.shape == X.shape and np.all(err >= 0)
    assert np.all(np.abs(d_r - np.exp(X)) <= 10 * err + 16 * np.finfo(float).eps * np.exp(X))


def test_scalar_in_scalar_out_and_steps():
    d = nd.derivative(np.sin, 0.3, method="central4")
    assert np.ndim(d) == 0 and abs(d - np.cos(0.3)) < 1e-12
    h = nd.default_step(np.array([0.0, 1e6]), "central")
    eps = np.finfo(float).eps
    assert np.allclose(h, [eps ** (1 / 3), 1e6 * eps ** (1 / 3)])
    assert np.allclose(nd.default_step(2.0, "central4", order=2), 2 * eps ** (1 / 6))


def test_gradient_jacobian_hessian_of_known_functions():
    x = np.array([0.5, -1.0, 2.0])

    def f(v):
        return v[0] ** 2 * v[1] + np.exp(v[2]) + v[1] * v[2]

    grad = np.array([2 * x[0] * x[1], x[0] ** 2 + x[2], np.exp(x[2]) + x[1]])
    hess = np.array([[2 * x[1], 2 * x[0], 0.0], [2 * x[0], 0.0, 1.0], [0.0, 1.0, np.exp(x[2])]])
    for m in ("central", "central4", "complex", "richardson"):
        assert np.allclose(nd.gradient(f, x, method=m), grad, rtol=1e-8, atol=1e-9), m
    for m, tol in (("central", 1e-6), ("central4", 1e-8), ("richardson", 1e-9)):
        assert np.allclose(nd.hessian(f, x, method=m), hess, rtol=tol, atol=tol), m

    def g(v):
        return np.array([v[0] * v[1], np.sin(v[2]), v[0] ** 3])

    jac = np.array([[x[1], x[0], 0.0], [0.0, 0.0, np.cos(x[2])], [3 * x[0] ** 2, 0.0, 0.0]])
    for m in ("forward", "central4", "complex", "richardson"):
        assert np.allclose(nd.jacobian(g, x, method=m), jac, rtol=1e-6 if m == "forward" else 1e-9, atol=1e-7), m
    # shapes follow f(x).shape + x.shape for matrix arguments
    A = np.arange(6.0).reshape(2, 3)
    assert nd.jacobian(lambda M: M.sum(axis=0), A).shape == (3, 2, 3)
    assert nd.hessian(lambda M: np.sum(M**2), A).shape == (2, 3, 2, 3)


def test_gradcheck_passes_right_and_fails_wrong():
    x = np.linspace(-3, 3, 25)
    ok = nd.gradcheck(np.tanh, lambda x: 1 - np.tanh(x) ** 2, x, elementwise=True)
    assert ok and ok.passed and ok.max_rel_error < 1e-9
    bad = nd.gradcheck(np.tanh, lambda x: 1 - np.tanh(x) ** 2 + 1e-4 * (x > 2), x, elementwise=True)
    # the worst relative error is where the true derivative is smallest among the corrupted points
    assert not bad and bad.where == (24,) and bad.max_abs_error == pytest.approx(1e-4, rel=1e-3)
    v = np.array([0.3, -0.7])
    f = lambda v: np.sum(np.sin(v) * v)  # noqa: E731
    assert nd.gradcheck(f, lambda v: np.sin(v) + v * np.cos(v), v)
    assert not nd.gradcheck(f, lambda v: np.sin(v) + v * np.cos(v) * 1.001, v)
    assert "FAIL" in str(bad)


def test_hesscheck_both_routes_and_failure():
    x = np.linspace(-2, 2, 11)
    assert nd.hesscheck(np.exp, np.exp, x, elementwise=True)
    assert nd.hesscheck(np.exp, np.exp, x, grad=np.exp, elementwise=True)
    assert not nd.hesscheck(np.sin, lambda x: np.sin(x), x, grad=np.cos, elementwise=True)  # wrong sign
    v = np.array([0.4, 1.2])
    f = lambda v: v[0] ** 2 * v[1] ** 2  # noqa: E731
    H = lambda v: np.array([[2 * v[1] ** 2, 4 * v[0] * v[1]], [4 * v[0] * v[1], 2 * v[0] ** 2]])  # noqa: E731
    G = lambda v: np.array([2 * v[0] * v[1] ** 2, 2 * v[0] ** 2 * v[1]])  # noqa: E731
    assert nd.hesscheck(f, H, v) and nd.hesscheck(f, H, v, grad=G)
    assert not nd.hesscheck(f, lambda v: H(v) * np.array([[1, 0], [0, 1]]), v)  # dropped cross terms


def test_relative_error_is_robust_near_zero():
    # the true derivative is 0 at x = 0: the error there is measured against atol / rtol
    rep = nd.compare(np.array([1e-12, 1.0]), np.array([0.0, 1.0]), rtol=1e-6, atol=1e-9)
    assert rep.passed and rep.max_rel_error == pytest.approx(1e-12 / 1e-3)
    assert not nd.compare(np.array([1e-8, 1.0]), np.array([0.0, 1.0]), rtol=1e-6, atol=1e-9)
    assert not nd.compare(np.array([np.nan]), np.array([1.0]), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: nd.derivative(np.sin, 1.0, method="fivepoint"), ValueError, "method must be one of"),
        (lambda: nd.derivative(np.sin, 1.0, method="forward", order=2), ValueError, "order=2"),
        (lambda: nd.derivative(np.sin, 1.0, order=3), ValueError, "order must be 1 or 2"),
        (lambda: nd.derivative(np.sin, np.array([1.0, np.nan])), ValueError, "x contains NaN"),
        (lambda: nd.derivative(np.sin, np.inf), ValueError, "x contains NaN or infinite"),
        (lambda: nd.derivative(np.sin, 1.0, step=0.0), ValueError, "step must be finite and > 0"),
        (lambda: nd.derivative(np.sin, "a"), TypeError, "x must be real-valued"),
        (lambda: nd.derivative(lambda x: np.sum(x), np.ones(3)), ValueError, "f must be elementwise"),
        (lambda: nd.gradient(lambda x: x, np.ones(3)), ValueError, "scalar function"),
        (lambda: nd.hessian(np.sum, np.ones(2), method="complex"), ValueError, "not available"),
        (lambda: nd.gradcheck(np.sin, np.cos, 1.0, rtol=-1.0), ValueError, "rtol must be"),
    ],
)
def test_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
