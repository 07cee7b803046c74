"""LambdaLoss (Wang et al. 2018): values and gradients against a plain-Python loop and a
PyTorch transcription with autograd (ranks from detached scores), Hessian blocks against
torch's autograd Hessian, the RankNet identity, hand-computed weights, the tie rule,
verify on every variant, other array libraries, errors, and an XGBoost ranker."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import lossgrad
from lossgrad._registry import entry
from lossgrad.losses.ranking import RankNet
from lossgrad.losses.ranking_lambda import SCHEMES, LambdaLoss

LN2 = math.log(2.0)

CONFIGS = [LambdaLoss(scheme=sc, k=k, sigma=sig) for sc in SCHEMES for k, sig in ((None, 1.0), (1, 1.7), (3, 0.6))]
CONFIGS += [LambdaLoss(scheme="ndcg2++", mu=0.0), LambdaLoss(scheme="ndcg2++", mu=2.5, k=4, sigma=2.0)]
VARIANTS = entry("lambdaloss").instances()


def _inputs(seed=0, n=6, m=7, gap=1e-3):
    """Padded lists (padding in the middle and at the end, TF-Ranking's -1 relevance on
    padding), one list with a single grade (no pair) and one with grades all 0; scores
    redrawn until every two real scores of a list are more than ``gap`` apart, so the
    finite differences and torch's derivatives stay on one piece."""
    rng = np.random.default_rng(seed)
    relevance = rng.integers(0, 5, size=(n, m)).astype(np.float64)
    relevance[:, 0], relevance[:, 1] = 4.0, 0.0
    relevance[2] = 1.0
    relevance[5] = 0.0
    mask = np.ones((n, m), dtype=bool)
    mask[1, 5:] = False
    mask[3, 2:4] = False
    relevance[~mask] = -1.0
    scores = rng.normal(size=(n, m)) * 1.5
    for li in range(n):
        while np.min(np.diff(np.sort(scores[li][mask[li]]))) <= gap:
            scores[li] = rng.normal(size=m) * 1.5
    return scores, relevance, mask


# ---------------------------------------------------------------- independent references


def _loop(loss, s, r, m):
    """Per-list values and the gradient of their sum, written from the paper with math."""
    n, width = s.shape
    values, grad = np.zeros(n), np.zeros((n, width))
    k, sig = loss.k, loss.sigma

    def inv_d(p):  # 1 / D(p), truncated at k
        return 1.0 / math.log2(1.0 + p) if (k is None or p <= k) else 0.0

    for li in range(n):
        idx = [j for j in range(width) if m[li, j]]
        order = sorted(idx, key=lambda a: (-s[li, a], a))
        rank = {a: p + 1 for p, a in enumerate(order)}
        gain = {a: 2.0 ** r[li, a] - 1.0 for a in idx}
        ideal = sorted(gain.values(), reverse=True)
        maxdcg = sum(g * inv_d(p + 1) for p, g in enumerate(ideal))
        for a in idx:
            for b in idx:
                if a == b or (loss.scheme != "ndcg1" and not r[li, a] > r[li, b]):
                    continue
                if k is not None and min(rank[a], rank[b]) > k:
                    continue
                gap = abs(rank[a] - rank[b])
                delta = 1.0 / math.log2(1.0 + gap) - 1.0 / math.log2(2.0 + gap)
                rho = abs(inv_d(rank[a]) - inv_d(rank[b]))
                dg = abs(gain[a] - gain[b])
                w = {"ranknet": 1.0, "ndcg2": dg * delta / maxdcg if maxdcg else 0.0,
                     "lambdarank": dg * rho / maxdcg if maxdcg else 0.0,
                     "ndcg2++": dg * (rho + loss.mu * delta) / maxdcg if maxdcg else 0.0,
                     "ndcg1": gain[a] * inv_d(rank[a]) / maxdcg if maxdcg else 0.0}[loss.scheme]
                x = sig * (s[li, a] - s[li, b])
                values[li] += w * (math.log1p(math.exp(-x)) if x > 0 else -x + math.log1p(math.exp(x))) / LN2
                lam = w * sig / (1.0 + math.exp(x)) / LN2  # d/dx of log2(1 + e^-x) is -sigmoid(-x) / ln 2
                grad[li, a] -= lam
                grad[li, b] += lam
    return values, grad


