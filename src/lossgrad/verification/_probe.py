"""Shared machinery of the pointwise checks: safe evaluation, the probe grid, jump finding.

The probe grid lives in the loss's *natural* variable t (r, z or f, see
``PointwiseLoss._natural``): a fine core grid on [-R, R] (R = max(10, 2 max|kink|),
spacing R/1000), a logarithmic tail out to |t| = 1e6, and points at +-1e-7 around
every declared kink.  Each row of the grid uses one y_true from the loss's own
example inputs and y_pred = ``_from_natural(y_true, t)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _xp
from .._config import config_context
from .._core import NotDifferentiableError, Scaled

CORE_POINTS = 2001
TAIL_MAX = 1e6
KINK_OFFSET = 1e-7


def fmt_point(y: Any, f: Any) -> str:
    return f"y_true={float(y):.6g}, y_pred={float(f):.6g}"


class Evaluator:
    """Calls the loss on float64 NumPy arrays and returns float64 arrays.

    A call whose inputs leave the loss's domain (a ValueError from the input checks,
    e.g. a probability stencil point outside [0, 1]) is repeated with the checks off,
    and the points that the loss's own domain checks reject come back as NaN (found
    by splitting the batch until each failing piece is one point);
    ``needed_fallback`` records that this happened.
    """

    def __init__(self, loss: Any) -> None:
        self.loss = loss
        self.base = loss.loss if isinstance(loss, Scaled) else loss
        props = loss.props
        self.available = {"value": True, "grad": props.has_grad, "hess": props.has_hess}
        self.needed_fallback = False

    def __call__(self, what: str, y: np.ndarray, f: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        f = np.asarray(f, dtype=float)
        if not self.available[what] or f.size == 0:
            return np.full(f.shape, np.nan)
        method = getattr(self.loss, what)
        try:
            return np.asarray(method(y, f), dtype=float).reshape(f.shape)
        except NotDifferentiableError:
            return np.full(f.shape, np.nan)
        except ValueError:
            self.needed_fallback = True
        inside = self.inside(y, f)
        with config_context(assume_valid=True):
            try:
                out = np.asarray(method(y, f), dtype=float).reshape(f.shape)
            except (ValueError, FloatingPointError, ZeroDivisionError):
                return np.full(f.shape, np.nan)
        return np.where(inside, out, np.nan)

    def inside(self, y: np.ndarray, f: np.ndarray) -> np.ndarray:
        """Elementwise: do (y, f) pass the loss's own target and prediction checks?"""
        yf, ff = np.broadcast_to(y, f.shape).ravel(), f.ravel()
        xp = _xp.namespace(ff)
        ok = np.zeros(ff.size, dtype=bool)

        def passes(lo: int, hi: int) -> bool:
            try:
                if not np.all(np.isfinite(ff[lo:hi])):
                    return False
                self.base._check_target(xp, yf[lo:hi])
                self.base._check_prediction(xp, ff[lo:hi])
            except ValueError:
                return False
            return True

        stack = [(0, ff.size)]
        while stack:
            lo, hi = stack.pop()
            if passes(lo, hi):
                ok[lo:hi] = True
            elif hi - lo > 1:
                mid = (lo + hi) // 2
                stack += [(lo, mid), (mid, hi)]
        return ok.reshape(f.shape)


def pick_targets(y: np.ndarray, k: int = 3) -> np.ndarray:
    """Up to k representative y_true values taken from the example inputs."""
    u = np.unique(y)
    if u.size <= k:
        return u
    qs = np.quantile(y, np.linspace(0.1, 0.9, k), method="nearest")
    return np.unique(qs)


@dataclass
class Grid:
    """Value, grad and hess on the probe grid: arrays of shape (rows, points)."""

    t: np.ndarray  # (T,) natural variable, sorted
    ys: np.ndarray  # (m,) y_true of each row
    F: np.ndarray  # (m, T) y_pred
    V: np.ndarray
    G: np.ndarray
    H: np.ndarray
    R: float  # half-width of the core grid
    kink_pts: np.ndarray  # points of t that are exactly at a declared kink
    in_domain: bool  # False when some grid point needed the unchecked fallback

    @property
    def core(self) -> np.ndarray:
        return np.abs(self.t) <= self.R

    @property
    def valid(self) -> np.ndarray:
        return ~np.isnan(self.V)


def core_radius(kinks: Any) -> float:
    ats = [abs(k.at) for k in kinks]
    return max(10.0, 2.0 * max(ats, default=0.0))


def build_grid(loss: Any, ev: Evaluator, y_examples: np.ndarray) -> Grid:
    kinks = tuple(loss.kinks)
    R = core_radius(kinks)
    tail = np.geomspace(R, TAIL_MAX, 121)
    at = np.array([k.at for k in kinks], dtype=float)
    around = np.concatenate([at + s * KINK_OFFSET * np.maximum(1.0, np.abs(at)) for s in (-1, 0, 1)]) if at.size else at
    t = np.unique(np.concatenate([np.linspace(-R, R, CORE_POINTS), tail, -tail, around]))
    ys = pick_targets(y_examples)
    Y = np.repeat(ys[:, None], t.size, axis=1)
    F = np.stack([np.asarray(loss._from_natural(np.full(t.shape, yj), t), dtype=float) for yj in ys])
    before = ev.needed_fallback
    ev.needed_fallback = False
    V = ev("value", Y.ravel(), F.ravel()).reshape(F.shape)
    G = ev("grad", Y.ravel(), F.ravel()).reshape(F.shape)
    H = ev("hess", Y.ravel(), F.ravel()).reshape(F.shape)
    in_domain = not ev.needed_fallback
    ev.needed_fallback = before or ev.needed_fallback
    return Grid(t, ys, F, V, G, H, R, np.unique(at), in_domain)


