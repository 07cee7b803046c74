r"""Numerical differentiation: finite differences, complex step, Richardson extrapolation.

Every routine evaluates the user's function on whole arrays (one call per stencil
point), so an elementwise ``f`` is differentiated at a million points for the price
of a handful of calls.

Methods and default steps
-------------------------
With ``eps`` the machine epsilon of the working dtype and ``s = max(1, |x|)``:

============  =================================================  ===========  ===================
method        first derivative                                   error        default step
============  =================================================  ===========  ===================
forward       (f(x+h) - f(x)) / h                                O(h)         eps^(1/2) s
backward      (f(x) - f(x-h)) / h                                O(h)         eps^(1/2) s
central       (f(x+h) - f(x-h)) / 2h                             O(h^2)       eps^(1/3) s
central4      (f(x-2h) - 8f(x-h) + 8f(x+h) - f(x+2h)) / 12h      O(h^4)       eps^(1/5) s
complex       Im f(x + ih) / h   (f must accept complex input)   O(h^2), no   1e-20 s
                                                                 cancellation
richardson    Ridders' extrapolation of central differences      adaptive     0.1 s (first step)
============  =================================================  ===========  ===================

Each default balances truncation error (h^k) against round-off (eps / h): the
optimum of eps/h + h^k is h ~ eps^(1/(k+1)).  Second derivatives (``order=2``) use
(f(x+h) - 2f(x) + f(x-h)) / h^2 (``central``, step eps^(1/4) s), the five-point
(-f(x+2h) + 16f(x+h) - 30f(x) + 16f(x-h) - f(x-2h)) / 12h^2 (``central4``, step
eps^(1/6) s), or Ridders' extrapolation of the three-point formula.  Steps are
rounded so that x + h is exactly representable (h = (x + h) - x).

Checking a derivative
---------------------
:func:`gradcheck` and :func:`hesscheck` compare a closed form ``a`` with a numerical
estimate ``b`` and pass where ``|a - b| <= max(rtol |b|, atol)`` at every point; the
reported relative error is ``|a - b| / max(|b|, atol / rtol)``, which equals the
ordinary relative error away from zero and degrades gracefully into an absolute
error (scaled by 1/rtol) where the true derivative vanishes.  A point passes exactly
when its relative error is <= rtol.

References: Ridders (1982), Accurate computation of F'(x) and F'(x)F''(x),
Adv. Eng. Software 4(2); Squire & Trapp (1998), Using complex variables to estimate
derivatives of real functions, SIAM Review 40(1); Fornberg (1988), Generation of
finite difference formulas on arbitrarily spaced grids.

>>> import numpy as np
>>> from lossgrad import numdiff
>>> float(numdiff.derivative(np.sin, 0.5, method="complex") - np.cos(0.5))
0.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "METHODS",
    "derivative",
    "gradient",
    "jacobian",
    "hessian",
    "default_step",
    "gradcheck",
    "hesscheck",
    "DerivativeCheck",
    "compare",
]

METHODS = ("forward", "backward", "central", "central4", "complex", "richardson")
_SECOND_ORDER = ("central", "central4", "richardson")
# Exponent k of the default step eps^k * max(1, |x|), per (method, derivative order).
_STEP_EXPONENT = {
    ("forward", 1): 1 / 2,
    ("backward", 1): 1 / 2,
    ("central", 1): 1 / 3,
    ("central4", 1): 1 / 5,
    ("central", 2): 1 / 4,
    ("central4", 2): 1 / 6,
}
_RIDDERS_SHRINK = 1.4  # step divisor between tableau columns
_RIDDERS_MAX = 12  # tableau size
_RIDDERS_SAFE = 2.0  # stop once the error grows by this factor


# ------------------------------------------------------------------ arguments


def _check_method(method: Any, order: int, allowed: tuple[str, ...] = METHODS) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    if method not in allowed:
        raise ValueError(f"method={method!r} is not available here; use one of {', '.join(map(repr, allowed))}")
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    if order == 2 and method not in _SECOND_ORDER:
        raise ValueError(f"order=2 needs method 'central', 'central4' or 'richardson', got {method!r}")
    return method


def _as_points(x: Any, name: str = "x") -> np.ndarray:
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number or array, got a boolean")
    try:
        arr = np.asarray(x)
    except Exception:  # pragma: no cover - exotic objects
        raise TypeError(f"{name} must be a real number or array, got {type(x).__name__}") from None
    if np.iscomplexobj(arr) or not (np.issubdtype(arr.dtype, np.number)):
        raise TypeError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; derivatives need finite points")
    return arr


def default_step(x: Any, method: str = "central", order: int = 1) -> np.ndarray:
    """The default step for ``method`` at the points ``x`` (see the module docstring)."""
    _check_method(method, order)
    x = _as_points(x)
    eps = np.finfo(x.dtype).eps
    scale = np.maximum(1.0, np.abs(x))
    if method == "complex":
        return (1e-20 * scale).astype(x.dtype)
    if method == "richardson":
        return (0.1 * scale).astype(x.dtype)
    return (eps ** _STEP_EXPONENT[(method, order)] * scale).astype(x.dtype)


def _steps(x: np.ndarray, method: str, order: int, step: Any) -> np.ndarray:
    if step is None:
        h = default_step(x, method, order)
    else:
        h = np.asarray(step, dtype=x.dtype)
        if not np.all(np.isfinite(h)) or not np.all(h > 0):
            raise ValueError(f"step must be finite and > 0, got {step!r}")
        h = np.broadcast_to(h, x.shape).copy() if h.shape != x.shape else h.copy()
    if method != "complex":
        h = (x + h) - x  # make x + h exact, so the divisor is the step actually taken
        h = np.where(h > 0, h, np.spacing(np.abs(x) + 1.0))
    return h


def _call(f: Callable, x: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    out = np.asarray(f(x))
    if shape is not None and out.shape != shape:
        raise ValueError(
            f"f must be elementwise: f(x) has shape {out.shape}, expected the shape of x {shape}"
        )
    return out


# ------------------------------------------------------------------ kernels


def _difference(f: Callable, x: np.ndarray, h: np.ndarray, method: str, order: int, fx: Any = None) -> np.ndarray:
    """One finite-difference estimate with step h (elementwise f)."""
    s = x.shape
    if order == 1:
        if method == "forward":
            f0 = _call(f, x, s) if fx is None else fx
            return (_call(f, x + h, s) - f0) / h
        if method == "backward":
            f0 = _call(f, x, s) if fx is None else fx
            return (f0 - _call(f, x - h, s)) / h
        if method == "central":
            return (_call(f, x + h, s) - _call(f, x - h, s)) / (2.0 * h)
        if method == "central4":
            return (
                _call(f, x - 2 * h, s) - 8.0 * _call(f, x - h, s) + 8.0 * _call(f, x + h, s) - _call(f, x + 2 * h, s)
            ) / (12.0 * h)
        if method == "complex":
            return np.imag(_call(f, x + 1j * h, s)) / h
    f0 = _call(f, x, s) if fx is None else fx
    if method == "central":
        return (_call(f, x + h, s) - 2.0 * f0 + _call(f, x - h, s)) / (h * h)
    # central4, order 2
    return (
        -_call(f, x + 2 * h, s) + 16.0 * _call(f, x + h, s) - 30.0 * f0 + 16.0 * _call(f, x - h, s) - _call(f, x - 2 * h, s)
    ) / (12.0 * h * h)


def _ridders(estimate: Callable[[float], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Ridders' polynomial extrapolation to h -> 0, elementwise.

    ``estimate(c)`` returns a second-order-accurate difference quotient with every
    step multiplied by ``c`` (error a1 c^2 + a2 c^4 + ...).  Returns the best
    extrapolated value per element and its error estimate.
    """
    con2 = _RIDDERS_SHRINK**2
    c = 1.0
    prev = [np.asarray(estimate(c), dtype=float)]
    best = prev[0].copy()
    err = np.full(best.shape, np.inf)
    done = np.zeros(best.shape, dtype=bool)
    for i in range(1, _RIDDERS_MAX):
        c /= _RIDDERS_SHRINK
        row = [np.asarray(estimate(c), dtype=float)]
        fac = con2
        for j in range(1, i + 1):
            row.append((row[j - 1] * fac - prev[j - 1]) / (fac - 1.0))
            fac *= con2
            errt = np.maximum(np.abs(row[j] - row[j - 1]), np.abs(row[j] - prev[j - 1]))
            better = (errt <= err) & ~done
            best = np.where(better, row[j], best)
            err = np.where(better, errt, err)
        # stop refining an element once the error estimate has grown well past its best
        done |= np.abs(row[i] - prev[i - 1]) >= _RIDDERS_SAFE * err
        prev = row
        if np.all(done):
            break
    return best, err


