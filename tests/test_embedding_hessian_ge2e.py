"""GE2E, second order: the Hessian-vector product against PyTorch's autograd of an
independent transcription (tests/test_embedding_oracles.py's loop over utterances and
speakers with F.cosine_similarity), central differences of ``grad``, ``_item_jvp``
against differences of the values, the contrast kind's tie convention, other array
libraries and dtypes, and bad directions.

Every registered GE2E variant is covered (``catalog(family="embedding")``), with sample
weights, on three shapes: the examples' (3, 4, 5), the smallest (2 speakers of 2
utterances) and (4, 3, 6).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_embedding_oracles import _ge2e_torch

import lossgrad
from lossgrad._registry import catalog

NAMES = ("embeddings", "w", "b")
VARIANTS = [inst for entry in catalog(family="embedding") if entry.name == "ge2e" for inst in entry.instances()]
SHAPES = [(3, 4, 5), (2, 2, 3), (4, 3, 6)]
RTOL = 1e-10


def test_every_registered_variant_declares_the_hessian():
    assert {i.kind for i in VARIANTS} == {"softmax", "contrast"} and len(VARIANTS) >= 3
    for loss in VARIANTS:
        assert loss.has_hvp and loss.props.has_hess


def _inputs(shape, seed):
    rng = np.random.default_rng(seed)
    J, M, D = shape
    e = rng.normal(size=(J, 1, D)) + rng.normal(scale=0.6, size=(J, M, D))
    return {"embeddings": e, "w": np.asarray(rng.uniform(2.0, 8.0)), "b": np.asarray(rng.uniform(-3.0, 1.0))}


def _direction(ins, seed):
    rng = np.random.default_rng(seed + 1000)
    return {k: rng.normal(size=np.shape(ins[k])) for k in NAMES}


def _weights(shape, seed):
    return np.random.default_rng(seed + 2000).uniform(0.5, 1.5, shape[:2])


def _torch_hvp(fn, ins, sw, v):
    """PyTorch's Hessian of sum(sw * value) times v, by double backward through the transcription."""
    args = tuple(torch.tensor(np.asarray(ins[k], dtype=float)) for k in NAMES)
    weights = torch.tensor(sw)
    _, hv = torch.autograd.functional.hvp(lambda *a: (fn(*a) * weights).sum(), args,
                                          tuple(torch.tensor(np.asarray(v[k], dtype=float)) for k in NAMES))
    return {k: h.numpy() for k, h in zip(NAMES, hv)}


def _error(ours, theirs, scale=None):
    """Largest entry-wise difference over every input, relative to the largest entry of
    theirs (or to ``scale``)."""
    scale = max(float(np.abs(theirs[k]).max()) for k in theirs) if scale is None else scale
    return max(float(np.abs(np.asarray(ours[k]) - np.reshape(theirs[k], np.shape(ours[k]))).max()) for k in theirs) / scale


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("loss", VARIANTS, ids=repr)
def test_hvp_matches_pytorch_autograd(loss, shape):
    for seed in range(3):
        ins, sw = _inputs(shape, seed), _weights(shape, seed)
        v = _direction(ins, seed)
        ours = loss.hvp(v, sample_weight=sw, **ins)
        theirs = _torch_hvp(_ge2e_torch(loss.kind), ins, sw, v)
        assert set(ours) == set(NAMES)
        assert all(np.shape(ours[k]) == np.shape(ins[k]) for k in NAMES)
        assert _error(ours, theirs) <= RTOL


