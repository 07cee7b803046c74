r"""Multi-class losses over a softmax: cross-entropy (with z-loss), focal, PolyLoss, KL divergence.

All four are sums  l = sum_c a_c phi(s_c)  of functions of the log-softmax
s = f - logsumexp(f) (see :mod:`._softmax_family` for the shared gradient, full Hessian,
Hessian diagonal and Hessian-vector product, and for their stability: log p and
log(1 - p) are formed without cancellation, so logits of +-1e4 in float64 and +-1e3 in
float32 give finite, accurate derivatives; no probability is ever clipped).

Notation: f (N, K) logits, p = softmax(f), y a label (one-hot e_y) or a probability row q,
u = 1 - p, Sigma(p) = diag(p) - p p^T.  The margin losses (multi-class hinge,
categorical hinge), the sparsemax loss and the multi-label loss live in sibling modules
and are re-exported here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .. import _validation as V
from .. import _xp
from .._props import Basis, Formula, Props
from .._registry import register
from .._row import RowTarget, check_simplex_rows
from ._softmax_family import LogSoftmaxLoss, _centered, _weighted, psi, softmax_probs

__all__ = ["CrossEntropy", "Focal", "Poly1"]


def _class_vector(owner: str, name: str, value: Any) -> tuple[float, ...] | None:
    """None, or a tuple of K >= 1 finite non-negative floats (class weights, focal alpha)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{owner}: {name} must be None or a sequence of per-class numbers, got {value!r}")
    arr = np.asarray(value, dtype=float) if not hasattr(value, "detach") else np.asarray(value.detach().cpu(), dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{owner}: {name} must be a 1-D sequence with one entry per class, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{owner}: {name} must contain finite non-negative numbers, got {value!r}")
    return tuple(float(x) for x in arr)


def _device(x: Any) -> Any:
    import array_api_compat

    return array_api_compat.device(x)


def _as_array(xp: Any, values: tuple[float, ...], like: Any) -> Any:
    import array_api_compat

    return xp.asarray(values, dtype=like.dtype, device=array_api_compat.device(like))


class _ClassVectorMixin:
    """Checks that a per-class parameter has K entries."""

    _class_params: tuple[str, ...] = ()

    def _check_classes(self, k: int) -> None:
        for name in self._class_params:
            vec = getattr(self, name)
            if vec is not None and len(vec) != k:
                raise ValueError(f"{type(self).__name__}: {name} has {len(vec)} entries but y_pred has K={k} classes")

    def _fixed_classes(self) -> int | None:
        for name in self._class_params:
            vec = getattr(self, name)
            if vec is not None:
                return len(vec)
        return None


@register(
    "cross_entropy",
    "multiclass",
    variants=(
        {"label_smoothing": 0.1},
        {"weight": (0.5, 2.0, 1.0, 3.0)},
        {"weight": (0.5, 2.0, 1.0, 3.0), "label_smoothing": 0.2, "ignore_index": 1},
        {"z_loss": 0.01},
        {"from_logits": False},
        {"from_logits": False, "label_smoothing": 0.1, "weight": (1.0, 2.0, 0.5, 1.5)},
    ),
)
@dataclass(frozen=True)
class CrossEntropy(_ClassVectorMixin, LogSoftmaxLoss):
    r"""Softmax cross-entropy with PyTorch's semantics for class weights, ignore_index and label smoothing.

    With s = log softmax(f), q the target row (one-hot e_y for a label) smoothed as
    q' = (1 - eps) q + eps / K, and class weights w (1 by default), a = w * q':

        l = -sum_c a_c s_c  [+ z_loss * lse(f)^2],      lse = logsumexp(f)
        grad = S p - a,  S = sum_c a_c
        hess = S (diag(p) - p p^T)

    (z-loss adds 2 z lse p to grad and 2 z (p p^T + lse Sigma(p)) to hess).  For a label y
    this is PyTorch's ``(1 - eps) w_y (-s_y) + (eps / K) sum_c w_c (-s_c)``.  Reduction
    "mean" divides by sum_i w_{y_i} over non-ignored rows for labels (PyTorch's weighted
    mean; a row whose label equals ``ignore_index`` gives 0 and weighs 0), and by N for
    probability targets (where PyTorch applies the class weights inside the sum; an
    ``ignore_index`` with probability targets is an error, as in PyTorch).

    **Convexity (one line).** hess = S (diag(p) - p p^T) is S times the covariance matrix of
    the one-hot vector of a class drawn from p, hence positive semi-definite; it is not
    strictly convex because l(f + c 1) = l(f) (the Hessian annihilates 1).  With z_loss > 0
    the Hessian is (S + 2 z lse) Sigma(p) + 2 z p p^T: PSD where lse >= -S / (2 z), with a
    negative eigenvalue where lse < -S / (2 z) (very negative logits), so not convex.

    ``from_logits=False`` takes probabilities P (rows on the simplex) as y_pred and is
    exact: l = -sum_c a_c log P_c (0 log 0 = 0, +inf when a_c > 0 and P_c = 0, no
    clipping), grad = -a / P, hess = diag(a / P^2), derivatives with respect to P as free
    coordinates.  (Keras divides P by its row sum first; on the simplex the value is the
    same and its gradient differs by S times the all-ones vector.)

    Constants (l2 norm of the row gradient, spectral norm of the row Hessian): Lipschitz
    sqrt(1 + (1 - eps)^2) without class weights (sqrt 2 for eps = 0; with weights the exact
    max over labels y and vertices j of ||S_y e_j - a_y||), smoothness max_y S_y / 2
    (1/2 without weights: lambda_max(diag p - p p^T) <= 1/2, reached at p = (1/2, 1/2, 0...)).

    References: PyTorch ``torch.nn.functional.cross_entropy``; Szegedy et al. (2016),
    Rethinking the Inception architecture (label smoothing); Chowdhery et al. (2022),
    PaLM (z-loss).

    >>> import numpy as np, lossgrad
    >>> ce = lossgrad.CrossEntropy()
    >>> f = np.array([[2.0, 0.0, -1.0]])
    >>> np.round(ce.grad(np.array([0]), f), 4)
    array([[-0.1562,  0.1142,  0.042 ]])
    >>> bool(np.linalg.eigvalsh(ce.hess(np.array([0]), f)[0]).min() > -1e-15)
    True
    """

    weight: tuple[float, ...] | None = None
    ignore_index: int | None = None
    label_smoothing: float = 0.0
    from_logits: bool = True
    z_loss: float = 0.0
    _class_params = ("weight",)
    _formula = Formula(
        r"-\sum_c w_c q'_c \log \operatorname{softmax}(f)_c + z\,\operatorname{lse}(f)^2",
        r"S p - w \odot q' + 2 z\,\operatorname{lse}(f)\, p",
        r"S(\operatorname{diag}(p) - p p^\top) + 2z\,(p p^\top + \operatorname{lse}(f)(\operatorname{diag}(p) - p p^\top))",
        variable="f (logits, one row); q' = (1-eps) q + eps/K, S = sum_c w_c q'_c",
    )

    def __post_init__(self) -> None:
        o = self._owner
        self._set("weight", _class_vector(o, "weight", self.weight))
        if self.ignore_index is not None:
            if isinstance(self.ignore_index, bool) or not isinstance(self.ignore_index, (int, np.integer)):
                raise TypeError(f"{o}: ignore_index must be None or an integer, got {self.ignore_index!r}")
            self._set("ignore_index", int(self.ignore_index))
        self._set("label_smoothing", V.param_in_interval(o, "label_smoothing", self.label_smoothing, 0.0, 1.0, "both"))
        self._set("from_logits", V.param_bool(o, "from_logits", self.from_logits))
        self._set("z_loss", V.param_nonnegative(o, "z_loss", self.z_loss))
        if self.z_loss > 0 and not self.from_logits:
            raise ValueError(f"{o}: z_loss needs logits (the log-partition of probabilities is unknown); set from_logits=True")

    # --- declared records -------------------------------------------------
    @property
    def props(self) -> Props:
        if not self.from_logits:  # hess = diag(a / P^2): positive definite when every a_c > 0
            strict = self.label_smoothing > 0 and self.ignore_index is None and min(self.weight or (1.0,)) > 0
            return Props(convex=True, strictly_convex=strict, basis=Basis.LIKELIHOOD)
        if self.z_loss > 0:
            return Props(convex=False, basis=Basis.LIKELIHOOD)
        lip, smooth = _ce_constants(self.weight, self.label_smoothing)
        return Props(convex=True, lipschitz=lip, smoothness=smooth, basis=Basis.LIKELIHOOD)

    @property
    def formula(self) -> Formula:
        if self.from_logits:
            return self._formula
        return Formula(r"-\sum_c w_c q'_c \log P_c", r"-w \odot q' / P", r"\operatorname{diag}(w \odot q' / P^2)",
                       variable="P (probabilities, one row); q' = (1-eps) q + eps/K")

    # --- formulas ---------------------------------------------------------
    def _coef(self, xp: Any, t: RowTarget, f: Any) -> Any:
        k = f.shape[-1]
        a = t.Y
        eps = self.label_smoothing
        if eps > 0:
            spread = eps / k if t.keep is None else (eps / k) * t.keep[:, None]
            a = (1.0 - eps) * a + spread
        if self.weight is not None:
            a = a * _as_array(xp, self.weight, f)[None, :]
        return a

    def _phi_parts(self, xp: Any, P: dict, want: set) -> dict:
        out: dict = {}
        if "phi" in want:
            out["phi"] = -P["s"]
        if "dphi" in want:
            out["dphi"] = -xp.ones_like(P["s"])
        if "e" in want:
            out["e"] = None
        return out

    row_weight_options: ClassVar[tuple[str, ...]] = ("ignore_index", "weight")

    def _row_weight(self, xp: Any, t: RowTarget, f: Any) -> Any:
        if not t.is_labels:
            return None
        if self.weight is None:
            return t.keep
        return xp.sum(t.Y * _as_array(xp, self.weight, f)[None, :], axis=-1)

    def _prob_target(self, xp: Any, y: Any, f: Any, check: bool) -> RowTarget:
        if self.ignore_index is not None:
            raise ValueError(
                f"{self._owner}: ignore_index={self.ignore_index} applies to class-label targets, but y_true "
                "holds probabilities (N, K); PyTorch refuses this too. Use ignore_index=None or zero rows "
                "of sample_weight"
            )
        return super()._prob_target(xp, y, f, check)

    def _check_prediction(self, xp: Any, f: Any) -> None:
        if not self.from_logits:
            check_simplex_rows(xp, f, "y_pred (probabilities, from_logits=False)")

    def _evaluate_v(self, xp: Any, t: RowTarget, f: Any, ops: tuple, v: Any) -> tuple:
        if not self.from_logits:
            return self._evaluate_probs(xp, t, f, ops, v)
        out = list(super()._evaluate_v(xp, t, f, ops, v))
        return tuple(out) if self.z_loss == 0 else self._add_z_loss(xp, t, f, ops, out, v)

    def _add_z_loss(self, xp: Any, t: RowTarget, f: Any, ops: tuple, out: list, v: Any) -> tuple:
        """The z-loss term z lse^2 of each op, added to ``out`` (from_logits)."""
        n = f.shape[0]
        z = self.z_loss * (xp.ones((n, 1), dtype=f.dtype, device=_device(f)) if t.keep is None else t.keep[:, None])
        lse = _xp.logsumexp(xp, f, axis=-1, keepdims=True)
        p = xp.exp(f - lse)
        for i, op in enumerate(ops):
            if op == "value":
                out[i] = out[i] + (z * lse * lse)[:, 0]
            elif op == "grad":
                out[i] = out[i] + 2.0 * z * lse * p
            elif op == "hess":
                eye = xp.eye(f.shape[-1], dtype=f.dtype, device=_device(f))
                pp = p[:, :, None] * p[:, None, :]
                cov = eye[None, :, :] * p[:, None, :] - pp
                out[i] = out[i] + 2.0 * z[:, :, None] * (pp + lse[:, :, None] * cov)
            elif op == "hess_diag":
                out[i] = out[i] + 2.0 * z * (p * p + lse * p * (1.0 - p))
            elif op == "hvp":
                pv = xp.sum(p * v, axis=-1, keepdims=True)
                out[i] = out[i] + 2.0 * z * (p * pv + lse * (p * v - p * pv))
        return tuple(out)

    def _evaluate_probs(self, xp: Any, t: RowTarget, f: Any, ops: tuple, v: Any) -> tuple:
        a = self._coef(xp, t, f)
        zero_a = a == 0
        one = xp.ones_like(f)
        inv = 1.0 / xp.where(zero_a, one, f)  # 1/P where a > 0 (inf at P = 0)
        out = []
        for op in ops:
            if op == "value":
                out.append(-xp.sum(_weighted(xp, a, xp.log(f)), axis=-1))
            elif op == "grad":
                out.append(xp.where(zero_a, xp.zeros_like(f), -a * inv))
            elif op == "hess_diag":
                out.append(xp.where(zero_a, xp.zeros_like(f), a * inv * inv))
            elif op == "hess":
                hd = xp.where(zero_a, xp.zeros_like(f), a * inv * inv)
                eye = xp.eye(f.shape[-1], dtype=f.dtype, device=_device(f))
                out.append(eye[None, :, :] * hd[:, None, :])
            elif op == "hvp":
                out.append(xp.where(zero_a, xp.zeros_like(f), a * inv * inv) * v)
        return tuple(out)

    def _hvp(self, xp: Any, t: RowTarget, f: Any, v: Any) -> Any:
        if not self.from_logits:
            return self._evaluate_probs(xp, t, f, ("hvp",), v)[0]
        # phi(s) = -s has no curvature: the Hessian is S (diag p - p p^T), S = sum_c a_c, and
        # its product needs p and the centred v only (the same numbers as the general
        # _evaluate_v, without the logarithms of softmax_parts: 113 -> 70 ms at 2 x 10^5 x 5)
        P = softmax_probs(xp, f)
        p = P["p"]
        S = xp.sum(self._coef(xp, t, f), axis=-1, keepdims=True)
        hv = S * p * _centered(xp, p, P["M"], v)
        return hv if self.z_loss == 0 else self._add_z_loss(xp, t, f, ("hvp",), [hv], v)[0]

    def _example_inputs(self, rng: np.random.Generator, n: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
        y, f = super()._example_inputs(rng, n, k)
        if self.ignore_index is not None:
            y[rng.random(n) < 0.15] = self.ignore_index
        if self.z_loss > 0:  # reach lse < -1 / (2 z), where the z-loss term is not convex
            f[: n // 4] -= rng.uniform(0.5, 2.0, (n // 4, 1)) / self.z_loss
        if not self.from_logits:
            f = np.exp(f - f.max(axis=1, keepdims=True))
            f = f / f.sum(axis=1, keepdims=True)
            f = np.clip(f, 1e-3, None)
            f = f / f.sum(axis=1, keepdims=True)
        return y, f


def _ce_constants(weight: tuple[float, ...] | None, eps: float) -> tuple[float, float]:
    """(Lipschitz, smoothness) of the softmax cross-entropy, see CrossEntropy's docstring."""
    if weight is None:
        return math.sqrt(1.0 + (1.0 - eps) ** 2), 0.5
    w = np.asarray(weight, dtype=float)
    k = w.size
    A = w[None, :] * ((1.0 - eps) * np.eye(k) + eps / k)  # row y: a_y
    S = A.sum(axis=1)
    lip = max(float(np.linalg.norm(S[y] * np.eye(k)[j] - A[y])) for y in range(k) for j in range(k))
    return lip, float(S.max()) / 2.0


@functools.lru_cache(maxsize=64)
def _focal_lipschitz(gamma: float) -> float:
    """sqrt(2) sup_p [(1-p)^(g+1) - g p log(p) (1-p)^g] (the sup of ||grad|| for alpha = 1)."""

    def h(p: np.ndarray) -> np.ndarray:
        u = 1.0 - p
        return u ** (gamma + 1.0) - gamma * p * np.log(p) * u**gamma

    p = np.concatenate([np.geomspace(1e-300, 1e-3, 400), np.linspace(1e-3, 1.0, 20001)])
    i = int(np.argmax(h(p)))
    lo, hi = p[max(i - 1, 0)], p[min(i + 1, p.size - 1)]
    for _ in range(200):  # golden-section refinement of the maximiser
        a, b = lo + 0.382 * (hi - lo), lo + 0.618 * (hi - lo)
        if h(np.array(a)) < h(np.array(b)):
            lo = a
        else:
            hi = b
    best = max(float(h(np.array(0.5 * (lo + hi)))), float(np.max(h(p))), 1.0)  # p -> 0 gives 1
    return math.sqrt(2.0) * best


@register("focal", "multiclass", variants=({"gamma": 0.0}, {"gamma": 0.5}, {"gamma": 5.0, "alpha": (0.25, 1.0, 0.5, 2.0)}))
@dataclass(frozen=True)
class Focal(_ClassVectorMixin, LogSoftmaxLoss):
    r"""Multi-class focal loss (Lin et al. 2017), in log space.

    l = -sum_c a_c (1 - p_c)^gamma log p_c with a = alpha * q (alpha per class, 1 by
    default; q the one-hot label or the probability row).  With phi(s) = -(1 - e^s)^gamma s,
    u = 1 - p and psi = -log(p) / u (-> 1 as p -> 1):

        phi'  = -u^gamma (1 + gamma p psi)
        phi'' u^2 = gamma p u^(gamma+1) (s + 2 + (gamma - 1) p psi)

    enter the shared formulas of :mod:`._softmax_family` (grad = b - p B, full Hessian), so
    every derivative is finite for every gamma >= 0 (u^(gamma-1), infinite at p = 1 for
    gamma < 1, never appears).  gamma = 0 is the class-weighted cross-entropy.

    Not convex for gamma > 0: along the true logit the second derivative is
    ~ gamma e^z (2 + z) < 0 for a very wrong prediction (z = f_y - f_other < -2).
    Lipschitz: sqrt(2) max(alpha) sup_p [(1-p)^(gamma+1) - gamma p log(p) (1-p)^gamma]
    (l2 norm; computed numerically from gamma); smoothness finite but not derived.

    For K = 2, logits (0, z) and alpha = (1 - a, a) it equals optax's
    ``sigmoid_focal_loss(z, y, alpha=a, gamma)``.

    >>> import numpy as np, lossgrad
    >>> fl = lossgrad.Focal(gamma=2.0)
    >>> v = fl.value(np.array([0]), np.array([[0.0, 0.0]]))
    >>> bool(np.isclose(v[0], 0.25 * np.log(2)))
    True
    """

    gamma: float = 2.0
    alpha: tuple[float, ...] | None = None
    _class_params = ("alpha",)
    _formula = Formula(
        r"-\sum_c \alpha_c q_c (1-p_c)^\gamma \log p_c",
        r"b - p \textstyle\sum_c b_c,\quad b_c = -\alpha_c q_c (1-p_c)^\gamma (1 + \gamma p_c \psi_c)",
        r"J^\top \operatorname{diag}(\alpha q \phi'') J - (\textstyle\sum_c b_c)(\operatorname{diag}(p) - p p^\top)",
        variable="f (logits, one row); psi = -log(p)/(1-p), J = I - 1 p^T",
    )

    def __post_init__(self) -> None:
        self._set("gamma", V.param_nonnegative(self._owner, "gamma", self.gamma))
        self._set("alpha", _class_vector(self._owner, "alpha", self.alpha))

    @property
    def props(self) -> Props:
        amax = 1.0 if self.alpha is None else max(self.alpha)
        lip = amax * _focal_lipschitz(self.gamma)
        if self.gamma == 0:
            smooth = amax / 2.0
            return Props(convex=True, lipschitz=lip, smoothness=smooth, basis=Basis.LIKELIHOOD)
        return Props(convex=False, lipschitz=lip, basis=Basis.LIKELIHOOD)

    @property
    def undeclared_constants(self) -> tuple[str, ...]:  # type: ignore[override]
        return () if self.gamma == 0 else ("smoothness",)

    def _coef(self, xp: Any, t: RowTarget, f: Any) -> Any:
        return t.Y if self.alpha is None else t.Y * _as_array(xp, self.alpha, f)[None, :]

    def _phi_parts(self, xp: Any, P: dict, want: set) -> dict:
        g = self.gamma
        s, log_u, p = P["s"], P["log_u"], P["p"]
        u_g = xp.exp(g * log_u)
        out: dict = {}
        if "phi" in want:
            out["phi"] = -u_g * s
        if want & {"dphi", "e"}:
            ps = p * psi(xp, s)
            if "dphi" in want:
                out["dphi"] = -u_g * (1.0 + g * ps)
            if "e" in want:
                out["e"] = g * p * xp.exp((g + 1.0) * log_u) * (s + 2.0 + (g - 1.0) * ps)
        return out


@functools.lru_cache(maxsize=64)
def _poly1_lipschitz(eps: float) -> float:
    return math.sqrt(2.0) * (1.0 if eps <= 1.0 else (eps + 1.0) ** 2 / (4.0 * eps))


@register("poly1", "multiclass", variants=({"epsilon": -1.0}, {"epsilon": 2.0}))
@dataclass(frozen=True)
class Poly1(LogSoftmaxLoss):
    r"""Poly-1 loss (Leng et al. 2022, PolyLoss): cross-entropy + epsilon (1 - p_t).

    For a target row q: l = sum_c q_c (-log p_c + epsilon (1 - p_c)) (for a label,
    -log p_y + epsilon (1 - p_y); for soft labels this is optax's
    ``poly_loss_cross_entropy``, whose p_t = q . p).  phi(s) = -s + epsilon (1 - e^s),
    phi' = -1 - epsilon p, phi'' = -epsilon p.

    Convex exactly when -1 <= epsilon <= 1: along the chord the Hessian quadratic form
    divided by (v_y - p.v)^2 has infimum p_y (1 - epsilon + 2 epsilon p_y) / (1 - p_y).
    Lipschitz (l2): sqrt(2) for epsilon <= 1, sqrt(2) (epsilon + 1)^2 / (4 epsilon) above;
    smoothness finite but not derived.  epsilon >= -1 keeps the loss non-negative.

    >>> import numpy as np, lossgrad
    >>> v = lossgrad.Poly1(epsilon=1.0).value(np.array([1]), np.array([[0.0, 0.0]]))
    >>> bool(np.isclose(v[0], np.log(2) + 0.5))
    True
    """

    epsilon: float = 1.0
    undeclared_constants = ("smoothness",)
    _formula = Formula(
        r"\sum_c q_c(-\log p_c + \epsilon (1 - p_c))",
        r"b - p \textstyle\sum_c b_c,\quad b = -q (1 + \epsilon p)",
        r"J^\top \operatorname{diag}(-\epsilon q p) J - (\textstyle\sum_c b_c)(\operatorname{diag}(p) - p p^\top)",
        variable="f (logits, one row); J = I - 1 p^T",
    )

    def __post_init__(self) -> None:
        self._set("epsilon", V.param_at_least(self._owner, "epsilon", self.epsilon, -1.0))

    @property
    def props(self) -> Props:
        return Props(convex=-1.0 <= self.epsilon <= 1.0, lipschitz=_poly1_lipschitz(self.epsilon), basis=Basis.LIKELIHOOD)

    def _coef(self, xp: Any, t: RowTarget, f: Any) -> Any:
        return t.Y

    def _phi_parts(self, xp: Any, P: dict, want: set) -> dict:
        e = self.epsilon
        s, p = P["s"], P["p"]
        out: dict = {}
        if "phi" in want:
            out["phi"] = -s + e * xp.exp(P["log_u"])
        if "dphi" in want:
            out["dphi"] = -1.0 - e * p
        if "e" in want:
            out["e"] = -e * p * xp.exp(2.0 * P["log_u"])
        return out


from .kl_divergence import *  # noqa: E402,F401,F403
from .kl_divergence import __all__ as _kl_all  # noqa: E402
from .multiclass_margin import *  # noqa: E402,F401,F403
from .multiclass_margin import __all__ as _margin_all  # noqa: E402
from .multilabel import *  # noqa: E402,F401,F403
from .multilabel import __all__ as _multilabel_all  # noqa: E402
from .sparsemax import *  # noqa: E402,F401,F403
from .sparsemax import __all__ as _sparsemax_all  # noqa: E402

__all__ += [*_kl_all, *_margin_all, *_sparsemax_all, *_multilabel_all]
