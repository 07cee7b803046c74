"""Huber M-estimation at n = 10^6, p = 20: lossgrad vs statsmodels RLM vs scikit-learn HuberRegressor.

Same data for all three.  statsmodels and lossgrad solve the same problem (Huber
delta = 1.345, MAD scale about 0, IRLS from OLS), so their coefficients are compared;
scikit-learn's HuberRegressor estimates scale jointly with an L2 penalty (a different
objective), so only its time is reported.

It then shows the effect of lossgrad's passes over X (``lossgrad.models._products``: the
weighted Gram block in cache-sized BLAS chunks, the moments and residuals as lossgrad
kernels, BLAS held to one thread during the fit) against the dense NumPy products it
used before (X * w[:, None], (X w)^T X, X @ beta with OpenBLAS's threads free):
alternated fits, median of ``--repeat`` each (docs/benchmarks.md, "Idle threads
between libraries").

    python benchmarks/bench_robust.py [--n 1000000] [--p 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import time
import warnings

import numpy as np

from lossgrad.kernels.bench import median_of as timed


@contextlib.contextmanager
def numpy_products():
    """MEstimator's passes over X as dense NumPy products with OpenBLAS's threads free
    (lossgrad before its product kernels), restored on leaving."""
    from lossgrad.models import _products
    from lossgrad.robust import _mestimator

    def dense(X, g, h):
        Xw = X * h[:, None]
        return Xw.T @ X, X.T @ g, np.sum(Xw, axis=0)

    saved = (_products.gram_and_moments, _products.matmul, _mestimator.blas_single_thread)
    _products.gram_and_moments, _products.matmul = dense, (lambda X, w, b=0.0: X @ w + b)
    _mestimator.blas_single_thread = contextlib.nullcontext
    try:
        yield
    finally:
        _products.gram_and_moments, _products.matmul, _mestimator.blas_single_thread = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--p", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
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

    def fit():
        return MEstimator("huber", tol=1e-8).fit(X, y)

    fit()  # warm-up: compilation, page faults
    t_lg, lg = timed(fit, args.repeat)
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

    def fit_numpy():
        with numpy_products():
            return fit()

    times = {"kernels": [], "numpy": []}
    fit_numpy()
    for _ in range(args.repeat):  # alternated, so that both see the same machine
        for name, fn in (("kernels", fit), ("numpy", fit_numpy)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    t_k, t_n = float(np.median(times["kernels"])), float(np.median(times["numpy"]))
    ref = fit_numpy()
    print(f"\npasses over X, median of {args.repeat} alternated fits:")
    print(f"{'lossgrad kernels, BLAS held to 1 thread':<44}{t_k:>10.3f}")
    print(f"{'NumPy products, OpenBLAS threads free':<44}{t_n:>10.3f}")
    print(f"ratio NumPy / kernels: {t_n / t_k:.2f}x; max |coef difference| = "
          f"{float(np.max(np.abs(lg.params_ - ref.params_))):.2e}")


if __name__ == "__main__":
    main()
