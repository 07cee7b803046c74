"""``lossgrad show NAME``: the card of one loss, with a text plot of L, L' and L''."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import typer
from rich import box
from rich.table import Table

from .._core import MarginLoss, NotDifferentiableError
from .._props import Basis, Shape
from ._app import app, console, dump_json, fail, parse_params
from ._format import fmt_convexity, fmt_lipschitz, fmt_num, fmt_params, fmt_smoothness
from ._plot import render_panel

__all__ = ["show", "resolve", "card_data", "print_card", "curves", "default_view"]


def resolve(name: str, params: list[str] | None) -> tuple[Any, Any]:
    """(catalog entry, loss instance) of ``name`` with ``k=v`` parameters; exit 2 on errors."""
    from .._registry import entry as lookup

    try:
        ent = lookup(name)
    except (ValueError, TypeError) as exc:
        fail(str(exc))
    kwargs = parse_params(params, ent.params, name)
    try:
        return ent, ent.make(**kwargs)
    except (ValueError, TypeError) as exc:
        fail(f"invalid parameters for {name} ({fmt_params(kwargs)}): {exc}")


# ------------------------------------------------------------------ curves


def _safe(loss: Any, what: str, y: np.ndarray, f: np.ndarray) -> np.ndarray | None:
    """loss.<what>(y, f) as float64; None if the loss declares it absent."""
    from .._config import config_context

    method = getattr(loss, what)
    try:
        try:
            return np.asarray(method(y, f), dtype=float)
        except ValueError:  # a grid point outside the domain: evaluate without the checks
            with config_context(assume_valid=True), np.errstate(all="ignore"):
                return np.asarray(method(y, f), dtype=float)
    except NotDifferentiableError:
        return None


def default_view(loss: Any) -> tuple[float, float, float]:
    """(y_true, lo, hi): a representative target and a range of the natural variable.

    Distance losses are drawn at y_true = 0 and margin losses at y = +1 on a symmetric
    range; other losses at the median example target.  The range covers 90% of the
    loss's own example inputs and 1.5 times every declared kink.
    """
    rng = np.random.default_rng(0)
    y_ex, f_ex = loss._example_inputs(rng, 2000)
    t_ex = np.asarray(loss._natural(y_ex, f_ex), dtype=float)
    kinks = [abs(k.at) for k in loss.kinks]
    basis = loss.props.basis
    if basis == Basis.DISTANCE or isinstance(loss, MarginLoss) or basis == Basis.MARGIN:
        y0 = 0.0 if basis == Basis.DISTANCE else 1.0
        r = max(float(np.percentile(np.abs(t_ex), 90)), 1.5 * max(kinks, default=0.0), 1.0)
        r = _nice(r)
        return y0, -r, r
    y0 = float(np.median(y_ex))
    lo, hi = (float(v) for v in np.percentile(t_ex, [1, 99]))
    for k in loss.kinks:
        lo, hi = min(lo, k.at - 0.5 * abs(k.at)), max(hi, k.at + 0.5 * abs(k.at))
    return y0, lo, hi


def _nice(r: float) -> float:
    """Round up to 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten."""
    p = 10.0 ** math.floor(math.log10(r))
    for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * p >= r * (1 - 1e-12):
            return m * p
    return r  # pragma: no cover


def curves(loss: Any, lo: float, hi: float, y_true: float, n: int = 481) -> dict[str, Any]:
    """The natural variable t on [lo, hi] and L, L', L'' at y_pred = loss._from_natural(y_true, t)."""
    t = np.linspace(lo, hi, n)
    y = np.full_like(t, y_true)
    f = np.asarray(loss._from_natural(y, t), dtype=float)
    return {"t": t, "value": _safe(loss, "value", y, f), "grad": _safe(loss, "grad", y, f), "hess": _safe(loss, "hess", y, f)}


# ------------------------------------------------------------------ card


def card_data(loss: Any, summary: str = "") -> dict[str, Any]:
    """Everything ``show`` prints, as plain data (the ``--json`` output)."""
    import dataclasses

    params = {}
    if dataclasses.is_dataclass(loss):
        params = {f.name: getattr(loss, f.name) for f in dataclasses.fields(loss) if f.init and not f.name.startswith("_")}
    data: dict[str, Any] = {
        "name": loss.name,
        "family": loss.family,
        "shape": loss.shape.value,
        "summary": summary,
        "params": params,
        "formula": loss.formula.as_dict(),
        "props": loss.props.as_dict(),
        "kinks": [{"at": k.at, "order": k.order, "side": k.side.value} for k in loss.kinks],
    }
    from .._core import Loss

    data["params"] = {k: (v.name if isinstance(v, Loss) else v) for k, v in params.items()}
    return data


