"""lossgrad.custom: losses from a formula, derived by SymPy, compiled, checked.

The oracle table below writes every built-in pointwise loss (that has derivatives) as
a SymPy formula, independently of lossgrad's code: the symbolic grad and hess of that
formula must equal the built-in closed forms away from the declared kinks.
"""

from __future__ import annotations

import dataclasses
import math
import pickle

import numpy as np
import pytest

import lossgrad
from lossgrad import custom

Q = "where(r <= 0, tau, 1 - tau)"  # the asymmetric weight of the quantile family
HUBER = "where(abs(r) < delta, r**2/2, delta*(abs(r) - delta/2))"
PHI = "(1 + erf(r/h/sqrt(2)))/2"
PDF = "exp(-(r/h)**2/2)/sqrt(2*pi)"

#: name -> (formula, params used from the loss's fields, variants accepted)
ORACLES = {
    "squared_error": ("r**2", ()),
    "absolute_error": ("abs(r)", ()),
    "huber": (HUBER, ("delta",)),
    "pseudo_huber": ("delta**2*(sqrt(1 + (r/delta)**2) - 1)", ("delta",)),
    "log_cosh": ("log(cosh(r))", ()),
    "lp": ("abs(r)**p", ("p",)),
    "smooth_l1": ("where(abs(r) < beta, r**2/(2*beta), abs(r) - beta/2)", ("beta",)),
    "berhu": ("where(abs(r) <= c, abs(r), (r**2 + c**2)/(2*c))", ("c",)),
    "epsilon_insensitive": ("max(0, abs(r) - epsilon)", ("epsilon",)),
    "squared_epsilon_insensitive": ("max(0, abs(r) - epsilon)**2", ("epsilon",)),
    "quantile": ("max(-tau*r, (1 - tau)*r)", ("tau",)),
    "expectile": (f"{Q}*r**2", ("tau",)),
    "huber_quantile": (f"{Q}*{HUBER}", ("tau", "delta")),
    "smoothed_quantile": (f"-r*(tau - {PHI}) + h*{PDF}", ("tau", "h")),
    "andrews": ("where(abs(r) <= a*pi, a**2*(1 - cos(r/a)), 2*a**2)", ("a",)),
    "cauchy": ("c**2/2*log(1 + (r/c)**2)", ("c",)),
    "fair": ("c**2*(abs(r)/c - log(1 + abs(r)/c))", ("c",)),
    "welsch": ("c**2/2*(1 - exp(-(r/c)**2))", ("c",)),
    "tukey_biweight": ("where(abs(r) <= c, c**2/6*(1 - (1 - (r/c)**2)**3), c**2/6)", ("c",)),
    "hampel": ("where(abs(r) <= a, r**2/2, where(abs(r) <= b, a*abs(r) - a**2/2, where(abs(r) <= c, "
               "a*(b + c - a)/2 - a*(c - abs(r))**2/(2*(c - b)), a*(b + c - a)/2)))", ("a", "b", "c")),
    "hinge": ("max(0, 1 - z)", ()),
    "squared_hinge": ("max(0, 1 - z)**2", ()),
    "logistic": ("log(1 + exp(-z))", ()),
    "exponential": ("exp(-z)", ()),
    "perceptron": ("max(0, -z)", ()),
    "sigmoid_loss": ("1/(1 + exp(z))", ()),
    "modified_huber": ("where(z >= -1, max(0, 1 - z)**2, -4*z)", ()),
    "smoothed_hinge": ("where(z >= 1, 0, where(z <= 1 - gamma, 1 - z - gamma/2, (1 - z)**2/(2*gamma)))", ("gamma",)),
    "dwd": ("where(z <= q/(q + 1), 1 - z, q**q/(q + 1)**(q + 1)*z**(-q))", ("q",)),
    # binary focal of the margin z = (2y - 1) f: -q^gamma log p with p = sigmoid(z), q = 1 - p
    "binary_focal": ("(1/(1 + exp(z)))**gamma*log(1 + exp(-z))", ("gamma",)),
    "binary_cross_entropy": ("y*log(1 + exp(-f)) + (1 - y)*log(1 + exp(f))", ()),
    "poisson": ("exp(f) - y*f", ()),
    "gamma": ("f + y*exp(-f)", ()),
    "tweedie": ("exp((2 - power)*f)/(2 - power) - y*exp((1 - power)*f)/(1 - power)", ("power",)),
}


