r"""The adding problem: remember two marked numbers across the sequence and add them.

Two variants that are **not comparable** (different value ranges, marker rules, targets
and success criteria), registered under different names.

``adding`` (Arjovsky, Shah & Bengio 2016, "Unitary evolution RNNs", after Le et al. 2015).
    x: (N, L, 2) floats, ``x[..., 0]`` values ~ U[0, 1], ``x[..., 1]`` markers: exactly one
    1 at a uniform position in ``[0, L//2)`` and one in ``[L//2, L)``, 0 elsewhere.
    y: (N, 1), the sum of the two marked values. One sample (L = 6, generator seed 0)::

        value   0.50  0.77  0.09  0.13  0.31  0.63
        marker     0     1     0     0     1     0    ->  y = 0.77 + 0.31 = 1.0756

    Chance: the best input-blind predictor outputs E[y] = 1 and has MSE
    Var(y) = 2 Var(U[0, 1]) = 2/12 = 1/6. Solved: held-out MSE < 0.01.

``adding-h97`` (Hochreiter & Schmidhuber 1997, "Long Short-Term Memory", experiment 4).
    The paper's text: values U[-1, 1]; "we first randomly select and mark one of the first
    ten pairs (X1). Then we randomly select and mark one of the first T/2 - 1 still
    unmarked pairs (X2). The second components of the remaining pairs are zero except for
    the first and final pair, whose second components are -1 (X1 is set to zero in the
    rare case where the first pair of the sequence got marked)". Target 0.5 + (X1 + X2)/4;
    a sequence is processed correctly if the absolute error at its end is below 0.04.
    Sequence lengths are random in [T, T + T/10].

    Our reading, 0-based: p1 ~ U{0..9}; p2 ~ U over the h - 1 positions of {0..h-1}
    other than p1, with h = T // 2; markers are 1 at p1 and p2, -1 at positions 0 and
    L - 1 unless marked, 0 elsewhere; if p1 == 0 its value is set to 0 (only X1, as the
    paper says; X2 at position 0 keeps its value and its marker 1). Deviation: one
    length L ~ U{T..T + T//10} is drawn per *batch* (tensors are rectangular), not per
    sequence; ``jitter=False`` fixes L = T. One sample (T = 20, generator seed 0: L = 22,
    p1 = 4, p2 = 9)::

        value   0.54 -0.82 -0.74 -0.39  0.27 -0.02 ... -0.30 -0.20 ...  0.83 -0.21
        marker    -1     0     0     0     1     0 ...     1     0 ...     0    -1
        ->  y = 0.5 + (0.27 - 0.30) / 4 = 0.4915 (unrounded values)

    Chance: the best input-blind predictor outputs 0.5; X1 is zero with probability 1/10,
    so MSE = (Var X1 + Var X2)/16 = (0.9/3 + 1/3)/16 = 19/480 ~ 0.0396.
    Solved (as in the paper's stopping rule, relaxed from "all of the last 2000 training
    sequences" to held-out data): MSE < 0.01 and >= 99% of sequences with |error| < 0.04.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .. import _checks
from .base import Task, register

__all__ = ["RegressionTask", "AddingTask", "AddingH97Task"]


class RegressionTask(Task):
    """One real target per sequence, read at the last step: output (N, 1), MSE loss.

    Solved when held-out MSE < ``solved_mse``.
    """

    metric = "mse"
    input_size = 2
    output_size = 1
    solved_mse: float = 0.01

    def _pair(self, output: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(output, y)`` once their shapes agree (a (N,) vs (N, 1) mix would broadcast)."""
        if output.shape != y.shape:
            raise ValueError(f"{self.name}: output must have the target's shape "
                             f"{tuple(y.shape)}, got {tuple(output.shape)}")
        return output, y

    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        return F.mse_loss(*self._pair(output, y))

    def metrics(self, output: Tensor, y: Tensor) -> dict[str, float]:
        mse = F.mse_loss(*self._pair(output.detach(), y)).item()
        return {"loss": mse, "mse": mse}

    def solved(self, metrics: dict[str, float]) -> bool:
        return metrics.get("mse", float("inf")) < self.solved_mse

    @property
    def criterion(self) -> str:
        return f"mse < {self.solved_mse:g}"

    def decode(self, x: Tensor, y: Tensor, index: int = 0) -> str:
        values = " ".join(f"{float(v):5.2f}" for v in x[index, :, 0])
        marks = " ".join(f"{int(m):5d}" for m in x[index, :, 1])
        return f"value  {values}\nmarker {marks}\n-> {float(y[index, 0]):.4f}"


