"""2. ``hidden_gradients`` (every dL/dh_t in one backward) against a plain fused step.

Baseline: one fused forward + backward of the same model on the same batch. Ours: the
probe on the full batch, and on an 8-row sub-batch (the probe does not need the whole
batch: a monitor samples). Naive: T separate backward passes, one per dL/dh_t, through
a retained graph of the unrolled loop. Target at T = 1000 for the LSTM: <= 2.0.
"""

from __future__ import annotations

import torch

from vanishing import build_model
from vanishing.probe import hidden_gradients

from ._timing import compare


def _fused_step(model, x):
    def run():
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()

    return run


def _naive(model, x):
    """dL/dh_t for every t by T backward passes (the way without the probe trick)."""
    cell = model.cells()[0]

    def run():
        state, steps = cell.initial_state(x.shape[0], x), []
        for xp_t in cell.project(x).unbind(1):
            state = cell.recur(xp_t, state)
            steps.append(state[0])  # the very h_t fed to the next step
        loss = model.head(steps[-1]).sum()
        for h_t in steps:
            torch.autograd.grad(loss, h_t, retain_graph=True)

    return run


def run(quick: bool = False) -> list[dict]:
    rows = []
    cases = [("lstm", 200), ("lstm", 1000), ("gru", 1000), ("rnn_tanh", 1000)]
    if quick:
        cases = cases[:2]
    for core, length in cases:
        model = build_model(core, 8, 128, 1)
        x = torch.randn(32, length, 8)
        fns = {"fused": _fused_step(model, x),
               "probe": lambda m=model, x=x: hidden_gradients(m, x),
               "probe8": lambda m=model, x=x: hidden_gradients(m, x[:8])}
        t = compare(fns, repeats=5 if length < 1000 else 3)
        for key, label in (("probe", "full batch 32"), ("probe8", "sub-batch 8")):
            rows.append({"benchmark": "hidden_gradients vs fused step",
                         "case": f"{core} H=128 T={length}, {label}",
                         "baseline ms": 1e3 * t["fused"], "ours ms": 1e3 * t[key],
                         "ratio": t[key] / t["fused"],
                         "target": "<= 2.0" if core == "lstm" and length == 1000 else "-"})
    model = build_model("lstm", 8, 128, 1)
    x = torch.randn(32, 200, 8)
    t = compare({"naive": _naive(model, x), "probe": lambda: hidden_gradients(model, x)},
                repeats=2, warmup=1)
    rows.append({"benchmark": "T separate backward passes vs hidden_gradients",
                 "case": "lstm H=128 T=200", "baseline ms": 1e3 * t["probe"],
                 "ours ms": 1e3 * t["naive"], "ratio": t["naive"] / t["probe"],
                 "target": "speed-up (field notes: ~30x)"})
    return rows