def _oracle_variants(name: str) -> list:
    """The registered variants of ``name`` whose parameters the oracle formula covers."""
    entry = lossgrad.catalog()
    entry = next(e for e in entry if e.name == name)
    _, used = ORACLES[name]
    out = []
    for loss in entry.instances():
        fields = {f.name: getattr(loss, f.name) for f in dataclasses.fields(loss) if f.init}
        default = {f.name: f.default for f in dataclasses.fields(loss) if f.init}
        others_default = all(fields[k] == default[k] for k in fields if k not in used)
        if name == "tweedie" and fields["power"] in (0.0, 1.0, 2.0):
            continue  # the oracle formula is the generic power's (the cases 0, 1, 2 are limits)
        if name == "smooth_l1" and fields["beta"] == 0.0:
            continue  # beta = 0 is the limit |r| (the oracle divides by beta)
        if others_default:
            out.append(loss)
    return out


def test_every_differentiable_pointwise_loss_has_an_oracle():
    names = {e.name for e in lossgrad.catalog(shape="pointwise") if e.make().props.has_grad}
    names = {n for n in names if not n.startswith("custom")}
    assert set(ORACLES) == names


def _points(loss, n=400, seed=0):
    rng = np.random.default_rng(seed)
    y, f = (np.asarray(a, dtype=float) for a in loss._example_inputs(rng, n))
    t = np.asarray(loss._natural(y, f), dtype=float)
    keep = np.ones(t.shape, bool)
    for k in loss.kinks:
        keep &= np.abs(t - k.at) > 1e-3 * max(1.0, abs(k.at))
    if loss.props.basis == lossgrad.Basis.DISTANCE:
        keep &= np.abs(t) > 1e-3  # lp: |r|^p has a pole of its Hessian at 0
    return y[keep], f[keep]


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_symbolic_derivatives_equal_builtin(name):
    text, used = ORACLES[name]
    variants = _oracle_variants(name)
    assert variants, f"no variant of {name} is covered by its oracle"
    for loss in variants:
        params = {p: float(getattr(loss, p)) for p in used}
        c = custom.from_formula(text, params, check=False)
        y, f = _points(loss)
        assert y.size > 100
        if c.derivation.variable == "z":
            y = np.where(y > 0, 1.0, -1.0)
        for op in ("value", "grad", "hess"):
            want = np.asarray(getattr(loss, op)(y, f), dtype=float)
            got = np.asarray(getattr(c, op)(y, f), dtype=float)
            scale = max(1.0, float(np.max(np.abs(want))))
            np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12 * scale, err_msg=f"{name} {params} {op}")


# ------------------------------------------------------------------ the symbolic side


def test_derive_log_cosh_is_tanh_and_sech2():
    import sympy as sp

    d = custom.derive("log(cosh(r))")
    r = d.wrt
    assert sp.simplify(d.grad - sp.tanh(r)) == 0
    assert sp.simplify(d.hess - (1 - sp.tanh(r) ** 2)) == 0
    f = d.formula()
    assert "tanh" in f.grad and f.variable.startswith("r")


def test_formula_latex_and_derivation_of_pseudo_huber():
    loss = custom.from_formula("delta**2*(sqrt(1+(r/delta)**2)-1)", params={"delta": 1.0})
    assert "\\sqrt" in loss.formula.value and "\\delta" in loss.formula.grad
    assert loss.props.convex and loss.props.lipschitz == pytest.approx(1.0) and loss.props.smoothness == 1.0
    assert loss.kinks == ()


