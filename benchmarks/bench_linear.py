"""Logistic regression on 10^6 x 20: lossgrad LinearClassifier(solver="newton") vs scikit-learn.

Same data, same penalty: scikit-learn LogisticRegression(C, solver="lbfgs") minimises
||w||^2/2 + C sum(logloss); lossgrad's objective is mean(logistic) + alpha/2 ||w||^2,
equal for alpha = 1/(C n).  Prints median times, the ratio, and the largest coefficient
difference.

It then shows the effect of running a fit's products with X as lossgrad kernels while
BLAS is held to one thread (``lossgrad.models._products``): the same fit with those
products handed back to NumPy (OpenBLAS threads free, as before), alternated with the
default fit, median of ``--repeat`` each (docs/benchmarks.md, "Idle threads between
libraries").

    python benchmarks/bench_linear.py [--n 1000000] [--p 20] [--repeat 5] [--solver newton]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

from lossgrad.kernels.bench import median_of


@contextlib.contextmanager
def numpy_products():
    """The fit's products with X through NumPy and OpenBLAS's own threads (lossgrad before
    the products became kernels), restored on leaving."""
    from lossgrad.models import _base, _products

    saved = dict(matmul=_products.matmul, rmatmul=_products.rmatmul, rmatmul2=_products.rmatmul2,
                 gram=_products.gram, scope=_base.blas_single_thread)
    _products.matmul = lambda X, W, b=0.0: X @ W + b
    _products.rmatmul = lambda X, G: X.T @ G
    _products.rmatmul2 = lambda X, g, h: tuple(np.stack([g, h]) @ X)
    _base.blas_single_thread = contextlib.nullcontext
    try:
        yield
    finally:
        _products.matmul, _products.rmatmul, _products.rmatmul2 = saved["matmul"], saved["rmatmul"], saved["rmatmul2"]
        _products.gram, _base.blas_single_thread = saved["gram"], saved["scope"]


def alternated(fns: dict, repeat: int) -> dict:
    """Median seconds of each callable, run in turns (one call each per round)."""
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm-up: compilation, page faults
    for _ in range(repeat):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--p", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--solver", default="newton", help="lossgrad's solver (newton, lbfgs, ...)")
    ap.add_argument("--skip-sklearn", action="store_true")
    args = ap.parse_args()

    from sklearn.linear_model import LogisticRegression

    from lossgrad.models import LinearClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.n, args.p))
    logits = X @ rng.normal(size=args.p) * 0.5 + 0.3
    y = (rng.random(args.n) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    alpha = 1.0 / (args.C * args.n)

    def fit():
        return LinearClassifier(alpha=alpha, solver=args.solver, tol=1e-8).fit(X, y)

    fit()  # warm-up
    t_lg, lg = median_of(fit, args.repeat)
    print(f"n={args.n}, p={args.p}; lossgrad {args.solver} iterations={lg.n_iter_}")
    print(f"{'method':<44}{'seconds':>10}")
    print(f"{f'lossgrad LinearClassifier({args.solver})':<44}{t_lg:>10.3f}")
    if not args.skip_sklearn:
        t_sk, sk = median_of(lambda: LogisticRegression(C=args.C, solver="lbfgs", tol=1e-8, max_iter=1000).fit(X, y),
                             args.repeat)
        diff = float(np.max(np.abs(lg.coef_ - sk.coef_[0])))
        print(f"{'scikit-learn LogisticRegression(lbfgs)':<44}{t_sk:>10.3f}")
        print(f"speed-up of lossgrad: {t_sk / t_lg:.2f}x (sklearn lbfgs iterations={int(sk.n_iter_[0])}); "
              f"max |coef difference| = {diff:.2e}")

    def fit_numpy():
        with numpy_products():
            return fit()

    t = alternated({"kernels": fit, "numpy": fit_numpy}, args.repeat)
    ref = fit_numpy()
    print(f"\nproducts with X, median of {args.repeat} alternated fits:")
    print(f"{'lossgrad kernels, BLAS held to 1 thread':<44}{t['kernels']:>10.3f}")
    print(f"{'NumPy products, OpenBLAS threads free':<44}{t['numpy']:>10.3f}")
    print(f"ratio NumPy / kernels: {t['numpy'] / t['kernels']:.2f}x; "
          f"max |coef difference| = {float(np.max(np.abs(lg.coef_ - ref.coef_))):.2e}")


if __name__ == "__main__":
    main()
