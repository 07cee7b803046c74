"""``lossgrad check``: run :func:`lossgrad.verify` on losses, print a pass/fail table.

Exit status 0 when every loss passes, 1 when any check fails (or verify raises), 2 on
a usage error (unknown name, bad parameter).
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ._app import app, console, dump_json, err_console, fail
from ._format import label

__all__ = ["check", "CheckResult", "targets", "run_checks", "print_results"]


@dataclass
class CheckResult:
    """The outcome of verifying one loss instance."""

    label: str
    report: Any = None  #: the VerifyReport, or None when verify raised
    error: str = ""  #: the exception verify raised, as text
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.report is not None and bool(self.report.passed)

    def worst(self, name: str) -> float | None:
        return None if self.report is None else self.report.worst_error(name)

    @property
    def failed_checks(self) -> list[str]:
        if self.report is None:
            return ["verify raised"]
        return [c.name for c in self.report.failures]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "passed": self.passed, "seconds": round(self.seconds, 4),
                               "grad_error": self.worst("grad"), "hess_error": self.worst("hess"),
                               "failed": self.failed_checks}
        if self.report is not None:
            out["report"] = self.report.as_dict()
        else:
            out["error"] = self.error
        return out


def default_verify() -> Callable[..., Any]:
    """``lossgrad.verification.verify``, looked up when called (so tests may replace it)."""
    return importlib.import_module("lossgrad.verification").verify


def targets(names: Iterable[str], all_variants: bool) -> list[tuple[str, Any]]:
    """(label, loss) pairs: each named loss (every registered one if none), default or every variant."""
    from .._registry import catalog
    from .._registry import entry as lookup

    names = list(names)
    entries = []
    for n in names:
        try:
            entries.append(lookup(n))
        except (ValueError, TypeError) as exc:
            fail(str(exc))
    if not names:
        entries = catalog()
    out = []
    for e in entries:
        for params in (e.variants if all_variants else ({},)):
            try:
                out.append((label(e.name, params), e.make(**params)))
            except (ValueError, TypeError) as exc:  # a broken variant is a failure of the catalog
                fail(f"variant {label(e.name, params)} cannot be built: {exc}", code=1)
    return out


def run_checks(items: list[tuple[str, Any]], *, seed: int = 0, verify: Callable[..., Any] | None = None,
               progress: bool = True) -> list[CheckResult]:
    """Verify each (label, loss); never raises for a failing loss, records it instead."""
    verify = verify or default_verify()
    kwargs = {"seed": seed} if "seed" in inspect.signature(verify).parameters else {}
    results = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console(), transient=True, disable=not progress) as bar:
        task = bar.add_task("verifying", total=len(items))
        for lab, loss in items:
            bar.update(task, description=f"verifying {lab:<28.28}")
            t0 = time.perf_counter()
            try:
                res = CheckResult(lab, report=verify(loss, **kwargs))
            except Exception as exc:  # noqa: BLE001 - any crash of verify is a failed check
                res = CheckResult(lab, error=f"{type(exc).__name__}: {exc}")
            res.seconds = time.perf_counter() - t0
            results.append(res)
            bar.advance(task)
    return results


def _err(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


def print_results(con: Any, results: list[CheckResult]) -> None:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("loss", min_width=27, overflow="fold")
    table.add_column("result", no_wrap=True)
    table.add_column("grad err", justify="right", no_wrap=True)
    table.add_column("hess err", justify="right", no_wrap=True)
    table.add_column("failed checks", min_width=13)
    for r in results:
        n = len(r.report.checks) if r.report is not None else 0
        ok = n - len(r.report.failures) if r.report is not None else 0
        verdict = "[green]pass[/green]" if r.passed else "[bold red]FAIL[/bold red]"
        table.add_row(r.label, f"{verdict} {ok}/{n}", _err(r.worst("grad")), _err(r.worst("hess")),
                      ", ".join(r.failed_checks))
    con.print(table)
    for r in results:
        if r.report is None:
            con.print(f"{r.label}: {r.error}", markup=False)
        else:
            for c in r.report.failures:
                err = "" if c.error is None else f" error {c.error:.2e}"
                tol = "" if c.tolerance is None else f" > tol {c.tolerance:.1e}"
                where = f" at {c.where}" if c.where else ""
                con.print(f"{r.label}: {c.name}{err}{tol}; declared {c.declared!r}, measured {c.measured!r}{where}",
                          markup=False)
    failed = [r for r in results if not r.passed]
    total = sum(r.seconds for r in results)
    con.print(f"{len(results) - len(failed)} of {len(results)} passed ({total:.1f} s)"
              + (f"; failed: {', '.join(r.label for r in failed)}" if failed else ""), markup=False)


@app.command(
    "check",
    epilog=("Example: lossgrad check huber logistic   |   lossgrad check --all-variants --json > report.json"
            "\n\nExit codes: 0 every loss passed; 1 a check failed (or verify raised); 2 usage error "
            "(unknown loss name)."),
)
def check(
    names: list[str] = typer.Argument(None, help="Registered loss names (default: every registered loss)."),
    all_variants: bool = typer.Option(False, "--all-variants", help="Verify every declared parameter variant."),
    as_json: bool = typer.Option(False, "--json", help="Print the full reports as JSON."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random test points."),
) -> None:
    """Verify losses: derivatives against finite differences and every declared property measured.

    Prints a pass/fail table with the worst gradient and Hessian errors; exits 1 on any failure.
    """
    items = targets(names or [], all_variants)
    results = run_checks(items, seed=seed, progress=not as_json)
    if as_json:
        dump_json({"passed": all(r.passed for r in results), "results": [r.as_dict() for r in results]})
    else:
        print_results(console(), results)
    if not all(r.passed for r in results):
        raise typer.Exit(1)
