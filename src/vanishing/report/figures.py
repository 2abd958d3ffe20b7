"""Figures for training runs and gradient probes (matplotlib, no global pyplot state).

Each ``*_figure`` function draws on a fresh ``matplotlib.figure.Figure`` (safe in threads,
never a window); each ``plot_*`` writes one as a PNG. :func:`png_bytes` gives the PNG in
memory, for the HTML report.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_gradient_decay", "plot_learning_curves", "demo_figures", "save", "png_bytes",
           "gradient_decay_figure", "learning_curves_figure", "demo_plots", "DPI"]

#: Resolution of every PNG the tool writes (7 x 4.2 in -> 840 x 504 pixels).
DPI = 120

#: One colour per model (matplotlib's tab10, so ten models never share one in a figure).
COLORS = {"rnn_tanh": "#d62728", "rnn_relu": "#ff7f0e", "irnn": "#9467bd",
          "lstm": "#1f77b4", "gru": "#2ca02c", "exprnn": "#8c564b", "indrnn": "#e377c2",
          "lru": "#17becf", "mingru": "#bcbd22", "minlstm": "#7f7f7f"}


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)
    return path


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG bytes, at the resolution :func:`save` writes."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _caption(fig: Figure, caption: str) -> None:
    """The sentence that says what the figure shows, under it (room made by the layout)."""
    if caption:
        fig.supxlabel(textwrap.fill(caption, 105), x=0.01, ha="left", fontsize=8.5,
                      color="0.2")


def plot_gradient_decay(norms: Mapping[str, np.ndarray], path: str | Path, **options) -> Path:
    """:func:`gradient_decay_figure` written as a PNG at ``path``."""
    return save(gradient_decay_figure(norms, **options), path)


def gradient_decay_figure(
    norms: Mapping[str, np.ndarray],
    *,
    mark: int | None = None,
    mark_label: str = "",
    title: str = "How far back the gradient reaches",
    caption: str = "",
) -> Figure:
    """||dL/dh_t|| / ||dL/dh_T|| on a log scale against the distance back in time T - t.

    Args:
        norms: one (T,) array of per-step gradient norms per model (t = 0 first).
        mark: a distance back in time to mark with a vertical line (e.g. the country word).
        caption: a sentence under the figure saying what it shows ('' for none).
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
    _caption(fig, caption)
    return fig


def plot_learning_curves(histories: Mapping[str, Sequence[dict]], path: str | Path,
                         **options) -> Path:
    """:func:`learning_curves_figure` written as a PNG at ``path``."""
    return save(learning_curves_figure(histories, **options), path)


def learning_curves_figure(
    histories: Mapping[str, Sequence[dict]],
    *,
    metric: str = "accuracy",
    chance: float | None = None,
    title: str = "Held-out accuracy during training",
    caption: str = "",
) -> Figure:
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
    _caption(fig, caption)
    return fig


def demo_plots(report, *, captions: bool = True) -> dict[str, tuple[Figure, str]]:
    """The demo's figures by file stem, each with its sentence
    (:func:`vanishing.report.demo_text.figure_sentences`): ``gradient-decay`` (each model
    at the start of training, the country word marked) and ``accuracy`` (held-out accuracy
    during training, chance dotted), from a :class:`vanishing.demo.DemoReport`. With
    ``captions`` the sentence is also drawn under the figure (for the PNG files)."""
    from .demo_text import figure_sentences

    said = figure_sentences(report)
    starts = {m.name: m.start.norms for m in report.models}
    decay = gradient_decay_figure(
        starts, mark=report.country_lag, mark_label="country",
        title=f"Gradient reaching back from the answer (gap {report.gap}, start of training)",
        caption=said["gradient-decay"] if captions else "")
    curves = learning_curves_figure({m.name: m.result.history for m in report.models},
                                    chance=report.chance,
                                    caption=said["accuracy"] if captions else "")
    return {"gradient-decay": (decay, said["gradient-decay"]),
            "accuracy": (curves, said["accuracy"])}


def demo_figures(report, out: str | Path) -> list[Path]:
    """The demo's figures (:func:`demo_plots`, sentence under each) as PNGs in ``out``:
    ``gradient-decay.png`` and ``accuracy.png``."""
    return [save(fig, Path(out) / f"{stem}.png")
            for stem, (fig, _) in demo_plots(report).items()]
