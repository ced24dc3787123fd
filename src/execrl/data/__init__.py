"""Benchmarks as sandbox jobs: loaders, the JSONL reader, the completion sanitizer.

Each benchmark module (`humaneval`, `mbpp`, `apps`) has the same shape: a frozen `Problem` with a
`task_id`, `load(path=None) -> dict[str, Problem]` and
`make_job(problem, completion, limits, *, sanitize=False) -> Job`. `BENCHMARKS` maps names to
those modules; `get_benchmark(name)` looks one up.
"""

from __future__ import annotations

from typing import Any, Protocol

from execrl.data import apps, humaneval, mbpp
from execrl.data.jsonl import DataError, PathLike, Sample, read_jsonl, read_samples
from execrl.types import Job, Limits

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "DataError",
    "Sample",
    "apps",
    "get_benchmark",
    "humaneval",
    "mbpp",
    "read_jsonl",
    "read_samples",
]


class Benchmark(Protocol):
    """What every benchmark module provides (modules satisfy this protocol structurally)."""

    NAME: str

    def load(self, path: PathLike | None = None) -> dict[str, Any]: ...

    def make_job(self, problem: Any, completion: str, limits: Limits, *, sanitize: bool = False) -> Job: ...


BENCHMARKS: dict[str, Benchmark] = {"humaneval": humaneval, "mbpp": mbpp, "apps": apps}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark module called `name` (case-insensitive); DataError lists the valid names."""
    try:
        return BENCHMARKS[name.strip().lower()]
    except KeyError:
        raise DataError(f"unknown benchmark {name!r}; valid names: {', '.join(sorted(BENCHMARKS))}")
