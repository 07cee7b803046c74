"""Embedding and pair losses against PyTorch: values and autograd gradients (float64).

Peers and convention mappings:

* triplet, margin_ranking, cosine_embedding: torch.nn.TripletMarginLoss,
  MarginRankingLoss, CosineEmbeddingLoss with reduction="none"; same parameter names.
  CosineEmbeddingLoss adds 1e-12 to the squared norms, lossgrad does not: rtol 1e-9.
* triplet mining: the enumeration of the anchor's valid triplets fed to
  TripletMarginLoss (batch_all: their mean per anchor; batch_hard: the hardest pair).
* contrastive: a PyTorch autograd transcription of Hadsell et al. (2006) eq. (4) with
  target 1 = similar (paper's Y = 1 - target); cosine distance via F.cosine_similarity.
* info_nce: F.cross_entropy over the cosine similarity matrix / temperature with labels
  arange(N) (van den Oord); symmetric: SimCLR's 2N x 2N matrix with the diagonal masked
  to -inf and labels (k + N) mod 2N, pair value = mean of its two views.
* multiple_negatives_ranking: sentence-transformers' computation, cos_sim(anchors,
  cat(positives, negatives)) * scale then F.cross_entropy with labels arange(N).
* arcface / cosface: the insightface-style PyTorch forward (F.normalize, F.linear,
  phi = cos cos m - sin sin m with threshold cos(pi - m) and fallback cos - m sin m, or
  easy margin), CE with reduction none; gradients by autograd w.r.t. x and W.
* ge2e: a PyTorch transcription of Wan et al. (2018) eqs. (5)-(10) with exclusive
  centroids; autograd gradients w.r.t. embeddings, w and b.

Gradients compared: d/d(input) of sum(w * value) with random positive w.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossgrad

RTOL = 1e-10


def _t(a):
    return torch.tensor(np.asarray(a, dtype=float), dtype=torch.float64, requires_grad=True)


def _compare(loss, ins, torch_fn, diff, rtol=RTOL, seed=0):
    """Compare lossgrad's value and grad of sum(w * value) with torch autograd."""
    rng = np.random.default_rng(seed)
    v = np.asarray(loss.value(**ins))
    w = rng.uniform(0.5, 1.5, v.shape)
    tins = {k: (_t(ins[k]) if k in diff else torch.as_tensor(np.asarray(ins[k]))) for k in ins}
    tv = torch_fn(**tins)
    np.testing.assert_allclose(v, tv.detach().numpy(), rtol=rtol, atol=1e-13)
    (tv * torch.as_tensor(w)).sum().backward()
    g = loss.grad(sample_weight=w, **ins)
    assert set(g) == set(diff)
    for k in diff:
        np.testing.assert_allclose(np.asarray(g[k]), tins[k].grad.numpy().reshape(np.shape(g[k])),
                                   rtol=rtol, atol=1e-12, err_msg=k)


def _rows(rng, n=7, d=5, scale=1.0):
    return rng.normal(scale=scale, size=(n, d))


# ---------------------------------------------------------------- PyTorch's own losses


@pytest.mark.parametrize("params", [{}, {"swap": True}, {"p": 1.0, "margin": 0.3}, {"p": 3.0, "eps": 1e-3},
                                    {"eps": 0.0, "margin": 2.0}])
def test_triplet_vs_torch(params):
    rng = np.random.default_rng(1)
    a = _rows(rng)
    ins = {"anchor": a, "positive": a + _rows(rng, scale=0.7), "negative": a + _rows(rng, scale=0.9)}
    loss = lossgrad.get("triplet", **params)
    mod = torch.nn.TripletMarginLoss(reduction="none", **params)
    _compare(loss, ins, lambda anchor, positive, negative: mod(anchor, positive, negative),
             ("anchor", "positive", "negative"))
    if loss.margin <= 1.0:
        assert np.any(loss.value(**ins) == 0) and np.any(loss.value(**ins) > 0)  # both sides of the hinge


def _mined_torch(mining, margin, p, eps, swap):
    mod = torch.nn.TripletMarginLoss(margin=margin, p=p, eps=eps, swap=swap, reduction="none")

    def fn(embeddings, labels):
        y = labels.tolist()
        n = len(y)
        out = []
        for i in range(n):
            P = [j for j in range(n) if j != i and y[j] == y[i]]
            N = [k for k in range(n) if y[k] != y[i]]
            if not P or not N:
                out.append(embeddings.sum() * 0.0)
                continue
            if mining == "batch_all":
                trip = [(j, k) for j in P for k in N]
                ia = torch.tensor([i] * len(trip))
                ip = torch.tensor([j for j, _ in trip])
                ineg = torch.tensor([k for _, k in trip])
                out.append(mod(embeddings[ia], embeddings[ip], embeddings[ineg]).mean())
            else:
                d = lambda j: torch.pairwise_distance(embeddings[i:i + 1], embeddings[j:j + 1], p=p, eps=eps)[0]  # noqa: E731
                jp = max(P, key=lambda j: float(d(j).detach()))
                kn = min(N, key=lambda k: float(d(k).detach()))
                out.append(mod(embeddings[i:i + 1], embeddings[jp:jp + 1], embeddings[kn:kn + 1])[0])
        return torch.stack(out)

    return fn


