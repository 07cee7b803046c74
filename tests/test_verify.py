"""lossgrad.verify: every registered pointwise loss passes, and every checker can fail.

Each broken loss below is a real loss with exactly one thing wrong (a derivative, a
declared property, a kink side); the test asserts that the matching check fails.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types

import numpy as np
import pytest

import lossgrad
from lossgrad import Kink, Props, Side
from lossgrad.verification import Check, VerifyReport, verify


def test_registered_pointwise_loss_passes_verify(pointwise_loss):
    report = verify(pointwise_loss)
    assert isinstance(report, VerifyReport)
    assert report, str(report)


def test_verify_runs_every_check_on_a_residual_loss():
    report = verify(lossgrad.Huber())
    names = {c.name for c in report.checks}
    expected = {
        "has_grad", "has_hess", "grad", "hess", "value_grad", "grad_hess", "kink_side", "weight", "finite",
        "convex", "strictly_convex", "strong_convexity", "lipschitz", "smoothness", "differentiability",
        "kinks", "symmetric", "bounded", "redescending", "class_calibrated", "dtype", "no_mutation",
    }
    assert expected <= names
    assert all(isinstance(c, Check) for c in report.checks)
    assert report.worst_error("grad") < 1e-6
    d = json.loads(report.to_json())
    assert d["passed"] is True and len(d["checks"]) == len(report.checks)


def test_verify_is_deterministic_and_accepts_names():
    a = verify("huber", seed=3)
    b = verify(lossgrad.Huber(), seed=3)
    assert a.as_dict() == b.as_dict()


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n": 2}, ValueError, "n must be an integer >= 8"),
        ({"rtol": 0.0}, ValueError, "rtol must be a number in"),
        ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ],
)
def test_verify_rejects_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        verify(lossgrad.Huber(), **kwargs)
    with pytest.raises(TypeError, match="loss must be a lossgrad loss"):
        verify(object())
    with pytest.raises(ValueError, match="unknown loss name"):
        verify("hubber")


class _FakeRow(lossgrad.RowLoss):
    @property
    def props(self):
        return Props(convex=True)


def test_dispatch_to_row_and_batch_modules(monkeypatch):
    sentinel = VerifyReport(loss="fake")
    fake = types.ModuleType("lossgrad.verification.row")
    fake.verify_row = lambda loss, **kw: sentinel
    monkeypatch.setitem(sys.modules, "lossgrad.verification.row", fake)
    assert verify(_FakeRow()) is sentinel
    monkeypatch.setitem(sys.modules, "lossgrad.verification.row", None)  # import fails
    with pytest.raises(NotImplementedError, match="row losses"):
        verify(_FakeRow())


# ------------------------------------------------------------------ broken losses

Huber = lossgrad.Huber


def _with_props(cls, **changes):
    """A subclass of ``cls`` whose declared props differ by ``changes``."""

    def props(self):
        return dataclasses.replace(cls.props.fget(self), **changes)

    return type(f"Bad{cls.__name__}", (cls,), {"props": property(props)})


def _with(cls, **members):
    return type(f"Bad{cls.__name__}", (cls,), members)


def _cls(name):
    return type(lossgrad.get(name))


def _mutating_evaluate(self, xp, y, f, ops):
    f[0] = f[0] + 1.0
    return Huber._evaluate(self, xp, y, f, ops)


def _joint_off(self, xp, y, f, ops):
    out = Huber._evaluate(self, xp, y, f, ops)
    return tuple(o + 1e-6 for o in out) if len(ops) > 1 else out


def _raises_grad(self, *a, **k):
    raise lossgrad.NotDifferentiableError("no")


def _naive_logistic_grad(self, xp, z):
    return -np.exp(-z) / (1 + np.exp(-z))  # inf / inf = NaN for z < -710


BROKEN = {
    "grad off by 1e-4": (_with(Huber, _psi=lambda self, xp, r: xp.clip(r, -self.delta, self.delta) + 1e-4), "grad"),
    "grad 0.1% too large": (_with(_cls("logistic"), _dphi=lambda self, xp, z: 1.001 * _cls("logistic")._dphi(self, xp, z)), "grad"),
    "hess with the wrong sign": (_with(Huber, _dpsi=lambda self, xp, r: -Huber._dpsi(self, xp, r)), "hess"),
    "hess off by 1e-4": (_with(_cls("log_cosh"), _dpsi=lambda self, xp, r: _cls("log_cosh")._dpsi(self, xp, r) + 1e-4), "hess"),
    "value_grad differs from value, grad": (_with(Huber, _evaluate=_joint_off), "value_grad"),
    "grad_hess differs from grad, hess": (_with(Huber, _evaluate=_joint_off), "grad_hess"),
    "kink side right at -delta": (_with(Huber, kinks=property(lambda s: (Kink(-s.delta, 2, Side.RIGHT), Kink(s.delta, 2, Side.RIGHT)))), "kink_side"),
    "kink side left for |r|": (_with(_cls("absolute_error"), kinks=property(lambda s: (Kink(0.0, 1, Side.LEFT),))), "kink_side"),
    "weight wrong at r = 0": (_with(Huber, _weight=lambda self, xp, r: xp.where(r == 0, 0.5 * xp.ones_like(r), self.delta / xp.maximum(xp.abs(r), self.delta))), "weight"),
    "weight wrong away from 0": (_with(Huber, _weight=lambda self, xp, r: Huber._weight(self, xp, r) * xp.where(r == 0, xp.ones_like(r), 1.001 * xp.ones_like(r))), "weight"),
    "NaN gradient in the tail": (_with(_cls("logistic"), _dphi=_naive_logistic_grad), "finite"),
    "tukey declared convex": (_with_props(_cls("tukey_biweight"), convex=True), "convex"),
    "huber declared non-convex": (_with_props(Huber, convex=False), "convex"),
    "huber declared strictly convex": (_with_props(Huber, strictly_convex=True), "strictly_convex"),
    "log_cosh declared not strictly convex": (_with_props(_cls("log_cosh"), strictly_convex=False), "strictly_convex"),
    "log_cosh declared strongly convex": (_with_props(_cls("log_cosh"), strong_convexity=1.0), "strong_convexity"),
    "squared error modulus not tight": (_with_props(_cls("squared_error"), strong_convexity=1.0), "strong_convexity"),
    "squared error modulus too large": (_with_props(_cls("squared_error"), strong_convexity=3.0), "strong_convexity"),
    "squared error declared not strongly convex": (_with_props(_cls("squared_error"), strong_convexity=0.0), "strong_convexity"),
    "huber Lipschitz too small": (_with_props(Huber, lipschitz=0.5), "lipschitz"),
    "huber Lipschitz not tight": (_with_props(Huber, lipschitz=2.0), "lipschitz"),
    "huber declared not Lipschitz": (_with_props(Huber, lipschitz=None), "lipschitz"),
    "squared error declared Lipschitz": (_with_props(_cls("squared_error"), lipschitz=1e3), "lipschitz"),
    "huber smoothness too small": (_with_props(Huber, smoothness=0.5), "smoothness"),
    "huber smoothness not tight": (_with_props(Huber, smoothness=2.0), "smoothness"),
    "absolute error declared smooth": (_with_props(_cls("absolute_error"), smoothness=1.0), "smoothness"),
    "huber declared C2": (_with_props(Huber, differentiability=2), "differentiability"),
    "absolute error declared C1": (_with_props(_cls("absolute_error"), differentiability=1), "differentiability"),
    "huber kinks undeclared": (_with(Huber, kinks=property(lambda s: ())), "kinks"),
    "huber kink misplaced": (_with(Huber, kinks=property(lambda s: (Kink(-s.delta, 2, Side.LEFT), Kink(s.delta + 0.1, 2, Side.RIGHT)))), "kinks"),
    "absolute error kink of order 2": (_with(_cls("absolute_error"), kinks=property(lambda s: (Kink(0.0, 2, Side.MIDPOINT),))), "kinks"),
    "huber declared asymmetric": (_with_props(Huber, symmetric=False), "symmetric"),
    "expectile declared symmetric": (lambda: _with_props(_cls("expectile"), symmetric=True)(tau=0.2), "symmetric"),
    "hinge declared symmetric": (_with_props(_cls("hinge"), symmetric=True), "symmetric"),
    "huber declared bounded": (_with_props(Huber, bounded=True), "bounded"),
    "tukey declared unbounded": (_with_props(_cls("tukey_biweight"), bounded=False), "bounded"),
    "cauchy declared bounded (log growth)": (_with_props(_cls("cauchy"), bounded=True), "bounded"),
    "huber declared redescending": (_with_props(Huber, redescending=True), "redescending"),
    "welsch declared not redescending": (_with_props(_cls("welsch"), redescending=False), "redescending"),
    "hinge declared uncalibrated": (_with_props(_cls("hinge"), class_calibrated=False), "class_calibrated"),
    "perceptron declared calibrated": (_with_props(_cls("perceptron"), class_calibrated=True), "class_calibrated"),
    "margin loss without a calibration claim": (_with_props(_cls("logistic"), class_calibrated=None), "class_calibrated"),
    "grad declared but raising": (_with(Huber, grad=_raises_grad), "has_grad"),
    "float64 out for float32 in": (_with(Huber, _rho=lambda self, xp, r: xp.astype(0.5 * r * r, xp.float64) * (xp.abs(r) < self.delta) + xp.astype(self.delta * (xp.abs(r) - 0.5 * self.delta), xp.float64) * (xp.abs(r) >= self.delta)), "dtype"),
    "mutates y_pred": (_with(Huber, _evaluate=_mutating_evaluate), "no_mutation"),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_each_checker_can_fail(case):
    make, check = BROKEN[case]
    loss = make()
    report = verify(loss, n=120)
    assert not report
    assert not report.check(check).passed, str(report)


def test_the_unbroken_originals_pass():
    # the broken classes above only make sense if their parents pass the same checks
    for name in ("huber", "logistic", "log_cosh", "absolute_error", "tukey_biweight", "squared_error",
                 "expectile", "hinge", "cauchy", "welsch", "perceptron"):
        assert verify(lossgrad.get(name), n=120), name


def test_scaled_loss_scales_the_constants():
    # 3 * Huber(2) has Lipschitz constant 6 and smoothness 3; both are measured tight
    report = verify(3 * lossgrad.Huber(delta=2.0))
    assert report and report.check("lipschitz").declared == 6.0 and report.check("smoothness").declared == 3.0
    assert abs(report.check("lipschitz").measured - 6.0) < 1e-9
