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
from lossgrad.kernels._ranking_lambda import gap_table, lambdaloss_lists
from lossgrad.losses.ranking_lambda import SCHEMES, LambdaLoss

LOSSES = [LambdaLoss(scheme=scheme, k=k) for scheme in SCHEMES for k in (None, 1, 3, 1000)] + [
    LambdaLoss(scheme="ndcg2++", mu=2.5, sigma=0.7), LambdaLoss(scheme="ndcg2", sigma=2.0, k=5),
    LambdaLoss(scheme="ndcg1", sigma=0.3), LambdaLoss(scheme="ranknet", sigma=1.5, k=4)]


def _lists(seed, n, width, dtype=np.float64, ties=False):
    scores, rel, mask = random_lists(seed, n, width)
    if ties:
        scores = np.round(scores)  # many tied scores: ranked by index in both
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
    fused, m = weighted_kernel_outputs(loss, _lists, n, width, dtype)
    for a in fused:  # the all-zero list has no weight at all
        assert np.all(a[1] == 0.0)
    if loss.scheme != "ndcg1":  # equal grades: no pair
        for a in fused:
            assert np.all(a[0] == 0.0)


@pytest.mark.parametrize("loss", [LambdaLoss(scheme=s, k=k) for s in SCHEMES for k in (None, 2)], ids=repr)
def test_kernel_at_tied_scores(loss):
    """The ranks come from the reference's own stable sort: ties split by index, alike."""
    s, r, m = _lists(5, 60, 30, ties=True)
    fused, reference = fused_and_reference(loss, scores=s, relevance=r, mask=m)
    _close(fused, reference, np.float64)


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


def test_gap_table_and_bad_ranks():
    table = gap_table(5)
    delta = np.log(2.0) / np.log1p(np.arange(1, 5.0)) - np.log(2.0) / np.log1p(np.arange(2, 6.0))
    np.testing.assert_array_equal(table, np.concatenate([delta[::-1], [0.0], delta]))
    s, r, m = _lists(2, 30, 30)
    ranks = np.tile(np.arange(1.0, 31.0), (30, 1))
    ranks[3, 5] = ranks[3, 6]  # a rank twice
    with pytest.raises(ValueError, match="ranks"):
        lambdaloss_lists(s, r, np.ones_like(m), ranks, r, r, "ndcg2", 0.0, None, 1.0, True, True)
    with pytest.raises(ValueError, match="scheme"):
        lambdaloss_lists(s, r, m, ranks, r, r, "ndcg3", 0.0, None, 1.0, True, True)


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
