"""The gradient through time in Weights & Biases, for a
:class:`~vanishing.monitor.GradientMonitor` or any :class:`~vanishing.probe.Trace`.
Needs ``pip install "vanishing[wandb]"``.

::

    run = wandb.init(project="rnn")              # WANDB_MODE=offline works without an account
    log = WandbWriter(run)                       # or WandbWriter(): the current wandb.run
    monitor = GradientMonitor(model, every=50)
    for x, y in batches:
        ...
        loss.backward()
        monitor.step(loss, x=x)
        log.update(monitor)                      # each new probe and alarm, at its step
        optimizer.step()
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from . import LAGS, require, trace_scalars, unseen

__all__ = ["WandbWriter"]


class WandbWriter:
    """Log probes with ``run.log``, against their own x-axis ``vanishing/step``.

    What :meth:`write` logs, in one ``run.log`` call per probe (``<layer>`` is each
    recurrent layer of the trace; see :func:`vanishing.integrations.trace_scalars`):

    * ``vanishing/step``: the probe's step (the monitor's step count), declared with
      ``run.define_metric`` as the x-axis of every ``vanishing/*`` key, so wandb's own
      step, which the rest of the training loop's ``wandb.log`` calls move, is left alone;
    * ``vanishing/<layer>/horizon``, ``.../decay_rate`` and ``.../grad_lag_<k>`` =
      ||dL/dh_(T-k)|| for k in 0, 1, 10, 100 and T - 1 (k < T);
    * ``vanishing/<layer>/log10_grad``: a ``wandb.Histogram`` of log10 ||dL/dh_t|| over t;
    * for each alarm, ``vanishing/alarm_<kind>`` = 1 and ``vanishing/alarms``, its text.

    Args:
        run: a ``wandb`` run (from ``wandb.init``); default: the current ``wandb.run``.
        lags: the lags k written besides T - 1.
        prefix: the first part of every key.
        histogram: log the histograms.
    """

    def __init__(self, run=None, *, lags: Iterable[int] = LAGS, prefix: str = "vanishing",
                 histogram: bool = True) -> None:
        self._wandb = require("wandb", "wandb")
        run = self._wandb.run if run is None else run
        if run is None:
            raise ValueError("WandbWriter: no wandb run; call wandb.init() first or pass "
                             "run=wandb.init(...)")
        self.run, self.lags, self.prefix, self.histogram = run, tuple(lags), prefix, histogram
        self.run.define_metric(f"{prefix}/step")
        self.run.define_metric(f"{prefix}/*", step_metric=f"{prefix}/step")
        self._seen: dict = {}

    def update(self, monitor) -> None:
        """Log each probe and alarm ``monitor`` made since the last call, at its step, with
        the monitor's threshold. Call it after ``monitor.step``."""
        for step, trace, alarms in unseen(monitor, self._seen):
            self.write(trace, step, alarms, threshold=monitor.threshold)

    def write(self, trace, step: int, alarms: Iterable = (), *,
              threshold: float = 1e-3) -> None:
        """Log one :class:`~vanishing.probe.Trace` (may be None) and alarms at ``step``."""
        row: dict = {f"{self.prefix}/step": step}
        if trace is not None:
            row.update(trace_scalars(trace, threshold, self.lags, self.prefix))
            layers = trace.layers or {trace.main_layer or "main": trace.norms}
            for name, norms in layers.items() if self.histogram else ():
                norms = np.asarray(norms, dtype=np.float64)
                logs = np.log10(norms[np.isfinite(norms) & (norms > 0)])
                if logs.size:
                    row[f"{self.prefix}/{name}/log10_grad"] = self._wandb.Histogram(logs)
        alarms = list(alarms)
        for alarm in alarms:
            row[f"{self.prefix}/alarm_{alarm.kind}"] = 1.0
        if alarms:
            row[f"{self.prefix}/alarms"] = "\n".join(str(a) for a in alarms)
        self.run.log(row)
