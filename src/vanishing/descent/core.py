r"""Gradient descent, one step at a time, with every iterate kept.

Gradient descent with heavy-ball momentum :math:`\beta` (Polyak) on a cost function
:math:`L(w)`, :math:`w \in \mathbb{R}^n` (its value :math:`L(w_k)` is the *loss*):

.. math::

    v_{k+1} = \beta v_k - \eta \nabla L(w_k), \qquad
    w_{k+1} = w_k + v_{k+1}, \qquad v_0 = 0

so :math:`\beta = 0` is plain gradient descent :math:`w_{k+1} = w_k - \eta \nabla L(w_k)`.
:math:`\eta` is ``lr``; ``updates[k]`` is :math:`w_{k+1} - w_k`.

Step-size regimes. Near a minimum :math:`c` a smooth 1-D cost function looks like the quadratic
:math:`L(w) \approx L(c) + \tfrac{a}{2}(w - c)^2` with curvature :math:`a = L''(c)`
(the *second derivative*: for :math:`L = (w-3)^2`, :math:`a = 2`). One step gives

.. math::

    w_{k+1} - c = (1 - \eta a)(w_k - c)

hence, for plain gradient descent,

====================  =======================  ====================================
``lr * a``            regime                   behaviour of :math:`w_k - c`
====================  =======================  ====================================
``< 1``               ``monotone``             shrinks, never changes sign
``== 1``              ``one_step``             zero after one step
``in (1, 2)``         ``oscillating``          shrinks, flips sign every step
``== 2``              ``period_two``           flips sign, never shrinks
``> 2``               ``divergent``            grows, flips sign
``a < 0``             ``not_a_minimum``        grows (a maximum or a saddle)
====================  =======================  ====================================

i.e. monotone iff :math:`\eta < 1/a`, convergent iff :math:`\eta < 2/a`; for
:math:`(w-3)^2` that is :math:`\eta < 1/2` and :math:`\eta < 1`. In n dimensions the
same holds along each eigenvector of the Hessian, and the largest eigenvalue
:math:`\lambda_{\max}` (the sharpest direction) decides: :func:`curvature_at` returns it.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Literal

import numpy as np
import torch

from .expr import Expression, parse_expression

__all__ = [
    "CostFunction",
    "Status",
    "StepRegime",
    "StepVerdict",
    "DescentInterrupted",
    "DescentPath",
    "Trace",
    "classify_step_size",
    "curvature_at",
    "descend",
    "hessian_at",
    "step_size_verdict",
]

Status = Literal["converged", "max_steps", "diverged", "interrupted"]
#: A cost function :math:`L`: one 0-d float64 tensor per coordinate in, a scalar tensor out.
CostFunction = Callable[..., torch.Tensor]


#: A run whose loss grows past this many times its start's magnitude (or 1, if larger)
#: is ``"diverged"``, not left to overflow.
DIVERGENCE_FACTOR = 1e12
#: ``descend``'s ``progress`` callback is called every this many steps.
PROGRESS_EVERY = 1000


@dataclass(frozen=True, eq=False)
class DescentPath:
    """The path gradient descent took: every iterate, loss, gradient and update.

    ``n`` is the number of steps taken.

    Attributes:
        iterates: (n+1, dim) float64, :math:`w_0 \\dots w_n`.
        losses: (n+1,) :math:`L(w_k)`.
        gradients: (n+1, dim) :math:`\\nabla L(w_k)`.
        updates: (n, dim) :math:`w_{k+1} - w_k`.
        status: ``"converged"`` (at rest: gradient norm, and with momentum also the
            last update's norm, at most ``tol``), ``"max_steps"`` (ran all ``steps``),
            ``"diverged"`` (the last iterate, loss or gradient is inf or NaN, or the
            loss has grown past :data:`DIVERGENCE_FACTOR` times its start's magnitude,
            or 1 if that is smaller; that last row is kept), ``"interrupted"`` (Ctrl-C:
            the steps taken until then, carried by :class:`DescentInterrupted`).
        variables: names of the coordinates of ``w``.
        lr, momentum: the settings used.
    """

    iterates: np.ndarray
    losses: np.ndarray
    gradients: np.ndarray
    updates: np.ndarray
    status: Status
    variables: tuple[str, ...]
    lr: float
    momentum: float

    @property
    def steps(self) -> int:
        """Number of steps taken, ``n``."""
        return len(self.updates)

    @property
    def final(self) -> np.ndarray:
        """The last iterate :math:`w_n`, shape (dim,)."""
        return self.iterates[-1]


def descend(
    f: CostFunction | str,
    start: float | Sequence[float],
    *,
    lr: float,
    steps: int,
    momentum: float = 0.0,
    tol: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DescentPath:
    """Run at most ``steps`` steps of gradient descent on ``f`` from ``start``.

    Args:
        f: an expression string (see :mod:`vanishing.descent.expr`) or a callable taking one
            0-d float64 tensor per coordinate, ``f(x, y)``, and returning a scalar tensor
            built with torch ops (gradients come from autograd).
        start: :math:`w_0`, a number or one number per variable.
        lr: step size :math:`\\eta > 0`.
        steps: the most steps to take, ``>= 1``.
        momentum: heavy-ball :math:`\\beta \\in [0, 1)`.
        tol: stop as ``"converged"`` once :math:`\\|\\nabla L(w_k)\\|_2 \\le` ``tol`` (and,
            with momentum, :math:`\\|w_k - w_{k-1}\\|_2 \\le` ``tol``). ``None``: stop only at
            an exact fixed point (zero gradient, zero velocity).
        progress: optional ``progress(step, steps)``, called every
            :data:`PROGRESS_EVERY` steps (for a progress bar on long runs).

    Raises:
        ValueError: bad settings, a start of the wrong dimension or not finite, a loss
            or gradient that is not finite at ``start``, or a rejected expression.
        DescentInterrupted: Ctrl-C (``KeyboardInterrupt``) during the run; its ``path``
            holds the steps taken until then.

    Overflow during the run is not an error: the path ends with status ``"diverged"``,
    and so does a loss grown past ``DIVERGENCE_FACTOR * max(|L(w_0)|, 1)``.
    """
    cost, names = _as_cost_function(f)
    w = _check_start(start, names)
    names = names or _default_names(len(w))
    _check_settings(lr, steps, momentum, tol)
    tol = 0.0 if tol is None else float(tol)
    loss, grad = _value_and_grad(cost, w)
    if not math.isfinite(loss):
        raise ValueError(
            f"descend: the loss is {loss} at the start {_point(w)}; "
            "expected a finite value, pick a start inside the function's domain"
        )
    if not _finite(grad):
        raise ValueError(
            f"descend: the gradient is not finite at the start {_point(w)} "
            f"({_point(grad.numpy())}); expected finite values, pick a start inside the "
            "function's domain, off its edge"
        )
    iterates, losses, gradients, updates = [w], [loss], [grad], []
    try:
        status = _steps(cost, iterates, losses, gradients, updates, lr=lr, steps=steps,
                        momentum=momentum, tol=tol, progress=progress)
    except KeyboardInterrupt:
        path = _path(iterates, losses, gradients, updates, "interrupted", names, lr, momentum)
        raise DescentInterrupted(path) from None
    return _path(iterates, losses, gradients, updates, status, names, lr, momentum)


class DescentInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`descend`; ``path`` holds the steps taken until then (status
    ``"interrupted"``). A ``KeyboardInterrupt``, so code that does not look for it stops
    as on any Ctrl-C."""

    def __init__(self, path: DescentPath) -> None:
        super().__init__(f"descend interrupted after {path.steps} steps")
        self.path = path


def _steps(cost: CostFunction, iterates: list, losses: list, gradients: list, updates: list,
           *, lr: float, steps: int, momentum: float, tol: float,
           progress: Callable[[int, int], None] | None) -> Status:
    """The update rule, appending to the lists in place (so an interrupt keeps them)."""
    w, loss, grad = iterates[-1], losses[-1], gradients[-1]
    velocity = torch.zeros_like(w)
    bound = DIVERGENCE_FACTOR * max(abs(loss), 1.0)
    while True:
        if not (math.isfinite(loss) and _finite(w) and _finite(grad)) or loss > bound:
            return "diverged"
        if _norm(grad) <= tol and (momentum == 0 or _norm(velocity) <= tol):
            return "converged"
        if len(updates) == steps:
            return "max_steps"
        if progress is not None and updates and len(updates) % PROGRESS_EVERY == 0:
            progress(len(updates), steps)
        velocity = momentum * velocity - lr * grad
        w = w + velocity
        loss, grad = _value_and_grad(cost, w)
        iterates.append(w)
        losses.append(loss)
        gradients.append(grad)
        updates.append(velocity)


def _path(iterates: list, losses: list, gradients: list, updates: list, status: Status,
          names: tuple[str, ...], lr: float, momentum: float) -> DescentPath:
    """The lists as a :class:`DescentPath`; rows an interrupt left half appended are cut
    (every iterate has its loss and gradient, every step its update)."""
    n = min(len(iterates), len(losses), len(gradients), len(updates) + 1)
    updates = updates[: n - 1]
    return DescentPath(
        iterates=torch.stack(iterates[:n]).numpy(),
        losses=np.array(losses[:n], dtype=np.float64),
        gradients=torch.stack(gradients[:n]).numpy(),
        updates=torch.stack(updates).numpy() if updates else np.zeros((0, len(names))),
        status=status,
        variables=names,
        lr=float(lr),
        momentum=float(momentum),
    )


class StepRegime(str, Enum):
    """What plain gradient descent does on a quadratic with curvature ``a`` (module doc)."""

    MONOTONE = "monotone"
    ONE_STEP = "one_step"
    OSCILLATING = "oscillating"
    PERIOD_TWO = "period_two"
    DIVERGENT = "divergent"
    NOT_A_MINIMUM = "not_a_minimum"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    StepRegime.MONOTONE: "monotone convergence (lr < 1/a)",
    StepRegime.ONE_STEP: "converges in one step (lr = 1/a)",
    StepRegime.OSCILLATING: "oscillating convergence (1/a < lr < 2/a)",
    StepRegime.PERIOD_TWO: "oscillates forever without converging (lr = 2/a)",
    StepRegime.DIVERGENT: "divergence (lr > 2/a)",
    StepRegime.NOT_A_MINIMUM: "not a minimum (negative curvature): descent moves away",
}


