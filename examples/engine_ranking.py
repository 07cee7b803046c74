"""Learning to rank with lossgrad's ranking losses as XGBoost and LightGBM objectives.

Synthetic queries (5 to 29 documents each, graded relevance 0-4 from a non-linear score
of 8 features), 300 queries to train on and 300 others to measure NDCG@10 on
(scikit-learn's ``ndcg_score``, averaged over the queries with a relevant document).
Each lossgrad objective hands the engine the exact gradient and the diagonal of the
exact Hessian block of every query (ApproxNDCG's diagonal can be negative: its
objective uses the absolute row sums, ``hessian="upper_bound"``); the engines'
built-in ranking objectives run on the same data, same trees, same rounds.  The list
kernels (RankNet, LambdaLoss, ListNet / XE-NDCG, ApproxNDCG) are loaded (compiled on the
very first run) before the clock starts.

    python examples/engine_ranking.py
"""

from __future__ import annotations

import time

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.metrics import ndcg_score

from lossgrad.integrations import lightgbm as lgl
from lossgrad.integrations import xgboost as lgx

ROUNDS = 100


def queries(seed: int, n_queries: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 30, n_queries)
    X = rng.normal(size=(int(sizes.sum()), 8))
    latent = X[:, 0] + 0.5 * X[:, 1] ** 2 - 0.7 * X[:, 2] * X[:, 3] + 0.3 * rng.normal(size=X.shape[0])
    return X, np.clip(np.floor(latent + 1.5), 0, 4), sizes


def mean_ndcg(y: np.ndarray, pred: np.ndarray, sizes: np.ndarray, k: int = 10) -> float:
    out, start = [], 0
    for size in sizes:
        r, p = y[start:start + size], pred[start:start + size]
        start += size
        if r.max() > 0:
            out.append(ndcg_score(r[None], p[None], k=k))
    return float(np.mean(out))


def main() -> None:
    (X, y, sizes), (Xt, yt, st) = queries(0), queries(1)
    xgb_params = {"tree_method": "hist", "eta": 0.1, "max_depth": 4}
    lgb_params = dict(n_estimators=ROUNDS, learning_rate=0.1, num_leaves=15, verbose=-1)
    rows = []

    def xgboost_row(label, objective=None, builtin=None):
        t = time.perf_counter()
        params = xgb_params if builtin is None else {**xgb_params, "objective": builtin}
        booster = xgb.train(params, xgb.DMatrix(X, y, group=sizes), ROUNDS, obj=objective)
        rows.append(("XGBoost", label, mean_ndcg(yt, booster.predict(xgb.DMatrix(Xt)), st), time.perf_counter() - t))

    def lightgbm_row(label, objective):
        t = time.perf_counter()
        ranker = lgb.LGBMRanker(objective=objective, **lgb_params).fit(X, y, group=sizes)
        rows.append(("LightGBM", label, mean_ndcg(yt, ranker.predict(Xt), st), time.perf_counter() - t))

    warm = (("ranknet", "exact"), ("lambdaloss", "exact"), ("listnet", "exact"), ("approx_ndcg", "upper_bound"))
    for name, hessian in warm:  # loads (on the very first run: compiles) the list kernels
        lgx.objective(name, hessian).grad_hess(y, np.zeros(y.size), None, sizes)
    for name in ("ranknet", "lambdaloss", "listnet", "xendcg"):
        xgboost_row(f'objective("{name}")', lgx.objective(name))
    xgboost_row('objective("approx_ndcg", hessian="upper_bound")', lgx.objective("approx_ndcg", "upper_bound"))
    xgboost_row("built-in rank:pairwise", builtin="rank:pairwise")
    xgboost_row("built-in rank:ndcg", builtin="rank:ndcg")
    for name in ("xendcg", "ranknet", "lambdaloss"):
        lightgbm_row(f'objective("{name}")', lgl.objective(name))
    lightgbm_row("built-in rank_xendcg", "rank_xendcg")
    lightgbm_row("built-in lambdarank", "lambdarank")
    rows.append(("-", "random scores", mean_ndcg(yt, np.random.default_rng(5).normal(size=yt.size), st), 0.0))
    print(f"{sizes.size} training queries ({sizes.sum()} documents), {st.size} test queries, {ROUNDS} rounds\n")
    print("| engine | objective | test NDCG@10 | fit s |\n|---|---|---|---|")
    for engine, label, ndcg, seconds in rows:
        print(f"| {engine} | {label} | {ndcg:.4f} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
