"""Text renderings of a loss's declared records, shared by ``list``, ``show`` and ``demo``."""

from __future__ import annotations

from typing import Any

from .._props import Props

__all__ = ["fmt_num", "fmt_params", "fmt_convexity", "fmt_smoothness", "fmt_lipschitz", "fmt_kinks", "label"]

_DIFF = {-1: "discont.", 0: "C0", 1: "C1", 2: "C2"}


def fmt_num(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def fmt_params(params: dict[str, Any]) -> str:
    """``delta=1, tau=0.5`` (empty string when there are none)."""
    return ", ".join(f"{k}={'None' if v is None else fmt_num(v)}" for k, v in params.items())


def label(name: str, params: dict[str, Any]) -> str:
    """``huber(delta=0.3)`` or ``huber``."""
    return f"{name}({fmt_params(params)})" if params else name


def fmt_convexity(p: Props) -> str:
    if p.strong_convexity > 0:
        return f"strongly m={p.strong_convexity:.4g}"
    if p.strictly_convex:
        return "strictly"
    return "convex" if p.convex else "no"


def fmt_smoothness(p: Props) -> str:
    """Differentiability order and, where finite, the Lipschitz constant of the gradient."""
    order = _DIFF.get(p.differentiability, str(p.differentiability))
    if not p.has_grad:
        return order
    return f"{order}, {p.smoothness:.4g}" if p.smoothness is not None else f"{order}, -"


def fmt_lipschitz(p: Props) -> str:
    return "-" if p.lipschitz is None else f"{p.lipschitz:.4g}"


def fmt_kinks(kinks: Any) -> str:
    if not kinks:
        return "none"
    return ", ".join(f"{k.at:.4g} (order {k.order}, {k.side.value})" for k in kinks)
