"""lossgrad losses as XGBoost objectives: reproduce a built-in, then fix Huber's zero Hessian.

1. ``0.5 * squared_error`` reproduces ``reg:squarederror`` (XGBoost's squared error is
   halved: grad f - y, hess 1);
2. a Huber regression on data with outliers under the four Hessian options: "exact"
   stalls when every residual lies beyond delta (its Hessian is 0 there: no split is
   admissible and XGBoost sets the leaves to 0), "expected" and "floor" train;
3. the same objective on a local Dask cluster (``xgboost.dask``).

    python examples/engine_xgboost.py
"""

from __future__ import annotations

import numpy as np
import xgboost as xgb

import lossgrad
from lossgrad.integrations import xgboost as lgx


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 5))
    y = 100.0 + 20 * X[:, 0] + 5 * np.sin(3 * X[:, 1]) + rng.normal(0, 1, 2000)
    y[:100] += rng.choice([-300.0, 300.0], 100)  # outliers
    params = {"tree_method": "hist", "max_depth": 4, "eta": 0.3}

    # 1. a built-in, reproduced
    half_se = 0.5 * lossgrad.get("squared_error")
    builtin = xgb.train({**params, "objective": "reg:squarederror"}, xgb.DMatrix(X, y), 20)
    ours = xgb.train({**params, "base_score": lgx.base_score(half_se, y)}, xgb.DMatrix(X, y), 20,
                     obj=lgx.objective(half_se))
    diff = np.max(np.abs(builtin.predict(xgb.DMatrix(X)) - ours.predict(xgb.DMatrix(X))))
    print(f"reg:squarederror vs 0.5*squared_error: max |difference| = {diff:.2e}")

    # 2. Huber and its Hessian options, started from 0 (far from the data) and from the optimal constant
    huber = lossgrad.get("huber", delta=1.0)
    for start_name, start in (("0", 0.0), ("base_score", lgx.base_score(huber, y))):
        print(f"Huber(delta=1), 50 rounds from {start_name}:")
        for h in ("exact", "floor", "expected", "upper_bound"):
            b = xgb.train({**params, "base_score": start}, xgb.DMatrix(X, y), 50,
                          obj=lgx.objective(huber, hessian=h, floor=1e-2))
            pred = b.predict(xgb.DMatrix(X), output_margin=True).astype(float)
            print(f"  hessian={h:12s} mean Huber loss {float(huber(y, pred)):10.4f}   "
                  f"median |error| on inliers {np.median(np.abs(pred - y)[100:]):8.3f}")

    # 3. the same on a Dask cluster
    import dask.array as da
    import xgboost.dask as dxgb
    from distributed import Client, LocalCluster

    obj = lgx.objective(huber, hessian="expected")
    p = {**params, "base_score": lgx.base_score(huber, y)}
    single = xgb.train(p, xgb.DMatrix(X, y), 20, obj=obj).predict(xgb.DMatrix(X), output_margin=True)
    with LocalCluster(n_workers=2, processes=False, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        dX, dy = da.from_array(X, chunks=(500, 5)), da.from_array(y, chunks=500)
        out = dxgb.train(client, p, dxgb.DaskDMatrix(client, dX, dy), 20, obj=obj)
        dist = dxgb.predict(client, out["booster"], dX, output_margin=True).compute()
    print(f"xgboost.dask vs one machine: max |difference| = {np.max(np.abs(dist - single)):.2e}")


if __name__ == "__main__":
    main()
