r"""Jacobian products through time: ||dh_T/dh_t|| for every t, and their growth rates.

The gradient reaching back from step T to step t is multiplied by

    dh_T/dh_t = J_T J_(T-1) ... J_(t+1),      J_s = ds_s/ds_(s-1)

where s is the recurrent state: h for Elman and GRU, (h, c) for the LSTM (then dh_T/dh_t
is the h-block of the product: h_t nudged with c_t held, as the probe does).

* a cell with a closed form (:meth:`vanishing.cells.Cell.jacobian`; the Elman RNN:
  J_s = diag(f'(a_s)) W_hh) gives it;
* every other cell (LSTM, GRU, ...): J_s by ``torch.func.jacrev`` + ``vmap`` over
  (sample, step), in chunks.

The product is formed backwards from T, one factor per step, and **rescaled at every
step** with the scale kept as a logarithm: at T = 1000 a default tanh RNN has
ln ||dh_T/dh_0|| near -540, far below float64's smallest number (e^-745 at best), so the
norms are reported as natural logs. -inf appears only when the product is exactly zero
(e.g. every relu unit dead), never for an underflow.

Growth rates by QR re-orthonormalisation: a k-column orthonormal Q is pushed back through
the transposed factors, Q R = J_s^T Q, and sum_s ln |R_ii| estimates ln sigma_i of the
whole product (the i-th largest singular value); divided by the number of factors they
are the leading Lyapunov exponents: < 0 the gradient vanishes, > 0 it explodes.

Everything is computed in float64, on a float64 copy of each cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from . import _checks
from .cells import Cell
from .probe import unrolled

__all__ = ["JacobianTrace", "cell_jacobian_products", "step_jacobian_products",
           "lyapunov_exponents", "jacobian_products", "SPECTRAL"]

SPECTRAL = ("power", "svd", "none")
F64 = torch.float64


@dataclass
class JacobianTrace:
    """Log norms of dh_T/dh_t, t = 0 .. T-1 (index t: the state after reading x_t).

    Index T-1 is dh_T/dh_T = I; lag T-1-t counts the factors. Logs are natural logs of
    the batch mean of the norm (a log-sum-exp, so no underflow).

    Attributes:
        log_frobenius: (T,) ln mean_n ||dh_T/dh_t||_F.
        log_spectral: (T,) ln mean_n ||dh_T/dh_t||_2 (None if not asked for).
        per_sample_frobenius: (N, T) ln ||dh_T/dh_t||_F for each sample.
        log_singular: (k,) ln of the batch mean of sigma_i of the whole state product
            over the T - 1 factors, by QR (largest first, estimates; -inf only if the
            product is exactly rank-deficient for every sample).
        lyapunov: (k,) ``log_singular / (T - 1)``: mean growth per step.
        layer: the probed layer's name (model-level call) or ``""``.
    """

    log_frobenius: np.ndarray
    log_spectral: np.ndarray | None
    per_sample_frobenius: np.ndarray
    log_singular: np.ndarray
    lyapunov: np.ndarray
    layer: str = ""

    def log10_spectral(self) -> np.ndarray:
        """log10 ||dh_T/dh_t||_2 (Frobenius if the spectral norm was not computed)."""
        src = self.log_frobenius if self.log_spectral is None else self.log_spectral
        return src / math.log(10)


def _state_steps(cell: Cell, x: Tensor, h0) -> tuple[Tensor, Tensor]:
    """Projected inputs (N, T, G*H) and the state before each step (N, T, S), no grad."""
    xp = cell.project(x)
    n = x.shape[0]
    if h0 is None:
        parts = cell.initial_state(n, x)
    else:
        parts = (h0,) if isinstance(h0, Tensor) else tuple(h0)
        parts = tuple(p.detach().to(F64) for p in parts)
    before = []
    for xp_t in xp.unbind(1):
        before.append(torch.cat(parts, -1))
        parts = cell.recur(xp_t, parts)
    return xp, torch.stack(before, 1)


def _jacobians(cell: Cell, xp: Tensor, before: Tensor, chunk: int, closed_form: bool = True
               ) -> Iterator[Tensor]:
    """Yield J_t = ds_t/ds_(t-1), (N, S, S), for t = T-1 down to 1 (0-based).

    A cell whose :meth:`~vanishing.cells.Cell.jacobian` has a closed form (the Elman
    cell: diag(f'(a_t)) W_hh) gives it, unless ``closed_form`` is False; every other
    cell is differentiated by ``torch.func.jacrev``, in chunks of steps. ``xp`` (N, T, G*H)
    are the projected inputs, ``before`` (N, T, S) the state before each step.
    """
    split = cell.state_sizes

    def parts(s: Tensor) -> tuple[Tensor, ...]:
        return tuple(s.split(split, -1))

    if closed_form and cell.jacobian(xp[:, 0], parts(before[:, 0])) is not None:
        for t in range(xp.shape[1] - 1, 0, -1):
            yield cell.jacobian(xp[:, t], parts(before[:, t]))
        return
    n, length = xp.shape[0], xp.shape[1]

    def step(xp_t: Tensor, s: Tensor) -> Tensor:
        return torch.cat(cell.recur(xp_t, parts(s)), -1)

    per_sample = torch.func.vmap(torch.func.jacrev(step, argnums=1))
    for end in range(length, 1, -chunk):  # steps [start, end) with start >= 1, newest first
        start = max(1, end - chunk)
        flat = per_sample(xp[:, start:end].reshape(-1, xp.shape[-1]),
                          before[:, start:end].reshape(-1, before.shape[-1]))
        jac = flat.view(n, end - start, *flat.shape[1:])
        for i in range(end - start - 1, -1, -1):
            yield jac[:, i]


def _log_mean(per_sample: Tensor) -> np.ndarray:
    """ln of the batch mean of exp(per_sample), (N, ...) -> (...), without underflow."""
    n = per_sample.shape[0]
    return (torch.logsumexp(per_sample, 0) - math.log(n)).numpy()


def _spectral(block: Tensor, u: Tensor, tol: float = 1e-10, iters: int = 50
              ) -> tuple[Tensor, Tensor]:
    """||block||_2 per sample by subspace iteration on B B^T, warm-started from ``u``.

    ``u`` (N, H, p) spans the previous step's leading left singular vectors: they settle
    as t moves back (new factors are added on the right), so a few iterations suffice.
    A block of p > 1 vectors keeps the estimate right when two singular values cross;
    if it has not converged after ``iters`` rounds, an exact SVD decides.
    """
    sigma = torch.zeros(block.shape[0], dtype=block.dtype)
    bt = block.transpose(1, 2)
    for _ in range(iters):
        v = bt @ u
        new = torch.linalg.svdvals(v)[:, 0]  # Rayleigh-Ritz on span(u): <= sigma_max
        u = torch.linalg.qr(block @ v)[0]
        done = bool(((new - sigma).abs() <= tol * new).all())
        sigma = new
        if done:
            return sigma, u
    return torch.linalg.matrix_norm(block, ord=2), u


@torch.no_grad()
def cell_jacobian_products(
    cell: Cell,
    x: Tensor,
    h0: Tensor | tuple[Tensor, Tensor] | None = None,
    *,
    k: int = 4,
    spectral: str = "power",
    chunk: int = 32,
    closed_form: bool = True,
) -> JacobianTrace:
    """||dh_T/dh_t|| for every t, for one cell run over ``x`` (see the module doc).

    Args:
        cell: a :class:`~vanishing.cells.Cell` (e.g. a twin of a fused module's layer).
        x: (N, T, H_in) the cell's input sequence.
        h0: initial state (``h``, or ``(h, c)`` for the LSTM); zeros if None.
        k: leading singular values / Lyapunov exponents to estimate (0: none; at most
            the state size S: H, or H + H for the LSTM's (h, c)).
        spectral: ``power`` (warm-started power iteration, default), ``svd`` (exact,
            slower: a test oracle) or ``none`` (Frobenius only).
        chunk: steps per ``torch.func`` call for LSTM / GRU (memory: N * chunk * S^2).
        closed_form: for Elman cells, build J_t = diag(f'(a_t)) W_hh directly (default)
            or, if False, by ``torch.func`` like the gated cells (a cross-check, slower).
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be a vanishing.cells.Cell, got {type(cell).__name__}")
    _checks.one_of("spectral", spectral, SPECTRAL)
    _checks.nonneg_int("k", k)
    _checks.positive_int("chunk", chunk)
    x = _checks.sequence("x", x, cell.input_size).detach().to(F64)
    cell = cell.detached(F64)  # no graph to the model, parametrized weights included
    with torch.no_grad():
        xp, before = _state_steps(cell, x, h0)
    return _products(cell, xp, before, k=k, spectral=spectral, chunk=chunk,
                     closed_form=closed_form)


def step_jacobian_products(cell: Cell, xp: Tensor, before: Tensor, *, k: int = 4,
                           spectral: str = "power", chunk: int = 32) -> JacobianTrace:
    """:func:`cell_jacobian_products` from what a recording kept of each step: ``xp``
    (N, T, G*H) the projected inputs and ``before`` (N, T, S) the state each step
    started from (its parts concatenated), for cells driven by the user's own loop."""
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be a vanishing.cells.Cell, got {type(cell).__name__}")
    _checks.one_of("spectral", spectral, SPECTRAL)
    _checks.nonneg_int("k", k)
    _checks.positive_int("chunk", chunk)
    cell = cell.detached(F64)
    return _products(cell, xp.detach().to(F64), before.detach().to(F64), k=k,
                     spectral=spectral, chunk=chunk, closed_form=True)


def _products(cell: Cell, xp: Tensor, before: Tensor, *, k: int, spectral: str, chunk: int,
              closed_form: bool) -> JacobianTrace:
    """The backward product of the step Jacobians, rescaled in log space (module doc)."""
    h = cell.state_sizes[0]
    size = sum(cell.state_sizes)
    if k > size:
        raise ValueError(f"k must be at most the state size {size}, got {k}")
    n, length = xp.shape[0], xp.shape[1]

    rows = torch.eye(h, size, dtype=F64).expand(n, h, size).clone()  # h-rows of dh_T/ds_t
    log_scale = torch.zeros(n, dtype=F64)
    log_f = torch.empty(n, length, dtype=F64)
    log_s = torch.empty(n, length, dtype=F64)
    # a seeded random start: basis vectors would never leave their channels when the
    # product is diagonal (IndRNN, LRU, minGRU), and would miss its largest direction
    u = torch.linalg.qr(torch.randn(h, min(h, 4), dtype=F64,
                                    generator=torch.Generator().manual_seed(1)))[0]
    u = u.expand(n, h, min(h, 4)).clone()
    q = torch.linalg.qr(torch.randn(size, k, dtype=F64,
                                    generator=torch.Generator().manual_seed(0)))[0]
    q, log_r = q.expand(n, size, k).clone(), torch.zeros(n, k, dtype=F64)

    def record(t: int) -> None:
        nonlocal u
        block = rows[:, :, :h]
        log_f[:, t] = log_scale + torch.linalg.matrix_norm(block).log()
        if spectral == "svd":
            log_s[:, t] = log_scale + torch.linalg.matrix_norm(block, ord=2).log()
        elif spectral == "power":
            sigma, u = _spectral(block, u)
            log_s[:, t] = log_scale + sigma.log()

    record(length - 1)
    for t, jac in zip(range(length - 2, -1, -1), _jacobians(cell, xp, before, chunk, closed_form),
                      strict=True):
        rows = rows @ jac  # dh_T/ds_t = (dh_T/ds_(t+1)) J_(t+1)
        scale = torch.linalg.matrix_norm(rows)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        rows = rows / safe[:, None, None]
        log_scale = log_scale + scale.log()  # -inf once the product is exactly zero
        record(t)
        if k:
            q, r = torch.linalg.qr(jac.transpose(1, 2) @ q)
            log_r += torch.diagonal(r, dim1=1, dim2=2).abs().log()
    log_singular = _log_mean(log_r)
    steps = max(length - 1, 1)
    return JacobianTrace(
        log_frobenius=_log_mean(log_f),
        log_spectral=None if spectral == "none" else _log_mean(log_s),
        per_sample_frobenius=log_f.numpy(),
        log_singular=log_singular,
        lyapunov=log_singular / steps,
    )


def jacobian_products(
    model: nn.Module,
    x: Tensor,
    *,
    layer: str | None = None,
    k: int = 4,
    spectral: str = "power",
    chunk: int = 32,
) -> JacobianTrace:
    """:func:`cell_jacobian_products` for one recurrent layer inside any model.

    The model runs once (no gradient) with its fused ``nn.RNN/LSTM/GRU`` modules
    unrolled (see :func:`vanishing.probe.unrolled`) to record what each layer read.

    Args:
        model: any module containing stock recurrent modules, e.g. a
            :class:`~vanishing.models.SequenceModel`.
        x: what ``model`` takes.
        layer: a layer name such as ``"core.l0"``; default: the last forward layer run
            (the one :attr:`vanishing.probe.Trace.norms` reports).
        k, spectral, chunk: as :func:`cell_jacobian_products`.
    """
    with torch.no_grad(), unrolled(model, probe=False) as records:
        model(x)
    names = [r.name for r in records]
    if not records:
        raise ValueError(f"{type(model).__name__}.forward ran none of its recurrent modules")
    if layer is None:
        layer = [r.name for r in records if not r.reverse][-1]
    rec = records[names.index(_checks.one_of("layer", layer, names))]
    result = cell_jacobian_products(rec.cell, rec.inputs, rec.h0, k=k, spectral=spectral,
                                    chunk=chunk)
    result.layer = rec.name
    if rec.reverse:  # processing order -> real time order
        result.log_frobenius = result.log_frobenius[::-1].copy()
        result.per_sample_frobenius = result.per_sample_frobenius[:, ::-1].copy()
        if result.log_spectral is not None:
            result.log_spectral = result.log_spectral[::-1].copy()
    return result


def lyapunov_exponents(cell: Cell, x: Tensor, k: int = 1) -> Tensor:
    """The k leading Lyapunov exponents of the cell's state map over ``x``, differentiable.

    lambda_i = (1 / (T - 1)) sum_t ln |R_t,ii|, where Q_t R_t = J_t Q_(t-1) (QR
    re-orthonormalisation of k directions pushed forward through J_t = ds_t/ds_(t-1), the
    Benettin method), averaged over the batch. Unlike :func:`cell_jacobian_products` this
    keeps the graph to the weights, so ``sum(lambda_i^2)`` can be added to a loss:
    gradient flossing (Engelken 2023) pushes the exponents towards 0, where the gradient
    neither vanishes nor explodes. Needs a cell whose Jacobian has a closed form
    (:meth:`vanishing.cells.Cell.jacobian`: Elman, IndRNN, LRU, minGRU, ...).

    Args:
        cell: the cell (e.g. a twin of a model's layer, sharing its weights).
        x: (N, T, H_in) its input, T >= 2.
        k: how many exponents (1 <= k <= the state size).
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be a vanishing.cells.Cell, got {type(cell).__name__}")
    x = _checks.sequence("x", x, cell.input_size)
    size = sum(cell.state_sizes)
    if not 1 <= _checks.positive_int("k", k) <= size:
        raise ValueError(f"k must be in [1, {size}] (the state size), got {k}")
    if x.shape[1] < 2:
        raise ValueError(f"Lyapunov exponents need T >= 2 steps, got {x.shape[1]}")
    xp = cell.project(x).unbind(1)
    state = cell.initial_state(x.shape[0], x)
    q = torch.eye(size, k, dtype=x.dtype, device=x.device).expand(x.shape[0], size, k)
    total = x.new_zeros(x.shape[0], k)
    state = cell.recur(xp[0], state)
    for xp_t in xp[1:]:
        jac = cell.jacobian(xp_t, state)
        if jac is None:
            raise ValueError(f"{type(cell).__name__} has no closed-form Jacobian; gradient "
                             f"flossing needs one")
        q, r = torch.linalg.qr(jac @ q)
        total = total + torch.diagonal(r, dim1=1, dim2=2).abs().clamp_min(1e-300).log()
        state = cell.recur(xp_t, state)
    return (total / (x.shape[1] - 1)).mean(0)
