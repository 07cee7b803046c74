r"""``verify`` for row losses: derivatives against finite differences, properties measured.

With K = the number of classes the loss's parameters fix (else 4) and the loss's example
inputs (``_example_inputs``: labels or probability rows, logits of mixed scale):

* ``grad``: 4th-order central differences of ``value`` per column, at steps
  h0 / 4^k (k = 0..3); per point the two consecutive steps that agree best give the
  estimate D and its error e, to which the stencil's round-off 100 eps |fun| / h is added;
  an entry passes when |analytic - D| <= rtol max(|D|, floor) + 2e, floor = 1e-4 times the
  largest |D| of its row (tiny entries are held to an absolute error against the row's
  scale); a row whose derivative is zero to the FD's precision is compared absolutely.
  Rows within 1 % of a declared kink (``_kink_gap``) are skipped.  ``hess``: the same with ``grad`` for every (row, column) pair.
* ``hvp`` = hess @ v, ``hess_diag`` = diag(hess), ``hess_symmetric``, ``value_grad``,
  ``grad_hess``, ``value_grad_hess`` and ``grad_hess_diag`` equal the separate calls
  (with sample weights).
* ``convex``: the smallest eigenvalue of every row Hessian >= -1e-9 (scale), and the
  midpoint inequality on 2000 random chords (same target, two score rows); a loss
  declared non-convex must show a violation.  ``strictly_convex``: a strictly convex
  loss has a positive gap on every chord; a declared non-strict one must show a chord
  with zero gap (for the softmax losses, the shift f -> f + c 1).
* ``lipschitz`` / ``smoothness`` (l2 norm of the row gradient, spectral norm of the row
  Hessian): measured on the examples and on adversarial rows (every vertex target
  against scores c e_j and c (e_i + e_j) with c in {3, 30, 1e3}, and random scores up
  to scale 1e4), at K and, when the loss does not fix K, at K = 9.  A declared constant
  must bound every measurement (1e-9 slack) and be reached within 5 %; ``None`` needs a
  sup that grows with the scores or with K (or the name in ``undeclared_constants``).
* ``finite``: value, grad, hess finite at logits of scale 1e4 (float64) and 1e3 (float32).
* ``dtype`` (float32 in, float32 out, close to float64) and ``no_mutation``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._config import config_context
from .._core import Scaled
from ._report import Check, VerifyReport

__all__ = ["verify_row"]

_TIGHT = 0.05


def verify_row(loss: Any, *, n: int = 200, seed: int = 0, rtol: float = 1e-6) -> VerifyReport:
    """Run every row check on ``loss``; see the module docstring."""
    base = loss.loss if isinstance(loss, Scaled) else loss
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rng = np.random.default_rng(seed)
        n = min(int(n), 64)  # rows; every check is vectorised over them
        k = base._fixed_classes() or 4
        y, f = (np.asarray(a, dtype=float) for a in base._example_inputs(rng, n, k))
        keep = base._kink_gap(y, f) > 1e-2 * np.maximum(1.0, np.max(np.abs(f), axis=1))
        checks: list[Check] = []
        checks.append(_check_fd(loss, y[keep], f[keep], "grad", rtol))
        checks.append(_check_fd(loss, y[keep], f[keep], "hess", rtol))
        checks += _check_consistency(loss, y, f, rng)
        checks += _check_convexity(loss, base, y, f, rng)
        checks += _check_constants(loss, base, k, rng)
        checks.append(_check_finite(loss, base, y, k, rng))
        checks.append(_check_dtype(loss, y, f))
        checks.append(_check_no_mutation(loss, y, f))
    return VerifyReport(loss=repr(loss) if not isinstance(loss, Scaled) else f"{loss.k:g} * {loss.loss!r}",
                        checks=tuple(checks))


def _a(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=float)


# ------------------------------------------------------------------ finite differences


def _fd(fun: Any, f: np.ndarray, col: int) -> tuple[np.ndarray, np.ndarray]:
    """Central4 derivative of fun along column ``col`` at every row, with its error estimate."""
    h0 = np.finfo(float).eps ** 0.2 * np.maximum(1.0, np.abs(f[:, col]))
    ests = []
    for lev in range(4):
        h = h0 / 4.0**lev
        h = (f[:, col] + h) - f[:, col]
        vals = []
        for m in (-2, -1, 1, 2):
            g = f.copy()
            g[:, col] = f[:, col] + m * h
            vals.append(fun(g))
        shape = (-1,) + (1,) * (vals[0].ndim - 1)
        ests.append((vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h.reshape(shape)))
    D = np.stack(ests)
    E = np.abs(np.diff(D, axis=0))
    E = np.where(np.isfinite(E), E, np.inf)
    best = np.argmin(E, axis=0)
    est = np.take_along_axis(D[1:], best[None], axis=0)[0]
    err = np.take_along_axis(E, best[None], axis=0)[0]
    return est, err


def _check_fd(loss: Any, y: np.ndarray, f: np.ndarray, what: str, rtol: float) -> Check:
    of = "value" if what == "grad" else "grad"
    if f.shape[0] == 0:
        return Check(what, False, declared=f"closed-form {what}", measured="no example row away from the kinks")
    with config_context(assume_valid=True):  # stencil points may leave the simplex (from_logits=False)
        analytic = _a(getattr(loss, what)(y, f))
        fun = lambda g: _a(getattr(loss, of)(y, g))  # noqa: E731
        cols = [_fd(fun, f, c) for c in range(f.shape[1])]
        f_abs = np.abs(fun(f)).reshape(f.shape[0], -1).max(axis=1)
    est = np.stack([c[0] for c in cols], axis=-1)  # grad: (N, K); hess: (N, K_out, K_col)
    err = np.stack([c[1] for c in cols], axis=-1)
    # round-off of the stencil: ~100 eps |fun| / h at the smallest step
    h_min = np.finfo(float).eps ** 0.2 * np.maximum(1.0, np.abs(f)).max(axis=1) / 64.0
    noise = (100 * np.finfo(float).eps * f_abs / h_min).reshape((-1,) + (1,) * (est.ndim - 1))
    err = err + noise
    # entries below 1e-4 of their row's largest are compared in absolute terms against that
    # scale (the FD of a value of size |l| cannot resolve them relatively)
    row_max = np.max(np.abs(np.where(np.isfinite(est), est, 0.0)).reshape(est.shape[0], -1), axis=1)
    floor = 1e-4 * row_max.reshape((-1,) + (1,) * (est.ndim - 1)) + 1e-300
    scale = np.maximum(np.abs(est), floor)
    flat_row = row_max.reshape(floor.shape) <= 10.0 * noise  # zero to the FD's precision: compare absolutely
    resolved = np.isfinite(est) & ((err <= 1e-2 * scale) | flat_row)
    rel = np.abs(analytic - est) / scale
    bad = resolved & ~(rel <= rtol + 2.0 * err / scale)
    rel_r = np.where(resolved, np.where(np.isnan(rel), np.inf, rel), 0.0)
    n_ok = int(resolved.sum())
    enough = n_ok >= max(1, est.size // 2)
    where = ""
    if np.any(bad):
        i = np.unravel_index(int(np.argmax(np.where(bad, rel_r, -1.0))), bad.shape)
        where = f"row {i[0]}: y_true={y[i[0]]}, y_pred={np.round(f[i[0]], 6).tolist()}, entry {i[1:]}"
    if not enough:
        where = f"only {n_ok} of {est.size} entries resolved by finite differences; " + where
    return Check(what, bool(enough and not np.any(bad)), error=float(np.max(rel_r)) if rel_r.size else None,
                 tolerance=rtol, declared=f"closed-form {what}", measured=f"FD of {of}, {n_ok} entries", where=where)


# ------------------------------------------------------------------ consistency


def _rel(a: Any, b: Any) -> float:
    a, b = _a(a), _a(b)
    if a.shape != b.shape:
        return np.inf
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    d = np.abs(a - b)
    d = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, d)
    return float(np.max(np.where(np.isnan(d), np.inf, d), initial=0.0)) / scale


def _check_consistency(loss: Any, y: np.ndarray, f: np.ndarray, rng: np.random.Generator) -> list[Check]:
    w = np.linspace(0.5, 2.0, f.shape[0])
    H = _a(loss.hess(y, f, sample_weight=w))
    v = rng.normal(size=f.shape)
    out = []
    e = _rel(loss.hvp(y, f, v, sample_weight=w), np.einsum("nij,nj->ni", H, v))
    out.append(Check("hvp", e <= 1e-12, error=e, tolerance=1e-12, declared="hess @ v", measured="hvp"))
    e = _rel(loss.hess_diag(y, f, sample_weight=w), np.einsum("nii->ni", H))
    out.append(Check("hess_diag", e <= 1e-12, error=e, tolerance=1e-12, declared="diag(hess)", measured="hess_diag"))
    e = _rel(H, np.swapaxes(H, 1, 2))
    out.append(Check("hess_symmetric", e <= 1e-12, error=e, tolerance=1e-12, declared="hess = hess^T"))
    for name, parts in (("value_grad", ("value", "grad")), ("grad_hess", ("grad", "hess")),
                        ("value_grad_hess", ("value", "grad", "hess")), ("grad_hess_diag", ("grad", "hess_diag"))):
        joint = getattr(loss, name)(y, f, sample_weight=w)
        errs = [_rel(j, getattr(loss, p)(y, f, sample_weight=w)) for j, p in zip(joint, parts)]
        err = max(errs) if len(joint) == len(parts) else np.inf
        out.append(Check(name, err <= 1e-12, error=err, tolerance=1e-12, declared=f"equals {', '.join(parts)}"))
    return out


# ------------------------------------------------------------------ convexity


def _chords(base: Any, y: np.ndarray, f: np.ndarray, rng: np.random.Generator, m: int = 2000):
    idx = rng.integers(0, f.shape[0], m)
    f1 = f[idx]
    kind = rng.integers(0, 3, m)
    f2 = np.where((kind == 0)[:, None], f[rng.integers(0, f.shape[0], m)], f1 + rng.normal(0, 3.0, f1.shape))
    f2 = np.where((kind == 2)[:, None], f1 + rng.normal(0, 0.3, f1.shape), f2)
    return y[idx], f1, f2


def _check_convexity(loss: Any, base: Any, y: np.ndarray, f: np.ndarray, rng: np.random.Generator) -> list[Check]:
    p = loss.props
    probs_in = hasattr(base, "from_logits") and not base.from_logits
    yy, f1, f2 = _chords(base, y, f, rng)
    if probs_in:  # keep chords on the simplex: mix two probability rows
        f2 = f[rng.integers(0, f.shape[0], f1.shape[0])]
    fm = 0.5 * (f1 + f2)
    v1, v2, vm = _a(loss.value(yy, f1)), _a(loss.value(yy, f2)), _a(loss.value(yy, fm))
    gap = 0.5 * (v1 + v2) - vm
    tol = 1e-10 * (np.abs(v1) + np.abs(v2)) + 1e-13
    ok = np.isfinite(gap)
    chord_viol = ok & (gap < -tol)
    H = _a(loss.hess(yy, fm))
    good = np.all(np.isfinite(H), axis=(1, 2))
    eig = np.full(H.shape[0], np.nan)
    eig[good] = np.linalg.eigvalsh(H[good])[:, 0]
    hscale = np.max(np.abs(H[good]), axis=(1, 2), initial=0.0) if np.any(good) else np.zeros(0)
    eig_viol = good & (eig < -1e-9 * np.maximum(np.max(np.abs(H[good]), initial=0.0), 1e-300))
    measured = not (np.any(chord_viol) or np.any(eig_viol))
    if measured:
        where = f"min eig {np.nanmin(eig):.3g}, {int(ok.sum())} chords ok"
    else:
        parts = []
        if np.any(eig_viol):
            i = int(np.nanargmin(np.where(eig_viol, eig, np.inf)))
            parts.append(f"hess eigenvalue {eig[i]:.3g} at y_true={yy[i]}, y_pred={np.round(fm[i], 4).tolist()}")
        if np.any(chord_viol):
            i = int(np.argmin(np.where(chord_viol, gap, np.inf)))
            parts.append(f"midpoint inequality violated by {-gap[i]:.3g} on {int(chord_viol.sum())} chords")
        where = "; ".join(parts)
    del hscale
    out = [Check("convex", p.convex == measured, declared=p.convex, measured=measured, where=where)]
    # strictness: the shift direction (softmax losses) or any chord with zero gap
    if probs_in:
        strict_measured = bool(measured and np.all(gap[ok & (np.abs(f1 - f2).max(axis=1) > 1e-3)] > tol[ok & (np.abs(f1 - f2).max(axis=1) > 1e-3)]))
    else:
        shift = f1 + rng.uniform(0.5, 2.0, (f1.shape[0], 1))
        vs, vsm = _a(loss.value(yy, shift)), _a(loss.value(yy, 0.5 * (f1 + shift)))
        sgap = 0.5 * (v1 + vs) - vsm
        flat = np.abs(sgap) <= 1e-9 * (np.abs(v1) + 1.0)
        strict_measured = bool(measured and not np.any(flat) and np.all(gap[ok & (np.abs(f1 - f2).max(axis=1) > 1e-3)] > 0))
    out.append(Check("strictly_convex", p.strictly_convex == strict_measured, declared=p.strictly_convex,
                     measured=strict_measured, where="chords along f + c 1 and random chords"))
    return out


# ------------------------------------------------------------------ constants


def _probe_rows(base: Any, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adversarial (y, f) rows and the score scale of each row."""
    T = base._vertex_targets(k)
    if len(T) > 34:  # many vertices (multi-label): the two extremes and a random sample
        T = np.concatenate([T[:1], T[-1:], T[rng.choice(len(T), 32, replace=False)]])
    rows_f, scales = [], []
    for c in (3.0, 30.0, 1e3):
        for i in range(k):
            e = np.zeros(k)
            e[i] = c
            rows_f.append(e)
            scales.append(c)
            for j in range(i + 1, k):
                e2 = np.zeros(k)
                e2[i] = e2[j] = c
                rows_f.append(e2)
                scales.append(c)
    for c in (1.0, 10.0, 100.0, 1e4):
        for _ in range(6):
            rows_f.append(rng.normal(0, c, k))
            scales.append(c)
    F = np.array(rows_f)
    Fs = F - F.max(axis=1, keepdims=True)  # the zero-pattern rows also as all-but-some very negative
    F = np.concatenate([F, Fs])
    S = np.concatenate([scales, scales])
    yi = np.repeat(np.arange(len(T)), F.shape[0])
    Y = T[yi]
    FF = np.tile(F, (len(T), 1))
    SS = np.tile(S, len(T))
    if hasattr(base, "from_logits") and not base.from_logits:  # probabilities in
        P = np.exp(FF - FF.max(axis=1, keepdims=True))
        FF = P / P.sum(axis=1, keepdims=True)
    # random targets from the examples too
    ye, fe = base._example_inputs(rng, 64, k)
    Y = np.concatenate([Y, _a(ye)])
    FF = np.concatenate([FF, _a(fe)])
    SS = np.concatenate([SS, np.full(fe.shape[0], 1.0)])
    return Y, FF, SS


