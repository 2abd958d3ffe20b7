#!/usr/bin/env bash
# (a) The adding problem (Le, Jaitly & Hinton 2015; Arjovsky, Shah & Bengio 2016):
# fraction of seeds that solve it (held-out MSE < 0.01) against T = 10..200 for a tanh RNN,
# an IRNN, an LSTM and a GRU. Resumable: rerun it after an interruption and finished trials
# are skipped. Measured here in about 20 minutes on 2 shared CPU cores (docs/results.md).
#
# Learning rates: the plain RNNs try 3e-3 and 1e-2 and each cell shows the better one; the
# gated cells use 1e-2, the best of {1e-3, 3e-3, 1e-2} for both at T = 50 and T = 100 in a
# one-seed pilot (experiments/README.md). Extra tuning for the models that fail can only
# make them look better.
set -euo pipefail
cd "$(dirname "$0")/.."
VANISHING=${VANISHING:-.venv/bin/vanishing}
DB=${DB:-vanishing-out/sweeps/adding.sqlite}
mkdir -p "$(dirname "$DB")"
export OMP_NUM_THREADS=1  # one thread per trial; the two workers fill the two cores

$VANISHING sweep --task adding --models rnn_tanh,irnn,lstm,gru --lengths 10,20,50,100,200 \
    --seeds 3 --steps 3000 --hidden-size 64 --batch-size 64 --optimizer adam --clip 1 \
    --lrs rnn_tanh:3e-3,rnn_tanh:1e-2,irnn:3e-3,irnn:1e-2,lstm:1e-2,gru:1e-2 \
    --workers 2 --db "$DB" --out vanishing-out/sweeps "$@"

# the tables and figures of docs/results.md, from the store alone
$VANISHING sweep --report "$DB" --out docs/img --markdown
