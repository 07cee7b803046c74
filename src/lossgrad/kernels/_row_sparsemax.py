r"""Row kernel of the sparsemax loss (:class:`lossgrad.SparsemaxLoss`): value and gradient per row.

For a row f (K scores), z = f - max(f) (in f's dtype, as the reference), the threshold
tau of Martins & Astudillo's Algorithm 1 on the sorted z_(1) >= z_(2) >= ...:

    c_k = z_(1) + ... + z_(k)  (in f's dtype, sequentially: NumPy's cumsum)
    S = {k : 1 + k z_(k) > c_k}  (in f's dtype),   tau = (sum_{k in S} z_(k) - 1) / |S|
    p = max(z - tau, 0)                                          (sparsemax(z))
    value = sum_j (p_j - q_j) z_j + (||q||^2 - ||p||^2) / 2,   grad = p - q

with q the one-hot label or the probability row; both times the row's sample_weight.
Only scores with z_j >= -1 can be in S (p_(1) = -tau <= 1; in exact arithmetic
1 + k z_(k) - c_k <= 1 + z_(k)), so a pass gathers them and only they are sorted: the
sorted candidates are the prefix of the reference's sorted row, so the support test
is evaluated on the same numbers in the same arithmetic.  The test at the next
position (the largest score left out) is checked too; should rounding make it pass,
the whole row is sorted.  tau, p and the value are then computed in float64 (the
reference: in f's dtype, with NumPy's pairwise sums): a few ulps of 1 (the gradient)
and of max |z| (the value).  The value's sums run in a loop compiled with
``reassoc`` over the stored p, so reassociation never touches (f_j - m) - tau.
Per row: a max pass (with the finiteness check), a gather pass, the sort of the
candidates (insertion sort up to 32 of them, else Numba's), a gradient pass and a
sum pass, all but the gather and the sort vectorised.

Labels and probability rows, float32/float64, ``sample_weight``: all served, for the
ops value, grad and value+grad; the Hessian and its products use the reference.
Non-finite scores, invalid labels/probability rows and invalid weights are counted in
the pass (see :mod:`._row_margin`).

Reference: A. Martins & R. Astudillo (2016), From softmax to sparsemax: a sparse model
of attention and multi-label classification, ICML.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from . import _fastmath as fm
from ._row_margin import _I64_MIN, _label, _row_max, _weight, finish, launch, row_inputs

__all__ = ["sparsemax_evaluate"]

#: Scores z_j = f_j - max f below this are not sorted (no support can reach them); a
#: higher cut is still exact, through the check at the next position (the tests use one).
_CUT = -1.0


@njit(cache=True, error_model="numpy")
def _gather(row, m, thresh, cand):
    """cand[:c] = the z_j = f_j - m >= thresh (f's dtype), in row order; returns c.  The
    store is unconditional (no mispredicted branch)."""
    c = 0
    for j in range(row.size):
        z = row[j] - m
        cand[c] = z
        c += 1 if z >= thresh else 0
    return c


@njit(cache=True, error_model="numpy")
def _support(cand, c):
    """Sort cand[:c] (descending order read from the end) and run the reference's support
    test in f's dtype: (sum of the z_(k) in S as float64, |S|, c_c the last cumulative sum)."""
    s = cand[:c]
    if c <= 32:  # insertion sort: a few candidates are the common case
        for r in range(1, c):
            x = s[r]
            j = r - 1
            while j >= 0 and s[j] > x:
                s[j + 1] = s[j]
                j -= 1
            s[j + 1] = x
    else:
        s.sort()
    one = fm.one(cand[0])
    cs = fm.zero(one)
    tot = 0.0
    ks = 0
    for r in range(c):
        z = s[c - 1 - r]
        cs = cs + z
        if one + fm.like(one, r + 1) * z > cs:
            ks += 1
            tot += np.float64(z)
    return tot, ks, cs


@njit(cache=True, error_model="numpy")
def _grad_pass(row, m, tau, thresh, q, yl, labels, wi, g, pb):
    """p_j = max(z_j - tau, 0) in float64; g_j = (p_j - q_j) w; stores p.  Returns
    (the largest z_j < thresh as float64 (-inf: none), whether some q_j is outside [0, 1])."""
    w = np.float64(wi)
    nq = False
    nk = _I64_MIN
    for j in range(row.size):
        zn = row[j] - m
        z = np.float64(zn)
        key = fm.order_key(z)
        nk = max(nk, key if zn < thresh else _I64_MIN)
        p = z - tau
        p = p if p > 0.0 else 0.0
        if labels:
            qj = 1.0 if j == yl else 0.0
        else:
            qj = np.float64(q[j])
            nq |= not ((qj >= 0.0) & (qj <= 1.0))
        g[j] = (p - qj) * w
        pb[j] = p
    return (fm.from_order_key(nk) if nk != _I64_MIN else -np.inf), nq


@njit(cache=True, error_model="numpy")
def _beyond(cs, c, nxt):
    """Whether the reference's support test (in f's dtype) passes at position c + 1, for
    the largest score nxt left out of the candidates."""
    if nxt == -np.inf:
        return False
    one = fm.one(cs)
    z = fm.like(one, nxt)
    return one + fm.like(one, c + 1) * z > cs + z


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _sums(row, m, pb, q, labels):
    """(sum p z, sum p^2, sum q z, sum q^2, sum q), z_j = f_j - m (f's dtype), the q sums
    for a probability row only.  The value only: the gradient is written already."""
    pz = pp = qz = qq = qs = 0.0
    for j in range(row.size):
        z = np.float64(row[j] - m)
        pz += pb[j] * z
        pp += pb[j] * pb[j]
        if not labels:
            qj = np.float64(q[j])
            qz += qj * z
            qq += qj * qj
            qs += qj
    return pz, pp, qz, qq, qs


@njit(cache=True, nogil=True, error_model="numpy")
def _sparsemax_rows(f, y, labels, ptol, cut, sw, has_sw, v_out, g_out, want_g, counts):
    n, k = f.shape
    cand = np.empty(k, f.dtype)
    pb = np.empty(k)
    scratch = np.empty(k, f.dtype)
    bad_f = bad_y = bad_w = 0
    for i in range(n):
        row = f[i]
        q = y[i]
        g = g_out[i] if want_g else scratch
        wi, bw = _weight(sw, i, has_sw, row[0])
        bad_w += 1 if bw else 0
        yl = -1
        if labels:
            yl, ok = _label(q[0], k)
            bad_y += 0 if ok else 1
        fmax, nf = _row_max(row, -1)
        m = fm.like(row[0], fmax)
        if nf:
            bad_f += 1  # the caller raises (or, with assume_valid, gets a NaN row)
            g[:] = np.nan
            v_out[i] = np.nan
            continue
        thresh = fm.like(m, cut)
        c = _gather(row, m, thresh, cand)
        tot, ks, cs = _support(cand, c)
        tau = (tot - 1.0) / ks
        nxt, nq = _grad_pass(row, m, tau, thresh, q, yl, labels, wi, g, pb)
        if _beyond(cs, c, nxt):  # rounding let the test pass beyond the candidates: sort the whole row
            thresh = fm.like(m, -np.inf)
            c = _gather(row, m, thresh, cand)
            tot, ks, cs = _support(cand, c)
            tau = (tot - 1.0) / ks
            nxt, nq = _grad_pass(row, m, tau, thresh, q, yl, labels, wi, g, pb)
        pz, pp, qz, qq, qs = _sums(row, m, pb, q, labels)
        if labels:
            qz = np.float64(row[yl] - m) if yl >= 0 else 0.0
            qq = 1.0 if yl >= 0 else 0.0
        else:
            bad_y += 1 if nq or abs(qs - 1.0) > ptol else 0
        v_out[i] = ((pz - qz) + 0.5 * (qq - pp)) * np.float64(wi)
    counts[0] += bad_f
    counts[1] += bad_y
    counts[2] += bad_w


def sparsemax_evaluate(loss: Any, ops: tuple[str, ...], y_true: Any, y_pred: Any, sample_weight: Any) -> tuple | None:
    """(value, grad) of :class:`lossgrad.SparsemaxLoss` in ``ops`` order, or None (the reference runs)."""
    inputs = row_inputs(loss, y_true, y_pred, sample_weight, True, True)
    if inputs is None:
        return None
    from .._row import prob_tolerance

    f, y, labels, w = inputs
    out = launch(_sparsemax_rows, f, y, (labels, 0.5 * prob_tolerance(np, f.dtype), _CUT), w, "grad" in ops)
    return finish(loss, ops, out, y_true, y_pred, sample_weight)