@pytest.mark.parametrize("mining", ["batch_all", "batch_hard"])
@pytest.mark.parametrize("params", [{}, {"swap": True, "margin": 0.4}, {"p": 1.5}])
def test_triplet_mining_vs_torch_enumeration(mining, params):
    rng = np.random.default_rng(2)
    labels = np.array([3, 1, 3, 3, 1, 7, 7, 5])  # label 5: an anchor without a positive
    e = rng.normal(scale=0.5, size=(4, 6))[[0, 1, 0, 0, 1, 2, 2, 3]] + rng.normal(scale=0.6, size=(8, 6))
    full = {"margin": 1.0, "p": 2.0, "eps": 1e-6, "swap": False, **params}
    loss = lossgrad.get("triplet", mining=mining, **params)
    _compare(loss, {"embeddings": e, "labels": labels}, _mined_torch(mining, **full), ("embeddings",))
    assert loss.value(embeddings=e, labels=labels)[7] == 0.0


def test_triplet_batch_all_counts_give_the_mean_over_triplets():
    rng = np.random.default_rng(3)
    labels = np.array([0, 0, 1, 1, 1, 2])
    e = rng.normal(size=(6, 3))
    loss = lossgrad.get("triplet", mining="batch_all", margin=2.0)
    counts = loss.triplet_counts(labels)
    plain = lossgrad.get("triplet", margin=2.0)
    trip = [(i, j, k) for i in range(6) for j in range(6) for k in range(6)
            if i != j and labels[i] == labels[j] and labels[k] != labels[i]]
    assert counts.sum() == len(trip)
    a, p, n = (e[[t[s] for t in trip]] for s in range(3))
    expected = plain(anchor=a, positive=p, negative=n)
    np.testing.assert_allclose(loss(embeddings=e, labels=labels, sample_weight=counts), expected, rtol=1e-13)


@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_margin_ranking_vs_torch(margin):
    rng = np.random.default_rng(4)
    x1, x2 = rng.normal(size=20), rng.normal(size=20)
    t = rng.choice([-1.0, 1.0], 20)
    mod = torch.nn.MarginRankingLoss(margin=margin, reduction="none")
    _compare(lossgrad.get("margin_ranking", margin=margin), {"x1": x1, "x2": x2, "target": t},
             lambda x1, x2, target: mod(x1, x2, target), ("x1", "x2"))
    np.testing.assert_allclose(lossgrad.get("margin_ranking", margin=margin)(x1=x1, x2=x2, target=t),
                               float(torch.nn.MarginRankingLoss(margin=margin)(*map(torch.as_tensor, (x1, x2, t)))),
                               rtol=1e-13)


@pytest.mark.parametrize("margin", [0.0, 0.4, -0.3])
def test_cosine_embedding_vs_torch(margin):
    rng = np.random.default_rng(5)
    x1 = _rows(rng, 12, 4)
    ins = {"x1": x1, "x2": x1 + _rows(rng, 12, 4, 1.5), "target": rng.choice([-1.0, 1.0], 12)}
    mod = torch.nn.CosineEmbeddingLoss(margin=margin, reduction="none")
    _compare(lossgrad.get("cosine_embedding", margin=margin), ins, lambda x1, x2, target: mod(x1, x2, target),
             ("x1", "x2"), rtol=1e-9)


# ---------------------------------------------------------------- transcriptions


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_contrastive_vs_torch_transcription(distance):
    rng = np.random.default_rng(6)
    x1 = _rows(rng, 12, 4)
    spread = np.linspace(0.1, 2.0, 12)[:, None]  # near and far pairs
    ins = {"x1": x1, "x2": x1 + spread * _rows(rng, 12, 4), "target": (np.arange(12) % 2).astype(float)}
    m = 2.0 if distance == "euclidean" else 0.3

    def fn(x1, x2, target):
        D = torch.linalg.vector_norm(x1 - x2, dim=1) if distance == "euclidean" else 1 - F.cosine_similarity(x1, x2)
        return 0.5 * (target * D**2 + (1 - target) * torch.clamp(m - D, min=0) ** 2)

    loss = lossgrad.get("contrastive", margin=m, distance=distance)
    _compare(loss, ins, fn, ("x1", "x2"))
    v = loss.value(**ins)
    assert np.any((v > 0) & (ins["target"] == 0)) and np.any((v == 0) & (ins["target"] == 0))


@pytest.mark.parametrize("temperature", [0.07, 0.5])
@pytest.mark.parametrize("symmetric", [False, True])
def test_info_nce_vs_torch_cross_entropy(temperature, symmetric):
    rng = np.random.default_rng(7)
    a = _rows(rng, 6, 5)
    ins = {"anchors": a, "positives": a + _rows(rng, 6, 5, 0.8)}
    _compare(lossgrad.get("info_nce", temperature=temperature, symmetric=symmetric), ins,
             info_nce_torch(temperature, symmetric), ("anchors", "positives"), rtol=1e-9)


