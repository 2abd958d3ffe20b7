"""``vanishing tasks``: list the long-term-dependency tasks, or show a decoded sample.

``vanishing tasks`` (or ``vanishing tasks list``) prints one row per registered task:
its input and output, its chance-level loss at a stated length, when it counts as
solved, and its source. ``vanishing tasks show NAME --length N`` prints one sample.
"""

from __future__ import annotations

import ast
from typing import Annotated

import torch
import typer
from rich.markup import escape
from rich.table import Table

from .. import _checks
from ..tasks import Task, get_task, task_names
from ._common import console, handle_errors

__all__ = ["tasks_app", "list_tasks", "show", "parse_options", "default_length", "criterion"]

tasks_app = typer.Typer(
    help="The long-term-dependency tasks: list them with their baselines, or show a sample.",
    no_args_is_help=False,
)

LengthOption = Annotated[
    int | None,
    typer.Option("--length", "-L", help="The task's length (distance in time); "
                 "default: each task's typical length, shown in the table."),
]


def default_length(task: Task) -> int:
    """The task's typical length (never below its layout's minimum)."""
    return max(task.min_length, task.default_length)


def criterion(task: Task) -> str:
    """The task's ``solved`` rule as text."""
    return task.criterion or "see the task's docs"


def parse_options(pairs: list[str] | None) -> dict:
    """``["split=test", "pairs=4"]`` -> ``{"split": "test", "pairs": 4}`` (Python literals)."""
    options = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"task option must look like KEY=VALUE, got {pair!r}")
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()  # a bare word such as test
        options[key.strip()] = value
    return options


def _io(task: Task) -> tuple[str, str]:
    n = task.input_size
    inp = f"1 of {n} tokens" if task.tokens else f"{n} float{'s' if n != 1 else ''}"
    out = f"{task.output_size} at the end" if task.readout == "last" else \
        f"{task.output_size} per step"
    return inp, out


def _list(length: int | None) -> None:
    table = Table(title="Long-term-dependency tasks (chance = loss of the best input-blind "
                        "predictor, by formula)")
    for col in ("task", "input / step", "output", "chance loss @ length", "solved when"):
        table.add_column(col, justify="right" if col.startswith("chance") else "left")
    if length is not None:
        _checks.nonneg_int("length", length)
    notes, sources = [], []
    for name in task_names():
        task = get_task(name)
        n = default_length(task) if length is None else length
        try:
            task.check(n, 1, torch.Generator())
            chance = f"{task.chance_loss(n):.4f} @ {n}"
        except ValueError as exc:
            chance = "-"
            notes.append(str(exc))
        table.add_row(name, *_io(task), chance, escape(criterion(task)))
        sources.append(f"  {name}: {escape(task.source)}")
    console.print(table)
    for note in notes:
        console.print(f"  note: {escape(note)}")
    console.print("Sources:")
    for line in sources:
        console.print(line)


@tasks_app.callback(invoke_without_command=True)
@handle_errors
def tasks_main(ctx: typer.Context, length: LengthOption = None) -> None:
    """List the tasks with their baselines (the default), or run a subcommand."""
    if ctx.invoked_subcommand is None:
        _list(length)


@tasks_app.command("list")
@handle_errors
def list_tasks(length: LengthOption = None) -> None:
    """List the tasks: input, output, chance loss at a length, solved criterion, source."""
    _list(length)


@tasks_app.command("show")
@handle_errors
def show(
    name: Annotated[str, typer.Argument(help="Task name, as listed by `vanishing tasks`.")],
    length: LengthOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the generator that draws the sample.")] = 0,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Task option KEY=VALUE, repeatable "
                     "(e.g. -o split=test for digits, -o distractors=True for language)."),
    ] = None,
) -> None:
    """Print one decoded sample of a task, with its shapes and chance loss."""
    task = get_task(name, **parse_options(option))
    n = default_length(task) if length is None else length
    if isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    x, y = task.sample(n, 1, torch.Generator().manual_seed(seed))
    console.print(f"[bold]{escape(name)}[/]: {escape(task.describe())}")
    console.print(f"source: {escape(task.source)}")
    console.print(f"length {n}: x {tuple(x.shape)} {x.dtype}, y {tuple(y.shape)} {y.dtype}; "
                  f"chance loss {task.chance_loss(n):.4f}; solved when "
                  f"{escape(criterion(task))}")
    console.print()
    console.print(escape(task.decode(x, y, 0)), soft_wrap=True)
