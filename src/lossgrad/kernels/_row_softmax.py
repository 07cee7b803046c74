r"""Row kernels of focal, poly1 and kl_divergence: value, gradient and Hessian diagonal in one pass per row.

The three are sums  l = sum_c a_c phi(s_c)  of the log-softmax s = f - lse(f) (see
:mod:`lossgrad.losses._softmax_family`); with p = softmax(f), u = 1 - p,
b_c = a_c phi'(s_c) and B = sum_c b_c:

    grad_c = b_c - p_c B                      (c != c*, the first arg-max)
    grad_c* = u_c* B - sum_{c != c*} b_c      (no cancellation as p_c* -> 1)

* Focal (gamma, class weights alpha; a = alpha q): phi = -u^gamma s,
  phi' = -u^gamma (1 + gamma p psi), psi = s / expm1(s) = -log(p) / u (1 at p = 1).
* Poly1 (epsilon; a = q): phi = -s + epsilon u, phi' = -1 - epsilon p.
* KLDivergence (a = q, or a = e^y with ``log_target``): phi = -s, phi' = -1, plus the
  constant sum_c q_c log q_c (0 log 0 = 0), or sum_c e^{y_c} y_c with ``log_target``;
  so grad = Q p - q off c* (Q = sum_c q_c).

The Hessian's diagonal (what gradient boosting takes per class) follows the reference's
decomposition hess = J^T diag(a phi'') J - B (diag(p) - p p^T): with e_c = phi''(s_c) u_c^2
(finite where phi'' is not, focal with gamma < 1 at p -> 1), d_c = a_c e_c / u_c^2 off c*
(u_c >= 1/2 there), D = sum d_c, e_* = a_c* e_c* and jhat_c = -p_c / u_c* off c*:

    hess_cc = -B p_c u_c + d_c (1 - 2 p_c) + p_c^2 D + e_* jhat_c^2,
    hess_c*c* = -B p_c* u_c* + p_c*^2 D + e_*

* Focal: e = gamma p u^(gamma + 1) (s + 2 + (gamma - 1) p psi).
* Poly1: e = -epsilon p u^2.  KLDivergence: e = 0, so hess_cc = Q p_c u_c.

A label y puts all of a on one class: d is d_y at y alone (y != c*) or the curvature is
e_* (y = c*), and the diagonal costs O(1) per entry (one exponential per entry for
jhat when y = c*).

Per row, as in the reference's ``softmax_parts``: m = max f = f_c*, e_c = e^{f_c - m},
so = sum_{c != c*} e_c (ties with the max count 1 each), lse = m + log1p(so); at c*,
t = lse_{c != c*}(f) - m = log so, s_c* = log_sigmoid(-t), log u_c* = log_sigmoid(t)
(both from t, exact as p_c* -> 1; when so < 2^-900 the row takes a second pass that
forms t with its own shift, as the reference does); elsewhere s_c = f_c - lse,
p_c = e_c / (1 + so) <= 1/2, u_c = 1 - p_c, log u_c = -log1p(p_c / u_c).

Passes per row: the max, the exponentials (into an L1 scratch row, with the tie count
and the non-finite count), the first arg-max (early exit), then for probability
targets one loop forming b_c, d_c and the value's terms
(:mod:`._row_softmax_probs`), the gradient loop and the Hessian-diagonal loop.  A label
target needs phi at one class only: O(1) transcendental work besides the exponentials.
In the loops over classes exp, log(1 - p) = -log1p01(p / u) (p / u in [0, 1]) and the
log of q log q are the vectorised ones of :mod:`._fastmath`; the rest is per row.
float32 is computed in float64 with the loss's parameters (alpha, gamma, epsilon)
rounded to float32 first, as the reference's arithmetic rounds them.  Blocks of rows
run in Numba's threading layer from 2^14 elements (Python threads from 2^17 where that
layer is not safe; see :mod:`._parallel`).

Served: every option of the three (labels or probability rows; alpha, gamma;
epsilon; ``log_target``), ``sample_weight``, the ops value, grad, hess_diag and their
combinations, float32 and float64, and ``loss(y, f, reduction=...)``
(``RowLoss.__call__`` reduces the kernel's rows).  Not served (the reference runs): the
full Hessian and its products.
The kernel counts non-finite logits, invalid targets (non-integer or out-of-range
labels; probabilities outside [0, 1] or rows off 1 by half the reference tolerance;
log-probabilities above half of it or rows whose logsumexp is off 0 by it) and
non-finite or negative weights in its pass; on any count the reference's checks run
and raise its own error, or, if they accept, the reference computes.

Reference: T.-Y. Lin et al. (2017), Focal loss for dense object detection; Z. Leng et
al. (2022), PolyLoss; fdlibm's log1p for the logarithm's reduction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, prange

from .. import _validation as V
from .._config import get_config
from .._row import prob_tolerance
from . import _fastmath as fm
from . import _output_pool
from ._cross_entropy import _row_max
from ._parallel import parallel_copy, part_bounds, run_in_parts, split_plan, sum_parts
from ._row_softmax_probs import focal_probs, kl_probs, poly1_probs

__all__ = ["KERNELS", "softmax_family_rows", "FOCAL", "POLY1", "KL"]

FOCAL, POLY1, KL = 0, 1, 2
_TINY = 2.0 ** -900  # so below this: t = log so is recomputed with its own shift


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _row_exp(row, e, m):
    """e_c = e^{f_c - m}; returns (sum of e_c over f_c != m, count of f_c == m, count of
    non-finite f_c)."""
    so = 0.0
    ties = 0.0
    bad = 0
    for c in range(row.size):
        x = np.float64(row[c])
        ec = fm.exp(x - m)
        e[c] = ec
        top = x == m
        so += 0.0 if top else ec
        ties += 1.0 if top else 0.0
        bad += 1 if x - x != 0.0 else 0
    return so, ties, bad


@njit(cache=True, error_model="numpy")
def _first_max(row, m):
    for c in range(row.size):
        if np.float64(row[c]) == m:
            return c
    return 0  # a row holding NaN: flagged


@njit(cache=True, error_model="numpy")
def _t_shifted(row, cs, m):
    """lse_{c != c*}(f) - m with the shift max_{c != c*} f_c (the reference's form)."""
    mo = -math.inf
    for c in range(row.size):
        if c != cs:
            mo = max(mo, np.float64(row[c]))
    so = 0.0
    for c in range(row.size):
        if c != cs:
            so += math.exp(np.float64(row[c]) - mo)
    return (mo + math.log(so)) - m


@njit(cache=True, error_model="numpy")
def _log_sigmoid(x):
    return min(x, 0.0) - math.log1p(math.exp(-abs(x)))


@njit(cache=True, error_model="numpy")
def _psi(s):
    d = math.expm1(s)
    return 1.0 if d == 0.0 else s / d


@njit(cache=True, error_model="numpy")
def _phi(kind, gamma, eps, s, p, u, lu, psi):
    """(phi(s), phi'(s)) of one class from s = log p, p, u = 1 - p, log u, psi."""
    if kind == FOCAL:
        ug = math.exp(gamma * lu)
        return -ug * s, -ug * (1.0 + gamma * p * psi)
    if kind == POLY1:
        return -s + eps * u, -1.0 - eps * p
    return -s, -1.0


@njit(cache=True, error_model="numpy")
def _curv(kind, gamma, eps, s, p, lu, psi):
    """e = phi''(s) u^2 of one class (finite as p -> 1, where phi'' may not be): focal
    gamma p u^(gamma + 1) (s + 2 + (gamma - 1) p psi), poly1 -epsilon p u^2, KL 0."""
    if kind == FOCAL:
        return gamma * p * math.exp((gamma + 1.0) * lu) * (s + 2.0 + (gamma - 1.0) * p * psi)
    if kind == POLY1:
        return -eps * p * math.exp(2.0 * lu)
    return 0.0


@njit(cache=True, error_model="numpy")
def _hess_diag_row(h, row, e, dd, inv, lse, cs, bsum, dsum, e_st, p_st, u_st, lu_st, wi):
    """h_c = (-B p_c u_c + d_c (1 - 2 p_c) + p_c^2 D + e_* jhat_c^2) w, the diagonal of
    :mod:`lossgrad.losses._softmax_family`'s Hessian: jhat_c = -p_c / u_* off c*, formed as
    e^{s_c - log u_*} (s_c = f_c - lse); at c* (-B p_* u_* + p_*^2 D + e_*) w.  Off c*,
    p_c <= 1/2."""
    if e_st != 0.0:
        for c in range(row.size):
            p = e[c] * inv
            jh = fm.exp((np.float64(row[c]) - lse) - lu_st)
            h[c] = (-bsum * p * (1.0 - p) + dd[c] * (1.0 - 2.0 * p) + p * p * dsum + e_st * jh * jh) * wi
    else:
        for c in range(row.size):
            p = e[c] * inv
            h[c] = (-bsum * p * (1.0 - p) + dd[c] * (1.0 - 2.0 * p) + p * p * dsum) * wi
    h[cs] = (-bsum * p_st * u_st + p_st * p_st * dsum + e_st) * wi


@njit(cache=True, nogil=True, error_model="numpy")
def _rows(kind, f, y, labels, cw, weighted, gamma, eps, log_target, sw, has_sw, ptol, want_g, want_h,
          v_out, g_out, h_out, counts):
    n, k = f.shape
    e = np.empty(k)
    b = np.empty(k)
    dd = np.zeros(k)  # d_c (the curvature off c*); KL never writes it, a label row one entry
    bad_f = bad_y = bad_w = 0
    for i in range(n):
        row = f[i]
        wi = 1.0
        if has_sw:
            wi = np.float64(sw[i])
            bad_w += 1 if (wi < 0.0) | (wi - wi != 0.0) else 0
        m = _row_max(row)
        so, ties, nonfinite = _row_exp(row, e, m)
        bad_f += nonfinite
        so += ties - 1.0  # the ties with c* count e^0 = 1 each
        cs = _first_max(row, m)
        t = math.log(so) if so >= _TINY else _t_shifted(row, cs, m)
        lse = m + math.log1p(so)
        inv = 1.0 / (1.0 + so)
        s_st = _log_sigmoid(-t)
        lu_st = _log_sigmoid(t)
        p_st = math.exp(s_st)
        u_st = math.exp(lu_st)
        if labels:
            lab = np.float64(y[i, 0])
            if not ((lab >= 0) & (lab < k) & (lab == math.floor(lab))):
                bad_y += 1
                lab = 0.0
            yl = int(lab)
            a = cw[yl] if weighted else 1.0
            if yl == cs:
                psi = _psi(s_st)
                phi, dphi = _phi(kind, gamma, eps, s_st, p_st, u_st, lu_st, psi)
                curv = _curv(kind, gamma, eps, s_st, p_st, lu_st, psi) if want_h else 0.0
            else:
                s = np.float64(row[yl]) - lse
                p = e[yl] * inv
                lu = math.log1p(-p)
                psi = _psi(s)
                phi, dphi = _phi(kind, gamma, eps, s, p, 1.0 - p, lu, psi)
                curv = _curv(kind, gamma, eps, s, p, lu, psi) if want_h else 0.0
            v_out[i] = (a * phi) * wi
            bb = a * dphi
            if want_g:
                g = g_out[i]
                c0 = -bb * inv
                for c in range(k):
                    g[c] = (c0 * e[c]) * wi
                if yl == cs:
                    g[cs] = (u_st * bb) * wi
                else:
                    g[yl] = (bb - (e[yl] * inv) * bb) * wi
                    g[cs] = (u_st * bb - bb) * wi
            if want_h:
                if yl == cs:  # a_* e_* jhat jhat^T: the curvature sits at the arg-max
                    _hess_diag_row(h_out[i], row, e, dd, inv, lse, cs, bb, 0.0, a * curv, p_st, u_st, lu_st, wi)
                else:  # d_y = a e_y / u_y^2 at the label only
                    u = 1.0 - e[yl] * inv
                    dy = a * curv / (u * u)
                    dd[yl] = dy
                    _hess_diag_row(h_out[i], row, e, dd, inv, lse, cs, bb, dy, 0.0, p_st, u_st, lu_st, wi)
                    dd[yl] = 0.0
            continue
        q = y[i]
        const = dsum = 0.0
        if kind == KL:
            val, rest, qsum, const, badq = kl_probs(row, q, b, lse, cs, log_target, ptol)
            a_st = math.exp(np.float64(q[cs])) if log_target else np.float64(q[cs])
            if log_target:
                badq += 1 if abs(math.log(qsum)) > ptol else 0
            else:
                badq += 1 if abs(qsum - 1.0) > ptol else 0
        else:
            if kind == FOCAL:
                val, rest, dsum, qsum, badq = focal_probs(row, q, e, b, dd, inv, lse, cs, cw, weighted, gamma)
            else:
                val, rest, dsum, qsum, badq = poly1_probs(row, q, e, b, dd, inv, lse, cs, eps)
            a_st = np.float64(q[cs]) * (cw[cs] if weighted else 1.0)
            badq += 1 if abs(qsum - 1.0) > ptol else 0
        bad_y += badq
        psi = _psi(s_st)
        phi, dphi = _phi(kind, gamma, eps, s_st, p_st, u_st, lu_st, psi)
        b_st = a_st * dphi
        val += a_st * phi if a_st != 0.0 else 0.0
        v_out[i] = (val + const) * wi
        bsum = rest + b_st
        if want_g:
            g = g_out[i]
            for c in range(k):
                g[c] = (b[c] - (e[c] * inv) * bsum) * wi
            g[cs] = (u_st * bsum - rest) * wi
        if want_h:
            e_st = a_st * _curv(kind, gamma, eps, s_st, p_st, lu_st, psi) if a_st != 0.0 else 0.0
            _hess_diag_row(h_out[i], row, e, dd, inv, lse, cs, bsum, dsum, e_st, p_st, u_st, lu_st, wi)
    counts[0] = bad_f
    counts[1] = bad_y
    counts[2] = bad_w


def _kernel(*args):  # pragma: no cover - bound per parallel wrapper: _rows
    raise NotImplementedError


def _parallel_template(kind, f, y, labels, cw, weighted, gamma, eps, log_target, sw, has_sw, ptol, want_g, want_h,
                       v_out, g_out, h_out, counts):
    """``_kernel`` (:func:`_rows`) over counts.shape[0] blocks of rows, one per thread of
    Numba's threading layer (see :mod:`._parallel`); the counts summed into counts[0]."""
    k = counts.shape[0]
    for i in prange(k):
        lo, hi = part_bounds(f.shape[0], i, k, 1)
        _kernel(kind, f[lo:hi], y[lo:hi], labels, cw, weighted, gamma, eps, log_target, sw[lo:hi] if has_sw else sw,
                has_sw, ptol, want_g, want_h, v_out[lo:hi], g_out[lo:hi], h_out[lo:hi], counts[i])
    sum_parts(counts)


_PARALLEL: dict[Any, Any] = {}


def softmax_family_rows(
    kind: int, f: np.ndarray, y: np.ndarray, *, class_weight: np.ndarray | None = None, gamma: float = 0.0,
    epsilon: float = 0.0, log_target: bool = False, sample_weight: np.ndarray | None = None,
    prob_tol: float = 1e-6, want_grad: bool = True, want_hess_diag: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """(value (N,), grad (N, K) or None, Hessian diagonal (N, K) or None, counts) of loss
    ``kind`` (FOCAL, POLY1, KL) on logits ``f`` (N, K) float32/float64.

    ``y``: (N,) class labels (focal, poly1) or (N, K) target rows (probabilities, or
    log-probabilities for KL with ``log_target``), in f's dtype; ``class_weight``: focal's
    alpha.  counts = [non-finite logits, invalid targets, invalid weights (non-finite
    or negative)], with the row-sum and log-target tests at ``prob_tol``.  No check raises
    here: the caller decides.
    """
    f = np.ascontiguousarray(f)
    if f.dtype not in (np.float32, np.float64) or f.ndim != 2:
        raise TypeError("softmax_family_rows: f must be a 2-d float32 or float64 array")
    n, k = f.shape
    labels = y.ndim == 1
    yy = np.ascontiguousarray(y.reshape(n, 1) if labels else y, dtype=f.dtype)
    cw = np.ones(k) if class_weight is None else np.ascontiguousarray(class_weight, dtype=np.float64)
    sw = np.ones(1, f.dtype) if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=f.dtype)
    v = _output_pool.empty(n, f.dtype)
    g = _output_pool.empty((n, k) if want_grad else (n, 0), f.dtype)
    h = _output_pool.empty((n, k) if want_hess_diag else (n, 0), f.dtype)
    args = (cw, class_weight is not None, float(gamma), float(epsilon), bool(log_target))
    layer, nt = split_plan(n * k, n)
    if layer:  # Numba's threading layer: blocks of rows, a hand-off of 1-2 us
        counts = np.zeros((nt, 3), np.int64)
        parallel_copy(_parallel_template, _rows, _PARALLEL)(
            kind, f, yy, labels, *args, sw, sample_weight is not None, float(prob_tol), want_grad, want_hess_diag,
            v, g, h, counts)
        return v, (g if want_grad else None), (h if want_hess_diag else None), counts[0]  # summed by the wrapper
    counts = np.zeros((nt, 3), np.int64)

    def run(i: int, lo: int, hi: int) -> None:
        _rows(kind, f[lo:hi], yy[lo:hi], labels, *args, sw if sample_weight is None else sw[lo:hi],
              sample_weight is not None, float(prob_tol), want_grad, want_hess_diag, v[lo:hi], g[lo:hi],
              h[lo:hi], counts[i])

    run_in_parts(n, nt, run)
    return v, (g if want_grad else None), (h if want_hess_diag else None), counts.sum(axis=0)


# ---------------------------------------------------------------- dispatch


def _supports(loss: Any, ops: tuple[str, ...]) -> bool:
    return bool(ops) and set(ops) <= {"value", "grad", "hess_diag"}


def _params(kind: int, loss: Any, dt: type) -> dict:
    """The kernel's parameters, rounded to y_pred's dtype as the reference's arithmetic does."""
    if kind == FOCAL:
        alpha = None if loss.alpha is None else np.asarray(loss.alpha, dt).astype(np.float64)
        return {"gamma": float(dt(loss.gamma)), "class_weight": alpha}
    if kind == POLY1:
        return {"epsilon": float(dt(loss.epsilon))}
    return {"log_target": loss.log_target}


def _evaluate(loss: Any, ops: tuple[str, ...], y_true: Any, y_pred: Any, sample_weight: Any) -> tuple | None:
    xp, f, _ = V.as_prediction(y_pred, name="y_pred")
    if not isinstance(f, np.ndarray) or f.dtype not in (np.float32, np.float64) or f.ndim != 2:
        return None
    n, k = f.shape
    try:  # conversions only (the data checks run in the kernel's pass)
        y = V.as_target(y_true, xp, f, name="y_true", same_shape=False)
        w = None if sample_weight is None else V.as_target(sample_weight, xp, f, name="sample_weight",
                                                           same_shape=False)
        shapes_ok = (w is None or w.ndim == 0 or w.shape == (n,)) and (
            (loss.accepts_labels and y.ndim == 1 and y.shape[0] == n) or (y.ndim == 2 and y.shape == f.shape))
    except (TypeError, ValueError):
        shapes_ok = False
    if k < loss.min_classes or not shapes_ok:
        loss._prepare(y_true, y_pred, sample_weight)  # raises the reference's own (first) error
        return None  # pragma: no cover - the reference accepted it: let it compute
    loss._check_classes(k)
    if w is not None and w.ndim == 0:
        w = np.broadcast_to(w, (n,))
    kind = _KIND[type(loss)]
    v, g, h, counts = softmax_family_rows(kind, f, y, sample_weight=w, want_grad="grad" in ops,
                                          want_hess_diag="hess_diag" in ops, prob_tol=0.5 * prob_tolerance(np, f.dtype),
                                          **_params(kind, loss, f.dtype.type))
    if not get_config().assume_valid and counts.any():
        loss._prepare(y_true, y_pred, sample_weight)  # raises the reference's own error
        return None  # the reference accepted what the kernel flagged: let it compute
    return tuple(v if op == "value" else g if op == "grad" else h for op in ops)


def _kernels() -> tuple[dict[type, int], dict[type, tuple[Callable, Callable]]]:
    from ..losses.kl_divergence import KLDivergence
    from ..losses.multiclass import Focal, Poly1

    kinds = {Focal: FOCAL, Poly1: POLY1, KLDivergence: KL}
    return kinds, {cls: (_supports, _evaluate) for cls in kinds}


_KIND, KERNELS = _kernels()
"""KERNELS: loss class -> (supports(loss, ops), evaluate(loss, ops, y_true, y_pred,
sample_weight)), read by :mod:`._rowdispatch`."""
