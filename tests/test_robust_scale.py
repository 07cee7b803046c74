"""Scale, location and tuning against statsmodels and closed forms."""

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

import lossgrad
from lossgrad.robust import efficiency, huber_scale, location, mad, qn_scale, tuning

RNG = np.random.default_rng(42)


def test_mad_matches_statsmodels():
    x = RNG.standard_t(3, size=1001)
    assert mad(x) == pytest.approx(sm.robust.scale.mad(x, center=0), rel=1e-14)
    assert mad(x, center=None) == pytest.approx(sm.robust.scale.mad(x), rel=1e-14)


@pytest.mark.parametrize("n", [7, 100, 2000, 2001, 6000])
def test_qn_matches_statsmodels(n):
    x = RNG.standard_cauchy(n)
    assert qn_scale(x) == pytest.approx(sm.robust.scale.qn_scale(x), rel=1e-14)


def test_qn_is_consistent_at_the_normal():
    assert qn_scale(RNG.normal(scale=3.0, size=20000)) == pytest.approx(3.0, rel=0.03)


def test_huber_scale_matches_statsmodels():
    r = RNG.normal(size=300)
    r[:20] *= 20
    ref = sm.robust.scale.HuberScale()(df_resid=296, nobs=300, resid=r)
    assert huber_scale(r, df_resid=296) == pytest.approx(ref, rel=1e-12)


def test_location_matches_statsmodels():
    x = RNG.standard_cauchy(501)
    s = mad(x, center=None)
    ref = sm.robust.norms.estimate_location(x, s, norm=sm.robust.norms.HuberT(), maxiter=500, tol=1e-13)
    assert location(x) == pytest.approx(float(ref), abs=1e-9)
    assert location(x, loss="tukey_biweight") == pytest.approx(
        float(sm.robust.norms.estimate_location(x, s, norm=sm.robust.norms.TukeyBiweight(), maxiter=500, tol=1e-13)), abs=1e-8
    )


def test_tuning_constants_by_integration():
    assert round(tuning("huber", 0.95), 3) == 1.345
    assert round(tuning("tukey_biweight", 0.95), 3) == 4.685
    # the conventional constants of the other rho functions (Holland & Welsch 1977; statsmodels defaults)
    assert tuning("cauchy", 0.95) == pytest.approx(2.3849, abs=1e-3)
    assert tuning("welsch", 0.95) == pytest.approx(2.9846, abs=1e-3)
    assert tuning("fair", 0.95) == pytest.approx(1.3998, abs=1e-3)
    assert tuning("andrews", 0.95) == pytest.approx(1.339, abs=1e-3)
    assert tuning("huber", 0.90) < tuning("huber", 0.95)


def test_efficiency_closed_form_for_huber():
    c = 1.2
    e_dpsi = 2 * stats.norm.cdf(c) - 1
    e_psi2 = e_dpsi - 2 * c * stats.norm.pdf(c) + 2 * c * c * stats.norm.sf(c)
    assert efficiency(lossgrad.Huber(delta=c)) == pytest.approx(e_dpsi**2 / e_psi2, rel=1e-10)
    assert efficiency(lossgrad.SquaredError()) == pytest.approx(1.0, rel=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="empty"):
        mad([])
    with pytest.raises(ValueError, match="NaN"):
        qn_scale([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="efficiency"):
        tuning("huber", 1.5)
    with pytest.raises(ValueError, match="param"):
        tuning("hampel", 0.95)
    with pytest.raises(TypeError, match="residual loss"):
        efficiency(lossgrad.get("logistic"))
