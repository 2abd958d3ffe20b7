"""The checks every request parameter of the explore server goes through.

A request body is a JSON object; each panel reads its fields with these functions, which
return the value or raise a one-line ``ValueError`` (``TypeError`` for a wrong type) that
the server sends back as ``{"error": "..."}`` with status 400. Every number is bounded:
the bounds are what keeps one request's work within the server's time cap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["Body", "known", "integer", "number", "optional_number", "text", "choice", "flag",
           "json_number"]

#: A decoded request body.
Body = dict[str, object]
_MISSING = object()


def _get(body: Body, name: str, default: object) -> object:
    value = body.get(name, default)
    if value is _MISSING:
        raise ValueError(f"{name} is required")
    return value


def known(body: Body, fields) -> Body:
    """``body`` if it holds no field outside ``fields`` (a misspelt field is an error, not
    a silent default)."""
    unknown = [k for k in body if k not in fields]
    if unknown:
        shown = ", ".join(repr(k if len(k) <= 40 else k[:40] + "...") for k in unknown[:5])
        raise ValueError(f"unknown field(s) {shown}; expected {', '.join(fields)}")
    return body


def integer(body: Body, name: str, lo: int, hi: int, default: object = _MISSING) -> int:
    """``body[name]`` as an int in ``[lo, hi]`` (JSON has no ints apart from floats: 3.0
    is refused, as is ``true``)."""
    value = _get(body, name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {_kind(value)}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo:,} and {hi:,}, got {value:,}")
    return value


def number(body: Body, name: str, lo: float, hi: float, default: object = _MISSING, *,
           open_hi: bool = False, open_lo: bool = False) -> float:
    """``body[name]`` as a finite float in ``[lo, hi]`` (``open_lo`` / ``open_hi``: that
    end excluded)."""
    value = _get(body, name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {_kind(value)}")
    value = float(value)
    below = value <= lo if open_lo else value < lo
    above = value >= hi if open_hi else value > hi
    if not math.isfinite(value) or below or above:
        left, right = "(" if open_lo else "[", ")" if open_hi else "]"
        raise ValueError(f"{name} must be in {left}{lo:g}, {hi:g}{right}, got {value:g}")
    return value


def optional_number(body: Body, name: str, lo: float, hi: float, **options) -> float | None:
    """:func:`number`, or None when the field is absent or null (the model's preset)."""
    if body.get(name) is None:
        return None
    return number(body, name, lo, hi, **options)


def text(body: Body, name: str, most: int, default: object = _MISSING) -> str:
    """``body[name]`` as a string of 1 to ``most`` characters, not blank."""
    value = _get(body, name, default)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {_kind(value)}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    if len(value) > most:
        raise ValueError(f"{name} must be at most {most:,} characters, got {len(value):,}")
    return value


def choice(body: Body, name: str, choices: Sequence[str], default: object = _MISSING) -> str:
    """``body[name]``, one of ``choices``."""
    value = _get(body, name, default)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {_kind(value)}")
    if value not in choices:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise ValueError(f"unknown {name} {shown!r}; expected one of {', '.join(choices)}")
    return value


def flag(body: Body, name: str, default: bool = False) -> bool:
    """``body[name]`` as true or false."""
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be true or false, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def json_number(x: float) -> float | None:
    """A number as JSON carries it: None for inf and NaN (JSON has neither)."""
    x = float(x)
    return x if math.isfinite(x) else None
