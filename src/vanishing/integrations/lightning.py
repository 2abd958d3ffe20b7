"""A Lightning callback that watches the gradient through time of the real training step.
Needs ``pip install "vanishing[lightning]"``.

::

    trainer = Trainer(callbacks=[GradientMonitorCallback(every=50)], logger=...)
    trainer.fit(module)        # any LightningModule with a recurrent layer inside
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable

from vanishing.monitor import GradientAlarm, GradientMonitor
from vanishing.probe import Trace

from . import LAGS, require, trace_scalars

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the name still imports; creating one says what to install

    class Callback:  # type: ignore[no-redef]
        def __init__(self) -> None:
            require("lightning.pytorch", "lightning")

__all__ = ["GradientMonitorCallback"]


class GradientMonitorCallback(Callback):
    """Probe dL/dh_t on every ``every``-th optimizer step of ``Trainer.fit``, riding on it.

    A :class:`~vanishing.monitor.GradientMonitor` (``self.monitor``, made in ``setup``)
    over the LightningModule does the work: on the sampled steps (the first, then every
    ``every``-th) the module's own ``training_step`` forward is recorded with
    :func:`vanishing.probe.record`, and its own backward fills the total dL/dh_t of every
    recurrent layer; no second forward. Every step the loss and the parameter gradients
    are checked for NaN / inf. Verdicts come from :func:`vanishing.diagnose.classify`,
    remedies from :func:`vanishing.diagnose.remedies` as torch code for the module.

    Hooks: ``setup`` (makes the monitor), ``on_train_batch_start`` (opens the recording
    on sampled steps), ``on_before_backward`` (closes it after ``training_step``, keeps
    the loss), ``on_before_optimizer_step`` (after the backward, where Lightning has
    unscaled mixed-precision gradients: judges the step, logs, warns, stops),
    ``on_train_batch_end`` and ``on_exception`` (close a recording left open). With
    gradient accumulation, the last micro-batch of a sampled step is the one probed.

    Logged with ``logger.log_metrics(..., step=trainer.global_step)`` on every logger of
    ``trainer.loggers``, on global rank 0, on the probed steps (see
    :func:`vanishing.integrations.trace_scalars`): ``vanishing/<layer>/horizon``,
    ``.../decay_rate``, ``.../grad_lag_<k>`` = ||dL/dh_(T-k)|| for k in 0, 1, 10, 100 and
    T - 1 (k < T), and ``vanishing/alarm_<kind>`` = 1 on the step an alarm is raised.
    Under ``precision="16-mixed"`` the recorded dL/dh_t are divided by the GradScaler's
    scale, so they are the unscaled gradients too. Nothing is printed.

    Args:
        every: probe every ``every`` optimizer steps.
        threshold, min_horizon, max_growth, step_modules: as
            :class:`~vanishing.monitor.GradientMonitor`.
        lags: the lags k logged besides T - 1.
        warn: issue each alarm as a :class:`~vanishing.monitor.GradientAlarm` warning (on
            global rank 0), with its remedies.
        stop_on_alarm: set ``trainer.should_stop`` when an alarm is raised on any rank;
            training ends after that step.
    """

    def __init__(self, every: int = 50, *, threshold: float = 1e-3,
                 min_horizon: int | None = None, max_growth: float = 1e3,
                 lags: Iterable[int] = LAGS, warn: bool = True, stop_on_alarm: bool = False,
                 step_modules: Iterable = ()) -> None:
        super().__init__()
        self.options = dict(every=every, threshold=threshold, min_horizon=min_horizon,
                            max_growth=max_growth, step_modules=step_modules)
        self.lags, self.warn, self.stop_on_alarm = tuple(lags), warn, stop_on_alarm
        self.monitor: GradientMonitor | None = None
        self._recording = contextlib.ExitStack()
        self._loss = None  # the loss of the last backward of this optimizer step

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.monitor is None or self.monitor.model is not pl_module:
            self.monitor = GradientMonitor(pl_module, warn=False, **self.options)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._recording.close()
        self._recording.enter_context(self.monitor.record())  # does nothing off-sample

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._recording.close()
        self._loss = loss.detach()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self._loss is None:  # no backward since the last step (a skipped batch)
            return
        loss, self._loss = self._loss, None
        new = self.monitor.step(loss)
        trace = self.monitor.traces.get(self.monitor.steps)
        if trace is not None:
            trace = self.monitor.traces[self.monitor.steps] = _unscaled(trace, trainer)
            self._log(trainer, trace_scalars(trace, self.monitor.threshold, self.lags))
        if new:
            self._log(trainer, {f"vanishing/alarm_{a.kind}": 1.0 for a in new})
            if self.warn and trainer.is_global_zero:
                for alarm in new:
                    warnings.warn(str(alarm), GradientAlarm, stacklevel=2)
        if self.stop_on_alarm and trainer.strategy.reduce_boolean_decision(bool(new),
                                                                           all=False):
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._recording.close()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._recording.close()

    def _log(self, trainer, metrics: dict[str, float]) -> None:
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)


def _unscaled(trace: Trace, trainer) -> Trace:
    """The trace divided by the GradScaler's scale under 16-mixed precision (the recorded
    hidden states' gradients come from the scaled loss; Lightning unscales only ``.grad``)."""
    scaler = getattr(trainer.precision_plugin, "scaler", None)
    if scaler is None or not scaler.is_enabled():
        return trace
    scale = float(scaler.get_scale())
    return Trace(norms=trace.norms / scale, main_layer=trace.main_layer,
                 layers={k: v / scale for k, v in trace.layers.items()})
