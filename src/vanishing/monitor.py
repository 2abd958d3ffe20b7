"""A gradient monitor for your own training loop: vanishing, exploding and NaN alarms.

::

    monitor = GradientMonitor(model, every=50)
    for x, y in batches:
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        monitor.step(loss, x=x)        # after backward, before or after optimizer.step()
        optimizer.step()

or, riding on the real step (no second forward; the whole batch, the user's own loss)::

    for x, y in batches:
        with monitor.record():         # records the forward on the steps it probes
            loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        monitor.step(loss)
        optimizer.step()

Every step it checks the loss and the parameter gradients for NaN / inf (one reduction),
and raises a ``nan`` alarm on the step they first appear. Every ``every`` steps
(steps 1, every + 1, ...) it probes the gradient through time (the total dL/dh_t, by
:func:`vanishing.probe.layer_gradients`, the same mechanism and default loss as
:func:`~vanishing.probe.hidden_gradients`, rounding-noise guard included) on the first
``probe_batch`` sequences of the batch, taken along its batch dimension (time-first input
and flat per-step targets work too). The model may be anything :func:`vanishing.probe.record`
records: fused modules, cell loops, named ``steps``; a forward that takes more than x
is given as ``forward=lambda model, x: ...``.

The alarm rule, on that probe's main layer (the last recurrent layer run):

* ``vanishing``: the horizon (the largest lag k with ||dL/dh_(T-k)|| / ||dL/dh_T|| above
  ``threshold``, default 1e-3) is shorter than ``min_horizon`` (default: the whole
  sequence, T - 1);
* ``exploding``: going back, ||dL/dh_t|| grows above ``max_growth`` x ||dL/dh_T||.

At torch's default initialisation the gradient of a tanh RNN, a GRU and an LSTM alike
falls to about 1e-3 of the last step's within about ten steps (the LSTM's forget gate
starts near 0.5), so on longer sequences all three are reported as vanishing at first;
that is a measurement, not noise: a forget-gate bias of 1 or more keeps an LSTM silent.

The probe runs in eval mode, with its own copy of the random state and without touching
any ``.grad`` field, so it does not change the training run it watches.

Alarms are data: :class:`Alarm` records in ``monitor.alarms``, also returned by
:meth:`GradientMonitor.step`. With ``warn=True`` (default) each is also issued as a
:class:`GradientAlarm` warning (Python shows a repeated message once per location).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import _checks
from .diagnose import Verdict, classify, remedies, weight_conditions
from .models import SequenceModel
from .probe import OutputLoss, Recording, Trace, layer_gradients, record
from .recurrent import batch_first, find_steps

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
        model: the model being trained: any module in which
            :func:`vanishing.recurrent.find_steps` finds a recurrent step (fused
            ``nn.RNN/LSTM/GRU``, ``nn.*Cell`` loops, library cells, or ``steps``).
        every: probe the gradient through time every ``every`` steps (>= 1).
        loss_fn: the probe's loss, a callable of the model's output, or of
            ``(output, y)`` when ``y`` is given to :meth:`step`; default: the last time
            step's output (``out[:, -1]`` or, time first, ``out[-1]``) projected on a
            fixed random direction (:func:`vanishing.probe.default_loss` with
            ``project=True``): a sum would be constant behind a final LayerNorm or
            softmax, and its gradient rounding noise (refused, never reported).
        x: a fixed probe batch, used when :meth:`step` gets none.
        probe_batch: sequences of the batch to probe (the probe's cost is in proportion).
        threshold, min_horizon, max_growth: the alarm bounds (see
            :func:`vanishing.diagnose.classify`).
        warn: also issue each alarm as a :class:`GradientAlarm` warning.
        batch_dim: the dimension of x that indexes the sequences: 0 for (N, T, ...)
            input, 1 for time-first (T, N, ...); default: ``batch_first`` of the
            model's recurrent (and attention) modules (an error if they disagree). When
            no module says (cell loops), the whole batch is probed. Pass it when the
            model transposes x before its recurrent module.
        y_batch_dim: the dimension of y that indexes the sequences; default
            ``batch_dim`` (per-step targets laid out like x). Pass 0 for per-sequence
            targets, (N,) or (N, C), of a time-first model. Flat per-step targets of
            T * N rows (a language model's ``y.view(-1)``, in x's layout) are recognised
            and sliced as such.
        forward: how to run the model on the probe batch, ``forward(model, x) ->
            output``, for a forward that takes more than x (a hidden state, lengths);
            default ``model(x)``.
        step_modules: more modules to record as steps (``steps=`` of
            :func:`vanishing.probe.record`).

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
    loss_fn: OutputLoss | None = None
    x: Tensor | None = None
    probe_batch: int = 8
    threshold: float = 1e-3
    min_horizon: int | None = None
    max_growth: float = 1e3
    warn: bool = True
    batch_dim: int | None = None
    y_batch_dim: int | None = None
    forward: Callable[[nn.Module, Tensor], object] | None = None
    step_modules: Iterable = ()
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
        if self.forward is not None and not callable(self.forward):
            raise TypeError(f"forward must be a callable (model, x) -> output, got "
                            f"{type(self.forward).__name__}")
        mods = self.step_modules
        self.step_modules = (mods,) if isinstance(mods, nn.Module) else tuple(mods)
        if not find_steps(self.model, self.step_modules):  # refused up front, not mid-training
            raise ValueError(f"GradientMonitor: {type(self.model).__name__} has no recurrent "
                             f"step to probe (no torch.nn.RNN/LSTM/GRU, nn.*Cell or vanishing "
                             f"Cell); name the one-step module with step_modules=[model.<module>]")
        if self.batch_dim is None:
            self._xdim = _batch_dim(self.model)
        elif _checks.nonneg_int("batch_dim", self.batch_dim) > 1:
            raise ValueError(f"batch_dim must be 0 (x is (N, T, ...)) or 1 (x is (T, N, ...)), "
                             f"got {self.batch_dim}")
        else:
            self._xdim = self.batch_dim
        self._ydim = self._xdim if self.y_batch_dim is None else \
            _checks.nonneg_int("y_batch_dim", self.y_batch_dim)
        if self._ydim is None:
            self._ydim = 0
        self._bad = False  # NaN seen on the previous step: alarm again only after recovery
        self._recording: Recording | None = None  # from record(), for the next step()
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
        recording, self._recording = self._recording, None
        new = self._check_finite(loss)
        if not new and not self._bad and (self.steps - 1) % self.every == 0:
            if recording is not None and x is None:
                new += self._judge(self._recorded_trace(recording))
            else:
                new += self._probe(self.x if x is None else x, y)
        for alarm in new:
            self.alarms.append(alarm)
            if self.warn:
                warnings.warn(str(alarm), GradientAlarm, stacklevel=2)
        return new

    @contextlib.contextmanager
    def record(self) -> Iterator[Recording | None]:
        """Ride on the real training step: wrap the step's own forward and loss in this.

        ::

            with monitor.record():
                loss = criterion(model(x), y)
            loss.backward()
            monitor.step(loss)        # reads dL/dh_t from this very backward pass

        On the steps the monitor probes (1, every + 1, ...) it records the forward with
        :func:`vanishing.probe.record`, so the probe costs no second forward: the
        recorded step runs fused modules as their weight-sharing cells (a fused LSTM:
        about 1.3-1.8x one plain step, see docs/performance.md), once every ``every``
        steps. On the other steps it does nothing. The probe then reads the whole batch
        and the user's own loss. Prefer the sub-batch mode (``step(loss, x=...)``) when
        a probe of ``probe_batch`` sequences is cheaper than one recorded full step
        (large batches, a fused LSTM); this mode when the forward takes arguments or
        is hard to call twice.
        """
        if (self.steps % self.every) != 0 or self._bad:
            yield None
            return
        with record(self.model, steps=self.step_modules) as rec:
            yield rec
        self._recording = rec

    def _recorded_trace(self, rec: Recording) -> Trace | None:
        try:
            return rec.trace()
        except ValueError:  # exactly zero at every step, or no gradient reached
            return None

    def _alarm(self, kind: str, message: str, value: float = float("nan")) -> Alarm:
        # the weights as they are now: advice they already follow is left out (NaN advice
        # does not depend on them, and NaN weights have no singular values to read)
        weights = []
        if kind != "nan":
            try:
                weights = weight_conditions(self.model)
            except ValueError:  # only user-named steps: no weights this library can read
                weights = []
        advice = remedies(kind, weights, code=not isinstance(self.model, SequenceModel))
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
        if not isinstance(x, Tensor):
            raise TypeError(f"GradientMonitor: x must be a torch.Tensor, got "
                            f"{type(x).__name__}")
        xb, target = x, y
        if self._xdim is not None:  # the first probe_batch sequences, of x and of y
            xb = _first("x", x, self._xdim, self.probe_batch, "batch_dim")
            if y is not None:
                target = _first_targets(y, x, self._xdim, self._ydim, self.probe_batch)
        fn = self.loss_fn
        loss = None  # the probe's own default loss, as hidden_gradients
        if fn is not None:
            def loss(out):
                return fn(out) if target is None else fn(out, target)

        training = self.model.training
        try:
            self.model.eval()
            with torch.random.fork_rng(devices=[]):
                grads = layer_gradients(self.model, xb, loss, steps=self.step_modules,
                                        forward=self.forward, project=True)
        finally:
            self.model.train(training)
        self._check_layout(xb, grads)
        try:
            trace = Trace.from_gradients(grads)
        except ValueError:  # exactly zero at every step
            trace = None
        return self._judge(trace)

    def _judge(self, trace: Trace | None) -> list[Alarm]:
        """The alarms of one probe's trace (see the module doc for the rule)."""
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
        return [self._alarm(verdict.kind, f"{trace.main_layer}: {verdict.reason}",
                            verdict.value)]

    def _check_layout(self, xb: Tensor, grads) -> None:
        """Refuse a batch dimension read from batch_first that the model contradicts."""
        if self.batch_dim is not None or self._xdim is None or xb.dim() < 2:
            return
        steps = xb.shape[1 - self._xdim]
        ran = {g.total.shape[1] for g in grads if g.record is not None}  # one-call layers
        if ran and steps not in ran:
            raise ValueError(
                f"GradientMonitor: x has {steps} steps along dimension {1 - self._xdim} (time, "
                f"if the batch is dimension {self._xdim} as the recurrent modules' "
                f"batch_first says), but the recurrent layers ran {sorted(ran)} steps; the "
                f"model probably transposes x. Pass batch_dim= (0 for (N, T, ...) input)")


