"""Softmax-over-similarity embedding losses, second order: InfoNCE / NT-Xent, multiple negatives
ranking, ArcFace, CosFace.

Oracles: PyTorch autograd (``torch.autograd.functional.hvp`` and ``jvp``) of independent
transcriptions of each value (F.normalize, F.cross_entropy; ArcFace / CosFace from
test_embedding_oracles' insightface-style forward), never built from lossgrad; central
differences of ``grad`` along v and of the values; the symmetry <v1, H v2> = <v2, H v1>;
the 1 / k^2 scaling of the Hessian of a scale-invariant (cosine) loss; the PyTorch
adapter's double backward; array libraries and dtypes; bad directions.
"""

from __future__ import annotations

import math

import array_api_compat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_embedding_oracles import _margin_torch, info_nce_torch

import lossgrad
from lossgrad._registry import catalog
from lossgrad.losses.embedding_margin import ArcFace, CosFace
from lossgrad.losses.embedding_nce import InfoNCE, MultipleNegativesRanking

OURS = (InfoNCE, MultipleNegativesRanking, ArcFace, CosFace)
INSTANCES = [loss for e in catalog(family="embedding") for loss in e.instances() if isinstance(loss, OURS)]
IDS = [repr(loss) for loss in INSTANCES]
RTOL = 1e-10


# ---------------------------------------------------------------- inputs and transcriptions


def _inputs(loss, seed=0, negatives=True):
    """Float64 inputs away from kinks; ArcFace gets rows on both sides of its branch switch."""
    rng = np.random.default_rng(seed)
    if isinstance(loss, InfoNCE):
        a = rng.normal(size=(6, 5))
        return {"anchors": a, "positives": a + rng.normal(scale=0.8, size=(6, 5))}
    if isinstance(loss, MultipleNegativesRanking):
        a = rng.normal(size=(5, 4))
        ins = {"anchors": a, "positives": a + rng.normal(scale=0.7, size=(5, 4))}
        if negatives:
            ins["negatives"] = rng.normal(size=(3, 4))
        return ins
    n, k, d = 10, 4, 3
    W = rng.normal(size=(k, d))
    labels = np.arange(n) % k
    x = W[labels] + rng.normal(scale=1.5, size=(n, d))  # a spread of angles, some obtuse
    x[:2] = -W[labels[:2]] + 0.05 * rng.normal(size=(2, d))  # theta + m > pi: the fallback branch
    return {"embeddings": x, "labels": labels, "weight": W}


def _diff(loss, ins):
    return [k for k in loss.differentiable if k in ins]


def _torch_value(loss):
    """The per-item values of an independent PyTorch transcription of ``loss``."""
    if isinstance(loss, InfoNCE):
        return info_nce_torch(loss.temperature, loss.symmetric)
    if isinstance(loss, MultipleNegativesRanking):

        def mnr(anchors, positives, negatives=None):
            cand = positives if negatives is None else torch.cat([positives, negatives])
            if loss.similarity == "cosine":
                S = F.normalize(anchors, dim=1) @ F.normalize(cand, dim=1).T
            else:
                S = anchors @ cand.T
            return F.cross_entropy(S * loss.scale, torch.arange(anchors.shape[0]), reduction="none")

        return mnr
    kind = "arcface" if isinstance(loss, ArcFace) else "cosface"
    return _margin_torch(kind, loss.scale, loss.margin, getattr(loss, "easy_margin", False))


def _torch_functions(loss, ins):
    """(names, per-item value of the differentiable tensors, their float64 tensors)."""
    names = _diff(loss, ins)
    fn = _torch_value(loss)
    static = {k: torch.as_tensor(np.asarray(v)) for k, v in ins.items() if k not in names}

    def per_item(*tensors):
        return fn(**static, **dict(zip(names, tensors)))

    return names, per_item, tuple(torch.tensor(np.asarray(ins[k], dtype=float)) for k in names)


def _directions(ins, names, seed):
    rng = np.random.default_rng(1000 + seed)  # not an input's stream: a radial direction has a null Hessian part
    return {k: rng.normal(size=np.shape(ins[k])) for k in names}


