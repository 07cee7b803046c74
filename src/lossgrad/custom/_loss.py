"""The loss class built from a formula: compiled derivatives, kinks and measured properties.

A formula in r becomes a :class:`~lossgrad.ResidualLoss` (so it has IRLS weights and
works with :mod:`lossgrad.robust`), one in z a :class:`~lossgrad.MarginLoss`, one in y
and f a plain :class:`~lossgrad.PointwiseLoss` of basis ``likelihood``.  Each formula
gets its own frozen dataclass whose fields are the formula's parameters, so
``dataclasses.replace`` and ``repr`` work as for the built-in losses.

Kinks: each real zero of a kink candidate (:mod:`._derive`) is classified by the
one-sided limits of value, grad and hess there (extrapolated from t0 +- h, t0 +- 2h);
the lowest derivative that jumps (or is infinite) gives the order, and the compiled
function's own value at t0 gives the side.  Properties are *measured* with the probes of
:func:`lossgrad.verify` and then declared; a property the user declares is compared
with the measurement and a contradiction is a ValueError.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from .._core import MarginLoss, PointwiseLoss, ResidualLoss
from .._props import Basis, Formula, Kink, Props, Side

__all__ = ["CustomLoss", "make_class", "classify_kinks", "measure_props"]

_BASIS = {"r": Basis.DISTANCE, "z": Basis.MARGIN, "yf": Basis.LIKELIHOOD}


class CustomLoss:
    """Mixin of every loss built by :func:`lossgrad.custom.from_formula`."""

    derivation: ClassVar[Any]
    _fns: ClassVar[dict[str, Any]]
    _declared: ClassVar[dict[str, Any]]
    _positive: ClassVar[tuple[str, ...]]
    _target: ClassVar[str] = "real"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
                raise ValueError(f"{self._owner}: {f.name} must be a finite real number, got {v!r}")
            if f.name in self._positive and not v > 0:
                raise ValueError(f"{self._owner}: {f.name} must be > 0 (the derivation assumed it positive), got {v!r}")
            self._set(f.name, float(v))

    def __repr__(self) -> str:
        ps = "".join(f", {p.name}={getattr(self, p.name)!r}" for p in self.derivation.params)
        named = "" if self.name == self.derivation.text else f", name={self.name!r}"
        return f"from_formula({self.derivation.text!r}{ps}{named})"

    # -- evaluation ---------------------------------------------------------
    def _pvals(self) -> tuple[float, ...]:
        return tuple(getattr(self, p.name) for p in self.derivation.params)

    def _call(self, op: str, xp: Any, *args: Any) -> Any:
        with np.errstate(invalid="ignore", divide="ignore"):  # where() evaluates both branches
            out = self._call_inner(op, xp, *args)
        if "_kink_patches" not in self.__dict__:
            _ = self.kinks
        t = args[-1]
        for t0, o, c in self.__dict__["_kink_patches"]:
            if o == op:
                out = xp.where(t == t0, xp.full_like(out, c), out)
        return out

    def _call_inner(self, op: str, xp: Any, *args: Any) -> Any:
        like = args[-1]
        if isinstance(like, np.ndarray) and like.dtype in (np.float32, np.float64) and _use_numba(like.size):
            kernel = numba_kernel(type(self), op)
            if kernel is not None:
                # parameters as arrays of the input's dtype: a scalar would select the float64 loop
                pv = [np.broadcast_to(np.asarray(v, dtype=like.dtype), like.shape) for v in self._pvals()]
                return kernel(*args, *pv)
        return self._fns[op](xp, *args, *self._pvals())

    # -- declared records ---------------------------------------------------
    @property
    def formula(self) -> Formula:
        return self.derivation.formula()

    @property
    def kinks(self) -> tuple[Kink, ...]:
        cache = self.__dict__.get("_kinks_cache")
        if cache is None:
            cache = classify_kinks(self)
            object.__setattr__(self, "_kinks_cache", cache)
        return cache

    @property
    def props(self) -> Props:
        cache = self.__dict__.get("_props_cache")
        if cache is None:
            object.__setattr__(self, "_props_cache", _provisional(self))  # what the probes run with
            cache = measure_props(self)
            object.__setattr__(self, "_props_cache", cache)
        return cache

    def __reduce__(self) -> Any:
        from . import from_formula

        d = self.derivation
        params = {p.name: getattr(self, p.name) for p in d.params}
        return (_rebuild, (from_formula, d.text, d.variable, params, dict(self._declared), self._target, self.name))


def _use_numba(size: int) -> bool:
    from .._config import get_config

    config = get_config()
    return bool(config.use_kernels and size >= config.kernel_threshold)


def numba_kernel(cls: type, op: str) -> Any:
    """The Numba ufunc of ``op`` for this formula (compiled on first use), or None where
    the formula uses a function Numba cannot compile (then the array-API path runs)."""
    cache = cls.__dict__.get("_numba_cache")
    if cache is None:
        cache = {}
        cls._numba_cache = cache
    if op not in cache:
        from ._compile import compile_numba

        d = cls.derivation
        try:
            kernel = compile_numba(getattr(d, op), d.variables, d.params)
            probe = np.linspace(-2.5, 2.5, 5)
            args = (np.full_like(probe, 0.5), probe) if d.variable == "yf" else (probe,)
            pv = [np.float64(v.default) for v in dataclasses.fields(cls)]
            with np.errstate(all="ignore"):
                want = np.asarray(cls._fns[op](np, *args, *pv), dtype=float)
                got = kernel(*args, *pv)
            if not np.allclose(got, want, rtol=1e-12, atol=1e-300, equal_nan=True):
                kernel = None
        except Exception:  # noqa: BLE001 - a formula Numba cannot compile uses the reference path
            kernel = None
        cache[op] = kernel
    return cache[op]


def _rebuild(from_formula: Any, text: str, variable: str, params: dict[str, float], declare: dict,
             target: str = "real", name: str | None = None) -> Any:
    return from_formula(text, params, variable=variable, declare=declare or None, check=False, target=target,
                        name=name)


class _Residual(CustomLoss, ResidualLoss):
    def _rho(self, xp: Any, r: Any) -> Any:
        return self._call("value", xp, r)

    def _psi(self, xp: Any, r: Any) -> Any:
        return self._call("grad", xp, r)

    def _dpsi(self, xp: Any, r: Any) -> Any:
        return self._call("hess", xp, r)

    def _weight(self, xp: Any, r: Any) -> Any:
        from .. import _xp

        at_zero = self.__dict__.get("_weight0")
        if at_zero is None:
            at_zero = weight_at_zero(self)
            object.__setattr__(self, "_weight0", at_zero)
        return _xp.safe_divide(xp, self._psi(xp, r), r, at_zero * xp.ones_like(r))


class _Margin(CustomLoss, MarginLoss):
    def _phi(self, xp: Any, z: Any) -> Any:
        return self._call("value", xp, z)

    def _dphi(self, xp: Any, z: Any) -> Any:
        return self._call("grad", xp, z)

    def _d2phi(self, xp: Any, z: Any) -> Any:
        return self._call("hess", xp, z)


class _YF(CustomLoss, PointwiseLoss):
    def _value(self, xp: Any, y: Any, f: Any) -> Any:
        return self._call("value", xp, y, f)

    def _grad(self, xp: Any, y: Any, f: Any) -> Any:
        return self._call("grad", xp, y, f)

    def _hess(self, xp: Any, y: Any, f: Any) -> Any:
        return self._call("hess", xp, y, f)

    def _natural(self, y: np.ndarray, f: np.ndarray) -> np.ndarray:
        return f

    def _check_target(self, xp: Any, y: Any) -> None:
        from .. import _validation as V

        check, words = _TARGETS[self._target][1:]
        if check is not None:
            V.check_all(xp, check(y), "y_true", words)

    def _example_inputs(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        draw = _TARGETS[self._target][0]
        return draw(rng, n), rng.normal(0.0, 1.5, n)

    def _from_natural(self, y: np.ndarray, t: np.ndarray) -> np.ndarray:
        return t


_BASES = {"r": _Residual, "z": _Margin, "yf": _YF}

#: Domains of y_true for losses of (y, f): (example sampler, check, words for the error).
_TARGETS: dict[str, tuple[Any, Any, str]] = {
    "real": (lambda rng, n: rng.normal(0.0, 2.0, n), None, ""),
    "positive": (lambda rng, n: rng.gamma(2.0, 1.0, n), lambda y: y > 0, "positive values"),
    "unit": (lambda rng, n: rng.uniform(0.02, 0.98, n), lambda y: (y >= 0) & (y <= 1), "values in [0, 1]"),
    "binary": (lambda rng, n: rng.integers(0, 2, n).astype(float), lambda y: (y == 0) | (y == 1),
               "binary labels in {0, 1}"),
}

#: The y_true at which kinks of a loss of (y, f) are classified.
_KINK_Y = {"real": 0.0, "positive": 1.0, "unit": 0.5, "binary": 1.0}


def make_class(derivation: Any, fns: dict[str, Any], params: dict[str, float], name: str,
               declared: dict[str, Any], target: str = "real") -> type:
    """A frozen dataclass for one formula, its fields the formula's parameters."""
    base = _BASES[derivation.variable]
    fields = [(p, float, dataclasses.field(default=v)) for p, v in params.items()]
    doc = (f"Custom loss {derivation.text!r} in {derivation.variable} (built by lossgrad.custom).\n\n"
           f"value = {derivation.value}\ngrad  = {derivation.grad}\nhess  = {derivation.hess}\n")
    cls = dataclasses.make_dataclass(
        "Custom_" + "".join(c if c.isalnum() else "_" for c in name), fields, bases=(base,), frozen=True, repr=False,
        namespace={"derivation": derivation, "_fns": fns, "_declared": dict(declared), "__doc__": doc,
                   "name": name, "family": "custom", "_target": target,
                   "_positive": tuple(p for p, v in params.items() if v > 0)},
    )
    cls.__module__ = __name__
    return cls


