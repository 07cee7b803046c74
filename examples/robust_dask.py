"""Robust regression on a Dask array larger than one chunk, on a local Dask cluster.

Fits Huber M-estimation on X of shape (n, 10) in chunks, then the same fit in memory,
and prints the largest coefficient difference.  Every IRLS pass is a chunked reduction
(X^T W X, X^T W y, residual medians), so pointing `Client` at a real cluster scales out.

    python examples/robust_dask.py [--n 10000000] [--chunk 500000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--p", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=500_000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    import dask.array as da
    from dask.distributed import Client, LocalCluster

    from lossgrad.robust import MEstimator

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True) as cluster, Client(cluster):
        rs = da.random.RandomState(0)
        X = rs.normal(size=(args.n, args.p), chunks=(args.chunk, args.p))
        beta = np.linspace(-1, 1, args.p)
        y = X @ beta + 0.5 + rs.standard_t(2, size=args.n, chunks=args.chunk)
        X, y = X.persist(), y.persist()
        print(f"X: {X.shape}, {X.nbytes / 1e9:.2f} GB in {X.npartitions} chunks of {X.chunksize}")
        t = time.perf_counter()
        dfit = MEstimator("huber", tol=1e-10).fit(X, y)
        t_dask = time.perf_counter() - t
        Xm, ym = X.compute(), y.compute()
    t = time.perf_counter()
    mfit = MEstimator("huber", tol=1e-10).fit(Xm, ym)
    t_mem = time.perf_counter() - t
    diff = np.max(np.abs(dfit.params_ - mfit.params_))
    print(f"dask fit {t_dask:.1f} s ({dfit.n_iter_} iterations), in-memory fit {t_mem:.1f} s")
    print(f"max |coef difference| = {diff:.3e}; scale {dfit.scale_:.10g} vs {mfit.scale_:.10g}")


if __name__ == "__main__":
    main()