# ------------------------------------------------------------------ public API


def derivative(
    f: Callable,
    x: Any,
    *,
    method: str = "central",
    step: Any = None,
    order: int = 1,
    return_error: bool = False,
) -> Any:
    """d^order f / dx^order at every element of ``x``, for an elementwise ``f``.

    Parameters
    ----------
    f:
        A function applied elementwise: ``f(x)`` has the shape of ``x`` (``method
        ="complex"`` needs ``f`` to accept complex arrays).
    x:
        Points (a number or an array of floats, finite).
    method:
        One of ``"forward"``, ``"backward"``, ``"central"``, ``"central4"``,
        ``"complex"``, ``"richardson"`` (see the module docstring).
    step:
        Step(s) h > 0 (scalar or array like ``x``); the default is method-specific.
        For ``"richardson"`` it is the first, largest step.
    order:
        1 or 2 (second derivatives: central, central4, richardson).
    return_error:
        Also return an error estimate: Ridders' for ``"richardson"``, otherwise the
        difference between the estimates at steps h and h/2.

    Returns an array of the shape of ``x`` (a NumPy scalar for a scalar ``x``).
    """
    method = _check_method(method, order)
    x = _as_points(x)
    h = _steps(x, method, order, step)
    if method == "richardson":
        fx = _call(f, x, x.shape) if order == 2 else None
        inner = "central"
        d, err = _ridders(lambda c: _difference(f, x, _steps(x, inner, order, h * c), inner, order, fx))
    else:
        d = _difference(f, x, h, method, order)
        if return_error:
            err = np.abs(d - _difference(f, x, _steps(x, method, order, h / 2), method, order))
    d = d[()] if d.ndim == 0 else d
    if return_error:
        return d, (err[()] if np.ndim(err) == 0 else err)
    return d


