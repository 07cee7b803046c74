"""The GPU cross-entropy benchmark (``benchmarks/bench_gpu_cross_entropy.py``, ``lossgrad bench --gpu``).

Each implementation computes the mean softmax cross-entropy of (rows, V) logits against
integer labels and its gradient with respect to the logits (forward and backward,
``torch.autograd.grad``): lossgrad's fused Triton kernel (plain, with
``grad_into_logits=True``, and without its input checks: ``assume_valid``), PyTorch
eager, the same under ``torch.compile``, and Liger Kernel's ``liger_cross_entropy``
when it imports.  Columns: the median of ``repeat``
calls (CUDA events, implementations interleaved, three warm-up calls each), the peak
memory a call allocates beyond its inputs, the rate at the floor's bytes (read the
logits once, write the gradient once: 2 x rows x V x itemsize) and its share of the
device-to-device copy rate measured in the same run, and the largest gradient
difference from eager (a correctness check).  The implementations that overwrite their
logits get a fresh copy before every call, outside the timed region.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .._config import config_context
from . import _triton_ce
from . import triton as lgtr

__all__ = ["DTYPES", "run"]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[], Any], device: str) -> float:
    """Milliseconds of one call."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - t)


def copy_rate_gbs(device: str, nbytes: int) -> float:
    """Device-to-device copy rate, bytes read plus bytes written per second (median of 10)."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    _sync(device)
    ms = statistics.median(_timed(lambda: dst.copy_(src), device) for _ in range(10))
    return 2 * nbytes / (ms * 1e-3) / 1e9


Config = tuple[int, int, int, bool]  # (block, num_warps, rows_per_program, pass 2 backwards)


def config_name(config: Config) -> str:
    block, warps, rows, reverse = config
    return f"lossgrad block={block} warps={warps} rows={rows}" + (" backwards" if reverse else "")


def implementations(smoke: bool, configs: tuple[Config, ...] = ()
                    ) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """The timed callables; ``configs``: extra lossgrad entries, one per launch configuration."""
    def run(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[..., torch.Tensor]:
        def call(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            (g,) = torch.autograd.grad(loss_fn(f, y), f)
            return g

        return call

    block = 16 if smoke else None
    out = {
        "lossgrad": run(lambda f, y: lgtr.cross_entropy(y, f, block=block)),
        "lossgrad in place": run(lambda f, y: lgtr.cross_entropy(y, f, grad_into_logits=True, block=block)),
        "lossgrad unchecked": run(functools.partial(_unchecked, block)),
        "eager": run(lambda f, y: F.cross_entropy(f, y)),
    }
    for config in configs:
        out[config_name(config)] = run(functools.partial(_configured, config))
    if not smoke:
        out["compile"] = run(torch.compile(lambda f, y: F.cross_entropy(f, y)))
        try:
            from liger_kernel.transformers.functional import liger_cross_entropy
        except ImportError:
            print("liger: not installed (pip install liger-kernel), left out")
        else:
            out["liger"] = run(lambda f, y: liger_cross_entropy(f, y))
    return out


def _unchecked(block: int | None, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """lossgrad without its input checks (``assume_valid``): no synchronisation in the forward pass."""
    with config_context(assume_valid=True):
        return lgtr.cross_entropy(y, f, block=block)


def _configured(config: Config, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    block, warps, rows, reverse = config
    saved, _triton_ce.REVERSE_SECOND_PASS = _triton_ce.REVERSE_SECOND_PASS, reverse
    try:
        return lgtr.cross_entropy(y, f, block=block, num_warps=warps, rows_per_program=rows)
    finally:
        _triton_ce.REVERSE_SECOND_PASS = saved


OVERWRITES_LOGITS = ("lossgrad in place", "liger")  # these get fresh logits for every call


def measure(rows: int, vocab: int, dtype: torch.dtype, repeat: int, device: str, copy_gbs: float,
            smoke: bool, configs: tuple[Config, ...] = ()) -> list[str]:
    gen = torch.Generator(device=device).manual_seed(0)
    base = torch.randn(rows, vocab, generator=gen, device=device, dtype=torch.float32).mul_(2.0).to(dtype)
    y = torch.randint(0, vocab, (rows,), generator=gen, device=device)
    impls = implementations(smoke, configs)
    reference = impls["eager"](base.clone().requires_grad_(), y).float()
    shared = base.clone().requires_grad_()

    def logits(name: str) -> torch.Tensor:
        return base.clone().requires_grad_() if name in OVERWRITES_LOGITS else shared

    diffs = {}
    for name, fn in impls.items():  # correctness, then two more warm-up calls
        diffs[name] = float((fn(logits(name), y).float() - reference).abs().max())
        for _ in range(2):
            fn(logits(name), y)
    times: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(repeat):
        for name, fn in impls.items():
            f = logits(name)
            times[name].append(_timed(lambda fn=fn, f=f: fn(f, y), device))
            del f
    del reference
    lines = []
    eager_ms = statistics.median(times["eager"])
    for name, fn in impls.items():
        peak = float("nan")
        if device == "cuda":
            f = logits(name)
            _sync(device)
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            g = fn(f, y)
            _sync(device)
            peak = (torch.cuda.max_memory_allocated() - before) / 2**20
            del g, f
        ms = statistics.median(times[name])
        gbs = 2 * rows * vocab * base.element_size() / (ms * 1e-3) / 1e9
        share = 100 * gbs / copy_gbs if copy_gbs else float("nan")
        lines.append(
            f"| {str(dtype).removeprefix('torch.')} | {rows}x{vocab} | {name} | {ms:.3f} | {peak:.0f} | {gbs:.0f} "
            f"| {share:.0f}% | {eager_ms / ms:.2f}x | {diffs[name]:.1e} |"
        )
    return lines


def run(rows: int, vocab: list[int], dtypes: list[str], repeat: int, smoke: bool = False,
        log: Callable[[str], Any] = print, configs: tuple[Config, ...] = ()) -> list[str]:
    """Run the benchmark, passing each line of the Markdown table to ``log``; returns them.
    ``smoke``: a tiny run on the CPU (the kernel through Triton's interpreter, which must
    have been switched on with TRITON_INTERPRET=1 before Triton was imported).
    ``configs``: launch configurations timed as extra lossgrad rows (tuning)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cuda" and not smoke:
        raise RuntimeError("no CUDA device: the GPU benchmark needs one")
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (Triton interpreter)"
    copy_gbs = copy_rate_gbs(device, 2**31 if device == "cuda" else 2**22)
    lines = [f"device: {name}; torch {torch.__version__}; copy rate {copy_gbs:.0f} GB/s (read + write)",
             "| dtype | rows x V | implementation | ms | peak MiB | GB/s at the floor | of copy rate | eager / this "
             "| max abs grad diff vs eager |",
             "|---|---|---|---|---|---|---|---|---|"]
    for line in lines:
        log(line)
    for dtype in dtypes:
        for v in vocab:
            for line in measure(rows, v, DTYPES[dtype], repeat, device, copy_gbs, smoke, configs):
                log(line)
                lines.append(line)
    return lines
