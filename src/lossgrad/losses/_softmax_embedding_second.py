r"""Second order of the softmax-over-similarities embedding losses (InfoNCE, MNR, ArcFace, CosFace).

These losses share one structure: logits z = s * sim(., .) built from (optionally
normalised) embeddings, and per row a cross-entropy l_i = logsumexp(z_i) - <t_i, z_i>.
With per-row weights w and F = sum_i w_i l_i:

* dF/dz = A = w (p - t), p = softmax(z) row by row;
* along a change dz of the logits, dA = w (p * (dz - sum_j p_j dz_j)): the softmax
  Jacobian diag(p) - p p^T applied row by row (:func:`softmax_tangent`), never formed;
* the per-item directional derivative of the unweighted values is
  dl_i = sum_j (p_ij - t_ij) dz_ij (:func:`cross_entropy_tangent`);
* a bilinear similarity Z = U_q U_k^T has dF/dU_q = A U_k, dF/dU_k = A^T U_q, whose
  change is  dA U_k + A dU_k  and  dA^T U_q + A^T dU_q  (first order in the direction);
* through u = x / ||x|| (cosine similarity) the Hessian-vector product of F(u(x)) is
  through_normalize(d(dF/du)) + curvature, the curvature dP[v] (dF/du) of
  :func:`._embedding_common.normalize_second`; raw embeddings (dot similarity) have
  du = v and no curvature (:func:`unit_second`, :func:`back_second`).

Every piece costs a few (N, M) x (M, D) products, the order of the gradient.
"""

from __future__ import annotations

from typing import Any

from . import _embedding_common as C

Array = Any


def softmax_tangent(xp: Any, prob: Array, dz: Array) -> Array:
    """d softmax(z) along dz, row by row: p * (dz - sum_j p_j dz_j) (masked entries have p = 0)."""
    return prob * (dz - xp.sum(prob * dz, axis=-1, keepdims=True))


def cross_entropy_tangent(xp: Any, prob: Array, target: Array, dz: Array) -> Array:
    """Per row, d/dt of logsumexp(z + t dz) - <target, z + t dz>: sum_j (p_j - t_j) dz_j."""
    return xp.sum((prob - C.as_float(xp, target, prob)) * dz, axis=-1)


def unit_second(xp: Any, u: Array, n: Array | None, gu: Array, direction: Array) -> tuple[Array, Array | None]:
    """(du, curvature) of u = x / ||x|| along ``direction`` (see normalize_second); n None: u = x,
    du = direction and no curvature (dot-product similarity)."""
    if n is None:
        return direction, None
    return C.normalize_second(xp, u, n, gu, direction)


def unit_tangent(xp: Any, u: Array, n: Array | None, direction: Array) -> Array:
    """du of u = x / ||x|| along ``direction`` (direction itself when n is None)."""
    return direction if n is None else C.normalize_second(xp, u, n, xp.zeros_like(u), direction)[0]


def back_second(xp: Any, dgu: Array, u: Array, n: Array | None, curvature: Array | None) -> Array:
    """Hessian-vector product in x from d(dF/du) along du: through_normalize(dgu) + curvature."""
    if n is None:
        return dgu
    return C.through_normalize(xp, dgu, u, n) + curvature
