r"""Information latching (the two-sequence problem), and why it is a weak benchmark.

Source: Bengio, Simard & Frasconi 1994, "Learning long-term dependencies with gradient
descent is difficult" (latch and 2-sequence problems), in the form used by Schmidhuber &
Hochreiter 1996, "Guessing can outperform many long time lag algorithms" (latch
variant II: sequences of class 1 start with 1.0, of class 0 with -1.0; Gaussian noise of
mean 0 and variance 0.2 everywhere else).

For ``length`` = L and ``lead`` = n (default 1)::

    x_t = +1 (class 1) or -1 (class 0)     for t < n
    x_t ~ N(0, 0.2)                          for n <= t < L

x: (N, L, 1) floats; y: (N,) class in {0, 1}, read at the last step (2 logits).
One sample (L = 8, n = 1, generator seed 0)::

    -1.00 +0.12 +0.25 +0.12 +0.29 +0.11 -0.15 +0.20  ->  class 0

Chance: balanced classes, cross-entropy ln 2. Solved: < 1% error (accuracy >= 0.99).

The class is a single bit at the very start, and the rest carries no information, so a
net only has to *latch* that bit. :func:`random_guessing` shows how easy that is: drawing
all five weights of a one-unit tanh RNN at random until one works needs no gradient at
all (measured with the defaults over 20 seeds: median 70 guesses at L = 100, 141 at
L = 300; a whole search takes about 0.1 s and 0.35 s on one CPU core), so solving it says
little about bridging long lags. Schmidhuber & Hochreiter report 22 guesses on average
for variant II, against the 1600 trials Bengio et al. 1994 report for several methods on
the simpler variant I. Use the task as a sanity check, not as a benchmark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .. import _checks
from .base import ClassificationTask, register

__all__ = ["LatchTask", "GuessResult", "random_guessing", "NOISE_VARIANCE"]

NOISE_VARIANCE = 0.2


@register("latch")
class LatchTask(ClassificationTask):
    """Latch / two-sequence: the sign of the first steps sets the class, then pure noise."""

    source = "Bengio, Simard & Frasconi 1994; variant II of Schmidhuber & Hochreiter 1996"
    input_size = 1
    output_size = 2
    default_length = 100
    solved_accuracy = 0.99

    def __init__(self, lead: int = 1) -> None:
        self.lead = _checks.positive_int("lead", lead)
        self.min_length = lead + 1  # at least one step of noise

    def sample(self, length: int, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """x: (N, L, 1) floats, +-1 for ``lead`` steps then N(0, 0.2); y: (N,) in {0, 1}."""
        self.check(length, batch, generator)
        y = torch.randint(0, 2, (batch,), generator=generator)
        x = torch.randn(batch, length, generator=generator) * math.sqrt(NOISE_VARIANCE)
        x[:, : self.lead] = (2.0 * y - 1.0)[:, None]
        return x[..., None], y

    def chance_loss(self, length: int) -> float:
        """Balanced classes: ln 2."""
        return math.log(2)

    def decode(self, x: Tensor, y: Tensor, index: int = 0) -> str:
        values = " ".join(f"{float(v):+.2f}" for v in x[index, :, 0])
        return f"{values}  ->  class {int(y[index])}"


@dataclass
class GuessResult:
    """Outcome of :func:`random_guessing`.

    Attributes:
        solved: a guess met the task's criterion (accuracy >= ``LatchTask.solved_accuracy``,
            0.99) on the search set and on fresh sequences.
        trials_used: guesses drawn (the winning one included).
        accuracy: search-set accuracy of the winner (or of the best guess if unsolved).
        test_accuracy: the winner's accuracy on fresh sequences (nan if unsolved).
        weights: the winner's (or best guess's) ``w_in (H,), w_hh (H, H), b (H,),
            w_out (H,), b_out ()``.
    """

    solved: bool
    trials_used: int
    accuracy: float
    test_accuracy: float = float("nan")
    weights: dict[str, Tensor] = field(default_factory=dict)


def _guess_accuracy(weights: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
    """Accuracy of K tanh nets at once: h_t = tanh(w_in x_t + W_hh h_(t-1) + b).

    weights hold a leading trial dimension K; x: (N, L, 1); returns (K,).
    The class is 1 where w_out . h_L + b_out > 0.
    """
    w_in, w_hh, b = weights["w_in"], weights["w_hh"], weights["b"]
    k, h_size = w_in.shape
    h = torch.zeros(k, x.shape[0], h_size)
    for t in range(x.shape[1]):
        drive = x[None, :, t, :] * w_in[:, None, :] + b[:, None, :]  # (K, N, H)
        h = torch.tanh(drive + torch.bmm(h, w_hh.transpose(1, 2)))
    out = (h * weights["w_out"][:, None, :]).sum(-1) + weights["b_out"][:, None]
    return ((out > 0).long() == y[None, :]).float().mean(dim=1)


@torch.no_grad()
def random_guessing(
    length: int,
    *,
    trials: int = 1000,
    hidden_size: int = 1,
    scale: float = 10.0,
    batch: int = 256,
    lead: int = 1,
    chunk: int = 64,
    generator: torch.Generator,
) -> GuessResult:
    r"""Solve the latch task by drawing all weights of a small RNN at random.

    Schmidhuber & Hochreiter 1996: REPEAT draw every weight at random and test the net
    UNTIL it solves the task. Here every weight of a ``hidden_size``-unit tanh RNN
    (w_in, W_hh, b, w_out, b_out) is drawn from U[-scale, scale] (the interval is ours).
    A guess counts as a solution if it meets :attr:`LatchTask.criterion` (accuracy >= 0.99)
    on a fixed search set of ``batch`` sequences *and* on ``batch`` fresh ones. Guesses
    are drawn and tested ``chunk`` at a time (so ``chunk`` changes which weights are
    drawn); the first solution in draw order is returned.

    Args:
        length: sequence length L (as for :class:`LatchTask`).
        trials: maximum number of guesses.
        hidden_size: H, recurrent units.
        scale: weights are U[-scale, scale].
        batch: sequences in the search set (and in the fresh check).
        lead: steps that carry the class.
        chunk: guesses evaluated together.
        generator: the only source of randomness.

    Returns:
        :class:`GuessResult`.
    """
    task = LatchTask(lead)
    task.check(length, batch, generator)
    _checks.positive_int("trials", trials)
    _checks.positive_int("hidden_size", hidden_size)
    _checks.positive_float("scale", scale)
    _checks.positive_int("chunk", chunk)
    x, y = task.sample(length, batch, generator)
    x_test, y_test = task.sample(length, batch, generator)
    shapes = {"w_in": (hidden_size,), "w_hh": (hidden_size, hidden_size), "b": (hidden_size,),
              "w_out": (hidden_size,), "b_out": ()}
    best = GuessResult(False, 0, -1.0)
    used = 0
    while used < trials:
        k = min(chunk, trials - used)
        weights = {name: (torch.rand((k, *s), generator=generator) * 2 - 1) * scale
                   for name, s in shapes.items()}
        acc = _guess_accuracy(weights, x, y)
        for i in torch.nonzero(acc >= task.solved_accuracy).flatten().tolist():
            one = {name: w[i: i + 1] for name, w in weights.items()}
            test_accuracy = float(_guess_accuracy(one, x_test, y_test)[0])
            if test_accuracy >= task.solved_accuracy:
                return GuessResult(True, used + i + 1, float(acc[i]), test_accuracy,
                                   {name: w[0] for name, w in one.items()})
        i = int(acc.argmax())
        if float(acc[i]) > best.accuracy:
            best = GuessResult(False, 0, float(acc[i]),
                               weights={name: w[i] for name, w in weights.items()})
        used += k
    best.trials_used = used
    return best
