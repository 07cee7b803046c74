"""Ranking losses: lossgrad's list kernels vs its reference vs PyTorch autograd.

    python benchmarks/bench_ranking.py [--quick] [--repeat 5]

Lists (n_lists, L) = (2000, 120) (MSLR-WEB-like queries) and (20000, 24) (Yahoo-like),
float64 and float32, grades 0..4, 10% of each list padding.  Operations:

* value+grad: what a network's training step asks for.  lossgrad ``value_grad``
  (the list kernel where the loss has one, else the array-API code), the same under
  ``use_kernels=False`` (reference), and PyTorch CPU autograd of the loss written in
  torch ops as learning-to-rank libraries write it (allRank, TF-Ranking's formulas):
  per-list values, then ``torch.autograd.grad`` of their sum;
* grad+hess diag: what a boosting round asks for (``grad_hess_diag``); torch has no
  Hessian diagonal short of L backward passes per list, so only kernel and reference.

Torch transcriptions (no lossgrad), per list over its real items:

* ranknet: mean over pairs rel_i > rel_j of softplus(-(s_i - s_j));
* listnet: -sum softmax(rel) log_softmax(s);
* approx_ndcg (T = 1): -DCG(1 + sum_j sigmoid(s_j - s_i)) / ideal DCG;
* lambdaloss (ndcg2): the weights |G_i - G_j| (1/D(|pi_i - pi_j|) - 1/D(|pi_i - pi_j| + 1)) / maxDCG
  from the ranks of the detached scores (an argsort), times log2(1 + exp(-(s_i - s_j)))
  on the pairs.

Times are medians of ``--repeat`` runs after one warm-up, the implementations of a case
measured in turn (:func:`lossgrad.kernels.bench._medians`).  Each case first checks that
the implementations agree on the first 32 lists.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
from collections.abc import Callable
from typing import Any

import numpy as np

import lossgrad
from lossgrad.kernels import n_threads
from lossgrad.kernels.bench import _medians

LOSSES = {
    "ranknet": lossgrad.get("ranknet"),
    "listnet": lossgrad.get("listnet"),
    "approx_ndcg": lossgrad.get("approx_ndcg"),
    "lambdaloss": lossgrad.get("lambdaloss"),
}


def _lists(n: int, width: int, dtype: Any, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = rng.random((n, width)) > 0.1
    mask[:, :2] = True
    rel = np.where(mask, rng.integers(0, 5, (n, width)), 0).astype(dtype)
    scores = (rng.normal(size=(n, width)) + 0.5 * rel).astype(dtype)
    return {"scores": scores, "relevance": rel, "mask": mask}


def _torch_values(name: str, st: Any, rel: Any, mask: Any) -> Any:
    """Per-list values of the loss ``name`` in torch ops (see the module docstring)."""
    import torch
    import torch.nn.functional as F

    width = st.shape[1]
    both = mask[:, :, None] & mask[:, None, :]
    d = st[:, :, None] - st[:, None, :]  # d[l, i, j] = s_i - s_j
    if name == "ranknet":
        pair = both & (rel[:, :, None] > rel[:, None, :])
        total = (F.softplus(-d) * pair).sum((1, 2))
        return total / pair.sum((1, 2)).clamp_min(1)
    if name == "listnet":
        low = torch.finfo(st.dtype).min
        target = torch.softmax(torch.where(mask, rel, low), dim=1)
        return -(target * torch.log_softmax(torch.where(mask, st, low), dim=1)).masked_fill(~mask, 0.0).sum(1)
    gains = torch.where(mask, 2.0**rel - 1.0, 0.0)
    discounts = torch.log2(torch.arange(2, width + 2, dtype=st.dtype))
    ideal = (torch.sort(gains, dim=1, descending=True).values / discounts).sum(1)
    if name == "approx_ndcg":
        off = both & ~torch.eye(width, dtype=torch.bool)
        ranks = 1.0 + (torch.sigmoid(-d) * off).sum(2)
        return -(gains / torch.log2(1.0 + ranks)).sum(1) / ideal.clamp_min(torch.finfo(st.dtype).tiny)
    if name == "lambdaloss":
        key = torch.where(mask, -st.detach(), math.inf)
        ranks = torch.argsort(torch.argsort(key, dim=1, stable=True), dim=1).to(st.dtype) + 1.0
        gap = (ranks[:, :, None] - ranks[:, None, :]).abs().clamp_min(1.0)
        delta = 1.0 / torch.log2(1.0 + gap) - 1.0 / torch.log2(2.0 + gap)
        pair = both & (rel[:, :, None] > rel[:, None, :])
        w = (gains[:, :, None] - gains[:, None, :]).abs() * delta / ideal.clamp_min(1e-30)[:, None, None]
        return (torch.where(pair, w, 0.0) * F.softplus(-d)).sum((1, 2)) / math.log(2.0)
    raise ValueError(name)


def _torch_run(name: str, inputs: dict[str, np.ndarray]) -> Callable[[], Any]:
    import torch

    s0 = torch.from_numpy(inputs["scores"])
    rel, mask = torch.from_numpy(inputs["relevance"]), torch.from_numpy(inputs["mask"])

    def run() -> tuple[Any, Any]:
        st = s0.detach().requires_grad_(True)
        values = _torch_values(name, st, rel, mask)
        (g,) = torch.autograd.grad(values.sum(), st)
        return values.detach().numpy(), g.numpy()

    return run


def _check(name: str, loss: Any, inputs: dict[str, np.ndarray]) -> None:
    """Kernel, reference and torch agree on the first 32 lists (a benchmark of different
    answers would be worthless)."""
    head = {k: v[:32] for k, v in inputs.items()}
    with lossgrad.config_context(kernel_threshold=0):
        v, g = loss.value_grad(**head)
    with lossgrad.config_context(use_kernels=False):
        rv, rg = loss.value_grad(**head)
    tv, tg = _torch_run(name, head)()
    tol = 2e-4 if inputs["scores"].dtype == np.float32 else 1e-10
    for a in (v, rv, tv):
        np.testing.assert_allclose(a, rv, rtol=tol, atol=tol)
    for a in (g["scores"], tg):
        np.testing.assert_allclose(a, rg["scores"], rtol=tol, atol=tol * np.abs(rg["scores"]).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tenth of the lists, 3 repeats")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    repeat = 3 if a.quick else a.repeat
    import torch

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, kernel threads {n_threads()}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads); median of {repeat} runs (ms)")
    print()
    print("| loss | lists x L | dtype | op | lossgrad | reference | torch | reference / lossgrad | torch / lossgrad |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for n, width in ((2000, 120), (20000, 24)):
        n = n // 10 if a.quick else n
        for dt in (np.float64, np.float32):
            inputs = _lists(n, width, dt)
            for name, loss in LOSSES.items():
                _check(name, loss, inputs)
                for op in ("value_grad", "grad_hess_diag"):
                    fns: dict[str, Callable[[], Any]] = {"lossgrad": lambda loss=loss, op=op: getattr(loss, op)(**inputs)}

                    def reference(loss=loss, op=op):
                        with lossgrad.config_context(use_kernels=False):
                            return getattr(loss, op)(**inputs)

                    fns["reference"] = reference
                    if op == "value_grad":
                        fns["torch"] = _torch_run(name, inputs)
                    t = _medians(fns, repeat)
                    tk = t["lossgrad"]
                    torch_ms, torch_ratio = (f"{1e3 * t['torch']:.1f}", f"{t['torch'] / tk:.1f}x") if "torch" in t \
                        else ("-", "-")
                    label = "value+grad" if op == "value_grad" else "grad+hess diag"
                    print(f"| {name} | {n} x {width} | {np.dtype(dt).name} | {label} | {1e3 * tk:.1f} | "
                          f"{1e3 * t['reference']:.1f} | {torch_ms} | {t['reference'] / tk:.1f}x | {torch_ratio} |",
                          flush=True)


if __name__ == "__main__":
    main()
