"""ApproxNDCG's list kernels (lossgrad.kernels._ranking_approx) against the array-API reference."""

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
from lossgrad.kernels._ranking_approx import approx_ndcg_lists
from lossgrad.kernels._ranking_approx_blocks import approx_ndcg_blocks
from lossgrad.losses.ranking import ApproxNDCG

LOSSES = [ApproxNDCG(), ApproxNDCG(temperature=0.1), ApproxNDCG(temperature=3.0)]


def _lists(seed, n, width, dtype=np.float64):
    scores, rel, mask = random_lists(seed, n, width)
    rel[0, :] = 0.0  # no relevant item (Z = 0): value, gradient and curvature 0
    rel[1, :] = 0.0
    rel[1, 1] = 3.0  # one relevant item
    mask[2, 2:] = False  # two real items
    scores[3, :] = np.round(scores[3, :])  # ties (u = 0)
    return padded(scores, rel, mask, dtype)


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
@pytest.mark.parametrize(("n", "width"), [(12, 33), (300, 29), (40, 150)])  # serial, threads, long lists
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_equals_reference(loss, n, width, dtype):
    fused, m = weighted_kernel_outputs(loss, _lists, n, width, dtype)
    value, grad, _, diag, _ = fused
    assert value[0] == 0.0 and np.all(grad[0] == 0.0) and np.all(diag[0] == 0.0)
    assert np.all(grad[~m] == 0.0) and np.all(diag[~m] == 0.0)


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_kernel_at_extreme_scores(loss):
    s, r, m = _lists(1, 20, 40)
    for scale in (30.0, 1e3, 1e150):  # sigmoids in their tails, saturated, u far past exp's range
        fused, reference = fused_and_reference(loss, scores=s * scale, relevance=r, mask=m)
        assert_close(fused, reference, 1e-13)


def test_kernel_single_real_item():
    """One real item: pi = 1, NDCG = G / Z = 1 when relevant (0 when not); nothing moves it."""
    rel = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = np.array([[True, False, False], [True, False, False]])
    scores = np.array([[0.7, np.nan, np.inf], [-3.0, np.nan, np.nan]])
    value, grad, diag = approx_ndcg_lists(scores, rel, mask, 0.5, True, True)
    np.testing.assert_allclose(value, [-1.0, 0.0], rtol=1e-15)
    assert np.all(grad == 0.0) and np.all(diag == 0.0)


