"""Load test of the sandbox service over loopback: nothing lost or duplicated, latency, throughput.

    python bench/service_load.py                      # 10,000 jobs at concurrency 64
    python bench/service_load.py --restart term       # the same, the server restarted mid-load
    python bench/service_load.py --restart kill --restart-after 0.3
    python bench/service_load.py --jobs 200           # smoke: proves it runs, measures nothing

Jobs: HumanEval's canonical solutions and, for every third job, a wrong one ("return None"), cycled
to `--jobs`, each with a distinct trailing comment (so no job is answered by deduplication or a
cache). First the same jobs run through a `LocalExecutor` of `--workers` fork-servers in this
process (the baseline), then through `execrl sandbox serve --workers W --no-cache` started as a
subprocess on 127.0.0.1 (a free port) and an `HTTPExecutor`: `--concurrency` requests in flight,
`--batch-size` jobs each. Latency is per request (its jobs' time from being sent to their results
arriving, through the real client). Checks: every job has exactly one result, each equal to the
baseline's verdict (and the baseline equal to the verdict known by construction), and the server
executed exactly `--jobs` jobs.

With `--restart term|kill`, the servers share a `--cache` file instead of `--no-cache`, and once
`--restart-after` of the jobs have their results the server is stopped — SIGTERM (it drains: running
jobs finish into the cache, queued ones are dropped) or SIGKILL (a crash: the results of the jobs it
was running are lost with it; its fork-servers finish the job they hold and exit) — and, once it is gone, a new one is started on
the same port while the clients keep going: they see refused connections and `unknown` ids and
resubmit, as `HTTPExecutor` does. Executions are counted across both servers: the first's from its
stop line (SIGTERM) or from the rows it left in the cache file (SIGKILL: every execution it
finished is there), the second's from its stop line. After SIGTERM they must equal `--jobs`
exactly. After SIGKILL the executions *finished* across both must equal `--jobs`, and the jobs that
were running at the kill (read from /health just before it, at most `--workers`; a snapshot, off by
one if a job starts or ends in between) run a second time on the new server: expected, reported. The restart's gap is the time from the signal to the new
server's ready line, and the longest time no result arrived; p50/p99 include the restart.

The run is bounded: it stops after `--max-seconds` (default 1800) with an error, and on any exit
stops every server it started, ends what they left running, and removes its temporary files (the
shared cache, server logs, and the servers' scratch directories, which a SIGKILL leaves behind). Prints
p50/p99 latency, throughput and the ratio to the local executor. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx

from execrl.data import humaneval
from execrl.sandbox.executor import LocalExecutor
from execrl.types import Job, Limits, Status


def make_jobs(n: int) -> tuple[list[Job], list[Status]]:
    """The jobs and each one's right verdict (canonical solutions pass, "return None" fails)."""
    problems = list(humaneval.load().values())
    jobs, right = [], []
    for i in range(n):
        p = problems[i % len(problems)]
        completion = p.canonical_solution if i % 3 else "    return None\n"
        jobs.append(humaneval.make_job(p, completion + f"\n# job {i}\n", Limits()))
        right.append(Status.PASSED if i % 3 else Status.FAILED)
    return jobs, right


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Server:
    """`execrl sandbox serve` as a subprocess; its stderr and temporary files go into `tmp`."""

    def __init__(self, port: int, workers: int, queue: int, cache: str | None, tmp: str, name: str) -> None:
        cmd = [sys.executable, "-m", "execrl.cli", "sandbox", "serve", "--port", str(port),
               "--workers", str(workers), "--queue", str(queue)]  # fmt: skip
        cmd += ["--cache", cache] if cache else ["--no-cache"]
        self.log = os.path.join(tmp, f"{name}.stderr")
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env={**os.environ, "TMPDIR": tmp},  # its fork-servers' scratch directories, too
            )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 300)
        line = self.proc.stdout.readline() if ready else ""
        if "serving on " not in line:
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"the service did not start: {line!r}\n{self.stderr()}")
        self.url = line.split("serving on ")[1].split()[0]
        self.port = int(self.url.rsplit(":", 1)[1])

    def stderr(self) -> str:
        with open(self.log) as f:
            return f.read()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 300.0) -> None:
        """Send `sig` to the server and wait for it to exit (SIGKILL after `timeout`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def counts(self) -> dict[str, int]:
        """executed, cached, dropped: from the line the server prints when it stops after SIGTERM."""
        lines = [x for x in self.stderr().splitlines() if x.startswith("execrl sandbox: stopped")]
        if not lines:
            raise RuntimeError(f"the server printed no stop line:\n{self.stderr()}")
        words = lines[-1].replace(",", "").split()
        return {
            k: int(words[words.index(w) + 1])
            for k, w in [("executed", "executed"), ("cached", "cache"), ("dropped", "queue")]
        }


def outliving(tmp: str, grace: float) -> int:
    """End what still runs in `tmp` after `grace` seconds (their number): fork-servers of a killed
    server, in sessions of their own, finish the job they hold, see their server gone and exit."""
    deadline = time.monotonic() + grace
    while True:
        pids = []
        for entry in os.listdir("/proc"):
            try:
                if entry.isdigit() and os.readlink(f"/proc/{entry}/cwd").startswith(tmp):
                    pids.append(int(entry))
            except OSError:
                pass  # gone meanwhile, or not ours to read
        if not pids or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(pids)


def longest_gap(since: float, times: list[float]) -> float:
    """The longest time after `since` with no result arriving."""
    after = [since, *sorted(t for t in times if t >= since)]
    return max((b - a for a, b in zip(after, after[1:])), default=0.0)


def cache_rows(path: str) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    finally:
        db.close()


async def drive(
    url: str, jobs: list[Job], concurrency: int, batch: int, finished: list[float]
) -> tuple[list, list[float], dict]:
    """Run `jobs` through an HTTPExecutor; `finished` gets the time each request's results arrived."""
    from execrl.sandbox.http import HTTPExecutor

    ex = HTTPExecutor(url, concurrency=concurrency, batch_size=batch, cache=False)
    slots = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    results: list = [None] * len(jobs)

    async def one(start: int) -> None:
        async with slots:
            t0 = time.perf_counter()
            got = await ex.arun(jobs[start : start + batch])
            finished.append(time.perf_counter())
            latencies.append(finished[-1] - t0)
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


