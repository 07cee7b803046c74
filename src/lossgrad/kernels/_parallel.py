"""How the compiled kernels run in parallel: the split rule, thread pools and ``parallel=True`` copies.

Every kernel launcher (the pointwise driver, the row and list kernels) asks
:func:`split_plan` how to cut a call: into one part per thread of Numba's threading
layer (a ``parallel=True`` wrapper whose ``prange`` over the parts calls the serial
kernel: 1-2 us to hand the parts over), into one part per core on Python threads
(:func:`run_in_parts`, ~60 us a wake-up on the 2-core VM, kept where that layer is not
safe: Numba's ``workqueue`` layer and forked children), or not at all.  The wrappers
are compiled copies of a template with the serial kernel bound as a global
(:func:`parallel_copy`), cached on disk under a name that carries the source files'
stamp (:func:`source_stamp`).  Measured figures: :mod:`._driver`.

Idle threads.  After a parallel region, GNU OpenMP's threads (Numba's ``omp`` layer) spin
before they sleep, and so do OpenBLAS's after a matrix product.  In a training step
f = X @ w, then a kernel's value_grad, then X.T @ g, each pool's spinning threads hold
the cores the other needs.  Measured on the 2-core VM, logistic loss, X 200000 x 64
float64, median of 15: 15.9 ms a step (the kernel 2.4-3.6 ms of it, against 0.24 ms
alone) with GNU OpenMP's default spin count, 6.3 ms with ``GOMP_SPINCOUNT=10000``
(NumPy alone: 5.5 ms), 5.9 ms with ``OMP_WAIT_POLICY=PASSIVE``.  Passive waiting costs
each launch a wake-up: ten back-to-back value_grad calls of huber at 2^15 elements took
52 us a call passive, 24 us at the default and 18 us at 10000.  So :func:`layer_threads`
sets ``GOMP_SPINCOUNT`` to :data:`GOMP_SPINCOUNT` before it starts the layer, unless the
environment already sets it.  The runtime reads it once, when it loads: a process in which
another library loaded the same runtime first (XGBoost links the system's libgomp, as
the layer does) keeps the setting it had; other OpenMP runtimes loaded later read it too.
OpenBLAS reads its own idle time when it loads, before lossgrad: the estimators instead
hold BLAS to one thread while they fit (:func:`blas_single_thread`) and run their
memory-bound products as kernels (:mod:`lossgrad.models._products`).
"""

from __future__ import annotations

import math
import os
import threading
import time
import types as pytypes
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numba
from numba import njit

from .._config import get_config

__all__ = ["BUILD_LOCK", "GOMP_SPINCOUNT", "bound", "source_stamp", "part_bounds", "sum_parts", "parallel_copy",
           "layer_threads", "split_plan", "n_threads", "run_in_parts", "blas_single_thread", "blas_held"]

_SPLIT_MIN = 1 << 14  # from here, one part per thread of Numba's threading layer
_THREAD_SPLIT_MIN = 1 << 17  # from here, one part per Python thread where that layer is not safe
BUILD_LOCK = threading.Lock()  # held while a kernel or a parallel copy is compiled, and while the layer starts
# How long (busy-wait iterations) an idle thread of the omp layer spins before it sleeps,
# unless the environment sets GOMP_SPINCOUNT: GNU OpenMP's default (300000 where
# OMP_WAIT_POLICY is unset) keeps a spinning thread on a core while NumPy's BLAS runs next,
# and on two cores each side then waits on the other (see the module's docstring).
GOMP_SPINCOUNT = 10_000


def source_stamp(*functions: Any) -> str:
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


def bound(template: Any, g: dict, qualname: str, **jit_options: Any) -> Any:
    """A compiled copy of ``template`` whose global names resolve in ``g``."""
    t = template
    py = pytypes.FunctionType(t.__code__, g, t.__name__, t.__defaults__, t.__closure__)
    py.__qualname__ = qualname
    py.__module__ = t.__module__
    return njit(**jit_options)(py)


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


