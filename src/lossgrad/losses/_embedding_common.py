r"""Shared pieces of the embedding family: norms, normalisation and its chain rule, softmax rows.

Conventions used by every embedding loss:

* Row vectors: embeddings are (N, D); norms and cosines act on the last axis.
* ``row_norm`` scales each row by its largest |entry| before squaring, so rows of
  magnitude 1e-200 or 1e200 neither underflow nor overflow.
* The chain rule through u = x / ||x|| is  dL/dx = (g - (g . u) u) / ||x||  with
  g = dL/du (the Jacobian of normalisation is (I - u u^T) / ||x||); its second order
  along a direction is :func:`normalize_second`.
* Cross-entropy over a row of logits s with target t: l = logsumexp(s) - s_t and
  dl/ds = softmax(s) - e_t; masked entries carry -inf (softmax 0).
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from .. import _validation as V
from .. import _xp

Array = Any


def device(x: Array) -> Any:
    return array_api_compat.device(x)


def row_norm(xp: Any, x: Array) -> Array:
    """Euclidean norm along the last axis, keepdims, without overflow or underflow."""
    m = xp.max(xp.abs(x), axis=-1, keepdims=True)
    safe = xp.where(m > 0, m, xp.ones_like(m))
    r = x / safe
    return m * xp.sqrt(xp.sum(r * r, axis=-1, keepdims=True))


def normalize(xp: Any, x: Array) -> tuple[Array, Array]:
    """(x / ||x||, ||x||) along the last axis; zero rows give u = 0 (callers forbid them)."""
    n = row_norm(xp, x)
    return x / xp.where(n > 0, n, xp.ones_like(n)), n


def through_normalize(xp: Any, g: Array, u: Array, n: Array) -> Array:
    """dL/dx from g = dL/du for u = x / ||x||:  (g - (g . u) u) / ||x||."""
    return (g - xp.sum(g * u, axis=-1, keepdims=True) * u) / xp.where(n > 0, n, xp.ones_like(n))


def normalize_second(xp: Any, u: Array, n: Array, gu: Array, v: Array) -> tuple[Array, Array]:
    """Second order through u = x / ||x|| along the direction v (rows): (du, curvature).

    du = P v with P = (I - u u^T) / ||x|| is the change of u; with gu = dL/du,

        curvature = dP[v] gu = -(du (u . gu) + u (du . gu)) / ||x|| - (gu - (u . gu) u) (u . v) / ||x||^2,

    so the Hessian-vector product of L(u(x)) is ``through_normalize(H_u du) + curvature``
    (H_u du: L's own second order in u along du).
    """
    nn = xp.where(n > 0, n, xp.ones_like(n))
    ug = xp.sum(u * gu, axis=-1, keepdims=True)
    uv = xp.sum(u * v, axis=-1, keepdims=True)
    du = (v - uv * u) / nn
    dug = xp.sum(du * gu, axis=-1, keepdims=True)
    return du, -(du * ug + u * dug) / nn - (gu - ug * u) * uv / nn / nn  # not nn * nn: overflows at 1e200


def check_class_rows(loss: Any, x: Array, rows: Array, name: str) -> None:
    """embeddings (N, D) and one row per class (C, D) (``name``: weight, centers) share D."""
    if x.shape[1] != rows.shape[1]:
        raise ValueError(f"{loss.name}: embeddings (N, D) and {name} (classes, D) must have the same D "
                         f"(embedding dimensions differ); got {tuple(x.shape)} and {tuple(rows.shape)}")


def check_nonzero_rows(loss: Any, xp: Any, n: Array, name: str) -> None:
    V.check_all(xp, n > 0, f"{loss.name}: input {name}",
                "non-zero vectors (the cosine similarity of a zero vector is undefined)")


def pnorm(xp: Any, v: Array, p: float) -> tuple[Array, Array]:
    """(||v||_p along the last axis (no keepdims), d||v||_p / dv).

    With a = |v| and n = ||v||_p:  dn/dv = sign(v) (a / n)^(p - 1)  (p = 1: sign(v)),
    computed from the ratios a / max|v| <= 1, so no power overflows.  At v = 0 the
    gradient returned is 0 (the norm has a corner there; PyTorch returns 0 too).
    """
    a = xp.abs(v)
    m = xp.max(a, axis=-1, keepdims=True)
    safe = xp.where(m > 0, m, xp.ones_like(m))
    r = a / safe
    if p == 1.0:
        n = xp.sum(a, axis=-1, keepdims=True)
        return n[..., 0], xp.sign(v)
    if p == 2.0:
        s = xp.sqrt(xp.sum(r * r, axis=-1, keepdims=True))
    else:
        s = xp.sum(r**p, axis=-1, keepdims=True) ** (1.0 / p)
    n = m * s
    ssafe = xp.where(s > 0, s, xp.ones_like(s))
    dn = xp.sign(v) * (r / ssafe) ** (p - 1.0)
    return n[..., 0], xp.where(m > 0, dn, xp.zeros_like(dn))


def onehot(xp: Any, labels: Array, n_classes: int, like: Array) -> Array:
    """Boolean (N, C) matrix with True at (i, labels[i])."""
    cols = xp.arange(n_classes, device=device(like))
    return cols[None, :] == labels[:, None]


def eye(xp: Any, n: int, like: Array) -> Array:
    """Boolean identity (n, n)."""
    idx = xp.arange(n, device=device(like))
    return idx[:, None] == idx[None, :]


def cross_entropy_rows(xp: Any, logits: Array, target: Array) -> tuple[Array, Array]:
    """(l, softmax) for rows of logits and a boolean one-hot ``target``; -inf entries allowed."""
    lse = _xp.logsumexp(xp, logits, axis=-1, keepdims=True)
    picked = xp.sum(xp.where(target, logits, xp.zeros_like(logits)), axis=-1)
    return lse[..., 0] - picked, xp.exp(logits - lse)


def as_float(xp: Any, mask: Array, like: Array) -> Array:
    return xp.astype(mask, like.dtype)


def weighted(xp: Any, v: Array, w: Array | None) -> Array:
    return v if w is None else v * w


def ones_weight(xp: Any, w: Array | None, like: Array) -> Array:
    """The per-item weight as an array (ones when None)."""
    return xp.ones_like(like) if w is None else w
