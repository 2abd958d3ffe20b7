r"""Elman (vanilla) recurrence: h_t = f(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh).

Elman, "Finding structure in time" (1990); the classic subject of the vanishing-gradient
analyses (Bengio et al. 1994; Pascanu, Mikolov & Bengio 2013).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import one_of
from .base import Cell, register

__all__ = ["ElmanCell", "NONLINEARITIES"]

NONLINEARITIES = ("tanh", "relu", "linear")


class ElmanCell(Cell):
    r"""Elman (vanilla) recurrence.

    .. math::
        h_t = f(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),\quad f \in \{\tanh, \mathrm{relu},
        \mathrm{id}\}

    Its Jacobian is dh_t/dh_(t-1) = diag(f'(a_t)) W_hh (:meth:`jacobian`), the factor whose
    product over many steps vanishes or explodes. |f'| <= gamma = 1 for all three f.

    Args:
        input_size: H_in.  hidden_size: H.
        nonlinearity: ``"tanh"`` (default), ``"relu"`` or ``"linear"`` (no squashing; the
            case with a closed-form gradient, dL/dh_t = (W_hh^T)^(T-t) dL/dh_T).

    Shapes: x_t (N, H_in), h (N, H). Parameters as ``torch.nn.RNN`` layer 0. Init:
    PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias.
    """

    gates = 1
    gate_names = "h"
    gamma = 1.0

    def __init__(
        self, input_size: int, hidden_size: int, nonlinearity: str = "tanh", bias: bool = True
    ) -> None:
        self.nonlinearity = one_of("nonlinearity", nonlinearity, NONLINEARITIES)
        super().__init__(input_size, hidden_size, bias)

    @property
    def kind(self) -> str:  # type: ignore[override]
        return f"rnn_{self.nonlinearity}"

    def _f(self, a: Tensor) -> Tensor:
        if self.nonlinearity == "tanh":
            return torch.tanh(a)
        if self.nonlinearity == "relu":
            return torch.relu(a)
        return a

    def recur(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return (self._f(xp_t + self._hh(state[0])),)

    def derivative(self, h: Tensor) -> Tensor:
        """f'(a_t) from h_t = f(a_t): 1 - h^2 (tanh), [h > 0] (relu), 1 (linear)."""
        if self.nonlinearity == "tanh":
            return 1 - h * h
        if self.nonlinearity == "relu":
            return (h > 0).to(h.dtype)
        return torch.ones_like(h)

    def jacobian(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> Tensor:
        """diag(f'(a_t)) W_hh, (N, H, H)."""
        (h,) = self.recur(xp_t, state)
        return self.derivative(h)[:, :, None] * self.weight_hh

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity!r}"


for _f in NONLINEARITIES:
    register(f"rnn_{_f}", lambda i, h, bias=True, f=_f: ElmanCell(i, h, f, bias))
