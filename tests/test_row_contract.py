"""Contract tests over every registered row loss and its parameter variants.

``lossgrad.verify`` holds grad and hess against finite differences, hvp against hess @ v,
hess_diag against diag(hess), the joint methods against the separate ones, and measures
every declared property (convexity: eigenvalues and chords; Lipschitz and smoothness:
sup of the l2 / spectral norms); here every check of every variant must pass, and the
rest of the contract (shapes, reductions, sample weights, extreme logits, pickling,
Scaled wrappers) is asserted directly.
"""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

import lossgrad
from lossgrad import _xp
from lossgrad.verification.row import verify_row


def _cases():
    out = []
    for entry in lossgrad.catalog(shape="row"):
        for params in entry.variants:
            pid = ",".join(f"{k}={v}" for k, v in params.items()) or "default"
            out.append(pytest.param(entry.make(**params), id=f"{entry.name}[{pid}]"))
    return out


CASES = _cases()


def test_catalog_has_every_row_loss():
    names = {e.name for e in lossgrad.catalog(shape="row")}
    assert {"cross_entropy", "focal", "poly1", "kl_divergence", "multiclass_hinge", "categorical_hinge",
            "sparsemax_loss", "multilabel"} <= names
    assert {e.family for e in lossgrad.catalog(shape="row") if e.name == "multilabel"} == {"multilabel"}


@pytest.mark.parametrize("loss", CASES)
def test_verify_passes(loss):
    report = lossgrad.verify(loss, n=48)
    assert report, str(report)
    assert {"grad", "hess", "hvp", "hess_diag", "convex", "lipschitz", "smoothness", "finite", "dtype"} <= {
        c.name for c in report.checks}


def _inputs(loss, n=6, seed=1):
    y, f = loss._example_inputs(np.random.default_rng(seed), n)
    return y, f


@pytest.mark.parametrize("loss", CASES)
def test_shapes_weights_and_reductions(loss):
    y, f = _inputs(loss)
    n, k = f.shape
    v, g, H, hd = loss.value(y, f), loss.grad(y, f), loss.hess(y, f), loss.hess_diag(y, f)
    assert v.shape == (n,) and g.shape == (n, k) and H.shape == (n, k, k) and hd.shape == (n, k)
    w = np.linspace(0.0, 2.0, n)
    np.testing.assert_allclose(loss.value(y, f, sample_weight=w), w * v, rtol=1e-14)
    np.testing.assert_allclose(loss.grad(y, f, sample_weight=w), w[:, None] * g, rtol=1e-14)
    np.testing.assert_allclose(loss.hess(y, f, sample_weight=w), w[:, None, None] * H, rtol=1e-14)
    assert np.isclose(loss(y, f, reduction="sum"), v.sum())
    np.testing.assert_allclose(loss(y, f, reduction="none"), v)
    rw = loss._row_weight(_xp.namespace(f), loss._prepare(y, f, None)[1], f)
    denom = n if rw is None else rw.sum()
    assert np.isclose(loss(y, f), v.sum() / denom)


@pytest.mark.parametrize("loss", CASES)
def test_pickle_replace_and_scaled(loss):
    y, f = _inputs(loss)
    clone = pickle.loads(pickle.dumps(loss))
    assert clone == loss
    np.testing.assert_array_equal(clone.grad(y, f), loss.grad(y, f))
    if dataclasses.fields(loss):
        assert dataclasses.replace(loss) == loss
    scaled = 2.5 * loss
    np.testing.assert_allclose(scaled.hess(y, f), 2.5 * loss.hess(y, f), rtol=1e-15)
    assert lossgrad.verify(scaled, n=24).check("hvp").passed


@pytest.mark.parametrize("loss", CASES)
def test_records_for_the_cli(loss):
    fm = loss.formula
    assert fm.value and fm.grad and fm.hess
    assert isinstance(loss.props, lossgrad.Props)
    assert all(isinstance(k, lossgrad.Kink) for k in loss.kinks)
    assert (loss.props.differentiability == 0) == any(k.order == 1 for k in loss.kinks)


