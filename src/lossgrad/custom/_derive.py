r"""Symbolic derivation of a custom loss: grad and hess, simplified, with kink candidates.

The derivative is taken with respect to the loss's natural variable (r, z, or f for
losses of y and f).  Dirac deltas that SymPy produces by differentiating ``sign`` or
``Heaviside`` are removed (they live on a set of measure zero; the point is recorded as
a kink candidate instead).  A kink candidate is an expression whose zeros may be kinks:
the argument of ``Abs``, ``sign``, ``Heaviside`` and ``DiracDelta``, the difference of
the arguments of ``Max``/``Min``, and ``lhs - rhs`` of every condition of a
``Piecewise``.  Which of them are kinks, and of which order, is decided numerically
(:mod:`._loss`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from .._props import Formula
from ._parse import parse_loss

__all__ = ["Derivation", "derive_symbolic", "kink_points"]

_VARIABLE_TEXT = {"r": "r = f - y", "z": "z = y f", "yf": "f \\text{ (prediction)},\\ y \\text{ (target)}"}

#: Expressions with more operations than this are not passed to ``sympy.simplify`` (slow).
SIMPLIFY_MAX_OPS = 120


@dataclass(frozen=True)
class Derivation:
    """A formula, its first two derivatives and its kink candidates, all symbolic."""

    text: str
    variable: str  #: "r", "z" or "yf"
    value: Any
    grad: Any
    hess: Any
    variables: tuple[Any, ...]  #: the symbols the compiled functions take first: (r,), (z,) or (y, f)
    params: tuple[Any, ...]  #: parameter symbols, in declaration order
    candidates: tuple[Any, ...]
    raw_grad: Any = None  #: before simplification (a fallback for compilation)
    raw_hess: Any = None

    @property
    def wrt(self) -> Any:
        """The symbol derivatives are taken with respect to."""
        return self.variables[-1]

    def formula(self) -> Formula:
        import sympy as sp

        return Formula(sp.latex(self.value), sp.latex(self.grad), sp.latex(self.hess), _VARIABLE_TEXT[self.variable])

    def as_text(self) -> dict[str, str]:
        return {"value": str(self.value), "grad": str(self.grad), "hess": str(self.hess)}


def _drop_deltas(expr: Any, out: list[Any]) -> Any:
    import sympy as sp

    for d in expr.atoms(sp.DiracDelta):
        out.append(d.args[0])
    return expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)


def _candidates(expr: Any, out: list[Any]) -> None:
    import sympy as sp

    for a in expr.atoms(sp.Abs, sp.sign, sp.Heaviside):
        out.append(a.args[0])
    for m in expr.atoms(sp.Max, sp.Min):
        args = m.args
        for i in range(len(args)):
            for j in range(i + 1, len(args)):
                out.append(args[i] - args[j])
    for pw in expr.atoms(sp.Piecewise):
        for _, cond in pw.args:
            for rel in cond.atoms(sp.core.relational.Relational):
                out.append(rel.lhs - rel.rhs)


def _simplify(expr: Any) -> Any:
    import sympy as sp

    expr = sp.piecewise_fold(expr)
    if sp.count_ops(expr) > SIMPLIFY_MAX_OPS:
        return expr
    try:
        simple = sp.simplify(expr)
    except Exception:  # noqa: BLE001 - simplification is cosmetic; keep the derivative as it is
        return expr
    return simple if sp.count_ops(simple) <= sp.count_ops(expr) else expr


def _check_differentiated(expr: Any, what: str, text: str) -> None:
    import sympy as sp

    if expr.has(sp.Derivative) or expr.has(sp.Subs):
        raise ValueError(f"SymPy could not differentiate {text!r} in closed form ({what} = {expr}); "
                         "write the loss with elementary functions")


@functools.lru_cache(maxsize=256)
def _derive_cached(text: str, variable: str, params: tuple[tuple[str, bool], ...], simplify: bool) -> Derivation:
    import sympy as sp

    values = {name: (1.0 if positive else -1.0) for name, positive in params}
    expr, var_syms, par_syms = parse_loss(text, variable, values)
    t = var_syms[-1]
    cands: list[Any] = []
    raw_grad = _drop_deltas(sp.diff(expr, t), cands)
    _check_differentiated(raw_grad, "grad", text)
    raw_hess = _drop_deltas(sp.diff(raw_grad, t), cands)
    _check_differentiated(raw_hess, "hess", text)
    for e in (expr, raw_grad, raw_hess):
        _candidates(e, cands)
    grad = _simplify(raw_grad) if simplify else raw_grad
    hess = _simplify(raw_hess) if simplify else raw_hess
    for e in (grad, hess):
        _candidates(e, cands)
    unique = tuple(dict.fromkeys(sp.simplify(c) if sp.count_ops(c) < 30 else c for c in cands))
    return Derivation(text=text, variable=variable, value=expr, grad=grad, hess=hess, variables=var_syms,
                      params=par_syms, candidates=unique, raw_grad=raw_grad, raw_hess=raw_hess)


def derive_symbolic(text: str, variable: str, params: dict[str, float], simplify: bool = True) -> Derivation:
    """The :class:`Derivation` of ``text`` (cached on the formula and the parameter signs)."""
    key = tuple((name, value > 0) for name, value in params.items())
    return _derive_cached(text.strip(), variable, key, bool(simplify))


def kink_points(der: Derivation, params: dict[str, float]) -> tuple[float, ...]:
    """Real zeros of the kink candidates at the given parameter values (sorted, unique).

    Raises ValueError for a loss of (y, f) whose kinks move with y: kinks are declared
    as fixed points of the natural variable.
    """
    import sympy as sp

    subs = {s: sp.Float(params[s.name], 30) for s in der.params}
    t = der.wrt
    points: set[float] = set()
    for c in der.candidates:
        c = c.xreplace(subs)
        if not c.has(t):
            continue
        if der.variable == "yf" and c.has(der.variables[0]):
            raise ValueError(f"the formula {der.text!r} has a kink where {c} = 0, which moves with y; "
                             "write a loss with kinks in the residual r or the margin z instead")
        try:
            sol = sp.solveset(c, t, domain=sp.S.Reals)
        except Exception:  # noqa: BLE001 - an unsolvable candidate is not declared
            continue
        if isinstance(sol, sp.Union):
            parts = sol.args
        else:
            parts = (sol,)
        for part in parts:
            if isinstance(part, sp.FiniteSet):
                for p in part:
                    if p.is_real and p.is_number:
                        points.add(float(p))
    return tuple(sorted(points))
