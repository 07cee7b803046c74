"""The kernels' output pool: memory is reused only when no array refers to it any more."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import lossgrad
from lossgrad.kernels import _output_pool as pool

F64 = np.dtype(np.float64)
N = 40_000  # 320 KB: above the pool's 128 KiB floor


@pytest.fixture(autouse=True)
def _empty_pool():
    pool.clear()
    yield
    pool.clear()


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_live_arrays_never_share_memory_and_freed_ones_are_reused():
    a, b = pool.empty(N, F64), pool.empty(N, F64)
    assert not np.shares_memory(a, b)
    a[:] = 1.0
    b[:] = 2.0
    where = _address(a)
    del a
    c = pool.empty(N, F64)
    assert _address(c) == where  # a's chunk, free again
    assert np.all(b == 2.0)
    held, free = pool.pooled_bytes()
    assert held >= 2 * N * 8 and free == 0


def test_a_view_keeps_its_chunk_in_use():
    a = pool.empty(N, F64)
    view = a[10:20]
    where = _address(a)
    del a
    b = pool.empty(N, F64)
    assert _address(b) != where and not np.shares_memory(b, view)
    del view
    c = pool.empty(N, F64)
    assert _address(c) == where


def test_shapes_dtypes_and_small_arrays():
    m = pool.empty((200, 300), np.dtype(np.float32))
    assert m.shape == (200, 300) and m.dtype == np.float32 and m.flags.c_contiguous and m.flags.writeable
    assert m.flags.aligned  # else Numba would compile another specialisation for it
    small = pool.empty(100, F64)
    assert small.flags.owndata  # under the floor: an ordinary array
    del m
    # a freed chunk serves a request of at least half its size, not a smaller one
    big = pool.empty(4 * N, F64)
    where = _address(big)
    del big
    assert _address(pool.empty(N, F64)) != where
    assert _address(pool.empty(3 * N, F64)) == where


def test_the_limit_drops_free_chunks_and_stops_pooling_when_full():
    with lossgrad.config_context(output_pool_bytes=3 * N * 8):
        a = pool.empty(N, F64)
        b = pool.empty(N, F64)
        del a
        c = pool.empty(2 * N, F64)  # a's free chunk is dropped to make room
        assert pool.pooled_bytes()[0] <= 3 * N * 8 + 2 * 4096
        d = pool.empty(2 * N, F64)  # b and c in use: no room, an ordinary array
        assert d.flags.owndata and not np.shares_memory(d, c) and not np.shares_memory(d, b)
    with lossgrad.config_context(output_pool_bytes=0):
        assert pool.empty(N, F64).flags.owndata


def test_a_full_count_of_free_chunks_makes_room(monkeypatch):
    monkeypatch.setattr(pool, "_MAX_CHUNKS", 2)
    a, b = pool.empty(N, F64), pool.empty(N, F64)
    del a, b  # two free chunks of N elements: the count is full
    big = pool.empty(5 * N, F64)  # neither fits: one is dropped for a new chunk
    assert not big.flags.owndata and len(pool._chunks) == 2
    c, d = pool.empty(N, F64), pool.empty(N, F64)  # one free chunk left, then none: ordinary
    assert not c.flags.owndata and d.flags.owndata


def test_threads_get_disjoint_memory():
    """Each thread fills its array with its own number and checks it after the others ran:
    memory handed to two live arrays at once would show another thread's number."""
    wrong: list[int] = []
    start = threading.Barrier(4)

    def work(k: int) -> None:
        start.wait()
        for _ in range(200):
            a = pool.empty(N, F64)
            a[:] = k
            for _ in range(3):
                threading.Event().wait(0)  # let the other threads run
            if not np.all(a == k):
                wrong.append(k)
            del a

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong


def test_kernel_outputs_come_from_the_pool_and_stay_correct():
    rng = np.random.default_rng(0)
    y, f = rng.normal(size=N), rng.normal(size=N)
    loss = lossgrad.get("huber", delta=0.7)
    with lossgrad.config_context(use_kernels=False):
        ref_v, ref_g = loss.value_grad(y, f)
    v, g = loss.value_grad(y, f)
    assert not v.flags.owndata and not g.flags.owndata  # pooled
    where = {_address(v), _address(g)}
    np.testing.assert_allclose(v, ref_v, rtol=1e-14)
    v2, g2 = loss.value_grad(y, f)  # v and g alive: new memory
    assert {_address(v2), _address(g2)}.isdisjoint(where)
    kept = g.copy()
    del v, g
    v3, g3 = loss.value_grad(y, 2 * f)
    assert {_address(v3), _address(g3)} == where
    np.testing.assert_array_equal(g2, kept)  # untouched by the third call
    labels = rng.integers(0, 50, 2000)
    logits = rng.normal(size=(2000, 50))
    ce = lossgrad.CrossEntropy()
    g_ce = ce.grad(labels, logits)
    with lossgrad.config_context(use_kernels=False):
        np.testing.assert_allclose(g_ce, ce.grad(labels, logits), rtol=1e-12, atol=1e-15)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_allocates_from_its_own_copy():
    a = pool.empty(N, F64)
    a[:] = 3.0
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        ok = False
        try:
            b = pool.empty(N, F64)
            b[:] = 5.0
            ok = bool(np.all(a == 3.0)) and not np.shares_memory(a, b)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
