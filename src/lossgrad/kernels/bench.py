"""Benchmark suites of the fused kernels against the peers, measured in one process and run.

* Suite A (pointwise): squared_error (the bandwidth canary), huber(delta=1),
  logistic, poisson, tweedie(power=1.5); ops value, value+grad, grad+hess.
* Suite B (rows): cross_entropy value+grad for (N, K) in (2^18, 128), (65536, 1000),
  (4096, 32768), and (2^20, 10) with grad + Hessian diagonal too (boosting's request);
  class-index targets.

Peers (only those installed run) and the convention mapping:

* scikit-learn's private loss module ``sklearn._loss.loss`` with ``n_threads`` = all
  cores: HalfSquaredError is *half* the squared error (lossgrad's squared_error is r^2:
  the same work, a factor 2), HuberLoss(delta=1) equals huber, HalfBinomialLoss on
  y in {0, 1} equals logistic on y in {-1, +1}, HalfPoissonLoss and HalfTweedieLoss(1.5)
  are poisson and tweedie(1.5) up to a y-only constant, HalfMultinomialLoss is
  cross_entropy.  sklearn's ``loss`` / ``loss_gradient`` / ``gradient_hessian``.
* PyTorch CPU autograd: the per-element loss, its gradient by ``backward`` of the sum,
  the Hessian diagonal of an elementwise loss as the gradient of the sum of the
  gradient (``create_graph=True``).
* JAX ``jit``: value, (value, grad of the sum), (grad, grad of the sum of the grad).
* NumPy: lossgrad's own array-API reference (``use_kernels=False``).

Every implementation allocates its outputs on each call, except the row
"squared_error (out=)" (lossgrad's and scikit-learn's preallocated-buffer arguments).  Times are medians of ``repeat`` runs after one warm-up (which also compiles),
the implementations of a row measured in turn, each timed run right after 20 ms of
untimed runs of the same implementation (at least one; see :func:`_medians`).  The
bandwidth floor of an op is (bytes read + bytes written) / copy rate, the copy rate
measured with ``np.copyto`` of a 2 x 10^7 float64 array (one part per core, in threads)
as one more implementation of every row that runs from memory, in the same rounds (the
rate of a shared VM's memory drifts by 30-90% within minutes, so a rate taken once at
the start of a run misstates the rows measured later; rows in cache are shown against
the median rate of the run); the table gives lossgrad's time as a percentage of
that floor's speed (100% = at the floor).
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._cross_entropy_narrow import NARROW_MAX_CLASSES

__all__ = ["Row", "copy_bandwidth", "copy_rates", "median_copy_rate", "median_of", "machine", "suite_pointwise",
           "suite_cross_entropy", "format_table", "PEERS"]

PEERS = ("sklearn", "torch", "jax", "numpy")
POINTWISE_LOSSES = ("squared_error", "huber", "logistic", "poisson", "tweedie")
OPS = ("value", "value_grad", "grad_hess")
CE_SHAPES = ((1 << 18, 128), (65536, 1000), (4096, 32768))
#: Few classes (boosting-sized multiclass): value+grad and grad + Hessian diagonal.
CE_NARROW_SHAPE = (1 << 20, 10)


@dataclass
class Row:
    suite: str
    case: str
    op: str
    size: str
    dtype: str
    times: dict[str, float] = field(default_factory=dict)  # seconds, median
    bytes_moved: int = 0
    copy_rate: float | None = None  # bytes/s of the copy measured in the same rounds as the row

    @property
    def best_peer(self) -> tuple[str, float] | None:
        peers = [(k, v) for k, v in self.times.items() if k != "lossgrad"]
        return min(peers, key=lambda kv: kv[1]) if peers else None


def _have(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


def median_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median seconds of ``repeat`` consecutive calls of ``fn``, and the last result
    (the whole-fit scripts: benchmarks/bench_linear.py, bench_robust.py, bench_softmax.py)."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _median(fn: Callable[[], Any], repeat: int) -> float:
    return _medians({"_": fn}, repeat)["_"]


_SETTLE_S = 0.02  # untimed calls of an implementation before its timed one (see _medians)


def _medians(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Median seconds of each callable, measured round-robin, each timed call right
    after untimed calls of the same callable (``_SETTLE_S`` of them, at least one).

    Interleaving matters on Linux: NumPy asks for transparent huge pages for large
    arrays, and when the kernel has to compact memory to provide them, every
    allocation-heavy call stalls for a while (measured: a 10^7-element op taking 90 ms
    instead of 8 ms for several consecutive calls).  Taking each implementation's runs
    in turn spreads such episodes over all of them instead of one.

    The untimed call before each timed one undoes the cost of interleaving: the
    OpenMP runtimes of scikit-learn, PyTorch and XLA keep their worker threads
    spinning for a while after a parallel region, so whichever implementation is timed
    right after one of them finds the cores busy (measured on this 2-core machine:
    squared-error grad+hess at 10^7 took 5-6 ms longer in lossgrad's threads right
    after a scikit-learn call; with ``OMP_WAIT_POLICY=passive`` the two were within 2%,
    but that setting slows scikit-learn's small calls 4x).  With the paired call, every
    implementation is timed in the state it leaves the machine in when it runs in a
    loop, as it does in training: its own threads warm, nobody else's spinning.  The
    untimed calls go on for at least ``_SETTLE_S`` (session 16): scikit-learn's OpenMP
    threads spin for 5-10 ms after its call, so at 10^5 elements lossgrad's calls right
    after one took 0.55 ms instead of 0.036 ms for the next 8 calls (measured,
    squared-error grad_hess into given buffers); one untimed call had left the "out="
    row at 0.19-0.26 ms against scikit-learn's 0.03.
    """
    for fn in fns.values():
        fn()  # warm-up: compiles / loads from the cache
    ts: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            settled = time.perf_counter() + _SETTLE_S
            fn()
            while time.perf_counter() < settled:
                fn()
            t = time.perf_counter()
            fn()
            ts[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in ts.items()}


