r"""Segmentation losses over (N, C, ...) logit maps: Dice, Tversky, soft Jaccard, Lovasz.

Inputs, by name: ``y_pred`` logits (N, C, *spatial) and ``y_true``, either integer
labels (N, *spatial) (integral floats accepted; ``ignore_index`` marks pixels that take
no part in the value or the gradient) or masks (N, C, *spatial) in [0, 1].
``value`` is one number per sample (N,), ``grad`` returns ``{"y_pred": array}``.

Region losses (this module).  Probabilities p = activation(y_pred): ``activation="auto"``
is softmax over the channel axis when C >= 2 and the sigmoid when C == 1 (then the one
channel is the foreground and labels must be 0/1), as optax ``dice_loss``;
``"softmax"`` and ``"sigmoid"`` (independent channels, multi-label) force one.  Per
sample and class c, over the valid pixels,

    I_c = sum p t,  P_c = sum p,  T_c = sum t,   loss = mean_c (1 - R_c),

with R_c the Dice, Tversky or Jaccard ratio below (computed per sample, averaged over
all C classes).  All three are R = (a I + s) / (b I + d P + e T + s), so

    dR/dp_k = (a t_k D - N (b t_k + d)) / D^2,   N, D its numerator and denominator,

and the logit gradient is J^T(-dR/dp / C) through the softmax (p (g - sum_c p g)) or the
sigmoid (g p (1 - p)).  The Lovasz losses live in :mod:`lossgrad.losses.lovasz`.

Hessian-vector product (``hvp``, exact, never forming a Hessian).  N and D are affine
in p with gradients n = v a t and m = v (b t + d) (v = 0 at ignored pixels), so per
sample and class the Hessian of R in p has rank two, -(n m^T + m n^T) / D^2 + 2 R m m^T / D^2,
and along a direction u in p, with the per-class sums dN = n . u and dD = m . u,

    H_p u = -(1/C) H_R u = (1/C) v (a t dD + (b t + d)(dN - 2 R dD)) / D^2.

With u = dp = J z (forward mode through the activation) and g = d value / dp (the
gradient above before the chain rule), the logit Hessian times z is

    J^T H_p (J z) + sum_c g_c (d^2 p_c) z,

the second term dp (g - sum_c p g) - p sum_c dp g for the softmax and
g p (1 - p)(1 - 2p) z for the sigmoid (:mod:`lossgrad.losses._segmentation_base`).
Two reductions over the pixels per class: the cost of the gradient.  Where D = 0 the
ratio is the constant 1 and the Hessian, like the gradient, is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import _validation as V
from .. import _xp
from .._props import Formula
from .._registry import register
from ._segmentation_base import (
    SegmentationLoss,
    softmax_backward,
    softmax_channels,
    softmax_curvature,
    softmax_forward,
)
from .lovasz import LovaszHinge, LovaszSoftmax

__all__ = ["Dice", "Tversky", "SoftJaccard", "LovaszHinge", "LovaszSoftmax"]

_ACTIVATIONS = ("auto", "softmax", "sigmoid")


class _RegionLoss(SegmentationLoss):
    """1 - (a I + s) / (b I + d P + e T + s), averaged over classes."""

    def _check_region_params(self) -> None:
        self._set("smooth", V.param_nonnegative(self._owner, "smooth", self.smooth))
        self._set("activation", V.param_choice(self._owner, "activation", self.activation, _ACTIVATIONS))
        self._check_ignore_index()

    def _coefficients(self) -> tuple[float, float, float, float]:
        raise NotImplementedError  # pragma: no cover

    def _use_sigmoid(self, c: int) -> bool:
        if self.activation == "softmax" and c < 2:
            raise ValueError(f"{self._owner}: activation='softmax' needs y_pred with C >= 2 channels, got C={c}")
        return self.activation == "sigmoid" or (self.activation == "auto" and c == 1)

    def _parts(self, xp, data):
        """What value, gradient and Hessian share: probabilities, per-class sums N, D, R = N / D
        (1 where D = 0), 1 / D^2 (0 where D = 0), dN/dp = v a t and dD/dp = v (b t + d)."""
        f, t, v = data["f"], data["t"], data["v"]
        sig = self._use_sigmoid(f.shape[1])
        p = _xp.sigmoid(xp, f) if sig else softmax_channels(xp, f)
        a, b, d, e = self._coefficients()
        s = self.smooth
        pv = p * v
        tv = t * v
        inter = xp.sum(pv * t, axis=-1)
        psum = xp.sum(pv, axis=-1)
        tsum = xp.sum(tv, axis=-1)
        num = a * inter + s
        den = b * inter + d * psum + e * tsum + s
        return {"sig": sig, "p": p, "t": t, "v": v, "num": num, "den": den,
                "ratio": _xp.safe_divide(xp, num, den, 1.0), "coef": (a, b, d)}

    def _p_gradient(self, xp, q):
        """d value / dp = -(1/C) dR/dp, dR/dp = v (a t D - N (b t + d)) / D^2, and 1 / D^2 (N, C, 1)."""
        a, b, d = q["coef"]
        t, v, num, den = q["t"], q["v"], q["num"], q["den"]
        den2 = _xp.safe_divide(xp, xp.ones_like(den), den * den, 0.0)[..., None]
        dr = v * (a * t * den[..., None] - num[..., None] * (b * t + d)) * den2
        return -dr / q["p"].shape[1], den2

    def _vg(self, xp, data, need_grad):
        q = self._parts(xp, data)
        value = xp.mean(1.0 - q["ratio"], axis=-1)
        if not need_grad:
            return value, None
        p = q["p"]
        g, _ = self._p_gradient(xp, q)
        g = g * p * (1.0 - p) if q["sig"] else softmax_backward(xp, p, g)
        return value, g

    def _second(self, xp, data, z):
        """J^T H_p (J z) plus the activation's curvature term with the gradient in p (module docstring)."""
        q = self._parts(xp, data)
        a, b, d = q["coef"]
        p, t, v = q["p"], q["t"], q["v"]
        gp, den2 = self._p_gradient(xp, q)
        dp = p * (1.0 - p) * z if q["sig"] else softmax_forward(xp, p, z)
        dn = xp.sum(v * (a * t) * dp, axis=-1)[..., None]  # dN along dp, (N, C, 1)
        dd = xp.sum(v * (b * t + d) * dp, axis=-1)[..., None]  # dD along dp
        ratio = q["ratio"][..., None]
        hp = v * (a * t * dd + (b * t + d) * (dn - 2.0 * ratio * dd)) * den2 / p.shape[1]
        if q["sig"]:
            return p * (1.0 - p) * (hp + gp * (1.0 - 2.0 * p) * z)
        return softmax_backward(xp, p, hp) + softmax_curvature(xp, p, dp, gp)

    def _example_masks(self) -> bool:
        return self.activation == "sigmoid"