def assert_padding_never_read(s, r, m, temperature):
    """The kernel's outputs do not change with what the padded entries hold."""
    outputs = []
    for fill, relfill in ((np.nan, -1.0), (1e300, 7.0), (-np.inf, np.nan), (0.0, 0.0)):
        scores, rel = np.where(m, s, fill), np.where(m, r, relfill)
        outputs.append(approx_ndcg_lists(scores, rel, m, temperature, True, True))
    for out in outputs[1:]:
        for a, b in zip(out, outputs[0]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_padding_is_never_read(temperature):
    assert_padding_never_read(*_lists(5, 30, 40), temperature)


def test_outputs_asked_for():
    s, r, m = _lists(6, 10, 20)
    value, grad, diag = approx_ndcg_lists(s, np.where(m, r, 0.0), m, 0.7, True, True)
    for want_grad, want_diag in ((False, False), (True, False), (False, True)):
        v, g, h = approx_ndcg_lists(s, np.where(m, r, 0.0), m, 0.7, want_grad, want_diag)
        np.testing.assert_array_equal(v, value)
        assert (g is None) != want_grad and (h is None) != want_diag
        if want_grad:
            np.testing.assert_array_equal(g, grad)
        if want_diag:
            np.testing.assert_array_equal(h, diag)


def test_small_inputs_other_arrays_and_the_switch_use_the_reference(monkeypatch):
    import lossgrad.kernels._ranking_approx as K
    import lossgrad.kernels._ranking_approx_blocks as KB

    calls = []
    for module, name in ((K, "approx_ndcg_lists"), (KB, "approx_ndcg_blocks")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _name=name, _f=original: calls.append(_name) or _f(*a))
    s, r, m = _lists(2, 4, 10)  # 400 pair entries: below kernel_threshold
    ApproxNDCG().grad_hess_diag(scores=s, relevance=r, mask=m)
    ApproxNDCG().hess(scores=s, relevance=r, mask=m)
    s, r, m = _lists(3, 30, 30)
    ApproxNDCG().grad_hess_diag(scores=torch.tensor(s), relevance=torch.tensor(r), mask=torch.tensor(m))
    ApproxNDCG().hess(scores=torch.tensor(s), relevance=torch.tensor(r), mask=torch.tensor(m))
    with lossgrad.config_context(use_kernels=False):
        ApproxNDCG().grad_hess_diag(scores=s, relevance=r, mask=m)
        ApproxNDCG().hess(scores=s, relevance=r, mask=m)
        ApproxNDCG().hvp({"scores": s}, scores=s, relevance=r, mask=m)
    assert calls == []
    ApproxNDCG().grad_hess_diag(scores=s, relevance=r, mask=m)
    ApproxNDCG().hess_diag(scores=s, relevance=r, mask=m)
    ApproxNDCG().hess(scores=s, relevance=r, mask=m)
    ApproxNDCG().hvp({"scores": s}, scores=s, relevance=r, mask=m)
    with lossgrad.config_context(kernel_threshold=0):
        ApproxNDCG().value(scores=s[:4, :3], relevance=r[:4, :3], mask=m[:4, :3])
    assert calls == ["approx_ndcg_lists"] * 2 + ["approx_ndcg_blocks"] * 2 + ["approx_ndcg_lists"]


# ------------------------------------------------- short lists: the lists in the lanes
# One thread, so that a call is one block: 100 lists = a full group of 64 and a partial
# one of 36 (>= half a group: lanes too, 28 of them empty); 90 = a group and 26 lists
# through the loop per list.


def _short_lists(seed, n, width, dtype=np.float64):
    """:func:`_lists` with padding anywhere, the first items included (each list keeps two
    real items: RankingLoss asks for them), and for width >= 3 an item that is padding in
    every list."""
    scores, rel, mask = random_lists(seed, n, width)
    rng = np.random.default_rng(seed + 1)
    mask = rng.random((n, width)) > 0.3
    cols = np.array([c for c in range(width) if c != 1 or width == 2])
    if width >= 3:
        mask[:, 1] = False
    for i in range(n):
        mask[i, rng.choice(cols, 2, replace=False)] = True
    rel[0, :] = 0.0  # no relevant item
    mask[2, :] = False
    mask[2, cols[-2:]] = True  # two real items, the last ones
    mask[3, cols] = True  # no padding but the common one
    scores[4, :] = np.round(scores[4, :])  # ties
    return padded(scores, rel, mask, dtype)


def _one_block():
    return lossgrad.config_context(kernel_threads=1, kernel_threshold=0)


@pytest.mark.parametrize("width", [2, 3, 7, 8, 9, 15, 16, 17, 24, 33])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [100, 90])
def test_lanes_equal_reference(width, dtype, n):
    for loss in LOSSES:
        s, r, m = _short_lists(width + n, n, width, dtype)
        with _one_block():
            fused, reference = fused_and_reference(loss, scores=s, relevance=r, mask=m)
        assert all(a.dtype == dtype for a in fused)
        assert_close(fused, reference, rtol_of(dtype))
        value, grad, _, diag, _ = fused
        assert value[0] == 0.0 and np.all(grad[0] == 0.0) and np.all(diag[0] == 0.0)
        assert np.all(grad[~m] == 0.0) and np.all(diag[~m] == 0.0)


@pytest.mark.parametrize("width", [5, 24, 128])
def test_lanes_equal_the_loop_per_list(width):
    """The lists through the lanes == each list alone (a block of one list: the loop per
    list), every output, value alone included; and the widest lists of the lanes."""
    s, r, m = _short_lists(width, 100 if width < 128 else 40, width)
    with _one_block():
        lanes = approx_ndcg_lists(s, r, m, 0.3, True, True)
        value_alone = approx_ndcg_lists(s, r, m, 0.3, False, False)[0]
        alone = [approx_ndcg_lists(s[i:i + 1], r[i:i + 1], m[i:i + 1], 0.3, True, True) for i in range(s.shape[0])]
    np.testing.assert_array_equal(value_alone, lanes[0])
    for got, want in zip(lanes, (np.concatenate(parts) for parts in zip(*alone))):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13 * np.abs(want).max())


@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_lanes_never_read_padding(temperature):
    with _one_block():
        assert_padding_never_read(*_short_lists(9, 100, 24), temperature)


def test_lanes_at_extreme_scores():
    s, r, m = _short_lists(3, 100, 16)
    for loss in LOSSES:
        for scale in (30.0, 1e3, 1e150):
            with _one_block():
                fused, reference = fused_and_reference(loss, scores=s * scale, relevance=r, mask=m)
            assert_close(fused, reference, 1e-13)