def restart(
    servers: list[Server], how: str, args: argparse.Namespace, cache: str, tmp: str
) -> dict[str, Any]:
    """Stop the server (SIGTERM or SIGKILL) and start a second one on its port; what it took."""
    first = servers[0]
    health = httpx.get(first.url + "/health", timeout=10).json()
    t0 = time.perf_counter()
    first.stop(signal.SIGTERM if how == "term" else signal.SIGKILL)
    stopped = time.perf_counter()
    info: dict[str, Any] = {"signal_at": t0, "running_at_signal": health["running"]}
    info["first_finished"] = cache_rows(cache)  # every execution the first server finished
    if how == "term":
        info["first"] = first.counts()
    servers.append(Server(first.port, args.workers, args.queue, cache, tmp, "second"))
    info["stop_s"] = stopped - t0
    info["down_s"] = time.perf_counter() - t0
    return info


async def drive_with_restart(
    servers: list[Server], jobs: list[Job], args: argparse.Namespace, cache: str | None, tmp: str
) -> tuple[list, list[float], dict, list[float], dict[str, Any]]:
    finished: list[float] = []
    info: dict[str, Any] = {}

    async def watch() -> None:
        assert args.restart and cache
        while len(finished) * args.batch_size < args.restart_after * len(jobs):
            await asyncio.sleep(0.05)
        info.update(await asyncio.to_thread(restart, servers, args.restart, args, cache, tmp))

    load = asyncio.ensure_future(drive(servers[0].url, jobs, args.concurrency, args.batch_size, finished))
    watcher = asyncio.ensure_future(watch()) if args.restart else None
    try:
        results, latencies, stats = await load
        if watcher is not None:
            await watcher  # done before the load could finish: the load waited for the new server
    finally:
        if watcher is not None and not watcher.done():
            watcher.cancel()
    return results, latencies, stats, finished, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    ap.add_argument("--batch-size", type=int, default=1, help="jobs per request (default 1)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="fork-servers, both sides")
    ap.add_argument("--queue", type=int, default=4096, help="the server's queue (default 4096)")
    ap.add_argument(
        "--restart", choices=["term", "kill"], help="stop the server mid-load and start a new one"
    )
    ap.add_argument("--restart-after", type=float, default=0.5, help="fraction of jobs done first (0.5)")
    ap.add_argument("--max-seconds", type=float, default=1800.0, help="give up after this long")
    args = ap.parse_args()
    if not 0 < args.restart_after < 1:
        ap.error("--restart-after must be in (0, 1)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))  # so the cleanup runs
    jobs, right = make_jobs(args.jobs)

    t0 = time.perf_counter()
    with LocalExecutor(args.workers, cache=False) as local:
        baseline = local.run(jobs)
    local_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="execrl-service-load-") as tmp:
        cache = os.path.join(tmp, "cache.sqlite") if args.restart else None
        servers = [Server(0, args.workers, args.queue, cache, tmp, "first")]
        info: dict[str, Any] = {}
        try:
            t0 = time.perf_counter()
            try:
                results, latencies, stats, finished, info = asyncio.run(
                    asyncio.wait_for(drive_with_restart(servers, jobs, args, cache, tmp), args.max_seconds)
                )
            except asyncio.TimeoutError:
                sys.exit(f"gave up: the load did not finish in {args.max_seconds:.0f} s")
            service_s = time.perf_counter() - t0
            last = servers[-1]
            last.stop(signal.SIGTERM)
            counts = last.counts()
        finally:
            for server in servers:  # those still up: the run failed or was stopped
                server.stop(signal.SIGKILL, timeout=60)
            if left := outliving(tmp, grace=30):
                print(f"warning: ended {left} processes the servers left running", file=sys.stderr)
        rows = cache_rows(cache) if cache else None
    report_run(
        args,
        jobs,
        right,
        baseline,
        results,
        latencies,
        stats,
        finished,
        info,
        counts,
        rows,
        local_s,
        service_s,
    )


def report_run(
    args: argparse.Namespace,
    jobs: list[Job],
    right: list[Status],
    baseline: list,
    results: list,
    latencies: list[float],
    stats: dict,
    finished: list[float],
    info: dict[str, Any],
    counts: dict[str, int],
    rows: int | None,
    local_s: float,
    service_s: float,
) -> None:
    n = len(jobs)
    lost = sum(r is None for r in results)
    wrong = sum(r is not None and r.status != b.status for r, b in zip(results, baseline))
    baseline_wrong = sum(b.status != s for b, s in zip(baseline, right))
    report: dict[str, Any] = {
        "jobs": n,
        "concurrency": args.concurrency,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "cores": os.cpu_count(),
        "restart": args.restart,
        "lost": lost,
        "wrong_verdicts": wrong,
        "baseline_wrong_verdicts": baseline_wrong,
    }
    failed = bool(lost or wrong or baseline_wrong)
    if args.restart is None:
        report["server_executed"] = counts["executed"]
        report["duplicated"] = counts["executed"] - n
        failed |= report["duplicated"] != 0
    else:
        first_done = info["first_finished"]
        executed = (info["first"]["executed"] if args.restart == "term" else first_done) + counts["executed"]
        report.update(
            restart_after=args.restart_after,
            running_at_signal=info["running_at_signal"],
            first_executed=first_done,
            first_dropped_from_queue=info["first"]["dropped"] if args.restart == "term" else None,
            second_executed=counts["executed"],
            second_from_cache=counts["cached"],
            executed_both=executed,
            duplicated=executed - n,
            cache_rows=rows,
            stop_s=round(info["stop_s"], 2),
            down_s=round(info["down_s"], 2),
            longest_without_results_s=round(longest_gap(info["signal_at"], finished), 2),
        )
        if args.restart == "term":  # its stop line and the cache file agree, and nothing ran twice
            failed |= info["first"]["executed"] != first_done or executed != n
        else:  # finished executions: each job once; the ones cut off by the kill ran again
            failed |= executed != n
        failed |= rows != n
    report.update(
        local_s=round(local_s, 2),
        local_jobs_per_s=round(n / local_s, 1),
        service_s=round(service_s, 2),
        service_jobs_per_s=round(n / service_s, 1),
        ratio_to_local=round(local_s / service_s, 3),
        latency_p50_ms=round(1000 * percentile(latencies, 0.50), 1),
        latency_p99_ms=round(1000 * percentile(latencies, 0.99), 1),
        latency_max_ms=round(1000 * max(latencies), 1),
        client=stats,
    )
    print(f"jobs {n}, concurrency {args.concurrency}, batch {args.batch_size}, workers {args.workers}")
    print(
        f"lost {lost}, wrong verdicts {wrong} (baseline wrong {baseline_wrong}), duplicated {report['duplicated']}"
    )
    if args.restart:
        print(
            f"restart ({args.restart}) after {args.restart_after:.0%}: {report['running_at_signal']} running at the "
            f"signal; executed {report['first_executed']} + {report['second_executed']} = {report['executed_both']}, "
            f"second server answered {report['second_from_cache']} from the cache; down {report['down_s']} s, "
            f"longest without a result {report['longest_without_results_s']} s"
        )
    print(f"local executor: {local_s:7.2f} s  {n / local_s:7.1f} jobs/s")
    print(
        f"service:        {service_s:7.2f} s  {n / service_s:7.1f} jobs/s  ratio {report['ratio_to_local']:.2f}"
    )
    print(f"latency per request: p50 {report['latency_p50_ms']} ms, p99 {report['latency_p99_ms']} ms")
    print(json.dumps(report))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