def _sups(loss: Any, base: Any, k: int, rng: np.random.Generator) -> dict[str, tuple[float, float, float]]:
    """(sup over all probes, sup over probes of scale <= 30, sup at scale >= 1e3) of ||grad|| and ||hess||."""
    Y, F, S = _probe_rows(base, k, rng)
    with config_context(assume_valid=True):
        G = _a(loss.grad(Y, F))
        H = _a(loss.hess(Y, F))
    gn = np.linalg.norm(G, axis=1)
    hn = np.full(H.shape[0], np.inf)
    fin = np.all(np.isfinite(H), axis=(1, 2))
    hn[fin] = np.max(np.abs(np.linalg.eigvalsh(H[fin])), axis=1)
    gn = np.where(np.isnan(gn), np.inf, gn)
    out = {}
    for name, a in (("lipschitz", gn), ("smoothness", hn)):
        small, large = a[S <= 30], a[S >= 1e3]
        out[name] = (float(np.max(a)), float(np.max(small)), float(np.max(large)))
    return out


def _check_constants(loss: Any, base: Any, k: int, rng: np.random.Generator) -> list[Check]:
    p = loss.props
    at_k = _sups(loss, base, k, rng)
    fixed = base._fixed_classes() is not None
    at_big = _sups(loss, base, 9, rng) if not fixed else None
    out = []
    for name in ("lipschitz", "smoothness"):
        declared = getattr(p, name)
        total, small, large = at_k[name]
        if at_big is not None:
            total = max(total, at_big[name][0])
        if declared is None:
            if p.differentiability == 0 and name == "smoothness":
                out.append(Check(name, True, declared=None, measured="gradient jumps at the kinks"))
                continue
            grows_f = not np.isfinite(large) or large > 10.0 * max(small, 1e-300)
            grows_k = at_big is not None and at_big[name][0] > 1.2 * at_k[name][0]
            undeclared = name in tuple(base.undeclared_constants)
            ok = grows_f or grows_k or undeclared
            what = ("grows with the scores" if grows_f else "grows with K" if grows_k else
                    f"bounded (sup {total:.4g} on the probes), declared not derived" if undeclared else
                    f"bounded: sup {total:.4g} on the probes, K={k} and 9")
            out.append(Check(name, bool(ok), declared=None, measured=what))
            continue
        ok = np.isfinite(total) and total <= declared * (1 + 1e-9) + 1e-12 and total >= (1 - _TIGHT) * declared
        err = abs(total - declared) / declared if declared > 0 else float(total)
        out.append(Check(name, bool(ok), error=float(err), tolerance=_TIGHT, declared=declared, measured=total,
                         where=f"sup over {'K=%d' % k if fixed else 'K=%d and 9' % k} probes (l2 / spectral norm)"))
    return out


