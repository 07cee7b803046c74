"""The ranking family's base class and shared pieces (inputs, padding, the two Hessian shapes).

See :mod:`lossgrad.losses.ranking` for the conventions and the losses.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import array_api_compat
import numpy as np

from .. import _validation as V
from .. import _xp
from .._batch import BatchLoss
from .._config import get_config
from .._props import Basis, Props

LN2 = math.log(2.0)


class RankingLoss(BatchLoss):
    """Shared input handling of the list losses."""

    inputs: ClassVar[tuple[str, ...]] = ("scores", "relevance", "mask")
    differentiable: ClassVar[tuple[str, ...]] = ("scores",)
    _optional_inputs: ClassVar[tuple[str, ...]] = ("mask",)
    has_hvp: ClassVar[bool] = True

    def hess(self, sample_weight: Any = None, **inputs: Any) -> dict[str, Any]:
        """Hessian blocks of sum(w * value) w.r.t. the scores: ``{"scores": (n_lists, L, L)}``."""
        xp, data, w = self._prepare_batch(inputs, sample_weight)
        return {"scores": per_list(w, self._second(xp, data, "full", None), 2)}

    def hess_diag(self, sample_weight: Any = None, **inputs: Any) -> dict[str, Any]:
        """Diagonal of the Hessian of sum(w * value): ``{"scores": (n_lists, L)}``."""
        xp, data, w = self._prepare_batch(inputs, sample_weight)
        fused = self._fused(xp, data, want_grad=False, want_diag=True)
        diag = fused[2] if fused is not None else self._second(xp, data, "diag", None)
        return {"scores": per_list(w, diag, 1)}

    def grad_hess_diag(self, sample_weight: Any = None, **inputs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(``grad``, ``hess_diag``) from one evaluation: the pair a boosting round needs."""
        xp, data, w = self._prepare_batch(inputs, sample_weight)
        fused = self._fused(xp, data, want_grad=True, want_diag=True)
        g, h = (fused[1], fused[2]) if fused is not None else self._grad_and_diag(xp, data)
        return {"scores": per_list(w, g, 1)}, {"scores": per_list(w, h, 1)}

    def grad_hess_bound(self, sample_weight: Any = None, **inputs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(``grad``, the absolute row sums of the Hessian blocks of sum(w * value)): a
        diagonal D with D - H positive semidefinite per list, what a boosting engine's
        ``hessian="upper_bound"`` takes; one evaluation, and no (n_lists, L, L) array where
        the loss has a shortcut (ListNet, XE-NDCG: 2 p (1 - p); RankNet, LambdaLoss: twice
        the diagonal; ApproxNDCG: its blocks kernel's row sums)."""
        xp, data, w = self._prepare_batch(inputs, sample_weight)
        g, bound = self._grad_and_bound(xp, data)
        return {"scores": per_list(w, g, 1)}, {"scores": per_list(w, bound, 1)}  # w >= 0

    def _grad_and_bound(self, xp: Any, data: dict[str, Any]) -> tuple[Any, Any]:
        """(unweighted gradient, absolute row sums of the blocks): from the blocks; losses
        with a shortcut override it."""
        return self._value_and_grad(xp, data)[1], xp.sum(xp.abs(self._second(xp, data, "full", None)), axis=-1)

    def _grad_and_twice_diag(self, xp: Any, data: dict[str, Any]) -> tuple[Any, Any]:
        """:meth:`_grad_and_bound` of a Hessian whose off-diagonal row entries are <= 0 and
        sum to minus the diagonal (a Laplacian of non-negative pair weights, or
        diag(p) - p p^T with sum p = 1): the absolute row sums are twice the diagonal."""
        fused = self._fused(xp, data, want_grad=True, want_diag=True)
        g, h = (fused[1], fused[2]) if fused is not None else self._grad_and_diag(xp, data)
        return g, 2.0 * h

    def _grad_and_diag(self, xp: Any, data: dict[str, Any]) -> tuple[Any, Any]:
        """(unweighted gradient, Hessian diagonal) by the reference; losses sharing work between
        the two override it."""
        return self._vg(xp, data)[1], self._second(xp, data, "diag", None)

    def _hvp(self, xp: Any, data: dict[str, Any], w: Any, v: dict[str, Any]) -> dict[str, Any]:
        return {"scores": per_list(w, self._second(xp, data, "hvp", self._scores_direction(xp, data, v)), 1)}

    def _item_jvp(self, xp: Any, data: dict[str, Any], v: dict[str, Any]) -> Any:
        """Per list, <grad value_l, v_l>: the lists share no score."""
        return xp.sum(self._value_and_grad(xp, data)[1] * self._scores_direction(xp, data, v), axis=-1)

    def _scores_direction(self, xp: Any, data: dict[str, Any], v: dict[str, Any]) -> Any:
        return self._direction(xp, v, "scores", data["s"], read=data["mb"])  # padding is not read

    def _second(self, xp: Any, data: dict[str, Any], what: str, v: Any) -> Any:
        """Unweighted second order of sum(values): the blocks ("full"), their diagonals
        ("diag") or the blocks times v ("hvp")."""
        raise NotImplementedError  # pragma: no cover

    def _prepare(self, inputs: dict[str, Any], sample_weight: Any) -> tuple[Any, dict[str, Any], Any]:
        xp, s, _ = V.as_prediction(inputs["scores"], "scores")
        if s.ndim != 2:
            raise ValueError(f"scores must be 2-dimensional (n_lists, list_len), got shape {tuple(s.shape)}")
        rel = same_shape(xp, inputs["relevance"], s, "relevance", s.dtype)
        mask = inputs.get("mask")
        if mask is None:
            mb = xp.ones(s.shape, dtype=xp.bool, device=array_api_compat.device(s))
        else:
            mb = same_shape(xp, mask, s, "mask", None)
            if not xp.isdtype(mb.dtype, "bool"):
                raise TypeError(f"mask must be a boolean array (True = real item, False = padding), got dtype {mb.dtype}")
        checked = _one_pass_check(s, rel, mb)
        if checked is not None:  # every check passed, in one pass
            return self._prepared(xp, inputs, sample_weight, s, checked[0], mb, checked[1])
        counts = xp.sum(xp.astype(mb, xp.int64), axis=-1)
        if not bool(xp.all(counts >= 2)):
            bad = np.flatnonzero(np.asarray(array_api_compat.to_device(counts, "cpu")) < 2).tolist()
            raise ValueError(
                f"scores: list(s) {bad[:10]} have fewer than 2 real items (list_len={s.shape[1]}, after mask); "
                "a ranking loss needs lists of length >= 2"
            )
        zero = xp.zeros_like(s)
        V.check_finite(xp, xp.where(mb, s, zero), "scores")
        relv = xp.where(mb, rel, zero)
        V.check_finite(xp, relv, "relevance")
        V.check_all(xp, relv >= 0, "relevance", "non-negative graded relevance on real (unmasked) items")
        return self._prepared(xp, inputs, sample_weight, s, relv, mb)

    def _prepared(self, xp: Any, inputs: dict[str, Any], sample_weight: Any, s: Any, rel: Any, mb: Any,
                  marked: Any = None) -> tuple:
        """(xp, data, w) from checked scores, relevance (0 at padding) and mask; ``marked``
        the relevance with NaN at padding where the one-pass check wrote it (data["marked"],
        what the list kernels read; None: they mark it themselves)."""
        data = {"s": s, "rel": rel, "mb": mb, "marked": marked}
        data.update(self._extra(xp, inputs, s, mb))
        w = V.as_sample_weight(sample_weight, xp, (s.shape[0],), s)
        return xp, data, w

    def _extra(self, xp: Any, inputs: dict[str, Any], s: Any, mb: Any) -> dict[str, Any]:
        return {}

    def _value(self, xp: Any, data: dict[str, Any]) -> Any:
        fused = self._fused(xp, data, want_grad=False, want_diag=False)
        return fused[0] if fused is not None else self._vg(xp, data)[0]

    def _value_and_grad(self, xp: Any, data: dict[str, Any]) -> tuple[Any, Any]:
        """(per-list values, gradient), unweighted: the list kernel's where it applies, else :meth:`_vg`."""
        fused = self._fused(xp, data, want_grad=True, want_diag=False)
        return (fused[0], fused[1]) if fused is not None else self._vg(xp, data)

    def _value_grad(self, xp: Any, data: dict[str, Any], w: Any) -> tuple[Any, dict[str, Any]]:
        value, g = self._value_and_grad(xp, data)
        if w is None:
            return value, {"scores": g}
        return value * w, {"scores": g * w[:, None]}

    def _vg(self, xp: Any, data: dict[str, Any]) -> tuple[Any, Any]:
        """(per-list values, d sum(values) / d scores), unweighted, by the reference."""
        raise NotImplementedError  # pragma: no cover

    def _fused(self, xp: Any, data: dict[str, Any], want_grad: bool, want_diag: bool) -> tuple | None:
        """(value, gradient or None, Hessian diagonal or None), unweighted, from the loss's list
        kernel (:meth:`_list_kernel`) where :func:`list_kernel_applies`, else None (the
        reference runs): value, ``value_grad``, ``hess_diag`` and ``grad_hess_diag`` ask here first."""
        return self._list_kernel(xp, data, want_grad, want_diag) if list_kernel_applies(data["s"]) else None

    def _list_kernel(self, xp: Any, data: dict[str, Any], want_grad: bool, want_diag: bool) -> tuple | None:
        """The loss's list kernel on float32/float64 NumPy scores (imported on first use, so that
        Numba loads only when a call needs it); None: the loss has none."""
        return None

    def _example_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        n, m = 4, 6
        scores = rng.normal(size=(n, m))
        relevance = rng.integers(0, 4, size=(n, m)).astype(np.float64)
        relevance[:, 0] = 3.0  # every list has a relevant item and distinct grades
        relevance[:, 1] = 0.0
        mask = np.ones((n, m), dtype=bool)
        mask[1, 4:] = False
        mask[3, 5:] = False
        return {"scores": scores, "relevance": relevance, "mask": mask}

    def _extreme_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Scores of magnitude ~1e3 and grades up to 60 (2^60 gains)."""
        ex = self._example_inputs(rng)
        return {**ex, "scores": 1e3 * ex["scores"], "relevance": 20.0 * ex["relevance"]}

    @property
    def props(self) -> Props:
        return Props(convex=True, differentiability=2, basis=Basis.OTHER)


def list_kernel_applies(s: Any) -> bool:
    """Whether the list kernels (:mod:`lossgrad.kernels._ranking` and siblings) take the
    scores ``s`` (n_lists, L): float32/float64 NumPy arrays of at least ``kernel_threshold``
    pair entries (n_lists L^2) while ``use_kernels`` is on; else the reference runs."""
    if not isinstance(s, np.ndarray) or s.dtype not in (np.float32, np.float64):
        return False
    config = get_config()
    return bool(config.use_kernels) and s.size * s.shape[-1] >= config.kernel_threshold


def _one_pass_check(s: Any, rel: Any, mb: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(the relevance zeroed at padding, the relevance NaN at padding) where
    :func:`list_kernel_applies` and every check of :meth:`RankingLoss._prepare` passes, from
    one pass (:mod:`lossgrad.kernels._ranking_inputs`); None where the reference checks must
    run (they raise on what the pass flagged)."""
    if not (list_kernel_applies(s) and isinstance(rel, np.ndarray) and isinstance(mb, np.ndarray)):
        return None
    from ..kernels._ranking_inputs import check_lists

    relv, marked, flagged = check_lists(s, rel, mb)
    return None if flagged else (relv, marked)


def per_list(w: Any, a: Any, trailing: int) -> Any:
    """a (n_lists, ...) times the list weights w (n_lists,), broadcast over ``trailing`` axes."""
    if w is None:
        return a
    return a * (w[:, None, None] if trailing == 2 else w[:, None])


def softmax_second(xp: Any, p: Any, what: str, v: Any) -> Any:
    """diag(p) - p p^T per list (p = 0 at padding): full, its diagonal p (1 - p), or times v."""
    if what == "diag":
        return p - p * p
    if what == "hvp":
        return p * v - p * xp.sum(p * v, axis=-1, keepdims=True)
    return diag_embed(xp, p) - p[:, :, None] * p[:, None, :]


def laplacian_second(xp: Any, a: Any, what: str, v: Any) -> Any:
    """diag(A 1) - A per list for symmetric pair weights A with a zero diagonal."""
    degree = xp.sum(a, axis=-1)
    if what == "diag":
        return degree
    if what == "hvp":
        return degree * v - xp.squeeze(a @ v[:, :, None], axis=-1)
    return diag_embed(xp, degree) - a


def diag_embed(xp: Any, d: Any) -> Any:
    """(n, L) -> (n, L, L) with d on each block's diagonal."""
    eye = xp.eye(d.shape[-1], dtype=d.dtype, device=array_api_compat.device(d))
    return d[:, :, None] * eye[None, :, :]


def same_shape(xp: Any, x: Any, like: Any, name: str, dtype: Any) -> Any:
    if x is None:
        raise TypeError(f"{name} is required, got None")
    try:
        arr = xp.asarray(x, device=array_api_compat.device(like))
    except Exception:
        arr = xp.asarray(np.asarray(x), device=array_api_compat.device(like))
    if tuple(arr.shape) != tuple(like.shape):
        raise ValueError(f"{name} must have the shape of scores {tuple(like.shape)}, got {tuple(arr.shape)}")
    if dtype is not None:
        if not (xp.isdtype(arr.dtype, "real floating") or xp.isdtype(arr.dtype, "integral") or xp.isdtype(arr.dtype, "bool")):
            raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
        arr = xp.astype(arr, dtype, copy=False)
    return arr


def masked_softmax(xp: Any, s: Any, mb: Any) -> tuple[Any, Any]:
    """(softmax, log_softmax) over the real items of each row; 0 at padding."""
    zero = xp.zeros_like(s)
    mx = xp.max(xp.where(mb, s, _xp.full_like(xp, s, -math.inf)), axis=-1, keepdims=True)
    z = xp.where(mb, s - mx, zero)
    e = xp.where(mb, xp.exp(z), zero)
    tot = xp.sum(e, axis=-1, keepdims=True)
    return e / tot, xp.where(mb, z - xp.log(tot), zero)
