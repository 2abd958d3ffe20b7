"""``vanishing probe``: how far back the gradient reaches in a model, as a table and a verdict.

The command parses and checks its options, builds (:func:`vanishing.train.build`) or
loads the model, sets the probe up (:func:`vanishing.train.probe_inputs`), calls
:func:`vanishing.diagnose.diagnose`, and prints :mod:`vanishing.report.probe_text`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, NamedTuple

import torch
import typer
from rich import box
from rich.markup import escape
from torch import nn

from vanishing import _checks
from vanishing.cli._common import (
    DeviceOption,
    command_line,
    console,
    handle_errors,
    rich_table,
    write_report,
)
from vanishing.device import resolve as resolve_device
from vanishing.diagnose import diagnose
from vanishing.init import SCHEMES
from vanishing.models import MODELS
from vanishing.report import probe_text
from vanishing.report.connectivity import Connectivity, task_connectivity
from vanishing.report.html import Provenance, check_html_path
from vanishing.tasks import Task, get_task, task_names
from vanishing.tasks.base import MAX_LENGTH
from vanishing.train import (
    TrainConfig,
    build,
    build_model_for,
    load_checkpoint,
    probe_generator,
    probe_inputs,
)

__all__ = ["probe"]

#: Formats ``--plot`` can write (matplotlib picks the format from the extension).
PLOT_FORMATS = (".png", ".pdf", ".svg")
#: Model sizes when not given, in the order of the options (--hidden-size, --input-size,
#: --layers): hidden units, features a step of the random input, recurrent layers.
DEFAULT_SIZES = {"hidden_size": 64, "input_size": 8, "num_layers": 1}
_NOT_WITH_CHECKPOINT = " Not with --checkpoint."
ModelOption = Annotated[str | None, typer.Option(
    help=f"Model to build: {', '.join(MODELS)} (default rnn_tanh).{_NOT_WITH_CHECKPOINT}")]
LengthOption = Annotated[int | None, typer.Option(
    help="Sequence length T, >= 2 (for --task: the task's length, within the task's "
         "limits). Default 200, or the checkpoint's length.")]
CheckpointOption = Annotated[Path | None, typer.Option(
    help="Probe a trained model saved by `vanishing train` (its task gives the input).")]
TaskOption = Annotated[str | None, typer.Option(
    "--task", help=f"Draw the input from a task and use its loss: {', '.join(task_names())}. "
                   "Default: random N(0, 1) input and the sum of the last output as the loss."
                   f"{_NOT_WITH_CHECKPOINT}")]
InitOption = Annotated[str | None, typer.Option(
    help=f"Initialisation: {', '.join(SCHEMES)} (default: the model's preset)."
         f"{_NOT_WITH_CHECKPOINT}")]
RadiusOption = Annotated[float | None, typer.Option(
    help=f"Rescale W_hh to this spectral radius (> 0).{_NOT_WITH_CHECKPOINT}")]
HiddenOption = Annotated[int | None, typer.Option(
    help=f"Hidden units H (default 64, at most 65536).{_NOT_WITH_CHECKPOINT}")]
InputOption = Annotated[int | None, typer.Option(
    help="Features per step of the random input (default 8). Not with --task or "
         "--checkpoint.")]
LayersOption = Annotated[int | None, typer.Option(
    help=f"Stacked recurrent layers (default 1).{_NOT_WITH_CHECKPOINT}")]
BatchOption = Annotated[int, typer.Option(help="Sequences in the probe batch.")]
SeedOption = Annotated[int, typer.Option(help="Seeds the weights and the probe batch.")]
ThresholdOption = Annotated[float, typer.Option(
    help="Horizon threshold in (0, 1): ||dL/dh_t|| / ||dL/dh_T|| above this.")]
MaxLagOption = Annotated[int, typer.Option(
    help="Largest lag resolved in the split of dL/dW_hh (Elman RNNs).")]
RowsOption = Annotated[int, typer.Option(
    help="About how many table rows to show (0: every step).")]
PlotOption = Annotated[Path | None, typer.Option(
    help="Save a figure of the gradient through time here (.png, .pdf or .svg).")]
HtmlOption = Annotated[Path | None, typer.Option(
    help="Write a self-contained HTML report here (its folder must exist): the table, the "
         "figure, the diagnosis and, for token input, which tokens the gradient reaches.")]


class _Probed(NamedTuple):
    """The model to probe, described for the heading, with the task that feeds it."""

    what: str
    net: nn.Module
    task_name: str | None
    task: Task | None
    length: int


@handle_errors
def probe(ctx: typer.Context, model: ModelOption = None, length: LengthOption = None,
          checkpoint: CheckpointOption = None, task_name: TaskOption = None,
          init: InitOption = None, radius: RadiusOption = None,
          hidden_size: HiddenOption = None, input_size: InputOption = None,
          layers: LayersOption = None, batch: BatchOption = 16, seed: SeedOption = 0,
          threshold: ThresholdOption = 1e-3, max_lag: MaxLagOption = 200,
          rows: RowsOption = 16, plot: PlotOption = None, html: HtmlOption = None,
          device: DeviceOption = "cpu") -> None:
    """Probe the gradient through time: dL/dh_t for every step, in one backward pass.

    Prints ||dL/dh_t|| against the distance back T - t, the horizon (how far back it
    stays above --threshold of the last step's), the decay rate, the Jacobian product
    ||dh_T/dh_t||_2 and its Lyapunov exponents, W_hh against Pascanu et al. 2013's
    condition, the share of the W_hh update from long lags, and a diagnosis. Runs in
    float64 with denormal floats flushed to zero (for speed). The Jacobian norms are
    computed in log space, so even 1e-1000 is reported as itself; ||dL/dh_t|| is a
    float64 number and shows as "underflow" once it underflows float64.
    """
    began = time.perf_counter()
    shape = {"--hidden-size": hidden_size, "--input-size": input_size, "--layers": layers}
    _check_usage(batch, max_lag, rows, threshold, plot, shape)
    where = resolve_device(device)
    if html is not None:
        check_html_path(html)
    if checkpoint is not None:
        _refuse_with_checkpoint({"--model": model, "--task": task_name, "--init": init,
                                 "--radius": radius, **shape})
        probed = _load(checkpoint, length, batch)
    else:
        probed = _build(model or "rnn_tanh", task_name, 200 if length is None else length,
                        batch, seed, init, radius, shape)
    probed.net.to(where)
    x, y = _probe_batch(probed, batch, seed)
    result = diagnose(*probe_inputs(probed.net, x, probed.task, y), threshold=threshold,
                      max_lag=max_lag)
    steps = result.trace.norms.size
    heading = probe_text.heading(probed.what, probed.task_name, probed.length, batch, steps)
    console.print(escape(heading), soft_wrap=True)
    console.print(rich_table(probe_text.probe_table(result, rows), box=box.SIMPLE_HEAD,
                             pad_edge=False))
    for line in probe_text.summary(result):
        console.print(escape(line), soft_wrap=True)
    if plot is not None:
        from vanishing.report.probe_figure import plot_diagnosis  # matplotlib only when asked

        plot_diagnosis(result, plot, title=f"{probed.what}, T = {steps}")
        console.print(f"plot: saved to {escape(str(plot))}")
    if html is not None:
        from vanishing.report.pages import probe_page

        config = probe_text.configuration(probed.what, probed.task_name, probed.length, batch,
                                          threshold, max_lag)
        provenance = Provenance(command_line(ctx), str(seed), time.perf_counter() - began,
                                config)
        write_report(html, probe_page(result, heading, rows, provenance,
                                      title=f"{probed.what}, T = {steps}",
                                      words=_words(probed, x, y)))


def _words(probed: _Probed, x: torch.Tensor, y: torch.Tensor | None) -> Connectivity | None:
    """For token input: which tokens of the first probe sequence the gradient reaches."""
    if probed.task is None or not probed.task.tokens or y is None:
        return None
    if not isinstance(getattr(probed.net, "embed", None), nn.Module):
        return None
    return task_connectivity(probed.net, probed.task, x, y, label=probed.what)


def _check_usage(batch: int, max_lag: int, rows: int, threshold: float, plot: Path | None,
                 shape: dict[str, int | None]) -> None:
    """The options' own ranges, checked before anything is built."""
    for flag, value in [("--batch", batch), *shape.items()]:
        if value is not None:
            _checks.positive_int(flag, value)
    _checks.nonneg_int("--max-lag", max_lag)
    _checks.nonneg_int("--rows", rows)
    _checks.fraction("--threshold", threshold)  # diagnose's own check, made before any work
    if plot is not None:
        _check_plot(plot)


def _check_plot(plot: Path) -> None:
    """A path matplotlib can write, in a folder that exists (checked before any work)."""
    if plot.suffix.lower() not in PLOT_FORMATS:
        raise ValueError(f"--plot must end in {', '.join(PLOT_FORMATS[:-1])} or "
                         f"{PLOT_FORMATS[-1]}, got {str(plot)!r}")
    if not plot.parent.is_dir():
        raise ValueError(f"--plot: directory {str(plot.parent)!r} does not exist")
    if plot.is_dir():
        raise ValueError(f"--plot: {str(plot)!r} is a directory")


def _refuse_with_checkpoint(flags: dict[str, object]) -> None:
    for flag, value in flags.items():
        if value is not None:
            raise ValueError(f"{flag} cannot be combined with --checkpoint (the checkpoint "
                             f"fixes the model and its task)")


def _load(checkpoint: Path, length: int | None, batch: int) -> _Probed:
    """The trained model of ``checkpoint`` and its task (at its length unless given)."""
    config, net = load_checkpoint(checkpoint)
    task = get_task(config.task, **config.task_options)
    length = config.length if length is None else length
    task.check(length, batch, torch.Generator())
    what = f"checkpoint {checkpoint} ({config.model}, trained on {config.task})"
    return _Probed(what, net, config.task, task, length)


def _build(name: str, task_name: str | None, length: int, batch: int, seed: int,
           init: str | None, radius: float | None, shape: dict[str, int | None]) -> _Probed:
    """The model to probe, as ``vanishing train`` would build it; sizes left as None take
    :data:`DEFAULT_SIZES`. With a task, the task fixes the input and output sizes and the
    readout; without one the input is random, ``--input-size`` features a step (a length
    below 2 is refused by :func:`~vanishing.diagnose.diagnose`)."""
    if task_name is not None and shape["--input-size"] is not None:
        raise ValueError("--input-size cannot be combined with --task (the task fixes the "
                         "input size)")
    hidden, input_size, layers = (DEFAULT_SIZES[key] if value is None else value
                                  for key, value in zip(DEFAULT_SIZES, shape.values(),
                                                        strict=True))
    config = TrainConfig(task=task_name or TrainConfig.task, model=name, length=length,
                         hidden_size=hidden, num_layers=layers, seed=seed, init=init,
                         radius=radius)
    if task_name is None:  # random input: config.task is not read
        if length > MAX_LENGTH:  # a task bounds its own lengths
            raise ValueError(f"--length must be at most {MAX_LENGTH:,} (every step is held "
                             f"in memory), got {length:,}")
        return _Probed(name, build_model_for(config, input_size, 1), None, None, length)
    task, net = build(config)
    task.check(length, batch, torch.Generator())
    return _Probed(name, net, task_name, task, length)


def _probe_batch(probed: _Probed, batch: int, seed: int
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(x, y) of the task, or random N(0, 1) input (y None), from the seed's generator."""
    g = probe_generator(seed)
    if probed.task is None:
        return torch.randn(batch, probed.length, probed.net.input_size, generator=g), None
    return probed.task.sample(probed.length, batch, g)
