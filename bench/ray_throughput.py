"""Throughput of `execrl evaluate --executor ray` against the local executor, on one machine.

    python bench/ray_throughput.py                    # HumanEval canonical x4, workers = cores
    python bench/ray_throughput.py --cli              # the same, timing whole `execrl evaluate` commands
    python bench/ray_throughput.py --smoke            # 20 tasks x1: proves it runs, measures nothing

Both run `execrl.eval.evaluate.evaluate` (what `execrl evaluate` calls) on the same samples file,
one after the other in this process, each timed from creating its executor to closing it: first with a `LocalExecutor` of `--workers` fork-servers, then
with a `RayExecutor` on a local Ray cluster of `--workers` CPUs (one actor holding them all, the
default placement). Each copy of a solution gets a distinct trailing comment, so no job is answered
by deduplication or the cache. The Ray time includes starting the actor and its fork-servers (as
the local time includes starting the fork-servers) but not `ray.init`, which is reported apart: on a
cluster it is paid once per driver, not per batch. A second line gives the steady state: the same
batch again through executors that already ran it once (started, test plans compiled: what each
RL step sees). Prints both times and the ratio
(local seconds / Ray seconds; the target on one node is >= 0.8). With `--cli` both run as whole
commands — `execrl evaluate --workers W` and `execrl evaluate --executor ray --ray-address ADDR` on
the cluster this script started — so interpreter start, imports and data loading count for both.
The cluster listens on 127.0.0.1 only. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

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


def timed_cli(samples: str, out: str, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "execrl.cli", "evaluate", "--benchmark", "humaneval", "--samples", samples,
           "--k", "1", "--out", out, *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return seconds


def statuses(path: str) -> list[str]:
    with open(path) as f:
        return [json.loads(line)["status"] for line in f]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=4, help="copies of HumanEval (default 4)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N tasks")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cli", action="store_true", help="time whole `execrl evaluate` commands")
    ap.add_argument("--smoke", action="store_true", help="20 tasks x1, to check that it runs")
    args = ap.parse_args()
    if args.smoke:
        args.repeat, args.limit = 1, 20
    try:
        import ray
    except ImportError:
        sys.exit("this benchmark needs Ray: pip install 'execrl[ray]'")
    from execrl.sandbox.ray import RayExecutor

    with tempfile.TemporaryDirectory() as tmp:
        samples, local_out, ray_out = (os.path.join(tmp, f) for f in ("s.jsonl", "local.jsonl", "ray.jsonl"))
        n = write_samples(samples, args.repeat, args.limit)
        t0 = time.perf_counter()
        if args.cli:
            local_s = timed_cli(samples, local_out, ["--workers", str(args.workers)])
            local_verdicts = statuses(local_out)
        else:
            local = evaluate("humaneval", samples, workers=args.workers)  # starts and closes its executor
            local_s = time.perf_counter() - t0
            local_verdicts = [r.status.value for r in local.results]
            with LocalExecutor(args.workers, cache=False) as warm:
                evaluate("humaneval", samples, executor=warm)  # as the Ray executor's first batch
                local_warm_s = evaluate("humaneval", samples, executor=warm).seconds

        t0 = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - t0
        try:
            if args.cli:
                address = ray.get_runtime_context().gcs_address
                ray_s = timed_cli(samples, ray_out, ["--executor", "ray", "--ray-address", address])
                ray_verdicts = statuses(ray_out)
            else:
                t0 = time.perf_counter()
                with RayExecutor(cache=False) as ex:
                    remote = evaluate("humaneval", samples, executor=ex)
                    ray_s = time.perf_counter() - t0
                    ray_warm_s = evaluate("humaneval", samples, executor=ex).seconds  # actors up
                ray_verdicts = [r.status.value for r in remote.results]
        finally:
            ray.shutdown()

    same = local_verdicts == ray_verdicts
    mode = "whole commands" if args.cli else "evaluate() in this process"
    print(
        f"programs: {n} (HumanEval canonical x{args.repeat}), workers: {args.workers}, cores: {os.cpu_count()}"
    )
    print(f"timed: {mode}")
    print(f"local executor:  {local_s:7.2f} s  {n / local_s:7.1f} programs/s")
    print(
        f"ray executor:    {ray_s:7.2f} s  {n / ray_s:7.1f} programs/s  (ray.init {init_s:.1f} s, not counted)"
    )
    print(
        f"same verdicts: {same}; passed {local_verdicts.count('passed')} / {ray_verdicts.count('passed')} of {n}"
    )
    print(f"ratio (ray / local throughput): {local_s / ray_s:.2f}")
    if not args.cli:
        print(
            f"steady state (executors already started, the batch alone): local {n / local_warm_s:.1f}, "
            f"ray {n / ray_warm_s:.1f} programs/s, ratio {local_warm_s / ray_warm_s:.2f}"
        )
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
