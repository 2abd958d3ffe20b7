r"""The mechanics of :func:`vanishing.probe.record`: what runs while a model is recorded.

Each recurrent step the walker (:mod:`vanishing.recurrent`) finds hands the tape the
hidden states it produced, in call order:

* a fused ``nn.RNN/LSTM/GRU`` runs, for the duration of the recording, as a loop of
  weight-sharing cells (:func:`vanishing.cells.twin`) with a zero probe p added to every
  h_t (see :func:`vanishing.unroll.unroll`): p's gradient is the total dL/dh_t, and the
  gradient of the stacked outputs is the direct part ∂L/∂h_t. It returns exactly what
  the fused module returns (contiguous output, ``PackedSequence`` in, ``PackedSequence``
  out, each sequence run on its own length);
* a stock ``nn.*Cell``, a named step (forward hooks) and a library ``Cell`` (its
  ``recur``) hand over the hidden state they return: the gradient of that very tensor,
  which the user's code passes on, is the total dL/dh_t.

A module called several times appends its steps to one time axis.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from .cells import Cell, twin
from .recurrent import Step, select_hidden
from .unroll import flip_within, make_probe, unroll

__all__ = ["LayerRecord", "Tape", "LayerTape"]


@dataclass
class LayerRecord:
    """One call of one recurrent layer (one direction) of a fused module, as recorded.

    Every tensor is in the order the layer *processed* time: reversed in real time
    when ``reverse`` is True (within each sequence's own length, when ``lengths`` is set).

    Attributes:
        name: ``"<module name>.l<layer>"``, plus ``"_reverse"`` for a backward direction.
        cell: the weight-sharing twin cell.
        inputs: (N, T, H_in) what the layer read.
        h0: the initial state it started from (None: zeros).
        probe: (N, T, H) the zero probe (None when run without probes).
        hidden: (N, T, H) every h_t, probe included.
        reverse: True for the backward direction of a bidirectional module.
        lengths: (N,) each sequence's own length (a ``PackedSequence``), or None.
    """

    name: str
    cell: Cell
    inputs: Tensor
    h0: Tensor | tuple[Tensor, Tensor] | None
    probe: Tensor | None
    hidden: Tensor
    reverse: bool = False
    lengths: Tensor | None = None


@dataclass
class LayerTape:
    """Everything one layer handed over during a recording.

    ``records`` (fused layers): one :class:`LayerRecord` per call. ``states`` (cells and
    steps): one hidden state (N, H) or unbatched (H,) per call. ``last_call``: the
    recording's step counter at this layer's latest step (the layer run last has the
    highest).
    """

    name: str
    kind: str
    reverse: bool = False
    records: list[LayerRecord] = field(default_factory=list)
    states: list[Tensor] = field(default_factory=list)
    last_call: int = 0
    module: nn.Module | None = None
    inputs: list[tuple] = field(default_factory=list)  # per call: what the step read

    def step_inputs(self) -> tuple[Cell, Tensor, Tensor] | None:
        """(cell, xp (N, T, G*H), state before each step (N, T, S)) of a library or stock
        cell, for its Jacobian products; None for fused layers and user steps."""
        if self.kind not in ("cell", "torch_cell") or not self.inputs:
            return None
        cell = self.module if self.kind == "cell" else twin(self.module)
        xps, befores = [], []
        for first, state in self.inputs:
            xp = first if self.kind == "cell" else cell.project(first)
            xp = xp.reshape(-1, xp.shape[-1])
            if state is None:
                state = cell.initial_state(xp.shape[0], xp)
            parts = (state,) if isinstance(state, Tensor) else tuple(state)
            xps.append(xp)
            befores.append(torch.cat([p.reshape(xp.shape[0], -1) for p in parts], -1))
        return cell, torch.stack(xps, 1), torch.stack(befores, 1)


class Tape:
    """The layers of one recording, filled while the model runs (see the module doc)."""

    def __init__(self, probe: bool = True, watch: bool = True) -> None:
        self.probe, self._watching = probe, watch
        self.layers: dict[str, LayerTape] = {}
        self.records: list[LayerRecord] = []  # every fused record, in order
        self.calls = 0
        self.watched: list[Tensor] = []  # the tensors whose gradients the probe reads
        self.index: dict[int, int] = {}  # id(tensor) -> position in watched
        self.grads: dict[int, Tensor] = {}  # position -> gradient of the last backward
        self._undo: list = []

    def watch(self, t: Tensor) -> Tensor:
        """Keep ``t``; a hook stores its gradient whenever a backward pass reaches it."""
        if self._watching and t.requires_grad and id(t) not in self.index:
            i = self.index[id(t)] = len(self.watched)
            self.watched.append(t)
            # the hook holds the dict only, never the tape: a hook that held the tape
            # (which holds the tensor) would make a cycle through autograd that the
            # garbage collector cannot see, and every recording would keep its graph
            t.register_hook(functools.partial(_store, self.grads, i))
        return t

    def layer(self, name: str, kind: str, reverse: bool = False,
              module: nn.Module | None = None) -> LayerTape:
        self.calls += 1
        tape = self.layers.setdefault(name, LayerTape(name, kind, reverse, module=module))
        tape.last_call = self.calls
        return tape

    # -- attaching to the model's steps ----------------------------------------------
    def attach(self, step: Step) -> None:
        m = step.module
        if step.kind == "fused":
            self._undo.append(("forward", m, m.__dict__.get("forward")))
            m.forward = functools.partial(_fused_forward, m, step.name, self)
        elif step.kind == "cell":
            self._undo.append(("recur", m, m.__dict__.get("recur")))
            m.recur = functools.partial(_cell_recur, type(m).recur.__get__(m), step.name, self)
        else:
            selector = step.hidden
            where = f"{step.name} ({type(m).__name__})"

            def hook(module, args, output, name=step.name, kind=step.kind):
                h = select_hidden(output, selector, where)
                layer = self.layer(name, kind, module=module)
                layer.states.append(self.watch(h))
                if kind == "torch_cell" and args:
                    layer.inputs.append((args[0], args[1] if len(args) > 1 else None))
            self._undo.append(("hook", m, m.register_forward_hook(hook)))

    def detach_all(self) -> None:
        """Give every module back its own forward / recur and remove the hooks."""
        for what, module, old in reversed(self._undo):
            if what == "hook":
                old.remove()
            elif old is None:
                module.__dict__.pop(what, None)
            else:
                setattr(module, what, old)
        self._undo.clear()


def _store(grads: dict, i: int, g: Tensor) -> None:
    grads[i] = g


def _cell_recur(recur, name: str, tape: Tape, xp_t: Tensor, state):
    out = recur(xp_t, state)
    layer = tape.layer(name, "cell", module=recur.__self__)
    layer.states.append(tape.watch(out[0]))
    layer.inputs.append((xp_t, state))
    return out


def _fused_forward(module: nn.RNNBase, name: str, tape: Tape, input, hx=None):
    """The fused module's forward, computed by twin cells (see the module doc)."""
    packed = isinstance(input, PackedSequence)
    if packed:
        x, lengths = pad_packed_sequence(input, batch_first=True)
        lengths = lengths.to(torch.int64)
        batched = True
    else:
        if not isinstance(input, Tensor) or input.dim() not in (2, 3):
            got = f"{input.dim()}-D" if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"{name}: expected input to be 2-D, 3-D or a PackedSequence, "
                             f"got {got}")
        batched, lengths = input.dim() == 3, None
        x = input if batched else input.unsqueeze(0 if module.batch_first else 1)
        if not module.batch_first:
            x = x.transpose(0, 1)
    lstm = module.mode == "LSTM"
    h0 = c0 = None
    if hx is not None:
        h0, c0 = hx if lstm else (hx, None)
        if not batched:
            h0, c0 = h0.unsqueeze(1), None if c0 is None else c0.unsqueeze(1)
    dirs = 2 if module.bidirectional else 1
    inp, h_n, c_n = x, [], []
    for layer in range(module.num_layers):
        outs = []
        for d in range(dirs):
            cell = twin(module, layer, reverse=bool(d))
            i = layer * dirs + d
            state = None if h0 is None else (h0[i], c0[i]) if lstm else h0[i]
            seq = inp if not d else inp.flip(1) if lengths is None else flip_within(inp,
                                                                                   lengths)
            p = make_probe(seq, cell.state_sizes[0]) if tape.probe else None
            hs, final = unroll(cell, seq, state, probe=p, lengths=lengths)
            rec = LayerRecord(f"{name}.l{layer}" + "_reverse" * d, cell, seq, state, p, hs,
                              bool(d), lengths)
            if p is not None:
                tape.watch(p), tape.watch(hs)
            tape.layer(rec.name, "fused", bool(d)).records.append(rec)
            tape.records.append(rec)
            # from hs (or the held state), so a loss on h_n shows in the direct part
            h_n.append(hs[:, -1] if lengths is None else final if not lstm else final[0])
            if lstm:
                c_n.append(final[1])
            back = hs if not d else hs.flip(1) if lengths is None else flip_within(hs,
                                                                                  lengths)
            outs.append(back)
        inp = torch.cat(outs, -1) if dirs == 2 else outs[0]
        if layer < module.num_layers - 1 and module.dropout and module.training:
            inp = nn.functional.dropout(inp, module.dropout, training=True)
    h_n = torch.stack(h_n)
    c_n = torch.stack(c_n) if lstm else None
    if packed:
        out = _repack(inp, input)
    else:
        out = inp if module.batch_first else inp.transpose(0, 1).contiguous()
        if not batched:
            out, h_n = out.squeeze(0 if module.batch_first else 1), h_n.squeeze(1)
            c_n = None if c_n is None else c_n.squeeze(1)
    return out, ((h_n, c_n) if lstm else h_n)


def _repack(padded: Tensor, like: PackedSequence) -> PackedSequence:
    """``padded`` (N, T, F), in the original batch order, packed exactly as ``like`` is:
    the same ``batch_sizes`` and sorting, one ``index_select`` (linear backward)."""
    n, steps = padded.shape[0], padded.shape[1]
    order = like.sorted_indices if like.sorted_indices is not None else torch.arange(n)
    order = order.to(torch.int64).cpu()
    rows = torch.cat([order[:b] * steps + t for t, b in enumerate(like.batch_sizes.tolist())])
    data = padded.reshape(n * steps, -1).index_select(0, rows.to(padded.device))
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)
