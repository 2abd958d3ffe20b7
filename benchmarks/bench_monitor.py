"""3. ``GradientMonitor(every=50)`` against no monitor over a whole training run.

The same 200-step Adam run of an LSTM (H = 128, T = 200, batch 32) with and without
``monitor.step(loss, x=x)`` after every backward. Target: <= 5% overhead.
"""

from __future__ import annotations

import torch
from torch import nn

from vanishing import build_model
from vanishing.monitor import GradientMonitor

from ._timing import compare


def _run(steps: int, length: int, monitored: bool):
    def run():
        model = build_model("lstm", 8, 128, 1)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        monitor = GradientMonitor(model, every=50, warn=False) if monitored else None
        gen = torch.Generator().manual_seed(0)
        for _ in range(steps):
            x = torch.randn(32, length, 8, generator=gen)
            y = torch.randn(32, 1, generator=gen)
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if monitor is not None:
                monitor.step(loss, x=x)
            opt.step()

    return run


def run(quick: bool = False) -> list[dict]:
    steps = 100 if quick else 200
    t = compare({"plain": _run(steps, 200, False), "monitored": _run(steps, 200, True)},
                repeats=3, warmup=1)
    return [{"benchmark": "GradientMonitor(every=50) over a training run",
             "case": f"lstm H=128 T=200, {steps} steps", "baseline ms": 1e3 * t["plain"],
             "ours ms": 1e3 * t["monitored"], "ratio": t["monitored"] / t["plain"],
             "target": "<= 1.05"}]
