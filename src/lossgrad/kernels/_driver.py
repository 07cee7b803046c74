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
  an L1-resident scratch buffer, an absent weight reads a block of ones.  The three
  quantities share their intermediate work; the one not asked for costs its
  arithmetic but no memory traffic.
* Validation costs no extra pass: the loop notes (boolean OR reductions) whether some
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

import math
import os
import threading
import time
import types as pytypes
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from .._config import get_config
from . import _fastmath as fm
from . import _output_pool
from ._table import F_ANY, F_UNIT, FAST, FUNCTIONS, NATIVE, Y_ANY, Y_MARGIN, Y_NONNEG, Y_POS, Y_UNIT

__all__ = ["run_pointwise", "run_in_parts", "not_probability", "code_of", "kernel", "N_COUNTS", "n_threads",
           "layer_threads", "parallel_copy", "parallel_kernel", "part_bounds", "split_plan", "sum_parts"]

_B = 512  # block length: scratch buffers of 3 x 512 x 8 bytes stay in L1
N_COUNTS = 3  # flagged elements (non-finite y/f/w, w < 0, y or f outside the domain), y == -1, y == 0
_SPLIT_MIN = 1 << 14  # from here, one part per thread of Numba's threading layer
_THREAD_SPLIT_MIN = 1 << 17  # from here, one part per Python thread where that layer is not safe


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


def _block(yy, ff, ww, vo, go, ho, p):  # pragma: no cover - bound per kernel (fast path or exact)
    raise NotImplementedError


def _block_exact(yy, ff, ww, vo, go, ho, p):  # pragma: no cover - bound per kernel
    raise NotImplementedError


def _exact_ok(y, f, p):
    v, g, h = _scalar(y, f, p)
    return v, g, h, True


def _never(yy, ff, ww, vo, go, ho, p):
    return False, False, False, False


def _block_template(yy, ff, ww, vo, go, ho, p):
    """One block: outputs, input flags (bad, y == -1, y == 0) and whether a lane needs the exact function."""
    bad = minus = zero = redo = False
    for j in range(yy.size):
        yi = _compute_type(yy[j])
        fi = _compute_type(ff[j])
        wi = _compute_type(ww[j])
        z = fm.zero(fi)
        t = yi * z + fi * z + wi * z  # NaN iff one of them is NaN or infinite
        bad |= (t != t) | (wi < 0.0) | _bad_target(yi) | _bad_prediction(fi)
        minus |= _label_minus(yi)
        zero |= _label_zero(yi)
        v, g, h, ok = _scalar_ok(yi, fi, p)
        redo |= not ok
        vo[j] = v * wi
        go[j] = g * wi
        ho[j] = h * wi
    return bad, minus, zero, redo


def _chunk_template(y, f, w, p, out_v, out_g, out_h, want_v, want_g, want_h, has_w, counts):
    n = f.size
    dt = f.dtype
    sv = np.empty(_B, dt)
    sg = np.empty(_B, dt)
    sh = np.empty(_B, dt)
    ones = np.ones(_B, dt)
    bad = minus = zero = False
    for b in range(0, n, _B):
        m = min(_B, n - b)
        yy = y[b : b + m]
        ff = f[b : b + m]
        ww = w[b : b + m] if has_w else ones[:m]
        vo = out_v[b : b + m] if want_v else sv[:m]
        go = out_g[b : b + m] if want_g else sg[:m]
        ho = out_h[b : b + m] if want_h else sh[:m]
        bad_b, minus_b, zero_b, redo = _block(yy, ff, ww, vo, go, ho, p)
        if redo:  # a lane outside the fast path: the whole block again, by the exact function
            _block_exact(yy, ff, ww, vo, go, ho, p)
        bad |= bad_b
        minus |= minus_b
        zero |= zero_b
    counts[0] = bad
    counts[1] = minus
    counts[2] = zero


_KERNELS: dict[int, Any] = {}
_KERNELS_LOCK = threading.Lock()


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
    with _KERNELS_LOCK:
        if code not in _KERNELS:
            _KERNELS[code] = _build(code)
        return _KERNELS[code]


def _source_stamp(*functions: Any) -> str:
    """A tag of the files defining ``functions`` (mtime and size, as Numba's cache index
    checks its own file): in a bound copy's cached name, so that editing a function bound
    into the copy's globals recompiles the copy (Numba watches the template's file only;
    seen: a kernel's serial path ran edited code, its threaded copy the cached one)."""
    parts = []
    for fn in functions:
        filename = getattr(fn, "py_func", fn).__code__.co_filename
        try:
            st = os.stat(filename)
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append("-")
    return f"{zlib.crc32(';'.join(parts).encode()):08x}"


