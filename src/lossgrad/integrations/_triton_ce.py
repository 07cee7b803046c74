r"""The fused Triton kernel of :class:`lossgrad.CrossEntropy` for GPU tensors.

One program per row, or per ROWS short rows.  Pass 1 reads the row and keeps the
running maximum m and the rescaled sum d = sum_c exp(f_c - m) (online softmax,
Milakov & Gimelshein 2018), so lse = m + log d without a stored probability row; it
also notes non-finite logits, labels outside [0, K) and, for probability targets,
entries outside [0, 1] and row sums off 1.  Pass 2 writes the gradient and sums the
value:

    a_c = w_c ((1 - eps) q_c + eps / K)         (q = e_y for a label y; 0 if ignored)
    S   = sum_c a_c
    l   = sum_c a_c (m - f_c) + S log d + z lse^2
    g_c = s_i ((S + 2 z lse) p_c - a_c),        p_c = exp(f_c - lse)

with s_i the row's scale (sample weight / mean denominator), folded in so that a
mean or sum needs no second pass over the gradient.  sum_c a_c (m - f_c) is the
same value as S lse - sum_c a_c f_c but has no cancellation (every m - f_c >= 0).
Accumulation is in float32 for 16- and 32-bit logits and float64 for float64;
the gradient is stored in the logits' dtype.

With labels, pass 2 writes g_c without the label's own term -s_i keep (1 - eps) w_y,
and :func:`_label_term` then writes g_y once a row; sum_c a_c (m - f_c) is then
keep (eps / K sum_c w_c (m - f_c) + (1 - eps) w_y (m - f_y)), the first sum kept in
pass 1 (only with label smoothing).

Memory traffic: a row of at most RESIDENT_MAX classes is one block that stays in
registers between the passes (the logits are read once, the gradient written once:
the floor).  A longer row is read in blocks twice; pass 2 walks it backwards, so its
first blocks are the ones pass 1 read last, the likeliest to be in L2 still.

The kernel never raises (a GPU kernel cannot): it ors the rows' BAD_* bits into one
status word, and :mod:`lossgrad.integrations.triton` turns them into lossgrad's errors.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import triton
import triton.language as tl

__all__ = ["launch", "default_config", "compile_for"]

BAD_LOGIT = tl.constexpr(1)  # the status bits (constexpr globals: a kernel can read them)
BAD_LABEL = tl.constexpr(2)
BAD_TARGET = tl.constexpr(4)
BAD_ROW_SUM = tl.constexpr(8)


@triton.jit
def _bit_or(a, b):
    return a | b


@triton.jit
def _class_weights(w_ptr, cc, ii, like, HAS_WEIGHT: tl.constexpr):
    """The class weights of a tile's columns in ``like``'s dtype (1 without weights), 0 on masked lanes."""
    if HAS_WEIGHT:
        return tl.load(w_ptr + cc, mask=ii, other=0.0).to(like.dtype)
    return tl.where(ii, 1.0, 0.0).to(like.dtype)


@triton.jit
def _scan_step(f_rows, y_rows, w_ptr, c, inside, m, d, low, q_bad, q_total, wq_total, gap, w_seen,
               LABELS: tl.constexpr, HAS_WEIGHT: tl.constexpr, SMOOTH: tl.constexpr):
    """Pass 1 over one (ROWS, BLOCK) tile: per row the running maximum m and
    d = sum exp(f - m); ``low``, lane by lane, the smallest f so far (a -inf shows
    there; NaN and +inf make d NaN: one reduction at the end instead of one a step;
    two operations an element); for probability targets their checks and sums; for
    smoothed labels gap = sum_c w_c (m - f_c) over the columns so
    far (every term >= 0; a larger maximum adds w_seen (m_new - m)).  Returns the
    tile's logits (-inf on masked lanes) with the updated state."""
    acc: tl.constexpr = m.dtype
    cc, ii = c[None, :], inside[None, :]
    x = tl.load(f_rows + cc, mask=ii, other=float("-inf")).to(acc)
    low = tl.minimum(low, tl.where(ii, x, 0.0))
    m_new = tl.maximum(m, tl.max(x, axis=1))
    d = d * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new[:, None]), axis=1)
    if LABELS and SMOOTH:
        w = _class_weights(w_ptr, cc, ii, x, HAS_WEIGHT)
        rise = tl.where(w_seen > 0, m_new - m, 0.0)  # m = -inf before the first block
        gap += w_seen * rise + tl.sum(w * tl.where(ii, m_new[:, None] - x, 0.0), axis=1)
        w_seen += tl.sum(w, axis=1)
    if not LABELS:
        q = tl.load(y_rows + cc, mask=ii, other=0.0).to(acc)
        q_bad += tl.sum((ii & ~((q >= 0.0) & (q <= 1.0))).to(tl.int32), axis=1)
        q_total += tl.sum(q, axis=1)
        if HAS_WEIGHT:
            wq_total += tl.sum(q * _class_weights(w_ptr, cc, ii, x, HAS_WEIGHT), axis=1)
    return x, m_new, d, low, q_bad, q_total, wq_total, gap, w_seen


