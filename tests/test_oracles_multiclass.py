"""Peer libraries as oracles for the row losses; each test states the convention mapping.

PyTorch: ``F.cross_entropy(input=logits, target, weight, ignore_index, label_smoothing)``
takes (input, target) in that order, class-index or probability targets; derivatives come
from ``torch.autograd`` of the *sum* reduction (so each row's block of the Hessian of the
sum is that row's Hessian).  optax/JAX: ``(logits, labels)`` order, one-hot labels.
scikit-learn: ``HalfMultinomialLoss().gradient(y_true, raw_prediction)`` with y_true the
labels as floats (n,) and raw_prediction the logits (n, K); its gradient is p - onehot(y)
(the "half" refers to the binary case only; the multinomial loss is the plain -log p_y).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

import lossgrad


def _enable_x64(jax):
    """``jax.enable_x64(True)``; before jax had it, ``jax.experimental.enable_x64()``."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()


K = 5
N = 7
RNG = np.random.default_rng(20240601)
LOGITS = RNG.normal(0, 2.0, (N, K))
LABELS = np.array([0, 1, 2, 3, 4, 2, 1])
PROBS = RNG.dirichlet(np.full(K, 0.8), N)
WEIGHT = (0.5, 2.0, 1.0, 3.0, 0.25)


