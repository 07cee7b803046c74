"""Segmentation losses, second order: hvp against PyTorch's autograd Hessian-vector product
of independent torch transcriptions, against central differences of grad, _item_jvp against
differences of the values, ignored pixels, weights, other array libraries, bad directions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_segmentation import IDS, INSTANCES, _cases, _labels, _targets

import lossgrad
from lossgrad.losses.segmentation import Dice, LovaszHinge, LovaszSoftmax, SoftJaccard, Tversky

REGION = (Dice, Tversky, SoftJaccard)


def _all_cases(loss, seed):
    """_cases (labels with ignore_index, masks, C == 1, a 1-D map) plus the verify example."""
    rng = np.random.default_rng(seed)
    return _cases(loss, rng) + [tuple(loss._example_inputs(rng).values())]


def _uses_sigmoid(loss, c):
    return isinstance(loss, REGION) and (loss.activation == "sigmoid" or (loss.activation == "auto" and c == 1))


# ---------------------------------------------------------------- torch transcriptions (no lossgrad)


def _torch_region(loss, p, t, valid):
    """1 - mean_c ratio, written with TP, FP and FN as the papers do; p, t (n, c, P), valid (n, 1, P)."""
    tp = (p * t * valid).sum(-1)
    fp = (p * (1 - t) * valid).sum(-1)
    fn = ((1 - p) * t * valid).sum(-1)
    if isinstance(loss, Dice):
        ratio = (2 * tp + loss.smooth) / (2 * tp + fp + fn + loss.smooth)
    elif isinstance(loss, Tversky):
        ratio = (tp + loss.smooth) / (tp + loss.alpha * fp + loss.beta * fn + loss.smooth)
    else:
        ratio = (tp + loss.smooth) / (tp + fp + fn + loss.smooth)
    return (1 - ratio).mean(-1)


def _jaccard_steps(gt_sorted):
    inter = gt_sorted.sum() - gt_sorted.cumsum(0)
    union = gt_sorted.sum() + (1 - gt_sorted).cumsum(0)
    jac = 1 - inter / union
    return torch.cat([jac[:1], jac[1:] - jac[:-1]])


def _torch_lovasz(loss, x, t, valid):
    """Berman's construction with torch ops, differentiable twice through the sort."""
    n, c = x.shape[:2]
    vals = []
    for i in range(n):
        keep = torch.tensor(valid[i, 0] > 0)
        if isinstance(loss, LovaszHinge):
            gt = torch.tensor(t[i, 0])[keep]
            terms = [(torch.relu(1 - x[i, 0][keep] * (2 * gt - 1)), gt)]
        else:
            p = torch.softmax(x[i], dim=0)
            terms = [((torch.tensor(t[i, k])[keep] - p[k][keep]).abs(), torch.tensor(t[i, k])[keep])
                     for k in range(c) if not (loss.classes == "present" and t[i, k][valid[i, 0] > 0].sum() == 0)]
        per = []
        for err, gt in terms:
            e_s, order = torch.sort(err, descending=True, stable=True)
            per.append(torch.dot(e_s, _jaccard_steps(gt[order])))
        vals.append(torch.stack(per).mean() if per else x.sum() * 0)
    return torch.stack(vals)


def torch_value(loss, y, xt):
    """Per-sample values of the torch transcription at logits xt (a float64 tensor of y_pred's shape)."""
    n, c = xt.shape[:2]
    t, valid = _targets(loss, np.asarray(y), xt.detach().numpy())
    valid = valid[:, None, :]
    x = xt.reshape(n, c, -1)
    if isinstance(loss, (LovaszHinge, LovaszSoftmax)):
        return _torch_lovasz(loss, x, t, valid)
    p = torch.sigmoid(x) if _uses_sigmoid(loss, c) else torch.softmax(x, dim=1)
    return _torch_region(loss, p, torch.tensor(t), torch.tensor(valid))


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / max(float(np.max(np.abs(b))), 1e-300)


def _direction(rng, f):
    return rng.normal(size=f.shape)


