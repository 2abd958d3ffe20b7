"""``vanishing demo``: France -> French, trained, measured and explained."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import _checks
from ..demo import (
    DEFAULT_GAP,
    DEFAULT_MODELS,
    DEFAULT_STEPS,
    LEARNING_RATE,
    LSTM_FORGET_BIAS,
    DemoReport,
    check_arguments,
    decay_bar,
    run_demo,
)
from ..report.figures import plot_gradient_decay, plot_learning_curves
from ..tasks.language import COUNTRY_POSITION
from ._common import check_writable_dir, console, handle_errors, show_progress

__all__ = ["demo"]


def _sentences(report: DemoReport) -> list[str]:
    """Two plain sentences that say what the measurements show (built from them)."""
    by = {m.name: m for m in report.models}
    plain = next((by[n] for n in ("rnn_tanh", "rnn_relu", "irnn") if n in by), None)
    gated = next((by[n] for n in ("lstm", "gru") if n in by), None)
    if plain is None or gated is None or plain.country_ratio(plain.start) == 0:
        m = report.models[0]
        return [f"The gradient at the country word was {m.country_ratio(m.start):.1e} of the "
                f"gradient at the last word for {m.name} at the start of training.",
                "Run with a plain RNN and a gated cell (the default) to compare them."]
    rp, rg = plain.country_ratio(plain.start), gated.country_ratio(gated.start)
    ap, ag = plain.accuracy, gated.accuracy
    first = (f"At the start of training, the gradient that reaches back from the answer to the "
             f"country word was {rp:.0e} of its size at the last word in the {plain.name} and "
             f"{rg:.0e} in the {gated.name}: the {plain.name}'s weight updates carry about "
             f"{_times(rg / rp)} times less signal about the country.")
    if ap < 2 * report.chance and ag >= 0.9:
        best = plain.best_accuracy
        peak = f", {best:.0%} at best during training" if best >= ap + 0.05 else ""
        second = (f"So the {plain.name} stayed near chance ({ap:.1%} against "
                  f"{report.chance:.1%}{peak}) while the {gated.name}, whose gated cell state "
                  f"carries the gradient across the gap, reached {ag:.1%}.")
    else:
        second = (f"In this run the {plain.name} {plain.outcome()} and the {gated.name} "
                  f"{gated.outcome()} (chance {report.chance:.1%}); try a longer --gap to see "
                  "the plain RNN fail, or the default settings.")
    return [first, second]


def _table(report: DemoReport) -> Table:
    t = Table(title=f"France -> French across a gap of {report.gap} words (seed {report.seed})",
              caption=f"accuracy on {report.models[0].result.config.eval_size} test sentences "
                      "(not those that decided early stopping); best = highest held-out "
                      "accuracy during training; grad ratio = ||dL/dh_t|| at the country word / "
                      "at the last word")
    cols = ("model", "accuracy", "best", "chance", "status", "steps", "time",
            "grad ratio (init)", "grad ratio (trained)")
    for col in cols:
        t.add_column(col, justify="left" if col in ("model", "status") else "right",
                     no_wrap=True)
    for m in report.models:
        r = m.result
        secs = f"{r.wall_time:.1f} s" if r.wall_time < 10 else f"{r.wall_time:.0f} s"
        t.add_row(m.name, f"{m.accuracy:.3f}", f"{m.best_accuracy:.3f}", f"{report.chance:.3f}",
                  r.status, str(r.steps), secs,
                  f"{m.country_ratio(m.start):.1e}", f"{m.country_ratio(m.end):.1e}")
    return t


def _times(r: float) -> str:
    """A ratio in words a reader can take in: '300', '40,000' or '10^9'."""
    return f"{r:,.0f}" if r < 1e5 else f"10^{np.log10(r):.0f}"


def _decay(report: DemoReport) -> None:
    lag = len(report.models[0].start.norms) - 1 - COUNTRY_POSITION
    console.print("\n[bold]How far back the gradient reaches[/] (start of training): "
                  "one column per word, the last word on the left; bar height = "
                  "log10 ||dL/dh_t|| / ||dL/dh_T|| from 1e-12 to 1.")
    width = max(len(m.name) for m in report.models)
    marker = " " * lag + "^"
    for m in report.models:
        rel = m.start.relative()[::-1]
        picks = "  ".join(f"{k}: {rel[k]:.0e}" for k in (1, 5, 10, lag) if k < rel.size)
        console.print(f"  {m.name:<{width}}  |{decay_bar(m.start.norms)}|  {picks}")
    console.print(f"  {'':<{width}}   {marker} country word, {lag} words back")


@handle_errors
def demo(
    gap: Annotated[int, typer.Option(help="Filler words between the country and the question.")
                   ] = DEFAULT_GAP,
    steps: Annotated[int, typer.Option(help="Training step budget per model.")] = DEFAULT_STEPS,
    seed: Annotated[int, typer.Option(help="Seed for weights and data.")] = 0,
    models: Annotated[str, typer.Option(help="Comma-separated models to compare.")
                      ] = ",".join(DEFAULT_MODELS),
    out: Annotated[Path, typer.Option(help="Folder for the figures.")] = Path("vanishing-out"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    threads: Annotated[int, typer.Option(
        help="PyTorch CPU threads. 1 is as fast for these small models and does not "
             "collapse when other work shares the CPU.")] = 1,
) -> None:
    """Train a tanh RNN, an LSTM and a GRU on "I grew up in France ... and now I speak ___",
    then show how far back the gradient reaches in each."""
    names = [m.strip() for m in models.split(",") if m.strip()]
    check_arguments(gap, steps, seed, names)  # before any output, and before making --out
    torch.set_num_threads(_checks.positive_int("threads", threads))
    check_writable_dir(out, "--out")
    bias = f"; the lstm's forget-gate bias is {LSTM_FORGET_BIAS:g}" if "lstm" in names else ""
    console.print(f"Training {', '.join(names)} on the language task: gap {gap}, up to {steps} "
                  f"steps each, seed {seed}; every model: hidden 64, Adam lr {LEARNING_RATE:g}, "
                  f"batch 64, clip 1{bias}. Denormals are flushed to zero.")
    if show_progress(quiet):
        columns = (TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            ids = {n: bar.add_task(n, total=steps, info="") for n in names}

            def update(name: str, step: int, info: dict) -> None:
                acc = f"acc {info['accuracy']:.2f}" if "accuracy" in info else None
                bar.update(ids[name], completed=step, **({"info": acc} if acc else {}))

            report = run_demo(gap, steps, seed, names, progress=update)
    else:
        report = run_demo(gap, steps, seed, names)
    console.print(f"\nexample: [italic]{report.sample}[/]\n")
    console.print(_table(report))
    _decay(report)
    console.print()
    for sentence in _sentences(report):
        console.print(sentence, soft_wrap=False)
    lag = len(report.models[0].start.norms) - 1 - COUNTRY_POSITION
    starts = {m.name: m.start.norms for m in report.models}
    f1 = plot_gradient_decay(starts, out / "gradient-decay.png", mark=lag, mark_label="country",
                             title=f"Gradient reaching back from the answer (gap {gap}, start "
                                   "of training)")
    f2 = plot_learning_curves({m.name: m.result.history for m in report.models},
                              out / "accuracy.png", chance=report.chance)
    console.print(f"\nfigures: {f1}, {f2}")
    if not np.all([np.isfinite(m.start.norms).all() for m in report.models]):
        console.print("note: some gradient norms were not finite", style="yellow")
