"""Ranking losses, second order: Hessian blocks against PyTorch's autograd Hessian and
finite differences, the structure each loss declares (PSD, null space), hvp / hess_diag /
grad_hess_diag consistency, weights, other array libraries, bad directions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_ranking import IDS, INSTANCES, ORACLED, _inputs, torch_value

import lossgrad
from lossgrad.losses.ranking import XENDCG, ApproxNDCG, ListNet, RankNet


def _gamma(loss, shape):
    return {"gamma": loss.draw_gamma(shape)} if isinstance(loss, XENDCG) else {}


def _torch_hessian_blocks(loss, s, r, m):
    """PyTorch's Hessian of sum(values) of the torch transcription, as per-list blocks;
    the entries between two lists must be exactly 0."""
    n, k = s.shape
    H = torch.autograd.functional.hessian(lambda flat: torch_value(loss, flat.reshape(n, k), r, m).sum(),
                                          torch.tensor(s).reshape(-1)).numpy().reshape(n, k, n, k)
    blocks = np.stack([H[i, :, i, :] for i in range(n)])
    for i in range(n):
        H[i, :, i, :] = 0.0
    assert np.max(np.abs(H)) == 0.0
    return blocks


@pytest.mark.parametrize("loss", [i for i in ORACLED if not isinstance(i, XENDCG)], ids=repr)
def test_hessian_matches_pytorch_autograd(loss):
    s, r, m = _inputs(6)
    ours = loss.hess(scores=s, relevance=r, mask=m)["scores"]
    theirs = _torch_hessian_blocks(loss, s, r, m)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-13 * np.abs(theirs).max())


def test_xendcg_hessian_is_listnets_at_the_same_scores():
    """phi does not depend on the scores and sums to 1: both Hessians are diag(p) - p p^T."""
    s, r, m = _inputs(2)
    h = XENDCG(seed=5).hess(scores=s, relevance=r, mask=m)["scores"]
    np.testing.assert_allclose(h, ListNet().hess(scores=s, relevance=r + 1.0, mask=m)["scores"], rtol=0, atol=1e-16)


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
@pytest.mark.parametrize("use_mask", [True, False])
def test_hessian_matches_central_differences_of_the_gradient(loss, use_mask):
    s, r, m = _inputs(4)
    if not use_mask:
        r, m = np.where(m, r, 0.0), np.ones_like(m)
    extra = _gamma(loss, s.shape)
    w = np.linspace(0.5, 2.0, s.shape[0])
    H = loss.hess(scores=s, relevance=r, mask=m, sample_weight=w, **extra)["scores"]
    fd = np.zeros_like(H)
    h = 1e-5
    for j in range(s.shape[1]):
        e = np.zeros_like(s)
        e[:, j] = h
        gp = loss.grad(scores=s + e, relevance=r, mask=m, sample_weight=w, **extra)["scores"]
        gm = loss.grad(scores=s - e, relevance=r, mask=m, sample_weight=w, **extra)["scores"]
        fd[:, :, j] = (gp - gm) / (2 * h)
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())
    assert np.all(H[~m] == 0.0) and np.all(np.swapaxes(H, 1, 2)[~m] == 0.0)  # padding rows and columns


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_hvp_diag_and_grad_hess_diag_agree_with_the_blocks(loss):
    s, r, m = _inputs(9)
    extra = _gamma(loss, s.shape)
    w = np.linspace(0.3, 1.7, s.shape[0])
    kw = dict(scores=s, relevance=r, mask=m, sample_weight=w, **extra)
    H = loss.hess(**kw)["scores"]
    v = np.random.default_rng(0).normal(size=s.shape)
    np.testing.assert_allclose(loss.hvp({"scores": v}, **kw)["scores"], np.einsum("nij,nj->ni", H, v),
                               rtol=1e-12, atol=1e-15)
    diag = loss.hess_diag(**kw)["scores"]
    np.testing.assert_allclose(diag, np.einsum("nii->ni", H), rtol=1e-13, atol=1e-16)
    g, d2 = loss.grad_hess_diag(**kw)
    np.testing.assert_array_equal(d2["scores"], diag)
    np.testing.assert_array_equal(g["scores"], loss.grad(**kw)["scores"])
    unweighted = loss.hess(scores=s, relevance=r, mask=m, **extra)["scores"]
    np.testing.assert_allclose(H, unweighted * w[:, None, None], rtol=1e-14, atol=1e-17)


def _bound_of_blocks(loss, kw):
    """(grad, absolute row sums of the weighted blocks) as grad and hess form them."""
    return loss.grad(**kw)["scores"], np.sum(np.abs(loss.hess(**kw)["scores"]), axis=-1)


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("settings", [{"use_kernels": False}, {"kernel_threshold": 0}], ids=["reference", "kernels"])
def test_grad_hess_bound_is_the_row_sums_of_the_blocks(loss, dtype, settings):
    """grad_hess_bound == (grad, sum |hess| per row), weights (a zero one too) and padding
    included, on the reference and through the list kernels; each loss's shortcut
    (2 p (1 - p), twice a Laplacian's diagonal, ApproxNDCG's kernel) and the blocks agree."""
    s, r, m = _inputs(7, n=9, m=8)
    s = s.astype(dtype)
    extra = _gamma(loss, s.shape)
    w = np.linspace(0.0, 2.0, s.shape[0])
    kw = dict(scores=s, relevance=r, mask=m, sample_weight=w, **extra)
    with lossgrad.config_context(**settings):
        g, bound = loss.grad_hess_bound(**kw)
        want_g, want_bound = _bound_of_blocks(loss, kw)
    with lossgrad.config_context(use_kernels=False):
        ref_g, ref_bound = _bound_of_blocks(loss, kw)
    tol = 1e-13 if dtype == np.float64 else 2e-6
    assert g["scores"].dtype == dtype and bound["scores"].dtype == dtype
    for got, want in ((g["scores"], want_g), (bound["scores"], want_bound), (g["scores"], ref_g),
                      (bound["scores"], ref_bound)):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    assert np.all(bound["scores"][~m] == 0.0) and np.all(g["scores"][~m] == 0.0)
    assert np.all(bound["scores"] >= 0.0)
    unweighted = loss.grad_hess_bound(scores=s, relevance=r, mask=m, **extra)[1]["scores"]
    np.testing.assert_allclose(bound["scores"], unweighted * w.astype(dtype)[:, None], rtol=tol)


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_declared_curvature(loss):
    """Convex losses have positive semidefinite blocks whose null space holds the constant
    vector (a shift of a whole list changes nothing); ApproxNDCG has negative curvature."""
    s, r, m = _inputs(5)
    H = loss.hess(scores=s, relevance=r, mask=m, **_gamma(loss, s.shape))["scores"]
    eig = np.linalg.eigvalsh(H)
    np.testing.assert_allclose(H @ np.ones(s.shape[1]), 0.0, atol=1e-15)
    if loss.props.convex or loss.props.differentiability < 0:  # LambdaLoss: a weighted RankNet on each piece
        assert eig.min() >= -1e-14 * np.abs(eig).max()
    else:
        assert eig.min() < -1e-3 * np.abs(eig).max()


def test_ranknet_hessian_at_a_tie_is_the_pair_laplacian():
    """One pair at d = 0: c = sigma^2 / 4, H = c [[1, -1], [-1, 1]]."""
    H = RankNet(sigma=2.0).hess(scores=np.zeros((1, 2)), relevance=np.array([[1.0, 0.0]]))["scores"]
    np.testing.assert_array_equal(H, [[[1.0, -1.0], [-1.0, 1.0]]])
    flat = RankNet().hess(scores=np.zeros((1, 3)), relevance=np.ones((1, 3)))["scores"]
    np.testing.assert_array_equal(flat, np.zeros((1, 3, 3)))  # no pair, no curvature


def test_extreme_scores_keep_the_hessian_finite():
    s, r, m = _inputs(3)
    for loss in INSTANCES:
        H = loss.hess(scores=1e3 * s, relevance=20.0 * r, mask=m, **_gamma(loss, s.shape))["scores"]
        assert np.all(np.isfinite(H)), loss


@pytest.mark.parametrize("loss", [ListNet(), RankNet(), ApproxNDCG(temperature=0.5)], ids=repr)
def test_hessian_in_torch_jax_and_float32(loss):
    import jax.numpy as jnp

    s, r, m = _inputs(8)
    H = loss.hess(scores=s, relevance=r, mask=m)["scores"]
    th = loss.hess(scores=torch.tensor(s), relevance=torch.tensor(r), mask=torch.tensor(m))["scores"]
    assert isinstance(th, torch.Tensor)
    np.testing.assert_allclose(th.numpy(), H, rtol=1e-12, atol=1e-15)
    tv = loss.hvp({"scores": torch.ones(s.shape, dtype=torch.float64)}, scores=torch.tensor(s),
                  relevance=torch.tensor(r), mask=torch.tensor(m))["scores"]
    np.testing.assert_allclose(tv.numpy(), H.sum(-1), atol=1e-14)
    h32 = loss.hess_diag(scores=s.astype(np.float32), relevance=r, mask=m)["scores"]
    assert h32.dtype == np.float32
    np.testing.assert_allclose(h32, np.einsum("nii->ni", H), rtol=1e-4, atol=1e-5)
    jd = loss.hess_diag(scores=jnp.asarray(s, dtype=jnp.float32), relevance=jnp.asarray(r, dtype=jnp.float32),
                        mask=jnp.asarray(m))["scores"]
    assert jd.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(jd), np.einsum("nii->ni", H), rtol=2e-4, atol=2e-5)


def test_bad_directions_name_the_argument():
    s, r, m = _inputs(1)
    loss = RankNet()
    with pytest.raises(ValueError, match=r"v has key\(s\) \['relevance'\]; the differentiable inputs are \['scores'\]"):
        loss.hvp({"relevance": s}, scores=s, relevance=r, mask=m)
    with pytest.raises(ValueError, match=r"v\['scores'\] must have the shape of scores"):
        loss.hvp({"scores": s[:, :3]}, scores=s, relevance=r, mask=m)
    bad = np.ones_like(s)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"v\['scores'\]"):
        loss.hvp({"scores": bad}, scores=s, relevance=r, mask=m)
    with pytest.raises(TypeError, match="v must be a dict"):
        loss.hvp(s, scores=s, relevance=r, mask=m)
    # a NaN on a padded entry is never read, like a padded score
    pad = np.ones_like(s)
    pad[~m] = np.nan
    assert np.all(np.isfinite(loss.hvp({"scores": pad}, scores=s, relevance=r, mask=m)["scores"]))


@pytest.mark.parametrize("loss", [ListNet(), RankNet(), ApproxNDCG(temperature=0.5)], ids=repr)
def test_torch_adapter_double_backward_is_the_exact_hessian(loss):
    """Through lossgrad.integrations.torch: torch's Hessian of the weighted mean equals
    that of the torch transcription; so does d/dw of <grad, v> (the weights' path)."""
    from lossgrad.integrations.torch import function

    s, r, m = _inputs(3)
    fn = function(loss)
    w = torch.linspace(0.5, 1.5, s.shape[0], dtype=torch.float64)
    rt, mt = torch.tensor(r), torch.tensor(m)
    ours = torch.autograd.functional.hessian(lambda st: fn(scores=st, relevance=rt, mask=mt, sample_weight=w),
                                             torch.tensor(s))
    theirs = torch.autograd.functional.hessian(lambda st: (torch_value(loss, st, r, m) * w).sum() / w.sum(),
                                               torch.tensor(s))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-14)
    grads = []
    for value in (lambda st, wt: fn(scores=st, relevance=rt, mask=mt, sample_weight=wt, reduction="sum"),
                  lambda st, wt: (torch_value(loss, st, r, m) * wt).sum()):
        st, wt = torch.tensor(s, requires_grad=True), w.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(value(st, wt), st, create_graph=True)
        (g * torch.arange(g.numel(), dtype=g.dtype).reshape(g.shape)).sum().backward()
        grads.append((wt.grad.numpy(), st.grad.numpy()))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-10, atol=1e-13)
