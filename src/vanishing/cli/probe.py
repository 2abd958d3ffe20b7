"""``vanishing probe``: how far back the gradient reaches in a model, as a table and a verdict."""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from torch import nn

from vanishing import _checks
from vanishing.cli._common import console, handle_errors
from vanishing.diagnose import Diagnosis, diagnose
from vanishing.models import MODELS, build_model
from vanishing.tasks import Task, get_task, task_names
from vanishing.train import load_checkpoint

__all__ = ["probe"]


#: Formats ``--plot`` can write (matplotlib picks the format from the extension).
PLOT_FORMATS = (".png", ".pdf", ".svg")
#: A norm that drops to an exact 0 from below this has underflowed float64; from above,
#: the 0 is taken as real (e.g. every relu unit off at that step).
UNDERFLOW_FROM = 1e-100


@handle_errors
def probe(
    model: Annotated[
        str | None,
        typer.Option(help=f"Model to build: {', '.join(MODELS)} (default rnn_tanh). "
                     "Not with --checkpoint."),
    ] = None,
    length: Annotated[
        int | None,
        typer.Option(help="Sequence length T, >= 2 (for --task: the task's length, within the "
                     "task's limits). Default 200, or the checkpoint's length."),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Probe a trained model saved by `vanishing train` (its task gives "
                     "the input)."),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(help=f"Draw the input from a task and use its loss: "
                     f"{', '.join(task_names())}. Default: random N(0, 1) input and the "
                     "sum of the last output as the loss. Not with --checkpoint."),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(help="Initialisation: default, orthogonal or identity (default: the "
                     "model's preset). Not with --checkpoint."),
    ] = None,
    radius: Annotated[
        float | None,
        typer.Option(help="Rescale W_hh to this spectral radius (> 0). Not with --checkpoint."),
    ] = None,
    hidden_size: Annotated[
        int | None, typer.Option(help="Hidden units H (default 64). Not with --checkpoint.")
    ] = None,
    input_size: Annotated[
        int | None,
        typer.Option(help="Features per step of the random input (default 8). Not with "
                     "--task or --checkpoint."),
    ] = None,
    layers: Annotated[
        int | None,
        typer.Option(help="Stacked recurrent layers (default 1). Not with --checkpoint."),
    ] = None,
    batch: Annotated[int, typer.Option(help="Sequences in the probe batch.")] = 16,
    seed: Annotated[int, typer.Option(help="Seeds the weights and the probe batch.")] = 0,
    threshold: Annotated[
        float,
        typer.Option(help="Horizon threshold in (0, 1): ||dL/dh_t|| / ||dL/dh_T|| above this."),
    ] = 1e-3,
    max_lag: Annotated[
        int, typer.Option(help="Largest lag resolved in the split of dL/dW_hh (Elman RNNs).")
    ] = 200,
    rows: Annotated[
        int, typer.Option(help="About how many table rows to show (0: every step).")
    ] = 16,
    plot: Annotated[
        Path | None,
        typer.Option(help="Save a figure of the gradient through time here (.png, .pdf or "
                     ".svg)."),
    ] = None,
) -> None:
    """Probe the gradient through time: dL/dh_t for every step, in one backward pass.

    Prints ||dL/dh_t|| against the distance back T - t, the horizon (how far back it
    stays above --threshold of the last step's), the decay rate, the Jacobian product
    ||dh_T/dh_t||_2 and its Lyapunov exponents, W_hh against Pascanu et al. 2013's
    condition, the share of the W_hh update from long lags, and a diagnosis. Runs in
    float64 with denormal floats flushed to zero (for speed). The Jacobian norms are
    computed in log space, so even 1e-1000 is reported as itself; ||dL/dh_t|| is a
    float64 number and shows as "underflow" once it underflows float64.
    """
    shape = [("--hidden-size", hidden_size), ("--input-size", input_size), ("--layers", layers)]
    for flag, value in [("--batch", batch), *shape]:
        if value is not None:
            _checks.positive_int(flag, value)
    _checks.nonneg_int("--max-lag", max_lag)
    _checks.nonneg_int("--rows", rows)
    if not sys.float_info.min <= threshold < 1:  # also rejects NaN
        raise ValueError(f"--threshold must be in (0, 1), at least {sys.float_info.min:.4g} "
                         f"(denormals are flushed to zero), got {threshold}")
    if plot is not None:
        _check_plot(plot)
    if checkpoint is not None:
        for flag, value in [("--model", model), ("--task", task), ("--init", init),
                            ("--radius", radius), *shape]:
            if value is not None:
                raise ValueError(f"{flag} cannot be combined with --checkpoint (the "
                                 f"checkpoint fixes the model and its task)")
        config, net = load_checkpoint(checkpoint)
        task, length = config.task, config.length if length is None else length
        what = f"checkpoint {checkpoint} ({config.model}, trained on {task})"
    elif task is not None and input_size is not None:
        raise ValueError("--input-size cannot be combined with --task (the task fixes the "
                         "input size)")
    else:
        what, length = model or "rnn_tanh", 200 if length is None else length
    t = None if task is None else get_task(task)
    if t is not None:
        t.check(length, batch, torch.Generator())
    elif length < 2:
        raise ValueError(f"--length must be >= 2 (a gradient through time needs at least "
                         f"two steps), got {length}")
    if checkpoint is None:
        net = _build(model or "rnn_tanh", t, input_size=input_size, hidden_size=hidden_size,
                     layers=layers, seed=seed, init=init, radius=radius)
    g = torch.Generator().manual_seed(10_000 + seed)
    if t is None:
        x = torch.randn(batch, length, net.input_size, generator=g)
        loss, source = None, "random N(0, 1) input, loss = sum of the last output"
    else:
        x, y = t.sample(length, batch, g)
        y = y.double() if y.is_floating_point() else y
        loss, source = (lambda out: t.loss(out, y)), f"task {task} (length {length}), its loss"
    x = x.double() if x.is_floating_point() else x
    torch.set_flush_denormal(True)
    net = copy.deepcopy(net).double()
    result = diagnose(net, x, loss, threshold=threshold, max_lag=max_lag)
    steps = result.trace.norms.size
    console.print(escape(f"probe: {what}; {source}; batch {batch}, T = {steps} steps; float64, "
                         f"denormals flushed to zero, Jacobian norms in log space"),
                  soft_wrap=True)
    console.print(_table(result, rows))
    for line in _summary(result):
        console.print(escape(line), soft_wrap=True)
    if plot is not None:
        from vanishing.report.probe_figure import plot_diagnosis  # matplotlib only when asked

        plot_diagnosis(result, plot, title=f"{what}, T = {steps}")
        console.print(f"plot: saved to {escape(str(plot))}")