@pytest.mark.parametrize("name", ["cross_entropy", "focal", "poly1", "kl_divergence", "sparsemax_loss"])
@pytest.mark.parametrize("dtype,scale", [(np.float64, 1e4), (np.float32, 1e3)])
def test_extreme_logits_finite_and_accurate(name, dtype, scale):
    loss = lossgrad.get(name)
    f = np.array([[scale, -scale, 0.0], [-scale, -scale, scale], [scale, scale, -scale]], dtype=dtype)
    y = np.array([1, 2, 0]) if loss.accepts_labels else np.eye(3)[[1, 2, 0]]
    out = [loss.value(y, f), loss.grad(y, f), loss.hess(y, f), loss.hess_diag(y, f)]
    assert all(np.all(np.isfinite(o)) and o.dtype == dtype for o in out)
    if name == "cross_entropy":  # -log softmax: exactly the margin, gradient exactly e_argmax - e_y
        np.testing.assert_allclose(out[0], [2 * scale, 0.0, np.log(2) + 0.0 * scale], rtol=1e-6)
        np.testing.assert_allclose(out[1][0], [1.0, -1.0, 0.0])


@pytest.mark.parametrize("gamma", [0.0, 0.2, 0.5, 1.0, 2.0])
def test_focal_finite_at_saturation_for_every_gamma(gamma):
    loss = lossgrad.Focal(gamma=gamma)
    f = np.array([[1e4, 0.0, -1e4], [40.0, 0.0, 0.0]])
    y = np.array([0, 0])
    for m in ("value", "grad", "hess", "hess_diag"):
        assert np.all(np.isfinite(getattr(loss, m)(y, f)))
    assert np.all(np.isfinite(loss.hvp(y, f, np.ones_like(f))))


def test_cross_entropy_convexity_and_its_absence_are_measured():
    ce = verify_row(lossgrad.CrossEntropy(), n=32, seed=3, rtol=1e-6)
    fl = verify_row(lossgrad.Focal(gamma=2.0), n=32, seed=3, rtol=1e-6)
    assert ce.check("convex").measured is True and ce.check("strictly_convex").measured is False
    assert fl.check("convex").measured is False  # focal with gamma > 0: a violation is found


class _WrongHess(lossgrad.CrossEntropy):
    def _evaluate_v(self, xp, t, f, ops, v):
        out = super()._evaluate_v(xp, t, f, ops, v)
        return tuple(o * 1.001 if op in ("hess", "hess_diag", "hvp") else o for o, op in zip(out, ops))


class _WrongGrad(lossgrad.CrossEntropy):
    def _evaluate_v(self, xp, t, f, ops, v):
        out = super()._evaluate_v(xp, t, f, ops, v)
        return tuple(o + 1e-4 if op == "grad" else o for o, op in zip(out, ops))


class _ClaimsConvex(lossgrad.Focal):
    @property
    def props(self):
        return dataclasses.replace(super().props, convex=True)


class _WrongLipschitz(lossgrad.KLDivergence):
    @property
    def props(self):
        return dataclasses.replace(super().props, lipschitz=2.0)


@pytest.mark.parametrize("bad,check", [(_WrongHess(), "hess"), (_WrongGrad(), "grad"),
                                       (_ClaimsConvex(), "convex"), (_WrongLipschitz(), "lipschitz")])
def test_verify_catches_wrong_claims(bad, check):
    report = verify_row(bad, n=24, seed=0, rtol=1e-6)
    assert not report.check(check).passed


@pytest.mark.parametrize("loss", CASES)
def test_torch_namespace_equals_numpy(loss):
    import torch

    y, f = _inputs(loss)
    v = np.random.default_rng(2).normal(size=f.shape)
    for m in ("value", "grad", "hess", "hess_diag"):
        out = getattr(loss, m)(torch.tensor(y), torch.tensor(f))
        assert isinstance(out, torch.Tensor)
        np.testing.assert_allclose(out.numpy(), getattr(loss, m)(y, f), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(loss.hvp(torch.tensor(y), torch.tensor(f), torch.tensor(v)).numpy(),
                               loss.hvp(y, f, v), rtol=1e-12, atol=1e-14)
