"""Shared input handling of the segmentation losses (region overlap and Lovasz).

``y_pred`` is (N, C, *spatial) logits; ``y_true`` is either integer labels (N, *spatial)
(integral floats accepted), with ``ignore_index`` marking pixels that take no part, or
masks (N, C, *spatial) in [0, 1].  Everything is flattened to (N, C, P) internally.

Second order (``has_hvp``): :meth:`SegmentationLoss.hvp` takes ``{"y_pred": z}`` of
y_pred's shape and returns the Hessian of sum(w * value) times z.  Entries of z at
pixels with ``ignore_index`` are never read (they may hold anything, NaN included) and
the product is 0 there, as the gradient is.  Each loss supplies ``_second(xp, data, z)``,
the unweighted product on the (N, C, P) layout; the activations' second order is shared:

* softmax over channels, p = softmax(f): forward mode dp = J z = p (z - sum_c p z),
  and for a fixed gradient g in p, d/dt J(f + t z)^T g = dp (g - sum_c p g) - p sum_c dp g;
* sigmoid: dp = p (1 - p) z and d/dt (g p (1 - p)) = g p (1 - p)(1 - 2p) z.
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

__all__ = ["SegmentationLoss", "softmax_channels", "softmax_backward", "softmax_forward", "softmax_curvature"]


def _asarray(xp: Any, x: Any, like: Any, name: str) -> Any:
    if x is None:
        raise TypeError(f"{name} is required, got None")
    try:
        return xp.asarray(x, device=array_api_compat.device(like))
    except Exception:
        try:
            return xp.asarray(np.asarray(x), device=array_api_compat.device(like))
        except Exception:
            raise TypeError(f"{name} must be array-like, got {type(x).__name__}") from None


def softmax_channels(xp: Any, f: Any) -> Any:
    """softmax over axis 1 of (N, C, P) logits, with the max shift."""
    e = xp.exp(f - xp.max(f, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


def softmax_backward(xp: Any, p: Any, g: Any) -> Any:
    """Chain rule through softmax over axis 1: J^T g = p * (g - sum_c p g)."""
    return p * (g - xp.sum(p * g, axis=1, keepdims=True))


def softmax_forward(xp: Any, p: Any, z: Any) -> Any:
    """Forward mode through softmax over axis 1: dp = J z = p * (z - sum_c p z) (J is symmetric)."""
    return p * (z - xp.sum(p * z, axis=1, keepdims=True))


def softmax_curvature(xp: Any, p: Any, dp: Any, g: Any) -> Any:
    """The softmax's second-order term along z for a fixed gradient g in p:
    sum_c g_c (d^2 p_c) z = d/dt J(f + t z)^T g = dp (g - sum_c p g) - p sum_c dp g, dp = J z."""
    return dp * (g - xp.sum(p * g, axis=1, keepdims=True)) - p * xp.sum(dp * g, axis=1, keepdims=True)


class SegmentationLoss(BatchLoss):
    """Base of the segmentation losses: per-sample values (N,), gradient w.r.t. ``y_pred``."""

    inputs: ClassVar[tuple[str, ...]] = ("y_true", "y_pred")
    differentiable: ClassVar[tuple[str, ...]] = ("y_pred",)
    _optional_inputs: ClassVar[tuple[str, ...]] = ()
    _binary_target: ClassVar[bool] = False  # targets must be exactly 0/1 (Lovasz)
    _channels: ClassVar[str] = "any"  # "one" (lovasz_hinge), "many" (softmax), "any"
    has_hvp: ClassVar[bool] = True

    def _check_ignore_index(self) -> None:
        ii = self.ignore_index
        if ii is not None and (isinstance(ii, bool) or not isinstance(ii, (int, np.integer))):
            raise TypeError(f"{self._owner}: ignore_index must be an integer or None, got {ii!r}")
        self._set("ignore_index", None if ii is None else int(ii))

    def _prepare(self, inputs: dict[str, Any], sample_weight: Any) -> tuple[Any, dict[str, Any], Any]:
        xp, f, _ = V.as_prediction(inputs["y_pred"], "y_pred")
        if f.ndim < 2:
            raise ValueError(f"y_pred must be logits of shape (N, C, ...), got shape {tuple(f.shape)}")
        n, c = int(f.shape[0]), int(f.shape[1])
        spatial = tuple(int(s) for s in f.shape[2:])
        npix = math.prod(spatial)
        if self._channels == "one" and c != 1:
            raise ValueError(f"{self.name} is binary: y_pred must have one channel (N, 1, ...), got shape {tuple(f.shape)}")
        if self._channels == "many" and c < 2:
            raise ValueError(f"{self.name} needs y_pred with C >= 2 class channels, got shape {tuple(f.shape)}")
        y = _asarray(xp, inputs["y_true"], f, "y_true")
        check = not get_config().assume_valid
        dev = array_api_compat.device(f)
        if tuple(y.shape) == (n,) + spatial and y.ndim == f.ndim - 1:
            lab = self._labels(xp, y, c, check)
            ii = getattr(self, "ignore_index", None)
            valid = lab != ii if ii is not None else xp.ones(lab.shape, dtype=xp.bool, device=dev)
            lab = xp.where(valid, lab, xp.zeros_like(lab))
            lab = xp.reshape(lab, (n, 1, npix))
            if c == 1:
                t = xp.astype(lab, f.dtype)
            else:
                classes = xp.reshape(xp.arange(c, dtype=lab.dtype, device=dev), (1, c, 1))
                t = xp.astype(lab == classes, f.dtype)
            v = xp.astype(xp.reshape(valid, (n, 1, npix)), f.dtype)
        elif tuple(y.shape) == tuple(f.shape):
            if not (xp.isdtype(y.dtype, "real floating") or xp.isdtype(y.dtype, "integral") or xp.isdtype(y.dtype, "bool")):
                raise TypeError(f"y_true must be a real numeric mask, got dtype {y.dtype}")
            t = xp.reshape(xp.astype(y, f.dtype), (n, c, npix))
            if check:
                V.check_finite(xp, t, "y_true")
                if self._binary_target:
                    V.check_all(xp, (t == 0) | (t == 1), "y_true", "a binary mask (0 or 1 only)")
                else:
                    V.check_all(xp, (t >= 0) & (t <= 1), "y_true", "mask values in [0, 1]")
            v = xp.ones((n, 1, npix), dtype=f.dtype, device=dev)
        else:
            raise ValueError(
                f"y_true must be labels of shape {(n,) + spatial} or masks of the shape of y_pred "
                f"{tuple(f.shape)}, got shape {tuple(y.shape)}"
            )
        f3 = xp.reshape(f, (n, c, npix))
        V.check_finite(xp, f3, "y_pred")
        w = V.as_sample_weight(sample_weight, xp, (n,), f)
        return xp, {"f": f3, "t": t, "v": v, "shape": tuple(f.shape)}, w

    def _labels(self, xp: Any, y: Any, c: int, check: bool) -> Any:
        if xp.isdtype(y.dtype, "real floating"):
            if check and not bool(xp.all(xp.isfinite(y) & (y == xp.round(y)))):
                raise ValueError("y_true: labels must be integers (integral values), got non-integral or non-finite values")
            y = xp.astype(y, xp.int64)
        elif xp.isdtype(y.dtype, "integral") or xp.isdtype(y.dtype, "bool"):
            y = xp.astype(y, xp.int64)
        else:
            raise TypeError(f"y_true must hold integer class labels, got dtype {y.dtype}")
        if check:
            ii = getattr(self, "ignore_index", None)
            hi = 2 if c == 1 else c
            ok = (y >= 0) & (y < hi)
            if ii is not None:
                ok = ok | (y == ii)
            if not bool(xp.all(ok)):
                bad = int(xp.sum(xp.astype(~ok, xp.int64)))
                extra = f" or ignore_index={ii}" if ii is not None else ""
                what = "binary labels in {0, 1} (one channel)" if c == 1 else f"labels in [0, {c}) for C={c} channels"
                raise ValueError(f"y_true must contain {what}{extra}; {bad} label(s) out of range")
        return y

    def _value(self, xp: Any, data: dict[str, Any]) -> Any:
        return self._vg(xp, data, need_grad=False)[0]

    def _value_grad(self, xp: Any, data: dict[str, Any], w: Any) -> tuple[Any, dict[str, Any]]:
        value, g = self._vg(xp, data, need_grad=True)
        if w is not None:
            value = value * w
            g = g * w[:, None, None]
        return value, {"y_pred": xp.reshape(g, data["shape"])}

    def _vg(self, xp: Any, data: dict[str, Any], need_grad: bool) -> tuple[Any, Any]:
        """(per-sample values (N,), d sum(values) / d logits as (N, C, P)), unweighted."""
        raise NotImplementedError  # pragma: no cover

    def _hvp(self, xp: Any, data: dict[str, Any], w: Any, v: dict[str, Any]) -> dict[str, Any]:
        hz = self._second(xp, data, self._logit_direction(xp, data, v))
        if w is not None:
            hz = hz * w[:, None, None]
        return {"y_pred": xp.reshape(hz, data["shape"])}

    def _item_jvp(self, xp: Any, data: dict[str, Any], v: dict[str, Any]) -> Any:
        """Per sample, <grad value_n, z_n>: the samples share no logit."""
        z = self._logit_direction(xp, data, v)
        g = self._vg(xp, data, need_grad=True)[1]
        return xp.sum(xp.sum(g * z, axis=-1), axis=-1)

    def _logit_direction(self, xp: Any, data: dict[str, Any], v: dict[str, Any]) -> Any:
        """v["y_pred"] checked against y_pred and flattened to (N, C, P); ignored pixels read as 0."""
        f, shape = data["f"], data["shape"]
        read = xp.reshape(xp.broadcast_to(data["v"] > 0, tuple(f.shape)), shape)
        z = self._direction(xp, v, "y_pred", xp.reshape(f, shape), read=read)
        return xp.reshape(z, tuple(f.shape))

    def _second(self, xp: Any, data: dict[str, Any], z: Any) -> Any:
        """Hessian of sum(values) (unweighted) w.r.t. the (N, C, P) logits times z (N, C, P)."""
        raise NotImplementedError  # pragma: no cover

    @property
    def props(self) -> Props:
        return Props(convex=False, differentiability=2, basis=Basis.OTHER, bounded=True)

    # ------------------------------------------------------------------ examples
    def _example_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        n, c, h, wd = 3, self._example_channels(), 4, 5
        y_pred = 1.5 * rng.normal(size=(n, c, h, wd))
        if self._example_masks():
            y_true = rng.random(size=(n, c, h, wd))
            if self._binary_target:
                y_true = (y_true > 0.5).astype(np.float64)
            return {"y_true": y_true, "y_pred": y_pred}
        labels = rng.integers(0, 2 if c == 1 else c, size=(n, h, wd))
        ii = getattr(self, "ignore_index", None)
        if ii is not None:
            labels[rng.random(size=labels.shape) < 0.2] = ii
        return {"y_true": labels.astype(np.float64), "y_pred": y_pred}

    def _extreme_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Logits of magnitude ~1e3 (saturated softmax/sigmoid, large hinge errors)."""
        ex = self._example_inputs(rng)
        return {**ex, "y_pred": 1e3 * ex["y_pred"]}

    def _example_channels(self) -> int:
        return 3

    def _example_masks(self) -> bool:
        return False


def prefix_jaccard_grad(xp: Any, gt_sorted: Any, valid_sorted: Any) -> Any:
    """Lovasz extension weights of the Jaccard loss along a sorted axis (last axis).

    With items sorted by decreasing error, J_k = 1 - (G - cumsum(gt)_k) / (G + cumsum(1 - gt)_k)
    is the Jaccard loss of predicting the top k+1 items wrong; the weights are J_k - J_{k-1}
    (J_{-1} = 0).  Invalid (ignored) items are sorted last and weighted 0.
    """
    gts = xp.sum(gt_sorted, axis=-1, keepdims=True)
    inter = gts - xp.cumulative_sum(gt_sorted, axis=-1)
    union = gts + xp.cumulative_sum(valid_sorted * (1.0 - gt_sorted), axis=-1)
    jac = 1.0 - _xp.safe_divide(xp, inter, union, 1.0)
    prev = xp.concat([xp.zeros_like(jac[..., :1]), jac[..., :-1]], axis=-1)
    return (jac - prev) * valid_sorted
