r"""Backpropagation through time for the Elman RNN, written out by hand.

No autograd here: every line is a product you could do on paper. This is the reference
that the probes (:mod:`vanishing.probe`) are tested against.

Forward, for t = 1..T (x_t (N, H_in), h_0 given, N = batch, H = hidden size)::

    a_t = W_ih x_t + b_ih + W_hh h_(t-1) + b_hh      pre-activation (N, H)
    h_t = f(a_t)                                     f = tanh, relu or the identity

The loss L reads some or all of the h_t (through a readout). Write

    d_t = ∂L/∂h_t    the *direct* part: what the readout at step t sends back
    g_t = dL/dh_t    the *total*: the direct part plus everything that reaches h_t
                     through h_(t+1), h_(t+2), ...

The chain rule, one step back at a time, is

    g_T     = d_T
    g_(t-1) = d_(t-1) + J_t^T g_t,      J_t = dh_t/dh_(t-1) = diag(f'(a_t)) W_hh

and unrolled it is a sum of Jacobian *products*:

    g_t = sum_{s >= t} (J_(t+1)^T J_(t+2)^T ... J_s^T) d_s

The direct gradient at step s reaches step t only through s - t factors J. When they
shrink vectors (||diag(f') W_hh|| < 1) the product falls geometrically with the distance
s - t: the gradient *vanishes*. When they stretch, it *explodes*.

Each use of a weight at step t receives delta_t = f'(a_t) ⊙ g_t, so (rows are samples)::

    dL/dW_hh = sum_t delta_t^T h_(t-1)     dL/dW_ih = sum_t delta_t^T x_t
    dL/db_hh = dL/db_ih = sum_t delta_t

In the row-vector form used by the code, J_t^T g_t is ``(fprime_t * g_t) @ W_hh``.
Splitting dL/dW_hh by the distance k = s - t between the direct loss at s and the weight
use at t gives :func:`lag_terms`: the update to W_hh as a sum over how far back each
piece of it reaches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import _checks
from .cells import ElmanCell

__all__ = ["Gradients", "LagDecomposition", "elman_forward", "elman_bptt", "lag_terms"]


@dataclass
class Gradients:
    """What :func:`elman_bptt` computes.

    Attributes:
        hidden: (N, T, H) total dL/dh_t for t = 1..T (index 0 is h_1).
        h0: (N, H) dL/dh_0.
        weight_ih, weight_hh: (H, H_in) and (H, H).
        bias_ih, bias_hh: (H,) each, or None for a cell without bias.
    """

    hidden: Tensor
    h0: Tensor
    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor | None
    bias_hh: Tensor | None


@dataclass
class LagDecomposition:
    r"""dL/dW_hh split by how far back each piece reaches.

    ``terms[k]`` is the part of dL/dW_hh made by the direct loss at step s acting on the
    use of W_hh at step s - k (all s summed), so ``terms.sum(0) + remainder == total``.

    Attributes:
        terms: (K + 1, H, H), lags 0..K.
        remainder: (H, H), lags above K (zero when K = T - 1).
        total: (H, H) dL/dW_hh.
    """

    terms: Tensor
    remainder: Tensor
    total: Tensor

    @property
    def max_lag(self) -> int:
        return self.terms.shape[0] - 1

    def shares(self) -> Tensor:
        r"""(K + 1,) share of the gradient-descent step from lags >= k, for k = 0..K.

        The projection <sum_{j >= k} terms_j, G> / ||G||^2 onto the step G = dL/dW_hh
        itself: each lag's projection is its additive part of the step, so share(0) = 1
        exactly, and a share near 0 means the update W <- W - lr G carries (almost)
        nothing from that far back. Lags above ``max_lag`` count in full (``remainder``).
        """
        g2 = (self.total * self.total).sum()
        if float(g2) == 0.0:
            raise ValueError("dL/dW_hh is exactly zero; no step to share out")
        parts = (self.terms * self.total).sum((1, 2)) / g2
        far = (self.remainder * self.total).sum() / g2
        return parts.flip(0).cumsum(0).flip(0) + far

    def share(self, k: int) -> float:
        """Share of the step from lags >= k (see :meth:`shares`); 0 <= k <= max_lag."""
        k = _checks.nonneg_int("k", k)
        if k > self.max_lag:
            raise ValueError(f"k must be at most max_lag = {self.max_lag}, got {k}")
        return float(self.shares()[k])


def _params(cell: ElmanCell) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    if not isinstance(cell, ElmanCell):
        raise TypeError(f"hand BPTT is written for the Elman RNN (vanishing.cells.ElmanCell), "
                        f"got {type(cell).__name__}")
    b_ih = None if cell.bias_ih is None else cell.bias_ih.detach()
    b_hh = None if cell.bias_hh is None else cell.bias_hh.detach()
    return cell.weight_ih.detach(), cell.weight_hh.detach(), b_ih, b_hh


def _h0(cell: ElmanCell, x: Tensor, h0: Tensor | None) -> Tensor:
    n, h = x.shape[0], cell.hidden_size
    if h0 is None:
        return x.new_zeros(n, h)
    if not isinstance(h0, Tensor) or tuple(h0.shape) != (n, h):
        got = tuple(h0.shape) if isinstance(h0, Tensor) else type(h0).__name__
        raise ValueError(f"h0 must be a tensor of shape ({n}, {h}), got {got}")
    return h0.detach()


@torch.no_grad()
def elman_forward(cell: ElmanCell, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Run the recurrence; return ``hs`` (N, T, H) = h_1..h_T and ``fprime`` = f'(a_t).

    f'(a) is 1 - h^2 for tanh, 1[a > 0] for relu (0 at a = 0, as torch) and 1 for linear.
    """
    w_ih, w_hh, b_ih, b_hh = _params(cell)
    x = _checks.sequence("x", x, cell.input_size).detach()
    h = _h0(cell, x, h0)
    xp = x @ w_ih.T + (0 if b_ih is None else b_ih)
    hs, fps = [], []
    for xp_t in xp.unbind(1):
        a = xp_t + h @ w_hh.T + (0 if b_hh is None else b_hh)
        if cell.nonlinearity == "tanh":
            h = torch.tanh(a)
            fps.append(1 - h * h)
        elif cell.nonlinearity == "relu":
            h = torch.relu(a)
            fps.append((a > 0).to(a.dtype))
        else:
            h = a
            fps.append(torch.ones_like(a))
        hs.append(h)
    return torch.stack(hs, 1), torch.stack(fps, 1)