def jacobian(f: Callable, x: Any, *, method: str = "central4", step: Any = None) -> np.ndarray:
    """J[i..., j...] = d f(x)[i...] / d x[j...] for any array function ``f``.

    One stencil per coordinate of ``x``; the output has shape
    ``f(x).shape + x.shape``.  Methods as in :func:`derivative` (first order).
    """
    method = _check_method(method, 1)
    x = _as_points(x)
    f0 = np.asarray(f(x))
    flat = x.reshape(-1)
    steps = None if step is None else np.broadcast_to(np.asarray(step, dtype=x.dtype), x.shape).reshape(-1)
    h_all = _steps(flat, method, 1, steps)
    cols = []
    for j in range(flat.size):
        e = np.zeros(flat.size, dtype=x.dtype)
        e[j] = 1.0

        def along(t: Any, e: np.ndarray = e) -> np.ndarray:
            # f restricted to the line x + t e_j (t scalar, possibly complex)
            return np.asarray(f((flat + t * e).reshape(x.shape)))

        cols.append(_line_derivative(along, f0, float(h_all[j]), method))
    jac = np.stack(cols, axis=-1) if cols else np.zeros(f0.shape + (0,))
    return jac.reshape(f0.shape + x.shape)


def _line_derivative(g: Callable, g0: np.ndarray, h: float, method: str) -> np.ndarray:
    if method == "forward":
        return (g(h) - g0) / h
    if method == "backward":
        return (g0 - g(-h)) / h
    if method == "central":
        return (g(h) - g(-h)) / (2 * h)
    if method == "central4":
        return (g(-2 * h) - 8 * g(-h) + 8 * g(h) - g(2 * h)) / (12 * h)
    if method == "complex":
        return np.imag(g(1j * h)) / h
    best, _ = _ridders(lambda c: (g(h * c) - g(-h * c)) / (2 * h * c))
    return best


