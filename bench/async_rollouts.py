"""Asynchronous rollouts vs the synchronous loop: training steps per minute on this machine.

    python bench/async_rollouts.py [--steps 20] [--model runs/embedded/model] [--out runs/bench-async]
                                   [--settings sync,w1s1,w1s2,w2s2] [--set FIELD=VALUE ...]
    python bench/async_rollouts.py --smoke        # a tiny random model, 2 steps each: checks it runs

Each setting runs `execrl train` for `--steps` steps from the same checkpoint and seed with the
demo's GRPO settings (execrl.demo.GRPO, replay included) and no evaluation, and reports steps per
minute of training time (`train_seconds` in log.jsonl: sampling, execution and updates; start-up
and evaluation excluded), the mean seconds per step the trainer waited for samples
(`seconds/generation`: the whole sampling time when synchronous, only the wait when asynchronous),
the update's seconds, and the reward. Settings:

    sync   rollout_workers 0 (the synchronous loop, the baseline)
    wNsK   rollout_workers N, max_staleness K, sync_every 1

On 2 cores a worker process competes with the trainer for the same cores, so the gain is bounded
by how much of a step is sampling that can hide behind the update; the measurement says how much.
Run it on an otherwise idle machine; numbers taken while other jobs run are not measurements.
Writes bench-async.json under `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile

from execrl.demo import GRPO
from execrl.embedded import EmbeddedConfig
from execrl.embedded import train as train_embedded
from execrl.trainers.rl import train
from execrl.trainers.rl_config import RLConfig


def setting(name: str) -> dict[str, int]:
    if name == "sync":
        return {"rollout_workers": 0}
    workers, staleness = name[1:].split("s")
    return {"rollout_workers": int(workers), "max_staleness": int(staleness), "sync_every": 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--model", default="runs/embedded/model")
    ap.add_argument("--out", default="runs/bench-async")
    ap.add_argument("--settings", default="sync,w1s1,w1s2,w2s2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="FIELD=VALUE for every run (YAML value)")
    ap.add_argument("--smoke", action="store_true", help="tiny random model, 2 steps: checks the script runs")
    args = ap.parse_args()
    import yaml

    base = {**GRPO, "eval_every": 0, "eval_split": None, "report_to": "none", "seed": args.seed}
    data = None
    if args.smoke:
        import sys

        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
        from tinymodel import make_tiny_model, write_rl_tasks

        tmp = tempfile.mkdtemp(prefix="bench-async-")
        args.model, args.out, args.steps = make_tiny_model(f"{tmp}/tiny"), f"{tmp}/out", 2
        data = write_rl_tasks(__import__("pathlib").Path(tmp) / "tasks.jsonl")
        base.update(prompts_per_step=2, samples_per_prompt=2, max_new_tokens=16, replay_size=0, workers=1)
    elif not os.path.isdir(args.model):
        train_embedded(EmbeddedConfig(out=os.path.dirname(args.model)))
    for item in args.set:
        key, _, value = item.partition("=")
        base[key] = yaml.safe_load(value)
    results = []
    for name in args.settings.split(","):
        out = os.path.join(args.out, name)
        cfg = RLConfig(
            model=args.model, out=out, data=data, max_steps=args.steps, **{**base, **setting(name)}
        )
        summary = train(cfg)
        log = [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))]
        row = {
            "setting": name,
            **setting(name),
            "steps": summary["steps"],
            "train_seconds": summary["train_seconds"],
            "steps_per_minute": 60 * summary["steps"] / summary["train_seconds"],
            "wait_for_samples_s": statistics.mean(r["seconds/generation"] for r in log),
            "update_s": statistics.mean(r["seconds/update"] for r in log),
            "reward": statistics.mean(r["reward"] for r in log),
            "staleness": statistics.mean(r.get("rollout/staleness", 0) for r in log),
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    base_rate = results[0]["steps_per_minute"]
    print(f"\n{'setting':8} {'steps/min':>9} {'x sync':>7} {'wait s':>7} {'update s':>8} {'reward':>7}")
    for r in results:
        print(f"{r['setting']:8} {r['steps_per_minute']:9.2f} {r['steps_per_minute'] / base_rate:7.2f} "
              f"{r['wait_for_samples_s']:7.2f} {r['update_s']:8.2f} {r['reward']:7.3f}")  # fmt: skip
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench-async.json"), "w") as f:
        json.dump(
            {"cpus": os.cpu_count(), "steps": args.steps, "base": base, "results": results}, f, indent=1
        )


if __name__ == "__main__":
    main()
