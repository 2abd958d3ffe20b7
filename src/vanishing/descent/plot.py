"""Pictures of a descent: the cost function's curve (1-D) or contours (2-D) with the path.

Uses ``matplotlib.figure.Figure`` directly (no pyplot), so no global backend state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .core import CostFunction, DescentPath
from .expr import Expression, parse_expression

__all__ = ["GROWTH_LIMIT", "MAX_ARROWS", "locate_minimum", "plot_descent"]

MAX_ARROWS = 60  # later steps are drawn as a plain line: arrows would only clutter
GROWTH_LIMIT = 1e12  # stop drawing a diverging path here; matplotlib overflows near 1e308


def plot_descent(
    f: CostFunction | str,
    path: DescentPath,
    save_to: str | Path | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Draw ``f`` and the iterates of ``path`` (what :func:`descend` returned); save the
    figure to the file ``save_to`` if given.

    1-D: the curve :math:`L(w)` with each iterate :math:`(w_k, L(w_k))` and an arrow for
    each of the first ``MAX_ARROWS`` steps. 2-D: contours of :math:`L(x, y)` with the
    path. The start, the last iterate and the function's own minimum (located
    numerically near the path by :func:`locate_minimum`, when there is one) are
    marked, so a run that stopped short or overshot shows it. A diverged run is drawn
    up to the last iterate within ``GROWTH_LIMIT`` times the start's scale: beyond that
    (and at inf or NaN) there is nothing to see.

    ``f`` is evaluated on a grid of tensors, so it must work elementwise (expressions and
    functions built from torch ops do).
    """
    if isinstance(f, str):
        f = parse_expression(f)
    if not isinstance(path, DescentPath):
        raise TypeError(
            f"plot_descent: expected the DescentPath that descend returned, got "
            f"{type(path).__name__}"
        )
    dim = path.iterates.shape[1]
    if dim not in (1, 2):
        raise ValueError(f"plot_descent: expected a function of 1 or 2 variables, got {dim}")
    n = _shown(path)
    points, losses = path.iterates[:n], path.losses[:n]
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.add_subplot()
    spans = [_span(points[:, i]) for i in range(dim)]
    minimum = locate_minimum(f, spans)
    if minimum is not None:  # widen the view so the minimum is on the picture
        spans = [_span(np.append(points[:, i], minimum[i])) for i in range(dim)]
    if dim == 1:
        _curve(ax, f, spans[0], path.variables[0])
        xy = np.column_stack([points[:, 0], losses])
    else:
        _contours(ax, f, spans, path.variables)
        xy = points
    end_label = "end" if n == len(path.iterates) else f"step {n - 1} (of {path.steps})"
    _draw_path(ax, xy, end_label)
    if minimum is not None:
        if dim == 1:
            value = _evaluate(f, np.array([minimum[0]]))[0]
            where = (minimum[0], float(value))
        else:
            where = minimum
        label = "minimum (" + ", ".join(f"{v:.4g}" for v in minimum) + ")"
        ax.plot(*where, "D", mfc="none", mec="black", ms=11, mew=1.5, label=label)
    ax.set_title(title or _default_title(f, path))
    ax.legend(loc="best")
    if save_to is not None:
        fig.savefig(save_to, dpi=120)
    return fig


def locate_minimum(
    f: CostFunction, spans: list[tuple[float, float]], *, widen: float = 3.0
) -> tuple[float, ...] | None:
    """The point of least ``f`` near the path, or ``None`` if there is none to show.

    ``spans`` are the path's intervals, one per variable (1 or 2). The search box is
    each interval widened by ``widen`` times its width on both sides; ``f`` is
    evaluated on a grid over it, and the best grid point is refined by zooming
    (a grid over a window around it, re-centred and halved 40 times).
    If the best grid point lies on the edge of the box, ``f`` keeps falling beyond
    what the picture could show (``x**3``, ``exp(-x)``) and ``None`` is returned.
    """
    box = [(lo - widen * (hi - lo), hi + widen * (hi - lo)) for lo, hi in spans]
    size = 801 if len(box) == 1 else 161
    best = _grid_argmin(f, box, size)
    if best is None or any(i in (0, size - 1) for i in best[1]):
        return None
    point = best[0]
    spacing = [(hi - lo) / (size - 1) for lo, hi in box]  # of the grid, per variable
    for _ in range(40):  # re-centre on the best point, halve the window: ~1e-12 at the end
        zoom = [(p - 2 * d, p + 2 * d) for p, d in zip(point, spacing, strict=True)]
        found = _grid_argmin(f, zoom, 21)
        if found is None:
            break
        point, spacing = found[0], [d / 2 for d in spacing]
    return tuple(float(p) for p in point)


