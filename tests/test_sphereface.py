"""SphereFace (A-Softmax): value, gradient, Hessian-vector product and per-item jvp.

Oracle: an independent PyTorch transcription of the paper's formulas (Liu et al., CVPR
2017: the A-Softmax loss and the lambda-annealed target of its training): theta_y = torch.acos(cos),
k = floor(m theta / pi) clipped to m - 1, psi = (-1)^k cos(m theta) - 2k in theta (no
Chebyshev polynomial, nothing from lossgrad), logits scale * cos (normalised features) or
x . W_j / ||W_j|| = ||x|| cos (the paper's form, scale=None); differentiated by autograd
(gradient, ``torch.autograd.functional.hvp`` and ``jvp``).  Inputs put target angles in
every piece [k pi / m, (k + 1) pi / m] of every m = 1..5, away from the boundaries, and
near theta = 0 and pi.  Also: the Chebyshev recurrences against NumPy's Chebyshev class,
continuity and monotonicity of psi across the piece boundaries (and the declared jump of
psi''), m = 1 against CosFace with margin 0, verify, arrays and dtypes, bad parameters.
"""

from __future__ import annotations

import itertools
import math

import array_api_compat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.polynomial import chebyshev as npcheb

import lossgrad
from lossgrad.losses._sphereface_psi import chebyshev, sphereface_psi
from lossgrad.losses.embedding_margin import CosFace, SphereFace

RTOL = 1e-10
XP = array_api_compat.array_namespace(np.zeros(1))

REGISTERED = [e.make(**p) for e in lossgrad.catalog(family="embedding") if e.name == "sphereface" for p in e.variants]
GRID = [SphereFace(margin=m, scale=s, lambda_=lam) for m in range(1, 6) for s in (8.0, None) for lam in (0.0, 3.0)]
LOSSES = REGISTERED + GRID


# ---------------------------------------------------------------- the transcription and inputs


def sphereface_torch(margin, scale, lambda_):
    """Per-item A-Softmax loss, written from the paper: theta by acos, psi piecewise in theta."""

    def fn(embeddings, labels, weight):
        labels = labels.long()
        w_unit = weight / weight.norm(dim=1, keepdim=True)  # ||W_j|| = 1 (and no bias), as in the paper
        norm = embeddings.norm(dim=1)
        wx = embeddings @ w_unit.T  # ||x|| cos(theta_j)
        cos = wx / norm[:, None]
        cos_y = cos.gather(1, labels[:, None])[:, 0]
        theta = torch.acos(cos_y.clamp(-1.0, 1.0))
        k = torch.clamp(torch.floor(margin * theta / math.pi), max=margin - 1).detach()  # piecewise constant
        psi = (-1.0) ** k * torch.cos(margin * theta) - 2.0 * k
        target = (lambda_ * cos_y + psi) / (1.0 + lambda_)
        onehot = F.one_hot(labels, weight.shape[0]).bool()
        if scale is None:  # f_j = ||x|| cos(theta_j) = W_j . x,  f_y = ||x|| (lambda cos + psi) / (1 + lambda)
            logits = torch.where(onehot, (norm * target)[:, None], wx)
        else:
            logits = scale * torch.where(onehot, target[:, None], cos)
        return F.cross_entropy(logits, labels, reduction="none")

    return fn


def _boundaries(ms=range(1, 6)):
    return sorted({j * math.pi / m for m in ms for j in range(1, m)})


def _inputs(seed=0, classes=5, dim=4):
    """Rows whose target angles are the midpoints between consecutive boundaries j pi / m
    (m = 1..5), jittered, plus 0.05 and pi - 0.05; random norms; random other classes."""
    rng = np.random.default_rng(seed)
    edges = [0.0] + _boundaries() + [math.pi]
    theta = np.array([0.05] + [(a + b) / 2 for a, b in itertools.pairwise(edges)] + [math.pi - 0.05])
    theta = theta + rng.uniform(-0.01, 0.01, theta.size)
    rng.shuffle(theta)
    n = theta.size
    W = rng.normal(size=(classes, dim))
    labels = np.arange(n) % classes
    v = W[labels] / np.linalg.norm(W[labels], axis=1, keepdims=True)
    p = rng.normal(size=(n, dim))
    p -= np.sum(p * v, axis=1, keepdims=True) * v
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    x = rng.uniform(0.5, 2.5, (n, 1)) * (np.cos(theta)[:, None] * v + np.sin(theta)[:, None] * p)
    return {"embeddings": x, "labels": labels, "weight": W}