# ---------------------------------------------------------------- (a) PyTorch oracle


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_hvp_matches_pytorch_autograd(loss):
    """Every case (labels with ignore_index, soft or one-hot masks, C == 1, 1-D maps) with
    sample weights: hvp equals torch.autograd.functional.hvp of the transcription."""
    rng = np.random.default_rng(10)
    for y, f in _all_cases(loss, 11):
        w = rng.uniform(0.2, 2.0, f.shape[0])
        z = _direction(rng, f)
        ours = loss.hvp({"y_pred": z}, y_true=y, y_pred=f, sample_weight=w)["y_pred"]
        wt = torch.tensor(w)
        _, theirs = torch.autograd.functional.hvp(lambda x, y=y, wt=wt: (torch_value(loss, y, x) * wt).sum(),
                                                  torch.tensor(f), torch.tensor(z))
        theirs = theirs.numpy()
        assert ours.shape == f.shape and ours.dtype == f.dtype
        if isinstance(loss, LovaszHinge):
            assert np.all(ours == 0.0) and np.all(theirs == 0.0)
        else:
            assert _rel(ours, theirs) <= 1e-10, (y.shape, f.shape, _rel(ours, theirs))


@pytest.mark.parametrize("loss", [i for i in INSTANCES if not isinstance(i, LovaszHinge)], ids=repr)
def test_full_hessian_matches_pytorch_and_is_symmetric(loss):
    """Columns hvp(e_j) assemble the Hessian of one small map: torch's, and symmetric; the
    samples do not interact (the blocks between two samples are 0)."""
    rng = np.random.default_rng(12)
    n, c = 2, 1 if isinstance(loss, REGION) and loss.activation == "sigmoid" else 3
    f = rng.normal(size=(n, c, 5))
    if isinstance(loss, REGION) and loss.activation == "sigmoid":
        y = rng.random(size=f.shape)
    else:
        y = _labels(rng, (n, 5), c, getattr(loss, "ignore_index", None), frac=0.3)
    cols = []
    for j in range(f.size):
        e = np.zeros(f.size)
        e[j] = 1.0
        cols.append(loss.hvp({"y_pred": e.reshape(f.shape)}, y_true=y, y_pred=f)["y_pred"].reshape(-1))
    ours = np.stack(cols, axis=1)
    theirs = torch.autograd.functional.hessian(lambda x: torch_value(loss, y, x.reshape(f.shape)).sum(),
                                               torch.tensor(f).reshape(-1)).numpy()
    assert _rel(ours, theirs) <= 1e-10
    np.testing.assert_allclose(ours, ours.T, rtol=0, atol=1e-14 * np.abs(ours).max())
    per = f[0].size
    assert np.all(ours[:per, per:] == 0.0) and np.all(ours[per:, :per] == 0.0)


