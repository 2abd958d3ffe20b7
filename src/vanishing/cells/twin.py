"""A cell that computes one layer of a fused ``torch.nn.RNN`` / ``LSTM`` / ``GRU``, or one
step of a stock ``torch.nn.RNNCell`` / ``LSTMCell`` / ``GRUCell``, with the module's own
tensors."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Cell, make_cell
from .lstm import LSTMCell

__all__ = ["TORCH_MODES", "twin"]

#: ``nn.RNNBase.mode`` -> the registry name of the cell that computes it
TORCH_MODES = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}


def twin(module: nn.Module, layer: int = 0, reverse: bool = False) -> Cell:
    """A cell that shares (not copies) the parameters of a torch recurrent module.

    ``module`` is a fused ``torch.nn.RNN``, ``LSTM`` (``proj_size`` included) or ``GRU``,
    where ``layer`` picks the layer and ``reverse`` the backward direction of a
    bidirectional module; or a stock ``torch.nn.RNNCell``, ``LSTMCell`` or ``GRUCell``
    (one step; ``layer`` must be 0). Gradients computed through the twin land in the
    module's own ``.grad`` fields.

    Each weight is read through the module (``getattr(module, "weight_hh_l0")``) when the
    twin is built, so a weight under ``torch.nn.utils.parametrize`` (orthogonal,
    ``weight_norm``) is the tensor the module computes now, on the autograd path to its
    underlying parameters, never assigned back. Build a new twin for every forward pass.
    """
    if isinstance(module, nn.RNNCellBase):
        if layer != 0 or reverse:
            raise ValueError(f"twin: a {type(module).__name__} is one layer, one direction")
        return _cell_twin(module)
    if not isinstance(module, nn.RNNBase):
        raise TypeError(f"twin: expected torch.nn.RNN, LSTM, GRU or a torch.nn.*Cell, got "
                        f"{type(module).__name__}")
    if not 0 <= layer < module.num_layers:
        raise ValueError(f"twin: layer must be in [0, {module.num_layers}), got {layer}")
    if reverse and not module.bidirectional:
        raise ValueError("twin: reverse=True needs a bidirectional module")
    if module.mode not in TORCH_MODES:
        raise ValueError(f"twin: unsupported recurrent mode {module.mode!r}")
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    w_ih = getattr(module, "weight_ih" + suffix)
    proj = getattr(module, "proj_size", 0)
    with torch.device("meta"):  # build the shell without allocating, then share tensors
        if proj:
            cell: Cell = LSTMCell(w_ih.shape[1], module.hidden_size, module.bias, proj)
        else:
            cell = make_cell(TORCH_MODES[module.mode], w_ih.shape[1], module.hidden_size,
                             module.bias)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")[: 4 + bool(proj)]:
        if module.bias or name.startswith("weight"):
            share(cell, name, getattr(module, name + suffix))
    return cell


def _cell_twin(module: nn.RNNCellBase) -> Cell:
    if isinstance(module, nn.LSTMCell):
        kind = "lstm"
    elif isinstance(module, nn.GRUCell):
        kind = "gru"
    else:
        kind = f"rnn_{module.nonlinearity}"
    with torch.device("meta"):
        cell = make_cell(kind, module.input_size, module.hidden_size, module.bias)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        if module.bias or name.startswith("weight"):
            share(cell, name, getattr(module, name))
    return cell


def share(cell: nn.Module, name: str, value: Tensor) -> None:
    """Make ``cell.<name>`` the tensor ``value``: registered as the parameter it is, or, for
    a tensor a parametrization computed, held as a plain attribute (so it is not assigned
    as a parameter, which ``nn.Module`` refuses)."""
    if isinstance(value, nn.Parameter):
        setattr(cell, name, value)
    else:
        cell._parameters.pop(name, None)
        object.__setattr__(cell, name, value)
