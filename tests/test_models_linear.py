"""Linear estimators against scikit-learn, with the penalty mapping stated per test.

lossgrad's objective: sum(s L)/sum(s) + alpha (l1_ratio ||w||_1 + (1 - l1_ratio)/2 ||w||^2).
* LogisticRegression(C) minimises ||w||^2/2 + C sum(logloss): alpha = 1 / (C n).
* Ridge(alpha_r) minimises ||y - Xw||^2 + alpha_r ||w||^2; lossgrad's squared_error is r^2 (no 1/2),
  so the mean objective times n gives alpha_r = n alpha / 2.
* ElasticNet(a, l1_ratio) minimises ||y - Xw||^2/(2n) + a l1_ratio ||w||_1 + a (1-l1_ratio)/2 ||w||^2:
  alpha = 2 a.
"""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import ElasticNet, LogisticRegression, Ridge
from sklearn.utils.estimator_checks import check_estimator

import lossgrad
from lossgrad.models import FitWarning, LinearClassifier, LinearRegressor, SoftmaxClassifier

RNG = np.random.default_rng(0)
N, P = 300, 5
X = RNG.normal(size=(N, P))
BETA = np.array([1.0, -2.0, 0.5, 0.0, 1.0])
Y_REG = X @ BETA + 0.3 + RNG.normal(size=N)
Y_BIN = (X @ BETA + RNG.normal(size=N) > 0).astype(int)
Y_MULTI = np.argmax(X[:, :3] + RNG.normal(scale=0.5, size=(N, 3)), axis=1)


@pytest.mark.parametrize("solver", ["newton", "lbfgs"])
def test_logistic_matches_sklearn(solver):
    C = 0.7
    sk = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X, Y_BIN)
    ours = LinearClassifier(alpha=1 / (C * N), solver=solver, tol=1e-11).fit(X, Y_BIN)
    np.testing.assert_allclose(ours.coef_, sk.coef_[0], atol=1e-6)
    np.testing.assert_allclose(ours.intercept_, sk.intercept_[0], atol=1e-6)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize("solver", ["newton", "lbfgs"])
def test_softmax_matches_multinomial_sklearn(solver):
    C = 2.0
    sk = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X, Y_MULTI)
    ours = SoftmaxClassifier(alpha=1 / (C * N), solver=solver, tol=1e-11).fit(X, Y_MULTI)
    np.testing.assert_allclose(ours.coef_, sk.coef_, atol=1e-6)
    np.testing.assert_allclose(ours.intercept_, sk.intercept_, atol=1e-6)
    assert ours.cross_entropy_loss(X, Y_MULTI) == pytest.approx(
        -np.mean(np.log(sk.predict_proba(X)[np.arange(N), Y_MULTI])), rel=1e-6
    )


def test_ridge_and_elasticnet():
    a = 3.0
    r = Ridge(alpha=a, tol=1e-14).fit(X, Y_REG)
    o = LinearRegressor(alpha=2 * a / N).fit(X, Y_REG)
    np.testing.assert_allclose(o.coef_, r.coef_, atol=1e-9)
    e = ElasticNet(alpha=0.1, l1_ratio=0.7, tol=1e-14, max_iter=100_000).fit(X, Y_REG)
    o = LinearRegressor(alpha=0.2, l1_ratio=0.7, tol=1e-12, max_iter=20_000).fit(X, Y_REG)
    assert o.solver_ == "proximal"
    np.testing.assert_allclose(o.coef_, e.coef_, atol=1e-6)
    np.testing.assert_allclose(o.intercept_, e.intercept_, atol=1e-6)


def test_l1_gives_sparsity():
    dense = LinearRegressor(alpha=0.0).fit(X, Y_REG)
    sparse = LinearRegressor(alpha=0.6, l1_ratio=1.0, max_iter=5000).fit(X, Y_REG)
    assert np.sum(np.abs(sparse.coef_) < 1e-12) > np.sum(np.abs(dense.coef_) < 1e-12)


def test_huber_regressor_resists_outliers():
    y = Y_REG.copy()
    y[:30] += 40
    ls = LinearRegressor("squared_error").fit(X, y)
    hub = LinearRegressor(lossgrad.Huber(delta=1.0)).fit(X, y)
    assert np.abs(hub.coef_ - BETA).max() < np.abs(ls.coef_ - BETA).max()


