"""Pair and triplet losses, second order: ``hvp`` and ``_item_jvp`` of contrastive,
margin_ranking, cosine_embedding and triplet (every registered variant and a few more).

Oracles, never built with lossgrad:

* PyTorch autograd on independent transcriptions of the values:
  ``torch.autograd.functional.hvp`` of sum(w * values) and ``torch.autograd.functional.jvp``
  of the values (contrastive and cosine embedding written out with the exact cosine;
  margin ranking and plain triplets: torch.nn.MarginRankingLoss / TripletMarginLoss;
  mined triplets: the enumeration of test_embedding_oracles fed to TripletMarginLoss);
* central differences of ``grad`` along the direction, and of the values;
* exact identities at the extreme magnitudes (1e-200, 1e100, 1e200): the cosine is
  invariant to the scale of each input, the p-distances are 1-homogeneous;
* the conventions at the kinks the docstrings state (D = 0, ties, zero coordinates).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_embedding_oracles import _mined_torch

import lossgrad
from lossgrad._registry import catalog
from lossgrad.losses._pair_second import pnorm_hvp
from lossgrad.losses.embedding_pair import Contrastive, CosineEmbedding, MarginRanking
from lossgrad.losses.embedding_triplet import Triplet

OURS = (Contrastive, MarginRanking, CosineEmbedding, Triplet)
REGISTERED = [loss for entry in catalog(family="embedding") for loss in entry.instances() if isinstance(loss, OURS)]
EXTRA = [Contrastive(margin=1.5, distance="cosine"), Triplet(p=1.5), Triplet(p=3.0, swap=True, eps=1e-3),
         Triplet(p=1.0, mining="batch_all", margin=0.5), Triplet(p=3.0, mining="batch_hard"), Triplet(eps=0.0, margin=2.0)]
INSTANCES = REGISTERED + EXTRA
RTOL = 1e-10


def _torch_values(loss):
    """fn(**tensors) -> per-item values: a PyTorch transcription of the loss's value."""
    if isinstance(loss, Contrastive):
        def contrastive(x1, x2, target):
            if loss.distance == "euclidean":
                D = torch.sqrt(((x1 - x2) ** 2).sum(dim=1))
            else:
                D = 1.0 - (x1 * x2).sum(dim=1) / (x1.norm(dim=1) * x2.norm(dim=1))
            return 0.5 * (target * D**2 + (1.0 - target) * torch.clamp(loss.margin - D, min=0.0) ** 2)
        return contrastive
    if isinstance(loss, CosineEmbedding):
        def cosine_embedding(x1, x2, target):
            c = (x1 * x2).sum(dim=1) / (x1.norm(dim=1) * x2.norm(dim=1))
            return torch.where(target > 0, 1.0 - c, torch.clamp(c - loss.margin, min=0.0))
        return cosine_embedding
    if isinstance(loss, MarginRanking):
        mod = torch.nn.MarginRankingLoss(margin=loss.margin, reduction="none")
        return lambda x1, x2, target: mod(x1, x2, target)
    if loss.mining is not None:
        return _mined_torch(loss.mining, loss.margin, loss.p, loss.eps, loss.swap)
    mod = torch.nn.TripletMarginLoss(margin=loss.margin, p=loss.p, eps=loss.eps, swap=loss.swap, reduction="none")
    return lambda anchor, positive, negative: mod(anchor, positive, negative)


def _inputs(loss, rng):
    """Inputs with items on both sides of every hinge (near and far pairs, easy and hard triplets)."""
    n, dim = 12, 4
    spread = np.linspace(0.05, 2.5, n)[:, None]
    if isinstance(loss, Triplet) and loss.mining is None:
        a = rng.normal(size=(n, dim))
        return {"anchor": a, "positive": a + 0.5 * rng.normal(size=(n, dim)),
                "negative": a + spread * rng.normal(size=(n, dim))}
    if isinstance(loss, Triplet):
        labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4])  # label 4: an anchor without a positive
        centers = 1.2 * rng.normal(size=(5, dim))
        return {"embeddings": centers[labels] + 0.6 * rng.normal(size=(labels.size, dim)), "labels": labels}
    if isinstance(loss, MarginRanking):
        x1 = rng.normal(size=20)
        return {"x1": x1, "x2": x1 + rng.normal(size=20), "target": rng.choice([-1.0, 1.0], 20)}
    x1 = rng.normal(size=(n, dim))
    scale = spread * (loss.margin if isinstance(loss, Contrastive) and loss.distance == "euclidean" else 1.0)
    x2 = x1 + scale * rng.normal(size=(n, dim))
    target = (np.arange(n) % 2).astype(float)
    return {"x1": x1, "x2": x2, "target": target if isinstance(loss, Contrastive) else 2.0 * target - 1.0}


