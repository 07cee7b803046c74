"""Output memory that stays mapped: a pool of the kernels' large output buffers.

A new NumPy array of more than ~128 KiB comes from ``mmap``, and glibc hands it back to the
system when it is freed (or trims the heap), so the next call's output of the same size
page-faults on every page again: 4 KiB pages cost about 1.5 us each on the VM these
benchmarks ran on, 360 faults and ~430 us for the two 800 KB outputs of a value_grad at
10^5 elements (the kernel itself: ~25 us).  Whether it happens depends on the process's
history (glibc raises its mmap threshold once a larger block is freed, so a process that
imported SciPy or PyTorch often escapes it at 10^5 but never at 10^6).

The pool keeps the chunks behind the arrays it handed out.  A chunk is free again when
nothing but the pool refers to it: the returned array, and any view of it, holds a
reference to the chunk (its ``base``), so a chunk is reused only after every array on
its memory is gone (CPython reference counts; checked under a lock).  The chunks, in
use or free, stay within ``Config.output_pool_bytes`` (0 turns the pool off; free
chunks are dropped, largest first, to make room, and past the limit a call gets an
ordinary array); arrays under ``MIN_BYTES`` are ordinary ``np.empty`` (the heap serves
them without faults).
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

from .._config import get_config

__all__ = ["empty", "MIN_BYTES", "pooled_bytes", "clear"]

MIN_BYTES = 1 << 17  # 128 KiB: glibc's initial mmap threshold
_PAGE = 1 << 12
_MAX_CHUNKS = 64

_lock = threading.Lock()
_chunks: list[np.ndarray] = []  # uint8 arrays owned by the pool, in use or free


def _ref_counts(chunks: list[np.ndarray]) -> list[int]:
    return [sys.getrefcount(c) for c in chunks]


# The count _ref_counts sees for a chunk that only its list refers to (measured, so that
# it holds whatever the interpreter's own references in the comprehension are).
_FREE = _ref_counts([np.empty(1, np.uint8)])[0]


def _reset_after_fork() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def _capacity(nbytes: int) -> int:
    return -(-nbytes // _PAGE) * _PAGE


def _free_indices() -> list[int]:
    return [i for i, refs in enumerate(_ref_counts(_chunks)) if refs == _FREE]


def empty(shape: int | tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` (C order; ``dtype`` a NumPy dtype), on pooled memory when
    large enough: the smallest free chunk of at most twice the size, else a new chunk
    while the pool stays within ``Config.output_pool_bytes``, else an ordinary array."""
    count = shape if isinstance(shape, int) else math.prod(shape)
    nbytes = count * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    limit = get_config().output_pool_bytes
    if limit <= 0:
        return np.empty(shape, dtype)
    with _lock:
        best = -1
        held = 0
        for i, refs in enumerate(_ref_counts(_chunks)):
            size = _chunks[i].size
            held += size
            if refs == _FREE and nbytes <= size <= 2 * nbytes and (best < 0 or size < _chunks[best].size):
                best = i
        if best < 0:
            best = _new_chunk(_capacity(nbytes), held, limit)
            if best < 0:
                return np.empty(shape, dtype)  # chunks in use fill the pool: an ordinary array
        out = np.frombuffer(_chunks[best], dtype, count)
    return out if isinstance(shape, int) else out.reshape(shape)


def _new_chunk(cap: int, held: int, limit: int) -> int:
    """Index of a new chunk of ``cap`` bytes, after dropping free chunks (largest first)
    while the pool would pass ``limit`` or hold ``_MAX_CHUNKS``; -1 if it still would."""
    free = sorted(_free_indices(), key=lambda i: _chunks[i].size, reverse=True)
    dropped = set()
    for i in free:
        if held + cap <= limit and len(_chunks) - len(dropped) < _MAX_CHUNKS:
            break
        held -= _chunks[i].size
        dropped.add(i)
    if dropped:
        _chunks[:] = [c for i, c in enumerate(_chunks) if i not in dropped]
    if held + cap > limit or len(_chunks) >= _MAX_CHUNKS:
        return -1
    _chunks.append(np.empty(cap, np.uint8))
    return len(_chunks) - 1


def pooled_bytes() -> tuple[int, int]:
    """(bytes held by the pool, of which free)."""
    with _lock:
        return sum(c.size for c in _chunks), sum(_chunks[i].size for i in _free_indices())


def clear() -> None:
    """Drop the pool's free chunks (memory in use stays with its arrays)."""
    with _lock:
        free = set(_free_indices())
        _chunks[:] = [c for i, c in enumerate(_chunks) if i not in free]
