"""Segmentation losses: gradients vs finite differences, values vs loops, optax and PyTorch oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lossgrad
from lossgrad._registry import catalog
from lossgrad.losses.segmentation import Dice, LovaszHinge, LovaszSoftmax, SoftJaccard, Tversky

INSTANCES = [inst for e in catalog(family="segmentation") for inst in e.instances()]
IDS = [repr(i) for i in INSTANCES]
DEFAULTS = {type(e.instances()[0]) : e.instances()[0] for e in catalog()}  # JAX checks: one per loss (eager JAX is slow)
REGION = (Dice, Tversky, SoftJaccard)


def _central(fun, x, h=1e-6):
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp_, xm = x.copy(), x.copy()
        xp_[i] += h
        xm[i] -= h
        out[i] = (fun(xp_) - fun(xm)) / (2 * h)
    return out


def _labels(rng, shape, c, ignore=None, frac=0.2):
    lab = rng.integers(0, 2 if c == 1 else c, size=shape)
    if ignore is not None:
        lab[rng.random(size=shape) < frac] = ignore
    return lab


def _cases(loss, rng):
    """(y_true, y_pred) cases for a loss: labels, masks, C == 1 and a 1-D spatial map."""
    ii = getattr(loss, "ignore_index", None)
    out = []
    if isinstance(loss, LovaszHinge):
        f = 1.5 * rng.normal(size=(3, 1, 4, 5))
        out.append((_labels(rng, (3, 4, 5), 1, ii), f))
        out.append(((rng.random(size=f.shape) > 0.5).astype(np.float64), f))
        return out
    channels = (3,) if isinstance(loss, LovaszSoftmax) or loss.activation == "softmax" else (1, 3)
    for c in channels:
        f = 1.5 * rng.normal(size=(3, c, 4, 5))
        if not (isinstance(loss, REGION) and loss.activation == "sigmoid" and c > 1):
            out.append((_labels(rng, (3, 4, 5), c, ii), f))
        if isinstance(loss, LovaszSoftmax):
            out.append((np.moveaxis(np.eye(c)[rng.integers(0, c, size=(3, 4, 5))], -1, 1), f))
        else:
            out.append((rng.random(size=f.shape), f))
    f1 = rng.normal(size=(2, 3, 6))
    out.append((_labels(rng, (2, 6), 3, ii), f1))
    return out


def test_registry_lists_the_segmentation_family():
    assert {e.name for e in catalog(family="segmentation")} == {
        "dice", "tversky", "soft_jaccard", "lovasz_hinge", "lovasz_softmax"}


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_grad_matches_central_differences(loss):
    rng = np.random.default_rng(0)
    cases = _cases(loss, rng) + [tuple(loss._example_inputs(rng).values())]
    for y, f in cases:
        w = rng.random(f.shape[0]) + 0.1
        v, g = loss.value_grad(y_true=y, y_pred=f, sample_weight=w)
        fd = _central(lambda x: float(np.sum(loss.value(y_true=y, y_pred=x, sample_weight=w))), f)
        assert np.max(np.abs(fd - g["y_pred"])) < 1e-7, (y.shape, f.shape)
        np.testing.assert_allclose(v, loss.value(y_true=y, y_pred=f, sample_weight=w), rtol=1e-14)
        if getattr(loss, "ignore_index", None) is not None and y.ndim == f.ndim - 1:
            ignored = y == loss.ignore_index
            assert ignored.any()
            gy = np.moveaxis(g["y_pred"], 1, -1)
            assert np.all(gy[ignored] == 0.0)


# ---------------------------------------------------------------- direct loops


def _probs(loss, f):
    c = f.shape[1]
    if isinstance(loss, LovaszHinge):
        return f  # not used: the hinge works on the logits
    if isinstance(loss, LovaszSoftmax) or (loss.activation == "softmax") or (loss.activation == "auto" and c > 1):
        e = np.exp(f - f.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    return 1 / (1 + np.exp(-f))


def _targets(loss, y, f):
    """(one-hot/mask targets (N, C, P), valid (N, P)) from labels or masks."""
    n, c = f.shape[:2]
    if y.ndim == f.ndim:
        return y.reshape(n, c, -1).astype(float), np.ones((n, y.reshape(n, c, -1).shape[-1]))
    lab = y.reshape(n, -1)
    ii = getattr(loss, "ignore_index", None)
    valid = np.ones(lab.shape) if ii is None else (lab != ii).astype(float)
    t = np.zeros((n, c, lab.shape[1]))
    for i in range(n):
        for k in range(lab.shape[1]):
            if valid[i, k]:
                if c == 1:
                    t[i, 0, k] = lab[i, k]
                else:
                    t[i, int(lab[i, k]), k] = 1.0
    return t, valid


def _jaccard_weights(gt_sorted):
    out, prev = [], 0.0
    g = sum(gt_sorted)
    for k in range(len(gt_sorted)):
        inter = g - sum(gt_sorted[: k + 1])
        union = g + sum(1 - x for x in gt_sorted[: k + 1])
        j = 1 - inter / union
        out.append(j - prev)
        prev = j
    return out


def _loop_value(loss, y, f):
    n, c = f.shape[:2]
    p = _probs(loss, f).reshape(n, c, -1)
    t, valid = _targets(loss, y, f)
    out = []
    for i in range(n):
        pix = [k for k in range(p.shape[-1]) if valid[i, k]]
        if isinstance(loss, REGION):
            if isinstance(loss, Dice):
                a_, b_, s = 0.5, 0.5, loss.smooth / 2  # Dice(s) = Tversky(1/2, 1/2, s/2), written out below
            elif isinstance(loss, Tversky):
                a_, b_, s = loss.alpha, loss.beta, loss.smooth
            else:
                a_, b_, s = 1.0, 1.0, loss.smooth
            tot = 0.0
            for cc in range(c):
                tp = sum(p[i, cc, k] * t[i, cc, k] for k in pix)
                fp = sum(p[i, cc, k] * (1 - t[i, cc, k]) for k in pix)
                fn = sum((1 - p[i, cc, k]) * t[i, cc, k] for k in pix)
                if isinstance(loss, Dice):
                    ratio = (2 * tp + loss.smooth) / (2 * tp + fp + fn + loss.smooth)
                else:
                    ratio = (tp + s) / (tp + a_ * fp + b_ * fn + s)
                tot += 1 - ratio
            out.append(tot / c)
        elif isinstance(loss, LovaszHinge):
            errs = [(1 - f.reshape(n, -1)[i, k] * (2 * t[i, 0, k] - 1), t[i, 0, k]) for k in pix]
            errs.sort(key=lambda e: -e[0])
            wts = _jaccard_weights([e[1] for e in errs]) if errs else []
            out.append(sum(max(e[0], 0.0) * wk for e, wk in zip(errs, wts)))
        else:
            losses = []
            for cc in range(c):
                fg = [t[i, cc, k] for k in pix]
                if loss.classes == "present" and sum(fg) == 0:
                    continue
                errs = sorted(((abs(t[i, cc, k] - p[i, cc, k]), t[i, cc, k]) for k in pix), key=lambda e: -e[0])
                wts = _jaccard_weights([e[1] for e in errs]) if errs else []
                losses.append(sum(e[0] * wk for e, wk in zip(errs, wts)))
            out.append(sum(losses) / len(losses) if losses else 0.0)
    return np.array(out)


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_value_matches_direct_loop(loss):
    rng = np.random.default_rng(1)
    for y, f in _cases(loss, rng):
        np.testing.assert_allclose(loss.value(y_true=y, y_pred=f), _loop_value(loss, y, f), rtol=1e-12, atol=1e-14)


def test_empty_images_and_absent_classes():
    f = np.random.default_rng(2).normal(size=(2, 3, 4))
    y = np.array([[255, 255, 255, 255], [0, 0, 255, 1]])
    for loss in (LovaszSoftmax(ignore_index=255), LovaszHinge(ignore_index=255)):
        ff = f[:, :1] if isinstance(loss, LovaszHinge) else f
        yy = np.minimum(y, 1) * (y != 255) + 255 * (y == 255) if isinstance(loss, LovaszHinge) else y
        v, g = loss.value_grad(y_true=yy, y_pred=ff)
        assert v[0] == 0.0 and np.all(g["y_pred"][0] == 0.0)
    # a class absent from the ground truth: "present" skips it, "all" does not
    yp = np.array([[0, 0, 1, 1], [1, 1, 1, 0]])
    a = LovaszSoftmax().value(y_true=yp, y_pred=f)
    b = LovaszSoftmax(classes="all").value(y_true=yp, y_pred=f)
    assert np.all(a != b)


# ---------------------------------------------------------------- optax oracle (Dice, Tversky)


@pytest.mark.parametrize("loss", [Dice(smooth=0.3), Tversky(alpha=0.3, beta=0.7, smooth=0.5),
                                  Tversky(alpha=0.8, beta=0.1), SoftJaccard(smooth=0.2)], ids=repr)
@pytest.mark.parametrize("c", [1, 4])
def test_region_losses_match_optax(loss, c):
    """optax.losses.dice_loss: channels last, per class 1 - (I + s)/(I + a FP + b FN + s),
    sigmoid for one channel and softmax otherwise, mean over classes, one value per sample.
    Mapping: Tversky(a, b, s) = dice_loss(alpha=a, beta=b, smooth=s); Dice(s) =
    dice_loss(alpha=beta=1/2, smooth=s/2); SoftJaccard(s) = dice_loss(alpha=beta=1, smooth=s).
    The gradient oracle is jax.grad of optax's value."""
    import jax
    import jax.numpy as jnp
    import optax

    if not hasattr(optax.losses, "dice_loss"):
        pytest.skip(f"optax {optax.__version__} has no losses.dice_loss (added in optax 0.2.6)")
    rng = np.random.default_rng(3)
    f = rng.normal(size=(3, c, 5, 6)) * 2
    y = (rng.random(size=f.shape) > 0.6).astype(float) if c == 1 else np.moveaxis(
        np.eye(c)[rng.integers(0, c, size=(3, 5, 6))], -1, 1)
    if isinstance(loss, Dice):
        a, b, s = 0.5, 0.5, loss.smooth / 2
    elif isinstance(loss, Tversky):
        a, b, s = loss.alpha, loss.beta, loss.smooth
    else:
        a, b, s = 1.0, 1.0, loss.smooth
    yl = jnp.asarray(np.moveaxis(y, 1, -1))

    def ref(x):
        return optax.losses.dice_loss(jnp.moveaxis(x, 1, -1), yl, smooth=s, alpha=a, beta=b)

    fj = jnp.asarray(f)
    v, g = loss.value_grad(y_true=y, y_pred=f)
    np.testing.assert_allclose(v, np.asarray(ref(fj)), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g["y_pred"], np.asarray(jax.grad(lambda x: ref(x).sum())(fj)), rtol=1e-9, atol=1e-13)


