"""The shipped datasets: shapes, provenance, determinism, and stackloss against statsmodels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lossgrad.datasets import load_outliers, load_stackloss

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("make_outliers", ROOT / "tools" / "make_outliers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_outliers_shapes_and_note():
    d = load_outliers()
    assert d.x.shape == d.y.shape == d.is_outlier.shape == (200,)
    assert d.x.dtype == d.y.dtype == np.float64
    assert d.is_outlier.dtype == bool
    assert d.true_slope == 2.5
    assert "seed" in d.description and "U(8, 15)" in d.description
    assert int(d.is_outlier.sum()) == 20


def test_outliers_follow_the_stated_model():
    d = load_outliers()
    resid = d.y - d.true_slope * d.x
    inl = ~d.is_outlier
    # inliers: N(0, 0.5^2) noise -- the sample sd of 180 draws lies well within [0.4, 0.6]
    assert 0.4 < resid[inl].std() < 0.6 and abs(resid[inl].mean()) < 0.15
    # outliers: shifted down by 8 to 15, at x > 2.5
    assert np.all((resid[d.is_outlier] <= -8.0 + 1e-9) & (resid[d.is_outlier] >= -15.0 - 1e-9))
    assert np.all(d.x[d.is_outlier] > 2.5) and np.all((d.x >= 0) & (d.x <= 5))
    # the outliers matter: least squares through the origin is pulled far below 2.5
    ols = float(d.x @ d.y / (d.x @ d.x))
    assert ols < 2.2
    ols_clean = float(d.x[inl] @ d.y[inl] / (d.x[inl] @ d.x[inl]))
    assert abs(ols_clean - 2.5) < 0.05


def test_outliers_file_is_what_the_generator_writes():
    gen = _generator()
    shipped = (ROOT / "src" / "lossgrad" / "data" / "outliers.csv").read_text()
    assert gen.generate() == shipped
    assert gen.generate() == gen.generate()  # deterministic


def test_loaders_return_fresh_arrays():
    a = load_outliers()
    a.x[:] = 0.0
    assert load_outliers().x.max() > 0
    s = load_stackloss()
    s.X[:] = 0.0
    assert load_stackloss().X[0, 0] == 80.0


def test_stackloss_equals_statsmodels():
    from statsmodels.datasets import stackloss

    ref = stackloss.load_pandas().data
    d = load_stackloss()
    assert d.X.shape == (21, 3) and d.y.shape == (21,) and d.X.dtype == np.float64
    assert d.feature_names == ("Air.Flow", "Water.Temp", "Acid.Conc.") and d.target_name == "stack.loss"
    # statsmodels names the same columns AIRFLOW, WATERTEMP, ACIDCONC and STACKLOSS
    np.testing.assert_array_equal(d.X, ref[["AIRFLOW", "WATERTEMP", "ACIDCONC"]].to_numpy(dtype=float))
    np.testing.assert_array_equal(d.y, ref["STACKLOSS"].to_numpy(dtype=float))


@pytest.mark.parametrize("loader", [load_outliers, load_stackloss])
def test_loaders_give_finite_data(loader):
    d = loader()
    arrays = [v for v in vars(d).values() if isinstance(v, np.ndarray)]
    assert arrays and all(np.all(np.isfinite(a)) for a in arrays)
