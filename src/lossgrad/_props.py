"""What a loss declares about itself: properties, kinks and formulas.

Every field of :class:`Props` is measured by :func:`lossgrad.verify`; a declaration
that the measurement contradicts is a failing check, not a comment.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Basis", "Side", "Shape", "Kink", "Props", "Formula"]


class Shape(str, enum.Enum):
    """How a loss consumes its inputs (see the design notes)."""

    POINTWISE = "pointwise"  #: value, grad, hess have the shape of y_pred
    ROW = "row"  #: y_pred (N, K) class scores; value (N,), grad (N, K), hess (N, K, K)
    BATCH = "batch"  #: named inputs (embeddings, pairs, lists, masks)


class Basis(str, enum.Enum):
    """The variable a pointwise loss is a function of."""

    DISTANCE = "distance"  #: of the residual r = y_pred - y_true
    MARGIN = "margin"  #: of the margin z = y * f, y in {-1, +1}
    LIKELIHOOD = "likelihood"  #: of (y, f) jointly: a negative log-likelihood or deviance
    OTHER = "other"


class Side(str, enum.Enum):
    """Which one-sided value a derivative returns exactly at a kink."""

    LEFT = "left"  #: the limit from below
    RIGHT = "right"  #: the limit from above
    MIDPOINT = "midpoint"  #: the mean of the two one-sided limits (a subgradient)


@dataclass(frozen=True)
class Kink:
    """A point of the loss's natural variable where a derivative jumps.

    ``order`` is the lowest derivative that is discontinuous there: 1 means the
    gradient jumps (a corner of the value), 2 means the Hessian jumps (or is
    infinite) while the gradient stays continuous; 0 means the value itself jumps.
    ``side`` says which one-sided value ``value`` (order 0), ``grad`` (order 1) or
    ``hess`` (order 2) returns at the point.
    """

    at: float
    order: int
    side: Side = Side.RIGHT

    def __post_init__(self) -> None:
        if self.order not in (0, 1, 2):
            raise ValueError(f"Kink.order must be 0, 1 or 2, got {self.order!r}")


@dataclass(frozen=True)
class Props:
    """Declared mathematical properties of a loss as a function of ``y_pred``.

    Attributes
    ----------
    convex, strictly_convex:
        Convexity in ``y_pred`` for every admissible ``y_true``.
    strong_convexity:
        Modulus m >= 0 with hess >= m everywhere (0.0: not strongly convex).
    lipschitz:
        sup |grad| over the domain, or ``None`` where the gradient is unbounded.
        Row losses: the sup of the l2 norm of a row's gradient, over every K.
    smoothness:
        Lipschitz constant of the gradient, sup |hess|, or ``None``.  Row losses: the
        sup of the spectral norm of a row's Hessian, over every K.
    differentiability:
        -1 discontinuous value, 0 continuous with kinks, 1 continuously
        differentiable (the Hessian may jump), 2 twice continuously differentiable.
    basis:
        Distance-based, margin-based, likelihood, other.
    symmetric:
        Distance losses: L(r) = L(-r).  Margin losses: phi(z) + phi(-z) is a
        constant (the "symmetric loss" condition of robust classification).
    bounded:
        The value is bounded above.
    redescending:
        The gradient (psi) tends to 0 as |r| -> infinity.
    class_calibrated:
        For binary losses, whether minimising the conditional risk recovers the
        Bayes classifier sign(2 eta - 1) (Bartlett, Jordan and McAuliffe 2006);
        ``None`` for losses that are not classification losses.
    has_grad, has_hess:
        Whether ``grad`` and ``hess`` exist (``zero_one`` declares neither).
    """

    convex: bool
    strictly_convex: bool = False
    strong_convexity: float = 0.0
    lipschitz: float | None = None
    smoothness: float | None = None
    differentiability: int = 2
    basis: Basis = Basis.DISTANCE
    symmetric: bool = False
    bounded: bool = False
    redescending: bool = False
    class_calibrated: bool | None = None
    has_grad: bool = True
    has_hess: bool = True

    def __post_init__(self) -> None:
        if self.strictly_convex and not self.convex:
            raise ValueError("Props: strictly_convex requires convex")
        if self.strong_convexity < 0 or (self.strong_convexity > 0 and not self.strictly_convex):
            raise ValueError("Props: strong_convexity must be >= 0 and > 0 only for strictly convex losses")
        if self.differentiability not in (-1, 0, 1, 2):
            raise ValueError("Props: differentiability must be -1, 0, 1 or 2")

    def scaled(self, k: float) -> Props:
        """The properties of k * loss for k > 0."""
        from dataclasses import replace

        return replace(
            self,
            strong_convexity=self.strong_convexity * k,
            lipschitz=None if self.lipschitz is None else self.lipschitz * k,
            smoothness=None if self.smoothness is None else self.smoothness * k,
        )

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            out[name] = v.value if isinstance(v, enum.Enum) else v
        return out


@dataclass(frozen=True)
class Formula:
    """LaTeX of the value and its first two derivatives, in the loss's natural variable."""

    value: str
    grad: str
    hess: str
    variable: str = "r = f - y"

    def as_dict(self) -> dict[str, str]:
        return {"value": self.value, "grad": self.grad, "hess": self.hess, "variable": self.variable}
