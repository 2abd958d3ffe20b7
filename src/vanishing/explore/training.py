"""Training the demo's models in the background, with progress the page polls.

:class:`TrainingJob` trains each model of :data:`vanishing.demo.DEFAULT_MODELS` in turn
with :func:`vanishing.demo.demo_config` (the very run ``vanishing demo`` makes: gap 20,
hidden 64, Adam, the same seed) on one daemon thread, and saves each finished model with
:func:`vanishing.train.save_checkpoint` to ``<folder>/<model>.pt``. The step budget is the
server's (``vanishing explore --train-steps``), never a request's. :meth:`TrainingJob.cancel`
stops it at the next training step (the progress callback raises); a model stopped half
way is not saved. The server cancels and joins the job when it shuts down.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ..demo import DEFAULT_GAP, DEFAULT_MODELS, demo_config
from ..train import save_checkpoint, train
from .words_panel import checkpoint_path

__all__ = ["TrainingJob"]


class _Cancelled(Exception):
    """Raised inside ``train``'s progress callback to stop the run."""


class TrainingJob:
    """One background run over the demo models; :meth:`status` is what the page shows."""

    def __init__(self, folder: Path, steps: int, seed: int = 0, gap: int = DEFAULT_GAP) -> None:
        self.folder, self.steps, self.seed, self.gap = Path(folder), steps, seed, gap
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._status: dict = {"state": "idle", "models": list(DEFAULT_MODELS), "model": None,
                              "done": [], "step": 0, "steps": steps, "accuracy": None,
                              "error": None, "seconds": 0.0}

    def status(self) -> dict:
        """A copy of the progress: ``state`` (idle, running, done, cancelled, failed), the
        model training, its ``step`` of ``steps``, its last held-out ``accuracy``, the
        models ``done`` (saved), and ``error`` for a failed run."""
        with self._lock:
            return {**self._status, "done": list(self._status["done"])}

    def start(self) -> dict:
        """Start training unless it is running already; returns :meth:`status`."""
        with self._lock:
            old = self._thread
        if old is not None and old.is_alive() and self._stop.is_set():
            old.join()  # a cancel is pending: let that run end before a new one starts
        with self._lock:
            if self._status["state"] != "running":
                self._stop.clear()
                self._status.update(state="running", model=None, done=[], step=0,
                                    accuracy=None, error=None, seconds=0.0)
                self._thread = threading.Thread(target=self._run, name="explore-training",
                                                daemon=True)
                self._thread.start()
        return self.status()

    def cancel(self) -> dict:
        """Ask the run to stop at its next step; returns :meth:`status`."""
        self._stop.set()
        return self.status()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True if it has (or never started)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _update(self, **fields) -> None:
        with self._lock:
            self._status.update(fields)

    def _run(self) -> None:
        began = time.perf_counter()
        try:
            for name in DEFAULT_MODELS:
                self._update(model=name, step=0, accuracy=None)
                result = train(demo_config(name, self.gap, self.steps, self.seed),
                               progress=self._progress(began))
                save_checkpoint(checkpoint_path(self.folder, name), result)
                with self._lock:
                    self._status["done"].append(name)
            state, error = "done", None
        except _Cancelled:
            state, error = "cancelled", None
        except Exception as exc:  # shown on the page; the server keeps serving
            state, error = "failed", f"{type(exc).__name__}: {exc}"
        self._update(state=state, error=error, seconds=time.perf_counter() - began)

    def _progress(self, began: float):
        def progress(step: int, info: dict) -> None:
            if self._stop.is_set():
                raise _Cancelled
            fields = {"step": step, "seconds": time.perf_counter() - began}
            if "accuracy" in info:
                fields["accuracy"] = float(info["accuracy"])
            self._update(**fields)

        return progress
