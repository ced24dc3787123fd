"""Throughput of `execrl evaluate --executor ray` against the local executor, on one machine.

    python bench/ray_throughput.py                    # HumanEval canonical x4, workers = cores
    python bench/ray_throughput.py --smoke            # 20 tasks x1: proves it runs, measures nothing

Both run `execrl.eval.evaluate.evaluate` (what `execrl evaluate` calls) on the same samples file,
one after the other in this process, each timed from creating its executor to closing it: first with a `LocalExecutor` of `--workers` fork-servers, then
with a `RayExecutor` on a local Ray cluster of `--workers` CPUs (one actor holding them all, the
default placement). Each copy of a solution gets a distinct trailing comment, so no job is answered
by deduplication or the cache. The Ray time includes starting the actor and its fork-servers (as
the local time includes starting the fork-servers) but not `ray.init`, which is reported apart: on a
cluster it is paid once per driver, not per batch. Prints both times and the ratio
(local seconds / Ray seconds; the target on one node is >= 0.8). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from execrl.data import humaneval
from execrl.eval.evaluate import evaluate


def write_samples(path: str, repeat: int, limit: int | None) -> int:
    problems = list(humaneval.load().values())[:limit]
    with open(path, "w") as f:
        for r in range(repeat):
            for p in problems:
                completion = p.canonical_solution + f"\n# copy {r}\n"
                f.write(json.dumps({"task_id": p.task_id, "completion": completion}) + "\n")
    return len(problems) * repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=4, help="copies of HumanEval (default 4)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N tasks")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
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
        samples = os.path.join(tmp, "samples.jsonl")
        n = write_samples(samples, args.repeat, args.limit)
        t0 = time.perf_counter()
        local = evaluate("humaneval", samples, workers=args.workers)  # starts and closes its executor
        local_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            with RayExecutor(cache=False) as ex:
                remote = evaluate("humaneval", samples, executor=ex)
            ray_s = time.perf_counter() - t0
        finally:
            ray.shutdown()

    same = [r.status for r in local.results] == [r.status for r in remote.results]
    print(
        f"programs: {n} (HumanEval canonical x{args.repeat}), workers: {args.workers}, cores: {os.cpu_count()}"
    )
    print(f"local executor:  {local_s:7.2f} s  {n / local_s:7.1f} programs/s  {local.pass_at_k([1])}")
    print(
        f"ray executor:    {ray_s:7.2f} s  {n / ray_s:7.1f} programs/s  {remote.pass_at_k([1])}"
        f"  (ray.init {init_s:.1f} s, not counted)"
    )
    print(f"same verdicts: {same}")
    print(f"ratio (ray / local throughput): {local_s / ray_s:.2f}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
