"""The text of a sweep's report: per task, a table of seeds solved and a table of gradient
horizons, model x length, plus notes and the failed trials, as plain strings (no
matplotlib). Built from the store's rows alone, so a report is redrawn without rerunning
a trial; ``vanishing sweep`` prints it and draws the figures of the same points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..sweep.summary import SweepPoint, best_points, lr_text, summarize, table_rows, varying_fields
from ..tasks import get_task, task_names
from .tables import TextTable

__all__ = ["SweepText", "sweep_text", "budget", "criterion", "trial_line", "failure_lines"]

HORIZON_CAPTION = ("median largest lag k with ||dL/dh_(T-k)|| > 1e-3 ||dL/dh_T|| (float64 "
                   "probe, held-out batch), of T - 1")


@dataclass
class SweepText:
    """A sweep's report as text.

    Attributes:
        tables: per task (sorted), the success table then the horizon table.
        notes: remarks on the store as a whole (trials that differ in more than model,
            length and lr).
        failures: one line per failed trial (the first few), then how many more.
        points: the best point per (task, model, length): what the tables and figures show.
    """

    tables: list[TextTable]
    notes: list[str]
    failures: list[str]
    points: list[SweepPoint]


def sweep_text(records: Sequence[dict], *, max_failures: int = 5) -> SweepText:
    """The report of the store rows ``records`` (see :mod:`vanishing.sweep.store`)."""
    points = summarize(records)
    best = best_points(points)
    tables = []
    for task in sorted({p.task for p in best}):
        mine = [p for p in best if p.task == task]
        lr_note = (" @lr: the best of the learning rates tried (most seeds solved, then "
                   "fewest steps)." if any(len(p.lrs_tried) > 1 for p in mine) else "")
        tables.append(TextTable(f"{task}: seeds solved{criterion(task)}",
                                *table_rows(mine, "success"),
                                caption=f"solved / seeds (median steps to solve).{lr_note} "
                                        f"Budget: {budget(mine)}."))
        tables.append(TextTable(f"{task}: gradient horizon of the trained models",
                                *table_rows(mine, "horizon"), caption=HORIZON_CAPTION))
    mixed = varying_fields(points)
    notes = [f"note: this store mixes trials that differ in {', '.join(mixed)}; each table "
             f"cell shows the best of them"] if mixed else []
    return SweepText(tables, notes, failure_lines(records, max_failures), best)


def budget(points: Sequence[SweepPoint]) -> str:
    """The training budget of the first point's setting, in words (``?`` for a field the
    store does not hold)."""
    s = points[0].setting
    clip = "no clipping" if s.get("clip") is None else f"clip {s['clip']:g}"
    heldout = ("the test split" if str(s.get("task", "")).startswith("digits")
               else f"{s.get('eval_size', '?')} held-out sequences")
    return (f"up to {s.get('steps', '?')} steps, hidden {s.get('hidden_size', '?')}, batch "
            f"{s.get('batch_size', '?')}, {s.get('optimizer', '?')}, {clip}, evaluated every "
            f"{s.get('eval_every', '?')} steps on {heldout}")


def criterion(task: str) -> str:
    """`` (mse < 0.01)``: the task's success criterion, or '' for a task this code does
    not know (a store written by another version): the report needs the store alone."""
    if task not in task_names():
        return ""
    text = getattr(get_task(task), "criterion", "") or "the task's criterion"
    return f" ({text})"


def trial_line(done: int, total: int, record: dict) -> str:
    """``[3/16] lstm T=50 lr 3e-3 seed 1: solved at step 400, loss 0.002, horizon 49
    (2.1 s)``: one finished trial, as a sweep reports it."""
    c = record["config"]
    head = f"[{done}/{total}] {c['model']} T={c['length']} lr {lr_text(c['lr'])} seed {c['seed']}"
    if record["status"] == "failed":
        return f"{head}: failed: {record['message']}"
    if record["status"] == "diverged":
        what = "diverged"
    elif record["solved"]:
        what = f"solved at step {record['steps_to_solve']}"
    else:
        what = f"unsolved after {record['steps']} steps"
    loss = (record.get("final") or {}).get("loss", float("nan"))
    horizon = "" if record.get("horizon") is None else f", horizon {record['horizon']}"
    return f"{head}: {what}, loss {loss:.3g}{horizon} ({record['wall_time']:.1f} s)"


def failure_lines(records: Sequence[dict], limit: int = 5) -> list[str]:
    """``failed: <trial>: <message>`` for the first ``limit`` failed trials, then
    ``... and n more failed trials``."""
    failed = [r for r in records if r["status"] == "failed"]
    lines = []
    for r in failed[:limit]:
        c = r["config"]
        lines.append(f"failed: {c['model']} T={c['length']} lr {lr_text(c['lr'])} "
                     f"seed {c['seed']}: {r['message']}")
    if len(failed) > limit:
        lines.append(f"... and {len(failed) - limit} more failed trials")
    return lines
