"""Suite B: softmax cross-entropy value+grad, lossgrad's row kernel vs the peers.

    python benchmarks/bench_cross_entropy.py [--quick] [--repeat 5]

(N, K) in {(2^18, 128), (65536, 1000), (4096, 32768)} and (2^20, 10), where grad +
Hessian diagonal (what boosting asks for) is timed too (``--quick``: N divided by 16,
3 repeats), float32 and float64, class-index targets.  Prints a Markdown table of median
milliseconds, the best peer over lossgrad, and the share of the bandwidth floor (read
the logits, write the gradient) at the copy rate measured in the same run.
"""

from __future__ import annotations

import argparse

from lossgrad.kernels.bench import (
    CE_NARROW_SHAPE,
    CE_SHAPES,
    copy_rates,
    format_table,
    machine,
    median_copy_rate,
    suite_cross_entropy,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N / 16, 3 repeats")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    shapes = CE_SHAPES + (CE_NARROW_SHAPE,)
    shapes = tuple((n // 16, k) for n, k in shapes) if a.quick else shapes
    repeat = 3 if a.quick else a.repeat
    print(f"# machine: {machine()}")
    rows = suite_cross_entropy(shapes=shapes, repeat=repeat, log=lambda s: print(s, flush=True))
    print()
    print(f"# {copy_rates(rows)}")
    print(format_table(rows, median_copy_rate(rows)))


if __name__ == "__main__":
    main()
