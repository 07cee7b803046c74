r"""Second order of the pair and triplet losses: the p-norm's Hessian and the cosine's.

Two building blocks, each applied to a direction without forming a matrix:

* the Hessian of N(y) = ||y||_p (row by row).  With rho = |y| / N(y) (entries in
  [0, 1]) and delta = dN/dy = sign(y) rho^(p - 1) (:func:`._embedding_common.pnorm`),

      d^2 N / dy dy^T = (p - 1) / N  [ diag(rho^(p - 2)) - delta delta^T ]     (p > 1),

  (p = 2: (I - u u^T) / ||y||, u = y / ||y||); p = 1: 0 wherever the sign pattern of
  y is fixed (N is linear there).  Where the formula is infinite, the gradient's
  convention (the value 0 at a corner) is followed: at N(y) = 0 the Hessian returned is
  0, and for 1 < p < 2 a zero coordinate y_k = 0 (rho_k^(p - 2) = inf, the corner of
  |y_k|^p's derivative) contributes no diagonal term (its gradient entry sign(0) = 0
  drops it from the rank-one term too);

* the Hessian of F(c) with c = cos(x1, x2) = u1 . u2, u = x / ||x||.  With
  a = dF/dc, b = d^2F/dc^2 and a direction (v1, v2): du_k = (v_k - (u_k . v_k) u_k) / ||x_k||,
  dc = u2 . du1 + u1 . du2 (the directional derivative of c), and

      H v |_{x1} = through_normalize(b dc u2 + a du2) + dP1[v1] (a u2),
      H v |_{x2} = through_normalize(b dc u1 + a du1) + dP2[v2] (a u1),

  dP[v] g the curvature of the normalisation (:func:`._embedding_common.normalize_second`).

Both cost a few elementwise products and row sums: the order of the gradient.
"""

from __future__ import annotations

from typing import Any

from . import _embedding_common as C

Array = Any


def pnorm_hvp(xp: Any, y: Array, n: Array, dn: Array, p: float, dy: Array) -> Array:
    """(d^2 ||y||_p / dy dy^T) dy along the last axis, given n = ||y||_p (no keepdims) and
    dn = d||y||_p / dy as :func:`._embedding_common.pnorm` returns them (see the module
    docstring for the formula and the conventions at zeros)."""
    if p == 1.0:
        return xp.zeros_like(y)
    nk = n[..., None]
    positive = nk > 0
    safe = xp.where(positive, nk, xp.ones_like(nk))
    if p == 2.0:
        diag = dy
    else:
        rho = xp.abs(y) / safe
        if p > 2.0:
            diag = rho ** (p - 2.0) * dy
        else:  # rho^(p - 2) is infinite at a zero coordinate: that coordinate's term is 0
            nonzero = rho > 0
            diag = xp.where(nonzero, xp.where(nonzero, rho, xp.ones_like(rho)) ** (p - 2.0) * dy, xp.zeros_like(dy))
    out = (p - 1.0) * (diag - dn * xp.sum(dn * dy, axis=-1, keepdims=True)) / safe
    return xp.where(positive, out, xp.zeros_like(out))


def cosine_tangent(xp: Any, u1: Array, n1: Array, u2: Array, n2: Array, v1: Array, v2: Array) -> tuple[Array, Array, Array]:
    """(dc, du1, du2): the directional derivative of c = u1 . u2 (per row) along (v1, v2), and
    the changes of the unit vectors."""
    zero = xp.zeros_like(u1)
    du1, _ = C.normalize_second(xp, u1, n1, zero, v1)
    du2, _ = C.normalize_second(xp, u2, n2, zero, v2)
    return xp.sum(u2 * du1, axis=-1) + xp.sum(u1 * du2, axis=-1), du1, du2


def cosine_hvp(xp: Any, u1: Array, n1: Array, u2: Array, n2: Array, a: Array, b: Array,
               v1: Array, v2: Array) -> tuple[Array, Array]:
    """Hessian of sum_i F_i(c_i), c_i = cos(x1_i, x2_i), times (v1, v2), with a = dF/dc and
    b = d^2F/dc^2 per row (weights included); the formula is in the module docstring."""
    a, b = a[:, None], b[:, None]
    du1, curv1 = C.normalize_second(xp, u1, n1, a * u2, v1)
    du2, curv2 = C.normalize_second(xp, u2, n2, a * u1, v2)
    bdc = b * (xp.sum(u2 * du1, axis=-1, keepdims=True) + xp.sum(u1 * du2, axis=-1, keepdims=True))
    h1 = C.through_normalize(xp, bdc * u2 + a * du2, u1, n1) + curv1
    h2 = C.through_normalize(xp, bdc * u1 + a * du1, u2, n2) + curv2
    return h1, h2
