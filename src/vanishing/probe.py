r"""Gradient through time for the models people write: the total dL/dh_t at every step.

**Recording.** :func:`record` is a context manager over the user's *own* forward pass and
loss::

    with record(model) as rec:
        out, hidden = model(src, hidden)          # any forward, any arguments
        loss = criterion(out.view(-1, V), y)
    trace = rec.trace(loss)                       # or: loss.backward(); trace = rec.trace()

While it is open, every recurrent step of the model (found by :mod:`vanishing.recurrent`:
fused ``nn.RNN/LSTM/GRU`` modules, stock ``nn.*Cell`` s in a loop, this library's cells,
and any module named in ``steps=``) hands its hidden states to the recording (see
:mod:`vanishing._tape`). After one backward pass the recording holds, for every layer,

    dL/dh_t = sum over s >= t of (dh_s/dh_t)^T ∂L/∂h_s

the *total* gradient at step t, which ``retain_grad()`` on a fused module's output cannot
give (it sees only the direct part ∂L/∂h_s). ``||dL/dh_t||`` against the distance back
in time T - t shows how far back the gradient reaches: for a vanilla RNN it falls
geometrically (it *vanishes*), so the weight update carries almost nothing from early
steps. The model's code is untouched and its weights are read through the modules at
every call (parametrizations included), never copied or assigned.

A module called several times in one forward (a decoder run once per word) puts its
steps on one time axis in call order. With ``lengths`` (or a ``PackedSequence``), each
sequence's lag is counted from its own last step and the norms are averaged over the
sequences present at that lag.

**Shorthands.** :func:`hidden_gradients` records ``model(x)`` with a default loss;
:func:`input_gradients` asks for dL/dx_t (or dL/de_t at a module's output, such as an
embedding), for any model, transformers included.

Shapes: N = batch, T = time, H = hidden size. Norms are computed in float64 from the
gradients' dtype; run the model in float64 (``copy.deepcopy(model).double()``) to see
gradients below float32's range.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from . import _checks
from ._tape import LayerRecord, LayerTape, Tape
from .models import SequenceModel
from .recurrent import batch_first, find_steps
from .unroll import check_lengths

__all__ = [
    "Loss",
    "OutputLoss",
    "row_norms",
    "Trace",
    "Recording",
    "LayerRecord",
    "LayerGradients",
    "record",
    "unrolled",
    "layer_gradients",
    "hidden_gradients",
    "input_gradients",
    "default_loss",
]

#: a loss of the model's output: ``loss(output) -> scalar tensor``
OutputLoss = Callable[[object], Tensor]
#: the older name of :data:`OutputLoss`
Loss = OutputLoss


@dataclass
class Trace:
    """Per-step gradient norms of one probe, t = 0 (first step) .. T - 1 (last step).

    Attributes:
        norms: (T,) float64 batch-mean ||dL/dh_t|| of the main layer (for
            :func:`input_gradients`: ||dL/dx_t||). With per-sequence lengths, index
            T - 1 - k is lag k from each sequence's own last step, averaged over the
            sequences at least k + 1 steps long.
        layers: name (e.g. ``"core.l0"``, ``"decoder.cell"``) -> that layer's own norms,
            in time order (also for the ``_reverse`` direction of a bidirectional module).
        main_layer: the name of the layer ``norms`` belongs to: the last recurrent layer
            run (a forward direction).
    """

    norms: np.ndarray
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    main_layer: str = ""

    @property
    def layer(self) -> str:
        """The older name of :attr:`main_layer`."""
        return self.main_layer

    @classmethod
    def from_gradients(cls, grads: list[LayerGradients]) -> Trace:
        """The trace of :func:`layer_gradients`' result; ``norms`` from the main layer.

        Raises ``ValueError`` if that layer's gradient is exactly zero at every step.
        """
        layers = {g.name: g.norms() for g in grads}
        main = _main(grads).name
        if not np.any(layers[main] != 0):
            raise ValueError(f"dL/dh_t of {main} is exactly zero at every step: the loss does "
                             f"not depend on the hidden states (or every unit is dead)")
        return cls(norms=layers[main], layers=layers, main_layer=main)

    def relative(self) -> np.ndarray:
        """norms / norms[-1]: the gradient at each step relative to the last step."""
        if not self.norms[-1] > 0:
            raise ValueError(f"the last step's gradient norm is {self.norms[-1]}; it cannot "
                             f"serve as the reference for relative norms")
        return self.norms / self.norms[-1]

    def horizon(self, threshold: float = 1e-3) -> int:
        """Largest lag k with ||dL/dh_(T-k)|| / ||dL/dh_T|| above ``threshold`` in (0, 1).

        ``len(norms) - 1`` means the gradient still reaches the first step.
        """
        threshold = _checks.fraction("threshold", threshold)
        rel = self.relative()[::-1]  # rel[k] = lag k
        above = np.nonzero(rel > threshold)[0]
        return int(above.max()) if above.size else 0

    def decay_rate(self) -> float:
        """Least-squares slope of ln ||dL/dh_(T-k)|| against the lag k, per step.

        Negative: the gradient shrinks going back (-0.05 is a factor exp(-0.05) = 0.95
        per step); positive: it grows. Exact zeros (underflow) are left out of the fit;
        NaN with fewer than two nonzero steps.
        """
        rev = np.asarray(self.norms, dtype=np.float64)[::-1]
        lag = np.arange(rev.size)
        ok = np.isfinite(rev) & (rev > 0)
        if ok.sum() < 2:
            return float("nan")
        return float(np.polyfit(lag[ok], np.log(rev[ok]), 1)[0])


@dataclass
class LayerGradients:
    """One recorded layer with its gradients, (N, T, H) in processing order.

    Attributes:
        name: the layer's name.  reverse: a backward direction.
        total: dL/dh_t, everything that reaches h_t.
        direct: ∂L/∂h_t, only what the layer's output sends back directly (what
            ``retain_grad()`` on the output would give); None for cells and steps,
            whose output is the state passed on.
        record: the :class:`LayerRecord` of a fused layer called once (what the lag
            decomposition and the Jacobian products read), else None.
        lengths: (N,) each sequence's own length, or None (all T steps).
        last_call: the recording's step counter at this layer's latest step.
    """

    name: str
    total: Tensor
    direct: Tensor | None = None
    record: LayerRecord | None = None
    lengths: Tensor | None = None
    reverse: bool = False
    last_call: int = 0
    source: LayerTape | None = field(default=None, repr=False)

    def step_inputs(self):
        """(cell, xp, state before each step) of a cell layer (see
        :meth:`vanishing._tape.LayerTape.step_inputs`), or None."""
        return None if self.source is None else self.source.step_inputs()

    def norms(self) -> np.ndarray:
        """Batch-mean ||dL/dh_t|| in float64 and real time order, aligned on each
        sequence's own last step when lengths are known (see :class:`Trace`)."""
        return aligned_norms(self.total.detach(), self.lengths, self.reverse)


