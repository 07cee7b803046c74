"""How the pointwise kernels split an array over threads (lossgrad.kernels._driver).

From 2^14 elements the parts run in Numba's threading layer (a parallel wrapper around
the serial driver); where that layer is not safe (``workqueue``, a forked child) they
run in Python threads from 2^17.  Every path gives the serial result bit for bit (each
element is computed alone), sees a bad value in any part, and a forked child computes
without aborting.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import lossgrad
from lossgrad.kernels import _driver, _parallel

N_MID, N_BIG = (1 << 14) + 777, (1 << 17) + 5


def _inputs(name, n, seed=0):
    rng = np.random.default_rng(seed)
    f = rng.normal(0, 2, n)
    if name == "logistic":
        y = rng.choice([-1.0, 1.0], n)
    elif name == "tweedie":
        y = rng.uniform(0, 3, n)
        f[-700::7] = 400.0  # overflowing lanes in the last part: the exact fallback of the fast path
    else:
        y = rng.normal(0, 2, n)
    return y, f, rng.uniform(0, 2, n)


def _loss(name):
    return lossgrad.get("tweedie", power=1.5) if name == "tweedie" else lossgrad.get(name)


def _serial(loss, y, f, w, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(_parallel, "_SPLIT_MIN", 1 << 40)
        m.setattr(_parallel, "_THREAD_SPLIT_MIN", 1 << 40)
        with lossgrad.config_context(kernel_threshold=0):
            return loss.value_grad_hess(y, f, sample_weight=w)


@pytest.fixture
def wrapper_calls(monkeypatch):
    calls = []
    real = _driver.parallel_kernel
    monkeypatch.setattr(_driver, "parallel_kernel", lambda chunk: calls.append(chunk) or real(chunk))
    return calls


@pytest.mark.parametrize(("layer", "size", "rows", "plan"), [
    (4, (1 << 14) - 1, 1 << 13, (False, 1)),  # small: one part, in the calling thread
    (4, 1 << 14, 1 << 14, (True, 4)),  # the layer: one part per thread
    (4, 1 << 20, 3, (True, 3)),  # ... at most one per row
    (4, 1 << 20, 1, (False, 1)),  # one row: nothing to split
    (1, 1 << 20, 1 << 20, (False, 1)),  # the user set Numba's threads to one
    (0, 1 << 14, 1 << 14, (False, 1)),  # layer not safe: Python threads only from 2^17
    (0, 1 << 17, 1 << 17, (False, 6)),  # ... one part per core
    (0, 1 << 20, 5, (False, 5)),  # ... at most one per row
])
def test_split_plan(layer, size, rows, plan, monkeypatch):
    monkeypatch.setattr(_parallel, "layer_threads", lambda: layer)
    monkeypatch.setattr(_parallel, "n_threads", lambda: 6)
    assert _parallel.split_plan(size, rows) == plan


@pytest.mark.parametrize("name", ["huber", "logistic", "tweedie"])
@pytest.mark.parametrize("n", [N_MID, N_BIG])
def test_threading_layer_parts_equal_the_serial_driver(name, n, monkeypatch, wrapper_calls):
    threads = _parallel.layer_threads()  # 2 on the 2-core CI machine with Numba's omp layer
    loss = _loss(name)
    y, f, w = _inputs(name, n)
    ref = _serial(loss, y, f, w, monkeypatch)
    with lossgrad.config_context(kernel_threshold=0):
        out = loss.value_grad_hess(y, f, sample_weight=w)
        g, h = np.empty(n), np.empty(n)
        loss.grad_hess(y, f, sample_weight=w, out=(g, h))
    assert len(wrapper_calls) == (2 if threads > 1 else 0)
    for r, o in zip(ref, out):
        np.testing.assert_array_equal(o, r)
    np.testing.assert_array_equal(g, ref[1])
    np.testing.assert_array_equal(h, ref[2])


def test_a_bad_value_in_the_last_part_is_seen(wrapper_calls):
    loss = lossgrad.get("huber")
    y, f, w = _inputs("huber", N_MID)
    f[-1] = np.nan
    with lossgrad.config_context(kernel_threshold=0), pytest.raises(ValueError, match="y_pred contains 1 NaN"):
        loss.grad(y, f)
    w[-2] = -1.0
    f[-1] = 0.0
    with lossgrad.config_context(kernel_threshold=0), pytest.raises(ValueError, match="sample_weight"):
        loss.grad(y, f, sample_weight=w)
    assert len(wrapper_calls) == (2 if _parallel.layer_threads() > 1 else 0)


def test_workqueue_layer_falls_back_to_python_threads(monkeypatch, wrapper_calls):
    """Numba's workqueue layer aborts on launches from two threads at once: not used."""
    monkeypatch.setattr(_parallel, "_LAYER_OK", None)
    monkeypatch.setattr(numba, "threading_layer", lambda: "workqueue")
    assert _parallel.layer_threads() == 0
    loss = lossgrad.get("logistic")
    y, f, w = _inputs("logistic", N_BIG)
    ref = _serial(loss, y, f, w, monkeypatch)
    split = []
    real = _driver.run_in_parts
    monkeypatch.setattr(_driver, "run_in_parts", lambda n, k, run, align=1: split.append(k) or real(n, k, run, align))
    with lossgrad.config_context(kernel_threshold=0):
        out = loss.value_grad_hess(y, f, sample_weight=w)
        loss.value(y[:N_MID], f[:N_MID])  # under 2^17: one thread
    assert wrapper_calls == [] and split == [_parallel.n_threads()]
    for r, o in zip(ref, out):
        np.testing.assert_array_equal(o, r)