# ---------------------------------------------------------------- PyTorch autograd references (Lovasz)


def _torch_lovasz(loss, y, f):
    """Berman's construction written with torch ops; autograd differentiates through the sort."""
    ft = torch.tensor(f, requires_grad=True)
    n, c = f.shape[:2]
    t, valid = _targets(loss, y, f)
    vals = []
    for i in range(n):
        keep = torch.tensor(valid[i] > 0)
        if isinstance(loss, LovaszHinge):
            gt = torch.tensor(t[i, 0])[keep]
            err = (1 - ft[i, 0].reshape(-1)[keep] * (2 * gt - 1))
            pairs = [(err, gt, True)]
        else:
            p = torch.softmax(ft[i].reshape(c, -1), dim=0)
            pairs = []
            for cc in range(c):
                gt = torch.tensor(t[i, cc])[keep]
                if loss.classes == "present" and gt.sum() == 0:
                    continue
                pairs.append(((gt - p[cc][keep]).abs(), gt, False))
        terms = []
        for err, gt, hinge in pairs:
            e_s, order = torch.sort(err, descending=True, stable=True)
            g_s = gt[order]
            inter = g_s.sum() - g_s.cumsum(0)
            union = g_s.sum() + (1 - g_s).cumsum(0)
            jac = 1 - inter / union
            jac = torch.cat([jac[:1], jac[1:] - jac[:-1]])
            terms.append(torch.dot(torch.relu(e_s) if hinge else e_s, jac))
        vals.append(torch.stack(terms).mean() if terms else ft.sum() * 0)
    val = torch.stack(vals)
    val.sum().backward()
    return val.detach().numpy(), ft.grad.numpy()


