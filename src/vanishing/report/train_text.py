"""The text of one training run: the table ``vanishing train`` prints (no matplotlib)."""

from __future__ import annotations

from ..train import TrainResult
from .tables import TextTable

__all__ = ["result_table"]


def result_table(result: TrainResult) -> TextTable:
    """One row: status, steps, steps to solve, the last validation metrics, the test
    metrics (a set nothing else looked at), the chance loss and the wall time."""
    c = result.config
    header = ["status", "steps", "steps to solve", *(f"validation {k}" for k in result.final),
              *(f"test {k}" for k in result.test), "chance loss", "time"]
    row = [result.status, str(result.steps), str(result.steps_to_solve or "-"),
           *(f"{v:.4g}" for v in (*result.final.values(), *result.test.values())),
           f"{result.chance_loss:.4g}", f"{result.wall_time:.1f} s"]
    return TextTable(f"{c.model} on {c.task}, length {c.length} (seed {c.seed})", header,
                     [row], caption="validation: the held-out set that decided early "
                                    "stopping; test: a held-out set that nothing else looked at",
                     align=["right"] * len(header))