def aligned_norms(total: Tensor, lengths: Tensor | None, reverse: bool = False) -> np.ndarray:
    """(N, T, H) gradients in processing order -> (T',) batch-mean norms in real time.

    Without lengths, T' = T and a reverse direction is flipped. With lengths L_n, a
    forward step t of sequence n sits at T' - L_n + t and a reverse step j (real time
    L_n - 1 - j) at T' - 1 - j, T' = max L_n, and each position averages the sequences
    present there.
    """
    n = row_norms(total)  # (N, T) float64
    if lengths is None:
        mean = n.mean(0)
        return (mean.flip(0) if reverse else mean).numpy()
    span = int(lengths.max())
    t = torch.arange(n.shape[1])
    valid = t < lengths[:, None]
    pos = (span - 1 - t).expand_as(valid) if reverse else span - lengths[:, None] + t
    pos = torch.where(valid, pos, torch.zeros_like(pos))
    sums = torch.zeros(n.shape[0], span, dtype=torch.float64).scatter_add_(
        1, pos, torch.where(valid, n, torch.zeros_like(n)))
    counts = torch.zeros(span, dtype=torch.float64).scatter_add_(
        0, pos.flatten(), valid.flatten().double())
    return (sums.sum(0) / counts).numpy()


def _main(grads: list[LayerGradients]) -> LayerGradients:
    forward = [g for g in grads if not g.reverse] or grads
    return max(enumerate(forward), key=lambda ig: (ig[1].last_call, ig[0]))[1]


