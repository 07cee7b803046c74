"""Stability on an extreme grid: value, grad and hess against mpmath at 50 digits.

``REFERENCES`` holds naive formulas of the transcendental pointwise losses, written
here independently of lossgrad (straight from the math, no stabilising tricks beyond
log1p: mpmath's precision does that job).  Derivatives of the references come from
``mpmath.diff``, at 50 significant digits or more: the precision doubles until two
evaluations 40 digits apart agree to 30 digits (a Hessian of size e^-700 next to terms
of size 1 needs ~350).

Accuracy rule ("a few ulps"): with q the true quantity at the input x (exactly
representable), a computed c passes when

    |c - q| <= 16 eps (|q| + |x q'(x)|),

i.e. c is the exact answer for an input within a few ulps of x (the |x q'| term is the
quantity's own sensitivity to the last bits of x; without it no formula could be
accurate near a zero of q).  Where q underflows (|q| below the smallest normal number)
c must be within that smallest normal of q; where q overflows c must be inf of the
same sign; where q is finite c must be finite.
"""

from __future__ import annotations

import dataclasses
import functools

import mpmath as mp
import numpy as np
import pytest

import lossgrad
from lossgrad import _xp

mp.mp.dps = 50

# ------------------------------------------------------------------ the references


def _log1pexp(x):
    # log(1 + e^x); log1p keeps e^x visible next to 1 where e^x < 10^-50
    return mp.log1p(mp.exp(x))


def _bce_logit(p, y, f):
    yy = y * (1 - p["label_smoothing"]) + p["label_smoothing"] / 2
    return p["pos_weight"] * yy * _log1pexp(-f) + (1 - yy) * _log1pexp(f)


def _bce_prob(p, y, f):
    yy = y * (1 - p["label_smoothing"]) + p["label_smoothing"] / 2
    out = mp.mpf(0)
    if yy != 0:
        out -= p["pos_weight"] * yy * mp.log(f)
    if yy != 1:
        out -= (1 - yy) * mp.log(1 - f)
    return out


def _focal(p, y, f):
    z = (2 * y - 1) * f
    q = 1 / (1 + mp.exp(z))  # 1 - sigmoid(z)
    alpha = 1 if p["alpha"] is None else (p["alpha"] if y == 1 else 1 - p["alpha"])
    return alpha * q ** p["gamma"] * _log1pexp(-z)  # -log sigmoid(z) = log(1 + e^-z)


def _smoothed_quantile(p, y, f):
    r, h, tau = f - y, p["h"], p["tau"]
    if p["kernel"] == "gaussian":
        return -r * (tau - mp.ncdf(r / h)) + h * mp.npdf(r / h)
    return (1 - tau) * r + h * _log1pexp(-r / h)


def _tweedie(p, y, f):
    pw = p["power"]
    mu = mp.exp(f)
    if pw == 0:
        return (mu - y) ** 2 / 2
    if pw == 1:
        return mu - y * f
    if pw == 2:
        return f + y / mu
    return mu ** (2 - pw) / (2 - pw) - y * mu ** (1 - pw) / (1 - pw)


REFERENCES = {
    "log_cosh": lambda p, y, f: mp.log(mp.cosh(f - y)),
    "pseudo_huber": lambda p, y, f: p["delta"] ** 2 * (mp.sqrt(1 + ((f - y) / p["delta"]) ** 2) - 1),
    "smoothed_quantile": _smoothed_quantile,
    "welsch": lambda p, y, f: p["c"] ** 2 / 2 * (1 - mp.exp(-(((f - y) / p["c"]) ** 2))),
    "cauchy": lambda p, y, f: p["c"] ** 2 / 2 * mp.log(1 + ((f - y) / p["c"]) ** 2),
    "fair": lambda p, y, f: p["c"] ** 2 * (abs(f - y) / p["c"] - mp.log(1 + abs(f - y) / p["c"])),
    "poisson": lambda p, y, f: mp.exp(f) - y * f,
    "gamma": lambda p, y, f: f + y * mp.exp(-f),
    "tweedie": _tweedie,
    "logistic": lambda p, y, f: _log1pexp(-y * f),
    "exponential": lambda p, y, f: mp.exp(-y * f),
    "sigmoid_loss": lambda p, y, f: 1 / (1 + mp.exp(y * f)),
    "binary_cross_entropy": lambda p, y, f: (_bce_logit if p["from_logits"] else _bce_prob)(p, y, f),
    "binary_focal": _focal,
}


def _targets(loss):
    """y_true values to probe, chosen by family (the residual losses only need y = 0)."""
    name = loss.name
    if loss.props.basis == lossgrad.Basis.DISTANCE:
        return [0.0]
    if name in ("logistic", "exponential", "sigmoid_loss"):
        return [-1.0, 1.0]
    if name in ("binary_cross_entropy",):
        return [0.0, 1.0, 0.3]
    if name == "binary_focal":
        return [0.0, 1.0]
    if name == "gamma" or (name == "tweedie" and loss.power >= 2):
        return [0.5, 3.0]
    return [0.0, 2.5]


F64 = [s * m for m in (1e-8, 1e-3, 1.0, 30.0, 700.0, 1e4) for s in (-1.0, 1.0)]
F32 = [s * m for m in (1e-3, 1.0, 80.0, 1e3) for s in (-1.0, 1.0)]
P_GRID = [1e-12, 1e-8, 1e-3, 0.3, 0.5, 0.999, 1 - 2.0**-20]  # probabilities (exact in float32 too)