@triton.jit
def _gradient_step(x, c, inside, row_ok, y_rows, w_ptr, g_rows, m, lse, keep, eps, spread, coef_p, scale,
                   LABELS: tl.constexpr, HAS_WEIGHT: tl.constexpr, WANT_GRAD: tl.constexpr, SMOOTH: tl.constexpr):
    """Pass 2 over one (ROWS, BLOCK) tile: stores its gradient (for labels without the
    label's own term, which :func:`_label_term` adds to one element a row); returns
    its terms of sum_c a_c (m - f_c), lane by lane (summed once at the end; only
    probability rows use them: for labels the sum comes from pass 1)."""
    cc, ii = c[None, :], inside[None, :]
    if LABELS:  # a_c = keep eps w_c / K off the label
        if not SMOOTH:
            a = tl.zeros_like(x)
        elif HAS_WEIGHT:
            a = (keep * spread)[:, None] * _class_weights(w_ptr, cc, ii, x, HAS_WEIGHT)
        else:
            a = tl.zeros_like(x) + (keep * spread)[:, None]
    else:
        q = tl.load(y_rows + cc, mask=ii, other=0.0).to(x.dtype)
        a = _class_weights(w_ptr, cc, ii, x, HAS_WEIGHT) * ((1.0 - eps) * q + spread)
    if WANT_GRAD:
        p = tl.exp(x - lse[:, None])
        g = scale[:, None] * (coef_p[:, None] * p - a)
        tl.store(g_rows + cc, g.to(g_rows.dtype.element_ty), mask=row_ok[:, None] & ii)
    return a * tl.where(ii, m[:, None] - x, 0.0)  # x = -inf on a resident tile's masked lanes


@triton.jit
def _label_term(g_ptr, g_stride, rows, row_ok, label, at_label, x_label, w_label, lse, keep, eps, spread, coef_p,
                scale):
    """The gradient at each row's label, written over what pass 2 stored there:
    s ((S + 2 z lse) p_y - a_y), a_y = keep ((1 - eps) w_y + eps w_y / K) (w_y = 1 without weights)."""
    tl.debug_barrier()  # every thread's pass-2 stores before these
    a_y = keep * ((1.0 - eps) * w_label + spread * w_label)
    g_y = scale * (coef_p * tl.exp(x_label - lse) - a_y)
    tl.store(g_ptr + rows * g_stride + label, g_y.to(g_ptr.dtype.element_ty), mask=row_ok & at_label)


