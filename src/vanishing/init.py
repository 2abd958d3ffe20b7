r"""Initialisation schemes for recurrent weights.

===============  ==================================================================
scheme           what it sets
===============  ==================================================================
``default``      PyTorch's: every weight and bias ~ U(-sqrt(k), sqrt(k)), k = 1/H
``orthogonal``   each (H, H) gate block of W_hh orthogonal (QR of a Gaussian);
                 the rest as ``default``. All singular values 1: no decay at init
                 from the linear part (Saxe et al. 2014; Henaff et al. 2016)
``identity``     IRNN (Le, Jaitly & Hinton 2015): W_hh = I (each gate block),
                 biases 0, W_ih ~ N(0, 0.001^2). A relu RNN then starts as an
                 integrator that copies h forward unchanged
===============  ==================================================================

``radius`` (optional, any scheme) rescales each gate block of W_hh to that spectral
radius rho = max |eigenvalue|. For a linear RNN ||dh_T/dh_t|| ~ rho^(T-t): rho < 1
vanishes, rho > 1 explodes.

``forget_bias`` (LSTM only) sets the forget-gate bias b_if + b_hf (Gers et al. 2000;
Jozefowicz et al. 2015 recommend 1): with f_t = sigma(1) = 0.73 instead of 0.5 at
init, the cell state's gradient decays as 0.73^k instead of 0.5^k.

All randomness comes from the ``generator`` argument; the global seed is never used.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from . import _checks
from .cells import Cell
from .recurrent import RecurrentLayer
from .recurrent import recurrent_layers as walk

__all__ = ["SCHEMES", "initialize", "spectral_radius", "recurrent_layers"]

SCHEMES = ("default", "orthogonal", "identity")


def recurrent_layers(module: nn.Module) -> Iterator[tuple[dict[str, Tensor], int, str]]:
    """Yield ``(params, gates, mode)`` for every recurrent layer (and direction) in ``module``.

    ``params`` maps ``weight_ih, weight_hh, bias_ih, bias_hh`` (and an LSTM projection's
    ``weight_hr``) to the live tensors; ``mode`` is ``rnn``, ``lstm`` or ``gru``. Works
    for anything :func:`vanishing.recurrent.recurrent_layers` finds: a
    :class:`~vanishing.cells.Cell`, a fused ``torch.nn.RNN/LSTM/GRU``, a stock
    ``torch.nn.*Cell``, or any module containing them.
    """
    for layer in _layers(module):
        cell = layer.cell
        yield cell.weights(), cell.gates, cell.kind if cell.gates > 1 else "rnn"


def _layers(module: nn.Module) -> list[RecurrentLayer]:
    return walk(module)


def spectral_radius(w: Tensor) -> float:
    """max |eigenvalue| of a square matrix, computed in float64."""
    if w.dim() != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"spectral_radius needs a square matrix, got shape {tuple(w.shape)}")
    return float(torch.linalg.eigvals(w.detach().double()).abs().max())


def _orthogonal(h: int, generator: torch.Generator | None, like: Tensor) -> Tensor:
    a = torch.randn(h, h, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))  # sign fix: uniform (Haar) distribution
    return q.to(like.dtype)


@torch.no_grad()
def initialize(
    module: nn.Module,
    scheme: str = "default",
    *,
    radius: float | None = None,
    forget_bias: float | None = None,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Initialise every recurrent layer of ``module`` in place; returns ``module``.

    Args:
        module: a cell, a fused ``torch.nn`` recurrent module, or a model containing them.
        scheme: ``default``, ``orthogonal`` or ``identity`` (see module doc).
        radius: if given (> 0), rescale each (H, H) gate block of W_hh to this spectral radius.
        forget_bias: if given, LSTM forget-gate bias (b_if = forget_bias, b_hf = 0).
        generator: the source of randomness (a ``torch.Generator``); None uses a fresh one
            seeded 0, so results never depend on the global seed.
    """
    _checks.one_of("init scheme", scheme, SCHEMES)
    if radius is not None:
        radius = _checks.positive_float("radius", radius)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    layers = _layers(module)
    if not layers:
        raise ValueError(f"initialize: {type(module).__name__} contains no recurrent layer")
    for layer in layers:
        _initialize_cell(layer.cell, layer.parameter, scheme, radius, forget_bias, generator)
    return module


def _initialize_cell(cell: Cell, name, scheme: str, radius: float | None,
                     forget_bias: float | None, generator: torch.Generator) -> None:
    """One layer, in place, through the tensors the cell shares with the model."""
    ps = cell.weights()
    for key, p in ps.items():
        if not isinstance(p, nn.Parameter):
            raise ValueError(f"initialize: {name(key)} is computed by a parametrization; "
                             f"initialise the parameter it is computed from instead")
    h, gates = cell.hidden_size, cell.gates
    bound = 1.0 / math.sqrt(h)
    for p in ps.values():
        p.copy_(torch.empty_like(p, device="cpu").uniform_(-bound, bound, generator=generator))
    w_hh = ps["weight_hh"]
    blocks = w_hh.view(gates, h, w_hh.shape[1])  # (G, H, H), or (G, H, P) with a projection
    if scheme == "orthogonal":
        for g in range(gates):
            blocks[g].copy_(_orthogonal(h, generator, w_hh)[:, : w_hh.shape[1]])
    elif scheme == "identity":
        blocks.copy_(torch.eye(h, w_hh.shape[1], dtype=w_hh.dtype).expand_as(blocks))
        w_ih = ps["weight_ih"]
        w_ih.copy_(torch.randn(w_ih.shape, generator=generator, dtype=w_ih.dtype) * 1e-3)
        for n in ("bias_ih", "bias_hh"):
            if n in ps:
                ps[n].zero_()
    if radius is not None:
        if w_hh.shape[1] != h:
            raise ValueError(f"initialize: radius= needs square W_hh blocks; {name('weight_hh')} "
                             f"has blocks of shape ({h}, {w_hh.shape[1]}) (proj_size)")
        for g in range(gates):
            rho = spectral_radius(blocks[g])
            if rho > 0:
                blocks[g].mul_(radius / rho)
    if forget_bias is not None and cell.forget_gate is not None and "bias_ih" in ps:
        rows = slice(cell.forget_gate * h, (cell.forget_gate + 1) * h)
        ps["bias_ih"][rows].fill_(float(forget_bias))
        ps["bias_hh"][rows].zero_()
