"""lossgrad.integrations.jax: custom_jvp from the closed forms, for every pointwise and row loss.

Oracles: jax.test_util.check_grads to order 2 (finite differences of our custom
rules, forward and reverse mode), lossgrad's own value/grad/hess, and optax's
softmax cross-entropy (same argument meaning: optax takes (logits, labels)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import lossgrad
from lossgrad.integrations import jax as lgj

jax.config.update("jax_enable_x64", True)  # conftest sets JAX_ENABLE_X64 too; float64 is needed for FD checks


def _cases():
    out = []
    for e in lossgrad.catalog():
        if e.shape.value == "batch":
            continue
        # the custom_jvp wiring is one code path for every loss: each loss's default instance, plus
        # the variants that take other paths (probability inputs, ignore_index); the PyTorch test
        # sweeps every variant through the same closed forms
        for i, params in enumerate(e.variants):
            if i == 0 or params.get("from_logits") is False or params.get("ignore_index") is not None:
                out.append(pytest.param(e.make(**params), id=f"{e.name}[{i}]"))
    # Scaled wrappers (k * loss) go through the same code paths
    out.append(pytest.param(2.5 * lossgrad.get("huber", delta=0.5), id="2.5*huber"))
    out.append(pytest.param(0.5 * lossgrad.get("cross_entropy", weight=(0.5, 2.0, 1.0, 3.0), ignore_index=1),
                            id="0.5*cross_entropy[ignore_index]"))
    return out


@pytest.mark.parametrize("loss", _cases())
def test_check_grads_order_2(loss):
    if not loss.props.has_hess:
        with pytest.raises(ValueError, match="no gradient"):
            lgj.function(loss)
        return
    y, f = loss._example_inputs(np.random.default_rng(0), 3)
    fn = lgj.function(loss)
    yj = jnp.asarray(y)
    row = loss.shape.value == "row"
    if getattr(loss, "from_logits", True) is False:  # probabilities: reach them from logits
        x0 = np.log(f) if row else np.log(f) - np.log1p(-f)
        link = (lambda x: jax.nn.softmax(x, axis=-1)) if row else jax.nn.sigmoid
    else:
        x0, link = f, (lambda x: x)
    np.testing.assert_allclose(np.asarray(fn(yj, jnp.asarray(f), reduction="none")), loss.value(y, f), rtol=1e-12)
    check_grads(lambda x: fn(yj, link(x), reduction="sum"), (jnp.asarray(x0),), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", ["huber", "logistic", "cross_entropy", "tweedie"])
def test_jit_grad_hessian_vmap_exact(name):
    loss = lossgrad.get(name)
    y, f = loss._example_inputs(np.random.default_rng(5), 4)
    fn = lgj.function(loss)
    yj, fj = jnp.asarray(y), jnp.asarray(f)
    total = jax.jit(lambda f: fn(yj, f, reduction="sum"))
    assert float(total(fj)) == pytest.approx(float(loss(y, f, reduction="sum")), rel=1e-13)
    g = jax.jit(jax.grad(lambda f: fn(yj, f, reduction="sum")))(fj)
    np.testing.assert_allclose(np.asarray(g), loss.grad(y, f), rtol=1e-13, atol=1e-15)
    H = np.asarray(jax.jit(jax.hessian(lambda f: fn(yj, f, reduction="sum")))(fj))
    if loss.shape.value == "row":
        np.testing.assert_allclose(np.stack([H[i, :, i, :] for i in range(4)]), loss.hess(y, f), rtol=1e-12, atol=1e-15)
    else:
        np.testing.assert_allclose(np.diag(H), loss.hess(y, f), rtol=1e-12, atol=1e-15)
        assert np.all(H - np.diag(np.diag(H)) == 0.0)
    # vmap over an outer batch axis: each slice is an ordinary call
    Y, F = np.stack([y, y]), np.stack([f, 2 * f])
    per = jax.vmap(lambda yy, ff: fn(yy, ff))(jnp.asarray(Y), jnp.asarray(F))
    np.testing.assert_allclose(np.asarray(per), [loss(y, f), loss(y, 2 * f)], rtol=1e-12)


def test_weights_reductions_and_ignore_index_under_jit():
    loss = lossgrad.get("cross_entropy", weight=(0.5, 2.0, 1.0, 3.0), label_smoothing=0.2, ignore_index=1)
    rng = np.random.default_rng(6)
    y, f = loss._example_inputs(rng, 8)
    y[:2] = 1.0  # ignored rows
    w = rng.uniform(0.2, 2.0, 8)
    fn = lgj.function(loss)
    for red in ("mean", "sum", "none"):
        got = jax.jit(lambda y, f, w: fn(y, f, sample_weight=w, reduction=red))(jnp.asarray(y), jnp.asarray(f), jnp.asarray(w))
        np.testing.assert_allclose(np.asarray(got), loss(y, f, sample_weight=w, reduction=red), rtol=1e-13, atol=1e-15)
    g = jax.grad(lambda f: fn(jnp.asarray(y), f, sample_weight=jnp.asarray(w), reduction="sum"))(jnp.asarray(f))
    np.testing.assert_allclose(np.asarray(g), loss.grad(y, f, sample_weight=w), rtol=1e-13, atol=1e-15)


def test_optax_oracle():
    rng = np.random.default_rng(7)
    f = jnp.asarray(rng.normal(0, 3, (5, 6)))
    y = jnp.asarray(rng.integers(0, 6, 5))
    fn = lgj.function("cross_entropy")
    ours = lambda f: fn(y, f)  # noqa: E731
    theirs = lambda f: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(f, y))  # noqa: E731
    assert float(ours(f)) == pytest.approx(float(theirs(f)), rel=1e-13)
    H1, H2 = jax.jit(jax.hessian(ours))(f), jax.jit(jax.hessian(theirs))(f)
    np.testing.assert_allclose(np.asarray(H1), np.asarray(H2), atol=1e-13)


def test_float32_stays_float32():
    fn = lgj.function("pseudo_huber")
    f = jnp.asarray([0.5, -2.0], dtype=jnp.float32)
    out = fn(jnp.zeros(2, dtype=jnp.float32), f, reduction="none")
    assert out.dtype == jnp.float32
    assert jax.grad(lambda f: fn(jnp.zeros(2, dtype=jnp.float32), f))(f).dtype == jnp.float32


def _batch_cases():
    return [pytest.param(e.make(), id=e.name) for e in lossgrad.catalog(shape="batch")]  # one callback path


@pytest.mark.parametrize("loss", _batch_cases())
def test_batch_losses_first_order(loss):
    inputs = loss._example_inputs(np.random.default_rng(0))
    names = [n for n in loss.differentiable if n in inputs]
    static = {k: v for k, v in inputs.items() if k not in names}
    args = tuple(jnp.asarray(np.asarray(inputs[n], dtype=float)) for n in names)
    fn = lgj.function(loss)

    def total(*a):
        return fn(reduction="sum", **static, **dict(zip(names, a)))

    assert float(total(*args)) == pytest.approx(float(loss(reduction="sum", **inputs)), rel=1e-12, abs=1e-12)
    check_grads(total, args, order=1, modes=("rev",))
    # jit(grad) of the mean is lossgrad's gradient of the sum over the number of items
    count = np.size(loss.value(**inputs))
    grads = jax.jit(jax.grad(lambda *a: fn(**static, **dict(zip(names, a))), argnums=tuple(range(len(args)))))(*args)
    ref = loss.grad(**inputs)
    for n, g in zip(names, grads):
        np.testing.assert_allclose(np.asarray(g), np.asarray(ref[n]) / count, rtol=1e-10, atol=1e-13)
    per_item = fn(reduction="none", **static, **dict(zip(names, args)))
    np.testing.assert_allclose(np.asarray(per_item), loss.value(**inputs), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss", _batch_cases())
def test_batch_losses_second_order_reverse_over_reverse(loss):
    """Through the nested custom_vjp, for F = f^2 with f the weighted sum: d/dx <grad F, u>
    = 2 (grad f . u) grad f + 2 f H u, with lossgrad's grad and hvp (the first term comes
    through the cotangent's path, c = 2 f, i.e. the per-item directional derivatives)."""
    rng = np.random.default_rng(1)
    inputs = loss._example_inputs(np.random.default_rng(0))
    names = [n for n in loss.differentiable if n in inputs]
    static = {k: v for k, v in inputs.items() if k not in names}
    args = tuple(jnp.asarray(np.asarray(inputs[n], dtype=float)) for n in names)
    u = tuple(jnp.asarray(rng.normal(size=np.shape(a))) for a in args)
    w = rng.uniform(0.5, 1.5, np.shape(loss.value(**inputs)))
    fn = lgj.function(loss)
    argnums = tuple(range(len(args)))

    def along_u(*a):
        g = jax.grad(lambda *b: fn(sample_weight=w, reduction="sum", **static, **dict(zip(names, b))) ** 2,
                     argnums=argnums)(*a)
        return sum(jnp.vdot(gi, ui) for gi, ui in zip(g, u))

    second = jax.grad(along_u, argnums=argnums)(*args)
    f, g = loss.value_grad(sample_weight=w, **inputs)
    hv = loss.hvp(dict(zip(names, map(np.asarray, u))), sample_weight=w, **inputs)
    g_dot_u = sum(float(np.vdot(np.asarray(g[n]), np.asarray(ui))) for n, ui in zip(names, u))
    for n, h in zip(names, second):
        expect = 2.0 * g_dot_u * np.asarray(g[n]) + 2.0 * float(np.sum(f)) * np.asarray(hv[n])
        np.testing.assert_allclose(np.asarray(h), expect, rtol=1e-10, atol=1e-12 * np.abs(expect).max())


