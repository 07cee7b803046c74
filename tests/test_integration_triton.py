"""lossgrad.integrations.triton: the fused Triton cross-entropy equals the reference.

Without a GPU the kernel runs in Triton's interpreter on CPU tensors (TRITON_INTERPRET=1,
set here before Triton is imported); on a CUDA machine the same tests run the compiled
kernel on the GPU.  Oracles: lossgrad's CrossEntropy (value and gradient, every option)
and PyTorch's F.cross_entropy (mapping: torch takes (input, target), lossgrad (y_true,
y_pred); weight, ignore_index, label_smoothing and the reductions mean the same).  A
second group compiles every variant of the kernel for an sm_90 GPU (Hopper) to PTX and
machine code, which the interpreter does not check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ON_GPU = torch.cuda.is_available()
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"  # before the kernel module decorates its kernel
triton = pytest.importorskip("triton")

import lossgrad
from lossgrad.integrations import _triton_ce as kernel
from lossgrad.integrations import torch as lgt
from lossgrad.integrations import triton as lgtr

DEVICE = "cuda" if ON_GPU else "cpu"
N, K, BLOCK = 9, 37, 16  # K not a multiple of BLOCK: three steps, the last one masked
RNG = np.random.default_rng(7)
CLASS_W = tuple(RNG.uniform(0.2, 2.0, K))

LABEL_OPTIONS = {
    "plain": {},
    "weight": {"weight": CLASS_W},
    "ignore": {"ignore_index": -100},
    "smooth": {"label_smoothing": 0.15},
    "zloss": {"z_loss": 0.02},
    "all": {"weight": CLASS_W, "ignore_index": 3, "label_smoothing": 0.1, "z_loss": 0.01},
}
PROB_OPTIONS = {
    "plain": {},
    "all": {"weight": CLASS_W, "label_smoothing": 0.1, "z_loss": 0.01},
}
TOL = {torch.float64: 1e-12, torch.float32: 2e-5}
# Launch configurations: the default (K = 37: rows resident in 64 columns, all N = 9 rows
# in one program), K in three steps of 16 columns (pass 2 backwards, or forwards),
# each row resident in one 64-column block, 4 rows a program (the last program has one
# row: its other three redo row N - 1 and store nothing), and three steps for programs
# of 4 rows.
LAUNCH = {
    "default": {},
    "steps": {"block": BLOCK},
    "steps-forward": {"block": BLOCK, "reverse": False},
    "steps-4-rows": {"block": BLOCK, "rows_per_program": 4},
    "resident": {"block": 64, "rows_per_program": 4},
}


@pytest.fixture(params=list(LAUNCH))
def launch(request, monkeypatch):
    """The launch keywords of one configuration (the direction of pass 2 set on the module)."""
    config = dict(LAUNCH[request.param])
    monkeypatch.setattr(kernel, "REVERSE_SECOND_PASS", config.pop("reverse", True))
    return config


def _logits(n=N, k=K, scale=3.0, dtype=torch.float64):
    f = RNG.normal(0.0, scale, (n, k)) + RNG.uniform(-4, 4, (n, 1))
    return torch.tensor(f, dtype=dtype, device=DEVICE)


def _labels(params, n=N, k=K):
    y = RNG.integers(0, k, n)
    if params.get("ignore_index") is not None:
        y[::3] = params["ignore_index"]
    return torch.tensor(y, device=DEVICE)


def _probs(n=N, k=K, dtype=torch.float64):
    return torch.tensor(RNG.dirichlet(np.full(k, 0.5), n), dtype=dtype, device=DEVICE)


def _reference(params, y, f, sample_weight=None):
    """lossgrad's per-row values and gradients (NumPy, float64), times the sample weights."""
    ce = lossgrad.CrossEntropy(**params)
    yn, fn = y.cpu().numpy(), f.detach().cpu().double().numpy()
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
    return ce, ce.value(yn, fn, sample_weight=sw), ce.grad(yn, fn, sample_weight=sw)


