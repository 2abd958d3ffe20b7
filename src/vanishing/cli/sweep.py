"""``vanishing sweep``: success against sequence length, resumable, locally or on Ray.

``vanishing sweep --task adding --models rnn_tanh,lstm --lengths 10,50,100 --seeds 3
--db results.sqlite`` trains every (model, length, lr, seed), stores each trial in the
SQLite file as it finishes, and prints a model x length table with figures. Rerunning it
skips finished trials. ``vanishing sweep --report results.sqlite`` redraws the tables and
figures from the store alone. Trials run in a pool of one process per CPU available unless
``--workers`` says otherwise (``--workers 1``: in this process), or on Ray with ``--ray``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import _checks
from ..device import resolve as resolve_device
from ..report import sweep_text as text_of
from ..report.html import Provenance, check_html_path
from ..report.sweep_text import SweepText, sweep_text, trial_line
from ..report.tables import TextTable, markdown_lines
from ..sweep import SweepSummary, check_ray_address, default_workers, grid, run_sweep
from ..sweep.store import FINISHED, check_path, open_store
from ..train import TrainConfig
from ._common import (
    DeviceOption,
    check_int,
    check_writable_dir,
    command_line,
    console,
    flag_errors,
    handle_errors,
    rich_table,
    show_progress,
    write_report,
)

__all__ = ["sweep", "parse_lengths", "parse_lrs"]

DEFAULT_MODELS = "rnn_tanh,irnn,lstm,gru"
DEFAULT_LENGTHS = "10,20,50,100,200"


def parse_lengths(text: str) -> list[int]:
    """``"10,20,50"`` -> ``[10, 20, 50]``; anything else is a one-line ValueError."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"--lengths must be comma-separated positive integers, got {text!r}")
    out = []
    for t in items:
        try:
            value = int(t)
        except ValueError:
            raise ValueError(f"--lengths must be comma-separated positive integers, "
                             f"got {t!r}") from None
        out.append(check_int("--lengths", value))
    return out


def parse_lrs(text: str, models: list[str]) -> dict[str, list[float]]:
    """``"1e-3,3e-3"`` (every model) or ``"irnn:1e-4,lstm:1e-2,lstm:3e-3"`` (per model;
    a model not named gets the unqualified values; with none, it is left out of the result
    and runs at ``--lr``) -> model -> lrs."""
    shared: list[float] = []
    named: dict[str, list[float]] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        model, sep, value = item.rpartition(":")
        try:
            lr = float(value)
        except ValueError:
            raise ValueError(f"--lrs items must be LR or MODEL:LR, got {item!r}") from None
        if sep and model.strip() not in models:
            raise ValueError(f"--lrs names model {model.strip()!r}, which is not in --models "
                             f"({', '.join(models)})")
        (named.setdefault(model.strip(), []) if sep else shared).append(lr)
    if not shared and not named:
        raise ValueError(f"--lrs must list learning rates, got {text!r}")
    return {m: named.get(m, shared) for m in models if named.get(m, shared)}


def _print_table(table: TextTable, markdown: bool) -> None:
    if markdown:
        for line in markdown_lines(table):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    console.print(rich_table(table, caption=False))
    console.print(escape(table.caption), style="dim", soft_wrap=False)


def _report(records: list[dict], out: Path, markdown: bool) -> SweepText:
    """Tables (success, horizon) and figures of the best point per (task, model, length),
    and the messages of failed trials; returns what was printed."""
    text = sweep_text(records)
    for table in text.tables:
        _print_table(table, markdown)
    for line in text.notes + text.failures:
        console.print(escape(line), style="yellow", soft_wrap=True)
    from ..report.sweep_figures import sweep_figures  # matplotlib only once drawing

    paths = sweep_figures(text.points, out)
    console.print(escape(f"figures: {', '.join(str(p) for p in paths)}"), soft_wrap=True)
    return text


