"""``vanishing tasks``: list the long-term-dependency tasks, or show a decoded sample.

``vanishing tasks`` (or ``vanishing tasks list``) prints one row per registered task:
its input and output, its chance-level loss at a stated length, when it counts as
solved, and its source. ``vanishing tasks show NAME --length N`` prints one sample.
``vanishing tasks guess --length N`` runs the random-weight-guessing baseline on the
latch task (Schmidhuber & Hochreiter 1996), the reason latch is a weak benchmark.
"""

from __future__ import annotations

import ast
import math
from typing import Annotated

import torch
import typer
from rich.markup import escape
from rich.table import Table

from .. import _checks
from ..tasks import Task, get_task, task_names
from ._common import console, handle_errors

__all__ = ["tasks_app", "list_tasks", "show", "guess", "parse_options", "default_length",
           "criterion", "MAX_SHOW_LENGTH"]

MAX_SHOW_LENGTH = 10_000  # `show` prints every step of the sample; `guess` reads it per guess
#: Longest value of one ``-o KEY=VALUE`` (the parser recurses on nested literals).
MAX_OPTION_VALUE = 1000
_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}

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
    """The task's ``solved`` rule as the task words it (:attr:`Task.criterion`)."""
    return task.criterion or "see the task's docs"


def parse_options(pairs: list[str] | None) -> dict:
    """``["split=test", "pairs=4"]`` -> ``{"split": "test", "pairs": 4}``.

    Values are Python literals; true/false (yes/no, on/off, any case) are booleans; any
    other bare word is a string. The task itself checks each value's type.
    """
    options = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"task option must look like KEY=VALUE, got {pair!r}")
        raw = raw.strip()
        if len(raw) > MAX_OPTION_VALUE:
            raise ValueError(f"task option {key.strip()!r}: the value must be at most "
                             f"{MAX_OPTION_VALUE} characters, got {len(raw):,}")
        try:
            value = _WORDS[raw.lower()] if raw.lower() in _WORDS else ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw  # a bare word such as test
        except (RecursionError, MemoryError):  # nested past what the parser can hold
            raise ValueError(f"task option {key.strip()!r}: the value is nested too deeply "
                             "to read") from None
        if key.strip() in options:
            raise ValueError(f"task option {key.strip()!r} is given twice; give it once")
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
    if n > MAX_SHOW_LENGTH:
        raise ValueError(f"--length: show prints every step; at most {MAX_SHOW_LENGTH:,}, "
                         f"got {n:,}")
    x, y = task.sample(n, 1, torch.Generator().manual_seed(seed))
    console.print(f"[bold]{escape(name)}[/]: {escape(task.describe())}")
    console.print(f"source: {escape(task.source)}")
    console.print(f"length {n}: x {tuple(x.shape)} {x.dtype}, y {tuple(y.shape)} {y.dtype}; "
                  f"chance loss {task.chance_loss(n):.4f}; solved when "
                  f"{escape(criterion(task))}")
    console.print()
    console.print(escape(task.decode(x, y, 0)), soft_wrap=True)


@tasks_app.command("guess")
@handle_errors
def guess(
    lengths: Annotated[list[int] | None, typer.Option(
        "--length", "-L", help="Latch length L, repeatable.")] = None,
    seeds: Annotated[int, typer.Option(help="Independent searches per length.")] = 3,
    trials: Annotated[int, typer.Option(help="Most guesses per search.")] = 10_000,
    hidden_size: Annotated[int, typer.Option(
        help="Units of the guessed tanh RNN (at most 65536).")] = 1,
    scale: Annotated[float, typer.Option(help="Weights are drawn from U[-scale, scale].")
                     ] = 10.0,
) -> None:
    """Solve the latch task by guessing every weight at random (no gradients at all).

    Schmidhuber & Hochreiter 1996: repeat drawing all weights of a tiny RNN until it
    solves the task. If guessing needs few tries, the task does not measure what
    gradient descent can learn across time.
    """
    from ..tasks.latch import LatchTask, random_guessing

    lengths = lengths or [100, 300]
    for n in lengths:
        _checks.positive_int("--length", n)
        if n > MAX_SHOW_LENGTH:
            raise ValueError(f"--length: at most {MAX_SHOW_LENGTH:,} (each guess reads 256 "
                             f"sequences of that length), got {n:,}")
    _checks.positive_int("--seeds", seeds)
    table = Table(title=f"Random weight guessing on latch ({hidden_size}-unit tanh RNN, "
                        f"weights U[-{scale:g}, {scale:g}], up to {trials:,} guesses)",
                  caption=f"solved = {LatchTask().criterion} on a search set and on fresh "
                          "sequences")
    for col in ("length", "solved", "guesses per seed", "median guesses"):
        table.add_column(col, justify="left" if col == "guesses per seed" else "right")
    for n in lengths:
        found = [random_guessing(n, trials=trials, hidden_size=hidden_size, scale=scale,
                                 generator=torch.Generator().manual_seed(seed))
                 for seed in range(seeds)]
        # an unsolved search counts as more guesses than any solved one
        ranked = sorted(r.trials_used if r.solved else math.inf for r in found)
        median = ranked[(seeds - 1) // 2]  # the lower median: a count that was measured
        per_seed = ", ".join(str(r.trials_used) if r.solved else f">{r.trials_used}"
                             for r in found)
        solved = sum(r.solved for r in found)
        table.add_row(str(n), f"{solved}/{seeds}", per_seed,
                      "-" if math.isinf(median) else str(median))
    console.print(table)