def _mean_denominator(ce, y, sw):
    yn = y.cpu().numpy()
    sw = np.ones(len(yn)) if sw is None else np.asarray(sw, dtype=float)
    if y.ndim == 2:
        return sw.sum()
    keep = np.ones(len(yn)) if ce.ignore_index is None else (yn != ce.ignore_index).astype(float)
    w = np.ones(len(yn)) if ce.weight is None else np.asarray(ce.weight)[np.clip(yn, 0, K - 1)]
    return (keep * w * sw).sum()


def _close(a, b, tol):
    a = np.asarray(a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else a)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(LABEL_OPTIONS))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_labels_value_and_grad_equal_the_reference(name, reduction, dtype, launch):
    params = LABEL_OPTIONS[name]
    f, y = _logits(dtype=dtype), _labels(params)
    sw = RNG.uniform(0.5, 2.0, N) if name in ("weight", "all") else None
    ce, v, g = _reference(params, y, f, sw)
    value, grad = lgtr.cross_entropy_value_grad(y, f, sample_weight=sw, reduction=reduction, **launch, **params)
    assert value.dtype == dtype and grad.dtype == dtype and grad.shape == f.shape
    if reduction == "none":
        _close(value, v, TOL[dtype])
        _close(grad, g, TOL[dtype])
    else:
        d = _mean_denominator(ce, y, sw) if reduction == "mean" else 1.0
        _close(value, v.sum() / d, TOL[dtype])
        _close(grad, g / d, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(PROB_OPTIONS))
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_probability_rows_equal_the_reference(name, reduction, dtype, launch):
    params = PROB_OPTIONS[name]
    f, q = _logits(dtype=dtype), _probs(dtype=dtype)
    sw = RNG.uniform(0.5, 2.0, N) if name == "all" else None
    ce, v, g = _reference(params, q, f, sw)
    value, grad = lgtr.cross_entropy_value_grad(q, f, sample_weight=sw, reduction=reduction, **launch, **params)
    d = _mean_denominator(ce, q, sw) if reduction == "mean" else None
    _close(value, v if d is None else v.sum() / d, TOL[dtype])
    _close(grad, g if d is None else g / d, TOL[dtype])


