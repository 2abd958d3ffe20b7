"""The explore server's routes: what each one reads and which library call answers it.

======================  =========================================================
``GET /api/options``    the choices and bounds the page's controls offer
``POST /api/descent``   :func:`vanishing.explore.descent_panel.descent`
``POST /api/time``      :func:`vanishing.explore.time_panel.through_time`
``POST /api/sentence``  :func:`vanishing.explore.words_panel.sentence`
``GET /api/train``      the background training's progress
``POST /api/train``     start training the demo models (``{"cancel": true}``: stop)
======================  =========================================================

Routes marked heavy run on the server's worker thread under its time cap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..demo import DEFAULT_GAP, DEFAULT_MODELS
from ..init import SCHEMES
from ..models import MODELS
from . import descent_panel, time_panel, words_panel
from .params import Body, flag, known
from .training import TrainingJob

__all__ = ["Api"]


class Api:
    """The routes of one server: ``reads`` (GET path -> function) and ``actions`` (POST
    path -> (function of the body, heavy))."""

    def __init__(self, models: Path, train_steps: int) -> None:
        self.store = words_panel.ModelStore(models)
        self.job = TrainingJob(models, train_steps)
        self._forget_gate = time_panel.forget_gate_models()
        self.reads: dict[str, Callable[[], dict]] = {
            "/api/options": self.options,
            "/api/train": self.job.status,
        }
        self.actions: dict[str, tuple[Callable[[Body], dict], bool]] = {
            "/api/descent": (descent_panel.descent, True),
            "/api/time": (time_panel.through_time, True),
            "/api/sentence": (lambda body: words_panel.sentence(body, self.store), True),
            "/api/train": (self.train, False),
        }

    def options(self) -> dict:
        """Everything the page's controls offer, from the library's own registries."""
        return {
            "descent": {"defaults": descent_panel.DEFAULTS, "limits": descent_panel.LIMITS},
            "time": {"cells": list(MODELS), "inits": [time_panel.PRESET, *SCHEMES],
                     "forget_gate": self._forget_gate, "defaults": time_panel.DEFAULTS,
                     "limits": time_panel.LIMITS, "threshold": time_panel.THRESHOLD},
            "words": {"vocabulary": list(words_panel.TASK.vocab[1:]),
                      "models": list(DEFAULT_MODELS), "available": self.store.available(),
                      "gap": DEFAULT_GAP, "limits": words_panel.LIMITS,
                      "folder": str(self.store.folder), "train_steps": self.job.steps},
        }

    def train(self, body: Body) -> dict:
        """Start the training (or with ``cancel``: stop it); its progress."""
        return self.job.cancel() if flag(known(body, ("cancel",)), "cancel") else self.job.start()
