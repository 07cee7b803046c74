"""RankNet's list kernel (lossgrad.kernels._ranking) against the array-API reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ranking_kernel_checks import (
    assert_close,
    fused_and_reference,
    padded,
    random_lists,
    weighted_kernel_outputs,
)

import lossgrad
from lossgrad.losses.ranking import RankNet


def _lists(seed, n, width, dtype=np.float64):
    scores, rel, mask = random_lists(seed, n, width)
    rel[0, :] = 2.0  # a list without a pair: value, gradient and curvature 0
    return padded(scores, rel, mask, dtype)


@pytest.mark.parametrize("loss", [RankNet(), RankNet(sigma=2.0, normalize=False), RankNet(sigma=0.3)], ids=repr)
@pytest.mark.parametrize(("n", "width"), [(12, 33), (300, 29), (40, 150)])  # serial, threads, long lists
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_equals_reference(loss, n, width, dtype):
    fused, m = weighted_kernel_outputs(loss, _lists, n, width, dtype)
    value, grad, _, diag, _ = fused
    assert np.all(grad[0] == 0.0) and np.all(diag[0] == 0.0) and value[0] == 0.0


def test_kernel_at_extreme_scores():
    s, r, m = _lists(1, 20, 40)
    for scale in (1e3, 1e150):
        assert_close(*fused_and_reference(RankNet(), scores=s * scale, relevance=r, mask=m), 1e-13)


def test_small_inputs_other_arrays_and_the_switch_use_the_reference(monkeypatch):
    import lossgrad.kernels._ranking as K

    calls = []
    original = K.ranknet_lists
    monkeypatch.setattr(K, "ranknet_lists", lambda *a: calls.append(1) or original(*a))
    s, r, m = _lists(2, 4, 10)  # 400 pair entries: below kernel_threshold
    RankNet().grad_hess_diag(scores=s, relevance=r, mask=m)
    s, r, m = _lists(3, 30, 30)
    RankNet().grad_hess_diag(scores=torch.tensor(s), relevance=torch.tensor(r), mask=torch.tensor(m))
    with lossgrad.config_context(use_kernels=False):
        RankNet().grad_hess_diag(scores=s, relevance=r, mask=m)
    assert calls == []
    RankNet().grad_hess_diag(scores=s, relevance=r, mask=m)
    with lossgrad.config_context(kernel_threshold=0):
        RankNet().value(scores=s[:1, :3], relevance=r[:1, :3], mask=m[:1, :3])
    assert calls == [1, 1]
