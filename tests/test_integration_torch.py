"""lossgrad.integrations.torch: exact backward and double backward for every catalog loss.

Oracles: torch.autograd.gradcheck / gradgradcheck (finite differences of our autograd
Functions), lossgrad's own value/grad/hess (the closed forms), and PyTorch's built-in
losses (mapping: torch takes (input, target), lossgrad (y_true, y_pred); torch's
huber_loss(delta) = lossgrad huber(delta); F.cross_entropy = cross_entropy).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lossgrad
from lossgrad.integrations import torch as lgt
from lossgrad.integrations.torch import LossModule, function

torch.set_num_threads(1)


def _cases(shapes):
    out = []
    for e in lossgrad.catalog():
        if e.shape.value not in shapes:
            continue
        for i, params in enumerate(e.variants):
            out.append(pytest.param(e.make(**params), id=f"{e.name}[{i}]"))
    # Scaled wrappers (k * loss) go through the same code paths
    if "pointwise" in shapes:
        out.append(pytest.param(2.5 * lossgrad.get("huber", delta=0.5), id="2.5*huber"))
    if "row" in shapes:
        out.append(pytest.param(0.5 * lossgrad.get("cross_entropy", weight=(0.5, 2.0, 1.0, 3.0), ignore_index=1),
                                id="0.5*cross_entropy[ignore_index]"))
    return out


def _probabilities_in(loss) -> bool:
    return getattr(loss, "from_logits", True) is False


@pytest.mark.parametrize("loss", _cases(("pointwise", "row")))
def test_gradcheck_and_gradgradcheck(loss):
    if not loss.props.has_grad:  # zero_one: refused with a clear error instead
        with pytest.raises(ValueError, match="no gradient"):
            function(loss)
        return
    y, f = loss._example_inputs(np.random.default_rng(0), 5)
    fn = function(loss)
    yt = torch.tensor(y)
    row, probs = loss.shape.value == "row", _probabilities_in(loss)
    x0 = (np.log(f) if row else np.log(f) - np.log1p(-f)) if probs else f
    x = torch.tensor(x0, requires_grad=True)

    def per_sample(x):
        # probability inputs stay in their domain: softmax(log p) = p, sigmoid(logit p) = p
        pred = (torch.softmax(x, dim=-1) if row else torch.sigmoid(x)) if probs else x
        return fn(yt, pred, reduction="none")

    # the closed forms are what autograd returns
    out = per_sample(x)
    np.testing.assert_allclose(out.detach().numpy(), loss.value(y, f), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(per_sample, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)
    assert torch.autograd.gradgradcheck(per_sample, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_exact_derivatives_through_autograd_pointwise():
    loss = lossgrad.get("pseudo_huber", delta=0.7)
    rng = np.random.default_rng(1)
    y, f = loss._example_inputs(rng, 6)
    fn = function(loss)
    x = torch.tensor(f, requires_grad=True)
    (g,) = torch.autograd.grad(fn(torch.tensor(y), x, reduction="sum"), x, create_graph=True)
    np.testing.assert_array_equal(g.detach().numpy(), loss.grad(y, f))
    (h,) = torch.autograd.grad(g.sum(), x)
    np.testing.assert_array_equal(h.numpy(), loss.hess(y, f))


def test_exact_hessian_row_loss_and_third_order_refused():
    loss = lossgrad.get("cross_entropy", label_smoothing=0.1)
    y, f = loss._example_inputs(np.random.default_rng(2), 4)
    fn = function(loss)
    H = torch.autograd.functional.hessian(lambda x: fn(torch.tensor(y), x, reduction="sum"), torch.tensor(f))
    blocks = np.stack([H[i, :, i, :].numpy() for i in range(4)])
    np.testing.assert_allclose(blocks, loss.hess(y, f), rtol=1e-13, atol=1e-15)
    off = H.numpy().copy()
    for i in range(4):
        off[i, :, i, :] = 0.0
    assert np.all(off == 0.0)  # rows do not interact
    x = torch.tensor(f, requires_grad=True)
    (g,) = torch.autograd.grad(fn(torch.tensor(y), x, reduction="sum"), x, create_graph=True)
    (hv,) = torch.autograd.grad((g * g).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(hv.sum(), x)  # lossgrad stops at order 2


@pytest.mark.parametrize("name", ["huber", "cross_entropy", "poisson"])
def test_reductions_and_weights_match_lossgrad(name):
    loss = lossgrad.get(name) if name != "cross_entropy" else lossgrad.get("cross_entropy", weight=(0.5, 2.0, 1.0, 3.0))
    rng = np.random.default_rng(3)
    y, f = loss._example_inputs(rng, 7)
    w = rng.uniform(0.1, 2.0, 7)
    fn = function(loss)
    for red in ("mean", "sum", "none"):
        for sw in (None, w):
            got = fn(torch.tensor(y), torch.tensor(f), sample_weight=None if sw is None else torch.tensor(sw), reduction=red)
            np.testing.assert_allclose(got.numpy(), loss(y, f, sample_weight=sw, reduction=red), rtol=1e-13)


def test_float32_stays_float32_and_inputs_not_mutated():
    loss = lossgrad.get("logistic")
    y = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float32)
    f = torch.tensor([0.3, 2.0, -1.0], dtype=torch.float32, requires_grad=True)
    before = f.detach().clone()
    out = function(loss)(y, f)
    assert out.dtype == torch.float32
    (g,) = torch.autograd.grad(out, f)
    assert g.dtype == torch.float32
    assert torch.equal(f.detach(), before)
    np.testing.assert_allclose(g.numpy(), loss.grad(y.numpy(), before.numpy()) / 3, rtol=1e-6)


def test_cpu_tensors_reach_numpy_without_copy():
    t = torch.randn(4, 3, dtype=torch.float64)
    view = lgt._host(t, t)
    assert isinstance(view, np.ndarray) and np.shares_memory(view, t.numpy())
    half = torch.randn(5, dtype=torch.float16)  # not a NumPy fast-path dtype: array-API reference on tensors
    assert isinstance(lgt._host(half, half), torch.Tensor)
    out = function("squared_error")(torch.zeros(5, dtype=torch.float16), half, reduction="none")
    assert out.dtype == torch.float16


def test_peer_oracles_torch_builtins():
    rng = np.random.default_rng(4)
    f = torch.tensor(rng.normal(0, 2, (6, 4)), requires_grad=True)
    y = torch.tensor(rng.integers(0, 4, 6))
    ours = function("cross_entropy")(y, f)
    theirs = torch.nn.functional.cross_entropy(f, y)  # torch order: (input, target)
    assert abs(ours.item() - theirs.item()) < 1e-13
    g1 = torch.autograd.grad(ours, f, create_graph=True)[0]
    g2 = torch.autograd.grad(theirs, f, create_graph=True)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-14)
    v = torch.tensor(rng.normal(size=(6, 4)))
    hv1 = torch.autograd.grad((g1 * v).sum(), f)[0]
    hv2 = torch.autograd.grad((g2 * v).sum(), f)[0]
    torch.testing.assert_close(hv1, hv2, rtol=1e-10, atol=1e-13)
    r = torch.tensor(rng.normal(0, 3, 8), requires_grad=True)
    yt = torch.zeros(8, dtype=torch.float64)
    ours = function("huber", delta=1.5)(yt, r)
    theirs = torch.nn.functional.huber_loss(r, yt, delta=1.5)
    assert abs(ours.item() - theirs.item()) < 1e-13


def test_module():
    m = LossModule("huber", reduction="sum", delta=2.0)
    assert isinstance(m, torch.nn.Module) and "reduction='sum'" in repr(m)
    f = torch.tensor([0.0, 5.0], dtype=torch.float64)
    assert m(torch.zeros(2, dtype=torch.float64), f).item() == pytest.approx(2.0 * 5.0 - 2.0)
    with pytest.raises(TypeError, match="y_true, y_pred"):
        m(f)


@pytest.mark.parametrize("loss", _cases(("batch",)))
def test_batch_losses_gradcheck(loss):
    inputs = loss._example_inputs(np.random.default_rng(0))
    names = [n for n in loss.differentiable if n in inputs]
    static = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items() if k not in names}
    args = tuple(torch.tensor(np.asarray(inputs[n], dtype=float), requires_grad=True) for n in names)
    fn = function(loss)

    def per_item(*a):
        return fn(reduction="none", **static, **dict(zip(names, a)))

    np.testing.assert_allclose(per_item(*args).detach().numpy(), loss.value(**inputs), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(per_item, args, eps=1e-6, atol=1e-5, rtol=1e-4)
    total = fn(**static, **dict(zip(names, args)))
    (g,) = torch.autograd.grad(total, args[0], create_graph=True)
    if loss.has_hvp:  # the ranking family: exact double backward through hvp
        assert torch.autograd.gradgradcheck(per_item, args, eps=1e-6, atol=1e-5, rtol=1e-4)
    else:
        with pytest.raises(RuntimeError):  # no Hessian declared: double backward refused
            torch.autograd.grad(g.sum(), args[0])


def test_bad_input_clear_errors():
    ce = function("cross_entropy")
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        ce(torch.tensor([0, 1]), torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="y_true"):
        ce(torch.tensor([0, 5]), torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="y_true"):
        function("poisson")(torch.tensor([-1.0, 2.0], dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="sample_weight"):
        function("huber")(torch.zeros(2), torch.zeros(2), sample_weight=torch.tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="y_pred"):
        function("huber")(torch.zeros(2), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="unknown loss name"):
        function("hubber")
