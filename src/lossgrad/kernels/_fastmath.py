r"""Branch-free exp, expm1 and log1p that LLVM vectorises (no SVML needed).

llvmlite from PyPI is not linked against Intel SVML, so a Numba loop that calls
``math.exp`` stays scalar: every element pays one libm call (measured: softplus over
10^7 float64, 250+ ms scalar).  Here exp and log1p are written with multiplications,
additions, ``floor``, a float -> int conversion and a bit cast only, which the loop
vectoriser turns into SIMD code (about 1 ns per element and core).

They are Numba *intrinsics*: each call site emits the instructions into the caller's
LLVM IR.  A plain ``@njit`` helper is a separate LLVM function, which LLVM inlines
only while it has a single call site (two calls of ``exp`` in one loop made the loop
scalar and 17x slower), and Numba's own ``inline="always"`` re-types the callee at
every call site (5-10 s of compilation per loss kernel).

* ``exp(x)``: Cody-Waite reduction x = k ln2 + r with |r| <= ln2/2 (ln2 split in a
  high part exact in 32 bits and a low part), a degree-13 Taylor polynomial of e^r
  (truncation below 5e-18 relative), then the scale 2^k applied as two factors
  2^(k1) 2^(k - k1) built from their bits, so that subnormal results are rounded once
  and overflow to +inf / underflow to 0 happen naturally.  About 1 ulp; NaN propagates.
* ``log1p01(e)`` for e in [0, 1] (the log1p(e^{-|x|}) of softplus): u = 1 + e with its
  rounding error c = e - (u - 1) (exact, Fast2Sum), log u = k ln2 + 2 atanh(s) with
  s = (m - 1)/(m + 1), m = u / 2^k in [sqrt(2)/2, sqrt 2], the atanh series to s^23
  (|s| <= 0.1716), plus c / u.  About 1 ulp.
* ``expm1_small(x)`` for |x| <= 1: the Taylor series to x^20 (truncation below 2e-19).

Numba's on-disk cache keys a kernel on the file that defines it, not on this one: after
editing an intrinsic here, delete the ``*.nbi``/``*.nbc`` files under ``__pycache__``
(an installed upgrade rewrites every file, which invalidates them).

Callers are compiled with ``error_model="numpy"``: Numba's default Python error model
guards each division with a ZeroDivisionError branch, which stops the vectoriser.

Reference: J.-M. Muller, Elementary Functions: Algorithms and Implementation, 3rd ed.
(2016), chapters 11 (range reduction) and 3 (polynomial approximation).
"""

from __future__ import annotations

import math

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["exp", "expm1_small", "log1p01", "order_key", "from_order_key", "softplus", "sigmoid", "log_sigmoid", "sig_prod"]

_D = ir.DoubleType()
_I64 = ir.IntType(64)

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693147180369123816490  # 0x3fe62e42fee00000: k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_LN2 = 0.6931471805599453
_SQRT2 = 1.4142135623730951
_EXP_C = tuple(1.0 / math.factorial(k) for k in range(14))  # e^r to r^13
_EXPM1_C = tuple(1.0 / math.factorial(k) for k in range(21))  # e^x - 1 to x^20
_ATANH_C = tuple(1.0 / (2 * k + 1) for k in range(12))  # 2 atanh(s) = 2 s sum s^2k / (2k+1)


def _c(v: float) -> ir.Constant:
    return ir.Constant(_D, v)


def _muladd(b: ir.IRBuilder, x: ir.Value, y: ir.Value, z: ir.Value) -> ir.Value:
    """x y + z as ``llvm.fmuladd``: one fused instruction where the CPU has FMA, else two."""
    fn = b.module.declare_intrinsic("llvm.fmuladd", [_D], fnty=ir.FunctionType(_D, [_D, _D, _D]))
    return b.call(fn, [x, y, z])


def _horner(b: ir.IRBuilder, coefs: tuple[float, ...], x: ir.Value) -> ir.Value:
    """sum_k coefs[k] x^k by Horner's rule, one multiply-add per coefficient."""
    acc = _c(coefs[-1])
    for a in reversed(coefs[:-1]):
        acc = _muladd(b, acc, x, _c(a))
    return acc


