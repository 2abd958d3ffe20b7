"""Sweeps: success against sequence length, one trial per (model, length, lr, seed).

* :mod:`~vanishing.sweep.run`: :func:`grid` of configs and :func:`run_sweep` into a store;
* :mod:`~vanishing.sweep.trial`: one trial (train, then probe the trained model);
* :mod:`~vanishing.sweep.backends`: where trials run (here, a process pool, Ray);
* :mod:`~vanishing.sweep.store`: the resumable SQLite results store;
* :mod:`~vanishing.sweep.summary`: results summarised per point of the grid, and tables.
"""

from .backends import RAY_CONNECT_TIMEOUT, check_ray_address, default_workers
from .run import SweepSummary, grid, run_sweep
from .summary import (
    Cell,
    SweepPoint,
    best_cells,
    best_points,
    lr_text,
    summarize,
    table_rows,
    varying_fields,
)
from .trial import (
    HORIZON_THRESHOLD,
    PROBE_BATCH,
    PROBE_SEED,
    describe_error,
    gradient_horizon,
    run_trial,
)

__all__ = ["HORIZON_THRESHOLD", "PROBE_BATCH", "PROBE_SEED", "RAY_CONNECT_TIMEOUT",
           "SweepSummary", "SweepPoint", "Cell", "grid", "run_trial", "run_sweep",
           "default_workers", "check_ray_address", "gradient_horizon", "summarize",
           "best_points", "best_cells", "table_rows", "varying_fields", "lr_text",
           "describe_error"]
