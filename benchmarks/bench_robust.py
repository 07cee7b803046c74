"""Huber M-estimation at n = 10^6, p = 20: lossgrad vs statsmodels RLM vs scikit-learn HuberRegressor.

Same data for all three.  statsmodels and lossgrad solve the same problem (Huber
delta = 1.345, MAD scale about 0, IRLS from OLS), so their coefficients are compared;
scikit-learn's HuberRegressor estimates scale jointly with an L2 penalty (a different
objective), so only its time is reported.

    python benchmarks/bench_robust.py [--n 1000000] [--p 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def timed(fn, repeat: int):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--p", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-sklearn", action="store_true")
    args = ap.parse_args()

    import statsmodels.api as sm
    from sklearn.linear_model import HuberRegressor

    from lossgrad.robust import MEstimator

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.n, args.p))
    beta = rng.normal(size=args.p)
    y = X @ beta + 2.0 + rng.standard_t(2, size=args.n)
    y[: args.n // 20] += 25.0  # 5% gross outliers

    t_lg, lg = timed(lambda: MEstimator("huber", tol=1e-8).fit(X, y), args.repeat)
    Xc = sm.add_constant(X)
    t_sm, sm_res = timed(lambda: sm.RLM(y, Xc, M=sm.robust.norms.HuberT(t=1.345)).fit(scale_est="mad", tol=1e-8), 1)
    rows = [("lossgrad MEstimator", t_lg), ("statsmodels RLM", t_sm)]
    if not args.skip_sklearn:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_sk, _ = timed(lambda: HuberRegressor(epsilon=1.35, max_iter=200).fit(X, y), 1)
        rows.append(("sklearn HuberRegressor", t_sk))

    diff = np.max(np.abs(lg.params_ - sm_res.params) / np.maximum(np.abs(sm_res.params), 1e-12))
    print(f"n={args.n}, p={args.p}, lossgrad iterations={lg.n_iter_}")
    print(f"{'method':<26}{'seconds':>10}{'x lossgrad':>12}")
    for name, t in rows:
        print(f"{name:<26}{t:>10.3f}{t / t_lg:>12.1f}")
    print(f"max relative coefficient difference lossgrad vs statsmodels: {diff:.2e}")
    print(f"scale: lossgrad {lg.scale_:.8g}, statsmodels {sm_res.scale:.8g}")


if __name__ == "__main__":
    main()
