"""Ranking losses: gradients vs finite differences, values vs loops, PyTorch and LightGBM oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lossgrad
from lossgrad._registry import catalog
from lossgrad.losses.ranking import XENDCG, ApproxNDCG, ListNet, RankNet

INSTANCES = [inst for e in catalog(family="ranking") for inst in e.instances()]
IDS = [repr(i) for i in INSTANCES]
# the losses with a loop and a torch transcription here (LambdaLoss has its own in test_ranking_lambda.py)
ORACLED = [i for i in INSTANCES if isinstance(i, (ListNet, RankNet, XENDCG, ApproxNDCG))]
DEFAULTS = {type(e.instances()[0]) : e.instances()[0] for e in catalog()}  # JAX checks: one per loss (eager JAX is slow)


def _inputs(seed: int = 0, n: int = 5, m: int = 7):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n, m)) * 1.5
    relevance = rng.integers(0, 5, size=(n, m)).astype(np.float64)
    relevance[:, 0] = 4.0
    relevance[:, 1] = 0.0
    mask = np.ones((n, m), dtype=bool)
    mask[1, 5:] = False
    mask[3, 2:4] = False  # padding in the middle of a list
    relevance[~mask] = -1.0  # TF-Ranking style padding value: must be ignored
    return scores, relevance, mask


def _central(fun, x, h=1e-6):
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp_, xm = x.copy(), x.copy()
        xp_[i] += h
        xm[i] -= h
        out[i] = (fun(xp_) - fun(xm)) / (2 * h)
    return out


def test_registry_lists_the_ranking_family():
    assert {e.name for e in catalog(family="ranking")} == {"listnet", "ranknet", "xendcg", "approx_ndcg", "lambdaloss"}


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
@pytest.mark.parametrize("use_mask", [True, False])
def test_grad_matches_central_differences(loss, use_mask):
    s, r, m = _inputs(1)
    if not use_mask:
        r = np.abs(r)
    kw = {"relevance": r, "mask": m} if use_mask else {"relevance": r}
    w = np.random.default_rng(2).random(s.shape[0]) + 0.1
    v, g = loss.value_grad(scores=s, sample_weight=w, **kw)
    fd = _central(lambda x: float(np.sum(loss.value(scores=x, sample_weight=w, **kw))), s)
    assert np.max(np.abs(fd - g["scores"])) < 1e-7
    np.testing.assert_allclose(v, loss.value(scores=s, sample_weight=w, **kw), rtol=1e-14)
    if use_mask:
        assert np.all(g["scores"][~m] == 0.0)
    # the example inputs the registry verifier uses are valid and differentiable too
    ex = loss._example_inputs(np.random.default_rng(0))
    ge = loss.grad(**ex)["scores"]
    fe = _central(lambda x: float(np.sum(loss.value(**{**ex, "scores": x}))), ex["scores"])
    assert np.max(np.abs(fe - ge)) < 1e-7


# ---------------------------------------------------------------- direct loops


def _softmax(x):
    e = [math.exp(v - max(x)) for v in x]
    return [v / sum(e) for v in e]


def _loop_value(loss, s, r, m, gamma=None):
    out = []
    for li in range(s.shape[0]):
        idx = [j for j in range(s.shape[1]) if m[li, j]]
        ss = [float(s[li, j]) for j in idx]
        rr = [float(r[li, j]) for j in idx]
        if isinstance(loss, ListNet):
            p, q = _softmax(ss), _softmax(rr)
            out.append(-sum(qi * math.log(pi) for pi, qi in zip(p, q)))
        elif isinstance(loss, XENDCG):
            gg = [float(gamma[li, j]) for j in idx]
            raw = [2.0**y - g for y, g in zip(rr, gg)]
            p = _softmax(ss)
            out.append(-sum(ri / sum(raw) * math.log(pi) for ri, pi in zip(raw, p)))
        elif isinstance(loss, RankNet):
            tot, cnt = 0.0, 0
            for a in range(len(idx)):
                for b in range(len(idx)):
                    if rr[a] > rr[b]:
                        tot += math.log1p(math.exp(-loss.sigma * (ss[a] - ss[b])))
                        cnt += 1
            out.append(tot / cnt if (loss.normalize and cnt) else tot)
        elif isinstance(loss, ApproxNDCG):
            t = loss.temperature
            dcg = 0.0
            for a in range(len(idx)):
                rank = 1.0 + sum(1.0 / (1.0 + math.exp(-(ss[b] - ss[a]) / t)) for b in range(len(idx)) if b != a)
                dcg += (2.0 ** rr[a] - 1.0) / math.log2(1.0 + rank)
            ideal = sorted(rr, reverse=True)
            z = sum((2.0**y - 1.0) / math.log2(k + 2.0) for k, y in enumerate(ideal))
            out.append(-dcg / z if z > 0 else 0.0)
    return np.array(out)


@pytest.mark.parametrize("loss", ORACLED, ids=repr)
def test_value_matches_direct_loop(loss):
    s, r, m = _inputs(4)
    r[2, :] = np.where(m[2], 1.0, r[2])  # a list with one grade: RankNet has no pair there
    gamma = None
    if isinstance(loss, XENDCG):
        gamma = loss.draw_gamma(s.shape)
    got = loss.value(scores=s, relevance=r, mask=m)
    np.testing.assert_allclose(got, _loop_value(loss, s, r, m, gamma), rtol=1e-12, atol=1e-14)
    if isinstance(loss, RankNet):
        assert got[2] == 0.0 and np.all(loss.grad(scores=s, relevance=r, mask=m)["scores"][2] == 0.0)


def test_padding_equals_truncation():
    s, r, m = _inputs(5)
    for loss in INSTANCES:
        if isinstance(loss, XENDCG):
            continue  # its default gamma draw depends on the shape; covered below with an explicit gamma
        v_pad = loss.value(scores=s, relevance=r, mask=m)[1]
        v_cut = loss.value(scores=s[1:2, :5], relevance=r[1:2, :5])[0]
        assert v_pad == pytest.approx(v_cut, rel=1e-12)
    x = XENDCG()
    gamma = x.draw_gamma(s.shape)
    v_pad = x.value(scores=s, relevance=r, mask=m, gamma=gamma)[1]
    v_cut = x.value(scores=s[1:2, :5], relevance=r[1:2, :5], gamma=gamma[1:2, :5])[0]
    assert v_pad == pytest.approx(v_cut, rel=1e-12)


def test_xendcg_default_draw_is_kept_per_seed_shape_and_dtype():
    """Calls without ``gamma`` use draw_gamma(shape) of the seed: the last draw is kept
    (read-only) and reused only for the same seed, shape and dtype."""
    from lossgrad.losses import ranking as R

    s, r, m = _inputs(5)
    for seed in (0, 3, 0):
        x = XENDCG(seed=seed)
        for scores in (s, s.astype(np.float32), s[:3], s):
            got = x.value_grad(scores=scores, relevance=r[: len(scores)], mask=m[: len(scores)])
            gamma = x.draw_gamma(scores.shape).astype(scores.dtype)
            want = x.value_grad(scores=scores, relevance=r[: len(scores)], mask=m[: len(scores)], gamma=gamma)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1]["scores"], want[1]["scores"])
            (key, kept), = R._GAMMA_CACHE.items()
            assert key == (seed, scores.shape, scores.dtype.str) and not kept.flags.writeable
    assert XENDCG().draw_gamma((2, 3)).flags.writeable  # the public draw stays a fresh array


# ---------------------------------------------------------------- PyTorch autograd references


def _torch_reference(loss, s, r, m):
    """Each loss written independently with torch ops; the gradient comes from autograd."""
    st = torch.tensor(s, requires_grad=True)
    val = torch_value(loss, st, r, m)
    val.sum().backward()
    return val.detach().numpy(), st.grad.numpy()


def torch_value(loss, st, r, m):
    """Per-list values of ``loss`` at the scores tensor ``st``, in torch ops (no lossgrad)."""
    rt = torch.tensor(np.where(m, r, 0.0))
    mt = torch.tensor(m)
    neg = torch.tensor(-1e300, dtype=torch.float64)
    n_items = st.shape[1]
    if isinstance(loss, ListNet):
        logp = torch.log_softmax(torch.where(mt, st, neg), dim=-1)
        q = torch.softmax(torch.where(mt, rt, neg), dim=-1)
        return -(q * torch.where(mt, logp, torch.zeros_like(logp))).sum(-1)
    if isinstance(loss, RankNet):
        d = st[:, :, None] - st[:, None, :]
        pair = (rt[:, :, None] > rt[:, None, :]) & mt[:, :, None] & mt[:, None, :]
        val = (torch.nn.functional.softplus(-loss.sigma * d) * pair).sum((-1, -2))
        return val / pair.sum((-1, -2)).clamp_min(1) if loss.normalize else val
    if isinstance(loss, ApproxNDCG):
        t = loss.temperature
        eye = torch.eye(n_items, dtype=torch.bool)
        pm = ~eye & mt[:, :, None] & mt[:, None, :]
        ranks = 1 + (torch.sigmoid((st[:, None, :] - st[:, :, None]) / t) * pm).sum(-1)
        gains = (2.0**rt - 1) * mt
        dcg = (gains / torch.log2(1 + ranks)).sum(-1)
        ideal = torch.sort(gains, dim=-1, descending=True).values
        disc = torch.log2(torch.arange(2, n_items + 2, dtype=torch.float64))
        return -dcg / (ideal / disc).sum(-1)
    raise AssertionError(loss)  # pragma: no cover


@pytest.mark.parametrize("loss", [i for i in ORACLED if not isinstance(i, XENDCG)], ids=repr)
def test_matches_pytorch_autograd(loss):
    s, r, m = _inputs(6)
    v, g = loss.value_grad(scores=s, relevance=r, mask=m)
    tv, tg = _torch_reference(loss, s, r, m)
    np.testing.assert_allclose(v, tv, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g["scores"], tg, rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------------- LightGBM rank_xendcg


def _lightgbm_gamma(seed: int, k: int) -> np.ndarray:
    """LightGBM's Random(seed).NextFloat() k times: the LCG x <- 214013 x + 2531011 (mod 2^32),
    gamma = ((x >> 16) & 0x7FFF) / 32768.  rank_xendcg seeds query q with objective_seed + q."""
    x, out = seed & 0xFFFFFFFF, []
    for _ in range(k):
        x = (214013 * x + 2531011) & 0xFFFFFFFF
        out.append(((x >> 16) & 0x7FFF) / 32768.0)
    return np.array(out)


def test_xendcg_gradient_matches_lightgbm_on_its_own_gamma_draw():
    """LightGBM's lambdas = (p - phi) + second- and third-order terms of Bruch's Newton-step
    approximation; its Hessian is p(1 - p).  One boosting round with a tree that isolates
    every item (one distinct feature value each) outputs -lambda_i / h_i in item i's leaf,
    so lambda_i = -prediction_i * h_i.  We rebuild lambda from our exact gradient plus those
    correction terms (written here from the paper), on LightGBM's own gamma draw."""
    import lightgbm as lgb

    rng = np.random.default_rng(3)
    sizes = [5, 7, 6]
    n, m = sum(sizes), max(sizes)
    labels = rng.integers(0, 4, size=n).astype(np.float64)
    init = rng.normal(size=n)
    x = np.arange(n, dtype=np.float64)[:, None]
    seed = 11
    ds = lgb.Dataset(x, label=labels, group=sizes, init_score=init,
                     params={"min_data_in_bin": 1, "max_bin": n + 10, "feature_pre_filter": False})
    params = dict(objective="rank_xendcg", objective_seed=seed, num_leaves=n + 1, min_data_in_leaf=1,
                  min_sum_hessian_in_leaf=0.0, learning_rate=1.0, lambda_l2=0.0, verbose=-1,
                  num_threads=1, deterministic=True, min_gain_to_split=0.0)
    pred = lgb.train(params, ds, num_boost_round=1).predict(x, raw_score=True)

    # the same queries as padded lists, with LightGBM's gamma draw
    scores = np.zeros((3, m))
    rel = np.zeros((3, m))
    gamma = np.zeros((3, m))
    mask = np.zeros((3, m), dtype=bool)
    start = 0
    for q, k in enumerate(sizes):
        scores[q, :k] = init[start:start + k]
        rel[q, :k] = labels[start:start + k]
        gamma[q, :k] = _lightgbm_gamma(seed + q, k)
        mask[q, :k] = True
        start += k
    ours = XENDCG().grad(scores=scores, relevance=rel, mask=mask, gamma=gamma)["scores"]

    start, worst, first_order_gap = 0, 0.0, 0.0
    for q, k in enumerate(sizes):
        s = init[start:start + k]
        rho = np.exp(s - s.max())
        rho /= rho.sum()
        l1 = ours[q, :k]
        a = l1 / (1 - rho)
        t2 = rho * (a.sum() - a)
        b = t2 / (1 - rho)
        t3 = rho * (b.sum() - b)
        lgb_lambda = -pred[start:start + k] * rho * (1 - rho)
        worst = max(worst, np.max(np.abs(lgb_lambda - (l1 + t2 + t3))))
        first_order_gap = max(first_order_gap, np.max(np.abs(lgb_lambda - l1)))
        start += k
    assert worst < 1e-6  # LightGBM keeps gradients in float32
    assert first_order_gap > 1e-3  # the correction terms are real: the conventions do differ