@register("adding")
class AddingTask(RegressionTask):
    """Adding (U[0,1] values, one marker per half): output the sum of the two marked values."""

    source = "Arjovsky, Shah & Bengio 2016 (after Le, Jaitly & Hinton 2015)"
    min_length = 2
    default_length = 50

    def sample(self, length: int, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """x: (N, L, 2) [value, marker]; y: (N, 1) sum of the two marked values."""
        self.check(length, batch, generator)
        half = length // 2
        values = torch.rand(batch, length, generator=generator)
        first = torch.randint(0, half, (batch,), generator=generator)
        second = torch.randint(half, length, (batch,), generator=generator)
        rows = torch.arange(batch)
        markers = torch.zeros(batch, length)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        y = values[rows, first] + values[rows, second]
        return torch.stack([values, markers], dim=-1), y[:, None]

    def chance_loss(self, length: int) -> float:
        """Predict E[y] = 1: MSE = Var(y) = 2 * (1/12) = 1/6, for every length."""
        return 1.0 / 6.0


@register("adding-h97")
class AddingH97Task(RegressionTask):
    """Adding as in the LSTM paper (U[-1,1], target 0.5 + (X1+X2)/4, correct if |err| < 0.04)."""

    source = "Hochreiter & Schmidhuber 1997, experiment 4"
    min_length = 20  # the first ten pairs must lie inside the first T // 2
    default_length = 100
    tolerance = 0.04  # a sequence is correct if |output - y| < tolerance
    solved_accuracy = 0.99  # ... and solved (with mse < solved_mse) if this many are

    def __init__(self, jitter: bool = True) -> None:
        self.jitter = _checks.boolean("jitter", jitter)

    def sequence_length(self, length: int) -> int:
        """The longest sequence drawn: T + T // 10 (exactly T with ``jitter=False``)."""
        return length + length // 10 if self.jitter else length

    def sample(self, length: int, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """x: (N, L, 2) [value, marker] with L in [T, T + T//10]; y: (N, 1) in [0, 1]."""
        self.check(length, batch, generator)
        steps = length
        if self.jitter:
            steps += int(torch.randint(0, length // 10 + 1, (1,), generator=generator))
        values = torch.rand(batch, steps, generator=generator) * 2 - 1
        p1 = torch.randint(0, 10, (batch,), generator=generator)
        # one of the h - 1 positions of {0..h-1} other than p1: draw in [0, h-1), skip p1
        p2 = torch.randint(0, length // 2 - 1, (batch,), generator=generator)
        p2 = p2 + (p2 >= p1).long()
        rows = torch.arange(batch)
        values[rows[p1 == 0], 0] = 0.0
        markers = torch.zeros(batch, steps)
        markers[:, 0] = -1.0
        markers[:, -1] = -1.0
        markers[rows, p1] = 1.0
        markers[rows, p2] = 1.0
        y = 0.5 + (values[rows, p1] + values[rows, p2]) / 4
        return torch.stack([values, markers], dim=-1), y[:, None]

    def metrics(self, output: Tensor, y: Tensor) -> dict[str, float]:
        metrics = super().metrics(output, y)
        hit = (output.detach() - y).abs() < self.tolerance
        metrics["accuracy"] = hit.float().mean().item()
        return metrics

    def solved(self, metrics: dict[str, float]) -> bool:
        return super().solved(metrics) and metrics.get("accuracy", 0.0) >= self.solved_accuracy

    @property
    def criterion(self) -> str:
        return (f"{super().criterion} and accuracy (|err| < {self.tolerance:g}) "
                f">= {self.solved_accuracy:g}")

    def chance_loss(self, length: int) -> float:
        """Predict 0.5: MSE = (Var X1 + Var X2) / 16 = (0.9/3 + 1/3) / 16 = 19/480."""
        return (0.9 / 3 + 1 / 3) / 16