@pytest.mark.parametrize("loss", VARIANTS, ids=repr)
def test_each_direction_alone_matches_pytorch(loss):
    """Directions along the embeddings only, w only, b only: each block row of the Hessian
    (relative to the whole product's size: softmax's b row is an exact 0 here, rounding there)."""
    ins, sw = _inputs((3, 4, 5), 7), _weights((3, 4, 5), 7)
    full = _direction(ins, 7)
    scale = max(float(np.abs(h).max()) for h in _torch_hvp(_ge2e_torch(loss.kind), ins, sw, full).values())
    for name in NAMES:
        v = {k: (full[k] if k == name else np.zeros_like(full[k])) for k in NAMES}
        ours = loss.hvp({name: full[name]}, sample_weight=sw, **ins)
        assert _error(ours, _torch_hvp(_ge2e_torch(loss.kind), ins, sw, v), scale) <= RTOL, name
        if loss.kind == "softmax" and name == "b":
            assert all(float(np.abs(np.asarray(h)).max()) == 0.0 for h in ours.values())


def test_w_and_b_given_as_numbers_one_element_arrays_or_left_out():
    loss = lossgrad.get("ge2e", kind="contrast", w=4.0, b=-1.5)
    ins = _inputs((3, 4, 5), 3)
    ins["w"], ins["b"] = np.asarray(4.0), np.asarray(-1.5)
    v = _direction(ins, 3)
    ref = loss.hvp(v, **ins)
    as_numbers = loss.hvp({"embeddings": v["embeddings"], "w": float(v["w"]), "b": float(v["b"])},
                          embeddings=ins["embeddings"], w=4.0, b=-1.5)
    one_element = loss.hvp({k: np.reshape(v[k], (1,)) if k != "embeddings" else v[k] for k in NAMES},
                           embeddings=ins["embeddings"], w=np.array([4.0]), b=np.array([-1.5]))
    defaults = loss.hvp(v, embeddings=ins["embeddings"])  # the fields 4.0 and -1.5
    for other in (as_numbers, one_element, defaults):
        for k in NAMES:
            np.testing.assert_allclose(np.reshape(other[k], np.shape(ref[k])), ref[k], rtol=1e-14, atol=1e-15)
    assert np.shape(one_element["w"]) == (1,) and np.shape(as_numbers["w"]) == ()


def test_softmax_does_not_depend_on_b_at_second_order_either():
    loss = lossgrad.get("ge2e")
    ins = _inputs((3, 4, 5), 4)
    v = _direction(ins, 4)
    hv = loss.hvp(v, **ins)
    assert float(hv["b"]) == 0.0
    without_b = loss.hvp({**v, "b": 0.0}, **ins)
    for k in NAMES:
        np.testing.assert_array_equal(np.asarray(hv[k]), np.asarray(without_b[k]))


@pytest.mark.parametrize("loss", VARIANTS, ids=repr)
def test_hvp_is_symmetric(loss):
    """<v1, H v2> = <v2, H v1>: the Hessian of a twice differentiable piece is symmetric."""
    ins, sw = _inputs((4, 3, 6), 5), _weights((4, 3, 6), 5)
    v1, v2 = _direction(ins, 5), _direction(ins, 6)
    h1, h2 = loss.hvp(v1, sample_weight=sw, **ins), loss.hvp(v2, sample_weight=sw, **ins)
    a = sum(float(np.sum(v2[k] * np.asarray(h1[k]))) for k in NAMES)
    b = sum(float(np.sum(v1[k] * np.asarray(h2[k]))) for k in NAMES)
    assert a == pytest.approx(b, rel=1e-12)


def _stencil(f, x, v, h):
    """4th-order central difference of f along v at x (dicts of arrays)."""
    at = {t: f({k: x[k] + t * h * v[k] for k in v}) for t in (-2, -1, 1, 2)}
    return {k: (8 * (np.asarray(at[1][k]) - np.asarray(at[-1][k])) - (np.asarray(at[2][k]) - np.asarray(at[-2][k])))
            / (12 * h) for k in at[1]}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("loss", VARIANTS, ids=repr)
