"""The benchmark machinery runs end to end on tiny sizes (no timing assertions)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lossgrad.cli.bench import run_bench
from lossgrad.kernels import bench as B


def test_run_bench_tiny_produces_a_full_table():
    out = run_bench(n=2000, shape=(64, 8), repeat=1, peers=("numpy", "sklearn"), losses=("huber", "logistic"))
    lines = [ln for ln in out.splitlines() if ln.startswith("| A") or ln.startswith("| B")]
    # 2 losses x 3 ops x 2 dtypes, then cross_entropy (K = 8: value_grad and grad_hess_diag) x 2 dtypes
    assert len(lines) == 2 * 3 * 2 + 2 * 2
    assert sum("| cross_entropy | grad_hess_diag | 64x8 |" in ln for ln in lines) == 2
    canary = run_bench(n=2000, shape=(16, 4), repeat=1, peers=("numpy",), losses=("squared_error",))
    assert sum("squared_error (out=)" in ln for ln in canary.splitlines()) == 2  # f64 and f32
    assert re.search(r"copy rate \d+\.\d GB/s", out) and "cores" in out
    for ln in lines:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        assert re.fullmatch(r"\d+\.\d\d", cells[5]), ln  # lossgrad's time
        assert cells[-3].endswith("(numpy)") or cells[-3].endswith("(sklearn)"), ln
        assert re.fullmatch(r"\d+\.\d", cells[-2]), ln  # the copy rate measured with the row
        assert cells[-1].endswith("%"), ln


def test_each_row_carries_the_copy_rate_measured_in_its_rounds():
    """The % of the bandwidth floor divides by the row's own copy rate: rows of one run
    get different rates, and the table's percentage is bytes / rate / lossgrad's time."""
    rows = B.suite_pointwise(sizes=(3000,), dtypes=("float64",), losses=("huber",), ops=("value", "grad_hess"),
                             repeat=1, peers=("numpy",), copy_elements=2000)
    assert len(rows) == 2 and all(r.copy_rate and r.copy_rate > 0 for r in rows)
    in_cache = B.suite_pointwise(sizes=(3000,), dtypes=("float64",), losses=("huber",), ops=("value",), repeat=1,
                                 peers=("numpy",), copy_elements=100_000)  # moves under a quarter of the copy's bytes
    assert in_cache[0].copy_rate is None
    assert all("_copy" not in r.times and r.best_peer[0] == "numpy" for r in rows)
    r = rows[0]
    r.copy_rate, r.times["lossgrad"] = 2.0 * r.bytes_moved, 1.0  # the floor is 0.5 s: 50%
    cells = [c.strip() for c in B.format_table([r], bandwidth=1.0, header=False).strip("|").split("|")]
    assert cells[-1] == "50%" and cells[-2] == f"{2.0 * r.bytes_moved / 1e9:.1f}"
    r.copy_rate = None  # no rate of its own: the given bandwidth
    cells = [c.strip() for c in B.format_table([r], bandwidth=r.bytes_moved / 4.0, header=False).strip("|").split("|")]
    assert cells[-1] == "400%"
    assert "copy rate not measured" == B.copy_rates([r])


def test_peers_compute_the_same_losses_as_lossgrad():
    """The peer closures time the quantities lossgrad computes (convention mapping of the module doc)."""
    rng = np.random.default_rng(0)
    for name in B.POINTWISE_LOSSES:
        y, f = B._pointwise_data(name, 500, np.dtype("float64"), rng)
        loss = B._lossgrad_pointwise(name)
        ref_v, ref_g = loss.value_grad(y, f)
        v, g = B._torch_pointwise(name, "value_grad", y, f)()
        np.testing.assert_allclose(v.numpy(), ref_v, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g.numpy(), ref_g, rtol=1e-12, atol=1e-12)
        g2, h2 = B._jax_pointwise(name, "grad_hess", y, f)()
        rg, rh = loss.grad_hess(y, f)
        np.testing.assert_allclose(np.asarray(g2), rg, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(h2), rh, rtol=1e-12, atol=1e-12)


def test_cross_entropy_peers_compute_what_lossgrad_computes():
    """scikit-learn's HalfMultinomialLoss: loss_gradient = (value, grad), gradient_hessian =
    (grad, the Hessian diagonal p (1 - p)) of lossgrad's cross_entropy."""
    import lossgrad

    rng = np.random.default_rng(2)
    f = rng.normal(0, 2, (300, 10))
    y = rng.integers(0, 10, 300)
    ce = lossgrad.CrossEntropy()
    v, g = B._ce_sklearn(y, f)()
    np.testing.assert_allclose(v, ce.value(y, f), rtol=1e-12)
    np.testing.assert_allclose(g, ce.grad(y, f), rtol=1e-12, atol=1e-15)
    g, h = B._ce_sklearn(y, f, "grad_hess_diag")()
    rg, rh = B._ce_lossgrad(y, f, "grad_hess_diag")()
    np.testing.assert_allclose(g, rg, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h, rh, rtol=1e-12, atol=1e-15)
    vj, gj = B._ce_jax(y, f)()
    np.testing.assert_allclose(np.asarray(gj), ce.grad(y, f), rtol=1e-12, atol=1e-15)


