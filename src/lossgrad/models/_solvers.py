"""Solvers for :class:`LinearObjective`: Newton (exact Hessian), L-BFGS, proximal gradient, first-order.

* ``newton``: pointwise losses solve H d = -g with the exact Hessian and backtrack
  (Armijo); row losses use SciPy's trust-region Newton-CG with the exact Hessian-vector
  product.  Quadratic convergence for smooth, strictly convex objectives.
* ``lbfgs``: SciPy L-BFGS-B on the smooth objective.
* ``proximal``: FISTA (Beck & Teboulle 2009) with backtracking; handles the L1 term
  exactly by soft-thresholding.  The only solver for l1_ratio > 0.
* any optimizer of :mod:`lossgrad.optim` (``sgd``, ``adam``, ...): full-batch first-order
  steps with ``learning_rate`` for ``max_iter`` iterations.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, optimize

from .._validation import LossgradWarning

__all__ = ["solve", "SOLVERS", "FitWarning"]

SOLVERS = ("newton", "lbfgs", "proximal")


class FitWarning(LossgradWarning):
    """A solver stopped before its tolerance, or was used outside its guarantees."""


def solve(obj, solver: str, theta0: np.ndarray, *, tol: float, max_iter: int, learning_rate: float) -> tuple[np.ndarray, int, bool, list[float]]:
    """Minimise ``obj`` from ``theta0``; returns (theta, iterations, converged, objective per iteration)."""
    history: list[float] = []
    recorder = _Recorder(obj, history)
    if solver == "newton":
        out = _newton(recorder, theta0, tol, max_iter)
    elif solver == "lbfgs":
        out = _lbfgs(recorder, theta0, tol, max_iter)
    elif solver == "proximal":
        out = _fista(recorder, theta0, tol, max_iter)
    else:
        out = _first_order(recorder, solver, theta0, tol, max_iter, learning_rate)
    if not history:
        history.append(obj.value(out[0]))
    return (*out, history)


class _Recorder:
    """Wraps the objective and records J at every iterate the solver accepts (``accept``)."""

    def __init__(self, obj, history: list[float]):
        self._obj, self.history = obj, history

    def __getattr__(self, name: str):
        return getattr(self._obj, name)

    def accept(self, theta: np.ndarray, smooth_value: float | None = None) -> None:
        """Record J(theta); pass the smooth part's value when the solver already has it."""
        if smooth_value is None:
            self.history.append(self._obj.value(theta))
        else:
            self.history.append(smooth_value + self._obj.l1_value(theta))


def _newton(obj, theta: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, int, bool]:
    if obj.n_outputs is not None:
        obj.accept(theta)
        res = optimize.minimize(
            obj.smooth_value_grad, theta, jac=True, hessp=obj.hessp, method="trust-ncg",
            options={"gtol": tol, "maxiter": max_iter}, callback=obj.accept,
        )
        # status 2: the quadratic model no longer predicts a decrease (rounding), as for a
        # failed line search below (SoftmaxClassifier on 2 x 10^5 rows stopped so at
        # max |g| = 9.5e-10 against tol = 1e-10, and warned)
        converged = res.success or (res.status == 2 and _stalled_at_rounding(res.jac, tol))
        return res.x, int(res.nit), bool(converged)
    # Two passes over X per iteration: the fused (gradient, Hessian) pass and the scores
    # of the direction, X d; the line search then moves along F + t X d without touching
    # X, and the loss terms (value, grad, hess) it computes at the accepted point serve
    # the next iteration: one fused loss evaluation per iteration.
    F = obj.scores(theta)
    terms = obj.loss_terms(F)
    rows = _hessian_rows(*obj.X.shape)
    for it in range(1, max_iter + 1):
        value, grad, H = obj.newton_system(theta, hessian_rows=rows, terms=terms)
        if it == 1:
            obj.accept(theta, value)
        if np.max(np.abs(grad)) <= tol:
            return theta, it - 1, True
        # The minimum-norm Newton step solves H d = -g on the range of H.  Where H is
        # singular (Huber's linear pieces, more features than samples) the part of g in
        # its null space, g + H d, is a direction of linear decrease: step along it too,
        # or Newton stalls with a nonzero gradient.
        step = -linalg.lstsq(H, grad, lapack_driver="gelsd")[0]
        null_part = grad + H @ step
        if np.linalg.norm(null_part) > 1e-8 * np.linalg.norm(grad):
            step = step - null_part
        slope = float(grad @ step)
        if not slope < 0:  # not a descent direction (non-convex region): fall back to the gradient
            step, slope = -grad, -float(grad @ grad)
        dF = obj.scores(step)  # scores are linear in theta
        t = 1.0
        while True:
            F_t = F + dF if t == 1.0 else F + t * dF
            terms = obj.loss_terms(F_t)
            trial = obj.smooth_value_of_terms(theta + t * step, terms)
            if trial <= value + 1e-4 * t * slope:
                break
            t *= 0.5
            if t < 1e-12:
                return theta, it, _stalled_at_rounding(grad, tol)
        theta, F = theta + t * step, F_t
        obj.accept(theta, trial)
    return theta, max_iter, bool(np.max(np.abs(obj.smooth_value_grad(theta)[1])) <= tol)


