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

__all__ = ["unroll", "make_probe", "check_lengths", "flip_within"]

State = Tensor | tuple[Tensor, ...]


def make_probe(x: Tensor, hidden_size: int) -> Tensor:
    """A zero probe (N, L, H) matching ``x`` (N, L, ·) in dtype and device, requiring grad."""
    n, length = x.shape[0], x.shape[1]
    return torch.zeros(n, length, hidden_size, dtype=x.dtype, device=x.device, requires_grad=True)


def _as_tuple(cell: Cell, state: State | None, x: Tensor) -> tuple[Tensor, ...]:
    n = x.shape[0]
    if state is None:
        return cell.initial_state(n, x)
    parts = (state,) if isinstance(state, Tensor) else tuple(state)
    want = tuple((n, w) for w in cell.state_sizes)
    if len(parts) != cell.state_size or not all(isinstance(p, Tensor) for p in parts):
        names = "(h, c)" if cell.state_size == 2 else "h"
        raise TypeError(f"state for {type(cell).__name__} must be {names} of shape(s) "
                        f"{', '.join(map(str, want))}")
    for p, shape in zip(parts, want, strict=True):
        if tuple(p.shape) != shape:
            raise ValueError(f"state tensors must have shape(s) {', '.join(map(str, want))}, "
                             f"got {tuple(p.shape)}")
        _checks.finite("state", p)
    return parts


def check_lengths(lengths: object, batch: int, steps: int) -> Tensor:
    """``lengths`` as a (batch,) int64 CPU tensor with every value in [1, steps], else a
    one-line error."""
    if isinstance(lengths, Tensor):
        if lengths.is_floating_point() or lengths.dim() != 1:
            raise TypeError(f"lengths must be a 1-D integer tensor or a list of ints, got a "
                            f"{lengths.dim()}-D {lengths.dtype} tensor")
        values = lengths.detach().to("cpu", torch.int64)
    elif isinstance(lengths, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in lengths):
        values = torch.tensor(lengths, dtype=torch.int64)
    else:
        raise TypeError(f"lengths must be a 1-D integer tensor or a list of ints, got "
                        f"{type(lengths).__name__}")
    if values.numel() != batch:
        raise ValueError(f"lengths must give one length per sequence ({batch}), got "
                         f"{values.numel()}")
    if values.numel() and (int(values.min()) < 1 or int(values.max()) > steps):
        raise ValueError(f"lengths must lie in [1, {steps}] (the padded time steps), got "
                         f"[{int(values.min())}, {int(values.max())}]")
    return values


def flip_within(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of ``x`` (N, L, ...) within its own length (padding stays).

    Row n becomes x[n, len_n - 1], ..., x[n, 0], x[n, len_n], ..., x[n, L - 1]: the input
    of a backward direction that starts at each sequence's own last step.
    """
    steps = x.shape[1]
    t = torch.arange(steps)
    idx = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t).to(x.device)
    idx = idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


def unroll(
    cell: Cell, x: Tensor, state: State | None = None, *, probe: Tensor | None = None,
    lengths: Tensor | None = None,
) -> tuple[Tensor, State]:
    """Run ``cell`` over every step of ``x``.

    Args:
        cell: a :class:`vanishing.cells.Cell`.
        x: (N, L, H_in) input, batch first.
        state: initial state; ``h`` (N, H) for Elman/GRU, ``(h, c)`` for LSTM; zeros if None.
        probe: optional (N, L, H) zero tensor with ``requires_grad=True``; see module doc.
        lengths: optional (N,) true lengths of a padded batch (each in [1, L]): sequence n
            runs steps 0..len_n - 1 only; after that its state is held (so the final state
            is the one at its own last step) and its ``hs`` rows are zero, as a fused module
            returns a ``PackedSequence``.

    Returns:
        ``hs`` (N, L, H), every hidden state h_1..h_L (probe included), and the final state
        in the cell's own format (``h`` or ``(h, c)``).
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be a vanishing.cells.Cell, got {type(cell).__name__}")
    _checks.sequence("x", x, cell.input_size)
    weight = next(iter(cell.weights().values()), None)
    if weight is not None and weight.dtype != x.dtype:
        raise TypeError(f"x is {str(x.dtype).removeprefix('torch.')} but {type(cell).__name__}'s "
                        f"weights are {str(weight.dtype).removeprefix('torch.')}; convert one "
                        f"to the other (x.to(dtype) or model.to(dtype))")
    parts = _as_tuple(cell, state, x)
    n, length, h = x.shape[0], x.shape[1], cell.state_sizes[0]
    if probe is not None:
        if not isinstance(probe, Tensor):
            raise TypeError(f"probe must be a torch.Tensor, got {type(probe).__name__}")
        if tuple(probe.shape) != (n, length, h):
            raise ValueError(
                f"probe must have shape (batch, time, hidden) = ({n}, {length}, {h}), "
                f"got {tuple(probe.shape)}"
            )
        probes = probe.unbind(1)
    masks = None
    if lengths is not None:
        lengths = check_lengths(lengths, n, length)
        if int(lengths.min()) < length:  # some sequence is padded
            masks = (torch.arange(length) < lengths[:, None]).to(x.device).unbind(1)
    if cell.parallel and masks is None and "recur" not in cell.__dict__:
        # a parallel scan; a recorded cell (its recur patched) runs the loop instead
        hs, parts = cell.scan(cell.project(x), parts, probe)
        return hs, parts[0] if cell.state_size == 1 else parts
    hs = []
    # Project all steps at once and split with unbind: indexing xp[:, t] in the loop
    # would make the backward pass quadratic in L.
    for t, xp_t in enumerate(cell.project(x).unbind(1)):
        new = cell.recur(xp_t, parts)
        if probe is not None:
            new = (new[0] + probes[t], *new[1:])
        if masks is None:
            parts = new
            hs.append(new[0])
        else:
            m = masks[t][:, None]
            parts = tuple(torch.where(m, a, b) for a, b in zip(new, parts, strict=True))
            hs.append(torch.where(m, new[0], torch.zeros_like(new[0])))
    final: State = parts[0] if cell.state_size == 1 else parts
    return torch.stack(hs, dim=1), final
