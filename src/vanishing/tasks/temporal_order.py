r"""The temporal order problem: which of A/B came first, and which second, in a noisy stream?

Source: Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural
networks", generator ``tempOrder.py`` of their code (github.com/pascanur/trainingRNNs),
after Hochreiter & Schmidhuber 1997, experiment 6a.

For ``length`` = L, with k = int(0.1 L)::

    p0 ~ U{k .. 2k - 1}          v0 ~ U{A, B}      (the code's [0.1 L, 0.2 L))
    p1 ~ U{int(0.5 L) .. int(0.5 L) + k - 1}   v1 ~ U{A, B}
    every other step: a filler symbol ~ U{c, d, e, f}
    class = v0 + 2 v1 with A = 0, B = 1:   AA -> 0, BA -> 1, AB -> 2, BB -> 3

x: (N, L, 6) one-hot floats over the symbols (A, B, c, d, e, f), as in the code;
y: (N,) class in [0, 4), read at the last step. One sample (L = 20, so k = 2; generator
seed 0: p0 = 2, p1 = 11)::

    f f B f d f d e c f e A c c e d e f f e  ->  BA (class 1)

Chance: the four classes are equally likely, so the best input-blind predictor has
cross-entropy ln 4. Solved: < 1% error on held-out sequences (accuracy >= 0.99).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from .base import ClassificationTask, register

__all__ = ["TemporalOrderTask", "ALPHABET", "CLASSES"]

ALPHABET = ("A", "B", "c", "d", "e", "f")
CLASSES = ("AA", "BA", "AB", "BB")  # class v0 + 2 v1


@register("temporal-order")
class TemporalOrderTask(ClassificationTask):
    """Temporal order: classify the order of two A/B symbols hidden in c/d/e/f filler."""

    source = "Pascanu, Mikolov & Bengio 2013 (code tempOrder.py)"
    input_size = len(ALPHABET)
    output_size = len(CLASSES)
    min_length = 10  # k = int(0.1 L) must be >= 1
    default_length = 100
    solved_accuracy = 0.99

    def sample(self, length: int, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """x: (N, L, 6) one-hot symbols; y: (N,) order class in [0, 4)."""
        self.check(length, batch, generator)
        k = int(length * 0.1)
        p0 = k + torch.randint(0, k, (batch,), generator=generator)
        v0 = torch.randint(0, 2, (batch,), generator=generator)
        p1 = int(length * 0.5) + torch.randint(0, k, (batch,), generator=generator)
        v1 = torch.randint(0, 2, (batch,), generator=generator)
        ids = 2 + torch.randint(0, 4, (batch, length), generator=generator)
        rows = torch.arange(batch)
        ids[rows, p0] = v0
        ids[rows, p1] = v1
        return F.one_hot(ids, len(ALPHABET)).float(), v0 + 2 * v1

    def chance_loss(self, length: int) -> float:
        """Uniform classes: ln 4."""
        return math.log(len(CLASSES))

    def decode(self, x: Tensor, y: Tensor, index: int = 0) -> str:
        symbols = " ".join(ALPHABET[int(i)] for i in x[index].argmax(-1))
        label = int(y[index])
        return f"{symbols}  ->  {CLASSES[label]} (class {label})"
