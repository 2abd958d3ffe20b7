r"""Long short-term memory (Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import nonneg_int
from .base import Cell, register

__all__ = ["LSTMCell"]


class LSTMCell(Cell):
    r"""Long short-term memory, in ``torch.nn.LSTM``'s form.

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
    open (f near 1) the gradient is carried back nearly unchanged. The forget gate is
    block 1 (:attr:`forget_gate`), where ``vanishing.init`` sets its bias.

    With ``proj_size`` P > 0 (Sak et al. 2014, as ``torch.nn.LSTM(proj_size=P)``) the
    hidden state is projected, h_t = W_hr (o_t ⊙ tanh(c_t)) with ``weight_hr`` (P, H), and
    ``weight_hh`` is (4H, P): the h -> h path through gate g is then the (H, H) matrix
    W_hg W_hr (:meth:`recurrent_blocks`).

    Shapes: x_t (N, H_in), h (N, P or H), c (N, H); state ``(h, c)``. Gate order i, f, g,
    o as ``torch.nn.LSTM``. Init: PyTorch's U(-1/sqrt(H), 1/sqrt(H)).
    """

    kind = "lstm"
    gates = 4
    gate_names = "ifgo"
    state_size = 2
    forget_gate = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 proj_size: int = 0) -> None:
        self.proj_size = nonneg_int("proj_size", proj_size)
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size {hidden_size}, "
                             f"got {proj_size}")
        super().__init__(input_size, hidden_size, bias)
        if proj_size:
            self.weight_hr = nn.Parameter(torch.empty(proj_size, hidden_size))
            self.reset_parameters()

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.proj_size or self.hidden_size, self.hidden_size)

    def recur(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        h, c = state
        i, f, g, o = (xp_t + self._hh(h)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        if self.proj_size:
            h = nn.functional.linear(h, self.weight_hr)
        return (h, c)

    def recurrent_blocks(self) -> Tensor:
        if not self.proj_size:
            return super().recurrent_blocks()
        h = self.hidden_size
        return self.weight_hh.reshape(4, h, self.proj_size) @ self.weight_hr

    def extra_repr(self) -> str:
        extra = f", proj_size={self.proj_size}" if self.proj_size else ""
        return super().extra_repr() + extra


register("lstm", LSTMCell)
