"""Where a sweep's trials run: here, in a pool of spawned processes, or as Ray tasks.

Each backend yields ``(key, config, record)`` as trials finish; the driver alone writes
to the store (see :func:`vanishing.sweep.run_sweep`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

import torch

from ..train import TrainConfig
from .trial import describe_error, failed_record, run_trial

__all__ = ["RAY_CONNECT_TIMEOUT", "default_workers", "check_ray_address", "local_results",
           "pool_results", "connect_ray", "ray_results"]

#: Seconds a cluster address given as ``ray=`` has to accept a TCP connection.
RAY_CONNECT_TIMEOUT = 5.0


def local_results(todo) -> Iterator[tuple[str, TrainConfig, dict]]:
    """Results of the trials run here, one after another."""
    return ((k, c, run_trial(c.to_dict())) for k, c in todo)


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


def pool_results(todo, workers: int) -> Iterator[tuple[str, TrainConfig, dict]]:
    """Results as they finish from a pool of spawned processes (safe with torch threads).

    The workers ignore Ctrl-C (the terminal sends it to them too): the driver alone
    stops, and an early stop (Ctrl-C, an error, the generator closed) terminates them
    at once instead of waiting for the trials they are running."""
    pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)),
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker)
    done = False
    try:
        with _sigint_held():  # the workers are started here and inherit it
            futures = {pool.submit(run_trial, c.to_dict()): (k, c) for k, c in todo}
        for future in as_completed(futures):
            key, config = futures[future]
            try:
                record = future.result()
            except Exception as exc:  # a worker process died (BrokenProcessPool), ...
                record = failed_record(exc)
            yield key, config, record
        done = True
    finally:
        workers_left = [] if done else list((pool._processes or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in workers_left:  # what they run now is lost anyway
            if process.is_alive():
                process.terminate()


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Ctrl-C held back while this thread starts processes. They inherit SIGINT blocked,
    so it reaches none of them (no KeyboardInterrupt, no traceback, even while a worker
    still imports torch) until their initializer ignores it; here it is only noted (a
    process half started, its instructions unsent, would fail with a traceback) and
    raised as the usual KeyboardInterrupt once they are all started."""
    held: list = []
    previous = signal.getsignal(signal.SIGINT) \
        if threading.current_thread() is threading.main_thread() else None
    if callable(previous):  # Python's handler (not SIG_IGN, nor one set from C)
        signal.signal(signal.SIGINT, lambda *received: held.append(received))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) \
        if hasattr(signal, "pthread_sigmask") else None  # not on Windows
    try:
        yield
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if callable(previous):
            signal.signal(signal.SIGINT, previous)
            if held:
                previous(*held[0])  # default_int_handler: KeyboardInterrupt


def _init_worker() -> None:
    """One torch thread, Ctrl-C ignored (the driver reports it and stops the pool), and
    exit as soon as the driver dies (else a killed driver would leave its workers waiting
    forever on a queue they themselves keep open)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def connect_ray(address: str, workers: int):
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


def ray_results(todo, ray_lib) -> Iterator[tuple[str, TrainConfig, dict]]:
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
                record = failed_record(exc)
            yield key, config, record
    finally:
        for ref in pending:  # the driver stopped early: do not leave work on the cluster
            ray_lib.cancel(ref)
