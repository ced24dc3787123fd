"""Load test of the sandbox service over loopback: nothing lost or duplicated, latency, throughput.

    python bench/service_load.py                      # 10,000 jobs at concurrency 64
    python bench/service_load.py --jobs 200           # smoke: proves it runs, measures nothing

Jobs: HumanEval's canonical solutions and, for every third job, a wrong one ("return None"), cycled
to `--jobs`, each with a distinct trailing comment (so no job is answered by deduplication or a
cache). First the same jobs run through a `LocalExecutor` of `--workers` fork-servers in this
process (the baseline), then through `execrl sandbox serve --workers W --no-cache` started as a
subprocess on 127.0.0.1 (a free port) and an `HTTPExecutor`: `--concurrency` requests in flight,
`--batch-size` jobs each. Latency is per request (its jobs' time from being sent to their results
arriving, through the real client). Checks: every job has exactly one result, each equal to the
baseline's verdict, and the server executed exactly `--jobs` jobs. The run is bounded: it stops
after `--max-seconds` (default 1800) with an error, and always stops the server it started.
Prints p50/p99 latency, throughput and the ratio to the local executor. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import httpx

from execrl.data import humaneval
from execrl.sandbox.executor import LocalExecutor
from execrl.types import Job, Limits


def make_jobs(n: int) -> list[Job]:
    problems = list(humaneval.load().values())
    jobs = []
    for i in range(n):
        p = problems[i % len(problems)]
        completion = p.canonical_solution if i % 3 else "    return None\n"
        jobs.append(humaneval.make_job(p, completion + f"\n# job {i}\n", Limits()))
    return jobs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_server(workers: int, queue: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "execrl.cli", "sandbox", "serve", "--port", "0", "--workers", str(workers),
           "--no-cache", "--queue", str(queue)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "serving on " not in line:
        proc.kill()
        sys.exit(f"the service did not start: {line!r}")
    return proc, line.split("serving on ")[1].split()[0]


async def drive(url: str, jobs: list[Job], concurrency: int, batch: int) -> tuple[list, list[float], dict]:
    from execrl.sandbox.http import HTTPExecutor

    ex = HTTPExecutor(url, concurrency=concurrency, batch_size=batch, cache=False)
    slots = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    results: list = [None] * len(jobs)

    async def one(start: int) -> None:
        async with slots:
            t0 = time.perf_counter()
            got = await ex.arun(jobs[start : start + batch])
            latencies.append(time.perf_counter() - t0)
            for k, r in enumerate(got):
                if results[start + k] is not None:
                    raise AssertionError(f"job {start + k} got two results")
                results[start + k] = r

    try:
        await asyncio.gather(*(one(s) for s in range(0, len(jobs), batch)))
    finally:
        stats = dict(ex.stats)
        ex.close()
    return results, latencies, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    ap.add_argument("--batch-size", type=int, default=1, help="jobs per request (default 1)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="fork-servers, both sides")
    ap.add_argument("--queue", type=int, default=4096, help="the server's queue (default 4096)")
    ap.add_argument("--max-seconds", type=float, default=1800.0, help="give up after this long")
    args = ap.parse_args()
    jobs = make_jobs(args.jobs)

    t0 = time.perf_counter()
    with LocalExecutor(args.workers, cache=False) as local:
        baseline = local.run(jobs)
    local_s = time.perf_counter() - t0

    proc, url = start_server(args.workers, args.queue)
    try:
        t0 = time.perf_counter()
        results, latencies, stats = asyncio.run(
            asyncio.wait_for(drive(url, jobs, args.concurrency, args.batch_size), args.max_seconds)
        )
        service_s = time.perf_counter() - t0
        health = httpx.get(url + "/health", timeout=10).json()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()

    lost = sum(r is None for r in results)
    wrong = sum(r is not None and r.status != b.status for r, b in zip(results, baseline))
    n = len(jobs)
    report = {
        "jobs": n,
        "concurrency": args.concurrency,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "cores": os.cpu_count(),
        "lost": lost,
        "wrong_verdicts": wrong,
        "server_executed": health["executed"],
        "duplicated": health["executed"] - n,
        "local_s": round(local_s, 2),
        "local_jobs_per_s": round(n / local_s, 1),
        "service_s": round(service_s, 2),
        "service_jobs_per_s": round(n / service_s, 1),
        "ratio_to_local": round(local_s / service_s, 3),
        "latency_p50_ms": round(1000 * percentile(latencies, 0.50), 1),
        "latency_p99_ms": round(1000 * percentile(latencies, 0.99), 1),
        "client": stats,
    }
    print(f"jobs {n}, concurrency {args.concurrency}, batch {args.batch_size}, workers {args.workers}")
    print(
        f"lost {lost}, wrong verdicts {wrong}, server executed {health['executed']} (duplicated {report['duplicated']})"
    )
    print(f"local executor: {local_s:7.2f} s  {n / local_s:7.1f} jobs/s")
    print(
        f"service:        {service_s:7.2f} s  {n / service_s:7.1f} jobs/s  ratio {report['ratio_to_local']:.2f}"
    )
    print(f"latency per request: p50 {report['latency_p50_ms']} ms, p99 {report['latency_p99_ms']} ms")
    print(json.dumps(report))
    if lost or wrong or report["duplicated"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
