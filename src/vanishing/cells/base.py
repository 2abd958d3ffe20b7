r"""The :class:`Cell` base: one time step, and everything the tool needs to know about it.

A cell is ONE time step. The loop over time belongs to :func:`vanishing.unroll.unroll`::

    xp = cell.project(x)                 # (N, L, G*H): input projection, all steps at once
    state = cell.initial_state(N, x)
    for xp_t in xp.unbind(1):            # unbind, not xp[:, t]: see FIELD-NOTES
        state = cell.recur(xp_t, state)  # h_t = ... h_(t-1) ...

Splitting the step into ``project`` (no recurrence, one big matmul) and ``recur`` (the
part that carries h_(t-1) -> h_t) is what makes a Python loop over cells about as fast
as the fused ``torch.nn`` modules on a CPU.

Legend (as in ``torch.nn.RNN``)::

    N = batch size, L = sequence length, H_in = input size, H = hidden size
    G = number of gate blocks: 1 (Elman), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n)
    S = state size: H for Elman and GRU, 2H for the LSTM's (h, c)

What the rest of the library reads from a cell, so that a new cell is one file:

=====================  ==============================================================
``kind``               its registry name (``rnn_tanh``, ``lstm``, ...)
``state_size``         how many tensors the state holds: 1 (``(h,)``) or 2 (``(h, c)``)
``state_sizes``        their widths, e.g. ``(H, H)``; the first is always the hidden
                       state h the probe reads
``gates``              G, blocks of W_hh of shape (H, H) (init works block by block)
``gate_names``         one letter per block of W_ih / W_hh, in order (``"ifgo"``, ``"rzn"``)
``forget_gate``        index of the forget-gate block (LSTM), else None
``gamma``              bound on |f'| of the nonlinearity (Pascanu et al. 2013), or None
                       where the step is not f(W_hh h + ...) (gated cells)
``jacobian``           ds_t/ds_(t-1), (N, S, S), in closed form, or None: then
                       :mod:`vanishing.jacobian` takes it by autograd
``recurrent_blocks``   the square matrices through which h_(t-1) enters, (G, H, H), for
                       weight analysis; None for a cell with no recurrent matrix
``emit``               the layer's output sequence from its states and input (default:
                       the hidden states; LRU: Re(C x_k) + D u_k)
``scan``               with ``parallel = True``, every step at once (a parallel scan);
                       :func:`~vanishing.unroll.unroll` uses it unless the cell is being
                       recorded (then the loop of ``recur`` runs: the same numbers)
``initialize_``        its initialisation schemes; ``constrain_`` its constraint, kept
                       after every optimiser step
``orthogonal_init``,   whether the usual "orthogonal W_hh" advice applies, and remedies of
``advice``             its own by verdict kind, which :func:`vanishing.diagnose.remedies`
                       adds
=====================  ==============================================================

Parameters have the names, shapes and gate order of ``torch.nn.RNN/LSTM/GRU`` layer 0
(``weight_ih`` (G*H, H_in), ``weight_hh`` (G*H, H), ``bias_ih`` (G*H,), ``bias_hh``
(G*H,)), so a cell can share the very tensors of a fused module: see
:func:`vanishing.cells.twin`.
"""

from __future__ import annotations

import abc
import copy
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .._checks import MAX_SIZE, one_of, positive_int

__all__ = ["Cell", "CELLS", "register", "make_cell"]

#: name -> factory ``(input_size, hidden_size, bias=True) -> Cell``; filled by
#: :func:`register` as each cell's file is imported.
CELLS: dict[str, Callable[..., Cell]] = {}


def register(name: str, factory: Callable[..., Cell]) -> Callable[..., Cell]:
    """Add a cell to :data:`CELLS` under ``name``; returns ``factory``."""
    if name in CELLS:
        raise ValueError(f"a cell named {name!r} is registered already")
    CELLS[name] = factory
    return factory


def make_cell(name: str, input_size: int, hidden_size: int, bias: bool = True) -> Cell:
    """A cell by name (:data:`CELLS`: ``rnn_tanh``, ``rnn_relu``, ``rnn_linear``, ``lstm``,
    ``gru``, and any cell registered since)."""
    factory = CELLS[one_of("cell", name, CELLS)]
    positive_int("input_size", input_size, MAX_SIZE)  # before any factory (torch's own messages
    positive_int("hidden_size", hidden_size, MAX_SIZE)  # name other arguments)
    return factory(input_size, hidden_size, bias=bias)


