"""lossgrad.nn: layers, Sequential and backpropagation seeded by catalog losses.

Oracles: 4th-order central differences (lossgrad.numdiff) of the network's mean loss in
each parameter, and torch autograd on the same network (same weights, float64).  Mapping to
torch: our Dense weight W is (in, out), torch's Linear.weight is W^T; lossgrad's
squared_error is r^2 (= MSELoss), huber is HuberLoss(delta), logistic with {0, 1} labels is
BCEWithLogitsLoss, cross_entropy(weight, ignore_index, label_smoothing) is F.cross_entropy
with the same arguments (weighted mean over sum of class weights).
"""

from __future__ import annotations

import pickle
import zlib

import numpy as np
import pytest
import torch

import lossgrad
from lossgrad import activations, nn, numdiff

RNG = np.random.default_rng(20240607)


def _flat(params):
    return np.concatenate([np.asarray(v).ravel() for k in sorted(params) for _, v in sorted(params[k].items())])


def _unflat(theta, like):
    out, i = {}, 0
    for k in sorted(like):
        out[k] = {}
        for name, v in sorted(like[k].items()):
            out[k][name] = theta[i : i + v.size].reshape(v.shape)
            i += v.size
    return out


def _numeric_grad(net, loss, X, y, w=None):
    like = net.params

    def J(theta):
        net.set_params(_unflat(theta, like))
        return net.loss(loss, X, y, w)

    theta0 = _flat(like)
    g = numdiff.gradient(J, theta0, method="central4", step=1e-5)  # small: fewer kinks crossed
    net.set_params(_unflat(theta0, like))
    return g


def _mlp(sizes, act, seed=0, **kw):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Dense(a, b, seed=seed + i))
        if i < len(sizes) - 2:
            layers.append(nn.activation_layer(act, **kw))
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------- finite differences

POINTWISE = [
    ("squared_error", {}, lambda n, k: RNG.normal(size=(n, k))),
    ("huber", {"delta": 0.3}, lambda n, k: RNG.normal(size=(n, k))),
    ("log_cosh", {}, lambda n, k: RNG.normal(size=(n, k))),
    ("logistic", {}, lambda n, k: RNG.integers(0, 2, size=(n, k)).astype(float)),
    ("binary_cross_entropy", {}, lambda n, k: RNG.uniform(size=(n, k))),
    ("poisson", {}, lambda n, k: RNG.poisson(2.0, size=(n, k)).astype(float)),
]


@pytest.mark.parametrize("name,params,target", POINTWISE, ids=[p[0] for p in POINTWISE])
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "gelu", "softplus", "elu"])
def test_pointwise_loss_gradients_match_finite_differences(name, params, target, act):
    net = _mlp([3, 5, 2], act, seed=3)
    X, y = RNG.normal(size=(7, 3)), target(7, 2)
    w = RNG.uniform(0.2, 2.0, 7)
    loss = lossgrad.get(name, **params)
    value, grads = net.value_and_grad(loss, X, y, w)
    assert value == pytest.approx(float(loss(y, net.predict(X), sample_weight=np.repeat(w[:, None], 2, 1))), rel=1e-13)
    num = _numeric_grad(net, loss, X, y, w)
    np.testing.assert_allclose(_flat(grads), num, rtol=1e-7, atol=1e-9)


ROW = [
    ("cross_entropy", {}),
    ("cross_entropy", {"weight": (0.5, 2.0, 1.0, 3.0), "label_smoothing": 0.1}),
    ("focal", {"gamma": 2.0}),
    ("poly1", {"epsilon": 1.0}),
    ("sparsemax_loss", {}),
    ("multiclass_hinge", {"kind": "crammer_singer"}),
]


@pytest.mark.parametrize("name,params", ROW, ids=[f"{n}{p}" for n, p in ROW])
def test_row_loss_gradients_match_finite_differences(name, params):
    net = _mlp([3, 6, 4], "tanh", seed=5)
    X, y = RNG.normal(size=(9, 3)), RNG.integers(0, 4, 9).astype(float)
    w = RNG.uniform(0.2, 2.0, 9)
    loss = lossgrad.get(name, **params)
    value, grads = net.value_and_grad(loss, X, y, w)
    assert value == pytest.approx(float(loss(y, net.predict(X), sample_weight=w)), rel=1e-13)
    num = _numeric_grad(net, loss, X, y, w)
    np.testing.assert_allclose(_flat(grads), num, rtol=1e-6, atol=1e-9)


