r"""Linear Recurrent Unit (Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De 2023,
"Resurrecting Recurrent Neural Networks for Long Sequences")::

    x_k = Λ ⊙ x_(k-1) + exp(γ_log) ⊙ (B u_k),      Λ = exp(-exp(ν_log) + i exp(θ_log))
    y_k = Re(C x_k) + D ⊙ u_k

|λ_j| = exp(-exp(ν_log_j)) < 1 for every real ν_log (exp(ν_log) > 0): stable by
construction, and dx_T/dx_t of channel j is |λ_j|^(T-t) times a rotation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import positive_int
from .base import Cell, register

__all__ = ["LRUCell", "NU_MIN"]

#: floor on exp(ν_log) kept by :meth:`LRUCell.constrain_`: float32 rounds exp(-ν) to 1
#: for ν below 6e-8; this keeps |λ| <= exp(-1e-7) < 1 in float32 too
NU_MIN = 1e-7


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"LRUCell: {name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"LRUCell: {name} must be finite, got {value}")
    return float(value)


class LRUCell(Cell):
    r"""The LRU step, and the paper's block around it as :meth:`emit`.

    N = state size (complex channels; "batch" is the base legend's N), H_in = input
    size, H = hidden_size. State: [Re x_k; Im x_k], (batch, 2N). :meth:`project`:
    exp(γ_log) ⊙ B ũ_k as [Re; Im], (batch, L, 2N). :meth:`recur`: the complex product
    Λ ⊙ x in real arithmetic. :meth:`jacobian` (batch, 2N, 2N) and
    :meth:`recurrent_blocks` (1, 2N, 2N): [[diag a, -diag b], [diag b, diag a]], Λ = a + ib,
    a rotation-scaling |λ_j| R(θ_j) per channel, so spectral radius max |λ_j| and
    singular values |λ_j|: the weight analysis reads |λ|.

    :meth:`emit` (batch, L, H): with H_in == H (stacked layers) "norm, LRU, GELU, skip",
    the LayerNorm before the LRU as in the paper: ũ = LN(u) feeds :meth:`project` and D,
    out = u + GELU(Re(C x_k) + D ⊙ ũ_k). With H_in != H (the first layer, on raw
    features a LayerNorm over few features would erase them): no norm, no skip, D an
    (H, H_in) matrix, out = GELU(Re(C x_k) + D u_k).

    Ring init, U ~ U(0, 1] per channel: ν_log = log(-½ log(U (r_max² - r_min²) +
    r_min²)), θ_log = log(max_phase U), γ_log = log sqrt(1 - |λ|²); B_re, B_im ~
    N(0, 1/(2 H_in)), C_re, C_im ~ N(0, 1/N), D ~ N(0, 1) (the matrix: N(0, 1/H_in)).

    Args:
        input_size: H_in.  hidden_size: H.  bias: for the registry; the LRU has none.
        state_dim: N; default ceil(H / 2), a real state as wide as the other cells' h.
        r_min, r_max: 0 <= r_min < r_max < 1, the ring of |λ| at init (default 0, 0.999;
            the paper also uses 0.9, 0.999).  max_phase: in (0, 2π], default 2π.

    Deviations: no GLU or dropout after the GELU; :meth:`constrain_` keeps exp(ν_log) >=
    :data:`NU_MIN`; the only init scheme is the ring (``default``); no parallel scan.
    """

    kind = "lru"
    orthogonal_init = False
    advice = {"vanishing": "start the LRU's eigenvalues closer to the unit circle (r_min=0.9, "
                           "r_max=0.999: Orvieto et al. 2023 use such rings for long sequences)"}
    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 state_dim: int | None = None, r_min: float = 0.0, r_max: float = 0.999,
                 max_phase: float = 2 * math.pi) -> None:
        self.r_min, self.r_max = _number("r_min", r_min), _number("r_max", r_max)
        self.max_phase = _number("max_phase", max_phase)
        if self.r_min < 0:
            raise ValueError(f"LRUCell: r_min must be >= 0 (a modulus |λ|), got {r_min}")
        if not 0 < self.r_max <= math.exp(-NU_MIN):
            raise ValueError(f"LRUCell: r_max must be in (0, 1): |λ| < 1 keeps the recurrence "
                             f"stable, got {r_max}")
        if self.r_min >= self.r_max:
            raise ValueError(f"LRUCell: r_min must be below r_max (the ring r_min <= |λ| <= "
                             f"r_max), got r_min={r_min}, r_max={r_max}")
        if not 0 < self.max_phase <= 2 * math.pi:
            raise ValueError(f"LRUCell: max_phase must be in (0, 2π], got {max_phase}")
        n = (positive_int("hidden_size", hidden_size) + 1) // 2 if state_dim is None else \
            positive_int("state_dim", state_dim)
        self.state_dim = n
        self.residual = input_size == hidden_size
        super().__init__(input_size, hidden_size, bias)

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (2 * self.state_dim,)

    def build(self, bias: bool) -> None:
        n, h, h_in = self.state_dim, self.hidden_size, self.input_size
        shapes = {"nu_log": (n,), "theta_log": (n,), "gamma_log": (n,), "B_re": (n, h_in),
                  "B_im": (n, h_in), "C_re": (h, n), "C_im": (h, n),
                  "D": (h,) if self.residual else (h, h_in)}
        if self.residual:
            shapes |= {"norm_weight": (h_in,), "norm_bias": (h_in,)}
        for name, shape in shapes.items():
            setattr(self, name, nn.Parameter(torch.empty(shape)))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The ring init, in place; ``generator`` None: torch's global RNG, as ``torch.nn``
        (nothing is drawn on the meta device)."""
        dev = self.nu_log.device if generator is None else torch.device("cpu")
        n, h_in = self.state_dim, self.input_size

        def draw(shape, std: float = 1.0, uniform: bool = False) -> Tensor:
            f = torch.rand if uniform else torch.randn
            return f(shape, generator=generator, dtype=torch.float64, device=dev) * std

        r2 = (1 - draw(n, uniform=True)) * (self.r_max ** 2 - self.r_min ** 2) + self.r_min ** 2
        self.nu_log.copy_(torch.log(-0.5 * torch.log(r2)))  # |λ|² = r2, U(0, 1] never 0
        self.theta_log.copy_(torch.log(self.max_phase * (1 - draw(n, uniform=True))))
        self.gamma_log.copy_(0.5 * torch.log1p(-r2))
        for p, std in [(self.B_re, (2 * h_in) ** -0.5), (self.B_im, (2 * h_in) ** -0.5),
                       (self.C_re, n ** -0.5), (self.C_im, n ** -0.5),
                       (self.D, 1.0 if self.residual else h_in ** -0.5)]:
            p.copy_(draw(p.shape, std))
        if self.residual:
            self.norm_weight.fill_(1.0), self.norm_bias.zero_()

    @torch.no_grad()
    def initialize_(self, scheme: str, *, radius: float | None = None,
                    forget_bias: float | None = None,
                    generator: torch.Generator | None = None, **options) -> None:
        """``default`` (the ring init) only; ``forget_bias`` and ``options`` do not apply."""
        if scheme != "default":
            raise ValueError(f"the LRU supports init 'default' only (the ring init; set |λ| "
                             f"with r_min, r_max), got {scheme!r}")
        if radius is not None:
            raise ValueError(f"the LRU takes no radius: its |λ| lie on the ring [r_min, r_max] "
                             f"= [{self.r_min:g}, {self.r_max:g}], got radius={radius}")
        self.reset_parameters(generator)

    @torch.no_grad()
    def constrain_(self) -> None:
        """Keep exp(ν_log) >= NU_MIN, so |λ| < 1 also in float32."""
        self.nu_log.clamp_(min=math.log(NU_MIN))

    def lam(self) -> tuple[Tensor, Tensor]:
        """(Re Λ, Im Λ), each (N,): exp(-exp(ν_log)) (cos, sin)(exp(θ_log))."""
        mod, theta = torch.exp(-torch.exp(self.nu_log)), torch.exp(self.theta_log)
        return mod * torch.cos(theta), mod * torch.sin(theta)

    def _input(self, u: Tensor) -> Tensor:
        """ũ: LN(u) in a stacked (H_in == H) layer, else u."""
        return F.layer_norm(u, (self.input_size,), self.norm_weight, self.norm_bias) \
            if self.residual else u

    def project(self, x: Tensor) -> Tensor:
        """exp(γ_log) ⊙ B ũ as [Re; Im]: (..., H_in) -> (..., 2N)."""
        v, g = self._input(x), torch.exp(self.gamma_log)
        return torch.cat([g * F.linear(v, self.B_re), g * F.linear(v, self.B_im)], -1)

    def recur(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        a, b = self.lam()
        re, im = state[0].chunk(2, -1)
        bu_re, bu_im = xp_t.chunk(2, -1)
        return (torch.cat([a * re - b * im + bu_re, b * re + a * im + bu_im], -1),)

    def _rotation(self) -> Tensor:
        a, b = (torch.diag(v) for v in self.lam())
        return torch.cat([torch.cat([a, -b], 1), torch.cat([b, a], 1)], 0)

    def jacobian(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> Tensor:
        """dx_k/dx_(k-1), the same at every step: (batch, 2N, 2N)."""
        return self._rotation().expand(xp_t.shape[0], -1, -1)

    def recurrent_blocks(self) -> Tensor:
        """Λ as the real (1, 2N, 2N) matrix acting on [Re x; Im x]."""
        return self._rotation()[None]

    def emit(self, hs: Tensor, x: Tensor) -> Tensor:
        """The block's output (batch, L, H) from the states and the input (class doc)."""
        re, im = hs.chunk(2, -1)
        y = F.linear(re, self.C_re) - F.linear(im, self.C_im)  # Re(C x)
        if self.residual:
            return x + F.gelu(y + self.D * self._input(x))
        return F.gelu(y + F.linear(x, self.D))

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, state_dim={self.state_dim}, r_min={self.r_min:g}, "
                f"r_max={self.r_max:g}, max_phase={self.max_phase:.4g}")


register("lru", lambda i, h, bias=True: LRUCell(i, h, bias))
