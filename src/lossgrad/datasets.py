"""Small datasets shipped with lossgrad, for the demo, examples and tests.

* :func:`load_outliers`: 200 points on the line y = 2.5 x with Gaussian noise and 10%
  gross outliers, generated once by ``tools/make_outliers.py`` (fixed seed).
* :func:`load_stackloss`: Brownlee's (1965) stack loss data, the classic test bed of
  robust regression (21 rows, 3 regressors; public domain).

>>> from lossgrad.datasets import load_outliers, load_stackloss
>>> d = load_outliers()
>>> d.x.shape, d.y.dtype, d.true_slope
((200,), dtype('float64'), 2.5)
>>> load_stackloss().X.shape
(21, 3)
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = ["OutlierData", "Stackloss", "load_outliers", "load_stackloss"]


def _read(name: str) -> tuple[list[str], list[str], np.ndarray]:
    """(comment lines without '#', column names, float64 data) of a shipped CSV."""
    text = resources.files("lossgrad").joinpath("data", name).read_text(encoding="utf-8")
    lines = text.splitlines()
    comments = [ln[1:].strip() for ln in lines if ln.startswith("#")]
    body = [ln for ln in lines if ln and not ln.startswith("#")]
    columns = body[0].split(",")
    data = np.loadtxt(io.StringIO("\n".join(body[1:])), delimiter=",", dtype=np.float64, ndmin=2)
    return comments, columns, data


@dataclass(frozen=True)
class OutlierData:
    """A one-regressor dataset y ~ slope * x with gross outliers.

    Attributes
    ----------
    x, y:
        float64 arrays of shape (n,).
    is_outlier:
        bool array of shape (n,), True for the points replaced by gross outliers.
    true_slope:
        The slope the inliers were generated with.
    description:
        How the data was generated.
    """

    x: np.ndarray
    y: np.ndarray
    is_outlier: np.ndarray
    true_slope: float
    description: str


def load_outliers() -> OutlierData:
    """The shipped line-with-outliers data (``data/outliers.csv``).

    y = 2.5 x + N(0, 0.5^2) for x ~ U(0, 5), n = 200, with 20 points at x > 2.5
    replaced by y = 2.5 x - U(8, 15).  Least squares through the origin gives a slope
    near 2.03; a bounded-influence loss stays near 2.5.
    """
    comments, columns, data = _read("outliers.csv")
    if columns != ["x", "y", "is_outlier"]:  # pragma: no cover - guards the shipped file
        raise RuntimeError(f"outliers.csv has unexpected columns {columns}")
    slope = next(float(c.split("=", 1)[1]) for c in comments if c.startswith("true_slope="))
    description = " ".join(c for c in comments if not c.startswith("true_slope="))
    return OutlierData(
        x=np.ascontiguousarray(data[:, 0]),
        y=np.ascontiguousarray(data[:, 1]),
        is_outlier=data[:, 2].astype(bool),
        true_slope=slope,
        description=description,
    )


@dataclass(frozen=True)
class Stackloss:
    """Brownlee's stack loss data.

    Attributes
    ----------
    X:
        float64 (21, 3): air flow, cooling water inlet temperature, acid concentration.
    y:
        float64 (21,): stack loss (ammonia lost, in tenths of a percent).
    feature_names:
        ``("Air.Flow", "Water.Temp", "Acid.Conc.")``.
    target_name:
        ``"stack.loss"``.
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str


def load_stackloss() -> Stackloss:
    """The 21 rows of Brownlee (1965), *Statistical Theory and Methodology in Science and
    Engineering*, 2nd ed., p. 454 (public domain), shipped as ``data/stackloss.csv``."""
    _, columns, data = _read("stackloss.csv")
    return Stackloss(
        X=np.ascontiguousarray(data[:, :3]),
        y=np.ascontiguousarray(data[:, 3]),
        feature_names=tuple(columns[:3]),
        target_name=columns[3],
    )
