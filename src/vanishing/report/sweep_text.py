"""The text of a sweep's report: per task, a table of seeds solved, a table of gradient
horizons and a table of final losses against chance, model x length, plus notes and the
failed trials, as plain strings (no matplotlib). Built from the store's rows alone, so a
report is redrawn without rerunning a trial; ``vanishing sweep`` prints it and draws the
figures of the same points.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..sweep.summary import SweepPoint, best_points, lr_text, summarize, table_rows, varying_fields
from ..tasks import get_task, task_names
from .tables import TextTable

__all__ = ["SweepText", "sweep_text", "budget", "criterion", "trial_line", "failure_lines",
           "figure_sentences", "seeds_text", "configuration"]

HORIZON_CAPTION = ("median largest lag k with ||dL/dh_(T-k)|| > 1e-3 ||dL/dh_T|| (float64 "
                   "probe, held-out batch), of T - 1")


LOSS_CAPTION = ("median final held-out loss / the task's chance loss at that T (the loss "
                "of the best input-blind predictor): 1 is no better than a guess, 0 is "
                "perfect; it shows progress a budget too small to solve still made")


def _chance(point: SweepPoint) -> float | None:
    """The chance loss of the point's task at its length and task options, or None for
    a task (or options) this version does not know."""
    if point.task not in task_names():
        return None
    try:
        return get_task(point.task, **(point.setting.get("task_options") or {})).chance_loss(
            point.length)
    except (TypeError, ValueError):
        return None


@dataclass
class SweepText:
    """A sweep's report as text.

    Attributes:
        tables: per task (sorted), the success table, the horizon table, then the
            final-loss table.
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
        known = all(_chance(p) is not None for p in mine)
        tables.append(TextTable(f"{task}: final held-out loss" +
                                (", as a fraction of chance" if known else ""),
                                *table_rows(mine, "loss", _chance if known else None),
                                caption=LOSS_CAPTION if known else "median final loss"))
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


def _lengths(values: Sequence[int]) -> str:
    return ", ".join(f"T = {v}" for v in values)


def success_sentence(points: Sequence[SweepPoint]) -> str:
    """What to see in the success figure of one task: per model, the lengths it solved on
    every seed and those it solved on none."""
    parts = []
    for model in dict.fromkeys(p.model for p in points):
        mine = sorted((p for p in points if p.model == model and p.measured),
                      key=lambda p: p.length)
        every = [p.length for p in mine if p.solved == p.measured]
        none = [p.length for p in mine if p.solved == 0]
        if len(every) == len(mine):
            parts.append(f"{model} solves every seed at every length")
        elif len(none) == len(mine):
            parts.append(f"{model} solves no seed at any length")
        else:
            said = [f"every seed at {_lengths(every)}" if every else "",
                    f"none at {_lengths(none)}" if none else ""]
            rest = len(mine) - len(every) - len(none)
            said.append(f"some at the other {rest}" if rest else "")
            parts.append(f"{model} solves " + ", ".join(x for x in said if x))
    return "Seeds solved against length: " + "; ".join(parts) + "."


def horizon_sentence(points: Sequence[SweepPoint]) -> str:
    """What to see in the horizon figure of one task: per model, how far back the trained
    model's gradient reaches at its longest length, against T - 1."""
    parts = []
    for model in dict.fromkeys(p.model for p in points):
        mine = [p for p in points if p.model == model and p.median_horizon is not None]
        if not mine:
            parts.append(f"{model}: not measured")
            continue
        p = max(mine, key=lambda p: p.length)
        reach = p.probe_length - 1 if p.probe_length else p.length - 1
        parts.append(f"{model} {p.median_horizon:g} of {reach} steps at T = {p.length}")
    return ("How far back the trained models' gradient reaches (median horizon at the "
            "longest length): " + "; ".join(parts) + ".")


def figure_sentences(points: Sequence[SweepPoint]) -> dict[str, str]:
    """One sentence per figure of :func:`vanishing.report.sweep_figures.sweep_plots`, by
    the same file stems."""
    said = {}
    for task in sorted({p.task for p in points}):
        mine = [p for p in points if p.task == task]
        said[f"sweep-{task}-success"] = success_sentence(mine)
        said[f"sweep-{task}-horizon"] = horizon_sentence(mine)
    return said


def seeds_text(records: Sequence[dict]) -> str:
    """The seeds of the trials: ``0-2`` for a run of them, else ``0, 3, 7``."""
    seeds = sorted({int(r["config"]["seed"]) for r in records})
    if not seeds:
        return "-"
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def configuration(records: Sequence[dict], store: str | Path) -> list[tuple[str, str]]:
    """What a sweep ran, for its report: the store, the trials, and per task the models,
    lengths, learning rates and budget; the versions the trials ran with."""
    status = Counter(r["status"] for r in records)
    out = [("store", str(store)),
           ("trials", ", ".join(f"{n} {s}" for s, n in sorted(status.items()))),
           ("trial time", f"{sum(r['wall_time'] or 0 for r in records):.0f} s in total")]
    points = summarize(records)
    for task in sorted({p.task for p in points}):
        mine = [p for p in points if p.task == task]
        out += [(f"{task}: models", ", ".join(dict.fromkeys(p.model for p in mine))),
                (f"{task}: lengths", ", ".join(map(str, sorted({p.length for p in mine})))),
                (f"{task}: lr", ", ".join(lr_text(v) for v in sorted({p.lr for p in mine}))),
                (f"{task}: budget", budget(mine))]
    ran = sorted({f"vanishing {r.get('vanishing_version')}, torch {r.get('torch_version')}"
                  for r in records})
    return [*out, ("trials ran with", "; ".join(ran))]
