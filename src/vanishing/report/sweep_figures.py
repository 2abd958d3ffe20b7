"""Figures of a sweep: success against length, and gradient horizon against length.

Both take the best points of one task (:func:`vanishing.sweep.summary.best_points`), one line per
model in :data:`vanishing.report.figures.COLORS`, and write a PNG on a fresh ``Figure`` (no
pyplot state, no window).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..sweep.summary import SweepPoint
from .figures import COLORS, save

__all__ = ["MARKERS", "plot_success", "plot_horizon", "sweep_figures", "success_figure",
           "horizon_figure", "sweep_plots"]


def _by_model(points: Sequence[SweepPoint]) -> dict[str, list[SweepPoint]]:
    tasks = {p.task for p in points}
    if len(tasks) != 1:
        raise ValueError(f"a sweep figure shows one task, got {len(tasks)}: "
                         f"{', '.join(sorted(tasks)) or 'none'}")
    out: dict[str, list[SweepPoint]] = {}
    for p in sorted(points, key=lambda p: p.length):
        out.setdefault(p.model, []).append(p)
    return out


MARKERS = "osD^vPX*<>"


def _nudge(lengths: np.ndarray, i: int, n: int) -> np.ndarray:
    """Shift model i of n by a few percent along the log-length axis, so lines that
    coincide (every model at 1.0, or at T - 1) stay visible side by side."""
    return lengths * (1 + 0.025 * (i - (n - 1) / 2))


def _length_axis(ax, lengths: list[int]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(lengths, [str(v) for v in lengths])
    ax.minorticks_off()
    ax.set_xlabel("sequence length T (log scale)")
    ax.grid(True, alpha=0.3)


def plot_success(points: Sequence[SweepPoint], path: str | Path, **options) -> Path:
    """:func:`success_figure` written as a PNG at ``path``."""
    return save(success_figure(points, **options), path)


def success_figure(
    points: Sequence[SweepPoint],
    *,
    baseline: Mapping[int, float] | None = None,
    baseline_label: str = "baseline",
    title: str | None = None,
) -> Figure:
    """Fraction of seeds solved against length, one line per model.

    Args:
        points: best points of one task.
        baseline: optional length -> fraction solved by a reference method (e.g. random
            weight guessing on the latch task), drawn as a grey dashed line.
    """
    groups = _by_model(points)
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (model, cs) in enumerate(groups.items()):
        x = _nudge(np.array([p.length for p in cs], dtype=float), i, len(groups))
        y = np.array([p.fraction for p in cs])
        ax.plot(x, y, marker=MARKERS[i % len(MARKERS)], ms=5, label=model,
                color=COLORS.get(model))
    if baseline:
        lengths = sorted(baseline)
        ax.plot(lengths, [baseline[t] for t in lengths], ls="--", color="0.45", marker="s",
                ms=4, label=baseline_label)
    seeds = sorted({p.measured for p in points})
    task = points[0].task
    _length_axis(ax, sorted({p.length for p in points} | set(baseline or ())))
    ax.set_ylim(-0.05, 1.05)
    count = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]} to {seeds[-1]}"
    ax.set_ylabel(f"fraction of seeds solved ({count} per point)")
    ax.set_title(title or f"{task}: success against sequence length")
    _legend(fig, ax)
    return fig


def plot_horizon(points: Sequence[SweepPoint], path: str | Path, **options) -> Path:
    """:func:`horizon_figure` written as a PNG at ``path``."""
    return save(horizon_figure(points, **options), path)


def horizon_figure(points: Sequence[SweepPoint], *, title: str | None = None) -> Figure:
    """Median gradient horizon of the trained models against length (every seed as a dot).

    The horizon is the largest lag k at which ||dL/dh_(T-k)|| is still above 1e-3 of
    ||dL/dh_T|| (see :meth:`vanishing.probe.Trace.horizon`); the dashed line is T - 1,
    the gradient reaching the first step.
    """
    groups = _by_model(points)
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    reach = sorted({(p.length, p.probe_length) for p in points if p.probe_length})
    if reach:
        ax.plot([t for t, _ in reach], [p - 1 for _, p in reach], ls="--", color="0.6",
                label="T - 1 (reaches the first step)", zorder=1)
    for i, (model, cs) in enumerate(groups.items()):
        line = None
        pts = [(p.length, p.median_horizon) for p in cs if p.median_horizon is not None]
        if pts:
            x, y = zip(*pts, strict=True)
            (line,) = ax.plot(_nudge(np.array(x, dtype=float), i, len(groups)), y,
                              marker=MARKERS[i % len(MARKERS)], ms=5, label=model,
                              color=COLORS.get(model))
        color = COLORS.get(model) if line is None else line.get_color()
        for p in cs:
            x = _nudge(np.full(len(p.horizons), float(p.length)), i, len(groups))
            ax.scatter(x, p.horizons, s=10, alpha=0.35, color=color)
    _length_axis(ax, sorted({p.length for p in points}))
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("gradient horizon after training (steps back)")
    ax.set_title(title or f"{points[0].task}: how far back the trained model's gradient reaches")
    _legend(fig, ax)
    return fig


def sweep_plots(points: Sequence[SweepPoint]) -> dict[str, Figure]:
    """Every task's two figures, by file stem: ``sweep-<task>-success`` and
    ``sweep-<task>-horizon``, tasks sorted."""
    plots = {}
    for task in sorted({p.task for p in points}):
        mine = [p for p in points if p.task == task]
        plots[f"sweep-{task}-success"] = success_figure(mine)
        plots[f"sweep-{task}-horizon"] = horizon_figure(mine)
    return plots


def sweep_figures(points: Sequence[SweepPoint], out: str | Path) -> list[Path]:
    """``sweep-<task>-success.png`` and ``sweep-<task>-horizon.png`` for every task."""
    return [save(fig, Path(out) / f"{stem}.png") for stem, fig in sweep_plots(points).items()]


def _legend(fig: Figure, ax) -> None:
    """The legend inside the axes for a few models; beside them, outside the data, for
    more (nine models' entries would cover the curves)."""
    if len(ax.get_legend_handles_labels()[0]) > 6:
        fig.legend(*ax.get_legend_handles_labels(), loc="outside center right", fontsize=9)
    else:
        ax.legend()
