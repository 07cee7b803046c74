"""Robust regression by M-estimation: IRLS with any residual loss, scale estimators, tuning.

>>> import numpy as np
>>> from lossgrad.datasets import load_stackloss  # doctest: +SKIP
>>> from lossgrad.robust import MEstimator, tuning
>>> round(tuning("huber", 0.95), 3), round(tuning("tukey_biweight", 0.95), 3)
(1.345, 4.685)
"""

from ._gradient import geometric_median, robust_mean
from ._location import location
from ._mestimator import CONVENTIONAL_PARAMS, ConvergenceWarning, MEstimator
from ._scale import exact_median, huber_scale, mad, qn_scale
from ._tuning import efficiency, tuning

__all__ = [
    "MEstimator",
    "ConvergenceWarning",
    "CONVENTIONAL_PARAMS",
    "location",
    "robust_mean",
    "geometric_median",
    "mad",
    "qn_scale",
    "huber_scale",
    "exact_median",
    "efficiency",
    "tuning",
]