@pytest.mark.parametrize("block", [16, 64], ids=["three-steps", "one-step"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_autograd_matches_pytorch(block, reduction):
    """Mapping: F.cross_entropy(input=f, target=y, weight=w, ignore_index, label_smoothing)."""
    f = _logits().requires_grad_()
    y = _labels({"ignore_index": -100})
    w = torch.tensor(CLASS_W, dtype=torch.float64, device=DEVICE)
    ours = lgtr.cross_entropy(y, f, reduction=reduction, weight=CLASS_W, ignore_index=-100, label_smoothing=0.1,
                              block=block)
    theirs = F.cross_entropy(f, y, weight=w, ignore_index=-100, label_smoothing=0.1, reduction=reduction)
    upstream = torch.linspace(0.5, 2.0, N, dtype=f.dtype, device=DEVICE) if reduction == "none" else torch.tensor(
        1.7, dtype=f.dtype, device=DEVICE)
    (g_ours,) = torch.autograd.grad(ours, f, upstream)
    (g_theirs,) = torch.autograd.grad(theirs, f, upstream)
    _close(ours, theirs.detach().cpu().numpy(), 1e-12)
    _close(g_ours, g_theirs.cpu().numpy(), 1e-12)


def test_probability_targets_match_pytorch():
    f = _logits().requires_grad_()
    q = _probs()
    ours = lgtr.cross_entropy(q, f, label_smoothing=0.2, block=BLOCK)
    theirs = F.cross_entropy(f, q, label_smoothing=0.2)
    (g_ours,) = torch.autograd.grad(ours, f)
    (g_theirs,) = torch.autograd.grad(theirs, f)
    _close(ours, theirs.detach().cpu().numpy(), 1e-12)
    _close(g_ours, g_theirs.cpu().numpy(), 1e-12)


def test_unit_upstream_returns_the_kernels_gradient_itself():
    f = _logits().requires_grad_()
    y = _labels({})
    _, grad = lgtr.cross_entropy_value_grad(y, f, block=BLOCK)
    (g,) = torch.autograd.grad(lgtr.cross_entropy(y, f, block=BLOCK), f)
    assert torch.equal(g, grad)


@pytest.mark.parametrize("weighted", [True, False], ids=["sample-weights", "one-scale"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_double_backward_is_the_exact_hessian(weighted, reduction):
    """With sample weights the kernel's row scale is an (N,) vector; without, one number
    for every row (the mean's 1 / N, or 1): both reach the Hessian's chain rule."""
    params = {"weight": CLASS_W, "ignore_index": -100, "z_loss": 0.05}
    f = _logits().requires_grad_()
    y = _labels(params)
    v = torch.tensor(RNG.normal(size=(N, K)), device=DEVICE)
    sw = torch.tensor(RNG.uniform(0.5, 2.0, N), device=DEVICE) if weighted else None
    upstream = torch.linspace(0.5, 2.0, N, dtype=f.dtype, device=DEVICE) if reduction == "none" else None
    out = lgtr.cross_entropy(y, f, sw, reduction=reduction, block=BLOCK, **params)
    (g,) = torch.autograd.grad(out, f, upstream, create_graph=True)
    (hv,) = torch.autograd.grad((g * v).sum(), f)
    ce, yn, fn = lossgrad.CrossEntropy(**params), y.cpu().numpy(), f.detach().cpu().numpy()
    swn = None if sw is None else sw.cpu().numpy()
    if reduction == "mean":
        expected = ce.hvp(yn, fn, v.cpu().numpy(), sample_weight=swn) / _mean_denominator(ce, y, swn)
    else:
        rows = (upstream.cpu().numpy() if swn is None else upstream.cpu().numpy() * swn)[:, None]
        expected = rows * ce.hvp(yn, fn, v.cpu().numpy())
    _close(hv, expected, 1e-12)


def test_bfloat16_logits_give_bfloat16_results_close_to_float32():
    f32 = _logits(dtype=torch.float32)
    fb = f32.to(torch.bfloat16).requires_grad_()
    y = _labels({})
    out = lgtr.cross_entropy(y, fb, label_smoothing=0.1, block=BLOCK)
    out.backward()
    ref = F.cross_entropy(fb.detach().float().requires_grad_(), y, label_smoothing=0.1)
    assert out.dtype == torch.bfloat16 and fb.grad.dtype == torch.bfloat16
    assert abs(float(out.detach()) - float(ref.detach())) <= 1e-2 * abs(float(ref.detach()))
    g_ref = lossgrad.CrossEntropy(label_smoothing=0.1).grad(y.cpu().numpy(), fb.detach().double().cpu().numpy()) / N
    np.testing.assert_allclose(fb.grad.double().cpu().numpy(), g_ref, atol=2e-3 / N * 4, rtol=1e-2)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_extreme_logits_stay_finite_and_exact(dtype, launch):
    f = _logits(dtype=dtype) * 1e3  # entries up to ~1e4: exp overflows without the max shift
    y = _labels({})
    _, v, g = _reference({"label_smoothing": 0.1}, y, f)
    value, grad = lgtr.cross_entropy_value_grad(y, f, reduction="none", label_smoothing=0.1, **launch)
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    _close(value, v, TOL[dtype])
    _close(grad, g, TOL[dtype])


# ---------------------------------------------------------------- errors


def _message(fn):
    with pytest.raises(ValueError) as info:
        fn()
    return str(info.value)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the interpreter's NumPy on inf
@pytest.mark.parametrize(
    "case",
    ["nan-logit", "inf-logit", "posinf-logit", "label-too-large", "negative-label", "fractional-label",
     "prob-outside", "prob-row-sum"],
)
def test_bad_inputs_raise_the_references_error(case, launch):
    params = {"ignore_index": -100} if "label" in case else {}
    f, y = _logits(), _labels(params)
    if case == "nan-logit":
        f[4, 30] = float("nan")
    elif case == "inf-logit":
        f[8, 36] = -float("inf")  # in the masked last step
    elif case == "posinf-logit":
        f[2, 5] = float("inf")
    elif case == "label-too-large":
        y[2] = K
    elif case == "negative-label":
        y[5] = -1
    elif case == "fractional-label":
        y = y.double()
        y[1] = 2.5
    elif case.startswith("prob"):
        y = _probs()
        if case == "prob-outside":
            y[3, 0], y[3, 1] = 1.2, y[3, 1] - 0.2
        else:
            y[6, 10] += 0.01
    ce = lossgrad.CrossEntropy(**params)
    expected = _message(lambda: ce.value(y.cpu().numpy(), f.cpu().numpy()))
    assert _message(lambda: lgtr.cross_entropy(y, f, **launch, **params)) == expected


def test_zero_weight_mean_and_option_errors():
    f = _logits()
    y = torch.full((N,), -100, device=DEVICE)
    assert "weights sum to zero" in _message(lambda: lgtr.cross_entropy(y, f, ignore_index=-100, block=BLOCK))
    assert float(lgtr.cross_entropy(y, f, reduction="sum", ignore_index=-100, block=BLOCK)) == 0.0
    assert "ignore_index" in _message(lambda: lgtr.cross_entropy(_probs(), f, ignore_index=0))
    assert "weight" in _message(lambda: lgtr.cross_entropy(_labels({}), f, weight=(1.0, 2.0)))
    assert "power of two" in _message(lambda: lgtr.cross_entropy(_labels({}), f, block=24))
    assert "rows_per_program must be a power of two" in _message(
        lambda: lgtr.cross_entropy(_labels({}), f, rows_per_program=3))
    assert "from_logits" in _message(lambda: lgtr.cross_entropy(_labels({}), f, from_logits=False))
    sw = torch.ones(N, dtype=torch.float64, device=DEVICE, requires_grad=True)
    assert "sample_weight" in _message(lambda: lgtr.cross_entropy(_labels({}), f, sw))
    assert "sample_weight" in _message(lambda: lgtr.cross_entropy(_labels({}), f, -torch.ones(N, device=DEVICE)))


def test_class_weights_in_a_tensor_are_read_at_every_call():
    """A call's CrossEntropy is cached only for plain parameter values: class weights in a
    tensor that changes between calls take effect."""
    f, y = _logits(), _labels({})
    w = torch.tensor(CLASS_W, dtype=torch.float64, device=DEVICE)
    first = lgtr.cross_entropy(y, f, weight=w, block=BLOCK)
    w.mul_(torch.linspace(0.5, 2.0, K, dtype=torch.float64, device=DEVICE))
    second = lgtr.cross_entropy(y, f, weight=w, block=BLOCK)
    expected = F.cross_entropy(f, y, weight=w)
    _close(second, expected.cpu().numpy(), 1e-12)
    assert abs(float(second) - float(first)) > 1e-3
    cached = lgtr.cross_entropy(y, f, weight=tuple(w.tolist()), block=BLOCK)
    assert lgtr.cross_entropy(y, f, weight=tuple(w.tolist()), block=BLOCK) == cached  # the cached loss


def test_assume_valid_skips_the_checks():
    f, y = _logits(), _labels({})
    y[0] = K + 5
    with lossgrad.config_context(assume_valid=True):
        value, _ = lgtr.cross_entropy_value_grad(y, f, reduction="none", block=BLOCK)
    assert value.shape == (N,)


# ---------------------------------------------------------------- routing from the torch adapter


def test_torch_function_routes_cross_entropy_on_fused_devices(monkeypatch):
    calls = []
    launch = kernel.launch
    monkeypatch.setattr(kernel, "launch", lambda *a, **k: calls.append(1) or launch(*a, block=BLOCK, **{
        n: v for n, v in k.items() if n != "block"}))
    params = {"weight": CLASS_W, "ignore_index": -100, "label_smoothing": 0.1}
    f, y = _logits().requires_grad_(), _labels({"ignore_index": -100})
    generic = lgt.function("cross_entropy", **params)(y, f)
    (g_generic,) = torch.autograd.grad(generic, f)
    assert not calls or ON_GPU
    monkeypatch.setattr(lgt, "_FUSED_DEVICES", ("cuda", "cpu"))
    fused = lgt.function("cross_entropy", **params)(y, f)
    (g_fused,) = torch.autograd.grad(fused, f)
    assert calls
    _close(fused, generic.detach().cpu().numpy(), 1e-12)
    _close(g_fused, g_generic.cpu().numpy(), 1e-12)
    n_calls = len(calls)
    lgt.function("focal", gamma=2.0)(y.clamp(min=0), f)  # not a CrossEntropy: the generic path
    lgt.function("cross_entropy", from_logits=False)(y.clamp(min=0), torch.softmax(f, 1))
    assert len(calls) == n_calls


# ---------------------------------------------------------------- compiled for a GPU


_COMPILE_SCRIPT = """
import json, os, re, subprocess, sys, tempfile
import torch, triton
from lossgrad.integrations._triton_ce import compile_for, default_config
cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp64": torch.float64}
out = {}
for name, dtype in dtypes.items():
    for k in (10, 1000, 4096, 16384, 32768):
        for labels in (True, False):
            rows, block, warps = default_config(k, dtype, labels)
            c = compile_for(90, labels=labels, weighted=not labels, dtype=name, block=block, num_warps=warps,
                            resident=k <= block, rows=rows)
            with tempfile.NamedTemporaryFile(suffix=".cubin") as fh:
                fh.write(c.asm["cubin"])
                fh.flush()
                usage = subprocess.run([cuobjdump, "--dump-resource-usage", fh.name], capture_output=True, text=True,
                                       check=True).stdout
            regs, stack = (int(re.search(key + r":(\\d+)", usage).group(1)) for key in ("REG", "STACK"))
            out[f"{name}-{k}-{labels}"] = [c.asm["ptx"].count(".target sm_90"), c.asm["ptx"].count("ex2.approx"),
                                           len(c.asm["cubin"]), regs, stack]
json.dump(out, sys.stdout)
"""


def test_every_kernel_variant_compiles_for_hopper():
    """Triton's compiler, LLVM and the bundled ptxas for sm_90, in a child process (the
    interpreter this module runs under patches triton.language for the whole process):
    the default launch configuration of K = 10, 1000, 4096 (rows resident), 16384 and 32768
    (float32 labels' 16384 resident with 32 warps, else in steps), labels or probability
    rows, float32, bfloat16 and float64.  No register spills: cuobjdump's STACK (the
    spill stack; 8 bytes is the frame of a call) stays at most 16 bytes."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    done = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout)
    assert len(facts) == 30
    for name, (targets, ex2, cubin, registers, stack) in facts.items():
        assert targets == 1 and cubin > 1000, name
        assert (ex2 > 0) == (not name.startswith("fp64")), name  # 32-bit accumulation: the hardware exp2
        assert stack <= 16 and registers <= 255, (name, registers, stack)


def test_gpu_benchmark_script_runs_its_smoke_size():
    """benchmarks/bench_gpu_cross_entropy.py end to end on a 4 x 40 problem (no timing asserted)."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu_cross_entropy.py"
    done = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [ln for ln in done.stdout.splitlines() if ln.startswith(("| float32", "| bfloat16"))]
    assert len(rows) == 8  # lossgrad, lossgrad in place, lossgrad unchecked and eager; float32 and bfloat16
    for row in rows:
        diff = float(row.strip("|").split("|")[-1])
        assert diff < (1e-5 if "float32" in row else 2e-2), row


# ---------------------------------------------------------------- the gradient written over the logits


def _output_layer():
    h = torch.tensor(RNG.normal(size=(N, 6)), device=DEVICE, requires_grad=True)
    W = torch.tensor(RNG.normal(size=(6, K)), device=DEVICE, requires_grad=True)
    return h, W


def test_grad_into_logits_gives_the_same_gradients_and_overwrites_the_logits():
    h, W = _output_layer()
    y = _labels({"ignore_index": -100})
    params = {"weight": CLASS_W, "ignore_index": -100, "label_smoothing": 0.1}
    expected_loss = lgtr.cross_entropy(y, h @ W, block=BLOCK, **params)
    expected = torch.autograd.grad(expected_loss, (h, W))
    logits = h @ W
    (dlogits,) = torch.autograd.grad(lgtr.cross_entropy(y, logits, block=BLOCK, **params), logits, retain_graph=False)
    logits = h @ W
    loss = lgtr.cross_entropy(y, logits, grad_into_logits=True, block=BLOCK, **params)
    assert float(loss.detach()) == float(expected_loss.detach())
    assert torch.equal(logits, dlogits)  # the logits' memory holds the gradient now
    got = torch.autograd.grad(2.0 * loss, (h, W))
    for g, e in zip(got, expected):
        _close(g, 2.0 * e.cpu().numpy(), 1e-12)


def test_grad_into_logits_refuses_what_would_read_the_overwritten_logits():
    h, W = _output_layer()
    y = _labels({})
    logits = h @ W
    penalty = (logits**2).sum()  # pow saves the logits for its backward
    total = penalty + lgtr.cross_entropy(y, logits, grad_into_logits=True, block=BLOCK)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        total.backward()
    logits = h @ W
    loss = lgtr.cross_entropy(y, logits, grad_into_logits=True, block=BLOCK)
    with pytest.raises(RuntimeError, match="grad_into_logits"):
        torch.autograd.grad(loss, logits, create_graph=True)
    strided = torch.tensor(RNG.normal(size=(K, N)), device=DEVICE, requires_grad=True).T
    assert "unit stride" in _message(lambda: lgtr.cross_entropy(y, strided, grad_into_logits=True, block=BLOCK))


def test_without_triton_the_adapter_takes_the_generic_path(monkeypatch):
    calls = []
    monkeypatch.setattr(kernel, "launch", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(lgt, "_FUSED_DEVICES", ("cuda", "cpu"))
    real_find_spec = lgt.importlib.util.find_spec
    monkeypatch.setattr(lgt.importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real_find_spec(
        name, *a))
    f, y = _logits().requires_grad_(), _labels({})
    value = lgt.function("cross_entropy")(y, f)
    assert not calls
    _close(value, F.cross_entropy(f, y).detach().cpu().numpy(), 1e-12)


@pytest.mark.skipif(ON_GPU, reason="the message of a machine without a GPU")
def test_lossgrad_bench_gpu_explains_what_it_needs(monkeypatch):
    from typer.testing import CliRunner

    from lossgrad.cli import app

    res = CliRunner().invoke(app, ["bench", "--gpu"])
    assert res.exit_code == 1 and "needs a CUDA device" in res.output
    real_find_spec = lgt.importlib.util.find_spec
    monkeypatch.setattr(lgt.importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real_find_spec(
        name, *a))
    res = CliRunner().invoke(app, ["bench", "--gpu"])
    assert res.exit_code == 1 and "needs triton" in res.output


def test_the_benchmark_module_runs_in_process():
    from lossgrad.integrations import _triton_bench

    lines = _triton_bench.run(3, [20], ["fp32"], 1, smoke=True, log=lambda line: None,
                              configs=((16, 2, 1, True), (32, 2, 2, False)))
    rows = [ln for ln in lines if ln.startswith("| float32")]
    names = [r.split("|")[3].strip() for r in rows]
    assert names == ["lossgrad", "lossgrad in place", "lossgrad unchecked", "eager",
                     "lossgrad block=16 warps=2 rows=1 backwards", "lossgrad block=32 warps=2 rows=2"]
    assert kernel.REVERSE_SECOND_PASS  # the tuning switch is put back
    assert all(float(r.strip("|").split("|")[-1]) < 1e-5 for r in rows)  # each equals eager's gradient
