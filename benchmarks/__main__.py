"""Run the benchmarks and print one table of side-by-side ratios.

    .venv/bin/python -m benchmarks [--quick] [--only train,probe,record,...] [--threads N]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from . import (
    bench_cells,
    bench_explore,
    bench_integrations,
    bench_jacobian,
    bench_monitor,
    bench_probe,
    bench_record,
    bench_roofline,
    bench_train,
)

SECTIONS = {"train": bench_train, "probe": bench_probe, "record": bench_record,
            "monitor": bench_monitor, "jacobian": bench_jacobian, "roofline": bench_roofline,
            "integrations": bench_integrations, "cells": bench_cells,
            "explore": bench_explore}


def main() -> None:
    ap = argparse.ArgumentParser(description="vanishing benchmarks: ratios measured side by side")
    ap.add_argument("--quick", action="store_true", help="fewer lengths and repeats")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help=f"comma-separated sections of {', '.join(SECTIONS)}")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="torch CPU threads (default: torch's own choice)")
    args = ap.parse_args()
    names = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown or args.threads < 1:
        ap.error(f"unknown section(s) {unknown}; expected {', '.join(SECTIONS)}" if unknown
                 else f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    print(f"# {platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, "
          f"{args.threads} thread(s), float32, medians of interleaved repeats")
    print("| benchmark | case | baseline ms | ours ms | ratio | target |")
    print("|---|---|---|---|---|---|")
    start = time.perf_counter()
    for name in names:
        for r in SECTIONS[name].run(quick=args.quick):
            print(f"| {r['benchmark']} | {r['case']} | {r['baseline ms']:.1f} | "
                  f"{r['ours ms']:.1f} | {r['ratio']:.2f} | {r['target']} |", flush=True)
    print(f"\n# total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
