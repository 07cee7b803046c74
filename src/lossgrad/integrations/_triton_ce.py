r"""The fused Triton kernel of :class:`lossgrad.CrossEntropy` for GPU tensors.

One program per row.  Pass 1 reads the row once and keeps the running maximum m
and the rescaled sum d = sum_c exp(f_c - m) (online softmax, Milakov & Gimelshein
2018), so lse = m + log d without a stored probability row; it also notes
non-finite logits, labels outside [0, K) and, for probability targets, entries
outside [0, 1] and the row sum.  Pass 2 reads the row again (from L2 when the row
is still there), writes the gradient and sums the value:

    a_c = w_c ((1 - eps) q_c + eps / K)         (q = e_y for a label y; 0 if ignored)
    S   = sum_c a_c
    l   = sum_c a_c (m - f_c) + S log d + z lse^2
    g_c = s_i ((S + 2 z lse) p_c - a_c),        p_c = exp(f_c - lse)

with s_i the row's scale (sample weight / mean denominator), folded in so that a
mean or sum needs no second pass over the gradient.  sum_c a_c (m - f_c) is the
same value as S lse - sum_c a_c f_c but has no cancellation (every m - f_c >= 0).
Accumulation is in float32 for 16- and 32-bit logits and float64 for float64;
the gradient is stored in the logits' dtype.

The kernel never raises (a GPU kernel cannot): it writes a status word per row
(1 non-finite logit, 2 bad label, 4 target entry outside [0, 1]) and the target
row sums; :mod:`lossgrad.integrations.triton` turns them into lossgrad's errors.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import triton
import triton.language as tl

__all__ = ["launch", "default_block", "default_warps", "compile_for"]

BAD_LOGIT = tl.constexpr(1)  # the status bits (constexpr globals: a kernel can read them)
BAD_LABEL = tl.constexpr(2)
BAD_TARGET = tl.constexpr(4)


@triton.jit
def _cross_entropy_rows(
    f_ptr, f_stride, y_ptr, y_stride, w_ptr, scale_ptr, g_ptr, g_stride, loss_ptr, status_ptr, qsum_ptr,
    param_ptr, n_classes, ignore_index,
    LABELS: tl.constexpr, HAS_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr, WANT_GRAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    acc: tl.constexpr = loss_ptr.dtype.element_ty
    row = tl.program_id(0).to(tl.int64)
    f_row = f_ptr + row * f_stride
    y_row = y_ptr + row * y_stride
    g_row = g_ptr + row * g_stride
    cols = tl.arange(0, BLOCK)
    eps = tl.load(param_ptr)  # in the accumulator dtype: a float argument would be float32
    z_loss = tl.load(param_ptr + 1)
    weight_total = tl.load(param_ptr + 2)
    spread = eps / n_classes

    keep = 1.0
    label = 0
    w_label = 1.0
    status = 0
    if LABELS:
        label = tl.load(y_row).to(tl.int64)
        valid = (label >= 0) & (label < n_classes)
        if HAS_IGNORE:
            keep = tl.where(label == ignore_index, 0.0, 1.0)
            status = tl.where(valid | (label == ignore_index), 0, BAD_LABEL)
        else:
            status = tl.where(valid, 0, BAD_LABEL)
        if HAS_WEIGHT:
            w_label = tl.load(w_ptr + label, mask=valid, other=0.0).to(acc)

    # pass 1: running max, rescaled exp-sum, checks (and the target sums)
    m = tl.full((), float("-inf"), acc)
    d = tl.zeros((), acc)
    n_bad = tl.zeros((), tl.int32)
    q_bad = tl.zeros((), tl.int32)
    q_total = tl.zeros((), acc)
    wq_total = tl.zeros((), acc)
    for start in range(0, n_classes, BLOCK):
        c = start + cols
        inside = c < n_classes
        x = tl.load(f_row + c, mask=inside, other=float("-inf")).to(acc)
        finite = tl.abs(x) < float("inf")  # False for NaN and +-inf
        n_bad += tl.sum((inside & ~finite).to(tl.int32), axis=0)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        d = d * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
        m = m_new
        if not LABELS:
            q = tl.load(y_row + c, mask=inside, other=0.0).to(acc)
            q_bad += tl.sum((inside & ~((q >= 0.0) & (q <= 1.0))).to(tl.int32), axis=0)
            q_total += tl.sum(q, axis=0)
            if HAS_WEIGHT:
                wq_total += tl.sum(q * tl.load(w_ptr + c, mask=inside, other=0.0).to(acc), axis=0)
    status = status | tl.where(n_bad > 0, BAD_LOGIT, 0) | tl.where(q_bad > 0, BAD_TARGET, 0)

    log_d = tl.log(d)
    lse = m + log_d
    if LABELS:
        s_total = keep * ((1.0 - eps) * w_label + spread * weight_total)
    elif HAS_WEIGHT:
        s_total = (1.0 - eps) * wq_total + spread * weight_total
    else:
        s_total = (1.0 - eps) * q_total + eps
    z = z_loss * keep
    coef_p = s_total + 2.0 * z * lse
    scale = tl.load(scale_ptr + row).to(acc)

    # pass 2: the value's sum and the gradient
    a_gap = tl.zeros((), acc)
    for start in range(0, n_classes, BLOCK):
        c = start + cols
        inside = c < n_classes
        x = tl.load(f_row + c, mask=inside, other=0.0).to(acc)
        if HAS_WEIGHT:
            w = tl.load(w_ptr + c, mask=inside, other=0.0).to(acc)
        else:
            w = tl.where(inside, 1.0, 0.0).to(acc)
        if LABELS:
            a = keep * (spread * w + tl.where(c == label, (1.0 - eps) * w_label, 0.0))
        else:
            q = tl.load(y_row + c, mask=inside, other=0.0).to(acc)
            a = w * ((1.0 - eps) * q + spread)
        a_gap += tl.sum(a * (m - x), axis=0)  # a = 0 and x = 0 on masked lanes
        if WANT_GRAD:
            p = tl.exp(x - lse)
            g = scale * (coef_p * p - a)
            tl.store(g_row + c, g.to(g_ptr.dtype.element_ty), mask=inside)

    tl.store(loss_ptr + row, a_gap + s_total * log_d + z * lse * lse)
    tl.store(status_ptr + row, status)
    tl.store(qsum_ptr + row, q_total)


def default_block(n_classes: int, dtype: torch.dtype) -> int:
    """Columns per step: the row in one step up to 4096 (8192 for 16-bit logits)."""
    cap = 8192 if dtype in (torch.float16, torch.bfloat16) else 4096
    return max(16, min(cap, triton.next_power_of_2(n_classes)))


def default_warps(block: int) -> int:
    return 4 if block <= 1024 else 8 if block <= 4096 else 16


def accumulator(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@functools.lru_cache(maxsize=256)
def _params(eps: float, z_loss: float, weight_total: float, device: torch.device, acc: torch.dtype) -> torch.Tensor:
    """The kernel's float parameters on the device (kept: a host-to-device copy per call
    costs more than a small launch)."""
    return torch.tensor([eps, z_loss, weight_total], dtype=acc, device=device)


def launch(
    f: torch.Tensor,
    y: torch.Tensor,
    *,
    labels: bool,
    weight: torch.Tensor | None,
    weight_total: float,
    ignore_index: int | None,
    eps: float,
    z_loss: float,
    scale: torch.Tensor,
    want_grad: bool,
    grad_out: torch.Tensor | None = None,
    block: int | None = None,
    num_warps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Run the kernel: (loss rows, gradient or None, status words, target row sums).

    ``f`` (N, K) with unit column stride; ``y`` (N,) integer labels or (N, K) target
    rows with unit column stride; ``scale`` (N,) in the accumulator dtype.  ``grad_out``:
    where the gradient goes (``f`` itself is allowed: each block is read before it is
    overwritten).
    """
    n, k = f.shape
    acc = accumulator(f.dtype)
    loss_rows = torch.empty(n, dtype=acc, device=f.device)
    status = torch.empty(n, dtype=torch.int32, device=f.device)
    qsum = torch.empty(n, dtype=acc, device=f.device)
    if not want_grad:
        g = None
    elif grad_out is not None:
        g = grad_out
    else:
        g = torch.empty_like(f, memory_format=torch.contiguous_format)
    block = block or default_block(k, f.dtype)
    if block & (block - 1):
        raise ValueError(f"block must be a power of two, got {block}")
    grid = (n,)
    params = _params(float(eps), float(z_loss), float(weight_total), f.device, acc)
    if n == 0:
        return loss_rows, g, status, qsum
    dummy: Any = f
    _cross_entropy_rows[grid](
        f, f.stride(0), y, y.stride(0) if y.ndim == 2 else 1, weight if weight is not None else dummy, scale,
        g if g is not None else dummy, g.stride(0) if g is not None else 0, loss_rows, status, qsum,
        params, k, ignore_index if ignore_index is not None else 0,
        LABELS=labels, HAS_WEIGHT=weight is not None, HAS_IGNORE=ignore_index is not None, WANT_GRAD=want_grad,
        BLOCK=block, num_warps=num_warps or default_warps(block),
    )
    return loss_rows, g, status, qsum