def test_hvp_matches_central_differences_of_grad(loss, shape):
    ins, sw = _inputs(shape, 11), _weights(shape, 11)
    v = _direction(ins, 11)
    fd = _stencil(lambda x: loss.grad(sample_weight=sw, **x), ins, v, 1e-4)
    assert _error(loss.hvp(v, sample_weight=sw, **ins), fd) <= 1e-8


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("loss", VARIANTS, ids=repr)
def test_item_jvp_matches_differences_of_the_values(loss, shape):
    ins, sw = _inputs(shape, 12), _weights(shape, 12)
    v = _direction(ins, 12)
    xp, data, _ = loss._prepare_batch(ins, None)
    jvp = np.asarray(loss._item_jvp(xp, data, v))
    fd = _stencil(lambda x: {"value": loss.value(**x)}, ins, v, 1e-4)["value"]
    assert jvp.shape == shape[:2]
    np.testing.assert_allclose(jvp, fd, rtol=0, atol=1e-8 * np.abs(fd).max())
    # and the weighted sum of the items' changes is <grad, v>
    g = loss.grad(sample_weight=sw, **ins)
    assert float(np.sum(sw * jvp)) == pytest.approx(sum(float(np.sum(np.asarray(g[k]) * v[k])) for k in NAMES),
                                                    rel=1e-12)


def _ge2e_contrast_first_hardest(embeddings, w, b):
    """The contrast kind with the hardest other speaker chosen as the first of any tie."""
    J, M, _ = embeddings.shape
    cent = embeddings.mean(dim=1)
    excl = (embeddings.sum(dim=1, keepdim=True) - embeddings) / (M - 1)
    rows = []
    for j in range(J):
        for i in range(M):
            S = w * torch.stack([F.cosine_similarity(embeddings[j, i], excl[j, i] if k == j else cent[k], dim=0)
                                 for k in range(J)]) + b
            others = torch.stack([torch.sigmoid(S[k]) for k in range(J) if k != j])
            rows.append(1 - torch.sigmoid(S[j]) + others[int(torch.argmax(others.detach()))])
    return torch.stack(rows).reshape(J, M)


def test_contrast_tie_takes_the_gradients_side():
    """Speakers 1 and 2 identical: for speaker 0's utterances the two other centroids tie
    exactly; the Hessian is that of the piece the gradient takes, the first of them."""
    loss = lossgrad.get("ge2e", kind="contrast")
    ins = _inputs((3, 4, 5), 13)
    ins["embeddings"][2] = ins["embeddings"][1]
    sw, v = _weights((3, 4, 5), 13), _direction(ins, 13)
    cos = _ge2e_cosines(ins["embeddings"])
    assert np.array_equal(cos[0, :, 1], cos[0, :, 2])  # an exact tie
    ours = loss.hvp(v, sample_weight=sw, **ins)
    assert _error(ours, _torch_hvp(_ge2e_contrast_first_hardest, ins, sw, v)) <= RTOL
    g = loss.grad(sample_weight=sw, **ins)["embeddings"]
    t = {k: torch.tensor(np.asarray(ins[k], dtype=float), requires_grad=True) for k in NAMES}
    (_ge2e_contrast_first_hardest(*t.values()) * torch.tensor(sw)).sum().backward()
    np.testing.assert_allclose(g, t["embeddings"].grad.numpy(), rtol=1e-10, atol=1e-13)


def _ge2e_cosines(e):
    J, M, _ = e.shape
    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    u, cen = unit(e), unit(e.mean(axis=1))
    cex = unit((e.sum(axis=1, keepdims=True) - e) / (M - 1))
    cos = u @ cen.T
    for j in range(J):
        cos[j, :, j] = np.sum(u[j] * cex[j], axis=-1)
    return cos


