r"""One-step recurrences: Elman (tanh, relu, linear), LSTM and GRU.

A cell is ONE time step. The loop over time belongs to :func:`vanishing.unroll.unroll`::

    xp = cell.project(x)                 # (N, L, G*H): input projection, all steps at once
    state = cell.initial_state(x)
    for xp_t in xp.unbind(1):            # unbind, not xp[:, t]: see FIELD-NOTES
        state = cell.recur(xp_t, state)  # h_t = ... h_(t-1) ...

Splitting the step into ``project`` (no recurrence, one big matmul) and ``recur`` (the
part that carries h_(t-1) -> h_t) is what makes a Python loop over cells about as fast
as the fused ``torch.nn`` modules on a CPU.

Legend (as in ``torch.nn.RNN``)::

    N = batch size, L = sequence length, H_in = input size, H = hidden size
    G = number of gate blocks: 1 (Elman), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n)

Parameters have the names, shapes and gate order of ``torch.nn.RNN/LSTM/GRU`` layer 0
(``weight_ih`` (G*H, H_in), ``weight_hh`` (G*H, H), ``bias_ih`` (G*H,), ``bias_hh``
(G*H,)), so a cell can share the very tensors of a fused module: see :func:`twin`.

State: a tuple whose first element is h (N, H). Elman and GRU: ``(h,)``. LSTM: ``(h, c)``.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor, nn

from ._checks import one_of, positive_int

__all__ = [
    "Cell",
    "ElmanCell",
    "LSTMCell",
    "GRUCell",
    "CELLS",
    "NONLINEARITIES",
    "make_cell",
    "twin",
]

NONLINEARITIES = ("tanh", "relu", "linear")


class Cell(nn.Module, abc.ABC):
    """Base class: parameters in ``torch.nn`` layout and the project/recur split."""

    gates: int = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        gh = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gh, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gh, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gh))
            self.bias_hh = nn.Parameter(torch.empty(gh))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

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

    # -- conveniences ----------------------------------------------------------------
    def initial_state(self, batch: int, like: Tensor) -> tuple[Tensor, ...]:
        """Zeros of shape (N, H), one per state tensor, with ``like``'s dtype and device."""
        zeros = like.new_zeros(batch, self.hidden_size)
        return (zeros,) * self.state_size

    @property
    def state_size(self) -> int:
        return 1

    def forward(self, x_t: Tensor, state: tuple[Tensor, ...] | None = None) -> tuple[Tensor, ...]:
        """One step from a raw input x_t (N, H_in); returns the new state tuple."""
        if state is None:
            state = self.initial_state(x_t.shape[0], x_t)
        return self.recur(self.project(x_t), state)

    def _hh(self, h: Tensor) -> Tensor:
        return nn.functional.linear(h, self.weight_hh, self.bias_hh)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class ElmanCell(Cell):
    r"""Elman (vanilla) recurrence.

    .. math::
        h_t = f(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),\quad f \in \{\tanh, \mathrm{relu},
        \mathrm{id}\}

    Its Jacobian is dh_t/dh_(t-1) = diag(f'(a_t)) W_hh, the factor whose product over
    many steps vanishes or explodes.

    Args:
        input_size: H_in.  hidden_size: H.
        nonlinearity: ``"tanh"`` (default), ``"relu"`` or ``"linear"`` (no squashing; the
            case with a closed-form gradient, dL/dh_t = (W_hh^T)^(T-t) dL/dh_T).

    Shapes: x_t (N, H_in), h (N, H). Parameters as ``torch.nn.RNN`` layer 0.
    """

    gates = 1

    def __init__(
        self, input_size: int, hidden_size: int, nonlinearity: str = "tanh", bias: bool = True
    ) -> None:
        self.nonlinearity = one_of("nonlinearity", nonlinearity, NONLINEARITIES)
        super().__init__(input_size, hidden_size, bias)

    def recur(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        a = xp_t + self._hh(state[0])
        if self.nonlinearity == "tanh":
            return (torch.tanh(a),)
        if self.nonlinearity == "relu":
            return (torch.relu(a),)
        return (a,)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity!r}"


class LSTMCell(Cell):
    r"""Long short-term memory (Hochreiter & Schmidhuber 1997, with a forget gate).

    .. math::
        \begin{aligned}
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t)
        \end{aligned}

    The cell state's own Jacobian dc_t/dc_(t-1) is diag(f_t): with the forget gate
    open (f near 1) the gradient is carried back nearly unchanged.

    Shapes: x_t (N, H_in), h and c (N, H). Gate order i, f, g, o as ``torch.nn.LSTM``.
    """

    gates = 4

    @property
    def state_size(self) -> int:
        return 2

    def recur(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        h, c = state
        i, f, g, o = (xp_t + self._hh(h)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return (h, c)


class GRUCell(Cell):
    r"""Gated recurrent unit (Cho et al. 2014), in ``torch.nn.GRU``'s form.

    .. math::
        \begin{aligned}
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{aligned}

    With z near 1 the step is close to the identity, so the gradient survives.

    Shapes: x_t (N, H_in), h (N, H). Gate order r, z, n as ``torch.nn.GRU``.
    """

    gates = 3

    def recur(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        h = state[0]
        xr, xz, xn = xp_t.chunk(3, dim=-1)
        hr, hz, hn = self._hh(h).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (n + z * (h - n),)


CELLS = {
    "rnn_tanh": lambda i, h, bias=True: ElmanCell(i, h, "tanh", bias),
    "rnn_relu": lambda i, h, bias=True: ElmanCell(i, h, "relu", bias),
    "rnn_linear": lambda i, h, bias=True: ElmanCell(i, h, "linear", bias),
    "lstm": LSTMCell,
    "gru": GRUCell,
}


def make_cell(name: str, input_size: int, hidden_size: int, bias: bool = True) -> Cell:
    """A cell by name: ``rnn_tanh``, ``rnn_relu``, ``rnn_linear``, ``lstm`` or ``gru``."""
    return CELLS[one_of("cell", name, CELLS)](input_size, hidden_size, bias=bias)


def twin(module: nn.RNNBase, layer: int = 0, reverse: bool = False) -> Cell:
    """A cell that shares (not copies) one layer's parameters of a fused torch module.

    ``module`` is a ``torch.nn.RNN``, ``LSTM`` or ``GRU``; ``layer`` picks the layer and
    ``reverse`` the backward direction of a bidirectional module. Gradients computed
    through the twin land in the module's own ``.grad`` fields.
    """
    if not isinstance(module, nn.RNNBase):
        raise TypeError(f"twin: expected torch.nn.RNN, LSTM or GRU, got {type(module).__name__}")
    if getattr(module, "proj_size", 0):
        raise ValueError("twin: LSTM with proj_size > 0 is not supported")
    if not 0 <= layer < module.num_layers:
        raise ValueError(f"twin: layer must be in [0, {module.num_layers}), got {layer}")
    if reverse and not module.bidirectional:
        raise ValueError("twin: reverse=True needs a bidirectional module")
    mode = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}
    if module.mode not in mode:
        raise ValueError(f"twin: unsupported recurrent mode {module.mode!r}")
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    w_ih = getattr(module, "weight_ih" + suffix)
    with torch.device("meta"):  # build the shell without allocating, then share tensors
        cell = make_cell(mode[module.mode], w_ih.shape[1], module.hidden_size, module.bias)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        if module.bias or name.startswith("weight"):
            setattr(cell, name, getattr(module, name + suffix))
    return cell
