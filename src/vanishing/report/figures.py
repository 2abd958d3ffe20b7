"""Figures for training runs and gradient probes (matplotlib, no global pyplot state).

Each function draws on a fresh ``matplotlib.figure.Figure`` and writes a PNG, so it is
safe in threads and never opens a window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_gradient_decay", "plot_learning_curves", "demo_figures", "save"]

COLORS = {"rnn_tanh": "#d62728", "rnn_relu": "#ff7f0e", "irnn": "#9467bd",
          "lstm": "#1f77b4", "gru": "#2ca02c"}


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)
    return path


def plot_gradient_decay(
    norms: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    mark: int | None = None,
    mark_label: str = "",
    title: str = "How far back the gradient reaches",
) -> Path:
    """||dL/dh_t|| / ||dL/dh_T|| on a log scale against the distance back in time T - t.

    Args:
        norms: one (T,) array of per-step gradient norms per model (t = 0 first).
        mark: a distance back in time to mark with a vertical line (e.g. the country word).
    """
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for name, n in norms.items():
        n = np.asarray(n, dtype=np.float64)
        rel = n[::-1] / n[-1]
        lag = np.arange(rel.size)
        ok = rel > 0
        ax.semilogy(lag[ok], rel[ok], marker="o", ms=3, label=name, color=COLORS.get(name))
    if mark is not None:
        ax.axvline(mark, color="0.4", ls="--", lw=1)
        ax.text(mark, ax.get_ylim()[0], f" {mark_label}", rotation=90, va="bottom",
                ha="right", color="0.3", fontsize=9)
    ax.set_xlabel("distance back in time, T - t (words)")
    ax.set_ylabel("||dL/dh_t|| / ||dL/dh_T||")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    return save(fig, path)


def plot_learning_curves(
    histories: Mapping[str, Sequence[dict]],
    path: str | Path,
    *,
    metric: str = "accuracy",
    chance: float | None = None,
    title: str = "Held-out accuracy during training",
) -> Path:
    """``metric`` against training step, one line per model, chance as a dotted line."""
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for name, hist in histories.items():
        pts = [(h["step"], h[metric]) for h in hist if metric in h]
        if pts:
            steps, values = zip(*pts, strict=True)
            ax.plot(steps, values, marker="o", ms=3, label=name, color=COLORS.get(name))
    if chance is not None:
        ax.axhline(chance, color="0.5", ls=":", label="chance")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"held-out {metric}")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return save(fig, path)


def demo_figures(report, out: str | Path) -> list[Path]:
    """The demo's figures in ``out``: ``gradient-decay.png`` (each model at the start of
    training, the country word marked) and ``accuracy.png`` (held-out accuracy during
    training, chance dotted), from a :class:`vanishing.demo.DemoReport`."""
    out = Path(out)
    starts = {m.name: m.start.norms for m in report.models}
    decay = plot_gradient_decay(starts, out / "gradient-decay.png", mark=report.country_lag,
                                mark_label="country",
                                title=f"Gradient reaching back from the answer (gap "
                                      f"{report.gap}, start of training)")
    curves = plot_learning_curves({m.name: m.result.history for m in report.models},
                                  out / "accuracy.png", chance=report.chance)
    return [decay, curves]