def test_normalised_gains():
    """(2^rel - 1) / ideal DCG at the real items, NaN at padding (its grades never read);
    ties of gains, padding anywhere, lists of one width and of many."""
    from lossgrad.kernels._ranking_approx import normalised_gains

    rng = np.random.default_rng(4)
    for width in (1, 2, 5, 40, 150):
        for dtype in (np.float64, np.float32):
            rel = rng.integers(0, 5, (30, width)).astype(dtype) + (rng.random((30, width)) < 0.2) * 0.5
            mask = rng.random((30, width)) > 0.25
            rel[0] = 0.0
            gain = np.where(mask, 2.0 ** rel.astype(np.float64) - 1.0, 0.0)
            ideal = -np.sort(-gain, axis=-1) / np.log2(np.arange(2.0, width + 2.0))
            z = ideal.sum(axis=-1, keepdims=True)
            want = np.where(mask, gain / np.where(z > 0.0, z, np.inf), np.nan)
            got = normalised_gains(np.where(mask, rel, np.nan).astype(dtype))
            np.testing.assert_allclose(got, want, rtol=1e-14, atol=0.0)
            assert np.all(got[0][mask[0]] == 0.0)


# ----------------------------------------------------------------- Hessian blocks


def _second_order(loss, v, **inputs):
    out = (loss.hess(**inputs)["scores"], loss.hvp({"scores": v}, **inputs)["scores"])
    return [np.asarray(a) for a in out]


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
@pytest.mark.parametrize(("n", "width"), [(12, 33), (300, 29), (40, 150)])  # serial, threads, long lists
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blocks_equal_reference(loss, n, width, dtype):
    """hess (weighted) and hvp from the blocks kernel == the reference's, and the blocks'
    structure: symmetric, H 1 = 0 per list (J 1 = 0, Lap 1 = 0), 0 at padding and on a
    list with no relevant item, their diagonal the list kernel's."""
    s, r, m = _lists(n + width + 1, n, width, dtype)
    w = np.linspace(0.5, 2.0, n)
    v = np.where(m, np.random.default_rng(n).normal(size=s.shape), 0.0).astype(dtype)
    fused = _second_order(loss, v, scores=s, relevance=r, mask=m, sample_weight=w)
    with lossgrad.config_context(use_kernels=False):
        reference = _second_order(loss, v, scores=s, relevance=r, mask=m, sample_weight=w)
    assert all(a.dtype == dtype for a in fused)
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    assert_close(fused, reference, rtol)
    blocks = approx_ndcg_blocks(s, r, m, loss.temperature)
    np.testing.assert_array_equal(blocks * w.astype(dtype)[:, None, None], fused[0])  # the list weights
    np.testing.assert_array_equal(blocks, np.swapaxes(blocks, 1, 2))
    scale = np.abs(blocks).max()
    row_sums = blocks.astype(np.float64).sum(axis=-1)
    assert np.abs(row_sums).max() <= (1e-14 if dtype == np.float64 else 1e-7) * width * scale
    diag = approx_ndcg_lists(s, r, m, loss.temperature, False, True)[2]
    np.testing.assert_allclose(np.diagonal(blocks, axis1=1, axis2=2), diag, rtol=rtol, atol=rtol * scale)
    assert np.all(blocks[0] == 0.0)  # no relevant item
    assert np.all(blocks[~m] == 0.0) and np.all(np.swapaxes(blocks, 1, 2)[~m] == 0.0)


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_blocks_at_extreme_scores(loss):
    s, r, m = _lists(1, 20, 40)
    for scale in (30.0, 1e3, 1e150):  # sigmoids in their tails, saturated, u far past exp's range
        fused = approx_ndcg_blocks(s * scale, r, m, loss.temperature)
        with lossgrad.config_context(use_kernels=False):
            reference = np.asarray(loss.hess(scores=s * scale, relevance=r, mask=m)["scores"])
        assert_close([fused], [reference], 1e-13)


def test_blocks_of_a_single_real_item_are_zero():
    rel = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = np.array([[True, False, False], [True, False, False]])
    scores = np.array([[0.7, np.nan, np.inf], [-3.0, np.nan, np.nan]])
    assert np.all(approx_ndcg_blocks(scores, rel, mask, 0.5) == 0.0)


@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_blocks_never_read_padding(temperature):
    s, r, m = _lists(5, 30, 40)
    blocks = [approx_ndcg_blocks(np.where(m, s, fill), np.where(m, r, relfill), m, temperature)
              for fill, relfill in ((np.nan, -1.0), (1e300, 7.0), (-np.inf, np.nan), (0.0, 0.0))]
    for other in blocks[1:]:
        np.testing.assert_array_equal(other, blocks[0])


# ------------------------------------------- gradient and absolute row sums of the blocks