def _write_html(ctx: typer.Context, html: Path, text: SweepText, records: list[dict],
                db: Path, began: float) -> None:
    """The HTML report of what :func:`_report` printed."""
    from ..report.pages import sweep_page

    provenance = Provenance(command_line(ctx), text_of.seeds_text(records),
                            time.perf_counter() - began, text_of.configuration(records, db))
    write_report(html, sweep_page(text, provenance))


TaskOption = Annotated[str, typer.Option(help="Task to sweep (see `vanishing tasks`).")]
ModelsOption = Annotated[str, typer.Option(help="Comma-separated models.")]
LengthsOption = Annotated[str, typer.Option(help="Comma-separated sequence lengths T.")]
SeedsOption = Annotated[int, typer.Option(help="Seeds per cell (0 .. seeds-1).")]
StepsOption = Annotated[int, typer.Option(
    help="Training step budget per trial (stops early once solved).")]
DbOption = Annotated[Path | None, typer.Option(
    help="SQLite results store (created if missing; finished trials are skipped).")]
WorkersOption = Annotated[int | None, typer.Option(
    help=f"Local worker processes; default: one per CPU available ({default_workers()} "
         f"here). 1: run each trial in this process, one after another. With --ray local: "
         f"the CPUs Ray may use.")]
RayOption = Annotated[str | None, typer.Option(
    help="Run trials as Ray tasks: 'auto' (the running cluster), a cluster address HOST:PORT "
         "(must answer within 5 s), or 'local' (start Ray here).")]
RetryOption = Annotated[bool, typer.Option(
    "--retry-failed", help="Rerun trials whose stored status is failed.")]
LrOption = Annotated[float, typer.Option(help="Learning rate.")]
LrsOption = Annotated[str | None, typer.Option(
    help="Learning-rate grid, e.g. 1e-3,3e-3,1e-2 (every model) or irnn:1e-4,lstm:1e-2 (per "
         "model; models not named use --lr); tables show the best per cell.")]
HiddenOption = Annotated[int, typer.Option(help="Hidden units (at most 65536).")]
BatchOption = Annotated[int, typer.Option(help="Sequences per step.")]
OptimizerOption = Annotated[str, typer.Option(help="sgd or adam.")]
ClipOption = Annotated[float, typer.Option(help="Gradient-norm clipping threshold; 0: none.")]
EvalEveryOption = Annotated[int, typer.Option(
    help="Steps between held-out evaluations (the resolution of steps-to-solve).")]
ReportOption = Annotated[Path | None, typer.Option(
    help="Redraw tables and figures from this store alone (no training).")]
HtmlOption = Annotated[Path | None, typer.Option(
    help="Also write the tables and figures as one self-contained HTML file here (its "
         "folder must exist).")]
