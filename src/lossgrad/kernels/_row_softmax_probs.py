r"""The per-class passes of the focal / poly1 / kl_divergence row kernels on a probability row.

A probability (or, for KL, log-probability) target row q makes every class carry a
coefficient a_c (focal: alpha_c q_c; poly1: q_c; KL: q_c or e^{q_c}), so the value,
gradient and Hessian-diagonal terms need transcendental work per class.  Each pass below
runs over the row once (compiled with ``reassoc``, so its sums vectorise) and writes,
for every class c other than the first arg-max c* (see :mod:`._row_softmax`):

* b_c = a_c phi'(s_c) into ``b`` (0 at c*), with their sum and the value's terms;
* d_c = a_c phi''(s_c) (the curvature's coefficient e_c / u_c^2 of
  :mod:`lossgrad.losses._softmax_family`) into ``dd`` (0 at c*), with its sum D, for the
  Hessian diagonal (KL has phi'' = 0: no ``dd``).

With p = e_c / (1 + so) <= 1/2 off c*, u = 1 - p, s = f_c - lse (the caller's lse):

* focal: phi = -u^gamma s, b = -a u^gamma (1 - gamma p s / u) (p psi = -p s / u),
  d = a gamma p u^(gamma - 1) (s + 2 - (gamma - 1) p s / u), u^gamma = e^{-gamma log1p01(p / u)};
* poly1: phi = -s + epsilon u, b = -a (1 + epsilon p), d = -a epsilon p;
* KL: phi = -s, b = -a, plus the constant sum_c q_c log q_c (0 log 0 = 0; the log of
  :func:`._fastmath.log_normal`), or sum_c e^{y_c} y_c with ``log_target``.

Each pass also counts the invalid target entries (outside [0, 1], NaN; for a
log-target, above ``ytol`` or NaN) and returns sum_c q_c (or sum_c e^{y_c}) for the
row-sum test.  Reference: T.-Y. Lin et al. (2017), Focal loss for dense object
detection; Z. Leng et al. (2022), PolyLoss.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import _fastmath as fm
from ._driver import not_probability

__all__ = ["focal_probs", "poly1_probs", "kl_probs"]


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def focal_probs(row, q, e, b, dd, inv, lse, cs, cw, weighted, gamma):
    """(the value's sum over c != c*, sum b_c, sum d_c, sum q_c, invalid q count)."""
    val = bsum = dsum = qsum = 0.0
    bad = 0
    for c in range(row.size):
        qc = np.float64(q[c])
        bad += not_probability(qc)
        qsum += qc
        a = qc * (cw[c] if weighted else 1.0)
        p = e[c] * inv
        u = 1.0 - p
        s = np.float64(row[c]) - lse
        ug = fm.exp(gamma * -fm.log1p01(p / u))  # u^gamma, p <= 1/2 off c*
        ps_u = p * s / u
        other = c != cs
        bc = -a * ug * (1.0 - gamma * ps_u) if other else 0.0
        dc = a * gamma * p * (ug / u) * (s + 2.0 - (gamma - 1.0) * ps_u) if other else 0.0
        b[c] = bc
        dd[c] = dc
        bsum += bc
        dsum += dc
        val += -a * ug * s if other else 0.0
    return val, bsum, dsum, qsum, bad


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def poly1_probs(row, q, e, b, dd, inv, lse, cs, eps):
    """(the value's sum over c != c*, sum b_c, sum d_c, sum q_c, invalid q count)."""
    val = bsum = dsum = qsum = 0.0
    bad = 0
    for c in range(row.size):
        qc = np.float64(q[c])
        bad += not_probability(qc)
        qsum += qc
        p = e[c] * inv
        s = np.float64(row[c]) - lse
        other = c != cs
        bc = -qc * (1.0 + eps * p) if other else 0.0
        dc = -qc * eps * p if other else 0.0
        b[c] = bc
        dd[c] = dc
        bsum += bc
        dsum += dc
        val += qc * (eps * (1.0 - p) - s) if other else 0.0
    return val, bsum, dsum, qsum, bad


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def kl_probs(row, q, b, lse, cs, log_target, ytol):
    """(sum_{c != c*} a_c (-s_c), sum_{c != c*} b_c, sum a_c, constant, invalid count),
    a = q or e^y (log_target); the constant is sum q log q or sum e^y y.  (A subnormal q
    reads as 2^-1022 (1 + ...) in the log: q log q is then off by < 1e-306.)"""
    val = bsum = asum = const = 0.0
    bad = 0
    for c in range(row.size):
        yc = np.float64(q[c])
        if log_target:
            bad += 1 if (yc > ytol) | (yc - yc != 0.0) else 0
            a = fm.exp(yc)
            const += a * yc
        else:
            bad += not_probability(yc)
            a = yc
            const += yc * fm.log_normal(yc) if yc > 0.0 else 0.0
        asum += a
        other = c != cs
        bc = -a if other else 0.0
        b[c] = bc
        bsum += bc
        val += a * (lse - np.float64(row[c])) if other else 0.0
    return val, bsum, asum, const, bad
