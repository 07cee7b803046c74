r"""Row kernel of :class:`lossgrad.Multilabel`: value, gradient and Hessian diagonal per row.

Per entry of a row (q the target row, a = pos_weight_c q_c, w the row's
``sample_weight``), with one e = exp(-|f_c|) and one log1p(e) (the vectorised ones of
:mod:`._fastmath`) and d = 1 / (1 + e):

    l = sum_c [a softplus(-f_c) + (1 - q_c) softplus(f_c)],  softplus(+-x) = max(+-x, 0) + log1p(e)
    g_c = (1 - q_c) sigma(f_c) - a sigma(-f_c)                 sigma = d or e d by the sign of f_c
    h_c = (a + 1 - q_c) sigma(f_c) sigma(-f_c) = (a + 1 - q_c) e d^2

all times w; the Hessian is diagonal, so h is all of it.  One loop over the row gives the
value's terms and g; h, when asked for, takes a second loop over the row (in L1 by then).  Computed in f's dtype as the
reference (float32 fills twice the SIMD lanes), the row sum in float64: the value
differs from the reference's by the order of the sum (a few ulps of the row's largest
term), every entry by a few ulps (exp/log1p are not NumPy's).

Served: labels per column or probabilities, ``pos_weight``, ``sample_weight``, float32
and float64, the ops value, grad, hess_diag and their combinations (``grad_hess_diag``
is what one-vs-rest gradient boosting takes).  The full Hessian and its products use
the reference.  Validation is counted in the pass (non-finite f, q outside [0, 1],
invalid weights) as in :mod:`._row_margin`, whose dispatch helpers this module uses.

Reference: PyTorch ``BCEWithLogitsLoss`` (pos_weight); the reference implementation
:mod:`lossgrad.losses.multilabel`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from . import _fastmath as fm
from ._driver import not_probability
from ._row_margin import _sum, _weight, finish, launch, row_inputs

__all__ = ["KERNELS"]


@njit(cache=True, error_model="numpy")
def _multilabel_row(row, q, pw, wi, g, buf):
    """buf_c = the loss term of column c, g = the weighted gradient row, in f's dtype (as the
    reference; float32 fills twice the SIMD lanes); returns (non-finite f, q outside [0, 1])."""
    nf = False
    nq = False
    one = fm.one(row[0])
    zero = fm.zero(one)
    for j in range(row.size):
        x = row[j]
        qc = q[j]
        a = qc * pw[j]
        b = one - qc
        e = fm.exp(-abs(x))
        lg = fm.log1p01(e)
        d = one / (one + e)
        ed = e * d
        sp = x if x > zero else zero  # softplus(x) = max(x, 0) + log1p(e), e = exp(-|x|)
        sn = -x if x < zero else zero  # softplus(-x) = max(-x, 0) + log1p(e)
        buf[j] = a * (sn + lg) + b * (sp + lg)
        sig = d if x >= zero else ed  # sigma(x); sigma(-x) is the other one
        sgn = ed if x >= zero else d
        g[j] = (b * sig - a * sgn) * wi
        nf |= x - x != zero
        nq |= not_probability(qc)
    return nf, nq


@njit(cache=True, error_model="numpy")
def _multilabel_hess_row(row, q, pw, wi, h):
    """h_c = (a + 1 - q_c) e d^2 w, e = exp(-|f_c|), d = 1 / (1 + e): a second loop over the
    row (in L1 by then), so that the value and gradient keep their loop unchanged (with h
    stored in that loop, value_grad measured 10% (float64) to 25% (float32) slower in
    cache, even when h was not asked for)."""
    one = fm.one(row[0])
    for j in range(row.size):
        qc = q[j]
        e = fm.exp(-abs(row[j]))
        d = one / (one + e)
        h[j] = ((qc * pw[j] + (one - qc)) * (e * d * d)) * wi


@njit(cache=True, nogil=True, error_model="numpy")
def _multilabel_rows(f, y, pw, sw, has_sw, v_out, g_out, h_out, want_g, want_h, counts):
    n, k = f.shape
    buf = np.empty(k, f.dtype)
    scratch = np.empty(k, f.dtype)
    for i in range(n):
        g = g_out[i] if want_g else scratch
        wi, bw = _weight(sw, i, has_sw, f[i, 0])
        nf, nq = _multilabel_row(f[i], y[i], pw, wi, g, buf)
        if want_h:
            _multilabel_hess_row(f[i], y[i], pw, wi, h_out[i])
        v_out[i] = fm.like(wi, _sum(buf)) * wi
        counts[0] += 1 if nf else 0
        counts[1] += 1 if nq else 0
        counts[2] += 1 if bw else 0


def _supports(loss: Any, ops: tuple[str, ...]) -> bool:
    return bool(ops) and set(ops) <= {"value", "grad", "hess_diag"}


def _multilabel(loss: Any, ops: tuple[str, ...], y_true: Any, y_pred: Any, sample_weight: Any) -> tuple | None:
    inputs = row_inputs(loss, y_true, y_pred, sample_weight, False, True)
    if inputs is None:
        return None
    f, y, _, w = inputs
    k = f.shape[1]
    pw = np.ones(k, f.dtype) if loss.pos_weight is None else np.asarray(loss.pos_weight, f.dtype)
    out = launch(_multilabel_rows, f, y, (pw,), w, "grad" in ops, "hess_diag" in ops)
    return finish(loss, ops, out, y_true, y_pred, sample_weight)


def _table() -> dict[type, tuple[Callable, Callable]]:
    from ..losses.multilabel import Multilabel

    return {Multilabel: (_supports, _multilabel)}


KERNELS: dict[type, tuple[Callable, Callable]] = _table()
"""KERNELS: loss class -> (supports(loss, ops), evaluate(loss, ops, y_true, y_pred,
sample_weight)), read by :mod:`._rowdispatch`."""
