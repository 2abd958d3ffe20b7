"""Sweeps: success against sequence length, one trial per (model, length, lr, seed).

The field's headline curve (Bengio et al. 1994; Hochreiter & Schmidhuber 1997; Le et al.
2015) is the fraction of seeds that solve a task against its length, one line per
architecture. :func:`grid` builds the list of :class:`~vanishing.train.TrainConfig` and
:func:`run_sweep` runs it into a results store (:mod:`vanishing.sweep.store`)::

    configs = grid("adding", ["rnn_tanh", "lstm"], [10, 50, 100], seeds=3, steps=2000)
    run_sweep(configs, "results.sqlite", workers=2)  # or ray="auto"
    points = best_points(summarize(open_store("results.sqlite", readonly=True).records()))

(the summaries live in :mod:`vanishing.sweep.summary`, the trial in
:mod:`vanishing.sweep.trial`, the backends in :mod:`vanishing.sweep.backends`.)

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
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields

import torch

from .. import _checks
from ..models import MODELS
from ..tasks import get_task, task_names
from ..train import TrainConfig
from .backends import check_ray_address, connect_ray, local_results, pool_results, ray_results
from .store import FINISHED, canonical_json, config_key, open_store

__all__ = ["SweepSummary", "grid", "run_sweep"]

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
        ValueError / TypeError: an unknown task, model or field, a model or length given
            twice, or a bad number.
    """
    _checks.one_of("task", task, task_names())
    models = _names("models", models)
    for m in models:
        _checks.one_of("model", m, MODELS)
    if isinstance(lengths, (str, bytes)) or not isinstance(lengths, Sequence) or not lengths:
        raise ValueError("lengths must be a non-empty list of positive ints")
    for length in lengths:
        _checks.positive_int("length", length)
    if len(set(lengths)) != len(lengths):  # else the trial count would count them twice
        raise ValueError(f"lengths: each length once, got {', '.join(map(str, lengths))}")
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
    """The names, each once (a duplicate is refused, as ``vanishing demo`` refuses it: a
    list quietly shortened would not be the grid that was asked for)."""
    if isinstance(names, str) or not names:
        raise ValueError(f"{what} must be a non-empty list of names, got {names!r}")
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: each model once, got {', '.join(map(str, names))}")
    return names


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        _checks.positive_int("seeds", seeds)
        return list(range(seeds))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise ValueError(f"seeds must be a positive count or a list of seeds, got {seeds!r}")
    seeds = [_checks.nonneg_int("seed", s) for s in seeds]
    if len(set(seeds)) != len(seeds):  # as models and lengths: the grid asked for, or none
        raise ValueError(f"seeds: each seed once, got {', '.join(map(str, seeds))}")
    return seeds


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
            file raises :class:`~vanishing.sweep.store.StoreError` and is left untouched).
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
    ray_lib, started = connect_ray(ray, workers) if ray is not None else (None, False)
    try:
        with open_store(db) as store:
            status = store.statuses()
            todo = [(k, c) for k, c in trials.items()
                    if k not in status or (retry_failed and status[k] not in FINISHED)]
            if ray_lib is not None:
                results = ray_results(todo, ray_lib)
            elif workers > 1 and len(todo) > 1:
                results = pool_results(todo, workers)
            else:
                results = local_results(todo)
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

