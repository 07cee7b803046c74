r"""Shared machinery of the losses that are sums of functions of the log-softmax.

A loss of this family is  l(f) = sum_c a_c phi(s_c)  with s = log softmax(f) and a (N, K)
non-negative target coefficients (class weight times smoothed target).  With
p = softmax(f), u = 1 - p, J = I - 1 p^T (ds_c/df_k = delta_ck - p_k):

    grad = b - p B,                                    b = a phi'(s), B = sum_c b_c
    hess = J^T diag(a phi''(s)) J - B (diag(p) - p p^T)

``phi''(s)`` may be infinite where p_c -> 1 (focal with gamma < 1) while its product with
the rows of J stays finite, because row c of J is u_c times a bounded vector.  The
subclass therefore supplies e = phi''(s) u^2 (finite); the class of largest score (the
only one with p_c > 1/2) enters as e_* jhat jhat^T with jhat = J_{c*} / u_{c*}, where
jhat_k = 1 at c* and -p_k / u_{c*} = -exp(s_k - log u_{c*}) elsewhere; every other class
as (e_c / u_c^2) j_c j_c^T with u_c >= 1/2.  Every quantity is formed from log p and
log(1 - p), computed without cancellation (:func:`softmax_parts`).
"""

from __future__ import annotations

import math
from typing import Any

from .. import _xp
from .._row import RowLoss, RowTarget

Array = Any


def softmax_parts(xp: Any, f: Array) -> dict[str, Array]:
    """log p, log(1 - p), p, lse and the one-hot of the arg-max, all stable.

    Everything comes from the shifted exponentials e_j = e^{f_j - m}, m = max_j f_j (so
    e = 1 at the arg-max c*), and R = sum_{j != c*} e_j: lse = m + log1p(R), p = e / (1 + R);
    with t = log R (= (m' - m) + log sum_{j != c*} e^{f_j - m'}, m' the largest other
    logit, finite where R underflows), at c* log p = log_sigmoid(-t) and log(1 - p) = log_sigmoid(t) (no
    cancellation near p = 1); for the others (p <= 1/2) log p = (f - m) - log1p(R) and
    log(1 - p) = log1p(-p).  Nothing is computed as f - lse: lse carries a rounding of
    the size of the logits (an offset of 300 would cost p 18 ulps).
    """
    B = softmax_probs(xp, f)
    m, M, rest, top = B["m"], B["M"], B["rest"], B["top"]
    zero = xp.zeros_like(f)
    z = f - m
    log_total = xp.log1p(rest + (top - 1.0))  # log sum_j e_j
    # t = log R from the other classes' own shift (finite even where R underflows)
    f_other = xp.where(M, xp.full_like(f, -math.inf), f)
    m_other = xp.max(f_other, axis=-1, keepdims=True)
    m_other = xp.where(xp.isfinite(m_other), m_other, m)
    sum_other = xp.sum(xp.exp(f_other - m_other), axis=-1, keepdims=True)
    positive = sum_other > 0
    log_other = xp.log(xp.where(positive, sum_other, xp.ones_like(sum_other)))
    t = xp.where(positive, (m_other - m) + log_other, xp.full_like(rest, -math.inf))
    s = xp.where(M, _xp.log_sigmoid(xp, -t), z - log_total)
    p = B["p"]
    log_u = xp.where(M, _xp.log_sigmoid(xp, t), xp.log1p(-xp.where(M, zero, p)))
    return {"s": s, "log_u": log_u, "p": p, "lse": (m + log_total)[:, 0], "M": M}


def softmax_probs(xp: Any, f: Array) -> dict[str, Array]:
    """p = softmax(f) and what it is made of, the first steps of :func:`softmax_parts`
    (the same numbers): the row max m (0 where not finite), the one-hot M of the
    arg-max, the shifted exponentials e = e^{f - m}, R = sum_{j != c*} e_j ("rest") and
    e_{c*} ("top", 1 for finite logits); p = e / (top + R).  What the Hessian-vector
    product of the cross-entropy needs, without the logarithms of the other parts."""
    k = f.shape[-1]
    fmax = xp.max(f, axis=-1, keepdims=True)
    m = xp.where(xp.isfinite(fmax), fmax, xp.zeros_like(fmax))
    idx = xp.argmax(f, axis=-1)
    cols = xp.arange(k, device=_device(f))
    M = cols[None, :] == xp.astype(idx, cols.dtype)[:, None]
    zero = xp.zeros_like(f)
    e = xp.exp(f - m)
    rest = xp.sum(xp.where(M, zero, e), axis=-1, keepdims=True)  # R
    top = xp.sum(xp.where(M, e, zero), axis=-1, keepdims=True)  # 1 (finite logits)
    return {"m": m, "M": M, "e": e, "rest": rest, "top": top, "p": e / (top + rest)}


def _device(x: Array) -> Any:
    import array_api_compat

    return array_api_compat.device(x)


