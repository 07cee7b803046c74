"""Which fused kernel serves which pointwise loss: the table the dispatcher reads.

:data:`POINTWISE` maps every pointwise loss class of the catalog to a *selector*, a
function ``(loss, dtype) -> Spec`` naming the scalar function (of
:mod:`._scalar_residual` / :mod:`._scalar_other`), its parameter tuple and the input
domains the kernel checks in its pass.  A test asserts that every registered pointwise
loss appears here.  ``zero_one`` has a value kernel only: its grad and hess do not
exist (the public methods raise before any kernel runs).

Domain codes (they mirror each class's ``_check_target``/``_check_prediction``):
``Y_ANY``, ``Y_NONNEG`` (y >= 0), ``Y_POS`` (y > 0), ``Y_UNIT`` (0 <= y <= 1),
``Y_MARGIN`` (y in {-1, 0, 1}, one encoding only); ``F_ANY``, ``F_UNIT`` (0 <= f <= 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..losses import binary, glm, margin, quantile, regression, robust
from . import _scalar_other as O
from . import _scalar_residual as R

Y_ANY, Y_NONNEG, Y_POS, Y_UNIT, Y_MARGIN = 0, 1, 2, 3, 4
F_ANY, F_UNIT = 0, 1

#: Every scalar function, in a fixed order: a kernel is compiled per (index, dtype).
FUNCTIONS: tuple[Callable, ...] = (
    R.squared_error, R.absolute_error, R.huber, R.smooth_l1, R.pseudo_huber, R.log_cosh, R.lp,
    R.epsilon_insensitive, R.squared_epsilon_insensitive, R.quantile, R.expectile, R.huber_quantile,
    R.smoothed_quantile_gaussian, R.smoothed_quantile_logistic, R.tukey_biweight, R.hampel, R.andrews,
    R.cauchy, R.welsch, R.fair, O.poisson, O.gamma, O.tweedie_normal, O.tweedie, O.logistic, O.hinge,
    O.squared_hinge, O.smoothed_hinge, O.modified_huber, O.perceptron, O.exponential, O.sigmoid_loss,
    O.dwd, O.zero_one, O.bce_logit, O.bce_prob, O.binary_focal, R.berhu,
)

#: Scalar functions written with the type-keeping helpers of ``_fastmath``: float32
#: input runs in float32 arithmetic (the others widen it to float64).
NATIVE: frozenset[Callable] = frozenset({O.poisson, O.gamma, O.tweedie_normal, O.tweedie, O.logistic, O.exponential,
                                         O.bce_logit})

#: Scalar functions whose float64 kernels write with streaming stores from
#: ``_driver.STREAM_MIN`` elements: a scalar loop that writes each output line without
#: reading it into the cache first.  Measured at 10^7 float64, two threads, ms
#: (block driver -> streaming): squared error value 6.56 -> 5.57, value_grad 10.40 ->
#: 6.48, grad_hess 9.54 -> 6.80.  Every other loss tried lost: its scalar loop keeps
#: branches the vectorised one turns into selects (huber grad_hess 9.1 -> 10.9 ms,
#: absolute error value_grad 11.7 -> 121 ms, smooth_l1 value 7.4 -> 25.6 ms), and
#: float32 outputs written 4 bytes at a time with the hint ran 50x slower (squared-error
#: value_grad 4.3 -> 288 ms).
STREAM: frozenset[Callable] = frozenset({R.squared_error})

#: scalar function -> its fast path (v, g, h, ok): equal to the function where ok; the
#: driver recomputes a block by the function itself when a lane is not ok.
FAST: dict[Callable, Callable] = {O.tweedie: O.tweedie_fast}


@dataclass(frozen=True)
class Spec:
    """One kernel call: the scalar function, its four parameters, the domains to check."""

    fn: Callable
    params: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    ydom: int = Y_ANY
    fdom: int = F_ANY

    @property
    def kind(self) -> int:
        return FUNCTIONS.index(self.fn)


def _p(*values: float) -> tuple[float, float, float, float]:
    out = tuple(float(v) for v in values) + (0.0,) * (4 - len(values))
    return out  # type: ignore[return-value]


def _lp(loss: Any, dtype: Any) -> Spec:
    q = loss.p
    if q == 1:
        return Spec(R.absolute_error)
    return Spec(R.lp, _p(q, loss._at_zero()))


def _tweedie(loss: Any, dtype: Any) -> Spec:
    q = loss.power
    ydom = Y_POS if q >= 2 else (Y_NONNEG if q >= 1 else Y_ANY)
    fn = {0.0: O.tweedie_normal, 1.0: O.poisson, 2.0: O.gamma}.get(q, O.tweedie)
    if fn is not O.tweedie:
        return Spec(fn, ydom=ydom)
    # the factored form where |f| max(1, |1 - q|) < 0.95 log(max float): e^f and e^{(1-q) f} normal
    limit = 0.95 * math.log(float(np.finfo(dtype).max)) / max(1.0, abs(1.0 - q))
    return Spec(fn, _p(q, limit, 1.0 / (2.0 - q), 1.0 / (1.0 - q)), ydom)


def _bce(loss: Any, dtype: Any) -> Spec:
    if loss.from_logits:
        return Spec(O.bce_logit, _p(loss.pos_weight, loss.label_smoothing), Y_UNIT)
    return Spec(O.bce_prob, _p(loss.pos_weight, loss.label_smoothing), Y_UNIT, F_UNIT)


def _margin(fn: Callable, *names: str) -> Callable[[Any, Any], Spec]:
    return lambda loss, dtype: Spec(fn, _p(*(getattr(loss, n) for n in names)), Y_MARGIN)


def _plain(fn: Callable, *names: str, ydom: int = Y_ANY) -> Callable[[Any, Any], Spec]:
    return lambda loss, dtype: Spec(fn, _p(*(getattr(loss, n) for n in names)), ydom)


#: loss class -> selector (loss, dtype) -> Spec
POINTWISE: dict[type, Callable[[Any, Any], Spec]] = {
    regression.SquaredError: _plain(R.squared_error),
    regression.AbsoluteError: _plain(R.absolute_error),
    regression.Huber: _plain(R.huber, "delta"),
    regression.SmoothL1: lambda loss, dt: Spec(R.absolute_error) if loss.beta == 0 else Spec(R.smooth_l1, _p(loss.beta)),
    regression.BerHu: _plain(R.berhu, "c"),
    regression.PseudoHuber: _plain(R.pseudo_huber, "delta"),
    regression.LogCosh: _plain(R.log_cosh),
    regression.Lp: _lp,
    regression.EpsilonInsensitive: _plain(R.epsilon_insensitive, "epsilon"),
    regression.SquaredEpsilonInsensitive: _plain(R.squared_epsilon_insensitive, "epsilon"),
    quantile.Quantile: _plain(R.quantile, "tau"),
    quantile.Expectile: _plain(R.expectile, "tau"),
    quantile.HuberQuantile: _plain(R.huber_quantile, "tau", "delta"),
    quantile.SmoothedQuantile: lambda loss, dt: Spec(
        R.smoothed_quantile_gaussian if loss.kernel == "gaussian" else R.smoothed_quantile_logistic, _p(loss.tau, loss.h)
    ),
    robust.TukeyBiweight: _plain(R.tukey_biweight, "c"),
    robust.Hampel: _plain(R.hampel, "a", "b", "c"),
    robust.Andrews: _plain(R.andrews, "a"),
    robust.Cauchy: _plain(R.cauchy, "c"),
    robust.Welsch: _plain(R.welsch, "c"),
    robust.Fair: lambda loss, dt: Spec(R.fair, _p(loss.c, loss.c * (0.25 * float(np.finfo(dt).max)))),
    glm.Poisson: _plain(O.poisson, ydom=Y_NONNEG),
    glm.Gamma: _plain(O.gamma, ydom=Y_POS),
    glm.Tweedie: _tweedie,
    margin.Logistic: _margin(O.logistic),
    margin.Hinge: _margin(O.hinge),
    margin.SquaredHinge: _margin(O.squared_hinge),
    margin.SmoothedHinge: _margin(O.smoothed_hinge, "gamma"),
    margin.ModifiedHuber: _margin(O.modified_huber),
    margin.Perceptron: _margin(O.perceptron),
    margin.Exponential: _margin(O.exponential),
    margin.SigmoidLoss: _margin(O.sigmoid_loss),
    margin.DWD: _margin(O.dwd, "q"),
    margin.ZeroOne: _margin(O.zero_one),  # value only: grad/hess do not exist
    binary.BinaryCrossEntropy: _bce,
    binary.BinaryFocal: lambda loss, dt: Spec(O.binary_focal, _p(loss.gamma, -1.0 if loss.alpha is None else loss.alpha), Y_MARGIN),
}

#: Losses whose kernel computes the value only, and why.
VALUE_ONLY: dict[type, str] = {margin.ZeroOne: "the zero-one loss has no derivative (its value jumps at z = 0)"}


def spec_for(loss: Any, dtype: Any) -> Spec | None:
    """The kernel of ``loss`` for inputs of ``dtype``, or None (use the reference)."""
    select = POINTWISE.get(type(loss))
    if select is None:
        return None
    dt = np.dtype(dtype)
    spec = select(loss, dt)
    if spec.fn in NATIVE and dt == np.float32:  # parameters in the arithmetic's type
        spec = Spec(spec.fn, tuple(np.float32(v) for v in spec.params), spec.ydom, spec.fdom)  # type: ignore[arg-type]
    return spec


