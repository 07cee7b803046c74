"""Gradient + Hessian diagonal of the row losses (what gradient boosting takes per class).

    python benchmarks/bench_row_hess_diag.py [--quick] [--repeat 7] [--no-xgboost]

``loss.grad_hess_diag(y, f)`` on logits f of (N, K) in {(65536, 32), (8192, 1000)}
(``--quick``: N / 16), float32 and float64, for cross_entropy, focal (gamma=2; class
labels and probability rows), poly1 (epsilon=1, labels), kl_divergence (probability
rows) and multilabel (0/1 entries, 30% ones).  Columns: median milliseconds of the fused
row kernel (the default configuration), of lossgrad's array-API reference
(``use_kernels=False``) and of scikit-learn's ``gradient_hessian`` where it computes the
same two arrays, with ratios (above 1: the kernel is faster).

scikit-learn's conventions: ``HalfMultinomialLoss.gradient_hessian`` is cross_entropy's
gradient and diagonal p (1 - p); ``HalfBinomialLoss.gradient_hessian`` on the raveled
(N K,) arrays is multilabel's (pos_weight None: one binary log-loss per entry, grad
sigma(f) - y, hess sigma(f) sigma(-f)).  Both with ``n_threads`` = all cores.  Focal,
poly1 and KL have no peer that computes a Hessian diagonal (PyTorch and JAX would need
K Hessian-vector products a row).

Last, unless ``--no-xgboost``: 20 rounds of XGBoost (``hist``, depth 4, 10 classes,
10^5 rows, 2 threads) with ``lossgrad.integrations.xgboost.objective(Focal(gamma=2))``,
the objective's time a round with the kernels and with the reference.

Timings are medians of runs back to back per implementation after a warm-up run; every
call allocates its outputs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import lossgrad

SHAPES = ((65536, 32), (8192, 1000))


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def _sklearn_fn(name: str, y: np.ndarray, f: np.ndarray) -> Callable[[], Any] | None:
    try:
        from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss
    except ImportError:
        return None
    threads = os.cpu_count() or 1
    if name == "cross_entropy":
        sk = HalfMultinomialLoss(n_classes=f.shape[1])
        yt = y.astype(f.dtype)
        return lambda: sk.gradient_hessian(y_true=yt, raw_prediction=f, n_threads=threads)
    if name == "multilabel":
        sk = HalfBinomialLoss()
        yr, fr = np.ascontiguousarray(y.ravel()), np.ascontiguousarray(f.ravel())
        return lambda: sk.gradient_hessian(y_true=yr, raw_prediction=fr, n_threads=threads)
    return None


def cases(rng: np.random.Generator, n: int, k: int, dt: type) -> list[tuple[str, str, Any, np.ndarray, np.ndarray]]:
    """(loss name, target kind, loss, y, f) of one shape and dtype."""
    f = rng.normal(0.0, 2.0, (n, k)).astype(dt)
    labels = rng.integers(0, k, n)
    probs = rng.dirichlet(np.full(k, 0.5), n).astype(dt)
    bits = (rng.random((n, k)) < 0.3).astype(dt)
    return [
        ("cross_entropy", "labels", lossgrad.CrossEntropy(), labels, f),
        ("focal", "labels", lossgrad.Focal(gamma=2.0), labels, f),
        ("focal", "probs", lossgrad.Focal(gamma=2.0), probs, f),
        ("poly1", "labels", lossgrad.Poly1(epsilon=1.0), labels, f),
        ("kl_divergence", "probs", lossgrad.KLDivergence(), probs, f),
        ("multilabel", "0/1", lossgrad.Multilabel(), bits, f),
    ]


def row_times(name: str, loss: Any, y: np.ndarray, f: np.ndarray, repeat: int, ref_repeat: int) -> dict[str, float]:
    """Median ms of the kernel, the reference and (where one exists) scikit-learn."""
    out = {"kernel": median_ms(lambda: loss.grad_hess_diag(y, f), repeat)}
    with lossgrad.config_context(use_kernels=False):
        out["reference"] = median_ms(lambda: loss.grad_hess_diag(y, f), ref_repeat)
    sk = _sklearn_fn(name, y, f)
    if sk is not None:
        out["sklearn"] = median_ms(sk, repeat)
    return out


def xgboost_focal(rounds: int = 20) -> dict[str, float] | None:
    """Seconds of the focal objective a round, with and without the kernels (None without XGBoost)."""
    try:
        import xgboost as xgb
    except ImportError:
        return None
    from lossgrad.integrations import xgboost as lgx

    rng = np.random.default_rng(0)
    n, k = 100_000, 10
    X = rng.normal(size=(n, k))
    y = np.argmax(X + rng.normal(0, 1, (n, k)), axis=1).astype(float)
    dtrain = xgb.DMatrix(X, label=y)
    params = {"tree_method": "hist", "max_depth": 4, "eta": 0.3, "num_class": k, "nthread": 2,
              "disable_default_eval_metric": 1}
    obj = lgx.objective(lossgrad.Focal(gamma=2.0))
    out = {}
    for label, use in (("kernels", True), ("reference", False)):
        calls: list[float] = []

        def timed(pred: Any, dm: Any, calls: list[float] = calls) -> Any:
            t = time.perf_counter()
            res = obj(pred, dm)
            calls.append(time.perf_counter() - t)
            return res

        with lossgrad.config_context(use_kernels=use):
            xgb.train(params, dtrain, rounds, obj=timed)
        out[label] = statistics.median(calls)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N / 16")
    ap.add_argument("--repeat", type=int, default=7, help="runs of the kernel and of scikit-learn")
    ap.add_argument("--ref-repeat", type=int, default=3, help="runs of the reference")
    ap.add_argument("--no-xgboost", action="store_true")
    a = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("| loss | target | N x K | dtype | kernel ms | reference ms | sklearn ms | ref / kernel | sklearn / kernel |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(1)
    for n, k in SHAPES:
        n = n // 16 if a.quick else n
        for dt in (np.float32, np.float64):
            for name, target, loss, y, f in cases(rng, n, k, dt):
                t = row_times(name, loss, y, f, a.repeat, a.ref_repeat)
                ker, ref, sk = t["kernel"], t["reference"], t.get("sklearn")
                sk_ms, sk_ratio = ("-", "-") if sk is None else (f"{sk:.2f}", f"{sk / ker:.2f}x")
                print(f"| {name} | {target} | {n}x{k} | {np.dtype(dt).name} | {ker:.2f} | {ref:.2f} | {sk_ms} | "
                      f"{ref / ker:.1f}x | {sk_ratio} |")
    if not a.no_xgboost:
        xg = xgboost_focal()
        if xg is not None:
            print(f"\nXGBoost, 10^5 x 10 classes, focal objective a round: kernels {xg['kernels'] * 1e3:.1f} ms, "
                  f"reference {xg['reference'] * 1e3:.1f} ms ({xg['reference'] / xg['kernels']:.1f}x)")


if __name__ == "__main__":
    main()
