r"""Lovasz-hinge and Lovasz-softmax: convex surrogates of the Jaccard loss (Berman et al. 2018).

Both are per image (one value per sample, Berman's ``per_image=True``); to get the
reference's ``per_image=False`` (the batch as one image) move the batch axis into the
spatial axes, e.g. ``y_pred.transpose(1, 0, 2, 3)[None]`` with labels ``y_true[None]``.

For errors m (one per valid pixel) sorted decreasingly, m_(1) >= m_(2) >= ..., and
ground-truth flags g sorted alike, the Lovasz extension of the Jaccard loss is

    L(m) = sum_k m_(k) (J_k - J_{k-1}),   J_k = 1 - (G - sum_{i<=k} g_(i)) / (G + sum_{i<=k} (1 - g_(i))),

(G = number of foreground pixels, J_0 = 0).  It is piecewise linear in m, so its exact
gradient, wherever no two errors tie, is dL/dm_(k) = J_k - J_{k-1}: the weights are
constants of the sort order.  At a tie the gradient returned is that of the stable
sort order (a subgradient for the convex Lovasz hinge).  Pixels with label
``ignore_index`` are excluded; an image without valid pixels has value 0, gradient 0.

Second order (``hvp``): on each piece (a fixed sort order) the loss is the linear
function sum_i m_i w_i of the errors with constant weights w, so its exact Hessian is
that of the errors alone: 0 for the hinge (linear in the logits on each side of
m = 0), and for the softmax errors only the softmax's curvature weighted by the
gradient in p.  At ties the piece is the one the gradient uses (the stable sort order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from .. import _validation as V
from .. import _xp
from .._props import Basis, Formula, Props
from .._registry import register
from ._segmentation_base import (
    SegmentationLoss,
    prefix_jaccard_grad,
    softmax_backward,
    softmax_channels,
    softmax_curvature,
    softmax_forward,
)

__all__ = ["LovaszHinge", "LovaszSoftmax"]

_CLASSES = ("present", "all")


def _sorted_lovasz(xp: Any, err: Any, gt: Any, valid: Any) -> tuple[Any, Any]:
    """(sum_k h(m_(k)) w_k, weights w back in the original order) along the last axis.

    ``err`` holds the quantity to sort (ignored items are pushed last), ``gt`` 0/1
    flags, ``valid`` 0/1 floats; all of the same shape.
    """
    key = xp.where(valid > 0, err, _xp.full_like(xp, err, -math.inf))
    order = xp.argsort(key, axis=-1, descending=True, stable=True)
    gt_s = xp.take_along_axis(gt * valid, order, axis=-1)
    v_s = xp.take_along_axis(valid, order, axis=-1)
    w_s = prefix_jaccard_grad(xp, gt_s, v_s)
    inverse = xp.argsort(order, axis=-1)
    return w_s, xp.take_along_axis(w_s, inverse, axis=-1)


@register("lovasz_hinge", "segmentation", variants=({"ignore_index": 255},))
@dataclass(frozen=True)
class LovaszHinge(SegmentationLoss):
    r"""Binary Lovasz hinge: Lovasz extension of the Jaccard loss applied to hinge errors.

    Per image, with signs y = 2 g - 1 and logits f (one channel, y_pred (N, 1, ...)):

        m_i = max(1 - f_i y_i, 0),   L = sum_k m_(k) (J_k - J_{k-1})   (sorted by 1 - f y),
        dL/df_i = -y_i 1{1 - f_i y_i > 0} (J_{r(i)} - J_{r(i)-1}),   r(i) the rank of pixel i.

    Exact almost everywhere; at 1 - f y = 0 the returned one-sided value is 0, at ties
    the stable sort order decides.  Hessian: 0 almost everywhere (piecewise linear in
    the logits), which ``hvp`` returns after checking the direction.  Convex in the logits (the Lovasz extension of the
    submodular, increasing Jaccard loss is convex and non-decreasing, composed with a
    convex hinge).  ``y_true``: labels (N, ...) in {0, 1} or a binary mask (N, 1, ...).
    Reference: Berman, Rannen Triki & Blaschko (2018), The Lovasz-softmax loss: a
    tractable surrogate for the optimization of the intersection-over-union measure in
    neural networks, CVPR.

    >>> import numpy as np, lossgrad
    >>> f = np.array([[[2.0, -2.0]]]); y = np.array([[1, 0]])
    >>> lossgrad.LovaszHinge().value(y_true=y, y_pred=f)
    array([0.])
    """

    ignore_index: int | None = None
    _binary_target: ClassVar[bool] = True
    _channels: ClassVar[str] = "one"
    _formula = Formula(r"\sum_k \max(m_{(k)}, 0)\,(J_k - J_{k-1}),\ m = 1 - f y",
                       r"-y_i\,\mathbf{1}\{m_i > 0\}\,(J_{r(i)} - J_{r(i)-1})", r"0 \text{ a.e.}", "logits")

    def __post_init__(self) -> None:
        self._check_ignore_index()

    @property
    def props(self) -> Props:
        return Props(convex=True, differentiability=0, basis=Basis.OTHER)

    def _vg(self, xp, data, need_grad):
        f, t, v = data["f"][:, 0, :], data["t"][:, 0, :], data["v"][:, 0, :]
        sign = 2.0 * t - 1.0
        err = 1.0 - f * sign
        _, w = _sorted_lovasz(xp, err, t, v)
        pos = err > 0
        hinge = xp.where(pos, err, xp.zeros_like(err))
        value = xp.sum(hinge * w, axis=-1)
        if not need_grad:
            return value, None
        g = -sign * xp.where(pos, w, xp.zeros_like(w))
        return value, g[:, None, :]

    def _second(self, xp, data, z):
        """0: on each piece (fixed sort order, fixed hinge sides) the loss is linear in the logits."""
        return xp.zeros_like(z)

    def _example_channels(self) -> int:
        return 1


@register("lovasz_softmax", "segmentation", variants=({"classes": "all", "ignore_index": 255},))
@dataclass(frozen=True)
class LovaszSoftmax(SegmentationLoss):
    r"""Multi-class Lovasz-softmax: Lovasz extension of the Jaccard loss on softmax errors.

    Per image, p = softmax(y_pred) over C >= 2 channels, and for each class c the errors
    m_{c,i} = |g_{c,i} - p_{c,i}| over valid pixels (g the one-hot ground truth):

        L_c = sum_k m_{c,(k)} (J_{c,k} - J_{c,k-1}),    L = mean_{c in K} L_c,
        dL/dp_{c,i} = sign(p_{c,i} - g_{c,i}) (J_{c,r(i)} - J_{c,r(i)-1}) / |K|,

    then the softmax chain rule p (g - sum_c p g).  Hessian: for binary g and p in (0, 1),
    m = |g - p| is linear in p and on a piece (fixed sort orders) L = sum gamma . p + const
    with the constant gradient gamma = dL/dp above, so H_p = 0 and per pixel, over its
    C logits,

        d^2L/df^2 = sum_c gamma_c d^2 p_c = diag(h) - h p^T - p h^T,   h = p (gamma - sum_c p gamma),

    (times z: h z - h (p . z) - p (h . z)); the logits of different pixels do not
    interact.  At tied errors the piece is the stable sort order's, the gradient's
    convention, and at a saturated p = g the sign is that of the gradient (-1 where
    g = 1).  ``classes="present"`` (default, as the
    reference) averages over the classes present in the image's valid ground truth
    (an image with none has value 0), ``classes="all"`` over all C classes.  Not convex
    in the logits.  ``y_true``: labels (N, ...) or a binary (one-hot) mask (N, C, ...).
    Reference: Berman, Rannen Triki & Blaschko (2018), CVPR.

    >>> import numpy as np, lossgrad
    >>> f = np.array([[[9.0, -9.0], [-9.0, 9.0]]]); y = np.array([[0, 1]])
    >>> float(lossgrad.LovaszSoftmax().value(y_true=y, y_pred=f)[0]) < 1e-3
    True
    """

    classes: str = "present"
    ignore_index: int | None = None
    _binary_target: ClassVar[bool] = True
    _channels: ClassVar[str] = "many"
    _formula = Formula(r"\frac{1}{|K|}\sum_{c\in K}\sum_k m_{c,(k)} (J_{c,k} - J_{c,k-1}),\ m = |g - p|",
                       r"J_{\mathrm{softmax}}^\top\big(\operatorname{sign}(p - g)\,\Delta J / |K|\big)",
                       r"\operatorname{diag}(h) - h p^\top - p h^\top \text{ per pixel},\ h = p \odot (\gamma - p^\top \gamma),\ "
                       r"\gamma = \operatorname{sign}(p - g)\,\Delta J / |K|", "logits")

    def __post_init__(self) -> None:
        self._set("classes", V.param_choice(self._owner, "classes", self.classes, _CLASSES))
        self._check_ignore_index()

    def _parts(self, xp, data, need_grad):
        """(values, p, the gradient in p: sign(p - g) (J_{c,r(i)} - J_{c,r(i)-1}) / |K| on valid pixels)."""
        f, t, v = data["f"], data["t"], data["v"]
        vv = v * xp.ones_like(f)
        p = softmax_channels(xp, f)
        err = xp.abs(t - p) * vv
        _, w = _sorted_lovasz(xp, err, t, vv)
        per_class = xp.sum(err * w, axis=-1)  # (N, C)
        if self.classes == "present":
            sel = xp.astype(xp.sum(t * vv, axis=-1) > 0, f.dtype)
        else:
            sel = xp.ones_like(per_class)
        inv = _xp.safe_divide(xp, xp.ones_like(per_class[:, 0]), xp.sum(sel, axis=-1), 0.0)
        value = xp.sum(per_class * sel, axis=-1) * inv
        if not need_grad:
            return value, p, None
        sign = xp.where(t > 0, -xp.ones_like(p), xp.ones_like(p))
        return value, p, sign * w * vv * (sel * inv[:, None])[..., None]

    def _vg(self, xp, data, need_grad):
        value, p, gp = self._parts(xp, data, need_grad)
        return value, (None if gp is None else softmax_backward(xp, p, gp))

    def _second(self, xp, data, z):
        """Linear in p on the piece (H_p = 0): only the softmax's curvature with the constant gradient gp."""
        _, p, gp = self._parts(xp, data, True)
        return softmax_curvature(xp, p, softmax_forward(xp, p, z), gp)
