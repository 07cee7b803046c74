"""LambdaLoss's list kernel (lossgrad.kernels._ranking_lambda) against the array-API reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ranking_kernel_checks import (
    assert_close,
    fused_and_reference,
    padded,
    random_lists,
    rtol_of,
    weighted_kernel_outputs,
)

import lossgrad
from lossgrad.kernels._ranking_lambda import discount_table, gap_table, lambdaloss_lists
from lossgrad.losses.ranking_lambda import SCHEMES, LambdaLoss

LOSSES = [LambdaLoss(scheme=scheme, k=k) for scheme in SCHEMES for k in (None, 1, 3, 1000)] + [
    LambdaLoss(scheme="ndcg2++", mu=2.5, sigma=0.7), LambdaLoss(scheme="ndcg2", sigma=2.0, k=5),
    LambdaLoss(scheme="ndcg1", sigma=0.3), LambdaLoss(scheme="ranknet", sigma=1.5, k=4)]


def _lists(seed, n, width, dtype=np.float64):
    scores, rel, mask = random_lists(seed, n, width)
    rel[0, :] = 2.0  # a list without a pair (but for "ndcg1": every grade equal)
    rel[1, :] = 0.0  # no relevant item: maxDCG = 0, no weight
    return padded(scores, rel, mask, dtype)


def _close(fused, reference, dtype):
    assert all(a.dtype == dtype for a in fused)
    assert_close(fused, reference, rtol_of(dtype))


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
@pytest.mark.parametrize(("n", "width"), [(12, 33), (300, 29), (40, 150)])  # serial, threads, long lists
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_equals_reference(loss, n, width, dtype):
    fused, _ = weighted_kernel_outputs(loss, _lists, n, width, dtype)
    for a in fused:  # the all-zero list has no weight at all
        assert np.all(a[1] == 0.0)
    if loss.scheme != "ndcg1":  # equal grades: no pair
        for a in fused:
            assert np.all(a[0] == 0.0)


TIE_LOSSES = [LambdaLoss(scheme=s, k=k) for s in SCHEMES for k in (None, 1, 3)] + [
    LambdaLoss(scheme="ndcg2++", mu=0.5, k=4)]


def _tied_lists(seed, n, width, dtype, step=0.5):
    """Scores on a grid of ``step`` (many ties), padding anywhere (the first items too) and
    a few lists with only two real items, one pair."""
    s, r, m = random_lists(seed, n, width)
    s = np.round(s / step) * step
    rng = np.random.default_rng(seed + 1)
    m[::3, :2] = False  # padding first
    m[1::7] = False
    m[1::7, rng.choice(width, 2, replace=False)] = True  # two real items anywhere: one pair at most
    return padded(s, r, m, dtype)


@pytest.mark.parametrize("loss", TIE_LOSSES, ids=repr)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_at_tied_scores(loss, dtype):
    """The ranks split ties by index, as the reference's stable sort: with most scores tied
    (a grid of 0.5) the weights, hence the gradient, depend on that rule."""
    s, r, m = _tied_lists(5, 60, 30, dtype)
    fused, reference = fused_and_reference(loss, scores=s, relevance=r, mask=m)
    _close(fused, reference, dtype)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_kernel_at_float32_ties(scheme):
    """Scores distinct in float64 but tied once rounded to float32 rank as tied (by index)."""
    s, r, m = random_lists(8, 40, 24)
    s = np.round(s) + np.where(np.arange(24) % 2 == 0, 1e-9, -1e-9)  # float32 rounds both to the integer
    s32, r, m = padded(s, r, m, np.float32)
    assert len(np.unique(s32[m])) < 20
    for loss in (LambdaLoss(scheme=scheme), LambdaLoss(scheme=scheme, k=2)):
        fused, reference = fused_and_reference(loss, scores=s32, relevance=r, mask=m)
        _close(fused, reference, np.float32)


@pytest.mark.parametrize("loss", [LambdaLoss(), LambdaLoss(scheme="lambdarank", k=5), LambdaLoss(scheme="ndcg1", k=7),
                                  LambdaLoss(scheme="ndcg2++", k=300), LambdaLoss(scheme="ranknet", k=3)], ids=repr)
def test_kernel_on_long_lists(loss):
    """Lists of more than 300 real items are ranked by a sort, shorter ones by counting: the
    widths here put lists on both sides (with ties)."""
    s, r, m = _tied_lists(9, 8, 400, np.float64, step=0.25)
    m[::2, 330:] = False  # n_real about 280 on these, 340 on the others
    s[~m] = np.nan
    n_real = m.sum(axis=1)
    assert n_real.max() > 300 and np.any((n_real > 2) & (n_real <= 300))
    fused, reference = fused_and_reference(loss, scores=s, relevance=r, mask=m)
    _close(fused, reference, np.float64)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("k", [None, 2])
def test_kernel_at_equal_grades_and_single_pairs(scheme, k):
    """Every grade equal (0: maxDCG = 0 and no gain; 3: equal gains, no pair but for "ndcg1"),
    fractional and large grades (2^60 and 2^1500 gains), and lists of two real items."""
    s, r, m = random_lists(6, 40, 20)
    r[0:5], r[5:10] = 0.0, 3.0
    r[10:15] = np.round(r[10:15] * 0.37, 2)
    r[15:18] *= 15.0
    r[18:20] = np.where(r[18:20] > 1.0, 1500.0 + r[18:20], r[18:20])  # 2^1500 overflows: G as 2^(rel - top) - 2^-top
    m[20:30] = False
    m[20:30, 3], m[20:30, 11] = True, True
    r[20:25, 3], r[20:25, 11] = 1.0, 0.0
    r[25:30, 3], r[25:30, 11] = 2.0, 2.0
    s32 = padded(s.copy(), r.copy(), m, np.float32)
    for dtype, (si, ri, mi) in ((np.float64, padded(s, r, m, np.float64)), (np.float32, s32)):
        fused, reference = fused_and_reference(LambdaLoss(scheme=scheme, k=k), scores=si, relevance=ri, mask=mi)
        _close(fused, reference, dtype)
        for a in fused[1:]:  # all grades 0: no weight at all
            assert np.all(a[0:5] == 0.0)
        if scheme != "ndcg1":
            for a in fused:
                assert np.all(a[0:10] == 0.0)  # equal grades: no pair
                assert np.all(a[25:30] == 0.0)  # two real items of one grade
            assert np.all(fused[0][20:25] > 0.0)  # the one pair


@pytest.mark.parametrize("scheme", SCHEMES)
def test_kernel_at_extreme_scores(scheme):
    s, r, m = _lists(1, 20, 40)
    for scale in (1e3, 1e150):
        fused, reference = fused_and_reference(LambdaLoss(scheme=scheme, k=5), scores=s * scale, relevance=r, mask=m)
        _close(fused, reference, np.float64)  # finite, and the sums cancel to ~1e-15 of the largest


def test_padding_is_not_read():
    s, r, m = _lists(4, 30, 40)
    loss = LambdaLoss(scheme="ndcg2++", k=6)
    base = loss.grad_hess_diag(scores=s, relevance=r, mask=m)
    s2, r2 = s.copy(), r.copy()
    s2[~m], r2[~m] = 1e300, 7.0
    again = loss.grad_hess_diag(scores=s2, relevance=r2, mask=m)
    for a, b in zip(base, again):
        np.testing.assert_array_equal(a["scores"], b["scores"])
        assert np.all(a["scores"][~m] == 0.0)


def test_tables_and_bad_scores():
    table = gap_table(5)
    delta = np.log(2.0) / np.log1p(np.arange(1, 5.0)) - np.log(2.0) / np.log1p(np.arange(2, 6.0))
    np.testing.assert_array_equal(table, np.concatenate([delta[::-1], [0.0], delta, np.zeros(3)]))  # padded to 4 + 8
    disc = discount_table(10, 3)
    np.testing.assert_array_equal(disc, np.concatenate([np.log(2.0) / np.log1p(np.arange(1, 4.0)), np.zeros(13)]))
    s, r, m = _lists(2, 30, 30)
    s[3, 1] = np.nan  # a real score the checks would have rejected: it does not rank
    with pytest.raises(ValueError, match="1 list"):
        lambdaloss_lists(s, r, m, "ndcg2", 0.0, None, 1.0, True, True)
    s, r, m = _lists(3, 2, 400)
    s[:, 1] = np.inf  # both, one ranked by counting, one (> 300 items) by a sort
    m[0, 250:] = False
    with pytest.raises(ValueError, match="2 list"):
        lambdaloss_lists(s, r, m, "lambdarank", 0.0, 10, 1.0, True, False)
    with pytest.raises(ValueError, match="scheme"):
        lambdaloss_lists(s, r, m, "ndcg3", 0.0, None, 1.0, True, True)


def test_small_inputs_other_arrays_and_the_switch_use_the_reference(monkeypatch):
    import lossgrad.kernels._ranking_lambda as K

    calls = []
    original = K.lambdaloss_lists
    monkeypatch.setattr(K, "lambdaloss_lists", lambda *a: calls.append(1) or original(*a))
    s, r, m = _lists(2, 4, 10)  # 400 pair entries: below kernel_threshold
    LambdaLoss().grad_hess_diag(scores=s, relevance=r, mask=m)
    s, r, m = _lists(3, 30, 30)
    LambdaLoss().grad_hess_diag(scores=torch.tensor(s), relevance=torch.tensor(r), mask=torch.tensor(m))
    LambdaLoss().grad_hess_diag(scores=s.astype(np.float16), relevance=r, mask=m)
    with lossgrad.config_context(use_kernels=False):
        LambdaLoss().grad_hess_diag(scores=s, relevance=r, mask=m)
    LambdaLoss().hess(scores=s, relevance=r, mask=m)  # full blocks, products and weights: the reference
    LambdaLoss().hvp({"scores": s}, scores=s, relevance=r, mask=m)
    LambdaLoss().pair_weights(scores=s, relevance=r, mask=m)
    assert calls == []
    LambdaLoss().grad_hess_diag(scores=s, relevance=r, mask=m)
    LambdaLoss().hess_diag(scores=s, relevance=r, mask=m)
    with lossgrad.config_context(kernel_threshold=0):
        LambdaLoss().value(scores=s[:1, :3], relevance=r[:1, :3], mask=m[:1, :3])
    assert calls == [1, 1, 1]
