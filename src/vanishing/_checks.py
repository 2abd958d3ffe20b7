"""Input checks shared by the public entry points.

Each raises ``TypeError`` or ``ValueError`` with one line naming what was expected and
what was received. They are plain ``if`` tests, never ``assert`` (which ``python -O``
removes).
"""

from __future__ import annotations

import math
import sys

import torch
from torch import Tensor

__all__ = ["positive_int", "positive_float", "nonneg_int", "boolean", "sequence", "finite",
           "one_of", "fraction", "MAX_SIZE", "MAX_LAYERS"]

#: Largest width a model takes (input, hidden, output, embedding size): past it torch's
#: allocator fails (or its size arithmetic overflows) instead of a one-line message.
#: The CLI's ``--hidden-size`` and ``--input-size`` have the same bound.
MAX_SIZE = 65_536
#: Most stacked layers a model takes (the CLI's ``--layers`` has the same bound).
MAX_LAYERS = 64


def positive_int(name: str, value: object, most: int | None = None) -> int:
    """``value`` as an int > 0 (and at most ``most``, when given), else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    if most is not None and value > most:
        raise ValueError(f"{name} must be at most {most:,}, got {value:,}")
    return value


def nonneg_int(name: str, value: object) -> int:
    """``value`` as an int >= 0, else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def positive_float(name: str, value: object) -> float:
    """``value`` as a finite float > 0, else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def fraction(name: str, value: object) -> float:
    """``value`` as a float strictly between 0 and 1, and at least the smallest normal
    float (denormals are flushed to zero while probing), else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in (0, 1), got {type(value).__name__}")
    if not sys.float_info.min <= value < 1:  # also refuses NaN
        raise ValueError(f"{name} must be in (0, 1), at least {sys.float_info.min:.4g}, "
                         f"got {value}")
    return float(value)


def boolean(name: str, value: object) -> bool:
    """``value`` if it is a bool (or the ints 0 and 1), else a one-line error."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be true or false, got {value!r}")


def one_of(name: str, value: object, choices) -> str:
    """``value`` if it is one of ``choices`` (names), else a one-line error listing them."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(choices)}")
    return value  # type: ignore[return-value]


def finite(name: str, x: Tensor) -> Tensor:
    """``x`` if it holds no NaN or inf; else a ValueError (never a silent wrong number)."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = "NaN" if bool(torch.isnan(x).any()) else "inf"
        raise ValueError(f"{name} contains {bad}; expected finite values")
    return x


def sequence(name: str, x: object, features: int | None = None) -> Tensor:
    """Check a (batch, time, features) float tensor with finite values."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, time, features), "
                        f"got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"{name} must be 3-D (batch, time, features), got {x.dim()}-D "
                         f"tensor of shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if features is not None and x.shape[-1] != features:
        raise ValueError(f"{name} must have {features} features in its last dimension, "
                         f"got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have batch >= 1 and time >= 1, got shape {tuple(x.shape)}")
    return finite(name, x)
