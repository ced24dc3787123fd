"""How good a reward model the embedded model's own programs make: held-out pair accuracy by data and lr.

    python bench/pfppo_rm.py [--model runs/embedded/model] [--out runs/bench-pfppo-rm]
                             [--settings 600:300:5e-4,2229:300:5e-4,600:300:1e-4,2229:300:1e-4,2229:600:1e-4]

Each setting is TASKS:STEPS:LR: `execrl.demo_pfppo.rm_from_policy` samples 4 programs of each of
TASKS train-split tasks (a seeded draw, T = 0.7), runs them, pairs them by outcome and trains a
Bradley–Terry head on the SFT backbone for STEPS steps at LR (batch 16); a fifth of the tasks is
held out with all their pairs. The samples of a task count are drawn once and shared by its
settings. Prints one line per setting and, last, a JSON list of the rows; writes rm-pair-accuracy.json.
The PF-PPO demo and bench/pfppo.py use the best row (docs/pf-ppo.md, "The embedded reward model").
"""

from __future__ import annotations

import argparse
import json
import os
import time

from execrl.demo_pfppo import rm_config, rm_from_policy
from execrl.trainers.reward_model import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="runs/embedded/model")
    ap.add_argument("--out", default="runs/bench-pfppo-rm")
    ap.add_argument(
        "--settings", default="600:300:5e-4,2229:300:5e-4,600:300:1e-4,2229:300:1e-4,2229:600:1e-4"
    )
    args = ap.parse_args()
    settings = [(int(t), int(s), float(lr)) for t, s, lr in (x.split(":") for x in args.settings.split(","))]
    rows = []
    for tasks, steps, lr in settings:
        data = os.path.join(args.out, f"tasks{tasks}")
        name = f"rm-steps{steps}-lr{lr:g}"
        t0 = time.perf_counter()
        if not os.path.exists(os.path.join(data, "results.jsonl")):  # draw and run the samples once
            first = rm_from_policy(args.model, data, tasks=tasks, steps=steps, lr=lr)
            os.rename(first["rm"], os.path.join(data, name))
        else:
            train(rm_config(args.model, os.path.join(data, name), os.path.join(data, "samples.jsonl"),
                            os.path.join(data, "results.jsonl"), steps=steps, lr=lr))  # fmt: skip
        with open(os.path.join(data, name, "report.json")) as f:
            report = json.load(f)
        held = report["heldout"]
        row = {"tasks": tasks, "steps": steps, "lr": lr, "train_pairs": report["train_pairs"],
               "heldout_pairs": held["pairs"], "heldout_accuracy": held["accuracy"],
               "minutes": (time.perf_counter() - t0) / 60}  # fmt: skip
        rows.append(row)
        print(f"{tasks} tasks, {steps} steps, lr {lr:g}: {report['train_pairs']} training pairs, held-out pair "
              f"accuracy {held['accuracy']:.3f} on {held['pairs']} pairs", flush=True)  # fmt: skip
    with open(os.path.join(args.out, "rm-pair-accuracy.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
