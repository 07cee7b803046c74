"""Logistic regression on 10^6 x 20: lossgrad LinearClassifier(solver="newton") vs scikit-learn.

Same data, same penalty: scikit-learn LogisticRegression(C, solver="lbfgs") minimises
||w||^2/2 + C sum(logloss); lossgrad's objective is mean(logistic) + alpha/2 ||w||^2,
equal for alpha = 1/(C n).  Prints times, the ratio, and the largest coefficient difference.

    python benchmarks/bench_linear.py [--n 1000000] [--p 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def best_of(fn, repeat: int):
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
    ap.add_argument("--C", type=float, default=1.0)
    args = ap.parse_args()

    from sklearn.linear_model import LogisticRegression

    from lossgrad.models import LinearClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.n, args.p))
    logits = X @ rng.normal(size=args.p) * 0.5 + 0.3
    y = (rng.random(args.n) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    alpha = 1.0 / (args.C * args.n)

    t_lg, lg = best_of(lambda: LinearClassifier(alpha=alpha, solver="newton", tol=1e-8).fit(X, y), args.repeat)
    t_sk, sk = best_of(lambda: LogisticRegression(C=args.C, solver="lbfgs", tol=1e-8, max_iter=1000).fit(X, y), args.repeat)
    diff = float(np.max(np.abs(lg.coef_ - sk.coef_[0])))
    print(f"n={args.n}, p={args.p}; lossgrad Newton iterations={lg.n_iter_}, scikit-learn lbfgs iterations={int(sk.n_iter_[0])}")
    print(f"{'method':<40}{'seconds':>10}")
    print(f"{'lossgrad LinearClassifier(newton)':<40}{t_lg:>10.3f}")
    print(f"{'scikit-learn LogisticRegression(lbfgs)':<40}{t_sk:>10.3f}")
    print(f"speed-up of lossgrad: {t_sk / t_lg:.2f}x; max |coef difference| = {diff:.2e}")


if __name__ == "__main__":
    main()
