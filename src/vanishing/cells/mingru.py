r"""minGRU (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?"),
and :class:`MinimalCell`, what it shares with minLSTM: a recurrence linear in h,

    h_t = a_t ⊙ h_(t-1) + b_t,        a_t, b_t from x_t alone (no W_hh),

run either as a loop of :meth:`~MinimalCell.recur` or, with ``parallel=True``, by
:func:`log_scan` (every step at once). On a CPU the scan is *slower* than the loop
(FIELD-NOTES); its speed-up is a GPU result, so the loop is the default.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import one_of
from .base import Cell, register

__all__ = ["MinimalCell", "MinGRUCell", "log_scan"]


def log_scan(log_a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    r"""h_t = a_t ⊙ h_(t-1) + b_t for t = 1..L, every t at once, in log space.

    With A_t = Π_(r<=t) a_r (A_0 = 1, b_0 = h_0), h_t = A_t Σ_(s<=t) b_s / A_s: a cumsum of
    log a and a logcumsumexp of log b_s - log A_s (Heinsen 2023; the paper's appendix B).
    The paper keeps b > 0 with g(x) = x + 0.5 (x >= 0), σ(x) (x < 0); here b may have any
    sign or be 0 (a plain h~, an initial state, a probe): b = b⁺ - b⁻, each part scanned
    on its own. The backward pass is the same scan run backwards in time (no gradient
    passes through log b, which is -inf where b = 0): with G_t the total dL/dh_t,

        G_t = dL/dh_t (direct) + a_(t+1) G_(t+1),   dL/db_t = G_t,
        dL/dh_0 = a_1 G_1,   dL/d(log a_t) = G_t ⊙ a_t ⊙ h_(t-1).

    Shapes: log_a, b (N, L, H); h0 (N, H); returns (N, L, H). Error: float32 keeps log A_t
    to about 6e-8 |log A_t|, which grows with L where a_t is small.
    """
    return _LogScan.apply(log_a, b, h0)


def _scan_values(log_a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    log_big_a = F.pad(log_a, (0, 0, 1, 0)).cumsum(1)  # the h_0 slot first: a_0 = 1
    b = torch.cat([h0[:, None], b], 1)
    h = torch.zeros_like(b)
    for sign in (1.0, -1.0):
        part = sign * b
        log_part = torch.where(part > 0, part, 0.0).log()  # log 0 = -inf: exp gives 0
        h += sign * torch.exp(log_big_a + torch.logcumsumexp(log_part - log_big_a, 1))
    return h[:, 1:]


class _LogScan(torch.autograd.Function):
    """:func:`log_scan` with its backward (see there); twice differentiable."""

    @staticmethod
    def forward(ctx, log_a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        h = _scan_values(log_a, b, h0)
        ctx.save_for_backward(log_a, h0, h)
        return h

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        log_a, h0, h = ctx.saved_tensors
        log_a_next = F.pad(log_a[:, 1:], (0, 0, 0, 1))  # a_(t+1); G_(L+1) = 0
        total = log_scan(log_a_next.flip(1), g.flip(1), torch.zeros_like(h0)).flip(1)
        h_prev = torch.cat([h0[:, None], h[:, :-1]], 1)
        return total * log_a.exp() * h_prev, total, log_a[:, 0].exp() * total[:, 0]


class MinimalCell(Cell):
    """A cell h_t = a_t ⊙ h_(t-1) + b_t whose a_t and b_t read x_t only (minGRU, minLSTM).

    Parameters: ``weight_ih`` (G*H, H_in) and ``bias_ih`` (G*H,) only. A subclass gives
    :meth:`coefficients` (a_t, b_t) and :meth:`log_coefficients` (log a_t, b_t, computed
    stably for the scan), and ``write_gate``, the block whose bias chrono init lowers.
    Init ``default``: U(-1/sqrt(H_in), 1/sqrt(H_in)) as ``torch.nn.Linear`` (the paper's
    Linear_z, Linear_h); ``chrono`` (``max_length`` T_max): a_t starts at u / (1 + u),
    u ~ U[1, T_max - 1] (Tallec & Ollivier 2018); ``forget_bias`` sets the bias of the
    :attr:`forget_gate` block where there is one. There is no W_hh: ``orthogonal``,
    ``identity`` and ``radius`` are refused.
    """

    gamma = None  # the step is not f(W_hh h + ...)
    orthogonal_init = False  # no W_hh to make orthogonal
    advice = {"vanishing": "start the keep gate near 1 so the state is carried across the "
                           "sequence (init='chrono', Tallec & Ollivier 2018)"}
    write_gate = 0

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 parallel: bool = False) -> None:
        self.parallel = bool(parallel)
        super().__init__(input_size, hidden_size, bias)

    def build(self, bias: bool) -> None:
        gh = self.gates * self.hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gh, self.input_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gh))
        else:
            self.register_parameter("bias_ih", None)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        bound = 1.0 / math.sqrt(self.input_size)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound, generator=generator)

    @torch.no_grad()
    def initialize_(self, scheme: str, *, radius: float | None = None,
                    forget_bias: float | None = None,
                    generator: torch.Generator | None = None, **options) -> None:
        name = type(self).__name__
        if one_of("init scheme", scheme, ("default", "orthogonal", "identity", "chrono")) in (
                "orthogonal", "identity") or radius is not None:
            what = f"init {scheme!r}" if radius is None else "radius="
            raise ValueError(f"{name} has no recurrent matrix W_hh (its gates read x_t only): "
                             f"{what} does not apply; use init 'default' or 'chrono'")
        self.reset_parameters(generator)
        h, b = self.hidden_size, self.bias_ih
        if scheme == "chrono":
            t_max = options.get("max_length")
            if b is None or isinstance(t_max, bool) or not isinstance(t_max, int) or t_max < 3:
                raise ValueError(f"init 'chrono' needs a {name} with biases and max_length, "
                                 f"an int >= 3, got bias={b is not None}, {t_max!r}")
            u = torch.rand(h, generator=generator, dtype=torch.float64)
            log_u = torch.log(1 + u * (t_max - 2)).to(b.dtype)  # log U[1, T_max - 1]
            b[self.write_gate * h:(self.write_gate + 1) * h] = -log_u
            if self.forget_gate is not None:
                b[self.forget_gate * h:(self.forget_gate + 1) * h] = log_u
        if forget_bias is not None and self.forget_gate is not None and b is not None:
            b[self.forget_gate * h:(self.forget_gate + 1) * h] = float(forget_bias)

    @abc.abstractmethod
    def coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        """(a, b) from the projected input xp (..., G*H), each (..., H)."""

    @abc.abstractmethod
    def log_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        """(log a, b), log a computed stably from the gate pre-activations."""

    def recur(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        a, b = self.coefficients(xp_t)
        return (a * state[0] + b,)

    def scan(self, xp: Tensor, state: tuple[Tensor, ...], probe: Tensor | None
             ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Every step by :func:`log_scan`; the probe p_t is added to b_t, which is adding it
        to h_t (the recurrence is linear in h), so p.grad is the total dL/dh_t."""
        log_a, b = self.log_coefficients(xp)
        hs = log_scan(log_a, b if probe is None else b + probe, state[0])
        return hs, (hs[:, -1],)

    def jacobian(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> Tensor:
        """dh_t/dh_(t-1) = diag(a_t), (N, H, H)."""
        return torch.diag_embed(self.coefficients(xp_t)[0])

    def recurrent_blocks(self) -> None:
        return None  # no recurrent matrix: weight analysis skips this cell

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, parallel={self.parallel}"


class MinGRUCell(MinimalCell):
    r"""minGRU: a GRU whose gate and candidate read x_t only.

    .. math::
        z_t = \sigma(W_{iz} x_t + b_{iz}), \quad \tilde h_t = W_{ih} x_t + b_{ih}, \quad
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    The paper's main-text form (h~ = Linear_h(x_t), any sign), in both modes; the scan
    is sign-safe (:func:`log_scan`), so the log-space version's g() is not needed. Its
    Jacobian is diag(1 - z_t): dL/dh_t = Π_(s>t) (1 - z_s) ⊙ dL/dh_T for a loss on h_T.

    Shapes: x_t (N, H_in), h (N, H); state ``(h,)``; ``weight_ih`` (2H, H_in) in gate
    order z, h~ (``gate_names = "zh"``). ``parallel=True`` runs :meth:`scan`.
    """

    kind = "mingru"
    gates = 2
    gate_names = "zh"

    def coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        k, h_tilde = xp.chunk(2, dim=-1)
        z = torch.sigmoid(k)
        return 1 - z, z * h_tilde

    def log_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        k, h_tilde = xp.chunk(2, dim=-1)
        return -F.softplus(k), torch.sigmoid(k) * h_tilde  # log(1 - σ(k)) = -softplus(k)


register("mingru", MinGRUCell)
