"""Summaries of a sweep's store rows: points of the grid (one setting over seeds), best lr, tables.

:func:`summarize` groups the rows of :mod:`vanishing.sweep.store` by their config without the
seed into :class:`SweepPoint` s; :func:`best_points` keeps the best learning rate of each
(task, model, length); :func:`table_rows` turns them into the model x length tables that
``vanishing sweep`` prints and ``docs/results.md`` shows. Everything here reads the
store's rows alone, so a report can be redrawn without rerunning a trial.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from .. import _checks
from ..models import MODELS

__all__ = ["SweepPoint", "Cell", "summarize", "best_points", "best_cells", "varying_fields",
           "lr_text", "table_rows"]


@dataclass
class SweepPoint:
    """The trials of one setting (task, model, length, lr and every other field) over seeds.

    Attributes:
        setting: the config without its seed (a dict).
        measured: trials that ran to the end or diverged.  solved: of those, solved.
        diverged, failed: counts (failed trials are not counted as measured).
        steps_to_solve: of the solved trials.  horizons: gradient horizons measured.
        losses: final held-out losses.  probe_length: time steps the probe read.
        lrs_tried: set by :func:`best_points`: the lrs this point was chosen from.
    """

    task: str
    model: str
    length: int
    lr: float
    setting: dict
    measured: int = 0
    solved: int = 0
    diverged: int = 0
    failed: int = 0
    steps_to_solve: list[int] = field(default_factory=list)
    horizons: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    probe_length: int | None = None
    lrs_tried: tuple[float, ...] = ()

    @property
    def fraction(self) -> float:
        """Seeds solved / seeds measured (NaN if none was)."""
        return self.solved / self.measured if self.measured else float("nan")

    @property
    def median_steps(self) -> float | None:
        return statistics.median(self.steps_to_solve) if self.steps_to_solve else None

    @property
    def median_horizon(self) -> float | None:
        return statistics.median(self.horizons) if self.horizons else None

    @property
    def median_loss(self) -> float | None:
        ok = [v for v in self.losses if math.isfinite(v)]
        return statistics.median(ok) if ok else None


def summarize(records: Sequence[dict]) -> list[SweepPoint]:
    """Group store rows by their config without the seed; points in model, length, lr order."""
    points: dict[str, SweepPoint] = {}
    for r in records:
        setting = {k: v for k, v in r["config"].items() if k != "seed"}
        key = json.dumps(setting, sort_keys=True)
        point = points.get(key)
        if point is None:
            point = points[key] = SweepPoint(r["task"], r["model"], r["length"], r["lr"], setting)
        if r["status"] == "failed":
            point.failed += 1
            continue
        point.measured += 1
        point.diverged += r["status"] == "diverged"
        if r["solved"]:
            point.solved += 1
            point.steps_to_solve.append(r["steps_to_solve"])
        if r["horizon"] is not None:
            point.horizons.append(r["horizon"])
            point.probe_length = r["probe_length"]
        loss = (r["final"] or {}).get("loss")
        if loss is not None:
            point.losses.append(loss)
    return sorted(points.values(), key=_order)


def _order(p: SweepPoint) -> tuple:
    rank = list(MODELS).index(p.model) if p.model in MODELS else len(MODELS)
    return (p.task, rank, p.model, p.length, p.lr)


def best_points(points: Sequence[SweepPoint]) -> list[SweepPoint]:
    """The best setting per (task, model, length): most seeds solved, then fewest median
    steps to solve, then lowest median final loss. Each carries the ``lrs_tried``."""
    groups: dict[tuple, list[SweepPoint]] = {}
    for p in points:
        groups.setdefault((p.task, p.model, p.length), []).append(p)
    inf = float("inf")
    best = []
    for group in groups.values():
        measured = [p for p in group if p.measured] or group
        top = min(measured, key=lambda p: (-(p.fraction if p.measured else -1.0),
                                           p.median_steps or inf, p.median_loss or inf))
        best.append(replace(top, lrs_tried=tuple(sorted({p.lr for p in group}))))
    return sorted(best, key=_order)


def varying_fields(points: Sequence[SweepPoint]) -> list[str]:
    """Config fields other than model, length and lr whose values differ between points
    of the same task (a store that mixes, say, two step budgets)."""
    out = set()
    for task in {p.task for p in points}:
        settings = [p.setting for p in points if p.task == task]
        for name in settings[0]:
            if name in ("model", "length", "lr"):
                continue
            if len({json.dumps(s.get(name), sort_keys=True) for s in settings}) > 1:
                out.add(name)
    return sorted(out)


def lr_text(lr: float) -> str:
    """3e-3 rather than 0.003 or 3.00e-03."""
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def table_rows(points: Sequence[SweepPoint], what: str = "success",
               chance: Callable[[SweepPoint], float | None] | None = None
               ) -> tuple[list[str], list[list[str]]]:
    """A model x length table of best points (one task) as text: (header, rows).

    ``what="success"``: ``solved/measured (median steps to solve)``, plus ``@lr`` when
    several lrs were tried, ``+n failed`` when trials failed. ``what="horizon"``: the
    median gradient horizon of the trained models, in steps back (of ``T - 1``).
    ``what="loss"``: the median final held-out loss divided by ``chance(point)``, the
    task's chance loss at that point's length and options (1: no better than an
    input-blind guess; without ``chance``, or when it gives None, the loss itself), plus
    ``n diverged`` when trials diverged (their loss is left out of the median).
    """
    _checks.one_of("what", what, ("success", "horizon", "loss"))
    lengths = sorted({p.length for p in points})
    models = list(dict.fromkeys(p.model for p in points))
    by = {(p.model, p.length): p for p in points}
    header = ["model"] + [f"T = {length}" for length in lengths]
    rows = []
    for m in models:
        row = [m]
        for length in lengths:
            p = by.get((m, length))
            row.append("-" if p is None else _success_text(p) if what == "success"
                       else _horizon_text(p) if what == "horizon" else _loss_text(p, chance))
        rows.append(row)
    return header, rows


def _success_text(p: SweepPoint) -> str:
    text = f"{p.solved}/{p.measured}"
    if p.median_steps is not None:
        text += f" ({p.median_steps:.0f})"
    if len(p.lrs_tried) > 1:
        text += f" @{lr_text(p.lr)}"
    if p.failed:
        text += f" +{p.failed} failed"
    return text


def _loss_text(p: SweepPoint, chance: Callable[[SweepPoint], float | None] | None) -> str:
    loss, base = p.median_loss, None if chance is None else chance(p)
    text = "-" if loss is None else f"{loss:.3g}" if base is None else f"{loss / base:.2f}"
    return text if not p.diverged else f"{text} ({p.diverged} diverged)"


def _horizon_text(p: SweepPoint) -> str:
    if p.median_horizon is None:
        return "-"
    return f"{p.median_horizon:.0f} of {p.probe_length - 1}"


#: Older names, kept so code written against them keeps working.
Cell = SweepPoint
best_cells = best_points