def _check_plot(plot: Path) -> None:
    """A path matplotlib can write, in a folder that exists (checked before any work)."""
    if plot.suffix.lower() not in PLOT_FORMATS:
        raise ValueError(f"--plot must end in {', '.join(PLOT_FORMATS[:-1])} or "
                         f"{PLOT_FORMATS[-1]}, got {str(plot)!r}")
    if not plot.parent.is_dir():
        raise ValueError(f"--plot: directory {str(plot.parent)!r} does not exist")
    if plot.is_dir():
        raise ValueError(f"--plot: {str(plot)!r} is a directory")


def _build(name: str, t: Task | None, *, input_size: int | None, hidden_size: int | None,
           layers: int | None, seed: int, init: str | None, radius: float | None) -> nn.Module:
    """The model to probe; sizes left as None take their defaults (8 inputs, 64 units, 1 layer).

    With a task, the task fixes the input and output sizes and the readout.
    """
    kwargs = _init_kwargs(init, radius)
    if t is None:
        sizes = (8 if input_size is None else input_size, 1)
    else:
        sizes = (t.input_size, t.output_size)
        kwargs.update(tokens=t.tokens, readout=t.readout,
                      embedding_size=32 if t.tokens else None)
    return build_model(name, sizes[0], 64 if hidden_size is None else hidden_size, sizes[1],
                       num_layers=1 if layers is None else layers, seed=seed, **kwargs)


def _init_kwargs(init: str | None, radius: float | None) -> dict:
    kwargs: dict = {}
    if init is not None:
        kwargs["init"] = init
    if radius is not None:
        kwargs["radius"] = radius
    return kwargs


def _lags(steps: int, rows: int, horizon: int) -> list[int]:
    """Lags to show: all if few, else 0..4, log-spaced ones, the horizon, and T - 1."""
    if rows <= 0 or steps <= rows:
        return list(range(steps))
    picked = set(range(min(5, steps)))
    picked |= {int(round(v)) for v in np.geomspace(5, steps - 1, max(rows - 7, 2))}
    picked |= {min(horizon, steps - 1), min(horizon + 1, steps - 1), steps - 1}
    return sorted(picked)