class _Copy:
    """``np.copyto`` of n float64, the array split in one contiguous part per core, each
    copied in its own thread (NumPy releases the GIL): the machine's memory rate with
    every core, as the kernels run.  ``bytes`` counts read + write."""

    def __init__(self, n: int = 20_000_000) -> None:
        from ._parallel import _pool, n_threads

        a, b = np.ones(n), np.empty(n)
        k = n_threads()
        edges = [n * i // k for i in range(k + 1)]
        self._parts = [(b[lo:hi], a[lo:hi]) for lo, hi in zip(edges[:-1], edges[1:])]
        self._pool = _pool(k)
        self.bytes = 2 * a.nbytes

    def __call__(self) -> None:
        for fut in [self._pool.submit(np.copyto, dst, src) for dst, src in self._parts]:
            fut.result()


def copy_bandwidth(n: int = 20_000_000, repeat: int = 5) -> float:
    """Bytes per second of the copy of :class:`_Copy` on n float64 (read + write counted)."""
    copy = _Copy(n)
    return copy.bytes / _median(copy, repeat)


def machine() -> str:
    """One line on where a run was measured: CPU model and family, cores, SIMD width,
    and the versions that decide the kernels' code (NumPy, Numba)."""
    import platform

    import numba

    model, family, flags = platform.processor() or platform.machine(), "", set()
    try:
        with open("/proc/cpuinfo") as fh:
            info = dict(line.split(":", 1) for line in fh.read().split("\n\n")[0].splitlines() if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
        model = info.get("model name", model)
        family = f" (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"
        flags = set(info.get("flags", "").split())
    except OSError:  # pragma: no cover - not Linux
        pass
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SIMD width unknown"
    return (f"{model}{family}, {os.cpu_count()} cores, {simd}; Python {platform.python_version()}, "
            f"NumPy {np.__version__}, Numba {numba.__version__}")


def _timed(row: Row, fns: dict[str, Callable[[], Any]], repeat: int, copy: _Copy | None) -> Row:
    """Fill ``row.times`` with the medians of ``fns``, and ``row.copy_rate`` from the copy
    measured as one more implementation in the same rounds, when ``copy`` is given and
    the row moves at least a quarter of the copy's bytes.  (A row that runs in cache gets
    no copy in its rounds: measured, the copy's 320 MB between its calls took lossgrad's
    10^5-element calls from 0.04 to 0.10 ms and scikit-learn's from 0.02 to 0.04.)"""
    with_copy = copy is not None and row.bytes_moved >= copy.bytes // 4
    times = _medians({**fns, "_copy": copy} if with_copy else fns, repeat)
    if with_copy:
        row.copy_rate = copy.bytes / times.pop("_copy")
    row.times.update(times)
    return row


def median_copy_rate(rows: list[Row]) -> float | None:
    """The median of the copy rates measured with the rows (bytes/s), None if none was."""
    rates = [r.copy_rate for r in rows if r.copy_rate]
    return statistics.median(rates) if rates else None


def copy_rates(rows: list[Row]) -> str:
    """The copy rates measured with the rows: median and range, in GB/s (read + write)."""
    rates = [r.copy_rate for r in rows if r.copy_rate]
    if not rates:
        return "copy rate not measured"
    return (f"copy rate {statistics.median(rates) / 1e9:.1f} GB/s (read + write; median of the rows' "
            f"{len(rates)} measurements, {min(rates) / 1e9:.1f} to {max(rates) / 1e9:.1f}; rows in cache "
            f"are shown against the median)")


# ---------------------------------------------------------------- suite A


def _pointwise_data(name: str, n: int, dt: Any, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    f = rng.normal(0.0, 1.0, n)
    if name == "logistic":
        y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    elif name in ("poisson", "tweedie"):
        y = rng.poisson(2.0, n).astype(float)
    else:
        y = f + rng.normal(0.0, 2.0, n)
    return y.astype(dt), f.astype(dt)


def _lossgrad_pointwise(name: str) -> Any:
    import lossgrad

    return lossgrad.get(name, power=1.5) if name == "tweedie" else lossgrad.get(name)


def _sklearn_pointwise(name: str, op: str, y: np.ndarray, f: np.ndarray) -> Callable[[], Any] | None:
    from sklearn._loss import loss as skl

    cls = {"squared_error": skl.HalfSquaredError, "huber": lambda: skl.HuberLoss(delta=1.0),
           "logistic": skl.HalfBinomialLoss, "poisson": skl.HalfPoissonLoss,
           "tweedie": lambda: skl.HalfTweedieLoss(power=1.5)}[name]
    sk = cls()
    yy = (y > 0).astype(y.dtype) if name == "logistic" else y
    nt = os.cpu_count() or 1
    # outputs allocated per call, as every other implementation here does
    if op == "value":
        return lambda: sk.loss(yy, f, n_threads=nt)
    if op == "value_grad":
        return lambda: sk.loss_gradient(yy, f, n_threads=nt)
    return lambda: sk.gradient_hessian(yy, f, n_threads=nt)


def _elementwise(ns: Any, name: str, y: Any, f: Any) -> Any:
    """The per-element loss in namespace ns (torch or jax.numpy), lossgrad's conventions."""
    if name == "squared_error":
        r = f - y
        return r * r
    if name == "huber":
        r = f - y
        a = ns.abs(r)
        return ns.where(a < 1.0, 0.5 * r * r, a - 0.5)
    if name == "logistic":
        z = -y * f
        return ns.maximum(z, 0.0 * z) + ns.log1p(ns.exp(-ns.abs(z)))
    if name == "poisson":
        return ns.exp(f) - y * f
    return ns.exp(0.5 * f) / 0.5 - y * ns.exp(-0.5 * f) / -0.5  # tweedie, power 1.5


def _torch_pointwise(name: str, op: str, y: np.ndarray, f: np.ndarray) -> Callable[[], Any] | None:
    import torch

    yt, ft0 = torch.from_numpy(y), torch.from_numpy(f)

    def value():
        with torch.no_grad():
            return _elementwise(torch, name, yt, ft0)

    def value_grad():
        ft = ft0.detach().requires_grad_(True)
        v = _elementwise(torch, name, yt, ft)
        (g,) = torch.autograd.grad(v.sum(), ft)
        return v.detach(), g

    def grad_hess():
        ft = ft0.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(_elementwise(torch, name, yt, ft).sum(), ft, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), ft)
        return g.detach(), h

    return {"value": value, "value_grad": value_grad, "grad_hess": grad_hess}[op]


def _jax_pointwise(name: str, op: str, y: np.ndarray, f: np.ndarray) -> Callable[[], Any] | None:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    yj, fj = jnp.asarray(y), jnp.asarray(f)

    def total(ff, yy):
        return jnp.sum(_elementwise(jnp, name, yy, ff))

    if op == "value":
        fn = jax.jit(lambda ff, yy: _elementwise(jnp, name, yy, ff))
    elif op == "value_grad":
        fn = jax.jit(lambda ff, yy: (_elementwise(jnp, name, yy, ff), jax.grad(total)(ff, yy)))
    else:
        g = jax.grad(total)
        fn = jax.jit(lambda ff, yy: (g(ff, yy), jax.grad(lambda u: jnp.sum(g(u, yy)))(ff)))
    return lambda: jax.block_until_ready(fn(fj, yj))


def _numpy_pointwise(loss: Any, op: str, y: np.ndarray, f: np.ndarray) -> Callable[[], Any]:
    import lossgrad

    method = getattr(loss, op)

    def run():
        with lossgrad.config_context(use_kernels=False):
            return method(y, f)

    return run


def suite_pointwise(sizes: tuple[int, ...] = (100_000, 10_000_000), dtypes: tuple[str, ...] = ("float64", "float32"),
                    losses: tuple[str, ...] = POINTWISE_LOSSES, ops: tuple[str, ...] = OPS, repeat: int = 5,
                    peers: tuple[str, ...] = PEERS, log: Callable[[str], None] | None = None,
                    copy_elements: int | None = 20_000_000) -> list[Row]:
    """Suite A: one Row per (loss, op, N, dtype) with the median time of lossgrad and each
    peer, and the copy rate of ``copy_elements`` float64 measured in the same rounds
    (None: no copy)."""
    rng = np.random.default_rng(0)
    copy = None if copy_elements is None else _Copy(copy_elements)
    makers = {"sklearn": _sklearn_pointwise, "torch": _torch_pointwise, "jax": _jax_pointwise}
    mods = {"sklearn": "sklearn", "torch": "torch", "jax": "jax", "numpy": "numpy"}
    rows = []
    for n in sizes:
        for dts in dtypes:
            dt = np.dtype(dts)
            for name in losses:
                y, f = _pointwise_data(name, n, dt, rng)
                loss = _lossgrad_pointwise(name)
                for op in ops:
                    outs = 1 if op == "value" else 2
                    row = Row("A", name, op, f"{n:.0e}", dts, bytes_moved=(2 + outs) * n * dt.itemsize)
                    fns = {"lossgrad": lambda m=getattr(loss, op): m(y, f)}
                    for peer in peers:
                        if _have(mods[peer]):
                            fns[peer] = _numpy_pointwise(loss, op, y, f) if peer == "numpy" else makers[peer](name, op, y, f)
                    rows.append(_timed(row, fns, repeat, copy))
                    if log:
                        log(format_table([row], None, header=False))
            if "squared_error" in losses and "grad_hess" in ops:
                rows.append(_row_with_out(n, dt, rng, repeat, peers, copy))
                if log:
                    log(format_table([rows[-1]], None, header=False))
    return rows


def _row_with_out(n: int, dt: np.dtype, rng: np.random.Generator, repeat: int, peers: tuple[str, ...],
                  copy: _Copy | None) -> Row:
    """squared_error grad+hess written into preallocated buffers (the bandwidth canary
    without the page faults of new memory): lossgrad's ``out=``, scikit-learn's
    ``gradient_out=`` / ``hessian_out=``."""
    y, f = _pointwise_data("squared_error", n, dt, rng)
    loss = _lossgrad_pointwise("squared_error")
    g, h = np.empty_like(f), np.empty_like(f)
    row = Row("A", "squared_error (out=)", "grad_hess", f"{n:.0e}", dt.name, bytes_moved=4 * n * dt.itemsize)
    fns = {"lossgrad": lambda: loss.grad_hess(y, f, out=(g, h))}
    if "sklearn" in peers and _have("sklearn"):
        from sklearn._loss import loss as skl

        sk, nt = skl.HalfSquaredError(), os.cpu_count() or 1
        g2, h2 = np.empty_like(f), np.empty_like(f)
        fns["sklearn"] = lambda: sk.gradient_hessian(y, f, gradient_out=g2, hessian_out=h2, n_threads=nt)
    return _timed(row, fns, repeat, copy)


# ---------------------------------------------------------------- suite B


def _ce_lossgrad(y: np.ndarray, f: np.ndarray, op: str = "value_grad") -> Callable[[], Any]:
    import lossgrad

    loss = lossgrad.CrossEntropy()
    method = getattr(loss, op)  # the public method (it dispatches to the row kernel)
    return lambda: method(y, f)


def _ce_sklearn(y: np.ndarray, f: np.ndarray, op: str = "value_grad") -> Callable[[], Any]:
    from sklearn._loss import loss as skl

    sk = skl.HalfMultinomialLoss(n_classes=f.shape[1])
    yy = y.astype(f.dtype)
    nt = os.cpu_count() or 1
    if op == "grad_hess_diag":  # sklearn's Hessian of the multinomial loss is its diagonal p (1 - p)
        return lambda: sk.gradient_hessian(yy, f, n_threads=nt)
    return lambda: sk.loss_gradient(yy, f, n_threads=nt)


def _ce_torch(y: np.ndarray, f: np.ndarray, op: str = "value_grad") -> Callable[[], Any]:
    import torch

    yt, ft0 = torch.from_numpy(y.astype(np.int64)), torch.from_numpy(f)

    def run():
        ft = ft0.detach().requires_grad_(True)
        v = torch.nn.functional.cross_entropy(ft, yt, reduction="none")
        (g,) = torch.autograd.grad(v.sum(), ft)
        return v.detach(), g

    return run


def _ce_jax(y: np.ndarray, f: np.ndarray, op: str = "value_grad") -> Callable[[], Any]:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    yj, fj = jnp.asarray(y.astype(np.int32)), jnp.asarray(f)

    def rows(ff, yy):
        lse = jax.nn.logsumexp(ff, axis=-1)
        return lse - jnp.take_along_axis(ff, yy[:, None], axis=-1)[:, 0]

    fn = jax.jit(lambda ff, yy: (rows(ff, yy), jax.grad(lambda u: jnp.sum(rows(u, yy)))(ff)))
    return lambda: jax.block_until_ready(fn(fj, yj))


def _ce_numpy(y: np.ndarray, f: np.ndarray, op: str = "value_grad") -> Callable[[], Any]:
    import lossgrad

    method = getattr(lossgrad.CrossEntropy(), op)

    def run():
        with lossgrad.config_context(use_kernels=False):
            return method(y, f)

    return run


def suite_cross_entropy(shapes: tuple[tuple[int, int], ...] = CE_SHAPES + (CE_NARROW_SHAPE,),
                        dtypes: tuple[str, ...] = ("float32", "float64"), repeat: int = 5,
                        peers: tuple[str, ...] = PEERS, log: Callable[[str], None] | None = None,
                        copy_elements: int | None = 20_000_000) -> list[Row]:
    """Suite B: cross_entropy value+grad (class-index targets) per (N, K) and dtype; for K
    <= NARROW_MAX_CLASSES (the few-class kernel) also grad + Hessian diagonal, what boosting asks for
    (peers: scikit-learn's ``gradient_hessian``, the NumPy reference); the copy rate as in
    :func:`suite_pointwise`."""
    rng = np.random.default_rng(1)
    copy = None if copy_elements is None else _Copy(copy_elements)
    makers = {"sklearn": _ce_sklearn, "torch": _ce_torch, "jax": _ce_jax, "numpy": _ce_numpy}
    rows = []
    for n, k in shapes:
        for dts in dtypes:
            dt = np.dtype(dts)
            f = rng.normal(0.0, 2.0, (n, k)).astype(dt)
            y = rng.integers(0, k, n)
            for op, outputs in (("value_grad", 1), ("grad_hess_diag", 2)):
                if op == "grad_hess_diag" and k > NARROW_MAX_CLASSES:
                    continue
                row = Row("B", "cross_entropy", op, f"{n}x{k}", dts, bytes_moved=(1 + outputs) * n * k * dt.itemsize)
                fns = {"lossgrad": _ce_lossgrad(y, f, op)}
                wanted = peers if op == "value_grad" else tuple(p for p in peers if p in ("sklearn", "numpy"))
                fns.update({peer: makers[peer](y, f, op) for peer in wanted if _have(peer)})
                rows.append(_timed(row, fns, repeat, copy))
                if log:
                    log(format_table([row], None, header=False))
    return rows


# ---------------------------------------------------------------- output


def format_table(rows: list[Row], bandwidth: float | None = None, header: bool = True) -> str:
    """A Markdown table: median ms per implementation, best peer / lossgrad, the copy rate
    and lossgrad's % of the bandwidth floor at that rate (the row's own copy rate, else
    ``bandwidth``; "-" where neither is known)."""
    cols = ("lossgrad",) + PEERS
    lines = []
    if header:
        lines.append("| suite | case | op | size | dtype | " + " | ".join(f"{c} ms" for c in cols)
                     + " | best peer / lossgrad | copy GB/s | % of bandwidth floor |")
        lines.append("|" + "---|" * (5 + len(cols) + 3))
    for r in rows:
        cells = [f"{1e3 * r.times[c]:.2f}" if c in r.times else "-" for c in cols]
        best = r.best_peer
        ratio = f"{best[1] / r.times['lossgrad']:.2f}x ({best[0]})" if best else "-"
        rate = r.copy_rate or bandwidth
        floor = f"{100 * (r.bytes_moved / rate) / r.times['lossgrad']:.0f}%" if rate else "-"
        lines.append(f"| {r.suite} | {r.case} | {r.op} | {r.size} | {r.dtype} | " + " | ".join(cells)
                     + f" | {ratio} | {f'{rate / 1e9:.1f}' if rate else '-'} | {floor} |")
    return "\n".join(lines)