def test_probability_output_with_softmax_layer_and_ignore_index():
    """Cross-entropy on probabilities after a Softmax layer, and ignored rows (denominator = kept rows)."""
    net = nn.Sequential(nn.Dense(3, 5, seed=1), nn.Sigmoid(), nn.Dense(5, 3, seed=2), nn.Softmax())
    X, y = RNG.normal(size=(8, 3)), RNG.integers(0, 3, 8).astype(float)
    loss = lossgrad.get("cross_entropy", from_logits=False)
    value, grads = net.value_and_grad(loss, X, y)
    np.testing.assert_allclose(_flat(grads), _numeric_grad(net, loss, X, y), rtol=1e-7, atol=1e-10)
    y_ign = y.copy()
    y_ign[[1, 4]] = -100
    ign = lossgrad.get("cross_entropy", ignore_index=-100)
    logits_net = nn.Sequential(*net.layers[:-1])
    value, grads = logits_net.value_and_grad(ign, X, y_ign)
    kept = np.ones(8, bool)
    kept[[1, 4]] = False
    assert value == pytest.approx(float(lossgrad.get("cross_entropy")(y[kept], logits_net.predict(X[kept]))), rel=1e-13)
    np.testing.assert_allclose(_flat(grads), _numeric_grad(logits_net, ign, X, y_ign), rtol=1e-7, atol=1e-10)


def test_scaled_loss_scales_the_gradient():
    net = _mlp([2, 4, 3], "tanh")
    X, y = RNG.normal(size=(6, 2)), RNG.integers(0, 3, 6).astype(float)
    v1, g1 = net.value_and_grad("cross_entropy", X, y)
    g1 = _flat(g1)
    v2, g2 = net.value_and_grad(2.5 * lossgrad.get("cross_entropy"), X, y)
    assert v2 == pytest.approx(2.5 * v1, rel=1e-14)
    np.testing.assert_allclose(_flat(g2), 2.5 * g1, rtol=1e-13, atol=1e-16)


# ------------------------------------------------------------------------- every activation layer


def test_there_is_a_layer_for_every_activation():
    for name in activations.names():
        layer = nn.activation_layer(name)
        assert isinstance(layer, nn.ActivationLayer) and layer.activation.name == name
        assert type(layer).__name__ == type(activations.get(name)).__name__


@pytest.mark.parametrize("name", activations.names())
def test_activation_layer_backward_is_the_vjp(name):
    """backward(u) = u^T J(x), with J from finite differences of the layer's forward."""
    layer = nn.activation_layer(name)
    x = RNG.normal(size=(4, 5)) * 2
    out = layer.forward(x)
    u = RNG.normal(size=out.shape)
    got = layer.backward(u)
    J = numdiff.jacobian(layer.predict, x, method="central4")  # out.shape + x.shape
    expected = np.tensordot(u, J, axes=u.ndim)
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)


# ------------------------------------------------------------------------- torch autograd

_TORCH_ACT = {
    "sigmoid": torch.sigmoid,
    "log_sigmoid": torch.nn.functional.logsigmoid,
    "softplus": torch.nn.functional.softplus,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.01),
    "elu": torch.nn.functional.elu,
    "gelu": torch.nn.functional.gelu,
    "softmax": lambda t: torch.softmax(t, -1),
    "log_softmax": lambda t: torch.log_softmax(t, -1),
}


def _torch_forward(net, X, acts):
    """The same network in torch (W^T as Linear.weight), leaf tensors for every parameter."""
    leaves, h = {}, torch.tensor(X)
    for i, layer in enumerate(net.layers):
        if isinstance(layer, nn.Dense):
            W = torch.tensor(layer.weight.T.copy(), requires_grad=True)
            b = torch.tensor(layer.bias.copy(), requires_grad=True)
            leaves[str(i)] = (W, b)
            h = torch.nn.functional.linear(h, W, b)
        else:
            h = acts[layer.activation.name](h)
    return h, leaves


