"""Focal, Poly1 and KL divergence value+grad: lossgrad's row kernel vs its reference vs PyTorch.

    python benchmarks/bench_row_softmax.py [--quick] [--repeat 7] [--ref-repeat 3]

N = 65536 rows, K = 1000 classes (``--quick``: N / 16), float32 and float64.  Targets:
class labels for focal (gamma=2) and poly1 (epsilon=1), probability rows (Dirichlet
0.5) for KL.  Per row, every implementation returns the (N,) losses and the (N, K)
gradient.  Columns: median milliseconds of the lossgrad kernel (``value_grad``, the
default configuration: the kernel above 50 000 elements), of lossgrad's array-API
reference (``use_kernels=False``; fewer repeats, it is slow) and of PyTorch on the CPU
(forward, then ``torch.autograd.grad`` of the sum of the rows), and the ratios
reference / kernel and torch / kernel (above 1: the kernel is faster).

PyTorch conventions (the same per-row numbers as lossgrad):

* KL: ``kl_div(log_softmax(f), q, reduction="none").sum(-1)`` = ``KLDivergence().value(q, f)``
  (PyTorch's input is the log-probabilities, its target second).
* Poly1: PyTorch has no PolyLoss; composed as in Leng et al.'s code:
  ``ce = cross_entropy(f, y, reduction="none"); ce + epsilon * (1 - exp(-ce))``.
* Focal: PyTorch has only the binary ``torchvision.ops.sigmoid_focal_loss``; the softmax
  focal loss composed: ``s = log_softmax(f).gather(1, y); -(1 - exp(s))**gamma * s``
  (= ``Focal(gamma).value(y, f)``).

The script checks once that torch's row values equal the kernel's (rtol 1e-4).

Threads: the kernel and PyTorch both use every core of the process
(``torch.get_num_threads()`` is printed).  Timings are medians of runs taken back to
back per implementation, after a warm-up run, the references last (not round-robin
as in :mod:`lossgrad.kernels.bench`: on a small shared VM, the GB of temporaries
each torch or reference call frees were re-faulted by the next kernel call and
multiplied its time by up to 4).  Every call allocates its outputs, whose first-touch
page faults are part of the time.  Memory: about 12 times the logits' size for the
reference (6 GB in float64).
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
from lossgrad.kernels import n_threads


def _torch_fn(name: str, y: np.ndarray, f: np.ndarray) -> Callable[[], Any] | None:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    ft0 = torch.from_numpy(f)
    yt = torch.from_numpy(y.astype(np.int64) if y.ndim == 1 else y)

    def rows(ft: Any) -> Any:
        if name == "kl_divergence":
            return F.kl_div(F.log_softmax(ft, dim=1), yt, reduction="none").sum(dim=1)
        if name == "poly1":
            ce = F.cross_entropy(ft, yt, reduction="none")
            return ce + 1.0 * (1.0 - torch.exp(-ce))
        s = F.log_softmax(ft, dim=1).gather(1, yt[:, None])[:, 0]
        return -((1.0 - torch.exp(s)) ** 2.0) * s

    def run() -> Any:
        ft = ft0.detach().requires_grad_(True)
        v = rows(ft)
        (g,) = torch.autograd.grad(v.sum(), ft)
        return v.detach(), g

    return run


def _timed(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Median seconds per callable, its runs back to back after one warm-up run."""
    out = {}
    for k, fn in fns.items():
        fn()
        ts = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        out[k] = statistics.median(ts)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N / 16")
    ap.add_argument("--repeat", type=int, default=7, help="runs of the kernel and of torch")
    ap.add_argument("--ref-repeat", type=int, default=3, help="runs of the reference")
    a = ap.parse_args()
    n, k = (65536 // 16 if a.quick else 65536), 1000
    try:
        import torch

        tinfo = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        tinfo = "torch not installed"
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, kernel threads {n_threads()}; "
          f"{tinfo}; N={n}, K={k}")
    print("| loss | dtype | kernel ms | reference ms | torch ms | ref/kernel | torch/kernel |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(1)
    cases = (("focal", lossgrad.Focal(gamma=2.0)), ("poly1", lossgrad.Poly1(epsilon=1.0)),
             ("kl_divergence", lossgrad.KLDivergence()))
    for dt in (np.float32, np.float64):
        f = (rng.normal(0.0, 3.0, (n, k))).astype(dt)
        labels = rng.integers(0, k, n)
        probs = rng.dirichlet(np.full(k, 0.5), n).astype(dt)
        fast: dict[str, Callable[[], Any]] = {}
        slow: dict[str, Callable[[], Any]] = {}
        for name, loss in cases:
            y = probs if name == "kl_divergence" else labels
            fast[name + "/kernel"] = lambda loss=loss, y=y: loss.value_grad(y, f)
            tfn = _torch_fn(name, y, f)
            if tfn is not None:
                fast[name + "/torch"] = tfn

            def reference(loss: Any = loss, y: np.ndarray = y) -> Any:
                with lossgrad.config_context(use_kernels=False):
                    return loss.value_grad(y, f)

            slow[name + "/reference"] = reference
        for name, _ in cases:
            if name + "/torch" in fast:
                kv, tv = fast[name + "/kernel"]()[0], fast[name + "/torch"]()[0].numpy()
                np.testing.assert_allclose(tv, kv, rtol=1e-4, atol=1e-5, err_msg=f"torch's {name} differs")
        ms = {key: 1e3 * v for key, v in _timed(fast, a.repeat).items()}
        ms.update({key: 1e3 * v for key, v in _timed(slow, a.ref_repeat).items()})
        for name, _ in cases:
            kern, ref, tor = ms[name + "/kernel"], ms[name + "/reference"], ms.get(name + "/torch")
            tms = "-" if tor is None else f"{tor:.1f}"
            tr = "-" if tor is None else f"{tor / kern:.2f}"
            print(f"| {name} | {np.dtype(dt).name} | {kern:.1f} | {ref:.1f} | {tms} | {ref / kern:.1f} | {tr} |",
                  flush=True)


if __name__ == "__main__":
    main()
