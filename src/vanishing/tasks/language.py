"""France -> French: the canonical long-term dependency, as a word-level task.

One sample (gap 6, country france)::

    i grew up in france . the river was quiet every morning and now i speak  ->  french

The model reads the sentence word by word and, at the last word, names the language of
the country said ``gap + 5`` words earlier. The country always sits at position 4 and
the filler is drawn uniformly from a neutral vocabulary, so neither position nor filler
says anything about the answer: the only way to beat chance (1 / pairs) is to carry the
country across the gap. With ``distractors=True`` the filler also holds clauses
"i once visited <other country>", so the model must keep the *first* country.

Source: the example sentence used to introduce long-term dependencies in RNN courses
(e.g. Olah 2015, "Understanding LSTM Networks"); the task construction is ours.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import _checks
from .base import ClassificationTask, register

__all__ = ["LanguageTask", "PAIRS", "FILLER"]

PAIRS = (
    ("france", "french"), ("spain", "spanish"), ("germany", "german"), ("italy", "italian"),
    ("japan", "japanese"), ("china", "chinese"), ("russia", "russian"), ("greece", "greek"),
    ("portugal", "portuguese"), ("sweden", "swedish"), ("poland", "polish"), ("turkey", "turkish"),
)
FILLER = tuple(
    "the a weather was warm cold we they often walked to school market river house garden "
    "friends family every morning evening day week year later then after before many some "
    "small large old new quiet busy city village road train book music food bread coffee tea "
    "people children work played read cooked moved lived learned wrote rain snow sun long short"
    .split()
)
PREFIX = ("i", "grew", "up", "in")  # then the country, then "."
QUESTION = ("and", "now", "i", "speak")
CLAUSE = ("i", "once", "visited")  # then a distractor country
COUNTRY_POSITION = len(PREFIX)


@register("language")
class LanguageTask(ClassificationTask):
    """France -> French: name the language of the country said `length` filler words ago."""

    source = "Olah 2015 (example sentence); construction in vanishing.tasks.language"
    tokens = True
    solved_accuracy = 0.99

    def __init__(self, pairs: int = 8, distractors: bool = False) -> None:
        _checks.positive_int("pairs", pairs)
        if not 2 <= pairs <= len(PAIRS):
            raise ValueError(f"pairs must be between 2 and {len(PAIRS)}, got {pairs}")
        self.pairs, self.distractors = pairs, _checks.boolean("distractors", distractors)
        self.vocab = ("<pad>", *dict.fromkeys(PREFIX + (".",) + QUESTION + CLAUSE),
                      *FILLER, *(c for c, _ in PAIRS[:pairs]))
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.input_size = len(self.vocab)
        self.output_size = pairs
        self.min_length = 4 if self.distractors else 0
        self._filler = torch.tensor([self.index[w] for w in FILLER])
        self._country = torch.tensor([self.index[c] for c, _ in PAIRS[:pairs]])

    def sequence_length(self, length: int) -> int:
        """Words read: 4 (prefix) + country + "." + gap + 4 (question)."""
        return len(PREFIX) + 2 + length + len(QUESTION)

    def _ids(self, words) -> Tensor:
        return torch.tensor([self.index[w] for w in words])

    def sample(self, length: int, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """x: (N, gap + 10) token ids; y: (N,) language index in [0, pairs)."""
        self.check(length, batch, generator)
        y = torch.randint(0, self.pairs, (batch,), generator=generator)
        pick = torch.randint(0, len(FILLER), (batch, length), generator=generator)
        gap = self._filler[pick]
        if self.distractors:
            self._insert_distractors(gap, y, generator)
        head = torch.cat([self._ids(PREFIX).expand(batch, -1), self._country[y, None],
                          self._ids(["."]).expand(batch, -1)], dim=1)
        tail = self._ids(QUESTION).expand(batch, -1)
        return torch.cat([head, gap, tail], dim=1), y

    def _insert_distractors(self, gap: Tensor, y: Tensor, generator: torch.Generator) -> None:
        """Write max(1, gap // 10) clauses "i once visited <other country>" into ``gap``.

        The gap is cut into equal segments, one clause at a random offset in each, with a
        country different from the true one.
        """
        batch, length = gap.shape
        k = max(1, length // 10)
        seg = length // k
        clause = self._ids(CLAUSE)
        for j in range(k):
            start = j * seg + torch.randint(0, seg - len(CLAUSE), (batch,), generator=generator)
            other = (y + torch.randint(1, self.pairs, (batch,), generator=generator)) % self.pairs
            cols = start[:, None] + torch.arange(len(CLAUSE) + 1)
            words = torch.cat([clause.expand(batch, -1), self._country[other, None]], dim=1)
            gap.scatter_(1, cols, words)

    def chance_loss(self, length: int) -> float:
        """Classes are uniform: the best input-blind predictor has cross-entropy ln(pairs)."""
        return math.log(self.pairs)

    def language(self, label: int) -> str:
        return PAIRS[label][1]

    def decode(self, x: Tensor, y: Tensor, index: int = 0) -> str:
        words = " ".join(self.vocab[int(i)] for i in x[index])
        return f"{words}  ->  {self.language(int(y[index]))}"
