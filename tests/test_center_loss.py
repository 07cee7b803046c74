"""Center loss (Wen et al. 2016): value, gradient, Hessian and the paper's center update.

Oracles, never built with lossgrad:

* PyTorch autograd on an independent transcription of the value,
  0.5 * ((x - centers[labels]) ** 2).sum(1): its gradient, ``torch.autograd.functional.hvp``
  of sum(w * values) and ``torch.autograd.functional.jvp`` of the values;
* the Hessian's block structure written out by hand (w_i I, (sum_{y_i = j} w_i) I, -w_i I);
* a loop transcription of the paper's Algorithm 1 (eq. 4) for ``update_centers``;
* the KaiyangZhou/pytorch-center-loss forward (expanded distances, clamp) for the
  convention stated in the docstring;
* torch.autograd.gradgradcheck and jax.jacrev(jax.grad) through the integrations.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lossgrad
from lossgrad.losses.embedding_center import CenterLoss

LOSS = CenterLoss()
RTOL = 1e-12


def _inputs(rng, n=11, classes=5, dim=4, empty=(4,)):
    """Samples of every class except those in ``empty`` (whose center gets no gradient)."""
    present = [j for j in range(classes) if j not in empty]
    labels = rng.permutation(np.resize(present, n))
    centers = rng.normal(size=(classes, dim))
    x = centers[labels] + rng.normal(scale=0.7, size=(n, dim))
    return {"embeddings": x, "labels": labels, "centers": centers}


def _torch_values(embeddings, labels, centers):
    return 0.5 * ((embeddings - centers[labels]) ** 2).sum(1)


def _relerr(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _as_torch(ins):
    x = torch.tensor(ins["embeddings"], requires_grad=True)
    c = torch.tensor(ins["centers"], requires_grad=True)
    return x, torch.as_tensor(ins["labels"]), c


# ------------------------------------------------------------------ (a) value and gradient


@pytest.mark.parametrize("seed", range(5))
def test_value_and_gradient_match_torch_autograd(seed):
    rng = np.random.default_rng(seed)
    ins = _inputs(rng, n=7 + 3 * seed, dim=2 + seed)
    w = rng.uniform(0.2, 2.0, ins["labels"].size)
    x, y, c = _as_torch(ins)
    values = _torch_values(x, y, c)
    (values * torch.as_tensor(w)).sum().backward()
    v, g = LOSS.value_grad(sample_weight=w, **ins)
    assert _relerr(v, values.detach().numpy() * w) <= RTOL
    assert _relerr(LOSS.value(**ins), values.detach().numpy()) <= RTOL
    assert _relerr(g["embeddings"], x.grad.numpy()) <= RTOL
    assert _relerr(g["centers"], c.grad.numpy()) <= RTOL
    assert np.all(g["centers"][4] == 0.0)  # a class without a sample
    assert LOSS(sample_weight=w, **ins) == pytest.approx(float((values.detach().numpy() * w).sum() / w.sum()), rel=RTOL)


def test_kaiyangzhou_convention_is_twice_the_mean():
    """KaiyangZhou/pytorch-center-loss: mean over the batch of ||x - c_y||^2 from the expanded
    distance matrix, every masked entry clamped to [1e-12, 1e12]: 2 x ours + (C - 1) 1e-12."""
    ins = _inputs(np.random.default_rng(7), classes=6)
    x, y, c = (torch.as_tensor(ins[k]) for k in ("embeddings", "labels", "centers"))
    n, k = x.shape[0], c.shape[0]
    distmat = (x**2).sum(1, keepdim=True).expand(n, k) + (c**2).sum(1, keepdim=True).expand(k, n).t() - 2 * x @ c.t()
    mask = y.unsqueeze(1).expand(n, k).eq(torch.arange(k).expand(n, k))
    theirs = (distmat * mask.double()).clamp(min=1e-12, max=1e12).sum() / n
    assert float(theirs) == pytest.approx(2 * float(LOSS(**ins)) + (k - 1) * 1e-12, rel=1e-12)


# ------------------------------------------------------------------ (b) second order


@pytest.mark.parametrize("seed", range(4))
def test_hvp_and_item_jvp_match_torch(seed):
    rng = np.random.default_rng(10 + seed)
    ins = _inputs(rng, n=9, dim=3)
    w = torch.as_tensor(rng.uniform(0.2, 2.0, 9))
    y = torch.as_tensor(ins["labels"])
    x0, c0 = torch.as_tensor(ins["embeddings"]), torch.as_tensor(ins["centers"])
    vx, vc = torch.as_tensor(rng.normal(size=x0.shape)), torch.as_tensor(rng.normal(size=c0.shape))
    _, (hx, hc) = torch.autograd.functional.hvp(lambda a, b: (w * _torch_values(a, y, b)).sum(), (x0, c0), (vx, vc))
    ours = LOSS.hvp({"embeddings": vx.numpy(), "centers": vc.numpy()}, sample_weight=w.numpy(), **ins)
    assert _relerr(ours["embeddings"], hx.numpy()) <= RTOL
    assert _relerr(ours["centers"], hc.numpy()) <= RTOL
    _, jv = torch.autograd.functional.jvp(lambda a, b: _torch_values(a, y, b), (x0, c0), (vx, vc))
    xp, data, _ = LOSS._prepare_batch(ins, None)
    assert _relerr(LOSS._item_jvp(xp, data, {"embeddings": vx.numpy(), "centers": vc.numpy()}), jv.numpy()) <= RTOL
    only_x = LOSS.hvp({"embeddings": vx.numpy()}, **ins)  # a name left out is a zero direction
    assert np.array_equal(only_x["embeddings"], vx.numpy())


def test_item_jvp_is_the_difference_of_the_values():
    """The values are quadratic: the central difference along v is exact up to rounding."""
    rng = np.random.default_rng(3)
    ins = _inputs(rng)
    v = {"embeddings": rng.normal(size=ins["embeddings"].shape), "centers": rng.normal(size=ins["centers"].shape)}
    h = 1e-3
    plus = LOSS.value(**{**ins, **{k: ins[k] + h * v[k] for k in v}})
    minus = LOSS.value(**{**ins, **{k: ins[k] - h * v[k] for k in v}})
    xp, data, _ = LOSS._prepare_batch(ins, None)
    assert _relerr(LOSS._item_jvp(xp, data, v), (plus - minus) / (2 * h)) <= 1e-9


# ------------------------------------------------------------------ (c) the full Hessian


def _full_hessian(ins, w):
    """Columns H e_k from hvp, in the order (embeddings flattened, centers flattened)."""
    shapes = {k: ins[k].shape for k in ("embeddings", "centers")}
    sizes = [int(np.prod(s)) for s in shapes.values()]
    cols = []
    for k in range(sum(sizes)):
        e = np.zeros(sum(sizes))
        e[k] = 1.0
        v = {"embeddings": e[: sizes[0]].reshape(shapes["embeddings"]), "centers": e[sizes[0]:].reshape(shapes["centers"])}
        hv = LOSS.hvp(v, sample_weight=w, **ins)
        cols.append(np.concatenate([hv["embeddings"].ravel(), hv["centers"].ravel()]))
    return np.stack(cols, axis=1)


def test_full_hessian_has_the_block_structure_and_is_psd():
    rng = np.random.default_rng(5)
    ins = _inputs(rng, n=6, classes=4, dim=2, empty=(3,))
    w = rng.uniform(0.2, 2.0, 6)
    H = _full_hessian(ins, w)
    n, classes, dim = 6, 4, 2
    eye = np.eye(dim)
    expected = np.zeros_like(H)

    def xs(i):  # the rows of x_i
        return slice(i * dim, (i + 1) * dim)

    def cs(j):  # the rows of c_j
        return slice((n + j) * dim, (n + j + 1) * dim)

    for i, j in enumerate(ins["labels"]):
        expected[xs(i), xs(i)] = w[i] * eye
        expected[xs(i), cs(j)] = expected[cs(j), xs(i)] = -w[i] * eye
    for j in range(classes):
        expected[cs(j), cs(j)] = w[ins["labels"] == j].sum() * eye
    np.testing.assert_allclose(H, expected, rtol=0, atol=1e-15)
    eig = np.linalg.eigvalsh(H)
    assert eig.min() >= -1e-12 * eig.max()
    # kernel: per class present, its x_i and c_j moved together; per empty class, its center
    assert np.sum(np.abs(eig) < 1e-12) == classes * dim
    other = _inputs(np.random.default_rng(6), n=6, classes=4, dim=2, empty=(3,))
    other["labels"] = ins["labels"]
    np.testing.assert_allclose(_full_hessian(other, w), H, rtol=0, atol=1e-15)  # constant in (x, c)


# ------------------------------------------------------------------ (d) the center update


def _algorithm_1(x, labels, centers, alpha):
    """Wen et al., eq. (4) and Algorithm 1, written with loops."""
    new = centers.copy()
    for j in range(centers.shape[0]):
        total, count = np.zeros(centers.shape[1]), 0
        for i in range(x.shape[0]):
            if labels[i] == j:
                total += centers[j] - x[i]
                count += 1
        new[j] = centers[j] - alpha * total / (1 + count)
    return new


@pytest.mark.parametrize("alpha", [0.5, 1.0, 0.05])
def test_update_centers_matches_algorithm_1(alpha):
    ins = _inputs(np.random.default_rng(8), n=13, classes=6, dim=3, empty=(2, 5))
    before = {k: np.array(v, copy=True) for k, v in ins.items()}
    new = LOSS.update_centers(alpha=alpha, **ins)
    np.testing.assert_allclose(new, _algorithm_1(ins["embeddings"], ins["labels"], ins["centers"], alpha),
                               rtol=1e-14, atol=1e-15)
    assert np.array_equal(new[[2, 5]], ins["centers"][[2, 5]])  # classes without a sample stay put
    assert all(np.array_equal(before[k], ins[k]) for k in ins)  # inputs untouched
    counts = np.bincount(ins["labels"], minlength=6)[:, None]  # = a gradient step at the rate alpha / (1 + n_j)
    step = ins["centers"] - alpha / (1 + counts) * LOSS.grad(**ins)["centers"]
    np.testing.assert_allclose(new, step, rtol=1e-14, atol=1e-15)


def test_update_centers_fixed_point_is_the_class_means():
    ins = _inputs(np.random.default_rng(9), classes=5, empty=(1,))
    means = ins["centers"].copy()
    for j in (0, 2, 3, 4):
        means[j] = ins["embeddings"][ins["labels"] == j].mean(axis=0)
    new = LOSS.update_centers(ins["embeddings"], ins["labels"], means, alpha=1.0)
    np.testing.assert_allclose(new, means, rtol=0, atol=1e-14)
    c = LOSS.update_centers(ins["embeddings"], ins["labels"], ins["centers"], alpha=1.0)
    for _ in range(60):  # repeated on one batch, the centers converge to the class means
        c = LOSS.update_centers(ins["embeddings"], ins["labels"], c, alpha=1.0)
    np.testing.assert_allclose(c, means, rtol=0, atol=1e-10)


# ------------------------------------------------------------------ (e) verify and the registry


def test_verify_passes_and_registry():
    loss = lossgrad.get("center")
    assert loss == LOSS and loss.family == "embedding" and loss.props.convex and loss.has_hvp
    report = lossgrad.verify(loss)
    assert report.passed, str(report)


# ------------------------------------------------------------------ (f) libraries and dtypes


def test_torch_float32_and_jax_inputs():
    import jax.numpy as jnp

    ins = _inputs(np.random.default_rng(11))
    v, g = LOSS.value_grad(**ins)
    tins = {k: torch.as_tensor(a) for k, a in ins.items()}
    tv, tg = LOSS.value_grad(**tins)
    assert isinstance(tv, torch.Tensor) and all(isinstance(a, torch.Tensor) for a in tg.values())
    assert _relerr(tv.numpy(), v) <= RTOL and all(_relerr(tg[k].numpy(), g[k]) <= RTOL for k in g)
    assert isinstance(LOSS.update_centers(**tins), torch.Tensor)
    f32 = {k: (a.astype(np.float32) if a.dtype.kind == "f" else a) for k, a in ins.items()}
    v32, g32 = LOSS.value_grad(**f32)
    assert v32.dtype == np.float32 and all(a.dtype == np.float32 for a in g32.values())
    assert LOSS.update_centers(**f32).dtype == np.float32
    assert LOSS.hvp({"centers": np.ones((5, 4))}, **f32)["embeddings"].dtype == np.float32
    assert _relerr(v32, v) <= 1e-5
    jins = {k: jnp.asarray(a) for k, a in ins.items()}
    jv, jg = LOSS.value_grad(**jins)
    assert "jax" in type(jv).__module__ and _relerr(np.asarray(jv), v) <= RTOL
    assert all(_relerr(np.asarray(jg[k]), g[k]) <= RTOL for k in g)


# ------------------------------------------------------------------ (g) bad inputs


def test_bad_inputs_name_the_argument():
    ins = _inputs(np.random.default_rng(12))
    with pytest.raises(ValueError, match="centers.*same D"):
        LOSS.value(**{**ins, "centers": np.zeros((5, 3))})
    with pytest.raises(ValueError, match=r"labels.*\[0, 5\).*centers"):
        LOSS.value(**{**ins, "labels": np.where(ins["labels"] == 0, 5, ins["labels"])})
    with pytest.raises(ValueError, match="labels"):
        LOSS.value(**{**ins, "labels": -ins["labels"] - 1})
    with pytest.raises(ValueError, match="labels.*integer"):
        LOSS.value(**{**ins, "labels": ins["labels"] + 0.5})
    with pytest.raises(ValueError, match=r"labels.*\(11,\)"):
        LOSS.value(**{**ins, "labels": ins["labels"][:-1]})
    bad = ins["embeddings"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="embeddings.*NaN or infinite"):
        LOSS.value(**{**ins, "embeddings": bad})
    with pytest.raises(ValueError, match="centers.*NaN or infinite"):
        LOSS.grad(**{**ins, "centers": np.full((5, 4), np.inf)})
    with pytest.raises(ValueError, match="centers.*2-dimensional"):
        LOSS.value(**{**ins, "centers": np.zeros(4)})
    with pytest.raises(TypeError, match="missing.*centers"):
        LOSS.value(embeddings=ins["embeddings"], labels=ins["labels"])
    with pytest.raises(ValueError, match="sample_weight"):
        LOSS.value(sample_weight=-np.ones(11), **ins)
    with pytest.raises(ValueError, match=r"v\['centers'\]"):
        LOSS.hvp({"centers": np.zeros((4, 4))}, **ins)
    with pytest.raises(ValueError, match="labels"):
        LOSS.update_centers(ins["embeddings"], ins["labels"] + 2, ins["centers"])
    for alpha in (0.0, -0.1, 1.5, float("inf")):
        with pytest.raises(ValueError, match=r"update_centers: alpha must lie in \(0.0, 1.0\]"):
            LOSS.update_centers(alpha=alpha, **ins)
    with pytest.raises(ValueError, match="alpha must not be NaN"):
        LOSS.update_centers(alpha=float("nan"), **ins)
    with pytest.raises(TypeError, match="alpha must be a real number"):
        LOSS.update_centers(alpha="fast", **ins)


# ------------------------------------------------------------------ the integrations


def test_torch_function_gradgradcheck():
    from lossgrad.integrations.torch import function

    ins = _inputs(np.random.default_rng(13), n=6, classes=3, dim=2, empty=())
    fn = function("center")
    y = torch.as_tensor(ins["labels"])
    args = (torch.tensor(ins["embeddings"], requires_grad=True), torch.tensor(ins["centers"], requires_grad=True))
    w = torch.as_tensor(np.random.default_rng(14).uniform(0.5, 1.5, 6))

    def per_item(x, c):
        return fn(embeddings=x, labels=y, centers=c, sample_weight=w, reduction="none")

    assert torch.autograd.gradcheck(per_item, args, eps=1e-6, atol=1e-8, rtol=1e-6)
    assert torch.autograd.gradgradcheck(per_item, args, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_jax_jacrev_of_grad_equals_hvp():
    import jax
    import jax.numpy as jnp

    from lossgrad.integrations import jax as lgj

    ins = _inputs(np.random.default_rng(15), n=5, classes=3, dim=2, empty=(2,))
    fn = lgj.function("center")
    y = jnp.asarray(ins["labels"])

    def total(x, c):
        return fn(embeddings=x, labels=y, centers=c, reduction="sum")

    x, c = jnp.asarray(ins["embeddings"]), jnp.asarray(ins["centers"])
    hess = jax.jacrev(jax.grad(total, argnums=(0, 1)), argnums=(0, 1))(x, c)
    H = _full_hessian(ins, None)
    nx = x.size
    blocks = [[np.asarray(hess[a][b]).reshape(x.size if a == 0 else c.size, -1) for b in (0, 1)] for a in (0, 1)]
    np.testing.assert_allclose(np.block(blocks), H, rtol=0, atol=1e-14)
    assert H[:nx, :nx].trace() == pytest.approx(nx)
