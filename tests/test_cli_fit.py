"""`lossgrad fit`: linear, softmax, robust and MLP models from a CSV file."""

import json
import pickle

import numpy as np
import pytest
from typer.testing import CliRunner

from lossgrad.cli import app
from lossgrad.datasets import load_stackloss
from lossgrad.robust import MEstimator

RUNNER = CliRunner()


@pytest.fixture(scope="module")
def stack_csv(tmp_path_factory):
    d = load_stackloss()
    path = tmp_path_factory.mktemp("data") / "stack.csv"
    lines = ["air,water,acid,loss"] + [",".join(map(str, [*row, yy])) for row, yy in zip(d.X, d.y)]
    path.write_text("\n".join(lines) + "\n")
    return path, d


@pytest.fixture(scope="module")
def class_csv(tmp_path_factory):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 2))
    labels = np.array(["a", "b", "c"])[np.argmax(np.c_[X, -X.sum(1)] + rng.normal(scale=0.3, size=(90, 3)), axis=1)]
    path = tmp_path_factory.mktemp("data") / "cls.csv"
    path.write_text("x1,x2,label\n" + "\n".join(f"{a},{b},{c}" for (a, b), c in zip(X, labels)) + "\n")
    return path


def test_robust_fit_prints_the_summary_of_the_estimator(stack_csv):
    path, d = stack_csv
    res = RUNNER.invoke(app, ["fit", str(path), "--target", "loss", "--loss", "tukey_biweight", "--robust"])
    assert res.exit_code == 0, res.output
    ref = MEstimator("tukey_biweight").fit(d.X, d.y)
    assert "std err" in res.output and "acid" in res.output
    assert f"{ref.params_[1]:.6g}" in res.output


def test_linear_fit_json_and_saved_model(stack_csv, tmp_path):
    path, d = stack_csv
    out = tmp_path / "m.pkl"
    res = RUNNER.invoke(app, ["fit", str(path), "-t", "loss", "--loss", "huber", "-p", "delta=2", "--json", "-o", str(out)])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    model = pickle.loads(out.read_bytes())
    np.testing.assert_allclose(info["coef"], model.coef_)
    assert model.loss_.delta == 2.0 and info["loss_curve"][-1] <= info["loss_curve"][0]
    np.testing.assert_allclose(model.predict(d.X), d.X @ model.coef_ + model.intercept_)


def test_softmax_fit_with_string_labels(class_csv):
    res = RUNNER.invoke(app, ["fit", str(class_csv), "-t", "label", "--model", "softmax", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["classes"] == ["a", "b", "c"] and np.asarray(info["coef"]).shape == (3, 2)


def test_fit_errors(stack_csv, tmp_path):
    path, _ = stack_csv
    res = RUNNER.invoke(app, ["fit", str(path), "-t", "nope"])
    assert res.exit_code == 2 and "not a column" in res.output
    res = RUNNER.invoke(app, ["fit", str(path), "-t", "loss", "--loss", "hubr"])
    assert res.exit_code == 2 and "huber" in res.output
    res = RUNNER.invoke(app, ["fit", str(path), "-t", "loss", "--model", "tree"])
    assert res.exit_code == 2 and "--model" in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\nx,1\n2,3\n")
    res = RUNNER.invoke(app, ["fit", str(bad), "-t", "b", "--loss", "squared_error"])
    assert res.exit_code == 2 and "not a number" in res.output
    res = RUNNER.invoke(app, ["fit", str(tmp_path / "missing.csv"), "-t", "b"])
    assert res.exit_code == 2 and "no such file" in res.output


def test_robust_gradient_descent_from_the_command_line(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = X @ np.array([2.0, -1.0]) + 0.5 + 0.05 * rng.normal(size=200)
    y[:20] += 500.0  # 10% gross outliers
    path = tmp_path / "dirty.csv"
    path.write_text("a,b,y\n" + "\n".join(f"{a},{b},{t}" for (a, b), t in zip(X, y)) + "\n")
    args = ["fit", str(path), "-t", "y", "--solver", "sgd", "--max-iter", "400", "--json"]
    plain = json.loads(RUNNER.invoke(app, args).output)
    res = RUNNER.invoke(app, [*args, "--gradient", "trimmed_mean"])
    assert res.exit_code == 0, res.output
    robust = json.loads(res.output)
    assert np.max(np.abs(np.array(robust["coef"]) - [2.0, -1.0])) < 0.05
    assert np.max(np.abs(np.array(plain["coef"]) - [2.0, -1.0])) > 1.0
    res = RUNNER.invoke(app, [*args, "--gradient", "median"])
    assert res.exit_code == 2 and "gradient must be one of" in res.output
    res = RUNNER.invoke(app, ["fit", str(path), "-t", "y", "--robust", "--gradient", "m_estimate"])
    assert res.exit_code == 2 and "--gradient applies to the linear and softmax models" in res.output
