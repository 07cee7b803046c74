r"""The Kullback-Leibler divergence of a target distribution from softmax(logits)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _validation as V
from .. import _xp
from .._props import Basis, Formula, Props
from .._registry import register
from .._row import RowTarget, check_simplex_rows, prob_tolerance
from ._softmax_family import LogSoftmaxLoss

__all__ = ["KLDivergence"]


@register("kl_divergence", "multiclass", variants=({"log_target": True},))
@dataclass(frozen=True)
class KLDivergence(LogSoftmaxLoss):
    r"""KL(q || softmax(f)) of the target distribution q from the predicted one.

    y_true: (N, K) probabilities q (log-probabilities with ``log_target=True``);
    y_pred: (N, K) logits f.  l = sum_c q_c (log q_c - s_c) with 0 log 0 = 0;
    grad = p - q; hess = diag(p) - p p^T (convex, not strictly; Lipschitz sqrt(2) in l2,
    smoothness 1/2).  It differs from the cross-entropy with probability targets by the
    target's entropy, a constant.

    ============================  ===============================  =====================
    library                       call                             equals lossgrad's
    ============================  ===============================  =====================
    PyTorch ``KLDivLoss``         ``kl_div(log_softmax(f), q,``    ``KLDivergence()(q, f)``
                                  ``reduction="batchmean")``       (mean over rows)
    PyTorch, ``log_target=True``  ``kl_div(log_softmax(f),``       ``KLDivergence(log_target=True)``
                                  ``log q, log_target=True)``
    Keras ``KLDivergence``        ``kld(q, softmax(f))``           ``value(q, f)`` (Keras clips
                                  (probabilities, y_true first)    both to [1e-7, 1])
    optax ``kl_divergence``       ``kl_divergence(log_softmax(f),``  ``value(q, f)``
                                  ``q)``
    ============================  ===============================  =====================

    PyTorch's input is log-probabilities and its target second; ``reduction="mean"`` in
    PyTorch divides by N K, not N ("batchmean" is the mathematical KL).

    >>> import numpy as np, lossgrad
    >>> q = np.array([[0.5, 0.5]])
    >>> float(lossgrad.KLDivergence().value(q, np.array([[0.0, 0.0]]))[0])
    0.0
    """

    log_target: bool = False
    accepts_labels = False
    _formula = Formula(
        r"\sum_c q_c(\log q_c - \log p_c)",
        r"p - q",
        r"\operatorname{diag}(p) - p p^\top",
        variable="f (logits, one row); p = softmax(f)",
    )

    def __post_init__(self) -> None:
        self._set("log_target", V.param_bool(self._owner, "log_target", self.log_target))

    @property
    def props(self) -> Props:
        return Props(convex=True, lipschitz=math.sqrt(2.0), smoothness=0.5, basis=Basis.LIKELIHOOD)

    def _check_probabilities(self, xp: Any, y: Any) -> None:
        if not self.log_target:
            check_simplex_rows(xp, y, "y_true")
            return
        tol = prob_tolerance(xp, y.dtype)
        V.check_all(xp, y <= tol, "y_true", "log-probabilities <= 0 (log_target=True)")
        lse = _xp.logsumexp(xp, y, axis=-1)
        if not bool(xp.all(xp.abs(lse) <= tol)):
            raise ValueError(f"y_true (log_target=True) must have rows with logsumexp 0 (tolerance {tol:g})")

    def _target_matrix(self, xp: Any, y: Any) -> Any:
        return xp.exp(y) if self.log_target else y

    def _constant(self, xp: Any, t: RowTarget, f: Any) -> Any:
        if self.log_target:
            return xp.sum(t.Y * t.raw, axis=-1)
        return xp.sum(_xp.xlogy(xp, t.Y, t.Y), axis=-1)

    def _coef(self, xp: Any, t: RowTarget, f: Any) -> Any:
        return t.Y

    def _phi_parts(self, xp: Any, P: dict, want: set) -> dict:
        out: dict = {}
        if "phi" in want:
            out["phi"] = -P["s"]
        if "dphi" in want:
            out["dphi"] = -xp.ones_like(P["s"])
        if "e" in want:
            out["e"] = None
        return out

    def _vertex_targets(self, k: int) -> np.ndarray:
        q = np.eye(k) * (1.0 - 1e-12) + 1e-12 / k
        return np.log(q) if self.log_target else np.eye(k)

    def _example_inputs(self, rng: np.random.Generator, n: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
        y, f = super()._example_inputs(rng, n, k)
        if self.log_target:
            y = np.log(np.clip(y, 1e-300, None))
            y = y - np.logaddexp.reduce(y, axis=1, keepdims=True)
        return y, f
