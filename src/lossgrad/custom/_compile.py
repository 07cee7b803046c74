"""Compiling SymPy expressions to the array-API path and to Numba ufuncs.

The array-API path is :func:`sympy.lambdify` with a printer that writes every function
as a call on the array namespace ``xp`` of the inputs (``xp.exp``, ``xp.where``...), so
one compiled function serves NumPy, PyTorch and JAX arrays.  Numeric constants are
written as Python floats (weak scalars: float32 stays float32); parameters arrive as
0-d arrays of the input's dtype and device.  Piecewise definitions become nested
``where``; ``Max``/``Min``, ``sign`` and ``Heaviside`` get helpers that keep the dtype.

The Numba path lambdifies to the ``math`` module (scalar code, Piecewise as
conditional expressions) and vectorizes it; it is compiled on first use only.
"""

from __future__ import annotations

from typing import Any, Callable

import array_api_compat

from .. import _xp

__all__ = ["compile_xp", "compile_numba"]

# Array-namespace function names of the SymPy functions lambdify may meet.
_XP_NAMES = {
    "exp": "exp", "log": "log", "sqrt": "sqrt", "sin": "sin", "cos": "cos", "tan": "tan",
    "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "asinh": "asinh", "acosh": "acosh",
    "atanh": "atanh", "atan": "atan", "asin": "asin", "acos": "acos", "Abs": "abs",
    "sign": "sign",
}


def _printer_class() -> type:
    from sympy.printing.pycode import PythonCodePrinter

    class XPPrinter(PythonCodePrinter):
        """Prints an expression as array-namespace code on ``xp``."""

        printmethod = "_lossgrad_xp"

        def _print_Function(self, expr: Any) -> str:
            name = type(expr).__name__
            if name in _XP_NAMES:
                args = ", ".join(self._print(a) for a in expr.args)
                return f"xp.{_XP_NAMES[name]}({args})"
            if name in ("erf", "erfc"):
                return f"_{name}(xp, {self._print(expr.args[0])})"
            if name in ("softplus", "sigmoid"):
                return f"_{name}(xp, {self._print(expr.args[0])})"
            if name == "sech":
                return f"(1/xp.cosh({self._print(expr.args[0])}))"
            if name == "Heaviside":
                h0 = expr.args[1] if len(expr.args) > 1 else 0.5
                return f"_heaviside(xp, {self._print(expr.args[0])}, {float(h0)!r})"
            raise ValueError(f"lossgrad.custom cannot compile the function {name} for arrays")

        def _print(self, expr: Any, **kwargs: Any) -> str:  # constants as floats
            import sympy as sp

            if isinstance(expr, sp.Expr) and expr.is_number and not expr.is_Rational:
                value = complex(expr.evalf(20))
                if value.imag != 0:
                    raise ValueError(f"the constant {expr} is complex")
                return repr(float(value.real))
            return super()._print(expr, **kwargs)

        def _print_Rational(self, expr: Any) -> str:
            return repr(float(expr)) if expr.q != 1 else str(expr.p)

        _print_Half = _print_Rational

        def _print_xp_function(self, expr: Any) -> str:
            return self._print_Function(expr)

        def _print_Pow(self, expr: Any, rational: bool = False) -> str:
            import sympy as sp

            base, e = expr.args
            if e == sp.S.Half:
                return f"xp.sqrt({self._print(base)})"
            if e == -sp.S.Half:
                return f"(1/xp.sqrt({self._print(base)}))"
            if e.is_Integer and int(e) < 0:
                return f"(1/{self.parenthesize(base, 200)}**{-int(e)})"
            return f"{self.parenthesize(base, 200)}**{self.parenthesize(e, 200)}"

        def _print_Max(self, expr: Any) -> str:
            return self._fold("_max", expr.args)

        def _print_Min(self, expr: Any) -> str:
            return self._fold("_min", expr.args)

        def _fold(self, fn: str, args: Any) -> str:
            out = self._print(args[0])
            for a in args[1:]:
                out = f"{fn}(xp, like, {out}, {self._print(a)})"
            return out

        def _print_Piecewise(self, expr: Any) -> str:
            import sympy as sp

            out = "_nan(xp, like)"
            for value, cond in reversed(expr.args):
                if cond == sp.true:
                    out = self._print(value)
                else:
                    out = f"_where(xp, like, {self._print(cond)}, {self._print(value)}, {out})"
            return out

        def _print_And(self, expr: Any) -> str:
            return self._fold_logic("xp.logical_and", expr.args)

        def _print_Or(self, expr: Any) -> str:
            return self._fold_logic("xp.logical_or", expr.args)

        def _print_Not(self, expr: Any) -> str:
            return f"xp.logical_not({self._print(expr.args[0])})"

        def _fold_logic(self, fn: str, args: Any) -> str:
            out = self._print(args[0])
            for a in args[1:]:
                out = f"{fn}({out}, {self._print(a)})"
            return out

        def _print_Relational(self, expr: Any) -> str:
            op = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[expr.rel_op]
            return f"({self._print(expr.lhs)} {op} {self._print(expr.rhs)})"

        def _print_Pi(self, expr: Any) -> str:
            return repr(3.141592653589793)

        def _print_Exp1(self, expr: Any) -> str:
            return repr(2.718281828459045)

        def _print_BooleanTrue(self, expr: Any) -> str:
            return "True"

        def _print_BooleanFalse(self, expr: Any) -> str:
            return "False"

    # PythonCodePrinter prints the functions it knows (log, cosh, Abs, sign...) through
    # math-module methods of their own; route every one of them to the xp printer.
    for fname in (*_XP_NAMES, "erf", "erfc", "sech", "Heaviside", "softplus", "sigmoid"):
        setattr(XPPrinter, f"_print_{fname}", XPPrinter._print_xp_function)
    return XPPrinter