def _stalled_at_rounding(grad: np.ndarray, tol: float) -> bool:
    """Whether a Newton method that can make no more progress (line search or trust
    region exhausted by rounding) stopped close enough to count as converged: the
    gradient within 10 tol."""
    return bool(np.max(np.abs(grad)) <= 10 * tol)


def _hessian_rows(n: int, p: int) -> np.ndarray | None:
    """Rows for the Gram block of the Hessian when n is large: a fixed uniform sample of
    max(10^5, 50 p^2) rows once n is four times that, else None (the exact Hessian).

    The step then solves a Hessian whose Gram block has relative error ~ sqrt(p / m);
    the gradient and the stopping test stay exact, so the minimiser is the same and the
    convergence is linear with that rate instead of quadratic (a few more iterations,
    each p times cheaper)."""
    m = max(100_000, 50 * p * p)
    if n < 4 * m:
        return None
    return np.sort(np.random.default_rng(0).choice(n, size=m, replace=False))


def _lbfgs(obj, theta: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, int, bool]:
    obj.accept(theta)
    res = optimize.minimize(
        obj.smooth_value_grad, theta, jac=True, method="L-BFGS-B", callback=obj.accept,
        options={"gtol": tol, "ftol": 64 * np.finfo(float).eps, "maxiter": max_iter, "maxcor": 30},
    )
    return res.x, int(res.nit), bool(res.success)


def _fista(obj, theta: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, int, bool]:
    """Accelerated proximal gradient with backtracking on the smooth part."""
    L = obj.lipschitz_bound() or 1.0
    x, y, t = theta.copy(), theta.copy(), 1.0
    for it in range(1, max_iter + 1):
        fy, gy = obj.smooth_value_grad(y)
        while True:
            x_new = obj.prox_l1(y - gy / L, 1.0 / L)
            d = x_new - y
            if obj.smooth_value_grad(x_new)[0] <= fy + gy @ d + 0.5 * L * (d @ d) + 1e-15 * abs(fy):
                break
            L *= 2.0
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        y = x_new + ((t - 1.0) / t_new) * (x_new - x)
        if np.max(np.abs(x_new - x)) <= tol * max(1.0, np.max(np.abs(x_new))):
            return x_new, it, True
        if obj.value(x_new) > obj.value(x):  # restart momentum when the objective goes up
            y, t_new = x_new.copy(), 1.0
        x, t = x_new, t_new
        obj.accept(x)
    return x, max_iter, False


def _first_order(obj, solver: str, theta: np.ndarray, tol: float, max_iter: int, learning_rate: float):
    from .. import optim

    factory = optim.OPTIMIZERS.get(solver)
    if factory is None:
        raise ValueError(f"solver must be one of {SOLVERS} or an optimizer of lossgrad.optim (sgd, adam, ...); got {solver!r}")
    opt = factory(learning_rate=learning_rate)
    state = opt.init(theta)
    for it in range(1, max_iter + 1):
        _, g = obj.smooth_value_grad(theta)
        if obj.l1 > 0:
            raise ValueError(f"solver={solver!r} cannot handle the L1 term; use solver='proximal'")
        if np.max(np.abs(g)) <= tol:
            return theta, it - 1, True
        updates, state = opt.update(g, state, theta)
        theta = optim.apply_updates(theta, updates)
        obj.accept(theta)
    return theta, max_iter, False


