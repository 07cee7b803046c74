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
        got = jax.jit(lambda y, f, w: fn(y, f, sample_weight=w, reduction=red))(jnp.asarray(y), jnp.asarray(f), jnp.asarray(w))  # noqa: B023
        np.testing.assert_allclose(np.asarray(got), loss(y, f, sample_weight=w, reduction=red), rtol=1e-13, atol=1e-15)
    g = jax.grad(lambda f: fn(jnp.asarray(y), f, sample_weight=jnp.asarray(w), reduction="sum"))(jnp.asarray(f))
    np.testing.assert_allclose(np.asarray(g), loss.grad(y, f, sample_weight=w), rtol=1e-13, atol=1e-15)


def test_optax_oracle():
    rng = np.random.default_rng(7)
    f = jnp.asarray(rng.normal(0, 3, (5, 6)))
    y = jnp.asarray(rng.integers(0, 6, 5))
    fn = lgj.function("cross_entropy")
    ours = lambda f: fn(y, f)
    theirs = lambda f: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(f, y))
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
    f = lambda a: fn(**{**inputs, "anchor": a})
    a, v = inputs["anchor"], jnp.ones_like(inputs["anchor"])
    with pytest.raises(lossgrad.NotDifferentiableError, match="third derivative"):
        jax.jvp(jax.hessian(f), (a,), (v,))
    with pytest.raises(ValueError, match="reduction='none'"):
        jax.jit(lambda a: fn(reduction="none", **{**inputs, "anchor": a}))(inputs["anchor"])
    # a loss without a Hessian-vector product: first order in every mode, no second order
    wrong = _WrongGrad(factor=1.0)
    x = jnp.asarray(np.random.default_rng(2).normal(size=(5, 3)))
    no_hvp = lgj.function(wrong)
    ref = wrong.grad(x=np.asarray(x))["x"] / 5
    np.testing.assert_allclose(np.asarray(jax.jacfwd(lambda z: no_hvp(x=z))(x)), ref, rtol=1e-13)
    np.testing.assert_allclose(float(jax.jvp(lambda z: no_hvp(x=z), (x,), (x,))[1]), np.vdot(ref, x), rtol=1e-13)
    g = jax.grad(lambda z: no_hvp(x=z))
    for second in (lambda: jax.grad(lambda z: jnp.sum(g(z)))(x), lambda: jax.hessian(lambda z: no_hvp(x=z))(x),
                   lambda: jax.jvp(g, (x,), (x,))):
        with pytest.raises(lossgrad.NotDifferentiableError, match="no Hessian-vector product"):
            second()


def _flat_problem(name, seed=0):
    """(loss, F(x) -> per-reduction scalar function of the flattened differentiable inputs, x, unflatten)."""
    loss = lossgrad.get(name)
    inputs = loss._example_inputs(np.random.default_rng(seed))
    names = [n for n in loss.differentiable if n in inputs]
    static = {k: v for k, v in inputs.items() if k not in names}
    shapes = [np.shape(inputs[n]) for n in names]
    sizes = [int(np.prod(s)) for s in shapes]
    x = jnp.asarray(np.concatenate([np.ravel(np.asarray(inputs[n], dtype=float)) for n in names]))

    def unflat(z):
        parts = jnp.split(z, np.cumsum(sizes)[:-1]) if len(sizes) > 1 else [z]
        return {n: p.reshape(s) for n, p, s in zip(names, parts, shapes)}

    return loss, static, x, unflat


@pytest.mark.parametrize("name", ["listnet", "triplet", "arcface", "ge2e"])
def test_batch_losses_hessian_every_mode(name):
    """Forward over reverse (jax.hessian), reverse over reverse, forward over forward, jvp
    and vmap over directions, with sample weights, "mean" and "sum": all equal lossgrad's
    grad and the dense Hessian assembled from loss.hvp (cross terms between inputs included)."""
    loss, static, x, unflat = _flat_problem(name)
    host_static = {k: np.asarray(v) for k, v in static.items()}
    rng = np.random.default_rng(3)
    n = x.size
    w = rng.uniform(0.5, 1.5, np.shape(loss.value(**static, **{k: np.asarray(v) for k, v in unflat(x).items()})))
    V = jnp.asarray(rng.normal(size=(3, n)))
    fn = lgj.function(loss)
    for red in ("mean", "sum"):
        scale = w / w.sum() if red == "mean" else w
        F = lambda z: fn(sample_weight=jnp.asarray(w), reduction=red, **static, **unflat(z))  # noqa: B023
        point = {k: np.asarray(v) for k, v in unflat(x).items()}
        g = np.concatenate([np.ravel(loss.grad(sample_weight=scale, **host_static, **point)[k]) for k in point])

        def hvp(e):
            d = {k: np.asarray(v) for k, v in unflat(jnp.asarray(e)).items()}
            hv = loss.hvp(d, sample_weight=scale, **host_static, **point)  # noqa: B023
            return np.concatenate([np.ravel(hv[k]) for k in d])

        Hd = np.stack([hvp(e) for e in np.eye(n)], axis=1)
        tol = 1e-10 * max(1.0, np.abs(Hd).max())
        np.testing.assert_allclose(Hd, Hd.T, atol=tol)  # the oracle itself is symmetric
        np.testing.assert_allclose(np.asarray(jax.jit(jax.hessian(F))(x)), Hd, rtol=0, atol=tol)
        if red == "sum":  # forward over forward; the other modes once, with the weighted mean
            np.testing.assert_allclose(np.asarray(jax.jit(jax.jacfwd(jax.jacfwd(F)))(x)), Hd, rtol=0, atol=tol)
            continue
        np.testing.assert_allclose(np.asarray(jax.jit(jax.jacrev(jax.grad(F)))(x)), Hd, rtol=0, atol=tol)
        np.testing.assert_allclose(np.asarray(jax.jacfwd(F)(x)), g, rtol=1e-12, atol=1e-14)
        val, tan = jax.jit(lambda v: jax.jvp(F, (x,), (v,)))(V[0])  # noqa: B023
        assert float(val) == pytest.approx(float(loss(sample_weight=w, reduction=red, **host_static, **point)), rel=1e-12)
        assert float(tan) == pytest.approx(float(g @ np.asarray(V[0])), rel=1e-12, abs=1e-14)
        tans, hvs = jax.jit(jax.vmap(lambda v: (jax.jvp(F, (x,), (v,))[1], jax.jvp(jax.grad(F), (x,), (v,))[1])))(V)  # noqa: B023
        np.testing.assert_allclose(np.asarray(tans), np.asarray(V) @ g, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.asarray(hvs), np.asarray(V) @ Hd, rtol=0, atol=tol)


def test_batch_hessian_vmapped_over_points():
    """vmap over the point (not the direction): each slice is an ordinary jax.hessian."""
    loss, static, x, unflat = _flat_problem("info_nce")
    fn = lgj.function(loss)
    F = lambda z: fn(reduction="sum", **static, **unflat(z))
    X = jnp.stack([x, 0.5 * x])
    H = jax.jit(jax.vmap(jax.hessian(F)))(X)
    one = jax.jit(jax.jacrev(jax.grad(F)))
    for i in range(2):
        np.testing.assert_allclose(np.asarray(H[i]), np.asarray(one(X[i])), rtol=0, atol=1e-10)


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
