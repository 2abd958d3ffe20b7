r"""The "France -> French" panel: the demo's models read one sentence; what each predicts,
and which earlier words the answer's gradient reaches.

A sentence is typed (words of the language task's vocabulary; an unknown word is named
in the error, never dropped) or drawn by :meth:`vanishing.tasks.language.LanguageTask.
sample` from a seed. For each model of :data:`vanishing.demo.DEFAULT_MODELS` found in the
models folder (checkpoints ``<folder>/<model>.pt``, :func:`vanishing.train.
save_checkpoint`'s format, loaded by :func:`vanishing.train.load_checkpoint`):

- its prediction: softmax of the model's output for the (1, T) sentence, one probability
  per language;
- its connectivity (:func:`vanishing.report.connectivity.task_connectivity`, float64):
  ||dL/de_t|| at the embedding of each word t for the task's loss against the answer,
  and each word's share of the sum. The answer is the language of the first country in
  the sentence (the task's rule); a sentence naming no country uses each model's own
  prediction as its answer.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from ..demo import DEFAULT_GAP, DEFAULT_MODELS, checkpoint_path
from ..models import SequenceModel
from ..report.connectivity import task_connectivity
from ..tasks.language import PAIRS, LanguageTask
from ..train import TrainConfig, load_checkpoint
from .params import Body, flag, integer, known, text

__all__ = ["LIMITS", "TASK", "UnknownWords", "ModelStore", "checkpoint_path", "parse_sentence",
           "answer", "sentence"]

#: The demo's task (its default 8 country-language pairs): its vocabulary is the page's.
TASK = LanguageTask()
#: Bounds: characters typed, words in a sentence, the gap of a drawn sentence, the seed.
LIMITS = {"text": 2000, "words": 200, "gap": 100, "seed": 1_000_000}
_WORD = re.compile(r"[^\s.]+|\.")


class UnknownWords(ValueError):
    """Words not in the task's vocabulary; ``words`` lists them in order, each once."""

    def __init__(self, words: list[str]) -> None:
        self.words = words
        shown = ", ".join(repr(w) for w in words[:10]) + (" ..." if len(words) > 10 else "")
        super().__init__(f"{len(words)} word(s) not in the language task's vocabulary: "
                         f"{shown}")


@dataclass
class _Loaded:
    stamp: float
    config: TrainConfig
    model: SequenceModel


class ModelStore:
    """The demo models of one folder, loaded once per file version (by mtime)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._cache: dict[str, _Loaded] = {}
        self._lock = threading.Lock()

    def available(self) -> list[str]:
        """The demo models whose checkpoint file exists, in the demo's order."""
        return [m for m in DEFAULT_MODELS if checkpoint_path(self.folder, m).is_file()]

    def get(self, name: str) -> tuple[TrainConfig, SequenceModel]:
        """The model ``name`` as its checkpoint holds it (ValueError if it is no demo
        model's checkpoint on the language task)."""
        path = checkpoint_path(self.folder, name)
        with self._lock:
            stamp = path.stat().st_mtime
            hit = self._cache.get(name)
            if hit is None or hit.stamp != stamp:
                config, model = load_checkpoint(path)
                if config.task != "language" or config.task_options or config.model != name:
                    raise ValueError(f"{path.name} is a {config.model} on {config.task} "
                                     f"{config.task_options or ''}; the page reads the demo's "
                                     f"{name} on the language task")
                model.eval()
                hit = self._cache[name] = _Loaded(stamp, config, model)
            return hit.config, hit.model


def parse_sentence(typed: str) -> list[str]:
    """The words of ``typed``: lower case, split at spaces, "." a word of its own.

    Raises :class:`UnknownWords` naming every word outside the vocabulary.
    """
    words = _WORD.findall(typed.lower())
    if not words:
        raise ValueError("the sentence has no words")
    if len(words) > LIMITS["words"]:
        raise ValueError(f"the sentence must have at most {LIMITS['words']} words, got "
                         f"{len(words)}")
    unknown = [w for w in dict.fromkeys(words) if w not in TASK.index or w == TASK.vocab[0]]
    if unknown:
        raise UnknownWords(unknown)
    return words


def answer(words: list[str]) -> int | None:
    """The task's answer: the label of the first country named, None if none is."""
    countries = [c for c, _ in PAIRS[:TASK.pairs]]
    first = next((w for w in words if w in countries), None)
    return None if first is None else countries.index(first)


def sentence(body: Body, store: ModelStore) -> dict:
    """Predictions and connectivity of every available model for the request ``body``:
    ``{"text": ...}`` or ``{"random": true, "gap": g, "seed": s}``."""
    known(body, ("text", "random", "gap", "seed"))
    if flag(body, "random"):
        gap = integer(body, "gap", 0, LIMITS["gap"], DEFAULT_GAP)
        seed = integer(body, "seed", 0, LIMITS["seed"], 0)
        x, _ = TASK.sample(gap, 1, torch.Generator().manual_seed(seed))
        words = [TASK.vocab[int(i)] for i in x[0]]
    else:
        words = parse_sentence(text(body, "text", LIMITS["text"]))
        x = torch.tensor([[TASK.index[w] for w in words]])
    truth = answer(words)
    models = [_read(name, *store.get(name), x, words, truth) for name in store.available()]
    return {"words": words, "answer": None if truth is None else TASK.language(truth),
            "languages": [TASK.language(i) for i in range(TASK.pairs)], "models": models}


def _read(name: str, config: TrainConfig, model: SequenceModel, x: torch.Tensor,
          words: list[str], truth: int | None) -> dict:
    """One model's prediction and connectivity of the (1, T) sentence ``x``."""
    with torch.no_grad():
        probs = torch.softmax(model(x).double(), dim=-1)[0]
    predicted = int(probs.argmax())
    target = predicted if truth is None else truth
    view = task_connectivity(model, TASK, x, torch.tensor([target]), label=name)
    return {"model": name, "prediction": TASK.language(predicted),
            "probabilities": [float(p) for p in probs], "target": TASK.language(target),
            "norms": [float(v) for v in view.norms], "shares": [float(v) for v in view.shares],
            "step_budget": config.steps}
