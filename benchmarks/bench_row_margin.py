"""Row margin losses: value+grad of lossgrad's row kernels vs its reference vs PyTorch.

    python benchmarks/bench_row_margin.py [--quick] [--repeat 5] [--n 65536] [--k 1000]

Losses (N, K) = (65536, 1000), float32 and float64: multiclass_hinge (Weston-Watkins,
margin 1, and Crammer-Singer), categorical_hinge and sparsemax_loss on class labels,
multilabel on 0/1 targets (10% ones) with and without pos_weight.  Columns:

* kernel: ``loss.value_grad(y, f)`` with the defaults (the fused Numba row kernel, rows
  split over the cores);
* reference: the same call under ``lossgrad.config_context(use_kernels=False)`` (the
  array-API NumPy code);
* torch: PyTorch CPU autograd, per-row values with ``reduction="none"`` and the
  gradient of their sum by ``torch.autograd.grad`` (the rows are independent, so it is
  the per-row gradient), where torch has the loss:

  - multiclass_hinge (Weston-Watkins) = ``K * multi_margin_loss(f, y, p=1, margin=m)``:
    torch divides each row's sum over j != y by the number of classes K;
  - multilabel = ``binary_cross_entropy_with_logits(f, y, pos_weight=w).sum(1)``:
    lossgrad sums the K columns of a row, torch's ``reduction="none"`` keeps them
    (its "mean" divides by N K);
  - Crammer-Singer, categorical_hinge (Keras) and sparsemax_loss have no torch
    function ("-").

Times are medians of ``--repeat`` runs after one warm-up, the implementations of a
case measured in turn (:func:`lossgrad.kernels.bench._medians`); every call allocates
its outputs.  The floor is (bytes of f and y read + bytes of the gradient written) at
the copy rate of :func:`lossgrad.kernels.bench.copy_bandwidth` measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable
from typing import Any

import numpy as np

import lossgrad
from lossgrad.kernels import n_threads
from lossgrad.kernels.bench import _medians, copy_bandwidth


def _cases(k: int) -> list[tuple[str, Any, str]]:
    pw = tuple(np.random.default_rng(1).uniform(0.5, 3.0, k))
    return [
        ("multiclass_hinge (WW)", lossgrad.MulticlassHinge(), "labels"),
        ("multiclass_hinge (CS)", lossgrad.MulticlassHinge(kind="crammer_singer"), "labels"),
        ("categorical_hinge", lossgrad.CategoricalHinge(), "labels"),
        ("sparsemax_loss", lossgrad.SparsemaxLoss(), "labels"),
        ("multilabel", lossgrad.Multilabel(), "multilabel"),
        ("multilabel (pos_weight)", lossgrad.Multilabel(pos_weight=pw), "multilabel"),
    ]


def _torch(loss: Any, y: np.ndarray, f: np.ndarray) -> Callable[[], Any] | None:
    import torch
    import torch.nn.functional as F

    k = f.shape[1]
    ft0 = torch.from_numpy(f)
    if isinstance(loss, lossgrad.MulticlassHinge) and loss.kind == "weston_watkins":
        yt = torch.from_numpy(y.astype(np.int64))

        def rows(ft):
            return k * F.multi_margin_loss(ft, yt, p=1, margin=loss.margin, reduction="none")
    elif isinstance(loss, lossgrad.Multilabel):
        yt = torch.from_numpy(y)
        pw = None if loss.pos_weight is None else torch.tensor(loss.pos_weight, dtype=ft0.dtype)

        def rows(ft):
            return F.binary_cross_entropy_with_logits(ft, yt, pos_weight=pw, reduction="none").sum(dim=1)
    else:
        return None

    def run():
        ft = ft0.detach().requires_grad_(True)
        v = rows(ft)
        (g,) = torch.autograd.grad(v.sum(), ft)
        return v.detach(), g

    return run


def _check(loss: Any, y: np.ndarray, f: np.ndarray, torch_run: Callable[[], Any] | None) -> None:
    """The three agree on a slice (a benchmark of different answers would be worthless)."""
    ys, fs = y[:64], f[:64]
    with lossgrad.config_context(kernel_threshold=0):
        v, g = loss.value_grad(ys, fs)
    with lossgrad.config_context(use_kernels=False):
        rv, rg = loss.value_grad(ys, fs)
    tol = 1e-4 if f.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(v, rv, rtol=tol, atol=tol)
    np.testing.assert_allclose(g, rg, rtol=tol, atol=tol)
    if torch_run is not None:
        tv, tg = _torch(loss, ys, fs)()
        np.testing.assert_allclose(tv.numpy(), rv, rtol=tol, atol=tol * f.shape[1])
        np.testing.assert_allclose(tg.numpy(), rg, rtol=tol, atol=tol)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N / 16, 3 repeats")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--n", type=int, default=65536)
    ap.add_argument("--k", type=int, default=1000)
    a = ap.parse_args()
    n, k = (a.n // 16 if a.quick else a.n), a.k
    repeat = 3 if a.quick else a.repeat
    try:
        import torch

        torch_info = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:  # pragma: no cover - torch is optional
        torch, torch_info = None, "torch not installed"
    bw = copy_bandwidth()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, kernel threads {n_threads()}, "
          f"{torch_info}; copy bandwidth {bw / 1e9:.1f} GB/s; N={n}, K={k}; median of {repeat} runs (ms)")
    print()
    print("| loss | dtype | kernel | reference | torch | reference / kernel | torch / kernel | floor |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        f = rng.normal(0.0, 2.0, (n, k)).astype(dt)
        labels = rng.integers(0, k, n)
        ml = (rng.random((n, k)) < 0.1).astype(dt)
        for name, loss, target in _cases(k):
            y = labels if target == "labels" else ml
            fns: dict[str, Callable[[], Any]] = {"kernel": lambda loss=loss, y=y: loss.value_grad(y, f)}

            def ref(loss=loss, y=y):
                with lossgrad.config_context(use_kernels=False):
                    return loss.value_grad(y, f)

            fns["reference"] = ref
            tr = _torch(loss, y, f) if torch is not None else None
            if tr is not None:
                fns["torch"] = tr
            _check(loss, y, f, tr)
            t = _medians(fns, repeat)
            floor = (f.nbytes + y.nbytes + f.nbytes) / bw
            tk = t["kernel"]
            torch_ms = f"{1e3 * t['torch']:.1f}" if "torch" in t else "-"
            torch_ratio = f"{t['torch'] / tk:.1f}x" if "torch" in t else "-"
            print(f"| {name} | {np.dtype(dt).name} | {1e3 * tk:.1f} | {1e3 * t['reference']:.1f} | {torch_ms} | "
                  f"{t['reference'] / tk:.1f}x | {torch_ratio} | {1e3 * floor:.1f} |", flush=True)


if __name__ == "__main__":
    main()