# ------------------------------------------------------------------ jumps


@dataclass(frozen=True)
class Jump:
    what: str  # "value", "grad" or "hess"
    at: float  # location in the natural variable
    size: float  # |A(right) - A(left)| at the final bracket (inf for a pole)
    row: int


def _abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| with NaN (outside the domain, or inf - inf of equal sign) read as no change."""
    d = np.abs(a - b)
    return np.where(np.isnan(d), 0.0, d)


def find_jumps(loss: Any, ev: Evaluator, grid: Grid, what: str, max_candidates: int = 12) -> tuple[list[Jump], float]:
    """Discontinuities of ``what`` along t on the core grid, by bisection.

    Candidates are the grid intervals whose increment stands out from both
    neighbours (plus brackets around every declared kink); each is halved down to a
    width of 1e-14 max(1, |t|), keeping the half with the larger increment.  A jump
    is an increment above 1e-7 times the function's scale on the core grid that did
    not shrink by half over the last 10 halvings (a continuous function's, even a
    Hoelder one's like |t|^(1/2), does).  Returns (jumps, threshold).
    """
    A_all = {"value": grid.V, "grad": grid.G, "hess": grid.H}[what]
    core = grid.core
    t = grid.t[core]
    A = A_all[:, core]
    finite = A[np.isfinite(A)]
    scale = float(np.max(np.abs(finite))) if finite.size else 1.0
    threshold = 1e-7 * (scale if scale > 0 else 1.0)
    los, his, rows = [], [], []
    for j in range(A.shape[0]):
        d = _abs_diff(A[j, 1:], A[j, :-1])
        nb = np.maximum(np.concatenate([[0.0], d[:-1]]), np.concatenate([d[1:], [0.0]]))
        ratio = np.where(np.isinf(d), np.inf, d / np.maximum(nb, 1e-300))
        cand = np.flatnonzero((ratio > 3.0) & (d > threshold))
        cand = cand[np.argsort(-ratio[cand], kind="stable")][:max_candidates]
        los.extend(t[cand])
        his.extend(t[cand + 1])
        rows.extend([j] * cand.size)
        for k in loss.kinks:
            delta = 1e-4 * max(1.0, abs(k.at))
            los.append(k.at - delta)
            his.append(k.at + delta)
            rows.append(j)
    if not los:
        return [], threshold
    lo, hi, row = np.array(los), np.array(his), np.array(rows)
    yrow = grid.ys[row]

    def at(tt: np.ndarray) -> np.ndarray:
        return ev(what, yrow, np.asarray(loss._from_natural(yrow, tt), dtype=float))

    a_lo, a_hi = at(lo), at(hi)
    history = [_abs_diff(a_hi, a_lo)]
    moves = np.zeros(lo.size, dtype=int)
    for _ in range(60):
        width_ok = (hi - lo) > 1e-14 * np.maximum(1.0, np.abs(lo))
        if not np.any(width_ok):
            break
        moves += width_ok
        mid = np.where(width_ok, 0.5 * (lo + hi), lo)
        a_mid = at(mid)
        left = _abs_diff(a_mid, a_lo) >= _abs_diff(a_hi, a_mid)
        move_hi = width_ok & left
        move_lo = width_ok & ~left
        hi = np.where(move_hi, mid, hi)
        a_hi = np.where(move_hi, a_mid, a_hi)
        lo = np.where(move_lo, mid, lo)
        a_lo = np.where(move_lo, a_mid, a_lo)
        history.append(_abs_diff(a_hi, a_lo))
    size = _abs_diff(a_hi, a_lo)
    # a jump keeps its size over the last 10 halvings; a continuous (even Hoelder) change shrinks
    earlier = np.array(history)[np.maximum(moves - 10, 0), np.arange(lo.size)]
    persists = ~np.isfinite(size) | (size >= 0.5 * earlier)
    # A pole whose far side lies outside the domain (NaN) is the domain's edge, not a jump.
    pole_at = np.where(np.isinf(a_hi), hi, np.where(np.isinf(a_lo), lo, np.nan))
    mirror = np.where(np.isinf(a_hi), 2 * hi - lo, 2 * lo - hi)
    edge = np.isfinite(pole_at) & np.isnan(at(np.where(np.isfinite(pole_at), mirror, lo)))
    jumps = [
        Jump(what, float(0.5 * (lo[i] + hi[i])), float(size[i]), int(row[i]))
        for i in range(lo.size)
        if size[i] > threshold and persists[i] and not edge[i]
    ]
    return jumps, threshold


def near_kink(loc: float, kinks: Any, max_order: int | None = None) -> bool:
    for k in kinks:
        if max_order is not None and k.order > max_order:
            continue
        if abs(loc - k.at) <= 1e-6 * max(1.0, abs(k.at)):
            return True
    return False
