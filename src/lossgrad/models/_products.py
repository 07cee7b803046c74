r"""The products with X inside a fit, as compiled kernels in lossgrad's own thread pool.

A fit alternates matrix products with X (scores X W + b, gradients X^T G, Gram blocks
X^T diag(h) X) and the loss's fused kernels.  Left to NumPy, the products run in
OpenBLAS's threads and the kernels in Numba's ``omp`` layer: on few cores each pool's
idle threads spin while the other works (see :mod:`lossgrad.kernels._parallel`), and
OpenBLAS also runs the thin products of a fit poorly ((2, n) @ (n, p): 16 ms at
10^6 x 20 on the 2-core VM, one thread or two, against 5 ms for one pass of this
module's kernel over the same 160 MB).  Here the memory-bound products are loops over
row parts, split by :func:`lossgrad.kernels._parallel.split_plan` (Numba's threading
layer where it is safe, Python threads or one part otherwise), and the Gram block stays
a BLAS product of cache-sized row chunks (compute-bound: p^2 flops a row).

:func:`blas_single_thread` (:mod:`lossgrad.kernels._parallel`) holds OpenBLAS to one
thread while a fit runs, so that no BLAS thread spins next to the kernels; the
module's functions are the fit's only parallel work then.  Figures: docs/benchmarks.md,
"Idle threads between libraries".

Results equal NumPy's products up to the order of the sums (a few ulps of the largest
term).  Inputs other than C-contiguous float64 X, and products with more than 8 columns
(compute-bound), go to NumPy.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..kernels._parallel import blas_held, n_threads, run_in_parts, split_plan

__all__ = ["matmul", "rmatmul", "rmatmul2", "gram", "gram_and_moments"]



@njit(cache=True, nogil=True, error_model="numpy")
def _matmul_part(X, Wt, b, out, lo, hi):  # pragma: no cover - compiled
    """out[i, c] = b[c] + sum_j X[i, j] Wt[c, j] for rows lo..hi (Wt is W transposed, (m, p))."""
    m, p = Wt.shape
    i = lo
    while i + 4 <= hi:
        for c in range(m):
            s0 = s1 = s2 = s3 = 0.0
            for j in range(p):
                wj = Wt[c, j]
                s0 += X[i, j] * wj
                s1 += X[i + 1, j] * wj
                s2 += X[i + 2, j] * wj
                s3 += X[i + 3, j] * wj
            out[i, c] = s0 + b[c]
            out[i + 1, c] = s1 + b[c]
            out[i + 2, c] = s2 + b[c]
            out[i + 3, c] = s3 + b[c]
        i += 4
    for r in range(i, hi):
        for c in range(m):
            s = 0.0
            for j in range(p):
                s += X[r, j] * Wt[c, j]
            out[r, c] = s + b[c]


@njit(cache=True, nogil=True, error_model="numpy")
def _rmatmul_part(X, G, acc, lo, hi):  # pragma: no cover - compiled
    """acc[c, j] = sum_i G[i, c] X[i, j] over rows lo..hi (acc zeroed by the caller)."""
    m = G.shape[1]
    p = X.shape[1]
    for i in range(lo, hi):
        for c in range(m):
            gc = G[i, c]
            for j in range(p):
                acc[c, j] += gc * X[i, j]


@njit(cache=True, nogil=True, error_model="numpy")
def _rmatmul2_part(X, g, h, acc, lo, hi):  # pragma: no cover - compiled
    """acc[0] = sum_i g_i x_i, acc[1] = sum_i h_i x_i over rows lo..hi (acc zeroed by the caller)."""
    p = X.shape[1]
    for i in range(lo, hi):
        gi = g[i]
        hi_ = h[i]
        for j in range(p):
            x = X[i, j]
            acc[0, j] += gi * x
            acc[1, j] += hi_ * x


@njit(cache=True, nogil=True, error_model="numpy")
def _bounds(n, t, k):  # pragma: no cover - compiled
    return n * t // k, n * (t + 1) // k


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _matmul_parallel(X, Wt, b, out, k):  # pragma: no cover - compiled
    for t in prange(k):
        lo, hi = _bounds(X.shape[0], t, k)
        _matmul_part(X, Wt, b, out, lo, hi)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _rmatmul_parallel(X, G, acc, k):  # pragma: no cover - compiled
    for t in prange(k):
        lo, hi = _bounds(X.shape[0], t, k)
        _rmatmul_part(X, G, acc[t], lo, hi)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _rmatmul2_parallel(X, g, h, acc, k):  # pragma: no cover - compiled
    for t in prange(k):
        lo, hi = _bounds(X.shape[0], t, k)
        _rmatmul2_part(X, g, h, acc[t], lo, hi)


_MAX_COLUMNS = 8  # products with more columns of W or G are compute-bound: BLAS's (at 100 columns
# the loops here took 4x NumPy's time for X @ W, 2.3x for X^T G, 60000 x 784, 2-core VM)


def _compiled(X: np.ndarray) -> bool:
    """Whether X goes through this module's kernels (else NumPy)."""
    return (isinstance(X, np.ndarray) and X.dtype == np.float64 and X.ndim == 2 and X.flags.c_contiguous
            and X.shape[1] > 0)


