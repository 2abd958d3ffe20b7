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
``chrono``       Tallec & Ollivier 2018, for gated cells, given ``max_length``
                 T_max >= 3: the gate that keeps the state gets bias
                 b ~ log U[1, T_max - 1] (LSTM: forget gate b_f, and b_i = -b_f;
                 GRU: update gate z), so units remember over 1..T_max - 1 steps;
                 the rest as ``default``. torch adds b_ih and b_hh, so the total is
                 set once: b_ih = b, b_hh = 0 on those rows
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

__all__ = ["SCHEMES", "initialize", "initialize_blocks", "spectral_radius", "recurrent_layers"]

SCHEMES = ("default", "orthogonal", "identity", "chrono")


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
    **options,
) -> nn.Module:
    """Initialise every recurrent layer of ``module`` in place; returns ``module``.

    Args:
        module: a cell, a fused ``torch.nn`` recurrent module, or a model containing them.
        scheme: ``default``, ``orthogonal`` or ``identity`` (see module doc).
        radius: if given (> 0), rescale each (H, H) gate block of W_hh to this spectral radius.
        forget_bias: if given, LSTM forget-gate bias (b_if = forget_bias, b_hf = 0); not
            with ``chrono``, which draws that bias itself.
        generator: the source of randomness (a ``torch.Generator``); None uses a fresh one
            seeded 0, so results never depend on the global seed.
        options: scheme settings passed to each cell's
            :meth:`~vanishing.cells.Cell.initialize_`.

    Each cell initialises itself (:meth:`vanishing.cells.Cell.initialize_`): cells in
    ``torch.nn`` layout by :func:`initialize_blocks`, others by their own rules.
    """
    _checks.one_of("init scheme", scheme, SCHEMES)
    if radius is not None:
        radius = _checks.positive_float("radius", radius)
    if forget_bias is not None:
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float)) or \
                not math.isfinite(forget_bias):
            raise ValueError(f"forget_bias must be a finite number, got {forget_bias!r}")
        if scheme == "chrono":
            raise ValueError(f"forget_bias={forget_bias!r} and init 'chrono' both set the "
                             f"forget-gate bias; give one of them")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    layers = _layers(module)
    if not layers:
        raise ValueError(f"initialize: {type(module).__name__} contains no recurrent layer")
    if forget_bias is not None:
        ungated = sorted({type(layer.cell).__name__ for layer in layers
                          if layer.cell.forget_gate is None})
        if ungated:  # never a setting silently ignored
            raise ValueError(f"forget_bias={forget_bias!r} applies to cells with a forget "
                             f"gate (lstm, minlstm); {', '.join(ungated)} has none")
    for layer in layers:
        for key, p in layer.cell.weights().items():
            if not isinstance(p, nn.Parameter):
                raise ValueError(f"initialize: {layer.parameter(key)} is computed by a "
                                 f"parametrization; initialise the parameter it is computed "
                                 f"from instead")
        layer.cell.initialize_(scheme, radius=radius, forget_bias=forget_bias,
                               generator=generator, **options)
    return module


@torch.no_grad()
def initialize_blocks(cell: Cell, scheme: str, *, radius: float | None = None,
                      forget_bias: float | None = None,
                      generator: torch.Generator | None = None, **options) -> None:
    """The schemes for cells in ``torch.nn`` layout (gate blocks of W_hh), in place:
    what :meth:`vanishing.cells.Cell.initialize_` does unless a cell overrides it."""
    _checks.one_of("init scheme", scheme, SCHEMES)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    ps = cell.weights()
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
            raise ValueError(f"initialize: radius= needs square W_hh blocks, got blocks of "
                             f"shape ({h}, {w_hh.shape[1]}) (an LSTM with proj_size)")
        for g in range(gates):
            rho = spectral_radius(blocks[g])
            if rho > 0:
                blocks[g].mul_(radius / rho)
    if scheme == "chrono":
        _chrono(cell, ps, generator, options.get("max_length"))
    if forget_bias is not None and cell.forget_gate is not None and "bias_ih" in ps:
        rows = slice(cell.forget_gate * h, (cell.forget_gate + 1) * h)
        ps["bias_ih"][rows].fill_(float(forget_bias))
        ps["bias_hh"][rows].zero_()


def _chrono(cell: Cell, ps: dict, generator: torch.Generator, max_length) -> None:
    """Chrono biases (see the module doc), in place."""
    keep = cell.gate_names.find("f") if "f" in cell.gate_names else cell.gate_names.find("z")
    if keep < 0 or "bias_ih" not in ps:
        raise ValueError(f"init 'chrono' needs a gated cell with biases (LSTM or GRU), got "
                         f"{cell.kind or type(cell).__name__}")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 3:
        raise ValueError(f"init 'chrono' needs max_length, the longest dependency T_max, an "
                         f"int >= 3, got {max_length!r}")
    h = cell.hidden_size
    u = torch.rand(h, generator=generator, dtype=torch.float64)
    b = torch.log(1 + u * (max_length - 2)).to(ps["bias_ih"].dtype)  # log U[1, T_max - 1]
    rows = slice(keep * h, (keep + 1) * h)
    ps["bias_ih"][rows].copy_(b)
    ps["bias_hh"][rows].zero_()
    if "i" in cell.gate_names:  # the LSTM's input gate: b_i = -b_f
        i = cell.gate_names.find("i")
        ps["bias_ih"][i * h:(i + 1) * h].copy_(-b)
        ps["bias_hh"][i * h:(i + 1) * h].zero_()
