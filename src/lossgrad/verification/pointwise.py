r"""``verify`` for pointwise losses: derivatives against finite differences, properties measured.

Derivative checks (``grad``, ``hess``) use 4th-order central differences
(:mod:`lossgrad.numdiff`) of ``value`` (resp. ``grad``) at the loss's example inputs,
at the steps h0 / 4^k (k = 0..3, h0 = eps^(1/5) max(1, |y_pred|)); per point the pair
of consecutive steps that agree best gives the estimate D and its error estimate e.
A point passes when

    |analytic - D| <= rtol * max(|D|, 1e-12 max|D|) + 2 e,

and points within the stencil (or 1 % of max(1, |t|)) of a declared kink are skipped.
The remaining checks: ``value_grad``/``grad_hess`` equal the separate methods,
``kink_side`` (the value returned at each kink is the declared one-sided limit,
obtained by linear extrapolation from t = at +- 1e-6 and +- 2e-6), ``weight``
(psi / r and its limit at r = 0), ``finite`` (no NaN/inf derivative where the value is
finite), every :class:`~lossgrad.Props` field (see :mod:`._props_checks`), ``dtype``
(float32 in, float32 out, close to float64) and ``no_mutation``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import numdiff
from .._core import NotDifferentiableError, ResidualLoss, Scaled
from .._props import Side
from . import _props_checks as P
from ._probe import Evaluator, build_grid, find_jumps, fmt_point
from ._report import Check, VerifyReport

__all__ = ["verify_pointwise"]

_LEVELS = 4


def verify_pointwise(loss: Any, *, n: int = 200, seed: int = 0, rtol: float = 1e-6) -> VerifyReport:
    """Run every pointwise check on ``loss``; see the module docstring."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rng = np.random.default_rng(seed)
        y, f = (np.asarray(a, dtype=float) for a in loss._example_inputs(rng, n))
        ev = Evaluator(loss)
        checks: list[Check] = []

        def run(name: str, fn: Any, *args: Any) -> Any:
            # a check that raises is a failed check, not a crashed verify
            try:
                out = fn(*args)
            except Exception as exc:  # noqa: BLE001
                checks.append(Check(name, False, measured=f"raised {type(exc).__name__}: {exc}"))
                return None
            if isinstance(out, Check):
                checks.append(out)
            elif isinstance(out, list):
                checks.extend(out)
            return out

        run("has_grad", _check_has, loss, y, f)
        if loss.props.has_grad:
            run("grad", _check_derivative, loss, ev, y, f, "grad", "value", rtol)
        if loss.props.has_hess:
            run("hess", _check_derivative, loss, ev, y, f, "hess", "grad", rtol)
        run("value_grad", _check_joint, loss, y, f)
        run("kink_side", _check_kink_side, loss, ev, y)
        base = loss.loss if isinstance(loss, Scaled) else loss
        if isinstance(base, ResidualLoss) and loss.props.has_grad:
            run("weight", _check_weight, loss, ev, y, f)
        grid = build_grid(loss, ev, y)
        run("finite", _check_finite, loss, grid)
        jumps = []
        for what in ("value", "grad", "hess"):
            if ev.available[what]:
                jumps += find_jumps(loss, ev, grid, what)[0]
        convexity = P.measure_convexity(loss, ev, grid, rng)
        run("convex", P.check_convexity, loss, convexity)
        run("strong_convexity", P.check_strong_convexity, loss, grid)
        run("lipschitz", P.check_lipschitz, loss, grid, jumps)
        run("smoothness", P.check_smoothness, loss, grid, jumps)
        run("differentiability", P.check_differentiability, loss, jumps)
        run("symmetric", P.check_symmetric, loss, ev, grid)
        run("bounded", P.check_bounded, loss, grid)
        run("redescending", P.check_redescending, loss, grid)
        run("class_calibrated", P.check_class_calibrated, loss, ev)
        run("dtype", _check_dtype, loss, y, f)
        run("no_mutation", _check_no_mutation, loss, y, f)
    return VerifyReport(loss=_label(loss), checks=tuple(checks))


def _label(loss: Any) -> str:
    return repr(loss) if not isinstance(loss, Scaled) else f"{loss.k:g} * {loss.loss!r}"


# ------------------------------------------------------------------ derivatives


