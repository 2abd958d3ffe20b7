"""5. Roofline: a fused training step against the time of its own matmuls alone.

A recurrent layer's step does three matmuls with W_hh per time step (forward
h W_hh^T; backward dA W_hh and dW_hh += dA^T h) and three with W_ih over the whole
sequence. Their time, measured alone on the same shapes, is a lower bound for the
step; the ratio bound / step says how close the fused kernel gets to it.
"""

from __future__ import annotations

import torch

from vanishing import build_model

from ._timing import compare

GATES = {"rnn_tanh": 1, "lstm": 4, "gru": 3}


def _matmuls_alone(gates: int, batch: int, length: int, hidden: int, features: int):
    gh = gates * hidden
    h, w_hh, da = torch.randn(batch, hidden), torch.randn(gh, hidden), torch.randn(batch, gh)
    x, w_ih, dx = torch.randn(batch * length, features), torch.randn(gh, features), \
        torch.randn(batch * length, gh)

    def run():
        for _ in range(length):
            h @ w_hh.T
            da @ w_hh
            da.T @ h
        x @ w_ih.T
        dx @ w_ih
        dx.T @ x

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
