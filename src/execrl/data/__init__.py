"""Benchmarks as sandbox jobs: loaders, prompts, the JSONL reader, the completion sanitizer.

Each benchmark module has the same shape (the `Benchmark` protocol): a frozen `Problem` with a
`task_id`; `load(path=None) -> dict[str, Problem]`;
`make_job(problem, completion, limits, *, sanitize=False) -> Job`; `prompt(problem, *, chat)`
(a string the model continues, or chat messages asking for one fenced Python block); `STOP`, the
stop strings for completion-style prompts; `completion_from_output(problem, text, *, chat)`, which
turns a raw model output into the `completion` that `make_job(..., sanitize=False)` runs; and
`metadata(problem)`, the fields a report breaks results down by.

Modules: `humaneval`, `humaneval_plus`, `mbpp`, `mbpp_plus`, `apps`, `livecodebench`, `leetcode`
(the DeepSeek-Coder LeetCode-contest format) and `apibench` (Gorilla; no execution tests, scored
by `execrl.eval.apibench`), and `builtin`, execrl's own generated suite. `BENCHMARKS` maps names to those modules; `get_benchmark(name)` looks
one up.
"""

from __future__ import annotations

from typing import Any, Protocol

from execrl.data import (
    apibench,
    apps,
    builtin,
    humaneval,
    humaneval_plus,
    leetcode,
    livecodebench,
    mbpp,
    mbpp_plus,
)
from execrl.data.jsonl import DataError, PathLike, Sample, read_jsonl, read_samples
from execrl.generation import Prompt
from execrl.types import Job, Limits

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "DataError",
    "Sample",
    "apibench",
    "apps",
    "builtin",
    "get_benchmark",
    "humaneval",
    "humaneval_plus",
    "leetcode",
    "livecodebench",
    "mbpp",
    "mbpp_plus",
    "read_jsonl",
    "read_samples",
]


class Benchmark(Protocol):
    """What every benchmark module provides (modules satisfy this protocol structurally)."""

    NAME: str
    STOP: tuple[str, ...]
    """Stop strings for completion-style prompts (empty: stop at the model's end-of-sequence)."""

    def load(self, path: PathLike | None = None) -> dict[str, Any]: ...

    def make_job(self, problem: Any, completion: str, limits: Limits, *, sanitize: bool = False) -> Job: ...

    def prompt(self, problem: Any, *, chat: bool) -> Prompt: ...

    def completion_from_output(self, problem: Any, text: str, *, chat: bool) -> str: ...

    def metadata(self, problem: Any) -> dict[str, str]: ...


BENCHMARKS: dict[str, Benchmark] = {
    "humaneval": humaneval,
    "humaneval_plus": humaneval_plus,
    "mbpp": mbpp,
    "mbpp_plus": mbpp_plus,
    "apps": apps,
    "livecodebench": livecodebench,
    "leetcode": leetcode,
    "apibench": apibench,
    "builtin": builtin,
}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark module called `name` (case-insensitive); DataError lists the valid names."""
    try:
        return BENCHMARKS[name.strip().lower()]
    except KeyError:
        raise DataError(f"unknown benchmark {name!r}; valid names: {', '.join(sorted(BENCHMARKS))}")
