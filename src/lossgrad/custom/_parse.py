"""Parsing a loss written as text into a SymPy expression, with clear errors.

The text is checked with Python's own parser before SymPy sees it: every name must be
the loss's variable (``r``, ``z``, or ``y`` and ``f``), a declared parameter, a constant
(``pi``, ``E``) or a function of the whitelist below; anything else is a ValueError
that names it.  ``^`` is read as a power.
"""

from __future__ import annotations

import ast
import keyword
import math
import numbers
from typing import Any

__all__ = ["VARIABLES", "FUNCTIONS", "parse_loss", "symbols_for"]

#: The variable names a formula may be written in, and the basis each selects.
VARIABLES = {"r": ("r",), "z": ("z",), "yf": ("y", "f")}

#: Names usable as functions in a formula (aliases map to SymPy names).
FUNCTIONS = {
    "exp": "exp", "log": "log", "log1p": None, "expm1": None, "sqrt": "sqrt", "abs": "Abs", "Abs": "Abs",
    "sign": "sign", "sin": "sin", "cos": "cos", "tan": "tan", "sinh": "sinh", "cosh": "cosh",
    "tanh": "tanh", "asinh": "asinh", "acosh": "acosh", "atanh": "atanh", "atan": "atan",
    "asin": "asin", "acos": "acos", "sech": "sech", "erf": "erf", "erfc": "erfc", "max": "Max",
    "Max": "Max", "min": "Min", "Min": "Min", "Piecewise": "Piecewise", "Heaviside": "Heaviside",
    "where": None, "sigmoid": None, "softplus": None, "clip": None, "relu": None, "hypot": None,
}

_CONSTANTS = {"pi", "E"}


def stable_functions() -> tuple[type, type]:
    """SymPy functions ``softplus`` and ``sigmoid`` with their derivatives, compiled to
    the stable :mod:`lossgrad._xp` helpers (log(1 + exp(x)) written by hand overflows)."""
    global _STABLE
    if _STABLE is None:
        import sympy as sp

        class sigmoid(sp.Function):  # noqa: N801 - the name printed in formulas
            """1 / (1 + exp(-x))."""

            def fdiff(self, argindex: int = 1) -> Any:
                x = self.args[0]
                return sigmoid(x) * sigmoid(-x)

            @classmethod
            def eval(cls, x: Any) -> Any:
                if x.is_zero:
                    return sp.S.Half
                return None

            def _latex(self, printer: Any) -> str:
                return r"\sigma\left(" + printer._print(self.args[0]) + r"\right)"

        class softplus(sp.Function):  # noqa: N801
            """log(1 + exp(x))."""

            def fdiff(self, argindex: int = 1) -> Any:
                return sigmoid(self.args[0])

            @classmethod
            def eval(cls, x: Any) -> Any:
                if x.is_zero:
                    return sp.log(2)
                return None

            def _latex(self, printer: Any) -> str:
                return r"\operatorname{softplus}\left(" + printer._print(self.args[0]) + r"\right)"

        _STABLE = (softplus, sigmoid)
    return _STABLE


_STABLE: tuple[type, type] | None = None


def stabilize(expr: Any) -> Any:
    """log(1 + exp(u)) -> softplus(u) and 1/(1 + exp(-u)) -> sigmoid(u), so that the
    compiled code neither overflows nor loses precision for large |u|."""
    import sympy as sp

    softplus, sigmoid = stable_functions()
    u = sp.Wild("u")

    def is_log1pexp(e: Any) -> bool:
        return isinstance(e, sp.log) and e.args[0].match(1 + sp.exp(u)) is not None

    def to_softplus(e: Any) -> Any:
        return softplus(e.args[0].match(1 + sp.exp(u))[u])

    expr = expr.replace(is_log1pexp, to_softplus)

    def is_sigmoid(e: Any) -> bool:
        return isinstance(e, sp.Pow) and e.exp == -1 and e.base.match(1 + sp.exp(u)) is not None

    return expr.replace(is_sigmoid, lambda e: sigmoid(-e.base.match(1 + sp.exp(u))[u]))


def symbols_for(variable: str, params: dict[str, float]) -> tuple[dict[str, Any], tuple[Any, ...], tuple[Any, ...]]:
    """(name -> SymPy symbol, variable symbols, parameter symbols).

    Variables are real; a parameter is declared positive when its value is > 0 (so
    that sqrt(delta^2) simplifies to delta), real otherwise.
    """
    import sympy as sp

    names: dict[str, Any] = {}
    var_syms = tuple(sp.Symbol(v, real=True) for v in VARIABLES[variable])
    for s in var_syms:
        names[s.name] = s
    par_syms = []
    for p, v in params.items():
        s = sp.Symbol(p, positive=True) if v > 0 else sp.Symbol(p, real=True)
        names[p] = s
        par_syms.append(s)
    return names, var_syms, tuple(par_syms)