def _rel(ours, theirs, scale=None):
    """max |ours - theirs| / max |theirs| (or / scale: the whole product's size, for a block near 0)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)) if scale is None else scale, 1e-300))


def _cases():
    out = [pytest.param(loss, True, id=repr(loss)) for loss in INSTANCES]
    out += [pytest.param(loss, False, id=repr(loss) + "-no-negatives")
            for loss in INSTANCES if isinstance(loss, MultipleNegativesRanking)]
    return out


def test_every_registered_variant_declares_the_hvp():
    assert len(INSTANCES) == 12 and {type(loss) for loss in INSTANCES} == set(OURS)
    for loss in INSTANCES:
        assert loss.has_hvp and loss.props.has_hess
        assert "not provided" not in loss.formula.hess


def test_arcface_inputs_cover_both_branches():
    for loss in INSTANCES:
        if isinstance(loss, ArcFace):
            ins = _inputs(loss)
            u = ins["embeddings"] / np.linalg.norm(ins["embeddings"], axis=1, keepdims=True)
            v = ins["weight"] / np.linalg.norm(ins["weight"], axis=1, keepdims=True)
            c = np.sum(u * v[ins["labels"]], axis=1)
            switch = 0.0 if loss.easy_margin else math.cos(math.pi - loss.margin)
            assert np.any(c < switch - 1e-3) and np.any(c > switch + 1e-3)


# ---------------------------------------------------------------- against PyTorch autograd


@pytest.mark.parametrize(("loss", "negatives"), _cases())
def test_hvp_matches_pytorch_autograd_hvp(loss, negatives):
    ins = _inputs(loss, 1, negatives)
    names, per_item, tensors = _torch_functions(loss, ins)
    w = np.random.default_rng(2).uniform(0.5, 1.5, np.shape(loss.value(**ins)))
    wt = torch.tensor(w)
    for seed, keys in enumerate([names] + [[k] for k in names]):  # every block, then each column
        v = {k: d for k, d in _directions(ins, names, seed).items() if k in keys}
        ours = loss.hvp(v, sample_weight=w, **ins)
        assert set(ours) == set(names)
        vt = tuple(torch.tensor(v[k]) if k in v else torch.zeros_like(t) for k, t in zip(names, tensors))
        _, theirs = torch.autograd.functional.hvp(lambda *a: (per_item(*a) * wt).sum(), tensors, vt)
        size = max(float(h.abs().max()) for h in theirs)
        for k, h in zip(names, theirs):
            assert np.shape(ours[k]) == np.shape(ins[k]) and ours[k].dtype == np.float64
            assert _rel(ours[k], h.numpy(), size) <= RTOL, (k, keys, _rel(ours[k], h.numpy(), size))


@pytest.mark.parametrize(("loss", "negatives"), _cases())
def test_item_jvp_matches_pytorch_forward_mode(loss, negatives):
    ins = _inputs(loss, 3, negatives)
    names, per_item, tensors = _torch_functions(loss, ins)
    v = _directions(ins, names, 4)
    _, theirs = torch.autograd.functional.jvp(per_item, tensors, tuple(torch.tensor(v[k]) for k in names))
    xp, data, _ = loss._prepare_batch(ins, None)
    ours = np.asarray(loss._item_jvp(xp, data, v))
    assert ours.shape == np.shape(loss.value(**ins))
    assert _rel(ours, theirs.numpy()) <= RTOL


# ---------------------------------------------------------------- finite differences, structure


@pytest.mark.parametrize(("loss", "negatives"), _cases())
def test_hvp_matches_central_differences_of_the_gradient(loss, negatives):
    ins = _inputs(loss, 5, negatives)
    names = _diff(loss, ins)
    w = np.linspace(0.5, 2.0, np.shape(loss.value(**ins))[0])
    v = _directions(ins, names, 6)
    h = 1e-6
    plus = loss.grad(sample_weight=w, **{**ins, **{k: ins[k] + h * v[k] for k in names}})
    minus = loss.grad(sample_weight=w, **{**ins, **{k: ins[k] - h * v[k] for k in names}})
    hv = loss.hvp(v, sample_weight=w, **ins)
    for k in names:
        fd = (plus[k] - minus[k]) / (2 * h)
        np.testing.assert_allclose(hv[k], fd, rtol=1e-6, atol=1e-7 * np.abs(fd).max(), err_msg=k)


@pytest.mark.parametrize(("loss", "negatives"), _cases())
def test_item_jvp_matches_central_differences_of_the_values(loss, negatives):
    ins = _inputs(loss, 7, negatives)
    names = _diff(loss, ins)
    v = _directions(ins, names, 8)
    h = 1e-6
    plus = loss.value(**{**ins, **{k: ins[k] + h * v[k] for k in names}})
    minus = loss.value(**{**ins, **{k: ins[k] - h * v[k] for k in names}})
    xp, data, _ = loss._prepare_batch(ins, None)
    fd = (plus - minus) / (2 * h)
    np.testing.assert_allclose(loss._item_jvp(xp, data, v), fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())


@pytest.mark.parametrize("loss", [i for i in INSTANCES if isinstance(i, (InfoNCE, MultipleNegativesRanking))], ids=repr)
def test_item_jvp_of_in_batch_losses_sees_the_other_items_rows(loss):
    """Moving only positives[0] moves every anchor's value (it is a negative of all of them):
    the per-item derivative is a forward-mode one, not a slice of the item's own gradient."""
    ins = _inputs(loss, 20)
    v = {"positives": np.zeros_like(ins["positives"])}
    v["positives"][0] = _directions(ins, ["positives"], 21)["positives"][0]
    xp, data, _ = loss._prepare_batch(ins, None)
    jvp = np.asarray(loss._item_jvp(xp, data, v))
    h = 1e-6
    fd = (loss.value(**{**ins, "positives": ins["positives"] + h * v["positives"]})
          - loss.value(**{**ins, "positives": ins["positives"] - h * v["positives"]})) / (2 * h)
    np.testing.assert_allclose(jvp, fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())
    assert np.all(jvp != 0.0)


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_hessian_is_symmetric_and_linear_in_v(loss):
    ins = _inputs(loss, 9)
    names = _diff(loss, ins)
    w = np.random.default_rng(10).uniform(0.2, 2.0, np.shape(loss.value(**ins)))
    v1, v2 = _directions(ins, names, 11), _directions(ins, names, 12)
    h1, h2 = loss.hvp(v1, sample_weight=w, **ins), loss.hvp(v2, sample_weight=w, **ins)
    a = sum(float(np.sum(v2[k] * h1[k])) for k in names)
    b = sum(float(np.sum(v1[k] * h2[k])) for k in names)
    assert abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    h12 = loss.hvp({k: 2.0 * v1[k] - v2[k] for k in names}, sample_weight=w, **ins)
    for k in names:
        np.testing.assert_allclose(h12[k], 2.0 * h1[k] - h2[k], rtol=1e-12, atol=1e-13 * np.abs(h12[k]).max())
    zero = loss.hvp({}, sample_weight=w, **ins)
    assert all(np.all(zero[k] == 0.0) for k in names)