def classify_step_size(lr: float, curvature: float, *, rtol: float = 1e-9) -> StepRegime:
    """Classify ``lr`` against the curvature ``a = L''`` by the product ``lr * a``.

    ``lr * a`` within relative ``rtol`` of 1 or 2 counts as the boundary case.
    ``a == 0`` (flat) is ``MONOTONE``: the step :math:`-\\eta L'` never overshoots.
    """
    if not lr > 0:
        raise ValueError(f"classify_step_size: expected lr > 0, got {lr}")
    if not math.isfinite(curvature):
        raise ValueError(f"classify_step_size: expected a finite curvature, got {curvature}")
    if curvature < 0:
        return StepRegime.NOT_A_MINIMUM
    r = lr * curvature
    if math.isclose(r, 1.0, rel_tol=rtol):
        return StepRegime.ONE_STEP
    if math.isclose(r, 2.0, rel_tol=rtol):
        return StepRegime.PERIOD_TWO
    if r < 1:
        return StepRegime.MONOTONE
    return StepRegime.OSCILLATING if r < 2 else StepRegime.DIVERGENT


def hessian_at(f: CostFunction | str, point: float | Sequence[float]) -> np.ndarray:
    """The Hessian :math:`\\partial^2 L / \\partial w_i \\partial w_j` at ``point``, (dim, dim)."""
    cost, names = _as_cost_function(f)
    x = _check_start(point, names, who="hessian_at: point").requires_grad_(True)
    grad = _grad(_call(cost, x), x, create_graph=True)
    rows = [_grad(g_i, x, retain_graph=True) for g_i in grad]
    return torch.stack(rows).detach().numpy()


