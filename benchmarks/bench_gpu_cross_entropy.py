"""GPU cross-entropy: lossgrad's fused Triton kernel against PyTorch eager, torch.compile and Liger.

    python benchmarks/bench_gpu_cross_entropy.py [--rows 16384] [--vocab 4096 32768 131072]
                                                  [--dtypes fp32 bf16] [--repeat 20]
    python benchmarks/bench_gpu_cross_entropy.py --tune      # also lossgrad at 12 launch configurations
    python benchmarks/bench_gpu_cross_entropy.py --smoke     # no GPU: tiny sizes, Triton's interpreter

Each implementation computes the mean softmax cross-entropy of (rows, V) logits against
integer labels and its gradient with respect to the logits (forward and backward,
``torch.autograd.grad``):

* lossgrad: :func:`lossgrad.integrations.triton.cross_entropy` (value and gradient in one
  kernel; the backward returns the stored gradient), and the same with
  ``grad_into_logits=True`` (the gradient written over the logits);
* eager: ``torch.nn.functional.cross_entropy``;
* compile: the same under ``torch.compile`` (Inductor's generated Triton kernels);
* liger: Liger Kernel's ``liger_cross_entropy`` when the package imports (it writes the
  gradient into the logits' memory too).

The implementations that overwrite the logits get a fresh copy before every call
(outside the timed region).

Columns: the median of ``--repeat`` calls (CUDA events, implementations interleaved,
three warm-up calls each), the peak memory the call allocates beyond its inputs
(``torch.cuda.max_memory_allocated``), the rate at the floor's bytes (read the logits
once, write the gradient once: 2 x rows x V x itemsize) and that rate as a share of the
device-to-device copy rate measured in the same run (``Tensor.copy_`` of 2 GiB, read
plus write), and the largest gradient difference from eager (a correctness check).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

if "--smoke" in sys.argv and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # before Triton is imported: the kernel on CPU tensors

from lossgrad.integrations._triton_bench import DTYPES, run

TUNE = (  # (columns a step, warps, rows a program, pass 2 backwards); a block >= V keeps rows resident
    (1024, 4, 1, True), (2048, 4, 1, True), (2048, 8, 1, True), (4096, 4, 1, True), (4096, 8, 1, True),
    (4096, 8, 1, False), (4096, 8, 2, True), (4096, 16, 2, True), (8192, 8, 1, True), (8192, 16, 1, True),
    (16384, 32, 1, True), (2048, 8, 4, True),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--vocab", type=int, nargs="+", default=[4096, 32768, 131072])
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=sorted(DTYPES))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU through Triton's interpreter")
    parser.add_argument("--tune", action="store_true",
                        help="also time lossgrad at 12 launch configurations (block, warps, rows a program, "
                             "pass 2 backwards or not)")
    args = parser.parse_args(argv)
    configs = TUNE if args.tune else ()
    if args.smoke and args.tune:
        configs = ((16, 1, 1, True), (16, 2, 1, False), (64, 2, 2, True))
    if args.smoke:
        args.rows, args.vocab, args.repeat = 4, [40], 2
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark needs a GPU (or --smoke for a tiny run in the interpreter)")
    run(args.rows, args.vocab, args.dtypes, args.repeat, smoke=args.smoke, log=lambda line: print(line, flush=True),
        configs=configs)


if __name__ == "__main__":
    main()
