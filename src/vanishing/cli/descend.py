"""``vanishing descend``: gradient descent on a formula, step by step, as a table."""

import math
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from vanishing.cli._common import (
    console,
    err_console,
    handle_errors,
    interrupted,
    show_progress,
)
from vanishing.descent import (
    DescentInterrupted,
    DescentPath,
    StepRegime,
    StepVerdict,
    step_size_verdict,
)
from vanishing.descent import descend as run_descent
from vanishing.descent.core import DIVERGENCE_FACTOR, PROGRESS_EVERY
from vanishing.descent.expr import Expression, parse_expression

__all__ = ["descend"]


ExpressionArg = Annotated[str, typer.Argument(
    help="The cost function L as a formula, e.g. '(w-3)**2' or '(1-x)**2 + 100*(y-x**2)**2'. "
    "Allowed: numbers, variables, + - * / **, exp log sin cos tanh sqrt abs. "
    "Wrap a formula that starts with '-' in parentheses: '(-w**2)'.")]
StartOption = Annotated[list[str], typer.Option(
    help="Starting point: one number per variable, comma-separated or repeated "
    "(--start 1,-2 or --start 1 --start -2).")]
LrOption = Annotated[float, typer.Option(help="Step size (learning rate), > 0.")]
StepsOption = Annotated[int, typer.Option(help="Most steps to take, 1 to 10^7.")]
MomentumOption = Annotated[float, typer.Option(
    help="Heavy-ball momentum in [0, 1); 0 is plain descent.")]
TolOption = Annotated[float | None, typer.Option(
    help="Stop once the gradient norm is <= tol (default: only at zero).")]
VarsOption = Annotated[str | None, typer.Option(
    "--vars", help="Variable order, e.g. 'y,x' (default: alphabetical).")]
PlotOption = Annotated[Path | None, typer.Option(
    help="Save a picture of the path (1-D curve or 2-D contours) here: a .png, .pdf or .svg "
    "file.")]
RowsOption = Annotated[int, typer.Option(
    help="Most table rows to show; the middle is elided (0: all).")]

#: Formats ``--plot`` writes (matplotlib picks the format from the extension).
PLOT_FORMATS = (".png", ".pdf", ".svg")


@handle_errors
def descend(
    expression: ExpressionArg,
    start: StartOption,
    lr: LrOption = 0.1,
    steps: StepsOption = 30,
    momentum: MomentumOption = 0.0,
    tol: TolOption = None,
    variables: VarsOption = None,
    plot: PlotOption = None,
    rows: RowsOption = 40,
) -> None:
    """Run gradient descent on a formula and print every step and a verdict.

    The table lists step k, the iterate w_k, the loss L(w_k), the gradient and the
    update w_{k+1} - w_k (with several variables, the norms of those two). The
    verdict gives the status (converged, max_steps or diverged) and classifies lr
    against the curvature a = L'' at the point reached: monotone (lr < 1/a),
    oscillating (1/a < lr < 2/a) or divergent (lr > 2/a).
    Variables are ordered alphabetically unless --vars says otherwise.
    """
    names = None if variables is None else [v.strip() for v in variables.split(",")]
    f = parse_expression(expression, variables=names)
    w0 = _parse_start(start)
    if plot is not None:
        _check_plot(plot, f)
    if rows < 0:
        raise ValueError(f"--rows must be >= 0 (0: all), got {rows}")
    try:
        path = _run(f, w0, lr, steps, momentum, tol)
    except DescentInterrupted as stop:  # the path so far, then one line on stderr
        path = stop.path
    console.print(_table(f, path, rows))
    for line in _summary(path, tol) + _regime_lines(step_size_verdict(f, path), path):
        console.print(escape(line), soft_wrap=True)
    if path.status == "interrupted":
        raise interrupted(f"the {path.steps} steps taken are shown above"
                          f"{'; no plot was saved' if plot is not None else ''}")
    if plot is not None:
        from vanishing.descent.plot import plot_descent  # matplotlib only when asked

        plot_descent(f, path, plot)
        if not plot.is_file():  # say only what was written
            raise ValueError(f"--plot: the figure was not written to {str(plot)!r}")
        console.print(f"plot: saved to {escape(str(plot))}")


def _run(f: Expression, w0: list[float], lr: float, steps: int, momentum: float,
         tol: float | None) -> DescentPath:
    """The descent, with a progress bar on a terminal when it is long (Ctrl-C stops it:
    :class:`~vanishing.descent.DescentInterrupted` carries the path so far)."""
    if steps < 10 * PROGRESS_EVERY or not show_progress(False):
        return run_descent(f, w0, lr=lr, steps=steps, momentum=momentum, tol=tol)
    from rich.progress import Progress

    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("descending", total=steps)
        return run_descent(f, w0, lr=lr, steps=steps, momentum=momentum, tol=tol,
                           progress=lambda done, total: bar.update(task, completed=done))


