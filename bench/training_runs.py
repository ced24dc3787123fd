"""What the learning benches (bench/rltf.py, bench/pfppo.py) share to run their training runs:
a budget, several runs at once, and resuming an interrupted bench.

The budget. `--budget time` stops a run after `--minutes` of training wall time: the literal
budget, honest only on an otherwise idle machine. `--budget steps` (the default) gives a run the
number of steps that `--minutes` buy on this machine (2 cores) when it is idle, measured per loop
by each bench. A step budget makes a run's result independent of what else the machine does, so
`--jobs J` runs J runs at once (each with 1/J of the torch threads; two RLTF runs at once did
1.19x the steps per minute of one at a time here), each run checkpoints every `SAVE_EVERY` steps,
and an interrupted bench resumes: a finished run's run.json is kept, a cut run resumes from its
last checkpoint exactly (trainers/rl.py: a step's prompts and samples are functions of (seed,
step)).

Each run is its own process: the bench re-runs itself with `--one NAME`, trains it (`train_run`)
and writes that run's run.json (`write_run`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from execrl.trainers.rl import train
from execrl.trainers.rl_config import RLConfig
from execrl.trainers.sft import latest_checkpoint

SAVE_EVERY = 20


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--budget", choices=("steps", "time"), default="steps",
                    help="steps: the steps --minutes buy on an idle machine (default); time: wall time")  # fmt: skip
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (with --budget steps)")
    ap.add_argument("--one", default="", help=argparse.SUPPRESS)  # run NAME alone, in this process


def check(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.budget == "time" and args.jobs > 1:
        ap.error("--jobs > 1 needs --budget steps: runs that share the machine get less of --minutes")


def budget(args: argparse.Namespace, steps_per_10_min: int) -> dict[str, float]:
    """{"minutes": m} or {"steps": n}: what a run of a loop doing `steps_per_10_min` gets."""
    if args.budget == "time":
        return {"minutes": args.minutes}
    return {"steps": max(1, round(steps_per_10_min * args.minutes / 10))}


def train_run(fields: dict[str, Any], run_budget: dict[str, float]) -> dict[str, Any]:
    """Train one run (RLConfig `fields`, `out` among them) within `run_budget`, resuming a cut
    run; returns {"summary", "eval": every evaluation of the run, "log": every step's row,
    "config": the RLConfig, "wall_minutes": this process's}."""
    out = fields["out"]
    if "minutes" in run_budget:
        limits = dict(max_steps=10_000, max_minutes=run_budget["minutes"], save_every=0, resume=False)
    else:
        resume = latest_checkpoint(out) is not None
        limits = dict(max_steps=int(run_budget["steps"]), max_minutes=0, save_every=SAVE_EVERY, resume=resume)
    if "save_every" in fields:  # given by the caller (a smoke test)
        limits["save_every"] = fields["save_every"]
    cfg = RLConfig.load(overrides={**fields, **limits})
    t0 = time.perf_counter()
    summary = train(cfg)
    with open(os.path.join(out, "eval.jsonl")) as f:  # the whole run's, resumed or not
        evals = [json.loads(line) for line in f]
    with open(os.path.join(out, "log.jsonl")) as f:
        log = [json.loads(line) for line in f]
    return {"summary": summary, "eval": evals, "log": log, "config": cfg,
            "wall_minutes": (time.perf_counter() - t0) / 60}  # fmt: skip


def write_run(path: str, run: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(run, f)
    os.replace(tmp, path)


def run_all(
    script: str,
    args: argparse.Namespace,
    names: list[str],
    run_json: Callable[[str], str],
    budget_of: Callable[[str], dict],
) -> list[dict[str, Any]]:
    """Run each of `names` (`script --one NAME` with this process's arguments), `--jobs` at a
    time, except those whose run.json (`run_json(name)`) holds a run of the same budget; returns
    the runs' run.json contents in `names` order."""
    pending = []
    for name in names:
        path = run_json(name)
        if os.path.exists(path):
            with open(path) as f:
                if json.load(f).get("budget") == budget_of(name):
                    print(f"{name}: done before ({path}), kept", flush=True)
                    continue
        pending.append(name)
    threads = str(max(1, (os.cpu_count() or 1) // max(1, args.jobs)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    running: list[subprocess.Popen] = []
    while pending or running:
        while pending and len(running) < max(1, args.jobs):
            # the child ignores --jobs; --one comes last so it wins over any given
            cmd = [sys.executable, script, *sys.argv[1:], "--one", pending.pop(0)]
            running.append(subprocess.Popen(cmd, env=env))
        time.sleep(1)
        for p in [p for p in running if p.poll() is not None]:
            running.remove(p)
            if p.returncode:
                for other in running:
                    other.terminate()
                raise SystemExit(f"a run failed (exit {p.returncode}): {' '.join(map(str, p.args))}")
    runs = []
    for name in names:
        with open(run_json(name)) as f:
            runs.append(json.load(f))
    return runs