def _target_angles(ins):
    x, W = ins["embeddings"], ins["weight"][ins["labels"]]
    c = np.sum(x * W, axis=1) / np.linalg.norm(x, axis=1) / np.linalg.norm(W, axis=1)
    return np.arccos(np.clip(c, -1.0, 1.0))


def _torch_per_item(loss, ins):
    fn = sphereface_torch(loss.margin, loss.scale, loss.lambda_)
    labels = torch.as_tensor(ins["labels"])
    return (lambda x, W: fn(x, labels, W)), (torch.tensor(ins["embeddings"]), torch.tensor(ins["weight"]))


def _directions(ins, seed):
    rng = np.random.default_rng(1000 + seed)
    return {k: rng.normal(size=np.shape(ins[k])) for k in ("embeddings", "weight")}


def _rel(ours, theirs):
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-300))


def test_inputs_cover_every_piece_of_every_margin():
    theta = _target_angles(_inputs())
    for m in range(1, 6):
        k = np.minimum(np.floor(m * theta / math.pi), m - 1)
        assert set(k.astype(int)) == set(range(m))
        for b in (j * math.pi / m for j in range(1, m)):
            assert np.min(np.abs(theta - b)) > 0.02
    assert theta.min() < 0.07 and theta.max() > math.pi - 0.07


# ---------------------------------------------------------------- against the PyTorch transcription


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_value_and_gradient_match_the_pytorch_transcription(loss):
    ins = _inputs(1)
    w = np.random.default_rng(2).uniform(0.5, 1.5, ins["labels"].size)
    per_item, tensors = _torch_per_item(loss, ins)
    ts = tuple(t.clone().requires_grad_(True) for t in tensors)
    theirs = per_item(*ts)
    (theirs * torch.tensor(w)).sum().backward()
    v, g = loss.value_grad(sample_weight=w, **ins)
    assert _rel(v, w * theirs.detach().numpy()) <= RTOL
    assert _rel(loss.value(**ins), theirs.detach().numpy()) <= RTOL
    assert _rel(g["embeddings"], ts[0].grad.numpy()) <= RTOL
    assert _rel(g["weight"], ts[1].grad.numpy()) <= RTOL


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_hvp_matches_pytorch_autograd_hvp(loss):
    ins = _inputs(3)
    w = np.random.default_rng(4).uniform(0.5, 1.5, ins["labels"].size)
    per_item, tensors = _torch_per_item(loss, ins)
    for seed, keys in enumerate((("embeddings", "weight"), ("embeddings",), ("weight",))):
        v = {k: d for k, d in _directions(ins, seed).items() if k in keys}
        vt = tuple(torch.tensor(v[k]) if k in v else torch.zeros_like(t) for k, t in zip(("embeddings", "weight"), tensors))
        _, theirs = torch.autograd.functional.hvp(lambda *a: (per_item(*a) * torch.tensor(w)).sum(), tensors, vt)
        ours = loss.hvp(v, sample_weight=w, **ins)
        size = max(float(h.abs().max()) for h in theirs)  # a block may be near 0 (radial directions)
        for k, h in zip(("embeddings", "weight"), theirs):
            assert ours[k].shape == ins[k].shape and ours[k].dtype == np.float64
            assert float(np.max(np.abs(ours[k] - h.numpy()))) <= RTOL * size, (k, keys)


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_item_jvp_matches_pytorch_forward_mode_and_differences(loss):
    ins = _inputs(5)
    per_item, tensors = _torch_per_item(loss, ins)
    v = _directions(ins, 6)
    _, theirs = torch.autograd.functional.jvp(per_item, tensors, (torch.tensor(v["embeddings"]), torch.tensor(v["weight"])))
    xp, data, _ = loss._prepare_batch(ins, None)
    ours = np.asarray(loss._item_jvp(xp, data, v))
    assert ours.shape == ins["labels"].shape
    assert _rel(ours, theirs.numpy()) <= RTOL
    h = 1e-6
    fd = (loss.value(**{k: ins[k] + h * v[k] if k in v else ins[k] for k in ins})
          - loss.value(**{k: ins[k] - h * v[k] if k in v else ins[k] for k in ins})) / (2 * h)
    np.testing.assert_allclose(ours, fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())