def torch_values(loss, st, r, m):
    """Per-list values in torch ops; the ranks (hence the weights) come from the detached
    scores by counting, for each item, the real items ahead of it (higher score, or equal
    score and lower index), so autograd treats them as constants."""
    width = st.shape[1]
    mt, rt = torch.tensor(m), torch.tensor(np.where(m, r, 0.0))
    sd = st.detach()
    idx = torch.arange(width)
    ahead = (sd[:, None, :] > sd[:, :, None]) | ((sd[:, None, :] == sd[:, :, None]) & (idx[None, :] < idx[:, None]))
    pi = 1.0 + (ahead & mt[:, None, :]).sum(-1).double()
    pos = torch.arange(1, width + 1, dtype=torch.float64)
    k = loss.k if loss.k is not None else width

    def inv_d(p):
        return torch.where(p <= k, 1.0 / torch.log2(1.0 + p), torch.zeros_like(p))

    gain = torch.where(mt, 2.0**rt - 1.0, torch.zeros_like(rt))
    maxdcg = (torch.sort(gain, dim=-1, descending=True).values * inv_d(pos)).sum(-1)[:, None, None]
    maxdcg = torch.where(maxdcg > 0, maxdcg, torch.ones_like(maxdcg))  # grades all 0: every gain is 0
    pair = mt[:, :, None] & mt[:, None, :]
    pair = pair & (~torch.eye(width, dtype=torch.bool) if loss.scheme == "ndcg1" else rt[:, :, None] > rt[:, None, :])
    pair = pair & (torch.minimum(pi[:, :, None], pi[:, None, :]) <= k)
    dg = (gain[:, :, None] - gain[:, None, :]).abs()
    gap = (pi[:, :, None] - pi[:, None, :]).abs().clamp_min(1.0)
    delta = 1.0 / torch.log2(1.0 + gap) - 1.0 / torch.log2(2.0 + gap)
    rho = (inv_d(pi)[:, :, None] - inv_d(pi)[:, None, :]).abs()
    w = {"ranknet": torch.ones_like(dg), "ndcg2": dg * delta / maxdcg, "lambdarank": dg * rho / maxdcg,
         "ndcg2++": dg * (rho + loss.mu * delta) / maxdcg,
         "ndcg1": (gain * inv_d(pi))[:, :, None] / maxdcg + 0.0 * dg}[loss.scheme]
    w = torch.where(pair, w, torch.zeros_like(w))
    d = loss.sigma * (st[:, :, None] - st[:, None, :])
    return (w * torch.logaddexp(torch.zeros_like(d), -d)).sum((-1, -2)) / LN2


def _torch_value_grad(loss, s, r, m, w):
    st = torch.tensor(s, requires_grad=True)
    val = torch_values(loss, st, r, m)
    (val * torch.tensor(w)).sum().backward()
    return val.detach().numpy() * w, st.grad.numpy()


def _rel_err(a, b):
    return float(np.max(np.abs(np.asarray(a) - b)) / max(np.max(np.abs(b)), 1e-300))


# ---------------------------------------------------------------- (a) values and gradients