def t64(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def _torch_grad_hess(fun, f):
    """Per-row gradient (N, K) and Hessian blocks (N, K, K) of sum_i fun(f)_i via autograd."""
    x = t64(f).requires_grad_(True)
    (g,) = torch.autograd.grad(fun(x).sum(), x)
    Hfull = torch.autograd.functional.hessian(lambda z: fun(z).sum(), t64(f))  # (N, K, N, K)
    H = torch.stack([Hfull[i, :, i, :] for i in range(f.shape[0])])
    return g.numpy(), H.numpy()


# ------------------------------------------------------------------ cross-entropy vs PyTorch

CASES = list(itertools.product([None, WEIGHT], [None, 2, -100], [0.0, 0.15], ["labels", "probs"]))


@pytest.mark.parametrize("weight,ignore_index,smoothing,target", CASES)
def test_cross_entropy_matches_torch_all_options(weight, ignore_index, smoothing, target):
    labels = LABELS.copy()
    if ignore_index is not None:
        labels[[1, 4]] = ignore_index  # two ignored rows (ignore_index=2 is also a valid class)
    y = labels if target == "labels" else PROBS
    ty = torch.tensor(labels) if target == "labels" else t64(PROBS)
    loss = lossgrad.CrossEntropy(weight=weight, ignore_index=ignore_index, label_smoothing=smoothing)
    if target == "probs" and ignore_index is not None:
        # PyTorch refuses an ignore_index with probability targets (except its default sentinel
        # -100, which it then disregards); lossgrad refuses any
        with pytest.raises(ValueError, match="ignore_index"):
            loss(y, LOGITS)
        if ignore_index != -100:
            with pytest.raises(RuntimeError, match="ignore_index"):
                F.cross_entropy(t64(LOGITS), ty, ignore_index=ignore_index)
        return
    kw = dict(weight=None if weight is None else t64(weight), label_smoothing=smoothing,
              ignore_index=-100 if ignore_index is None else ignore_index)
    for red in ("mean", "sum", "none"):
        ref = F.cross_entropy(t64(LOGITS), ty, reduction=red, **kw).numpy()
        np.testing.assert_allclose(loss(y, LOGITS, reduction=red), ref, rtol=1e-12, atol=1e-14)
    g_ref, H_ref = _torch_grad_hess(lambda x: F.cross_entropy(x, ty, reduction="none", **kw), LOGITS)
    np.testing.assert_allclose(loss.grad(y, LOGITS), g_ref, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(loss.hess(y, LOGITS), H_ref, rtol=1e-10, atol=1e-14)


def test_cross_entropy_sample_weight_mean_is_weighted_torch_mean():
    # with sample weights s: mean = sum(s w_y l) / sum(s w_y); torch has no sample weights, so
    # integer weights are emulated by repeating rows
    s = np.array([1, 2, 1, 3, 1, 1, 2])
    rep = np.repeat(np.arange(N), s)
    loss = lossgrad.CrossEntropy(weight=WEIGHT, label_smoothing=0.1)
    ref = F.cross_entropy(t64(LOGITS[rep]), torch.tensor(LABELS[rep]), weight=t64(WEIGHT), label_smoothing=0.1)
    np.testing.assert_allclose(loss(LABELS, LOGITS, sample_weight=s.astype(float)), ref.numpy(), rtol=1e-12)


def test_cross_entropy_z_loss_matches_torch_autograd():
    z = 1e-2
    loss = lossgrad.CrossEntropy(z_loss=z, label_smoothing=0.1)
    y = torch.tensor(LABELS)
    fun = lambda x: F.cross_entropy(x, y, reduction="none", label_smoothing=0.1) + z * torch.logsumexp(x, 1) ** 2  # noqa: E731
    np.testing.assert_allclose(loss.value(LABELS, LOGITS), fun(t64(LOGITS)).numpy(), rtol=1e-12)
    g, H = _torch_grad_hess(fun, LOGITS)
    np.testing.assert_allclose(loss.grad(LABELS, LOGITS), g, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(loss.hess(LABELS, LOGITS), H, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_from_probabilities_matches_torch(smoothing):
    # torch: cross_entropy(log P, y) is the same value (log_softmax(log P) = log P on the simplex);
    # derivatives w.r.t. P as free coordinates from autograd of -sum a log P
    P = np.exp(LOGITS) / np.exp(LOGITS).sum(1, keepdims=True)
    loss = lossgrad.CrossEntropy(from_logits=False, weight=WEIGHT, label_smoothing=smoothing)
    ref = F.cross_entropy(torch.log(t64(P)), torch.tensor(LABELS), weight=t64(WEIGHT), label_smoothing=smoothing,
                          reduction="none")
    np.testing.assert_allclose(loss.value(LABELS, P), ref.numpy(), rtol=1e-12)
    A = np.asarray(WEIGHT) * ((1 - smoothing) * np.eye(K)[LABELS] + smoothing / K)
    g, H = _torch_grad_hess(lambda x: -(t64(A) * torch.log(x)).sum(1), P)
    np.testing.assert_allclose(loss.grad(LABELS, P), g, rtol=1e-12)
    np.testing.assert_allclose(loss.hess(LABELS, P), H, rtol=1e-12, atol=1e-300)


# ------------------------------------------------------------------ cross-entropy vs optax / sklearn


def test_cross_entropy_matches_optax():
    with _enable_x64(jax):
        onehot = jnp.asarray(np.eye(K)[LABELS])
        fun = lambda f: optax.softmax_cross_entropy(f, onehot).sum()  # noqa: E731
        f = jnp.asarray(LOGITS)
        loss = lossgrad.CrossEntropy()
        np.testing.assert_allclose(loss.value(LABELS, LOGITS), optax.softmax_cross_entropy(f, onehot), rtol=1e-12)
        np.testing.assert_allclose(loss.grad(LABELS, LOGITS), jax.grad(fun)(f), rtol=1e-12, atol=1e-15)
        # the loss accepts JAX arrays directly and returns JAX arrays
        g_jax = loss.grad(jnp.asarray(LABELS), f)
        assert isinstance(g_jax, jax.Array)
        np.testing.assert_allclose(np.asarray(g_jax), loss.grad(LABELS, LOGITS), rtol=1e-13)


def test_cross_entropy_matches_sklearn_half_multinomial():
    from sklearn._loss.loss import HalfMultinomialLoss

    sk = HalfMultinomialLoss(n_classes=K)
    sw = np.linspace(0.5, 2.0, N)
    ytrue = LABELS.astype(float)
    raw = np.ascontiguousarray(LOGITS)
    loss = lossgrad.CrossEntropy()
    np.testing.assert_allclose(loss.value(LABELS, LOGITS, sw), sk.loss(ytrue, raw, sample_weight=sw), rtol=1e-12)
    np.testing.assert_allclose(loss.grad(LABELS, LOGITS, sw), sk.gradient(ytrue, raw, sample_weight=sw), rtol=1e-12)
    g, hd = sk.gradient_hessian(ytrue, raw)
    np.testing.assert_allclose(loss.hess_diag(LABELS, LOGITS), hd, rtol=1e-12)


# ------------------------------------------------------------------ focal, poly1


@pytest.mark.parametrize("gamma,a", [(2.0, 0.25), (0.5, 0.7), (0.0, 0.5), (3.0, 0.9)])
def test_focal_two_classes_matches_optax_sigmoid_focal(gamma, a):
    # optax.sigmoid_focal_loss(z, y, alpha=a, gamma) == Focal(gamma, alpha=(1 - a, a)) on logits (0, z):
    # softmax((0, z))_1 = sigmoid(z), and alpha_t = a y + (1 - a)(1 - y)
    z = np.linspace(-8, 8, 17)
    y = (np.arange(17) % 2).astype(float)
    f = np.stack([np.zeros_like(z), z], axis=1)
    loss = lossgrad.Focal(gamma=gamma, alpha=(1 - a, a))
    with _enable_x64(jax):
        ref = optax.sigmoid_focal_loss(jnp.asarray(z), jnp.asarray(y), alpha=a, gamma=gamma)
        dref = jax.grad(lambda zz: optax.sigmoid_focal_loss(zz, jnp.asarray(y), alpha=a, gamma=gamma).sum())(jnp.asarray(z))
    np.testing.assert_allclose(loss.value(y, f), ref, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(loss.grad(y, f)[:, 1], dref, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_focal_multiclass_matches_torch_autograd(gamma):
    # reference: -alpha_y (1 - p_y)^gamma log p_y written in torch (log_softmax), autograd for derivatives
    alpha = t64(WEIGHT)
    y = torch.tensor(LABELS)

    def fun(x):
        logp = torch.log_softmax(x, 1).gather(1, y[:, None])[:, 0]
        return -alpha[y] * (1 - logp.exp()) ** gamma * logp

    loss = lossgrad.Focal(gamma=gamma, alpha=WEIGHT)
    np.testing.assert_allclose(loss.value(LABELS, LOGITS), fun(t64(LOGITS)).detach().numpy(), rtol=1e-12)
    g, H = _torch_grad_hess(fun, LOGITS)
    np.testing.assert_allclose(loss.grad(LABELS, LOGITS), g, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(loss.hess(LABELS, LOGITS), H, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("eps", [1.0, -1.0, 2.0])
@pytest.mark.parametrize("target", ["labels", "probs"])
def test_poly1_matches_optax(eps, target):
    # optax.losses.poly_loss_cross_entropy(logits, labels (one-hot or soft), epsilon): CE + eps (1 - q.p)
    y = LABELS if target == "labels" else PROBS
    q = np.eye(K)[LABELS] if target == "labels" else PROBS
    loss = lossgrad.Poly1(epsilon=eps)
    with _enable_x64(jax):
        fun = lambda f: optax.losses.poly_loss_cross_entropy(f, jnp.asarray(q), epsilon=eps)  # noqa: E731
        ref = fun(jnp.asarray(LOGITS))
        g = jax.grad(lambda f: fun(f).sum())(jnp.asarray(LOGITS))
    np.testing.assert_allclose(loss.value(y, LOGITS), ref, rtol=1e-12)
    np.testing.assert_allclose(loss.grad(y, LOGITS), g, rtol=1e-11, atol=1e-15)
    # Hessian: the same formula in torch, through autograd
    qt = t64(q)
    _, H = _torch_grad_hess(lambda x: (qt * (-torch.log_softmax(x, 1) + eps * (1 - torch.softmax(x, 1)))).sum(1), LOGITS)
    np.testing.assert_allclose(loss.hess(y, LOGITS), H, rtol=1e-10, atol=1e-15)


# ------------------------------------------------------------------ KL, multilabel, hinge, sparsemax


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_divergence_matches_torch_kldivloss(log_target):
    # torch: kl_div(input=log_softmax(f), target=q (or log q), reduction="batchmean") == lossgrad mean
    target = np.log(PROBS) if log_target else PROBS
    loss = lossgrad.KLDivergence(log_target=log_target)

    def fun(x):
        return F.kl_div(torch.log_softmax(x, 1), t64(target), reduction="none", log_target=log_target).sum(1)

    ref = F.kl_div(torch.log_softmax(t64(LOGITS), 1), t64(target), reduction="batchmean", log_target=log_target)
    np.testing.assert_allclose(loss(target, LOGITS), ref.numpy(), rtol=1e-12)
    np.testing.assert_allclose(loss.value(target, LOGITS), fun(t64(LOGITS)).numpy(), rtol=1e-11)
    g, H = _torch_grad_hess(fun, LOGITS)
    np.testing.assert_allclose(loss.grad(target, LOGITS), g, rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(loss.hess(target, LOGITS), H, rtol=1e-10, atol=1e-15)
    with _enable_x64(jax):
        ox = optax.losses.kl_divergence(jax.nn.log_softmax(jnp.asarray(LOGITS)), jnp.asarray(PROBS))
    np.testing.assert_allclose(lossgrad.KLDivergence().value(PROBS, LOGITS), ox, rtol=1e-11)


@pytest.mark.parametrize("pos_weight", [None, (2.0, 0.5, 1.0, 3.0, 0.1)])
def test_multilabel_matches_torch_bce_with_logits(pos_weight):
    # torch BCEWithLogitsLoss(pos_weight) "sum" == lossgrad "sum"; torch "mean" (over N K elements)
    # == lossgrad "mean" (over N rows) / K
    y = np.where(RNG.random((N, K)) < 0.5, 1.0, 0.0)
    y[0] = [0.2, 0.7, 1.0, 0.0, 0.5]
    pw = None if pos_weight is None else t64(pos_weight)
    loss = lossgrad.Multilabel(pos_weight=pos_weight)
    f = LOGITS * 3
    for red in ("sum", "mean"):
        ref = F.binary_cross_entropy_with_logits(t64(f), t64(y), pos_weight=pw, reduction=red).numpy()
        ours = loss(y, f, reduction=red) / (K if red == "mean" else 1)
        np.testing.assert_allclose(ours, ref, rtol=1e-12)
    g, H = _torch_grad_hess(lambda x: F.binary_cross_entropy_with_logits(x, t64(y), pos_weight=pw, reduction="none").sum(1), f)
    np.testing.assert_allclose(loss.grad(y, f), g, rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(loss.hess(y, f), H, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_weston_watkins_is_K_times_torch_multi_margin(margin):
    # torch.nn.functional.multi_margin_loss (p=1) divides the Weston-Watkins sum by K
    loss = lossgrad.MulticlassHinge(margin=margin)
    x = t64(LOGITS * 0.3).requires_grad_(True)
    ref = F.multi_margin_loss(x, torch.tensor(LABELS), margin=margin, reduction="none") * K
    (g,) = torch.autograd.grad(ref.sum(), x)
    np.testing.assert_allclose(loss.value(LABELS, LOGITS * 0.3), ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(loss.grad(LABELS, LOGITS * 0.3), g.numpy(), rtol=1e-12)
    assert np.all(loss.hess(LABELS, LOGITS) == 0)


def test_crammer_singer_matches_optax_multiclass_hinge():
    loss = lossgrad.MulticlassHinge(kind="crammer_singer")
    f = LOGITS * 0.3
    with _enable_x64(jax):
        fun = lambda s: optax.losses.multiclass_hinge_loss(s, jnp.asarray(LABELS))  # noqa: E731
        ref = fun(jnp.asarray(f))
        g = jax.grad(lambda s: fun(s).sum())(jnp.asarray(f))
    np.testing.assert_allclose(loss.value(LABELS, f), ref, rtol=1e-12)
    np.testing.assert_allclose(loss.grad(LABELS, f), g, rtol=1e-12)


def test_categorical_hinge_matches_keras_formula():
    # Keras: pos = sum(y f), neg = max((1 - y) f), max(0, neg - pos + 1), transcribed in torch
    y = np.eye(K)[LABELS]
    y[0] = PROBS[0]
    f = LOGITS * 0.4
    f[1] = -np.abs(f[1]) - 0.5  # every score negative: Keras' neg is 0 there

    def fun(x):
        yt = t64(y)
        pos = (yt * x).sum(1)
        neg = ((1 - yt) * x).max(1).values
        return torch.clamp(neg - pos + 1, min=0)

    x = t64(f).requires_grad_(True)
    (g,) = torch.autograd.grad(fun(x).sum(), x)
    loss = lossgrad.CategoricalHinge()
    np.testing.assert_allclose(loss.value(y, f), fun(t64(f)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(loss.grad(y, f), g.numpy(), rtol=1e-12)
    np.testing.assert_allclose(loss.value(LABELS, f)[1:], fun(t64(f)).numpy()[1:], rtol=1e-12)  # labels = one-hot


def test_sparsemax_loss_and_sparsemax_match_optax():
    loss = lossgrad.SparsemaxLoss()
    f = LOGITS * 0.4
    with _enable_x64(jax):
        fun = lambda s: optax.losses.multiclass_sparsemax_loss(s, jnp.asarray(LABELS))  # noqa: E731
        ref = fun(jnp.asarray(f))
        g = jax.grad(lambda s: fun(s).sum())(jnp.asarray(f))
        proj = jax.vmap(optax.projections.projection_simplex)(jnp.asarray(f))
    np.testing.assert_allclose(loss.value(LABELS, f), ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(loss.grad(LABELS, f), g, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(lossgrad.activations.sparsemax(f), proj, rtol=1e-12, atol=1e-14)
    # the Hessian is the Jacobian of sparsemax (torch autograd through our torch-namespace sparsemax)
    J = torch.autograd.functional.jacobian(lambda x: lossgrad.activations.sparsemax(x), t64(f))
    Jb = np.stack([J[i, :, i, :].numpy() for i in range(N)])
    np.testing.assert_allclose(loss.hess(LABELS, f), Jb, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ other namespaces


@pytest.mark.parametrize("name,params", [("cross_entropy", {"weight": WEIGHT, "label_smoothing": 0.1}),
                                         ("focal", {"gamma": 0.5}), ("sparsemax_loss", {}),
                                         ("multiclass_hinge", {"kind": "crammer_singer"})])
def test_torch_tensors_in_torch_tensors_out(name, params):
    loss = lossgrad.get(name, **params)
    y = torch.tensor(LABELS)
    f = t64(LOGITS)
    v = t64(RNG.normal(size=(N, K)))
    for m in ("value", "grad", "hess", "hess_diag"):
        out = getattr(loss, m)(y, f)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
        np.testing.assert_allclose(out.numpy(), getattr(loss, m)(LABELS, LOGITS), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(loss.hvp(y, f, v).numpy(), loss.hvp(LABELS, LOGITS, v.numpy()), rtol=1e-12, atol=1e-15)
    out32 = loss.grad(y, f.float())
    assert out32.dtype == torch.float32
