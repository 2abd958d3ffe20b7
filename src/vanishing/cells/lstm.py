r"""Long short-term memory (Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000)."""

from __future__ import annotations

import torch
from torch import Tensor

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

    Shapes: x_t (N, H_in), h and c (N, H); state ``(h, c)``. Gate order i, f, g, o as
    ``torch.nn.LSTM``. Init: PyTorch's U(-1/sqrt(H), 1/sqrt(H)).
    """

    kind = "lstm"
    gates = 4
    state_size = 2
    forget_gate = 1

    def recur(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        h, c = state
        i, f, g, o = (xp_t + self._hh(h)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return (h, c)


register("lstm", LSTMCell)