def _floor(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    fn = b.module.declare_intrinsic("llvm.floor", [_D])
    return b.call(fn, [x])


def _pow2(b: ir.IRBuilder, k: ir.Value) -> ir.Value:
    """2.0 ** k for an integer-valued double k in [-1022, 1023], from its bits."""
    n = b.fptosi(b.fadd(k, _c(1023.0)), _I64)
    return b.bitcast(b.shl(n, ir.Constant(_I64, 52)), _D)


def _emit_exp(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    lo = b.select(b.fcmp_ordered("<", x, _c(-746.0)), _c(-746.0), x)
    xc = b.select(b.fcmp_ordered(">", lo, _c(710.0)), _c(710.0), lo)
    k = _floor(b, b.fadd(b.fmul(xc, _c(_LOG2E)), _c(0.5)))
    r = b.fsub(b.fsub(xc, b.fmul(k, _c(_LN2_HI))), b.fmul(k, _c(_LN2_LO)))
    p = _horner(b, _EXP_C, r)
    k1 = _floor(b, b.fmul(k, _c(0.5)))
    out = b.fmul(b.fmul(p, _pow2(b, k1)), _pow2(b, b.fsub(k, k1)))
    return b.select(b.fcmp_unordered("uno", x, x), x, out)


def _emit_log1p01(b: ir.IRBuilder, e: ir.Value) -> ir.Value:
    u = b.fadd(_c(1.0), e)
    corr = b.fsub(e, b.fsub(u, _c(1.0)))  # exact rounding error of 1 + e (|e| <= 1)
    big = b.fcmp_ordered(">", u, _c(_SQRT2))
    m = b.select(big, b.fmul(u, _c(0.5)), u)
    kln2 = b.select(big, _c(_LN2), _c(0.0))
    s = b.fdiv(b.fsub(m, _c(1.0)), b.fadd(m, _c(1.0)))
    s2 = b.fmul(s, s)
    t = _horner(b, _ATANH_C[1:], s2)  # 1/3 + s^2/5 + ...
    two_s = b.fmul(_c(2.0), s)
    series = b.fadd(two_s, b.fmul(b.fmul(two_s, s2), t))
    return b.fadd(b.fadd(kln2, series), b.fdiv(corr, u))


def _emit_expm1_small(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    return b.fmul(_horner(b, _EXPM1_C[1:], x), x)


def _unary(emit):
    """A float64 -> float64 intrinsic whose instructions are emitted at the call site."""

    def typer(typingctx, x):
        if not isinstance(x, (types.Float, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            v = context.cast(builder, args[0], sig.args[0], types.float64)
            return emit(builder, v)

        return types.float64(x), codegen

    typer.__name__ = emit.__name__.replace("_emit_", "")
    return intrinsic(typer)


#: e^x, about 1 ulp; +inf above 709.78, 0 below -745.2, NaN propagates.
exp = _unary(_emit_exp)
#: log(1 + e) for e in [0, 1], about 1 ulp.
log1p01 = _unary(_emit_log1p01)
#: e^x - 1 for |x| <= 1, about 1 ulp.
expm1_small = _unary(_emit_expm1_small)


def _order_key_typer(typingctx, x):
    """The int64 whose signed order is the order of the float64 x (its bits, with the
    magnitude bits flipped for negative x): integer max reductions vectorise where a
    float max reduction (NaN semantics) does not."""
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        bits = builder.bitcast(args[0], _I64)
        sign = builder.ashr(bits, ir.Constant(_I64, 63))
        return builder.xor(bits, builder.lshr(sign, ir.Constant(_I64, 1)))

    return types.int64(types.float64), codegen


def _from_order_key_typer(typingctx, k):
    """The inverse of :func:`order_key`."""
    if k != types.int64:
        return None

    def codegen(context, builder, sig, args):
        sign = builder.ashr(args[0], ir.Constant(_I64, 63))
        return builder.bitcast(builder.xor(args[0], builder.lshr(sign, ir.Constant(_I64, 1))), _D)

    return types.float64(types.int64), codegen


order_key = intrinsic(_order_key_typer)
from_order_key = intrinsic(_from_order_key_typer)


@njit(inline="always", cache=True, error_model="numpy")
def softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}), finite for every finite x."""
    return max(x, 0.0) + log1p01(exp(-abs(x)))


@njit(inline="always", cache=True, error_model="numpy")
def sigmoid(x):
    """1 / (1 + e^{-x}) without overflow: 1/(1 + e) for x >= 0, e/(1 + e) below, e = e^{-|x|}."""
    e = exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


@njit(inline="always", cache=True, error_model="numpy")
def log_sigmoid(x):
    """log sigmoid(x) = min(x, 0) - log1p(e^{-|x|}), finite for every finite x."""
    return min(x, 0.0) - log1p01(exp(-abs(x)))


@njit(inline="always", cache=True, error_model="numpy")
def sig_prod(x):
    """sigmoid(x) sigmoid(-x) = e/(1 + e)^2 with e = e^{-|x|}, exact in both tails."""
    e = exp(-abs(x))
    d = 1.0 / (1.0 + e)
    return e * d * d
