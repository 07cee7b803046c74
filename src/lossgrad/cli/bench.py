"""``lossgrad bench``: a short run of the benchmark suites (fused kernels vs the installed peers).

The full suites are ``benchmarks/bench_pointwise.py`` and ``benchmarks/bench_cross_entropy.py``
(see docs/benchmarks.md); this command runs small sizes with few repeats, and only the
peers that are installed, so that it finishes in seconds to a minute.  ``--gpu`` runs a
short version of ``benchmarks/bench_gpu_cross_entropy.py`` instead (a CUDA device).
"""

from __future__ import annotations

import typer

from ._app import app, console

__all__ = ["bench", "run_bench"]


def run_bench(n: int = 200_000, shape: tuple[int, int] = (4096, 256), repeat: int = 3,
              peers: tuple[str, ...] | None = None, losses: tuple[str, ...] | None = None) -> str:
    """Run both suites at small sizes and return the Markdown table (machine and copy rate
    on top; the copy of 2n float64 is timed in the same rounds as each row)."""
    from ..kernels import bench as B

    peers = B.PEERS if peers is None else peers
    losses = B.POINTWISE_LOSSES if losses is None else losses
    copy = 2 * n  # float64 elements: every row of the short run moves more than a quarter of its bytes
    rows = B.suite_pointwise(sizes=(n,), losses=losses, repeat=repeat, peers=peers, copy_elements=copy)
    rows += B.suite_cross_entropy(shapes=(shape,), repeat=repeat, peers=peers, copy_elements=copy)
    return f"{B.machine()}\n{B.copy_rates(rows)}\n\n" + B.format_table(rows, B.median_copy_rate(rows))


@app.command("bench")
def bench(
    n: int = typer.Option(200_000, help="elements of the pointwise suite"),
    rows: int = typer.Option(4096, help="rows N of the cross-entropy suite"),
    classes: int = typer.Option(256, help="classes K of the cross-entropy suite"),
    repeat: int = typer.Option(3, help="timed runs per entry (the median is shown)"),
    peer: list[str] = typer.Option(None, help="peers to run (sklearn, torch, jax, numpy); default all installed"),
    gpu: bool = typer.Option(False, "--gpu", help="instead: the Triton cross-entropy on a CUDA device, 4096 x 32768 "
                             "logits, fp32 and bf16, against PyTorch eager, torch.compile and Liger"),
) -> None:
    """Time lossgrad's fused kernels against the installed peers (short version of benchmarks/)."""
    if gpu:
        _bench_gpu(repeat)
        return
    console().print(run_bench(n, (rows, classes), repeat, tuple(peer) if peer else None), markup=False,
                    highlight=False, soft_wrap=True)


def _bench_gpu(repeat: int) -> None:
    """The short GPU run (benchmarks/bench_gpu_cross_entropy.py has the full sizes)."""
    import importlib.util

    missing = [m for m in ("torch", "triton") if importlib.util.find_spec(m) is None]
    if missing:
        console().print(f"lossgrad bench --gpu needs {' and '.join(missing)} (pip install lossgrad[triton])")
        raise typer.Exit(1)
    import torch

    if not torch.cuda.is_available():
        console().print("lossgrad bench --gpu needs a CUDA device; torch sees none")
        raise typer.Exit(1)
    from ..integrations._triton_bench import run

    run(4096, [32768], ["fp32", "bf16"], max(repeat, 5),
        log=lambda line: console().print(line, markup=False, highlight=False, soft_wrap=True))
