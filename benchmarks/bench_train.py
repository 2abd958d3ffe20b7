"""1. A training step of our models (fused path) against plain PyTorch on the same shapes.

Ours: ``vanishing.build_model(...)`` (input checks, the fused ``torch.nn`` core, a
linear readout) with Adam. Plain: ``torch.nn.RNN/LSTM/GRU`` + ``nn.Linear`` written out
by hand, same sizes and optimiser. Target: ratio <= 1.05.
"""

from __future__ import annotations

import torch
from torch import nn

from vanishing import build_model

from ._timing import compare

CORES = {"rnn_tanh": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _plain_step(core: str, batch: int, length: int, hidden: int, features: int = 8):
    rnn = CORES[core](features, hidden, batch_first=True)
    head = nn.Linear(hidden, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3)
    x, y = torch.randn(batch, length, features), torch.randn(batch, 1)

    def step():
        opt.zero_grad(set_to_none=True)
        hs, _ = rnn(x)
        loss = nn.functional.mse_loss(head(hs[:, -1]), y)
        loss.backward()
        opt.step()

    return step


def _our_step(core: str, batch: int, length: int, hidden: int, features: int = 8):
    model = build_model(core, features, hidden, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, length, features), torch.randn(batch, 1)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()

    return step


def run(quick: bool = False) -> list[dict]:
    lengths = (50, 200) if quick else (50, 200, 1000)
    rows = []
    for core in CORES:
        for length in lengths:
            reps = 5 if length < 1000 else 3
            t = compare({"plain": _plain_step(core, 32, length, 128),
                         "ours": _our_step(core, 32, length, 128)}, repeats=reps)
            rows.append({"benchmark": "train step (fused) vs plain torch.nn",
                         "case": f"{core} H=128 T={length}",
                         "baseline ms": 1e3 * t["plain"], "ours ms": 1e3 * t["ours"],
                         "ratio": t["ours"] / t["plain"], "target": "<= 1.05"})
    return rows