@pytest.mark.parametrize("loss", [SphereFace(), SphereFace(scale=None, lambda_=2.0), SphereFace(margin=3, scale=8.0)],
                         ids=repr)
def test_hvp_matches_differences_of_the_gradient_and_is_symmetric(loss):
    ins = _inputs(7)
    w = np.linspace(0.5, 2.0, ins["labels"].size)
    v1, v2 = _directions(ins, 8), _directions(ins, 9)
    h = 1e-6
    plus = loss.grad(sample_weight=w, **{**ins, **{k: ins[k] + h * v1[k] for k in v1}})
    minus = loss.grad(sample_weight=w, **{**ins, **{k: ins[k] - h * v1[k] for k in v1}})
    h1, h2 = loss.hvp(v1, sample_weight=w, **ins), loss.hvp(v2, sample_weight=w, **ins)
    for k in v1:
        fd = (plus[k] - minus[k]) / (2 * h)
        np.testing.assert_allclose(h1[k], fd, rtol=1e-6, atol=1e-7 * np.abs(fd).max(), err_msg=k)
    a = sum(float(np.sum(v2[k] * h1[k])) for k in v1)
    b = sum(float(np.sum(v1[k] * h2[k])) for k in v1)
    assert abs(a - b) <= 1e-12 * max(abs(a), abs(b))


@pytest.mark.parametrize("loss", [SphereFace(margin=3, scale=8.0, lambda_=1.0), SphereFace(scale=None)], ids=repr)
def test_torch_adapter_double_backward_matches_the_transcription(loss):
    """Through lossgrad.integrations.torch: d/dx <grad, v> and d/dw <grad, v> (the weights'
    path, from _item_jvp) equal those of the transcription."""
    from lossgrad.integrations.torch import function

    ins = _inputs(10)
    per_item, tensors = _torch_per_item(loss, ins)
    fn = function(loss)
    labels = torch.as_tensor(ins["labels"])
    w = torch.linspace(0.5, 1.5, ins["labels"].size, dtype=torch.float64)
    results = []
    for value in (lambda x, W, wt: fn(reduction="sum", sample_weight=wt, embeddings=x, labels=labels, weight=W),
                  lambda x, W, wt: (per_item(x, W) * wt).sum()):
        ts = tuple(t.clone().requires_grad_(True) for t in tensors)
        wt = w.clone().requires_grad_(True)
        gs = torch.autograd.grad(value(*ts, wt), ts, create_graph=True)
        sum((g * torch.cos(torch.arange(g.numel(), dtype=g.dtype).reshape(g.shape))).sum() for g in gs).backward()
        results.append([wt.grad.numpy()] + [t.grad.numpy() for t in ts])
    for ours, theirs in zip(*results):
        assert _rel(ours, theirs) <= RTOL


# ---------------------------------------------------------------- m = 1: plain normalised softmax


@pytest.mark.parametrize("scale", [1.0, 8.0, 30.0])
def test_margin_one_is_cosface_with_margin_zero_exactly(scale):
    ins = _inputs(11)
    w = np.random.default_rng(12).uniform(0.5, 1.5, ins["labels"].size)
    v = _directions(ins, 13)
    sphere, cos = SphereFace(margin=1, scale=scale), CosFace(margin=0.0, scale=scale)
    for a, b in ((sphere.value(**ins), cos.value(**ins)),
                 *zip(sphere.grad(sample_weight=w, **ins).values(), cos.grad(sample_weight=w, **ins).values()),
                 *zip(sphere.hvp(v, sample_weight=w, **ins).values(), cos.hvp(v, sample_weight=w, **ins).values()),
                 (sphere._item_jvp(*sphere._prepare_batch(ins, None)[:2], v),
                  cos._item_jvp(*cos._prepare_batch(ins, None)[:2], v))):
        np.testing.assert_array_equal(a, b)
    # lambda_ does not matter at m = 1: (lambda c + c) / (1 + lambda) = c
    annealed = SphereFace(margin=1, scale=scale, lambda_=7.0)
    np.testing.assert_allclose(annealed.value(**ins), cos.value(**ins), rtol=1e-14)
    for a, b in zip(annealed.hvp(v, **ins).values(), cos.hvp(v, **ins).values()):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14 * np.abs(b).max())


