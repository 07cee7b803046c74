"""ListNet's and XE-NDCG's list kernel (lossgrad.kernels._ranking_softmax) against the array-API reference."""

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
from lossgrad.losses.ranking import XENDCG, ListNet

LOSSES = [ListNet(), XENDCG(), XENDCG(seed=11)]


def _lists(seed, n, width, dtype=np.float64):
    scores, rel, mask = random_lists(seed, n, width)
    rel[0, :] = 2.0  # one grade for the whole list: a uniform (ListNet) or near-uniform (XE-NDCG) target
    return padded(scores, rel, mask, dtype)


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
@pytest.mark.parametrize(("n", "width"), [(12, 33), (300, 29), (40, 150)])  # serial, threads, long lists
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_equals_reference(loss, n, width, dtype):
    fused, m = weighted_kernel_outputs(loss, _lists, n, width, dtype)
    _, grad, _, diag, _ = fused
    assert np.all(grad[~m] == 0.0) and np.all(diag[~m] == 0.0)  # padding: exactly 0
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=20 * rtol_of(dtype))  # p and q both sum to 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_xendcg_kernel_with_a_gamma_input(dtype):
    s, r, m = _lists(5, 300, 29, dtype)
    gamma = np.random.default_rng(9).random(s.shape)
    fused, reference = fused_and_reference(XENDCG(), scores=s, relevance=r, mask=m, gamma=gamma)
    assert_close(fused, reference, rtol_of(dtype))
    default, _ = fused_and_reference(XENDCG(), scores=s, relevance=r, mask=m)
    assert not np.allclose(fused[1], default[1])  # the input gamma is the one used


def test_a_list_of_equal_grades():
    s, r, m = _lists(6, 50, 20)
    fused, reference = fused_and_reference(ListNet(), scores=s, relevance=r, mask=m)
    assert_close(fused, reference, 1e-13)
    grad = fused[1][0]
    k = m[0].sum()
    p = np.exp(s[0][m[0]] - s[0][m[0]].max())
    np.testing.assert_allclose(grad[m[0]], p / p.sum() - 1.0 / k, rtol=1e-13, atol=1e-15)  # q uniform


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_kernel_at_extreme_scores(loss):
    s, r, m = _lists(1, 20, 40)
    for scale in (1e3, 1e150):
        fused, reference = fused_and_reference(loss, scores=s * scale, relevance=r, mask=m)
        assert_close(fused, reference, 1e-13)


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_at_large_grades(loss, dtype):
    s, r, m = _lists(2, 30, 40)
    r = np.where(m, np.random.default_rng(4).integers(0, 1001, r.shape), -1.0)  # 2^1000 gains, e^1000 targets
    r[1, :] = 1000.0
    fused, reference = fused_and_reference(loss, scores=s.astype(dtype), relevance=r, mask=m)
    assert_close(fused, reference, rtol_of(dtype))


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_padding_is_never_read(loss):
    s, r, m = _lists(3, 40, 30)  # NaN scores and -1 grades at the padding
    s2, r2 = s.copy(), r.copy()
    s2[~m], r2[~m] = 1e300, 7.0
    a, _ = fused_and_reference(loss, scores=s, relevance=r, mask=m)
    b, _ = fused_and_reference(loss, scores=s2, relevance=r2, mask=m)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_small_inputs_other_arrays_and_the_switch_use_the_reference(monkeypatch):
    import lossgrad.kernels._ranking_softmax as K

    calls = []
    original = K.softmax_lists
    monkeypatch.setattr(K, "softmax_lists", lambda *a: calls.append(1) or original(*a))
    for loss in (ListNet(), XENDCG()):
        calls.clear()
        s, r, m = _lists(2, 4, 10)  # 400 pair entries: below kernel_threshold
        loss.grad_hess_diag(scores=s, relevance=r, mask=m)
        s, r, m = _lists(3, 30, 30)
        loss.grad_hess_diag(scores=torch.tensor(s), relevance=torch.tensor(r), mask=torch.tensor(m))
        with lossgrad.config_context(use_kernels=False):
            loss.grad_hess_diag(scores=s, relevance=r, mask=m)
            loss.value(scores=s, relevance=r, mask=m)
        assert calls == []
        loss.grad_hess_diag(scores=s, relevance=r, mask=m)
        loss.value(scores=s, relevance=r, mask=m)
        loss.value_grad(scores=s, relevance=r, mask=m)
        loss.hess_diag(scores=s, relevance=r, mask=m)
        assert calls == [1, 1, 1, 1]
        loss.hess(scores=s, relevance=r, mask=m)  # the blocks and the hvp: the reference
        loss.hvp(scores=s, relevance=r, mask=m, v={"scores": np.ones_like(s)})
        assert calls == [1, 1, 1, 1]
        with lossgrad.config_context(kernel_threshold=0):
            loss.value(scores=s[:1, :3], relevance=r[:1, :3], mask=m[:1, :3])
        assert calls == [1, 1, 1, 1, 1]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_xendcg_gamma_of_any_layout_in_any_split(dtype):
    """XE-NDCG's gamma rides in launch's per-row slot: a strided or float64 gamma, one block
    or split over threads, the reference's outputs."""
    s, r, m = _lists(8, 300, 29, dtype)
    gamma = np.asfortranarray(np.random.default_rng(3).random(s.shape))  # strided, float64
    outputs = []
    for threads in (1, 2):
        with lossgrad.config_context(kernel_threads=threads):
            fused, reference = fused_and_reference(XENDCG(), scores=s, relevance=r, mask=m, gamma=gamma)
        assert_close(fused, reference, rtol_of(dtype))
        outputs.append(fused)
    for a, b in zip(*outputs):
        np.testing.assert_allclose(a, b, rtol=rtol_of(dtype), atol=rtol_of(dtype) * np.abs(b).max())
