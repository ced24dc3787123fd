"""An executor that fails on our side for every other job: real sandbox errors are rare and racy."""

from __future__ import annotations

from typing import Any

from execrl.types import ExecutionResult, Status


class HalfBrokenEngine:
    """The real engine's results, except that every odd-numbered one is a `sandbox_error`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def run(self, jobs: Any, progress: Any = None) -> list[ExecutionResult]:
        results = self.inner.run(jobs)
        return [
            ExecutionResult(Status.SANDBOX_ERROR, 0, r.tests_total) if i % 2 else r
            for i, r in enumerate(results)
        ]


class EvenPassEngine:
    """Every even-numbered job reported as passing all its tests (a tiny random model never passes,
    and trainer features that act on passing samples need some)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def run(self, jobs: Any, progress: Any = None) -> list[ExecutionResult]:
        results = self.inner.run(jobs)
        return [
            r if i % 2 else ExecutionResult(Status.PASSED, r.tests_total, r.tests_total)
            for i, r in enumerate(results)
        ]
