"""Sweeps: success against sequence length, one trial per (model, length, lr, seed).

The field's headline curve (Bengio et al. 1994; Hochreiter & Schmidhuber 1997; Le et al.
2015) is the fraction of seeds that solve a task against its length, one line per
architecture. :func:`grid` builds the list of :class:`~vanishing.train.TrainConfig` and
:func:`run_sweep` runs it into a results store (:mod:`vanishing.store`)::

    configs = grid("adding", ["rnn_tanh", "lstm"], [10, 50, 100], seeds=3, steps=2000)
    run_sweep(configs, "results.sqlite", workers=2)  # or ray="auto"
    cells = best_cells(summarize(open_store("results.sqlite", readonly=True).records()))

(the summaries live in :mod:`vanishing.sweep_summary`; they are re-exported here.)

A trial (:func:`run_trial`) is one ``train(config)`` followed by a probe of the trained
model: the total dL/dh_t on a held-out batch with the task's loss, in float64, and its
gradient horizon (``Trace.horizon(1e-3)``, the largest lag whose gradient is still above
1e-3 of the last step's). Trials run in this process one after another (``workers=1``,
the library's default), in a pool of ``workers`` spawned processes (``vanishing sweep``
defaults to one per CPU this process may use, :func:`default_workers`; a script that
asks for a pool needs the usual ``if __name__ == "__main__":`` guard, since each spawned
worker imports the main module), or as Ray tasks (``ray="auto"``, a cluster address
``HOST:PORT``, checked to answer before anything else is done, or ``"local"`` to start a
Ray instance here); every trial runs with one torch thread.
Only the driver writes to the store, one transaction per trial, so a sweep killed at
any moment loses only the trials that were running, and rerunning it skips every
finished one (``retry_failed=True`` also reruns the failed ones).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import multiprocessing
import multiprocessing.connection
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, fields

import torch

from . import __version__, _checks
from .models import MODELS
from .probe import hidden_gradients
from .store import canonical_json, config_key, open_store
from .sweep_summary import Cell, best_cells, lr_text, summarize, table_rows, varying_fields
from .tasks import get_task, task_names
from .train import TrainConfig, TrainResult, train

__all__ = ["HORIZON_THRESHOLD", "PROBE_BATCH", "PROBE_SEED", "RAY_CONNECT_TIMEOUT",
           "SweepSummary", "Cell", "grid", "run_trial", "run_sweep", "default_workers",
           "check_ray_address", "gradient_horizon", "summarize", "best_cells", "table_rows",
           "varying_fields", "lr_text", "describe_error"]

HORIZON_THRESHOLD = 1e-3
PROBE_BATCH = 128
#: The held-out probe batch of seed s is drawn from ``Generator().manual_seed(PROBE_SEED + s)``
#: (training uses seeds 2s and 2s + 1).
PROBE_SEED = 1_000_003
#: Seconds a cluster address given as ``ray=`` has to accept a TCP connection.
RAY_CONNECT_TIMEOUT = 5.0

Progress = Callable[[int, int, dict], None]


# ----------------------------------------------------------------------------- the grid

def grid(
    task: str,
    models: Sequence[str],
    lengths: Sequence[int],
    seeds: int | Sequence[int],
    *,
    lrs: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
    **options,
) -> list[TrainConfig]:
    """Every (length, model, lr, seed) combination as a ``TrainConfig``.

    Args:
        task: a registered task name.
        models: model names (see :data:`vanishing.models.MODELS`).
        lengths: the task's lengths (each >= the task's minimum).
        seeds: a count n (seeds 0..n-1) or the seeds themselves.
        lrs: learning rates tried for every model, or per model (``{"lstm": [1e-2]}``;
            a model left out uses ``options["lr"]`` or the default). None: one lr.
        options: any other ``TrainConfig`` field (``steps``, ``hidden_size``, ``lr``, ...).

    Raises:
        ValueError / TypeError: an unknown task, model or field, or a bad number.
    """
    _checks.one_of("task", task, task_names())
    models = _names("models", models)
    for m in models:
        _checks.one_of("model", m, MODELS)
    if isinstance(lengths, (str, bytes)) or not isinstance(lengths, Sequence) or not lengths:
        raise ValueError("lengths must be a non-empty list of positive ints")
    for length in lengths:
        _checks.positive_int("length", length)
    seeds = _seeds(seeds)
    known = {f.name for f in fields(TrainConfig)} - {"task", "model", "length", "seed"}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown sweep option(s) {', '.join(sorted(unknown))}; expected "
                         f"TrainConfig fields: {', '.join(sorted(known))}")
    probe = get_task(task, **options.get("task_options", {}))
    for length in lengths:
        probe.check(length, 1, torch.Generator())
    per_model = _lr_grid(lrs, models, options.get("lr", TrainConfig.lr))
    base = {k: v for k, v in options.items() if k != "lr"}
    return [TrainConfig(task=task, model=m, length=length, seed=s, lr=lr, **base)
            for length in lengths for m in models for lr in per_model[m] for s in seeds]


def _names(what: str, names: Sequence[str]) -> list[str]:
    if isinstance(names, str) or not names:
        raise ValueError(f"{what} must be a non-empty list of names, got {names!r}")
    return list(dict.fromkeys(names))


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        _checks.positive_int("seeds", seeds)
        return list(range(seeds))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise ValueError(f"seeds must be a positive count or a list of seeds, got {seeds!r}")
    return list(dict.fromkeys(_checks.nonneg_int("seed", s) for s in seeds))


def _lr_grid(lrs, models: list[str], default: float) -> dict[str, list[float]]:
    if lrs is None:
        return {m: [default] for m in models}
    if isinstance(lrs, Mapping):
        extra = set(lrs) - set(models)
        if extra:
            raise ValueError(f"lrs names model(s) not in the sweep: {', '.join(sorted(extra))}")
        chosen = {m: list(lrs.get(m, [default])) for m in models}
    elif isinstance(lrs, Sequence) and not isinstance(lrs, str):
        chosen = {m: list(lrs) for m in models}
    else:
        raise TypeError(f"lrs must be a list of numbers or a dict model -> list, "
                        f"got {type(lrs).__name__}")
    for m, values in chosen.items():
        if not values:
            raise ValueError(f"lrs for {m} is empty")
        chosen[m] = list(dict.fromkeys(_checks.positive_float("lr", v) for v in values))
    return chosen


# ----------------------------------------------------------------------------- one trial

def gradient_horizon(result: TrainResult, *, threshold: float = HORIZON_THRESHOLD,
                     batch: int = PROBE_BATCH) -> tuple[int, int]:
    """(horizon, T) of the trained model on a held-out batch, probed in float64.

    The model is copied to float64 so gradients below float32's range are measured as
    the small numbers they are; the loss is the task's own. The batch is the task's test
    part (``task.heldout(part="test")``; for a generated task, ``batch`` fresh sequences
    from ``Generator().manual_seed(PROBE_SEED + seed)``, apart from the training streams;
    for ``digits``, the first ``batch`` test images).
    """
    config, task = result.config, result.task
    gen = torch.Generator().manual_seed(PROBE_SEED + config.seed)
    x, y = task.heldout(config.length, batch, gen, "test")
    x, y = x[:batch], y[:batch]
    x = x.double() if x.is_floating_point() else x
    y = y.double() if y.is_floating_point() else y
    model = copy.deepcopy(result.model).double()
    trace = hidden_gradients(model, x, lambda out: task.loss(out, y))
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


def _failed(exc: BaseException) -> dict:
    return {"status": "failed", "solved": None, "message": describe_error(exc),
            "vanishing_version": __version__, "torch_version": torch.__version__,
            "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}


# ----------------------------------------------------------------------------- a sweep

@dataclass
class SweepSummary:
    """What :func:`run_sweep` did.

    Attributes:
        keys: the store keys of the sweep's (distinct) trials, in order.
        skipped: trials already finished in the store (or failed, without retry).
        ran: trials run now.  failed: of those, how many failed.  wall_time: seconds.
    """

    keys: list[str]
    skipped: int
    ran: int
    failed: int
    wall_time: float


def run_sweep(
    configs: Sequence[TrainConfig],
    db,
    *,
    workers: int = 1,
    ray: str | None = None,
    retry_failed: bool = False,
    progress: Progress | None = None,
) -> SweepSummary:
    """Run every config not yet finished in the store at ``db``; see the module doc.

    Args:
        configs: the trials (duplicates run once).
        db: path of the SQLite results store (created if missing; a foreign or corrupt
            file raises :class:`~vanishing.store.StoreError` and is left untouched).
        workers: 1 (the default) runs trials here one after another; more, the size of a
            pool of spawned processes (guard the calling script with ``if __name__ ==
            "__main__":``; :func:`default_workers` gives one per CPU). With
            ``ray="local"``: the CPUs of the Ray instance.
        ray: None (no Ray), ``"auto"`` or a cluster address ``HOST:PORT`` (see
            :func:`check_ray_address`), or ``"local"``. If Ray is already initialised in
            this process, that connection is used. Ray is reached before the store is
            opened, so a Ray that cannot be reached leaves no new store behind.
        retry_failed: rerun trials whose row says ``failed``.
        progress: optional ``progress(done, to_run, record)`` after each trial is stored.
    """
    start = time.perf_counter()
    trials = _check_configs(configs)
    _checks.positive_int("workers", workers)
    if ray is not None:
        check_ray_address(ray)
    ray_lib, started = _connect_ray(ray, workers) if ray is not None else (None, False)
    try:
        with open_store(db) as store:
            status = store.statuses()
            todo = [(k, c) for k, c in trials.items()
                    if k not in status or (retry_failed and status[k] == "failed")]
            if ray_lib is not None:
                results = _ray_results(todo, ray_lib)
            elif workers > 1 and len(todo) > 1:
                results = _pool_results(todo, workers)
            else:
                results = ((k, c, run_trial(c.to_dict())) for k, c in todo)
            failed = 0
            with contextlib.closing(results):  # stops the pool or cancels Ray tasks at once
                for done, (key, config, record) in enumerate(results, 1):
                    record = {**record, "key": key,
                              "config": json.loads(canonical_json(config))}
                    store.put(record)
                    failed += record["status"] == "failed"
                    if progress is not None:
                        progress(done, len(todo), record)
    finally:
        if started:
            ray_lib.shutdown()
    return SweepSummary(list(trials), len(trials) - len(todo), len(todo), failed,
                        time.perf_counter() - start)


def default_workers() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``, else ``os.cpu_count``):
    the default size of a sweep's process pool."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def check_ray_address(address: str, *, timeout: float = RAY_CONNECT_TIMEOUT) -> None:
    """Raise a one-line ValueError unless ``address`` may work as ``run_sweep(ray=...)``.

    ``"auto"`` and ``"local"`` pass (``ray.init`` resolves them, and fails at once if it
    cannot); so does anything while Ray is already initialised in this process (that
    connection is used). A cluster address must read ``HOST:PORT`` (or
    ``ray://HOST:PORT``) and accept a TCP connection within ``timeout`` seconds: given an
    address where nothing listens, ``ray.init`` logs "Failed to connect to GCS" for
    minutes instead of failing.
    """
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"ray must be 'auto', 'local' or a cluster address HOST:PORT, "
                         f"got {address!r}")
    text = address.strip()
    running = sys.modules.get("ray")  # imported already, and initialised: used as it is
    if text in ("auto", "local") or (running is not None and running.is_initialized()):
        return
    host, sep, port = text.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not (sep and host and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"ray must be 'auto', 'local' or a cluster address HOST:PORT, "
                         f"got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or f"no answer within {timeout:g} s"
        raise ValueError(f"cannot reach Ray at {address!r} ({reason}); start the cluster "
                         f"there (ray start --head) or use 'auto' or 'local'") from None


def _check_configs(configs: Sequence[TrainConfig]) -> dict[str, TrainConfig]:
    """key -> config, in order, duplicates dropped; every task and length checked first."""
    if isinstance(configs, TrainConfig) or not isinstance(configs, Sequence) or not configs:
        raise ValueError("configs must be a non-empty list of TrainConfig")
    for c in configs:
        if not isinstance(c, TrainConfig):
            raise TypeError(f"configs must hold TrainConfig, got {type(c).__name__}")
    checked = set()
    for c in configs:
        if (c.task, repr(c.task_options), c.length) not in checked:
            _checks.one_of("task", c.task, task_names())
            get_task(c.task, **c.task_options).check(c.length, 1, torch.Generator())
            checked.add((c.task, repr(c.task_options), c.length))
    return {config_key(c): c for c in configs}


def _pool_results(todo, workers: int) -> Iterator[tuple[str, TrainConfig, dict]]:
    """Results as they finish from a pool of spawned processes (safe with torch threads)."""
    pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)),
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker)
    try:
        futures = {pool.submit(run_trial, c.to_dict()): (k, c) for k, c in todo}
        for future in as_completed(futures):
            key, config = futures[future]
            try:
                record = future.result()
            except Exception as exc:  # a worker process died (BrokenProcessPool), ...
                record = _failed(exc)
            yield key, config, record
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _init_worker() -> None:
    """One torch thread, and exit as soon as the driver dies (else a killed driver would
    leave its workers waiting forever on a queue they themselves keep open)."""
    torch.set_num_threads(1)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _connect_ray(address: str, workers: int):
    """(the ray module, whether this call initialised it): connect to ``address``."""
    try:
        import ray as ray_lib
    except ImportError:
        raise ValueError("Ray is not installed; install it with: pip install "
                         "'vanishing[ray]'") from None
    if ray_lib.is_initialized():
        return ray_lib, False
    address = address.strip()
    try:
        if address == "local":
            ray_lib.init(num_cpus=workers, include_dashboard=False)
        else:
            ray_lib.init(address=address)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ...
        raise ValueError(f"cannot start or reach Ray at {address!r}: "
                         f"{describe_error(exc)}") from None
    return ray_lib, True


def _ray_results(todo, ray_lib) -> Iterator[tuple[str, TrainConfig, dict]]:
    """Results as they finish from Ray tasks (one CPU each) on a cluster or a local Ray."""
    pending = []
    try:
        remote = ray_lib.remote(num_cpus=1)(run_trial)
        refs = {remote.remote(c.to_dict()): (k, c) for k, c in todo}
        pending = list(refs)
        while pending:
            ready, pending = ray_lib.wait(pending, num_returns=1)
            key, config = refs[ready[0]]
            try:
                record = ray_lib.get(ready[0])
            except Exception as exc:  # the task's worker or node died
                record = _failed(exc)
            yield key, config, record
    finally:
        for ref in pending:  # the driver stopped early: do not leave work on the cluster
            ray_lib.cancel(ref)