@pytest.mark.parametrize("loss", [i for i in INSTANCES if not (isinstance(i, MultipleNegativesRanking)
                                                                and i.similarity == "dot")], ids=repr)
def test_cosine_losses_hessian_scales_as_one_over_k_squared(loss):
    """value(k x) = value(x) for cosine similarities: the Hessian in x scales as 1 / k^2,
    and stays exact at magnitudes 1e-50 .. 1e50."""
    ins = _inputs(loss, 13)
    names = _diff(loss, ins)
    v = _directions(ins, names, 14)
    ref = loss.hvp(v, **ins)
    for k in (1e-50, 1e50):
        scaled = loss.hvp(v, **{**ins, **{n: k * ins[n] for n in names}})
        for n in names:
            np.testing.assert_allclose(scaled[n] * k * k, ref[n], rtol=1e-12, atol=1e-14 * np.abs(ref[n]).max())


def test_arcface_second_derivative_of_the_margin_is_positive():
    """psi(c) = cos(arccos c + m) has psi'' = sin m / (1 - c^2)^{3/2} > 0; the fallbacks 0."""
    c = np.array([-0.99, -0.5, 0.0, 0.3, 0.9, 1.0])
    xp = array_api_compat.array_namespace(c)
    for loss in (ArcFace(margin=0.5), ArcFace(margin=0.5, easy_margin=True)):
        _, _, d2psi = loss._psi(xp, c, 2)
        keep = c > (0.0 if loss.easy_margin else math.cos(math.pi - 0.5))
        keep[-1] = False  # theta = 0: the gradient's convention, psi'' = 0
        np.testing.assert_allclose(d2psi[keep], math.sin(0.5) / (1 - c[keep] ** 2) ** 1.5, rtol=1e-14)
        assert np.all(d2psi[~keep] == 0.0)
        h = 1e-6
        fd = (loss._psi(xp, c[keep] + h)[1] - loss._psi(xp, c[keep] - h)[1]) / (2 * h)
        np.testing.assert_allclose(d2psi[keep], fd, rtol=1e-7)
    _, dpsi, d2psi = CosFace(margin=0.2)._psi(xp, c, 2)
    assert np.all(dpsi == 1.0) and np.all(d2psi == 0.0)