def curvature_at(f: CostFunction | str, point: float | Sequence[float]) -> float:
    """The curvature ``a`` at ``point``: :math:`L''(w)` in 1-D, :math:`\\lambda_{\\max}` in n-D."""
    h = hessian_at(f, point)
    if not np.all(np.isfinite(h)):
        return math.nan
    return float(np.linalg.eigvalsh(h)[-1])


@dataclass(frozen=True, eq=False)
class StepVerdict:
    """The regime of ``lr`` given the curvature at iterate ``step`` of a path.

    ``curvature`` is :math:`\\lambda_{\\max}`, the largest of ``eigenvalues`` (of the
    Hessian at ``point``); ``regime`` is ``NOT_A_MINIMUM`` when any eigenvalue is
    negative (a maximum or a saddle).
    """

    regime: StepRegime
    lr: float
    curvature: float
    eigenvalues: np.ndarray
    step: int
    point: np.ndarray


def step_size_verdict(f: CostFunction | str, path: DescentPath) -> StepVerdict | None:
    """Classify ``path.lr`` by the curvature at the last iterate where all is finite.

    "All" is the iterate, its loss and the Hessian. For a run that converged this is
    the minimum found. Returns ``None`` if there is no such iterate. The regimes are
    those of plain descent: with momentum :math:`\\beta` the stability bound on a
    quadratic is :math:`\\eta < 2(1+\\beta)/a` instead.
    """
    for k in range(len(path.iterates) - 1, -1, -1):
        point = path.iterates[k]
        if not (np.isfinite(path.losses[k]) and np.all(np.isfinite(point))):
            continue
        h = hessian_at(f, point)
        if np.all(np.isfinite(h)):
            eig = np.linalg.eigvalsh(h)
            a = float(eig[-1])
            regime = StepRegime.NOT_A_MINIMUM if eig[0] < 0 else classify_step_size(path.lr, a)
            return StepVerdict(regime, path.lr, a, eig, k, point)
    return None