def compile_for(arch: int, *, labels: bool, weighted: bool, dtype: str, block: int = 4096, num_warps: int = 8) -> Any:
    """Compile one variant of the kernel for an NVIDIA GPU of compute capability ``arch``
    (90 = Hopper) without a GPU: Triton's front end, LLVM and the bundled ptxas.  Returns
    Triton's compiled kernel (``.asm["ptx"]``, ``.asm["cubin"]``).  ``dtype`` is the logits'
    Triton type name ("fp32", "bf16", "fp16", "fp64").  Not under TRITON_INTERPRET: the
    interpreter patches triton.language in the process that uses it.
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = _cross_entropy_rows
    acc = "fp64" if dtype == "fp64" else "fp32"
    signature = {
        "f_ptr": f"*{dtype}", "f_stride": "i64", "y_ptr": "*i64" if labels else f"*{dtype}", "y_stride": "i64",
        "w_ptr": f"*{acc}", "scale_ptr": f"*{acc}", "g_ptr": f"*{dtype}", "g_stride": "i64", "loss_ptr": f"*{acc}",
        "status_ptr": "*i32", "qsum_ptr": f"*{acc}", "param_ptr": f"*{acc}", "n_classes": "i32", "ignore_index": "i32",
    }
    flags = {"LABELS": labels, "HAS_WEIGHT": weighted, "HAS_IGNORE": labels, "WANT_GRAD": True, "BLOCK": block}
    signature.update({name: "constexpr" for name in flags})
    constexprs = {(fn.arg_names.index(name),): value for name, value in flags.items()}
    source = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})
