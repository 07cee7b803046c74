"""The structured result of :func:`lossgrad.verify`: one :class:`Check` per claim tested."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Check", "VerifyReport"]


@dataclass(frozen=True)
class Check:
    """One verified claim.

    Attributes
    ----------
    name:
        What was checked, e.g. ``"grad"``, ``"hess"``, ``"convex"``, ``"lipschitz"``.
    passed:
        Whether the measurement agrees with the declaration (or the closed form).
    error:
        The worst error measured (relative where that makes sense), or ``None``.
    tolerance:
        The tolerance ``error`` was held to, or ``None``.
    declared, measured:
        The declared value and what was measured (numbers, booleans or text).
    where:
        Where the worst case occurred (e.g. ``"y_true=0.5, y_pred=3.1"``).
    """

    name: str
    passed: bool
    error: float | None = None
    tolerance: float | None = None
    declared: Any = None
    measured: Any = None
    where: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("error", "tolerance"):
            if isinstance(d[k], float) and not math.isfinite(d[k]):
                d[k] = str(d[k])
        return d


@dataclass(frozen=True)
class VerifyReport:
    """All checks run on one loss; truthy when every check passed."""

    loss: str
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def __bool__(self) -> bool:
        return self.passed

    def check(self, name: str) -> Check:
        """The check called ``name`` (KeyError if it was not run)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r} in the report of {self.loss}; ran {[c.name for c in self.checks]}")

    def worst_error(self, name: str) -> float | None:
        """The worst error of check ``name``, or None if it was not run or has no error."""
        try:
            return self.check(name).error
        except KeyError:
            return None

    def as_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "passed": self.passed, "checks": [c.as_dict() for c in self.checks]}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), default=str)

    def __str__(self) -> str:
        lines = [f"{self.loss}: {'PASS' if self.passed else 'FAIL'}"]
        for c in self.checks:
            err = "" if c.error is None else f" err={c.error:.2e}"
            lines.append(f"  [{'ok' if c.passed else 'FAIL'}] {c.name}{err} {c.where}".rstrip())
        return "\n".join(lines)