@pytest.mark.parametrize("loss", [i for i in INSTANCES if isinstance(i, (LovaszHinge, LovaszSoftmax))], ids=repr)
def test_lovasz_matches_pytorch_autograd(loss):
    rng = np.random.default_rng(4)
    for y, f in _cases(loss, rng):
        v, g = loss.value_grad(y_true=y, y_pred=f)
        tv, tg = _torch_lovasz(loss, y, f)
        np.testing.assert_allclose(v, tv, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(g["y_pred"], tg, rtol=1e-10, atol=1e-14)


def test_lovasz_hinge_is_convex_along_chords():
    rng = np.random.default_rng(5)
    y = _labels(rng, (2, 3, 4), 1)
    loss = LovaszHinge()
    for _ in range(50):
        a, b = rng.normal(size=(2, 2, 1, 3, 4)) * 2
        mid = loss.value(y_true=y, y_pred=(a + b) / 2)
        assert np.all(mid <= (loss.value(y_true=y, y_pred=a) + loss.value(y_true=y, y_pred=b)) / 2 + 1e-12)


# ---------------------------------------------------------------- arrays, dtypes


@pytest.mark.parametrize("loss", INSTANCES, ids=IDS)
def test_torch_jax_and_float32(loss):
    import jax.numpy as jnp

    rng = np.random.default_rng(6)
    y, f = _cases(loss, rng)[0]
    v, g = loss.value_grad(y_true=y, y_pred=f)
    tv, tg = loss.value_grad(y_true=torch.tensor(y), y_pred=torch.tensor(f))
    np.testing.assert_allclose(tg["y_pred"].numpy(), g["y_pred"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(tv.numpy(), v, rtol=1e-12)
    n32 = loss.value(y_true=y, y_pred=f.astype(np.float32))
    assert n32.dtype == np.float32
    np.testing.assert_allclose(n32, v, rtol=1e-4, atol=1e-5)
    if DEFAULTS.get(type(loss)) == loss:  # JAX (float32) once per loss
        jv, jg = loss.value_grad(y_true=jnp.asarray(y), y_pred=jnp.asarray(f, dtype=jnp.float32))
        assert jv.dtype == jnp.float32 and jg["y_pred"].dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(jv), v, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(jg["y_pred"]), g["y_pred"], rtol=2e-3, atol=2e-5)
    y0, f0 = y.copy(), f.copy()
    loss(y_true=y, y_pred=f, sample_weight=np.ones(f.shape[0]))
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(f, f0)


def test_extreme_logits_are_stable():
    f = np.array([[[800.0, -800.0, 3.0]], [[-900.0, 900.0, 0.0]]])
    f3 = np.concatenate([f, -f, 0 * f], axis=1)
    y = np.array([[1, 0, 1], [0, 1, 1]])
    for loss in (Dice(), Tversky(alpha=0.2, beta=0.8), SoftJaccard(), LovaszHinge()):
        v, g = loss.value_grad(y_true=y, y_pred=f)
        assert np.all(np.isfinite(v)) and np.all(np.isfinite(g["y_pred"]))
    for loss in (Dice(), LovaszSoftmax()):
        v, g = loss.value_grad(y_true=y, y_pred=f3)
        assert np.all(np.isfinite(v)) and np.all(np.isfinite(g["y_pred"]))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("loss", [Dice(), Tversky(), SoftJaccard(), LovaszSoftmax()], ids=repr)
def test_bad_inputs_name_the_argument(loss):
    rng = np.random.default_rng(7)
    f = rng.normal(size=(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"y_true must contain labels in \[0, 3\)"):
        loss.value(y_true=np.full((2, 4, 4), 3), y_pred=f)
    with pytest.raises(ValueError, match="y_true must contain labels"):
        loss.value(y_true=np.full((2, 4, 4), -1), y_pred=f)
    with pytest.raises(ValueError, match="y_true must be labels of shape"):
        loss.value(y_true=np.zeros((2, 4, 5), dtype=int), y_pred=f)
    with pytest.raises(ValueError, match="y_true: labels must be integers"):
        loss.value(y_true=np.full((2, 4, 4), 0.5), y_pred=f)
    with pytest.raises(ValueError, match="y_true must contain"):
        loss.value(y_true=np.full(f.shape, 1.5), y_pred=f)
    with pytest.raises(ValueError, match="y_pred must be logits of shape"):
        loss.value(y_true=np.zeros(2), y_pred=np.zeros(2))
    with pytest.raises(ValueError, match="y_pred contains"):
        loss.value(y_true=np.zeros((2, 4, 4), dtype=int), y_pred=np.full(f.shape, np.nan))
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        loss.value(y_true=np.zeros((2, 4, 4), dtype=int), y_pred=f, sample_weight=np.ones(3))
    # ignore_index accepts the out-of-range label it names
    ok = type(loss)(ignore_index=-1).value(y_true=np.full((2, 4, 4), -1), y_pred=f)
    assert np.all(ok == ok)


def test_bad_parameters_and_channels():
    with pytest.raises(ValueError, match="smooth"):
        Dice(smooth=-1.0)
    with pytest.raises(ValueError, match="activation"):
        Dice(activation="relu")
    with pytest.raises(ValueError, match="alpha"):
        Tversky(alpha=-0.1)
    with pytest.raises(ValueError, match="alpha \\+ beta"):
        Tversky(alpha=0.0, beta=0.0)
    with pytest.raises(TypeError, match="ignore_index"):
        Dice(ignore_index=1.5)
    with pytest.raises(ValueError, match="classes"):
        LovaszSoftmax(classes="some")
    f = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="binary: y_pred must have one channel"):
        LovaszHinge().value(y_true=np.zeros((2, 4), dtype=int), y_pred=f)
    with pytest.raises(ValueError, match="binary labels in \\{0, 1\\}"):
        LovaszHinge().value(y_true=np.full((2, 4), 2), y_pred=f[:, :1])
    with pytest.raises(ValueError, match="binary mask"):
        LovaszHinge().value(y_true=np.full((2, 1, 4), 0.5), y_pred=f[:, :1])
    with pytest.raises(ValueError, match="C >= 2"):
        LovaszSoftmax().value(y_true=np.zeros((2, 4), dtype=int), y_pred=f[:, :1])
    with pytest.raises(ValueError, match="activation='softmax' needs"):
        Dice(activation="softmax").value(y_true=np.zeros((2, 4), dtype=int), y_pred=f[:, :1])
    assert lossgrad.get("tversky", alpha=0.3, beta=0.7) == Tversky(alpha=0.3, beta=0.7)
