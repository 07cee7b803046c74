"""M-estimation against statsmodels RLM (the mapping: statsmodels adds the constant with
``sm.add_constant`` and takes M=norms.HuberT(t=1.345) / norms.TukeyBiweight(c=4.685);
lossgrad names the same rho functions 'huber' (delta=1.345) and 'tukey_biweight' (c=4.685)).
Both run IRLS from OLS with scale = MAD about 0; statsmodels is run with a tight
tolerance (conv='coefs', tol=1e-14) so that both sit on the same fixed point."""

import warnings

import numpy as np
import pytest
import statsmodels.api as sm

import lossgrad
from lossgrad.robust import ConvergenceWarning, MEstimator

STACK = sm.datasets.stackloss.load_pandas()
X, Y = STACK.exog.to_numpy(float), STACK.endog.to_numpy(float)


def _rlm(norm, cov="H1", scale_est="mad"):
    return sm.RLM(Y, sm.add_constant(X), M=norm).fit(scale_est=scale_est, cov=cov, tol=1e-14, maxiter=2000, conv="coefs")


@pytest.mark.parametrize("cov", ["H1", "H2", "H3"])
@pytest.mark.parametrize(
    "name, norm",
    [("huber", sm.robust.norms.HuberT(t=1.345)), ("tukey_biweight", sm.robust.norms.TukeyBiweight(c=4.685))],
)
def test_stackloss_equals_statsmodels(name, norm, cov):
    ours = MEstimator(name, cov=cov, tol=1e-12, max_iter=2000).fit(X, Y)
    ref = _rlm(norm, cov)
    np.testing.assert_allclose(ours.params_, ref.params, rtol=1e-6)
    np.testing.assert_allclose(ours.scale_, ref.scale, rtol=1e-6)
    np.testing.assert_allclose(ours.bse_, ref.bse, rtol=1e-6)
    np.testing.assert_allclose(ours.weights_, ref.weights, rtol=1e-5, atol=1e-8)
    assert ours.converged_


def test_huber_proposal2_scale_equals_statsmodels():
    ours = MEstimator("huber", scale="huber", tol=1e-12).fit(X, Y)
    ref = _rlm(sm.robust.norms.HuberT(t=1.345), scale_est=sm.robust.scale.HuberScale())
    np.testing.assert_allclose(ours.params_, ref.params, rtol=1e-6)
    np.testing.assert_allclose(ours.scale_, ref.scale, rtol=1e-6)


def test_fixed_scale_and_update_scale_false():
    fixed = MEstimator("huber", scale=2.0, tol=1e-12).fit(X, Y)
    assert fixed.scale_ == 2.0
    held = MEstimator("huber", update_scale=False, tol=1e-12).fit(X, Y)
    ols_resid = Y - np.c_[np.ones(len(Y)), X] @ np.linalg.lstsq(np.c_[np.ones(len(Y)), X], Y, rcond=None)[0]
    assert held.scale_ == pytest.approx(lossgrad.robust.mad(ols_resid), rel=1e-12)


def test_predict_and_score_and_summary():
    m = MEstimator("huber").fit(X, Y)
    np.testing.assert_allclose(m.predict(X), X @ m.coef_ + m.intercept_)
    assert m.score(X, Y) > 0.9
    text = m.summary(["air", "water", "acid"])
    assert "const" in text and "acid" in text and "std err" in text


def test_any_residual_loss_and_instance():
    for loss in ["cauchy", "welsch", "fair", "log_cosh", lossgrad.Huber(delta=2.0)]:
        m = MEstimator(loss, tol=1e-10).fit(X, Y)
        assert m.converged_ and np.all(np.isfinite(m.params_))


def test_huber_resists_outliers_where_least_squares_does_not():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 2))
    y = x @ [2.0, -1.0] + 0.5 + rng.normal(scale=0.3, size=500)
    y[:40] += 30.0
    robust = MEstimator("huber").fit(x, y)
    ls = MEstimator("squared_error").fit(x, y)
    assert abs(robust.intercept_ - 0.5) < 0.2 < abs(ls.intercept_ - 0.5)


def test_bad_input():
    with pytest.raises(ValueError, match="more rows"):
        MEstimator().fit(np.ones((3, 5)), np.ones(3))
    with pytest.raises(ValueError, match="constant"):
        MEstimator().fit(np.c_[X, np.full(len(Y), 3.0)], Y)
    with pytest.raises(ValueError, match="rank deficient"):
        MEstimator().fit(np.c_[X, 2 * X[:, 0]], Y)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MEstimator().fit(Xn, Y)
    with pytest.raises(ValueError, match="unknown loss name"):
        MEstimator("hubr").fit(X, Y)
    with pytest.raises(TypeError, match="residual loss"):
        MEstimator("logistic").fit(X, Y)
    with pytest.raises(ValueError, match="cov"):
        MEstimator(cov="H4").fit(X, Y)


def test_perfect_fit_warns_instead_of_crashing():
    x = np.arange(20.0)[:, None]
    with pytest.warns(ConvergenceWarning, match="perfect fit"):
        m = MEstimator("huber").fit(x, 3.0 * x[:, 0] + 1.0)
    assert m.coef_[0] == pytest.approx(3.0) and m.scale_ == 0.0


def test_nonconvergence_warns():
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        MEstimator("tukey_biweight", max_iter=1).fit(X, Y)


def test_clone_and_params():
    from sklearn.base import clone

    m = MEstimator("tukey_biweight", cov="H2")
    assert clone(m).get_params()["cov"] == "H2"


def test_no_warnings_on_clean_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MEstimator("huber").fit(X, Y)


def _blas_threads():
    from threadpoolctl import threadpool_info

    return sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


@pytest.mark.parametrize("fail", [False, True])
def test_fit_holds_blas_to_one_thread_and_restores_it(fail, monkeypatch):
    import scipy.linalg  # noqa: F401 - SciPy's OpenBLAS loaded, as in a fit
    from threadpoolctl import threadpool_limits

    from lossgrad.kernels import _parallel
    from lossgrad.robust import _backend

    seen = []
    real = _backend.NumpyBackend.normal_equations

    def spy(self, w):
        seen.append(_blas_threads())
        if fail and w is not None:
            raise RuntimeError("pass failed")
        return real(self, w)

    monkeypatch.setattr(_backend.NumpyBackend, "normal_equations", spy)
    with threadpool_limits(2, user_api="blas"):
        if fail:
            with pytest.raises(RuntimeError, match="pass failed"):
                MEstimator("huber").fit(X, Y)
        else:
            MEstimator("huber").fit(X, Y)
        assert seen and all(set(s) == {1} for s in seen)
        assert set(_blas_threads()) == {2} and not _parallel.blas_held()


def test_normal_equations_match_the_dense_products():
    from lossgrad.robust._backend import NumpyBackend

    rng = np.random.default_rng(0)
    Xr, yr, w = rng.normal(size=(3000, 4)), rng.normal(size=3000), rng.uniform(size=3000)
    for intercept in (True, False):
        X1 = np.c_[np.ones(3000), Xr] if intercept else Xr
        G, b = NumpyBackend(Xr, yr, intercept).normal_equations(w)
        np.testing.assert_allclose(G, (X1 * w[:, None]).T @ X1, rtol=1e-12)
        np.testing.assert_allclose(b, X1.T @ (w * yr), rtol=1e-12)
        G, b = NumpyBackend(Xr, yr, intercept).normal_equations(None)
        np.testing.assert_allclose(G, X1.T @ X1, rtol=1e-12)
        np.testing.assert_allclose(b, X1.T @ yr, rtol=1e-12)
