"""The gradient through time in TensorBoard, for a :class:`~vanishing.monitor.GradientMonitor`
or any :class:`~vanishing.probe.Trace`. Needs ``pip install "vanishing[tensorboard]"``.

::

    tb = TensorBoardWriter("runs/lstm")          # or TensorBoardWriter(your SummaryWriter)
    monitor = GradientMonitor(model, every=50)
    for x, y in batches:
        ...
        loss.backward()
        monitor.step(loss, x=x)
        tb.update(monitor)                       # each new probe and alarm, at its step
        optimizer.step()

    tb.write(hidden_gradients(model, x), step=0) # or any Trace, at a step you choose
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from os import PathLike

import numpy as np

from . import LAGS, require, trace_scalars, unseen

__all__ = ["TensorBoardWriter"]


class TensorBoardWriter:
    """Write probes to a ``torch.utils.tensorboard.SummaryWriter``, one run, grouped tags.

    What :meth:`write` logs at ``step`` (``<layer>`` is each recurrent layer of the trace,
    e.g. ``core.l0``; see :func:`vanishing.integrations.trace_scalars`):

    * scalars ``vanishing/<layer>/horizon``, ``.../decay_rate`` and
      ``.../grad_lag_<k>`` = ||dL/dh_(T-k)|| for k in 0, 1, 10, 100 and T - 1 (k < T);
    * a histogram ``vanishing/<layer>/log10_grad`` of log10 ||dL/dh_t|| over t (zeros
      left out);
    * a figure ``vanishing/profile``: ||dL/dh_(T-k)|| against the lag k, every layer, log
      scale; at most one per ``figure_interval`` seconds (see below);
    * for each alarm, the scalar ``vanishing/alarm_<kind>`` = 1 and the text
      ``vanishing/alarms``: the alarm's message and remedies.

    Only ``add_scalar``, ``add_histogram``, ``add_figure`` and ``add_text``: no
    ``add_scalars``, which makes one sub-run folder per key.

    Args:
        writer: a ``SummaryWriter`` (or anything with its ``add_*`` methods), or a log
            folder to open one in.
        lags: the lags k written besides T - 1.
        prefix: the first part of every tag.
        figure_interval: seconds of wall time between profile figures: a probe gets one
            when at least this long has passed since the last (the first probe always
            does); 0: every probe; None: never. A figure is a matplotlib render, about
            40-100 ms on a 2-core CPU against about 1 ms for the scalars and histograms,
            so one per minute keeps it near 0.1% of a run.
        histogram: write the histograms.
    """

    def __init__(self, writer, *, lags: Iterable[int] = LAGS, prefix: str = "vanishing",
                 figure_interval: float | None = 60.0, histogram: bool = True) -> None:
        if isinstance(writer, str | PathLike):
            writer = require("torch.utils.tensorboard", "tensorboard").SummaryWriter(writer)
        elif not callable(getattr(writer, "add_scalar", None)):
            raise TypeError(f"TensorBoardWriter takes a SummaryWriter or a log folder, got "
                            f"{type(writer).__name__}")
        self.writer, self.lags, self.prefix = writer, tuple(lags), prefix
        self.figure_interval, self.histogram = figure_interval, histogram
        self._seen: dict = {}
        self._last_figure: float | None = None  # time.monotonic() of the last figure

    def update(self, monitor) -> None:
        """Write each probe and alarm ``monitor`` made since the last call, at its step
        (the monitor's step count), with the monitor's threshold. Call it after
        ``monitor.step``; on steps that probed nothing it costs a dictionary look-up."""
        for step, trace, alarms in unseen(monitor, self._seen):
            self.write(trace, step, alarms, threshold=monitor.threshold)

    def write(self, trace, step: int, alarms: Iterable = (), *, threshold: float = 1e-3,
              figure: bool | None = None) -> None:
        """Write one :class:`~vanishing.probe.Trace` (may be None) and alarms at ``step``;
        ``figure`` True / False draws the profile or not, None leaves it to
        ``figure_interval``."""
        if trace is not None:
            for tag, value in trace_scalars(trace, threshold, self.lags, self.prefix).items():
                self.writer.add_scalar(tag, value, step)
            layers = trace.layers or {trace.main_layer or "main": trace.norms}
            if self.histogram:
                for name, norms in layers.items():
                    norms = np.asarray(norms, dtype=np.float64)
                    logs = np.log10(norms[np.isfinite(norms) & (norms > 0)])
                    if logs.size:
                        self.writer.add_histogram(f"{self.prefix}/{name}/log10_grad", logs, step)
            if self._figure_due() if figure is None else figure:
                self._last_figure = time.monotonic()
                self.writer.add_figure(f"{self.prefix}/profile", _profile(layers, step), step)
        for alarm in alarms:
            self.writer.add_scalar(f"{self.prefix}/alarm_{alarm.kind}", 1.0, step)
            self.writer.add_text(f"{self.prefix}/alarms", str(alarm).replace("\n", "  \n"),
                                 step)

    def _figure_due(self) -> bool:
        if self.figure_interval is None:
            return False
        last = self._last_figure
        return last is None or time.monotonic() - last >= self.figure_interval

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _profile(layers: dict, step: int):
    """||dL/dh_(T-k)|| against the lag k, one line per layer (a matplotlib Figure)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogFormatter, LogLocator, NullLocator

    fig = Figure(figsize=(5, 3), dpi=80)
    ax = fig.add_subplot()
    for name, norms in layers.items():
        rev = np.asarray(norms, dtype=np.float64)[::-1]
        ax.semilogy(np.arange(rev.size), np.where(rev > 0, rev, np.nan), label=name)
    # no minor ticks and plain "1e-05" labels: the default log axis (mathtext labels,
    # minor ticks) triples the render time
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_locator(LogLocator(numticks=6))
    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.set(xlabel="lag k (steps back from the last)", ylabel="||dL/dh_(T-k)||",
           title=f"gradient through time, step {step}")
    ax.legend(loc="upper right", fontsize="small")
    return fig
