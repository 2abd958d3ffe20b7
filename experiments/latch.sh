#!/usr/bin/env bash
# (b) Information latching (Bengio, Simard & Frasconi 1994), the two-sequence problem in the
# form of Schmidhuber & Hochreiter 1996 (variant II): the sign of the first input sets the
# class, then T - 1 steps of Gaussian noise. Fraction of seeds that reach >= 99% held-out
# accuracy against T = 10..200 for
#   - a tanh RNN trained by plain gradient descent, W <- W - lr dL/dW (as in the 1994 paper),
#   - a tanh RNN and an LSTM trained with Adam,
#   - and the baseline of Schmidhuber & Hochreiter 1996: draw every weight of a one-unit tanh
#     RNN at random until one works (vanishing.tasks.latch.random_guessing).
# Resumable like every sweep. Measured here in about 5 minutes on 2 shared CPU cores.
#
# Learning rates, from one-seed pilots (experiments/README.md): plain gradient descent uses
# lr 1, the only one of {0.03, 0.1, 0.3, 1} that solved T = 20; Adam uses 1e-2, the faster
# of {3e-3, 1e-2} for the tanh RNN (both solved T = 20, 100 and 200).
set -euo pipefail
cd "$(dirname "$0")/.."
VANISHING=${VANISHING:-.venv/bin/vanishing}
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-vanishing-out/sweeps}
LENGTHS=10,20,50,100,200
mkdir -p "$OUT"
export OMP_NUM_THREADS=1  # one thread per trial; the two workers fill the two cores

$VANISHING sweep --task latch --models rnn_tanh --lengths $LENGTHS --seeds 3 --steps 2000 \
    --optimizer sgd --lr 1 --clip 1 --hidden-size 64 --batch-size 64 \
    --workers 2 --db "$OUT/latch-sgd.sqlite" --out "$OUT/latch-sgd" "$@"
$VANISHING sweep --task latch --models rnn_tanh,lstm --lengths $LENGTHS --seeds 3 --steps 1000 \
    --optimizer adam --lr 1e-2 --clip 1 --hidden-size 64 --batch-size 64 \
    --workers 2 --db "$OUT/latch-adam.sqlite" --out "$OUT/latch-adam" "$@"

# tables of docs/results.md, from the stores alone
$VANISHING sweep --report "$OUT/latch-sgd.sqlite" --out "$OUT/latch-sgd" --markdown
$VANISHING sweep --report "$OUT/latch-adam.sqlite" --out "$OUT/latch-adam" --markdown

# the guessing baseline (10 searches of at most 1000 guesses per T), and both runs in one figure
"$PYTHON" - "$OUT" "$LENGTHS" <<'PY'
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

from vanishing.report.sweep_figures import plot_horizon, plot_success
from vanishing.sweep.store import open_store
from vanishing.sweep.summary import best_cells, summarize
from vanishing.tasks.latch import random_guessing

out, lengths = Path(sys.argv[1]), [int(t) for t in sys.argv[2].split(",")]
searches, budget = 10, 1000
print("**latch: random weight guessing (one-unit tanh RNN, weights U[-10, 10])**\n")
print("| T | searches solved | median guesses | max guesses | time |")
print("|---|---|---|---|---|")
baseline = {}
for length in lengths:
    start = time.perf_counter()
    runs = [random_guessing(length, trials=budget, generator=torch.Generator().manual_seed(s))
            for s in range(searches)]
    used = [r.trials_used for r in runs if r.solved]
    baseline[length] = len(used) / searches
    median = f"{statistics.median(used):.0f}" if used else "-"
    print(f"| {length} | {len(used)}/{searches} | {median} | {max(used, default='-')} | "
          f"{time.perf_counter() - start:.1f} s |")
cells = []
for name in ("sgd", "adam"):
    with open_store(out / f"latch-{name}.sqlite", readonly=True) as store:
        cells += [dataclasses.replace(c, model=f"{c.model} ({name})")
                  for c in best_cells(summarize(store.records()))]
print()
print(plot_success(cells, "docs/img/sweep-latch-success.png", baseline=baseline,
                   baseline_label=f"random weight guessing (<= {budget} guesses)",
                   title="latch: success against T (gradient descent vs guessing)"))
print(plot_horizon(cells, "docs/img/sweep-latch-horizon.png"))
PY