@triton.jit
def _cross_entropy_rows(
    f_ptr, f_stride, y_ptr, y_stride, w_ptr, scale_ptr, g_ptr, g_stride, loss_ptr, status_ptr,
    param_ptr, n_rows, n_classes, ignore_index,
    LABELS: tl.constexpr, HAS_WEIGHT: tl.constexpr, HAS_IGNORE: tl.constexpr, WANT_GRAD: tl.constexpr,
    ROW_SCALE: tl.constexpr, RESIDENT: tl.constexpr, REVERSE: tl.constexpr, SMOOTH: tl.constexpr,
    ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    acc: tl.constexpr = loss_ptr.dtype.element_ty
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    row_ok = rows < n_rows
    rows = tl.minimum(rows, n_rows - 1)  # the last tile's extra rows redo the last row; nothing of them is stored
    f_rows = f_ptr + rows[:, None] * f_stride
    y_rows = y_ptr + rows[:, None] * y_stride
    g_rows = g_ptr + rows[:, None] * g_stride
    cols = tl.arange(0, BLOCK)
    eps = tl.load(param_ptr)  # in the accumulator dtype: a float argument would be float32
    z_loss = tl.load(param_ptr + 1)
    weight_total = tl.load(param_ptr + 2)
    sum_tolerance = tl.load(param_ptr + 3)
    spread = eps / n_classes

    keep = tl.full((ROWS,), 1.0, acc)
    label = tl.zeros((ROWS,), tl.int64)
    w_label = tl.full((ROWS,), 1.0, acc)
    status = tl.zeros((ROWS,), tl.int32)
    valid = tl.zeros((ROWS,), tl.int1)
    if LABELS:
        label = tl.load(y_ptr + rows * y_stride).to(tl.int64)
        valid = (label >= 0) & (label < n_classes)
        if HAS_IGNORE:
            keep = tl.where(label == ignore_index, 0.0, 1.0).to(acc)
            status = tl.where(valid | (label == ignore_index), 0, BAD_LABEL)
        else:
            status = tl.where(valid, 0, BAD_LABEL)
        if HAS_WEIGHT:
            w_label = tl.load(w_ptr + label, mask=valid, other=0.0).to(acc)

    # pass 1: running max, rescaled exp-sum, checks (and the target sums); RESIDENT: the
    # whole row is one block, read once and kept for pass 2
    m = tl.full((ROWS,), float("-inf"), acc)
    d = tl.zeros((ROWS,), acc)
    low = tl.zeros((ROWS, BLOCK), acc)
    q_bad = tl.zeros((ROWS,), tl.int32)
    q_total = tl.zeros((ROWS,), acc)
    wq_total = tl.zeros((ROWS,), acc)
    gap = tl.zeros((ROWS,), acc)
    w_seen = tl.zeros((ROWS,), acc)
    if RESIDENT:
        c = cols
        inside = c < n_classes
        x, m, d, low, q_bad, q_total, wq_total, gap, w_seen = _scan_step(
            f_rows, y_rows, w_ptr, c, inside, m, d, low, q_bad, q_total, wq_total, gap, w_seen, LABELS,
            HAS_WEIGHT, SMOOTH)
    else:
        for start in range(0, n_classes, BLOCK):
            c = start + cols
            inside = c < n_classes
            _, m, d, low, q_bad, q_total, wq_total, gap, w_seen = _scan_step(
                f_rows, y_rows, w_ptr, c, inside, m, d, low, q_bad, q_total, wq_total, gap, w_seen, LABELS,
                HAS_WEIGHT, SMOOTH)
    finite = (tl.min(low, axis=1) > float("-inf")) & (d == d) & (m < float("inf"))  # no NaN or +-inf in the row
    status = status | tl.where(finite, 0, BAD_LOGIT) | tl.where(q_bad > 0, BAD_TARGET, 0)
    if not LABELS:
        status = status | tl.where(tl.abs(q_total - 1.0) > sum_tolerance, BAD_ROW_SUM, 0)

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
    scale = tl.load(scale_ptr + (rows if ROW_SCALE else rows * 0)).to(acc)

    # a label's own logit, read before pass 2 may overwrite it (grad_into_logits)
    x_label = tl.load(f_ptr + rows * f_stride + tl.where(valid, label, 0)).to(acc)

    # pass 2: the gradient (and for probability rows the value's sum); REVERSE: the last
    # block first (the most recently read blocks are the likeliest to be in L2 still)
    gaps = tl.zeros((ROWS, BLOCK), acc)  # probability rows only
    if RESIDENT:
        terms = _gradient_step(x, c, inside, row_ok, y_rows, w_ptr, g_rows, m, lse, keep, eps, spread, coef_p,
                               scale, LABELS, HAS_WEIGHT, WANT_GRAD, SMOOTH)
        if not LABELS:
            gaps = terms
    else:
        n_steps = tl.cdiv(n_classes, BLOCK)
        for step in range(0, n_steps):
            c = ((n_steps - 1 - step) if REVERSE else step) * BLOCK + cols
            inside = c < n_classes
            x = tl.load(f_rows + c[None, :], mask=inside[None, :], other=0.0).to(acc)
            terms = _gradient_step(x, c, inside, row_ok, y_rows, w_ptr, g_rows, m, lse, keep, eps, spread, coef_p,
                                   scale, LABELS, HAS_WEIGHT, WANT_GRAD, SMOOTH)
            if not LABELS:
                gaps += terms
    if LABELS:  # sum_c a_c (m - f_c) = keep (eps / K sum_c w_c (m - f_c) + (1 - eps) w_y (m - f_y))
        a_gap = keep * (spread * gap + (1.0 - eps) * w_label * (m - x_label))
        if WANT_GRAD:
            _label_term(g_ptr, g_stride, rows, row_ok, label, valid, x_label, w_label, lse, keep, eps, spread,
                        coef_p, scale)
    else:
        a_gap = tl.sum(gaps, axis=1)

    tl.store(loss_ptr + rows, scale * (a_gap + s_total * log_d + z * lse * lse), mask=row_ok)
    flagged = tl.reduce(status, 0, _bit_or)
    if flagged != 0:
        tl.atomic_or(status_ptr, flagged)


RESIDENT_MAX = 8192  # rows of up to this many classes stay in registers (one read of the logits); 4096 for float64
TILE = 4096  # elements a program holds when rows are short (several rows a program, at most 64); 2048 for float64
REVERSE_SECOND_PASS = True  # rows longer than a block: pass 2 walks the row backwards (tuning switch)


@functools.lru_cache(maxsize=256)
def default_config(n_classes: int, dtype: torch.dtype, labels: bool = True) -> tuple[int, int, int]:
    """(rows a program, columns a step, warps): a row of up to RESIDENT_MAX classes is one
    step, with as many rows a program as make TILE elements, about 16 elements a thread
    (8 for float64); a longer row goes in steps, one row a program: 16384 columns and
    32 warps for float32 labels, 2048 and 4 warps for 16-bit logits, 4096 and 8 warps
    for float64 and float32 probability rows (float32 and bfloat16 labels: the fastest
    of 12 configurations on an H100, docs/benchmarks.md).  Every default compiles for
    sm_90 without spills (tests/test_integration_triton.py)."""
    wide = dtype == torch.float64
    width = max(16, triton.next_power_of_2(n_classes))
    if width > (RESIDENT_MAX // 2 if wide else RESIDENT_MAX):
        if dtype in (torch.float16, torch.bfloat16):
            return 1, 2048, 4
        return (1, 16384, 32) if labels and not wide else (1, 4096, 8)  # probability rows: more live registers
    rows = min(64, max(1, (TILE // 2 if wide else TILE) // width))
    return rows, width, min(16, max(4, rows * width // (256 if wide else 512)))


def accumulator(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@functools.lru_cache(maxsize=256)
def constant(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A small constant tensor on the device, kept (a host-to-device copy per call costs
    more than a small launch); callers must not write to it."""
    return torch.tensor(values, dtype=dtype, device=device)


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
    sum_tolerance: float,
    scale: torch.Tensor,
    want_grad: bool,
    grad_out: torch.Tensor | None = None,
    block: int | None = None,
    num_warps: int | None = None,
    rows_per_program: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Run the kernel: (loss rows times their scale, gradient or None, status word).

    ``f`` (N, K) with unit column stride; ``y`` (N,) integer labels or (N, K) target
    rows with unit column stride; ``scale`` in the accumulator dtype, (N,) per row or (1,)
    for all rows.  ``grad_out``: where the gradient goes (``f`` itself is allowed: each
    block is read before it is overwritten).  The status word (int32, shape (1,)) is
    the bitwise or of the rows' BAD_* bits.  ``block``, ``num_warps``, ``rows_per_program``
    override :func:`default_config` (a block of at least K columns keeps rows resident).
    """
    n, k = f.shape
    acc = accumulator(f.dtype)
    loss_rows = torch.empty(n, dtype=acc, device=f.device)
    status = torch.zeros(1, dtype=torch.int32, device=f.device)
    if not want_grad:
        g = None
    elif grad_out is not None:
        g = grad_out
    else:
        g = torch.empty_like(f, memory_format=torch.contiguous_format)
    rows, auto_block, warps = default_config(k, f.dtype, labels)
    if block is not None:
        if block < 1 or block & (block - 1):
            raise ValueError(f"block must be a power of two, got {block}")
        rows = 1 if block < k else min(64, max(1, TILE // block))
        warps = min(16, max(4, rows * block // 512))
    block, rows = block or auto_block, rows_per_program or rows
    if rows & (rows - 1):
        raise ValueError(f"rows_per_program must be a power of two, got {rows}")
    if n == 0:
        return loss_rows, g, status
    params = constant((float(eps), float(z_loss), float(weight_total), float(sum_tolerance)), f.device, acc)
    dummy: Any = f
    _cross_entropy_rows[(triton.cdiv(n, rows),)](
        f, f.stride(0), y, y.stride(0) if y.ndim == 2 else 1, weight if weight is not None else dummy, scale,
        g if g is not None else dummy, g.stride(0) if g is not None else 0, loss_rows, status,
        params, n, k, ignore_index if ignore_index is not None else 0,
        LABELS=labels, HAS_WEIGHT=weight is not None, HAS_IGNORE=ignore_index is not None, WANT_GRAD=want_grad,
        ROW_SCALE=scale.numel() != 1, RESIDENT=k <= block, REVERSE=REVERSE_SECOND_PASS, SMOOTH=eps != 0,
        ROWS=rows, BLOCK=block,
        num_warps=num_warps or warps,
    )
    return loss_rows, g, status


def compile_for(arch: int, *, labels: bool, weighted: bool, dtype: str, block: int = 4096, num_warps: int = 8,
                resident: bool = False, rows: int = 1) -> Any:
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
        "status_ptr": "*i32", "param_ptr": f"*{acc}", "n_rows": "i32", "n_classes": "i32", "ignore_index": "i32",
    }
    flags = {"LABELS": labels, "HAS_WEIGHT": weighted, "HAS_IGNORE": labels, "WANT_GRAD": True,
             "ROW_SCALE": weighted, "RESIDENT": resident, "REVERSE": True, "SMOOTH": True, "ROWS": rows,
             "BLOCK": block}
    signature.update({name: "constexpr" for name in flags})
    constexprs = {(fn.arg_names.index(name),): value for name, value in flags.items()}
    # What a launch specializes on for PyTorch's tensors: 16-byte aligned pointers, and row
    # strides and class counts divisible by 16 (as for K = 4096), so that loads are vectorised.
    aligned = [name for name, kind in signature.items() if kind.startswith("*")] + ["f_stride", "g_stride", "n_classes"]
    attrs = {(fn.arg_names.index(name),): [["tt.divisibility", 16]] for name in aligned}
    source = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})
