"""8. Each cell's training step against a fused ``nn.LSTM``, and the parallel scan
against the sequential loop.

(a) Training step: ``build_model(cell, 8, H, 1)`` + Adam on an MSE readout of h_T,
against the same step with a fused ``torch.nn.LSTM`` of the same hidden size H (the
baseline a user would otherwise reach for). No target: the ratio is what the cell costs
on this CPU. The cells run as a Python loop of steps (``vanishing.unroll``); the fused
LSTM is one oneDNN call per sequence.

(b) Scan vs loop: minGRU and minLSTM trained step with ``parallel=True`` (the log-space
scan, every step at once) against ``parallel=False`` (the loop of ``recur``), same
weights. The papers' speed-ups (Feng et al. 2024) are GPU results, where the scan's
O(log T) depth runs in parallel; on a CPU the scan does more arithmetic (logs, exps,
cumulative log-sum-exp over T) for the same work, so the ratio says what this machine
gives.

Shapes: batch 32, H = 128, 8 features, T = 200 and 1000 (200 only with ``--quick``).
Times are CPU time of this process (``time.process_time``), so run it with
``--threads 1``: wall-clock ratios on the shared 2-core machine swung by 2x.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from vanishing import build_model

from ._timing import compare

CELLS = ("indrnn", "lru", "mingru", "minlstm", "exprnn")
SCANS = ("mingru", "minlstm")
BATCH, HIDDEN, FEATURES = 32, 128, 8


def _fused_lstm_step(length: int):
    rnn, head = nn.LSTM(FEATURES, HIDDEN, batch_first=True), nn.Linear(HIDDEN, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3)
    x, y = torch.randn(BATCH, length, FEATURES), torch.randn(BATCH, 1)

    def step():
        opt.zero_grad(set_to_none=True)
        hs, _ = rnn(x)
        nn.functional.mse_loss(head(hs[:, -1]), y).backward()
        opt.step()

    return step


def _model_step(model: nn.Module, length: int):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(BATCH, length, FEATURES), torch.randn(BATCH, 1)

    def step():
        opt.zero_grad(set_to_none=True)
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()

    return step


def _cell_model(name: str, length: int, parallel: bool | None = None) -> nn.Module:
    model = build_model(name, FEATURES, HIDDEN, 1, max_length=length)
    if parallel is not None:
        for cell in model.core.cells:
            cell.parallel = parallel
    return model


def run(quick: bool = False) -> list[dict]:
    lengths = (200,) if quick else (200, 1000)
    rows = []
    for length in lengths:
        reps = 5 if length < 1000 else 3
        for name in CELLS:
            t = compare({"lstm": _fused_lstm_step(length),
                         "cell": _model_step(_cell_model(name, length), length)},
                        repeats=reps, warmup=1, clock=time.process_time)
            rows.append({"benchmark": "train step: cell vs fused nn.LSTM",
                         "case": f"{name} H={HIDDEN} T={length}",
                         "baseline ms": 1e3 * t["lstm"], "ours ms": 1e3 * t["cell"],
                         "ratio": t["cell"] / t["lstm"], "target": "- (reported)"})
        for name in SCANS:
            loop, scan = _cell_model(name, length, False), _cell_model(name, length, True)
            scan.load_state_dict(loop.state_dict())
            t = compare({"loop": _model_step(loop, length), "scan": _model_step(scan, length)},
                        repeats=reps, warmup=1, clock=time.process_time)
            rows.append({"benchmark": "train step: parallel scan vs loop",
                         "case": f"{name} H={HIDDEN} T={length}",
                         "baseline ms": 1e3 * t["loop"], "ours ms": 1e3 * t["scan"],
                         "ratio": t["scan"] / t["loop"], "target": "- (reported)"})
    return rows