def _grid_argmin(
    f: CostFunction, box: list[tuple[float, float]], size: int
) -> tuple[tuple[float, ...], tuple[int, ...]] | None:
    axes = [np.linspace(lo, hi, size) for lo, hi in box]
    grids = np.meshgrid(*axes, indexing="ij") if len(axes) > 1 else axes
    with np.errstate(invalid="ignore", over="ignore"):
        z = _evaluate(f, *grids)
    z = np.where(np.isfinite(z), z, np.inf)
    if not np.isfinite(z).any():
        return None
    index = np.unravel_index(int(np.argmin(z)), z.shape)
    return tuple(float(a[i]) for a, i in zip(axes, index, strict=True)), tuple(
        int(i) for i in index
    )


def _curve(ax: Axes, f: CostFunction, span: tuple[float, float], name: str) -> None:
    lo, hi = span
    grid = np.linspace(lo, hi, 400)
    ax.plot(grid, _evaluate(f, grid), color="tab:blue", label=f"L({name})")
    ax.set_xlabel(name)
    ax.set_ylabel("L")


def _contours(
    ax: Axes, f: CostFunction, spans: list[tuple[float, float]], names: tuple[str, ...]
) -> None:
    (x0, x1), (y0, y1) = spans
    x, y = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    z = _evaluate(f, x, y)
    finite = z[np.isfinite(z)]
    if finite.size:
        # quantile levels: even spacing in "how many grid points are below", which
        # copes with losses spanning many orders of magnitude (e.g. Rosenbrock)
        levels = np.unique(np.quantile(finite, np.linspace(0, 1, 25)))
        if len(levels) > 1:
            ax.contour(x, y, z, levels=levels, cmap="viridis", linewidths=0.8)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])


def _draw_path(ax: Axes, xy: np.ndarray, end_label: str) -> None:
    """The iterates as a line, arrows for the first ``MAX_ARROWS`` steps, start and end."""
    ax.plot(xy[:, 0], xy[:, 1], "o-", color="tab:orange", ms=3, lw=0.8, label="iterates")
    for a, b in zip(xy[:MAX_ARROWS], xy[1 : MAX_ARROWS + 1], strict=False):
        ax.annotate(
            "", xy=b, xytext=a, arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 1}
        )
    ax.plot(*xy[0], "o", color="tab:green", ms=9, label="start")
    ax.plot(*xy[-1], "*", color="tab:red", ms=14, label=end_label)


def _shown(path: DescentPath) -> int:
    """How many iterates to draw: the prefix that stays finite and within GROWTH_LIMIT."""
    size = np.abs(np.column_stack([path.iterates, path.losses]))  # inf/NaN compare False
    bound = GROWTH_LIMIT * max(1.0, float(size[0].max()))
    ok = np.all(size <= bound, axis=1)
    return len(ok) if ok.all() else max(1, int(np.argmin(ok)))


def _span(values: np.ndarray) -> tuple[float, float]:
    """An interval around the values with a margin (and some width if they coincide)."""
    lo, hi = float(values.min()), float(values.max())
    margin = 0.15 * (hi - lo) or max(1.0, abs(lo))
    return lo - margin, hi + margin


def _evaluate(f: CostFunction, *grids: np.ndarray) -> np.ndarray:
    """f on a grid: one vectorised call, or point by point if f is not elementwise."""
    tensors = [torch.from_numpy(g) for g in grids]
    with torch.no_grad():
        try:
            z = f(*tensors)
            if isinstance(z, torch.Tensor) and z.shape == tensors[0].shape:
                return z.to(torch.float64).numpy()
        except (RuntimeError, TypeError, ValueError):
            pass
        flat = [t.reshape(-1) for t in tensors]
        values = [float(f(*args)) for args in zip(*flat, strict=True)]
    return np.array(values).reshape(grids[0].shape)


def _default_title(f: CostFunction, path: DescentPath) -> str:
    name = f.text if isinstance(f, Expression) else "L"
    momentum = f", momentum={path.momentum:g}" if path.momentum else ""
    return f"{name}\nlr={path.lr:g}{momentum}, {path.steps} steps, {path.status}"