OutOption = Annotated[Path, typer.Option(help="Folder for the figures.")]
MarkdownOption = Annotated[bool, typer.Option("--markdown", help="Print the tables as Markdown.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


@handle_errors
def sweep(ctx: typer.Context, task: TaskOption = "adding", models: ModelsOption = DEFAULT_MODELS,
          lengths: LengthsOption = DEFAULT_LENGTHS, seeds: SeedsOption = 5,
          steps: StepsOption = 3000, db: DbOption = None, workers: WorkersOption = None,
          ray: RayOption = None, retry_failed: RetryOption = False,
          lr: LrOption = TrainConfig.lr, lrs: LrsOption = None,
          hidden_size: HiddenOption = TrainConfig.hidden_size,
          batch_size: BatchOption = TrainConfig.batch_size,
          optimizer: OptimizerOption = TrainConfig.optimizer, clip: ClipOption = 1.0,
          eval_every: EvalEveryOption = TrainConfig.eval_every, report: ReportOption = None,
          out: OutOption = Path("vanishing-out"), markdown: MarkdownOption = False,
          html: HtmlOption = None, quiet: QuietOption = False,
          device: DeviceOption = "cpu") -> None:
    """Sweep success against sequence length: every model x length x seed, stored in SQLite,
    resumable, on local processes or on Ray."""
    began = time.perf_counter()
    if report is not None:
        if db is not None:
            raise ValueError("give either --db (run a sweep) or --report (redraw one), not both")
        if html is not None:
            check_html_path(html)
        records, text = _redraw(report, out, markdown)
        if html is not None:
            _write_html(ctx, html, text, records, report, began)
        return
    if db is None:
        raise ValueError("give --db PATH to run a sweep (or --report PATH to redraw one)")
    names = [m.strip() for m in models.split(",") if m.strip()]
    if clip < 0:
        raise ValueError(f"--clip must be >= 0 (0: no clipping), got {clip}")
    configs = grid(task, names, parse_lengths(lengths), seeds,
                   lrs=None if lrs is None else parse_lrs(lrs, names), lr=lr, steps=steps,
                   hidden_size=hidden_size, batch_size=batch_size, optimizer=optimizer,
                   clip=clip or None, eval_every=eval_every,
                   **({} if device == "cpu" else {"device": device}))
    resolve_device(device)
    workers = _checks.positive_int("workers", default_workers() if workers is None else workers)
    if html is not None:
        check_html_path(html)
    if ray is not None:
        check_ray_address(ray)  # an address where nothing listens fails now, not in minutes
    with flag_errors("--db"):  # a bad path or a foreign file fails now, creating nothing:
        check_path(db)         # run_sweep reaches Ray before it creates the store
    check_writable_dir(out, "--out")  # after every refusal that creates nothing
    where = f"Ray ({ray})" if ray else f"{workers} worker processes" if workers > 1 else \
        "this process"
    console.print(escape(f"Sweep: {len(configs)} trials of {task} ({', '.join(names)}) into "
                         f"{db}, on {where}. Denormals are flushed to zero."), soft_wrap=True)
    summary = _run(configs, db, workers, ray, retry_failed, quiet)
    console.print(escape(f"ran {summary.ran} trials ({summary.failed} failed) in "
                         f"{summary.wall_time:.0f} s; {summary.skipped} were already in {db}."))
    with open_store(db, readonly=True) as store:
        records = store.records(summary.keys)
    text = _report(records, out, markdown)
    if html is not None:
        _write_html(ctx, html, text, records, db, began)
    failed = sum(r["status"] == "failed" for r in records)
    if failed:
        console.print(f"{failed} trials failed; rerun them with --retry-failed", style="yellow")
        raise typer.Exit(1)


def _redraw(report: Path, out: Path, markdown: bool) -> tuple[list[dict], SweepText]:
    """``--report``: the tables and figures of a store, from its rows alone (refused,
    before anything is written, when it holds no finished trial)."""
    with flag_errors("--report"), open_store(report, readonly=True) as store:
        records = store.records()
    if not records:
        raise ValueError(f"--report {str(report)!r} holds no trials yet")
    if not any(r["status"] in FINISHED for r in records):
        raise ValueError(f"--report {str(report)!r} holds no finished trials ({len(records)} "
                         f"failed; rerun them with --retry-failed)")
    check_writable_dir(out, "--out")
    return records, _report(records, out, markdown)


def _run(configs: list[TrainConfig], db: Path, workers: int, ray: str | None,
         retry_failed: bool, quiet: bool) -> SweepSummary:
    """``run_sweep`` with a progress bar on a terminal, else a line per trial."""
    if show_progress(quiet):
        columns = (TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            ids: list = []

            def update(done: int, total: int, record: dict) -> None:
                if not ids:
                    ids.append(bar.add_task("trials", total=total, info=""))
                bar.update(ids[0], completed=done,
                           info=escape(trial_line(done, total, record).split("] ", 1)[1]))

            return run_sweep(configs, db, workers=workers, ray=ray,
                             retry_failed=retry_failed, progress=update)

    def line(done: int, total: int, record: dict) -> None:
        console.print(escape(trial_line(done, total, record)), soft_wrap=True)

    return run_sweep(configs, db, workers=workers, ray=ray, retry_failed=retry_failed,
                     progress=None if quiet else line)