def _setup(loss, seed):
    rng = np.random.default_rng(seed)
    ins = _inputs(loss, rng)
    names = list(loss.differentiable)
    w = rng.uniform(0.5, 1.5, np.shape(loss.value(**ins)))
    v = {n: rng.normal(size=np.shape(ins[n])) for n in names}
    return ins, names, w, v


def _torch_second(loss, ins, names, w, v):
    """(hvp of sum(w * values), per-item jvp of the values) by PyTorch autograd."""
    fn = _torch_values(loss)
    static = {k: torch.as_tensor(np.asarray(a)) for k, a in ins.items() if k not in names}
    xs = tuple(torch.tensor(np.asarray(ins[n], dtype=float)) for n in names)
    vs = tuple(torch.tensor(v[n]) for n in names)

    def per_item(*a):
        return fn(**static, **dict(zip(names, a)))

    _, hv = torch.autograd.functional.hvp(lambda *a: (torch.as_tensor(w) * per_item(*a)).sum(), xs, vs)
    _, jv = torch.autograd.functional.jvp(per_item, xs, vs)
    return {n: h.numpy() for n, h in zip(names, hv)}, jv.numpy()


def _rel(ours, theirs):
    """max |ours - theirs| over max |theirs| (the absolute error where theirs is all 0)."""
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1.0 if not theirs.any() else 0.0))


@pytest.mark.parametrize("loss", INSTANCES, ids=repr)
@pytest.mark.parametrize("seed", [0, 1])
def test_hvp_and_item_jvp_match_pytorch_autograd(loss, seed):
    ins, names, w, v = _setup(loss, seed)
    theirs, jv = _torch_second(loss, ins, names, w, v)
    ours = loss.hvp(v, sample_weight=w, **ins)
    assert set(ours) == set(names)
    for n in names:
        assert ours[n].shape == np.shape(ins[n]) and ours[n].dtype == np.float64
        assert _rel(ours[n], theirs[n]) <= RTOL, n
    xp, data, _ = loss._prepare_batch(ins, None)
    item = np.asarray(loss._item_jvp(xp, data, v))
    assert item.shape == np.shape(loss.value(**ins))
    assert _rel(item, jv) <= RTOL


@pytest.mark.parametrize("loss", INSTANCES, ids=repr)
def test_the_inputs_reach_both_sides_of_the_hinges(loss):
    """The oracle comparisons see active and inactive hinges: pairs on both sides of the
    margin, triplets (every valid one for batch-all, the hardest for batch-hard) too."""
    ins = _setup(loss, 0)[0]
    if isinstance(loss, Triplet) and loss.mining is not None:
        y = ins["labels"]
        trip = [(i, j, k) for i in range(y.size) for j in range(y.size) for k in range(y.size)
                if i != j and y[i] == y[j] and y[k] != y[i]]
        plain = Triplet(margin=loss.margin, p=loss.p, swap=loss.swap, eps=loss.eps)
        e = ins["embeddings"]
        values = plain.value(**{name: e[[t[s] for t in trip]] for s, name in enumerate(("anchor", "positive", "negative"))})
        assert np.any(values > 0) and np.any(values == 0)
        if loss.mining == "batch_hard":
            hard = loss.value(**ins)[:-1]  # the last anchor has no positive
            assert np.any(hard > 0) and np.any(hard == 0)
        return
    v = loss.value(**ins)
    hinge = ins["target"] <= 0 if not isinstance(loss, (Triplet, MarginRanking)) else np.ones(v.shape, dtype=bool)
    assert np.any(v[hinge] > 0) and np.any(v[hinge] == 0)


