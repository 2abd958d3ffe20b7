"""``vanishing demo``: France -> French, trained, measured and explained."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import _checks
from ..demo import DEFAULT_GAP, DEFAULT_MODELS, DEFAULT_STEPS, DemoReport, check_arguments, run_demo
from ..report import demo_text
from ._common import check_writable_dir, console, handle_errors, rich_table, show_progress

__all__ = ["demo"]

GapOption = Annotated[int, typer.Option(help="Filler words between the country and the question.")]
StepsOption = Annotated[int, typer.Option(help="Training step budget per model.")]
SeedOption = Annotated[int, typer.Option(help="Seed for weights and data.")]
ModelsOption = Annotated[str, typer.Option(help="Comma-separated models to compare.")]
OutOption = Annotated[Path, typer.Option(help="Folder for the figures.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
ThreadsOption = Annotated[int, typer.Option(
    help="PyTorch CPU threads. 1 is as fast for these small models and does not collapse when "
         "other work shares the CPU.")]


@handle_errors
def demo(gap: GapOption = DEFAULT_GAP, steps: StepsOption = DEFAULT_STEPS, seed: SeedOption = 0,
         models: ModelsOption = ",".join(DEFAULT_MODELS), out: OutOption = Path("vanishing-out"),
         quiet: QuietOption = False, threads: ThreadsOption = 1) -> None:
    """Train a tanh RNN, an LSTM and a GRU on "I grew up in France ... and now I speak ___",
    then show how far back the gradient reaches in each."""
    names = [m.strip() for m in models.split(",") if m.strip()]
    check_arguments(gap, steps, seed, names)  # before any output, and before making --out
    torch.set_num_threads(_checks.positive_int("threads", threads))
    check_writable_dir(out, "--out")
    console.print(demo_text.banner(names, gap, steps, seed))
    report = _run(gap, steps, seed, names, quiet)
    console.print(f"\nexample: [italic]{escape(report.sample)}[/]\n")
    console.print(rich_table(demo_text.results_table(report), no_wrap=True))
    chart = demo_text.reach_chart(report)
    console.print(f"\n[bold]{escape(chart.title)}[/] {escape(chart.legend)}")
    for line in [*chart.rows, chart.marker]:
        console.print(escape(line))
    console.print()
    for sentence in demo_text.sentences(report):
        console.print(escape(sentence), soft_wrap=False)
    from ..report.figures import demo_figures  # matplotlib only once the figures are drawn

    console.print(f"\nfigures: {', '.join(escape(str(p)) for p in demo_figures(report, out))}")
    for note in demo_text.notes(report):
        console.print(escape(note), style="yellow")


def _run(gap: int, steps: int, seed: int, names: list[str], quiet: bool) -> DemoReport:
    """:func:`run_demo`, with a progress bar per model on a terminal."""
    if not show_progress(quiet):
        return run_demo(gap, steps, seed, names)
    columns = (TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        ids = {n: bar.add_task(n, total=steps, info="") for n in names}

        def update(name: str, step: int, info: dict) -> None:
            acc = f"acc {info['accuracy']:.2f}" if "accuracy" in info else None
            bar.update(ids[name], completed=step, **({"info": acc} if acc else {}))

        return run_demo(gap, steps, seed, names, progress=update)