def _batch_dim(model: nn.Module) -> int | None:
    """The batch dimension of x from the modules' ``batch_first``; None if none says."""
    try:
        flag = batch_first(model)
    except ValueError as exc:
        raise ValueError(f"GradientMonitor: {exc}; pass batch_dim=0 (x is (N, T, ...)) or 1 "
                         f"(x is (T, N, ...))") from None
    return None if flag is None else 0 if flag else 1


def _first_targets(y: Tensor, x: Tensor, xdim: int, ydim: int, n: int) -> Tensor:
    """The targets of the first ``n`` sequences: y sliced along ``ydim``, or, for flat
    per-step targets (T * N rows laid out as x, a language model's ``y.view(-1)``),
    reshaped to x's (T, N) or (N, T), sliced, and flattened back."""
    if not isinstance(y, Tensor):
        raise TypeError(f"GradientMonitor: y must be a torch.Tensor, got {type(y).__name__}")
    rows = x.shape[0] * x.shape[1]
    if y.dim() >= 1 and y.shape[0] == rows and y.shape[0] != x.shape[xdim]:
        grid = y.reshape(x.shape[0], x.shape[1], *y.shape[1:])
        part = grid.narrow(xdim, 0, min(n, x.shape[xdim]))
        return part.reshape(-1, *y.shape[1:])
    return _first("y", y, ydim, n, "y_batch_dim", x.shape[xdim])


def _first(name: str, t: Tensor, dim: int, n: int, arg: str, size: int | None = None
           ) -> Tensor:
    """The first ``n`` sequences of ``t`` along its batch dimension ``dim``."""
    if not isinstance(t, Tensor):
        raise TypeError(f"GradientMonitor: {name} must be a torch.Tensor, got "
                        f"{type(t).__name__}")
    if t.dim() <= dim or (size is not None and t.shape[dim] != size):
        has = f"{t.shape[dim]} there" if t.dim() > dim else "no such dimension"
        flat = f" or hold T * N = {size} * ... flat per-step rows" if size else ""
        raise ValueError(f"GradientMonitor: {name} of shape {tuple(t.shape)} should hold "
                         f"{'the' if size is None else size} sequences along its batch "
                         f"dimension {dim}{flat}, but has {has}; pass {arg}= to say which "
                         f"dimension indexes the batch")
    return t.narrow(dim, 0, min(n, t.shape[dim]))