def test_first_order_solver_reaches_newton():
    newton = LinearClassifier(alpha=0.01).fit(X, Y_BIN)
    adam = LinearClassifier(alpha=0.01, solver="adam", learning_rate=0.05, max_iter=5000, tol=1e-9).fit(X, Y_BIN)
    np.testing.assert_allclose(adam.coef_, newton.coef_, atol=1e-5)


def test_nonconvex_loss_warns_with_newton():
    with pytest.warns(FitWarning, match="not convex"):
        LinearRegressor("cauchy", solver="newton").fit(X, Y_REG)


def test_sample_weight_equals_repetition():
    w = RNG.integers(1, 4, size=N)
    a = LinearClassifier(alpha=0.01).fit(X, Y_BIN, sample_weight=w)
    b = LinearClassifier(alpha=0.01).fit(np.repeat(X, w, axis=0), np.repeat(Y_BIN, w))
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-9)


def test_bad_input():
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LinearRegressor().fit(Xn, Y_REG)
    with pytest.raises(ValueError, match="exactly 2"):
        LinearClassifier().fit(X, np.zeros(N))
    with pytest.raises(ValueError, match="1 class"):
        SoftmaxClassifier().fit(X, np.zeros(N))
    with pytest.raises(ValueError, match="unknown loss name"):
        LinearRegressor("hubr").fit(X, Y_REG)
    with pytest.raises(ValueError, match="row loss"):
        SoftmaxClassifier("huber").fit(X, Y_MULTI)
    with pytest.raises(ValueError, match="L1"):
        LinearRegressor(alpha=1.0, l1_ratio=0.5, solver="newton").fit(X, Y_REG)
    with pytest.raises(ValueError, match="y_true"):
        LinearRegressor("poisson").fit(X, Y_REG)  # negative targets for a Poisson deviance
    with pytest.raises(ValueError, match="solver"):
        LinearRegressor(solver="magic").fit(X, Y_REG)
    with pytest.raises(AttributeError, match="predict_proba"):
        LinearClassifier("hinge").fit(X, Y_BIN).predict_proba(X)


