"""Where the time of one `execrl evaluate --executor ray` command goes, phase by phase.

    python bench/ray_phases.py                 # HumanEval canonical x4 (656 programs), 3 runs
    python bench/ray_phases.py --repeat 20 --runs 5

Starts a local Ray cluster of `--workers` CPUs (on 127.0.0.1), then runs, `--runs` times, a fresh
interpreter that does what `execrl evaluate --executor ray --ray-address ADDR` does, with a
timestamp after each phase: importing execrl and Ray, joining the cluster and placing the actor
(`RayExecutor(...)`, which also builds Ray's serialization context on its first remote call),
loading the data and building the jobs, the actor's process answering, its fork-servers up, the
first result, the last, `close`, and the interpreter's exit. A profile, not a throughput: it
says which phase to work on; `bench/ray_throughput.py` gives the ratios.
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


def child(address: str, samples: str) -> None:
    """One command's phases, printed as JSON: [[phase, seconds since the interpreter started]]."""
    start = time.perf_counter() - (time.time() - float(os.environ["BENCH_T0"]))
    marks: list[tuple[str, float]] = [("interpreter started", 0.0)]

    def mark(name: str) -> None:
        marks.append((name, time.perf_counter() - start))

    import execrl.cli  # noqa: F401

    mark("import execrl.cli")
    import ray

    mark("import ray")
    from execrl.data import get_benchmark, read_samples
    from execrl.sandbox.ray import RayExecutor
    from execrl.types import Limits

    ex = RayExecutor(address, cache=False)
    mark("RayExecutor(): join the cluster, place the actor")
    bench = get_benchmark("humaneval")
    problems = bench.load(None)
    jobs = [bench.make_job(problems[s.task_id], s.completion, Limits()) for s in read_samples(samples)]
    mark(f"load data, build {len(jobs)} jobs")
    ray.get(ex.actors()[0].pid.remote())
    mark("actor process answers")
    assert ex.isolation is not None
    mark("actor's fork-servers up")
    first: list[float] = []
    ex.run(jobs, progress=lambda _: first or first.append(time.perf_counter() - start))
    marks.append(("first result", first[0]))
    mark("last result")
    ex.close()
    mark("close")
    print(json.dumps(marks), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=4, help="copies of HumanEval (default 4)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--child", nargs=2, metavar=("ADDRESS", "SAMPLES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    import ray

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ray_throughput import write_samples

    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    try:
        with tempfile.TemporaryDirectory() as tmp:
            samples = os.path.join(tmp, "s.jsonl")
            n = write_samples(samples, args.repeat, None)
            print(f"{n} programs; seconds since the interpreter started (the step since the phase before)")
            for _ in range(args.runs):
                t0 = time.time()
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", address, samples],
                    capture_output=True, text=True, env={**os.environ, "BENCH_T0": repr(t0)},
                )  # fmt: skip
                wall = time.time() - t0
                if proc.returncode != 0:
                    sys.exit(proc.stderr[-2000:])
                marks = json.loads(proc.stdout.strip().splitlines()[-1]) + [["exited", wall]]
                prev = 0.0
                for name, t in marks[1:]:
                    print(f"  {t:6.2f} (+{t - prev:5.2f})  {name}")
                    prev = t
                print()
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