def check_params(params: Any, variable: str) -> dict[str, float]:
    """``params`` as {identifier: finite float}; TypeError/ValueError naming the culprit."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of name -> number, got {type(params).__name__}")
    out: dict[str, float] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"params: {name!r} is not a valid parameter name (use a Python identifier)")
        if name in VARIABLES[variable] or name in FUNCTIONS or name in _CONSTANTS or name.startswith("_"):
            raise ValueError(f"params: {name!r} is reserved (a variable, function or constant name)")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise ValueError(f"params: {name} must be a finite real number, got {value!r}")
        out[name] = float(value)
    return out


def detect_variable(text: str, variable: str | None) -> str:
    """The variable set of the formula: given, or guessed from the names it uses."""
    if variable is not None:
        key = "yf" if variable in ("yf", "y,f", "(y, f)", "y f") else variable
        if key not in VARIABLES:
            raise ValueError(f"variable must be 'r' (residual f - y), 'z' (margin y f) or 'yf' (target y and "
                             f"prediction f), got {variable!r}")
        return key
    used = _names(_syntax(text))[0]
    found = [k for k, vs in VARIABLES.items() if any(v in used for v in vs)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ValueError(f"the formula {text!r} uses none of the variables r (residual), z (margin), y and f; "
                         "write it in one of them")
    raise ValueError(f"the formula {text!r} mixes the variables of {' and '.join(found)}; use one set "
                     "(r alone, z alone, or y and f), or pass variable=")


def _syntax(text: str) -> ast.Expression:
    if not isinstance(text, str):
        raise TypeError(f"formula must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError("formula is empty; write the loss as an expression, e.g. 'log(cosh(r))'")
    try:
        return ast.parse(text.replace("^", "**").strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"could not parse the formula {text!r}: {exc.msg} at column {exc.offset}") from None


def _names(tree: ast.Expression) -> tuple[set[str], set[str]]:
    """(names used as values, names called as functions)."""
    values: set[str] = set()
    calls: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise ValueError("only plain function calls like exp(r) are allowed in a formula")
            calls.add(node.func.id)
            if node.keywords:
                raise ValueError(f"{node.func.id}(): keyword arguments are not allowed in a formula")
        elif isinstance(node, ast.Name) and not isinstance(getattr(node, "ctx", None), ast.Store):
            values.add(node.id)
        elif isinstance(node, (ast.Attribute, ast.Subscript, ast.Lambda, ast.ListComp, ast.Dict, ast.Set,
                               ast.NamedExpr, ast.Starred, ast.JoinedStr)):
            raise ValueError(f"a formula is an arithmetic expression; {type(node).__name__} is not allowed")
        elif isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, bool)):
            raise ValueError(f"a formula may contain numbers only, got the constant {node.value!r}")
    return values - calls, calls


def parse_loss(text: str, variable: str, params: dict[str, float]) -> tuple[Any, tuple[Any, ...], tuple[Any, ...]]:
    """(expression, variable symbols, parameter symbols) of the formula ``text``."""
    import sympy as sp
    from sympy.parsing.sympy_parser import parse_expr, standard_transformations

    tree = _syntax(text)
    values, calls = _names(tree)
    names, var_syms, par_syms = symbols_for(variable, params)
    unknown_calls = sorted(c for c in calls if c not in FUNCTIONS)
    if unknown_calls:
        raise ValueError(f"unknown function(s) {', '.join(unknown_calls)} in {text!r}; allowed: "
                         f"{', '.join(sorted(FUNCTIONS))}")
    free = sorted(v for v in values if v not in names and v not in _CONSTANTS and v not in ("True", "False"))
    if free:
        allowed = ", ".join(VARIABLES[variable])
        raise ValueError(f"free symbol(s) {', '.join(free)} in {text!r} are not parameters; the variable is "
                         f"{allowed} and the parameters are {', '.join(params) or 'none'} "
                         f"(declare them with params={{{free[0]!r}: value}})")
    local = dict(names)
    local.update({k: getattr(sp, v) for k, v in FUNCTIONS.items() if v is not None})
    local.update({
        "log1p": lambda x: sp.log(1 + x),
        "expm1": lambda x: sp.exp(x) - 1,
        "where": lambda c, a, b: sp.Piecewise((a, c), (b, True)),
        "sigmoid": stable_functions()[1],
        "softplus": stable_functions()[0],
        "clip": lambda x, lo, hi: sp.Min(sp.Max(x, lo), hi),
        "relu": lambda x: sp.Max(x, 0),
        "hypot": lambda a, b: sp.sqrt(a**2 + b**2),
        "pi": sp.pi,
        "E": sp.E,
    })
    try:
        expr = parse_expr(text.replace("^", "**"), local_dict=local, global_dict={"Integer": sp.Integer,
                          "Float": sp.Float, "Rational": sp.Rational, "Symbol": sp.Symbol, "Function": sp.Function},
                          transformations=standard_transformations, evaluate=True)
    except (TypeError, ValueError, SyntaxError, AttributeError) as exc:
        raise ValueError(f"could not build the formula {text!r}: {exc}") from None
    if isinstance(expr, sp.logic.boolalg.Boolean) or not isinstance(expr, sp.Expr):
        raise ValueError(f"the formula {text!r} is not a numeric expression (a comparison belongs inside where(...))")
    if expr.has(sp.I) or expr.has(sp.zoo) or expr.has(sp.nan) or expr.has(sp.oo):
        raise ValueError(f"the formula {text!r} is complex or infinite as written ({expr})")
    # decimals as exact rationals: |r|**1.5 must differentiate to 3/2 sign(r) |r|**(1/2),
    # not to a float power that simplification moves inside Abs (NaN for r < 0)
    expr = expr.xreplace({c: sp.nsimplify(c, rational=True) for c in expr.atoms(sp.Float)})
    return stabilize(expr), var_syms, par_syms
