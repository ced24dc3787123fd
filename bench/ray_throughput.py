"""Throughput of `execrl evaluate --executor ray` against the local executor, on one machine.

    python bench/ray_throughput.py --cli --repeat 4 20 --rounds 5   # whole commands: the target
    python bench/ray_throughput.py --repeat 4 20 --rounds 5         # in this process: start + batch, steady state
    python bench/ray_throughput.py --smoke                          # 20 tasks x1: proves it runs, measures nothing

Workloads: HumanEval's canonical solutions, `--repeat R` copies of each (x4 = 656 programs, x20 =
3,280), each copy with a distinct trailing comment so no job is answered by deduplication or a
cache. Several `--repeat` values give several workloads.

One local Ray cluster of `--workers` CPUs is started first (`ray.init` is timed and reported
apart: on a cluster it is paid once per machine, not per command) and kept for the whole run; it
listens on 127.0.0.1 only. Then, for each workload, `--rounds` rounds, each timing both backends
once; the order alternates between rounds (local first, then Ray first) so that drift in the
machine's load falls on both. Every timed run must give the same verdicts as the first local one.

- `--cli`: whole commands, `execrl evaluate --workers W` against `execrl evaluate --executor ray
  --ray-address ADDR` (joining the cluster above: one actor holding its CPUs). Interpreter start,
  imports, loading the data, starting the actor and its fork-servers, the batch, closing and
  exiting all count: what a user waits for.
- default: `evaluate()` in this process, timed from creating each executor to closing it, with
  the steady state beside it: the same batch again through the executors that ran it once (what
  each RL step sees).

Reports, per workload, the median seconds of each backend over the rounds, the ratio of those
medians (local seconds / Ray seconds = Ray's throughput as a share of local's; the target is
>= 0.8) and the range of the per-round ratios. With two workloads of n1 < n2 programs it also
splits Ray's extra time per command, e(n) = median Ray - median local, into a fixed part (start-up
and exit, seconds per command) and a part per program (steady state, ms per program) by the line
through (n1, e(n1)) and (n2, e(n2)). Run it on an otherwise idle machine: on a loaded one the
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a cluster on 127.0.0.1 only

from execrl.data import humaneval
from execrl.eval.evaluate import evaluate
from execrl.sandbox.executor import LocalExecutor


def write_samples(path: str, repeat: int, limit: int | None) -> int:
    problems = list(humaneval.load().values())[:limit]
    with open(path, "w") as f:
        for r in range(repeat):
            for p in problems:
                completion = p.canonical_solution + f"\n# copy {r}\n"
                f.write(json.dumps({"task_id": p.task_id, "completion": completion}) + "\n")
    return len(problems) * repeat


def timed_cli(samples: str, out: str, extra: list[str]) -> tuple[float, list[str]]:
    """Seconds of one whole `execrl evaluate` command, and its verdicts."""
    cmd = [sys.executable, "-m", "execrl.cli", "evaluate", "--benchmark", "humaneval", "--samples", samples,
           "--k", "1", "--out", out, *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    with open(out) as f:
        return seconds, [json.loads(line)["status"] for line in f]


def timed_inprocess(samples: str, make: Callable[[], Any]) -> tuple[float, float, list[str]]:
    """Seconds from creating an executor to closing it around one batch, the same batch again
    through that executor (the steady state), and the verdicts."""
    t0 = time.perf_counter()
    ex = make()
    try:
        ev = evaluate("humaneval", samples, executor=ex)
        first = time.perf_counter() - t0
        steady = evaluate("humaneval", samples, executor=ex).seconds
    finally:
        ex.close()
    return first, steady, [r.status.value for r in ev.results]


def summary(name: str, n: int, local: list[float], ray: list[float]) -> str:
    ml, mr = statistics.median(local), statistics.median(ray)
    ratios = [a / b for a, b in zip(local, ray)]
    return (
        f"  {name:<13} local {ml:6.2f} s ({n / ml:6.1f}/s)  ray {mr:6.2f} s ({n / mr:6.1f}/s)  "
        f"ratio {ml / mr:.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--repeat", type=int, nargs="+", default=[4], help="copies of HumanEval, one workload each"
    )
    ap.add_argument("--rounds", type=int, default=3, help="timed runs of each backend per workload")
    ap.add_argument("--limit", type=int, default=None, help="only the first N tasks")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cli", action="store_true", help="time whole `execrl evaluate` commands")
    ap.add_argument("--smoke", action="store_true", help="20 tasks x1, one round, to check that it runs")
    args = ap.parse_args()
    if args.smoke:
        args.repeat, args.limit, args.rounds = [1], 20, 1
    try:
        import ray
    except ImportError:
        sys.exit("this benchmark needs Ray: pip install 'execrl[ray]'")
    from execrl.sandbox.ray import RayExecutor

    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t0
    address = ray.get_runtime_context().gcs_address
    mode = "whole `execrl evaluate` commands" if args.cli else "evaluate() in this process"
    print(
        f"timed: {mode}; workers {args.workers}, cores {os.cpu_count()}, rounds {args.rounds} (alternating)"
    )
    print(f"ray.init of the local cluster: {init_s:.1f} s (once, not counted)")
    extra: dict[int, float] = {}
    ok = True
    try:
        for repeat in args.repeat:
            with tempfile.TemporaryDirectory() as tmp:
                samples = os.path.join(tmp, "s.jsonl")
                n = write_samples(samples, repeat, args.limit)
                times: dict[str, list[float]] = {"local": [], "ray": [], "local_steady": [], "ray_steady": []}
                expected: list[str] | None = None
                for r in range(args.rounds):
                    for backend in ("local", "ray") if r % 2 == 0 else ("ray", "local"):
                        if args.cli:
                            flags = (
                                ["--workers", str(args.workers)]
                                if backend == "local"
                                else ["--executor", "ray", "--ray-address", address]
                            )
                            seconds, verdicts = timed_cli(samples, os.path.join(tmp, "out.jsonl"), flags)
                        else:
                            make = (
                                (lambda: LocalExecutor(args.workers, cache=False))
                                if backend == "local"
                                else (lambda: RayExecutor(cache=False))
                            )
                            seconds, steady, verdicts = timed_inprocess(samples, make)
                            times[f"{backend}_steady"].append(steady)
                        times[backend].append(seconds)
                        expected = expected or verdicts
                        if verdicts != expected:
                            ok = False
                            print(f"  round {r}: {backend} gave different verdicts")
                assert expected is not None
                print(
                    f"HumanEval canonical x{repeat}: {n} distinct programs, passed {expected.count('passed')}"
                )
                print(
                    summary("whole command" if args.cli else "start + batch", n, times["local"], times["ray"])
                )
                if not args.cli:
                    print(summary("steady state", n, times["local_steady"], times["ray_steady"]))
                extra[n] = statistics.median(times["ray"]) - statistics.median(times["local"])
    finally:
        ray.shutdown()
    if len(extra) >= 2:
        (n1, e1), (n2, e2) = sorted(extra.items())[0], sorted(extra.items())[-1]
        per_program = (e2 - e1) / (n2 - n1)
        fixed = e1 - per_program * n1
        print(
            f"Ray's extra time per command = {fixed:.2f} s fixed (start-up, close, exit) + "
            f"{per_program * 1e3:.3f} ms per program (fit through n={n1} and n={n2})"
        )
    print(f"same verdicts in every run: {ok}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
