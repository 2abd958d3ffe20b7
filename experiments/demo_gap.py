"""Choose the demo's gap by measurement: success of each model against the gap.

Runs the demo's own training configuration (vanishing.demo.demo_config) for every
(gap, model, seed, learning rate) and prints a Markdown table of held-out accuracy.

    .venv/bin/python experiments/demo_gap.py --gaps 5,10,15,20,30 --seeds 3 --lrs 3e-3,1e-2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics

from vanishing.demo import DEFAULT_MODELS, DEFAULT_STEPS, demo_config
from vanishing.train import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaps", default="5,10,15,20,30", help="comma-separated gaps")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated models")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per cell")
    ap.add_argument("--lrs", default="1e-2", help="comma-separated Adam learning rates")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="step budget per run")
    ap.add_argument("--jsonl", default=None, help="also append one JSON line per run here")
    args = ap.parse_args()
    rows = []
    for gap in map(int, args.gaps.split(",")):
        for model in args.models.split(","):
            for lr in map(float, args.lrs.split(",")):
                accs, solved = [], []
                for seed in range(args.seeds):
                    config = dataclasses.replace(demo_config(model, gap, args.steps, seed), lr=lr)
                    r = train(config)
                    accs.append(r.final["accuracy"])
                    solved.append(r.steps_to_solve)
                    if args.jsonl:
                        with open(args.jsonl, "a") as f:
                            f.write(json.dumps({"gap": gap, "model": model, "lr": lr,
                                                "seed": seed, "status": r.status,
                                                "accuracy": r.final["accuracy"],
                                                "steps_to_solve": r.steps_to_solve,
                                                "wall_time": r.wall_time}) + "\n")
                done = [s for s in solved if s is not None]
                rows.append((gap, model, lr, statistics.median(accs), len(done),
                             statistics.median(done) if done else None))
                print(f"| {gap} | {model} | {lr:g} | {statistics.median(accs):.3f} | "
                      f"{len(done)}/{args.seeds} | "
                      f"{statistics.median(done) if done else '-'} |", flush=True)


if __name__ == "__main__":
    main()