def test_arcface_hvp_at_theta_zero_follows_the_gradients_convention():
    """x parallel to W_y (c = 1 exactly): psi' is taken as cos m and psi'' as 0, i.e. the
    Hessian of a transcription whose sine term has zero derivative where it is 0."""
    loss = ArcFace(scale=8.0, margin=0.3)
    W = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.0, 0.8]])
    x = np.array([[2.0, 0.0, 0.0], [0.3, 1.0, -0.2], [1.0, 0.5, 0.7]])
    ins = {"embeddings": x, "labels": np.array([0, 1, 2]), "weight": W}
    m = loss.margin

    def per_item(embeddings, weight):
        cos = F.linear(F.normalize(embeddings), F.normalize(weight)).clamp(-1, 1)
        s2 = 1.0 - cos**2
        sine = torch.where(s2 > 0, torch.sqrt(torch.where(s2 > 0, s2, torch.ones_like(s2))), torch.zeros_like(s2))
        phi = cos * math.cos(m) - sine * math.sin(m)
        onehot = F.one_hot(torch.tensor([0, 1, 2]), 3).to(cos.dtype)
        return F.cross_entropy(loss.scale * (onehot * phi + (1 - onehot) * cos), torch.tensor([0, 1, 2]),
                               reduction="none")

    tensors = (torch.tensor(x), torch.tensor(W))
    assert float(F.linear(F.normalize(tensors[0]), F.normalize(tensors[1]))[0, 0]) == 1.0
    v = _directions(ins, ["embeddings", "weight"], 15)
    _, theirs = torch.autograd.functional.hvp(lambda *a: per_item(*a).sum(), tensors,
                                              (torch.tensor(v["embeddings"]), torch.tensor(v["weight"])))
    ours = loss.hvp(v, **ins)
    for k, h in zip(("embeddings", "weight"), theirs):
        assert np.all(np.isfinite(ours[k]))
        assert _rel(ours[k], h.numpy()) <= RTOL