@pytest.mark.parametrize("loss", INSTANCES, ids=repr)
def test_hvp_matches_central_differences_of_the_gradient(loss):
    ins, names, w, v = _setup(loss, 2)
    h = 1e-6
    plus = loss.grad(sample_weight=w, **{**ins, **{n: ins[n] + h * v[n] for n in names}})
    minus = loss.grad(sample_weight=w, **{**ins, **{n: ins[n] - h * v[n] for n in names}})
    ours = loss.hvp(v, sample_weight=w, **ins)
    for n in names:
        fd = (plus[n] - minus[n]) / (2 * h)
        np.testing.assert_allclose(ours[n], fd, rtol=1e-6, atol=1e-7 * max(np.abs(fd).max(), 1.0), err_msg=n)


@pytest.mark.parametrize("loss", INSTANCES, ids=repr)
def test_item_jvp_matches_central_differences_of_the_values(loss):
    ins, names, _, v = _setup(loss, 3)
    h = 1e-6
    fd = (loss.value(**{**ins, **{n: ins[n] + h * v[n] for n in names}})
          - loss.value(**{**ins, **{n: ins[n] - h * v[n] for n in names}})) / (2 * h)
    xp, data, _ = loss._prepare_batch(ins, None)
    np.testing.assert_allclose(loss._item_jvp(xp, data, v), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("loss", INSTANCES, ids=repr)
def test_hvp_is_linear_in_the_weights_and_the_direction(loss):
    ins, names, w, v = _setup(loss, 4)
    u = {n: np.cos(np.arange(np.size(ins[n]))).reshape(np.shape(ins[n])) for n in names}
    a = loss.hvp(v, sample_weight=w, **ins)
    b = loss.hvp(u, sample_weight=w, **ins)
    both = loss.hvp({n: 2.0 * v[n] - u[n] for n in names}, sample_weight=3.0 * w, **ins)
    unweighted = loss.hvp(v, **ins)
    for n in names:
        np.testing.assert_allclose(both[n], 3.0 * (2.0 * a[n] - b[n]), rtol=1e-12, atol=1e-13 * np.abs(a[n]).max())
    # a missing name is the zero direction
    first = loss.hvp({names[0]: v[names[0]]}, sample_weight=w, **ins)
    zero = {n: (v[n] if n == names[0] else np.zeros_like(v[n])) for n in names}
    for n, arr in loss.hvp(zero, sample_weight=w, **ins).items():
        np.testing.assert_array_equal(first[n], arr)
    ones = loss.hvp(v, sample_weight=np.ones_like(w), **ins)
    for n in names:
        np.testing.assert_allclose(unweighted[n], ones[n], rtol=1e-15, atol=0)


def test_margin_ranking_hessian_is_exactly_zero():
    loss = MarginRanking(margin=0.5)
    ins, names, w, v = _setup(loss, 0)
    hv = loss.hvp(v, sample_weight=w, **ins)
    assert all(not np.any(hv[n]) for n in names)
    xp, data, _ = loss._prepare_batch(ins, None)
    z = -ins["target"] * (ins["x1"] - ins["x2"]) + 0.5
    np.testing.assert_array_equal(loss._item_jvp(xp, data, v), np.where(z > 0, -ins["target"] * (v["x1"] - v["x2"]), 0.0))


# ------------------------------------------------------------------ kinks and conventions


def test_contrastive_at_zero_distance_and_at_the_margin():
    """D = 0: the cone of (m - D)^2 / 2 is dropped, H_d = I; D = m (a tie): flat, H_d = 0."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 3))
    v1, v2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    w = np.array([0.5, 1.0, 1.5, 2.0])
    t = np.array([0.0, 1.0, 0.0, 1.0])
    hv = Contrastive(margin=2.0).hvp({"x1": v1, "x2": v2}, sample_weight=w, x1=x, x2=x.copy(), target=t)
    np.testing.assert_allclose(hv["x1"], w[:, None] * (v1 - v2), rtol=1e-15)
    np.testing.assert_allclose(hv["x2"], -w[:, None] * (v1 - v2), rtol=1e-15)
    x1, x2 = np.zeros((2, 2)), np.array([[2.0, 0.0], [0.0, 3.0]])  # D = 2 = m (tie), D = 3 > m
    hv = Contrastive(margin=2.0).hvp({"x1": v1[:2, :2], "x2": v2[:2, :2]}, x1=x1, x2=x2, target=np.zeros(2))
    assert not np.any(hv["x1"]) and not np.any(hv["x2"])


def test_triplet_swap_tie_takes_the_anchor_negative_distance():
    """d(p, n) = d(a, n) exactly: value, gradient and hvp are those of swap=False."""
    rng = np.random.default_rng(6)
    a = rng.normal(size=(5, 4))
    ins = {"anchor": a, "positive": -a, "negative": np.zeros((5, 4))}
    v = {n: rng.normal(size=(5, 4)) for n in ins}
    swap, plain = Triplet(swap=True, eps=0.0), Triplet(eps=0.0)
    for n, arr in swap.hvp(v, **ins).items():
        np.testing.assert_array_equal(arr, plain.hvp(v, **ins)[n])
    xp, data, _ = swap._prepare_batch(ins, None)
    np.testing.assert_array_equal(swap._item_jvp(xp, data, v), plain._item_jvp(xp, data, v))


def _torch_pnorm_sum(p):
    return lambda z: ((z.abs() ** p).sum(dim=1) ** (1.0 / p)).sum()


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0, 4.5])
def test_pnorm_hessian_against_pytorch(p):
    rng = np.random.default_rng(7)
    for scale in (1.0, 1e-3, 1e3):
        y = scale * rng.normal(size=(6, 5))
        dy = rng.normal(size=(6, 5))
        _, theirs = torch.autograd.functional.hvp(_torch_pnorm_sum(p), torch.tensor(y), torch.tensor(dy))
        n, dn = lossgrad.losses._embedding_common.pnorm(np, y, p)
        np.testing.assert_allclose(pnorm_hvp(np, y, n, dn, p, dy), theirs.numpy(), rtol=1e-12,
                                   atol=1e-14 * np.abs(theirs.numpy()).max())


def test_pnorm_hessian_conventions_at_zeros():
    """p < 2 at a zero coordinate: that row and column of the (infinite) Hessian are 0 and
    the rest is the Hessian of the norm of the other coordinates; y = 0: 0."""
    rng = np.random.default_rng(8)
    p = 1.5
    y = rng.normal(size=(3, 4))
    y[:, 1] = 0.0
    dy = rng.normal(size=(3, 4))
    n, dn = lossgrad.losses._embedding_common.pnorm(np, y, p)
    ours = pnorm_hvp(np, y, n, dn, p, dy)
    keep = [0, 2, 3]
    _, theirs = torch.autograd.functional.hvp(_torch_pnorm_sum(p), torch.tensor(y[:, keep]), torch.tensor(dy[:, keep]))
    np.testing.assert_allclose(ours[:, keep], theirs.numpy(), rtol=1e-12)
    assert not np.any(ours[:, 1])
    zero = np.zeros((2, 4))
    n0, dn0 = lossgrad.losses._embedding_common.pnorm(np, zero, p)
    for q in (1.0, 1.5, 2.0, 3.0):
        assert not np.any(pnorm_hvp(np, zero, n0, dn0, q, dy[:2]))
    # through the loss: eps = 0 and a = p (d(a, p) = 0, a corner) stays finite
    a = rng.normal(size=(3, 4))
    hv = Triplet(eps=0.0, p=1.5).hvp({"anchor": dy}, anchor=a, positive=a.copy(), negative=a + 1.0)
    assert all(np.all(np.isfinite(h)) for h in hv.values())


# ------------------------------------------------------------------ extreme magnitudes


@pytest.mark.parametrize("loss", [i for i in INSTANCES if isinstance(i, (CosineEmbedding, Contrastive))
                                  and (isinstance(i, CosineEmbedding) or i.distance == "cosine")], ids=repr)
def test_cosine_losses_at_norms_1e200_and_1e_200(loss):
    """l(alpha x1, beta x2) = l(x1, x2): the hvp along (alpha v1, beta v2) is the unit-scale
    one divided by (alpha, beta), where ||x||^2 alone would under- or overflow."""
    ins, _, w, v = _setup(loss, 9)
    unit = loss.hvp(v, sample_weight=w, **ins)
    xp, data, _ = loss._prepare_batch(ins, None)
    jvp = loss._item_jvp(xp, data, v)
    for alpha, beta in ((1e-200, 1e200), (1e200, 1e-200), (1e-150, 1e-150)):
        big = {**ins, "x1": alpha * ins["x1"], "x2": beta * ins["x2"]}
        vb = {"x1": alpha * v["x1"], "x2": beta * v["x2"]}
        hv = loss.hvp(vb, sample_weight=w, **big)
        np.testing.assert_allclose(hv["x1"], unit["x1"] / alpha, rtol=1e-12, atol=1e-14 * np.abs(unit["x1"]).max() / alpha)
        np.testing.assert_allclose(hv["x2"], unit["x2"] / beta, rtol=1e-12, atol=1e-14 * np.abs(unit["x2"]).max() / beta)
        xp, data, _ = loss._prepare_batch(big, None)
        np.testing.assert_allclose(loss._item_jvp(xp, data, vb), jvp, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("alpha", [1e-200, 1e100])
def test_euclidean_contrastive_scales(alpha):
    """D(alpha x) = alpha D(x): hvp(alpha x, alpha v; m) = alpha hvp(x, v; m / alpha)."""
    loss = Contrastive(margin=1.5)
    ins, names, w, v = _setup(loss, 10)
    hv = loss.hvp({n: alpha * v[n] for n in names}, sample_weight=w,
                  **{**ins, "x1": alpha * ins["x1"], "x2": alpha * ins["x2"]})
    with np.errstate(over="ignore"):  # the reference's value (m / alpha)^2 / 2 overflows; its hvp does not
        ref = Contrastive(margin=1.5 / alpha).hvp(v, sample_weight=w, **ins)
    for n in names:
        assert np.all(np.isfinite(hv[n]))
        np.testing.assert_allclose(hv[n], alpha * ref[n], rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("loss", [i for i in INSTANCES if isinstance(i, Triplet)], ids=repr)
def test_triplet_at_1e100(loss):
    """Distances are 1-homogeneous (eps vanishes at 1e100): the hvp at (1e100 x) along
    (1e100 v) is the unit-scale one with margin 1e-100 and eps 0."""
    alpha = 1e100
    ins, names, w, v = _setup(loss, 11)
    big = {k: (alpha * a if k in names else a) for k, a in ins.items()}
    hv = loss.hvp({n: alpha * v[n] for n in names}, sample_weight=w, **big)
    ref_loss = Triplet(margin=loss.margin / alpha, p=loss.p, swap=loss.swap, eps=0.0, mining=loss.mining)
    ref = ref_loss.hvp(v, sample_weight=w, **ins)
    for n in names:
        np.testing.assert_allclose(hv[n], ref[n], rtol=1e-12, atol=1e-14 * np.abs(ref[n]).max())


# ------------------------------------------------------------------ array libraries and dtypes


@pytest.mark.parametrize("loss", [Contrastive(), Contrastive(distance="cosine", margin=0.5), MarginRanking(margin=0.5),
                                  CosineEmbedding(margin=0.3), Triplet(swap=True), Triplet(p=1.5, mining="batch_hard")],
                         ids=repr)
def test_torch_in_torch_out_and_float32(loss):
    ins, names, w, v = _setup(loss, 12)
    ref = loss.hvp(v, sample_weight=w, **ins)
    tins = {k: torch.as_tensor(np.asarray(a)) for k, a in ins.items()}
    hv = loss.hvp({n: torch.tensor(v[n]) for n in names}, sample_weight=torch.tensor(w), **tins)
    for n in names:
        assert isinstance(hv[n], torch.Tensor) and hv[n].dtype == torch.float64
        np.testing.assert_allclose(hv[n].numpy(), ref[n], rtol=1e-12, atol=1e-14)
    xp, data, _ = loss._prepare_batch(tins, None)
    jt = loss._item_jvp(xp, data, {n: torch.tensor(v[n]) for n in names})
    assert isinstance(jt, torch.Tensor) and jt.dtype == torch.float64
    f32 = {k: (a.astype(np.float32) if k in names else a) for k, a in ins.items()}
    h32 = loss.hvp(v, sample_weight=w, **f32)
    t32 = loss.hvp({n: torch.tensor(v[n], dtype=torch.float32) for n in names},
                   **{k: (torch.tensor(a, dtype=torch.float32) if k in names else torch.as_tensor(a)) for k, a in ins.items()},
                   sample_weight=torch.tensor(w, dtype=torch.float32))
    for n in names:
        assert h32[n].dtype == np.float32 and t32[n].dtype == torch.float32
        scale = np.abs(ref[n]).max() + 1e-3
        np.testing.assert_allclose(h32[n], ref[n], atol=2e-4 * scale)
        np.testing.assert_allclose(t32[n].numpy(), ref[n], atol=2e-4 * scale)
    xp, data, _ = loss._prepare_batch(f32, None)
    assert np.asarray(loss._item_jvp(xp, data, v)).dtype == np.float32


@pytest.mark.parametrize("loss", [Contrastive(distance="cosine", margin=0.5), Triplet(p=3.0), Triplet(mining="batch_all", swap=True)],
                         ids=repr)
def test_jax_in_jax_out(loss):
    import jax.numpy as jnp

    ins, names, w, v = _setup(loss, 13)
    ref = loss.hvp(v, sample_weight=w, **ins)
    jins = {k: (jnp.asarray(a, dtype=jnp.float32) if k in names else jnp.asarray(a)) for k, a in ins.items()}
    hv = loss.hvp({n: jnp.asarray(v[n], dtype=jnp.float32) for n in names}, sample_weight=jnp.asarray(w, dtype=jnp.float32), **jins)
    for n in names:
        assert hv[n].dtype == jnp.float32 and type(hv[n]).__module__.startswith("jax")
        np.testing.assert_allclose(np.asarray(hv[n]), ref[n], atol=2e-4 * (np.abs(ref[n]).max() + 1e-3))


# ------------------------------------------------------------------ bad directions


@pytest.mark.parametrize("loss", [Contrastive(), MarginRanking(), CosineEmbedding(), Triplet(), Triplet(mining="batch_hard")],
                         ids=repr)
def test_bad_directions_name_the_argument(loss):
    ins, names, _, v = _setup(loss, 14)
    name = names[-1]
    with pytest.raises(ValueError, match=r"v has key\(s\) \['bogus'\]; the differentiable inputs are"):
        loss.hvp({**v, "bogus": v[name]}, **ins)
    static = [k for k in ins if k not in names]  # target / labels: not differentiable
    for label in static:
        with pytest.raises(ValueError, match=rf"v has key\(s\) \['{label}'\]"):
            loss.hvp({label: v[name]}, **ins)
    with pytest.raises(ValueError, match=rf"v\['{name}'\] must have the shape of {name}"):
        loss.hvp({name: v[name][:-1]}, **ins)
    bad = v[name].copy()
    bad.flat[0] = np.nan
    with pytest.raises(ValueError, match=rf"v\['{name}'\] contains 1 NaN"):
        loss.hvp({name: bad}, **ins)
    xp, data, _ = loss._prepare_batch(ins, None)
    with pytest.raises(ValueError, match=rf"v\['{name}'\]"):
        loss._item_jvp(xp, data, {name: bad})


# ------------------------------------------------------------------ declarations


@pytest.mark.parametrize("loss", REGISTERED, ids=repr)
def test_declared_second_order_and_verify(loss):
    assert loss.has_hvp and loss.props.has_hess
    assert "not provided" not in loss.formula.hess
    report = lossgrad.verify(loss)
    assert report.passed, report
