"""scikit-learn-compatible estimators trained with any loss of the catalog.

``LinearRegressor``, ``LinearClassifier`` (binary), ``SoftmaxClassifier`` (multi-class),
``MLPRegressor`` and ``MLPClassifier`` (on :mod:`lossgrad.nn`);
solvers ``newton`` (exact Hessians), ``lbfgs``, ``proximal`` (L1) and the first-order
optimizers of :mod:`lossgrad.optim`.
"""

from ._linear import LinearClassifier, LinearRegressor
from ._mlp import MLPClassifier, MLPRegressor
from ._softmax import SoftmaxClassifier
from ._solvers import FitWarning

__all__ = ["LinearRegressor", "LinearClassifier", "SoftmaxClassifier", "MLPRegressor", "MLPClassifier", "FitWarning"]
