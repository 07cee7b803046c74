"""lossgrad.optim against torch.optim and optax, step for step.

Every trajectory test runs 200 steps in float64 on a quadratic and on the Rosenbrock function,
feeding torch and lossgrad the same closed-form gradient, and asserts max |difference| <= 1e-10.
Convention mappings (stated once per case): torch ``alpha`` = our ``decay`` (RMSprop);
torch ``betas=(b1, b2)``; torch's Adagrad ``lr_decay`` = our ``inverse_time`` schedule; optax's
epsilon inside the root = our ``eps_in_sqrt=True``; optax's nadam = our ``momentum_decay=inf``.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from lossgrad import optim
from lossgrad.optim import schedules as S

N_STEPS = 200
TOL = 1e-10

# ---------------------------------------------------------------- problems with exact gradients

_rng = np.random.default_rng(0)
_Q = np.linalg.qr(_rng.normal(size=(5, 5)))[0]
A = _Q @ np.diag([0.5, 1.0, 2.0, 4.0, 8.0]) @ _Q.T
C = _rng.normal(size=5)


def quad_grad(x):
    """f(x) = (x - c)' A (x - c) / 2, grad = A (x - c)."""
    return A @ (x - C)


def rosen_grad(x):
    """f(x) = sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2."""
    g = np.zeros_like(x)
    d = x[1:] - x[:-1] ** 2
    g[:-1] += -400.0 * x[:-1] * d - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * d
    return g


PROBLEMS = {
    "quadratic": (quad_grad, np.array([1.0, -2.0, 0.5, 3.0, -1.0])),
    "rosenbrock": (rosen_grad, np.array([-1.2, 1.0, -0.5, 0.8])),
}


