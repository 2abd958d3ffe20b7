r"""minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?")."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .base import register
from .mingru import MinimalCell

__all__ = ["MinLSTMCell"]


class MinLSTMCell(MinimalCell):
    r"""minLSTM: an LSTM whose gates and candidate read x_t only, with no cell state c.

    .. math::
        \begin{aligned}
        f_t &= \sigma(W_{if} x_t + b_{if}), \quad i_t = \sigma(W_{ii} x_t + b_{ii}), \quad
        \tilde h_t = W_{ih} x_t + b_{ih} \\
        f'_t &= f_t / (f_t + i_t), \quad i'_t = i_t / (f_t + i_t) \\
        h_t &= f'_t \odot h_{t-1} + i'_t \odot \tilde h_t
        \end{aligned}

    The normalised gates f' + i' = 1 make the scale of h independent of the sequence
    length (the paper's "length independence"). The paper's main-text form (h~ =
    Linear_h(x_t), any sign) in both modes; the scan (:func:`~vanishing.cells.mingru.log_scan`)
    is sign-safe, so the log-space version's g() is not needed. There, log f'_t =
    log f_t - log(f_t + i_t) with log σ(k) = -softplus(-k). Jacobian: diag(f'_t).

    ``forget_bias`` (:attr:`forget_gate` = 0) sets b_if: retention is f' = σ(b_f) /
    (σ(b_f) + σ(b_i)), so with b_i near 0 a forget bias 1 gives f' ≈ 0.59 at init, not
    σ(1) = 0.73 as in an LSTM; what sets f' is b_f - b_i (chrono init sets both).

    Shapes: x_t (N, H_in), h (N, H); state ``(h,)``; ``weight_ih`` (3H, H_in) in gate
    order f, i, h~ (``gate_names = "fih"``). ``parallel=True`` runs :meth:`scan`. Init:
    see :class:`~vanishing.cells.mingru.MinimalCell`.
    """

    kind = "minlstm"
    gates = 3
    gate_names = "fih"
    forget_gate = 0
    write_gate = 1

    def coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        kf, ki, h_tilde = xp.chunk(3, dim=-1)
        f, i = torch.sigmoid(kf), torch.sigmoid(ki)
        return f / (f + i), i / (f + i) * h_tilde

    def log_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        kf, ki, h_tilde = xp.chunk(3, dim=-1)
        log_f, log_i = -F.softplus(-kf), -F.softplus(-ki)
        log_norm = torch.logaddexp(log_f, log_i)  # log(f + i)
        return log_f - log_norm, torch.exp(log_i - log_norm) * h_tilde


register("minlstm", MinLSTMCell)