# ---------------------------------------------------------------- adapters, arrays, dtypes


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_torch_adapter_double_backward_is_the_exact_hessian(loss):
    """Through lossgrad.integrations.torch: d/dx <grad, v> and d/dw <grad, v> (the weights'
    path, from _item_jvp) equal those of the transcription."""
    from lossgrad.integrations.torch import function

    ins = _inputs(loss, 16)
    names, per_item, tensors = _torch_functions(loss, ins)
    static = {k: torch.as_tensor(np.asarray(v)) for k, v in ins.items() if k not in names}
    fn = function(loss)
    w = torch.linspace(0.5, 1.5, len(loss.value(**ins)), dtype=torch.float64)
    results = []
    for value in (lambda ts, wt: fn(reduction="sum", sample_weight=wt, **static, **dict(zip(names, ts))),
                  lambda ts, wt: (per_item(*ts) * wt).sum()):
        ts = tuple(t.clone().requires_grad_(True) for t in tensors)
        wt = w.clone().requires_grad_(True)
        gs = torch.autograd.grad(value(ts, wt), ts, create_graph=True)
        sum((g * torch.cos(torch.arange(g.numel(), dtype=g.dtype).reshape(g.shape))).sum() for g in gs).backward()
        results.append([wt.grad.numpy()] + [t.grad.numpy() for t in ts])
    for ours, theirs in zip(*results):
        assert _rel(ours, theirs) <= RTOL


@pytest.mark.parametrize("loss", [InfoNCE(symmetric=True), MultipleNegativesRanking(), ArcFace(scale=8.0, margin=0.2),
                                  CosFace(scale=8.0, margin=0.1)], ids=repr)
def test_torch_jax_and_float32_in_give_the_same_out(loss):
    import jax.numpy as jnp

    ins = _inputs(loss, 17)
    names = _diff(loss, ins)
    v = _directions(ins, names, 18)
    ref = loss.hvp(v, **ins)
    ref_jvp = loss._item_jvp(*loss._prepare_batch(ins, None)[:2], v)
    for lib, dtype in ((torch, torch.float64), (torch, torch.float32), (np, np.float32), (jnp, jnp.float32)):
        conv = (lambda a, lib=lib, dtype=dtype: lib.asarray(np.asarray(a), dtype=dtype))
        tins = {k: (conv(a) if k in names else (lib.asarray(np.asarray(a)) if lib is not np else a))
                for k, a in ins.items()}
        out = loss.hvp({k: conv(d) for k, d in v.items()}, **tins)
        xp, data, _ = loss._prepare_batch(tins, None)
        jvp = loss._item_jvp(xp, data, {k: conv(d) for k, d in v.items()})
        tol = 1e-12 if dtype == torch.float64 else 2e-3
        for k in names:
            assert type(out[k]) is type(tins[k]) and out[k].dtype == dtype, (lib.__name__, k)
            assert _rel(np.asarray(out[k]), ref[k]) <= tol, (lib.__name__, dtype, k)
        assert type(jvp) is type(tins[names[0]]) and jvp.dtype == dtype
        assert _rel(np.asarray(jvp), ref_jvp) <= tol


def test_bad_directions_name_the_argument():
    for loss in (InfoNCE(), MultipleNegativesRanking(), ArcFace()):
        ins = _inputs(loss, 19, negatives=False)
        name = _diff(loss, ins)[0]
        ok = np.ones_like(ins[name])
        with pytest.raises(ValueError, match=r"v has key\(s\) \['labels'\]; the differentiable inputs are"):
            loss.hvp({name: ok, "labels": ok}, **ins)
        with pytest.raises(ValueError, match=rf"v\['{name}'\] must have the shape of {name}"):
            loss.hvp({name: ok[:, :-1]}, **ins)
        bad = ok.copy()
        bad[0, 0] = np.nan
        with pytest.raises(ValueError, match=rf"v\['{name}'\]"):
            loss.hvp({name: bad}, **ins)
        with pytest.raises(ValueError, match=rf"v\['{name}'\]"):
            loss._item_jvp(*loss._prepare_batch(ins, None)[:2], {name: bad})
        with pytest.raises(TypeError, match="v must be a dict"):
            loss.hvp(ok, **ins)
    mnr = MultipleNegativesRanking()
    ins = _inputs(mnr, 19, negatives=False)
    with pytest.raises(ValueError, match=r"v\['negatives'\] is given but input negatives is not"):
        mnr.hvp({"negatives": np.ones((2, 4))}, **ins)


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_verify_passes_with_the_hvp_check(loss):
    report = lossgrad.verify(loss, n=20)
    assert report.passed, report
    assert report.check("hvp").declared == "present" and report.check("hvp").passed
