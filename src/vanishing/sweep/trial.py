"""One trial of a sweep: train one config, probe the trained model, return a plain record."""

from __future__ import annotations

import datetime
import socket
import time
import traceback

import torch

from .. import __version__
from ..probe import hidden_gradients
from ..train import TrainConfig, TrainResult, probe_inputs, train

__all__ = ["HORIZON_THRESHOLD", "PROBE_BATCH", "PROBE_SEED", "gradient_horizon", "run_trial",
           "describe_error", "failed_record"]

HORIZON_THRESHOLD = 1e-3
PROBE_BATCH = 128
#: The held-out probe batch of seed s is drawn from ``Generator().manual_seed(PROBE_SEED + s)``
#: (training uses seeds 2s and 2s + 1).
PROBE_SEED = 1_000_003


def gradient_horizon(result: TrainResult, *, threshold: float = HORIZON_THRESHOLD,
                     batch: int = PROBE_BATCH) -> tuple[int, int]:
    """(horizon, T) of the trained model on a held-out batch, probed in float64.

    The probe is set up by :func:`vanishing.train.probe_inputs` (a float64 copy of the
    model, so gradients below float32's range are measured as the small numbers they
    are; the task's own loss). The batch is the task's test part
    (``task.heldout(part="test")``; for a generated task, ``batch`` fresh sequences from
    ``Generator().manual_seed(PROBE_SEED + seed)``, apart from the training streams; for
    ``digits``, the first ``batch`` test images).
    """
    config, task = result.config, result.task
    gen = torch.Generator().manual_seed(PROBE_SEED + config.seed)
    x, y = task.heldout(config.length, batch, gen, "test")
    trace = hidden_gradients(*probe_inputs(result.model, x[:batch], task, y[:batch]))
    return trace.horizon(threshold), int(trace.norms.size)


def run_trial(config: dict) -> dict:
    """Train ``TrainConfig.from_dict(config)`` with one torch thread, probe it; never raises.

    Returns a plain dict (picklable, no tensors) with ``status`` (``done``, ``diverged``
    or ``failed``), ``solved``, ``steps``, ``steps_to_solve``, ``final`` metrics,
    ``history``, ``chance_loss``, ``horizon`` and ``probe_length``, ``message``,
    ``wall_time`` (seconds), the versions of vanishing and torch, ``host`` and
    ``finished_at`` (UTC, ISO 8601). An exception becomes ``status="failed"`` with its
    type, message and the line that raised.
    """
    start = time.perf_counter()
    record: dict = {"vanishing_version": __version__, "torch_version": torch.__version__,
                    "host": socket.gethostname(), "message": None}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train(TrainConfig.from_dict(config))
        record.update(status="done" if result.status != "diverged" else "diverged",
                      solved=result.status == "solved", steps=result.steps,
                      steps_to_solve=result.steps_to_solve, final=result.final,
                      history=result.history, chance_loss=result.chance_loss)
        if result.status == "diverged":
            record["message"] = f"the loss became NaN or inf by step {result.steps}"
        else:
            try:
                record["horizon"], record["probe_length"] = gradient_horizon(result)
            except ValueError as exc:  # e.g. every relu unit dead: no gradient to measure
                record["message"] = f"probe: {exc}"
    except Exception as exc:  # any error in a trial is recorded, never fatal to a sweep
        record.update(status="failed", solved=None, message=describe_error(exc))
    finally:
        torch.set_num_threads(threads)
    record["wall_time"] = time.perf_counter() - start
    record["finished_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    return record


def describe_error(exc: BaseException) -> str:
    """``Type: message (at file.py:line in function)``, on one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno} in " \
            f"{frames[-1].name})" if frames else ""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text[:2000] + where


def failed_record(exc: BaseException) -> dict:
    return {"status": "failed", "solved": None, "message": describe_error(exc),
            "vanishing_version": __version__, "torch_version": torch.__version__,
            "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}