def test_margin_one_unscaled_is_softmax_of_normalised_weight_logits():
    ins = _inputs(14)
    x, W, y = ins["embeddings"], ins["weight"], ins["labels"]
    z = x @ (W / np.linalg.norm(W, axis=1, keepdims=True)).T
    ref = np.log(np.sum(np.exp(z), axis=1)) - z[np.arange(y.size), y]
    np.testing.assert_allclose(SphereFace(margin=1, scale=None).value(**ins), ref, rtol=1e-13)


# ---------------------------------------------------------------- psi: Chebyshev forms, pieces, boundaries


@pytest.mark.parametrize("m", range(1, 13))
def test_chebyshev_recurrences_match_numpys_chebyshev_series(m):
    c = np.linspace(-1.0, 1.0, 401)
    t, u, d2 = chebyshev(XP, c, m)
    T = npcheb.Chebyshev.basis(m)
    for ours, ref in ((t, T(c)), (m * u, T.deriv(1)(c)), (d2, T.deriv(2)(c))):
        assert _rel(ours, ref) <= 1e-12 or np.max(np.abs(ref)) == 0.0 and np.all(ours == 0.0)


@pytest.mark.parametrize("m", range(1, 7))
def test_psi_is_the_piecewise_angular_form_and_monotone(m):
    theta = np.linspace(0.0, math.pi, 20001)
    c = np.cos(theta)
    psi, dpsi = sphereface_psi(XP, c, m)
    k = np.minimum(np.floor(m * theta / math.pi), m - 1)
    np.testing.assert_allclose(psi, (-1.0) ** k * np.cos(m * theta) - 2 * k, rtol=0, atol=1e-12)
    assert psi[0] == pytest.approx(1.0, abs=1e-15) and psi[-1] == pytest.approx(1.0 - 2 * m, abs=1e-12)
    assert np.all(np.diff(psi) <= 1e-15)  # decreasing in theta
    assert np.all(dpsi >= -1e-12)  # increasing in c
    assert dpsi[0] == pytest.approx(m * m) and dpsi[-1] == pytest.approx(m * m)  # finite at c = +-1


@pytest.mark.parametrize("m", range(2, 7))
def test_psi_and_its_slope_are_continuous_across_the_piece_boundaries(m):
    for j in range(1, m):
        cb = math.cos(j * math.pi / m)
        for delta in (1e-6, 1e-8):
            c = np.array([cb + delta, cb - delta])  # piece j - 1 (smaller theta), piece j
            psi, dpsi, d2psi = sphereface_psi(XP, c, m, 2)
            assert abs(psi[0] - psi[1]) <= 4 * m**2 * delta + 1e-13
            assert np.all(np.abs(dpsi) <= 4 * m**3 * delta / math.sin(j * math.pi / m) + 1e-12)
            # psi'' flips sign: +m^2 / sin^2 on piece j - 1, -m^2 / sin^2 on piece j (a kink of order 2)
            jump = 2 * m * m / math.sin(j * math.pi / m) ** 2
            assert d2psi[0] - d2psi[1] == pytest.approx(jump, rel=1e-4)
            assert d2psi[0] > 0 > d2psi[1]
        # the boundary itself belongs to the piece of larger theta (k = floor(m theta / pi))
        _, _, d2 = sphereface_psi(XP, np.array([cb]), m, 2)
        assert d2[0] == pytest.approx((-1.0) ** j * npcheb.Chebyshev.basis(m).deriv(2)(cb), rel=1e-12)


