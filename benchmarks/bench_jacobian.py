"""4. Jacobian products and spectra: time against T, closed form against autograd.

``cell_jacobian_products`` (Frobenius and spectral norm of dh_T/dh_t for every t, 4
Lyapunov exponents) on a batch of 8, H = 64. Time must grow linearly in T: the ratio
time(4T) / (4 time(T)) should stay near 1. For the Elman cell the closed form
diag(f'(a_t)) W_hh is set against the ``torch.func`` path used for gated cells.
"""

from __future__ import annotations

import torch

from vanishing.cells import make_cell
from vanishing.jacobian import cell_jacobian_products

from ._timing import median_time


def run(quick: bool = False) -> list[dict]:
    lengths = (200, 1000) if quick else (200, 1000, 4000)
    rows = []
    for name in ("rnn_tanh", "lstm", "gru"):
        cell = make_cell(name, 8, 64)
        times = {}
        for length in lengths:
            x = torch.randn(8, length, 8, generator=torch.Generator().manual_seed(0))
            times[length] = median_time(lambda c=cell, x=x: cell_jacobian_products(c, x),
                                        repeats=3, warmup=1)
        base = lengths[0]
        for length in lengths[1:]:
            rows.append({"benchmark": "Jacobian products: linear in T",
                         "case": f"{name} H=64 N=8, T={base} -> {length}",
                         "baseline ms": 1e3 * times[base] * length / base,
                         "ours ms": 1e3 * times[length],
                         "ratio": times[length] / (times[base] * length / base),
                         "target": "~1 (linear)"})
    cell = make_cell("rnn_tanh", 8, 64)
    x = torch.randn(8, 1000, 8, generator=torch.Generator().manual_seed(0))
    closed = median_time(lambda: cell_jacobian_products(cell, x), repeats=3, warmup=1)
    auto = median_time(lambda: cell_jacobian_products(cell, x, closed_form=False),
                       repeats=3, warmup=1)
    rows.append({"benchmark": "Jacobian products: autograd vs closed form",
                 "case": "rnn_tanh H=64 N=8 T=1000", "baseline ms": 1e3 * closed,
                 "ours ms": 1e3 * auto, "ratio": auto / closed, "target": "-"})
    return rows
