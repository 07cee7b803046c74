"""``lossgrad.verify``: run every check on one loss and return a structured report.

The checks depend on the shape of the loss: pointwise losses are handled in
:mod:`.pointwise` (derivatives against finite differences, every declared property
measured), row losses in ``.row`` and batch losses in ``.batch``.

>>> import lossgrad
>>> report = lossgrad.verify(lossgrad.Huber())
>>> bool(report), report.check("grad").passed
(True, True)
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .._props import Shape
from ._report import Check, VerifyReport

__all__ = ["verify", "VerifyReport", "Check"]


def verify(loss: Any, *, n: int = 200, seed: int = 0, rtol: float = 1e-6) -> VerifyReport:
    """Verify ``loss`` (a loss object or a registered name) and return a :class:`VerifyReport`.

    Parameters
    ----------
    loss:
        A lossgrad loss (``Scaled`` wrappers included) or a registered name.
    n:
        Number of example points sampled with ``loss._example_inputs``.
    seed:
        Seed of the random generator: the same seed gives the same report.
    rtol:
        Relative tolerance of the derivative checks against finite differences.

    The report is truthy when every check passed; ``report.failures`` lists the rest.
    """
    from .._core import Loss

    if isinstance(loss, str):
        from .._registry import get

        loss = get(loss)
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a lossgrad loss or a registered name, got {type(loss).__name__}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 8:
        raise ValueError(f"n must be an integer >= 8, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real) or not (0 < rtol < 1) or math.isnan(rtol):
        raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
    shape = loss.shape
    if shape == Shape.POINTWISE:
        from .pointwise import verify_pointwise

        return verify_pointwise(loss, n=int(n), seed=int(seed), rtol=float(rtol))
    if shape == Shape.ROW:
        try:
            from .row import verify_row
        except ImportError as exc:
            raise NotImplementedError(f"verification of row losses is not available yet ({exc})") from exc
        return verify_row(loss, n=int(n), seed=int(seed), rtol=float(rtol))
    if shape == Shape.BATCH:
        try:
            from .batch import verify_batch
        except ImportError as exc:
            raise NotImplementedError(f"verification of batch losses is not available yet ({exc})") from exc
        return verify_batch(loss, n=int(n), seed=int(seed), rtol=float(rtol))
    raise NotImplementedError(f"no verification for losses of shape {shape!r}")  # pragma: no cover