def _away_from_kinks(loss: Any, y: np.ndarray, f: np.ndarray, h0: np.ndarray) -> np.ndarray:
    keep = np.ones(f.shape, dtype=bool)
    t = np.asarray(loss._natural(y, f), dtype=float)
    t_lo = np.asarray(loss._natural(y, f - 2.5 * h0), dtype=float)
    t_hi = np.asarray(loss._natural(y, f + 2.5 * h0), dtype=float)
    lo, hi = np.minimum(t_lo, t_hi), np.maximum(t_lo, t_hi)
    for k in loss.kinks:
        radius = 0.01 * max(1.0, abs(k.at))
        keep &= ~((lo <= k.at) & (k.at <= hi)) & (np.abs(t - k.at) > radius)
    return keep


def fd_estimate(fun: Any, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central4 estimate of fun' at f with its error estimate (see the module docstring).

    The error estimate is the difference between the estimates at consecutive steps
    plus the round-off bound 3 eps max|fun| / h of the five-point stencil.
    """
    h0 = numdiff.default_step(f, "central4")
    mag = np.abs(fun(f))
    D = np.stack([numdiff.derivative(fun, f, method="central4", step=h0 / 4.0**k) for k in range(_LEVELS)])
    E = np.abs(np.diff(D, axis=0))
    E += 3.0 * np.finfo(float).eps * mag / (h0 / 4.0 ** np.arange(1, _LEVELS)[:, None])
    E = np.where(np.isfinite(E), E, np.inf)
    best = np.argmin(E, axis=0)
    idx = np.arange(f.size)
    return D[best + 1, idx], E[best, idx]


def _check_derivative(loss: Any, ev: Evaluator, y: np.ndarray, f: np.ndarray, what: str, of: str, rtol: float) -> Check:
    keep = _away_from_kinks(loss, y, f, numdiff.default_step(f, "central4"))
    yk, fk = y[keep], f[keep]
    analytic = ev(what, yk, fk)
    est, err = fd_estimate(lambda ff: ev(of, yk, ff), fk)
    scale_all = np.abs(est[np.isfinite(est)])
    # a derivative that vanishes is compared on the scale of the function it differentiates
    floor = np.maximum(1e-12 * (float(np.max(scale_all)) if scale_all.size else 1.0),
                       1e-6 * np.abs(ev(of, yk, fk)) / np.maximum(1.0, np.abs(fk)))
    scale = np.maximum(np.abs(est), floor) + 1e-300
    resolved = np.isfinite(est) & (err <= 1e-2 * scale)
    # the error beyond what the finite differences can resolve, relative to the derivative
    excess = np.maximum(np.abs(analytic - est) - 2.0 * err, 0.0) / scale
    excess = np.where(resolved, np.where(np.isnan(excess), np.inf, excess), 0.0)
    bad = excess > rtol
    n_ok = int(np.sum(resolved))
    enough = n_ok >= max(1, f.size // 4)
    worst = int(np.argmax(excess)) if excess.size else 0
    where = fmt_point(yk[worst], fk[worst]) if excess.size else ""
    if not enough:
        where = f"only {n_ok} of {f.size} points resolved by finite differences; " + where
    return Check(what, bool(enough and not np.any(bad)), error=float(np.max(excess)) if excess.size else None,
                 tolerance=rtol, declared=f"closed-form {what}", measured=f"FD of {of} at {n_ok} points", where=where)


def _check_has(loss: Any, y: np.ndarray, f: np.ndarray) -> list[Check]:
    out = []
    for what in ("grad", "hess"):
        declared = getattr(loss.props, "has_" + what)
        try:
            getattr(loss, what)(y, f)
            raised = False
        except NotDifferentiableError:
            raised = True
        out.append(Check("has_" + what, declared != raised, declared=declared, measured=not raised))
    return out


def _close(a: Any, b: Any, rtol: float = 1e-12) -> tuple[bool, float]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return False, np.inf
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    d = np.where(same, 0.0, np.abs(a - b) / (np.abs(b) + 1e-300))
    d = np.where(np.isnan(d), np.inf, d)
    err = float(np.max(d)) if d.size else 0.0
    return err <= rtol, err


def _check_joint(loss: Any, y: np.ndarray, f: np.ndarray) -> list[Check]:
    p = loss.props
    out = []
    pairs = [("value_grad", ("value", "grad")), ("grad_hess", ("grad", "hess"))]
    if hasattr(loss, "value_grad_hess"):
        pairs.append(("value_grad_hess", ("value", "grad", "hess")))
    for name, parts in pairs:
        if ("grad" in parts and not p.has_grad) or ("hess" in parts and not p.has_hess):
            continue
        w = np.linspace(0.5, 2.0, f.size)
        joint = getattr(loss, name)(y, f, sample_weight=w)
        errs = [_close(j, getattr(loss, part)(y, f, sample_weight=w)) for j, part in zip(joint, parts)]
        ok = len(joint) == len(parts) and all(e[0] for e in errs)
        out.append(Check(name, ok, error=max(e[1] for e in errs), tolerance=1e-12,
                         declared=f"equals {', '.join(parts)}", measured="weighted, separate calls"))
    return out


# ------------------------------------------------------------------ kinks, weight, finiteness


def _check_kink_side(loss: Any, ev: Evaluator, y: np.ndarray) -> Check:
    problems = []
    worst = 0.0
    for k in loss.kinks:
        ys = _exact_targets(loss, y, k.at)
        what = ("value", "grad", "hess")[k.order]
        if not ev.available[what]:
            continue
        d = 1e-6 * max(1.0, abs(k.at))
        offs = np.array([0.0, -d, -2 * d, d, 2 * d, -1e-2 * max(1.0, abs(k.at)), 1e-2 * max(1.0, abs(k.at))])
        for yj in ys:
            yy = np.full(offs.shape, yj)
            a = ev(what, yy, np.asarray(loss._from_natural(yy, k.at + offs), dtype=float))
            got, left, right = a[0], 2 * a[1] - a[2], 2 * a[3] - a[4]
            if not np.isfinite(got):  # a pole: the declared side(s) must diverge towards it
                sides = {Side.LEFT: [(1, 5)], Side.RIGHT: [(3, 6)], Side.MIDPOINT: [(1, 5), (3, 6)]}[k.side]
                ok = all(abs(a[i]) >= 1.5 * abs(a[far]) and np.sign(a[i]) == np.sign(got) for i, far in sides)
                if not ok:
                    problems.append(f"{what}={got} at kink {k.at:g} but the {k.side.value} side stays bounded")
                continue
            expected = {Side.LEFT: left, Side.RIGHT: right, Side.MIDPOINT: 0.5 * (left + right)}[k.side]
            tol = 1e-3 * abs(left - right) + 1e-7 * (abs(left) + abs(right)) + 1e-12
            err = abs(got - expected)
            worst = max(worst, err / (abs(left - right) + 1e-300) if err > tol else 0.0)
            if not err <= tol:
                problems.append(
                    f"{what} at kink {k.at:g} (y_true={yj:g}) returns {got:.6g}; limits left {left:.6g}, "
                    f"right {right:.6g}; declared {k.side.value}"
                )
    return Check("kink_side", not problems, error=worst, declared=[(k.at, k.order, k.side.value) for k in loss.kinks],
                 measured="one-sided limits", where="; ".join(problems[:3]))


def _exact_targets(loss: Any, y: np.ndarray, at: float) -> np.ndarray:
    """Up to two y_true values whose y_pred = _from_natural(y, at) maps back to ``at`` exactly."""
    candidates = np.unique(np.concatenate([[0.0, 1.0, -1.0], y]))
    valid = []
    for c in candidates:
        try:
            loss.value(np.array([c]), np.asarray(loss._from_natural(np.array([c]), np.array([at])), dtype=float))
        except ValueError:
            continue
        back = np.asarray(loss._natural(np.array([c]), np.asarray(loss._from_natural(np.array([c]), np.array([at])))))
        if float(back[0]) == at:
            valid.append(c)
        if len(valid) == 2:
            break
    return np.array(valid if valid else y[:1])


def _check_weight(loss: Any, ev: Evaluator, y: np.ndarray, f: np.ndarray) -> Check:
    r = f - y
    nz = r != 0
    w = np.asarray(loss.weight(y[nz], f[nz]), dtype=float)
    expect = ev("grad", y[nz], f[nz]) / r[nz]
    ok_nz, err = _close(w, expect, rtol=1e-10)
    problems = [] if ok_nz else [f"weight != grad / r (rel. error {err:.3g})"]
    # the limit at r = 0, from both sides
    zero = np.zeros(1)
    w0 = float(np.asarray(loss.weight(zero, zero), dtype=float).reshape(()))
    limits, slack = [], []
    for s in (-1.0, 1.0):
        deltas = s * np.array([1e-4, 1e-9, 1e-12])
        q = ev("grad", np.zeros(3), deltas) / deltas
        if abs(q[2]) > 1e3 and abs(q[2]) > 2 * abs(q[0]):
            limits.append(np.sign(q[2]) * np.inf)
            slack.append(0.0)
        else:  # q(1e-12), give or take how far q still moved since 1e-9
            limits.append(q[2])
            slack.append(2 * abs(q[1] - q[2]) + 1e-6 * max(1.0, abs(q[2])))
    candidates = list(zip(limits, slack))
    if np.all(np.isfinite(limits)):
        candidates.append((0.5 * (limits[0] + limits[1]), max(slack)))
    match = any((c == w0) or (np.isfinite(c) and abs(c - w0) <= tol) for c, tol in candidates)
    if not match:
        problems.append(f"weight at r=0 is {w0:g}; the one-sided limits of psi(r)/r are {limits[0]:g}, {limits[1]:g}")
    return Check("weight", not problems, error=err, tolerance=1e-10, declared="psi(r)/r, limit at 0",
                 measured=f"limits at 0: {limits[0]:g}, {limits[1]:g}; weight(0)={w0:g}", where="; ".join(problems))


def _check_finite(loss: Any, grid: Any) -> Check:
    """NaN nowhere in the domain; grad and hess finite wherever the value is (poles at kinks aside)."""
    problems = []
    at_kink = np.broadcast_to(np.isin(grid.t, grid.kink_pts), grid.F.shape)
    fin_v = np.isfinite(grid.V)
    if grid.in_domain and np.any(np.isnan(grid.V)):
        k = int(np.flatnonzero(np.isnan(grid.V))[0])
        problems.append(f"value NaN at {_grid_point(grid, k)}")
    for name, A, avail in (("grad", grid.G, loss.props.has_grad), ("hess", grid.H, loss.props.has_hess)):
        if not avail:
            continue
        bad = fin_v & ~np.isfinite(A) & ~at_kink
        if np.any(bad):
            k = int(np.flatnonzero(bad)[0])
            problems.append(f"{name}={A.ravel()[k]} at {_grid_point(grid, k)} where the value is finite")
    return Check("finite", not problems, declared="finite where the value is finite",
                 measured=f"{grid.F.size} grid points up to |t| = 1e6", where="; ".join(problems[:3]))


def _grid_point(grid: Any, k: int) -> str:
    j, i = np.unravel_index(k, grid.F.shape)
    return fmt_point(grid.ys[j], grid.F[j, i])


# ------------------------------------------------------------------ dtype, mutation


def _methods(loss: Any) -> list[str]:
    p = loss.props
    names = ["value"] + (["grad"] if p.has_grad else []) + (["hess"] if p.has_hess else [])
    base = loss.loss if isinstance(loss, Scaled) else loss
    if isinstance(base, ResidualLoss) and p.has_grad:
        names.append("weight")
    return names


def _check_dtype(loss: Any, y: np.ndarray, f: np.ndarray) -> Check:
    y32, f32 = y.astype(np.float32), f.astype(np.float32)
    problems = []
    worst = 0.0
    for m in _methods(loss):
        out32 = getattr(loss, m)(y32, f32)
        if getattr(out32, "dtype", None) != np.float32:
            problems.append(f"{m} returns {getattr(out32, 'dtype', type(out32).__name__)} for float32 input")
            continue
        ref = np.asarray(getattr(loss, m)(y32.astype(float), f32.astype(float)), dtype=float)
        a = np.asarray(out32, dtype=float)
        both = np.isfinite(ref) & np.isfinite(a)
        same_inf = (a == ref) | ~np.isfinite(ref) & (np.abs(ref) > 3e38)
        floor = 1e-3 * float(np.median(np.abs(ref[np.isfinite(ref)]))) if np.any(np.isfinite(ref)) else 0.0
        rel = np.abs(a - ref)[both] / (np.abs(ref[both]) + floor + 1e-30)
        e = float(np.max(rel)) if rel.size else 0.0
        worst = max(worst, e)
        if e > 1e-3 or np.any(~both & ~same_inf):
            problems.append(f"{m}: float32 differs from float64 (rel. {e:.2g})")
    return Check("dtype", not problems, error=worst, tolerance=1e-3, declared="float32 in -> float32 out",
                 measured=", ".join(_methods(loss)), where="; ".join(problems))


def _check_no_mutation(loss: Any, y: np.ndarray, f: np.ndarray) -> Check:
    w = np.linspace(0.5, 1.5, f.size)
    y0, f0, w0 = y.copy(), f.copy(), w.copy()
    for m in _methods(loss):
        getattr(loss, m)(y, f, sample_weight=w)
    loss(y, f, sample_weight=w)
    for name in ("value_grad", "grad_hess"):
        try:
            getattr(loss, name)(y, f, sample_weight=w)
        except NotDifferentiableError:
            pass
    changed = [n for n, a, b in (("y_true", y, y0), ("y_pred", f, f0), ("sample_weight", w, w0)) if not np.array_equal(a, b)]
    return Check("no_mutation", not changed, declared="inputs untouched", measured="changed: " + ", ".join(changed) if changed else "untouched")
