r"""Sequence models: input layer + recurrent core + readout, with two paths that share weights.

::

    x (N, L, H_in) floats, or (N, L) token ids -> Embedding -> (N, L, E)
      -> core: fused torch.nn.RNN / LSTM / GRU (training)   or   unrolled cells (probing)
      -> hs (N, L, H) -> readout Linear: last step (N, C) or every step (N, L, C)

``forward`` runs the fused ``torch.nn`` module (fast). ``forward_unrolled`` runs the
same layers as a Python loop of :mod:`vanishing.cells` twins that hold *the same
parameter tensors*, not copies, so a probe always sees the model being trained and its
gradients land in the same ``.grad`` fields. It accepts one zero probe per layer
(see :func:`vanishing.unroll.unroll`).

Model names (:data:`MODELS`): ``rnn_tanh``, ``rnn_relu``, ``lstm``, ``gru``, and
``irnn`` (a relu RNN with identity init, Le et al. 2015).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import _checks
from .cells import CELLS, Cell, make_cell, twin
from .init import initialize
from .unroll import unroll

__all__ = ["CORES", "MODELS", "READOUTS", "CellStack", "SequenceModel", "build_model"]

CORES = {
    "rnn_tanh": lambda i, h, n: nn.RNN(i, h, n, nonlinearity="tanh", batch_first=True),
    "rnn_relu": lambda i, h, n: nn.RNN(i, h, n, nonlinearity="relu", batch_first=True),
    "lstm": lambda i, h, n: nn.LSTM(i, h, n, batch_first=True),
    "gru": lambda i, h, n: nn.GRU(i, h, n, batch_first=True),
}
READOUTS = ("last", "all")


class CellStack(nn.Module):
    """Stacked :mod:`vanishing.cells` run by :func:`~vanishing.unroll.unroll`: the core of a
    :class:`SequenceModel` whose cell has no fused ``torch.nn`` module.

    ``forward(x)`` takes (N, L, H_in), batch first, and returns ``(hs, finals)``: the last
    layer's hidden states (N, L, H) and each layer's final state, as a fused module's
    ``(output, h_n)``.
    """

    batch_first = True

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.num_layers = _checks.positive_int("num_layers", num_layers, _checks.MAX_LAYERS)
        self.cells = nn.ModuleList(make_cell(kind, input_size if i == 0 else hidden_size,
                                             hidden_size) for i in range(num_layers))
        for cell in list(self.cells)[:-1]:
            cell.last_layer = False  # initialised as a lower layer (IndRNN's u range)

    def forward(self, x: Tensor, state: list | None = None) -> tuple[Tensor, list]:
        """``state``: each layer's initial state (as the returned ``finals``), or None."""
        inp, finals = x, []
        for i, cell in enumerate(self.cells):
            hs, final = unroll(cell, inp, None if state is None else state[i])
            inp = cell.emit(hs, inp)
            finals.append(final)
        return inp, finals


