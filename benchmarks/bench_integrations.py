"""7. The monitor riding on the real step, and the TensorBoard writer, over a training run.

The same 200-step Adam run of an LSTM (H = 128, T = 100, batch 32), timed side by side:

* plain: no monitor;
* monitored: ``with monitor.record(): loss = ...`` then ``monitor.step(loss)``, every = 50
  (4 recorded steps, a NaN check every step). Target: <= 1.02x plain;
* + TensorBoard: the same with ``TensorBoardWriter.update(monitor)`` after every step,
  opening and closing its SummaryWriter inside the run, scalars and histograms at each
  probe (``figure_interval=None``). Target: <= 1.01x monitored;
* + TensorBoard, default: the same plus its profile figure, at most one a minute (so one
  here, the first probe's: a fixed cost of one matplotlib render, about 0.1 s);
* sub-batch: ``monitor.step(loss, x=x)`` instead of riding (a second forward of 8
  sequences on probe steps), for comparison.

A recorded step runs the fused LSTM as its weight-sharing cells (about 3x a fused step
here at T = 100), so riding costs about (3 - 1) / every of the run.
"""

from __future__ import annotations

import tempfile

import torch
from torch import nn

from vanishing import build_model
from vanishing.monitor import GradientMonitor

from ._timing import compare


def _run(steps: int, monitored: bool, folder: str | None = None, figure_interval=60.0,
         ride: bool = True):
    def run():
        model = build_model("lstm", 8, 128, 1, seed=0)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        monitor = GradientMonitor(model, every=50, warn=False) if monitored else None
        tb = None
        if folder is not None:
            from vanishing.integrations import TensorBoardWriter

            tb = TensorBoardWriter(tempfile.mkdtemp(dir=folder), figure_interval=figure_interval)
        gen = torch.Generator().manual_seed(0)
        for _ in range(steps):
            x = torch.randn(32, 100, 8, generator=gen)
            y = torch.randn(32, 1, generator=gen)
            if monitor is None or not ride:
                loss = nn.functional.mse_loss(model(x), y)
            else:
                with monitor.record():
                    loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if monitor is not None:
                monitor.step(loss) if ride else monitor.step(loss, x=x)
            if tb is not None:
                tb.update(monitor)
            opt.step()
        if tb is not None:
            tb.close()

    return run


def run(quick: bool = False) -> list[dict]:
    steps = 100 if quick else 200
    case = f"lstm H=128 T=100 batch 32, {steps} steps, every=50"
    with tempfile.TemporaryDirectory() as folder:
        fns = {"plain": _run(steps, False), "monitored": _run(steps, True),
               "tensorboard": _run(steps, True, folder, figure_interval=None),
               "figure": _run(steps, True, folder),
               "subbatch": _run(steps, True, ride=False)}
        t = compare(fns, repeats=3 if quick else 7, warmup=1)
    rows = [("monitor riding on the real step vs none", "plain", "monitored", "<= 1.02"),
            ("+ TensorBoardWriter, no figure, vs the monitor alone", "monitored",
             "tensorboard", "<= 1.01"),
            ("+ TensorBoardWriter, default (1 figure), vs the monitor alone", "monitored",
             "figure", "- (a fixed ~0.1 s)"),
            ("monitor on an 8-sequence sub-batch vs none", "plain", "subbatch", "-")]
    return [{"benchmark": name, "case": case, "baseline ms": 1e3 * t[base],
             "ours ms": 1e3 * t[ours], "ratio": t[ours] / t[base], "target": target}
            for name, base, ours, target in rows]
