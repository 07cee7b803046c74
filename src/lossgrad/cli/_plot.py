"""A plain-text plotter: one curve per panel on a character grid, no dependency.

>>> print(render_panel([0, 0.5, 1, 1.5, 2], [0, 0.25, 1, 2.25, 4], title="t^2", width=5, height=4))
t^2
       4 |    *
         |   *
         |  *
       0 |**
         +-----
         0    2
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["render_panel"]

_LABEL = 8  # width of the y-axis labels


def _fmt(v: float, scale: float = 0.0) -> str:
    """3 significant digits; "~0" for a value negligible against the plotted range."""
    if v != 0.0 and abs(v) < 1e-3 * scale:
        return "~0"
    return f"{v:.3g}"


def render_panel(
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    title: str = "",
    width: int = 60,
    height: int = 8,
    marks: Sequence[float] = (),
    mark: str = "*",
) -> str:
    """Plot the points (xs, ys) (xs increasing) as text, ``width`` x ``height`` cells.

    Non-finite y values are left blank.  Consecutive columns are joined by a vertical
    run of the mark so that jumps show as steps.  ``marks`` are x positions (kinks)
    flagged with ``^`` under the axis.  The zero line is drawn with ``-`` when 0 lies
    inside the y range.
    """
    xs = [float(v) for v in xs]
    ys = [float(v) for v in ys]
    if len(xs) != len(ys) or not xs:
        raise ValueError("xs and ys must be non-empty and of the same length")
    x0, x1 = xs[0], xs[-1]
    span_x = (x1 - x0) or 1.0
    cols: list[list[float]] = [[] for _ in range(width)]
    for x, y in zip(xs, ys):
        if math.isfinite(y):
            c = min(width - 1, max(0, int(round((x - x0) / span_x * (width - 1)))))
            cols[c].append(y)
    finite = [y for col in cols for y in col]
    lines = [title] if title else []
    if not finite:
        lines.append(" " * _LABEL + " | (no finite values in this range)")
        return "\n".join(lines)
    lo, hi = min(finite), max(finite)
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        lo, hi = lo - 1.0, hi + 1.0

    def row(y: float) -> int:  # 0 is the top row
        return int(round((hi - y) / (hi - lo) * (height - 1)))

    grid = [[" "] * width for _ in range(height)]
    if lo < 0.0 < hi:
        z = row(0.0)
        grid[z] = ["-"] * width
    prev: tuple[int, int] | None = None
    for c, col in enumerate(cols):
        if not col:
            prev = None
            continue
        rows = [row(y) for y in col]
        top, bot = min(rows), max(rows)
        span = (top, bot)
        if prev is not None:  # a vertical run joins this column to the previous one
            if prev[1] < top:
                top = prev[1] + 1
            elif prev[0] > bot:
                bot = prev[0] - 1
        for r in range(top, bot + 1):
            grid[r][c] = mark
        prev = span
    for r in range(height):
        if r == 0:
            lab = _fmt(hi, hi - lo)
        elif r == height - 1:
            lab = _fmt(lo, hi - lo)
        elif lo < 0.0 < hi and r == row(0.0):
            lab = "0"
        else:
            lab = ""
        lines.append(f"{lab:>{_LABEL}} |" + "".join(grid[r]).rstrip())
    axis = ["-"] * width
    for m in marks:
        if x0 <= m <= x1:
            axis[min(width - 1, max(0, int(round((m - x0) / span_x * (width - 1)))))] = "^"
    lines.append(" " * _LABEL + " +" + "".join(axis))
    left, right = _fmt(x0), _fmt(x1)
    lines.append(" " * _LABEL + " " + left + " " * max(1, width + 1 - len(left) - len(right)) + right)
    return "\n".join(lines)
