r"""The one loop over time, with an optional probe that records the total dL/dh_t.

For a cell and an input x of shape (N, L, H_in)::

    h_t = cell(x_t, h_(t-1)) + p_t,        t = 1..L

where ``p`` is the optional probe: a zero tensor of shape (N, L, H) that requires grad.
Adding zero changes no number, but it puts p_t on the path of everything that depends
on h_t, so after one ``backward()``

    probe.grad[:, t] = dL/dh_t   (total: the direct part and the part through h_(t+1), ...)

which is what ``retain_grad()`` on the output of a fused module cannot give.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _checks
from .cells import Cell

__all__ = ["unroll", "make_probe"]

State = Tensor | tuple[Tensor, ...]


def make_probe(x: Tensor, hidden_size: int) -> Tensor:
    """A zero probe (N, L, H) matching ``x`` (N, L, ·) in dtype and device, requiring grad."""
    n, length = x.shape[0], x.shape[1]
    return torch.zeros(n, length, hidden_size, dtype=x.dtype, device=x.device, requires_grad=True)


def _as_tuple(cell: Cell, state: State | None, x: Tensor) -> tuple[Tensor, ...]:
    n, h = x.shape[0], cell.hidden_size
    if state is None:
        return cell.initial_state(n, x)
    parts = (state,) if isinstance(state, Tensor) else tuple(state)
    if len(parts) != cell.state_size or not all(isinstance(p, Tensor) for p in parts):
        want = "(h, c)" if cell.state_size == 2 else "h"
        raise TypeError(f"state for {type(cell).__name__} must be {want} of shape ({n}, {h})")
    for p in parts:
        if tuple(p.shape) != (n, h):
            raise ValueError(f"state tensors must have shape ({n}, {h}), got {tuple(p.shape)}")
        _checks.finite("state", p)
    return parts


def unroll(
    cell: Cell, x: Tensor, state: State | None = None, *, probe: Tensor | None = None
) -> tuple[Tensor, State]:
    """Run ``cell`` over every step of ``x``.

    Args:
        cell: a :class:`vanishing.cells.Cell`.
        x: (N, L, H_in) input, batch first.
        state: initial state; ``h`` (N, H) for Elman/GRU, ``(h, c)`` for LSTM; zeros if None.
        probe: optional (N, L, H) zero tensor with ``requires_grad=True``; see module doc.

    Returns:
        ``hs`` (N, L, H), every hidden state h_1..h_L (probe included), and the final state
        in the cell's own format (``h`` or ``(h, c)``).
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be a vanishing.cells.Cell, got {type(cell).__name__}")
    _checks.sequence("x", x, cell.input_size)
    parts = _as_tuple(cell, state, x)
    n, length, h = x.shape[0], x.shape[1], cell.hidden_size
    if probe is not None:
        if not isinstance(probe, Tensor):
            raise TypeError(f"probe must be a torch.Tensor, got {type(probe).__name__}")
        if tuple(probe.shape) != (n, length, h):
            raise ValueError(
                f"probe must have shape (batch, time, hidden) = ({n}, {length}, {h}), "
                f"got {tuple(probe.shape)}"
            )
        probes = probe.unbind(1)
    hs = []
    # Project all steps at once and split with unbind: indexing xp[:, t] in the loop
    # would make the backward pass quadratic in L.
    for t, xp_t in enumerate(cell.project(x).unbind(1)):
        parts = cell.recur(xp_t, parts)
        if probe is not None:
            parts = (parts[0] + probes[t], *parts[1:])
        hs.append(parts[0])
    final: State = parts[0] if cell.state_size == 1 else parts
    return torch.stack(hs, dim=1), final