def _direct(direct: Tensor, hs: Tensor) -> Tensor:
    if not isinstance(direct, Tensor) or direct.shape != hs.shape:
        got = tuple(direct.shape) if isinstance(direct, Tensor) else type(direct).__name__
        raise ValueError(f"direct (the direct ∂L/∂h_t) must have shape (batch, time, hidden) "
                         f"= {tuple(hs.shape)}, got {got}")
    return direct.detach().to(hs.dtype)


@torch.no_grad()
def elman_bptt(
    cell: ElmanCell, x: Tensor, direct: Tensor, h0: Tensor | None = None
) -> Gradients:
    """Backpropagation through time by hand (see the module doc).

    Args:
        cell: an :class:`~vanishing.cells.ElmanCell` (e.g. ``twin(nn.RNN(...))``).
        x: (N, T, H_in) input.
        direct: (N, T, H) the direct ∂L/∂h_t that the loss sends to each step
            (zeros where the loss does not read h_t).
        h0: (N, H) initial state, zeros if None.

    Returns:
        :class:`Gradients`: every total dL/dh_t and the parameter gradients.
    """
    w_ih, w_hh, b_ih, b_hh = _params(cell)
    h0 = _h0(cell, _checks.sequence("x", x, cell.input_size), h0)
    hs, fp = elman_forward(cell, x, h0)
    d = _direct(direct, hs)
    h_prev = torch.cat([h0[:, None], hs[:, :-1]], 1)  # h_(t-1) for every t
    g = _total(d, fp, w_hh)
    delta = fp * g  # (N, T, H): gradient at each pre-activation a_t
    db = delta.sum((0, 1))
    return Gradients(
        hidden=g,
        h0=delta[:, 0] @ w_hh,  # J_1^T g_1
        weight_ih=torch.einsum("nti,ntj->ij", delta, x.detach().to(hs.dtype)),
        weight_hh=torch.einsum("nti,ntj->ij", delta, h_prev),
        bias_ih=None if b_ih is None else db,
        bias_hh=None if b_hh is None else db.clone(),
    )


@torch.no_grad()
def lag_terms(
    cell: ElmanCell,
    x: Tensor,
    direct: Tensor,
    h0: Tensor | None = None,
    max_lag: int | None = None,
) -> LagDecomposition:
    r"""Split dL/dW_hh into the terms that reach back k = 0, 1, ..., ``max_lag`` steps.

    With u^(k)_t the gradient at h_t coming from the direct loss at step t + k alone::

        u^(0)_t     = d_t
        u^(k+1)_t   = J_(t+1)^T u^(k)_(t+1)            (one more Jacobian)
        terms[k]    = sum_t (f'(a_t) ⊙ u^(k)_t)^T h_(t-1)

    All t move together, one lag per iteration: T iterations of one (N T, H) x (H, H)
    matmul, O(T^2 N H^2) in all. Summing ``terms`` over every k gives
    :func:`elman_bptt`'s dL/dW_hh exactly (up to rounding).

    Args:
        cell, x, direct, h0: as :func:`elman_bptt`.
        max_lag: largest lag to resolve (default T - 1, all of them); longer lags are
            lumped into ``remainder``.
    """
    w_hh = _params(cell)[1]
    h0 = _h0(cell, _checks.sequence("x", x, cell.input_size), h0)
    hs, fp = elman_forward(cell, x, h0)
    d = _direct(direct, hs)
    length = hs.shape[1]
    max_lag = length - 1 if max_lag is None else min(_checks.nonneg_int("max_lag", max_lag),
                                                     length - 1)
    h_prev = torch.cat([h0[:, None], hs[:, :-1]], 1)
    total = torch.einsum("nti,ntj->ij", fp * _total(d, fp, w_hh), h_prev)
    terms, u = [], d
    for k in range(max_lag + 1):
        delta = fp[:, : length - k] * u  # u covers t = 0 .. T-1-k
        terms.append(torch.einsum("nti,ntj->ij", delta, h_prev[:, : length - k]))
        u = delta[:, 1:] @ w_hh  # u^(k+1)_t = W_hh^T (f'(a_(t+1)) ⊙ u^(k)_(t+1))
    stacked = torch.stack(terms)
    remainder = total - stacked.sum(0) if max_lag < length - 1 else torch.zeros_like(total)
    return LagDecomposition(stacked, remainder, total)


def _total(d: Tensor, fp: Tensor, w_hh: Tensor) -> Tensor:
    """The total g_t from the direct d_t: g_(t-1) = d_(t-1) + W_hh^T (f'(a_t) ⊙ g_t)."""
    g = torch.empty_like(d)
    carry = torch.zeros_like(d[:, 0])  # J_(t+1)^T g_(t+1): what comes back from the future
    for t in range(d.shape[1] - 1, -1, -1):
        g[:, t] = d[:, t] + carry
        carry = (fp[:, t] * g[:, t]) @ w_hh  # J_t^T g_t = W_hh^T (f'(a_t) ⊙ g_t)
    return g
