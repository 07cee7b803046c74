"""lossgrad.optim.schedules against torch.optim.lr_scheduler and optax's schedules.

Mapping to torch: our step t is the learning rate after t calls of ``scheduler.step()``
(``get_last_lr()`` before the (t+1)-th optimizer step). torch's relative arguments map to
ours as ``alpha = eta_min / lr`` (cosine) and ``init/end = lr * start/end_factor`` (LinearLR).
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from lossgrad.optim import schedules as S

LR = 0.1
N = 200
TOL = 1e-12


def torch_lrs(make_scheduler, n=N, lr=LR):
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_scheduler(opt)
    out = []
    for _ in range(n):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return np.array(out)


LRS = torch.optim.lr_scheduler
TORCH_CASES = [
    ("StepLR", lambda o: LRS.StepLR(o, step_size=30, gamma=0.5), S.step_decay(LR, 30, 0.5), N),
    ("MultiStepLR", lambda o: LRS.MultiStepLR(o, milestones=[10, 50, 120], gamma=0.3),
     S.piecewise_constant(LR, {10: 0.3, 50: 0.3, 120: 0.3}), N),
    ("ExponentialLR", lambda o: LRS.ExponentialLR(o, gamma=0.97), S.exponential(LR, 0.97), N),
    # torch's cosine is periodic past T_max; ours stays at the floor: compare on [0, T_max]
    ("CosineAnnealingLR", lambda o: LRS.CosineAnnealingLR(o, T_max=150, eta_min=0.004), S.cosine(LR, 150, alpha=0.04), 151),
    ("CosineAnnealingWarmRestarts", lambda o: LRS.CosineAnnealingWarmRestarts(o, T_0=25),
     S.cosine_warm_restarts(LR, 25), N),
    ("CosineAnnealingWarmRestarts-Tmult", lambda o: LRS.CosineAnnealingWarmRestarts(o, T_0=7, T_mult=2, eta_min=0.01),
     S.cosine_warm_restarts(LR, 7, 2, alpha=0.1), N),
    ("LinearLR-warmup", lambda o: LRS.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=20),
     S.linear_warmup(LR, 20, init_value=0.1 * LR), N),
    ("LinearLR-decay", lambda o: LRS.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=80),
     S.linear(LR, 0.2 * LR, 80), N),
    ("PolynomialLR", lambda o: LRS.PolynomialLR(o, total_iters=120, power=2.0), S.polynomial(LR, 0.0, 2.0, 120), N),
    ("SequentialLR-warmup-cosine",
     lambda o: LRS.SequentialLR(o, [LRS.LinearLR(o, 0.01, 1.0, 10), LRS.CosineAnnealingLR(o, T_max=100)], milestones=[10]),
     S.join([S.linear(0.01 * LR, LR, 10), S.cosine(LR, 100)], [10]), 111),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_schedule_matches_torch_scheduler(case):
    _, make, ours, n = case
    expected = torch_lrs(make, n)
    got = ours(np.arange(n))
    assert got.shape == (n,) and got.dtype == np.float64
    assert np.max(np.abs(got - expected)) <= TOL
    assert np.ptp(expected) > 0.01 * LR  # the schedule does change


@pytest.fixture
def optax_x64():
    import jax
    import optax

    old = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield optax
    jax.config.update("jax_enable_x64", old)


OPTAX_CASES = [
    ("constant", lambda ox: ox.constant_schedule(0.3), S.constant(0.3)),
    ("cosine", lambda ox: ox.cosine_decay_schedule(0.5, 120, alpha=0.1, exponent=2.0), S.cosine(0.5, 120, alpha=0.1, exponent=2.0)),
    ("exponential", lambda ox: ox.exponential_decay(0.5, 7, 0.8, transition_begin=15, staircase=True, end_value=0.05),
     S.exponential(0.5, 0.8, 7, 15, staircase=True, end_value=0.05)),
    ("exponential-growth", lambda ox: ox.exponential_decay(0.01, 10, 1.5, end_value=0.2),
     S.exponential(0.01, 1.5, 10, end_value=0.2)),
    ("polynomial", lambda ox: ox.polynomial_schedule(0.5, 0.01, 3.0, 100, transition_begin=20),
     S.polynomial(0.5, 0.01, 3.0, 100, 20)),
    ("linear", lambda ox: ox.linear_schedule(0.0, 0.4, 50, 10), S.linear(0.0, 0.4, 50, 10)),
    ("piecewise", lambda ox: ox.piecewise_constant_schedule(0.5, {30: 0.1, 90: 2.0}),
     S.piecewise_constant(0.5, {30: 0.1, 90: 2.0})),
    ("join", lambda ox: ox.join_schedules([ox.constant_schedule(0.2), ox.cosine_decay_schedule(0.4, 50), ox.constant_schedule(0.01)], [20, 60]),
     S.join([S.constant(0.2), S.cosine(0.4, 50), S.constant(0.01)], [20, 60])),
    ("warmup_cosine", lambda ox: ox.warmup_cosine_decay_schedule(0.0, 0.5, 25, 180, end_value=0.02),
     S.warmup_cosine(0.0, 0.5, 25, 180, end_value=0.02)),
]


@pytest.mark.parametrize("case", OPTAX_CASES, ids=[c[0] for c in OPTAX_CASES])
def test_schedule_matches_optax(case, optax_x64):
    import jax.numpy as jnp

    _, theirs, ours = case
    t = np.arange(N)
    expected = np.broadcast_to(np.asarray(theirs(optax_x64)(jnp.asarray(t))), t.shape)  # constant_schedule gives a scalar
    assert expected.dtype == np.float64 and expected.shape == (N,)
    assert np.max(np.abs(ours(t) - expected)) <= TOL


# ---------------------------------------------------------------- hand values and behaviour


def test_hand_values():
    assert S.step_decay(1.0, 10, 0.5)(25) == 0.25
    assert S.inverse_time(1.0, 0.5, decay_steps=2)(8) == 1.0 / 3.0
    assert S.inverse_time(1.0, 0.5, decay_steps=4, staircase=True)(7) == 1.0 / 1.5
    assert S.cosine(2.0, 100)(50) == pytest.approx(1.0, abs=1e-15)
    assert S.cosine(2.0, 100, alpha=0.25)(1000) == 0.5
    r = S.cosine_warm_restarts(1.0, 10, 2)
    assert [r(0), r(10), r(30), r(70)] == [1.0, 1.0, 1.0, 1.0]  # restarts at 10, 10 + 20, 30 + 40
    assert r(20) == pytest.approx(0.5, abs=1e-15)  # middle of the second period (length 20)
    assert S.polynomial(1.0, 0.0, 2.0, 10)(5) == 0.25
    w = S.linear_warmup(S.exponential(1.0, 0.5), 4)
    assert [w(0), w(2), w(4), w(5)] == [0.0, 0.5, 1.0, 0.5]


def test_scalar_and_array_steps_agree():
    s = S.warmup_cosine(0.0, 1.0, 10, 100, end_value=0.1)
    t = np.arange(0, 150, 7)
    vec = s(t)
    assert isinstance(s(3), float) and isinstance(s(np.int64(3)), float) and isinstance(s(np.asarray(3)), float)
    assert vec.shape == t.shape
    assert np.array_equal(vec, [s(int(i)) for i in t])
    assert s(np.arange(6).reshape(2, 3)).shape == (2, 3)


def test_join_user_callables_and_pickle():
    s = S.join([lambda t: 0.1 + 0 * t, S.constant(0.5)], [3])
    assert [s(2), s(3)] == [0.1, 0.5]
    c = S.cosine_warm_restarts(0.5, 5, 3, alpha=0.2)
    c2 = pickle.loads(pickle.dumps(c))
    assert c2 == c and c2(17) == c(17)
    assert "CosineWarmRestarts" in repr(c)


def test_schedules_are_immutable():
    s = S.cosine(1.0, 10)
    with pytest.raises(AttributeError):
        s.init_value = 2.0


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "build, exc, match",
    [
        (lambda: S.constant(-1.0), ValueError, "value must be >= 0"),
        (lambda: S.step_decay(0.1, 0), ValueError, "step_size must be an integer >= 1"),
        (lambda: S.step_decay(0.1, 10, gamma=0.0), ValueError, "gamma must be > 0"),
        (lambda: S.exponential(0.0, 0.9), ValueError, "init_value must be > 0"),
        (lambda: S.exponential(0.1, 0.9, transition_steps=0), ValueError, "transition_steps must be an integer >= 1"),
        (lambda: S.exponential(0.1, 0.9, staircase="yes"), TypeError, "staircase must be True or False"),
        (lambda: S.inverse_time(0.1, -1.0), ValueError, "decay_rate must be >= 0"),
        (lambda: S.polynomial(0.1, 0.0, 0.0, 10), ValueError, "power must be > 0"),
        (lambda: S.cosine(0.1, 0), ValueError, "decay_steps must be an integer >= 1"),
        (lambda: S.cosine(0.1, 10, alpha=1.5), ValueError, r"alpha must lie in \[0, 1\]"),
        (lambda: S.cosine_warm_restarts(0.1, 10, t_mult=0), ValueError, "t_mult must be an integer >= 1"),
        (lambda: S.cosine_warm_restarts(0.1, 2.5), ValueError, "t_0 must be an integer >= 1"),
        (lambda: S.piecewise_constant(0.1, {-1: 0.5}), ValueError, "boundary must be an integer >= 0"),
        (lambda: S.join([S.constant(0.1), S.constant(0.2)], []), ValueError, "needs len"),
        (lambda: S.join([S.constant(0.1)] * 3, [5, 5]), ValueError, "strictly increasing"),
        (lambda: S.join([0.1, S.constant(0.2)], [5]), TypeError, "callables"),
        (lambda: S.linear_warmup(0.1, 0), ValueError, "warmup_steps must be an integer >= 1"),
        (lambda: S.warmup_cosine(0.0, 1.0, 10, 5), ValueError, "decay_steps must be an integer >= 11"),
        (lambda: S.cosine(0.1, 10, beta=2), TypeError, "unexpected keyword"),
        (lambda: S.cosine(0.1, 10)(-1), ValueError, "step must be finite and >= 0"),
        (lambda: S.cosine(0.1, 10)(math.nan), ValueError, "step must be finite and >= 0"),
        (lambda: S.cosine(0.1, 10)(True), TypeError, "step must be a number"),
        (lambda: S.cosine(0.1, 10)("3"), TypeError, "step must be a number"),
    ],
)
def test_bad_arguments(build, exc, match):
    with pytest.raises(exc, match=match):
        build()
