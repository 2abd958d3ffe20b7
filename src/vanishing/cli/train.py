"""``vanishing train``: one training run on a task, with an optional checkpoint."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import _checks
from ..device import resolve as resolve_device
from ..init import SCHEMES
from ..report.train_text import result_table
from ..train import TrainConfig, TrainResult, save_checkpoint, train
from ._common import (
    DeviceOption,
    check_writable_dir,
    console,
    handle_errors,
    rich_table,
    show_progress,
)

__all__ = ["train_command"]


@handle_errors
def train_command(
    task: Annotated[str, typer.Option(help="Task name (see `vanishing tasks`).")] = "language",
    model: Annotated[str, typer.Option(help="rnn_tanh, rnn_relu, irnn, lstm or gru.")] = "lstm",
    length: Annotated[int, typer.Option(help="The task's distance in time (language: the gap).")
                      ] = 20,
    steps: Annotated[int, typer.Option(help="Maximum optimisation steps (at most 10^7).")] = 2000,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 3e-3,
    optimizer: Annotated[str, typer.Option(help="sgd (W <- W - lr dL/dW) or adam.")] = "adam",
    hidden_size: Annotated[int, typer.Option(help="Hidden units per layer (at most 65536).")] = 64,
    batch_size: Annotated[int, typer.Option(help="Sequences per step.")] = 64,
    clip: Annotated[float, typer.Option(help="Gradient-norm clipping; 0 turns it off.")] = 1.0,
    init: Annotated[str | None, typer.Option(
        help=f"Initialisation: {', '.join(SCHEMES)} (chrono: T_max = --length).")] = None,
    radius: Annotated[float | None, typer.Option(help="Scale W_hh to this spectral radius.")
                      ] = None,
    forget_bias: Annotated[float | None, typer.Option(help="LSTM forget-gate bias.")] = None,
    truncate: Annotated[int | None, typer.Option(
        help="Truncated BPTT: detach the state every K steps (K >= 1).")] = None,
    floss: Annotated[float | None, typer.Option(
        help="Gradient flossing weight (> 0): pull the top Lyapunov exponent towards 0.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for weights and data.")] = 0,
    device: DeviceOption = "cpu",
    eval_every: Annotated[int, typer.Option(help="Steps between held-out evaluations.")] = 100,
    save: Annotated[Path | None, typer.Option(
        help="Write a checkpoint here (for `vanishing probe --checkpoint`; its folder must "
             "exist).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    threads: Annotated[int, typer.Option(help="PyTorch CPU threads.")] = 1,
) -> None:
    """Train one model on one task; print held-out metrics and optionally save a checkpoint."""
    if math.isnan(clip) or clip < 0:
        raise ValueError(f"clip must be >= 0 (0 turns clipping off), got {clip}")
    config = TrainConfig(task=task, model=model, length=length, steps=steps, lr=lr,
                         optimizer=optimizer, hidden_size=hidden_size, batch_size=batch_size,
                         clip=clip or None, init=init, radius=radius, forget_bias=forget_bias,
                         seed=seed, eval_every=eval_every, truncate=truncate,
                         floss=floss, device=device)
    resolve_device(device)
    torch.set_num_threads(_checks.positive_int("threads", threads))
    if save is not None:
        if save.exists() and not save.is_file():
            raise ValueError(f"--save {str(save)!r} exists and is not a file")
        if not save.parent.is_dir():  # as --html and --plot: a typo makes no folder
            raise ValueError(f"--save: folder {str(save.parent)!r} does not exist")
        check_writable_dir(save.parent, "--save's folder")
    result = _train(config, quiet)
    console.print(rich_table(result_table(result)))
    if save is not None:
        console.print(f"checkpoint: {escape(str(save_checkpoint(save, result)))}")


def _train(config: TrainConfig, quiet: bool) -> TrainResult:
    """:func:`train`, with a progress bar on a terminal."""
    if not show_progress(quiet):
        return train(config)
    columns = (TextColumn(config.model), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        job = bar.add_task(config.model, total=config.steps, loss="")
        return train(config, progress=lambda s, i: bar.update(
            job, completed=s, loss=f"{i['loss']:.4f}"))
