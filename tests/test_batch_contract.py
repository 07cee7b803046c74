"""Contract of every batch loss (embedding, ranking, segmentation families), over the registry.

Each registered batch loss and parameter variant (``lossgrad.catalog(shape="batch")``)
runs :func:`lossgrad.verification.batch.verify_batch`: closed-form gradients of
sum(w * value) against 4th-order central differences in float64, value_grad
consistency, reductions, finiteness (also at extreme inputs), float32 in -> float32 out,
no mutation, the Hessian-vector product (every registered batch loss has one) and the
per-item jvp against differences, convexity where declared.  The other tests here make
sure those checks can fail, and exercise the BatchLoss machinery (namespaces, Scaled,
input errors).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import lossgrad
from lossgrad._batch import BatchLoss
from lossgrad._core import NotDifferentiableError
from lossgrad.verification.batch import verify_batch


def _cases():
    out = []
    for entry in lossgrad.catalog(shape="batch"):
        for params in entry.variants:
            pid = ",".join(f"{k}={v}" for k, v in params.items()) or "default"
            out.append(pytest.param(entry, params, id=f"{entry.name}[{pid}]"))
    return out


CASES = _cases()


def test_registry_has_the_embedding_family():
    names = {e.name for e in lossgrad.catalog(family="embedding")}
    assert {"contrastive", "triplet", "info_nce", "multiple_negatives_ranking", "arcface", "cosface", "ge2e",
            "margin_ranking", "cosine_embedding"} <= names
    assert all(e.shape.value == "batch" for e in lossgrad.catalog(family="embedding"))


@pytest.mark.parametrize(("entry", "params"), CASES)
def test_verify_batch_passes(entry, params):
    loss = entry.make(**params)
    report = verify_batch(loss, n=10, seed=1, rtol=1e-6)
    assert report, str(report)
    names = {c.name for c in report.checks}
    assert {"grad", "grad_keys", "value_grad", "reduction", "finite", "dtype", "no_mutation", "hvp", "convex"} <= names


@pytest.mark.parametrize(("entry", "params"), CASES)
def test_torch_agrees_with_numpy(entry, params):
    """PyTorch inputs give the NumPy values and gradients, as torch tensors.

    (JAX is exercised per family in the family tests: its eager first calls compile
    every primitive, too slow to sweep the whole registry here.)
    """
    import torch

    loss = entry.make(**params)
    ins = loss._example_inputs(np.random.default_rng(3))
    v_np, g_np = loss.value_grad(**ins)
    conv = {k: torch.as_tensor(np.asarray(v)) for k, v in ins.items()}
    v, g = loss.value_grad(**conv)
    assert isinstance(v, torch.Tensor) and all(isinstance(a, torch.Tensor) for a in g.values())
    np.testing.assert_allclose(v.numpy(), v_np, rtol=1e-10, atol=1e-12)
    assert set(g) == set(g_np)
    for k in g_np:
        np.testing.assert_allclose(g[k].numpy(), np.asarray(g_np[k]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("entry", "params"), CASES)
def test_scaled_batch_loss(entry, params):
    loss = entry.make(**params)
    ins = loss._example_inputs(np.random.default_rng(4))
    scaled = 2.5 * loss
    g, gs = loss.grad(**ins), scaled.grad(**ins)
    for k in g:
        np.testing.assert_allclose(np.asarray(gs[k]), 2.5 * np.asarray(g[k]), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(scaled(**ins, reduction="sum"), 2.5 * loss(**ins, reduction="sum"), rtol=1e-13)


# ----------------------------------------------------------------- the checks can fail


@dataclasses.dataclass(frozen=True)
class _WrongGrad(BatchLoss):
    """sum((x - 1)^2) per row with a gradient that is off by ``factor`` (a planted bug)."""

    factor: float = 1.01
    convex_claim: bool = True
    sign: float = 1.0
    name = "wrong_grad"
    inputs = ("x",)
    differentiable = ("x",)

    @property
    def props(self):
        return lossgrad.Props(convex=self.convex_claim, has_hess=False)

    def _prepare(self, inputs, sample_weight):
        xp, a = self._coerce_inputs(inputs, {"x": 2})
        return xp, a, self._item_weight(xp, sample_weight, a["x"].shape[:1], a["x"])

    def _value(self, xp, d):
        return self.sign * xp.sum((d["x"] - 1.0) ** 2, axis=1)

    def _value_grad(self, xp, d, w):
        v = self._value(xp, d)
        ww = xp.ones_like(v) if w is None else w
        return (v if w is None else v * w), {"x": self.factor * self.sign * 2.0 * (d["x"] - 1.0) * ww[:, None]}

    def _example_inputs(self, rng):
        return {"x": rng.normal(size=(5, 3))}


def test_verify_batch_detects_a_wrong_gradient():
    assert verify_batch(_WrongGrad(factor=1.0), n=8)
    report = verify_batch(_WrongGrad(factor=1.0 + 1e-4), n=8)
    assert not report.check("grad").passed
    assert report.check("grad").error > 1e-5


def test_verify_batch_detects_a_false_convexity_claim():
    assert verify_batch(_WrongGrad(factor=1.0), n=8).check("convex").passed
    report = verify_batch(_WrongGrad(factor=1.0, sign=-1.0), n=8)  # concave, declared convex
    assert not report.check("convex").passed
    assert report.check("grad").passed


def test_lossgrad_verify_dispatches_batch_losses():
    report = lossgrad.verify(lossgrad.get("triplet"), n=8)
    assert report and report.check("grad").passed


# ----------------------------------------------------------------- BatchLoss machinery


def test_every_catalog_batch_loss_has_an_hvp_and_one_without_raises():
    assert all(e.cls.has_hvp for e in lossgrad.catalog(shape="batch"))
    loss = _WrongGrad(factor=1.0)  # a user's batch loss declaring no Hessian
    ins = loss._example_inputs(np.random.default_rng(0))
    with pytest.raises(NotDifferentiableError, match="Hessian-vector product"):
        loss.hvp({"x": np.zeros_like(ins["x"])}, **ins)
    assert verify_batch(loss, n=8).check("hvp").passed  # declared absent, and it is


@dataclasses.dataclass(frozen=True)
class _WithHvp(_WrongGrad):
    """_WrongGrad's loss with a Hessian-vector product (2 v w) and item jvp, each with a planted factor."""

    hvp_factor: float = 1.0
    jvp_factor: float = 1.0
    has_hvp = True

    def _hvp(self, xp, d, w, v):
        ww = xp.ones(d["x"].shape[:1], dtype=d["x"].dtype) if w is None else w
        return {"x": self.hvp_factor * 2.0 * self._direction(xp, v, "x", d["x"]) * ww[:, None]}

    def _item_jvp(self, xp, d, v):
        return self.jvp_factor * xp.sum(2.0 * (d["x"] - 1.0) * self._direction(xp, v, "x", d["x"]), axis=1)


