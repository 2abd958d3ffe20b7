"""Explore: how long one change of the "through time" panel takes to answer, T = 500, H = 128.

Ours: the page's request, ``POST /api/time`` over HTTP to a running ``vanishing explore``
server on 127.0.0.1 (JSON in, the library's measurement, JSON out). Baseline: the same
library call made directly, without the server (build the model, float64 probe set-up,
``diagnose`` without Jacobian products or lag split). Measured on one torch thread, as
``vanishing explore`` runs. Target: every cell answers within a second (``ours ms <= 1000``);
the ratio is what the server adds.
"""

from __future__ import annotations

import http.client
import json
import tempfile
import threading
from pathlib import Path

import torch

from vanishing.diagnose import diagnose
from vanishing.explore import make_server
from vanishing.explore.time_panel import INPUT_SIZE, probe_batch
from vanishing.models import MODELS
from vanishing.train import TrainConfig, build_model_for, probe_inputs

from ._timing import compare

LENGTH, HIDDEN = 500, 128


def _direct(cell: str):
    def call():
        config = TrainConfig(model=cell, length=LENGTH, hidden_size=HIDDEN, seed=0)
        net = build_model_for(config, INPUT_SIZE, 1)
        diagnose(*probe_inputs(net, probe_batch(LENGTH, 0)), threshold=1e-3, jacobian=False,
                 lags=False)

    return call


def _request(port: int, cell: str):
    body = json.dumps({"cell": cell, "length": LENGTH, "hidden": HIDDEN}).encode()

    def call():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/api/time", body, {"Content-Type": "application/json"})
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        if answer.status != 200:
            raise RuntimeError(f"{cell}: {answer.status} {data[:200]!r}")

    return call


def run(quick: bool = False) -> list[dict]:
    cells = ("rnn_tanh", "lstm", "gru") if quick else tuple(MODELS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    server = make_server(0, Path(tempfile.mkdtemp(prefix="bench-explore-")), 1)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rows = []
    try:
        for cell in cells:
            t = compare({"direct": _direct(cell), "http": _request(server.port, cell)},
                        repeats=3 if quick else 5, warmup=1)
            rows.append({"benchmark": "explore: one change of the through-time panel",
                         "case": f"{cell} H={HIDDEN} T={LENGTH}, 1 thread",
                         "baseline ms": 1e3 * t["direct"], "ours ms": 1e3 * t["http"],
                         "ratio": t["http"] / t["direct"], "target": "ours <= 1000 ms"})
    finally:
        server.close()
        thread.join(10)
        torch.set_num_threads(threads)
    return rows


if __name__ == "__main__":
    for row in run(quick=False):
        print(row)
