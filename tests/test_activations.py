"""Activations: values and derivatives against PyTorch (functional forms and autograd),
Jacobians against ``torch.autograd.functional.jacobian``, jvp/vjp against J, extreme inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from lossgrad import activations as A

X = np.concatenate([np.linspace(-12, 12, 97), [-40.0, -1e-9, 0.0, 1e-9, 40.0]])

TORCH = {
    "sigmoid": ({}, torch.sigmoid),
    "log_sigmoid": ({}, TF.logsigmoid),
    "softplus": ({}, TF.softplus),
    "tanh": ({}, torch.tanh),
    "relu": ({}, torch.relu),
    "leaky_relu": ({"negative_slope": 0.1}, lambda x: TF.leaky_relu(x, 0.1)),
    "elu": ({"alpha": 1.5}, lambda x: TF.elu(x, 1.5)),
    "gelu": ({}, TF.gelu),
    "gelu_tanh": ({"approximate": "tanh"}, lambda x: TF.gelu(x, approximate="tanh")),
}


def _get(key):
    params, ref = TORCH[key]
    return A.get(key.replace("_tanh", ""), **params), ref


@pytest.mark.parametrize("key", list(TORCH))
def test_elementwise_value_and_derivative_match_torch(key):
    act, ref = _get(key)
    x = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    y = ref(x)
    (d,) = torch.autograd.grad(y.sum(), x)
    np.testing.assert_allclose(act.value(X), y.detach().numpy(), rtol=1e-14, atol=1e-15)  # torch: 1 + erf cancels
    # PyTorch's backward forms sigma (1 - sigma) and 1 - tanh^2, which lose ~1e-11 relative
    # accuracy in the tails (and give 0 at x = 40); lossgrad's cancellation-free forms are held to mpmath below
    np.testing.assert_allclose(act.derivative(X), d.numpy(), rtol=1e-10, atol=1e-14)
    # the torch namespace goes through unchanged
    out = act.derivative(torch.tensor(X))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), act.derivative(X), rtol=1e-14, atol=1e-16)


def test_derivatives_match_mpmath_in_the_tails():
    import mpmath

    mpmath.mp.dps = 40
    xs = np.array([-30.0, -7.75, -1e-3, 0.3, 7.75, 20.0, 30.0])
    refs = {
        "sigmoid": lambda x: mpmath.exp(-x) / (1 + mpmath.exp(-x)) ** 2,
        "tanh": lambda x: 1 / mpmath.cosh(x) ** 2,
        "softplus": lambda x: 1 / (1 + mpmath.exp(-x)),
        "gelu": lambda x: mpmath.ncdf(x) + x * mpmath.npdf(x),
    }
    for name, ref in refs.items():
        want = np.array([float(ref(mpmath.mpf(x))) for x in xs])
        np.testing.assert_allclose(A.get(name).derivative(xs), want, rtol=5e-15, err_msg=name)
    c = mpmath.sqrt(2 / mpmath.pi)
    gt = lambda x: x * (1 + mpmath.tanh(c * (x + mpmath.mpf("0.044715") * x**3))) / 2  # noqa: E731
    want = np.array([float(mpmath.diff(gt, mpmath.mpf(x))) for x in xs])
    np.testing.assert_allclose(A.get("gelu", approximate="tanh").derivative(xs), want, rtol=1e-13)
    gelu = np.array([float(mpmath.mpf(x) * mpmath.ncdf(x)) for x in xs])
    np.testing.assert_allclose(A.get("gelu").value(xs), gelu, rtol=1e-13)  # scipy ndtr: ~6e-14 in the far tail


@pytest.mark.parametrize("key", list(TORCH))
def test_elementwise_jacobian_jvp_vjp(key):
    act, _ = _get(key)
    x = np.random.default_rng(0).normal(0, 3, (4, 6))
    v = np.random.default_rng(1).normal(size=x.shape)
    J = act.jacobian(x)
    assert J.shape == (4, 6, 6)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", J, v), act.jvp(x, v), rtol=1e-14)
    np.testing.assert_allclose(act.vjp(x, v), act.derivative(x) * v, rtol=1e-14)


@pytest.mark.parametrize("name,ref", [("softmax", lambda x: torch.softmax(x, -1)),
                                      ("log_softmax", lambda x: torch.log_softmax(x, -1)),
                                      ("sparsemax", None)])
def test_vector_jacobians_match_torch_autograd(name, ref):
    act = A.get(name)
    x = np.random.default_rng(2).normal(0, 1.5, (5, 4))
    v = np.random.default_rng(3).normal(size=x.shape)
    fun = ref if ref is not None else (lambda t: A.sparsemax(t))  # sparsemax: autograd through our torch path
    Jt = torch.autograd.functional.jacobian(fun, torch.tensor(x))
    Jref = np.stack([Jt[i, :, i, :].numpy() for i in range(5)])
    J = act.jacobian(x)
    np.testing.assert_allclose(J, Jref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(act.jvp(x, v), np.einsum("nij,nj->ni", J, v), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(act.vjp(x, v), np.einsum("ni,nij->nj", v, J), rtol=1e-12, atol=1e-15)
    with pytest.raises(TypeError, match="not elementwise"):
        act.derivative(x)


def test_sparsemax_values_known_cases():
    np.testing.assert_allclose(A.sparsemax(np.array([0.5, 0.2, -1.0])), [0.65, 0.35, 0.0], rtol=1e-14)
    np.testing.assert_allclose(A.sparsemax(np.array([3.0, 0.0])), [1.0, 0.0])
    p = A.sparsemax(np.random.default_rng(4).normal(0, 2, (50, 7)))
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-13)
    assert np.all(p >= 0)


def test_logsumexp_gradient_jvp_vjp():
    lse = A.get("logsumexp")
    x = np.random.default_rng(5).normal(size=(3, 4))
    xt = torch.tensor(x, requires_grad=True)
    (g,) = torch.autograd.grad(torch.logsumexp(xt, -1).sum(), xt)
    np.testing.assert_allclose(lse.value(x), torch.logsumexp(torch.tensor(x), -1).numpy(), rtol=1e-14)
    np.testing.assert_allclose(lse.jacobian(x), g.numpy(), rtol=1e-14)
    v = np.ones_like(x)
    np.testing.assert_allclose(lse.jvp(x, v), 1.0, rtol=1e-14)
    np.testing.assert_allclose(lse.vjp(x, np.array([1.0, 2.0, 3.0])), g.numpy() * [[1], [2], [3]], rtol=1e-14)
    with pytest.raises(ValueError, match="u must have shape"):
        lse.vjp(x, np.ones(4))


@pytest.mark.parametrize("dtype,scale", [(np.float64, 1e4), (np.float32, 1e3), (np.float64, 1e300)])
def test_stable_at_extreme_inputs(dtype, scale):
    x = (np.array([[-1.0, 1.0, 0.0, 0.5]]) * scale).astype(dtype)
    for name in A.names():
        act = A.get(name)
        outs = [act.value(x), act.jacobian(x)]
        if act.elementwise:
            outs.append(act.derivative(x))
        for o in outs:
            assert o.dtype == dtype and np.all(np.isfinite(o)), (name, o)
    np.testing.assert_allclose(A.softmax(x)[0], [0, 1, 0, 0], atol=1e-30)
    assert A.get("sigmoid").derivative(x)[0, 0] >= 0 and A.log_sigmoid(x)[0, 1] == 0.0


def test_registry_and_params():
    assert set(A.names()) == {"sigmoid", "log_sigmoid", "softmax", "log_softmax", "logsumexp", "tanh", "relu",
                              "leaky_relu", "elu", "gelu", "softplus", "sparsemax"}
    with pytest.raises(ValueError, match="unknown activation"):
        A.get("swish")
    with pytest.raises(ValueError, match="approximate"):
        A.get("gelu", approximate="fast")
    with pytest.raises(ValueError, match="alpha"):
        A.get("elu", alpha=-1.0)
    with pytest.raises(TypeError, match="floating"):
        A.get("relu").value(np.array([1, 2]))
    assert A.get("relu").derivative(np.array([0.0]))[0] == 0.0  # PyTorch's convention at 0
    assert A.get("leaky_relu", negative_slope=0.2).derivative(np.array([0.0]))[0] == 0.2