@pytest.fixture(autouse=True)
def torch_float64():
    """torch keeps NAdam's mu_product and step counters in the default dtype: make it float64."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def run_ours(opt, x0, grad, n=N_STEPS):
    x, state, traj = x0.copy(), opt.init(x0), []
    for _ in range(n):
        updates, state = opt.update(grad(x), state, x)
        x = optim.apply_updates(x, updates)
        traj.append(x)
    return np.array(traj)


def run_torch(make, x0, grad, n=N_STEPS, scheduler=None, clip_norm=None):
    p = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
    opt = make([p])
    sched = scheduler(opt) if scheduler else None
    traj = []
    for _ in range(n):
        p.grad = torch.from_numpy(grad(p.detach().numpy().copy()))
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_([p], clip_norm)
        opt.step()
        if sched:
            sched.step()
        traj.append(p.detach().numpy().copy())
    return np.array(traj)


# (id, ours(lr), torch(params, lr), lr on the quadratic, lr on Rosenbrock)
TO = torch.optim
CASES = [
    ("sgd", lambda lr: optim.sgd(lr), lambda p, lr: TO.SGD(p, lr=lr), 0.1, 1e-4),
    ("sgd-momentum-wd", lambda lr: optim.sgd(lr, momentum=0.9, weight_decay=0.01),
     lambda p, lr: TO.SGD(p, lr=lr, momentum=0.9, weight_decay=0.01), 0.05, 1e-4),
    ("sgd-dampening", lambda lr: optim.sgd(lr, momentum=0.8, dampening=0.3),
     lambda p, lr: TO.SGD(p, lr=lr, momentum=0.8, dampening=0.3), 0.05, 1e-4),
    ("momentum", lambda lr: optim.momentum(lr, momentum=0.7),
     lambda p, lr: TO.SGD(p, lr=lr, momentum=0.7), 0.05, 1e-4),
    ("nesterov", lambda lr: optim.nesterov(lr, momentum=0.9),
     lambda p, lr: TO.SGD(p, lr=lr, momentum=0.9, nesterov=True), 0.05, 1e-4),
    ("adagrad", lambda lr: optim.adagrad(lr, initial_accumulator_value=0.1, eps=1e-10),
     lambda p, lr: TO.Adagrad(p, lr=lr, initial_accumulator_value=0.1, eps=1e-10), 0.5, 0.05),
    # torch's lr_decay: lr / (1 + (t - 1) lr_decay) = inverse_time(lr, lr_decay) at count t - 1
    ("adagrad-lr_decay-wd", lambda lr: optim.adagrad(S.inverse_time(lr, 0.01), 0.0, eps=1e-10, weight_decay=0.01),
     lambda p, lr: TO.Adagrad(p, lr=lr, lr_decay=0.01, weight_decay=0.01, eps=1e-10), 0.5, 0.05),
    ("rmsprop", lambda lr: optim.rmsprop(lr, decay=0.99, eps=1e-8),
     lambda p, lr: TO.RMSprop(p, lr=lr, alpha=0.99, eps=1e-8), 0.01, 1e-3),
    ("rmsprop-centered-momentum-wd",
     lambda lr: optim.rmsprop(lr, decay=0.9, eps=1e-6, centered=True, momentum=0.5, weight_decay=0.01),
     lambda p, lr: TO.RMSprop(p, lr=lr, alpha=0.9, eps=1e-6, centered=True, momentum=0.5, weight_decay=0.01),
     1e-3, 3e-4),  # with larger steps the centered iteration is chaotic: torch itself, started 1e-15 away, ends 1e-3 away
    ("adam", lambda lr: optim.adam(lr, b1=0.9, b2=0.99, eps=1e-8),
     lambda p, lr: TO.Adam(p, lr=lr, betas=(0.9, 0.99), eps=1e-8), 0.05, 0.01),
    ("adam-l2", lambda lr: optim.adam(lr, weight_decay=0.1),
     lambda p, lr: TO.Adam(p, lr=lr, weight_decay=0.1), 0.05, 0.01),
    ("adamw", lambda lr: optim.adamw(lr, b1=0.8, b2=0.995, eps=1e-7, weight_decay=0.05),
     lambda p, lr: TO.AdamW(p, lr=lr, betas=(0.8, 0.995), eps=1e-7, weight_decay=0.05), 0.05, 0.01),
    ("nadam", lambda lr: optim.nadam(lr), lambda p, lr: TO.NAdam(p, lr=lr), 0.05, 0.01),
    ("nadam-psi-l2", lambda lr: optim.nadam(lr, b1=0.85, momentum_decay=0.01, weight_decay=0.05),
     lambda p, lr: TO.NAdam(p, lr=lr, betas=(0.85, 0.999), momentum_decay=0.01, weight_decay=0.05), 0.05, 0.01),
    ("nadamw", lambda lr: optim.nadam(lr, weight_decay=0.05, decoupled_weight_decay=True),
     lambda p, lr: TO.NAdam(p, lr=lr, weight_decay=0.05, decoupled_weight_decay=True), 0.05, 0.01),
]


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_trajectory_matches_torch(case, problem):
    _, ours, theirs, lr_quad, lr_rosen = case
    grad, x0 = PROBLEMS[problem]
    lr = lr_quad if problem == "quadratic" else lr_rosen
    a = run_ours(ours(lr), x0, grad)
    b = run_torch(lambda p: theirs(p, lr), x0, grad)
    assert np.all(np.isfinite(a))
    assert np.max(np.abs(a[-1] - x0)) > 1e-2  # the optimizer actually moved
    assert np.max(np.abs(a - b)) <= TOL


SCHEDULED = [
    ("sgd-momentum+cosine", lambda: optim.sgd(S.cosine(0.05, 150, alpha=0.1), momentum=0.9),
     lambda p: TO.SGD(p, lr=0.05, momentum=0.9),
     lambda o: TO.lr_scheduler.CosineAnnealingLR(o, T_max=150, eta_min=0.005), 150),
    ("adam+steplr", lambda: optim.adam(S.step_decay(0.05, 30, 0.5)), lambda p: TO.Adam(p, lr=0.05),
     lambda o: TO.lr_scheduler.StepLR(o, step_size=30, gamma=0.5), N_STEPS),
    ("rmsprop-momentum+exponential", lambda: optim.rmsprop(S.exponential(0.01, 0.99), decay=0.99, momentum=0.5),
     lambda p: TO.RMSprop(p, lr=0.01, alpha=0.99, momentum=0.5),
     lambda o: TO.lr_scheduler.ExponentialLR(o, gamma=0.99), N_STEPS),
    ("adamw+sgdr", lambda: optim.adamw(S.cosine_warm_restarts(0.05, 20, 2, alpha=0.1), weight_decay=0.01),
     lambda p: TO.AdamW(p, lr=0.05, weight_decay=0.01),
     lambda o: TO.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=20, T_mult=2, eta_min=0.005), N_STEPS),
]


@pytest.mark.parametrize("case", SCHEDULED, ids=[c[0] for c in SCHEDULED])
def test_scheduled_trajectory_matches_torch(case):
    """A schedule's step t is torch's scheduler after t calls of scheduler.step()."""
    _, ours, theirs, sched, n = case
    grad, x0 = PROBLEMS["quadratic"]
    a = run_ours(ours(), x0, grad, n)
    b = run_torch(theirs, x0, grad, n, scheduler=sched)
    assert np.max(np.abs(a - b)) <= TOL


def test_clip_by_global_norm_then_adam_matches_torch_clip_grad_norm():
    """torch.nn.utils.clip_grad_norm_ scales by max_norm / (norm + 1e-6): our eps=1e-6."""
    grad, x0 = PROBLEMS["rosenbrock"]
    ours = optim.chain(optim.clip_by_global_norm(5.0, eps=1e-6), optim.adam(0.01))
    a = run_ours(ours, x0, grad)
    b = run_torch(lambda p: TO.Adam(p, lr=0.01), x0, grad, clip_norm=5.0)
    assert np.max(np.abs(a - b)) <= TOL
    # the clip is active: without it the trajectory differs
    assert np.max(np.abs(run_ours(optim.adam(0.01), x0, grad) - b)) > 1e-3


def test_dict_params_match_torch_param_list():
    """A nested dict of arrays = a list of torch parameters; the global norm spans all leaves."""
    rng = np.random.default_rng(1)
    target = {"w": rng.normal(size=(3, 2)), "head": {"b": rng.normal(size=2)}}
    x0 = {"w": np.zeros((3, 2)), "head": {"b": np.ones(2)}}

    def grad(p):  # f = sum over leaves of 2 * ||p - target||^2 (big gradients: clipping is active)
        return optim.tree_map(lambda x, t: 4.0 * (x - t), p, target)

    ours = optim.chain(optim.clip_by_global_norm(1.0, eps=1e-6), optim.adamw(0.05, weight_decay=0.1))
    state, x = ours.init(x0), x0
    pw = torch.nn.Parameter(torch.zeros(3, 2))
    pb = torch.nn.Parameter(torch.ones(2))
    topt = TO.AdamW([pw, pb], lr=0.05, weight_decay=0.1)
    err = 0.0
    for _ in range(100):
        u, state = ours.update(grad(x), state, x)
        x = optim.apply_updates(x, u)
        g = grad({"w": pw.detach().numpy(), "head": {"b": pb.detach().numpy()}})
        pw.grad, pb.grad = torch.from_numpy(g["w"]), torch.from_numpy(g["head"]["b"])
        torch.nn.utils.clip_grad_norm_([pw, pb], 1.0)
        topt.step()
        err = max(err, np.max(np.abs(x["w"] - pw.detach().numpy())), np.max(np.abs(x["head"]["b"] - pb.detach().numpy())))
    assert set(x) == {"w", "head"} and set(x["head"]) == {"b"}
    assert err <= TOL
    assert np.max(np.abs(x["w"])) > 0.1


def test_clip_value_matches_torch_clip_grad_value():
    g = np.array([-3.0, -0.5, 0.0, 0.7, 1e30])
    p = torch.nn.Parameter(torch.zeros(5))
    p.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_value_([p], 0.6)
    expected = p.grad.numpy()
    got, _ = optim.clip(0.6).update(g, optim.EmptyState())
    assert np.array_equal(got, expected)


# ---------------------------------------------------------------- optax


@pytest.fixture
def jax_x64():
    import jax

    old = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield jax
    jax.config.update("jax_enable_x64", old)


OPTAX_CASES = [
    ("adam", lambda ox: ox.adam(0.05, b1=0.9, b2=0.99, eps=1e-8, eps_root=1e-12),
     lambda: optim.adam(0.05, b1=0.9, b2=0.99, eps=1e-8, eps_root=1e-12)),
    ("adamw", lambda ox: ox.adamw(0.05, weight_decay=0.1), lambda: optim.adamw(0.05, weight_decay=0.1)),
    ("sgd-nesterov", lambda ox: ox.sgd(0.05, momentum=0.9, nesterov=True), lambda: optim.nesterov(0.05, 0.9)),
    # optax: eps inside the root; momentum after the (constant) learning rate
    ("rmsprop-centered-momentum", lambda ox: ox.rmsprop(1e-3, decay=0.9, eps=1e-6, centered=True, momentum=0.5),
     lambda: optim.rmsprop(1e-3, decay=0.9, eps=1e-6, eps_in_sqrt=True, centered=True, momentum=0.5)),
    ("adagrad", lambda ox: ox.adagrad(0.5, initial_accumulator_value=0.1, eps=1e-7),
     lambda: optim.adagrad(0.5, initial_accumulator_value=0.1, eps=1e-7, eps_in_sqrt=True)),
    # optax's nadam has the constant momentum mu_t = b1
    ("nadam", lambda ox: ox.nadam(0.05), lambda: optim.nadam(0.05, momentum_decay=math.inf)),
    ("clip+adam+cosine", lambda ox: ox.chain(ox.clip_by_global_norm(1.0), ox.adam(ox.cosine_decay_schedule(0.05, 150, 0.1))),
     lambda: optim.chain(optim.clip_by_global_norm(1.0), optim.adam(S.cosine(0.05, 150, alpha=0.1)))),
]


@pytest.mark.parametrize("case", OPTAX_CASES, ids=[c[0] for c in OPTAX_CASES])
def test_trajectory_matches_optax(case, jax_x64):
    import jax.numpy as jnp
    import optax

    _, theirs, ours = case
    grad, x0 = PROBLEMS["quadratic"]
    tx = theirs(optax)
    update = jax_x64.jit(tx.update)
    x, state, traj = jnp.asarray(x0), tx.init(jnp.asarray(x0)), []
    for _ in range(N_STEPS):
        u, state = update(jnp.asarray(grad(np.asarray(x))), state, x)
        x = optax.apply_updates(x, u)
        traj.append(np.asarray(x))
    assert np.asarray(traj).dtype == np.float64
    assert np.max(np.abs(run_ours(ours(), x0, grad) - np.asarray(traj))) <= TOL


# ---------------------------------------------------------------- protocol, arrays, purity


ALL = [optim.sgd(0.1), optim.momentum(0.1), optim.nesterov(0.1), optim.adagrad(0.1), optim.rmsprop(0.1, centered=True),
       optim.adam(0.1), optim.adamw(0.1), optim.nadam(0.1),
       optim.chain(optim.clip(1.0), optim.clip_by_global_norm(1.0), optim.sgd(0.1, momentum=0.5))]


@pytest.mark.parametrize("opt", ALL)
def test_pure_float32_and_no_mutation(opt):
    p = {"a": np.array([1.0, -2.0], dtype=np.float32), "b": {"c": np.array([[0.5]], dtype=np.float32)}}
    g = {"a": np.array([0.3, -4.0], dtype=np.float32), "b": {"c": np.array([[2.0]], dtype=np.float32)}}
    p_copy = pickle.loads(pickle.dumps(p))
    g_copy = pickle.loads(pickle.dumps(g))
    s0 = opt.init(p)
    u1, s1 = opt.update(g, s0, p)
    s1_copy = pickle.loads(pickle.dumps(s1))
    u2, _ = opt.update(g, s0, p)  # the same state gives the same update: nothing was updated in place
    opt.update(g, s1, p)
    new = optim.apply_updates(p, u1)
    for tree, copy in ((p, p_copy), (g, g_copy), (u1, u2)):
        for x, y in zip(optim.tree_leaves(tree), optim.tree_leaves(copy), strict=True):
            assert np.array_equal(x, y)
    assert all(x.dtype == np.float32 for x in optim.tree_leaves(new) + optim.tree_leaves(u1))
    for x, y in zip(_leaves(s1), _leaves(s1_copy), strict=True):
        assert np.array_equal(x, y)  # updating from s1 left s1 as it was
    assert np.any(new["a"] != p["a"])


def _leaves(state):
    if isinstance(state, tuple):
        return [x for s in state for x in _leaves(s)]
    if isinstance(state, dict):
        return [x for v in state.values() for x in _leaves(v)]
    return [state] if isinstance(state, np.ndarray) else []


def test_trace_copies_the_first_gradient():
    """The caller may reuse (zero) its gradient buffer in place; the state must not alias it."""
    opt = optim.momentum(0.1, 0.9)
    g = np.array([1.0, 2.0])
    _, s = opt.update(g, opt.init(g), g)
    g[:] = 0.0
    assert np.array_equal(s[0].trace, [1.0, 2.0])


def test_torch_and_scalar_params():
    x0 = np.array([1.0, -2.0, 0.5, 3.0, -1.0])
    opt = optim.adamw(0.05, weight_decay=0.1)
    a = run_ours(opt, x0, quad_grad, 20)
    xt, state = torch.tensor(x0), opt.init(torch.tensor(x0))
    for _ in range(20):
        u, state = opt.update(torch.from_numpy(quad_grad(xt.numpy())), state, xt)
        xt = optim.apply_updates(xt, u)
    assert isinstance(xt, torch.Tensor) and xt.dtype == torch.float64
    assert np.max(np.abs(xt.numpy() - a[-1])) <= 1e-14
    s = optim.sgd(0.5)
    u, _ = s.update(np.asarray(2.0), s.init(np.asarray(1.0)))
    out = optim.apply_updates(np.asarray(1.0), u)
    assert isinstance(out, np.ndarray) and out.shape == () and float(out) == 0.0


def test_add_decayed_weights_mask():
    p = {"w": np.array([1.0, 2.0]), "b": np.array([3.0])}
    g = {"w": np.zeros(2), "b": np.zeros(1)}
    tx = optim.add_decayed_weights(0.5, mask={"w": True, "b": False})
    u, _ = tx.update(g, tx.init(p), p)
    assert u["w"].tolist() == [0.5, 1.0] and u["b"].tolist() == [0.0]
    tx = optim.add_decayed_weights(0.5, mask=lambda params: {k: k != "b" for k in params})
    assert tx.update(g, tx.init(p), p)[0]["b"].tolist() == [0.0]
    with pytest.raises(ValueError, match="needs params"):
        tx.update(g, tx.init(p))
    with pytest.raises(ValueError, match="mask"):
        optim.add_decayed_weights(0.5, mask={"w": True}).update(g, None, p)


def test_global_norm_and_clip_by_global_norm():
    g = {"a": np.array([3.0]), "b": {"c": np.array([4.0, 0.0])}}
    assert optim.global_norm(g) == 5.0
    u, _ = optim.clip_by_global_norm(1.0).update(g, None)
    assert np.isclose(optim.global_norm(u), 1.0) and np.allclose(u["a"], 0.6)
    u, _ = optim.clip_by_global_norm(10.0).update(g, None)
    assert u["a"].tolist() == [3.0] and u["a"] is not g["a"]


def test_optimizer_registry():
    assert set(optim.OPTIMIZERS) == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "nadam"}
    for name, factory in optim.OPTIMIZERS.items():
        assert getattr(optim, name) is factory
        opt = factory(learning_rate=0.1)
        u, _ = opt.update(np.ones(2), opt.init(np.zeros(2)), np.zeros(2))
        assert np.all(u < 0), name  # a descent direction for a positive gradient


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: optim.sgd(0.0), "learning_rate must be > 0"),
        (lambda: optim.sgd(-0.1), "learning_rate must be > 0"),
        (lambda: optim.adam(float("nan")), "learning_rate must be finite"),
        (lambda: optim.adam(0.1, b1=1.0), r"b1 must lie in \[0, 1\)"),
        (lambda: optim.adam(0.1, b1=-0.1), r"b1 must lie in \[0, 1\)"),
        (lambda: optim.adamw(0.1, b2=1.5), r"b2 must lie in \[0, 1\)"),
        (lambda: optim.adam(0.1, eps=-1e-8), "eps must be >= 0"),
        (lambda: optim.adam(0.1, eps_root=-1.0), "eps_root must be >= 0"),
        (lambda: optim.rmsprop(0.1, decay=1.0), r"decay must lie in \[0, 1\)"),
        (lambda: optim.rmsprop(0.1, momentum=1.0), r"momentum must lie in \[0, 1\)"),
        (lambda: optim.sgd(0.1, nesterov=True), "nesterov=True needs momentum"),
        (lambda: optim.sgd(0.1, momentum=0.9, dampening=0.5, nesterov=True), "dampening = 0"),
        (lambda: optim.sgd(0.1, weight_decay=-0.01), "weight_decay must be >= 0"),
        (lambda: optim.adagrad(0.1, initial_accumulator_value=-1.0), "initial_accumulator_value must be >= 0"),
        (lambda: optim.nadam(0.1, momentum_decay=-1.0), "momentum_decay must be a number >= 0"),
        (lambda: optim.clip_by_global_norm(0.0), "max_norm must be > 0"),
        (lambda: optim.clip(-1.0), "max_delta must be > 0"),
        (lambda: optim.adam(lambda t: -1.0), "schedule must return finite values >= 0"),
    ],
)
def test_bad_hyper_parameters_raise_value_error(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: optim.sgd("0.1"), "learning_rate must be a real number"),
        (lambda: optim.adam(0.1, b1=True), "b1 must be a real number"),
        (lambda: optim.rmsprop(0.1, centered=1), "centered must be True or False"),
        (lambda: optim.chain(optim.sgd(0.1), "adam"), "argument 1 must be a GradientTransformation"),
        (lambda: optim.adam(0.1, beta1=0.9), "unexpected keyword"),
    ],
)
def test_bad_hyper_parameter_types_raise_type_error(build, match):
    with pytest.raises(TypeError, match=match):
        build()


def test_bad_params_and_grads():
    opt = optim.adam(0.1)
    p = {"w": np.zeros(2), "b": np.zeros(1)}
    s = opt.init(p)
    with pytest.raises(ValueError, match="same structure"):
        opt.update({"w": np.zeros(2)}, s, p)
    with pytest.raises(ValueError, match=r"\['w'\]: shapes differ"):
        opt.update({"w": np.zeros(3), "b": np.zeros(1)}, s, p)
    with pytest.raises(TypeError, match="floating-point array"):
        opt.init([1.0, 2.0])
    with pytest.raises(TypeError, match="real floating-point dtype"):
        opt.init(np.arange(3))
    with pytest.raises(ValueError, match="tuple of 2 states"):
        opt.update(p, s[0], p)