def _registered_cases():
    names = {e.name for e in lossgrad.catalog(shape="pointwise")}
    cases = []
    for name in sorted(set(REFERENCES) & names):
        for params in lossgrad._registry.entry(name).variants:
            for dtype in (np.float64, np.float32):
                cases.append(pytest.param(name, params, dtype, id=f"{name}-{params}-{np.dtype(dtype).name}"))
    return cases


def _truth(g, x):
    """The quantity and its first three derivatives at x, to at least 30 correct digits.

    Evaluated at 50 digits and again 40 digits higher; where the two disagree (a
    derivative of size e^-700 next to terms of size 1 is lost at 50 digits) the same at
    400, then 1600 digits.  Below 1e-340 only absolute accuracy matters to a double.
    """
    tiny = mp.mpf(10) ** -340
    for dps in (50, 400, 1600):
        out = []
        for extra in (0, 40):
            with mp.workdps(dps + extra):
                out.append([g(x)] + [mp.diff(g, x, k) for k in (1, 2, 3)])
        lo, hi = out
        # (an exact 0 at low precision is a cancellation, not an answer)
        if all((b != 0 and abs(a - b) <= mp.mpf(10) ** -30 * abs(b)) or (max(abs(a), abs(b)) < tiny and dps >= 400)
               for a, b in zip(lo, hi)):
            break
        if dps >= 400 and all(abs(b) < mp.mpf(10) ** -310 for a, b in zip(lo, hi) if abs(a - b) > mp.mpf(10) ** -30 * abs(b)):
            break  # what is still unresolved lies below 1e-310: far below a float64's normal range
    return hi


@functools.lru_cache(maxsize=None)
def _cached_truth(name, params_key, y, x):
    p = dataclasses.asdict(lossgrad.get(name, **dict(params_key)))
    return _truth(lambda t: REFERENCES[name](p, mp.mpf(y), t), mp.mpf(x))


def _check(computed, true, slope, dtype, what):
    info = np.finfo(dtype)
    if not mp.isfinite(true) or abs(true) > info.max:
        sign = 1 if true > 0 else -1
        return np.isinf(computed) and np.sign(computed) == sign or abs(computed) >= info.max / 2 and np.sign(computed) == sign
    if not np.isfinite(computed):
        return False
    floor = max(info.tiny, 1e-300)  # the references resolve float64 quantities down to ~1e-310
    if abs(true) < floor:
        return abs(mp.mpf(float(computed)) - true) <= 2 * floor + 16 * info.eps * abs(slope)
    tol = 16 * info.eps * (abs(true) + abs(slope))
    return abs(mp.mpf(float(computed)) - true) <= tol


@pytest.mark.parametrize(("name", "params", "dtype"), _registered_cases())
def test_extreme_grid_matches_mpmath(name, params, dtype):
    loss = lossgrad.get(name, **params)
    prob_form = name == "binary_cross_entropy" and not loss.from_logits
    grid = P_GRID if prob_form else (F64 if dtype == np.float64 else F32)
    failures = []
    for y in _targets(loss):
        for f0 in grid:
            f = dtype(f0)
            x = mp.mpf(float(f))
            true = _cached_truth(name, tuple(sorted(params.items())), y, float(f))
            got = loss.value_grad_hess(np.array([y], dtype=dtype), np.array([f], dtype=dtype))
            for k, what in enumerate(("value", "grad", "hess")):
                c = got[k][0]
                assert not isinstance(true[k], mp.mpc), (y, f0, what)
                assert c.dtype == dtype
                if not _check(c, true[k], x * true[k + 1], dtype, what):
                    failures.append(f"{what}(y={y}, f={f0:g}) = {c!r}, true {mp.nstr(true[k], 17)}")
    assert not failures, f"{loss!r}, {np.dtype(dtype).name}:\n" + "\n".join(failures)


def test_every_listed_transcendental_loss_is_registered_and_tested():
    registered = {e.name for e in lossgrad.catalog(shape="pointwise")}
    tested = {c.values[0] for c in _registered_cases()}
    assert tested == set(REFERENCES) & registered
    missing = set(REFERENCES) - registered
    assert not missing, f"references without a registered loss: {sorted(missing)}"


@pytest.mark.parametrize("offset", [0.0, 300.0, -700.0, 1e4])
def test_softmax_family_probabilities_at_any_row_offset(offset):
    """p = softmax(f) of the reference (every softmax-family loss shares it) within 8 ulps of
    mpmath whatever the common offset of the row: p is never computed as exp(f - lse),
    whose rounding of lse (of the size of the logits) costs 18 ulps at an offset of 300."""
    from lossgrad.losses._softmax_family import softmax_parts

    rng = np.random.default_rng(7)
    f = rng.normal(0, 2, (64, 6)) + offset
    p = softmax_parts(_xp.namespace(f), f)["p"]
    grad = lossgrad.CrossEntropy().grad(np.zeros(64), f)
    for i in range(f.shape[0]):
        row = [mp.mpf(float(x)) for x in f[i]]
        m = max(row)
        total = mp.fsum(mp.exp(x - m) for x in row)
        exact = np.array([float(mp.exp(x - m) / total) for x in row])
        assert np.all(np.abs(p[i] - exact) <= 8 * np.spacing(exact)), (i, (p[i] - exact) / np.spacing(exact))
        exact[0] -= 1.0
        assert np.all(np.abs(grad[i] - exact) <= 4 * np.spacing(1.0)), i
