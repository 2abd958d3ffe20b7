"""A gradient monitor for your own training loop: vanishing, exploding and NaN alarms.

::

    monitor = GradientMonitor(model, every=50)
    for x, y in batches:
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        monitor.step(loss, x=x)        # after backward, before or after optimizer.step()
        optimizer.step()

Every step it checks the loss and the parameter gradients for NaN / inf (one reduction),
and raises a ``nan`` alarm on the step they first appear. Every ``every`` steps
(steps 1, every + 1, ...) it probes the gradient through time (the total dL/dh_t, see
:func:`vanishing.probe.hidden_gradients`) on the first ``probe_batch`` sequences of the
batch (taken along its batch dimension, so time-first input works too):

* ``vanishing``: the horizon (lag where ||dL/dh_(T-k)|| / ||dL/dh_T|| drops below
  ``threshold``) is shorter than ``min_horizon`` (default: the whole sequence);
* ``exploding``: going back, ||dL/dh_t|| grows above ``max_growth`` x ||dL/dh_T||.

The probe runs in eval mode, with its own copy of the random state and without touching
any ``.grad`` field, so it does not change the training run it watches.

Alarms are data: :class:`Alarm` records in ``monitor.alarms``, also returned by
:meth:`GradientMonitor.step`. With ``warn=True`` (default) each is also issued as a
:class:`GradientAlarm` warning (Python shows a repeated message once per location).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import _checks
from .diagnose import Verdict, classify, remedies, weight_conditions
from .probe import Loss, Trace, default_loss, layer_gradients

__all__ = ["Alarm", "GradientAlarm", "GradientMonitor"]


class GradientAlarm(UserWarning):
    """The warning category of :class:`GradientMonitor` alarms."""


@dataclass(frozen=True)
class Alarm:
    """One alarm.

    Attributes:
        step: the monitor's step count (1-based) when it was raised.
        kind: ``vanishing``, ``exploding`` or ``nan``.
        message: what was measured, in one sentence.
        remedies: what to try, in plain language, most likely first.
        value: the measured number (horizon in steps, growth factor, or NaN).
    """

    step: int
    kind: str
    message: str
    remedies: tuple[str, ...] = ()
    value: float = float("nan")

    def __str__(self) -> str:
        tips = "".join(f"\n  - {r}" for r in self.remedies)
        return f"step {self.step}: {self.kind} gradient: {self.message}{tips}"


@dataclass
class GradientMonitor:
    """Watch a model's gradients during training (see the module doc).

    Args:
        model: the model being trained; it must contain a ``torch.nn.RNN/LSTM/GRU``.
        every: probe the gradient through time every ``every`` steps (>= 1).
        loss_fn: the probe's loss, a callable of the model's output, or of
            ``(output, y)`` when ``y`` is given to :meth:`step`; default: the sum of
            the last time step's output, ``out[:, -1]`` or, time first, ``out[-1]``
            (:func:`vanishing.probe.default_loss`).
        x: a fixed probe batch, used when :meth:`step` gets none.
        probe_batch: sequences of the batch to probe (the probe's cost is in proportion).
        threshold, min_horizon, max_growth: the alarm bounds (see
            :func:`vanishing.diagnose.classify`).
        warn: also issue each alarm as a :class:`GradientAlarm` warning.
        batch_dim: the dimension of x that indexes the sequences: 0 for (N, T, ...)
            input, 1 for time-first (T, N, ...); default: ``batch_first`` of the
            model's ``nn.RNN/LSTM/GRU`` modules (an error if they disagree). Pass it when
            the model transposes x before its recurrent module.
        y_batch_dim: the dimension of y that indexes the sequences; default
            ``batch_dim`` (per-step targets laid out like x). Pass 0 for per-sequence
            targets, (N,) or (N, C), of a time-first model. y must have as many
            sequences there as x has.

    Attributes:
        alarms: every alarm raised so far. A vanishing or exploding alarm is raised when a
            probe finds it and the previous probe did not (a NaN alarm: when the previous
            step was finite), so a lasting problem is reported once, not every probe.
        traces, verdicts: step -> every probe's :class:`Trace` and
            :class:`~vanishing.diagnose.Verdict`.
        grad_norms: step -> total parameter-gradient norm (NaN when there is none).
    """

    model: nn.Module
    every: int = 50
    loss_fn: Loss | None = None
    x: Tensor | None = None
    probe_batch: int = 8
    threshold: float = 1e-3
    min_horizon: int | None = None
    max_growth: float = 1e3
    warn: bool = True
    batch_dim: int | None = None
    y_batch_dim: int | None = None
    alarms: list[Alarm] = field(default_factory=list, init=False)
    traces: dict[int, Trace] = field(default_factory=dict, init=False, repr=False)
    verdicts: dict[int, Verdict] = field(default_factory=dict, init=False, repr=False)
    grad_norms: dict[int, float] = field(default_factory=dict, init=False, repr=False)
    steps: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(self.model).__name__}")
        _checks.positive_int("every", self.every)
        _checks.positive_int("probe_batch", self.probe_batch)
        _checks.positive_float("threshold", self.threshold)
        _checks.positive_float("max_growth", self.max_growth)
        if self.min_horizon is not None:
            _checks.nonneg_int("min_horizon", self.min_horizon)
        weight_conditions(self.model)  # refuses a model with no recurrent layer, up front
        if self.batch_dim is None:
            self._xdim = _batch_dim(self.model)
        elif _checks.nonneg_int("batch_dim", self.batch_dim) > 1:
            raise ValueError(f"batch_dim must be 0 (x is (N, T, ...)) or 1 (x is (T, N, ...)), "
                             f"got {self.batch_dim}")
        else:
            self._xdim = self.batch_dim
        self._ydim = self._xdim if self.y_batch_dim is None else \
            _checks.nonneg_int("y_batch_dim", self.y_batch_dim)
        self._bad = False  # NaN seen on the previous step: alarm again only after recovery
        self._last_kind = "healthy"  # the last probe's verdict

    # -- the per-step hook -------------------------------------------------------------
    def step(self, loss: Tensor | float | None = None, x: Tensor | None = None,
             y: Tensor | None = None) -> list[Alarm]:
        """Record one training step; return the alarms it raised (often none).

        Args:
            loss: this step's loss (tensor or float), checked for NaN / inf.
            x: this step's input batch (for the probe); default: the constructor's ``x``.
            y: targets for ``loss_fn(output, y)``, if it takes them (the same sequences
                as ``x``'s probe rows, taken along ``y_batch_dim``).
        """
        self.steps += 1
        new = self._check_finite(loss)
        if not new and not self._bad and (self.steps - 1) % self.every == 0:
            new += self._probe(self.x if x is None else x, y)
        for alarm in new:
            self.alarms.append(alarm)
            if self.warn:
                warnings.warn(str(alarm), GradientAlarm, stacklevel=2)
        return new

    def _alarm(self, kind: str, message: str, value: float = float("nan")) -> Alarm:
        # the weights as they are now: advice they already follow is left out (NaN advice
        # does not depend on them, and NaN weights have no singular values to read)
        advice = remedies(kind, [] if kind == "nan" else weight_conditions(self.model))
        return Alarm(self.steps, kind, message, tuple(advice), value)

    def _check_finite(self, loss) -> list[Alarm]:
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        norm = float(torch.nn.utils.get_total_norm(grads)) if grads else float("nan")
        self.grad_norms[self.steps] = norm
        what = []
        value = None if loss is None else torch.as_tensor(
            loss.detach() if isinstance(loss, Tensor) else loss)
        if value is not None and not bool(torch.isfinite(value).all()):
            what.append(f"the loss is {float(value.reshape(-1)[0])}")
        if grads and not math.isfinite(norm):
            what.append(f"the parameter gradient norm is {norm}")
        was_bad, self._bad = self._bad, bool(what)
        if not what or was_bad:
            return []
        return [self._alarm("nan", " and ".join(what))]

    @torch.no_grad()
    def _probe(self, x: Tensor | None, y: Tensor | None) -> list[Alarm]:
        if x is None:
            raise ValueError("GradientMonitor needs a batch to probe: pass x= to step() or "
                             "to the constructor")
        xb = _first("x", x, self._xdim, self.probe_batch, "batch_dim")
        target = None if y is None else _first("y", y, self._ydim, self.probe_batch,
                                                "y_batch_dim", x.shape[self._xdim])
        fn = self.loss_fn
        if fn is not None:
            def loss(out):
                return fn(out) if target is None else fn(out, target)
        elif self._xdim == 0:
            loss = None  # the probe's own default, out[:, -1].sum()
        else:  # time first: out[-1].sum()
            loss = default_loss(self.model, xb, steps=xb.shape[0], batch_first=False)

        training = self.model.training
        try:
            self.model.eval()
            with torch.random.fork_rng(devices=[]):
                grads = layer_gradients(self.model, xb, loss)
        finally:
            self.model.train(training)
        steps = xb.shape[1 - self._xdim]
        ran = {g.total.shape[1] for g in grads}  # (N, T, H) each
        if self.batch_dim is None and steps not in ran:
            raise ValueError(
                f"GradientMonitor: x has {steps} steps along dimension {1 - self._xdim} (time, "
                f"if the batch is dimension {self._xdim} as the recurrent modules' "
                f"batch_first says), but the recurrent layers ran {sorted(ran)} steps; the "
                f"model probably transposes x. Pass batch_dim= (0 for (N, T, ...) input)")
        try:
            trace = Trace.from_gradients(grads)
        except ValueError:  # exactly zero at every step
            trace = None
        if trace is None or trace.norms[-1] == 0:
            self._last_kind = "vanishing"
            return [self._alarm("vanishing", "dL/dh_t is exactly zero at the last step: "
                                "no gradient flows through the recurrent layer", 0.0)]
        self.traces[self.steps] = trace
        verdict = classify(trace, threshold=self.threshold, min_horizon=self.min_horizon,
                           max_growth=self.max_growth)
        self.verdicts[self.steps] = verdict
        if verdict.kind == "healthy" or verdict.kind == self._last_kind:
            self._last_kind = verdict.kind
            return []  # healthy, or the same problem as at the last probe: already raised
        self._last_kind = verdict.kind
        return [self._alarm(verdict.kind, f"{trace.layer}: {verdict.reason}", verdict.value)]


def _batch_dim(model: nn.Module) -> int:
    """The batch dimension of x, from ``batch_first`` of the model's recurrent modules."""
    flags = {name or type(m).__name__.lower(): m.batch_first
             for name, m in model.named_modules() if isinstance(m, nn.RNNBase)}
    if len(set(flags.values())) > 1:
        listed = ", ".join(f"{name}: batch_first={flag}" for name, flag in flags.items())
        raise ValueError(f"GradientMonitor: the model's recurrent modules disagree on "
                         f"batch_first ({listed}), so the batch dimension of x is unknown; "
                         f"pass batch_dim=0 (x is (N, T, ...)) or 1 (x is (T, N, ...))")
    return 0 if next(iter(flags.values())) else 1


def _first(name: str, t: Tensor, dim: int, n: int, arg: str, size: int | None = None
           ) -> Tensor:
    """The first ``n`` sequences of ``t`` along its batch dimension ``dim``."""
    if not isinstance(t, Tensor):
        raise TypeError(f"GradientMonitor: {name} must be a torch.Tensor, got "
                        f"{type(t).__name__}")
    if t.dim() <= dim or (size is not None and t.shape[dim] != size):
        has = f"{t.shape[dim]} there" if t.dim() > dim else "no such dimension"
        raise ValueError(f"GradientMonitor: {name} of shape {tuple(t.shape)} should hold "
                         f"{'the' if size is None else size} sequences along its batch "
                         f"dimension {dim}, but has {has}; pass {arg}= to say which "
                         f"dimension indexes the batch")
    return t.narrow(dim, 0, min(n, t.shape[dim]))