@pytest.mark.parametrize("loss", CONFIGS, ids=repr)
def test_value_and_gradient_match_the_loop_and_torch_autograd(loss):
    s, r, m = _inputs(1)
    w = np.linspace(0.4, 1.9, s.shape[0])
    v, g = loss.value_grad(scores=s, relevance=r, mask=m, sample_weight=w)
    lv, lg = _loop(loss, s, r, m)
    tv, tg = _torch_value_grad(loss, s, r, m, w)
    assert _rel_err(v, lv * w) < 1e-12 and _rel_err(g["scores"], lg * w[:, None]) < 1e-12
    assert _rel_err(v, tv) < 1e-12 and _rel_err(g["scores"], tg) < 1e-12
    assert np.all(g["scores"][~m] == 0.0)
    assert v[5] == 0.0 and (v[2] == 0.0 or loss.scheme == "ndcg1")  # grades all 0; one grade: no pair in P
    # without a mask: every item real
    s2, r2 = s[:, :5], np.abs(r[:, :5])
    v2, g2 = loss.value_grad(scores=s2, relevance=r2)
    lv2, lg2 = _loop(loss, s2, r2, np.ones_like(s2, dtype=bool))
    assert _rel_err(v2, lv2) < 1e-12 and _rel_err(g2["scores"], lg2) < 1e-12


@pytest.mark.parametrize("loss", CONFIGS, ids=repr)
def test_gradient_matches_central_differences(loss):
    """The piecewise gradient is the derivative of the value where no two items swap."""
    s, r, m = _inputs(2)
    g = loss.grad(scores=s, relevance=r, mask=m)["scores"]
    fd = np.zeros_like(s)
    h = 1e-6
    for i in np.ndindex(s.shape):
        e = np.zeros_like(s)
        e[i] = h
        fd[i] = (loss.value(scores=s + e, relevance=r, mask=m).sum() - loss.value(scores=s - e, relevance=r, mask=m).sum()) / (2 * h)
    assert np.max(np.abs(fd - g)) < 1e-7


# ---------------------------------------------------------------- (b) second order


@pytest.mark.parametrize("loss", CONFIGS, ids=repr)
def test_hessian_blocks_match_torch_autograd_hessian(loss):
    s, r, m = _inputs(3)
    n, width = s.shape
    H = torch.autograd.functional.hessian(lambda flat: torch_values(loss, flat.reshape(n, width), r, m).sum(),
                                          torch.tensor(s).reshape(-1)).numpy().reshape(n, width, n, width)
    blocks = np.stack([H[i, :, i, :] for i in range(n)])
    for i in range(n):
        H[i, :, i, :] = 0.0
    assert np.max(np.abs(H)) == 0.0  # lists do not interact
    ours = loss.hess(scores=s, relevance=r, mask=m)["scores"]
    assert _rel_err(ours, blocks) < 1e-12
    assert np.all(ours[~m] == 0.0) and np.all(np.swapaxes(ours, 1, 2)[~m] == 0.0)
    eig = np.linalg.eigvalsh(ours)  # a weighted pair Laplacian on each piece: PSD, constants in the null space
    assert eig.min() >= -1e-14 * max(np.abs(eig).max(), 1e-300)
    np.testing.assert_allclose(ours @ np.ones(width), 0.0, atol=1e-15)


@pytest.mark.parametrize("loss", CONFIGS, ids=repr)
def test_hvp_hess_diag_and_grad_hess_diag_agree_with_the_blocks(loss):
    s, r, m = _inputs(4)
    w = np.linspace(0.3, 1.7, s.shape[0])
    kw = {"scores": s, "relevance": r, "mask": m, "sample_weight": w}
    H = loss.hess(**kw)["scores"]
    np.testing.assert_allclose(H, loss.hess(scores=s, relevance=r, mask=m)["scores"] * w[:, None, None],
                               rtol=1e-14, atol=1e-300)
    v = np.random.default_rng(0).normal(size=s.shape)
    np.testing.assert_allclose(loss.hvp({"scores": v}, **kw)["scores"], np.einsum("nij,nj->ni", H, v),
                               rtol=1e-12, atol=1e-15)
    diag = loss.hess_diag(**kw)["scores"]
    np.testing.assert_allclose(diag, np.einsum("nii->ni", H), rtol=1e-13, atol=1e-300)
    g, d2 = loss.grad_hess_diag(**kw)
    np.testing.assert_array_equal(d2["scores"], diag)
    np.testing.assert_array_equal(g["scores"], loss.grad(**kw)["scores"])
    xp, data, _ = loss._prepare_batch({"scores": s, "relevance": r, "mask": m}, None)
    jvp = np.asarray(loss._item_jvp(xp, data, {"scores": v}))
    np.testing.assert_allclose(jvp, np.sum(loss.grad(scores=s, relevance=r, mask=m)["scores"] * v, axis=1),
                               rtol=1e-14, atol=1e-15)


