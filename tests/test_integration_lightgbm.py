"""lossgrad.integrations.lightgbm: custom objectives reproduce LightGBM's built-ins exactly.

Convention mapping (LightGBM 4.x built-in -> lossgrad):

* ``huber`` (alpha): grad clip(r, -alpha, alpha), hess **1** (not the exact indicator
  1{|r| <= alpha}): ``Huber(delta=alpha)`` with ``hessian="expected"`` (psi'(0) = 1);
* ``fair`` (fair_c): grad c r / (|r| + c), hess c^2 / (|r| + c)^2, the exact ones:
  ``Fair(c=fair_c)`` with ``hessian="exact"``;
* ``multiclass``: grad p - y, hess K/(K-1) p (1 - p): ``cross_entropy`` with
  ``hessian="exact", hessian_scale=K/(K-1)``.

A custom objective starts from score 0 (no boost_from_average): the built-in runs with
``boost_from_average=False``, or both runs get the same ``init_score``.
"""

from __future__ import annotations

import inspect

import lightgbm as lgb
import numpy as np
import pytest

import lossgrad
from lossgrad.integrations import lightgbm as lgl

P = {"verbose": -1, "num_leaves": 7, "learning_rate": 0.3, "min_data_in_leaf": 5, "deterministic": True,
     "num_threads": 1, "force_row_wise": True, "seed": 0}
ROUNDS = 6


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = 3 * X[:, 0] + np.sin(X[:, 1]) + rng.standard_t(2, 300)
    yc = rng.integers(0, 3, 300).astype(float)
    yc[X[:, 1] > 0.5] = 2
    w = rng.uniform(0.2, 3.0, 300)
    return X, y, yc, w


def _train(X, y, params, objective=None, init_score=None, weight=None):
    ds = lgb.Dataset(X, y, weight=weight, init_score=init_score, params={"verbose": -1})
    p = dict(params)
    if objective is not None:
        p["objective"] = objective
    return lgb.train(p, ds, ROUNDS).predict(X, raw_score=True)


@pytest.mark.parametrize("alpha", [0.9, 2.0])
def test_huber_reproduces_builtin_with_expected_hessian(data, alpha):
    X, y, _, w = data
    loss = lossgrad.get("huber", delta=alpha)
    builtin = _train(X, y, {**P, "objective": "huber", "alpha": alpha, "boost_from_average": False}, weight=w)
    ours = _train(X, y, P, lgl.objective(loss, hessian="expected"), weight=w)
    np.testing.assert_array_equal(ours, builtin)
    # the exact Hessian (0 beyond alpha) is a different algorithm
    exact = _train(X, y, P, lgl.objective(loss, hessian="exact"), weight=w)
    assert np.max(np.abs(exact - builtin)) > 1.0
    # with the optimal constant as init_score on both sides
    c = lgl.init_score(loss, y, w)
    assert c.shape == (300,) and np.all(c == c[0])
    builtin = _train(X, y, {**P, "objective": "huber", "alpha": alpha}, init_score=c, weight=w)
    ours = _train(X, y, P, lgl.objective(loss, hessian="expected"), init_score=c, weight=w)
    np.testing.assert_array_equal(ours, builtin)


@pytest.mark.parametrize("fair_c", [1.0, 3.0])
def test_fair_reproduces_builtin(data, fair_c):
    X, y, _, _ = data
    builtin = _train(X, y, {**P, "objective": "fair", "fair_c": fair_c, "boost_from_average": False})
    ours = _train(X, y, P, lgl.objective(lossgrad.get("fair", c=fair_c)))
    np.testing.assert_array_equal(ours, builtin)


def test_multiclass_reproduces_builtin(data):
    X, _, y, _ = data
    builtin = _train(X, y, {**P, "objective": "multiclass", "num_class": 3, "boost_from_average": False})
    ours = _train(X, y, {**P, "num_class": 3}, lgl.objective("cross_entropy", hessian_scale=3 / 2))
    assert ours.shape == (300, 3)
    np.testing.assert_allclose(ours, builtin, rtol=0, atol=1e-12)
    init = lgl.init_score("cross_entropy", y)
    assert init.shape == (300, 3)
    builtin = _train(X, y, {**P, "objective": "multiclass", "num_class": 3}, init_score=init)
    ours = _train(X, y, {**P, "num_class": 3}, lgl.objective("cross_entropy", hessian_scale=3 / 2), init_score=init)
    np.testing.assert_allclose(ours, builtin, rtol=0, atol=1e-12)