class Recording:
    """What :func:`record` saw while its block ran: the layers and their hidden states.

    Read it after the loss is computed: :meth:`trace` (a :class:`Trace`) or
    :meth:`gradients` (per layer, the full (N, T, H) gradients). Give either the loss, or
    call ``loss.backward()`` first (the gradients of the last backward pass are used).
    """

    def __init__(self, model: nn.Module, tape: Tape, lengths: object = None) -> None:
        self.model, self._tape, self._lengths = model, tape, lengths

    @property
    def layers(self) -> list[str]:
        """The names of the layers recorded so far, in the order they first ran."""
        return list(self._tape.layers)

    def trace(self, loss: Tensor | None = None) -> Trace:
        """The per-step norms of every layer (see :class:`Trace`)."""
        return Trace.from_gradients(self.gradients(loss))

    def gradients(self, loss: Tensor | None = None) -> list[LayerGradients]:
        """Every layer's total (and, for fused layers, direct) dL/dh_t.

        Raises:
            ValueError: nothing recurrent ran; no gradient reached the recorded states
                (no backward pass yet, or a loss that does not depend on them).
        """
        tape = self._tape
        if not tape.layers:
            raise ValueError(f"{type(self.model).__name__}: none of its recurrent steps ran "
                             f"inside the record() block")
        if loss is not None:
            value = _as_scalar(loss)
            grads = torch.autograd.grad(value, tape.watched, allow_unused=True,
                                        retain_graph=True)
        else:
            grads = [tape.grads.get(i) for i in range(len(tape.watched))]
            if all(g is None for g in grads):
                raise ValueError("no gradient has reached the recorded hidden states: call "
                                 "loss.backward() before trace(), or pass the loss: "
                                 "trace(loss)")
        return [self._layer(t, grads) for t in tape.layers.values()]

    def _layer(self, tape: LayerTape, grads) -> LayerGradients:
        def grad_of(t: Tensor) -> Tensor:
            g = self._grad(t, grads)
            return torch.zeros_like(t) if g is None else g

        if tape.kind == "fused":
            recs = tape.records
            if all(self._grad(r.probe, grads) is None for r in recs):
                raise ValueError(f"the loss does not depend on the hidden states of "
                                 f"{tape.name}; nothing to probe there")
            if len(recs) > 1 and any(r.lengths is not None for r in recs):
                raise ValueError(f"{tape.name} read a PackedSequence in more than one call; "
                                 f"the probe puts one packed call per module on its time axis")
            if len(recs) > 1 and tape.reverse:  # each call in real time, then joined
                total = torch.cat([grad_of(r.probe).flip(1) for r in recs], 1)
                direct = torch.cat([grad_of(r.hidden).flip(1) for r in recs], 1)
                return LayerGradients(tape.name, total.flip(1), direct.flip(1), None, None,
                                      True, tape.last_call)
            total = torch.cat([grad_of(r.probe) for r in recs], 1)
            direct = torch.cat([grad_of(r.hidden) for r in recs], 1)
            lengths = recs[0].lengths if len(recs) == 1 else None
            lengths = self._user_lengths(tape.name, total) if lengths is None else lengths
            return LayerGradients(tape.name, total, direct, recs[0] if len(recs) == 1 else None,
                                  lengths, tape.reverse, tape.last_call, tape)
        states = tape.states
        if all(self._grad(h, grads) is None for h in states):
            raise ValueError(f"the loss does not depend on the hidden states of {tape.name}; "
                             f"nothing to probe there")
        shapes = {tuple(h.shape) for h in states}
        if len(shapes) > 1 or next(iter(shapes)) and len(next(iter(shapes))) > 2:
            listed = ", ".join(str(s) for s in sorted(shapes))
            raise ValueError(f"{tape.name}: a step's hidden state must be one (batch, hidden) "
                             f"or (hidden,) tensor of the same shape at every call, got "
                             f"{listed}; name the module that computes one step")
        total = torch.stack([grad_of(h).reshape(-1, h.shape[-1]) for h in states], 1)
        return LayerGradients(tape.name, total, None, None,
                              self._user_lengths(tape.name, total), False, tape.last_call, tape)

    def _grad(self, t: Tensor | None, grads) -> Tensor | None:
        i = None if t is None else self._tape.index.get(id(t))
        return None if i is None else grads[i]

    def _user_lengths(self, name: str, total: Tensor) -> Tensor | None:
        if self._lengths is None:
            return None
        try:
            return check_lengths(self._lengths, total.shape[0], total.shape[1])
        except ValueError as exc:
            raise ValueError(f"{name} ran {total.shape[1]} steps on {total.shape[0]} "
                             f"sequences: {exc}") from None


