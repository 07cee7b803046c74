r"""The sparsemax loss (Martins & Astudillo 2016), the sparse counterpart of softmax cross-entropy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._props import Basis, Formula, Kink, Props, Side
from .._registry import register
from .._row import RowLoss, RowTarget
from ..activations import _sparsemax

__all__ = ["SparsemaxLoss"]


def _device(x: Any) -> Any:
    import array_api_compat

    return array_api_compat.device(x)


@register("sparsemax_loss", "multiclass")
@dataclass(frozen=True)
class SparsemaxLoss(RowLoss):
    r"""Sparsemax loss: l = -q.z + (1/2) sum_{j in S(z)} (z_j^2 - tau^2) + (1/2) ||q||^2.

    With p = sparsemax(z) = max(z - tau, 0) (support S, indicator s), equivalently
    l = (p - q).z - ||p||^2 / 2 + ||q||^2 / 2 (the Fenchel-Young loss of the squared
    norm on the simplex), evaluated after the shift z - max(z) (l is shift invariant).

        grad = p - q,    hess = diag(s) - s s^T / |S|    (the Jacobian of sparsemax)

    q is the one-hot label or a probability row.  Convex, zero exactly when p = q;
    Lipschitz sqrt(2) (l2), smoothness 1 (the Hessian is an orthogonal projection);
    the gradient is continuous, the Hessian jumps where the support changes
    (z_j = tau, declared as a kink of order 2 in t = z_j - tau).  With labels it equals
    optax's ``multiclass_sparsemax_loss``.

    Reference: Martins & Astudillo (2016), From softmax to sparsemax, ICML.

    >>> import numpy as np, lossgrad
    >>> float(lossgrad.SparsemaxLoss().value(np.array([0]), np.array([[3.0, 0.0]]))[0])
    0.0
    """

    _formula = Formula(
        r"-q^\top z + \tfrac12 \sum_{j\in S(z)} (z_j^2 - \tau(z)^2) + \tfrac12 \|q\|^2",
        r"\operatorname{sparsemax}(z) - q",
        r"\operatorname{diag}(s) - s s^\top / |S|",
        variable="z (scores, one row); t = z_j - tau at the kinks",
    )

    @property
    def props(self) -> Props:
        return Props(convex=True, lipschitz=math.sqrt(2.0), smoothness=1.0, differentiability=1, basis=Basis.OTHER)

    @property
    def kinks(self) -> tuple[Kink, ...]:
        return (Kink(0.0, 2, Side.RIGHT),)

    def _evaluate(self, xp: Any, t: RowTarget, f: Any, ops: tuple[str, ...]) -> tuple[Any, ...]:
        z = f - xp.max(f, axis=-1, keepdims=True)
        p, _ = _sparsemax(xp, z)
        q = t.Y
        out = []
        for op in ops:
            if op == "value":
                out.append(xp.sum((p - q) * z, axis=-1) + 0.5 * (xp.sum(q * q, axis=-1) - xp.sum(p * p, axis=-1)))
            elif op == "grad":
                out.append(p - q)
            else:
                s = xp.astype(p > 0, f.dtype)
                n = xp.sum(s, axis=-1, keepdims=True)
                if op == "hess":
                    eye = xp.eye(f.shape[-1], dtype=f.dtype, device=_device(f))
                    out.append(eye[None, :, :] * s[:, None, :] - s[:, :, None] * s[:, None, :] / n[:, :, None])
                elif op == "hess_diag":
                    out.append(s - s / n)
        return tuple(out)

    def _value(self, xp, t, f):
        return self._evaluate(xp, t, f, ("value",))[0]

    def _grad(self, xp, t, f):
        return self._evaluate(xp, t, f, ("grad",))[0]

    def _hess(self, xp, t, f):
        return self._evaluate(xp, t, f, ("hess",))[0]

    def _hess_diag(self, xp, t, f):
        return self._evaluate(xp, t, f, ("hess_diag",))[0]

    def _hvp(self, xp: Any, t: RowTarget, f: Any, v: Any) -> Any:
        p, _ = _sparsemax(xp, f)
        s = xp.astype(p > 0, f.dtype)
        n = xp.sum(s, axis=-1, keepdims=True)
        return s * v - s * xp.sum(s * v, axis=-1, keepdims=True) / n

    def _example_inputs(self, rng: np.random.Generator, n: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
        y, f = super()._example_inputs(rng, n, k)
        return y, f * 0.3  # a support of mixed sizes

    def _kink_gap(self, y: np.ndarray, f: np.ndarray) -> np.ndarray:
        z = f - f.max(axis=1, keepdims=True)
        zs = -np.sort(-z, axis=1)
        cs = np.cumsum(zs, axis=1)
        k = np.arange(1, z.shape[1] + 1)
        sup = 1 + k * zs > cs
        ks = sup.sum(axis=1, keepdims=True)
        tau = (np.where(sup, zs, 0).sum(axis=1, keepdims=True) - 1) / ks
        return np.min(np.abs(z - tau), axis=1)
