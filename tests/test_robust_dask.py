"""The Dask path: every IRLS pass is a chunked reduction; results equal the in-memory fit."""

import dask
import dask.array as da
import numpy as np
import pytest

from lossgrad.robust import MEstimator, exact_median, mad


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    n, p = 60_000, 6
    X = rng.normal(size=(n, p))
    y = X @ rng.normal(size=p) + 1.0 + rng.standard_t(2, size=n)
    return X, y


def test_exact_median_on_dask(data):
    _, y = data
    for n in (len(y), len(y) - 1):
        a = da.from_array(y[:n], chunks=7_001)
        assert exact_median(a) == np.median(y[:n])
    assert mad(da.from_array(y, chunks=5000)) == pytest.approx(mad(y), rel=0, abs=0)


@pytest.mark.parametrize("loss", ["huber", "tukey_biweight"])
def test_dask_fit_equals_in_memory_fit(data, loss):
    X, y = data
    ref = MEstimator(loss, tol=1e-12).fit(X, y)
    with dask.config.set(scheduler="threads"):
        dX, dy = da.from_array(X, chunks=(8_000, 6)), da.from_array(y, chunks=8_000)
        got = MEstimator(loss, tol=1e-12).fit(dX, dy)
    np.testing.assert_allclose(got.params_, ref.params_, rtol=1e-8, atol=1e-10)
    assert got.scale_ == pytest.approx(ref.scale_, rel=1e-8)
    np.testing.assert_allclose(got.bse_, ref.bse_, rtol=1e-8)
    np.testing.assert_allclose(np.asarray(got.predict(dX[:100])), ref.predict(X[:100]), rtol=1e-8)


def test_dask_bad_input():
    X = da.ones((10, 2), chunks=5)
    with pytest.raises(ValueError, match="rows"):
        MEstimator().fit(X, da.ones(9, chunks=5))