def test_batch_loss_limits():
    from test_batch_contract import _WrongGrad

    loss = lossgrad.get("triplet")
    inputs = {k: jnp.asarray(v) for k, v in loss._example_inputs(np.random.default_rng(1)).items()}
    fn = lgj.function(loss)
    g = jax.grad(lambda a: fn(**{**inputs, "anchor": a}))
    with pytest.raises(Exception, match="(?i)jvp|forward"):  # forward mode over custom_vjp: use jacrev twice
        jax.hessian(lambda a: fn(**{**inputs, "anchor": a}))(inputs["anchor"])
    with pytest.raises(ValueError, match="reduction='none'"):
        jax.jit(lambda a: fn(reduction="none", **{**inputs, "anchor": a}))(inputs["anchor"])
    x = jnp.asarray(np.random.default_rng(2).normal(size=(5, 3)))
    no_hvp = lgj.function(_WrongGrad(factor=1.0))
    g = jax.grad(lambda z: no_hvp(x=z))
    with pytest.raises(lossgrad.NotDifferentiableError, match="no Hessian-vector product"):
        jax.grad(lambda z: jnp.sum(g(z)))(x)


def test_bad_input_clear_errors():
    ce = lgj.function("cross_entropy")
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        ce(jnp.asarray([0, 1]), jnp.zeros(2))
    with pytest.raises(ValueError, match="y_true"):
        ce(jnp.asarray([0, 7]), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="y_true"):
        lgj.function("logistic")(jnp.asarray([0.5, 1.0]), jnp.zeros(2))
    with pytest.raises(TypeError, match="y_pred"):
        lgj.function("huber")(jnp.zeros(2), jnp.zeros(2, dtype=jnp.int32))
