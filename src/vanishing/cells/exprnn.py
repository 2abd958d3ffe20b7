r"""expRNN (Lezcano-Casado & Martínez-Rubio 2019, "Cheap Orthogonal Constraints in Neural
Networks"): an Elman cell whose W_hh stays orthogonal, W_hh = B exp(A) with A skew-symmetric,

    h_t = f(W_ih x_t + W_hh h_(t-1) + b),     f = modReLU (Arjovsky et al. 2016) or tanh,

kept by ``torch.nn.utils.parametrizations.orthogonal(cell, "weight_hh",
orthogonal_map="matrix_exp")``: the optimiser moves A freely and W_hh is orthogonal after
every step. All singular values of W_hh are 1, so ||dh_t/dh_(t-1)|| <= max |f'| <= 1: the
gradient can only vanish through f', and it cannot explode.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import orthogonal

from .._checks import one_of
from .base import Cell, register

__all__ = ["ExpRNNCell", "NONLINEARITIES", "modrelu"]

NONLINEARITIES = ("modrelu", "tanh")


def modrelu(z: Tensor, b: Tensor | None) -> Tensor:
    """modReLU(z) = sign(z) relu(|z| + b) for real z (Arjovsky, Shah & Bengio 2016); b (H,)."""
    return z if b is None else torch.sign(z) * torch.relu(z.abs() + b)


class ExpRNNCell(Cell):
    r"""Orthogonal recurrent cell (expRNN).

    .. math::
        h_t = f(W_{ih} x_t + W_{hh} h_{t-1} + b), \qquad W_{hh} = B \exp(A - A^\top)

    Legend: x_t (N, H_in), h_t (N, H); W_ih (H, H_in) ``weight_ih``; W_hh (H, H)
    ``weight_hh``, computed by the parametrization from A (its lower triangle,
    ``parametrizations.weight_hh.original``) and the orthogonal base B (a buffer, set at
    init); f and b by ``nonlinearity``: ``modrelu`` (default, the paper's) uses b as the
    modReLU bias ``bias_mod`` (H,), inside f, with no bias before it (f(z) = z without
    bias); ``tanh`` adds b = ``bias_ih`` (H,) before f.

    Jacobian (:meth:`jacobian`): diag(f'(a_t)) W_hh, f'(a) = [|a| + b > 0] for modReLU,
    1 - tanh(a)^2 for tanh; gamma = 1. :meth:`recurrent_blocks`: W_hh, (1, H, H).

    Init (:meth:`initialize_`, through the parametrization: assigning W_hh sets B = W_hh and
    A = 0): ``default`` and ``orthogonal``: W_hh Haar-random orthogonal (the paper also
    tries Henaff's and Cayley's inits, not here); ``identity``: W_hh = I. W_ih ~ N(0, 2/H_in)
    (He et al. 2015) and b_mod ~ U(-0.01, 0.01) as the paper's code; b_ih = 0.
    ``chrono`` and ``radius`` (W_hh has radius 1) are refused.

    W_hh is computed (a matrix exponential, 10-30x a step) once per sequence by
    :meth:`scan`; while the cell is recorded its loop of :meth:`recur` computes it per step.
    :meth:`weights` lists the parameters (W_hh is not one; read it as ``cell.weight_hh``):
    :func:`vanishing.init.initialize` refuses computed weights before it calls
    :meth:`initialize_`. :meth:`detached` holds W_hh as it is now, with no parametrization.
    """

    kind = "exprnn"
    gates = 1
    gate_names = "h"
    gamma = 1.0
    parallel = True  # unroll runs scan: W_hh once per sequence, not once per step

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 nonlinearity: str = "modrelu") -> None:
        self.nonlinearity = one_of("nonlinearity", nonlinearity, NONLINEARITIES)
        super().__init__(input_size, hidden_size, bias)

    def build(self, bias: bool) -> None:
        h = self.hidden_size
        self.weight_ih = nn.Parameter(torch.empty(h, self.input_size))
        # the parametrization reads the value it starts from: I, on the CPU under meta
        start = self.weight_ih.device
        self.weight_hh = nn.Parameter(torch.eye(h, device="cpu" if start.type == "meta"
                                                else start))
        orthogonal(self, "weight_hh", orthogonal_map="matrix_exp")
        used = "bias_mod" if self.nonlinearity == "modrelu" else "bias_ih"
        for name in ("bias_ih", "bias_mod", "bias_hh"):
            self.register_parameter(name, nn.Parameter(torch.empty(h)) if bias and
                                    name == used else None)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self.initialize_("default", generator=generator)

    @torch.no_grad()
    def initialize_(self, scheme: str, *, radius: float | None = None,
                    forget_bias: float | None = None,
                    generator: torch.Generator | None = None, **options) -> None:
        if one_of("init scheme", scheme, ("default", "orthogonal", "identity", "chrono")) \
                == "chrono" or radius not in (None, 1.0):
            what = "init 'chrono'" if radius is None else f"radius={radius:g}"
            raise ValueError(f"ExpRNNCell: W_hh is orthogonal (spectral radius 1), so {what} "
                             f"does not apply; use init 'default', 'orthogonal' or 'identity'")
        if self.weight_ih.is_meta:
            return  # nothing to draw yet: the model initialises after allocating
        h = self.hidden_size
        w = torch.eye(h, dtype=torch.float64) if scheme == "identity" else \
            nn.init.orthogonal_(torch.empty(h, h, dtype=torch.float64), generator=generator)
        self.weight_hh = w.to(self.weight_ih)  # right_inverse: B = w, A = 0
        nn.init.kaiming_normal_(self.weight_ih, nonlinearity="relu", generator=generator)
        if self.bias_mod is not None:
            self.bias_mod.uniform_(-0.01, 0.01, generator=generator)
        if self.bias_ih is not None:
            self.bias_ih.zero_()

    def _a(self, xp_t: Tensor, h: Tensor, w_hh: Tensor) -> Tensor:
        return xp_t + F.linear(h, w_hh)  # xp_t = W_ih x_t (+ b_ih): see project

    def _f(self, a: Tensor) -> Tensor:
        return modrelu(a, self.bias_mod) if self.nonlinearity == "modrelu" else torch.tanh(a)

    def recur(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return (self._f(self._a(xp_t, state[0], self.weight_hh)),)

    def scan(self, xp: Tensor, state: tuple[Tensor, ...], probe: Tensor | None
             ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The loop of :meth:`recur` with W_hh computed once; p_t added to each h_t."""
        w_hh, h, hs = self.weight_hh, state[0], []
        probes = [None] * xp.shape[1] if probe is None else probe.unbind(1)
        for xp_t, p_t in zip(xp.unbind(1), probes, strict=True):
            h = self._f(self._a(xp_t, h, w_hh))
            h = h if p_t is None else h + p_t
            hs.append(h)
        return torch.stack(hs, 1), (h,)

    def derivative(self, a: Tensor) -> Tensor:
        """f'(a_t): [|a| + b > 0] (modReLU; 0 at a = 0, as autograd), 1 - tanh(a)^2."""
        if self.nonlinearity == "tanh":
            return 1 - torch.tanh(a) ** 2
        b = 0.0 if self.bias_mod is None else self.bias_mod
        return ((a.abs() + b > 0) & (a != 0)).to(a.dtype)

    def jacobian(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> Tensor:
        """diag(f'(a_t)) W_hh, (N, H, H)."""
        w_hh = self.weight_hh
        return self.derivative(self._a(xp_t, state[0], w_hh))[:, :, None] * w_hh

    def __copy__(self) -> ExpRNNCell:
        # torch refuses to copy a parametrized module; a shallow copy is a plain cell
        clone = ExpRNNCell.__new__(ExpRNNCell)
        clone.__dict__ = dict(self.__dict__)
        return clone

    def detached(self, dtype: torch.dtype | None = None) -> Cell:
        clone = super().detached(dtype)
        w_hh = self.weight_hh.detach().clone()
        object.__setattr__(clone, "weight_hh", w_hh if dtype is None else w_hh.to(dtype))
        return clone

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity!r}"


register("exprnn", ExpRNNCell)