@contextlib.contextmanager
def record(model: nn.Module, *, steps: Iterable = (), lengths: object = None
           ) -> Iterator[Recording]:
    """Record the hidden states of every recurrent step while the block runs.

    Args:
        model: any ``nn.Module``. Its recurrent steps are found by
            :func:`vanishing.recurrent.find_steps`: stock fused ``nn.RNN/LSTM/GRU``
            (every option: layers, bidirectional, dropout, either ``batch_first``,
            unbatched input, ``proj_size``, ``PackedSequence``, parametrized weights),
            stock ``nn.RNNCell/LSTMCell/GRUCell`` and this library's cells.
        steps: more modules to record, each call one step: a submodule, or a
            ``(submodule, hidden)`` pair where ``hidden`` says which part of its output
            is the hidden state (an index, a key or a callable; default: the output if
            it is a tensor, else its first element).
        lengths: (N,) the true length of each sequence of a padded batch, for the layers
            that do not read a ``PackedSequence`` (which gives its own).

    Yields:
        A :class:`Recording`; after the loss: ``rec.trace(loss)``, or ``loss.backward()``
        then ``rec.trace()``.

    Raises:
        ValueError: the model has no step to record; a ``steps`` entry is not a submodule.
        TypeError: a ``steps`` entry is not a module.

    Every module is given back its own ``forward`` (and ``recur``) on exit, even on error.
    Gradients are enabled inside the block.
    """
    found = find_steps(model, steps)
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no recurrent step that record() can find (no "
            f"torch.nn.RNN/LSTM/GRU, nn.RNNCell/LSTMCell/GRUCell or vanishing Cell); name "
            f"the module that computes one step: record(model, steps=[model.<module>])")
    tape = Tape()
    try:
        for step in found:
            tape.attach(step)
        with torch.enable_grad():
            yield Recording(model, tape, lengths)
    finally:
        tape.detach_all()


@contextlib.contextmanager
def unrolled(model: nn.Module, *, probe: bool = True) -> Iterator[list[LayerRecord]]:
    """Run every fused ``nn.RNN/LSTM/GRU`` in ``model`` as unrolled twins in this block.

    Yields the list of :class:`LayerRecord` s that forward passes fill, one per layer,
    direction and call (see :func:`record`, which builds on the same machinery).
    ``probe=False`` adds no probes (for passes without gradients).
    """
    fused = [s for s in find_steps(model) if s.kind == "fused"]
    if not fused:
        raise ValueError(f"{type(model).__name__} contains no torch.nn.RNN, LSTM or GRU")
    tape = Tape(probe=probe, watch=False)
    try:
        for step in fused:
            tape.attach(step)
        yield tape.records
    finally:
        tape.detach_all()


def _check_call(model: nn.Module, x: object) -> None:
    """A one-line error naming :func:`record` when ``model(x)`` cannot bind."""
    try:
        inspect.signature(model.forward).bind(x)
    except TypeError as exc:
        raise TypeError(f"{type(model).__name__}.forward cannot be called as model(x) ({exc}); "
                        f"for a forward with more arguments use record(): with "
                        f"record(model) as rec: out = model(x, ...); trace = "
                        f"rec.trace(loss)") from None
    except ValueError:  # no signature to read: let the call itself say
        pass


def layer_gradients(model: nn.Module, x: Tensor, loss: OutputLoss | None = None, *,
                    lengths: object = None, steps: Iterable = (),
                    forward: Callable[[nn.Module, Tensor], object] | None = None,
                    project: bool = False) -> list[LayerGradients]:
    """Record ``model(x)``, backpropagate once: every layer's total and direct dL/dh_t.

    ``loss`` is a callable of the output (default: :func:`default_loss`, with the
    rounding-noise guard; ``project=True`` makes it the projection of the last step on
    a fixed random direction, which a final LayerNorm or softmax does not make
    constant); ``lengths`` and ``steps`` as :func:`record`; ``forward``, if given, runs
    the model instead of ``model(x)``: ``forward(model, x) -> output``.
    """
    if forward is None:
        _check_call(model, x)
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be a callable of the model's output returning a scalar "
                        f"(e.g. lambda out: criterion(out, y)), got {type(loss).__name__}")
    with record(model, steps=steps, lengths=lengths) as rec:
        output = model(x) if forward is None else forward(model, x)
        default = loss is None
        if default:
            main = _main_tape(rec._tape)
            steps_run = None if main is None else _tape_steps(main)
            time_first = batch_first(model) is False
            loss = default_loss(model, x, steps=steps_run, batch_first=not time_first,
                                lengths=lengths, project=project)
        value = _scalar(loss, output)
        if not bool(torch.isfinite(value.detach())):
            raise ValueError(_not_finite(model, x, value))
        grads = rec.gradients(value)
        if default:
            leaf, direct = _noise_leaf(rec._tape, grads)
            if bool((direct != 0).any()):
                _refuse_rounding_noise(value, output, leaf, direct)
    return grads


