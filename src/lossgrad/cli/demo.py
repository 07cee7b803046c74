"""``lossgrad demo``: the tour -- cards, verification, and a robust fit on shipped data.

The fit is the one-parameter model y = theta x on ``lossgrad.datasets.load_outliers()``
(200 points, true slope 2.5, 10% gross outliers), minimising the mean loss
F(theta) = mean_i L(y_i, theta x_i) with the loss's exact derivatives:
F'(theta) = mean_i L'_i x_i and F''(theta) = mean_i L''_i x_i^2.  Each step is a Newton
step when F'' > 0 and a gradient step otherwise, with backtracking until F decreases.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich import box
from rich.table import Table

from ._app import app, console
from .check import run_checks
from .show import print_card

__all__ = ["demo", "fit_slope", "SlopeFit", "DEMO_LOSSES"]

#: The losses the demo fits, in order; those not registered are left out.
DEMO_LOSSES = ("squared_error", "absolute_error", "huber", "log_cosh", "tukey_biweight")


@dataclass(frozen=True)
class SlopeFit:
    loss: str
    theta: float
    start: float
    iterations: int
    newton_steps: int
    gradient_steps: int
    objective: float
    final_grad: float


def fit_slope(loss: Any, x: np.ndarray, y: np.ndarray, theta0: float = 0.0, max_iter: int = 500,
              tol: float = 1e-12) -> SlopeFit:
    """Minimise F(theta) = mean L(y, theta x) by safeguarded Newton / gradient descent.

    Newton's step -F'/F'' is taken when F'' > 0; otherwise a gradient step -s F' whose
    length s adapts (doubled after a success, halved until F decreases).  Every step is
    backtracked (Armijo, factor 1/2) so F never increases.  Stops when a step no longer
    changes theta by more than ``tol`` (relative) or F cannot be decreased.
    """
    xx = float(np.mean(x * x))

    def F(t: float) -> float:
        return float(np.mean(loss.value(y, t * x)))

    theta, s = float(theta0), 1.0 / max(xx, 1e-300)
    f_cur = F(theta)
    newton = grad_steps = it = 0
    g = 0.0
    for it in range(1, max_iter + 1):
        gi, hi = loss.grad_hess(y, theta * x)
        g, h = float(np.mean(gi * x)), float(np.mean(hi * x * x))
        if g == 0.0:
            break
        use_newton = h > 0.0
        step = -g / h if use_newton else -s * g
        accepted = False
        for _ in range(60):
            f_new = F(theta + step)
            if f_new <= f_cur + 1e-4 * g * step:
                accepted = True
                break
            step *= 0.5
        if not accepted:
            break
        theta += step
        f_cur = f_new
        if use_newton:
            newton += 1
        else:
            grad_steps += 1
            s = 2.0 * abs(step / g)
        if abs(step) <= tol * (1.0 + abs(theta)):
            break
    return SlopeFit(loss.name, theta, float(theta0), it, newton, grad_steps, f_cur, g)


def _fit_all(losses: list[tuple[str, Any]], x: np.ndarray, y: np.ndarray) -> list[SlopeFit]:
    """Convex losses start at 0; non-convex ones at the absolute-error fit (a robust start)."""
    fits: dict[str, SlopeFit] = {}
    for name, loss in losses:
        if loss.props.convex:
            fits[name] = fit_slope(loss, x, y, 0.0)
    robust_start = fits["absolute_error"].theta if "absolute_error" in fits else 0.0
    for name, loss in losses:
        if not loss.props.convex:
            fits[name] = fit_slope(loss, x, y, robust_start)
    return [fits[name] for name, _ in losses]


@app.command(
    "demo",
    epilog=("Example: lossgrad demo   |   lossgrad demo --out results/   (writes demo.json, demo.png, losses.png)"
            "   |   lossgrad demo --json --no-figure\n\n"
            "Exit codes: 0 every demo loss verified; 1 a verification failed or the figure could not be written."),
)
def demo(
    out: Path = typer.Option(None, "--out", help="Write the results (demo.json) and the figures (demo.png, "
                                                 "losses.png) to this folder."),
    figure: Path = typer.Option(None, "--figure", help="Where to write the figure of L and L' of the demo losses "
                                                       "(default: OUT/losses.png, or ./lossgrad-demo.png)."),
    no_figure: bool = typer.Option(False, "--no-figure", help="Write no figure (unless --out is given)."),
    plots: bool = typer.Option(False, "--plots", help="Include the text plots of L, L', L'' in the cards."),
    as_json: bool = typer.Option(False, "--json", help="Print the fits and the verification as JSON."),
) -> None:
    """The tour: a few loss cards, their verification, and a one-parameter fit showing Huber resist outliers;
    the figure of the losses and their derivatives is written to a file."""
    from .. import __version__
    from .._registry import catalog, entry
    from ..datasets import load_outliers

    if as_json:
        _demo_json(out, figure, no_figure)
        return
    t_start = time.perf_counter()
    con = console()
    registered = {e.name for e in catalog()}
    names = [n for n in DEMO_LOSSES if n in registered]
    losses = [(n, entry(n).make()) for n in names]
    con.rule(f"[bold]lossgrad {__version__} demo[/bold]")
    con.print(
        f"{len(registered)} losses are registered, each with its value, exact gradient and exact Hessian. "
        f"This demo shows {len(names)} of them, verifies them, and fits a slope with each.",
        markup=False,
    )

    con.print()
    con.rule("1. cards", align="left")
    for n, loss in losses:
        print_card(con, loss, entry(n).summary, plot=plots, compact=True)

    con.print()
    con.rule("2. verification (lossgrad.verify)", align="left")
    results = run_checks(losses, progress=con.is_terminal)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col, just in (("loss", "left"), ("result", "left"), ("grad err", "right"), ("hess err", "right"),
                      ("measured properties", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for (_, loss), r in zip(losses, results):
        table.add_row(r.label, "pass" if r.passed else "FAIL: " + ", ".join(r.failed_checks),
                      "-" if r.worst("grad") is None else f"{r.worst('grad'):.1e}",
                      "-" if r.worst("hess") is None else f"{r.worst('hess'):.1e}",
                      confirmed(loss, r.report))
    con.print(table)
    con.print("Errors: worst relative error of the closed-form derivative against 4th-order finite "
              "differences, beyond the finite differences' own error estimate (0: they agree), away from "
              "the declared kinks. Every declared property was measured; those listed hold.", markup=False)

    con.print()
    con.rule("3. fitting y = theta * x with each loss", align="left")
    data = load_outliers()
    x, y = data.x, data.y
    n_out = int(data.is_outlier.sum())
    con.print(f"Data: lossgrad.datasets.load_outliers(): {len(x)} points, {n_out} gross outliers; "
              f"true slope {data.true_slope:g}.", markup=False)
    fits = _fit_all(losses, x, y)
    ft = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col, just in (("loss", "left"), ("fitted slope", "right"), ("error", "right"), ("start", "right"),
                      ("steps (Newton/grad)", "right")):
        ft.add_column(col, justify=just)
    for f in fits:
        ft.add_row(f.loss, f"{f.theta:.4f}", f"{f.theta - data.true_slope:+.4f}", f"{f.start:.3g}",
                   f"{f.newton_steps}/{f.gradient_steps}")
    con.print(ft)
    by = {f.loss: f for f in fits}
    if "squared_error" in by and "huber" in by:
        se, hu = by["squared_error"], by["huber"]
        con.print(
            f"Squared error lets the {n_out} outliers pull the slope to {se.theta:.3f} "
            f"({abs(se.theta - data.true_slope):.3f} off); Huber's bounded gradient caps each point's pull, "
            f"so it stays at {hu.theta:.3f} ({abs(hu.theta - data.true_slope):.3f} off).",
            markup=False,
        )
    if "tukey_biweight" in by:
        tk = by["tukey_biweight"]
        con.print(f"Tukey's biweight redescends (psi -> 0), ignoring gross outliers entirely: {tk.theta:.3f} "
                  f"(started from the absolute-error fit; it is not convex).", markup=False)
    elapsed = time.perf_counter() - t_start
    con.print(f"\ndone in {elapsed:.1f} s. Next: `lossgrad list`, `lossgrad show huber`, `lossgrad check`, "
              "`lossgrad plot huber squared_error -o cmp.png`.", markup=False)
    target = _figure_path(out, figure, no_figure)
    if target is not None:
        try:
            _loss_figure(losses, target)
        except OSError as exc:
            con.print(f"could not write the figure {target}: {exc}", markup=False)
            raise typer.Exit(1) from None
        con.print(f"figure of L and L' (kinks marked): {target}", markup=False)
    if out is not None:
        _write(out, data, fits, results)
        con.print(f"wrote {out / 'demo.json'} and {out / 'demo.png'}", markup=False)
    if not all(r.passed for r in results):
        raise typer.Exit(1)


def _figure_path(out: Path | None, figure: Path | None, no_figure: bool) -> Path | None:
    if figure is not None:
        return figure
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        return out / "losses.png"
    return None if no_figure else Path("lossgrad-demo.png")


def _loss_figure(losses: list[tuple[str, Any]], path: Path) -> None:
    """L and L' of the demo losses with their kinks marked (:func:`lossgrad.plot.curves`)."""
    import matplotlib

    matplotlib.use("Agg")
    from .. import plot

    fig = plot.curves([loss for _, loss in losses], what=("value", "grad"), x_range=(-4.0, 4.0),
                      title="The demo losses: L and its exact derivative L'")
    fig.savefig(path, dpi=90)


