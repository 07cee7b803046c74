"""``lossgrad list``: the catalog as a table (or JSON)."""

from __future__ import annotations

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from .._props import Shape
from ._app import app, console, dump_json, fail
from ._format import fmt_convexity, fmt_lipschitz, fmt_params, fmt_smoothness

__all__ = ["list_losses", "catalog_rows"]


def catalog_rows(family: str | None = None, shape: str | None = None) -> list[dict]:
    """One dict per registered loss: name, family, shape, summary, params, props, kinks."""
    from .._registry import catalog

    if shape is not None:
        try:
            Shape(shape)
        except ValueError:
            fail(f"--shape must be one of {', '.join(s.value for s in Shape)}; got {shape!r}")
    entries = catalog(family=family, shape=shape)
    if family is not None and not entries:
        families = sorted({e.family for e in catalog()})
        fail(f"no loss in family {family!r}; families: {', '.join(families)}")
    rows = []
    for e in entries:
        loss = e.make()
        rows.append(
            {
                "name": e.name,
                "family": e.family,
                "shape": e.shape.value,
                "summary": e.summary,
                "params": dict(e.params),
                "props": loss.props.as_dict(),
                "kinks": [{"at": k.at, "order": k.order, "side": k.side.value} for k in loss.kinks],
                "_props": loss.props,
            }
        )
    return rows


@app.command("list", epilog=("Example: lossgrad list --family robust   |   lossgrad list --json"
                             "\n\nExit codes: 0 listed; 2 usage error (unknown family or shape)."))
def list_losses(
    family: str = typer.Option(None, "--family", "-f", help="Only this family (regression, robust, margin, ...)."),
    shape: str = typer.Option(None, "--shape", "-s", help="Only this shape: pointwise, row or batch."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The catalog: every registered loss with its parameters, convexity, smoothness and Lipschitz constant.

    Smoothness reads "C1, 1": continuously differentiable, gradient 1-Lipschitz ("-": unbounded Hessian).
    """
    rows = catalog_rows(family, shape)
    if as_json:
        dump_json([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title=f"{len(rows)} losses",
                  title_justify="left")
    table.add_column("family / name (parameters)", no_wrap=True)
    table.add_column("shape", no_wrap=True)
    table.add_column("convex", no_wrap=True)
    table.add_column("smooth", no_wrap=True)
    table.add_column("Lipschitz", justify="right", no_wrap=True)
    family = None
    for r in rows:
        if r["family"] != family:
            family = r["family"]
            table.add_row(f"[bold underline]{escape(family)}[/]", "", "", "", "")
        p = r["_props"]
        cell = f"  [bold]{escape(r['name'])}[/bold]"
        if r["params"]:
            cell += "".join(f"\n    [dim]{escape(fmt_params({k: v}))}[/dim]" for k, v in r["params"].items())
        table.add_row(cell, r["shape"], fmt_convexity(p), fmt_smoothness(p), fmt_lipschitz(p))
    console().print(table)