def _bound(template: Any, g: dict, qualname: str, **jit_options: Any) -> Any:
    """A compiled copy of ``template`` whose global names resolve in ``g``."""
    t = template
    py = pytypes.FunctionType(t.__code__, g, t.__name__, t.__defaults__, t.__closure__)
    py.__qualname__ = qualname
    py.__module__ = t.__module__
    return njit(**jit_options)(py)


def _build(code: int) -> Any:
    kind, ydom, fdom = code // 100, (code // 10) % 10, code % 10
    scalar = FUNCTIONS[kind]
    fast = FAST.get(scalar)
    name = f"_chunk_{scalar.py_func.__name__}_y{ydom}_f{fdom}" + ("_fast" if fast is not None else "")
    base = dict(_chunk_template.__globals__)
    margin = ydom == Y_MARGIN
    base.update(_scalar=scalar, _bad_target=_TARGET[ydom], _bad_prediction=_PREDICTION[fdom],
                _label_minus=_MINUS_ONE if margin else _NO, _label_zero=_ZERO if margin else _NO,
                _compute_type=_same if scalar in NATIVE else np.float64)
    inline = {"inline": "always", "error_model": "numpy"}
    g_exact = dict(base)
    g_exact["_scalar_ok"] = _bound(_exact_ok, g_exact, name + "_exact_ok", **inline)
    exact = _bound(_block_template, g_exact, name + "_block", **inline)
    if fast is None:
        g = dict(base, _block=exact, _block_exact=_bound(_never, base, name + "_never", **inline))
    else:
        fast_block = _bound(_block_template, dict(base, _scalar_ok=fast), name + "_fast_block", **inline)
        g = dict(base, _block=fast_block, _block_exact=exact)
    stamp = _source_stamp(scalar, *([fast] if fast is not None else []))
    return _bound(_chunk_template, g, f"{name}_{stamp}", cache=True, nogil=True, error_model="numpy")


