"""``lossgrad derive FORMULA``: exact grad and hess of a loss written as a formula (SymPy)."""

from __future__ import annotations

from typing import Any

import typer

from ._app import app, console, dump_json, fail, parse_value

__all__ = ["derive_command"]

_EPILOG = """Example: lossgrad derive "log(cosh(r))"

More examples:

  lossgrad derive "delta**2*(sqrt(1+(r/delta)**2)-1)" -p delta=1.5 --json

  lossgrad derive "max(0, 1 - z)**2" --latex

  lossgrad derive "2*(y*log(y) - y*f - y + exp(f))" --target positive

The variable is r = f - y (a residual loss), z = y f (a margin loss), or y and f.

Exit codes: 0 derived (and verified unless --no-check); 1 the derived loss failed
lossgrad.verify; 2 usage error (the formula does not parse, uses an unknown name, or a
parameter is malformed)."""


def _params(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            fail(f"--param expects KEY=VALUE, got {item!r}")
        value = parse_value(raw)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"--param {key.strip()} must be a number, got {raw!r}")
        out[key.strip()] = float(value)
    return out


@app.command("derive", epilog=_EPILOG)
def derive_command(
    formula: str = typer.Argument(..., help="The loss as an expression in r, z, or y and f."),
    params: list[str] = typer.Option(None, "--param", "-p", help="KEY=VALUE: a parameter and its value."),
    variable: str = typer.Option(None, "--variable", "-v", help="r, z or yf (guessed from the formula)."),
    target: str = typer.Option("real", "--target", "-t", help="Domain of y for losses of y and f: real, positive, "
                                                             "unit or binary."),
    latex: bool = typer.Option(False, "--latex", help="Print LaTeX instead of SymPy text."),
    check: bool = typer.Option(True, "--check/--no-check", help="Measure properties and run lossgrad.verify."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (value, grad, hess, latex, kinks, props, verify)."),
) -> None:
    """Derive the exact gradient and Hessian of FORMULA, find its kinks and properties, verify it."""
    try:
        from .. import custom
    except ImportError as exc:  # pragma: no cover
        fail(str(exc), code=1)
    kwargs = _params(params)
    if target not in ("real", "positive", "unit", "binary"):
        fail(f"--target must be real, positive, unit or binary; got {target!r}")
    try:
        der = custom.derive(formula, kwargs, variable=variable)
        if target != "real" and der.variable != "yf":
            fail(f"--target {target} applies to losses of y and f; this formula is in {der.variable}")
    except (ValueError, TypeError) as exc:
        fail(str(exc))
    except ImportError as exc:  # pragma: no cover - sympy missing
        fail(str(exc), code=1)
    data: dict[str, Any] = {"formula": formula, "variable": der.variable, "params": kwargs, **der.as_text(),
                            "latex": der.formula().as_dict()}
    code = 0
    if check:
        try:
            loss = custom.from_formula(formula, kwargs, variable=variable, check=False, target=target)
            data["kinks"] = [{"at": k.at, "order": k.order, "side": k.side.value} for k in loss.kinks]
            data["props"] = loss.props.as_dict()
            from ..verification import verify

            report = verify(loss)
        except ValueError as exc:
            data["verify"] = {"passed": False, "failures": [str(exc)]}
            code = 1
        else:
            data["verify"] = {"passed": report.passed,
                              "failures": [f"{c.name}: {c.where or c.measured}" for c in report.failures]}
            code = 0 if report.passed else 1
    if as_json:
        dump_json(data)
        raise typer.Exit(code)
    out = console()
    source = data["latex"] if latex else data
    out.print(f"variable: {data['latex']['variable'] if latex else der.variable}", markup=False)
    for key in ("value", "grad", "hess"):
        out.print(f"{key:>5} = {source[key]}", markup=False, soft_wrap=True)
    if check:
        if "kinks" in data:
            kinks = ", ".join(f"{k['at']:g} (order {k['order']}, {k['side']})" for k in data["kinks"]) or "none"
            out.print(f"kinks: {kinks}", markup=False)
            props = data["props"]
            out.print("props: " + ", ".join(f"{k}={v}" for k, v in props.items()
                                            if k not in ("has_grad", "has_hess")), markup=False, soft_wrap=True)
        verdict = "PASS" if data["verify"]["passed"] else "FAIL: " + "; ".join(data["verify"]["failures"])
        out.print(f"verify: {verdict}", markup=False, soft_wrap=True)
    raise typer.Exit(code)
