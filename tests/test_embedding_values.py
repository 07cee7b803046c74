"""Embedding and pair losses: values against direct Python loops, bad input, extremes, JAX.

The loop implementations below follow the formulas of each reference one item at a
time with the math module (no vectorisation, no lossgrad helper).  Gradients against
finite differences are in tests/test_batch_contract.py (every variant) and against
PyTorch autograd in tests/test_embedding_oracles.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import lossgrad


def norm(v, p=2.0):
    return sum(abs(x) ** p for x in v) ** (1.0 / p)


def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / (norm(a) * norm(b))


def lse(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


RNG = np.random.default_rng(11)
X1 = RNG.normal(size=(6, 4))
X2 = X1 + np.linspace(0.2, 2.0, 6)[:, None] * RNG.normal(size=(6, 4))
X3 = X1 + RNG.normal(size=(6, 4))


def test_contrastive_loop():
    t = np.array([1, 0, 1, 0, 0, 1])
    for distance, m in (("euclidean", 2.0), ("cosine", 0.5)):
        out = []
        for a, b, y in zip(X1, X2, t):
            D = norm(a - b) if distance == "euclidean" else 1 - cos(a, b)
            out.append(0.5 * (y * D * D + (1 - y) * max(0.0, m - D) ** 2))
        got = lossgrad.get("contrastive", margin=m, distance=distance).value(x1=X1, x2=X2, target=t)
        np.testing.assert_allclose(got, out, rtol=1e-12)


@pytest.mark.parametrize("params", [{}, {"swap": True, "p": 1.0}, {"p": 3.0, "eps": 0.01}])
def test_triplet_loop(params):
    full = {"margin": 1.0, "p": 2.0, "eps": 1e-6, "swap": False, **params}
    out = []
    for a, p, n in zip(X1, X2, X3):
        d = lambda x, y: norm(x - y + full["eps"], full["p"])  # noqa: E731
        dn = min(d(a, n), d(p, n)) if full["swap"] else d(a, n)
        out.append(max(0.0, d(a, p) - dn + full["margin"]))
    got = lossgrad.get("triplet", **params).value(anchor=X1, positive=X2, negative=X3)
    np.testing.assert_allclose(got, out, rtol=1e-12)


def test_triplet_mining_loop():
    labels = [0, 1, 0, 1, 2, 0]
    e = X3
    d = lambda i, j: norm(e[i] - e[j] + 1e-6)  # noqa: E731
    all_, hard = [], []
    for i in range(6):
        P = [j for j in range(6) if j != i and labels[j] == labels[i]]
        N = [k for k in range(6) if labels[k] != labels[i]]
        trip = [max(0.0, d(i, j) - d(i, k) + 1.0) for j in P for k in N]
        all_.append(sum(trip) / len(trip) if trip else 0.0)
        hard.append(max(0.0, max(d(i, j) for j in P) - min(d(i, k) for k in N) + 1.0) if P and N else 0.0)
    for mining, ref in (("batch_all", all_), ("batch_hard", hard)):
        got = lossgrad.get("triplet", mining=mining).value(embeddings=e, labels=labels)
        np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_margin_ranking_and_cosine_embedding_loops():
    t = np.array([1, -1, 1, -1, -1, 1])
    s1, s2 = X1[:, 0], X2[:, 0]
    ref = [max(0.0, -y * (a - b) + 0.3) for a, b, y in zip(s1, s2, t)]
    np.testing.assert_allclose(lossgrad.get("margin_ranking", margin=0.3).value(x1=s1, x2=s2, target=t), ref, rtol=1e-12)
    ref = [1 - cos(a, b) if y == 1 else max(0.0, cos(a, b) - 0.1) for a, b, y in zip(X1, X2, t)]
    np.testing.assert_allclose(lossgrad.get("cosine_embedding", margin=0.1).value(x1=X1, x2=X2, target=t), ref,
                               rtol=1e-12)


def test_info_nce_loop():
    tau = 0.3
    n = len(X1)
    ref = [lse([cos(X1[i], X2[j]) / tau for j in range(n)]) - cos(X1[i], X2[i]) / tau for i in range(n)]
    got = lossgrad.get("info_nce", temperature=tau).value(anchors=X1, positives=X2)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    z = list(X1) + list(X2)
    lk = []
    for k in range(2 * n):
        partner = (k + n) % (2 * n)
        lk.append(lse([cos(z[k], z[j]) / tau for j in range(2 * n) if j != k]) - cos(z[k], z[partner]) / tau)
    got = lossgrad.get("info_nce", temperature=tau, symmetric=True).value(anchors=X1, positives=X2)
    np.testing.assert_allclose(got, [(lk[i] + lk[i + n]) / 2 for i in range(n)], rtol=1e-12)


def test_multiple_negatives_ranking_loop():
    neg = X3[:2]
    cand = list(X2) + list(neg)
    ref = [lse([20 * cos(a, c) for c in cand]) - 20 * cos(a, X2[i]) for i, a in enumerate(X1)]
    got = lossgrad.get("multiple_negatives_ranking").value(anchors=X1, positives=X2, negatives=neg)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


@pytest.mark.parametrize(("kind", "params"), [("arcface", {"scale": 8.0}), ("arcface", {"scale": 8.0, "easy_margin": True}),
                                              ("cosface", {"scale": 8.0})])
def test_arcface_cosface_loop(kind, params):
    W = X3[:3]
    labels = [0, 1, 2, 0, 1, 2]
    x = X1.copy()
    x[1] = -W[1]  # theta = pi: the fallback
    s = params["scale"]
    m = 0.5 if kind == "arcface" else 0.35
    ref = []
    for xi, y in zip(x, labels):
        c = [max(-1.0, min(1.0, cos(xi, wj))) for wj in W]
        if kind == "cosface":
            target = c[y] - m
        else:
            theta = math.acos(c[y])
            if params.get("easy_margin"):
                target = math.cos(theta + m) if c[y] > 0 else c[y]
            else:
                target = math.cos(theta + m) if theta + m < math.pi else c[y] - m * math.sin(m)
        logits = [s * (target if j == y else c[j]) for j in range(3)]
        ref.append(lse(logits) - logits[y])
    got = lossgrad.get(kind, **params).value(embeddings=x, labels=labels, weight=W)
    np.testing.assert_allclose(got, ref, rtol=1e-10)


@pytest.mark.parametrize("kind", ["softmax", "contrast"])
def test_ge2e_loop(kind):
    e = RNG.normal(size=(3, 4, 5))
    w, b = 6.0, -1.5
    J, M = 3, 4
    ref = np.zeros((J, M))
    for j in range(J):
        for i in range(M):
            S = []
            for k in range(J):
                members = [e[k, m] for m in range(M) if not (k == j and m == i)]
                c = sum(members) / len(members)
                S.append(w * cos(e[j, i], c) + b)
            if kind == "softmax":
                ref[j, i] = lse(S) - S[j]
            else:
                ref[j, i] = 1 - sig(S[j]) + max(sig(S[k]) for k in range(J) if k != j)
    got = lossgrad.get("ge2e", kind=kind).value(embeddings=e, w=w, b=b)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert np.sum(ref) == pytest.approx(lossgrad.get("ge2e", kind=kind, w=w, b=b)(embeddings=e, reduction="sum"))


def test_ge2e_w_b_shapes_and_softmax_independent_of_b():
    e = RNG.normal(size=(2, 3, 4))
    loss = lossgrad.get("ge2e")
    g = loss.grad(embeddings=e, w=np.array([4.0]), b=np.array([1.0]))
    assert g["w"].shape == (1,) and g["b"].shape == (1,) and g["b"][0] == 0.0
    g0 = loss.grad(embeddings=e)
    assert np.shape(g0["w"]) == () and g0["embeddings"].shape == e.shape
    np.testing.assert_allclose(loss.value(embeddings=e, b=3.0), loss.value(embeddings=e, b=-7.0), rtol=1e-12)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(("name", "kwargs", "exc", "match"), [
    ("triplet", dict(anchor=np.ones((3, 4)), positive=np.ones((3, 5)), negative=np.ones((3, 4))), ValueError,
     "positive.*embedding dimensions differ"),
    ("triplet", dict(anchor=np.ones((3, 4)), positive=np.ones((2, 4)), negative=np.ones((3, 4))), ValueError,
     "batch sizes differ"),
    ("triplet", dict(anchor=np.ones(4), positive=np.ones(4), negative=np.ones(4)), ValueError, "anchor must be 2-dim"),
    ("info_nce", dict(anchors=np.ones((3, 4)), positives=np.ones((3, 2))), ValueError, "embedding dimensions differ"),
    ("info_nce", dict(anchors=np.ones((3, 4)), positives=np.ones((2, 4))), ValueError, "one row per anchor"),
    ("info_nce", dict(anchors=np.ones((1, 4)), positives=np.ones((1, 4))), ValueError, "at least 2 candidates"),
    ("info_nce", dict(anchors=np.zeros((2, 4)), positives=np.ones((2, 4))), ValueError, "anchors must contain non-zero"),
    ("contrastive", dict(x1=np.ones((3, 4)), x2=np.ones((3, 3)), target=np.ones(3)), ValueError,
     "embedding dimensions differ"),
    ("contrastive", dict(x1=np.ones((3, 4)), x2=np.ones((3, 4)), target=np.array([1, -1, 0])), ValueError,
     r"target must contain targets 1 \(similar pair\) or 0"),
    ("contrastive", dict(x1=np.ones((3, 4)), x2=np.ones((3, 4)), target=np.ones(4)), ValueError,
     r"target must have shape \(3,\)"),
    ("cosine_embedding", dict(x1=np.ones((3, 4)), x2=np.ones((3, 4)), target=np.array([1, 0, 1])), ValueError,
     r"target must contain targets in \{-1, \+1\}"),
    ("margin_ranking", dict(x1=np.ones(3), x2=np.ones(4), target=np.ones(3)), ValueError, "same shape"),
    ("arcface", dict(embeddings=np.ones((3, 4)), labels=[0, 1, 5], weight=np.eye(4)[:3]), ValueError,
     r"labels must contain class labels in \[0, 3\)"),
    ("arcface", dict(embeddings=np.ones((3, 4)), labels=[0, 1, 0.5], weight=np.eye(4)[:3]), ValueError,
     "integer class labels"),
    ("arcface", dict(embeddings=np.ones((3, 4)), labels=[0, 1], weight=np.eye(4)[:3]), ValueError,
     r"labels must have shape \(3,\)"),
    ("cosface", dict(embeddings=np.ones((3, 4)), labels=[0, 1, 2], weight=np.ones((3, 5))), ValueError,
     "embedding dimensions differ"),
    ("cosface", dict(embeddings=np.array([[1.0, np.nan], [1.0, 2.0]]), labels=[0, 1], weight=np.eye(2)), ValueError,
     "embeddings contains 1 NaN"),
    ("ge2e", dict(embeddings=np.ones((1, 3, 4))), ValueError, "at least 2 speakers"),
    ("ge2e", dict(embeddings=np.ones((3, 1, 4))), ValueError, "at least 2 utterances"),
    ("ge2e", dict(embeddings=np.ones((3, 4))), ValueError, "embeddings must be 3-dim"),
    ("ge2e", dict(embeddings=np.ones((2, 2, 4)), w=-1.0), ValueError, r"input w must contain a value > 0"),
    ("ge2e", dict(embeddings=np.ones((2, 2, 4)), w=0.0), ValueError, r"input w must contain a value > 0"),
    ("ge2e", dict(embeddings=np.ones((2, 2, 4)), b=np.ones(2)), ValueError, "b must be a scalar"),
    ("triplet", dict(embeddings=np.ones((3, 4)), labels=[0, 1, 1]), TypeError, "unexpected input"),
])
def test_bad_input(name, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        lossgrad.get(name).value(**kwargs)


@pytest.mark.parametrize(("name", "params", "match"), [
    ("triplet", {"p": 0.5}, "p must be"), ("triplet", {"mining": "semi_hard"}, "mining must be one of"),
    ("triplet", {"margin": -1.0}, "margin must be"), ("triplet", {"swap": 1}, "swap must be True or False"),
    ("contrastive", {"distance": "manhattan"}, "distance must be one of"), ("contrastive", {"margin": 0.0}, "margin"),
    ("cosine_embedding", {"margin": 1.5}, "margin must lie in"), ("info_nce", {"temperature": 0.0}, "temperature"),
    ("multiple_negatives_ranking", {"similarity": "l2"}, "similarity"), ("arcface", {"margin": 2.0}, "margin"),
    ("ge2e", {"w": 0.0}, "w must be"), ("ge2e", {"kind": "triplet"}, "kind must be one of"),
    ("ge2e", {"b": float("inf")}, "b must be finite"),
])
def test_bad_parameters(name, params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        lossgrad.get(name, **params)


# ---------------------------------------------------------------- extremes and namespaces


def test_extreme_inputs_stay_finite():
    # ArcFace with x parallel and anti-parallel to W_y: theta = 0 (corner) and theta = pi
    W = np.eye(3)
    x = np.array([[1.0, 0, 0], [1.0, 1e-9, 0], [-1.0, 0, 0]])
    v, g = lossgrad.get("arcface").value_grad(embeddings=x, labels=[0, 0, 0], weight=W)
    assert np.all(np.isfinite(v)) and all(np.all(np.isfinite(a)) for a in g.values())
    # InfoNCE at a tiny temperature, GE2E with a huge w, contrastive at 1e150
    ins = lossgrad.get("info_nce")._example_inputs(np.random.default_rng(0))
    ins["positives"] = np.roll(ins["positives"], 1, axis=0)  # mismatched pairs: a loss of order 1 / temperature
    v, g = lossgrad.get("info_nce", temperature=1e-4).value_grad(**ins)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g["anchors"])) and np.max(v) > 100
    e = np.random.default_rng(1).normal(size=(3, 3, 4))
    for kind in ("softmax", "contrast"):
        v, g = lossgrad.get("ge2e", kind=kind).value_grad(embeddings=e, w=1e8, b=0.0)
        assert all(np.all(np.isfinite(np.asarray(a))) for a in (v, *g.values()))
    v, g = lossgrad.get("contrastive").value_grad(x1=1e150 * X1, x2=1e150 * X2, target=np.ones(6))
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g["x1"]))


@pytest.mark.parametrize("name", ["triplet", "cosface", "margin_ranking"])
def test_jax_inputs(name):
    import jax.numpy as jnp

    loss = lossgrad.get(name)
    ins = loss._example_inputs(np.random.default_rng(5))
    v_np, g_np = loss.value_grad(**ins)
    v, g = loss.value_grad(**{k: jnp.asarray(x) for k, x in ins.items()})
    assert isinstance(v, jnp.ndarray)
    np.testing.assert_allclose(np.asarray(v), v_np, rtol=1e-12)
    for k in g_np:
        np.testing.assert_allclose(np.asarray(g[k]), g_np[k], rtol=1e-10, atol=1e-14)


def test_float32_in_float32_out_torch():
    import torch

    loss = lossgrad.get("ge2e")
    e = torch.randn(3, 4, 5, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    v, g = loss.value_grad(embeddings=e)
    assert v.dtype == torch.float32 and g["embeddings"].dtype == torch.float32 and g["w"].dtype == torch.float32


def test_normalize_second_order_matches_differences_of_the_chain_rule():
    """_embedding_common.normalize_second: the HVP of L(x / ||x||) for a quadratic L in u,
    against central differences of the first-order chain rule, on rows of very different norms."""
    from lossgrad.losses import _embedding_common as C

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5)) * np.array([[1e-3], [1.0], [7.0], [1e3]])
    A = rng.normal(size=(5, 5))
    A, b = A + A.T, rng.normal(size=5)

    def grad_x(z):
        u, n = C.normalize(np, z)
        return C.through_normalize(np, u @ A + b, u, n)

    v = rng.normal(size=x.shape) * np.array([[1e-3], [1.0], [7.0], [1e3]])
    u, n = C.normalize(np, x)
    du, curvature = C.normalize_second(np, u, n, u @ A + b, v)
    hv = C.through_normalize(np, du @ A, u, n) + curvature
    h = 1e-6
    fd = (grad_x(x + h * v) - grad_x(x - h * v)) / (2 * h)
    assert np.all(np.abs(hv - fd).max(axis=1) <= 1e-6 * np.abs(fd).max(axis=1))  # row by row: scales differ
