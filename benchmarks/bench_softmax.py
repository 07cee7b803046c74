"""Multinomial logistic regression: lossgrad SoftmaxClassifier (trust-region Newton-CG,
exact Hessian-vector products) vs scikit-learn LogisticRegression (lbfgs).

Same data, same penalty: scikit-learn minimises ||W||^2/2 + C sum(cross-entropy);
lossgrad's objective is mean(cross_entropy) + alpha/2 ||W||^2, equal for alpha = 1/(C n)
(neither penalises the intercepts; with the penalty the objective is strictly convex
in W, so both find the same coefficients).  Prints median times, the ratio, the largest
coefficient difference, and lossgrad's time with its kernels off (``use_kernels=False``:
every Hessian-vector product through the NumPy reference).

    python benchmarks/bench_softmax.py [--n 200000] [--p 20] [--k 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from lossgrad.kernels.bench import median_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--p", type=int, default=20)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from sklearn.linear_model import LogisticRegression

    import lossgrad
    from lossgrad.models import SoftmaxClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.n, args.p))
    y = np.argmax(X @ (0.5 * rng.normal(size=(args.p, args.k))) + rng.gumbel(size=(args.n, args.k)), axis=1)
    alpha = 1.0 / (args.C * args.n)

    def fit():
        return SoftmaxClassifier(alpha=alpha, tol=1e-8).fit(X, y)

    def fit_reference():
        with lossgrad.config_context(use_kernels=False):
            return fit()

    fit()  # warm-up: compilation or the on-disk cache
    t_lg, lg = median_of(fit, args.repeat)
    t_ref, _ = median_of(fit_reference, args.repeat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn >= 1.5 warns that multinomial is the default
        t_sk, sk = median_of(lambda: LogisticRegression(C=args.C, tol=1e-8, max_iter=1000).fit(X, y), args.repeat)
    diff = float(np.max(np.abs(lg.coef_ - sk.coef_)))  # both (K, p)
    print(f"n={args.n}, p={args.p}, K={args.k}; lossgrad newton iterations={lg.n_iter_}, "
          f"scikit-learn lbfgs iterations={int(sk.n_iter_[0])}")
    print(f"{'method':<48}{'seconds':>10}")
    print(f"{'lossgrad SoftmaxClassifier (kernels)':<48}{t_lg:>10.3f}")
    print(f"{'lossgrad SoftmaxClassifier (use_kernels=False)':<48}{t_ref:>10.3f}")
    print(f"{'scikit-learn LogisticRegression(lbfgs)':<48}{t_sk:>10.3f}")
    print(f"speed-up of lossgrad: {t_sk / t_lg:.2f}x over scikit-learn, {t_ref / t_lg:.2f}x over its reference; "
          f"max |coef difference| = {diff:.2e}")


if __name__ == "__main__":
    main()
