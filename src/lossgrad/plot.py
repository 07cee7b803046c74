r"""Figures of losses: L, L', L'' with kinks marked, classification curves, robust weights,
loss landscapes of small models, contours of row losses and training curves.

Every function draws with matplotlib's object API (no global ``pyplot`` state besides
creating the figure), works under the non-interactive ``Agg`` backend, and returns the
:class:`matplotlib.figure.Figure` it drew on.  Curves carry a ``gid`` so that code (and
the tests) can find them: ``"curve"`` for a loss curve, ``"kink"`` for the marker of a
declared kink, ``"surface"`` for a contour set.

>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from lossgrad import plot
>>> fig = plot.curves(["huber", "squared_error"], what=("value", "grad"))
>>> [ax.get_ylabel() for ax in fig.axes]
['L', "L'"]
>>> [l.get_xdata().tolist() for l in fig.axes[0].lines if l.get_gid() == "kink"]  # huber's kinks
[[-1.0, 1.0]]

References: Li, Xu, Taylor, Studer and Goldstein (2018), "Visualizing the loss landscape
of neural nets", NeurIPS (filter normalisation of random directions).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._props import Basis, Shape

__all__ = ["curves", "classification", "robust_weights", "landscape", "row_contour", "training_curves",
           "resolve_loss", "natural_axis", "filter_normalized_direction"]

_WHAT = ("value", "grad", "hess")
_YLABEL = {"value": "L", "grad": "L'", "hess": "L''"}


# ----------------------------------------------------------------- helpers


def _figure(n_axes: int = 1, *, figsize: tuple[float, float] | None = None, ncols: int | None = None) -> Any:
    from matplotlib.figure import Figure

    ncols = n_axes if ncols is None else ncols
    nrows = math.ceil(n_axes / ncols)
    fig = Figure(figsize=figsize or (4.2 * ncols, 3.4 * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_axes)]
    return fig, axes


def resolve_loss(spec: Any, shape: Shape | None = Shape.POINTWISE) -> Any:
    """A loss object from a loss, a registered name, or a ``(name, params)`` pair."""
    from ._core import Loss
    from ._registry import get

    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], Mapping):
        loss = get(spec[0], **dict(spec[1]))
    elif isinstance(spec, str):
        loss = get(spec)
    elif isinstance(spec, Loss):
        loss = spec
    else:
        raise TypeError(f"losses: expected a lossgrad loss, a registered name or a (name, params) pair, "
                        f"got {type(spec).__name__}")
    if shape is not None and loss.shape != shape:
        raise ValueError(f"losses: {loss.name} is a {loss.shape.value} loss; this figure takes {shape.value} losses")
    return loss


def _losses(losses: Any, shape: Shape | None = Shape.POINTWISE) -> list[Any]:
    pair = isinstance(losses, tuple) and len(losses) == 2 and isinstance(losses[0], str) and isinstance(
        losses[1], Mapping)
    if pair or isinstance(losses, str) or not isinstance(losses, Sequence):
        losses = [losses]
    if len(losses) == 0:
        raise ValueError("losses: give at least one loss")
    return [resolve_loss(s, shape) for s in losses]


def _range(x_range: Any, name: str = "x_range") -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in x_range)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers (lo, hi), got {x_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must be finite with lo < hi, got ({lo}, {hi})")
    return lo, hi


def _what(what: Any) -> tuple[str, ...]:
    if isinstance(what, str):
        what = tuple(w.strip() for w in what.split(",") if w.strip())
    what = tuple(what)
    bad = [w for w in what if w not in _WHAT]
    if not what or bad:
        raise ValueError(f"what must name some of 'value', 'grad', 'hess', got {what!r}")
    return what


def natural_axis(loss: Any) -> tuple[str, float]:
    """(x-axis label, the y_true the curve is drawn at) of a pointwise loss.

    Distance losses are drawn against r = f - y at y = 0, margin losses against
    z = y f at y = +1, likelihood losses against the prediction f at y = 1.
    """
    basis = loss.props.basis
    if basis == Basis.DISTANCE:
        return "r = f - y", 0.0
    if basis == Basis.MARGIN:
        return "z = y f", 1.0
    return "f (prediction), y = 1", 1.0


def _default_range(losses: list[Any]) -> tuple[float, float]:
    span = 4.0
    for loss in losses:
        for k in loss.kinks:
            span = max(span, 1.25 * abs(k.at))
    if all(loss.props.basis in (Basis.LIKELIHOOD, Basis.OTHER) for loss in losses):
        y, f = losses[0]._example_inputs(np.random.default_rng(0), 400)
        lo, hi = np.quantile(f, [0.01, 0.99])
        return float(lo), float(hi)
    return -span, span


def _eval(loss: Any, op: str, y: float, x: np.ndarray) -> np.ndarray | None:
    """``op`` of ``loss`` along the x-axis, or None where the loss declares no such derivative."""
    props = loss.props
    if (op == "grad" and not props.has_grad) or (op == "hess" and not props.has_hess):
        return None
    yy = np.full_like(x, y)
    f = x if props.basis in (Basis.LIKELIHOOD, Basis.OTHER) else loss._from_natural(yy, x)
    with np.errstate(all="ignore"):
        return np.asarray(getattr(loss, op)(yy, f), dtype=np.float64)


def _label(loss: Any) -> str:
    from dataclasses import fields, is_dataclass

    if not is_dataclass(loss):
        return str(loss.name)
    ps = [f"{f.name}={getattr(loss, f.name):g}" for f in fields(loss)
          if f.init and isinstance(getattr(loss, f.name), numbers.Real) and not isinstance(getattr(loss, f.name), bool)]
    return f"{loss.name}({', '.join(ps)})" if ps else str(loss.name)


# ----------------------------------------------------------------- curves


def curves(losses: Any, *, x_range: Any = None, what: Any = ("value", "grad", "hess"), n: int = 801,
           mark_kinks: bool = True, title: str | None = None) -> Any:
    """L, L' and L'' of one or several pointwise losses, one panel per derivative.

    Parameters
    ----------
    losses:
        A loss, a registered name, a ``(name, params)`` pair, or a list of them.
    x_range:
        (lo, hi) of the natural variable (r, z, or f for likelihood losses); by
        default [-4, 4] widened to include every kink.
    what:
        Panels to draw, among "value", "grad", "hess" (or a comma-separated string).
    mark_kinks:
        Mark every declared kink inside the range with a dot on each curve (``gid="kink"``)
        at the one-sided value the loss returns there.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per panel, in the order of ``what``.
    """
    losses = _losses(losses)
    what = _what(what)
    lo, hi = _range(x_range) if x_range is not None else _default_range(losses)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 3:
        raise ValueError(f"n must be an integer >= 3, got {n!r}")
    fig, axes = _figure(len(what))
    x = np.linspace(lo, hi, int(n))
    colors = [f"C{i % 10}" for i in range(len(losses))]
    for ax, op in zip(axes, what):
        for loss, color in zip(losses, colors):
            xlabel, y0 = natural_axis(loss)
            vals = _eval(loss, op, y0, x)
            if vals is None:
                continue
            ax.plot(x, vals, color=color, label=_label(loss), gid="curve")
            if mark_kinks:
                ks = np.array([k.at for k in loss.kinks if lo <= k.at <= hi], dtype=np.float64)
                if ks.size:
                    kv = _eval(loss, op, y0, ks)
                    ax.plot(ks, kv, linestyle="none", marker="o", markersize=5, color=color,
                            markerfacecolor="white", gid="kink")
        ax.set_xlim(lo, hi)
        ax.axhline(0.0, color="0.8", linewidth=0.6, zorder=0)
        ax.set_xlabel(natural_axis(losses[0])[0])
        ax.set_ylabel(_YLABEL[op])
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def classification(losses: Any = ("logistic", "hinge", "squared_hinge", "exponential", "zero_one"), *,
                   against: str = "margin", x_range: Any = None, n: int = 801) -> Any:
    """Classification losses of a positive example against the margin z = y f or against
    the predicted probability p = sigmoid(f) of the true class.

    ``against="probability"`` draws L(+1, logit(p)) for p in (0, 1): the curve of the
    cross-entropy as the predicted probability drifts from the label.
    """
    losses = _losses(losses)
    for loss in losses:
        if loss.props.basis not in (Basis.MARGIN, Basis.LIKELIHOOD) or (
                loss.props.basis == Basis.LIKELIHOOD and loss.family != "binary"):
            raise ValueError(f"losses: {loss.name} is not a classification loss (a margin or binary loss)")
    if against not in ("margin", "probability"):
        raise ValueError(f"against must be 'margin' or 'probability', got {against!r}")
    fig, (ax,) = _figure(1, figsize=(5.5, 4.0))
    if against == "margin":
        lo, hi = _range(x_range) if x_range is not None else (-3.0, 3.0)
        x = np.linspace(lo, hi, n)
        f = x
        ax.set_xlabel("margin z = y f")
    else:
        lo, hi = _range(x_range) if x_range is not None else (0.005, 0.995)
        if lo <= 0 or hi >= 1:
            raise ValueError(f"x_range of probabilities must lie inside (0, 1), got ({lo}, {hi})")
        x = np.linspace(lo, hi, n)
        f = np.log(x) - np.log1p(-x)
        ax.set_xlabel("predicted probability of the true class")
    for i, loss in enumerate(losses):
        fx = f if getattr(loss, "from_logits", True) else 1.0 / (1.0 + np.exp(-f))
        with np.errstate(all="ignore"):
            v = np.asarray(loss.value(np.ones_like(fx), fx), dtype=np.float64)
        ax.plot(x, v, color=f"C{i % 10}", label=_label(loss), gid="curve")
    ax.set_xlim(lo, hi)
    ax.set_ylabel("L")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def robust_weights(losses: Any = ("huber", "cauchy", "tukey_biweight", "welsch"), *, x_range: Any = (-8.0, 8.0),
                   n: int = 801) -> Any:
    """IRLS weights w(r) = psi(r) / r of residual losses against the residual r."""
    from ._core import ResidualLoss

    losses = _losses(losses)
    for loss in losses:
        base = loss.loss if hasattr(loss, "k") and hasattr(loss, "loss") else loss
        if not isinstance(base, ResidualLoss):
            raise ValueError(f"losses: {loss.name} is not a residual loss; weights w(r) = psi(r)/r need one")
    lo, hi = _range(x_range)
    r = np.linspace(lo, hi, n)
    fig, (ax,) = _figure(1, figsize=(5.5, 4.0))
    for i, loss in enumerate(losses):
        w = np.asarray(loss.weight(np.zeros_like(r), r), dtype=np.float64)
        ax.plot(r, w, color=f"C{i % 10}", label=_label(loss), gid="curve")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("r")
    ax.set_ylabel("w(r) = psi(r) / r")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------- landscapes


def _as_params(params: Any) -> tuple[dict[str, np.ndarray], bool]:
    """(dict of float64 arrays, whether the input was a single array)."""
    if hasattr(params, "coef_"):  # a fitted linear estimator
        return {"coef": np.asarray(params.coef_, dtype=np.float64),
                "intercept": np.asarray(getattr(params, "intercept_", 0.0), dtype=np.float64)}, False
    if isinstance(params, Mapping):
        if not params:
            raise ValueError("params must not be empty")
        return {str(k): np.asarray(v, dtype=np.float64) for k, v in params.items()}, False
    arr = np.asarray(params, dtype=np.float64)
    if arr.ndim == 0 or arr.size == 0:
        raise ValueError(f"params must be a non-empty array or a dict of arrays, got shape {arr.shape}")
    return {"w": arr}, True


def _linear_predict(params: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    w = params.get("coef", params.get("w"))
    if w is None:
        raise ValueError("params: the default linear model needs an array 'w' or 'coef' (pass predict= otherwise)")
    out = X @ w
    b = params.get("intercept", params.get("b"))
    return out if b is None else out + b


def filter_normalized_direction(params: dict[str, np.ndarray], rng: np.random.Generator,
                                ignore: Sequence[str] = ("b", "bias", "intercept")) -> dict[str, np.ndarray]:
    """A random direction with the filter-wise norms of ``params`` (Li et al. 2018).

    A Gaussian direction d is rescaled filter by filter, ||d_j|| = ||theta_j||, so that
    the plot does not depend on the scale of each filter.  A filter is a column (last
    axis) of an array of 2 or more dimensions (one output unit of a ``(in, out)``
    weight matrix) and the whole array for a vector; biases (names in ``ignore``) and
    scalars get a zero direction, as in the paper.
    """
    out = {}
    for name, p in params.items():
        if name in ignore or name.rsplit(".", 1)[-1] in ignore or p.ndim == 0:
            out[name] = np.zeros_like(p)
            continue
        d = rng.standard_normal(p.shape)
        if p.ndim == 1:
            d *= np.linalg.norm(p) / max(np.linalg.norm(d), 1e-300)
        else:
            axes = tuple(range(p.ndim - 1))
            d *= np.sqrt(np.sum(p * p, axis=axes, keepdims=True)) / np.maximum(
                np.sqrt(np.sum(d * d, axis=axes, keepdims=True)), 1e-300)
        out[name] = d
    return out


def landscape(loss: Any, X: Any, y: Any, params: Any, *, predict: Callable[..., Any] | None = None,
              span: float = 1.0, n: int = 31, seed: int = 0, ignore: Sequence[str] = ("b", "bias", "intercept"),
              log: bool = False) -> Any:
    """The mean loss of a small model around ``params`` over two filter-normalised random
    directions: L(theta + a d1 + b d2) for a, b in [-span, span] (Li et al. 2018).

    ``params`` is an array, a dict of arrays, a fitted estimator with ``coef_`` and
    ``intercept_``, or a :class:`lossgrad.nn.Sequential` network (left unchanged); ``predict(params, X)`` maps a dict like it to ``y_pred`` (default: the
    linear model X @ w + b, with w named ``w`` or ``coef`` and b named ``b`` or
    ``intercept``).  The surface is in ``fig.lossgrad_surface`` as (a, b, values).
    """
    loss = resolve_loss(loss, shape=None)
    X = np.asarray(X, dtype=np.float64)
    y_arr = np.asarray(y)
    net = params if hasattr(params, "set_params") and hasattr(params, "predict") and isinstance(
        getattr(params, "params", None), Mapping) else None
    if net is not None:  # a lossgrad.nn.Sequential: its parameters, flattened to "layer.name"
        original = {k: {n: np.array(v) for n, v in p.items()} for k, p in net.params.items()}
        theta = {f"{k}.{n}": np.asarray(v, dtype=np.float64) for k, p in original.items() for n, v in p.items()}

        def predict(p: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
            nested: dict[str, dict[str, np.ndarray]] = {}
            for key, v in p.items():
                layer, name = key.split(".", 1)
                nested.setdefault(layer, {})[name] = v
            net.set_params(nested)
            out = np.asarray(net.predict(X))
            return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 and y_arr.ndim == 1 else out
    else:
        original = None
        theta, _ = _as_params(params)
    if predict is None:
        predict = _linear_predict
    elif not callable(predict):
        raise TypeError(f"predict must be a callable predict(params, X), got {type(predict).__name__}")
    if isinstance(span, bool) or not isinstance(span, numbers.Real) or not (0 < span < math.inf):
        raise ValueError(f"span must be a positive number, got {span!r}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 3:
        raise ValueError(f"n must be an integer >= 3, got {n!r}")
    rng = np.random.default_rng(seed)
    d1 = filter_normalized_direction(theta, rng, ignore)
    d2 = filter_normalized_direction(theta, rng, ignore)
    a = np.linspace(-span, span, int(n))
    values = np.empty((int(n), int(n)))
    try:
        for i, bi in enumerate(a):
            for j, aj in enumerate(a):
                p = {k: theta[k] + aj * d1[k] + bi * d2[k] for k in theta}
                with np.errstate(all="ignore"):
                    values[i, j] = float(loss(y_arr, predict(p, X)))
    finally:
        if net is not None:
            net.set_params(original)
    fig, (ax,) = _figure(1, figsize=(5.2, 4.4))
    shown = np.log10(np.maximum(values, 1e-300)) if log else values
    cs = ax.contourf(a, a, shown, levels=20, cmap="viridis")
    cs.set_gid("surface")
    ax.contour(a, a, shown, levels=20, colors="k", linewidths=0.3, alpha=0.5)
    ax.plot([0.0], [0.0], marker="*", color="red", markersize=10, linestyle="none", gid="center")
    fig.colorbar(cs, ax=ax, label=("log10 " if log else "") + f"mean {loss.name}")
    ax.set_xlabel("direction 1 (filter-normalised)")
    ax.set_ylabel("direction 2 (filter-normalised)")
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    fig.lossgrad_surface = (a, a, values)
    return fig


def row_contour(loss: Any, y_true: Any = 0, *, x_range: Any = (-4.0, 4.0), n: int = 101) -> Any:
    """Contours of a row loss of two classes over the scores (y_pred_1, y_pred_2).

    ``y_true`` is a class index (0 or 1) or a probability vector of length 2.  The
    surface is in ``fig.lossgrad_surface`` as (s1, s2, values).
    """
    loss = resolve_loss(loss, shape=Shape.ROW)
    lo, hi = _range(x_range)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 3:
        raise ValueError(f"n must be an integer >= 3, got {n!r}")
    s = np.linspace(lo, hi, int(n))
    s1, s2 = np.meshgrid(s, s)
    scores = np.stack([s1.ravel(), s2.ravel()], axis=1)
    yt = np.asarray(y_true)
    if yt.ndim == 0:
        if int(yt) not in (0, 1) or float(yt) != int(yt):
            raise ValueError(f"y_true must be the class 0 or 1, or a probability vector of length 2, got {y_true!r}")
        labels = np.full(scores.shape[0], int(yt))
    elif yt.shape == (2,):
        labels = np.broadcast_to(yt.astype(np.float64), scores.shape)
    else:
        raise ValueError(f"y_true must be the class 0 or 1, or a probability vector of length 2, got shape {yt.shape}")
    with np.errstate(all="ignore"):
        values = np.asarray(loss.value(labels, scores), dtype=np.float64).reshape(s1.shape)
    fig, (ax,) = _figure(1, figsize=(5.2, 4.4))
    cs = ax.contourf(s, s, values, levels=20, cmap="viridis")
    cs.set_gid("surface")
    ax.contour(s, s, values, levels=20, colors="k", linewidths=0.3, alpha=0.5)
    ax.plot([lo, hi], [lo, hi], color="white", linestyle="--", linewidth=0.8, gid="diagonal")
    fig.colorbar(cs, ax=ax, label=f"{loss.name} (true class {y_true})" if yt.ndim == 0 else loss.name)
    ax.set_xlabel("y_pred_1 (score of class 0)")
    ax.set_ylabel("y_pred_2 (score of class 1)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    fig.lossgrad_surface = (s, s, values)
    return fig


def _series(history: Any) -> dict[str, np.ndarray]:
    if hasattr(history, "as_dict") and callable(history.as_dict):
        history = history.as_dict()
    if isinstance(history, Mapping):
        items = {str(k): v for k, v in history.items()}
    elif isinstance(history, Sequence) and history and all(isinstance(h, Mapping) for h in history):
        keys = list(dict.fromkeys(k for h in history for k in h))
        items = {str(k): [h.get(k, np.nan) for h in history] for k in keys}
    else:
        items = {"loss": history}
    out = {}
    for k, v in items.items():
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"history[{k!r}] must be a sequence of numbers (one per epoch)") from None
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"history[{k!r}] must be a non-empty 1-D sequence of per-epoch losses, "
                             f"got shape {arr.shape}")
        out[k] = arr
    if not out:
        raise ValueError("history is empty: give a list of per-epoch losses or a dict of them")
    return out


def training_curves(history: Any, *, log: bool | None = None) -> Any:
    """Per-epoch losses: a list of numbers, a dict of lists (``loss``, ``val_loss``...),
    a list of per-epoch dicts, or a :class:`lossgrad.nn` History.

    ``log=None`` uses a log scale when every value is positive and they span more
    than two decades.
    """
    series = _series(history)
    fig, (ax,) = _figure(1, figsize=(5.5, 4.0))
    for i, (name, v) in enumerate(series.items()):
        ax.plot(np.arange(1, v.size + 1), v, color=f"C{i % 10}", label=name, gid="curve", marker="." if v.size < 40 else None)
    allv = np.concatenate(list(series.values()))
    allv = allv[np.isfinite(allv)]
    if log is None:
        log = bool(allv.size and np.all(allv > 0) and allv.max() / allv.min() > 100)
    if log:
        ax.set_yscale("log")
    ax.set_xlim(1, max(max(v.size for v in series.values()), 2))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig
