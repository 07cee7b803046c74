"""lossgrad losses inside other engines: XGBoost, LightGBM, PyTorch and JAX.

Each submodule imports its engine on first use only:

* :mod:`lossgrad.integrations.xgboost`: ``objective``, ``metric``, ``base_score``, ``base_margin``;
* :mod:`lossgrad.integrations.lightgbm`: ``objective``, ``metric``, ``init_score``;
* :mod:`lossgrad.integrations.torch`: ``function`` and ``LossModule`` (autograd with exact
  backward and double backward);
* :mod:`lossgrad.integrations.triton`: ``cross_entropy`` of CUDA tensors in one fused Triton
  kernel (``torch.function`` routes to it);
* :mod:`lossgrad.integrations.jax`: ``function`` (``jax.custom_jvp`` from the closed forms;
  batch losses through host callbacks, exact first and second derivatives in every mode).

``fit_intercept_only`` (the optimal constant score) and :class:`Hessian` (the Hessian
options of boosting) are shared.  ``docs/engines.md`` tabulates the conventions.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._boosting import BoostingObjective, Hessian, fit_intercept_only

__all__ = ["Hessian", "BoostingObjective", "fit_intercept_only", "xgboost", "lightgbm", "torch", "triton", "jax"]


def __getattr__(name: str) -> Any:
    if name in {"xgboost", "lightgbm", "torch", "triton", "jax"}:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'lossgrad.integrations' has no attribute {name!r}")
