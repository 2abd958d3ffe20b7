"""5. Roofline: a fused training step against the time of its own matmuls alone.

The least a recurrent layer's training step must multiply: per time step, sequentially,
the forward h W_hh^T (N x H by H x G*H) and the backward dA W_hh; once over the whole
sequence (all T*N rows in one GEMM, as oneDNN does) the weight gradients dA^T h and
dA^T x and the input terms x W_ih^T and dA W_ih. Their time, measured alone on the
same shapes, bounds the step from below; bound / step says how close the fused kernel
gets to it.
"""

from __future__ import annotations

import torch

from vanishing import build_model

from ._timing import compare

GATES = {"rnn_tanh": 1, "lstm": 4, "gru": 3}


def _matmuls_alone(gates: int, batch: int, length: int, hidden: int, features: int):
    gh, rows = gates * hidden, batch * length
    h, w_hh, da = torch.randn(batch, hidden), torch.randn(gh, hidden), torch.randn(batch, gh)
    hs, x, w_ih, das = (torch.randn(rows, hidden), torch.randn(rows, features),
                        torch.randn(gh, features), torch.randn(rows, gh))

    def run():
        for _ in range(length):  # the sequential part
            h @ w_hh.T
            da @ w_hh
        das.T @ hs  # dW_hh over all steps at once
        das.T @ x  # dW_ih
        x @ w_ih.T
        das @ w_ih

    return run


def _train_step(core: str, batch: int, length: int, hidden: int, features: int):
    model = build_model(core, features, hidden, 1)
    x = torch.randn(batch, length, features)

    def run():
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()

    return run


def run(quick: bool = False) -> list[dict]:
    rows = []
    lengths = (200,) if quick else (200, 1000)
    for core, gates in GATES.items():
        for length in lengths:
            t = compare({"bound": _matmuls_alone(gates, 32, length, 128, 8),
                         "step": _train_step(core, 32, length, 128, 8)}, repeats=5)
            rows.append({"benchmark": "roofline: matmuls alone / fused step",
                         "case": f"{core} H=128 T={length}",
                         "baseline ms": 1e3 * t["step"], "ours ms": 1e3 * t["bound"],
                         "ratio": t["bound"] / t["step"], "target": "fraction of bound"})
    return rows