@register("dice", "segmentation", variants=({"smooth": 0.0, "ignore_index": 255}, {"activation": "sigmoid"}))
@dataclass(frozen=True)
class Dice(_RegionLoss):
    r"""Soft Dice loss: 1 - mean_c (2 I_c + smooth) / (P_c + T_c + smooth), per sample.

    The linear-denominator Dice of segmentation_models.pytorch and MONAI (not V-Net's
    squared one).  optax's ``dice_loss(smooth=s')`` with alpha = beta = 1/2 writes the
    ratio as (I + s') / ((P + T)/2 + s'): the same loss with smooth = 2 s'.
    Gradient: dR/dp_k = (2 t_k D - N) / D^2 (see the module docstring).  Hessian in p
    along u (a = 2, b = 0, d = 1): (1/C) (2 t dD + dN - 2 R dD) / D^2 with dN = 2 sum t u,
    dD = sum u, then the activation's chain rule and curvature (module docstring).
    Reference: Milletari, Navab & Ahmadi (2016), V-Net, 3DV; Sudre et al. (2017),
    Generalised Dice overlap as a deep learning loss function.

    >>> import numpy as np, lossgrad
    >>> f = np.full((1, 1, 2), 50.0); y = np.ones((1, 1, 2))
    >>> lossgrad.Dice(smooth=0.0).value(y_true=y, y_pred=f).round(6)
    array([0.])
    """

    smooth: float = 1.0
    activation: str = "auto"
    ignore_index: int | None = None
    _formula = Formula(r"1 - \frac{1}{C}\sum_c \frac{2 I_c + s}{P_c + T_c + s}",
                       r"J^\top\big(-\tfrac{1}{C}\tfrac{2 t D - N}{D^2}\big)",
                       r"J^\top \tfrac{2 (t \mathbf{1}^\top + \mathbf{1} t^\top - R\,\mathbf{1}\mathbf{1}^\top)}{C D^2} J"
                       r" + \textstyle\sum_{c,k} g_{ck} \nabla^2 p_{ck}", "logits")

    def __post_init__(self) -> None:
        self._check_region_params()

    def _coefficients(self):
        return 2.0, 0.0, 1.0, 1.0


