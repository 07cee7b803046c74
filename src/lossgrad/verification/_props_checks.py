"""Measuring every declared :class:`~lossgrad.Props` field of a pointwise loss.

Each function returns one :class:`Check` comparing the declaration with a measurement
on the probe grid (see :mod:`._probe`).  Tolerances are relative to the scale of the
measured quantity; they are loose enough for round-off, far too tight for a wrong
declaration.  Known limitation: strict convexity is measured on |t| <= 3 only, where
a strictly positive Hessian does not underflow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._props import Basis
from ._probe import Evaluator, Grid, Jump, fmt_point, near_kink
from ._report import Check

TIGHT = 0.01  # a declared constant must be reached within 1 %


def _finite_max(a: np.ndarray) -> float:
    a = a[~np.isnan(a)]
    return float(np.max(a)) if a.size else 0.0


def _where(grid: Grid, flat_index: int) -> str:
    j, i = np.unravel_index(flat_index, grid.F.shape)
    return fmt_point(grid.ys[j], grid.F[j, i])


def _pairs(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive grid points of every row: index arrays into the flattened grid."""
    m, T = grid.F.shape
    base = (np.arange(m)[:, None] * T + np.arange(T - 1)[None, :]).ravel()
    return base, base + 1


def _quotients(grid: Grid, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|A(i+1) - A(i)| / |f(i+1) - f(i)| on consecutive valid points, and their t."""
    i, k = _pairs(grid)
    F, A, V = grid.F.ravel(), A.ravel(), grid.V.ravel()
    ok = np.isfinite(V[i]) & np.isfinite(V[k]) & (F[i] != F[k])
    q = np.abs(A[k] - A[i]) / np.abs(F[k] - F[i])
    q = np.where(np.isnan(q), np.inf, q)
    return q[ok], np.tile(grid.t[:-1], grid.F.shape[0])[ok]


def _sup(values: np.ndarray, tt: np.ndarray, limit: float) -> float:
    sel = np.abs(tt) <= limit
    v = values[sel]
    return float(np.max(v)) if v.size else 0.0


def _sup_growth(values: np.ndarray, tt: np.ndarray) -> tuple[float, bool]:
    """(sup over the grid, whether it grows without bound).

    With S(T) the sup over |t| <= T: unbounded when S is infinite somewhere, or when
    the increment S(1e6) - S(1e4) is not negligible and at least half of
    S(1e4) - S(1e2): logarithmic and power growth keep their increments per two
    decades, a bounded function approaching its sup (c - c^2/t, c - 1/sqrt(t)) does not.
    """
    if values.size == 0:
        return 0.0, False
    total = float(np.max(values))
    if not np.isfinite(total):
        return total, True
    s2, s4 = _sup(values, tt, 1e2), _sup(values, tt, 1e4)
    late, early = total - s4, s4 - s2
    grows = late > 1e-9 * max(abs(total), 1e-300) and late >= 0.5 * early
    return total, bool(grows)


# ------------------------------------------------------------------ convexity


def measure_convexity(loss: Any, ev: Evaluator, grid: Grid, rng: np.random.Generator) -> dict[str, Any]:
    V, G, H, F = grid.V, grid.G, grid.H, grid.F
    notes: list[str] = []
    convex = True
    where = ""
    # (1) hess >= 0
    Hs = H[np.isfinite(H)]
    hscale = float(np.max(np.abs(Hs))) if Hs.size else 0.0
    if Hs.size and float(np.min(Hs)) < -1e-9 * max(hscale, 1e-300):
        convex = False
        k = int(np.nanargmin(np.where(np.isfinite(H), H, np.inf)))
        where = _where(grid, k)
        notes.append(f"hess={H.ravel()[k]:.3g}")
    # (2) the gradient is non-decreasing in y_pred
    i, k = _pairs(grid)
    Gf, Ff = G.ravel(), F.ravel()
    inc = (Gf[k] - Gf[i]) * np.sign(Ff[k] - Ff[i])
    tol = 1e-9 * (np.abs(Gf[k]) + np.abs(Gf[i])) + 1e-300
    bad = np.isfinite(inc) & (inc < -tol)
    if np.any(bad):
        convex = False
        b = int(np.flatnonzero(bad)[0])
        where = where or _where(grid, int(i[b]))
        notes.append("grad decreases")
    # (3) midpoint inequality on random chords (in y_pred)
    m, T = F.shape
    n_chords = 3000
    rows = rng.integers(0, m, n_chords)
    a = rng.integers(0, T, n_chords)
    b = rng.integers(0, T, n_chords)
    core_idx = np.flatnonzero(grid.core)
    a[: n_chords // 2] = rng.choice(core_idx, n_chords // 2)
    b[: n_chords // 2] = rng.choice(core_idx, n_chords // 2)
    f1, f2 = F[rows, a], F[rows, b]
    v1, v2 = V[rows, a], V[rows, b]
    fm = 0.5 * (f1 + f2)
    vm = ev("value", grid.ys[rows], fm)
    ok = np.isfinite(v1) & np.isfinite(v2) & np.isfinite(vm)
    gap = 0.5 * (v1 + v2) - vm
    chord_tol = 1e-10 * (np.abs(v1) + np.abs(v2)) + 1e-13 * max(_finite_max(np.abs(V[:, grid.core])), 1e-300)
    viol = ok & (gap < -chord_tol)
    if np.any(viol):
        convex = False
        c = int(np.flatnonzero(viol)[0])
        where = where or fmt_point(grid.ys[rows[c]], fm[c])
        notes.append(f"midpoint inequality violated by {-gap[c]:.3g}")
    # strictness: no flat piece on |t| <= 3
    window = np.abs(grid.t) <= 3.0
    window &= ~np.isin(grid.t, grid.kink_pts)
    strict = convex
    if convex and loss.props.has_hess:
        flat = grid.valid[:, window] & ~(H[:, window] > 0)
        runs = flat[:, 1:] & flat[:, :-1]
        if np.any(runs):
            strict = False
            j, i0 = np.unravel_index(int(np.flatnonzero(runs)[0]), runs.shape)
            notes.append(f"hess <= 0 on an interval near t={grid.t[window][i0]:.4g}")
    elif convex:
        sel = ok & (np.abs(loss._natural(grid.ys[rows], f1)) <= 3) & (np.abs(f1 - f2) > 0.05)
        strict = bool(np.all(gap[sel] > 0))
    return {
        "convex": convex,
        "strict": strict,
        "where": where,
        "notes": "; ".join(notes) or "hess >= 0, grad non-decreasing, 3000 chords ok",
    }


def check_convexity(loss: Any, measured: dict[str, Any]) -> list[Check]:
    p = loss.props
    return [
        Check("convex", p.convex == measured["convex"], declared=p.convex, measured=measured["convex"],
              where=measured["where"] if p.convex else measured["notes"]),
        Check("strictly_convex", p.strictly_convex == measured["strict"], declared=p.strictly_convex,
              measured=measured["strict"], where=measured["notes"]),
    ]


def check_strong_convexity(loss: Any, grid: Grid) -> Check:
    m = float(loss.props.strong_convexity)
    if loss.props.has_hess:
        H = grid.H[np.isfinite(grid.H) & grid.valid]
        measured = float(np.min(H)) if H.size else np.nan
        scale = float(np.max(np.abs(H))) if H.size else 0.0
    else:
        q, _ = _quotients(grid, grid.G if loss.props.has_grad else grid.V)
        measured, scale = (float(np.min(q)), float(np.max(q[np.isfinite(q)], initial=0.0))) if q.size else (np.nan, 0.0)
    if m > 0:
        tol = 1e-9 * max(1.0, m)
        ok = bool(measured >= m - tol and measured <= m * (1 + TIGHT) + tol)
        err = abs(measured - m) / m
    else:
        ok = bool(measured <= 1e-6 * max(scale, 1e-300))
        err = None
    return Check("strong_convexity", ok, error=err, tolerance=TIGHT if m > 0 else None, declared=m,
                 measured=measured, where="inf hess over the grid")


# ------------------------------------------------------------------ constants


def check_lipschitz(loss: Any, grid: Grid, jumps: list[Jump]) -> Check:
    L = loss.props.lipschitz
    if loss.props.has_grad:
        ok_pts = grid.valid
        Ga = np.abs(grid.G[ok_pts])
        Ga = np.where(np.isnan(Ga), np.inf, Ga)
        tt = np.broadcast_to(grid.t, grid.F.shape)[ok_pts]
        sup, grows = _sup_growth(Ga, tt)
    else:
        q, tt = _quotients(grid, grid.V)
        sup, grows = _sup_growth(q, tt)
    unbounded = grows or any(j.what == "value" for j in jumps)
    if L is None:
        return Check("lipschitz", bool(unbounded), declared=None, measured="unbounded" if unbounded else sup,
                     where="sup|grad| over |t| <= 1e6")
    ok = (not unbounded) and sup <= L * (1 + 1e-9) + 1e-12 and sup >= (1 - TIGHT) * L
    err = abs(sup - L) / L if L > 0 and np.isfinite(sup) else (0.0 if sup == L else np.inf)
    return Check("lipschitz", bool(ok), error=err, tolerance=TIGHT, declared=L,
                 measured="unbounded" if unbounded else sup, where="sup|grad| over |t| <= 1e6")


def check_smoothness(loss: Any, grid: Grid, jumps: list[Jump]) -> Check:
    S = loss.props.smoothness
    if not loss.props.has_grad:
        return Check("smoothness", S is None, declared=S, measured="no gradient")
    q, tq = _quotients(grid, grid.G)
    if loss.props.has_hess:
        sel = grid.valid
        Ha = np.abs(grid.H[sel])
        Ha = np.where(np.isnan(Ha), np.inf, Ha)
        th = np.broadcast_to(grid.t, grid.F.shape)[sel]
        sup_h, grows_h = _sup_growth(Ha, th)
    else:
        sup_h, grows_h = 0.0, False
    sup_q, grows_q = _sup_growth(q, tq)
    unbounded = grows_h or grows_q or any(j.what in ("value", "grad") for j in jumps)
    sup = max(sup_h, sup_q)
    if S is None:
        return Check("smoothness", bool(unbounded), declared=None, measured="unbounded" if unbounded else sup,
                     where="sup|hess| and grad difference quotients")
    reached = sup_h if loss.props.has_hess else sup_q
    ok = (not unbounded) and sup <= S * (1 + 1e-6) + 1e-12 and reached >= (1 - TIGHT) * S
    err = abs(sup - S) / S if S > 0 and np.isfinite(sup) else (0.0 if sup == S else np.inf)
    return Check("smoothness", bool(ok), error=err, tolerance=TIGHT, declared=S,
                 measured="unbounded" if unbounded else sup, where="sup|hess| and grad difference quotients")


# ------------------------------------------------------------------ shape of the curve


def check_symmetric(loss: Any, ev: Evaluator, grid: Grid) -> Check:
    p = loss.props
    if p.basis == Basis.DISTANCE:
        worst = 0.0
        where = ""
        for j, yj in enumerate(grid.ys):
            yy = np.full(grid.t.shape, yj)
            vm = ev("value", yy, np.asarray(loss._from_natural(yy, -grid.t), dtype=float))
            v = grid.V[j]
            ok = np.isfinite(v) & np.isfinite(vm)
            d = np.abs(v - vm)[ok] / (np.abs(v[ok]) + np.abs(vm[ok]) + 1e-12 * max(_finite_max(np.abs(v)), 1e-300))
            if d.size and float(np.max(d)) > worst:
                worst = float(np.max(d))
                where = f"r={grid.t[ok][int(np.argmax(d))]:.6g}"
        measured = worst <= 1e-8
        return Check("symmetric", measured == p.symmetric, error=worst, tolerance=1e-8, declared=p.symmetric,
                     measured=measured, where=where)
    if p.basis == Basis.MARGIN:
        pos = np.full(grid.t.shape, 1.0)
        s = ev("value", pos, np.asarray(loss._from_natural(pos, grid.t), dtype=float)) + ev(
            "value", pos, np.asarray(loss._from_natural(pos, -grid.t), dtype=float)
        )
        s = s[grid.core & np.isfinite(s)]
        spread = float(np.max(s) - np.min(s)) / max(float(np.max(np.abs(s))), 1e-300) if s.size else np.inf
        measured = spread <= 1e-9
        return Check("symmetric", measured == p.symmetric, error=spread, tolerance=1e-9, declared=p.symmetric,
                     measured=measured, where="phi(z) + phi(-z) over the core grid")
    return Check("symmetric", not p.symmetric, declared=p.symmetric, measured="not applicable to basis " + p.basis.value)


def check_bounded(loss: Any, grid: Grid) -> Check:
    V = grid.V
    sel = ~np.isnan(V)
    tt = np.broadcast_to(grid.t, V.shape)[sel]
    sup, grows = _sup_growth(V[sel], tt)
    measured = not grows
    return Check("bounded", measured == loss.props.bounded, declared=loss.props.bounded,
                 measured=measured, where=f"sup value {sup:.6g} over |t| <= 1e6")


def check_redescending(loss: Any, grid: Grid) -> Check:
    declared = loss.props.redescending
    if not loss.props.has_grad:
        return Check("redescending", not declared, declared=declared, measured="no gradient")
    Ga = np.abs(grid.G)
    far = np.broadcast_to(np.abs(grid.t) >= 1e5, Ga.shape) & grid.valid
    overall = _finite_max(np.where(np.isfinite(Ga), Ga, np.nan))
    tail = Ga[far]
    ratio = float(np.max(np.where(np.isnan(tail), np.inf, tail))) / max(overall, 1e-300) if tail.size else np.inf
    measured = ratio <= 1e-3
    return Check("redescending", measured == declared, error=ratio, tolerance=1e-3, declared=declared,
                 measured=measured, where="max|grad| at |t| >= 1e5 relative to sup|grad|")


def check_class_calibrated(loss: Any, ev: Evaluator) -> Check:
    declared = loss.props.class_calibrated
    if declared is None:
        ok = loss.props.basis != Basis.MARGIN
        return Check("class_calibrated", ok, declared=None,
                     measured="not a classification loss" if ok else "margin losses must declare calibration")
    neg = -1.0
    try:
        loss.value(np.array([-1.0]), np.asarray(loss._from_natural(np.array([1.0]), np.array([0.0])), dtype=float))
    except ValueError:
        neg = 0.0
    tail = np.geomspace(40.0, 1e4, 60)
    t = np.unique(np.concatenate([np.linspace(-40, 40, 8001), tail, -tail]))
    pos_y = np.full(t.shape, 1.0)
    f = np.asarray(loss._from_natural(pos_y, t), dtype=float)
    lp = ev("value", pos_y, f)
    ln = ev("value", np.full(t.shape, neg), f)
    measured = True
    worst_gap = np.inf
    where = ""
    for eta in (0.01, 0.1, 0.3, 0.45, 0.49, 0.51, 0.55, 0.7, 0.9, 0.99):
        c = eta * lp + (1 - eta) * ln
        c = np.where(np.isnan(c), np.inf, c)
        best = float(np.min(c))
        wrong = t * (2 * eta - 1) <= 0
        best_wrong = float(np.min(c[wrong]))
        gap = best_wrong - best
        if gap < worst_gap:
            worst_gap, where = gap, f"eta={eta}"
        if not gap > 1e-12 * (1.0 + abs(best)):
            measured = False
    return Check("class_calibrated", measured == declared, error=float(worst_gap), declared=declared,
                 measured=measured, where=f"smallest wrong-sign excess risk at {where}")


# ------------------------------------------------------------------ kinks and smoothness order


def check_differentiability(loss: Any, jumps: list[Jump]) -> list[Check]:
    p = loss.props
    kinds = {j.what for j in jumps}
    if "value" in kinds:
        measured: Any = -1
    elif not p.has_grad:
        measured = ">= 0"
    elif "grad" in kinds:
        measured = 0
    elif not p.has_hess:
        measured = ">= 1"
    elif "hess" in kinds:
        measured = 1
    else:
        measured = 2
    if isinstance(measured, str):
        ok = p.differentiability >= int(measured[-1])
    else:
        ok = p.differentiability == measured
    diff_check = Check("differentiability", ok, declared=p.differentiability, measured=measured,
                       where="; ".join(f"{j.what} jumps at t={j.at:.6g}" for j in jumps[:4]))
    # every declared kink is real, every jump is declared
    order_of = {"value": 0, "grad": 1, "hess": 2}
    problems = []
    for j in jumps:
        if not near_kink(j.at, loss.kinks, max_order=order_of[j.what]):
            problems.append(f"undeclared {j.what} jump at t={j.at:.6g}")
    for k in loss.kinks:
        what = {0: "value", 1: "grad", 2: "hess"}[k.order]
        if what == "grad" and not p.has_grad or what == "hess" and not p.has_hess:
            continue
        here = [j for j in jumps if abs(j.at - k.at) <= 1e-6 * max(1.0, abs(k.at))]
        if not any(j.what == what for j in here):
            problems.append(f"declared order-{k.order} kink at {k.at:g}: {what} does not jump")
        lower = [j.what for j in here if order_of[j.what] < k.order]
        if lower:
            problems.append(f"declared order-{k.order} kink at {k.at:g}: {lower[0]} jumps there")
    kinks_check = Check("kinks", not problems, declared=[(k.at, k.order, k.side.value) for k in loss.kinks],
                        measured=sorted({(round(j.at, 9), j.what) for j in jumps}), where="; ".join(problems[:4]))
    return [diff_check, kinks_check]