# ------------------------------------------------------------------ finiteness, dtype, mutation


def _check_finite(loss: Any, base: Any, y: np.ndarray, k: int, rng: np.random.Generator) -> Check:
    if hasattr(base, "from_logits") and not base.from_logits:
        return Check("finite", True, declared="finite at extreme logits", measured="takes probabilities: n/a")
    problems = []
    for dtype, scale in ((np.float64, 1e4), (np.float32, 1e3)):
        F = rng.normal(0, 1, (y.shape[0], k)) * scale
        F[: k, :] = 0.0
        F[: k, :] += np.eye(k)[: min(k, F.shape[0])] * scale
        F = F.astype(dtype)
        yy = y.astype(dtype)
        for m in ("value", "grad", "hess", "hess_diag"):
            a = _a(getattr(loss, m)(yy, F))
            if not np.all(np.isfinite(a)):
                problems.append(f"{m} not finite at logits of scale {scale:g} ({np.dtype(dtype).name})")
    return Check("finite", not problems, declared="finite at +-1e4 (float64), +-1e3 (float32)",
                 measured="value, grad, hess, hess_diag", where="; ".join(problems))


def _check_dtype(loss: Any, y: np.ndarray, f: np.ndarray) -> Check:
    problems = []
    worst = 0.0
    y32, f32 = y.astype(np.float32), f.astype(np.float32)
    for m in ("value", "grad", "hess", "hess_diag"):
        out = getattr(loss, m)(y32, f32)
        if getattr(out, "dtype", None) != np.float32:
            problems.append(f"{m} returns {getattr(out, 'dtype', type(out).__name__)} for float32 input")
            continue
        with config_context(assume_valid=True):
            ref = _a(getattr(loss, m)(y32.astype(float), f32.astype(float)))
        e = _rel(out, ref)
        worst = max(worst, e)
        if e > 1e-4:
            problems.append(f"{m}: float32 differs from float64 by {e:.2g} (relative to the max)")
    return Check("dtype", not problems, error=worst, tolerance=1e-4, declared="float32 in -> float32 out",
                 where="; ".join(problems))


def _check_no_mutation(loss: Any, y: np.ndarray, f: np.ndarray) -> Check:
    w = np.linspace(0.5, 1.5, f.shape[0])
    v = np.ones_like(f)
    copies = [a.copy() for a in (y, f, w, v)]
    for m in ("value", "grad", "hess", "hess_diag", "value_grad", "grad_hess"):
        getattr(loss, m)(y, f, sample_weight=w)
    loss.hvp(y, f, v, sample_weight=w)
    loss(y, f, sample_weight=w)
    changed = [nm for nm, a, b in zip(("y_true", "y_pred", "sample_weight", "v"), (y, f, w, v), copies)
               if not np.array_equal(a, b)]
    return Check("no_mutation", not changed, declared="inputs untouched",
                 measured="changed: " + ", ".join(changed) if changed else "untouched")