@pytest.mark.parametrize("loss", [SphereFace(scale=8.0), SphereFace(margin=3, scale=None, lambda_=1.0)], ids=repr)
def test_value_and_gradient_are_continuous_across_a_boundary(loss):
    W = np.array([[1.0, 0.0, 0.0], [0.2, 1.0, 0.0], [0.0, 0.3, 1.0]])
    theta_b = math.pi / loss.margin
    out = []
    for delta in (-1e-7, 1e-7):
        t = theta_b + delta
        x = np.array([[1.5 * math.cos(t), 1.5 * math.sin(t), 0.0]])
        ins = {"embeddings": x, "labels": np.array([0]), "weight": W}
        assert abs(_target_angles(ins)[0] - t) < 1e-12
        v, g = loss.value_grad(**ins)
        out.append((v, g["embeddings"], g["weight"]))
    for a, b in zip(*out):
        assert np.max(np.abs(a - b)) <= 1e-5 * max(np.max(np.abs(a)), 1.0)


# ---------------------------------------------------------------- contract, arrays, dtypes


@pytest.mark.parametrize("loss", REGISTERED + [SphereFace(margin=5, scale=None, lambda_=0.5), SphereFace(margin=1)],
                         ids=repr)
def test_verify_passes(loss):
    report = lossgrad.verify(loss)
    assert report.passed, str(report)


def test_props_formula_and_registry():
    assert {SphereFace(margin=m).props.differentiability for m in (2, 3, 4)} == {1}
    assert SphereFace(margin=1, lambda_=3.0).props.differentiability == 2
    for loss in REGISTERED:
        assert not loss.props.convex and loss.props.has_hess and loss.props.has_grad and loss.has_hvp
        assert "U_{m-1}" in loss.formula.grad and "T_m''" in loss.formula.hess
    assert lossgrad.get("sphereface") == SphereFace(scale=30.0, margin=4, lambda_=0.0)
    assert len(REGISTERED) >= 4 and any(loss.scale is None for loss in REGISTERED)


def test_torch_jax_and_float32_in_give_the_same_out():
    import jax.numpy as jnp

    ins = _inputs(15)
    v = _directions(ins, 16)
    for unscaled in (False, True):
        loss = SphereFace(margin=3, scale=None if unscaled else 8.0, lambda_=1.0)
        ref_v, ref_g = loss.value_grad(**ins)
        ref_h = loss.hvp(v, **ins)
        ref_j = loss._item_jvp(*loss._prepare_batch(ins, None)[:2], v)
        for lib, dtype in ((torch, torch.float64), (torch, torch.float32), (np, np.float32), (jnp, jnp.float32)):
            conv = (lambda a, lib=lib, dtype=dtype: lib.asarray(np.asarray(a), dtype=dtype))
            tins = {"embeddings": conv(ins["embeddings"]), "weight": conv(ins["weight"]),
                    "labels": ins["labels"] if lib is np else lib.asarray(ins["labels"])}
            tv = {k: conv(d) for k, d in v.items()}
            val, g = loss.value_grad(**tins)
            h = loss.hvp(tv, **tins)
            j = loss._item_jvp(*loss._prepare_batch(tins, None)[:2], tv)
            tol = 1e-12 if dtype == torch.float64 else 2e-3
            for ours, ref in ((val, ref_v), (g["embeddings"], ref_g["embeddings"]), (g["weight"], ref_g["weight"]),
                              (h["embeddings"], ref_h["embeddings"]), (h["weight"], ref_h["weight"]), (j, ref_j)):
                assert type(ours) is type(tins["embeddings"]) and ours.dtype == dtype, (lib.__name__, dtype)
                assert _rel(np.asarray(ours), ref) <= tol, (lib.__name__, dtype, unscaled)