# ---------------------------------------------------------------- (c) RankNet identity


@pytest.mark.parametrize("sigma", [1.0, 0.3, 2.5])
def test_ranknet_scheme_is_ranknet_unnormalised_over_ln2(sigma):
    s, r, m = _inputs(5)
    ours, theirs = LambdaLoss(scheme="ranknet", sigma=sigma), RankNet(sigma=sigma, normalize=False)
    kw = {"scores": s, "relevance": r, "mask": m}
    np.testing.assert_allclose(ours.value(**kw), theirs.value(**kw) / LN2, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(ours.grad(**kw)["scores"], theirs.grad(**kw)["scores"] / LN2, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(ours.hess(**kw)["scores"], theirs.hess(**kw)["scores"] / LN2, rtol=1e-14, atol=1e-15)


# ---------------------------------------------------------------- (d) weights by hand


def test_weights_of_a_three_item_list_by_hand():
    """scores (0.5, 2.0, -1.0), grades (2, 0, 1): pi = (2, 1, 3), G = (3, 0, 1),
    maxDCG = 3/D(1) + 1/D(2) = 3 + 1/log2(3).  Pairs (0, 1), (0, 2), (2, 1) with
    |G_i - G_j| = 3, 2, 1 and |pi_i - pi_j| = 1, 1, 2."""
    s, r = np.array([[0.5, 2.0, -1.0]]), np.array([[2.0, 0.0, 1.0]])
    z, inv3 = 3.0 + 1.0 / math.log2(3.0), 1.0 / math.log2(3.0)
    d1, d2 = 1.0 - inv3, inv3 - 0.5  # 1/D(1) - 1/D(2), 1/D(2) - 1/D(3)
    ndcg2 = np.zeros((1, 3, 3))
    ndcg2[0, 0, 1], ndcg2[0, 0, 2], ndcg2[0, 2, 1] = 3 * d1 / z, 2 * d1 / z, 1 * d2 / z
    lambdarank = np.zeros((1, 3, 3))  # |1/D(pi_i) - 1/D(pi_j)|: ranks (2, 1), (2, 3), (3, 1)
    lambdarank[0, 0, 1], lambdarank[0, 0, 2], lambdarank[0, 2, 1] = 3 * d1 / z, 2 * d2 / z, 1 * 0.5 / z
    np.testing.assert_allclose(LambdaLoss().pair_weights(scores=s, relevance=r), ndcg2, rtol=1e-15, atol=0)
    np.testing.assert_allclose(LambdaLoss(scheme="lambdarank").pair_weights(scores=s, relevance=r), lambdarank,
                               rtol=1e-15, atol=0)
    np.testing.assert_allclose(LambdaLoss(scheme="ndcg2++", mu=10.0).pair_weights(scores=s, relevance=r),
                               lambdarank + 10.0 * ndcg2, rtol=1e-15, atol=0)
    x = np.array([[s[0, 0] - s[0, 1], s[0, 0] - s[0, 2], s[0, 2] - s[0, 1]]])
    pairs = [(0, 1), (0, 2), (2, 1)]
    expect = sum(ndcg2[0, i, j] * math.log2(1.0 + math.exp(-x[0, p])) for p, (i, j) in enumerate(pairs))
    assert LambdaLoss().value(scores=s, relevance=r)[0] == pytest.approx(expect, rel=1e-15)
    # ndcg1: every ordered pair i != j, w_ij = G_i / (D(pi_i) maxDCG); k = 1 keeps pairs touching rank 1
    w1 = LambdaLoss(scheme="ndcg1").pair_weights(scores=s, relevance=r)[0]
    np.testing.assert_allclose(w1, np.array([[0, 3 * inv3, 3 * inv3], [0, 0, 0], [0.5, 0.5, 0]]) / z, rtol=1e-15)
    wk = LambdaLoss(scheme="ranknet", k=1).pair_weights(scores=s, relevance=r)[0]
    np.testing.assert_array_equal(wk, [[0, 1, 0], [0, 0, 0], [0, 1, 0]])  # (0, 2) has ranks (2, 3) > 1


# ---------------------------------------------------------------- ties, jumps, truncation, padding


def test_tie_rule_lower_index_ranks_first():
    """At equal scores the lower index ranks first: the value is the limit from the side
    where the lower-index item scores higher, and differs from the other side's."""
    r = np.array([[0.0, 3.0, 1.0, 2.0]])
    s0 = np.array([[0.2, 0.2, -0.5, 1.0]])  # items 0 and 1 tied
    loss = LambdaLoss()
    at = loss.value(scores=s0, relevance=r)[0]
    for t in (1e-9, 1e-11):
        above = loss.value(scores=s0 + np.array([[t, 0, 0, 0]]), relevance=r)[0]  # item 0 ahead
        below = loss.value(scores=s0 - np.array([[t, 0, 0, 0]]), relevance=r)[0]  # item 1 ahead
        assert abs(at - above) < 1e-8 and abs(at - below) > 1e-3
    np.testing.assert_allclose(loss.grad(scores=s0, relevance=r)["scores"],
                               loss.grad(scores=s0 + np.array([[1e-12, 0, 0, 0]]), relevance=r)["scores"], atol=1e-10)
    w = LambdaLoss(scheme="lambdarank").pair_weights(scores=np.zeros((1, 3)), relevance=np.array([[0.0, 1.0, 2.0]]))
    z = 3.0 + 1.0 / math.log2(3.0)  # ranks (1, 2, 3) by index; G = (0, 1, 3)
    assert w[0, 2, 0] == pytest.approx(3.0 * (1.0 - 0.5) / z, rel=1e-15)  # |G_2 - G_0| |1/D(1) - 1/D(3)|


def test_the_value_jumps_where_two_items_swap():
    r = np.array([[2.0, 1.0, 0.0]])
    loss = LambdaLoss()
    left = loss.value(scores=np.array([[1.0, 0.5 - 1e-9, 0.5]]), relevance=r)[0]
    right = loss.value(scores=np.array([[1.0, 0.5 + 1e-9, 0.5]]), relevance=r)[0]
    assert abs(left - right) > 1e-2  # the pair (0, 2) moves from |pi diff| = 1 to 2
    assert loss.props.differentiability == -1 and not loss.props.convex


def test_truncation_at_or_beyond_the_list_length_is_no_truncation():
    s, r, m = _inputs(6)
    for scheme in SCHEMES:
        a = LambdaLoss(scheme=scheme).value_grad(scores=s, relevance=r, mask=m)
        b = LambdaLoss(scheme=scheme, k=s.shape[1]).value_grad(scores=s, relevance=r, mask=m)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-15, atol=0)
        np.testing.assert_allclose(a[1]["scores"], b[1]["scores"], rtol=1e-15, atol=0)


def test_padding_is_never_read_and_equals_truncation():
    s, r, m = _inputs(7)
    dirty_s, dirty_r = s.copy(), r.copy()
    dirty_s[~m], dirty_r[~m] = np.nan, np.nan
    for loss in CONFIGS:
        clean = loss.value_grad(scores=s, relevance=r, mask=m)
        dirty = loss.value_grad(scores=dirty_s, relevance=dirty_r, mask=m)
        np.testing.assert_array_equal(clean[0], dirty[0])
        np.testing.assert_array_equal(clean[1]["scores"], dirty[1]["scores"])
        np.testing.assert_array_equal(loss.hess(scores=s, relevance=r, mask=m)["scores"],
                                      loss.hess(scores=dirty_s, relevance=dirty_r, mask=m)["scores"])
        cut = loss.value(scores=s[1:2, :5], relevance=r[1:2, :5])[0]
        assert clean[0][1] == pytest.approx(cut, rel=1e-14)


def test_large_grades_and_scores_stay_finite():
    s = np.array([[1e3, -2e3, 0.5, 7e2]])
    r = np.array([[2000.0, 1999.0, 0.0, 1500.0]])
    for loss in CONFIGS:
        v, g = loss.value_grad(scores=s, relevance=r)
        h = loss.hess(scores=s, relevance=r)["scores"]
        assert np.all(np.isfinite(v)) and np.all(np.isfinite(g["scores"])) and np.all(np.isfinite(h)), loss
    # relative gains, the 2^2000 cancels: ranks (1, 4, 3, 2), G / 2^2000 = (1, 1/2, 0, 2^-500)
    w = LambdaLoss().pair_weights(scores=s, relevance=r)[0]
    z = 1.0 + 0.5 / math.log2(3.0) + 2.0**-500 / 2.0
    assert w[0, 1] == pytest.approx(0.5 * (0.5 - 1.0 / math.log2(5.0)) / z, rel=1e-15)


# ---------------------------------------------------------------- (e) verify


@pytest.mark.parametrize("loss", list(dict.fromkeys(VARIANTS + CONFIGS)), ids=repr)
def test_verify_passes(loss):
    report = lossgrad.verify(loss)
    assert report.passed, str(report)


def test_registered_variants_cover_the_schemes_and_parameters():
    assert lossgrad.get("lambdaloss") == LambdaLoss()
    assert {v.scheme for v in VARIANTS} == set(SCHEMES)
    assert any(v.k is not None for v in VARIANTS) and any(v.sigma != 1.0 for v in VARIANTS)
    assert any(v.mu != 10.0 for v in VARIANTS if v.scheme == "ndcg2++")
    ex = LambdaLoss()._example_inputs(np.random.default_rng(0))
    for row, keep in zip(ex["scores"], ex["mask"]):
        assert np.min(np.diff(np.sort(row[keep]))) > 0.05


# ---------------------------------------------------------------- (f) other arrays and dtypes


@pytest.mark.parametrize("loss", [LambdaLoss(), LambdaLoss(scheme="ndcg2++", k=3), LambdaLoss(scheme="ndcg1")],
                         ids=repr)
def test_torch_jax_and_float32(loss):
    import jax.numpy as jnp

    s, r, m = _inputs(8)
    v, g = loss.value_grad(scores=s, relevance=r, mask=m)
    H = loss.hess(scores=s, relevance=r, mask=m)["scores"]
    ts, tr, tm = torch.tensor(s), torch.tensor(r), torch.tensor(m)
    tv, tg = loss.value_grad(scores=ts, relevance=tr, mask=tm)
    assert isinstance(tv, torch.Tensor) and isinstance(tg["scores"], torch.Tensor)
    np.testing.assert_allclose(tv.numpy(), v, rtol=1e-14)
    np.testing.assert_allclose(tg["scores"].numpy(), g["scores"], rtol=1e-14, atol=1e-16)
    th = loss.hvp({"scores": torch.ones(s.shape, dtype=torch.float64)}, scores=ts, relevance=tr, mask=tm)["scores"]
    assert isinstance(th, torch.Tensor)
    np.testing.assert_allclose(th.numpy(), H.sum(-1), atol=1e-14)
    v32, g32 = loss.value_grad(scores=s.astype(np.float32), relevance=r, mask=m)
    assert v32.dtype == np.float32 and g32["scores"].dtype == np.float32
    assert loss.hess_diag(scores=s.astype(np.float32), relevance=r, mask=m)["scores"].dtype == np.float32
    np.testing.assert_allclose(g32["scores"], g["scores"], rtol=1e-4, atol=1e-5)
    t32 = loss.grad(scores=ts.float(), relevance=tr.float(), mask=tm)["scores"]
    assert t32.dtype == torch.float32
    jv, jg = loss.value_grad(scores=jnp.asarray(s, dtype=jnp.float32), relevance=jnp.asarray(r, dtype=jnp.float32),
                             mask=jnp.asarray(m))
    assert jv.dtype == jnp.float32 and jg["scores"].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(jg["scores"]), g["scores"], rtol=2e-4, atol=2e-5)


