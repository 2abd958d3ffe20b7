r"""Pixel-by-pixel digits: classify an 8x8 handwritten digit read one pixel per step.

Source: the "sequential MNIST" task of Le, Jaitly & Hinton 2015 (and its permuted variant),
scaled down to scikit-learn's bundled 8x8 digits (``sklearn.datasets.load_digits``: 1797
images, 16 grey levels, shipped inside scikit-learn, no download).

x: (N, 64, 1) floats, the pixels in row-major order scaled from {0..16} to [0, 1];
y: (N,) digit in [0, 10), read at the last step. One sample (generator seed 0; shades
``.:-=+*#%@`` from 0 to 1), shown as the image; x is its rows one after the other::

    . . + # # . . .
    . = % # % + . .
    . - % - * + . .
    . . + @ % : . .
    . . . % @ = . .
    . . + + - @ - .
    . . # - . # + .
    . . + @ @ + . .  ->  8

    x[:, :12, 0] = 0, 0, 0.4375, 0.8125, 0.6875, 0.0625, 0, 0, 0, 0.375, 0.875, 0.75, ...

``digits-permuted`` reads the same pixels in one fixed random order, drawn by
``torch.randperm(64)`` from a ``torch.Generator`` seeded with :data:`PERMUTATION_SEED`
(the same order for every sample, task and run): neighbouring pixels end up far apart
in time, so the dependencies are long.

``length`` must be 64 (the number of pixels); any other value is a ValueError.

Held-out data: the dataset is split once, deterministically, in scikit-learn's order,
into training images (the first 1293, ``split="train"``), validation images (the next
144, which with the training images make the usual 80%) and test images (the last 360,
``split="test"``). ``sample`` draws uniformly with replacement from the chosen split;
``heldout(part="validation")`` and ``heldout(part="test")`` return those images whole,
in order. The trainer stops early on the validation images and reports the test images,
so a model trained on ``split="train"`` (the default) is scored on 360 images that
neither training nor the stopping rule saw. (``split="test"`` is for looking at test
images; a model trained on it has no test score worth the name.)

Chance: the best input-blind predictor outputs the split's class frequencies p_c, with
cross-entropy -sum_c p_c ln p_c (about ln 10). Solved: accuracy >= 0.9 (meant to be
measured on ``split="test"``; a 1-nearest-neighbour classifier reaches 0.96 there).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .. import _checks
from .base import HELDOUT_PARTS, ClassificationTask, register

__all__ = ["DigitsTask", "PermutedDigitsTask", "PIXELS", "TRAIN_SIZE", "VALIDATION_SIZE",
           "PERMUTATION_SEED",
           "load", "permutation"]

PIXELS = 64
TRAIN_SIZE = 1437  # the first 80% of the 1797 images (training + validation); then test
VALIDATION_SIZE = 144  # the last 10% of those 1437: the images early stopping looks at
PERMUTATION_SEED = 2015
SPLITS = ("train", "test")
SHADES = ".:-=+*#%@"  # 0 -> ".", 1 -> "@"


@functools.lru_cache(maxsize=1)
def load() -> tuple[Tensor, Tensor]:
    """All 1797 images as (1797, 64) floats in [0, 1] and labels (1797,)."""
    from sklearn.datasets import load_digits  # imported here: only these tasks need it

    data = load_digits()
    images = torch.tensor(data.data, dtype=torch.float32) / 16.0
    return images, torch.tensor(data.target, dtype=torch.long)


def permutation() -> Tensor:
    """The fixed pixel order of ``digits-permuted``: randperm(64) with PERMUTATION_SEED."""
    return torch.randperm(PIXELS, generator=torch.Generator().manual_seed(PERMUTATION_SEED))


@register("digits")
class DigitsTask(ClassificationTask):
    """8x8 digits read pixel by pixel (row-major), class at the last step."""

    source = "Le, Jaitly & Hinton 2015 (pixel MNIST), on scikit-learn's 8x8 digits"
    input_size = 1
    output_size = 10
    min_length = PIXELS
    default_length = PIXELS
    solved_accuracy = 0.9

    def __init__(self, split: str = "train") -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.split = split
        images, labels = load()
        rows = slice(0, TRAIN_SIZE - VALIDATION_SIZE) if split == "train" else \
            slice(TRAIN_SIZE, None)
        self.images, self.labels = images[rows], labels[rows]

    @property
    def criterion(self) -> str:
        return f"{super().criterion} (on split=test)"

    def check(self, length: int, batch: int, generator: torch.Generator) -> None:
        if isinstance(length, int) and not isinstance(length, bool) and length != PIXELS:
            raise ValueError(f"{self.name}: length must be {PIXELS} (8x8 pixels, one per step), "
                             f"got {length}")
        super().check(length, batch, generator)

    def order(self) -> Tensor:
        """The pixel reading order (identity here)."""
        return torch.arange(PIXELS)

    def sample(self, length: int, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """x: (N, 64, 1) pixels in [0, 1]; y: (N,) digits, drawn from the split."""
        self.check(length, batch, generator)
        pick = torch.randint(0, len(self.labels), (batch,), generator=generator)
        return self.images[pick][:, self.order(), None], self.labels[pick]

    def heldout(self, length: int, size: int, generator: torch.Generator,
                part: str = "validation") -> tuple[Tensor, Tensor]:
        """The validation (144) or test (360) images, whole and in order: x (M, 64, 1),
        y (M,); ``size`` and ``generator`` are not used."""
        self.check(length, 1, generator)
        _checks.one_of("held-out part", part, HELDOUT_PARTS)
        images, labels = load()
        rows = slice(TRAIN_SIZE - VALIDATION_SIZE, TRAIN_SIZE) if part == "validation" else \
            slice(TRAIN_SIZE, None)
        return images[rows][:, self.order(), None], labels[rows]

    def chance_loss(self, length: int) -> float:
        """Entropy of the split's class frequencies, -sum p_c ln p_c."""
        p = torch.bincount(self.labels, minlength=10).double() / len(self.labels)
        return float(-(p[p > 0] * p[p > 0].log()).sum())

    def decode(self, x: Tensor, y: Tensor, index: int = 0) -> str:
        pixels = torch.empty(PIXELS)
        pixels[self.order()] = x[index, :, 0]  # undo the reading order
        shade = (pixels * (len(SHADES) - 1)).round().long().clamp(0, len(SHADES) - 1)
        rows = [" ".join(SHADES[int(s)] for s in shade[r * 8: r * 8 + 8]) for r in range(8)]
        return "\n".join(rows) + f"  ->  {int(y[index])}"


@register("digits-permuted")
class PermutedDigitsTask(DigitsTask):
    """8x8 digits read in a fixed random pixel order (PERMUTATION_SEED), class at the end."""

    source = "Le, Jaitly & Hinton 2015 (permuted pixel MNIST), on scikit-learn's 8x8 digits"

    def order(self) -> Tensor:
        return permutation()
