"""Supervised contrastive loss (SupCon): value, gradient and Hessian-vector product.

Oracles: a PyTorch transcription of the authors' computation (HobbitLong/SupContrast
``SupConLoss``, ``contrast_mode="all"``: max-shifted logits, the self-contrast mask,
log_prob = logits - log sum exp over the others, the mean over the positives with a
count of 1 where an anchor has none) written here from the paper, never from lossgrad,
with autograd's gradient, ``hvp`` and ``jvp``; central differences; SimCLR's NT-Xent
(lossgrad's ``info_nce(symmetric=True)``) as the case of one positive per anchor.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossgrad
from lossgrad.losses.embedding_supcon import SupCon

LOSSES = [SupCon(), SupCon(temperature=0.5), SupCon(temperature=2.0)]
IDS = [repr(loss) for loss in LOSSES]


def _inputs(seed=0, n=10, dim=4):
    """Labels with 4, 3, 2 and 1 members (the single one has no positive)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.array([3, 3, 3, 3, 8, 8, 8, 5, 5, 1][:n]))
    x = rng.normal(size=(n, dim)) + np.eye(10, dim)[labels % dim]
    return x, labels


def supcon_torch(features, labels, temperature, base_temperature=None):
    """Per-anchor values of the authors' SupConLoss (contrast_mode "all", one view per row):
    times temperature / base_temperature, which is 1 unless base_temperature is given."""
    z = F.normalize(features, dim=1)
    n = z.shape[0]
    lab = torch.as_tensor(labels).reshape(-1, 1)
    mask = (lab == lab.T).to(z.dtype)
    logits = z @ z.T / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()  # as the authors, for stability
    logits_mask = 1.0 - torch.eye(n, dtype=z.dtype)
    mask = mask * logits_mask
    log_prob = logits - torch.log((torch.exp(logits) * logits_mask).sum(1, keepdim=True))
    pairs = mask.sum(1)
    mean_log_prob_pos = (mask * log_prob).sum(1) / torch.where(pairs < 1e-6, torch.ones_like(pairs), pairs)
    factor = 1.0 if base_temperature is None else temperature / base_temperature
    return -factor * mean_log_prob_pos