@pytest.mark.parametrize(
    "estimator",
    [LinearRegressor(), LinearRegressor("huber"), LinearClassifier(), LinearClassifier("hinge", alpha=0.01), SoftmaxClassifier()],
    ids=lambda e: f"{type(e).__name__}({e.loss})",
)
def test_check_estimator(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        check_estimator(estimator)


def test_newton_does_not_stall_on_a_singular_huber_hessian():
    """More features than samples and no penalty: residuals on Huber's linear pieces make the
    Hessian singular. The Newton step must also descend in its null space (it used to stall at
    J = 0.1175 for 500 iterations) and reach an interpolating minimiser, J = 0."""
    rng = np.random.RandomState(42)
    X, y = rng.rand(15, 30), rng.randint(0, 3, size=15).astype(float)
    sw = rng.randint(0, 5, size=15).astype(float)
    model = LinearRegressor("huber", solver="newton").fit(X, y, sample_weight=sw)
    assert model.n_iter_ < 50
    assert model.loss_curve_[-1] < 1e-20
    assert np.all(np.diff(model.loss_curve_) <= 1e-15)


# ------------------------------------------------ products with X (lossgrad.models._products)
from lossgrad.kernels import _parallel  # noqa: E402
from lossgrad.models import _base, _products  # noqa: E402


@pytest.fixture(params=["serial", "layer", "python_threads"])
def split(request, monkeypatch):
    """The three ways a product runs: one part, Numba's threading layer, Python threads."""
    if request.param == "serial":
        monkeypatch.setattr(_parallel, "_SPLIT_MIN", 1 << 40)
        monkeypatch.setattr(_parallel, "_THREAD_SPLIT_MIN", 1 << 40)
    elif request.param == "python_threads":
        monkeypatch.setattr(_parallel, "layer_threads", lambda: 0)
        monkeypatch.setattr(_parallel, "_THREAD_SPLIT_MIN", 1 << 10)
        monkeypatch.setattr(_parallel, "n_threads", lambda: 3)
    else:
        monkeypatch.setattr(_parallel, "_SPLIT_MIN", 1 << 10)
    return request.param


@pytest.mark.parametrize("n", [1, 7, 5003])
def test_products_equal_numpy(n, split):
    rng = np.random.default_rng(n)
    Xp = rng.normal(size=(n, 9))
    w, W, b = rng.normal(size=9), rng.normal(size=(9, 4)), rng.normal(size=4)
    g, G, h = rng.normal(size=n), rng.normal(size=(n, 4)), rng.uniform(size=n)
    np.testing.assert_allclose(_products.matmul(Xp, w, 0.5), Xp @ w + 0.5, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_products.matmul(Xp, W, b), Xp @ W + b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_products.rmatmul(Xp, g), Xp.T @ g, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(_products.rmatmul(Xp, G), Xp.T @ G, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(_products.rmatmul(Xp, G[:, ::2]), Xp.T @ G[:, ::2], rtol=1e-11, atol=1e-11)
    xg, xh = _products.rmatmul2(Xp, g, h)
    np.testing.assert_allclose(xg, Xp.T @ g, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(xh, Xp.T @ h, rtol=1e-11, atol=1e-11)
    gram, xg2, xh2 = _products.gram_and_moments(Xp, g, h)
    np.testing.assert_allclose(gram, (Xp * h[:, None]).T @ Xp, rtol=1e-11, atol=1e-11)
    assert np.array_equal(xg2, xg) and np.array_equal(xh2, xh)


def test_products_fall_back_to_numpy_off_their_layout():
    rng = np.random.default_rng(1)
    Xf = np.asfortranarray(rng.normal(size=(50, 3)))
    w, g = rng.normal(size=3), rng.normal(size=50)
    assert np.array_equal(_products.matmul(Xf, w, 1.0), Xf @ w + 1.0)
    assert np.array_equal(_products.rmatmul(Xf, g), Xf.T @ g)
    X32 = np.ascontiguousarray(Xf, dtype=np.float32)
    assert _products.matmul(X32, w).dtype == np.float64  # NumPy's promotion, as X @ w


def test_the_gram_block_splits_over_threads_where_blas_holds_one(monkeypatch):
    monkeypatch.setattr(_products, "_GRAM_SPLIT_MIN", 1)
    monkeypatch.setattr(_products, "n_threads", lambda: 3)
    calls = []
    real = _products.run_in_parts
    monkeypatch.setattr(_products, "run_in_parts", lambda n, k, run: calls.append(k) or real(n, k, run))
    rng = np.random.default_rng(2)
    Xp, h = rng.normal(size=(4000, 6)), rng.uniform(size=4000)
    ref = (Xp * h[:, None]).T @ Xp
    np.testing.assert_allclose(_products.gram(Xp, h), ref, rtol=1e-12)
    assert calls == []  # BLAS not held: one part in the calling thread
    with _parallel.blas_single_thread():
        np.testing.assert_allclose(_products.gram(Xp, h), ref, rtol=1e-12)
    assert calls == [3]


def _blas_threads():
    from threadpoolctl import threadpool_info

    return sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


@pytest.mark.parametrize("fail", [False, True])
@pytest.mark.parametrize("make", [lambda: LinearClassifier(solver="newton"), lambda: LinearClassifier(solver="lbfgs"),
                                  lambda: SoftmaxClassifier()])
def test_a_fit_holds_blas_to_one_thread_and_restores_it(make, fail, monkeypatch):
    import scipy.linalg  # noqa: F401 - SciPy's OpenBLAS loaded, as in a fit
    from threadpoolctl import threadpool_limits

    seen = []
    real = _base.solve

    def spy(*args, **kwargs):
        seen.append(_blas_threads())
        if fail:
            raise RuntimeError("solver failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(_base, "solve", spy)
    y = Y_MULTI if isinstance(make(), SoftmaxClassifier) else Y_BIN
    with threadpool_limits(2, user_api="blas"):
        if fail:
            with pytest.raises(RuntimeError, match="solver failed"):
                make().fit(X, y)
        else:
            make().fit(X, y)
        assert set(seen[0]) == {1}
        assert set(_blas_threads()) == {2} and not _parallel.blas_held()


@pytest.mark.parametrize("solver", ["newton", "lbfgs", "proximal", "adam"])
def test_large_fits_through_the_products_match_numpy_products(solver, monkeypatch):
    """A fit large enough to split its products (and its Gram block) gives NumPy's
    products' result up to rounding."""
    rng = np.random.default_rng(3)
    Xl = rng.normal(size=(40_000, 12))
    yl = (Xl @ rng.normal(size=12) + rng.logistic(size=40_000) > 0).astype(int)
    kw = dict(solver=solver, tol=1e-9, max_iter=60 if solver == "adam" else 500,
              **({"alpha": 1e-3, "l1_ratio": 0.5} if solver == "proximal" else {}))
    monkeypatch.setattr(_products, "_GRAM_SPLIT_MIN", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        ours = LinearClassifier(**kw).fit(Xl, yl)
        monkeypatch.setattr(_products, "matmul", lambda X, W, b=0.0: X @ W + b)
        monkeypatch.setattr(_products, "rmatmul", lambda X, G: X.T @ G)
        monkeypatch.setattr(_products, "rmatmul2", lambda X, g, h: tuple(np.stack([g, h]) @ X))
        monkeypatch.setattr(_products, "gram", lambda X, h: (X * h[:, None]).T @ X)
        ref = LinearClassifier(**kw).fit(Xl, yl)
    # Rounding differences can move a tolerance-stopped solver by a few iterations (the
    # proximal one took 87 against 90 with NumPy 1.26 and 2.2), not its answer.
    assert abs(ours.n_iter_ - ref.n_iter_) <= max(3, ref.n_iter_ // 10)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-7, atol=1e-9)


def test_wide_products_go_to_numpy():
    """More than 8 columns of W or G (compute-bound products) are BLAS's: NumPy's result
    bit for bit; up to 8, the kernels agree with it to rounding."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 30))
    for m in (1, 8, 9, 40):
        W, G, b = rng.normal(size=(30, m)), rng.normal(size=(3000, m)), rng.normal(size=m)
        got, back = _products.matmul(X, W, b), _products.rmatmul(X, G)
        if m > _products._MAX_COLUMNS:
            np.testing.assert_array_equal(got, X @ W + b)
            np.testing.assert_array_equal(back, X.T @ G)
        else:
            np.testing.assert_allclose(got, X @ W + b, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(back, X.T @ G, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("max_g,converged", [(9.5e-10, True), (1.5e-9, False)])
def test_trust_region_newton_stopped_by_rounding_within_ten_tol_has_converged(max_g, converged, monkeypatch):
    """trust-ncg's status 2 (the model predicts no decrease: rounding) at max |g| <= 10 tol
    is convergence, as a failed line search of the pointwise Newton path is; above, a
    FitWarning. (SoftmaxClassifier on 2 x 10^5 x 20, K = 5 ended so at 9.5e-10, tol 1e-10.)"""
    from scipy import optimize

    from lossgrad.models import _solvers

    real = optimize.minimize

    def stopped_by_rounding(*args, **kwargs):
        res = real(*args, **kwargs)
        res.status, res.success, res.jac = 2, False, np.full_like(res.jac, max_g)
        return res

    monkeypatch.setattr(_solvers.optimize, "minimize", stopped_by_rounding)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = SoftmaxClassifier(alpha=1e-3, tol=1e-10).fit(X, Y_MULTI)
    assert model.converged_ is converged
    assert any(issubclass(w.category, FitWarning) for w in caught) is not converged


def test_objective_keeps_the_last_scores_and_never_serves_stale_ones():
    """LinearObjective.scores keeps the last (theta, X W + b): the same theta again is
    the same array (trust-ncg's repeated Hessian-vector products), a changed theta, also
    changed in place, is recomputed."""
    from lossgrad.models._objective import LinearObjective

    obj = LinearObjective(lossgrad.CrossEntropy(), X, Y_MULTI, np.ones(N), 1e-3, 0.0, True, n_outputs=3)
    theta = RNG.normal(size=obj.size)
    F = obj.scores(theta)
    np.testing.assert_allclose(F, X @ theta.reshape(P + 1, 3)[1:] + theta.reshape(P + 1, 3)[0], rtol=1e-12)
    assert obj.scores(theta.copy()) is F
    theta[4] += 1.0  # in place: the kept copy no longer matches
    G = obj.scores(theta)
    assert G is not F
    np.testing.assert_allclose(G, X @ theta.reshape(P + 1, 3)[1:] + theta.reshape(P + 1, 3)[0], rtol=1e-12)