def parallel_copy(template: Any, kernel: Any, built: dict) -> Any:
    """The ``parallel=True`` compiled copy of ``template`` whose global ``_kernel`` is the
    compiled serial ``kernel``: built on first use, remembered in ``built`` and cached on
    disk under the kernel's qualified name + "_parallel" + its source stamp (see
    :func:`._driver.kernel` and :func:`source_stamp`)."""
    fn = built.get(kernel)
    if fn is None:
        with BUILD_LOCK:
            fn = built.get(kernel)
            if fn is None:
                g = dict(template.__globals__, _kernel=kernel)
                name = f"{kernel.py_func.__qualname__}_parallel_{source_stamp(kernel)}"
                fn = built[kernel] = bound(template, g, name, cache=True, parallel=True, nogil=True,
                                           error_model="numpy")
    return fn


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
        with BUILD_LOCK:
            if _LAYER_OK is None:
                try:
                    # GNU OpenMP reads its spin count when the layer's library loads, just below
                    os.environ.setdefault("GOMP_SPINCOUNT", str(GOMP_SPINCOUNT))
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


# ---------------------------------------------------------------- BLAS threads during a fit
_BLAS_LOCK = threading.Lock()
_BLAS_HOLDERS = 0  # blocks of blas_single_thread() open in the main thread now
_BLAS_LIMITER: Any = None  # threadpoolctl's limiter while held: it restores the settings it found
_BLAS_CONTROLLER: Any = None  # threadpoolctl's controller of the BLAS libraries, built on first use (~3 ms)


def _blas_controller() -> Any:
    """The BLAS libraries loaded now (NumPy's and SciPy's OpenBLAS), or False without threadpoolctl."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        try:
            import scipy.linalg  # noqa: F401 - SciPy's BLAS (the solves of a fit) is loaded and found too
            from threadpoolctl import ThreadpoolController

            _BLAS_CONTROLLER = ThreadpoolController().select(user_api="blas")
        except Exception:  # pragma: no cover - threadpoolctl missing or unable to read the libraries
            _BLAS_CONTROLLER = False
    return _BLAS_CONTROLLER


@contextmanager
def blas_single_thread() -> Iterator[bool]:
    """Hold the BLAS libraries to one thread inside the block, in the main thread; yields
    whether this block set it.

    OpenBLAS's idle threads spin after a product, and on few cores they then hold the
    cores the next compiled kernel needs (see the module's docstring); a fit that runs its
    memory-bound products as lossgrad kernels (:mod:`lossgrad.models._products`) keeps
    BLAS for the cache-sized products, which one thread serves as fast.  The setting is
    process-wide (threadpoolctl's): the outermost block sets it and restores, on leaving
    (also by an exception), what it found.  Only the main thread sets it: OpenBLAS
    (0.3.30, 0.3.31) ignores a raise of its thread count asked from another thread once
    the main thread lowered it, so a block in another thread could not restore the
    setting; there the block changes nothing (yields False).  9 us to enter and leave
    with the controller built (once, ~3 ms); a no-op without threadpoolctl.
    """
    global _BLAS_HOLDERS, _BLAS_LIMITER
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    with _BLAS_LOCK:
        if _BLAS_HOLDERS == 0:
            controller = _blas_controller()
            _BLAS_LIMITER = controller.limit(limits=1) if controller else None
        _BLAS_HOLDERS += 1
        held = _BLAS_LIMITER is not None
    try:
        yield held
    finally:
        with _BLAS_LOCK:
            _BLAS_HOLDERS -= 1
            if _BLAS_HOLDERS == 0 and _BLAS_LIMITER is not None:
                limiter, _BLAS_LIMITER = _BLAS_LIMITER, None
                limiter.restore_original_limits()


def blas_held() -> bool:
    """Whether some :func:`blas_single_thread` block holds BLAS to one thread now."""
    return _BLAS_LIMITER is not None