@njit(inline="always", cache=True)
def part_bounds(n, i, k, align):
    """[lo, hi) of part i of k of range(n), the inner edges multiples of ``align`` (the
    parts of :func:`run_in_parts`)."""
    lo = (n * i // k) // align * align
    hi = n if i == k - 1 else (n * (i + 1) // k) // align * align
    return lo, hi


@njit(inline="always", cache=True)
def sum_parts(counts):
    """Sum the rows of a parallel wrapper's per-part ``counts`` into counts[0], inside the
    wrapper (NumPy's ``counts.sum(axis=0)`` costs 0.8 us a call)."""
    for i in range(1, counts.shape[0]):
        for j in range(counts.shape[1]):
            counts[0, j] += counts[i, j]


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


def parallel_copy(template: Any, kernel: Any, built: dict) -> Any:
    """The ``parallel=True`` compiled copy of ``template`` whose global ``_kernel`` is the
    compiled serial ``kernel``: built on first use, remembered in ``built`` and cached on
    disk under the kernel's qualified name + "_parallel" + its source stamp (see
    :func:`kernel` and :func:`_source_stamp`)."""
    fn = built.get(kernel)
    if fn is None:
        with _KERNELS_LOCK:
            fn = built.get(kernel)
            if fn is None:
                g = dict(template.__globals__, _kernel=kernel)
                name = f"{kernel.py_func.__qualname__}_parallel_{_source_stamp(kernel)}"
                fn = built[kernel] = _bound(template, g, name, cache=True, parallel=True, nogil=True,
                                            error_model="numpy")
    return fn


_PARALLEL: dict[Any, Any] = {}


def parallel_kernel(chunk: Any) -> Any:
    """The parallel wrapper of the compiled pointwise driver ``chunk``."""
    return parallel_copy(_parallel_template, chunk, _PARALLEL)


_LAYER_OK: bool | None = None  # None: not decided yet
_FORKED = False


def _forked() -> None:
    """In a forked child: no threading layer, and a new thread pool (the parent's pool
    object counts idle workers that do not exist in the child: a task would wait forever)."""
    global _FORKED, _POOL
    _FORKED = True
    _POOL = None


os.register_at_fork(after_in_child=_forked)


def layer_threads() -> int:
    """Threads of Numba's threading layer this call may use (its setting, at most the cores
    of the process's affinity), or 0 where the layer is not safe here: ``workqueue`` (it
    aborts on launches from two threads at once), or a forked child (GNU OpenMP aborts a
    forked child that opens a parallel region after its parent did; the conservative
    rule: no child of a fork uses the layer)."""
    global _LAYER_OK
    if _FORKED:
        return 0
    if _LAYER_OK is None:
        with _KERNELS_LOCK:
            if _LAYER_OK is None:
                try:
                    numba.get_num_threads()  # launches the layer (tbb, omp or workqueue, by availability)
                    _LAYER_OK = numba.threading_layer() in ("omp", "tbb")
                except Exception:  # pragma: no cover - no usable layer
                    _LAYER_OK = False
    return min(_numba_threads(), n_threads()) if _LAYER_OK else 0


try:  # the C function behind numba.get_num_threads (0.08 us against its wrapper's 0.5 us)
    from numba.np.ufunc.parallel import _get_num_threads as _raw_num_threads
except ImportError:  # pragma: no cover - another Numba layout
    _raw_num_threads = None


def _numba_threads() -> int:
    """numba.get_num_threads() (the calling thread's setting) once the layer is launched."""
    k = _raw_num_threads() if _raw_num_threads is not None else 0
    return k if k > 0 else numba.get_num_threads()


def split_plan(size: int, rows: int) -> tuple[bool, int]:
    """How a call over ``size`` elements in ``rows`` independent rows (``rows == size``
    for a pointwise loss) is split: (in Numba's threading layer?, number of parts).

    The layer, one part per thread (at most one per row), from ``_SPLIT_MIN`` elements
    where it is safe (:func:`layer_threads`); Python threads, one part per core, from
    ``_THREAD_SPLIT_MIN`` where it is not; otherwise one part in the calling thread (also
    when the user set Numba's threads to one), at most ``Config.kernel_threads`` parts.
    The one rule of every kernel's launcher."""
    cap = get_config().kernel_threads
    if cap == 1:
        return False, 1
    threads = layer_threads() if size >= _SPLIT_MIN and rows >= 2 else 0
    if cap is not None:
        threads = min(threads, cap)
    if threads > 1:
        return True, min(threads, rows)
    if threads == 1 or size < _THREAD_SPLIT_MIN or rows < 2:
        return False, 1
    return False, min(n_threads(), rows, cap or rows)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


_AFFINITY = (-math.inf, 1)  # (time.monotonic() of the last reading, cores)


def n_threads() -> int:
    """Threads the kernels use: the cores this process may run on (its affinity mask,
    read again after a second: the system call costs ~0.4 us a kernel call)."""
    global _AFFINITY
    now = time.monotonic()
    if now - _AFFINITY[0] < 1.0:
        return _AFFINITY[1]
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = max(1, os.cpu_count() or 1)
    _AFFINITY = (now, cores)
    return cores


def _pool(k: int) -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < k:  # noqa: SLF001
            _POOL = ThreadPoolExecutor(max_workers=k, thread_name_prefix="lossgrad-kernel")
        return _POOL


def run_in_parts(n: int, k: int, run: Any, align: int = 1) -> None:
    """``run(i, lo, hi)`` over k contiguous parts of range(n), the inner edges multiples of
    ``align``; part 0 in the calling thread, the others in kernel threads (the kernels
    release the GIL); inline when k == 1."""
    if k == 1:
        run(0, 0, n)
        return
    edges = [((n * i // k) // align) * align for i in range(k)] + [n]
    futures = [_pool(k).submit(run, i, edges[i], edges[i + 1]) for i in range(1, k)]
    run(0, edges[0], edges[1])  # the caller takes a part: one thread wake-up less to wait for
    for fut in futures:
        fut.result()


_DUMMY = {np.dtype(np.float32): np.empty(1, np.float32), np.dtype(np.float64): np.empty(1, np.float64)}


def run_pointwise(
    chunk: Any, params: tuple, y: np.ndarray, f: np.ndarray, w: np.ndarray | None,
    want: tuple[bool, bool, bool], out: tuple[np.ndarray | None, ...] | None = None,
) -> tuple[tuple[np.ndarray | None, ...], np.ndarray]:
    """Run the compiled driver ``chunk`` (see :func:`kernel`) on contiguous 1-d arrays of one dtype.

    Returns ((value, grad, hess), counts): None for an output not wanted; counts
    summed over the chunks (see :data:`N_COUNTS`).  ``out``: optional (value, grad,
    hess) buffers (contiguous 1-d, f's dtype and size; None where not given) written in
    place of fresh arrays: no page-fault cost of new memory.
    """
    n = f.size
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
