"""The `lossgrad` command: list, show, check, demo, and `python -m lossgrad`."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

import lossgrad
from lossgrad import _registry
from lossgrad._registry import CatalogEntry
from lossgrad.cli import app
from lossgrad.cli._app import jsonable, parse_value
from lossgrad.cli._plot import render_panel
from lossgrad.cli.demo import fit_slope
from lossgrad.datasets import load_outliers

runner = CliRunner(env={"COLUMNS": "80"})


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


# ------------------------------------------------------------------ list


def test_list_shows_every_registered_loss():
    res = run("list")
    assert res.exit_code == 0, res.output
    names = [e.name for e in lossgrad.catalog()]
    assert f"{len(names)} losses" in res.stdout
    words = set(re.findall(r"[A-Za-z_0-9]+", res.stdout))
    missing = [n for n in names if n not in words]
    assert not missing
    assert max(len(line) for line in res.stdout.splitlines()) <= 80


def test_list_json_carries_the_props():
    res = run("list", "--json")
    assert res.exit_code == 0
    rows = json.loads(res.stdout)
    entries = lossgrad.catalog()
    assert [r["name"] for r in rows] == [e.name for e in entries]
    for r, e in zip(rows, entries):
        loss = e.make()
        assert r["family"] == e.family and r["shape"] == e.shape.value
        assert r["props"] == jsonable(loss.props.as_dict())
        assert r["params"] == jsonable(e.params)
        assert [k["at"] for k in r["kinks"]] == [k.at for k in loss.kinks]


def test_list_filters():
    res = run("list", "--family", "robust", "--json")
    rows = json.loads(res.stdout)
    assert {r["name"] for r in rows} == {e.name for e in lossgrad.catalog(family="robust")}
    assert rows and all(r["family"] == "robust" for r in rows)
    bad = run("list", "--shape", "round")
    assert bad.exit_code == 2 and "pointwise" in bad.output
    nofam = run("list", "--family", "astrology")
    assert nofam.exit_code == 2 and "regression" in nofam.output


# ------------------------------------------------------------------ show


def test_show_huber_card():
    res = run("show", "huber")
    assert res.exit_code == 0, res.output
    out = res.stdout
    f = lossgrad.Huber().formula
    for text in (f.grad, f.hess, "r = f - y", "lipschitz", "differentiability", "kinks"):
        assert text in out
    # the two declared kinks with their order and side, and the three plot panels
    assert re.search(r"-1\s+2\s+left", out) and re.search(r"\n\s*1\s+2\s+right", out)
    for panel in ("\nL\n", "\nL'\n", "\nL''\n"):
        assert panel in out
    assert "^" in out  # kinks marked under the axis
    assert max(len(line) for line in out.splitlines()) <= 80


def test_show_params_and_json():
    res = run("show", "huber", "--param", "delta=2", "--json")
    assert res.exit_code == 0
    card = json.loads(res.stdout)
    assert card["params"] == {"delta": 2.0}
    assert card["props"]["lipschitz"] == 2.0
    assert [(k["at"], k["order"], k["side"]) for k in card["kinks"]] == [(-2.0, 2, "left"), (2.0, 2, "right")]
    assert card["formula"] == lossgrad.Huber().formula.as_dict()
    # parameters of several types: float, string
    res = run("show", "smoothed_quantile", "-p", "tau=0.9", "-p", "kernel=logistic", "--json")
    assert json.loads(res.stdout)["params"] == {"tau": 0.9, "h": 0.5, "kernel": "logistic"}


def test_show_unknown_name_suggests():
    res = run("show", "hubr")
    assert res.exit_code == 2
    assert "unknown loss name 'hubr'" in res.output and "'huber'" in res.output


@pytest.mark.parametrize(
    "param, expect",
    [("delta=-1", "delta"), ("dleta=1", "'dleta'"), ("delta", "KEY=VALUE"), ("delta=abc", "delta")],
)
def test_show_bad_param_exit_2(param, expect):
    res = run("show", "huber", "--param", param)
    assert res.exit_code == 2
    assert expect in res.output and "Traceback" not in res.output


def test_show_margin_plot_at_positive_label():
    res = run("show", "hinge", "--xmin", "-3", "--xmax", "3")
    assert res.exit_code == 0
    assert "y_true = 1 over t in [-3, 3], t the natural variable (z = y f)" in res.stdout
    bad = run("show", "hinge", "--xmin", "3", "--xmax", "-3")
    assert bad.exit_code == 2


def test_parse_value():
    assert [parse_value(s) for s in ("true", "False", "none", "7", "-2.5", "1e-3", "inf", "gaussian")] == [
        True, False, None, 7, -2.5, 1e-3, float("inf"), "gaussian"]
    assert isinstance(parse_value("7"), int)


def test_render_panel_draws_the_curve():
    t = np.linspace(-1.0, 1.0, 101)
    text = render_panel(t, t, width=21, height=5, marks=[0.0])
    rows = [line.split("|", 1)[1] for line in text.splitlines() if "|" in line]
    assert len(rows) == 5
    assert rows[0].rstrip().endswith("*") and rows[-1].startswith("*")  # increasing: bottom-left to top-right
    assert rows[2][10] == "*"  # crosses the zero line at the middle column
    axis = text.splitlines()[-2]
    assert axis.index("^") - axis.index("+") - 1 == 10
    with pytest.raises(ValueError):
        render_panel([], [])


# ------------------------------------------------------------------ check


def test_check_passes_on_good_losses():
    res = run("check", "huber", "squared_error")
    assert res.exit_code == 0, res.output
    assert "2 of 2 passed" in res.stdout
    res = run("check", "huber", "--all-variants", "--json")
    payload = json.loads(res.stdout)
    labels = [r["label"] for r in payload["results"]]
    assert labels == ["huber", "huber(delta=0.3)", "huber(delta=2.5)"]
    assert payload["passed"] is True and all(r["report"]["checks"] for r in payload["results"])


@dataclasses.dataclass(frozen=True)
class _BrokenHuber(lossgrad.Huber):
    """Huber with a Hessian off by a factor 1.01 inside the quadratic zone (a deliberate bug)."""

    def _dpsi(self, xp, r):
        return 1.01 * super()._dpsi(xp, r)


def test_check_fails_on_a_broken_derivative(monkeypatch):
    broken = CatalogEntry(name="broken_huber", family="regression", shape=lossgrad.Huber.shape,
                          cls=_BrokenHuber, params={"delta": 1.0}, variants=({},), summary="deliberately broken")
    with monkeypatch.context() as m:
        m.setitem(_registry._REGISTRY, "broken_huber", broken)
        res = run("check", "huber", "broken_huber")
        assert res.exit_code == 1, res.output
        row = next(line for line in res.stdout.splitlines() if line.strip().startswith("broken_huber"))
        assert "FAIL" in row and "hess" in row
        assert "1 of 2 passed" in res.stdout
        js = json.loads(run("check", "broken_huber", "--json").stdout)
        assert js["passed"] is False and js["results"][0]["hess_error"] > 1e-3
    # the real registry is clean again
    assert "broken_huber" not in {e.name for e in lossgrad.catalog()}


def test_check_reports_a_crashing_verify(monkeypatch):
    def fake_verify(loss, *, seed=0):
        if loss.name == "huber":
            raise RuntimeError("boom")
        from lossgrad.verification._report import Check, VerifyReport

        return VerifyReport(loss.name, (Check("grad", True, error=1e-9), Check("hess", True, error=2e-9)))

    monkeypatch.setattr("lossgrad.cli.check.default_verify", lambda: fake_verify)
    res = run("check", "squared_error", "huber")
    assert res.exit_code == 1
    assert "huber: RuntimeError: boom" in res.stdout and "1 of 2 passed" in res.stdout
    assert re.search(r"squared_error\s+pass\s+2/2\s+1\.0e-09\s+2\.0e-09", res.stdout)


def test_check_unknown_name_exit_2():
    res = run("check", "huber", "tukey")
    assert res.exit_code == 2 and "unknown loss name 'tukey'" in res.output


# ------------------------------------------------------------------ demo


def _fitted(out: str) -> dict[str, float]:
    rows = re.findall(r"^\s*([a-z_]+)\s+(-?\d+\.\d{4})\s+([+-]\d+\.\d{4})\s", out, flags=re.M)
    return {name: float(theta) for name, theta, _ in rows}


def test_demo_runs_and_huber_resists_the_outliers(tmp_path):
    t0 = time.perf_counter()
    res = run("demo", "--out", str(tmp_path))
    elapsed = time.perf_counter() - t0
    assert res.exit_code == 0, res.output
    assert elapsed < 60.0
    out = res.stdout
    fits = _fitted(out)
    d = load_outliers()
    assert {"squared_error", "absolute_error", "huber"} <= set(fits)
    assert abs(fits["huber"] - d.true_slope) < abs(fits["squared_error"] - d.true_slope)
    assert abs(fits["huber"] - d.true_slope) < 0.1 < abs(fits["squared_error"] - d.true_slope)
    # independent checks of the fitted numbers: least squares in closed form, and the
    # absolute-error slope is the |x|-weighted median of y/x
    assert fits["squared_error"] == pytest.approx(float(d.x @ d.y / (d.x @ d.x)), abs=1e-4)
    ratio, w = d.y / d.x, np.abs(d.x)
    order = np.argsort(ratio)
    cw = np.cumsum(w[order])
    assert fits["absolute_error"] == pytest.approx(float(ratio[order][np.searchsorted(cw, cw[-1] / 2)]), abs=2e-4)
    assert "verification" in out and "FAIL" not in out
    assert max(len(line) for line in out.splitlines()) <= 80
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert {f["loss"]: round(f["theta"], 4) for f in saved["fits"]} == fits
    assert (tmp_path / "demo.png").stat().st_size > 1000


def test_fit_slope_first_order_condition():
    d = load_outliers()
    fit = fit_slope(lossgrad.Huber(delta=1.0), d.x, d.y)
    # Huber's psi is clip(r, -1, 1) with r = theta x - y: the estimating equation holds at the fit
    assert abs(np.mean(np.clip(fit.theta * d.x - d.y, -1.0, 1.0) * d.x)) < 1e-10
    for loss in (lossgrad.SquaredError(), lossgrad.LogCosh(), lossgrad.Huber(delta=0.5)):
        assert fit_slope(loss, d.x, 3.0 * d.x).theta == pytest.approx(3.0, abs=1e-9)
    tukey = lossgrad.get("tukey_biweight")
    assert fit_slope(tukey, d.x, 3.0 * d.x, theta0=2.8).theta == pytest.approx(3.0, abs=1e-9)


# ------------------------------------------------------------------ help and entry points


@pytest.mark.parametrize("command", ["list", "show", "check", "demo"])
def test_help_shows_an_example(command):
    res = run(command, "--help")
    assert res.exit_code == 0 and f"Example: lossgrad {command}" in res.stdout


def test_python_dash_m():
    proc = subprocess.run([sys.executable, "-m", "lossgrad", "show", "squared_error", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["formula"]["value"] == "r^2"


# ------------------------------------------------------------------ demo figure, json, exit codes


def test_demo_writes_the_loss_figure_with_lossgrad_plot(tmp_path):
    res = run("demo", "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    png = tmp_path / "losses.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "figure of L and L' (kinks marked)" in res.stdout


def test_demo_json_and_default_figure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run("demo", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["figure"] == "lossgrad-demo.png" and (tmp_path / "lossgrad-demo.png").stat().st_size > 5000
    fits = {f["loss"]: f["theta"] for f in data["fits"]}
    assert abs(fits["huber"] - data["true_slope"]) < abs(fits["squared_error"] - data["true_slope"])
    assert all(v["passed"] for v in data["verification"]) and len(data["verification"]) == len(data["fits"])
    res = run("demo", "--json", "--no-figure")
    assert res.exit_code == 0 and json.loads(res.stdout)["figure"] is None


def test_demo_unwritable_figure_exits_1(tmp_path):
    res = run("demo", "--figure", str(tmp_path / "no" / "such" / "dir.png"))
    assert res.exit_code == 1 and "could not write the figure" in res.stdout


@pytest.mark.parametrize("command", ["list", "show", "check", "demo"])
def test_help_documents_exit_codes(command):
    res = run(command, "--help")
    assert res.exit_code == 0 and "Exit codes: 0" in res.stdout