def test_one_numba_thread_runs_the_serial_driver(wrapper_calls):
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with lossgrad.config_context(kernel_threshold=0):
            lossgrad.get("huber").value(*_inputs("huber", N_MID)[:2])
    finally:
        numba.set_num_threads(before)
    assert wrapper_calls == []


def _child(conn, y, f):
    with lossgrad.config_context(kernel_threshold=0):
        conn.send((_parallel.layer_threads(), lossgrad.get("logistic").value_grad(y, f)))
    conn.close()


def test_a_forked_child_computes_without_the_threading_layer(monkeypatch):
    """GNU OpenMP aborts a forked child that opens a parallel region after the parent
    did ("fork() called from a process already using GNU OpenMP"): the child uses
    Python threads instead, and gets the same numbers.  Its thread pool is its own: the
    parent's pool object, copied by the fork, counts idle workers the child does not
    have, and a task submitted to it waited forever (a hang before session 8)."""
    y, f, _ = _inputs("logistic", N_BIG)
    with lossgrad.config_context(kernel_threshold=0):
        ref = lossgrad.get("logistic").value_grad(y, f)  # the parent launches the layer
        with monkeypatch.context() as m:  # ... and its Python thread pool
            m.setattr(_parallel, "layer_threads", lambda: 0)
            lossgrad.get("logistic").value(y, f)
    assert _parallel._POOL is not None
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(child, y, f))
    proc.start()
    got = parent.recv() if parent.poll(60) else None
    proc.join(10)
    if proc.is_alive():
        proc.kill()
    assert proc.exitcode == 0 and got is not None
    threads, out = got
    assert threads == 0
    for r, o in zip(ref, out):
        np.testing.assert_array_equal(o, r)


def test_concurrent_calls_from_python_threads(monkeypatch):
    """Several Python threads (a Dask threaded scheduler, a data loader) launching the
    split kernels at once: Numba's omp/tbb layers take concurrent launches (``workqueue``
    would abort the process, which is why it is not used); each call gets its own numbers."""
    from concurrent.futures import ThreadPoolExecutor

    loss = lossgrad.get("logistic")
    inputs = [_inputs("logistic", N_MID + 512 * i, seed=i) for i in range(6)]
    refs = [_serial(loss, y, f, w, monkeypatch) for y, f, w in inputs]

    def call(i):
        y, f, w = inputs[i]
        with lossgrad.config_context(kernel_threshold=0):
            return [loss.value_grad_hess(y, f, sample_weight=w) for _ in range(5)]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, range(6)))
    for ref, outs in zip(refs, results):
        for out in outs:
            for r, o in zip(ref, out):
                np.testing.assert_array_equal(o, r)


def test_compile_all_builds_kernels_and_their_parallel_wrappers(monkeypatch):
    """compile_all (here on one pointwise loss and one row loss) builds the serial kernels
    and, where the threading layer is used, the parallel wrappers the first large call
    would otherwise compile; with parallel=False, none."""
    from lossgrad import _registry, kernels
    from lossgrad.kernels import _cross_entropy

    pointwise = {lossgrad.Huber: kernels.POINTWISE[lossgrad.Huber]}
    monkeypatch.setattr(kernels, "POINTWISE", pointwise)
    ce = [e for e in _registry.catalog(shape="row") if e.name == "cross_entropy"]
    monkeypatch.setattr(_registry, "catalog", lambda family=None, shape=None: ce)
    for parallel in (False, True):
        monkeypatch.setattr(_driver, "_PARALLEL", {})
        monkeypatch.setattr(_cross_entropy, "_PARALLEL", {})
        times = kernels.compile_all((np.float64,), parallel=parallel)
        assert set(times) == {"float64"}
        built = parallel and _parallel.layer_threads() > 1
        chunk = kernels.plan_for(lossgrad.Huber(), np.dtype(np.float64)).chunk
        assert (chunk in _driver._PARALLEL) == built
        assert len(_cross_entropy._PARALLEL) == (1 if built else 0)  # the few-class kernel (K = 4)


