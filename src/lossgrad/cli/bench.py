"""``lossgrad bench``: a short run of the benchmark suites (fused kernels vs the installed peers).

The full suites are ``benchmarks/bench_pointwise.py`` and ``benchmarks/bench_cross_entropy.py``
(see docs/benchmarks.md); this command runs small sizes with few repeats, and only the
peers that are installed, so that it finishes in seconds to a minute.
"""

from __future__ import annotations

import typer

from ._app import app, console

__all__ = ["bench", "run_bench"]


def run_bench(n: int = 200_000, shape: tuple[int, int] = (4096, 256), repeat: int = 3,
              peers: tuple[str, ...] | None = None, losses: tuple[str, ...] | None = None) -> str:
    """Run both suites at small sizes and return the Markdown table (copy bandwidth on top)."""
    from ..kernels import bench as B

    peers = B.PEERS if peers is None else peers
    losses = B.POINTWISE_LOSSES if losses is None else losses
    bw = B.copy_bandwidth(n=max(n, 1_000_000), repeat=repeat)
    rows = B.suite_pointwise(sizes=(n,), losses=losses, repeat=repeat, peers=peers)
    rows += B.suite_cross_entropy(shapes=(shape,), repeat=repeat, peers=peers)
    return f"copy bandwidth {bw / 1e9:.1f} GB/s (read + write)\n\n" + B.format_table(rows, bw)


@app.command("bench")
def bench(
    n: int = typer.Option(200_000, help="elements of the pointwise suite"),
    rows: int = typer.Option(4096, help="rows N of the cross-entropy suite"),
    classes: int = typer.Option(256, help="classes K of the cross-entropy suite"),
    repeat: int = typer.Option(3, help="timed runs per entry (the median is shown)"),
    peer: list[str] = typer.Option(None, help="peers to run (sklearn, torch, jax, numpy); default all installed"),
) -> None:
    """Time lossgrad's fused kernels against the installed peers (short version of benchmarks/)."""
    console().print(run_bench(n, (rows, classes), repeat, tuple(peer) if peer else None), markup=False,
                    highlight=False, soft_wrap=True)