def _run(n: int, p: int, parallel, part, args: tuple, acc_shape: tuple | None = None) -> np.ndarray | None:
    """One product over the row parts of :func:`split_plan` (size n p, n rows):
    ``parallel(*args, [acc,] k)`` in Numba's layer, else ``part(*args, [acc[i],] lo, hi)``
    in Python threads or in the calling thread.  With ``acc_shape``, the reductions' k
    accumulators (k, *acc_shape), zeroed, are passed and returned."""
    layer, k = split_plan(n * p, n)
    acc = None if acc_shape is None else np.zeros((k, *acc_shape))
    extra = () if acc is None else (acc,)
    if layer:
        parallel(*args, *extra, k)
    elif k == 1:
        part(*args, *(() if acc is None else (acc[0],)), 0, n)
    else:
        run_in_parts(n, k, lambda i, lo, hi: part(*args, *(() if acc is None else (acc[i],)), lo, hi))
    return acc


def matmul(X: np.ndarray, W: np.ndarray, b=0.0) -> np.ndarray:
    """X @ W + b for W (p,) or (p, m) and b a scalar or (m,): shape (n,) or (n, m)."""
    if (not _compiled(X) or not isinstance(W, np.ndarray) or W.ndim not in (1, 2)
            or (W.ndim == 2 and W.shape[1] > _MAX_COLUMNS)):
        return X @ W + b
    W = W.astype(np.float64, copy=False)
    n, p = X.shape
    m = 1 if W.ndim == 1 else W.shape[1]
    Wt = np.ascontiguousarray(W.reshape(p, m).T)
    bias = np.broadcast_to(np.asarray(b, dtype=np.float64), (m,)).copy()
    out = np.empty((n, m))
    _run(n, p, _matmul_parallel, _matmul_part, (X, Wt, bias, out))
    return out[:, 0] if W.ndim == 1 else out


def rmatmul(X: np.ndarray, G: np.ndarray) -> np.ndarray:
    """X^T G for G (n,) or (n, m): shape (p,) or (p, m)."""
    if (not _compiled(X) or not isinstance(G, np.ndarray) or G.ndim not in (1, 2) or G.dtype != np.float64
            or (G.ndim == 2 and G.shape[1] > _MAX_COLUMNS)):
        return X.T @ G
    n, p = X.shape
    G2 = G[:, None] if G.ndim == 1 else G
    acc = _run(n, p, _rmatmul_parallel, _rmatmul_part, (X, G2), (G2.shape[1], p))
    total = acc.sum(axis=0).T  # (p, m)
    return total[:, 0].copy() if G.ndim == 1 else np.ascontiguousarray(total)


def rmatmul2(X: np.ndarray, g: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(X^T g, X^T h) in one pass over X."""
    if not _compiled(X) or g.dtype != np.float64 or h.dtype != np.float64:
        xg, xh = np.stack([g, h]) @ X
        return xg, xh
    n, p = X.shape
    total = _run(n, p, _rmatmul2_parallel, _rmatmul2_part, (X, g, h), (2, p)).sum(axis=0)
    return total[0], total[1]


def _gram_rows(X: np.ndarray, h: np.ndarray, gram: np.ndarray, lo: int, hi: int) -> None:
    """gram += X[lo:hi]^T diag(h[lo:hi]) X[lo:hi], over row chunks of about 2 MB that stay
    in cache while BLAS reads them (one reused buffer, no n x p temporary)."""
    p = X.shape[1]
    rows = int(min(65536, max(256, 262144 // max(p, 1))))
    buf = np.empty((min(rows, hi - lo), p))
    for start in range(lo, hi, rows):
        Xc = X[start : min(start + rows, hi)]
        b = buf[: len(Xc)]
        np.multiply(Xc, h[start : start + len(Xc), None], out=b)
        gram += b.T @ Xc


_GRAM_SPLIT_MIN = 1 << 22  # n p^2 from which the Gram block is cut over the cores (Python threads)


def gram(X: np.ndarray, h: np.ndarray) -> np.ndarray:
    """X^T diag(h) X from cache-sized row chunks (BLAS), cut into one part per core on
    Python threads where BLAS is held to one thread (:func:`blas_held`: each part a
    single-threaded BLAS product, no BLAS thread left to spin)."""
    n, p = X.shape
    k = min(n_threads(), max(1, n // 1024)) if blas_held() and n * p * p >= _GRAM_SPLIT_MIN else 1
    grams = np.zeros((k, p, p))
    if k == 1:
        _gram_rows(X, h, grams[0], 0, n)
    else:
        run_in_parts(n, k, lambda i, lo, hi: _gram_rows(X, h, grams[i], lo, hi))
    return grams[0] if k == 1 else grams.sum(axis=0)


def gram_and_moments(X: np.ndarray, g: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X^T diag(h) X, X^T g, X^T h): :func:`gram` and the two moments in one compiled
    pass (:func:`rmatmul2`)."""
    xg, xh = rmatmul2(X, g, h)
    return gram(X, h), xg, xh
