"""``lossgrad plot NAME [NAME...] -o FILE``: a figure of losses and their derivatives (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ._app import app, dump_json, fail, parse_value

__all__ = ["plot_command"]

_KINDS = ("curves", "margin", "probability", "weights")

_EPILOG = """Example: lossgrad plot huber squared_error absolute_error -o cmp.png

More examples:

  lossgrad plot huber -p delta=2 --what grad,hess --range -5,5 -o huber.png

  lossgrad plot logistic hinge exponential --kind probability -o clf.png

  lossgrad plot huber tukey_biweight --kind weights -o w.png --json

Exit codes: 0 the figure was written; 1 it could not be written (matplotlib missing,
unwritable path); 2 usage error (unknown loss, bad parameter, range or --what)."""


def _split_params(items: list[str] | None, names: list[str]) -> dict[str, dict[str, Any]]:
    """``KEY=V`` (every loss that has KEY) or ``NAME.KEY=V`` (that loss) -> per-loss kwargs."""
    from .._registry import entry

    known = {n: entry(n).params for n in names}
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            fail(f"--param expects KEY=VALUE or NAME.KEY=VALUE, got {item!r}")
        target, dot, k = key.strip().rpartition(".")
        targets = [target] if dot else [n for n in names if k in known[n]]
        if dot and target not in known:
            fail(f"--param {item!r}: {target!r} is not one of the plotted losses ({', '.join(names)})")
        if not targets or any(k not in known[t] for t in targets):
            fail(f"--param {item!r}: no plotted loss has a parameter {k!r}")
        for t in targets:
            out[t][k] = parse_value(raw)
    return out


def _parse_range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        fail(f"--range expects LO,HI (two numbers), got {text!r}")
    if not lo < hi:
        fail(f"--range needs LO < HI, got {text!r}")
    return lo, hi


@app.command("plot", epilog=_EPILOG)
def plot_command(
    names: list[str] = typer.Argument(..., help="Registered loss names (see `lossgrad list`)."),
    output: Path = typer.Option(Path("losses.png"), "--output", "-o", help="Image file to write (.png, .svg, .pdf)."),
    x_range: str = typer.Option(None, "--range", "-r", help="LO,HI of the x axis (default: covers every kink)."),
    what: str = typer.Option("value,grad,hess", "--what", "-w", help="Panels: some of value,grad,hess."),
    params: list[str] = typer.Option(None, "--param", "-p", help="KEY=VALUE for every loss with KEY, or NAME.KEY=VALUE."),
    kind: str = typer.Option("curves", "--kind", "-k", help="curves | margin | probability | weights."),
    dpi: int = typer.Option(100, "--dpi", help="Resolution of raster images."),
    as_json: bool = typer.Option(False, "--json", help="Print what was drawn as JSON."),
) -> None:
    """Draw L, L' and L'' of one or several losses (kinks marked), classification losses
    against the margin or the probability, or robust weights w(r), and write the figure."""
    from .._registry import entry

    if kind not in _KINDS:
        fail(f"--kind must be one of {', '.join(_KINDS)}; got {kind!r}")
    for n in names:
        try:
            entry(n)
        except ValueError as exc:
            fail(str(exc))
    per_loss = _split_params(params, names)
    rng = _parse_range(x_range)
    try:
        import matplotlib

        matplotlib.use("Agg")
        from .. import plot
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency of the plot extra
        fail(f"lossgrad plot needs matplotlib ({exc})", code=1)
    specs = [(n, per_loss[n]) for n in names]
    try:
        if kind == "curves":
            fig = plot.curves(specs, x_range=rng, what=what)
        elif kind == "weights":
            fig = plot.robust_weights(specs, **({"x_range": rng} if rng else {}))
        else:
            fig = plot.classification(specs, against="margin" if kind == "margin" else "probability", x_range=rng)
    except (ValueError, TypeError) as exc:
        fail(str(exc))
    try:
        fig.savefig(output, dpi=dpi)
    except (OSError, ValueError) as exc:
        fail(f"could not write {output}: {exc}", code=1)
    summary = {
        "output": str(output),
        "kind": kind,
        "losses": [{"name": n, "params": per_loss[n]} for n in names],
        "panels": [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()],
        "x_range": list(fig.axes[0].get_xlim()),
        "kinks": [list(map(float, line.get_xdata())) for line in fig.axes[0].lines if line.get_gid() == "kink"],
    }
    if as_json:
        dump_json(summary)
    else:
        typer.echo(f"wrote {output} ({', '.join(names)}; panels {', '.join(summary['panels'])})")