def test_the_affinity_is_read_again_after_a_second(monkeypatch):
    clock = [1000.0]
    cores = [{0, 1, 2}]
    monkeypatch.setattr(_parallel.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(_parallel.os, "sched_getaffinity", lambda pid: cores[0])
    monkeypatch.setattr(_parallel, "_AFFINITY", (-float("inf"), 1))
    assert _parallel.n_threads() == 3
    cores[0] = {0}
    clock[0] += 0.5
    assert _parallel.n_threads() == 3  # cached
    clock[0] += 0.6
    assert _parallel.n_threads() == 1  # re-read


def test_kernel_threads_caps_the_split_and_keeps_the_result():
    from lossgrad.kernels._parallel import split_plan

    n = 1 << 18
    assert split_plan(n, n)[1] >= 1
    with lossgrad.config_context(kernel_threads=1):
        assert split_plan(n, n) == (False, 1)
        assert split_plan(n, 4) == (False, 1)
    rng = np.random.default_rng(0)
    y, f = rng.normal(size=n), rng.normal(size=n)
    loss = lossgrad.get("huber")
    g, h = loss.grad_hess(y, f)
    with lossgrad.config_context(kernel_threads=1):
        g1, h1 = loss.grad_hess(y, f)
    np.testing.assert_array_equal(g, g1)
    np.testing.assert_array_equal(h, h1)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="kernel_threads must be None or an integer >= 1"):
            lossgrad.config_context(kernel_threads=bad).__enter__()


_SPIN_PROBE = """
import os
from lossgrad.kernels import _parallel
_parallel.layer_threads()
import numba
print(os.environ.get("GOMP_SPINCOUNT"), numba.threading_layer())
"""


@pytest.mark.parametrize("preset", [None, "123"])
def test_the_layer_starts_with_a_short_spin_count(preset):
    """GNU OpenMP's idle threads spin GOMP_SPINCOUNT iterations: lossgrad sets its default
    before the layer starts, and leaves a value the environment set."""
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if preset is not None:
        env["GOMP_SPINCOUNT"] = preset
    out = subprocess.run([sys.executable, "-c", _SPIN_PROBE], env=env, capture_output=True, text=True, check=True)
    spin, layer = out.stdout.split()
    assert spin == (preset or str(_parallel.GOMP_SPINCOUNT))
    assert layer in ("omp", "tbb", "workqueue")


def _blas_threads():
    from threadpoolctl import threadpool_info

    return sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


@pytest.fixture
def two_blas_threads():
    """BLAS set to two threads for the test (a setting a fit must restore), then put back."""
    import scipy.linalg  # noqa: F401 - SciPy's OpenBLAS loaded, as in a fit
    from threadpoolctl import threadpool_limits

    with threadpool_limits(2, user_api="blas"):
        assert set(_blas_threads()) == {2}
        yield


def test_blas_single_thread_holds_one_thread_and_restores(two_blas_threads):
    assert not _parallel.blas_held()
    with _parallel.blas_single_thread() as held:
        assert held and _parallel.blas_held()
        assert set(_blas_threads()) == {1}
    assert not _parallel.blas_held()
    assert set(_blas_threads()) == {2}


def test_blas_single_thread_restores_on_an_exception(two_blas_threads):
    with pytest.raises(RuntimeError, match="inside"):
        with _parallel.blas_single_thread():
            raise RuntimeError("inside")
    assert set(_blas_threads()) == {2} and not _parallel.blas_held()


def test_nested_blocks_restore_what_the_outermost_found(two_blas_threads):
    with _parallel.blas_single_thread() as outer:
        with _parallel.blas_single_thread() as inner:
            assert outer and inner and set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {1} and _parallel.blas_held()
    assert set(_blas_threads()) == {2} and not _parallel.blas_held()


def test_a_block_in_another_thread_changes_nothing(two_blas_threads):
    """OpenBLAS ignores a raise of its thread count asked from a thread other than the main
    one after the main thread lowered it: only the main thread sets and restores."""
    import threading

    seen = []

    def other():
        with _parallel.blas_single_thread() as held:
            seen.append((held, _blas_threads()))

    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    assert not seen[0][0] and set(seen[0][1]) == {2}
    with _parallel.blas_single_thread():  # the main thread holds; a block in another thread leaves it so
        t = threading.Thread(target=other)
        t.start()
        t.join(10)
        assert set(seen[1][1]) == {1} and not seen[1][0]
    assert set(_blas_threads()) == {2} and not _parallel.blas_held()