def _not_finite(model: nn.Module, x: object, value: Tensor) -> str:
    """Why the probe's loss is NaN or inf: the first parameter or input holding NaN/inf,
    or else the loss itself (its gradients would be NaN everywhere)."""
    what = f"the loss is not finite ({float(value.detach())})"
    for name, p in model.named_parameters():
        bad = int((~torch.isfinite(p.detach())).sum()) if p.is_floating_point() else 0
        if bad:
            return f"{what}: the model's parameter {name} holds {bad} NaN/inf value(s) of " \
                   f"{p.numel()}; the gradient through time of such weights is not a number"
    if isinstance(x, Tensor) and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        return f"{what}: x holds {int((~torch.isfinite(x)).sum())} NaN/inf value(s)"
    return f"{what} (finite weights and input): the loss overflows or divides by zero"


def _main_tape(tape: Tape) -> LayerTape | None:
    layers = list(tape.layers.values())
    forward = [t for t in layers if not t.reverse] or layers
    return max(enumerate(forward), key=lambda it: (it[1].last_call, it[0]))[1] if forward \
        else None


def _tape_steps(t: LayerTape) -> int | None:
    """Steps of the layer's last call (what its output holds); None for one-step cells."""
    return t.records[-1].hidden.shape[1] if t.kind == "fused" else None


def _noise_leaf(tape: Tape, grads: list[LayerGradients]):
    """(leaf, gradient) of the main layer's last output, for the rounding-noise guard."""
    main = _main(grads)
    t = tape.layers[main.name]
    if t.kind == "fused":
        r = t.records[-1]
        return r.hidden, main.direct[:, -r.hidden.shape[1]:]
    h = t.states[-1]
    return h, main.total[:, -1].reshape(h.shape)


def hidden_gradients(model: nn.Module, x: Tensor, loss: OutputLoss | None = None, *,
                     lengths: object = None, steps: Iterable = ()) -> Trace:
    """The total dL/dh_t at every step of every recurrent layer, in one backward pass.

    The shorthand of :func:`record` for ``model(x)``.

    Args:
        model: any ``nn.Module`` with recurrent steps (see :func:`record`); a
            :class:`~vanishing.models.SequenceModel` included. No ``.grad`` field is
            touched.
        x: whatever ``model`` takes, e.g. (N, T, H_in) floats or (N, T) token ids. A
            forward that needs more than x: use :func:`record`.
        loss: callable of the model's output returning a scalar; default: the sum of
            the last time step's output (see :func:`default_loss`): ``out[:, -1]``, or
            ``out[-1]`` when the model's recurrent modules are time first
            (``batch_first=False``, torch's own default), with x then (T, N, H_in); with
            ``lengths``, each sequence's own last step.
        lengths, steps: as :func:`record`.

    Returns:
        A :class:`Trace`: ``norms`` of the main layer, ``layers`` by name
        (``"core.l0"``, ``"core.l1"``, ...).

    Raises:
        ValueError: no recurrent step; the loss does not reach the hidden states; the
            gradient is exactly zero at every step.
        TypeError: ``model(x)`` cannot be called (the message names :func:`record`).
    """
    trace = Trace.from_gradients(layer_gradients(model, x, loss, lengths=lengths, steps=steps))
    for name, norms in trace.layers.items():
        bad = np.nonzero(~np.isfinite(norms))[0]
        if bad.size:
            raise ValueError(f"dL/dh_t of {name} is not finite (NaN or inf) at {bad.size} of "
                             f"{norms.size} steps, first t = {int(bad[0])}: the weights, the "
                             f"input or the loss hold NaN/inf")
    return trace


