"""Ranking losses as XGBoost / LightGBM objectives over query groups.

Oracles: the loss itself on the groups as padded lists (whose Hessians are checked
against PyTorch in test_ranking_hessian.py), scikit-learn's ndcg_score for the trained
models (through examples/engine_ranking.py, whose queries they train on), and the engines' built-in ranking objectives trained on the same data
(rank:pairwise, rank_xendcg) as the quality to reach.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad.integrations import _boosting_ranking as R
from lossgrad.integrations import lightgbm as lgl
from lossgrad.integrations import xgboost as lgx
from lossgrad.losses.ranking import XENDCG, ListNet, RankNet

SIZES = np.array([3, 1, 5, 2, 7, 4])


def _flat(seed=0, sizes=SIZES):
    rng = np.random.default_rng(seed)
    n = int(sizes.sum())
    return rng.integers(0, 4, n).astype(float), rng.normal(size=n)


def _padded(y, f, sizes, values=None):
    """The groups as padded lists, written out with a loop (independently of the adapter)."""
    width = int(sizes.max())
    s, r = np.zeros((sizes.size, width)), np.zeros((sizes.size, width))
    m = np.zeros((sizes.size, width), dtype=bool)
    extra = np.zeros((sizes.size, width)) if values is not None else None
    start = 0
    for q, k in enumerate(sizes):
        s[q, :k], r[q, :k], m[q, :k] = f[start:start + k], y[start:start + k], True
        if values is not None:
            extra[q, :k] = values[start:start + k]
        start += k
    return s, r, m, extra


def _unpad(a, sizes):
    return np.concatenate([a[q, :k] for q, k in enumerate(sizes)])


@pytest.mark.parametrize("loss", [ListNet(), RankNet(), RankNet(sigma=2.0, normalize=False),
                                  lossgrad.get("approx_ndcg")], ids=repr)
@pytest.mark.parametrize("chunk_entries", [R._CHUNK_ENTRIES, 40])
def test_objective_equals_the_loss_on_padded_groups(loss, chunk_entries, monkeypatch):
    monkeypatch.setattr(R, "_CHUNK_ENTRIES", chunk_entries)  # 40: the groups split over several chunks
    y, f = _flat()
    g, h = lgx.objective(loss).grad_hess(y, f, None, SIZES)
    keep = SIZES >= 2  # a single document is no list: grad 0, hess 0
    s, r, m, _ = _padded(y, f, SIZES)
    gl, hl = loss.grad_hess_diag(scores=s[keep], relevance=r[keep], mask=m[keep])
    expect_g, expect_h = np.zeros((SIZES.size, s.shape[1])), np.zeros((SIZES.size, s.shape[1]))
    expect_g[keep], expect_h[keep] = gl["scores"], hl["scores"]
    np.testing.assert_allclose(g, _unpad(expect_g, SIZES), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(h, _unpad(expect_h, SIZES), rtol=1e-13, atol=1e-15)
    assert g[3] == 0.0 and h[3] == 0.0  # the document of the one-document group


def test_weights_per_group_and_per_document():
    y, f = _flat(1)
    obj = lgx.objective(ListNet())
    g0, h0 = obj.grad_hess(y, f, None, SIZES)
    wq = np.arange(1.0, SIZES.size + 1)
    gq, hq = obj.grad_hess(y, f, wq, SIZES)
    per_doc = np.repeat(wq, SIZES)
    np.testing.assert_allclose(gq, g0 * per_doc, rtol=1e-14)
    np.testing.assert_allclose(hq, h0 * per_doc, rtol=1e-14)
    wd = np.linspace(0.5, 2.0, f.size)
    gd, hd = obj.grad_hess(y, f, wd, SIZES)
    np.testing.assert_allclose(gd, g0 * wd, rtol=1e-14)
    np.testing.assert_allclose(hd, h0 * wd, rtol=1e-14)
    with pytest.raises(ValueError, match="one entry per query group"):
        obj.grad_hess(y, f, np.ones(4), SIZES)


def test_hessian_choices():
    y, f = _flat(2)
    s, r, m, _ = _padded(y, f, SIZES)
    keep = SIZES >= 2
    p = np.where(m, np.exp(s), 0.0)
    p = _unpad(p / p.sum(1, keepdims=True), SIZES)
    single = np.repeat(~keep, SIZES)
    _, h = lgx.objective(ListNet(), hessian="upper_bound").grad_hess(y, f, None, SIZES)
    np.testing.assert_allclose(h[~single], 2 * p[~single] * (1 - p[~single]), rtol=1e-13)  # XGBoost's 2p(1-p)
    _, h = lgx.objective(ListNet()).grad_hess(y, f, None, SIZES)
    np.testing.assert_allclose(h[~single], p[~single] * (1 - p[~single]), rtol=1e-13)  # LightGBM's p(1-p)
    _, h = lgx.objective("approx_ndcg", hessian="floor", floor=1e-3).grad_hess(y, f, None, SIZES)
    assert h.min() >= 1e-3 and h[single].tolist() == [1e-3]
    _, h2 = lgx.objective(ListNet(), hessian_scale=2.0).grad_hess(y, f, None, SIZES)
    np.testing.assert_allclose(h2, 2 * lgx.objective(ListNet()).grad_hess(y, f, None, SIZES)[1])
    with pytest.raises(ValueError, match="'expected' is not defined for the ranking loss"):
        lgx.objective("ranknet", hessian="expected")


@pytest.mark.parametrize("name", ["approx_ndcg", "listnet", "ranknet", "lambdaloss"])
def test_upper_bound_is_the_absolute_row_sums_of_the_blocks(name, monkeypatch):
    """hessian="upper_bound" takes grad_hess_bound (no (n, L, L) blocks), equal to the row
    sums of |hess| that a loss without it falls back on; weights per group."""
    sizes = np.array([3, 1, 5, 2, 7, 4, 29, 12] * 12)  # 96 groups: ApproxNDCG's lanes and loop per list
    y, f = _flat(5, sizes)
    w = np.linspace(0.5, 2.0, sizes.size)
    obj = lgx.objective(name, hessian="upper_bound")
    g, h = obj.grad_hess(y, f, w, sizes)
    from lossgrad.losses._ranking_base import RankingLoss

    monkeypatch.delattr(RankingLoss, "grad_hess_bound")  # as a loss without it: grad, then the blocks' row sums
    assert not hasattr(obj.loss, "grad_hess_bound")
    g0, h0 = obj.grad_hess(y, f, w, sizes)
    np.testing.assert_allclose(g, g0, rtol=1e-13, atol=1e-15 * np.abs(g0).max())
    np.testing.assert_allclose(h, h0, rtol=1e-13, atol=1e-15 * np.abs(h0).max())
    assert h.min() >= 0.0 and np.all(h[np.repeat(sizes < 2, sizes)] == 0.0)


def test_xendcg_draws_a_fresh_gamma_every_round_from_its_seed():
    y, f = _flat(3)
    obj = lgl.objective(XENDCG(seed=4))
    first, second = obj.grad_hess(y, f, None, SIZES)[0], obj.grad_hess(y, f, None, SIZES)[0]
    assert not np.allclose(first, second)
    again = lgl.objective(XENDCG(seed=4))
    np.testing.assert_array_equal(again.grad_hess(y, f, None, SIZES)[0], first)
    draws = np.random.default_rng(4)
    draws.random(f.size)
    gamma = draws.random(f.size)  # the second round's draw, one value per document
    keep = SIZES >= 2
    s, r, m, gm = _padded(y, f, SIZES, gamma)
    expect = np.zeros_like(s)
    expect[keep] = XENDCG().grad(scores=s[keep], relevance=r[keep], mask=m[keep], gamma=gm[keep])["scores"]
    np.testing.assert_allclose(second, _unpad(expect, SIZES), rtol=1e-13, atol=1e-15)


def test_groups_and_intercepts():
    y, f = _flat(4)
    obj = lgx.objective("listnet")
    ptr = np.concatenate([[0], np.cumsum(SIZES)])
    np.testing.assert_array_equal(obj.grad_hess(y, f, None, ptr, group_pointers=True)[0],
                                  obj.grad_hess(y, f, None, SIZES)[0])
    with pytest.raises(ValueError, match="needs the query groups"):
        obj(y, f)  # scikit-learn signature: XGBoost's wrapper passes no groups
    with pytest.raises(ValueError, match="adding up to the 22 predictions"):
        obj.grad_hess(y, f, None, [3, 4])
    assert lgx.base_score("ranknet", y) == 0.0
    np.testing.assert_array_equal(lgl.init_score("listnet", y), np.zeros(y.size))
    with pytest.raises(TypeError, match="batch loss"):
        lgx.objective("triplet")


# ------------------------------------------------------------------ training


def _example():
    """examples/engine_ranking.py: its synthetic queries and NDCG@10 (scikit-learn's ndcg_score)."""
    spec = importlib.util.spec_from_file_location(
        "engine_ranking", Path(__file__).resolve().parents[1] / "examples" / "engine_ranking.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLE = _example()
_mean_ndcg = EXAMPLE.mean_ndcg


@pytest.fixture(scope="module")
def ranking_split():
    return EXAMPLE.queries(0, n_queries=120), EXAMPLE.queries(1, n_queries=120)


def test_xgboost_trains_a_ranker_with_lossgrad_objectives(ranking_split):
    import xgboost as xgb

    (X, y, sizes), (Xt, yt, st) = ranking_split
    params = {"tree_method": "hist", "eta": 0.2, "max_depth": 3, "nthread": 1}
    builtin = xgb.train({**params, "objective": "rank:pairwise"}, xgb.DMatrix(X, y, group=sizes), 40)
    reference = _mean_ndcg(yt, builtin.predict(xgb.DMatrix(Xt)), st)
    random = _mean_ndcg(yt, np.random.default_rng(0).normal(size=yt.size), st)
    qid = np.repeat(np.arange(sizes.size), sizes)
    for name, dtrain in (("ranknet", xgb.DMatrix(X, y, group=sizes)), ("listnet", xgb.DMatrix(X, y, qid=qid))):
        history: dict = {}
        booster = xgb.train(params, dtrain, 40, obj=lgx.objective(name), evals=[(dtrain, "train")],
                            custom_metric=lgx.metric(name), evals_result=history)
        ours = _mean_ndcg(yt, booster.predict(xgb.DMatrix(Xt)), st)
        curve = history["train"][f"lossgrad-{name}"]
        assert curve[-1] < 0.9 * curve[0]  # the training loss goes down
        assert ours > random + 0.2 and ours > reference - 0.03, (name, ours, reference, random)


def test_lightgbm_ranker_with_lossgrad_objectives_matches_its_builtin(ranking_split):
    import lightgbm as lgb

    (X, y, sizes), (Xt, yt, st) = ranking_split
    common = dict(n_estimators=40, learning_rate=0.2, num_leaves=7, verbose=-1, n_jobs=1)
    builtin = lgb.LGBMRanker(objective="rank_xendcg", **common).fit(X, y, group=sizes)
    reference = _mean_ndcg(yt, builtin.predict(Xt), st)
    ranker = lgb.LGBMRanker(objective=lgl.objective("xendcg"), **common)
    ranker.fit(X, y, group=sizes, eval_X=(X,), eval_y=(y,), eval_group=[sizes], eval_metric=lgl.metric("listnet"))
    ours = _mean_ndcg(yt, ranker.predict(Xt), st)
    curve = ranker.evals_result_["training"]["lossgrad-listnet"]  # the eval set is the training set
    assert len(curve) == 40 and curve[-1] < curve[0]
    assert abs(ours - reference) < 0.03, (ours, reference)
    booster = lgb.train({"objective": lgl.objective("ranknet"), "num_leaves": 7, "learning_rate": 0.2,
                         "verbose": -1, "num_threads": 1}, lgb.Dataset(X, y, group=sizes), 40)
    assert _mean_ndcg(yt, booster.predict(Xt), st) > reference - 0.03
