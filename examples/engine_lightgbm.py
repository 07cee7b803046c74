"""lossgrad losses as LightGBM objectives: the built-in huber, fair and multiclass, reproduced.

LightGBM's ``huber`` uses the constant Hessian 1 (lossgrad ``hessian="expected"``),
``fair`` the exact Hessian, ``multiclass`` K/(K-1) p (1 - p) (``hessian_scale=K/(K-1)``).
A custom objective starts from score 0; :func:`init_score` gives the loss's optimal
constant instead (add it back to ``predict(raw_score=True)``: LightGBM does not store it).

    python examples/engine_lightgbm.py
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

import lossgrad
from lossgrad.integrations import lightgbm as lgl


def fit(X, y, params, init_score=None):
    ds = lgb.Dataset(X, y, init_score=init_score, params={"verbose": -1})
    return lgb.train({"verbose": -1, "num_leaves": 15, "learning_rate": 0.2, **params}, ds, 30)


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 5))
    y = 3 * X[:, 0] + np.sin(2 * X[:, 1]) + rng.standard_t(2, 3000)
    classes = np.digitize(X[:, 0] + 0.5 * rng.normal(size=3000), [-0.5, 0.5]).astype(float)

    cases = [
        ("huber alpha=0.9", {"objective": "huber", "alpha": 0.9},
         lgl.objective(lossgrad.get("huber", delta=0.9), hessian="expected"), y, {}),
        ("fair fair_c=1", {"objective": "fair", "fair_c": 1.0},
         lgl.objective(lossgrad.get("fair", c=1.0)), y, {}),
        ("multiclass K=3", {"objective": "multiclass"},
         lgl.objective("cross_entropy", hessian="exact", hessian_scale=3 / 2), classes, {"num_class": 3}),
    ]
    for name, builtin_params, obj, target, extra in cases:
        builtin = fit(X, target, {**builtin_params, **extra, "boost_from_average": False})
        ours = fit(X, target, {**extra, "objective": obj})
        d = np.max(np.abs(builtin.predict(X, raw_score=True) - ours.predict(X, raw_score=True)))
        print(f"{name:18s} built-in vs lossgrad: max |difference| = {d:.1e}")

    # starting from the optimal constant instead of 0
    huber = lossgrad.get("huber", delta=0.9)
    c = lgl.init_score(huber, y)
    model = fit(X, y, {"objective": lgl.objective(huber, hessian="expected")}, init_score=c)
    pred = model.predict(X, raw_score=True) + c
    print(f"Huber from init_score {c[0]:.4f}: mean loss {float(huber(y, pred)):.4f}")


if __name__ == "__main__":
    main()