@register("tversky", "segmentation", variants=({"alpha": 0.3, "beta": 0.7}, {"alpha": 0.7, "beta": 0.2, "ignore_index": -1}))
@dataclass(frozen=True)
class Tversky(_RegionLoss):
    r"""Tversky loss: 1 - mean_c (I_c + s) / (I_c + alpha FP_c + beta FN_c + s), per sample.

    FP_c = P_c - I_c (weighted by ``alpha``), FN_c = T_c - I_c (weighted by ``beta``),
    the convention of Salehi et al. and of optax ``dice_loss(alpha, beta)``, which this
    loss equals with the same ``smooth``.  alpha = beta = 1/2 is Dice with smooth 2s;
    alpha = beta = 1 is the soft Jaccard.  Hessian in p along u (a = 1, b = 1 - alpha - beta,
    d = alpha): (1/C) (t dD + k (dN - 2 R dD)) / D^2, k = (1 - alpha - beta) t + alpha,
    dN = sum t u, dD = sum k u; then the activation's chain rule and curvature.
    Reference: Salehi, Erdogmus & Gholipour (2017), Tversky loss function for image
    segmentation using 3D fully convolutional deep networks, MLMI.

    >>> import numpy as np, lossgrad
    >>> f = np.zeros((1, 1, 2)); y = np.array([[[1.0, 0.0]]])
    >>> lossgrad.Tversky(smooth=0.0).value(y_true=y, y_pred=f).round(6)
    array([0.5])
    """

    alpha: float = 0.5
    beta: float = 0.5
    smooth: float = 1.0
    activation: str = "auto"
    ignore_index: int | None = None
    _formula = Formula(r"1 - \frac{1}{C}\sum_c \frac{I_c + s}{I_c + \alpha (P_c - I_c) + \beta (T_c - I_c) + s}",
                       r"J^\top\big(-\tfrac{1}{C}\tfrac{t D - N ((1-\alpha-\beta) t + \alpha)}{D^2}\big)",
                       r"J^\top \tfrac{t \kappa^\top + \kappa t^\top - 2 R\,\kappa \kappa^\top}{C D^2} J"
                       r" + \textstyle\sum_{c,k} g_{ck} \nabla^2 p_{ck},\ \kappa = (1-\alpha-\beta) t + \alpha", "logits")

    def __post_init__(self) -> None:
        self._set("alpha", V.param_nonnegative(self._owner, "alpha", self.alpha))
        self._set("beta", V.param_nonnegative(self._owner, "beta", self.beta))
        if self.alpha + self.beta == 0:
            raise ValueError(f"{self._owner}: alpha + beta must be > 0 (alpha = beta = 0 makes the ratio constant)")
        self._check_region_params()

    def _coefficients(self):
        return 1.0, 1.0 - self.alpha - self.beta, self.alpha, self.beta


@register("soft_jaccard", "segmentation", variants=({"smooth": 0.5, "ignore_index": -100}, {"activation": "sigmoid"}))
@dataclass(frozen=True)
class SoftJaccard(_RegionLoss):
    r"""Soft Jaccard (IoU) loss: 1 - mean_c (I_c + s) / (P_c + T_c - I_c + s), per sample.

    The Tversky loss with alpha = beta = 1.  Gradient dR/dp_k = (t_k D - N (1 - t_k)) / D^2;
    Hessian in p along u: (1/C) (t dD + (1 - t)(dN - 2 R dD)) / D^2, dN = sum t u,
    dD = sum (1 - t) u; then the activation's chain rule and curvature.
    Reference: Rahman & Wang (2016), Optimizing intersection-over-union in deep neural
    networks for image segmentation, ISVC.

    >>> import numpy as np, lossgrad
    >>> f = np.zeros((1, 1, 2)); y = np.array([[[1.0, 0.0]]])
    >>> lossgrad.SoftJaccard(smooth=0.0).value(y_true=y, y_pred=f).round(6)
    array([0.666667])
    """

    smooth: float = 1.0
    activation: str = "auto"
    ignore_index: int | None = None
    _formula = Formula(r"1 - \frac{1}{C}\sum_c \frac{I_c + s}{P_c + T_c - I_c + s}",
                       r"J^\top\big(-\tfrac{1}{C}\tfrac{t D - N (1 - t)}{D^2}\big)",
                       r"J^\top \tfrac{t (1-t)^\top + (1-t) t^\top - 2 R\,(1-t)(1-t)^\top}{C D^2} J"
                       r" + \textstyle\sum_{c,k} g_{ck} \nabla^2 p_{ck}", "logits")

    def __post_init__(self) -> None:
        self._check_region_params()

    def _coefficients(self):
        return 1.0, -1.0, 1.0, 1.0
