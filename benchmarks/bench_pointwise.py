"""Suite A: pointwise losses, lossgrad's fused kernels vs scikit-learn, PyTorch, JAX and NumPy.

    python benchmarks/bench_pointwise.py [--quick] [--large] [--repeat 5]

N in {10^5, 10^7} (``--large`` adds 10^8; ``--quick``: 10^5 only, 3 repeats), float64
and float32, ops value / value+grad / grad+hess.  Prints a Markdown table of median
milliseconds, the best peer's time over lossgrad's, and lossgrad's share of the copy
bandwidth floor (measured in the same run).  See lossgrad.kernels.bench for the peers'
conventions.
"""

from __future__ import annotations

import argparse
import os
import platform

from lossgrad.kernels.bench import copy_bandwidth, format_table, suite_pointwise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N = 10^5 only, 3 repeats")
    ap.add_argument("--large", action="store_true", help="add N = 10^8 (needs ~5 GB of memory)")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    sizes = (100_000,) if a.quick else (100_000, 10_000_000) + ((100_000_000,) if a.large else ())
    repeat = 3 if a.quick else a.repeat
    bw = copy_bandwidth()
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"copy bandwidth {bw / 1e9:.1f} GB/s (read + write)")
    rows = suite_pointwise(sizes=sizes, repeat=repeat, log=lambda s: print(s, flush=True))
    print()
    print(format_table(rows, bw))


if __name__ == "__main__":
    main()