@pytest.mark.parametrize(
    "text, params, kinks",
    [
        ("abs(r)", None, [(0.0, 1, lossgrad.Side.MIDPOINT)]),
        ("max(0, 1 - z)", None, [(1.0, 1, lossgrad.Side.MIDPOINT)]),  # Heaviside(0) = 1/2
        (HUBER, {"delta": 1.5}, [(-1.5, 2, lossgrad.Side.LEFT), (1.5, 2, lossgrad.Side.RIGHT)]),
        ("max(-tau*r, (1 - tau)*r)", {"tau": 0.1}, [(0.0, 1, lossgrad.Side.MIDPOINT)]),
        ("where(r < 0, tau - 1, tau)*r", {"tau": 0.3}, [(0.0, 1, lossgrad.Side.RIGHT)]),
        ("max(0, 1 - z)**2", None, [(1.0, 2, lossgrad.Side.RIGHT)]),  # 2 Heaviside(0)**2 patched
        ("log(cosh(r))", None, []),
    ],
)
def test_kinks_found_and_classified(text, params, kinks):
    loss = custom.from_formula(text, params)
    assert [(k.at, k.order, k.side) for k in loss.kinks] == kinks


def test_props_are_measured():
    cauchy = custom.from_formula("c**2/2*log(1 + (r/c)**2)", {"c": 2.0})
    p = cauchy.props
    assert not p.convex and p.redescending and p.symmetric and not p.bounded and p.differentiability == 2
    assert p.lipschitz == pytest.approx(1.0)  # sup |r / (1 + r^2/c^2)| = c/2 = 1
    hinge = custom.from_formula("max(0, 1 - z)")
    assert hinge.props.class_calibrated is True and hinge.props.differentiability == 0
    assert hinge.props.basis == lossgrad.Basis.MARGIN


def test_stable_logistic_in_the_tails():
    loss = custom.from_formula("log(1 + exp(-z))")
    f = np.array([-800.0, -40.0, 0.0, 40.0, 800.0])
    y = np.ones_like(f)
    ref = lossgrad.get("logistic")
    for op in ("value", "grad", "hess"):
        np.testing.assert_allclose(getattr(loss, op)(y, f), getattr(ref, op)(y, f), rtol=1e-12, atol=1e-300)


# ------------------------------------------------------------------ through the library


def test_custom_loss_verify_estimator_and_xgboost():
    loss = custom.from_formula("delta**2*(sqrt(1+(r/delta)**2)-1)", params={"delta": 1.0}, name="my_pseudo_huber")
    report = lossgrad.verify(loss)
    assert report, str(report)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 + rng.normal(0, 0.1, 300)
    y[:15] += 40.0  # outliers
    from lossgrad.models import LinearRegressor

    ours = LinearRegressor(loss=loss).fit(X, y)
    ref = LinearRegressor(loss=lossgrad.get("pseudo_huber", delta=1.0)).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-6, atol=1e-8)
    assert np.max(np.abs(ours.coef_ - [1.0, -2.0, 0.5])) < 0.1
    import xgboost as xgb

    from lossgrad.integrations import xgboost as lgx

    obj = lgx.objective(loss, hessian="exact")
    g, h = obj.grad_hess(y, np.zeros_like(y))
    g_ref, h_ref = lossgrad.get("pseudo_huber").grad_hess(y, np.zeros_like(y))
    np.testing.assert_allclose(g, g_ref, rtol=1e-12)
    np.testing.assert_allclose(h, h_ref, rtol=1e-12)
    dtrain = xgb.DMatrix(X, y, base_margin=lgx.base_margin(loss, y))
    booster = xgb.train({"tree_method": "hist", "max_depth": 2, "eta": 0.3}, dtrain, 20, obj=obj)
    pred = booster.predict(dtrain)
    ref_obj = lgx.objective("pseudo_huber", hessian="exact")
    ref_booster = xgb.train({"tree_method": "hist", "max_depth": 2, "eta": 0.3}, dtrain, 20, obj=ref_obj)
    np.testing.assert_allclose(pred, ref_booster.predict(dtrain), rtol=1e-6, atol=1e-6)
    before = float(loss(y, lgx.base_margin(loss, y)))
    assert float(loss(y, pred)) < 0.8 * before