def test_unscaled_form_is_not_scale_invariant_and_scaled_form_is():
    ins = _inputs(17)
    big = {**ins, "embeddings": 3.0 * ins["embeddings"]}
    scaled, unscaled = SphereFace(scale=8.0), SphereFace(scale=None)
    np.testing.assert_allclose(scaled.value(**big), scaled.value(**ins), rtol=1e-13)
    assert not np.allclose(unscaled.value(**big), unscaled.value(**ins))
    # the paper's form: logits ||x|| phi, so scale=None equals scale=s on features of norm s
    unit = {**ins, "embeddings": 5.0 * ins["embeddings"] / np.linalg.norm(ins["embeddings"], axis=1, keepdims=True)}
    np.testing.assert_allclose(unscaled.value(**unit), SphereFace(scale=5.0).value(**unit), rtol=1e-13)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("params", "error", "match"), [
    ({"margin": 0}, ValueError, "margin"), ({"margin": -2}, ValueError, "margin"),
    ({"margin": 2.5}, ValueError, r"margin must be an integer >= 1"), ({"margin": True}, TypeError, "margin"),
    ({"margin": "4"}, TypeError, "margin"), ({"margin": float("nan")}, ValueError, "margin"),
    ({"margin": float("inf")}, ValueError, "margin"),
    ({"scale": 0.0}, ValueError, "scale"), ({"scale": -1.0}, ValueError, "scale"),
    ({"scale": float("inf")}, ValueError, "scale"), ({"scale": "30"}, TypeError, "scale"),
    ({"lambda_": -0.5}, ValueError, "lambda_"), ({"lambda_": float("nan")}, ValueError, "lambda_"),
    ({"lambda_": float("inf")}, ValueError, "lambda_"), ({"lambda_": None}, TypeError, "lambda_"),
])
def test_bad_parameters_name_the_argument(params, error, match):
    with pytest.raises(error, match=match):
        lossgrad.get("sphereface", **params)
    with pytest.raises(error, match=match):
        SphereFace(**params)


def test_integral_margin_is_stored_as_an_int():
    assert SphereFace(margin=3.0).margin == 3 and type(SphereFace(margin=np.int64(2)).margin) is int


@pytest.mark.parametrize(("change", "error", "match"), [
    ({"labels": np.array([0, 1, 5])}, ValueError, "labels"),
    ({"labels": np.array([0, 1, 0.5])}, ValueError, "labels"),
    ({"labels": np.array([0, 1])}, ValueError, "labels"),
    ({"weight": np.ones((3, 5))}, ValueError, "same D"),
    ({"embeddings": np.array([[1.0, 0.0, 0.0, 0.0], [0.0] * 4, [1.0, 2.0, 3.0, 4.0]])}, ValueError, "embeddings"),
    ({"weight": np.array([[1.0, 0.0, 0.0, 0.0], [0.0] * 4, [1.0, 2.0, 3.0, 4.0]])}, ValueError, "weight"),
    ({"embeddings": np.array([[1.0, np.nan, 0.0, 0.0]] * 3)}, ValueError, "embeddings"),
    ({"embeddings": np.ones((3, 4), dtype=np.int64)}, TypeError, "embeddings"),
    ({"embeddings": np.ones(4)}, ValueError, "embeddings"),
])
def test_bad_inputs_name_the_argument(change, error, match):
    ins = {"embeddings": np.arange(12.0).reshape(3, 4) + 1.0, "labels": np.array([0, 1, 2]),
           "weight": np.eye(4)[:3] + 0.1, **change}
    for loss in (SphereFace(), SphereFace(scale=None)):
        with pytest.raises(error, match=match):
            loss.value_grad(**ins)


def test_bad_directions_name_the_argument():
    loss = SphereFace(scale=None)
    ins = _inputs(18)
    ok = np.ones_like(ins["embeddings"])
    with pytest.raises(ValueError, match=r"v has key\(s\) \['labels'\]"):
        loss.hvp({"embeddings": ok, "labels": ok}, **ins)
    with pytest.raises(ValueError, match=r"v\['embeddings'\] must have the shape of embeddings"):
        loss.hvp({"embeddings": ok[:, :-1]}, **ins)
    with pytest.raises(ValueError, match=r"v\['weight'\]"):
        loss._item_jvp(*loss._prepare_batch(ins, None)[:2], {"weight": np.full(ins["weight"].shape, np.nan)})
    with pytest.raises(TypeError, match="v must be a dict"):
        loss.hvp(ok, **ins)
    with pytest.raises(TypeError, match="missing input"):
        loss.value(embeddings=ins["embeddings"], labels=ins["labels"])
