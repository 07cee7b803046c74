r"""Custom losses from a formula: exact grad and hess derived by SymPy, compiled, checked.

Write the loss as an expression in the residual ``r = f - y``, the margin ``z = y f``,
or the target ``y`` and prediction ``f``, with named parameters; lossgrad derives its
first two derivatives symbolically, simplifies them, compiles them to array-namespace
code (NumPy, PyTorch, JAX arrays alike), finds its kinks, measures its properties, and
runs :func:`lossgrad.verify` on the result.  SymPy is an optional dependency
(``pip install lossgrad[symbolic]``).

>>> from lossgrad import custom
>>> loss = custom.from_formula("log(cosh(r))")
>>> loss.derivation.grad, loss.derivation.hess
(tanh(r), cosh(r)**(-2))
>>> float(loss.grad(0.0, 1.0)), loss.props.convex, loss.props.lipschitz
(0.7615941559557649, True, 1.0)
>>> ph = custom.from_formula("delta**2*(sqrt(1+(r/delta)**2)-1)", params={"delta": 2.0})
>>> ph
from_formula('delta**2*(sqrt(1+(r/delta)**2)-1)', delta=2.0)
>>> float(ph.hess(0.0, 0.0))
1.0
>>> [(k.at, k.order) for k in custom.from_formula("abs(r)").kinks]
[(0.0, 1)]

Supported functions: exp, log, log1p, expm1, sqrt, abs, sign, sin, cos, tan, sinh,
cosh, tanh and their inverses, sech, erf, erfc, max, min, clip, relu, softplus,
sigmoid, hypot, Heaviside, Piecewise and ``where(cond, a, b)``; ``^`` is a power.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .._props import Formula

__all__ = ["from_formula", "derive", "unregister", "CustomLoss", "Derivation"]


def _require_sympy() -> None:
    try:
        import sympy  # noqa: F401
    except ImportError as exc:  # pragma: no cover - sympy is installed with the extra
        raise ImportError("lossgrad.custom needs SymPy: pip install 'lossgrad[symbolic]' (or pip install sympy)") from exc


def derive(formula: str, params: dict[str, float] | None = None, *, variable: str | None = None,
           simplify: bool = True) -> Any:
    """The symbolic :class:`Derivation` (value, grad, hess, kink candidates) of ``formula``.

    >>> d = derive("r**2/2 + abs(r)")
    >>> d.grad, d.hess
    (r + sign(r), 1)
    """
    from ._derive import derive_symbolic
    from ._parse import check_params, detect_variable

    _require_sympy()
    var = detect_variable(formula, variable)
    return derive_symbolic(formula, var, check_params(params, var), simplify)


def from_formula(formula: str, params: dict[str, float] | None = None, *, variable: str | None = None,
                 name: str | None = None, register: bool = False, declare: dict[str, Any] | None = None,
                 check: bool = True, simplify: bool = True, target: str = "real") -> Any:
    """A lossgrad loss whose value is ``formula``; grad and hess derived exactly.

    Parameters
    ----------
    formula:
        An expression in ``r`` (residual), ``z`` (margin) or ``y`` and ``f``.
    params:
        Parameter names and default values, e.g. ``{"delta": 1.0}``; every other name in
        the formula is an error.  A parameter given a positive value is assumed positive
        in the derivation (and must stay positive).
    variable:
        "r", "z" or "yf"; guessed from the names used when omitted.
    name:
        The loss's name (default: the formula).  With ``register=True`` the loss is added
        to the catalog under it (``lossgrad.get(name)`` then builds it).
    declare:
        Properties you claim (e.g. ``{"convex": True, "differentiability": 2}``): each is
        compared with lossgrad's measurement and a contradiction is a ValueError.
    check:
        Run :func:`lossgrad.verify` and raise ValueError listing the failed checks.
    target:
        Domain of ``y`` for a loss of (y, f): "real", "positive", "unit" ([0, 1]) or
        "binary" ({0, 1}); ``y_true`` outside it is a ValueError, and verification samples
        inside it.  Losses of r and z take any real target (z: labels in {-1, +1}).

    Raises
    ------
    ValueError
        The formula does not parse, uses an unknown function or a free symbol that is
        not a parameter, SymPy cannot differentiate it, a declared property is
        contradicted, or verification fails.
    """
    from .._props import Props
    from ._compile import compile_xp
    from ._derive import derive_symbolic
    from ._loss import make_class
    from ._parse import check_params, detect_variable

    _require_sympy()
    var = detect_variable(formula, variable)
    pvals = check_params(params, var)
    declare = dict(declare or {})
    unknown = [k for k in declare if k not in Props.__dataclass_fields__ or k in ("basis", "has_grad", "has_hess")]
    if unknown:
        raise ValueError(f"declare: unknown or fixed properties {unknown}; declarable: "
                         f"{[k for k in Props.__dataclass_fields__ if k not in ('basis', 'has_grad', 'has_hess')]}")
    from ._loss import _TARGETS

    if target not in _TARGETS:
        raise ValueError(f"target must be one of {', '.join(map(repr, _TARGETS))}, got {target!r}")
    if target != "real" and var != "yf":
        raise ValueError(f"target={target!r} applies to losses of y and f; this formula is in {var}")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    der = derive_symbolic(formula, var, pvals, simplify)
    fns = {"value": compile_xp(der.value, der.variables, der.params)}
    for op in ("grad", "hess"):
        raw_fn = compile_xp(getattr(der, "raw_" + op), der.variables, der.params)
        try:
            fn = compile_xp(getattr(der, op), der.variables, der.params)
        except ValueError:
            fn = None
        if fn is None or not _same_function(fn, raw_fn, der, pvals):
            # simplification is cosmetic and must not change a number: SymPy may rewrite
            # sqrt(|r|) sign(r) as r / |sqrt(r)|, equal for complex r, NaN in floats for r < 0
            fn = raw_fn
            der = dataclasses.replace(der, **{op: getattr(der, "raw_" + op)})
        fns[op] = fn
    label = name if name is not None else formula.strip()
    cls = make_class(der, fns, pvals, label, declare, target)
    loss = cls(**pvals)
    if check or declare:
        _ = loss.props  # measure now: a contradicted declaration fails here, not later
    if check:
        from ..verification import verify

        report = verify(loss)
        if not report:
            lines = "; ".join(f"{c.name} (declared {c.declared!r}, measured {c.measured!r}{', ' + c.where if c.where else ''})"
                              for c in report.failures[:5])
            raise ValueError(f"the custom loss {formula!r} failed verification: {lines}")
    if register:
        from .._registry import register as _register

        _register(label, "custom")(cls)
    return loss


def _same_function(a: Any, b: Any, der: Any, params: dict[str, float]) -> bool:
    """Whether two compilations of one derivative agree (NaN included) on a probe grid."""
    t = np.linspace(-7.3, 7.1, 73)
    args = (np.full_like(t, 0.7), t) if der.variable == "yf" else (t,)
    pv = [params[p.name] for p in der.params]
    with np.errstate(all="ignore"):
        x = np.asarray(a(np, *args, *pv), dtype=float)
        y = np.asarray(b(np, *args, *pv), dtype=float)
    return bool(np.allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True))


def unregister(name: str) -> None:
    """Remove a custom loss from the catalog (built-in losses cannot be removed)."""
    from .._registry import _REGISTRY, entry
    from ._loss import CustomLoss as _Custom

    e = entry(name)
    if not issubclass(e.cls, _Custom):
        raise ValueError(f"{name!r} is a built-in loss; only custom losses can be unregistered")
    del _REGISTRY[name]


def __getattr__(attr: str) -> Any:
    if attr == "CustomLoss":
        from ._loss import CustomLoss

        return CustomLoss
    if attr == "Derivation":
        from ._derive import Derivation

        return Derivation
    raise AttributeError(f"module 'lossgrad.custom' has no attribute {attr!r}")


def formula_of(formula: str, params: dict[str, float] | None = None, *, variable: str | None = None) -> Formula:
    """LaTeX of value, grad and hess of ``formula`` (no compilation, no checks)."""
    return derive(formula, params, variable=variable).formula()