def _as_cost_function(f: CostFunction | str) -> tuple[CostFunction, tuple[str, ...] | None]:
    """The callable and its variable names (``None``: unknown, e.g. ``*args``)."""
    if isinstance(f, str):
        f = parse_expression(f)
    if isinstance(f, Expression):
        return f, f.variables
    if not callable(f):
        raise TypeError(f"descend: expected a callable or an expression string, got {f!r}")
    try:
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):
        return f, None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return f, None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return f, tuple(p.name for p in params if p.kind in positional and p.default is p.empty)


def _check_start(
    start: float | Sequence[float], names: tuple[str, ...] | None, who: str = "descend: start"
) -> torch.Tensor:
    w = np.atleast_1d(np.asarray(start, dtype=np.float64))
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"{who}: expected a number or a non-empty list, got shape {w.shape}")
    if names is not None and len(w) != len(names):
        raise ValueError(
            f"{who}: expected {len(names)} coordinate(s), one per variable "
            f"({', '.join(names)}), got {len(w)}: {_point(w)}"
        )
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{who}: expected finite numbers, got {_point(w)}")
    return torch.from_numpy(w.copy())


def _check_settings(lr: float, steps: int, momentum: float, tol: float | None) -> None:
    if not (isinstance(lr, numbers.Real) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"descend: expected lr > 0 (finite), got {lr!r}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"descend: expected steps to be an integer >= 1, got {steps!r}")
    if not (isinstance(momentum, numbers.Real) and 0 <= momentum < 1):
        raise ValueError(f"descend: expected 0 <= momentum < 1, got {momentum!r}")
    if tol is not None and not (isinstance(tol, numbers.Real) and 0 <= tol < math.inf):
        raise ValueError(f"descend: expected tol >= 0 (finite) or None, got {tol!r}")


def _value_and_grad(cost: CostFunction, w: torch.Tensor) -> tuple[float, torch.Tensor]:
    """:math:`L(w)` and :math:`\\nabla L(w)` by autograd."""
    x = w.detach().clone().requires_grad_(True)
    loss = _call(cost, x)
    return float(loss.detach()), _grad(loss, x).detach()


def _call(cost: CostFunction, x: torch.Tensor) -> torch.Tensor:
    """``cost`` gets one 0-d tensor per coordinate and must return a scalar tensor."""
    loss = cost(*x.unbind())
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"descend: expected f to return a scalar tensor, got {got}")
    return loss.reshape(())


def _grad(y: torch.Tensor, x: torch.Tensor, **kwargs: bool) -> torch.Tensor:
    """dy/dx, zero where y does not depend on x (autograd would return None or raise)."""
    if not y.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(y, x, allow_unused=True, **kwargs)
    return torch.zeros_like(x) if g is None else g


def _default_names(dim: int) -> tuple[str, ...]:
    return ("w",) if dim == 1 else tuple(f"w{i + 1}" for i in range(dim))


def _point(w: np.ndarray | torch.Tensor) -> str:
    """``(1, -2)``: round brackets, so rich markup in the CLI cannot swallow it."""
    return "(" + ", ".join(f"{float(x):g}" for x in w) + ")"


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def _norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t))


#: The older name of :class:`DescentPath`, kept so code written against it keeps working.
Trace = DescentPath