def info_nce_torch(temperature, symmetric):
    """InfoNCE / NT-Xent per anchor from F.normalize and F.cross_entropy (no lossgrad)."""

    def fn(anchors, positives):
        n = anchors.shape[0]
        if not symmetric:
            S = F.normalize(anchors, dim=1) @ F.normalize(positives, dim=1).T / temperature
            return F.cross_entropy(S, torch.arange(n), reduction="none")
        z = F.normalize(torch.cat([anchors, positives]), dim=1)
        S = (z @ z.T / temperature).masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
        lk = F.cross_entropy(S, (torch.arange(2 * n) + n) % (2 * n), reduction="none")
        return 0.5 * (lk[:n] + lk[n:])

    return fn


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("with_negatives", [False, True])
def test_multiple_negatives_ranking_vs_sentence_transformers_form(similarity, with_negatives):
    rng = np.random.default_rng(8)
    a = _rows(rng, 5, 4)
    ins = {"anchors": a, "positives": a + _rows(rng, 5, 4, 0.7)}
    if with_negatives:
        ins["negatives"] = _rows(rng, 3, 4)
    scale = 20.0 if similarity == "cosine" else 2.0

    def fn(anchors, positives, negatives=None):
        cand = positives if negatives is None else torch.cat([positives, negatives])
        if similarity == "cosine":
            S = F.normalize(anchors, dim=1) @ F.normalize(cand, dim=1).T
        else:
            S = anchors @ cand.T
        return F.cross_entropy(S * scale, torch.arange(anchors.shape[0]), reduction="none")

    diff = ("anchors", "positives") + (("negatives",) if with_negatives else ())
    _compare(lossgrad.get("multiple_negatives_ranking", scale=scale, similarity=similarity), ins, fn, diff, rtol=1e-9)


def _margin_torch(kind, scale, margin, easy_margin=False):
    def fn(embeddings, labels, weight):
        cos = F.linear(F.normalize(embeddings), F.normalize(weight)).clamp(-1, 1)
        onehot = F.one_hot(labels.long(), weight.shape[0]).to(cos.dtype)
        if kind == "cosface":
            phi = cos - margin
        else:
            sine = torch.sqrt((1.0 - cos**2).clamp(min=0))
            phi = cos * math.cos(margin) - sine * math.sin(margin)
            if easy_margin:
                phi = torch.where(cos > 0, phi, cos)
            else:
                phi = torch.where(cos > math.cos(math.pi - margin), phi, cos - math.sin(math.pi - margin) * margin)
        logits = scale * (onehot * phi + (1 - onehot) * cos)
        return F.cross_entropy(logits, labels.long(), reduction="none")

    return fn


@pytest.mark.parametrize(("kind", "params"), [("arcface", {}), ("arcface", {"scale": 8.0, "margin": 0.3}),
                                              ("arcface", {"easy_margin": True, "scale": 16.0}),
                                              ("cosface", {}), ("cosface", {"scale": 10.0, "margin": 0.1})])
def test_arcface_cosface_vs_torch(kind, params):
    rng = np.random.default_rng(9)
    n, k, d = 10, 4, 3
    W = rng.normal(size=(k, d))
    labels = rng.integers(0, k, n)
    x = W[labels] + rng.normal(scale=1.5, size=(n, d))  # a spread of angles, some obtuse
    x[0] = -W[labels[0]] + 0.05 * rng.normal(size=d)  # theta + m > pi: the fallback branch
    loss = lossgrad.get(kind, **params)
    full = {"scale": 64.0, "margin": 0.5 if kind == "arcface" else 0.35, **params}
    _compare(loss, {"embeddings": x, "labels": labels, "weight": W},
             _margin_torch(kind, full["scale"], full["margin"], full.get("easy_margin", False)),
             ("embeddings", "weight"), rtol=1e-8)


def _ge2e_torch(kind):
    def fn(embeddings, w, b):
        J, M, _ = embeddings.shape
        cent = embeddings.mean(dim=1)
        excl = (embeddings.sum(dim=1, keepdim=True) - embeddings) / (M - 1)
        rows = []
        for j in range(J):
            for i in range(M):
                cos = [F.cosine_similarity(embeddings[j, i], excl[j, i] if k == j else cent[k], dim=0) for k in range(J)]
                S = w * torch.stack(cos) + b
                if kind == "softmax":
                    rows.append(-S[j] + torch.logsumexp(S, dim=0))
                else:
                    others = torch.stack([torch.sigmoid(S[k]) for k in range(J) if k != j])
                    rows.append(1 - torch.sigmoid(S[j]) + others.max())
        return torch.stack(rows).reshape(J, M)

    return fn


@pytest.mark.parametrize("kind", ["softmax", "contrast"])
def test_ge2e_vs_torch_transcription(kind):
    rng = np.random.default_rng(10)
    e = rng.normal(size=(3, 1, 4)) + rng.normal(scale=0.7, size=(3, 4, 4))
    ins = {"embeddings": e, "w": 7.5, "b": -2.0}
    _compare(lossgrad.get("ge2e", kind=kind), ins, _ge2e_torch(kind), ("embeddings", "w", "b"), rtol=1e-9)