@pytest.mark.parametrize("kind", ["softmax", "contrast"])
def test_torch_and_jax_in_give_their_arrays_out_and_float32_stays_float32(kind):
    loss = lossgrad.get("ge2e", kind=kind)
    ins, sw = _inputs((3, 4, 5), 14), _weights((3, 4, 5), 14)
    v = _direction(ins, 14)
    ref = loss.hvp(v, sample_weight=sw, **ins)
    xp, data, _ = loss._prepare_batch(ins, None)
    ref_jvp = np.asarray(loss._item_jvp(xp, data, v))
    for lib, tol in ((torch.float64, 1e-12), (torch.float32, 2e-4), (jnp.float64, 1e-12), (jnp.float32, 2e-4)):
        conv = (lambda a, dt=lib: torch.tensor(np.asarray(a), dtype=dt)) if isinstance(lib, torch.dtype) else \
            (lambda a, dt=lib: jnp.asarray(np.asarray(a), dtype=dt))
        tins = {k: conv(a) for k, a in ins.items()}
        hv = loss.hvp({k: conv(a) for k, a in v.items()}, sample_weight=conv(sw), **tins)
        for k in NAMES:
            assert type(hv[k]) is type(tins[k]) and hv[k].dtype == tins[k].dtype, (lib, k)
            scale = np.abs(np.asarray(ref[k])).max() + np.abs(np.asarray(ref["embeddings"])).max()
            np.testing.assert_allclose(np.asarray(hv[k]), np.asarray(ref[k]), rtol=0, atol=tol * scale)
        xp, data, _ = loss._prepare_batch(tins, None)
        jvp = loss._item_jvp(xp, data, {k: conv(a) for k, a in v.items()})
        assert type(jvp) is type(tins["embeddings"]) and jvp.dtype == tins["embeddings"].dtype
        np.testing.assert_allclose(np.asarray(jvp), ref_jvp, rtol=0, atol=tol * np.abs(ref_jvp).max())


def test_the_pytorch_adapter_double_backward_is_the_exact_hvp():
    from lossgrad.integrations.torch import function

    loss = lossgrad.get("ge2e", kind="contrast")
    ins, sw = _inputs((3, 4, 5), 15), _weights((3, 4, 5), 15)
    v = _direction(ins, 15)
    args = tuple(torch.tensor(np.asarray(ins[k], dtype=float), requires_grad=True) for k in NAMES)
    total = (function(loss)(reduction="none", **dict(zip(NAMES, args))) * torch.tensor(sw)).sum()
    grads = torch.autograd.grad(total, args, create_graph=True)
    dot = sum((g * torch.tensor(v[k])).sum() for g, k in zip(grads, NAMES))
    hv = torch.autograd.grad(dot, args)
    ours = loss.hvp(v, sample_weight=sw, **ins)
    for k, h in zip(NAMES, hv):
        np.testing.assert_allclose(h.numpy(), np.reshape(ours[k], h.shape), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("kind", ["softmax", "contrast"])
def test_bad_directions_raise_naming_the_entry(kind):
    loss = lossgrad.get("ge2e", kind=kind)
    ins = _inputs((3, 4, 5), 16)
    e = ins["embeddings"]
    with pytest.raises(ValueError, match="embedding"):
        loss.hvp({"embedding": e}, **ins)
    with pytest.raises(ValueError, match=r"v\['embeddings'\].*\(3, 4, 5\)"):
        loss.hvp({"embeddings": e[:, :3]}, **ins)
    with pytest.raises(ValueError, match=r"v\['w'\]"):
        loss.hvp({"embeddings": e, "w": np.ones(2)}, **ins)
    with pytest.raises(ValueError, match=r"v\['b'\]"):
        loss.hvp({"b": np.ones((1, 1))}, **ins)
    bad = e.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"v\['embeddings'\]"):
        loss.hvp({"embeddings": bad}, **ins)
    with pytest.raises(ValueError, match=r"v\['w'\]"):
        loss.hvp({"w": np.inf}, **ins)
    xp, data, _ = loss._prepare_batch(ins, None)
    with pytest.raises(ValueError, match=r"v\['b'\]"):
        loss._item_jvp(xp, data, {"b": float("nan")})
    with pytest.raises(TypeError, match="dict"):
        loss.hvp(e, **ins)


@pytest.mark.parametrize("loss", VARIANTS, ids=repr)
def test_verify_passes_with_the_hvp_check(loss):
    report = lossgrad.verify(loss)
    assert report.passed and report.check("hvp").passed
    assert report.check("hvp").declared == "present"