def gradient(f: Callable, x: Any, *, method: str = "central4", step: Any = None) -> np.ndarray:
    """The gradient of a scalar function ``f`` of an array ``x`` (shape of ``x``)."""
    x = _as_points(x)
    f0 = np.asarray(f(x))
    if f0.size != 1:
        raise ValueError(f"gradient needs a scalar function; f(x) has shape {f0.shape} (use jacobian)")
    wrapped = lambda z: np.reshape(f(z), ())  # noqa: E731
    return jacobian(wrapped, x, method=method, step=step)


def hessian(f: Callable, x: Any, *, method: str = "central4", step: Any = None) -> np.ndarray:
    """The Hessian of a scalar function ``f`` of an array ``x`` (shape x.shape * 2).

    ``central``: the 4-point formula [f(++) - f(+-) - f(-+) + f(--)] / (4 h_i h_j)
    (and the 3-point second difference on the diagonal), O(h^2), step eps^(1/4) s.
    ``central4``: the tensor product of the 4th-order first-difference stencil, and the
    5-point second difference on the diagonal, O(h^4), step eps^(1/6) s.
    ``richardson``: Ridders' extrapolation of the ``central`` formulas.
    """
    method = _check_method(method, 2, _SECOND_ORDER)
    x = _as_points(x)
    f0 = np.asarray(f(x))
    if f0.size != 1:
        raise ValueError(f"hessian needs a scalar function; f(x) has shape {f0.shape}")
    flat = x.reshape(-1)
    n = flat.size
    base = "central" if method == "richardson" else method
    steps = None if step is None else np.broadcast_to(np.asarray(step, dtype=x.dtype), x.shape).reshape(-1)
    h = _steps(flat, method, 2, steps)
    fval = float(f0.reshape(()))

    def at(offsets: dict[int, float]) -> float:
        z = flat.copy()
        for k, v in offsets.items():
            z[k] = z[k] + v
        return float(np.reshape(f(z.reshape(x.shape)), ()))

    def estimate(c: float) -> np.ndarray:
        hs = h * c
        H = np.empty((n, n))
        for i in range(n):
            hi = hs[i]
            if base == "central":
                H[i, i] = (at({i: hi}) - 2 * fval + at({i: -hi})) / (hi * hi)
            else:
                H[i, i] = (
                    -at({i: 2 * hi}) + 16 * at({i: hi}) - 30 * fval + 16 * at({i: -hi}) - at({i: -2 * hi})
                ) / (12 * hi * hi)
            for j in range(i):
                hj = hs[j]
                if base == "central":
                    v = at({i: hi, j: hj}) - at({i: hi, j: -hj}) - at({i: -hi, j: hj}) + at({i: -hi, j: -hj})
                    v /= 4 * hi * hj
                else:
                    w = {-2: 1.0, -1: -8.0, 1: 8.0, 2: -1.0}
                    v = sum(ci * cj * at({i: a * hi, j: b * hj}) for a, ci in w.items() for b, cj in w.items())
                    v /= 144 * hi * hj
                H[i, j] = H[j, i] = v
        return H

    H = _ridders(estimate)[0] if method == "richardson" else estimate(1.0)
    return H.reshape(x.shape + x.shape)


# ------------------------------------------------------------------ checks


