r"""``verify`` for batch losses: closed-form gradients against finite differences, and the contract.

The loss supplies valid float64 inputs through ``loss._example_inputs(rng)``.  With
random positive per-item weights w, the checks are:

``grad``
    For every differentiable input and up to ``n`` of its coordinates (chosen at
    random), the closed-form gradient of F = sum(w * value) against 4th-order central
    differences of F at the steps h0 / 4^k (k = 0..3, h0 = eps^(1/5) max(1, |x|)).  Of
    the consecutive pairs of estimates the one that agrees best gives the estimate D
    and the error estimate e (their difference plus the round-off 3 eps |F| / h).  A
    coordinate passes when |analytic - D| <= rtol max(|D|, 1e-6 max|D|) + 2 e.  A
    coordinate whose estimates do not settle (e > 1 % of |D|: a kink of a hinge, a max
    or an argmax switch inside the stencil) is not judged; at least 3/4 must be.
``grad_keys``
    ``grad`` returns exactly the differentiable inputs given, each of its input's shape.
``value_grad``
    ``value_grad`` equals (``value``, ``grad``); ``grad`` without weights equals the
    weighted gradient at w = 1.
``reduction``
    ``__call__`` with "none", "sum", "mean" equals w * value, its sum, sum / sum(w).
``finite``
    value and gradients finite at the example inputs, and at ``loss._extreme_inputs``
    (huge / tiny magnitudes) when the loss defines them.
``dtype``
    float32 inputs give float32 value and gradients, within 1e-3 (|x| + 0.01 max|x|) of float64.
``no_mutation``
    the inputs are untouched.
``hvp``
    declared absent (``has_hvp = False``): ``hvp`` raises NotDifferentiableError;
    declared present: it equals central differences of ``grad`` along a random direction,
    and ``_item_jvp`` (per-item directional derivatives) those of the values.
``hess`` (losses with per-item Hessian blocks: the ranking family)
    ``hess`` returns symmetric (n, L, L) blocks; blocks @ v equals ``hvp``, their
    diagonals equal ``hess_diag``, ``grad_hess_diag`` equals (``grad``, ``hess_diag``);
    a loss declared convex has no block eigenvalue below -1e-10 times the largest |eigenvalue|.
``convex``
    declared convex: F((x + y) / 2) <= (F(x) + F(y)) / 2 on random chords between two
    example draws (the non-differentiable inputs of the first draw).  A declared
    non-convex loss passes and reports whether a violation was found.

Known limitation: the other :class:`~lossgrad.Props` fields (Lipschitz, smoothness,
differentiability) are not measured for batch losses.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import numdiff
from .._core import NotDifferentiableError, Scaled
from ._report import Check, VerifyReport

__all__ = ["verify_batch"]

_LEVELS = 4


def verify_batch(loss: Any, *, n: int = 200, seed: int = 0, rtol: float = 1e-6) -> VerifyReport:
    """Run every batch check on ``loss``; see the module docstring."""
    base = loss.loss if isinstance(loss, Scaled) else loss
    label = repr(loss) if not isinstance(loss, Scaled) else f"{loss.k:g} * {loss.loss!r}"
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rng = np.random.default_rng(seed)
        inputs = _host(base._example_inputs(rng))
        diff = [k for k in base.differentiable if k in inputs]
        v0 = np.asarray(loss.value(**inputs), dtype=float)
        w = rng.uniform(0.5, 1.5, v0.shape)
        checks: list[Check] = [
            _check_grad(loss, inputs, diff, w, n, rng, rtol),
            _check_keys(loss, inputs, diff),
            _check_value_grad(loss, inputs, diff, w),
            _check_reduction(loss, inputs, w),
            _check_finite(loss, base, inputs, diff, rng),
            _check_dtype(loss, inputs, diff),
            _check_no_mutation(loss, inputs, w),
            _check_hvp(loss, base, inputs, diff, w, rng, rtol),
            *([_check_hess_blocks(loss, inputs, diff, w, rng)] if hasattr(base, "hess") else []),
            _check_convex(loss, base, inputs, diff, rng),
        ]
    return VerifyReport(loss=label, checks=tuple(checks))


def _host(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: (np.asarray(v) if isinstance(v, (np.ndarray, list, tuple)) else v) for k, v in inputs.items()}


def _is_float(a: Any) -> bool:
    return isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating)


def _F(loss: Any, inputs: dict[str, Any], w: np.ndarray | None) -> float:
    return float(np.sum(np.asarray(loss.value(sample_weight=w, **inputs), dtype=float)))


# ------------------------------------------------------------------ gradient


def _check_grad(loss, inputs, diff, w, n, rng, rtol) -> Check:
    grads = {k: np.asarray(g, dtype=float) for k, g in loss.grad(sample_weight=w, **inputs).items()}
    analytic, est, err, where = [], [], [], []
    eps = np.finfo(float).eps
    for name in diff:
        x = np.asarray(inputs[name], dtype=float)
        flat = x.reshape(-1)
        picks = rng.choice(flat.size, size=min(n, flat.size), replace=False)
        h0 = numdiff.default_step(flat[picks], "central4")
        for j, i in enumerate(picks):
            D = []
            fmax = 0.0
            for k in range(_LEVELS):
                h = float(h0[j]) / 4.0**k
                vals = []
                for s in (-2, -1, 1, 2):
                    xx = flat.copy()
                    xx[i] += s * h
                    vals.append(_F(loss, {**inputs, name: xx.reshape(x.shape)}, w))
                fmax = max(fmax, max(abs(v) for v in vals))
                D.append((vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h))
            D = np.asarray(D)
            E = np.abs(np.diff(D)) + 3 * eps * fmax / (float(h0[j]) / 4.0 ** np.arange(1, _LEVELS))
            E = np.where(np.isfinite(E), E, np.inf)
            b = int(np.argmin(E))
            analytic.append(float(grads[name].reshape(-1)[i]) if name in grads else np.nan)
            est.append(float(D[b + 1]))
            err.append(float(E[b]))
            where.append(f"{name}[{', '.join(str(int(q)) for q in np.unravel_index(i, x.shape))}]")
    if not analytic:
        return Check("grad", False, declared="closed-form grad", measured="no differentiable input in the examples")
    a, d, e = np.asarray(analytic), np.asarray(est), np.asarray(err)
    floor = 1e-6 * float(np.max(np.abs(d[np.isfinite(d)]), initial=0.0)) + 1e-300
    scale = np.maximum(np.abs(d), floor)
    resolved = np.isfinite(d) & (e <= 1e-2 * scale)
    excess = np.maximum(np.abs(a - d) - 2 * e, 0.0) / scale
    excess = np.where(resolved, np.where(np.isnan(excess), np.inf, excess), 0.0)
    worst = int(np.argmax(excess))
    n_ok = int(np.sum(resolved))
    enough = n_ok >= max(1, (3 * a.size) // 4)
    raw = np.where(resolved, np.abs(a - d) / scale, 0.0)
    msg = where[worst] + f" analytic={a[worst]:.10g} fd={d[worst]:.10g}; max raw rel. diff {float(np.max(raw)):.1e}"
    if not enough:
        msg = f"only {n_ok} of {a.size} coordinates resolved by finite differences; " + msg
    return Check("grad", bool(enough and np.all(excess <= rtol)), error=float(excess[worst]), tolerance=rtol,
                 declared="closed-form gradient of sum(w * value)", measured=f"central4 FD at {n_ok} coordinates",
                 where=msg)


def _check_keys(loss, inputs, diff) -> Check:
    g = loss.grad(**inputs)
    problems = []
    if set(g) != set(diff):
        problems.append(f"keys {sorted(g)} != differentiable inputs given {sorted(diff)}")
    for k in set(g) & set(diff):
        if tuple(np.shape(g[k])) != tuple(np.shape(inputs[k])):
            problems.append(f"grad[{k!r}] has shape {tuple(np.shape(g[k]))}, input {tuple(np.shape(inputs[k]))}")
    return Check("grad_keys", not problems, declared=list(diff), measured=sorted(g), where="; ".join(problems))


def _close(a: Any, b: Any, rtol: float = 1e-12) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return np.inf
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


def _check_value_grad(loss, inputs, diff, w) -> Check:
    v, g = loss.value_grad(sample_weight=w, **inputs)
    errs = [_close(v, loss.value(sample_weight=w, **inputs))]
    g_w = loss.grad(sample_weight=w, **inputs)
    g_1 = loss.grad(**inputs)
    g_ones = loss.grad(sample_weight=np.ones_like(w), **inputs)
    for k in diff:
        errs.append(_close(g.get(k), g_w.get(k)) if k in g and k in g_w else np.inf)
        errs.append(_close(g_1.get(k), g_ones.get(k)) if k in g_1 and k in g_ones else np.inf)
    e = max(errs)
    return Check("value_grad", e <= 1e-12, error=e, tolerance=1e-12,
                 declared="value_grad == (value, grad); grad(w=None) == grad(w=1)", measured="max rel. difference")


def _check_reduction(loss, inputs, w) -> Check:
    v = np.asarray(loss.value(sample_weight=w, **inputs), dtype=float)
    e = max(
        _close(loss(sample_weight=w, reduction="none", **inputs), v),
        _close(loss(sample_weight=w, reduction="sum", **inputs), np.sum(v)),
        _close(loss(sample_weight=w, reduction="mean", **inputs), np.sum(v) / np.sum(w)),
        _close(loss(**inputs), np.mean(np.asarray(loss.value(**inputs), dtype=float))),
    )
    return Check("reduction", e <= 1e-12, error=e, tolerance=1e-12, declared="none / sum / weighted mean",
                 measured="max rel. difference")


def _check_finite(loss, base, inputs, diff, rng) -> Check:
    sets = [("examples", inputs)]
    extreme = base._extreme_inputs(np.random.default_rng(rng.integers(2**32)))
    if extreme is not None:
        sets.append(("extreme inputs", _host(extreme)))
    bad = []
    for what, ins in sets:
        try:
            v, g = loss.value_grad(**ins)
        except (ValueError, TypeError, FloatingPointError) as exc:  # the loss refused valid inputs
            bad.append(f"{what}: raised {type(exc).__name__}: {exc}")
            continue
        arrays = {"value": v, **g}
        for k, a in arrays.items():
            if not np.all(np.isfinite(np.asarray(a, dtype=float))):
                bad.append(f"{what}: {k} has NaN/inf")
    return Check("finite", not bad, declared="finite value and gradients",
                 measured=", ".join(s for s, _ in sets), where="; ".join(bad))


def _check_dtype(loss, inputs, diff) -> Check:
    ins32 = {k: (v.astype(np.float32) if _is_float(v) else v) for k, v in inputs.items()}
    ref_v, ref_g = loss.value_grad(**{k: (v.astype(float) if _is_float(v) else v) for k, v in ins32.items()})
    v32, g32 = loss.value_grad(**ins32)
    problems, worst = [], 0.0
    for k, a, r in [("value", v32, ref_v)] + [(k, g32.get(k), ref_g.get(k)) for k in diff]:
        if getattr(a, "dtype", None) != np.float32:
            problems.append(f"{k} is {getattr(a, 'dtype', type(a).__name__)} for float32 input")
            continue
        r = np.asarray(r, dtype=float)
        floor = 1e-2 * float(np.max(np.abs(r), initial=0.0)) + 1e-30
        e = float(np.max(np.abs(np.asarray(a, dtype=float) - r) / (np.abs(r) + floor), initial=0.0))
        worst = max(worst, e)
        if not e <= 1e-3:
            problems.append(f"{k}: float32 differs from float64 (rel. {e:.2g})")
    return Check("dtype", not problems, error=worst, tolerance=1e-3, declared="float32 in -> float32 out",
                 measured="value, " + ", ".join(diff), where="; ".join(problems))


def _check_no_mutation(loss, inputs, w) -> Check:
    copies = {k: np.array(v, copy=True) for k, v in inputs.items()}
    w0 = w.copy()
    loss.value(sample_weight=w, **inputs)
    loss.value_grad(sample_weight=w, **inputs)
    loss(sample_weight=w, **inputs)
    changed = [k for k in inputs if not np.array_equal(np.asarray(inputs[k]), copies[k])]
    if not np.array_equal(w, w0):
        changed.append("sample_weight")
    return Check("no_mutation", not changed, declared="inputs untouched",
                 measured="changed: " + ", ".join(changed) if changed else "untouched")


def _check_hvp(loss, base, inputs, diff, w, rng, rtol) -> Check:
    declared = bool(getattr(base, "has_hvp", False))
    if not declared:
        try:
            loss.hvp({k: np.zeros_like(inputs[k]) for k in diff}, **inputs)
            raised = False
        except NotDifferentiableError:
            raised = True
        return Check("hvp", raised, declared="absent", measured="raises" if raised else "returned a value")
    v = {k: rng.normal(size=np.shape(inputs[k])) for k in diff}
    hv = loss.hvp(v, sample_weight=w, **inputs)
    h = 1e-5
    shifted_plus = {**inputs, **{k: inputs[k] + h * v[k] for k in diff}}
    shifted_minus = {**inputs, **{k: inputs[k] - h * v[k] for k in diff}}
    plus, minus = loss.grad(sample_weight=w, **shifted_plus), loss.grad(sample_weight=w, **shifted_minus)
    e = max(_close(hv[k], (np.asarray(plus[k]) - np.asarray(minus[k])) / (2 * h)) for k in diff)
    xp, data, _ = base._prepare_batch(inputs, None)  # per-item directional derivatives of the values
    jvp = np.asarray(base._item_jvp(xp, data, v), dtype=float)
    fd = (np.asarray(base.value(**shifted_plus), dtype=float) - np.asarray(base.value(**shifted_minus), dtype=float)) / (2 * h)
    e = max(e, _close(jvp, fd))
    tol = max(1e-5, rtol)
    return Check("hvp", e <= tol, error=e, tolerance=tol, declared="present",
                 measured="central FD of grad; _item_jvp: of the values")


def _check_hess_blocks(loss, inputs, diff, w, rng) -> Check:
    H = {k: np.asarray(a, dtype=float) for k, a in loss.hess(sample_weight=w, **inputs).items()}
    v = {k: rng.normal(size=np.shape(inputs[k])) for k in diff}
    hv = loss.hvp(v, sample_weight=w, **inputs)
    diag = loss.hess_diag(sample_weight=w, **inputs)
    g, d2 = loss.grad_hess_diag(sample_weight=w, **inputs)
    g0 = loss.grad(sample_weight=w, **inputs)
    errors = []
    for k in diff:
        block = H[k]
        errors += [_close(block, np.swapaxes(block, -1, -2)), _close(np.einsum("nij,nj->ni", block, v[k]), hv[k]),
                   _close(np.einsum("nii->ni", block), diag[k]), _close(d2[k], diag[k]), _close(g[k], g0[k])]
    e = max(errors)
    lowest = min(float(np.linalg.eigvalsh(H[k]).min()) for k in diff)
    top = max(float(np.abs(np.linalg.eigvalsh(H[k])).max(initial=0.0)) for k in diff)
    convex = bool(loss.props.convex)
    psd = lowest >= -1e-10 * max(top, 1e-300)
    return Check("hess", e <= 1e-12 and (psd or not convex), error=e, tolerance=1e-12,
                 declared="symmetric blocks" + (", positive semidefinite" if convex else ""),
                 measured=f"blocks @ v = hvp, diag = hess_diag; lowest eigenvalue {lowest:.3g}")


def _check_convex(loss, base, inputs, diff, rng) -> Check:
    try:
        declared = bool(loss.props.convex)
    except NotImplementedError:
        return Check("convex", False, declared=None, measured="the loss declares no props")
    other = _host(base._example_inputs(np.random.default_rng(rng.integers(2**32))))
    violations, worst = 0, 0.0
    for _ in range(40):
        t = rng.uniform(0.0, 1.0)
        x = {k: inputs[k] for k in diff}
        y = {k: t * inputs[k] + (1 - t) * other[k] if np.shape(other.get(k)) == np.shape(inputs[k]) else inputs[k]
             for k in diff}
        mid = {k: 0.5 * (x[k] + y[k]) for k in diff}
        try:
            fx, fy, fm = (_F(loss, {**inputs, **p}, None) for p in (x, y, mid))
        except ValueError:  # the chord left the domain
            continue
        gap = fm - 0.5 * (fx + fy)
        tol = 1e-10 * max(1.0, abs(fx), abs(fy))
        if gap > tol:
            violations += 1
            worst = max(worst, gap)
    if declared:
        return Check("convex", violations == 0, error=worst, declared=True, measured=violations == 0,
                     where=f"{violations} of 40 midpoint inequalities violated")
    return Check("convex", True, declared=False, measured=violations == 0,
                 where=f"non-convexity {'found' if violations else 'not found'} on 40 chords")