# ---------------------------------------------------------------- (b), (c) finite differences


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_hvp_matches_central_differences_of_grad(loss):
    rng = np.random.default_rng(13)
    h = 1e-6
    for y, f in _all_cases(loss, 14):
        w = rng.uniform(0.2, 2.0, f.shape[0])
        z = _direction(rng, f)
        hv = loss.hvp({"y_pred": z}, y_true=y, y_pred=f, sample_weight=w)["y_pred"]
        gp = loss.grad(y_true=y, y_pred=f + h * z, sample_weight=w)["y_pred"]
        gm = loss.grad(y_true=y, y_pred=f - h * z, sample_weight=w)["y_pred"]
        fd = (gp - gm) / (2 * h)
        scale = max(np.abs(fd).max(), np.abs(loss.grad(y_true=y, y_pred=f, sample_weight=w)["y_pred"]).max())
        assert np.max(np.abs(hv - fd)) <= 1e-6 * scale, (y.shape, f.shape)


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_item_jvp_matches_central_differences_of_the_values(loss):
    rng = np.random.default_rng(15)
    h = 1e-6
    for y, f in _all_cases(loss, 16):
        z = _direction(rng, f)
        xp, data, _ = loss._prepare_batch({"y_true": y, "y_pred": f}, None)
        jvp = np.asarray(loss._item_jvp(xp, data, {"y_pred": z}))
        fd = (loss.value(y_true=y, y_pred=f + h * z) - loss.value(y_true=y, y_pred=f - h * z)) / (2 * h)
        assert jvp.shape == (f.shape[0],)
        np.testing.assert_allclose(jvp, fd, rtol=1e-6, atol=1e-8 * max(np.abs(fd).max(), 1e-2))
        g = loss.grad(y_true=y, y_pred=f)["y_pred"]
        np.testing.assert_allclose(jvp, np.sum((g * z).reshape(f.shape[0], -1), axis=1), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- ignored pixels, weights, structure


@pytest.mark.parametrize("loss", [i for i in INSTANCES if getattr(i, "ignore_index", None) is not None], ids=repr)
def test_ignored_pixels_are_not_read_and_get_zero(loss):
    y, f = _cases(loss, np.random.default_rng(17))[0]
    ignored = y == loss.ignore_index
    assert ignored.any() and y.ndim == f.ndim - 1
    z = _direction(np.random.default_rng(18), f)
    hv = loss.hvp({"y_pred": z}, y_true=y, y_pred=f)["y_pred"]
    assert np.all(np.moveaxis(hv, 1, -1)[ignored] == 0.0)
    zn = np.moveaxis(z.copy(), 1, -1)
    zn[ignored] = np.nan  # never read
    zn = np.moveaxis(zn, -1, 1)
    np.testing.assert_array_equal(loss.hvp({"y_pred": zn}, y_true=y, y_pred=f)["y_pred"], hv)
    xp, data, _ = loss._prepare_batch({"y_true": y, "y_pred": f}, None)
    np.testing.assert_array_equal(loss._item_jvp(xp, data, {"y_pred": zn}), loss._item_jvp(xp, data, {"y_pred": z}))


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_weights_scale_each_sample_and_absent_direction_is_zero(loss):
    y, f = _all_cases(loss, 19)[0]
    z = _direction(np.random.default_rng(20), f)
    w = np.linspace(-0.5, 2.0, f.shape[0])  # signed: the PyTorch adapter passes incoming gradients
    plain = loss.hvp({"y_pred": z}, y_true=y, y_pred=f)["y_pred"]
    with lossgrad.config_context(assume_valid=True):
        weighted = loss.hvp({"y_pred": z}, y_true=y, y_pred=f, sample_weight=w)["y_pred"]
    np.testing.assert_allclose(weighted, plain * w[:, None, None, None], rtol=1e-14, atol=1e-300)
    assert np.all(loss.hvp({}, y_true=y, y_pred=f)["y_pred"] == 0.0)
    assert np.all(loss.hvp({"y_pred": None}, y_true=y, y_pred=f)["y_pred"] == 0.0)


def test_declared_second_order():
    for loss in INSTANCES:
        assert loss.has_hvp and loss.props.has_hess
        assert r"\text{not provided}" not in loss.formula.hess


def test_extreme_logits_keep_the_hvp_finite():
    for loss in INSTANCES:
        ex = loss._extreme_inputs(np.random.default_rng(21))
        hv = loss.hvp({"y_pred": np.ones_like(ex["y_pred"])}, **ex)["y_pred"]
        assert np.all(np.isfinite(hv)), loss


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_verify_passes(loss):
    report = lossgrad.verify(loss)
    assert report.passed, report
    assert report.check("hvp").declared == "present"


# ---------------------------------------------------------------- (d) arrays and dtypes


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_hvp_in_torch_jax_and_float32(loss):
    y, f = _all_cases(loss, 22)[0]
    z = _direction(np.random.default_rng(23), f)
    w = np.linspace(0.5, 1.5, f.shape[0])
    ref = loss.hvp({"y_pred": z}, y_true=y, y_pred=f, sample_weight=w)["y_pred"]
    th = loss.hvp({"y_pred": torch.tensor(z)}, y_true=torch.tensor(y), y_pred=torch.tensor(f),
                  sample_weight=torch.tensor(w))["y_pred"]
    assert isinstance(th, torch.Tensor) and th.dtype == torch.float64 and tuple(th.shape) == f.shape
    np.testing.assert_allclose(th.numpy(), ref, rtol=1e-12, atol=1e-15)
    tol = {"rtol": 2e-3, "atol": 2e-4 * max(np.abs(ref).max(), 1e-3)}
    n32 = loss.hvp({"y_pred": z}, y_true=y, y_pred=f.astype(np.float32), sample_weight=w)["y_pred"]
    assert n32.dtype == np.float32
    np.testing.assert_allclose(n32, ref, **tol)
    t32 = loss.hvp({"y_pred": torch.tensor(z)}, y_true=torch.tensor(y), y_pred=torch.tensor(f, dtype=torch.float32))
    assert t32["y_pred"].dtype == torch.float32
    xp, data, _ = loss._prepare_batch({"y_true": torch.tensor(y), "y_pred": torch.tensor(f, dtype=torch.float32)}, None)
    jv = loss._item_jvp(xp, data, {"y_pred": torch.tensor(z)})
    assert isinstance(jv, torch.Tensor) and jv.dtype == torch.float32 and tuple(jv.shape) == (f.shape[0],)


@pytest.mark.parametrize("cls", [Dice, Tversky, SoftJaccard, LovaszHinge, LovaszSoftmax], ids=lambda c: c.__name__)
def test_hvp_in_jax(cls):
    import jax.numpy as jnp

    loss = cls()
    y, f = _all_cases(loss, 24)[0]
    z = _direction(np.random.default_rng(25), f)
    ref = loss.hvp({"y_pred": z}, y_true=y, y_pred=f)["y_pred"]
    jh = loss.hvp({"y_pred": jnp.asarray(z, dtype=jnp.float32)}, y_true=jnp.asarray(y),
                  y_pred=jnp.asarray(f, dtype=jnp.float32))["y_pred"]
    assert jh.dtype == jnp.float32 and tuple(jh.shape) == f.shape
    np.testing.assert_allclose(np.asarray(jh), ref, rtol=2e-3, atol=2e-4 * max(np.abs(ref).max(), 1e-3))


# ---------------------------------------------------------------- (e) bad directions


@pytest.mark.parametrize("loss", [Dice(ignore_index=255), LovaszHinge(), LovaszSoftmax()], ids=repr)
def test_bad_directions_name_the_argument(loss):
    y, f = _all_cases(loss, 26)[0]
    with pytest.raises(ValueError, match=r"v has key\(s\) \['y_true'\]; the differentiable inputs are \['y_pred'\]"):
        loss.hvp({"y_true": f}, y_true=y, y_pred=f)
    with pytest.raises(ValueError, match=r"v\['y_pred'\] must have the shape of y_pred"):
        loss.hvp({"y_pred": f[:, :, :2]}, y_true=y, y_pred=f)
    ii = getattr(loss, "ignore_index", None)
    valid = np.ones(f.shape[:1] + f.shape[2:], dtype=bool) if y.ndim == f.ndim or ii is None else y != ii
    n, *pix = np.argwhere(valid)[-1]
    bad = np.ones_like(f)
    bad[(n, f.shape[1] - 1, *pix)] = np.nan  # on a valid pixel
    with pytest.raises(ValueError, match=r"v\['y_pred'\]"):
        loss.hvp({"y_pred": bad}, y_true=y, y_pred=f)
    xp, data, _ = loss._prepare_batch({"y_true": y, "y_pred": f}, None)
    with pytest.raises(ValueError, match=r"v\['y_pred'\]"):
        loss._item_jvp(xp, data, {"y_pred": bad})
    with pytest.raises(TypeError, match="v must be a dict"):
        loss.hvp(f, y_true=y, y_pred=f)


# ---------------------------------------------------------------- through the PyTorch adapter


@pytest.mark.parametrize("loss", [Dice(smooth=0.0, ignore_index=255), Tversky(alpha=0.3, beta=0.7),
                                  SoftJaccard(activation="sigmoid"), LovaszSoftmax(classes="all", ignore_index=255)],
                         ids=repr)
def test_torch_adapter_double_backward_is_the_exact_hessian(loss):
    """lossgrad.integrations.torch: torch's Hessian of the weighted mean equals that of the
    transcription; so does d/dw of <grad, u> (the weights' path, from _item_jvp)."""
    from lossgrad.integrations.torch import function

    rng = np.random.default_rng(27)
    c = 1 if isinstance(loss, REGION) and loss.activation == "sigmoid" else 3
    f = rng.normal(size=(2, c, 2, 2))
    y = rng.random(size=f.shape) if c == 1 else _labels(rng, (2, 2, 2), c, getattr(loss, "ignore_index", None), 0.3)
    fn = function(loss)
    yt = torch.tensor(y)
    w = torch.linspace(0.5, 1.5, f.shape[0], dtype=torch.float64)
    ours = torch.autograd.functional.hessian(lambda x: fn(y_true=yt, y_pred=x, sample_weight=w), torch.tensor(f))
    theirs = torch.autograd.functional.hessian(lambda x: (torch_value(loss, y, x) * w).sum() / w.sum(), torch.tensor(f))
    assert _rel(ours.numpy(), theirs.numpy()) <= 1e-10
    grads = []
    for value in (lambda x, wt: fn(y_true=yt, y_pred=x, sample_weight=wt, reduction="sum"),
                  lambda x, wt: (torch_value(loss, y, x) * wt).sum()):
        x, wt = torch.tensor(f, requires_grad=True), w.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(value(x, wt), x, create_graph=True)
        (g * torch.arange(g.numel(), dtype=g.dtype).reshape(g.shape)).sum().backward()
        grads.append((wt.grad.numpy(), x.grad.numpy()))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-10, atol=1e-13)