def input_gradients(model: nn.Module, x: Tensor, loss: OutputLoss | None = None, *,
                    at: nn.Module | None = None, time_dim: int | None = None) -> Trace:
    """||dL/dx_t|| for every step t, for any sequence model (transformers too).

    Fused modules run as they are (the gradient with respect to the input is free).

    Args:
        model: any ``nn.Module`` taking x.
        x: (N, T, F) or, time first, (T, N, F) floats; with ``at``, anything the model
            takes (e.g. (N, T) token ids).
        loss: callable of the model's output returning a scalar; default: the last time
            step's output projected on a fixed random direction
            (``default_loss(model, x, project=True)``), not summed: the sum of a final
            ``LayerNorm``'s output does not depend on x.
        at: take the gradient at this submodule's output instead of at x, e.g. an
            ``nn.Embedding`` (its output (N, T, E) in x's layout; a module called once
            per step adds one step per call).
        time_dim: 1 for (N, T, ...) input, 0 for (T, N, ...); default: from the
            ``batch_first`` of the model's recurrent and attention modules. An error
            when no module says and time_dim is not given (never a guess).

    Returns:
        A :class:`Trace` whose ``norms`` are the batch-mean ||dL/dx_t|| (float64) and
        ``layers == {"input": norms}`` (or the ``at`` module's path).

    Raises:
        ValueError: an unknown layout; ``at`` is not a submodule; the loss does not
            depend on x: dL/dx is exactly zero, or zero up to rounding (see below).

    A loss that is constant in x gives, in floating point, a gradient of rounding noise
    rather than zero. With v = dL/d(output) and J = d(output)/dx, dL/dx = J^T v; it is
    compared with J^T u for a random u (seeded, on the entries where v is nonzero, scaled
    to ||v||): the gradient a generic loss of the same outputs would have. A ratio
    ||J^T v|| / ||J^T u|| below sqrt(eps) of the gradient's dtype (3.5e-4 in float32,
    1.5e-8 in float64) means v is orthogonal to every change x can make to the output:
    an error, never a curve of noise.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    tdim = _time_dim(model, time_dim)
    if at is None:
        _checks.sequence("x", x)
    name = "input" if at is None else _submodule_path(model, at)
    if loss is None:
        loss = default_loss(model, x, project=True, batch_first=tdim == 1)
    elif not callable(loss):
        raise TypeError(f"loss must be a callable of the model's output returning a scalar, "
                        f"got {type(loss).__name__}")
    with torch.enable_grad():
        leaves, output = _input_leaves(model, x, at)
        value = _scalar(loss, output)
        gs = torch.autograd.grad(value, leaves, allow_unused=True, retain_graph=True)
        gs = [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(leaves, gs,
                                                                           strict=True)]
        if not any(bool((g != 0).any()) for g in gs):
            raise ValueError(f"the loss does not depend on the {_what(at)} (dL/dx is exactly "
                             f"zero at every step)")
        noise = _rounding_noise(value, output, leaves, gs)
    if noise is not None:
        raise ValueError(
            f"the loss does not depend on the {_what(at)}: dL/dx is zero up to {noise}, as "
            f"for the sum of a LayerNorm output; pass a loss that x can change, e.g. the "
            f"error against targets, or loss=None for a random projection of the last "
            f"step's output")
    per_step = torch.cat([_batch_time(g.detach(), tdim) for g in gs], 1)
    norms = row_norms(per_step).mean(0).numpy()
    return Trace(norms=norms, layers={name: norms}, main_layer=name)


def _what(at: nn.Module | None) -> str:
    return "input x" if at is None else f"output of {type(at).__name__}"


def _time_dim(model: nn.Module, time_dim: int | None) -> int:
    if time_dim is not None:
        if isinstance(time_dim, bool) or time_dim not in (0, 1):
            raise ValueError(f"time_dim must be 1 (x is (N, T, ...)) or 0 (x is (T, N, ...)), "
                             f"got {time_dim!r}")
        return time_dim
    flag = batch_first(model)
    if flag is None:
        raise ValueError(f"{type(model).__name__}: none of its modules says whether x is "
                         f"batch first or time first; pass time_dim=1 for (N, T, ...) input "
                         f"or time_dim=0 for (T, N, ...)")
    return 1 if flag else 0


def _submodule_path(model: nn.Module, at: object) -> str:
    if not isinstance(at, nn.Module):
        raise TypeError(f"at= takes a submodule of the model, got {type(at).__name__}")
    for path, m in model.named_modules():
        if m is at:
            return path or type(m).__name__.lower()
    raise ValueError(f"at=: {type(at).__name__} is not a submodule of {type(model).__name__}")


def _input_leaves(model: nn.Module, x, at: nn.Module | None):
    """Run the model; the tensors dL/d(.) is taken at, and the output."""
    if at is None:
        leaf = x.detach().clone().requires_grad_(True)
        return [leaf], model(leaf)
    captured: list[Tensor] = []

    def hook(module, args, out):
        if not isinstance(out, Tensor) or not out.is_floating_point():
            raise TypeError(f"at=: {type(module).__name__} must return a floating-point "
                            f"tensor, got {type(out).__name__}")
        out = out if out.requires_grad else out.detach().requires_grad_(True)
        captured.append(out)
        return out

    handle = at.register_forward_hook(hook)
    try:
        output = model(x)
    finally:
        handle.remove()
    if not captured:
        raise ValueError(f"at=: {type(at).__name__} did not run in the forward pass")
    return captured, output


def _batch_time(g: Tensor, tdim: int) -> Tensor:
    """A gradient in x's layout -> (N, T, F); one step (N, F) -> (N, 1, F)."""
    if g.dim() == 2:
        return g.unsqueeze(1)
    if g.dim() < 2:
        raise ValueError(f"the gradient has shape {tuple(g.shape)}; expected (N, T, F)")
    g = g if tdim == 1 else g.transpose(0, 1)
    return g.reshape(g.shape[0], g.shape[1], -1)