def test_sklearn_api_and_metric(data):
    X, y, yc, w = data
    loss = lossgrad.get("fair", c=1.0)
    kw = {"n_estimators": ROUNDS, "num_leaves": 7, "learning_rate": 0.3, "min_child_samples": 5, "verbose": -1,
          "deterministic": True, "n_jobs": 1, "force_row_wise": True}
    builtin = lgb.LGBMRegressor(objective="fair", fair_c=1.0, boost_from_average=False, **kw).fit(X, y, sample_weight=w)
    ours = lgb.LGBMRegressor(objective=lgl.objective(loss), **kw)
    # LightGBM 4.7 added eval_X/eval_y and deprecated eval_set; earlier 4.x have only eval_set
    evals = {"eval_X": (X,), "eval_y": (y,)} if "eval_X" in inspect.signature(lgb.LGBMRegressor.fit).parameters \
        else {"eval_set": [(X, y)]}
    ours.fit(X, y, sample_weight=w, eval_sample_weight=[w], eval_metric=lgl.metric(loss), **evals)
    np.testing.assert_array_equal(ours.predict(X), builtin.predict(X))
    recorded = ours.evals_result_["training"]["lossgrad-fair"]
    # LightGBM's training scores accumulate leaf outputs in its own order: equal to 1e-7
    assert recorded[-1] == pytest.approx(float(loss(y, ours.predict(X), sample_weight=w)), rel=1e-7)
    assert recorded[0] > recorded[-1]
    clf_builtin = lgb.LGBMClassifier(objective="multiclass", boost_from_average=False, **kw).fit(X, yc.astype(int))
    clf = lgb.LGBMClassifier(objective=lgl.objective("cross_entropy", hessian_scale=1.5), **kw).fit(X, yc.astype(int))
    np.testing.assert_allclose(clf.predict(X, raw_score=True), clf_builtin.predict(X, raw_score=True), atol=1e-12)


@pytest.mark.filterwarnings("ignore:Parameter n_jobs will be ignored")
def test_dask_equals_single_machine():
    import logging

    import dask.array as da
    import lightgbm.dask as dlgb
    from distributed import Client, LocalCluster

    # Data-parallel LightGBM finds each feature's bin boundaries on one worker's rows;
    # with features on a grid that every worker sees whole, the bins, hence the summed
    # histograms and the trees, are those of one machine: the results must be equal.
    rng = np.random.default_rng(0)
    X = np.round(3 * rng.normal(size=(300, 4))) / 3
    y = 3 * X[:, 0] + np.sin(X[:, 1]) + rng.standard_t(2, 300)
    obj = lgl.objective(lossgrad.get("huber", delta=1.0), hessian="expected")
    kw = {"n_estimators": ROUNDS, "num_leaves": 7, "learning_rate": 0.3, "min_child_samples": 5, "verbose": -1,
          "deterministic": True, "force_row_wise": True, "tree_learner": "data", "min_data_in_bin": 1}
    single = lgb.LGBMRegressor(objective=obj, n_jobs=1, **kw).fit(X, y).predict(X)
    with LocalCluster(n_workers=2, processes=False, threads_per_worker=1, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        dX, dy = da.from_array(X, chunks=(150, 4)), da.from_array(y, chunks=150)
        dist = dlgb.DaskLGBMRegressor(objective=obj, client=client, **kw).fit(dX, dy).predict(dX).compute()
        builtin = dlgb.DaskLGBMRegressor(objective="huber", alpha=1.0, boost_from_average=False, client=client,
                                         **kw).fit(dX, dy).predict(dX).compute()
    np.testing.assert_allclose(dist, single, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dist, builtin, rtol=0, atol=1e-12)


def test_bad_input_clear_errors(data):
    X, y, yc, _ = data
    with pytest.raises(ValueError, match="no gradient/Hessian"):
        lgl.objective("zero_one")
    with pytest.raises(ValueError, match="hessian_scale"):
        lgl.objective("cross_entropy", hessian_scale=-1.0)
    with pytest.raises(ValueError, match="num_class"):  # row loss, 1-D predictions
        _train(X, yc, P, lgl.objective("cross_entropy"))
    with pytest.raises(ValueError, match="y_true"):
        _train(X, y, P, lgl.objective("gamma"))