@pytest.mark.parametrize("loss", LOSSES, ids=IDS)
def test_value_and_gradient_match_the_authors_computation_in_torch(loss):
    x, labels = _inputs()
    w = np.linspace(0.5, 2.0, x.shape[0])
    xt = torch.tensor(x, requires_grad=True)
    vt = supcon_torch(xt, labels, loss.temperature)
    (vt * torch.tensor(w)).sum().backward()
    v, g = loss.value_grad(embeddings=x, labels=labels, sample_weight=w)
    np.testing.assert_allclose(v, vt.detach().numpy() * w, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(g["embeddings"], xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert v[labels == 1] == 0.0 and np.all(v[labels != 1] > 0)
    # the authors' reduction: (temperature / base_temperature) times the mean over all anchors
    base = supcon_torch(torch.tensor(x), labels, loss.temperature, base_temperature=0.07).mean()
    ours = np.mean(loss.value(embeddings=x, labels=labels)) * loss.temperature / 0.07
    np.testing.assert_allclose(ours, float(base), rtol=1e-12)


@pytest.mark.parametrize("loss", LOSSES, ids=IDS)
def test_hvp_and_item_jvp_match_torch_autograd(loss):
    x, labels = _inputs(seed=1)
    rng = np.random.default_rng(2)
    v = rng.normal(size=x.shape)
    w = rng.uniform(0.2, 2.0, x.shape[0])
    wt = torch.tensor(w)

    def total(z):
        return (supcon_torch(z, labels, loss.temperature) * wt).sum()

    _, hv = torch.autograd.functional.hvp(total, torch.tensor(x), torch.tensor(v))
    ours = loss.hvp(embeddings=x, labels=labels, v={"embeddings": v}, sample_weight=w)["embeddings"]
    np.testing.assert_allclose(ours, hv.numpy(), rtol=1e-10, atol=1e-10 * np.abs(hv.numpy()).max())
    _, jv = torch.autograd.functional.jvp(lambda z: supcon_torch(z, labels, loss.temperature), torch.tensor(x),
                                          torch.tensor(v))
    xp, data, _ = loss._prepare_batch({"embeddings": x, "labels": labels}, None)
    item = loss._item_jvp(xp, data, {"embeddings": v})
    np.testing.assert_allclose(item, jv.numpy(), rtol=1e-10, atol=1e-12)


def test_hvp_matches_central_differences_of_the_gradient():
    loss = SupCon(temperature=0.3)
    x, labels = _inputs(seed=3)
    v = np.random.default_rng(4).normal(size=x.shape)
    h = 1e-5
    plus = loss.grad(embeddings=x + h * v, labels=labels)["embeddings"]
    minus = loss.grad(embeddings=x - h * v, labels=labels)["embeddings"]
    hv = loss.hvp(embeddings=x, labels=labels, v={"embeddings": v})["embeddings"]
    np.testing.assert_allclose(hv, (plus - minus) / (2 * h), rtol=1e-6, atol=1e-7 * np.abs(hv).max())


@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_one_positive_per_anchor_is_nt_xent(temperature):
    """Labels 0..N-1 over the two views [a; p]: the mean of the two views' values is
    info_nce(symmetric=True), and so are the gradients (the symmetric InfoNCE averages too)."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=(6, 3))
    p = a + rng.normal(scale=0.5, size=(6, 3))
    labels = np.concatenate([np.arange(6), np.arange(6)])
    sup = SupCon(temperature=temperature)
    v, g = sup.value_grad(embeddings=np.concatenate([a, p]), labels=labels)
    nce = lossgrad.get("info_nce", temperature=temperature, symmetric=True)
    nv, ng = nce.value_grad(anchors=a, positives=p)
    np.testing.assert_allclose(0.5 * (v[:6] + v[6:]), nv, rtol=1e-13)
    np.testing.assert_allclose(0.5 * g["embeddings"], np.concatenate([ng["anchors"], ng["positives"]]),
                               rtol=1e-12, atol=1e-14)


def test_scale_invariance_and_extreme_rows():
    """Cosine similarities: scaling a row changes nothing in the value, divides its gradient
    by the scale; rows at 1e200 and 1e-200 stay finite and agree with the unit rows."""
    loss = SupCon(temperature=0.2)
    x, labels = _inputs(seed=6)
    k = np.where(np.arange(x.shape[0]) % 2 == 0, 1e200, 1e-200)[:, None]
    v0, g0 = loss.value_grad(embeddings=x, labels=labels)
    v1, g1 = loss.value_grad(embeddings=k * x, labels=labels)
    np.testing.assert_allclose(v1, v0, rtol=1e-13)
    np.testing.assert_allclose(k * g1["embeddings"], g0["embeddings"], rtol=1e-12, atol=1e-14)


def test_no_positive_anywhere_gives_zero_and_labels_may_be_any_integers():
    x, _ = _inputs(seed=7, n=5)
    loss = SupCon()
    v, g = loss.value_grad(embeddings=x, labels=[10, -3, 7, 0, 99])
    assert np.all(v == 0.0) and np.all(g["embeddings"] == 0.0)
    shifted = loss.value(embeddings=x, labels=[4, 4, -1, -1, 4])
    np.testing.assert_allclose(shifted, loss.value(embeddings=x, labels=[0, 0, 1, 1, 0]), rtol=0)


def test_torch_adapter_double_backward_and_float32():
    from lossgrad.integrations.torch import function

    x, labels = _inputs(seed=8)
    loss = SupCon(temperature=0.5)
    xt = torch.tensor(x, requires_grad=True)
    f = function(loss)
    assert torch.autograd.gradgradcheck(lambda z: f(embeddings=z, labels=labels, reduction="sum"), (xt,))
    v32 = loss.value(embeddings=x.astype(np.float32), labels=labels)
    assert v32.dtype == np.float32
    np.testing.assert_allclose(v32, loss.value(embeddings=x, labels=labels), rtol=2e-5)


def test_bad_inputs_name_the_argument():
    loss = SupCon()
    x, labels = _inputs()
    with pytest.raises(ValueError, match="at least 2 embeddings"):
        loss.value(embeddings=x[:1], labels=labels[:1])
    z = x.copy()
    z[3] = 0.0
    with pytest.raises(ValueError, match="embeddings.*non-zero vectors"):
        loss.value(embeddings=z, labels=labels)
    with pytest.raises(ValueError, match=r"labels must have shape \(10,\)"):
        loss.value(embeddings=x, labels=labels[:4])
    with pytest.raises(ValueError, match="labels.*integer class labels"):
        loss.value(embeddings=x, labels=labels + 0.5)
    with pytest.raises(ValueError, match="temperature"):
        SupCon(temperature=0.0)
    with pytest.raises(ValueError, match="embeddings"):
        loss.value(embeddings=np.ones(10), labels=labels)