def test_xendcg_gamma_draw_is_exposed_and_reused():
    s, r, m = _inputs(7)
    x = XENDCG(seed=3)
    gamma = x.draw_gamma(s.shape)
    np.testing.assert_array_equal(gamma, np.random.default_rng(3).random(s.shape))
    a = x.value_grad(scores=s, relevance=r, mask=m)
    b = x.value_grad(scores=s, relevance=r, mask=m, gamma=gamma)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1]["scores"], b[1]["scores"])
    c = XENDCG(seed=4).value(scores=s, relevance=r, mask=m)
    assert not np.allclose(a[0], c)
    # exact gradient given gamma: p - phi
    p = np.where(m, np.exp(s - np.where(m, s, -np.inf).max(1, keepdims=True)), 0)
    p /= p.sum(1, keepdims=True)
    raw = np.where(m, 2.0 ** np.where(m, r, 0) - gamma, 0)
    np.testing.assert_allclose(b[1]["scores"], p - raw / raw.sum(1, keepdims=True), atol=1e-15)


def test_xendcg_large_grades_do_not_overflow():
    s = np.array([[0.3, -0.2, 1.0]])
    r = np.array([[2000.0, 1999.0, 0.0]])
    v, g = XENDCG().value_grad(scores=s, relevance=r)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g["scores"]))


