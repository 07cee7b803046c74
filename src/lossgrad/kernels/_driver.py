"""The fused pointwise driver: one pass computing value, grad and hess and checking the inputs.

Design (measured, see docs/benchmarks.md):

* One compiled function per (scalar function, domain tests, dtype): the template
  ``_chunk_template``'s code object with its own globals and qualified name (see
  :func:`kernel`), so that the scalar function is inlined (``inline="always"``) and the
  loop vectorised, and Numba's on-disk cache (``cache=True``) keeps one file per kernel
  and hits in the next process.  A closure over the scalar function would defeat the
  cache (its cells hash differently per process); dispatching on an integer literal
  (``numba.literally``) re-ran Numba's front end on every call (25 ms a call).
* Which outputs are wanted and whether weights are given are runtime choices, yet the
  hot loop has no conditional store (a conditional store made it 10x slower): the
  loop runs over blocks of ``_B`` elements, and an unwanted output of a block goes to
  an L1-resident scratch buffer.  The three quantities share their intermediate work;
  the one not asked for costs its arithmetic but no memory traffic.  Sample weights
  multiply a block's outputs in a second short loop while they are still in L1
  (:func:`_weigh`), so the main loop carries no weight stream: until session 16 an
  absent weight read a block of ones, and dropping those loads and multiplications
  made the unweighted loop 10-14% faster in float64 (in cache, one thread,
  ns/element: logistic value+grad 4.53 -> 4.09, tweedie(1.5) 5.06 -> 4.45), at the
  same compile time; weighted calls pay 0-18% more (squared error in cache 1.42 ->
  1.68 ns, logistic float32 2.33 -> 2.63).  Two inlined copies of the loop, with and
  without weights, would have had both speeds for 60% more compile time per kernel.
* Validation costs no extra pass: the loops note (boolean OR reductions) whether some
  y, f or w is non-finite, some w < 0, or some y/f lies outside the loss's domain (the
  domain test is chosen at compile time with the scalar function), and, for the margin
  losses only (they reject a mix of encodings), whether the labels -1 and 0 occur:
  bound at compile time too, since tracking them in every kernel cost the cheap losses
  25% in cache (squared error value at 10^5, one thread, 36-37 -> 26.5-26.8 us; poisson
  99 -> 72-75 us).  Only when a flag
  is set does the caller run the reference checks, which raise their own exact error.
  (Booleans, not int64 counters: a 64-bit reduction made the vectoriser pick 8 lanes
  for float32 data.)
* Fast paths: a scalar function listed in :data:`._table.FAST` has a variant that
  returns (v, g, h, ok), the common case without the fallback arithmetic of the rare
  one (tweedie's overflow handling).  Each block of ``_B`` elements runs the fast
  variant, and a block where some lane is not ok runs again through the exact
  function: the result is the exact function's, at the fast variant's cost.
* Streaming stores (session 16): from :data:`STREAM_MIN` elements the float64 kernels
  of :data:`._table.STREAM` (squared error) run :func:`_stream_template` instead, one
  scalar loop whose stores carry LLVM's ``!nontemporal`` hint: an ordinary store first
  reads the output's cache line, a streaming one does not, so a value_grad moves four
  arrays' worth of memory instead of six.  The loop stays scalar (the vectoriser does
  not emit a non-temporal store it cannot prove aligned), which squared error's
  arithmetic can afford and the other losses' branches cannot (see ``STREAM``);
  writing the block driver's L1 scratch out with streaming stores gained nothing
  (session 9, and again here: one thread, 10^7 float64 squared-error value, plain
  9.33 ms, scratch + streaming copy-out 8.98 ms, one streaming loop 6.27 ms).
* Parallelism: the array is cut into one contiguous block-aligned part per thread, each
  part run by the serial driver.  From ``_SPLIT_MIN`` (2^14) elements the parts run in
  Numba's threading layer: a small ``parallel=True`` wrapper per kernel
  (:func:`parallel_kernel`, compiled on first use and cached like the driver) whose
  ``prange`` over the parts calls the serial driver; handing the parts to the layer's
  waiting threads costs 1-2 us.  Handing them to Python threads (a
  ``ThreadPoolExecutor``) costs ~60 us on the 2-core VM (the wake-up of a sleeping
  thread), so that path, kept where the layer is not safe to use (Numba's
  ``workqueue`` layer, which aborts on concurrent launches from two threads, and a
  forked child, where GNU OpenMP aborts), starts at ``_THREAD_SPLIT_MIN`` (2^17).  Measured
  value+grad into ``out=`` buffers, float64, microseconds (serial / OpenMP parts /
  Python threads): squared error 2^14 7.0 / 5.6 / 79, 2^17 56 / 31 / 100; logistic
  2^14 35 / 23 / 85, 2^17 263 / 140 / 201.  The parfor is only a dispatcher: the
  serial driver, compiled about 3x cheaper than a parfor, stays the one kernel the
  whole catalog compiles per dtype in the test suite.
* float32 inputs are computed in float64 and rounded once on store, except for the
  scalar functions of :data:`._table.NATIVE` (the transcendental-heavy losses), which
  are written with the float-type-keeping helpers of :mod:`._fastmath` and run in
  float32 arithmetic: 16 SIMD lanes instead of 8 and polynomials half as long
  (measured in cache, ns/element/core, float32 widened -> native: logistic 2.6 ->
  0.8, poisson 1.1 -> 0.4, tweedie 4.4 -> 1.2).  Their parameters arrive rounded to float32, as the reference rounds a
  Python float meeting a float32 array.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from . import _fastmath as fm
from . import _output_pool
from ._parallel import (
    BUILD_LOCK,
    bound,
    parallel_copy,
    part_bounds,
    run_in_parts,
    source_stamp,
    split_plan,
    sum_parts,
)
from ._table import (
    F_ANY,
    F_UNIT,
    FAST,
    FUNCTIONS,
    NATIVE,
    STREAM,
    Y_ANY,
    Y_MARGIN,
    Y_NONNEG,
    Y_POS,
    Y_UNIT,
)

__all__ = ["run_pointwise", "not_probability", "code_of", "kernel", "N_COUNTS", "parallel_kernel"]

_B = 512  # block length: scratch buffers of 3 x 512 x 8 bytes stay in L1
#: From this many elements the float64 kernels of :data:`._table.STREAM` run the
#: streaming driver: outputs of 64 MiB and more, twice a large L3 (below that, a caller
#: reading an output right after the call finds part of it in cache, which a streaming
#: store would have sent to memory).
STREAM_MIN = 1 << 23
N_COUNTS = 3  # flagged elements (non-finite y/f/w, w < 0, y or f outside the domain), y == -1, y == 0


def _no(x):
    return False


def _neg(x):
    return x < 0.0


def _nonpos(x):
    return x <= 0.0


def _outside_unit(x):
    return (x < 0.0) | (x > 1.0)


def _not_sign(x):
    return x * x * x != x  # x^3 = x exactly for x in {-1, 0, 1} only


_jit_small = njit(cache=True, error_model="numpy")


@_jit_small
def not_probability(q):
    """Whether the probability-target entry q lies outside [0, 1] or is NaN (the row
    kernels' validity test of a target entry)."""
    return (q < 0.0) | (q > 1.0) | (q - q != 0.0)


def _is_minus_one(x):
    return x == -1.0


def _is_zero(x):
    return x == 0.0


_NO = _jit_small(_no)
_MINUS_ONE = _jit_small(_is_minus_one)  # the label tests of margin losses (a mix of encodings)
_ZERO = _jit_small(_is_zero)

#: domain code -> compiled test "is this value outside the domain"
_TARGET = {Y_ANY: _NO, Y_NONNEG: _jit_small(_neg), Y_POS: _jit_small(_nonpos),
           Y_UNIT: _jit_small(_outside_unit), Y_MARGIN: _jit_small(_not_sign)}
_PREDICTION = {F_ANY: _TARGET[Y_ANY], F_UNIT: _TARGET[Y_UNIT]}


@njit(inline="always", cache=True)
def _same(x):
    return x


def _scalar(y, f, p):  # pragma: no cover - a placeholder: each kernel's globals bind it
    raise NotImplementedError


def _scalar_ok(y, f, p):  # pragma: no cover - bound per block function: (v, g, h, ok)
    raise NotImplementedError


def _bad_target(y):  # pragma: no cover - bound per kernel
    raise NotImplementedError


def _bad_prediction(f):  # pragma: no cover - bound per kernel
    raise NotImplementedError


def _label_minus(y):  # pragma: no cover - bound per kernel: y == -1 for margin losses, else never
    raise NotImplementedError


def _label_zero(y):  # pragma: no cover - bound per kernel: y == 0 for margin losses, else never
    raise NotImplementedError


def _compute_type(x):  # pragma: no cover - bound per kernel: np.float64, or _same for NATIVE functions
    raise NotImplementedError


def _block(yy, ff, vo, go, ho, p):  # pragma: no cover - bound per kernel (fast path or exact)
    raise NotImplementedError


def _block_exact(yy, ff, vo, go, ho, p):  # pragma: no cover - bound per kernel
    raise NotImplementedError


def _exact_ok(y, f, p):
    v, g, h = _scalar(y, f, p)
    return v, g, h, True


def _never(yy, ff, vo, go, ho, p):
    return False, False, False, False


def _block_template(yy, ff, vo, go, ho, p):
    """One block: outputs, input flags (bad, y == -1, y == 0) and whether a lane needs the exact function."""
    bad = minus = zero = redo = False
    for j in range(yy.size):
        yi = _compute_type(yy[j])
        fi = _compute_type(ff[j])
        z = fm.zero(fi)
        t = yi * z + fi * z  # NaN iff one of them is NaN or infinite
        bad |= (t != t) | _bad_target(yi) | _bad_prediction(fi)
        minus |= _label_minus(yi)
        zero |= _label_zero(yi)
        v, g, h, ok = _scalar_ok(yi, fi, p)
        redo |= not ok
        vo[j] = v
        go[j] = g
        ho[j] = h
    return bad, minus, zero, redo


@njit(inline="always", cache=True)
def _weigh(ww, vo, go, ho):
    """A block's outputs times its weights, in L1 right after they were written; whether
    some weight is NaN, infinite or negative."""
    bad = False
    for j in range(ww.size):
        wj = ww[j]
        t = wj * 0.0
        bad |= (t != t) | (wj < 0.0)
        vo[j] *= wj
        go[j] *= wj
        ho[j] *= wj
    return bad


def _chunk_template(y, f, w, p, out_v, out_g, out_h, want_v, want_g, want_h, has_w, counts):
    n = f.size
    dt = f.dtype
    sv = np.empty(_B, dt)
    sg = np.empty(_B, dt)
    sh = np.empty(_B, dt)
    bad = minus = zero = False
    for b in range(0, n, _B):
        m = min(_B, n - b)
        yy = y[b : b + m]
        ff = f[b : b + m]
        vo = out_v[b : b + m] if want_v else sv[:m]
        go = out_g[b : b + m] if want_g else sg[:m]
        ho = out_h[b : b + m] if want_h else sh[:m]
        bad_b, minus_b, zero_b, redo = _block(yy, ff, vo, go, ho, p)
        if redo:  # a lane outside the fast path: the whole block again, by the exact function
            _block_exact(yy, ff, vo, go, ho, p)
        if has_w:
            bad_b |= _weigh(w[b : b + m], vo, go, ho)
        bad |= bad_b
        minus |= minus_b
        zero |= zero_b
    counts[0] = bad
    counts[1] = minus
    counts[2] = zero


def _stream_template(y, f, w, p, out_v, out_g, out_h, want_v, want_g, want_h, has_w, counts):
    """The driver's pass as one scalar loop with streaming stores (see STREAM_MIN): the
    same scalar function, checks and weighting, and the same results bit for bit (one
    multiplication by the weight, none without), for the cheap losses whose scalar loop
    still outruns memory.  The stores skip the read of each output line that an
    ordinary store makes first (a third of a value_grad's memory traffic)."""
    bad = minus = zero = False
    for i in range(f.size):
        yi = _compute_type(y[i])
        fi = _compute_type(f[i])
        wi = _compute_type(w[i]) if has_w else fm.one(fi)
        z = fm.zero(fi)
        t = yi * z + fi * z + wi * z  # NaN iff one of them is NaN or infinite
        bad |= (t != t) | (wi < 0.0) | _bad_target(yi) | _bad_prediction(fi)
        minus |= _label_minus(yi)
        zero |= _label_zero(yi)
        v, g, h = _scalar(yi, fi, p)
        if want_v:
            fm.stream_store(out_v, i, v * wi)
        if want_g:
            fm.stream_store(out_g, i, g * wi)
        if want_h:
            fm.stream_store(out_h, i, h * wi)
    fm.store_fence()
    counts[0] = bad
    counts[1] = minus
    counts[2] = zero


_KERNELS: dict[int, Any] = {}
_STREAM_KERNELS: dict[int, Any] = {}


def code_of(kind: int, ydom: int, fdom: int) -> int:
    """The integer that names a compiled kernel: scalar function, target and prediction domain."""
    return kind * 100 + ydom * 10 + fdom


def kernel(code: int) -> Any:
    """The compiled driver of kernel ``code``, built on first use.

    Each kernel is the template's code object with its own globals (the scalar
    function and the two domain tests bound as module-level names) and its own
    qualified name, so Numba's on-disk cache keeps one file per kernel and finds it in
    the next process: no closure (its cells would hash differently per process) and
    no dispatch on a literal (which re-runs the front end on every call).
    """
    fn = _KERNELS.get(code)
    if fn is not None:
        return fn
    with BUILD_LOCK:
        if code not in _KERNELS:
            _KERNELS[code] = _build(code)
        return _KERNELS[code]


def stream_kernel(code: int) -> Any | None:
    """The streaming-store driver of kernel ``code`` (built on first use), or None when
    its scalar function is not in :data:`._table.STREAM`."""
    fn = _STREAM_KERNELS.get(code)
    if fn is not None or FUNCTIONS[code // 100] not in STREAM:
        return fn
    with BUILD_LOCK:
        if code not in _STREAM_KERNELS:
            scalar, base = _bindings(code)
            stamp = source_stamp(scalar)
            _STREAM_KERNELS[code] = bound(_stream_template, base, f"_stream_{scalar.py_func.__name__}_{code}_{stamp}",
                                          cache=True, nogil=True, error_model="numpy")
        return _STREAM_KERNELS[code]


def _bindings(code: int) -> tuple[Any, dict]:
    """The scalar function of kernel ``code`` and the globals a driver template runs with."""
    kind, ydom, fdom = code // 100, (code // 10) % 10, code % 10
    scalar = FUNCTIONS[kind]
    base = dict(_chunk_template.__globals__)
    margin = ydom == Y_MARGIN
    base.update(_scalar=scalar, _bad_target=_TARGET[ydom], _bad_prediction=_PREDICTION[fdom],
                _label_minus=_MINUS_ONE if margin else _NO, _label_zero=_ZERO if margin else _NO,
                _compute_type=_same if scalar in NATIVE else np.float64)
    return scalar, base


def _build(code: int) -> Any:
    ydom, fdom = (code // 10) % 10, code % 10
    scalar, base = _bindings(code)
    fast = FAST.get(scalar)
    name = f"_chunk_{scalar.py_func.__name__}_y{ydom}_f{fdom}" + ("_fast" if fast is not None else "")
    inline = {"inline": "always", "error_model": "numpy"}
    g_exact = dict(base)
    g_exact["_scalar_ok"] = bound(_exact_ok, g_exact, name + "_exact_ok", **inline)
    exact = bound(_block_template, g_exact, name + "_block", **inline)
    if fast is None:
        g = dict(base, _block=exact, _block_exact=bound(_never, base, name + "_never", **inline))
    else:
        fast_block = bound(_block_template, dict(base, _scalar_ok=fast), name + "_fast_block", **inline)
        g = dict(base, _block=fast_block, _block_exact=exact)
    stamp = source_stamp(scalar, *([fast] if fast is not None else []))
    return bound(_chunk_template, g, f"{name}_{stamp}", cache=True, nogil=True, error_model="numpy")


def _parallel_template(y, f, w, p, out_v, out_g, out_h, want_v, want_g, want_h, has_w, counts):
    """The serial driver ``_kernel`` over counts.shape[0] block-aligned parts, one per
    thread of Numba's threading layer (the parts' results are independent); the parts'
    counts are then summed into counts[0] (:func:`sum_parts`)."""
    k = counts.shape[0]
    for i in prange(k):
        lo, hi = part_bounds(f.size, i, k, _B)
        _kernel(y[lo:hi], f[lo:hi], w[lo:hi] if has_w else w, p, out_v[lo:hi] if want_v else out_v,
                out_g[lo:hi] if want_g else out_g, out_h[lo:hi] if want_h else out_h, want_v, want_g, want_h,
                has_w, counts[i])
    sum_parts(counts)


def _kernel(*args):  # pragma: no cover - bound per parallel wrapper: the serial kernel it calls
    raise NotImplementedError


_PARALLEL: dict[Any, Any] = {}


def parallel_kernel(chunk: Any) -> Any:
    """The parallel wrapper of the compiled pointwise driver ``chunk``."""
    return parallel_copy(_parallel_template, chunk, _PARALLEL)


_DUMMY = {np.dtype(np.float32): np.empty(1, np.float32), np.dtype(np.float64): np.empty(1, np.float64)}


def run_pointwise(
    chunk: Any, params: tuple, y: np.ndarray, f: np.ndarray, w: np.ndarray | None,
    want: tuple[bool, bool, bool], out: tuple[np.ndarray | None, ...] | None = None, stream: Any = None,
) -> tuple[tuple[np.ndarray | None, ...], np.ndarray]:
    """Run the compiled driver ``chunk`` (see :func:`kernel`) on contiguous 1-d arrays of one dtype.

    Returns ((value, grad, hess), counts): None for an output not wanted; counts
    summed over the chunks (see :data:`N_COUNTS`).  ``out``: optional (value, grad,
    hess) buffers (contiguous 1-d, f's dtype and size; None where not given) written in
    place of fresh arrays: no page-fault cost of new memory.  ``stream``: the code of
    the kernel's streaming-store driver (:func:`stream_kernel`), run in place of
    ``chunk`` from :data:`STREAM_MIN` elements.
    """
    n = f.size
    if stream is not None and n >= STREAM_MIN:
        chunk = stream_kernel(stream) or chunk
    dt = f.dtype
    dummy = _DUMMY[dt]  # stands for an output not wanted and absent weights: the driver never touches it
    want_v, want_g, want_h = want
    given_v, given_g, given_h = out if out is not None else (None, None, None)
    ov = (_output_pool.empty(n, dt) if given_v is None else given_v) if want_v else dummy
    og = (_output_pool.empty(n, dt) if given_g is None else given_g) if want_g else dummy
    oh = (_output_pool.empty(n, dt) if given_h is None else given_h) if want_h else dummy
    layer, k = split_plan(n, n)
    if layer:
        parts = np.zeros((k, N_COUNTS), np.int64)
        parallel_kernel(chunk)(y, f, dummy if w is None else w, params, ov, og, oh, want_v, want_g, want_h,
                               w is not None, parts)
        counts = parts[0]  # the wrapper summed the parts' counts there
    elif k == 1:  # small, or the user set Numba's threads to one
        counts = np.zeros(N_COUNTS, np.int64)
        chunk(y, f, dummy if w is None else w, params, ov, og, oh, want_v, want_g, want_h, w is not None, counts)
    else:
        parts = np.zeros((k, N_COUNTS), np.int64)

        def part(i: int, lo: int, hi: int) -> None:
            sl = slice(lo, hi)
            chunk(y[sl], f[sl], dummy if w is None else w[sl], params, ov[sl] if want_v else dummy,
                  og[sl] if want_g else dummy, oh[sl] if want_h else dummy, want_v, want_g, want_h, w is not None,
                  parts[i])

        run_in_parts(n, k, part, align=_B)  # block-aligned parts: the fast-path fallback works per block
        counts = parts.sum(axis=0)
    return (ov if want_v else None, og if want_g else None, oh if want_h else None), counts