def _as_scalar(loss: object) -> Tensor:
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        got = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"trace(loss) takes the scalar loss tensor, got {got}")
    if not loss.requires_grad:
        raise ValueError("the loss does not depend on the model's computation (it has no "
                         "gradient)")
    return loss.reshape(())


def row_norms(t: Tensor) -> Tensor:
    """||t[..., :]||_2 over the last dimension, in float64, without squaring underflow.

    Below float64 (float32, bfloat16, float16), every square of a nonzero entry is a
    normal float64 (the smallest float32, 1.4e-45, squares to 2e-90), so the norm is
    accumulated in float64 directly. For float64 input, sqrt(sum x^2) would lose vectors
    below ~1e-154 (their squares underflow, and denormals are flushed to zero while
    probing); scaling each vector by its largest |entry| first keeps every norm down to
    the smallest normal float64, ~2.2e-308.
    """
    if t.dtype != torch.float64 and t.is_floating_point():
        return torch.linalg.vector_norm(t, dim=-1, dtype=torch.float64)
    t = t.double()
    scale = t.abs().amax(dim=-1, keepdim=True)
    safe = torch.where((scale > 0) & torch.isfinite(scale), scale, torch.ones_like(scale))
    scaled = (t / safe).norm(dim=-1) * safe.squeeze(-1)
    # an inf entry gives inf and a NaN gives NaN, as in the plain norm
    return torch.where(torch.isfinite(scale.squeeze(-1)), scaled, t.norm(dim=-1))


def default_loss(model: nn.Module, x: Tensor, steps: int | None = None, *,
                 batch_first: bool = True, project: bool = False,
                 lengths: object = None) -> OutputLoss:
    """The default loss: the last time step's output, summed (``out[:, -1].sum()``) or projected.

    The output (or the first element of a tuple output, as from a bare ``nn.LSTM``) must
    be batch first with a time dimension, (N, T, ...), N = ``x.shape[0]`` and, if given,
    T = ``steps``; with ``batch_first=False`` it must be time first, (T, N, ...),
    N = ``x.shape[1]``, and the loss reads ``out[-1]``. A
    :class:`~vanishing.models.SequenceModel` with readout ``last`` returns (N, C), which
    already is its last step's output, and is read as it is. Any other shape is an error
    (pass ``loss=``), never a guess.

    With ``project=True`` the last step's output, flattened to (N, K), is projected on a
    fixed random direction instead of summed: ``(last @ w).sum()``, w = K standard
    normal numbers drawn in float64 from ``torch.Generator().manual_seed(0)`` (then cast
    to the output's dtype; the global random state is untouched). The plain sum is
    constant in the input when the model ends in a ``LayerNorm`` (its output sums to
    sum(beta) whatever it reads, with the initial gain of ones), so its gradient would be
    rounding noise; a random direction is not orthogonal to what the input can change.

    With ``lengths`` (a padded batch), sequence n is read at its own last step
    ``len_n - 1`` instead of the last padded one.
    """
    last_readout = isinstance(model, SequenceModel) and model.readout_mode == "last"
    b = 0 if batch_first else 1  # the batch dimension of x and of the output
    layout = "batch-first output (batch={n}, time, ...)" if batch_first else \
        "time-first output (time, batch={n}, ...)"
    layout = layout.format(n=x.shape[b])

    def loss(output) -> Tensor:
        out = output[0] if isinstance(output, (tuple, list)) and output else output
        if not isinstance(out, Tensor):
            raise TypeError(f"the default loss needs a tensor output, got "
                            f"{type(out).__name__}; pass loss=...")
        if out.dim() == 2 and last_readout and batch_first:
            last = out
        elif out.dim() < 3 or out.shape[b] != x.shape[b]:
            raise ValueError(
                f"the default loss (a function of the last time step's output) needs a "
                f"{layout}, got shape {tuple(out.shape)}, which has no time dimension "
                f"there; pass loss=, e.g. loss=lambda out: out.sum()")
        elif steps is not None and out.shape[1 - b] != steps:
            other = "time first" if batch_first else "batch first"
            fix = "out[-1].sum()" if batch_first else "out[:, -1].sum()"
            raise ValueError(
                f"the default loss reads the last step of a {layout} with time={steps}, "
                f"got shape {tuple(out.shape)} ({other}?); pass loss=, e.g. "
                f"loss=lambda out: {fix}")
        elif lengths is not None:
            n = out.shape[b]
            ends = check_lengths(lengths, n, out.shape[1 - b]).to(out.device) - 1
            rows = torch.arange(n, device=out.device)
            last = out[rows, ends] if batch_first else out[ends, rows]
        else:
            last = out.select(1 - b, -1)
        if not project:
            return last.sum()
        flat = last.reshape(last.shape[0], -1)
        gen = torch.Generator().manual_seed(0)
        w = torch.randn(flat.shape[1], generator=gen, dtype=torch.float64).to(flat)
        return (flat @ w).sum()

    return loss