def _check_plot(plot: Path, f: Expression) -> None:
    """A file path matplotlib writes as named, in a folder that exists (before any work)."""
    if not str(plot).strip() or plot.is_dir():
        raise ValueError(f"--plot needs a file name ending in .png, .pdf or .svg, got "
                         f"{str(plot)!r}{' (a folder)' if plot.is_dir() else ''}")
    if plot.suffix.lower() not in PLOT_FORMATS:
        raise ValueError(f"--plot must end in .png, .pdf or .svg, got {str(plot)!r}")
    if not plot.parent.is_dir():
        raise ValueError(f"--plot: directory {str(plot.parent)!r} does not exist")
    if len(f.variables) > 2:
        raise ValueError(f"--plot draws functions of 1 or 2 variables, got "
                         f"{len(f.variables)} ({', '.join(f.variables)})")


def _parse_start(items: list[str]) -> list[float]:
    values = []
    for part in ",".join(items).split(","):
        try:
            values.append(float(part))
        except ValueError:
            raise ValueError(
                f"--start: expected numbers such as -4 or 1,-2, got {part!r}"
            ) from None
    return values


def _table(f: Expression, path: DescentPath, rows: int) -> Table:
    """1-D: step, w, L, dL/dw, update. n-D: step, coordinates, L, |grad|, |update|."""
    names = path.variables
    one_d = len(names) == 1
    table = Table(
        title=escape(f"L({', '.join(names)}) = {f.text}"), box=box.SIMPLE_HEAD, pad_edge=False
    )
    headers = ["step", *names, f"L({', '.join(names)})"]
    headers += [f"dL/d{names[0]}", "update"] if one_d else ["|grad|", "|update|"]
    for header in headers:
        table.add_column(header, justify="right", overflow="fold")
    n = len(path.iterates)
    if rows <= 0 or n <= rows:
        shown = list(range(n))
    else:
        shown = [*range(rows // 2), *range(n - (rows - rows // 2), n)]
    for i, k in enumerate(shown):
        if i and k != shown[i - 1] + 1:
            table.add_row(*["..."] * len(headers))
        grad, update = path.gradients[k], path.updates[k] if k < path.steps else None
        if one_d:
            tail = [_num(grad[0]), "" if update is None else _num(update[0])]
        else:
            tail = [_num(_norm(grad)), "" if update is None else _num(_norm(update))]
        table.add_row(str(k), *map(_num, path.iterates[k]), _num(path.losses[k]), *tail)
    return table


def _summary(path: DescentPath, tol: float | None) -> list[str]:
    """Why the run stopped, and where: the last iterate, its loss and its gradient norm."""
    n = path.steps
    if path.status == "converged":
        why = f"|grad| <= {tol:g}" if tol is not None else "gradient exactly zero"
        stopped = f"converged after {n} step{'s' * (n != 1)} ({why})"
    elif path.status == "diverged":
        last = np.concatenate([path.final, path.losses[-1:], path.gradients[-1]])
        stopped = (f"diverged at step {n} (an iterate, the loss or the gradient is inf or NaN)"
                   if not np.isfinite(last).all() else
                   f"diverged at step {n} (the loss grew past {DIVERGENCE_FACTOR:g} times "
                   "its start's)")
    elif path.status == "interrupted":
        stopped = f"interrupted (Ctrl-C) after {n} step{'s' * (n != 1)}"
    else:
        stopped = f"max_steps, ran all {n} steps"
    grad_name = f"|dL/d{path.variables[0]}|" if len(path.variables) == 1 else "|grad|"
    final = ", ".join(f"{v} = {_num(x)}" for v, x in zip(path.variables, path.final, strict=True))
    grad_norm = _num(_norm(path.gradients[-1]))
    reached = f"{final}, L = {_num(path.losses[-1])}, {grad_name} = {grad_norm}"
    return [f"status: {stopped}", f"reached: {reached}"]


def _regime_lines(verdict: StepVerdict | None, path: DescentPath) -> list[str]:
    """The curvature where the run ended and what it says about lr."""
    if verdict is None:
        return ["curvature: not finite anywhere along the path; no regime"]
    a, lr = verdict.curvature, path.lr
    where = "there" if verdict.step == path.steps else f"at step {verdict.step}"
    if len(path.variables) == 1:
        curvature_line = f"curvature {where}: a = L'' = {_num(a)}"
    else:
        curvature_line = f"curvature {where}: a = max eig(Hessian) = {_num(a)}"
        if verdict.eigenvalues[0] < 0:
            curvature_line += f", min eig = {_num(verdict.eigenvalues[0])}"
    if a > 0 and verdict.regime is not StepRegime.NOT_A_MINIMUM:
        curvature_line += f"; 1/a = {_num(1 / a)}, 2/a = {_num(2 / a)}"
    lines = [
        curvature_line,
        f"regime: lr = {lr:g}, lr*a = {_num(lr * a)}: {verdict.regime.description}",
    ]
    if path.momentum and a > 0:
        beta = path.momentum
        lines += [
            "note: the regime is for plain descent; on a quadratic, heavy-ball momentum "
            f"{beta:g} converges iff lr < 2(1+{beta:g})/a = {_num(2 * (1 + beta) / a)}"
        ]
    return lines


def _norm(v: np.ndarray) -> float:
    return math.hypot(*v)  # no overflow warning on huge entries, unlike np.linalg.norm


def _num(x: float) -> str:
    return f"{x:.6g}"