def test_loss_of_y_and_f_with_a_positive_target():
    # twice the Poisson deviance's per-sample part: 2 (y log y - y f - y + e^f); its f-derivatives
    # are twice those of lossgrad's poisson (e^f - y f), the y log y - y term being constant in f
    dev = custom.from_formula("2*(y*log(y) - y*f - y + exp(f))", target="positive", name="deviance")
    ref = lossgrad.get("poisson")
    y = np.array([0.5, 2.0, 3.0])
    f = np.array([0.1, -1.0, 2.0])
    np.testing.assert_allclose(dev.grad(y, f), 2 * ref.grad(y, f), rtol=1e-14)
    np.testing.assert_allclose(dev.hess(y, f), 2 * ref.hess(y, f), rtol=1e-14)
    assert dev.props.convex and dev.props.basis == lossgrad.Basis.LIKELIHOOD
    with pytest.raises(ValueError, match="y_true must contain positive values"):
        dev.value(np.array([-1.0]), np.array([0.0]))
    back = pickle.loads(pickle.dumps(dev))
    assert back._target == "positive" and back.name == "deviance"
    with pytest.raises(ValueError, match="target must be one of"):
        custom.from_formula("exp(f) - y*f", target="count")
    with pytest.raises(ValueError, match="applies to losses of y and f"):
        custom.from_formula("r**2", target="positive")


def test_custom_residual_loss_drives_robust_regression():
    from lossgrad.robust import MEstimator

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = X @ np.array([1.0, 2.0]) + rng.normal(0, 0.5, 200)
    y[:20] += 30.0
    mine = custom.from_formula(HUBER, {"delta": 1.345})
    ours = MEstimator(loss=mine).fit(X, y)
    ref = MEstimator(loss=lossgrad.get("huber", delta=1.345)).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-10)
    r = np.linspace(-4, 4, 81)
    np.testing.assert_allclose(mine.weight(np.zeros_like(r), r), lossgrad.get("huber", delta=1.345).weight(
        np.zeros_like(r), r), rtol=1e-14)


def test_array_namespaces_and_float32():
    import torch

    loss = custom.from_formula("where(abs(r) < delta, r**2/2, delta*(abs(r) - delta/2))", {"delta": 1.0})
    y = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float32)
    f = torch.tensor([-3.0, 0.5, 2.0], dtype=torch.float32)
    g = loss.grad(y, f)
    assert isinstance(g, torch.Tensor) and g.dtype == torch.float32
    assert g.tolist() == [-1.0, 0.5, 1.0]
    import jax.numpy as jnp

    h = loss.hess(jnp.zeros(3, dtype=jnp.float32), jnp.asarray([-3.0, 0.5, 2.0], dtype=jnp.float32))
    assert h.dtype == jnp.float32 and np.asarray(h).tolist() == [0.0, 1.0, 0.0]


def test_numba_path_equals_reference():
    loss = custom.from_formula("c**2/2*log(1 + (r/c)**2)", {"c": 1.5})
    rng = np.random.default_rng(1)
    y = rng.normal(size=50_000)
    f = y + rng.normal(0, 3, y.size)
    from lossgrad.custom._loss import numba_kernel

    with lossgrad.config_context(use_kernels=True, kernel_threshold=1000):
        fast = loss.grad_hess(y, f)
        f32 = loss.grad(y.astype(np.float32), f.astype(np.float32))
    assert numba_kernel(type(loss), "grad") is not None
    with lossgrad.config_context(use_kernels=False):
        ref = loss.grad_hess(y, f)
    for a, b in zip(fast, ref):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    assert f32.dtype == np.float32