def _demo_json(out: Path | None, figure: Path | None, no_figure: bool) -> None:
    """The demo's results as JSON on stdout (no tables): fits, verification, figure path."""
    from .._registry import catalog, entry
    from ..datasets import load_outliers
    from ._app import dump_json

    registered = {e.name for e in catalog()}
    losses = [(n, entry(n).make()) for n in DEMO_LOSSES if n in registered]
    results = run_checks(losses, progress=False)
    data = load_outliers()
    fits = _fit_all(losses, data.x, data.y)
    target = _figure_path(out, figure, no_figure)
    if target is not None:
        try:
            _loss_figure(losses, target)
        except OSError:
            raise typer.Exit(1) from None
    if out is not None:
        _write(out, data, fits, results)
    dump_json({"true_slope": data.true_slope, "fits": [asdict(f) for f in fits],
               "verification": [{"loss": r.label, "passed": r.passed, "failed": r.failed_checks} for r in results],
               "figure": None if target is None else str(target)})
    if not all(r.passed for r in results):
        raise typer.Exit(1)


def confirmed(loss: Any, report: Any) -> str:
    """The declared properties whose measurement passed, in words, and how many were checked."""
    if report is None:
        return "-"
    ok = {c.name for c in report.checks if c.passed}
    p = loss.props
    words = []
    if p.strong_convexity > 0 and "strong_convexity" in ok:
        words.append(f"strongly convex m={p.strong_convexity:g}")
    elif p.strictly_convex and "strictly_convex" in ok:
        words.append("strictly convex")
    elif p.convex and "convex" in ok:
        words.append("convex")
    if p.lipschitz is not None and "lipschitz" in ok:
        words.append(f"Lipschitz {p.lipschitz:.4g}")
    if p.smoothness is not None and "smoothness" in ok:
        words.append(f"smooth {p.smoothness:.4g}")
    if "differentiability" in ok:
        words.append({-1: "discontinuous", 0: "C0", 1: "C1", 2: "C2"}.get(p.differentiability, "?"))
    for flag in ("symmetric", "bounded", "redescending"):
        if getattr(p, flag) and flag in ok:
            words.append(flag)
    n = sum(1 for c in report.checks if c.name in _PROP_CHECKS)
    return f"{', '.join(words)} ({n} checks)"


_PROP_CHECKS = ("convex", "strictly_convex", "strong_convexity", "lipschitz", "smoothness", "differentiability",
                "kinks", "symmetric", "bounded", "redescending", "class_calibrated")


def _write(out: Path, data: Any, fits: list[SlopeFit], results: list[Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    payload = {"true_slope": data.true_slope, "fits": [asdict(f) for f in fits],
               "verification": [r.as_dict() for r in results]}
    from ._app import jsonable

    (out / "demo.json").write_text(json.dumps(jsonable(payload), indent=2) + "\n")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.scatter(data.x[~data.is_outlier], data.y[~data.is_outlier], s=8, c="0.6", label="inliers")
    ax.scatter(data.x[data.is_outlier], data.y[data.is_outlier], s=14, c="crimson", marker="x", label="outliers")
    grid = np.linspace(0.0, float(data.x.max()), 2)
    ax.plot(grid, data.true_slope * grid, "k--", lw=1, label=f"truth ({data.true_slope:g})")
    for f in fits:
        ax.plot(grid, f.theta * grid, lw=1.2, label=f"{f.loss} ({f.theta:.3f})")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "demo.png", dpi=120)
