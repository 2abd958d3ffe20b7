"""6. ``record()`` over a user's own forward, on plain torch models (not this library's).

Fused: a stock ``nn.LSTM`` (input 8, H = 128, batch first) with a ``Linear`` head on
the last step and an MSE loss. Ours: forward + loss + ``rec.trace(loss)`` inside
``record(model)`` (the LSTM runs as a loop of weight-sharing cells with a zero probe on
every h_t), on the full batch of 32 and on an 8-row sub-batch. Baseline: one plain
fused training step (forward + loss + backward) on the full batch. Target at T = 1000,
full batch: <= 1.5.

Cell loop: a user's module whose forward loops ``h, c = self.cell(x_t, (h, c))`` over
``x.unbind(1)`` (a stock ``nn.LSTMCell``), head on the last h. Ours: forward + loss +
``loss.backward()`` + ``rec.trace()`` inside ``record(model)`` (a forward hook keeps
every returned h). Baseline: the same loop's forward + loss + backward without
``record``. Target: <= 1.1.

Linear in T: time(T = 1000) / time(T = 200) from the same interleaved run, <= 5.5
(5 for exactly linear; a backward quadratic in T would give far more).

Each timed recording ends with :func:`_release`, so that both sides free their graphs
inside the timing (see there).
"""

from __future__ import annotations

import torch
from torch import nn

from vanishing.probe import record

from ._timing import compare

H, F, N = 128, 8, 32


class FusedLSTM(nn.Module):
    """A stock fused LSTM with a head on the last step, as a user writes it."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(F, H, batch_first=True)
        self.head = nn.Linear(H, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class CellLoop(nn.Module):
    """A user's own loop of a stock ``nn.LSTMCell``, head on the last h."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(F, H)
        self.head = nn.Linear(H, 1)

    def forward(self, x):
        h = c = x.new_zeros(x.shape[0], H)
        for x_t in x.unbind(1):
            h, c = self.cell(x_t, (h, c))
        return self.head(h)


def _step(model, x, y):
    """Plain training step: forward + loss + backward."""
    def run():
        model.zero_grad(set_to_none=True)
        nn.functional.mse_loss(model(x), y).backward()

    return run


def _release(rec) -> None:
    """Free a finished recording's graph, as the plain step frees its own.

    In vanishing 7a0606e a recording is never freed: each watched tensor's gradient hook
    (held by autograd, out of the garbage collector's sight) refers to the tape, which
    holds the tensors, so the whole graph leaks (about 47 MB per call at T = 200, batch
    32). Left alone, the recorded side would skip the freeing the baseline pays for and
    the process would grow by gigabytes; emptying the tape breaks the cycle (a no-op once
    the library frees its recordings itself).
    """
    tape = getattr(rec, "_tape", None)
    for name in ("watched", "records", "layers", "grads", "index"):
        held = getattr(tape, name, None)
        if hasattr(held, "clear"):
            held.clear()


def _record_trace(model, x, y):
    """record() + forward + loss + rec.trace(loss) (no weight gradients)."""
    def run():
        model.zero_grad(set_to_none=True)
        with record(model) as rec:
            loss = nn.functional.mse_loss(model(x), y)
            trace = rec.trace(loss)
        _release(rec)
        return trace

    return run


def _record_backward(model, x, y):
    """record() + forward + loss + loss.backward() + rec.trace()."""
    def run():
        model.zero_grad(set_to_none=True)
        with record(model) as rec:
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            trace = rec.trace()
        _release(rec)
        return trace

    return run


def _row(bench, case, base, ours, target):
    return {"benchmark": bench, "case": case, "baseline ms": 1e3 * base,
            "ours ms": 1e3 * ours, "ratio": ours / base, "target": target}


def run(quick: bool = False) -> list[dict]:
    repeats, warmup = (3, 1) if quick else (9, 2)
    gen = torch.Generator().manual_seed(0)
    xs = {t: torch.randn(N, t, F, generator=gen) for t in (200, 1000)}
    y = torch.randn(N, 1, generator=gen)
    rows = []

    torch.manual_seed(0)
    fused = FusedLSTM()
    fns = {}
    for t, x in xs.items():
        fns[f"step{t}"] = _step(fused, x, y)
        fns[f"rec{t}"] = _record_trace(fused, x, y)
        fns[f"rec8_{t}"] = _record_trace(fused, x[:8], y[:8])
    m = compare(fns, repeats=repeats, warmup=warmup)
    bench = "record() + trace(loss) vs fused step"
    for t in xs:
        for key, label in ((f"rec{t}", "full batch 32"), (f"rec8_{t}", "sub-batch 8")):
            target = "<= 1.5" if t == 1000 and key == f"rec{t}" else "-"
            rows.append(_row(bench, f"nn.LSTM H=128 T={t}, {label}", m[f"step{t}"], m[key],
                             target))
    lin = "time(T=1000) / time(T=200)"
    rows.append(_row(lin, "record() on nn.LSTM, full batch 32", m["rec200"], m["rec1000"],
                     "<= 5.5"))
    rows.append(_row(lin, "plain fused nn.LSTM step (reference)", m["step200"], m["step1000"],
                     "-"))

    torch.manual_seed(0)
    loop = CellLoop()
    fns = {}
    for t, x in xs.items():
        fns[f"loop{t}"] = _step(loop, x, y)
        fns[f"rec{t}"] = _record_backward(loop, x, y)
    m = compare(fns, repeats=repeats, warmup=warmup)
    bench = "record() + backward + trace() vs the same loop"
    for t in xs:
        rows.append(_row(bench, f"nn.LSTMCell loop H=128 T={t}, batch 32", m[f"loop{t}"],
                         m[f"rec{t}"], "<= 1.1"))
    rows.append(_row(lin, "nn.LSTMCell loop, no record", m["loop200"], m["loop1000"],
                     "<= 5.5"))
    rows.append(_row(lin, "nn.LSTMCell loop inside record()", m["rec200"], m["rec1000"],
                     "<= 5.5"))
    return rows