def _bound_reference(loss, s, r, m):
    with lossgrad.config_context(use_kernels=False):
        g = loss.grad(scores=s, relevance=r, mask=m)["scores"]
        return [np.asarray(g), np.sum(np.abs(np.asarray(loss.hess(scores=s, relevance=r, mask=m)["scores"])), axis=-1)]


@pytest.mark.parametrize("width", [2, 3, 9, 24, 40, 41, 64])  # the lanes up to 40 items, the loop per list beyond
@pytest.mark.parametrize("n", [100, 90])  # a full group and a partial one of 36 / the loop per list for 26
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_grad_bound_equals_the_blocks_row_sums(width, n, dtype):
    from lossgrad.kernels._ranking_approx_blocks import approx_ndcg_grad_bound

    s, r, m = _short_lists(width + 7 * n, n, width, dtype)
    for loss in LOSSES:
        with _one_block():
            got = approx_ndcg_grad_bound(s, r, m, loss.temperature)
            blocks = approx_ndcg_blocks(s, r, m, loss.temperature)
        assert all(a.dtype == dtype for a in got)
        assert_close(got, _bound_reference(loss, s, r, m), rtol_of(dtype))
        np.testing.assert_allclose(got[1], np.sum(np.abs(blocks.astype(np.float64)), axis=-1),
                                   rtol=rtol_of(dtype), atol=rtol_of(dtype) * np.abs(got[1]).max())
        assert np.all(got[0][0] == 0.0) and np.all(got[1][0] == 0.0)  # no relevant item
        assert np.all(got[0][~m] == 0.0) and np.all(got[1][~m] == 0.0)


@pytest.mark.parametrize("width", [7, 29, 40])
def test_grad_bound_lanes_equal_the_loop_per_list(width):
    """The lists through the lanes == each list alone (the loop per list), and split over threads."""
    from lossgrad.kernels._ranking_approx_blocks import approx_ndcg_grad_bound

    s, r, m = _short_lists(width + 1, 100, width)
    with _one_block():
        lanes = approx_ndcg_grad_bound(s, r, m, 0.3)
        alone = [approx_ndcg_grad_bound(s[i:i + 1], r[i:i + 1], m[i:i + 1], 0.3) for i in range(s.shape[0])]
    with lossgrad.config_context(kernel_threads=2):
        parts = approx_ndcg_grad_bound(s, r, m, 0.3)
    for got, want, split in zip(lanes, (np.concatenate(a) for a in zip(*alone)), parts):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13 * np.abs(want).max())
        np.testing.assert_allclose(split, want, rtol=1e-13, atol=1e-13 * np.abs(want).max())


@pytest.mark.parametrize("width", [24, 60])
def test_grad_bound_never_reads_padding_and_saturates(width):
    from lossgrad.kernels._ranking_approx_blocks import approx_ndcg_grad_bound

    s, r, m = _short_lists(3, 100, width)
    outputs = []
    with _one_block():
        for fill, relfill in ((np.nan, -1.0), (1e300, 7.0), (-np.inf, np.nan), (0.0, 0.0)):
            outputs.append(approx_ndcg_grad_bound(np.where(m, s, fill), np.where(m, r, relfill), m, 0.5))
        for out in outputs[1:]:
            for a, b in zip(out, outputs[0]):
                np.testing.assert_array_equal(a, b)
        for scale in (30.0, 1e3, 1e150):  # sigmoids in their tails, saturated, u far past exp's range
            got = approx_ndcg_grad_bound(s * scale, r, m, 0.5)
            assert_close(got, _bound_reference(ApproxNDCG(temperature=0.5), s * scale, r, m), 1e-13)


def test_ideal_dcg_of_any_grades():
    """The ideal DCG of integer and fractional grades, padding anywhere, float64 and float32."""
    from lossgrad.kernels._ranking_approx import ideal_dcg

    rng = np.random.default_rng(8)
    n, width = 300, 16
    rel = rng.integers(0, 5, (n, width)) + (rng.random((n, width)) < 0.3) * rng.random((n, width))
    mask = rng.random((n, width)) > 0.2
    rel[0] = 0.0  # no gain: Z = 0
    for dtype in (np.float64, np.float32):
        grades = rel.astype(dtype).astype(np.float64)
        gain = np.where(mask, 2.0 ** grades - 1.0, 0.0)
        want = (-np.sort(-gain, axis=-1) / np.log2(np.arange(2.0, width + 2.0))).sum(axis=-1)
        got = ideal_dcg(np.where(mask, rel, np.nan).astype(dtype))
        np.testing.assert_allclose(got, want, rtol=1e-14)
        assert got[0] == 0.0