def test_register_get_pickle_replace():
    loss = custom.from_formula("c**2*(1 - exp(-abs(r)/c))", {"c": 2.0}, name="test_custom_expabs", register=True)
    try:
        again = lossgrad.get("test_custom_expabs", c=3.0)
        assert again.c == 3.0 and again.grad(0.0, 1.0) == pytest.approx(3.0 * math.exp(-1 / 3))
        assert "test_custom_expabs" in {e.name for e in lossgrad.catalog(family="custom")}
    finally:
        custom.unregister("test_custom_expabs")
    assert "test_custom_expabs" not in {e.name for e in lossgrad.catalog()}
    back = pickle.loads(pickle.dumps(loss))
    assert back.grad(0.0, 1.5) == loss.grad(0.0, 1.5) and back.c == 2.0
    wider = dataclasses.replace(loss, c=4.0)
    assert wider.grad(0.0, 1.0) == pytest.approx(4.0 * math.exp(-1 / 4))
    with pytest.raises(ValueError, match="c must be > 0"):
        dataclasses.replace(loss, c=-1.0)
    with pytest.raises(ValueError, match="built-in"):
        custom.unregister("huber")


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "text, params, kwargs, error, match",
    [
        ("log(cosh(r)", None, {}, ValueError, "could not parse"),
        ("r**2 + k*r", None, {}, ValueError, "free symbol.*k.*not parameters"),
        ("foo(r)", None, {}, ValueError, "unknown function.*foo"),
        ("", None, {}, ValueError, "empty"),
        (3.0, None, {}, TypeError, "formula must be a string"),
        ("r + z", None, {}, ValueError, "mixes the variables"),
        ("x**2", None, {}, ValueError, "uses none of the variables"),
        ("r**2", {"r": 1.0}, {}, ValueError, "reserved"),
        ("d*r**2", {"d": float("nan")}, {}, ValueError, "finite real"),
        ("d*r**2", [1.0], {}, TypeError, "params must be a dict"),
        ("r < 1", None, {}, ValueError, "not a numeric expression"),
        ("r.real", None, {}, ValueError, "Attribute is not allowed"),
        ("abs(r)", None, {"declare": {"differentiability": 2}}, ValueError, "declared differentiability=2"),
        ("r**2", None, {"declare": {"convex": False}}, ValueError, "declared convex=False"),
        ("r**2", None, {"declare": {"speed": 1}}, ValueError, "declare: unknown"),
        ("r**2", None, {"variable": "q"}, ValueError, "variable must be"),
        ("sqrt(abs(r))", None, {}, ValueError, "failed verification.*kink"),
        ("max(0, 1 - z)", None, {"declare": {"differentiability": 1}}, ValueError,
         r"declared differentiability=1 but lossgrad measured 0 .*not differentiable.*\(1.0, 1\)"),
    ],
)
def test_bad_input(text, params, kwargs, error, match):
    with pytest.raises(error, match=match):
        custom.from_formula(text, params, **kwargs)


def test_a_pole_fails_verification_with_the_reason():
    # 1/r is infinite at 0: verify reports the kink it cannot honour
    with pytest.raises(ValueError, match="failed verification: kink_side"):
        custom.from_formula("sign(r)*r + 1/r", None)


# ------------------------------------------------------------------ the command line


def _cli(args):
    from typer.testing import CliRunner

    import lossgrad.cli.derive  # noqa: F401  (registers `lossgrad derive` on the app)
    from lossgrad.cli import app

    return CliRunner().invoke(app, args)


def test_cli_derive_text_and_json():
    import json

    res = _cli(["derive", "log(cosh(r))"])
    assert res.exit_code == 0, res.output
    assert "grad = tanh(r)" in res.output and "verify: PASS" in res.output and "kinks: none" in res.output
    res = _cli(["derive", "delta**2*(sqrt(1+(r/delta)**2)-1)", "-p", "delta=1.5", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["grad"] == "delta*r/sqrt(delta**2 + r**2)" and data["params"] == {"delta": 1.5}
    assert data["verify"]["passed"] is True and data["props"]["convex"] is True and data["kinks"] == []
    assert "\\sqrt" in data["latex"]["grad"]
    res = _cli(["derive", "max(0, 1 - z)", "--latex"])
    assert res.exit_code == 0 and "z = y f" in res.output and "\\max" in res.output


def test_cli_derive_exit_codes():
    res = _cli(["derive", "log(cosh(r)"])
    assert res.exit_code == 2 and "could not parse" in res.output
    res = _cli(["derive", "k*r**2"])
    assert res.exit_code == 2 and "free symbol" in res.output
    res = _cli(["derive", "d*r**2", "-p", "d=abc"])
    assert res.exit_code == 2 and "must be a number" in res.output
    res = _cli(["derive", "sign(r)*r + 1/r"])
    assert res.exit_code == 1 and "verify: FAIL" in res.output
    res = _cli(["derive", "2*(y*log(y) - y*f - y + exp(f))", "--target", "positive"])
    assert res.exit_code == 0 and "verify: PASS" in res.output
    res = _cli(["derive", "r**2", "--target", "positive"])
    assert res.exit_code == 2 and "applies to losses of y and f" in res.output
    res = _cli(["derive", "exp(f) - y*f", "--target", "count"])
    assert res.exit_code == 2 and "--target must be" in res.output
    res = _cli(["derive", "sign(r)*r + 1/r", "--no-check"])
    assert res.exit_code == 0 and "verify" not in res.output
