"""Shared test setup: JAX in float64, and registry-wide parametrization.

Any test that takes an argument named ``pointwise_loss`` is run once per registered
pointwise loss and parameter variant (``lossgrad.catalog(shape="pointwise")`` and each
``entry.variants``), plus a ``Scaled`` wrapper (2.5 * loss) of every default instance,
so losses added to the registry are covered without touching the tests.

A module-level ``RNG = np.random.default_rng(...)`` is reseeded before every test from
the test's id, so what a test draws does not depend on which tests ran before it in
the same worker (pytest-xdist hands tests out in no fixed order).
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")  # before any `import jax`
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import sys  # noqa: E402
import zlib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lossgrad  # noqa: E402

if "jax" in sys.modules:  # imported earlier by a plugin: switch it on explicitly
    sys.modules["jax"].config.update("jax_enable_x64", True)


def _params_id(params: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items()) or "default"


def pointwise_cases() -> list[tuple[str, object]]:
    """(test id, loss instance) for every pointwise entry, variant and a scaled wrapper."""
    cases = []
    for entry in lossgrad.catalog(shape="pointwise"):
        for params in entry.variants:
            cases.append((f"{entry.name}[{_params_id(params)}]", entry.make(**params)))
        cases.append((f"2.5*{entry.name}", 2.5 * entry.make()))
    return cases


def pytest_generate_tests(metafunc):
    if "pointwise_loss" in metafunc.fixturenames:
        cases = pointwise_cases()
        metafunc.parametrize("pointwise_loss", [c[1] for c in cases], ids=[c[0] for c in cases])


@pytest.fixture(autouse=True)
def _order_independent_module_rng(request):
    rng = getattr(request.module, "RNG", None)
    if isinstance(rng, np.random.Generator):
        seed = zlib.crc32(request.node.nodeid.encode())
        rng.bit_generator.state = type(rng.bit_generator)(seed).state
    yield


@pytest.fixture
def kernel_calls(monkeypatch):
    """Records whether each ``lossgrad.kernels.evaluate_row`` call returned a result (not None)."""
    from lossgrad import kernels

    calls = []
    real = kernels.evaluate_row

    def spy(*args, **kw):
        out = real(*args, **kw)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(kernels, "evaluate_row", spy)
    return calls


@pytest.fixture
def force_split(monkeypatch):
    """``force_split(path, layer_parts=3, thread_parts=2)`` sends the kernels' splits
    down ``path``: "threading layer" (Numba's layer with ``layer_parts`` threads) or
    "python threads" (the layer unavailable, ``thread_parts`` Python threads).  Returns
    a list that grows by one entry each time a launcher asks for the split."""
    from lossgrad.kernels import _parallel

    def force(path: str, layer_parts: int = 3, thread_parts: int = 2) -> list:
        asked: list = []
        if path == "threading layer":
            monkeypatch.setattr(_parallel, "layer_threads", lambda: asked.append(layer_parts) or layer_parts)
        else:
            monkeypatch.setattr(_parallel, "layer_threads", lambda: 0)
            monkeypatch.setattr(_parallel, "n_threads", lambda: asked.append(thread_parts) or thread_parts)
        return asked

    return force
