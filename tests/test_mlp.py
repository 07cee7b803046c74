"""MLPRegressor and MLPClassifier: scikit-learn's check_estimator, learning with catalog losses,
probabilities per loss, reproducibility, sample weights, early stopping and bad input."""

from __future__ import annotations

import doctest
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import check_estimator

import lossgrad
import lossgrad.models
from lossgrad.models import _mlp
from lossgrad.models._mlp import MLPClassifier, MLPRegressor

RNG = np.random.default_rng(3)
XC = RNG.normal(size=(200, 2))
YC = np.where(XC[:, 0] ** 2 + XC[:, 1] ** 2 < 1.2, "in", "out")  # not linearly separable
XR = RNG.uniform(-2, 2, size=(150, 1))
YR = np.sin(2 * XR[:, 0]) + 0.05 * RNG.normal(size=150)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.mark.parametrize("estimator", [MLPRegressor(), MLPClassifier(), MLPClassifier("logistic")],
                         ids=lambda e: f"{type(e).__name__}({e.loss})")
def test_check_estimator(estimator):
    check_estimator(estimator)


def test_regressor_fits_a_nonlinear_function():
    model = MLPRegressor(hidden_layer_sizes=(24,), activation="tanh", batch_size=32, max_iter=500,
                         random_state=0).fit(XR, YR)
    assert model.score(XR, YR) > 0.95
    assert model.predict(XR).shape == (150,)
    assert model.loss_curve_[-1] < model.loss_curve_[0] and model.n_iter_ == len(model.loss_curve_)


def test_regressor_quantile_loss_fits_the_quantile():
    X = RNG.uniform(0, 1, (400, 1))
    y = X[:, 0] + RNG.normal(size=400)
    model = MLPRegressor(lossgrad.get("quantile", tau=0.9), hidden_layer_sizes=(8,), max_iter=400,
                         random_state=0).fit(X, y)
    below = np.mean(y <= model.predict(X))
    assert 0.85 < below < 0.95  # squared error would put about half the points below


def test_regressor_multi_output():
    Y2 = np.c_[YR, -2 * YR]
    model = MLPRegressor("huber", hidden_layer_sizes=(24,), activation="tanh", max_iter=400, random_state=0).fit(XR, Y2)
    assert model.predict(XR).shape == (150, 2) and model.score(XR, Y2) > 0.9


def test_classifier_learns_what_a_linear_model_cannot():
    model = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(XC, YC)
    linear = LogisticRegression().fit(XC, YC).score(XC, YC)
    assert model.score(XC, YC) > 0.95 > linear + 0.15
    proba = model.predict_proba(XC)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-14)
    np.testing.assert_array_equal(model.classes_[np.argmax(proba, 1)], model.predict(XC))


@pytest.mark.parametrize("loss", ["logistic", lossgrad.get("binary_cross_entropy", from_logits=False), "binary_focal",
                                  "cross_entropy", lossgrad.get("cross_entropy", from_logits=False), "focal", "poly1",
                                  "sparsemax_loss"], ids=str)
