"""The demo: France -> French, where a vanilla RNN fails, gated cells succeed, and why.

Three models of the same hidden size, trained with the same optimiser, batch and step
budget on the ``language`` task, then probed: the total gradient dL/dh_t reaching back
from the answer to every earlier word, at the start of training and at the end. The
gradient at the country word, relative to the last word, is the signal that has to
teach the model which country was said; for the tanh RNN it is orders of magnitude
smaller than for the LSTM, so its weight updates carry (almost) nothing about it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import _checks
from .models import MODELS
from .probe import Trace, hidden_gradients
from .report.connectivity import Connectivity, task_connectivity
from .tasks.language import COUNTRY_POSITION, LanguageTask
from .train import TrainConfig, TrainResult, build, probe_inputs, save_checkpoint, train

__all__ = ["DEFAULT_GAP", "DEFAULT_STEPS", "DEFAULT_MODELS", "LEARNING_RATE", "LSTM_FORGET_BIAS",
           "ModelReport", "DemoReport", "demo_config", "gradient_profile", "run_demo",
           "checkpoint_path", "save_models"]

DEFAULT_GAP = 20
DEFAULT_STEPS = 3000
DEFAULT_MODELS = ("rnn_tanh", "lstm", "gru")
#: Adam's learning rate, the same for every model (chosen from {3e-3, 1e-2} by the
#: measurements in docs/results.md, made with experiments/demo_gap.py).
LEARNING_RATE = 1e-2
#: The LSTM's forget-gate bias in the demo. With the usual 1 (f = 0.73 at init) the
#: LSTM needed 1050-2050 steps at gap 20 and one seed in four failed within 4000; with 2
#: (f = 0.88) every seed solved it within 150 steps. See docs/results.md.
LSTM_FORGET_BIAS = 2.0
PROBE_BATCH = 256


@dataclass
class ModelReport:
    """One model's run and its gradient profiles (at initialisation and after training):
    ``start``/``end`` the total dL/dh_t over the probe batch, ``start_words``/``end_words``
    the connectivity ||dL/de_t|| of the example sentence (None when not measured)."""

    name: str
    result: TrainResult
    start: Trace
    end: Trace
    start_words: Connectivity | None = None
    end_words: Connectivity | None = None

    def country_ratio(self, trace: Trace) -> float:
        """||dL/dh_t|| at the country word / at the last word."""
        return float(trace.norms[COUNTRY_POSITION] / trace.norms[-1])

    @property
    def accuracy(self) -> float:
        """Test accuracy of the finished model (sentences early stopping never saw); NaN
        for a run that diverged."""
        return float(self.result.test.get("accuracy", float("nan")))

    def outcome(self) -> str:
        """``reached 97.3%`` (test accuracy), or ``diverged``."""
        return "diverged" if self.result.status == "diverged" else f"reached {self.accuracy:.1%}"

    @property
    def best_accuracy(self) -> float:
        """The highest held-out accuracy seen at any evaluation during training."""
        seen = [h["accuracy"] for h in self.result.history if "accuracy" in h]
        return max(seen, default=float("nan"))


@dataclass
class DemoReport:
    """What :func:`run_demo` measured: the settings, chance accuracy (1 / country-language
    pairs), one decoded probe sentence, and one :class:`ModelReport` per model."""

    gap: int
    steps: int
    seed: int
    chance: float
    sample: str
    models: list[ModelReport]

    @property
    def country_lag(self) -> int:
        """How many words back from the last word the country word is (T - 1 - its index)."""
        return len(self.models[0].start.norms) - 1 - COUNTRY_POSITION


def demo_config(model: str, gap: int, steps: int, seed: int, device: str = "cpu"
                ) -> TrainConfig:
    """The training run the demo uses for one model.

    Every model: hidden 64, embedding 32, batch 64, Adam at the same learning rate,
    gradient clipping at 1, the same step budget and seed; the LSTM's forget-gate bias
    is :data:`LSTM_FORGET_BIAS`.
    """
    return TrainConfig(task="language", model=model, length=gap, steps=steps, seed=seed,
                       lr=LEARNING_RATE, optimizer="adam", clip=1.0,
                       forget_bias=LSTM_FORGET_BIAS if model == "lstm" else None,
                       hidden_size=64, embedding_size=32, batch_size=64, eval_every=50,
                       device=device)


def checkpoint_path(folder: str | Path, model: str) -> Path:
    """Where the checkpoint of demo model ``model`` lives: ``<folder>/<model>.pt`` (the
    layout ``vanishing demo`` writes under ``<out>/models`` and ``vanishing explore``
    reads)."""
    return Path(folder) / f"{model}.pt"


def save_models(report: DemoReport, folder: str | Path) -> list[Path]:
    """Save every trained model of ``report`` to :func:`checkpoint_path` in ``folder``
    (:func:`vanishing.train.save_checkpoint`: written whole or not at all)."""
    return [save_checkpoint(checkpoint_path(folder, m.name), m.result) for m in report.models]


def gradient_profile(model: torch.nn.Module, task: LanguageTask, x: torch.Tensor,
                     y: torch.Tensor) -> Trace:
    """Total dL/dh_t for every word of ``x`` (N, T) with the task's loss, computed in
    float64 (:func:`vanishing.train.probe_inputs`), so gradients far below float32's range
    (1e-38) are reported as the small numbers they are, not as zeros."""
    return hidden_gradients(*probe_inputs(model, x, task, y))


def check_arguments(gap: int, steps: int, seed: int, models: Sequence[str]) -> None:
    """Raise a one-line ``ValueError``/``TypeError`` for arguments :func:`run_demo` refuses."""
    _checks.nonneg_int("gap", gap)
    _checks.positive_int("steps", steps)
    _checks.nonneg_int("seed", seed)
    if isinstance(models, str) or not models:
        raise ValueError("models must be a non-empty list of model names")
    for name in models:
        _checks.one_of("model", name, MODELS)
    if len(set(models)) != len(models):
        raise ValueError(f"models: each model once, got {', '.join(models)}")


def run_demo(
    gap: int = DEFAULT_GAP,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    models: Sequence[str] = DEFAULT_MODELS,
    *,
    progress: Callable[[str, int, dict], None] | None = None,
    device: str = "cpu",
) -> DemoReport:
    """Train and probe each model; see the module doc.

    Args:
        gap: filler words between the country and "and now i speak".
        steps: step budget per model (training stops early once solved).
        seed: seeds weights, training data and the held-out batch.
        models: names from :data:`vanishing.models.MODELS`.
        progress: optional ``progress(model, step, info)`` callback.
        device: where the models train and are probed (see :mod:`vanishing.device`).
    """
    check_arguments(gap, steps, seed, models)
    task = LanguageTask()
    x, y = task.sample(gap, PROBE_BATCH, torch.Generator().manual_seed(10_000 + seed))
    reports = []
    for name in models:
        config = demo_config(name, gap, steps, seed, device)
        _, initial = build(config)  # the same weights train() starts from
        start = gradient_profile(initial, task, x, y)
        start_words = task_connectivity(initial, task, x, y, label=f"{name}, at initialisation")
        cb = None if progress is None else (lambda s, info, n=name: progress(n, s, info))
        result = train(config, progress=cb)
        end = gradient_profile(result.model, task, x, y)
        end_words = task_connectivity(result.model, task, x, y, label=f"{name}, after training")
        reports.append(ModelReport(name, result, start, end, start_words, end_words))
    return DemoReport(gap, steps, seed, 1.0 / task.pairs, task.decode(x, y), reports)


def decay_bar(norms: np.ndarray, floor: float = 1e-12) -> str:
    """One character per word, from the last word (left) back to the first (right).

    Height = log10(||dL/dh_t|| / ||dL/dh_T||) between ``floor`` (blank) and 1 (full).
    """
    blocks = " ▁▂▃▄▅▆▇█"
    rel = np.asarray(norms, dtype=np.float64)[::-1] / norms[-1]
    with np.errstate(divide="ignore"):
        level = 1 - np.log10(np.maximum(rel, 1e-300)) / np.log10(floor)
    idx = np.clip(np.round(level * (len(blocks) - 1)), 0, len(blocks) - 1).astype(int)
    return "".join(blocks[i] for i in idx)
