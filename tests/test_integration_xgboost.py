"""lossgrad.integrations.xgboost: custom objectives reproduce XGBoost's built-ins.

Convention mapping (XGBoost built-in -> lossgrad):

* ``reg:squarederror``: grad f - y, hess 1, i.e. half the squared error:
  ``0.5 * lossgrad.get("squared_error")`` (lossgrad's squared_error is r^2: grad 2r, hess 2);
* ``binary:logistic``: grad p - y, hess p(1 - p) on the logit: ``logistic`` (labels {0, 1}),
  ``hessian="exact"``; built-in base_score is a probability, ours the logit of it;
* ``multi:softprob``: grad p - y, hess 2 p (1 - p): ``cross_entropy`` with
  ``hessian="upper_bound"`` (absolute row sums of the exact Hessian diag(p) - p p^T);
* ``reg:pseudohubererror`` (huber_slope = delta): ``pseudo_huber(delta)``, exact Hessian.

XGBoost's predictions are float32, so "reproduce" means |difference| <= 1e-5.  Where the
built-in would estimate its own intercept, it is handed the same start as ours (its
estimate differs across XGBoost versions: a Newton step for binary:logistic before 3.0,
one intercept for every class of multi:softprob before 3.1).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

import lossgrad
from lossgrad.integrations import xgboost as lgx

P = {"tree_method": "hist", "max_depth": 3, "eta": 0.3, "nthread": 1}
ROUNDS = 6


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y_reg = 3 * X[:, 0] + np.sin(X[:, 1]) + rng.standard_t(2, 300)
    y_bin = (X[:, 0] + rng.normal(0, 1, 300) > 0.3).astype(float)
    y_cls = rng.integers(0, 3, 300).astype(float)
    y_cls[X[:, 1] > 0.5] = 2
    w = rng.uniform(0.2, 3.0, 300)
    return X, y_reg, y_bin, y_cls, w


def _margin(booster, X, base_margin=None):
    return booster.predict(xgb.DMatrix(X, base_margin=base_margin), output_margin=True)


def test_squared_error_reproduces_reg_squarederror_with_weights(data):
    X, y, _, _, w = data
    half_se = 0.5 * lossgrad.get("squared_error")
    # the built-in estimates its intercept (weighted mean); base_score gives ours the same start
    builtin = xgb.train({**P, "objective": "reg:squarederror"}, xgb.DMatrix(X, y, weight=w), ROUNDS)
    start = float(json.loads(builtin.save_config())["learner"]["learner_model_param"]["base_score"].strip("[]"))
    bs = lgx.base_score(half_se, y, w)
    assert bs == pytest.approx(np.average(y, weights=w), rel=1e-12)
    assert bs == pytest.approx(start, rel=1e-6)
    ours = xgb.train({**P, "base_score": bs}, xgb.DMatrix(X, y, weight=w), ROUNDS, obj=lgx.objective(half_se))
    assert np.max(np.abs(_margin(builtin, X) - _margin(ours, X))) <= 1e-5
    # the un-halved loss is a different objective: with lambda > 0 its steps differ
    other = xgb.train({**P, "base_score": bs}, xgb.DMatrix(X, y, weight=w), ROUNDS, obj=lgx.objective("squared_error"))
    assert np.max(np.abs(_margin(builtin, X) - _margin(other, X))) > 1e-3


def test_logistic_reproduces_binary_logistic(data):
    X, _, y, _, _ = data
    bs = lgx.base_score("logistic", y)
    assert bs == pytest.approx(np.log(y.mean() / (1 - y.mean())), rel=1e-10)
    # the built-in's base_score is a probability: y.mean(), the sigmoid of ours
    builtin = xgb.train({**P, "objective": "binary:logistic", "base_score": y.mean()}, xgb.DMatrix(X, y), ROUNDS)
    ours = xgb.train({**P, "base_score": bs}, xgb.DMatrix(X, y), ROUNDS, obj=lgx.objective("logistic"))
    assert np.max(np.abs(_margin(builtin, X) - _margin(ours, X))) <= 1e-5


def test_cross_entropy_reproduces_multi_softprob(data):
    X, _, _, y, _ = data
    bm = lgx.base_margin("cross_entropy", y)
    assert bm.shape == (300, 3)
    builtin = xgb.train({**P, "objective": "multi:softprob", "num_class": 3}, xgb.DMatrix(X, y, base_margin=bm), ROUNDS)
    ours = xgb.train({**P, "num_class": 3}, xgb.DMatrix(X, y, base_margin=bm), ROUNDS,
                     obj=lgx.objective("cross_entropy", hessian="upper_bound"))
    assert np.max(np.abs(_margin(builtin, X, bm) - _margin(ours, X, bm))) <= 1e-5
    # the exact diagonal p(1 - p) is half XGBoost's: different (longer) steps
    exact = xgb.train({**P, "num_class": 3}, xgb.DMatrix(X, y, base_margin=bm), ROUNDS,
                      obj=lgx.objective("cross_entropy", hessian="exact"))
    assert np.max(np.abs(_margin(builtin, X, bm) - _margin(exact, X, bm))) > 1e-2


def test_pseudo_huber_reproduces_reg_pseudohubererror(data):
    X, y, _, _, _ = data
    loss = lossgrad.get("pseudo_huber", delta=1.5)
    bs = lgx.base_score(loss, y)  # the exact optimum (XGBoost's own estimate is approximate)
    builtin = xgb.train({**P, "objective": "reg:pseudohubererror", "huber_slope": 1.5, "base_score": bs},
                        xgb.DMatrix(X, y), ROUNDS)
    ours = xgb.train({**P, "base_score": bs}, xgb.DMatrix(X, y), ROUNDS, obj=lgx.objective(loss))
    assert np.max(np.abs(_margin(builtin, X) - _margin(ours, X))) <= 1e-5
    g = np.sum(loss.grad(y, np.full_like(y, bs)))
    assert abs(g) <= 1e-9 * len(y)  # the optimal constant: the gradients sum to zero


def _leaves(node):
    return [node["leaf"]] if "leaf" in node else [v for c in node["children"] for v in _leaves(c)]


def test_huber_hessian_options_on_outliers():
    """Huber's exact Hessian is 0 beyond delta.  Started away from the data (every
    |residual| > delta) every node has sum(h) = 0 < min_child_weight: XGBoost refuses
    every split and sets the leaf to 0, so the model never moves (dmlc/xgboost #2602,
    #7674).  "expected" (psi'(0) = 1) splits and moves by at most eta * delta per round;
    "floor" moves by eta * sum|g| / (n floor + lambda) per leaf."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    y = 100.0 + 20 * X[:, 0] + rng.normal(0, 0.5, 300)
    y[:15] += rng.choice([-200.0, 200.0], 15)  # outliers
    loss = lossgrad.get("huber", delta=1.0)
    risk, first = {}, {}
    for h in ("exact", "floor", "expected", "upper_bound"):
        b = xgb.train({**P, "base_score": 0.0}, xgb.DMatrix(X, y), 20, obj=lgx.objective(loss, hessian=h, floor=1e-2))
        risk[h] = float(loss(y, _margin(b, X).astype(float)))
        first[h] = _leaves(json.loads(b.get_dump(dump_format="json")[0]))
    start = float(loss(y, np.zeros_like(y)))
    assert first["exact"] == [0.0] and risk["exact"] == pytest.approx(start, rel=1e-12)  # stalled
    g = float(np.sum(loss.grad(y, np.zeros_like(y))))  # -n_in * delta: every residual beyond delta
    assert first["floor"] == pytest.approx([-0.3 * g / (300 * 1e-2 + 1.0)], rel=1e-6)
    assert len(first["expected"]) > 1 and max(map(abs, first["expected"])) <= 0.3 * 1.0 + 1e-6
    assert first["upper_bound"] == first["expected"]  # Huber: sup psi' = psi'(0) = 1
    for h in ("floor", "expected"):
        assert risk[h] < 0.95 * start, (h, risk)
    # from the optimal constant (lgx.base_score) the in-band points give curvature and exact trains too
    bs = lgx.base_score(loss, y)
    b = xgb.train({**P, "base_score": bs}, xgb.DMatrix(X, y), 20, obj=lgx.objective(loss, hessian="exact"))
    assert float(loss(y, _margin(b, X).astype(float))) < 0.8 * float(loss(y, np.full_like(y, bs)))


def test_sklearn_api_regressor_and_classifier(data):
    X, y, _, yc, w = data
    half_se = 0.5 * lossgrad.get("squared_error")
    kw = {"n_estimators": ROUNDS, "max_depth": 3, "learning_rate": 0.3, "tree_method": "hist", "n_jobs": 1}
    builtin = xgb.XGBRegressor(objective="reg:squarederror", **kw).fit(X, y, sample_weight=w)
    ours = xgb.XGBRegressor(objective=lgx.objective(half_se), base_score=lgx.base_score(half_se, y, w), **kw)
    ours.fit(X, y, sample_weight=w)
    assert np.max(np.abs(builtin.predict(X) - ours.predict(X))) <= 1e-5
    bm = lgx.base_margin("cross_entropy", yc)
    builtin = xgb.XGBClassifier(objective="multi:softprob", **kw).fit(X, yc.astype(int), base_margin=bm)
    ours = xgb.XGBClassifier(objective=lgx.objective("cross_entropy", hessian="upper_bound"), **kw)
    ours.fit(X, yc.astype(int), base_margin=bm)
    np.testing.assert_allclose(ours.predict(X, output_margin=True, base_margin=bm),
                               builtin.predict(X, output_margin=True, base_margin=bm), atol=1e-5)


def test_multi_output_regression(data):
    X, y, _, _, _ = data
    Y = np.column_stack([y, -0.5 * y + X[:, 2]])
    half_se = 0.5 * lossgrad.get("squared_error")
    bm = lgx.base_margin(half_se, Y)
    assert bm.shape == Y.shape
    builtin = xgb.train({**P, "objective": "reg:squarederror"}, xgb.DMatrix(X, Y, base_margin=bm), ROUNDS)
    ours = xgb.train(P, xgb.DMatrix(X, Y, base_margin=bm), ROUNDS, obj=lgx.objective(half_se))
    np.testing.assert_allclose(_margin(ours, X, bm), _margin(builtin, X, bm), atol=1e-5)


def test_metric_matches_loss_of_predictions(data):
    X, y, _, _, w = data
    loss = lossgrad.get("huber", delta=2.0)
    bs = lgx.base_score(loss, y, w)
    d = xgb.DMatrix(X, y, weight=w)
    hist: dict = {}
    b = xgb.train({**P, "base_score": bs, "disable_default_eval_metric": 1}, d, ROUNDS, obj=lgx.objective(loss, "expected"),
                  evals=[(d, "train")], custom_metric=lgx.metric(loss), evals_result=hist, verbose_eval=False)
    last = hist["train"]["lossgrad-huber"][-1]
    assert last == pytest.approx(float(loss(y, _margin(b, X).astype(float), sample_weight=w)), rel=1e-5)
    assert hist["train"]["lossgrad-huber"][0] > last


def test_focal_gradient_is_with_respect_to_the_raw_score():
    """LightGBM #2052: focal loss differentiated w.r.t. the probability is wrong for boosting;
    the objective's (grad, hess) are derivatives in the raw score (checked by differences)."""
    loss = lossgrad.get("binary_focal", gamma=2.0)
    obj = lgx.objective(loss, hessian="exact")
    y = np.array([0.0, 1.0, 1.0, 0.0])
    f = np.array([-1.3, 0.4, 2.2, 0.9])
    g, h = obj(y, f)
    e = 1e-6
    num_g = (loss.value(y, f + e) - loss.value(y, f - e)) / (2 * e)
    num_h = (loss.grad(y, f + e) - loss.grad(y, f - e)) / (2 * e)
    np.testing.assert_allclose(g, num_g, rtol=1e-7)
    np.testing.assert_allclose(h, num_h, rtol=1e-6)


def test_dask_equals_single_machine(data):
    import dask.array as da
    import xgboost.dask as dxgb
    from distributed import Client, LocalCluster

    X, y, _, _, w = data
    loss = lossgrad.get("huber", delta=1.0)
    obj = lgx.objective(loss, hessian="expected")
    params = {**P, "base_score": lgx.base_score(loss, y, w)}
    single = _margin(xgb.train(params, xgb.DMatrix(X, y, weight=w), ROUNDS, obj=obj), X)
    with LocalCluster(n_workers=2, processes=False, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        dX, dy, dw = da.from_array(X, chunks=(150, 4)), da.from_array(y, chunks=150), da.from_array(w, chunks=150)
        out = dxgb.train(client, params, dxgb.DaskDMatrix(client, dX, dy, weight=dw), ROUNDS, obj=obj)
        dist = dxgb.predict(client, out["booster"], dX, output_margin=True).compute()
    # XGBoost's distributed hist merges per-worker quantile sketches: equal up to float32 rounding here
    np.testing.assert_allclose(dist, single, atol=1e-5)


def test_base_scores_are_the_optimal_constants():
    rng = np.random.default_rng(3)
    y = rng.exponential(2.0, 101)
    w = rng.uniform(0.5, 2.0, 101)
    assert lgx.base_score("absolute_error", y) == pytest.approx(np.median(y), abs=1e-9)
    assert lgx.base_score("poisson", y, w) == pytest.approx(np.log(np.average(y, weights=w)), rel=1e-10)
    q = lgx.base_score(lossgrad.get("quantile", tau=0.9), y)
    assert np.mean(y < q - 1e-9) <= 0.9 <= np.mean(y <= q + 1e-9)  # a 0.9-quantile
    with pytest.raises(ValueError, match="not attained"):
        lgx.base_score("logistic", np.ones(10))
    with pytest.raises(ValueError, match="base_margin"):
        lgx.base_score("cross_entropy", np.array([0.0, 1.0]))


def test_expected_hessian_is_the_fisher_information():
    f = np.array([-1.0, 0.2, 1.5])
    y = np.array([0.5, 2.0, 7.0])
    _, h = lgx.objective("gamma", hessian="expected")(y, f)
    np.testing.assert_allclose(h, 1.0, rtol=1e-13)  # y exp(-f) at y = mu = exp(f)
    _, h = lgx.objective("poisson", hessian="expected")(y, f)
    np.testing.assert_allclose(h, np.exp(f), rtol=1e-13)
    _, h = lgx.objective(lossgrad.get("huber", delta=0.5), hessian="expected")(y, f)
    np.testing.assert_array_equal(h, 1.0)  # psi'(0)
    with pytest.raises(ValueError, match="not affine"):
        lgx.objective(lossgrad.get("binary_focal", gamma=1.0, alpha=0.25), hessian="expected")
    with pytest.raises(ValueError, match="psi'"):
        lgx.objective("absolute_error", hessian="expected")


def test_bad_input_clear_errors(data):
    X, y, yb, yc, _ = data
    with pytest.raises(ValueError, match="no gradient/Hessian"):
        lgx.objective("zero_one")
    with pytest.raises(TypeError, match="batch loss"):
        lgx.objective("triplet")
    with pytest.raises(ValueError, match="hessian must be one of"):
        lgx.objective("huber", hessian="fisher")
    with pytest.raises(ValueError, match="upper_bound"):
        lgx.objective("poisson", hessian="upper_bound")
    with pytest.raises(ValueError, match="expected"):
        lgx.objective("hinge", hessian="expected")
    with pytest.raises(ValueError, match="floor"):
        lgx.objective("huber", hessian="floor", floor=0.0)
    # a row loss with one score per sample: num_class forgotten
    with pytest.raises(ValueError, match="num_class"):
        xgb.train(P, xgb.DMatrix(X, yc), 1, obj=lgx.objective("cross_entropy"))
    # labels outside the loss's domain
    with pytest.raises(ValueError, match="y_true"):
        xgb.train(P, xgb.DMatrix(X, yc), 1, obj=lgx.objective("logistic"))
    with pytest.raises(ValueError, match="y_true"):
        xgb.train(P, xgb.DMatrix(X, y), 1, obj=lgx.objective("poisson"))


def test_objective_and_metric_run_the_kernels_in_the_calling_thread_below_the_bound(monkeypatch):
    """XGBoost's spinning OpenMP threads make a split kernel wait: below SERIAL_BELOW
    predictions the adapter sets kernel_threads=1, unless the user set it."""
    import xgboost as xgb

    from lossgrad.integrations import _boosting

    seen = []
    original = _boosting.BoostingObjective.grad_hess

    def spy(self, *args, **kwargs):
        seen.append(lossgrad.get_config().kernel_threads)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_boosting.BoostingObjective, "grad_hess", spy)
    X = np.arange(40.0)[:, None]
    dtrain = xgb.DMatrix(X, np.sin(X[:, 0]))
    obj = lgx.objective("huber")
    obj(np.zeros(40), dtrain)
    obj(np.sin(X[:, 0]), np.zeros(40))
    with lossgrad.config_context(kernel_threads=2):
        obj(np.zeros(40), dtrain)
    monkeypatch.setattr(lgx, "SERIAL_BELOW", 10)
    obj(np.zeros(40), dtrain)
    assert seen == [1, 1, 2, None]
    assert lossgrad.get_config().kernel_threads is None  # restored after each call
