r"""Gated recurrent unit (Cho et al. 2014), in ``torch.nn.GRU``'s form."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Cell, register

__all__ = ["GRUCell"]


class GRUCell(Cell):
    r"""Gated recurrent unit.

    .. math::
        \begin{aligned}
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{aligned}

    With z near 1 the step is close to the identity, so the gradient survives.

    Shapes: x_t (N, H_in), h (N, H); state ``(h,)``. Gate order r, z, n as
    ``torch.nn.GRU``. Init: PyTorch's U(-1/sqrt(H), 1/sqrt(H)).
    """

    kind = "gru"
    gates = 3
    gate_names = "rzn"

    def recur(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        h = state[0]
        xr, xz, xn = xp_t.chunk(3, dim=-1)
        hr, hz, hn = self._hh(h).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (n + z * (h - n),)


register("gru", GRUCell)