class LogSoftmaxLoss(RowLoss):
    """Base of the losses sum_c a_c phi(s_c) (see the module docstring).

    Subclasses give ``_coef(xp, t, f)`` (the (N, K) coefficients a) and
    ``_phi_parts(xp, P, ops)`` returning phi, phi' and e = phi'' (1 - p)^2 as needed;
    ``_extra`` may add a term depending on f only (z-loss) or a constant (KL).
    """

    def _coef(self, xp: Any, t: RowTarget, f: Array) -> Array:  # pragma: no cover
        raise NotImplementedError

    def _phi_parts(self, xp: Any, P: dict[str, Array], want: set[str]) -> dict[str, Array]:  # pragma: no cover
        raise NotImplementedError

    def _constant(self, xp: Any, t: RowTarget, f: Array) -> Array | None:
        """A per-row term independent of f (the target's negative entropy in KL)."""
        return None

    def _evaluate(self, xp: Any, t: RowTarget, f: Array, ops: tuple[str, ...]) -> tuple[Array, ...]:
        return self._evaluate_v(xp, t, f, ops, None)

    def _hvp(self, xp: Any, t: RowTarget, f: Array, v: Array) -> Array:
        return self._evaluate_v(xp, t, f, ("hvp",), v)[0]

    def _evaluate_v(self, xp: Any, t: RowTarget, f: Array, ops: tuple[str, ...], v: Array | None) -> tuple[Array, ...]:
        P = softmax_parts(xp, f)
        a = self._coef(xp, t, f)
        want = set()
        if "value" in ops:
            want.add("phi")
        if set(ops) & {"grad", "hess", "hess_diag", "hvp"}:
            want.add("dphi")
        if set(ops) & {"hess", "hess_diag", "hvp"}:
            want.add("e")
        ph = self._phi_parts(xp, P, want)
        p, M = P["p"], P["M"]
        out: dict[str, Array] = {}
        if "value" in ops:
            val = xp.sum(_weighted(xp, a, ph["phi"]), axis=-1)
            const = self._constant(xp, t, f)
            out["value"] = val if const is None else val + const
        if "dphi" in ph:
            b = a * ph["dphi"]
            B = xp.sum(b, axis=-1, keepdims=True)
            u = xp.exp(P["log_u"])
            if "grad" in ops:
                # at the arg-max, b - p B = u B - sum_{k != c*} b_k (no cancellation as p -> 1)
                rest = xp.sum(xp.where(M, xp.zeros_like(b), b), axis=-1, keepdims=True)
                out["grad"] = xp.where(M, u * B - rest, b - p * B)
        if "e" in ph:
            eye = xp.eye(f.shape[-1], dtype=f.dtype, device=_device(f))
            curved = ph["e"] is not None
            if curved:
                ae = a * ph["e"]
                zero = xp.zeros_like(ae)
                # other classes: d_c = a_c e_c / u_c^2 (u_c >= 1/2); arg-max class: e_* jhat jhat^T
                d = xp.where(M, zero, ae * xp.exp(-2.0 * xp.where(M, zero, P["log_u"])))
                D = xp.sum(d, axis=-1, keepdims=True)
                e_star = xp.sum(xp.where(M, ae, zero), axis=-1, keepdims=True)
                log_u_star = xp.sum(xp.where(M, P["log_u"], zero), axis=-1, keepdims=True)
                jhat = xp.where(M, xp.ones_like(p), -xp.exp(xp.where(M, zero, P["s"] - log_u_star)))
            if "hess" in ops:
                cov = eye[None, :, :] * (p * u)[:, None, :] - (1.0 - eye[None, :, :]) * (p[:, :, None] * p[:, None, :])
                H = -B[:, :, None] * cov
                if curved:
                    H = H + eye[None, :, :] * d[:, None, :]
                    H = H - d[:, :, None] * p[:, None, :] - p[:, :, None] * d[:, None, :]
                    H = H + D[:, :, None] * p[:, :, None] * p[:, None, :]
                    H = H + e_star[:, :, None] * jhat[:, :, None] * jhat[:, None, :]
                out["hess"] = H
            if "hess_diag" in ops:
                hd = -B * p * u
                if curved:
                    hd = hd + d * (1.0 - 2.0 * p) + p * p * D + e_star * jhat * jhat
                out["hess_diag"] = hd
            if "hvp" in ops:
                cv = _centered(xp, p, M, v)
                hv = -B * p * cv
                if curved:
                    dv = d * cv
                    hv = hv + dv - p * xp.sum(dv, axis=-1, keepdims=True)
                    hv = hv + e_star * jhat * xp.sum(jhat * v, axis=-1, keepdims=True)
                out["hvp"] = hv
        return tuple(out[o] for o in ops)


def _centered(xp: Any, p: Array, M: Array, v: Array) -> Array:
    """v - p.v per row; at the arg-max as sum_k p_k (v_c* - v_k), exact as p_c* -> 1."""
    pv = xp.sum(p * v, axis=-1, keepdims=True)
    v_star = xp.sum(xp.where(M, v, xp.zeros_like(v)), axis=-1, keepdims=True)
    c_star = xp.sum(p * (v_star - v), axis=-1, keepdims=True)
    return xp.where(M, c_star, v - pv)


def _weighted(xp: Any, a: Array, x: Array) -> Array:
    """a * x with 0 * x = 0 even where x is infinite."""
    return xp.where(a == 0, xp.zeros_like(a), a * x)


def psi(xp: Any, s: Array) -> Array:
    """s / expm1(s) = -log p / (1 - p) for s = log p <= 0, with its limit 1 at s = 0."""
    return _xp.safe_divide(xp, s, xp.expm1(s), 1.0)
