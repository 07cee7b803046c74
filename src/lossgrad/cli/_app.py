"""The typer application every subcommand module registers on, and shared helpers.

A subcommand module imports :data:`app` from here and decorates its functions with
``@app.command(...)``; ``lossgrad.cli`` imports the module once (one line) to register it.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

__all__ = ["app", "console", "err_console", "fail", "parse_params", "parse_value", "dump_json", "jsonable"]

app = typer.Typer(
    name="lossgrad",
    help=(
        "Loss functions with exact gradients and Hessians, measured properties and checks.\n\n"
        "Start with `lossgrad demo`; `lossgrad list` shows the catalog."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Exit code of a usage error (unknown loss name, bad parameter), as click uses.
USAGE_ERROR = 2


def console() -> Console:
    """A console on the current stdout (colours only on a terminal; 80 columns when piped)."""
    return Console(file=sys.stdout, highlight=False)


def err_console() -> Console:
    return Console(file=sys.stderr, highlight=False)


def fail(message: str, code: int = USAGE_ERROR) -> NoReturn:
    """Print ``Error: message`` on stderr and exit with ``code``."""
    err_console().print(f"Error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def parse_value(text: str) -> Any:
    """A parameter value from the command line: bool, None, int, float, or the string itself.

    >>> [parse_value(s) for s in ("true", "None", "3", "2.5", "1e-3", "inf", "gaussian")]
    [True, None, 3, 2.5, 0.001, inf, 'gaussian']
    """
    low = text.strip().lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    if low in ("none", "null"):
        return None
    try:
        return int(low)
    except ValueError:
        pass
    try:
        return float(low)
    except ValueError:
        return text.strip()


def parse_params(items: list[str] | None, known: dict[str, Any], loss_name: str) -> dict[str, Any]:
    """``["k=v", ...]`` to a dict, each key checked against the loss's parameters."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            fail(f"--param expects KEY=VALUE, got {item!r}")
        if key not in known:
            names = ", ".join(known) if known else "none"
            fail(f"{loss_name} has no parameter {key!r}; its parameters: {names}")
        out[key] = parse_value(raw)
    return out


def jsonable(obj: Any) -> Any:
    """``obj`` with enums as their values, tuples as lists and non-finite floats as strings."""
    import enum

    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        return jsonable(obj.item())
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def dump_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout (no rich markup, no wrapping)."""
    sys.stdout.write(json.dumps(jsonable(obj), indent=2) + "\n")
