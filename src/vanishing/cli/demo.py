"""``vanishing demo``: France -> French, trained, measured and explained."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import _checks
from ..demo import (
    DEFAULT_GAP,
    DEFAULT_MODELS,
    DEFAULT_STEPS,
    DemoReport,
    check_arguments,
    run_demo,
    save_models,
)
from ..device import resolve as resolve_device
from ..report import connectivity as conn
from ..report import demo_text
from ..report.html import Provenance, check_html_path
from ._common import (
    DeviceOption,
    check_writable_dir,
    command_line,
    console,
    handle_errors,
    rich_table,
    show_progress,
    write_report,
)

__all__ = ["demo"]

GapOption = Annotated[int, typer.Option(help="Filler words between the country and the question.")]
StepsOption = Annotated[int, typer.Option(help="Training step budget per model (at most 10^7).")]
SeedOption = Annotated[int, typer.Option(help="Seed for weights and data.")]
ModelsOption = Annotated[str, typer.Option(help="Comma-separated models to compare.")]
OutOption = Annotated[Path, typer.Option(help="Folder for the figures (and report.html).")]
HtmlOption = Annotated[Path | None, typer.Option(
    help="Write the HTML report here (its folder must exist); default: report.html in --out.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
ThreadsOption = Annotated[int, typer.Option(
    help="PyTorch CPU threads. 1 is as fast for these small models and does not collapse when "
         "other work shares the CPU.")]


@handle_errors
def demo(ctx: typer.Context, gap: GapOption = DEFAULT_GAP, steps: StepsOption = DEFAULT_STEPS,
         seed: SeedOption = 0, models: ModelsOption = ",".join(DEFAULT_MODELS),
         out: OutOption = Path("vanishing-out"), html: HtmlOption = None,
         quiet: QuietOption = False, threads: ThreadsOption = 1,
         device: DeviceOption = "cpu") -> None:
    """Train a tanh RNN, an LSTM and a GRU on "I grew up in France ... and now I speak ___",
    then show how far back the gradient reaches in each (terminal, figures, report.html)."""
    began = time.perf_counter()
    names = [m.strip() for m in models.split(",") if m.strip()]
    check_arguments(gap, steps, seed, names)  # before any output, and before making --out
    resolve_device(device)
    torch.set_num_threads(_checks.positive_int("threads", threads))
    if html is not None:
        check_html_path(html)
    check_writable_dir(out, "--out")
    console.print(demo_text.banner(names, gap, steps, seed))
    report = _run(gap, steps, seed, names, quiet, device)
    console.print(f"\nexample: [italic]{escape(report.sample)}[/]\n")
    console.print(rich_table(demo_text.results_table(report), no_wrap=True))
    chart = demo_text.reach_chart(report)
    console.print(f"\n[bold]{escape(chart.title)}[/] {escape(chart.legend)}")
    for line in [*chart.rows, chart.marker]:
        console.print(escape(line))
    console.print()
    for sentence in demo_text.sentences(report):
        console.print(escape(sentence), soft_wrap=False)
    view = demo_text.connectivity_view(report)
    if view is not None:
        _print_connectivity(view)
    from ..report.figures import demo_figures  # matplotlib only once the figures are drawn
    from ..report.pages import demo_page

    console.print(f"\nfigures: {', '.join(escape(str(p)) for p in demo_figures(report, out))}")
    saved = save_models(report, out / "models")  # what `vanishing explore` reads (--models)
    console.print(f"models: {', '.join(escape(str(p)) for p in saved)}")
    for note in demo_text.notes(report):
        console.print(escape(note), style="yellow")
    provenance = Provenance(command_line(ctx), str(seed), time.perf_counter() - began,
                            demo_text.configuration(report))
    write_report(out / "report.html" if html is None else html, demo_page(report, provenance))


def _print_connectivity(view: demo_text.ConnectivityView) -> None:
    """The example sentence per model and moment, each word on its shade; without colour
    (NO_COLOR, or not a terminal) each word's share in brackets."""
    plain = console.no_color or console.color_system is None
    console.print(f"\n[bold]{escape(view.title)}[/]: {escape(view.legend)}"
                  + ("; the share in brackets" if plain else ""))
    if not plain:
        console.print(conn.scale_rich(view.scale))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column()
    for i, name in enumerate(view.columns):
        for label, views in view.rows:
            v = views[i]
            grid.add_row(name if label == view.rows[0][0] else "", label,
                         escape(conn.to_plain(v)) if plain else conn.to_rich(v, view.scale))
    console.print(grid)
    console.print(escape(view.sentence))


def _run(gap: int, steps: int, seed: int, names: list[str], quiet: bool, device: str
         ) -> DemoReport:
    """:func:`run_demo`, with a progress bar per model on a terminal."""
    if not show_progress(quiet):
        return run_demo(gap, steps, seed, names, device=device)
    columns = (TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        ids = {n: bar.add_task(n, total=steps, info="") for n in names}

        def update(name: str, step: int, info: dict) -> None:
            acc = f"acc {info['accuracy']:.2f}" if "accuracy" in info else None
            bar.update(ids[name], completed=step, **({"info": acc} if acc else {}))

        return run_demo(gap, steps, seed, names, progress=update, device=device)
