"""lossgrad: loss functions with exact gradients and Hessians, measured properties and checks.

>>> import lossgrad
>>> loss = lossgrad.get("huber", delta=1.0)
>>> float(loss.grad(0.0, 3.0)), float(loss.hess(0.0, 0.5))
(1.0, 1.0)
"""

from __future__ import annotations

from . import losses
from ._batch import BatchLoss
from ._config import config_context, get_config, set_config
from ._core import (
    Loss,
    MarginLoss,
    NotDifferentiableError,
    PointwiseLoss,
    Reduction,
    ResidualLoss,
    Scaled,
)
from ._props import Basis, Formula, Kink, Props, Shape, Side
from ._registry import CatalogEntry, catalog, get
from ._row import RowLoss
from ._validation import LossgradWarning
from .losses import *  # noqa: F401,F403

__version__ = "0.1.0"

__all__ = [
    "get",
    "catalog",
    "CatalogEntry",
    "Loss",
    "PointwiseLoss",
    "ResidualLoss",
    "MarginLoss",
    "RowLoss",
    "BatchLoss",
    "Scaled",
    "Reduction",
    "Props",
    "Kink",
    "Side",
    "Basis",
    "Shape",
    "Formula",
    "NotDifferentiableError",
    "LossgradWarning",
    "verify",
    "VerifyReport",
    "config_context",
    "get_config",
    "set_config",
    *losses.__all__,
]


def __getattr__(name: str):
    # Heavy or optional submodules load on first use, keeping `import lossgrad` fast.
    import importlib

    if name in {"numdiff", "activations", "optim", "nn", "models", "robust", "plot", "custom", "kernels", "integrations"}:
        return importlib.import_module(f".{name}", __name__)
    if name in {"verify", "VerifyReport"}:
        from . import verification

        return getattr(verification, name)
    raise AttributeError(f"module 'lossgrad' has no attribute {name!r}")