# ---------------------------------------------------------------- (g) errors


def test_bad_parameters_name_the_argument():
    with pytest.raises(ValueError, match=r"LambdaLoss: scheme must be one of 'ndcg2', 'ndcg2\+\+'.*got 'ndcg3'"):
        LambdaLoss(scheme="ndcg3")
    with pytest.raises(ValueError, match="LambdaLoss: mu must be a finite number >= 0"):
        LambdaLoss(mu=-1.0)
    with pytest.raises(TypeError, match="LambdaLoss: mu must be a real number"):
        LambdaLoss(mu="10")
    with pytest.raises(ValueError, match="LambdaLoss: k must be a finite number >= 1"):
        LambdaLoss(k=0)
    for bad in (2.5, True, "3"):
        with pytest.raises(TypeError, match="LambdaLoss: k must be None or an integer >= 1"):
            LambdaLoss(k=bad)
    with pytest.raises(ValueError, match="LambdaLoss: sigma must be a finite number > 0"):
        LambdaLoss(sigma=0.0)
    assert LambdaLoss(k=np.int64(3)).k == 3 and type(LambdaLoss(k=np.int64(3)).k) is int


def test_bad_inputs_name_the_argument():
    s, r, m = _inputs(9)
    loss = LambdaLoss()
    with pytest.raises(ValueError, match="relevance.*non-negative"):
        loss.value(scores=s, relevance=-np.abs(r) - 1, mask=m)
    with pytest.raises(ValueError, match="relevance must have the shape of scores"):
        loss.value(scores=s, relevance=r[:, :-1])
    with pytest.raises(TypeError, match="mask must be a boolean"):
        loss.value(scores=s, relevance=r, mask=m.astype(np.float64))
    with pytest.raises(ValueError, match=r"list\(s\) \[0, 1, 2, 3, 4, 5\].*length >= 2"):
        loss.value(scores=s[:, :1], relevance=r[:, :1])
    bad = s.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="scores contains"):
        loss.value(scores=bad, relevance=r, mask=m)
    with pytest.raises(TypeError, match="missing input"):
        loss.pair_weights(scores=s)
    with pytest.raises(ValueError, match=r"v\['scores'\] must have the shape of scores"):
        loss.hvp({"scores": s[:, :2]}, scores=s, relevance=r, mask=m)


# ---------------------------------------------------------------- (h) the boosting adapter


def test_xgboost_ranker_with_the_lambdaloss_objective():
    import xgboost as xgb

    from lossgrad.integrations import xgboost as lgx

    spec = importlib.util.spec_from_file_location(
        "engine_ranking", Path(__file__).resolve().parents[1] / "examples" / "engine_ranking.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    (X, y, sizes), (Xt, yt, st) = example.queries(0), example.queries(1)
    params = {"tree_method": "hist", "eta": 0.3, "max_depth": 4, "nthread": 1}
    booster = xgb.train(params, xgb.DMatrix(X, y, group=sizes), 30, obj=lgx.objective(LambdaLoss()))
    ndcg = example.mean_ndcg(yt, booster.predict(xgb.DMatrix(Xt)), st)
    assert ndcg > 0.9, ndcg
    random = example.mean_ndcg(yt, np.random.default_rng(5).normal(size=yt.size), st)
    assert ndcg > random + 0.25