class Cell(nn.Module, abc.ABC):
    """Base class: parameters in ``torch.nn`` layout, the project/recur split, and the
    facts about the recurrence listed in the module doc."""

    kind: str = ""
    parallel: bool = False  # run by :meth:`scan` instead of a loop of :meth:`recur`
    gates: int = 1
    gate_names: str = ""
    state_size: int = 1
    forget_gate: int | None = None
    gamma: float | None = None
    #: False for the layers of a stack below its top (set by ``models.CellStack``), for
    #: cells whose initialisation differs there (IndRNN)
    last_layer: bool = True
    #: whether "initialise W_hh orthogonal" is advice this cell can take
    orthogonal_init: bool = True
    #: remedies of this cell's own, by verdict kind (``{"vanishing": "..."}``)
    advice: dict = {}

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size = positive_int("input_size", input_size, MAX_SIZE)
        self.hidden_size = positive_int("hidden_size", hidden_size, MAX_SIZE)
        self.build(bias)
        self.reset_parameters()

    def build(self, bias: bool) -> None:
        """Create the parameters (empty; :meth:`reset_parameters` fills them): the
        ``torch.nn`` layout, W_ih (G*H, H_in), W_hh (G*H, h's width), b_ih and b_hh (G*H,).
        A cell with other parameters overrides this."""
        gh = self.gates * self.hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gh, self.input_size))
        self.weight_hh = nn.Parameter(torch.empty(gh, self.state_sizes[0]))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gh))
            self.bias_hh = nn.Parameter(torch.empty(gh))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    @torch.no_grad()
    def initialize_(self, scheme: str, *, radius: float | None = None,
                    forget_bias: float | None = None,
                    generator: torch.Generator | None = None, **options) -> None:
        """Initialise this cell's weights in place by ``scheme`` (see :mod:`vanishing.init`).

        The default covers the ``torch.nn`` layout: ``default``, ``orthogonal`` and
        ``identity`` act on the (H, H) gate blocks of W_hh, ``radius`` rescales each block,
        ``forget_bias`` sets the :attr:`forget_gate` block's bias. A cell with another
        structure (a diagonal W_hh, a complex spectrum) overrides this and raises
        ``ValueError`` for a scheme it does not support. ``options`` carries
        scheme-specific settings (e.g. ``max_length`` for ``chrono``); a cell ignores
        those it does not use.
        """
        from ..init import initialize_blocks  # the block schemes live with the others

        initialize_blocks(self, scheme, radius=radius, forget_bias=forget_bias,
                          generator=generator, **options)

    def constrain_(self) -> None:
        """Project the weights back onto the cell's constraint set, in place; called by
        :func:`vanishing.train.train` after every optimiser step. Default: nothing."""

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """PyTorch's default: every weight and bias ~ U(-sqrt(k), sqrt(k)), k = 1/H."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound, generator=generator)

    # -- the two halves of a step -------------------------------------------------
    def project(self, x: Tensor) -> Tensor:
        """Input projection W_ih x + b_ih for any leading shape: (..., H_in) -> (..., G*H)."""
        return nn.functional.linear(x, self.weight_ih, self.bias_ih)

    @abc.abstractmethod
    def recur(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """One step given the projected input xp_t (N, G*H) and the previous state."""

    def jacobian(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> Tensor | None:
        """ds_t/ds_(t-1) at this step, (N, S, S), or None (no closed form: autograd)."""
        return None

    def emit(self, hs: Tensor, x: Tensor) -> Tensor:
        """The layer's output (N, L, H) from its hidden states ``hs`` (N, L, h's width) and
        its input ``x`` (N, L, H_in): what the next layer or the readout reads."""
        return hs

    def scan(self, xp: Tensor, state: tuple[Tensor, ...], probe: Tensor | None
             ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Every step at once, for a cell with ``parallel = True``: ``(hs, final state)``
        exactly as the loop of :meth:`recur` gives, with ``probe`` (N, L, H) added to each
        h_t when given."""
        raise TypeError(f"{type(self).__name__} has no parallel scan; set parallel=False "
                        f"to run its loop of recur")

    def recurrent_blocks(self) -> Tensor | None:
        """The square (H, H) matrices through which h_(t-1) enters each gate, (G, H, H):
        the blocks of W_hh (the LSTM with a projection composes them with W_hr). Weight
        analysis (spectral radius, Pascanu's condition, orthogonality) reads these."""
        h = self.hidden_size
        return self.weight_hh.reshape(self.gates, h, h)

    def detached(self, dtype: torch.dtype | None = None) -> Cell:
        """A copy of this cell holding detached copies of its weights (cast to ``dtype``),
        for analysis that must neither touch the model nor build a graph to it. Works for
        shared and parametrized weights alike (it never deep-copies the module)."""
        clone = copy.copy(self)  # the same class and settings
        clone.__dict__ = dict(self.__dict__)
        clone._parameters, clone._modules = {}, {}
        for name, value in self.weights().items():
            value = value.detach().clone()
            object.__setattr__(clone, name, value if dtype is None else value.to(dtype))
        for name in self._parameters:  # absent biases stay None
            if name not in clone.__dict__:
                object.__setattr__(clone, name, None)
        return clone

    def weights(self) -> dict[str, Tensor]:
        """name -> tensor of every weight the step reads (parameters, or tensors shared
        from a parametrized module: see :func:`vanishing.cells.twin`)."""
        out = {k: v for k, v in self._parameters.items() if v is not None}
        out.update({k: v for k, v in self.__dict__.items()
                    if isinstance(v, Tensor) and k.startswith(("weight_", "bias_"))})
        return out

    # -- conveniences ----------------------------------------------------------------
    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Width of each state tensor; the first is the hidden state h."""
        return (self.hidden_size,) * self.state_size

    def initial_state(self, batch: int, like: Tensor) -> tuple[Tensor, ...]:
        """Zeros of shape (batch, width), one per state tensor, with ``like``'s dtype and
        device."""
        return tuple(like.new_zeros(batch, w) for w in self.state_sizes)

    def forward(self, x_t: Tensor, state: tuple[Tensor, ...] | None = None) -> tuple[Tensor, ...]:
        """One step from a raw input x_t (N, H_in); returns the new state tuple."""
        if state is None:
            state = self.initial_state(x_t.shape[0], x_t)
        return self.recur(self.project(x_t), state)

    def _hh(self, h: Tensor) -> Tensor:
        return nn.functional.linear(h, self.weight_hh, self.bias_hh)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"
