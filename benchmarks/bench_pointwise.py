"""Suite A: pointwise losses, lossgrad's fused kernels vs scikit-learn, PyTorch, JAX and NumPy.

    python benchmarks/bench_pointwise.py [--quick] [--large] [--repeat 5] [--sizes 1e8] [--peers sklearn jax]

N in {10^5, 10^7} (``--large`` adds 10^8; ``--quick``: 10^5 only, 3 repeats; ``--sizes``
these N only; ``--peers``: a subset of the peers), float64 and float32, ops value /
value+grad / grad+hess.  Prints the machine, then a Markdown table of median
milliseconds, the best peer's time over lossgrad's, the copy rate measured in the same
rounds as the row, and lossgrad's share of the bandwidth floor at that rate.  See
lossgrad.kernels.bench for the peers' conventions.
"""

from __future__ import annotations

import argparse

from lossgrad.kernels.bench import PEERS, copy_rates, format_table, machine, median_copy_rate, suite_pointwise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N = 10^5 only, 3 repeats")
    ap.add_argument("--large", action="store_true", help="add N = 10^8 (needs ~5 GB of memory)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sizes", type=float, nargs="+", help="these N only (e.g. --sizes 1e8 --repeat 3)")
    ap.add_argument("--peers", nargs="+", choices=PEERS, default=PEERS, help="the peers to time (default: all)")
    a = ap.parse_args()
    sizes = (100_000,) if a.quick else (100_000, 10_000_000) + ((100_000_000,) if a.large else ())
    sizes = tuple(int(n) for n in a.sizes) if a.sizes else sizes
    repeat = 3 if a.quick else a.repeat
    print(f"# machine: {machine()}")
    rows = suite_pointwise(sizes=sizes, repeat=repeat, peers=tuple(a.peers), log=lambda s: print(s, flush=True))
    print()
    print(f"# {copy_rates(rows)}")
    print(format_table(rows, median_copy_rate(rows)))


if __name__ == "__main__":
    main()
