"""``vanishing sweep``: success against sequence length, resumable, locally or on Ray.

``vanishing sweep --task adding --models rnn_tanh,lstm --lengths 10,50,100 --seeds 3
--db results.sqlite`` trains every (model, length, lr, seed), stores each trial in the
SQLite file as it finishes, and prints a model x length table with figures. Rerunning it
skips finished trials. ``vanishing sweep --report results.sqlite`` redraws the tables and
figures from the store alone. Trials run in a pool of one process per CPU available unless
``--workers`` says otherwise (``--workers 1``: in this process), or on Ray with ``--ray``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import _checks
from ..report.sweep_figures import sweep_figures
from ..sweep import SweepSummary, check_ray_address, default_workers, grid, run_sweep
from ..sweep.store import check_path, open_store
from ..sweep.summary import SweepPoint, best_points, lr_text, summarize, table_rows, varying_fields
from ..tasks import get_task, task_names
from ..train import TrainConfig
from ._common import check_writable_dir, console, flag_errors, handle_errors, show_progress

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
            out.append(int(t))
        except ValueError:
            raise ValueError(f"--lengths must be comma-separated positive integers, "
                             f"got {t!r}") from None
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


def _trial_line(done: int, total: int, record: dict) -> str:
    c = record["config"]
    head = f"[{done}/{total}] {c['model']} T={c['length']} lr {lr_text(c['lr'])} seed {c['seed']}"
    if record["status"] == "failed":
        return f"{head}: failed: {record['message']}"
    if record["status"] == "diverged":
        what = "diverged"
    elif record["solved"]:
        what = f"solved at step {record['steps_to_solve']}"
    else:
        what = f"unsolved after {record['steps']} steps"
    loss = (record.get("final") or {}).get("loss", float("nan"))
    horizon = "" if record.get("horizon") is None else f", horizon {record['horizon']}"
    return f"{head}: {what}, loss {loss:.3g}{horizon} ({record['wall_time']:.1f} s)"


def _budget(cells: list[SweepPoint]) -> str:
    s = cells[0].setting
    clip = "no clipping" if s.get("clip") is None else f"clip {s['clip']:g}"
    heldout = ("the test split" if str(s.get("task", "")).startswith("digits")
               else f"{s.get('eval_size', '?')} held-out sequences")
    return (f"up to {s.get('steps', '?')} steps, hidden {s.get('hidden_size', '?')}, batch "
            f"{s.get('batch_size', '?')}, {s.get('optimizer', '?')}, {clip}, evaluated every "
            f"{s.get('eval_every', '?')} steps on {heldout}")


def _criterion(task: str) -> str:
    """`` (mse < 0.01)``: the task's success criterion, or nothing for a task this code
    does not know (a store written by another version): the report needs the store alone."""
    if task not in task_names():
        return ""
    criterion = getattr(get_task(task), "criterion", "") or "the task's criterion"
    return f" ({criterion})"


def _print_table(title: str, caption: str, header: list[str], rows: list[list[str]],
                 markdown: bool) -> None:
    if markdown:
        lines = [f"**{title}**", "", "| " + " | ".join(header) + " |",
                 "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += ["", caption, ""]
        for line in lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*(escape(v) for v in r))
    console.print(table)
    console.print(caption, style="dim", soft_wrap=False)


def _report(records: list[dict], out: Path, markdown: bool) -> None:
    """Tables (success, horizon) and figures of the best cell per (task, model, length),
    and the messages of failed trials."""
    cells = summarize(records)
    best = best_points(cells)
    for task in sorted({c.task for c in best}):
        mine = [c for c in best if c.task == task]
        lr_note = (" @lr: the best of the learning rates tried (most seeds solved, then "
                   "fewest steps)." if any(len(c.lrs_tried) > 1 for c in mine) else "")
        header, rows = table_rows(mine, "success")
        _print_table(f"{task}: seeds solved{_criterion(task)}",
                     f"solved / seeds (median steps to solve).{lr_note} Budget: "
                     f"{_budget(mine)}.", header, rows, markdown)
        header, rows = table_rows(mine, "horizon")
        _print_table(f"{task}: gradient horizon of the trained models",
                     "median largest lag k with ||dL/dh_(T-k)|| > 1e-3 ||dL/dh_T|| "
                     "(float64 probe, held-out batch), of T - 1", header, rows, markdown)
    mixed = varying_fields(cells)
    if mixed:
        console.print(f"note: this store mixes trials that differ in {', '.join(mixed)}; "
                      f"each table cell shows the best of them", style="yellow")
    failed = [r for r in records if r["status"] == "failed"]
    for r in failed[:5]:
        c = r["config"]
        console.print(escape(f"failed: {c['model']} T={c['length']} lr {lr_text(c['lr'])} "
                             f"seed {c['seed']}: {r['message']}"), style="yellow",
                      soft_wrap=True)
    if len(failed) > 5:
        console.print(f"... and {len(failed) - 5} more failed trials", style="yellow")
    paths = sweep_figures(best, out)
    console.print(f"figures: {', '.join(str(p) for p in paths)}", soft_wrap=True)


@handle_errors
def sweep(
    task: Annotated[str, typer.Option(help="Task to sweep (see `vanishing tasks`).")
                    ] = "adding",
    models: Annotated[str, typer.Option(help="Comma-separated models.")] = DEFAULT_MODELS,
    lengths: Annotated[str, typer.Option(help="Comma-separated sequence lengths T.")
                       ] = DEFAULT_LENGTHS,
    seeds: Annotated[int, typer.Option(help="Seeds per cell (0 .. seeds-1).")] = 5,
    steps: Annotated[int, typer.Option(help="Training step budget per trial (stops early "
                                            "once solved).")] = 3000,
    db: Annotated[Path | None, typer.Option(help="SQLite results store (created if missing; "
                                                 "finished trials are skipped).")] = None,
    workers: Annotated[int | None, typer.Option(
        help=f"Local worker processes; default: one per CPU available "
             f"({default_workers()} here). 1: run each trial in this process, one after "
             f"another. With --ray local: the CPUs Ray may use.")] = None,
    ray: Annotated[str | None, typer.Option(help="Run trials as Ray tasks: 'auto' (the "
                                                 "running cluster), a cluster address "
                                                 "HOST:PORT (must answer within 5 s), or "
                                                 "'local' (start Ray here).")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Rerun trials whose "
                                               "stored status is failed.")] = False,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = TrainConfig.lr,
    lrs: Annotated[str | None, typer.Option(help="Learning-rate grid, e.g. 1e-3,3e-3,1e-2 "
                                                 "(every model) or irnn:1e-4,lstm:1e-2 (per "
                                                 "model; models not named use --lr); tables "
                                                 "show the best per cell.")
                   ] = None,
    hidden_size: Annotated[int, typer.Option(help="Hidden units.")] = TrainConfig.hidden_size,
    batch_size: Annotated[int, typer.Option(help="Sequences per step.")
                          ] = TrainConfig.batch_size,
    optimizer: Annotated[str, typer.Option(help="sgd or adam.")] = TrainConfig.optimizer,
    clip: Annotated[float, typer.Option(help="Gradient-norm clipping threshold; 0: none.")
                    ] = 1.0,
    eval_every: Annotated[int, typer.Option(help="Steps between held-out evaluations (the "
                                                 "resolution of steps-to-solve).")
                          ] = TrainConfig.eval_every,
    report: Annotated[Path | None, typer.Option(help="Redraw tables and figures from this "
                                                     "store alone (no training).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the figures.")] = Path("vanishing-out"),
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the tables as "
                                           "Markdown.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Sweep success against sequence length: every model x length x seed, stored in SQLite,
    resumable, on local processes or on Ray."""
    if report is not None:
        if db is not None:
            raise ValueError("give either --db (run a sweep) or --report (redraw one), not both")
        with flag_errors("--report"), open_store(report, readonly=True) as store:
            records = store.records()
        if not records:
            raise ValueError(f"{str(report)!r} holds no trials yet")
        check_writable_dir(out, "--out")
        _report(records, out, markdown)
        return
    if db is None:
        raise ValueError("give --db PATH to run a sweep (or --report PATH to redraw one)")
    names = [m.strip() for m in models.split(",") if m.strip()]
    if clip < 0:
        raise ValueError(f"--clip must be >= 0 (0: no clipping), got {clip}")
    configs = grid(task, names, parse_lengths(lengths), seeds,
                   lrs=None if lrs is None else parse_lrs(lrs, names), lr=lr, steps=steps,
                   hidden_size=hidden_size, batch_size=batch_size, optimizer=optimizer,
                   clip=clip or None, eval_every=eval_every)
    workers = default_workers() if workers is None else workers
    _checks.positive_int("workers", workers)
    if ray is not None:
        check_ray_address(ray)  # an address where nothing listens fails now, not in minutes
    check_writable_dir(out, "--out")
    with flag_errors("--db"):  # a bad path or a foreign file fails now, creating nothing:
        check_path(db)         # run_sweep reaches Ray before it creates the store
    where = f"Ray ({ray})" if ray else f"{workers} worker processes" if workers > 1 else \
        "this process"
    console.print(f"Sweep: {len(configs)} trials of {task} ({', '.join(names)}) into {db}, "
                  f"on {where}. Denormals are flushed to zero.", soft_wrap=True)
    summary = _run(configs, db, workers, ray, retry_failed, quiet)
    console.print(f"ran {summary.ran} trials ({summary.failed} failed) in "
                  f"{summary.wall_time:.0f} s; {summary.skipped} were already in {db}.")
    with open_store(db, readonly=True) as store:
        records = store.records(summary.keys)
    _report(records, out, markdown)
    failed = sum(r["status"] == "failed" for r in records)
    if failed:
        console.print(f"{failed} trials failed; rerun them with --retry-failed", style="yellow")
        raise typer.Exit(1)


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
                           info=escape(_trial_line(done, total, record).split("] ", 1)[1]))

            return run_sweep(configs, db, workers=workers, ray=ray,
                             retry_failed=retry_failed, progress=update)

    def line(done: int, total: int, record: dict) -> None:
        console.print(escape(_trial_line(done, total, record)), soft_wrap=True)

    return run_sweep(configs, db, workers=workers, ray=ray, retry_failed=retry_failed,
                     progress=None if quiet else line)

