"""Global switches, in the spirit of scikit-learn's ``set_config``.

``assume_valid=True`` skips the input checks (finiteness, label and probability
domains, sample-weight sign) that every public loss method runs by default.  Use
it in a hot loop whose inputs you have already validated::

    with lossgrad.config_context(assume_valid=True):
        for _ in range(1000):
            g = loss.grad(y, f)

Shape and dtype checks stay on: they cost nothing and prevent silent broadcasting.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, replace

__all__ = ["Config", "get_config", "set_config", "config_context"]


@dataclass(frozen=True)
class Config:
    """The active configuration.

    Attributes
    ----------
    assume_valid:
        Skip the data checks (NaN/inf, label domains, weights >= 0).
    use_kernels:
        Let NumPy inputs above ``kernel_threshold`` elements go through the fused
        compiled kernels (when a loss has them).
    kernel_threshold:
        Smallest number of elements for which a fused kernel is used.  A kernel call
        costs less than the reference at every size (measured, float64, one core:
        3.3 us against 6.4-22 us for a pointwise loss on 100 elements, 9 us against
        90 us for cross_entropy on 32 x 10 logits), but the first one in a process
        loads Numba (~0.25 s) and each kernel (~5 ms from the on-disk cache, 0.5-2 s
        the first time after installing).  The default keeps one-off small calls (the
        loss cards, ``lossgrad demo``, whose largest array has 6 700 elements) free of
        that cost; set it to 0 in a long loop over small batches.
    kernel_threads:
        The most threads a fused kernel splits one call over (None: every core the
        process may use, within Numba's own ``set_num_threads``).  1 runs every call in
        the calling thread: what the XGBoost adapter does below 2^22 elements, since
        XGBoost's OpenMP threads keep spinning for milliseconds after each of its
        parallel regions and a kernel splitting over the same cores waits for them
        (see ``docs/engines.md``).
    output_pool_bytes:
        Memory the fused kernels keep for their large outputs (arrays of 128 KiB and
        more) once the arrays returned on it are gone, so that the next call's outputs
        cost no page faults (:mod:`lossgrad.kernels._output_pool`); 0 turns this off.
        Up to this much memory can stay allocated after the arrays are gone;
        ``lossgrad.kernels.clear_output_pool()`` hands the free part back.
    """

    assume_valid: bool = False
    use_kernels: bool = True
    kernel_threshold: int = 10_000
    kernel_threads: int | None = None
    output_pool_bytes: int = 256 << 20


_CONFIG: contextvars.ContextVar[Config] = contextvars.ContextVar("lossgrad_config", default=Config())


def get_config() -> Config:
    """Return the configuration in force in this context."""
    return _CONFIG.get()


def set_config(**changes: object) -> Config:
    """Change the configuration for this context; returns the new one."""
    _check_keys(changes)
    new = replace(_CONFIG.get(), **changes)
    _CONFIG.set(new)
    return new


@contextlib.contextmanager
def config_context(**changes: object) -> Iterator[Config]:
    """Temporarily change the configuration inside a ``with`` block."""
    _check_keys(changes)
    token = _CONFIG.set(replace(_CONFIG.get(), **changes))
    try:
        yield _CONFIG.get()
    finally:
        _CONFIG.reset(token)


def _check_keys(changes: dict[str, object]) -> None:
    known = set(Config.__dataclass_fields__)
    unknown = set(changes) - known
    if unknown:
        raise TypeError(f"unknown configuration option(s) {sorted(unknown)}; known: {sorted(known)}")
    threads = changes.get("kernel_threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"kernel_threads must be None or an integer >= 1, got {threads!r}")
