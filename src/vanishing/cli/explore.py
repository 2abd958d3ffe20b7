"""``vanishing explore``: serve the interactive page on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import torch
import typer

from ..demo import DEFAULT_STEPS
from ..explore import make_server
from ._common import console, handle_errors

__all__ = ["explore"]

PortOption = Annotated[int, typer.Option(
    min=0, max=65535, help="Port on 127.0.0.1 (0: a free port). The server never listens on "
                           "another address.")]
ModelsOption = Annotated[Path, typer.Option(
    help="Folder of the demo models' checkpoints (<model>.pt for rnn_tanh, lstm, gru); "
         "the page trains them there when they are missing.")]
TrainStepsOption = Annotated[int, typer.Option(
    min=1, max=1_000_000, help="Step budget per model when the page trains them.")]


@handle_errors
def explore(port: PortOption = 0, models: ModelsOption = Path("vanishing-out/models"),
            train_steps: TrainStepsOption = DEFAULT_STEPS) -> None:
    """Open a local page with three panels: gradient descent on a formula, the gradient
    through time of any cell, and France -> French with the demo's models.

    Every number on the page is computed by the library, on this machine; the page and
    its scripts ship with the package and nothing is fetched from the network. Ctrl-C
    stops the server (and any training the page started).
    """
    torch.set_num_threads(1)  # small models: one thread is as fast, and leaves one free
    server = make_server(port, models, train_steps)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as Ctrl-C does, even at once
    console.print(f"vanishing explore: {server.url}  (Ctrl-C stops it)", soft_wrap=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    console.print("stopped")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