def test_verify_batch_checks_the_hvp_and_the_item_jvp():
    assert verify_batch(_WithHvp(factor=1.0), n=8).check("hvp").passed
    assert not verify_batch(_WithHvp(factor=1.0, hvp_factor=1.001), n=8).check("hvp").passed
    assert not verify_batch(_WithHvp(factor=1.0, jvp_factor=1.001), n=8).check("hvp").passed


def test_input_errors_name_the_argument():
    import torch

    loss = lossgrad.get("cosine_embedding")
    x = np.random.default_rng(0).normal(size=(4, 3))
    t = np.ones(4)
    with pytest.raises(TypeError, match="missing input"):
        loss.value(x1=x, target=t)
    with pytest.raises(TypeError, match="unexpected input"):
        loss.value(x1=x, x2=x, target=t, x3=x)
    with pytest.raises(TypeError, match="x2 .* one array library"):
        loss.value(x1=x, x2=torch.as_tensor(x), target=t)
    with pytest.raises(TypeError, match="x1 must have a real floating-point dtype"):
        loss.value(x1=x.astype(int), x2=x, target=t)
    bad = x.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="x2 contains 1 NaN"):
        loss.value(x1=x, x2=bad, target=t)
    with pytest.raises(ValueError, match="x1 is empty"):
        loss.value(x1=x[:0], x2=x[:0], target=t[:0])
    with pytest.raises(ValueError, match="sample_weight"):
        loss.value(x1=x, x2=x, target=t, sample_weight=-np.ones(4))
    with pytest.raises(ValueError, match="reduction"):
        loss(x1=x, x2=x, target=t, reduction="avg")


def test_lists_and_float32_follow_the_arrays():
    loss = lossgrad.get("margin_ranking")
    x1 = np.array([0.5, -1.0], dtype=np.float32)
    v, g = loss.value_grad(x1=x1, x2=[0.0, 0.0], target=[1, -1])
    assert v.dtype == np.float32 and g["x1"].dtype == np.float32 and g["x2"].dtype == np.float32
    np.testing.assert_allclose(v, [0.0, 0.0])
    np.testing.assert_allclose(loss.value(x1=[0.5, -1.0], x2=[1.0, 0.0], target=[1, 1]), [0.5, 1.0])