def test_classifier_probabilities_for_each_probabilistic_loss(loss):
    model = MLPClassifier(loss, hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(XC, YC)
    proba = model.predict_proba(XC)
    assert proba.shape == (200, 2) and np.all(proba >= 0) and np.all(proba <= 1)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    assert model.score(XC, YC) > 0.9
    agree = model.classes_[np.argmax(proba, 1)] == model.predict(XC)
    assert agree.mean() >= 0.99  # ties (sparsemax 0.5/0.5) may break either way


@pytest.mark.parametrize("loss", ["hinge", "squared_hinge", "multiclass_hinge", "categorical_hinge"])
def test_margin_classifiers_predict_without_probabilities(loss):
    model = MLPClassifier(loss, hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(XC, YC)
    assert model.score(XC, YC) > 0.9
    assert not hasattr(model, "predict_proba")
    with pytest.raises(AttributeError, match="predict_proba"):
        model.predict_proba(XC)


def test_multiclass_with_three_classes():
    y = np.digitize(XC[:, 0] * XC[:, 1], [-0.3, 0.3])
    model = MLPClassifier(hidden_layer_sizes=(32,), max_iter=400, random_state=0).fit(XC, y)
    assert model.predict_proba(XC).shape == (200, 3) and model.score(XC, y) > 0.85


def test_random_state_makes_fits_reproducible():
    a = MLPClassifier(random_state=1, max_iter=30).fit(XC, YC).predict_proba(XC)
    b = MLPClassifier(random_state=1, max_iter=30).fit(XC, YC).predict_proba(XC)
    c = MLPClassifier(random_state=2, max_iter=30).fit(XC, YC).predict_proba(XC)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_sample_weight_equals_repetition_in_full_batch_training():
    reps = RNG.integers(0, 3, 150)
    a = MLPRegressor(random_state=0, max_iter=50).fit(XR, YR, sample_weight=reps)
    b = MLPRegressor(random_state=0, max_iter=50).fit(np.repeat(XR, reps, 0), np.repeat(YR, reps))
    np.testing.assert_allclose(a.predict(XR), b.predict(XR), rtol=1e-8, atol=1e-10)


def test_early_stopping_uses_a_validation_split():
    model = MLPRegressor(early_stopping=True, validation_fraction=0.2, n_iter_no_change=5, max_iter=2000,
                         learning_rate=0.05, random_state=0).fit(XR, YR)
    assert model.history_.stopped_early and model.n_iter_ < 2000
    assert len(model.validation_loss_curve_) == model.n_iter_
    best = int(np.argmin(model.validation_loss_curve_))
    assert model.history_.best_epoch == best


def test_convergence_warning_when_max_iter_is_reached():
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        MLPRegressor(max_iter=3, random_state=0).fit(XR, YR)


def test_pickle_round_trip():
    model = MLPClassifier(max_iter=20, random_state=0).fit(XC, YC)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict_proba(XC), model.predict_proba(XC))


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        MLPRegressor().fit(np.array([[np.nan], [1.0]]), [0.0, 1.0])
    with pytest.raises(ValueError, match="1 class"):
        MLPClassifier().fit(XC, np.zeros(200))
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(XC, RNG.normal(size=200))
    with pytest.raises(ValueError, match="unknown loss name 'hubr'"):
        MLPRegressor("hubr").fit(XR, YR)
    with pytest.raises(ValueError, match="pointwise loss"):
        MLPRegressor("cross_entropy").fit(XR, YR)
    with pytest.raises(ValueError, match="classification loss"):
        MLPClassifier("squared_error").fit(XC, YC)
    with pytest.raises(ValueError, match="Only binary"):
        MLPClassifier("logistic").fit(XC, np.arange(200) % 3)
    with pytest.raises(ValueError, match="probability rows"):
        MLPClassifier("kl_divergence").fit(XC, YC)
    with pytest.raises(ValueError, match="batch loss"):
        MLPRegressor("triplet").fit(XR, YR)
    with pytest.raises(ValueError, match="y_true"):
        MLPRegressor("poisson").fit(XR, YR)  # negative counts
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPRegressor(hidden_layer_sizes=(0,)).fit(XR, YR)
    with pytest.raises(ValueError, match="activation"):
        MLPRegressor(activation="softmax").fit(XR, YR)
    with pytest.raises(ValueError, match="solver"):
        MLPRegressor(solver="lbfgs").fit(XR, YR)
    with pytest.raises(ValueError, match="learning_rate"):
        MLPRegressor(learning_rate=0).fit(XR, YR)
    with pytest.raises(ValueError, match="batch_size"):
        MLPRegressor(batch_size=0).fit(XR, YR)


def test_docstring_examples(monkeypatch):
    # the examples import from lossgrad.models (the public path)
    monkeypatch.setattr(lossgrad.models, "MLPRegressor", MLPRegressor, raising=False)
    monkeypatch.setattr(lossgrad.models, "MLPClassifier", MLPClassifier, raising=False)
    result = doctest.testmod(_mlp)
    assert result.attempted > 0 and result.failed == 0


def test_cli_fit_with_the_mlp_model(tmp_path, monkeypatch):
    """`lossgrad fit --model mlp` builds these estimators (through lossgrad.models)."""
    import json

    from typer.testing import CliRunner

    from lossgrad.cli import app

    monkeypatch.setattr(lossgrad.models, "MLPRegressor", MLPRegressor, raising=False)
    monkeypatch.setattr(lossgrad.models, "MLPClassifier", MLPClassifier, raising=False)
    reg_csv, clf_csv = tmp_path / "reg.csv", tmp_path / "clf.csv"
    reg_csv.write_text("x1,x2,y\n" + "\n".join(f"{a:.6f},{b:.6f},{np.sin(2 * a) + b:.6f}" for a, b in XC[:80]))
    clf_csv.write_text("x1,x2,label\n" + "\n".join(f"{a:.6f},{b:.6f},{c}" for (a, b), c in zip(XC[:80], YC[:80])))
    runner = CliRunner()
    res = runner.invoke(app, ["fit", str(reg_csv), "--target", "y", "--model", "mlp", "--loss", "huber",
                              "--max-iter", "60", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["model"] == "MLPRegressor" and len(out["loss_curve"]) == out["n_iter"] <= 60
    assert out["loss_curve"][-1] < out["loss_curve"][0]
    clf = runner.invoke(app, ["fit", str(clf_csv), "--target", "label", "--model", "mlp", "--max-iter", "60"])
    assert clf.exit_code == 0 and "MLPClassifier fitted" in clf.output, clf.output