# ---------------------------------------------------------------- arrays, dtypes, reductions


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_torch_jax_and_float32(loss):
    import jax.numpy as jnp

    s, r, m = _inputs(8)
    gamma = {"gamma": XENDCG(seed=loss.seed).draw_gamma(s.shape)} if isinstance(loss, XENDCG) else {}
    v, g = loss.value_grad(scores=s, relevance=r, mask=m, **gamma)
    tv, tg = loss.value_grad(scores=torch.tensor(s), relevance=torch.tensor(r), mask=torch.tensor(m),
                             **{k: torch.tensor(a) for k, a in gamma.items()})
    assert isinstance(tg["scores"], torch.Tensor)
    np.testing.assert_allclose(tg["scores"].numpy(), g["scores"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(tv.numpy(), v, rtol=1e-12)
    n32 = loss.value(scores=s.astype(np.float32), relevance=r, mask=m, **gamma)
    assert n32.dtype == np.float32
    np.testing.assert_allclose(n32, v, rtol=1e-4, atol=1e-5)
    if DEFAULTS.get(type(loss)) == loss:  # JAX (float32) once per loss
        s32 = jnp.asarray(s, dtype=jnp.float32)
        jv, jg = loss.value_grad(scores=s32, relevance=jnp.asarray(r, dtype=jnp.float32), mask=jnp.asarray(m),
                                 **{k: jnp.asarray(a, dtype=jnp.float32) for k, a in gamma.items()})
        assert jv.dtype == jnp.float32 and jg["scores"].dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(jg["scores"]), g["scores"], rtol=2e-4, atol=2e-5)


def test_reductions_and_inputs_not_mutated():
    s, r, m = _inputs(9)
    copies = (s.copy(), r.copy(), m.copy())
    loss = ListNet()
    w = np.arange(1.0, 6.0)
    v = loss.value(scores=s, relevance=r, mask=m)
    assert loss(scores=s, relevance=r, mask=m) == pytest.approx(v.mean())
    assert loss(scores=s, relevance=r, mask=m, sample_weight=w) == pytest.approx((w * v).sum() / w.sum())
    assert loss(scores=s, relevance=r, mask=m, reduction="sum") == pytest.approx(v.sum())
    for a, b in zip((s, r, m), copies):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("loss", [ListNet(), RankNet(), XENDCG(), ApproxNDCG()], ids=repr)
def test_bad_inputs_name_the_argument(loss):
    s, r, m = _inputs(10)
    with pytest.raises(ValueError, match="relevance.*non-negative"):
        loss.value(scores=s, relevance=-np.abs(r) - 1, mask=m)
    with pytest.raises(ValueError, match="relevance must have the shape of scores"):
        loss.value(scores=s, relevance=r[:, :-1])
    with pytest.raises(ValueError, match="mask must have the shape of scores"):
        loss.value(scores=s, relevance=r, mask=m[:, :-1])
    with pytest.raises(TypeError, match="mask must be a boolean"):
        loss.value(scores=s, relevance=r, mask=m.astype(np.float64))
    with pytest.raises(ValueError, match=r"list\(s\) \[0, 1, 2, 3, 4\].*length >= 2"):
        loss.value(scores=s[:, :1], relevance=r[:, :1])
    m1 = m.copy()
    m1[2, 1:] = False
    with pytest.raises(ValueError, match=r"list\(s\) \[2\]"):
        loss.value(scores=s, relevance=r, mask=m1)
    with pytest.raises(ValueError, match="scores must be 2-dimensional"):
        loss.value(scores=s[0], relevance=r[0])
    bad = s.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="scores contains"):
        loss.value(scores=bad, relevance=r, mask=m)
    with pytest.raises(TypeError, match="scores must have a real floating"):
        loss.value(scores=s.astype(np.int64), relevance=r)
    with pytest.raises(TypeError, match="missing input"):
        loss.value(scores=s)
    with pytest.raises(TypeError, match="unexpected input"):
        loss.value(scores=s, relevance=r, labels=r)


def test_bad_parameters_and_gamma():
    s, r, m = _inputs(11)
    with pytest.raises(ValueError, match="temperature"):
        ApproxNDCG(temperature=0.0)
    with pytest.raises(ValueError, match="sigma"):
        RankNet(sigma=-1.0)
    with pytest.raises(TypeError, match="normalize"):
        RankNet(normalize=1)
    with pytest.raises(TypeError, match="seed"):
        XENDCG(seed=1.5)
    with pytest.raises(ValueError, match=r"gamma must contain values in \[0, 1\)"):
        XENDCG().value(scores=s, relevance=r, mask=m, gamma=np.full(s.shape, 1.0))
    with pytest.raises(ValueError, match="gamma must have the shape"):
        XENDCG().value(scores=s, relevance=r, mask=m, gamma=np.zeros(3))
    assert lossgrad.get("xendcg", seed=2) == XENDCG(seed=2)