def weight_at_zero(loss: Any) -> float:
    """The limit of psi(r)/r at r = 0 (SymPy's one-sided limits; +-inf allowed), the
    mean of the two when they differ and are finite, psi'(0) if SymPy finds none."""
    import sympy as sp

    d = loss.derivation
    r = d.wrt
    q = (d.grad / r).xreplace({p: sp.Float(getattr(loss, p.name), 30) for p in d.params})
    try:
        lims = [complex(sp.limit(q, r, 0, dir=side)) for side in ("-", "+")]
    except Exception:  # noqa: BLE001 - no symbolic limit: fall back to psi'(0)
        return float(np.asarray(loss._dpsi(np, np.zeros(1)))[0])
    left, right = (v.real if v.imag == 0 else math.nan for v in lims)
    if left == right:
        return float(right)
    if math.isfinite(left) and math.isfinite(right):
        return 0.5 * (left + right)
    return float(right) if not math.isnan(right) else float(left)


# ------------------------------------------------------------------ kinks


def _limits(loss: Any, op: str, t0: float, h: float) -> tuple[float, float, float]:
    """(left limit, value at t0, right limit) of ``op``, extrapolated linearly from t0 +- h, +- 2h."""
    t = np.array([t0 - 2 * h, t0 - h, t0, t0 + h, t0 + 2 * h])
    pv = loss._pvals()
    with np.errstate(all="ignore"):
        if loss.derivation.variable == "yf":
            y = np.full_like(t, _KINK_Y[loss._target])
            g = np.asarray(loss._fns[op](np, y, t, *pv), dtype=float)
        else:
            g = np.asarray(loss._fns[op](np, t, *pv), dtype=float)
    return 2 * g[1] - g[0], g[2], 2 * g[3] - g[4]