def test_lossgrad_bench_command_runs():
    from typer.testing import CliRunner

    import lossgrad.cli.bench  # noqa: F401  registers `bench` (until cli/__init__ imports it)
    from lossgrad.cli import app

    res = CliRunner().invoke(app, ["bench", "--n", "3000", "--rows", "32", "--classes", "5", "--repeat", "1",
                                   "--peer", "numpy"])
    assert res.exit_code == 0, res.output
    assert "| B | cross_entropy | value_grad | 32x5 | float64 |" in res.output
    assert "copy rate" in res.output


def test_small_calls_script_times_every_column():
    """benchmarks/bench_small_calls.py builds its columns from the peers above and times them."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_small_calls.py"
    spec = importlib.util.spec_from_file_location("bench_small_calls", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for fns in (mod._pointwise_fns("logistic", 100), mod._cross_entropy_fns(8, 3)):
        assert {"lossgrad", "lossgrad (threshold 0)", "sklearn", "torch", "jax", "reference"} <= set(fns)
        us = mod.per_call_us(fns, repeat=1, budget_s=1e-4)
        assert set(us) == set(fns) and all(t > 0 for t in us.values())


def test_row_hess_diag_script_times_kernel_reference_and_peers():
    """benchmarks/bench_row_hess_diag.py: every case runs through the kernel and the
    reference, and scikit-learn's gradient_hessian equals lossgrad's where it is timed."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_row_hess_diag.py"
    spec = importlib.util.spec_from_file_location("bench_row_hess_diag", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    for name, _, loss, y, f in mod.cases(rng, 16, 5, np.float64):
        t = mod.row_times(name, loss, y, f, repeat=1, ref_repeat=1)
        assert {"kernel", "reference"} <= set(t) and all(v > 0 for v in t.values())
        sk = mod._sklearn_fn(name, y, f)
        assert (sk is None) == (name not in ("cross_entropy", "multilabel"))
        if sk is not None:  # the peer's (gradient, hessian) is lossgrad's, up to scikit-learn's layout
            g, h = sk()
            lg, lh = loss.grad_hess_diag(y, f)
            np.testing.assert_allclose(np.reshape(g, lg.shape), lg, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(np.reshape(h, lh.shape), lh, rtol=1e-10, atol=1e-12)


def test_ranking_script_torch_transcriptions_compute_lossgrads_losses():
    """benchmarks/bench_ranking.py: its PyTorch peers (each loss in torch ops) give
    lossgrad's values and gradients, through the kernels and the reference, in both dtypes."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ranking.py"
    spec = importlib.util.spec_from_file_location("bench_ranking", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert set(mod.LOSSES) == {"ranknet", "listnet", "approx_ndcg", "lambdaloss"}
    for dtype in (np.float64, np.float32):
        inputs = mod._lists(40, 17, dtype)
        for name, loss in mod.LOSSES.items():
            mod._check(name, loss, inputs)  # raises on a disagreement
    real = mod._torch_values
    mod._torch_values = lambda name, st, rel, mask: 1.001 * real(name, st, rel, mask)  # a peer that disagrees
    with pytest.raises(AssertionError):
        mod._check("ranknet", mod.LOSSES["ranknet"], mod._lists(40, 17, np.float64))


def test_softmax_script_fits_both_libraries_to_the_same_coefficients(capsys, monkeypatch):
    """benchmarks/bench_softmax.py at a tiny size: both fits run and agree (the printed
    coefficient difference is small: the penalty mapping alpha = 1 / (C n) holds)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_softmax.py"
    spec = importlib.util.spec_from_file_location("bench_softmax", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(sys, "argv", ["bench_softmax.py", "--n", "400", "--p", "3", "--k", "3", "--repeat", "1"])
    mod.main()
    out = capsys.readouterr().out
    diff = float(re.search(r"max \|coef difference\| = (\S+)", out).group(1))
    assert diff < 1e-4, out
    assert "use_kernels=False" in out and "scikit-learn LogisticRegression" in out
