"""Timing helpers: side-by-side medians, interleaved so drift hits both sides alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

__all__ = ["compare", "median_time"]


def median_time(fn: Callable[[], object], repeats: int = 7, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def compare(fns: dict[str, Callable[[], object]], repeats: int = 7,
            warmup: int = 2, clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median time of each function, measured round-robin (a, b, a, b, ...), by ``clock``
    (wall time; ``time.process_time`` gives this process's CPU time, which other jobs on
    a shared machine disturb less, when torch runs one thread)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            times[name].append(clock() - t0)
    return {k: statistics.median(v) for k, v in times.items()}
