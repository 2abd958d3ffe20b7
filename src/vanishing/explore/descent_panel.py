r"""The "descent" panel: gradient descent on a formula of one variable, as ``vanishing
descend`` runs it.

:func:`descent` parses the formula with the library's safe parser
(:func:`vanishing.descent.expr.parse_expression`), runs
:func:`vanishing.descent.descend` from the start with the learning rate and momentum, and
names the regime :func:`vanishing.descent.step_size_verdict` finds (monotone,
oscillating, divergent, ...: ``lr`` against the curvature :math:`a = L''` where the run
ended). The page draws the result: the curve :math:`L(w)` sampled on a window around the
path, and every iterate :math:`w_k` with its slope :math:`L'(w_k)`.

Shapes: ``iterates``, ``losses``, ``slopes`` have n + 1 entries (n = steps taken);
``curve`` has :data:`CURVE_POINTS` points.
"""

from __future__ import annotations

import numpy as np
import torch

from ..descent import descend, parse_expression, step_size_verdict
from ..descent.expr import MAX_LENGTH
from .params import Body, integer, json_number, known, number, text

__all__ = ["DEFAULTS", "LIMITS", "CURVE_POINTS", "descent", "window"]

#: What the page starts with: ``vanishing descend "(w-3)**2" --start -4 --lr 0.1``.
DEFAULTS = {"formula": "(w-3)**2", "start": -4.0, "lr": 0.1, "momentum": 0.0, "steps": 30}
#: Bounds of the request's fields (the formula: the parser's own limit).
LIMITS = {"formula": MAX_LENGTH, "start": 1e6, "lr": 100.0, "steps": 500}
#: Points of the drawn curve.
CURVE_POINTS = 241
#: The window never grows past this many times the start's distance to the path's median
#: (a diverging path would otherwise flatten the curve to a line).
_SPAN_CAP = 50.0


def descent(body: Body) -> dict:
    """The path, its regime and the curve for the request ``body`` (see :data:`DEFAULTS`
    for its fields); ValueError / TypeError for a bad field or formula."""
    known(body, DEFAULTS)
    formula = text(body, "formula", LIMITS["formula"], DEFAULTS["formula"])
    start = number(body, "start", -LIMITS["start"], LIMITS["start"], DEFAULTS["start"])
    lr = number(body, "lr", 0.0, LIMITS["lr"], DEFAULTS["lr"], open_lo=True)
    momentum = number(body, "momentum", 0.0, 1.0, DEFAULTS["momentum"], open_hi=True)
    steps = integer(body, "steps", 1, LIMITS["steps"], DEFAULTS["steps"])
    f = parse_expression(formula)
    if len(f.variables) != 1:
        raise ValueError(f"the descent panel draws formulas of one variable, got "
                         f"{len(f.variables)} ({', '.join(f.variables) or 'none'}) in "
                         f"{formula!r}")
    path = descend(f, start, lr=lr, steps=steps, momentum=momentum)
    verdict = step_size_verdict(f, path)
    iterates = path.iterates[:, 0]
    lo, hi = window(iterates)
    grid = np.linspace(lo, hi, CURVE_POINTS)
    with torch.no_grad():
        values = f(torch.from_numpy(grid)).expand(CURVE_POINTS).numpy()
    return {
        "formula": f.text, "variable": f.variables[0], "start": start, "lr": lr,
        "momentum": momentum, "steps": steps, "status": path.status,
        "iterates": _floats(iterates), "losses": _floats(path.losses),
        "slopes": _floats(path.gradients[:, 0]),
        "regime": None if verdict is None else verdict.regime.value,
        "regime_text": None if verdict is None else verdict.regime.description,
        "curvature": None if verdict is None else json_number(verdict.curvature),
        "lr_times_a": None if verdict is None else json_number(lr * verdict.curvature),
        "verdict_step": None if verdict is None else verdict.step,
        "curve": {"w": _floats(grid), "loss": _floats(values)},
        "command": _command(formula, start, lr, momentum, steps),
    }


def window(iterates: np.ndarray) -> tuple[float, float]:
    """The w-range drawn: the finite iterates with a margin, at least 2 wide, at most
    :data:`_SPAN_CAP` times the start's distance from the path's median (plus 1)."""
    finite = iterates[np.isfinite(iterates)]
    centre = float(np.median(finite))
    cap = _SPAN_CAP * (abs(float(finite[0]) - centre) + 1.0)
    kept = np.clip(finite, centre - cap, centre + cap)
    lo, hi = float(kept.min()), float(kept.max())
    pad = max(0.15 * (hi - lo), 1.0)
    return lo - pad, hi + pad


def _command(formula: str, start: float, lr: float, momentum: float, steps: int) -> str:
    """The ``vanishing descend`` line that prints the same numbers."""
    quoted = "'" + formula.replace("'", "'\\''") + "'"
    extra = f" --momentum {momentum!r}" if momentum else ""
    return f"vanishing descend {quoted} --start {start!r} --lr {lr!r}{extra} --steps {steps}"


def _floats(values: np.ndarray) -> list[float | None]:
    return [json_number(v) for v in np.asarray(values, dtype=np.float64).ravel()]