def _jumps(loss: Any, op: str, t0: float) -> tuple[bool, bool, float, float, float]:
    """Whether ``op`` jumps (or has a pole) at t0: a jump keeps its size as h shrinks,
    the gap of a continuous function (even sqrt-like) shrinks with h."""
    s = max(1.0, abs(t0))
    l1, _, r1 = _limits(loss, op, t0, 1e-5 * s)
    left, at, right = _limits(loss, op, t0, 1e-8 * s)
    if not all(math.isfinite(v) for v in (l1, r1, left, right)):
        return True, True, left, at, right
    gap1, gap2 = abs(l1 - r1), abs(left - right)
    mag1, mag2 = max(abs(l1), abs(r1)), max(abs(left), abs(right))
    pole = mag2 > 10.0 * mag1 + 1.0
    jump = gap2 > 1e-6 * (1.0 + mag2) and gap2 > 0.5 * gap1
    return pole or jump, pole, left, at, right


def classify_kinks(loss: Any) -> tuple[Kink, ...]:
    from ._derive import kink_points

    d = loss.derivation
    params = {p.name: getattr(loss, p.name) for p in d.params}
    out = []
    patches: list[tuple[float, str, float]] = []
    object.__setattr__(loss, "_kink_patches", ())
    for t0 in kink_points(d, params):
        for order, op in enumerate(("value", "grad", "hess")):
            jumps, pole, left, at, right = _jumps(loss, op, t0)
            if not jumps:
                if not math.isfinite(at) and math.isfinite(left) and math.isfinite(right):
                    # a removable singularity of the formula (|r|**p sign(r) / |r| at 0): its limit
                    patches.append((float(t0), op, float(0.5 * (left + right))))
                continue
            if pole:  # |r|^p, 1 < p < 2: the Hessian diverges at 0 from both sides
                if not (math.isfinite(left) or math.isfinite(right)) or left * right > 0:
                    patches.append((float(t0), op, math.copysign(math.inf, right if right == right else left)))
                out.append(Kink(float(t0), order, Side.MIDPOINT))
                break
            if not math.isfinite(at):  # NaN at the kink (0/0 in the formula): the mean of the limits
                patches.append((float(t0), op, float(0.5 * (left + right))))
                out.append(Kink(float(t0), order, Side.MIDPOINT))
                break
            tol = 1e-4 * (1.0 + abs(left) + abs(right))
            if math.isfinite(right) and abs(at - right) <= tol:
                side = Side.RIGHT
            elif math.isfinite(left) and abs(at - left) <= tol:
                side = Side.LEFT
            elif math.isfinite(left) and math.isfinite(right) and abs(at - 0.5 * (left + right)) <= tol:
                side = Side.MIDPOINT
            else:
                # e.g. Heaviside(0)**2 = 1/4 in the derivative of max(0, u)**2, or the
                # sum of both branches of Max at a tie: return the limit from the right
                side = Side.RIGHT
                for k, o in enumerate(("value", "grad", "hess")[order:]):
                    patches.append((float(t0), o, float(_limits(loss, o, t0, 1e-8 * max(1.0, abs(t0)))[2])))
            out.append(Kink(float(t0), order, side))
            break
    object.__setattr__(loss, "_kink_patches", tuple(patches))
    return tuple(out)


