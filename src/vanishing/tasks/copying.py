r"""The copying memory problem: read 10 symbols, wait T steps, then write them back.

Source: Arjovsky, Shah & Bengio 2016, "Unitary evolution recurrent neural networks"
(after Hochreiter & Schmidhuber 1997).

Layout for ``length`` = T (the model reads T + 20 steps)::

    x:  s1 .. s10 | 0 x (T - 1) | 9 | 0 x 10
    y:  0 x (T + 10)                 | s1 .. s10

with s_i uniform in {1..8}, 0 the blank and 9 the marker ("now write"). One sample
(T = 3, generator seed 0, blanks shown as ``_``, the marker as ``:``)::

    x  5 8 6 1 4 4 4 8 2 4 _ _ : _ _ _ _ _ _ _ _ _ _
    y  _ _ _ _ _ _ _ _ _ _ _ _ _ 5 8 6 1 4 4 4 8 2 4

Input: token ids (N, T + 20) in [0, 10) (``tokens = True``, vocabulary 10; the model embeds
them). Output: logits at every step (readout ``all``), (N, T + 20, 9) over {blank, 1..8};
targets y (N, T + 20) in [0, 9). Loss: cross-entropy averaged over all steps.

Chance: the best memoryless predictor knows the layout but not the symbols: it says blank
for the first T + 10 steps (loss 0) and uniform over 8 symbols for the last 10 (loss ln 8
each), so its loss is 10 ln 8 / (T + 20). Solved: all 10 symbols recalled exactly on >= 99%
of held-out sequences (metric ``accuracy``; ``symbol_accuracy`` is the per-symbol rate).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from .base import Task, register

__all__ = ["CopyingTask", "SYMBOLS", "COPY", "BLANK", "MARKER"]

SYMBOLS = 8  # data symbols 1..8
COPY = 10  # symbols to remember
BLANK, MARKER = 0, 9


@register("copying")
class CopyingTask(Task):
    """Copying memory: reproduce 10 symbols from {1..8} after T blanks and a marker."""

    source = "Arjovsky, Shah & Bengio 2016"
    tokens = True
    input_size = MARKER + 1
    output_size = SYMBOLS + 1
    readout = "all"
    min_length = 1
    default_length = 100
    metric = "accuracy"
    solved_accuracy = 0.99

    def sequence_length(self, length: int) -> int:
        """T + 20: 10 symbols, T - 1 blanks, the marker, 10 blanks."""
        return length + 2 * COPY

    def sample(self, length: int, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """x: (N, T + 20) token ids; y: (N, T + 20) targets, blank except the last 10."""
        self.check(length, batch, generator)
        steps = self.sequence_length(length)
        symbols = torch.randint(1, SYMBOLS + 1, (batch, COPY), generator=generator)
        x = torch.full((batch, steps), BLANK, dtype=torch.long)
        x[:, :COPY] = symbols
        x[:, COPY + length - 1] = MARKER
        y = torch.full((batch, steps), BLANK, dtype=torch.long)
        y[:, -COPY:] = symbols
        return x, y

    def _check_output(self, output: Tensor, y: Tensor) -> None:
        if output.shape != (*y.shape, self.output_size):
            raise ValueError(f"copying: output must have shape {(*y.shape, self.output_size)} "
                             f"(readout 'all'), got {tuple(output.shape)}")

    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        self._check_output(output, y)
        return F.cross_entropy(output.flatten(0, 1), y.flatten())

    def metrics(self, output: Tensor, y: Tensor) -> dict[str, float]:
        self._check_output(output, y)
        output = output.detach()
        hit = output[:, -COPY:].argmax(-1) == y[:, -COPY:]
        return {
            "loss": F.cross_entropy(output.flatten(0, 1), y.flatten()).item(),
            "accuracy": hit.all(dim=1).float().mean().item(),
            "symbol_accuracy": hit.float().mean().item(),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        return metrics.get("accuracy", 0.0) >= self.solved_accuracy

    @property
    def criterion(self) -> str:
        return f"accuracy (all {COPY} symbols exact) >= {self.solved_accuracy:g}"

    def chance_loss(self, length: int) -> float:
        """10 ln 8 / (T + 20): blanks known for free, the 10 symbols uniform over 8."""
        return COPY * math.log(SYMBOLS) / self.sequence_length(length)

    def decode(self, x: Tensor, y: Tensor, index: int = 0) -> str:
        def show(ids: Tensor) -> str:
            return " ".join({BLANK: "_", MARKER: ":"}.get(int(i), str(int(i))) for i in ids)

        return f"x  {show(x[index])}\ny  {show(y[index])}"
