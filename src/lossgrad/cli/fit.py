"""``lossgrad fit DATA.csv --target y --loss huber``: train a model on a CSV file.

    lossgrad fit data.csv --target y --loss huber                 # linear regression, Huber loss
    lossgrad fit data.csv --target label --model softmax          # softmax classifier
    lossgrad fit data.csv --target y --loss tukey_biweight --robust   # M-estimation summary
    lossgrad fit data.csv --target y --model mlp --out model.pkl  # a small MLP, saved with pickle
"""

from __future__ import annotations

import csv
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich import box
from rich.table import Table

from ._app import app, console, dump_json, fail
from ._plot import render_panel

__all__ = ["fit", "read_csv"]

_CLASSIFICATION_FAMILIES = {"margin", "binary"}


def read_csv(path: Path, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(X float64, y as read, feature names) from a CSV file with a header row."""
    if not path.is_file():
        fail(f"no such file: {path}")
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        fail(f"{path} needs a header row and at least one data row")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if target not in header:
        fail(f"--target {target!r} is not a column of {path}; columns: {', '.join(header)}")
    t = header.index(target)
    names = [h for j, h in enumerate(header) if j != t]
    if not names:
        fail(f"{path} has no feature columns besides the target {target!r}")
    X = np.empty((len(body), len(names)))
    for i, row in enumerate(body):
        if len(row) != len(header):
            fail(f"{path}, line {i + 2}: {len(row)} fields, expected {len(header)}")
        values = [v for j, v in enumerate(row) if j != t]
        for j, v in enumerate(values):
            try:
                X[i, j] = float(v)
            except ValueError:
                fail(f"{path}, line {i + 2}, column {names[j]!r}: {v!r} is not a number")
    raw = [row[t].strip() for row in body]
    try:
        y: np.ndarray = np.array([float(v) for v in raw])
    except ValueError:
        y = np.array(raw)
    return X, y, names


def _build(model: str, loss: Any, robust: bool, alpha: float | None, l1_ratio: float, solver: str, max_iter: int,
           y: np.ndarray, gradient: str = "mean"):
    from .. import models
    from ..robust import MEstimator

    if gradient != "mean" and (robust or model == "mlp"):
        fail("--gradient applies to the linear and softmax models (robust gradient descent); "
             f"not to {'--robust' if robust else '--model mlp'}")
    if robust:
        return MEstimator(loss if loss is not None else "huber", max_iter=max_iter)
    kw = dict(alpha=alpha, l1_ratio=l1_ratio, solver=solver, max_iter=max_iter, gradient=gradient)
    if model == "softmax":
        return models.SoftmaxClassifier(loss, **kw)
    family = getattr(loss, "family", "regression")
    classify = family in _CLASSIFICATION_FAMILIES or y.dtype.kind in "UO"
    if model == "mlp":
        cls = getattr(models, "MLPClassifier" if classify else "MLPRegressor", None)
        if cls is None:
            fail("the MLP estimators are not available in this installation")
        return cls(loss=loss, max_iter=max_iter) if loss is not None else cls(max_iter=max_iter)
    return (models.LinearClassifier if classify else models.LinearRegressor)(loss, **kw)


@app.command("fit")
def fit(
    data: Path = typer.Argument(..., help="CSV file with a header row"),
    target: str = typer.Option(..., "--target", "-t", help="name of the target column"),
    loss: str = typer.Option(None, "--loss", "-l", help="catalog loss name (default: the model's usual loss)"),
    param: list[str] = typer.Option(None, "--param", "-p", help="loss parameter k=v (repeatable)"),
    model: str = typer.Option("linear", "--model", "-m", help="linear | softmax | mlp"),
    robust: bool = typer.Option(False, "--robust", help="M-estimation by IRLS with a summary table"),
    alpha: float = typer.Option(None, "--alpha", help="penalty strength (default 0; 1e-4 for classifiers)"),
    l1_ratio: float = typer.Option(0.0, "--l1-ratio", help="share of the L1 part of the penalty"),
    solver: str = typer.Option("auto", "--solver", help="auto | newton | lbfgs | proximal | sgd | adam | ..."),
    max_iter: int = typer.Option(500, "--max-iter"),
    gradient: str = typer.Option("mean", "--gradient", help="mean | median_of_means | trimmed_mean | m_estimate "
                                 "(robust gradient descent, with a first-order solver)"),
    out: Path = typer.Option(None, "--out", "-o", help="write the fitted model here (pickle)"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary instead of tables"),
) -> None:
    """Train a model with any catalog loss and print its coefficients (or summary) and loss curve.

    Example: lossgrad fit data.csv --target y --loss huber -p delta=1.5
    """
    if model not in ("linear", "softmax", "mlp"):
        fail(f"--model must be linear, softmax or mlp; got {model!r}")
    X, y, names = read_csv(data, target)
    the_loss = None
    if loss is not None:
        from .show import resolve

        _, the_loss = resolve(loss, param)
    elif param:
        fail("--param needs --loss")
    est = _build(model, the_loss, robust, alpha, l1_ratio, solver, max_iter, y, gradient)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est.fit(X, y)
        except (ValueError, TypeError) as exc:
            fail(str(exc))
    notes = [str(w.message) for w in caught]
    if out is not None:
        out.write_bytes(pickle.dumps(est))
    summary = _summary(est, names)
    if as_json:
        dump_json({**summary, "warnings": notes, "saved_to": str(out) if out else None})
        return
    _print(est, summary, names, notes, out)


def _summary(est: Any, names: list[str]) -> dict[str, Any]:
    info: dict[str, Any] = {"model": type(est).__name__, "n_features": len(names)}
    if hasattr(est, "coef_"):
        info["coef"] = np.asarray(est.coef_).tolist()
        info["intercept"] = np.asarray(est.intercept_).tolist()
        info["features"] = names
    for attr in ("scale_", "bse_", "n_iter_", "converged_", "objective_", "classes_"):
        if hasattr(est, attr):
            v = getattr(est, attr)
            info[attr.rstrip("_")] = v.tolist() if isinstance(v, np.ndarray) else v
    curve = getattr(est, "loss_curve_", None)
    if curve is not None:
        info["loss_curve"] = [float(v) for v in curve]
    return info


def _print(est: Any, summary: dict[str, Any], names: list[str], notes: list[str], out: Path | None) -> None:
    con = console()
    if hasattr(est, "summary"):
        con.print(est.summary(names), markup=False, highlight=False)
    elif "coef" in summary:
        coef = np.atleast_2d(np.asarray(est.coef_))
        classes = [str(c) for c in getattr(est, "classes_", [])] if coef.shape[0] > 1 else ["coef"]
        table = Table(box=box.SIMPLE_HEAD, title=f"{type(est).__name__} ({est.loss_.name}, solver {est.solver_})")
        table.add_column("feature")
        for c in classes:
            table.add_column(c, justify="right")
        table.add_row("intercept", *[f"{v:.6g}" for v in np.atleast_1d(est.intercept_)])
        for j, name in enumerate(names):
            table.add_row(name, *[f"{v:.6g}" for v in coef[:, j]])
        con.print(table)
    else:
        con.print(f"{type(est).__name__} fitted.")
    curve = summary.get("loss_curve")
    if curve and len(curve) > 1:
        xs = list(range(len(curve)))
        con.print(render_panel(xs, curve, title="objective per iteration", width=60, height=8), markup=False, highlight=False)
        con.print(f"final objective {curve[-1]:.8g} after {len(curve) - 1} iterations", markup=False)
    for n in notes:
        con.print(f"warning: {n}", markup=False)
    if out is not None:
        con.print(f"model written to {out}", markup=False)


