"""Small calls: the per-call cost of lossgrad and its peers on mini-batch sizes.

    python benchmarks/bench_small_calls.py [--repeat 7]

A training loop calls its loss on a mini-batch thousands of times, where the fixed cost
of a call (argument checks, dispatch, allocation) outweighs the arithmetic.  Timed:
value+grad of squared_error and logistic on N in {100, 1000, 10^4} float64 elements, and
cross_entropy value+grad on (N, K) in {(32, 10), (256, 10), (256, 1000)} logits.

Columns (microseconds a call, the median of ``--repeat`` loops of many calls each,
implementations interleaved): lossgrad with the default configuration (the array-API
reference below ``kernel_threshold`` elements, the fused kernel above), lossgrad with
``kernel_threshold=0`` (the kernel at every size, as a hot loop sets it), scikit-learn's
loss module (all cores), PyTorch (autograd), JAX (jit) and lossgrad's reference alone
(``use_kernels=False``, NumPy).  The last column is the best peer's time over lossgrad's
with ``kernel_threshold=0``.  Conventions of the peers as in lossgrad.kernels.bench.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import lossgrad
from lossgrad.kernels import bench as B

POINTWISE_SIZES = (100, 1_000, 10_000)
CE_SHAPES = ((32, 10), (256, 10), (256, 1000))
PEERS = ("sklearn", "torch", "jax")


def per_call_us(fns: dict[str, Callable[[], Any]], repeat: int, budget_s: float = 0.02) -> dict[str, float]:
    """Median microseconds a call: each implementation runs loops of about ``budget_s``
    seconds, the implementations taken in turn ``repeat`` times.  The lossgrad column
    named "(threshold 0)" runs its loops under ``kernel_threshold=0``, set once around
    the loop as a training loop would set it."""
    numbers = {}
    for k, fn in fns.items():
        with _config(k):
            for _ in range(3):
                fn()  # warm-up: compile or load from the cache, fill the allocator's pools
            t = time.perf_counter()
            fn()
            numbers[k] = max(1, int(budget_s / max(time.perf_counter() - t, 1e-7)))
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            with _config(k):
                t = time.perf_counter()
                for _ in range(numbers[k]):
                    fn()
                times[k].append((time.perf_counter() - t) / numbers[k] * 1e6)
    return {k: statistics.median(v) for k, v in times.items()}


def _config(column: str) -> Any:
    return lossgrad.config_context(kernel_threshold=0) if column == "lossgrad (threshold 0)" else contextlib.nullcontext()


def _pointwise_fns(name: str, n: int) -> dict[str, Callable[[], Any]]:
    y, f = B._pointwise_data(name, n, np.float64, np.random.default_rng(0))
    loss = B._lossgrad_pointwise(name)
    fns = {"lossgrad": lambda: loss.value_grad(y, f),
           "lossgrad (threshold 0)": lambda: loss.value_grad(y, f)}
    for peer, build in (("sklearn", B._sklearn_pointwise), ("torch", B._torch_pointwise), ("jax", B._jax_pointwise)):
        fn = build(name, "value_grad", y, f) if B._have(peer) else None
        if fn is not None:
            fns[peer] = fn
    fns["reference"] = B._numpy_pointwise(loss, "value_grad", y, f)
    return fns


def _cross_entropy_fns(n: int, k: int) -> dict[str, Callable[[], Any]]:
    rng = np.random.default_rng(0)
    f = rng.normal(0.0, 2.0, (n, k))
    y = rng.integers(0, k, n).astype(np.float64)
    fns = {"lossgrad": B._ce_lossgrad(y, f),
           "lossgrad (threshold 0)": B._ce_lossgrad(y, f)}
    for peer, build in (("sklearn", B._ce_sklearn), ("torch", B._ce_torch), ("jax", B._ce_jax)):
        if B._have(peer):
            fns[peer] = build(y, f)
    fns["reference"] = B._ce_numpy(y, f)
    return fns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"lossgrad {lossgrad.__version__}, kernel_threshold default {lossgrad.get_config().kernel_threshold}")
    cases = [(f"{name} value_grad", f"{n}", lambda name=name, n=n: _pointwise_fns(name, n))
             for name in ("squared_error", "logistic") for n in POINTWISE_SIZES]
    cases += [("cross_entropy value_grad", f"{n} x {k}", lambda n=n, k=k: _cross_entropy_fns(n, k))
              for n, k in CE_SHAPES]
    cols = ("lossgrad", "lossgrad (threshold 0)", *PEERS, "reference")
    print()
    print("| case | size | " + " | ".join(f"{c} us" for c in cols) + " | best peer / lossgrad (threshold 0) |")
    print("|---|---|" + "---|" * (len(cols) + 1))
    for case, size, build in cases:
        us = per_call_us(build(), a.repeat)
        peers = {p: us[p] for p in PEERS if p in us}
        best = min(peers, key=peers.get) if peers else None
        ratio = f"{peers[best] / us['lossgrad (threshold 0)']:.2f}x ({best})" if best else "-"
        cells = " | ".join(f"{us[c]:.1f}" if c in us else "-" for c in cols)
        print(f"| {case} | {size} | {cells} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