def _arr(xp: Any, like: Any, a: Any) -> Any:
    if isinstance(a, (bool, int, float)):
        return xp.full_like(like, float(a))
    return a


def _where(xp: Any, like: Any, cond: Any, a: Any, b: Any) -> Any:
    if isinstance(cond, bool):
        return a if cond else b
    return xp.where(cond, _arr(xp, like, a), _arr(xp, like, b))


def _max(xp: Any, like: Any, a: Any, b: Any) -> Any:
    return xp.maximum(_arr(xp, like, a), _arr(xp, like, b))


def _min(xp: Any, like: Any, a: Any, b: Any) -> Any:
    return xp.minimum(_arr(xp, like, a), _arr(xp, like, b))


def _nan(xp: Any, like: Any) -> Any:
    return xp.full_like(like, float("nan"))


def _heaviside(xp: Any, x: Any, h0: float) -> Any:
    one, zero = xp.ones_like(x), xp.zeros_like(x)
    return xp.where(x > 0, one, xp.where(x < 0, zero, h0 * one))


def _erf(xp: Any, x: Any) -> Any:
    return _xp.erf(xp, x)


def _erfc(xp: Any, x: Any) -> Any:
    return _xp._special(xp, "erfc", x)


def _softplus(xp: Any, x: Any) -> Any:
    return _xp.softplus(xp, x)


def _sigmoid(xp: Any, x: Any) -> Any:
    return _xp.sigmoid(xp, x)


_RUNTIME = {"_softplus": _softplus, "_sigmoid": _sigmoid, "_where": _where, "_max": _max, "_min": _min, "_nan": _nan, "_heaviside": _heaviside,
            "_erf": _erf, "_erfc": _erfc}


def compile_xp(expr: Any, variables: tuple[Any, ...], params: tuple[Any, ...]) -> Callable[..., Any]:
    """``fn(xp, *variables, *params)`` evaluating ``expr`` on arrays of namespace ``xp``.

    The result always has the shape and dtype of the last variable (the prediction).
    """
    import sympy as sp

    xp_sym, like_sym = sp.Symbol("xp"), sp.Symbol("like")
    printer = _printer_class()({"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True,
                                "user_functions": {}})
    fn = sp.lambdify((xp_sym, like_sym, *variables, *params), expr, modules=[_RUNTIME], printer=printer,
                     docstring_limit=0)

    def evaluate(xp: Any, *args: Any) -> Any:
        like = args[len(variables) - 1]
        out = fn(xp, like, *args)
        if isinstance(out, (bool, int, float)):
            return xp.full_like(like, float(out))
        if tuple(out.shape) != tuple(like.shape):
            out = xp.broadcast_to(out, like.shape)
        if out.dtype != like.dtype:
            out = xp.astype(out, like.dtype)
        return out

    evaluate.source = _source(fn)  # type: ignore[attr-defined]
    return evaluate


def _source(fn: Any) -> str:
    import inspect

    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):  # pragma: no cover
        return ""


def compile_numba(expr: Any, variables: tuple[Any, ...], params: tuple[Any, ...]) -> Callable[..., Any]:
    """A Numba ufunc ``(*variables, *params) -> float`` of ``expr`` (float32 and float64)."""
    import numba
    import sympy as sp

    scalar = sp.lambdify((*variables, *params), expr, modules="math", docstring_limit=0)
    n = len(variables) + len(params)
    # float32 first: NumPy picks the first loop the inputs cast to safely
    sigs = [f"float32({', '.join(['float32'] * n)})", f"float64({', '.join(['float64'] * n)})"]
    return numba.vectorize(sigs, nopython=True, cache=False)(scalar)


def namespace(*arrays: Any) -> Any:
    return array_api_compat.array_namespace(*arrays)
