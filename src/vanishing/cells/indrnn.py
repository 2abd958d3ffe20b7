r"""IndRNN (Li, Li, Cook, Zhu & Gao 2018, "Independently Recurrent Neural Network (IndRNN):
Building A Longer and Deeper RNN"): each unit recurs on itself only,

    h_t = relu(W x_t + u ⊙ h_(t-1) + b),

so dh_t/dh_(t-1) = diag(relu'(a_t) ⊙ u) and, for a loss on h_T, dL/dh_t is
u^(T-t) ⊙ Π_(s>t) relu'(a_s) ⊙ dL/dh_T unit by unit: no mixing, and with the paper's
constraint |u| <= 2^(1/T) no unit's gradient grows more than 2x over the T steps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import boolean, one_of
from .base import Cell, register

__all__ = ["IndRNNCell", "DEFAULT_MAX_LENGTH", "W_SLOPE"]

#: T when none is given: the bound is then |u| <= 2^(1/100) = 1.0070
DEFAULT_MAX_LENGTH = 100
#: the authors' PyTorch code draws W by ``kaiming_uniform_(W, a=8)``: U(-k, k),
#: k = sqrt(6 / ((1 + a^2) H_in))
W_SLOPE = 8.0
SCHEMES = ("default", "identity")


def _max_length(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"IndRNNCell: max_length, the sequence length T of the bound |u| <= "
                         f"2^(1/T), must be an int >= 1, got {value!r}")
    return value


class IndRNNCell(Cell):
    r"""Independently recurrent cell.

    .. math::
        h_t = \mathrm{relu}(W x_t + u \odot h_{t-1} + b), \qquad |u_i| \le 2^{1/T}

    Legend: x_t (N, H_in) the input, h_t (N, H) the state, W (H, H_in) the input weights
    (``weight_ih``), u (H,) one recurrent weight per unit (``weight_hh``, a vector, not a
    matrix), b (H,) the bias (``bias_ih``; torch's b_ih + b_hh would be two names for one
    sum, so ``bias_hh`` is None), T the sequence length trained on (``max_length``).

    Jacobian (:meth:`jacobian`): diag(relu'(a_t) ⊙ u), (N, H, H); :meth:`recurrent_blocks`
    is diag(u), (1, H, H). gamma = 1 (relu).

    Init ``default``, the authors' PyTorch code (IndRNN_pytorch): W ~ U(-k, k),
    k = sqrt(6 / (65 H_in)) (``kaiming_uniform_``, a = 8), b = 0, and u ~ U((1/2)^(1/T),
    2^(1/T)) for the last layer (every unit keeps its state for about T steps),
    U(0, 2^(1/T)) for the layers below. Their Theano code for the adding problem draws
    W ~ N(0, 0.001^2); from there a 2 x 32 IndRNN (T = 100, Adam 2e-3, batch 50) was at MSE
    0.084 after 1500 steps, from this W it solved the task (MSE < 0.01) in 600. A cell
    cannot see where it sits in a :class:`~vanishing.models.CellStack`: ``last_layer=True``
    (the default) gives every layer of a stacked model the last layer's range; build the
    lower layers with ``last_layer=False`` for theirs. ``identity``: u = 1, W and b as
    ``default``. T is ``max_length``, given to the constructor or as an option of
    :meth:`initialize_` (which keeps it for the constraint), else 100
    (:data:`DEFAULT_MAX_LENGTH`); the option ``u_range=(lo, hi)`` is another init range
    inside the bound.

    Constraint (:meth:`constrain_`, after every optimiser step): u clipped to
    [-2^(1/T), 2^(1/T)], as the paper's code does before each step.
    """

    kind = "indrnn"
    gates = 1
    gate_names = "h"
    gamma = 1.0

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 max_length: int = DEFAULT_MAX_LENGTH, last_layer: bool = True) -> None:
        self.max_length = _max_length(max_length)
        self.last_layer = boolean("last_layer", last_layer)
        super().__init__(input_size, hidden_size, bias)

    @property
    def u_bound(self) -> float:
        """2^(1/T), the paper's bound on |u|."""
        return 2.0 ** (1.0 / self.max_length)

    def build(self, bias: bool) -> None:
        h = self.hidden_size
        self.weight_ih = nn.Parameter(torch.empty(h, self.input_size))
        self.weight_hh = nn.Parameter(torch.empty(h))  # u
        self.register_parameter("bias_ih", nn.Parameter(torch.empty(h)) if bias else None)
        self.register_parameter("bias_hh", None)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self.initialize_("default", generator=generator)

    @torch.no_grad()
    def initialize_(self, scheme: str, *, radius: float | None = None,
                    forget_bias: float | None = None,
                    generator: torch.Generator | None = None, **options) -> None:
        if one_of("init scheme", scheme, ("default", "orthogonal", "identity", "chrono")) \
                not in SCHEMES or radius is not None:
            what = f"init {scheme!r}" if radius is None else "radius="
            raise ValueError(f"IndRNNCell: {what} does not apply to a diagonal recurrence (u is "
                             f"a vector); use init 'default' (the paper's), 'identity' (u = 1) "
                             f"or the option u_range=(lo, hi)")
        if options.get("max_length") is not None:
            self.max_length = _max_length(options["max_length"])
        bound, t = self.u_bound, self.max_length
        lo, hi = (0.5 ** (1 / t) if self.last_layer else 0.0, bound) if scheme == "default" \
            else (1.0, 1.0)
        if options.get("u_range") is not None:
            lo, hi = (float(v) for v in options["u_range"])
            if not lo <= hi or max(abs(lo), abs(hi)) > bound:
                raise ValueError(f"IndRNNCell: u_range must be (lo, hi) with lo <= hi inside "
                                 f"the bound |u| <= 2^(1/T) = {bound:.6g} (T = {t}), got "
                                 f"({lo:g}, {hi:g})")
        nn.init.kaiming_uniform_(self.weight_ih, a=W_SLOPE, generator=generator)
        self.weight_hh.uniform_(lo, hi, generator=generator)
        if self.bias_ih is not None:
            self.bias_ih.zero_()

    @torch.no_grad()
    def constrain_(self) -> None:
        """|u| <= 2^(1/T), in place."""
        self.weight_hh.clamp_(-self.u_bound, self.u_bound)

    def recur(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return (torch.relu(xp_t + self.weight_hh * state[0]),)

    def jacobian(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> Tensor:
        """diag(relu'(a_t) ⊙ u), (N, H, H); relu'(a) = [h_t > 0]."""
        (h,) = self.recur(xp_t, state)
        return torch.diag_embed((h > 0).to(h.dtype) * self.weight_hh)

    def recurrent_blocks(self) -> Tensor:
        """diag(u), (1, H, H)."""
        return torch.diag(self.weight_hh)[None]

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, max_length={self.max_length}, "
                f"last_layer={self.last_layer}")


register("indrnn", IndRNNCell)