@pytest.mark.parametrize("act", sorted(_TORCH_ACT))
@pytest.mark.parametrize("head", ["mse", "huber", "logistic", "cross_entropy"])
def test_gradients_match_torch_autograd(act, head):
    rng = np.random.default_rng(zlib.crc32(f"{act}/{head}".encode()))
    net = nn.Sequential(nn.Dense(4, 6, seed=1), nn.activation_layer(act), nn.Dense(6, 5, seed=2),
                        nn.activation_layer(act), nn.Dense(5, 3, seed=3))
    X = rng.normal(size=(10, 4))
    w = rng.uniform(0.1, 2.0, 10)
    F = torch.nn.functional
    if head == "cross_entropy":
        y = rng.integers(0, 3, 10).astype(float)
        cw = np.array([0.3, 1.0, 2.0])
        loss = lossgrad.get("cross_entropy", weight=tuple(cw), label_smoothing=0.05)
        def torch_loss(out):  # no per-sample weight in F.cross_entropy: take per-row losses
            per = F.cross_entropy(out, torch.tensor(y, dtype=torch.long), weight=torch.tensor(cw),
                                  label_smoothing=0.05, reduction="none")
            tw = torch.tensor(w)
            return (per * tw).sum() / (tw * torch.tensor(cw)[torch.tensor(y, dtype=torch.long)]).sum()
    else:
        y = rng.normal(size=(10, 3)) if head != "logistic" else rng.integers(0, 2, (10, 3)).astype(float)
        loss = {"mse": lossgrad.get("squared_error"), "huber": lossgrad.get("huber", delta=0.5),
                "logistic": lossgrad.get("logistic")}[head]
        per_fn = {"mse": lambda o, t: F.mse_loss(o, t, reduction="none"),
                  "huber": lambda o, t: F.huber_loss(o, t, delta=0.5, reduction="none"),
                  "logistic": lambda o, t: F.binary_cross_entropy_with_logits(o, t, reduction="none")}[head]
        def torch_loss(out):
            W = torch.tensor(w)[:, None].expand(-1, 3)
            return (per_fn(out, torch.tensor(y)) * W).sum() / W.sum()
    value, grads = net.value_and_grad(loss, X, y, w)
    out, leaves = _torch_forward(net, X, _TORCH_ACT)
    t_value = torch_loss(out)
    t_value.backward()
    assert value == pytest.approx(t_value.item(), rel=1e-12)
    for key, (W, b) in leaves.items():
        np.testing.assert_allclose(grads[key]["weight"], W.grad.numpy().T, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(grads[key]["bias"], b.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_network_runs_on_torch_and_jax_arrays(library):
    """The same network with torch / JAX parameters and input gives the numpy result."""
    if library == "torch":
        conv, kind = torch.tensor, torch.Tensor
    else:
        import jax
        import jax.numpy as jnp

        conv, kind = jnp.asarray, jax.Array
    net = _mlp([3, 4, 2], "tanh", seed=7)
    X, y = RNG.normal(size=(5, 3)), RNG.integers(0, 2, 5).astype(float)
    v_np, g_np = net.value_and_grad("cross_entropy", X, y)
    g_np = _flat(g_np)
    other = _mlp([3, 4, 2], "tanh", seed=7)
    other.set_params({k: {n: conv(v) for n, v in p.items()} for k, p in net.params.items()})
    v_t, g_t = other.value_and_grad("cross_entropy", conv(X), conv(y))
    assert isinstance(g_t["0"]["weight"], kind) and g_t["0"]["weight"].dtype == conv(X).dtype
    assert v_t == pytest.approx(v_np, rel=1e-14)
    np.testing.assert_allclose(_flat({k: {n: np.asarray(t) for n, t in p.items()} for k, p in g_t.items()}), g_np,
                               rtol=1e-13)


# ------------------------------------------------------------------------- init, dtype, errors


@pytest.mark.parametrize("init,limit", [("glorot_uniform", np.sqrt(6 / 500)), ("he_uniform", np.sqrt(6 / 200))])
def test_uniform_initialisers(init, limit):
    W = nn.Dense(200, 300, init=init, seed=0).weight
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.99 * limit
    assert np.var(W) == pytest.approx(limit**2 / 3, rel=0.02)  # 60000 draws: sd of the estimate ~0.6 %
    assert np.all(nn.Dense(200, 300, init=init, seed=0).bias == 0)


@pytest.mark.parametrize("init,std", [("glorot_normal", np.sqrt(2 / 500)), ("he_normal", np.sqrt(2 / 200))])
def test_normal_initialisers(init, std):
    W = nn.Dense(200, 300, init=init, seed=1).weight
    assert np.std(W) == pytest.approx(std, rel=0.02)


def test_initialisation_is_deterministic_from_the_seed():
    a, b, c = (nn.Dense(4, 3, seed=s).weight for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    n1 = _mlp([3, 4, 2], "relu").initialize(11)
    n2 = _mlp([3, 4, 2], "relu", seed=99).initialize(11)
    np.testing.assert_array_equal(_flat(n1.params), _flat(n2.params))
    square = _mlp([3, 3, 3], "relu").initialize(11)  # one generator: the two layers get different draws
    assert not np.array_equal(square.params["0"]["weight"], square.params["2"]["weight"])


def test_float32_network_stays_float32():
    net = _mlp([3, 4, 2], "tanh").astype(np.float32)
    X = RNG.normal(size=(5, 3)).astype(np.float32)
    _, grads = net.value_and_grad("squared_error", X, np.zeros((5, 2), np.float32))
    assert net.predict(X).dtype == np.float32
    assert all(g.dtype == np.float32 for p in grads.values() for g in p.values())


def test_forward_keeps_inputs_unchanged_and_pickles():
    net = _mlp([3, 4, 1], "relu")
    X = RNG.normal(size=(5, 3))
    X0 = X.copy()
    net.value_and_grad("huber", X, np.zeros(5))
    np.testing.assert_array_equal(X, X0)
    clone = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(clone.predict(X), net.predict(X))


def test_bad_input():
    net = _mlp([3, 4, 1], "relu")
    with pytest.raises(ValueError, match=r"input must have shape \(N, 3\)"):
        net.forward(np.ones((2, 5)))
    with pytest.raises(ValueError, match="weight"):
        net.layers[0].set_params({"weight": np.ones((4, 3)), "bias": np.zeros(4)})
    with pytest.raises(ValueError, match="keys"):
        net.set_params({"0": net.params["0"]})
    with pytest.raises(ValueError, match="batch loss"):
        net.value_and_grad("triplet", np.ones((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="no gradient"):
        net.value_and_grad("zero_one", np.ones((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="unknown loss name"):
        net.value_and_grad("hubber", np.ones((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="sample_weight"):
        net.value_and_grad("huber", np.ones((2, 3)), np.zeros(2), sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="y_true"):
        net.value_and_grad("poisson", np.ones((2, 3)), -np.ones(2))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Dense(2, 2).backward(np.ones((1, 2)))
    with pytest.raises(ValueError, match="in_features"):
        nn.Dense(0, 2)
    with pytest.raises(ValueError, match="init"):
        nn.Dense(2, 2, init="orthogonal")
    with pytest.raises(TypeError, match="seed"):
        nn.Dense(2, 2, seed=-1)
    with pytest.raises(ValueError, match="unknown activation"):
        nn.activation_layer("swish")
    with pytest.raises(TypeError, match="layer 1"):
        nn.Sequential(nn.Dense(2, 2), "relu")


# ------------------------------------------------------------------------- the whole catalog

_CATALOG = [e for e in lossgrad.catalog() if e.shape.value != "batch" and e.make().props.has_grad]


@pytest.mark.parametrize("entry", _CATALOG, ids=lambda e: e.name)
def test_every_catalog_loss_seeds_backpropagation_exactly(entry):
    """Every pointwise and row loss of the registry (default parameters) at a network output,
    with sample weights: the parameter gradient equals central differences with a step of 1e-6
    (small enough that no declared kink lies between the stencil points at these samples)."""
    loss = entry.make()
    rng = np.random.default_rng(zlib.crc32(entry.name.encode()))
    y, _ = loss._example_inputs(rng, 8) if entry.shape.value == "pointwise" else loss._example_inputs(rng, 8, 4)
    k = 1 if entry.shape.value == "pointwise" else (y.shape[1] if y.ndim == 2 else 4)
    net = nn.Sequential(nn.Dense(3, 5, seed=1), nn.Tanh(), nn.Dense(5, k, seed=2))
    X, w = rng.normal(size=(8, 3)), rng.uniform(0.5, 2.0, 8)
    value, grads = net.value_and_grad(loss, X, y, w)
    like = net.params
    theta0 = _flat(like)

    def J(theta):
        net.set_params(_unflat(theta, like))
        return net.loss(loss, X, y, w)

    num = numdiff.gradient(J, theta0, method="central", step=1e-6)
    err = np.abs(_flat(grads) - num) / np.maximum(np.abs(num), 1e-3)
    assert err.max() < 2e-6


def test_vector_activations_inside_a_network():
    net = nn.Sequential(nn.Dense(3, 5, seed=1), nn.Sparsemax(), nn.Dense(5, 4, seed=2), nn.LogSoftmax(),
                        nn.Dense(4, 3, seed=3), nn.Softmax(), nn.Dense(3, 2, seed=4))
    X, y = RNG.normal(size=(6, 3)) * 3, RNG.integers(0, 2, 6).astype(float)
    _, grads = net.value_and_grad("cross_entropy", X, y)
    np.testing.assert_allclose(_flat(grads), _numeric_grad(net, "cross_entropy", X, y), rtol=1e-7, atol=1e-10)