def _free_memory() -> int | None:
    """Bytes of memory this machine has available now (None where it cannot tell)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _check_memory(model: nn.Module, core: str, hidden_size: int) -> None:
    """Refuse, in one line, a model whose weights alone need more memory than is free
    (torch's allocator would fail with a traceback, or the kernel kill the process)."""
    numel = sum(p.numel() for p in model.parameters())
    need, free = 4 * numel, _free_memory()  # float32, as built
    if free is not None and need > free:
        raise ValueError(f"a {core} of hidden_size {hidden_size:,} holds {numel:,} weights "
                         f"({need / 2**30:.1f} GiB in float32), more than the "
                         f"{free / 2**30:.1f} GiB of memory free here; use a smaller "
                         f"hidden_size")


@dataclass(frozen=True)
class _Preset:
    core: str
    init: str = "default"
    forget_bias: float | None = None


MODELS = {
    "rnn_tanh": _Preset("rnn_tanh"),
    "rnn_relu": _Preset("rnn_relu"),
    "irnn": _Preset("rnn_relu", init="identity"),
    "lstm": _Preset("lstm", forget_bias=1.0),
    "gru": _Preset("gru"),
}
#: every other registered cell is a model under its own name, with its own initialisation
#: (``rnn_linear`` is left out: it is the closed-form case for tests, not a model to train)
MODELS.update({name: _Preset(name) for name in CELLS if name not in MODELS
               and name != "rnn_linear"})


class SequenceModel(nn.Module):
    """Input layer + recurrent core + readout.

    The input layer is an ``Embedding`` for token input. For float input it is the
    core's own input matrix W_ih (h_t = f(W_ih x_t + W_hh h_(t-1) + b)): a separate
    ``nn.Linear`` in front would be a second linear map with nothing between the two,
    adding parameters but no expressive power, and one more matrix for the probe.

    Args:
        core: ``rnn_tanh``, ``rnn_relu``, ``lstm`` or ``gru`` (fused ``torch.nn``
            modules), or any other cell registered in :data:`vanishing.cells.CELLS`
            (run as a :class:`CellStack`).
        input_size: H_in, features per step; for token input, the vocabulary size.
        hidden_size: H.
        output_size: C, outputs per readout.
        tokens: if True, ``x`` is (N, L) integer ids read through an ``Embedding(H_in, E)``.
        embedding_size: E (token input only; default H).
        readout: ``last`` (output (N, C) from h_L) or ``all`` (output (N, L, C)).
        num_layers: stacked recurrent layers.
        init, radius, forget_bias: see :func:`vanishing.init.initialize`.
        max_length: the longest dependency, for ``init="chrono"``.
        seed: seeds a local ``torch.Generator`` for every initial weight (the global
            RNG is neither used nor advanced).
    """

    def __init__(
        self,
        core: str,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        tokens: bool = False,
        embedding_size: int | None = None,
        readout: str = "last",
        num_layers: int = 1,
        init: str = "default",
        radius: float | None = None,
        forget_bias: float | None = None,
        max_length: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        _checks.one_of("core", core, list(dict.fromkeys([*CORES, *CELLS])))
        _checks.one_of("readout", readout, READOUTS)
        for name, value, most in [("input_size", input_size, _checks.MAX_SIZE),
                                  ("hidden_size", hidden_size, _checks.MAX_SIZE),
                                  ("output_size", output_size, _checks.MAX_SIZE),
                                  ("num_layers", num_layers, _checks.MAX_LAYERS)]:
            _checks.positive_int(name, value, most)
        self.core_name, self.readout_mode, self.tokens = core, readout, tokens
        #: truncated BPTT window k (None: backpropagate through the whole sequence)
        self.truncate: int | None = None
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        e = hidden_size if embedding_size is None else _checks.positive_int(
            "embedding_size", embedding_size, _checks.MAX_SIZE)
        with torch.device("meta"):  # allocate nothing and draw nothing from the global RNG
            self.embed = nn.Embedding(input_size, e) if tokens else None
            size = e if tokens else input_size
            self.core = CORES[core](size, hidden_size, num_layers) if core in CORES else \
                CellStack(core, size, hidden_size, num_layers)
            self.head = nn.Linear(hidden_size, output_size)
        _check_memory(self, core, hidden_size)  # sizes are known on meta, before any byte
        self.to_empty(device="cpu")
        if isinstance(self.core, nn.RNNBase):
            self.core.flatten_parameters()
        g = torch.Generator().manual_seed(int(seed))
        initialize(self.core, init, radius=radius, forget_bias=forget_bias, generator=g,
                   **({} if max_length is None else {"max_length": max_length}))
        with torch.no_grad():
            if self.embed is not None:
                self.embed.weight.normal_(generator=g)
            bound = 1.0 / math.sqrt(hidden_size)
            self.head.weight.uniform_(-bound, bound, generator=g)
            self.head.bias.uniform_(-bound, bound, generator=g)

    # -- the input layer -----------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """Check ``x`` and map it to the core's input (N, L, H_in or E)."""
        if not self.tokens:
            return _checks.sequence("x", x, self.input_size)
        if not isinstance(x, Tensor) or x.dim() != 2 or x.is_floating_point():
            got = f"{x.dim()}-D {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"x must be a 2-D integer tensor (batch, time) of token ids, got {got}")
        if x.numel() == 0:
            raise ValueError("x must hold at least one token, got an empty tensor")
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi >= self.input_size:
            raise ValueError(f"token ids must lie in [0, {self.input_size}), got [{lo}, {hi}]")
        return self.embed(x)

    def _read(self, hs: Tensor) -> Tensor:
        return self.head(hs[:, -1] if self.readout_mode == "last" else hs)

    # -- the two paths -------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Fused path. Returns (N, C) for readout ``last`` or (N, L, C) for ``all``.

        With :attr:`truncate` = k (truncated BPTT), the sequence runs in windows of k
        steps counted back from the last step, and the state handed from one window to
        the next is detached: the forward values are unchanged, and no gradient reaches
        further back than k - 1 steps from the end of its window.
        """
        inp = self.encode(x)
        if self.truncate is None or self.truncate >= inp.shape[1]:
            hs, _ = self.core(inp)
            return self._read(hs)
        k, length = self.truncate, inp.shape[1]
        bounds = [0, *range(length % k or k, length, k)] if length % k else \
            list(range(0, length, k))
        outs, state = [], None
        for start, end in zip(bounds, [*bounds[1:], length], strict=True):
            hs, state = self.core(inp[:, start:end], state)
            state = _detached(state)
            outs.append(hs)
        return self._read(torch.cat(outs, 1))

    def cells(self) -> list[Cell]:
        """One cell per layer, sharing this model's parameter tensors (built on demand for a
        fused core)."""
        if isinstance(self.core, CellStack):
            return list(self.core.cells)
        return [twin(self.core, layer) for layer in range(self.core.num_layers)]

    def forward_unrolled(
        self, x: Tensor, probes: list[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """Unrolled path with the same weights.

        Args:
            x: as for :meth:`forward`.
            probes: optional list with one zero (N, L, H) tensor per layer (requires grad).

        Returns:
            ``(output, hs)``: the readout as :meth:`forward`, and every layer's hidden
            states (N, L, H), probes included.
        """
        cells = self.cells()
        if probes is not None and (not isinstance(probes, (list, tuple))
                                   or len(probes) != len(cells)):
            raise ValueError(f"probes must be a list of {len(cells)} tensor(s), one per layer")
        inp, all_hs = self.encode(x), []
        for layer, cell in enumerate(cells):
            hs, _ = unroll(cell, inp, probe=None if probes is None else probes[layer])
            inp = cell.emit(hs, inp)
            all_hs.append(hs)
        return self._read(inp), all_hs

    def extra_repr(self) -> str:
        return f"core={self.core_name!r}, readout={self.readout_mode!r}"


def _detached(state):
    """A state (a tensor, or nested tuples / lists of tensors) cut from the graph."""
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(_detached(s) for s in state)


def build_model(
    name: str,
    input_size: int,
    hidden_size: int,
    output_size: int,
    **kwargs,
) -> SequenceModel:
    """Build a model by name (:data:`MODELS`), applying the name's preset init.

    ``irnn`` is a relu RNN with identity init; ``lstm`` gets forget-gate bias 1 unless
    ``forget_bias`` is given or ``init="chrono"`` (which draws that bias itself). Other
    keyword arguments go to :class:`SequenceModel`.
    """
    preset = MODELS[_checks.one_of("model", name, MODELS)]
    kwargs.setdefault("init", preset.init)
    if kwargs["init"] != "chrono":
        kwargs.setdefault("forget_bias", preset.forget_bias)
    return SequenceModel(preset.core, input_size, hidden_size, output_size, **kwargs)