def _table(d: Diagnosis, rows: int) -> Table:
    norms = d.trace.norms
    steps = norms.size
    table = Table(title=f"gradient through time, layer {d.trace.layer}", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    headers = ["T - t", "t", "||dL/dh_t||", "/ ||dL/dh_T||"]
    if d.jacobian is not None:
        headers.append("||dh_T/dh_t||_2")
    for header in headers:
        table.add_column(header, justify="right")
    shown = _lags(steps, rows, d.horizon)
    log10_jac = None if d.jacobian is None else d.jacobian.log10_spectral()
    underflow = _underflowed(norms)
    for i, lag in enumerate(shown):
        if i and lag != shown[i - 1] + 1:
            table.add_row(*["..."] * len(headers))
        t = steps - 1 - lag
        cells = [str(lag), str(t), *(["underflow"] * 2 if underflow[t] else
                                     [_num(norms[t]), _num(norms[t] / norms[-1])])]
        if log10_jac is not None:
            cells.append(_pow10(log10_jac[t]))
        table.add_row(*cells)
    return table


def _summary(d: Diagnosis) -> list[str]:
    steps = d.trace.norms.size
    underflow = _underflowed(d.trace.norms)[::-1]  # by lag
    if d.horizon == steps - 1:
        reach = "reaches the first step"
    elif underflow[d.horizon + 1]:
        reach = "then underflows float64, so it may reach further"
    else:
        reach = "then falls below"
    lines = [f"horizon: {d.horizon} steps (||dL/dh_t|| stays above {d.threshold:g} x "
             f"||dL/dh_T|| for {d.horizon} steps back; {reach})"]
    if math.isfinite(d.decay_rate):
        lines.append(f"decay rate: {d.decay_rate:+.4g} per step in ln ||dL/dh_t||, a factor "
                     f"{math.exp(d.decay_rate):.4g} per step back")
    if d.jacobian is not None:
        j = d.jacobian
        lyap = ", ".join(f"{v:+.4f}" for v in j.lyapunov)
        lines.append(f"Jacobian product dh_T/dh_0 ({j.layer}): ||.||_2 = "
                     f"{_pow10(j.log10_spectral()[0])}, ||.||_F = "
                     f"{_pow10(j.log_frobenius[0] / math.log(10))}; leading Lyapunov exponents "
                     f"(ln growth per step): {lyap}")
    for w in d.weights:
        line = (f"W_hh {w.layer}: spectral radius {w.spectral_radius:.4g}, sigma_max "
                f"{w.sigma_max:.4g}")
        if w.gamma is not None:
            verdict = "yes" if w.vanishing_guaranteed else "no"
            line += (f"; vanishing guaranteed (sigma_max < 1/gamma = {1 / w.gamma:g}, "
                     f"Pascanu et al. 2013): {verdict}")
        else:
            line += " (largest over the gate blocks)"
        lines.append(line)
    for name, share in d.saturation.items():
        lines.append(f"saturation {name}: {share:.1%} of tanh units at |h| >= 0.99")
    if d.lags is not None:
        shares = d.lags.shares()
        ks = [k for k in (1, 5, 10, 20, 50, 100, 200) if k <= d.lags.max_lag]
        parts = ", ".join(f">= {k}: {float(shares[k]):.3g}" for k in ks)
        lines.append(f"share of the W_hh update from lags {parts}")
    lines.append(f"diagnosis: {d.verdict.kind}: {d.verdict.reason}")
    if underflow.any():
        lines.append(f"note: ||dL/dh_t|| underflows float64 from {int(underflow.argmax())} "
                     f"steps back (shown as underflow, left out of the decay rate); the "
                     f"Jacobian column, in log space, goes on")
    lines += [f"note: {n}" for n in d.notes]
    lines += [f"try: {r}" for r in d.remedies]
    return lines


def _underflowed(norms: np.ndarray) -> np.ndarray:
    """(T,) True where ||dL/dh_t|| is an exact 0 reached from a tiny nonzero norm (a later
    step's, below :data:`UNDERFLOW_FROM`): float64 underflow, not a true zero."""
    out = np.zeros(norms.size, dtype=bool)
    later = 0.0  # the nearest nonzero norm at a later step
    for t in range(norms.size - 1, -1, -1):
        if norms[t] != 0:
            later = norms[t]
        else:
            out[t] = 0 < later < UNDERFLOW_FROM
    return out


def _num(x: float) -> str:
    return f"{x:.4g}"


def _pow10(log10: float) -> str:
    """10^log10 written out, also far below float64's range (e.g. 3.2e-912)."""
    if not math.isfinite(log10):
        return "0" if log10 < 0 else "inf"
    e = math.floor(log10)
    m = 10 ** (log10 - e)
    if m >= 9.9995:
        m, e = 1.0, e + 1
    return f"{m:.4g}e{e:+03d}" if abs(e) > 3 else f"{10 ** log10:.4g}"
