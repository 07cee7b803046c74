"""Robust gradient descent: robust_mean against its definitions and peers, and the estimators' gradient= option.

Oracles: NumPy's mean and median, scipy.stats.trim_mean, statsmodels'
``estimate_location`` (Huber's T and Tukey's biweight at the MAD scale) column by column,
and the geometric median as the minimiser of the sum of distances found by
scipy.optimize.  Training: contaminated and heavy-tailed regressions whose true
coefficients are known.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import optimize, stats

from lossgrad.models import LinearClassifier, LinearRegressor, SoftmaxClassifier
from lossgrad.robust import geometric_median, robust_mean


def _sample(seed=0, n=200, p=4):
    rng = np.random.default_rng(seed)
    return rng.standard_t(3, size=(n, p)) + np.arange(p)


def test_mean_and_the_limits_of_median_of_means():
    a = _sample()
    np.testing.assert_allclose(robust_mean(a, "mean"), a.mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(robust_mean(a, "median_of_means", n_blocks=1), a.mean(axis=0), rtol=1e-14)
    coordinate = robust_mean(a, "median_of_means", n_blocks=len(a), median="coordinate")
    np.testing.assert_allclose(coordinate, np.median(a, axis=0), rtol=1e-15)  # one sample a block
    blocks = [a[b].mean(axis=0) for b in np.array_split(np.random.default_rng(3).permutation(len(a)), 7)]
    np.testing.assert_allclose(robust_mean(a, "median_of_means", n_blocks=7, median="coordinate", seed=3),
                               np.median(blocks, axis=0), rtol=1e-15)


def test_geometric_median_minimises_the_sum_of_distances():
    rng = np.random.default_rng(1)
    starts_on_a_point = np.array([[2.0, -2.0], [-3.0, 3.0], [-3.0, 0.0], [-3.0, -1.0], [0.0, -1.0]])  # not the median
    for points in (rng.normal(size=(25, 3)), np.r_[rng.normal(size=(6, 2)), np.zeros((1, 2))], starts_on_a_point):
        m = geometric_median(points, tol=1e-14, max_iter=10_000)

        def total(z, points=points):
            return np.sum(np.linalg.norm(points - z, axis=1))

        ref = optimize.minimize(total, points.mean(axis=0), method="Nelder-Mead",
                                options={"xatol": 1e-12, "fatol": 1e-15, "maxiter": 50_000})
        assert total(m) <= ref.fun + 1e-12
        np.testing.assert_allclose(m, ref.x, atol=1e-6)
    # the median is a data point (Weiszfeld alone would divide by 0 there): a plus sign
    plus = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    np.testing.assert_array_equal(geometric_median(plus), [0.0, 0.0])
    angles = np.radians([0.0, 100.0, 200.0])  # twice the origin and three unit vectors whose sum is shorter than 2
    double = np.r_[np.zeros((2, 2)), np.c_[np.cos(angles), np.sin(angles)]]
    np.testing.assert_array_equal(geometric_median(double), [0.0, 0.0])


def test_trimmed_mean_is_scipys():
    a = _sample(2)
    for trim in (0.0, 0.1, 0.25, 0.45):
        np.testing.assert_allclose(robust_mean(a, "trimmed_mean", trim=trim), stats.trim_mean(a, trim, axis=0),
                                   rtol=1e-15)


@pytest.mark.parametrize(("loss", "norm"), [("huber", sm.robust.norms.HuberT()),
                                            ("tukey_biweight", sm.robust.norms.TukeyBiweight())])
def test_m_estimate_is_statsmodels_estimate_location_column_by_column(loss, norm):
    a = _sample(4)
    ours = robust_mean(a, "m_estimate", loss=loss, tol=1e-13, max_iter=500)
    for j in range(a.shape[1]):
        col = a[:, j]
        scale = np.median(np.abs(col - np.median(col))) / stats.norm.ppf(0.75)
        ref = sm.robust.norms.estimate_location(col, scale, norm=norm, maxiter=500, tol=1e-13)
        assert ours[j] == pytest.approx(float(ref), abs=1e-9)


def test_a_coordinate_without_spread_keeps_its_median():
    a = np.c_[np.r_[np.zeros(6), [5.0, 9.0, -4.0]], np.arange(9.0)]
    np.testing.assert_allclose(robust_mean(a, "m_estimate")[0], 0.0)
    assert robust_mean(a[:, 0], "m_estimate") == 0.0  # a 1-d sample gives a 0-d result


def test_outliers_move_the_mean_not_the_robust_estimates():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(400, 3))
    a[rng.choice(400, 8, replace=False)] = 1e6  # 2% gross outliers
    assert np.all(np.abs(robust_mean(a, "mean")) > 1e4)
    for method, kw in [("median_of_means", {"n_blocks": 40}), ("median_of_means", {"n_blocks": 40, "median": "coordinate"}),
                       ("trimmed_mean", {"trim": 0.05}), ("m_estimate", {})]:
        assert np.all(np.abs(robust_mean(a, method, **kw)) < 0.3), (method, kw)


def _contaminated_regression(seed=0, n=400):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    coef = np.array([1.0, -2.0, 0.5])
    y = X @ coef + 1.0 + 0.1 * rng.normal(size=n)
    y[rng.choice(n, n // 10, replace=False)] += 1000.0  # 10% gross outliers in y
    return X, y, coef


@pytest.mark.parametrize(("gradient", "params"), [("median_of_means", {"n_blocks": 81}), ("trimmed_mean", {"trim": 0.2}),
                                                  ("m_estimate", {})])
def test_robust_gradient_descent_recovers_the_coefficients_plain_descent_does_not(gradient, params):
    X, y, coef = _contaminated_regression()
    fit = {"solver": "sgd", "learning_rate": 0.2, "max_iter": 400, "tol": 1e-8}
    plain = LinearRegressor(**fit).fit(X, y)
    robust = LinearRegressor(gradient=gradient, gradient_params=params, **fit).fit(X, y)
    assert np.max(np.abs(plain.coef_ - coef)) > 1.0  # least squares is dragged by the outliers
    assert np.max(np.abs(robust.coef_ - coef)) < 0.05 and abs(robust.intercept_ - 1.0) < 0.1
    assert robust.solver_ == "sgd" and robust.converged_
    assert robust.loss_curve_[-1] == pytest.approx(robust.objective_)  # the curve is the ordinary objective


def test_mean_gradient_is_the_ordinary_estimator_and_auto_picks_sgd():
    X, y, _ = _contaminated_regression(1)
    sw = np.random.default_rng(3).uniform(0.2, 3.0, len(y))
    fit = {"solver": "sgd", "learning_rate": 0.2, "max_iter": 300, "tol": 1e-9}
    a = LinearRegressor(**fit).fit(X, y, sample_weight=sw)
    b = LinearRegressor(gradient="median_of_means", gradient_params={"n_blocks": 1}, **fit).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(b.coef_, a.coef_, rtol=1e-10)  # one block: the mean, so the same steps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert LinearRegressor(gradient="trimmed_mean", max_iter=5).fit(X, y).solver_ == "sgd"


def test_classifiers_and_row_losses_take_robust_gradients():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 2))
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    flipped = y.copy()
    flipped[:15] = 1 - flipped[:15]
    fit = {"solver": "sgd", "learning_rate": 0.5, "max_iter": 300, "tol": 1e-8, "gradient": "trimmed_mean",
           "gradient_params": {"trim": 0.1}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        binary = LinearClassifier(**fit).fit(X, flipped)
        multi = SoftmaxClassifier(**fit).fit(X, np.where(X[:, 0] > 1, 2, y))
    assert binary.score(X, y) > 0.95 and binary.coef_[0] > 0 > binary.coef_[1]
    assert multi.score(X, np.where(X[:, 0] > 1, 2, y)) > 0.85


def test_bad_options_name_what_was_expected():
    a = _sample()
    with pytest.raises(ValueError, match="method must be one of"):
        robust_mean(a, "median")
    with pytest.raises(ValueError, match=r"n_blocks must be an integer in \[1, n\]"):
        robust_mean(a, "median_of_means", n_blocks=0)
    with pytest.raises(ValueError, match="n_blocks"):
        robust_mean(a[:5], "median_of_means", n_blocks=6)
    with pytest.raises(ValueError, match="median must be"):
        robust_mean(a, "median_of_means", median="spatial")
    with pytest.raises(ValueError, match=r"trim must lie in \[0, 0.5\)"):
        robust_mean(a, "trimmed_mean", trim=0.5)
    with pytest.raises(TypeError, match="residual loss"):
        robust_mean(a, "m_estimate", loss="logistic")
    with pytest.raises(ValueError, match="finite"):
        robust_mean(np.r_[a[:, 0], np.nan], "mean")
    with pytest.raises(ValueError, match="non-empty"):
        robust_mean(np.zeros((0, 3)))
    X, y, _ = _contaminated_regression()
    with pytest.raises(ValueError, match="gradient must be one of"):
        LinearRegressor(gradient="median").fit(X, y)
    with pytest.raises(ValueError, match="needs a first-order solver"):
        LinearRegressor(gradient="m_estimate", solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="L1 penalty"):
        LinearRegressor(gradient="m_estimate", alpha=0.1, l1_ratio=0.5).fit(X, y)
    with pytest.raises(ValueError, match="gradient_params must be None or a dict"):
        LinearRegressor(gradient="m_estimate", gradient_params=[("trim", 0.1)]).fit(X, y)