def _scalar(loss: Loss, output) -> Tensor:
    value = loss(output)
    if not isinstance(value, Tensor) or value.numel() != 1:
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"loss must return a scalar tensor, got {got}")
    if not value.requires_grad:
        raise ValueError("the loss does not depend on the model's computation (it has no "
                         "gradient); pass a loss computed from the model's output")
    return value.reshape(())


def _refuse_rounding_noise(value: Tensor, output, hidden: Tensor, direct: Tensor) -> None:
    """Raise if the default loss is constant in the last layer's states up to rounding.

    The sum of softmax probabilities is 1 and the sum of a LayerNorm output is fixed,
    whatever the states: their gradient is rounding noise, which would be reported as a
    gradient curve. ``direct`` (dL/dh through the readout only) is compared with what a
    random loss of the same outputs would send back (see :func:`_gradient_ratio`); that
    second backward pass runs through the readout alone, not back through time.
    """
    noise = _rounding_noise(value, output, [hidden], [direct])
    if noise is not None:
        raise ValueError(
            f"the default loss (the sum of the last step's output) does not depend on the "
            f"hidden states: its gradient is zero up to {noise}, as for softmax "
            f"probabilities or a LayerNorm output; pass loss=, e.g. the task's loss against "
            f"targets")


def _tensors(output) -> list[Tensor]:
    """The tensors in a model's output (a tensor, or nested tuples / lists / dicts)."""
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return [t for o in output for t in _tensors(o)]
    return []


def _rounding_noise(value: Tensor, output, leaves: list[Tensor], gs: list[Tensor]
                    ) -> str | None:
    """``None`` if ``gs`` = dL/d``leaves`` is a real gradient; else why it is rounding noise
    (its ratio to a random loss's, :func:`_gradient_ratio`, below sqrt(eps) of its dtype)."""
    ratio = _gradient_ratio(value, output, leaves, gs)
    g = gs[0]
    tol = torch.finfo(g.dtype).eps ** 0.5
    if ratio >= tol:
        return None
    return (f"{str(g.dtype).removeprefix('torch.')} rounding ({ratio:.1e} times the gradient "
            f"of a random loss of the same outputs, below {tol:.1e})")


def _gradient_ratio(value: Tensor, output, leaves: list[Tensor], gs: list[Tensor]) -> float:
    """||J^T v|| / ||J^T u||: dL/dx against a random loss's on the same outputs (inf: no
    tensor output to compare with)."""
    outs = [t for t in _tensors(output) if t.requires_grad]
    vs = torch.autograd.grad(value, outs, allow_unused=True, retain_graph=True)
    used = [(t, v) for t, v in zip(outs, vs, strict=True) if v is not None]
    if not used:
        return float("inf")
    gen = torch.Generator().manual_seed(0)
    us = [torch.randn(v.shape, generator=gen, dtype=torch.float64).to(v) * (v != 0)
          for _, v in used]
    gus = torch.autograd.grad([t for t, _ in used], leaves, us, allow_unused=True,
                              retain_graph=True)
    gus = [g for g in gus if g is not None]
    if not gus or not any(bool((g != 0).any()) for g in gus):
        return float("inf")
    # both per unit of output gradient: ||J^T v|| / ||v|| against ||J^T u|| / ||u||
    return (_norm(gs) / _norm([v for _, v in used])) / (_norm(gus) / _norm(us))


def _norm(tensors: list[Tensor]) -> float:
    return float(torch.stack([t.detach().double().norm() for t in tensors]).norm())