@dataclass(frozen=True)
class DerivativeCheck:
    """The outcome of :func:`gradcheck` / :func:`hesscheck`; truthy iff ``passed``.

    ``max_rel_error`` uses |a - b| / max(|b|, atol / rtol) (see the module docstring);
    ``where`` is the index of the worst point; ``analytic`` and ``numeric`` hold the
    compared arrays.
    """

    passed: bool
    max_abs_error: float
    max_rel_error: float
    where: tuple[int, ...]
    rtol: float
    atol: float
    method: str
    n_points: int
    analytic: np.ndarray = field(repr=False, compare=False, default=None)
    numeric: np.ndarray = field(repr=False, compare=False, default=None)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict}: max abs error {self.max_abs_error:.3e}, max rel error {self.max_rel_error:.3e} "
            f"at {self.where} (rtol={self.rtol:g}, atol={self.atol:g}, method={self.method}, {self.n_points} points)"
        )


def _check_tolerances(rtol: Any, atol: Any) -> tuple[float, float]:
    for name, v in (("rtol", rtol), ("atol", atol)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if rtol == 0 and atol == 0:
        raise ValueError("rtol and atol cannot both be 0")
    return float(rtol), float(atol)


def compare(analytic: Any, numeric: Any, rtol: float, atol: float, method: str = "") -> DerivativeCheck:
    """Compare two arrays with the rule of the module docstring."""
    a = np.asarray(analytic, dtype=float)
    b = np.asarray(numeric, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"the analytic derivative has shape {a.shape}, the numerical one {b.shape}")
    diff = np.abs(a - b)
    floor = atol / rtol if rtol > 0 else np.inf
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = diff / np.maximum(np.abs(b), floor) if rtol > 0 else np.where(diff <= atol, 0.0, np.inf)
    rel = np.where(np.isnan(rel), np.inf, rel)  # a NaN anywhere is a failure
    diff = np.where(np.isnan(diff), np.inf, diff)
    ok = (diff <= np.maximum(rtol * np.abs(b), atol)) & np.isfinite(a) & np.isfinite(b)
    if a.size == 0:
        return DerivativeCheck(True, 0.0, 0.0, (), rtol, atol, method, 0, a, b)
    worst = np.unravel_index(int(np.argmax(rel)), a.shape) if a.ndim else ()
    return DerivativeCheck(
        passed=bool(np.all(ok)),
        max_abs_error=float(np.max(diff)),
        max_rel_error=float(np.max(rel)),
        where=tuple(int(i) for i in worst),
        rtol=rtol,
        atol=atol,
        method=method,
        n_points=int(a.size),
        analytic=a,
        numeric=b,
    )


def gradcheck(
    f: Callable,
    grad_f: Callable,
    x: Any,
    *,
    elementwise: bool = False,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    method: str = "central4",
    step: Any = None,
) -> DerivativeCheck:
    """Check ``grad_f`` against a numerical derivative of ``f`` at ``x``.

    ``elementwise=True``: ``f`` acts elementwise and ``grad_f(x)`` is its derivative
    at each element; otherwise ``f`` is a scalar function of the array ``x`` and
    ``grad_f(x)`` its gradient (shape of ``x``).
    """
    rtol, atol = _check_tolerances(rtol, atol)
    x = _as_points(x)
    if elementwise:
        numeric = derivative(f, x, method=method, step=step)
    else:
        numeric = gradient(f, x, method=method, step=step)
    return compare(np.asarray(grad_f(x)), numeric, rtol, atol, method)


def hesscheck(
    f: Callable,
    hess_f: Callable,
    x: Any,
    *,
    grad: Callable | None = None,
    elementwise: bool = False,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    method: str = "central4",
    step: Any = None,
) -> DerivativeCheck:
    """Check ``hess_f`` at ``x``: against the numerical Jacobian of ``grad`` when it is
    given (the sharper test), else against second differences of ``f``.

    ``elementwise=True``: ``hess_f(x)`` is the elementwise second derivative;
    otherwise the (x.shape + x.shape) Hessian of a scalar ``f``.
    """
    rtol, atol = _check_tolerances(rtol, atol)
    x = _as_points(x)
    if grad is not None:
        numeric = derivative(grad, x, method=method, step=step) if elementwise else jacobian(grad, x, method=method, step=step)
    elif elementwise:
        numeric = derivative(f, x, method=method, step=step, order=2)
    else:
        numeric = hessian(f, x, method=method, step=step)
    return compare(np.asarray(hess_f(x)), numeric, rtol, atol, method)