# ------------------------------------------------------------------ properties

_PROP_NAMES = tuple(f.name for f in dataclasses.fields(Props))


def _provisional(loss: Any) -> Props:
    margin = loss.derivation.variable == "z"
    return Props(convex=False, differentiability=0, basis=_BASIS[loss.derivation.variable],
                 class_calibrated=False if margin else None)


def measure_props(loss: Any) -> Props:
    """Every :class:`Props` field measured with the probes of :func:`lossgrad.verify`."""
    import warnings

    from ..verification import _props_checks as P
    from ..verification._probe import Evaluator, build_grid, find_jumps

    basis = _BASIS[loss.derivation.variable]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rng = np.random.default_rng(0)
        y, _ = (np.asarray(a, dtype=float) for a in loss._example_inputs(rng, 200))
        ev = Evaluator(loss)
        grid = build_grid(loss, ev, y)
        jumps = []
        for what in ("value", "grad", "hess"):
            if ev.available[what]:
                jumps += find_jumps(loss, ev, grid, what)[0]
        conv = P.measure_convexity(loss, ev, grid, rng)
        lip = P.check_lipschitz(loss, grid, jumps).measured
        smooth = P.check_smoothness(loss, grid, jumps).measured
        diff = P.check_differentiability(loss, jumps)[0].measured
        sym = P.check_symmetric(loss, ev, grid).measured if basis != Basis.LIKELIHOOD else False
        bounded = P.check_bounded(loss, grid).measured
        redesc = P.check_redescending(loss, grid).measured
        calibrated = P.check_class_calibrated(loss, ev).measured if basis == Basis.MARGIN else None
        H = grid.H[np.isfinite(grid.H) & grid.valid]
    def tidy(x: float) -> float:  # 0.9999999999995 measured on a grid is the constant 1
        return float(f"{x:.9g}")

    strict = bool(conv["convex"] and conv["strict"])
    m = float(np.min(H)) if (strict and H.size) else 0.0
    measured = dict(
        convex=bool(conv["convex"]), strictly_convex=strict, strong_convexity=m if m > 1e-9 else 0.0,
        lipschitz=None if isinstance(lip, str) else tidy(lip),
        smoothness=None if isinstance(smooth, str) else tidy(smooth),
        differentiability=int(diff) if not isinstance(diff, str) else 2, basis=basis,
        symmetric=bool(sym), bounded=bool(bounded), redescending=bool(redesc),
        class_calibrated=None if calibrated is None else bool(calibrated),
    )
    declared = loss._declared
    for key, value in declared.items():
        have = measured[key]
        same = (have == value) if not (isinstance(value, float) and isinstance(have, float)) else math.isclose(
            have, value, rel_tol=1e-6, abs_tol=1e-12)
        if not same:
            raise ValueError(f"{loss.derivation.text!r}: declared {key}={value!r} but lossgrad measured {have!r}"
                             + (" (the loss is not differentiable there: see its kinks "
                                f"{[(k.at, k.order) for k in loss.kinks]})" if key == "differentiability" else ""))
    return Props(**measured)