def print_card(con: Any, loss: Any, summary: str = "", *, plot: bool = True, compact: bool = False,
               y_true: float | None = None, xmin: float | None = None, xmax: float | None = None) -> None:
    """Print the card of ``loss`` on the rich console ``con``."""
    data = card_data(loss, summary)
    head = data["name"] + (f"({fmt_params(data['params'])})" if data["params"] else "")
    con.rule(f"[bold]{head}[/bold]", align="left")
    if summary:
        con.print(summary, markup=False)
    con.print(f"family {data['family']}, shape {data['shape']}", markup=False)
    form = data["formula"]
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("variable", form["variable"])
    for key, lab in (("value", "L"), ("grad", "L'"), ("hess", "L''")):
        table.add_row(lab, form[key])
    con.print(table)
    p = loss.props
    if compact:
        kinks = ", ".join(f"{k['at']:.4g}" for k in data["kinks"]) or "none"
        con.print(
            f"convex: {fmt_convexity(p)}; smoothness: {fmt_smoothness(p)}; Lipschitz: {fmt_lipschitz(p)}; "
            f"kinks: {kinks}",
            markup=False,
        )
    else:
        props = Table(title="properties", box=box.SIMPLE, title_justify="left", pad_edge=False)
        props.add_column("property")
        props.add_column("declared")
        for k, v in data["props"].items():
            props.add_row(k, fmt_num(v))
        con.print(props)
        if data["kinks"]:
            kt = Table(title="kinks", box=box.SIMPLE, title_justify="left", pad_edge=False)
            for col in ("at", "order", "side"):
                kt.add_column(col)
            for k in data["kinks"]:
                kt.add_row(fmt_num(k["at"]), str(k["order"]), k["side"])
            con.print(kt)
        else:
            con.print("kinks: none", markup=False)
    if plot:
        print_plot(con, loss, y_true=y_true, xmin=xmin, xmax=xmax)


def print_plot(con: Any, loss: Any, *, y_true: float | None = None, xmin: float | None = None,
               xmax: float | None = None, width: int | None = None, height: int = 7) -> None:
    if loss.shape != Shape.POINTWISE:
        con.print(f"(no plot: {loss.shape.value} losses have no single natural variable)", markup=False)
        return
    y0, lo, hi = default_view(loss)
    y0 = y0 if y_true is None else y_true
    lo = lo if xmin is None else xmin
    hi = hi if xmax is None else xmax
    if not lo < hi:
        fail(f"the plot range needs xmin < xmax, got [{lo}, {hi}]")
    c = curves(loss, lo, hi, y0)
    width = width or max(30, min(64, con.width - 12))
    marks = [k.at for k in loss.kinks]
    con.print(f"plot at y_true = {y0:g} over t in [{lo:.4g}, {hi:.4g}], t the natural variable "
              f"({loss.formula.variable}); ^ marks a kink", markup=False)
    for key, lab in (("value", "L"), ("grad", "L'"), ("hess", "L''")):
        if c[key] is None:
            con.print(f"{lab}: declared absent", markup=False)
            continue
        con.print(render_panel(c["t"], c[key], title=lab, width=width, height=height, marks=marks), markup=False,
                  highlight=False, soft_wrap=True)


# ------------------------------------------------------------------ command


@app.command(
    "show",
    epilog=("Example: lossgrad show huber --param delta=2   |   lossgrad show quantile -p tau=0.9 --json"
            "\n\nExit codes: 0 shown; 2 usage error (unknown loss name, unknown or invalid parameter)."),
)
def show(
    name: str = typer.Argument(..., help="A registered loss name (see `lossgrad list`)."),
    param: list[str] = typer.Option(None, "--param", "-p", metavar="KEY=VALUE", help="A loss parameter; repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print the card as JSON (no plot)."),
    no_plot: bool = typer.Option(False, "--no-plot", help="Leave out the text plot."),
    y_true: float = typer.Option(None, "--y-true", help="The target the curves are drawn at (default: 0 for "
                                 "residual losses, +1 for margin losses)."),
    xmin: float = typer.Option(None, "--xmin", help="Left end of the plotted natural variable."),
    xmax: float = typer.Option(None, "--xmax", help="Right end of the plotted natural variable."),
) -> None:
    """The card of one loss: formulas of L, L', L'', every property, kinks, parameters, and a text plot."""
    ent, loss = resolve(name, param)
    if as_json:
        dump_json(card_data(loss, ent.summary))
        return
    print_card(console(), loss, ent.summary, plot=not no_plot, y_true=y_true, xmin=xmin, xmax=xmax)
