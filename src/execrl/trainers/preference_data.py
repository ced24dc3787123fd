"""PLUM's on-policy preference data: the policy's samples labelled by validated tests, then paired.

`label` runs every sample against the valid tests of its task (one sandbox job per sample, the
tests run as `testgen.validate` runs them) and says, per sample, whether it passes all of them
(*chosen* in PLUM's words), fails any (*rejected*), or cannot be labelled (`None`: its task has no
valid test, or the sandbox failed). `dpo_pairs` pairs chosen with rejected samples of the same
task: a task without both kinds gives no pair (PLUM); at most `max_pairs` per task, drawn without
replacement from all chosen x rejected combinations with a seeded generator, so the same inputs
give the same pairs. Identical completions of a task count once (the first), so one program that
the policy samples often is not paired many times. `kto_examples` gives KTO's unpaired data: every
labelled sample, desirable when chosen, identical completions once.

Not here (the preference loop, `execrl prefer`, is later work): sampling from the policy, the
rounds, and the updates.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from execrl.data import get_benchmark
from execrl.sandbox.executor import Executor
from execrl.testgen.tasks import spec
from execrl.testgen.validate import tests_job
from execrl.types import IOCase, Limits, Status

__all__ = ["Sample", "dpo_pairs", "kto_examples", "label"]


@dataclass(frozen=True)
class Sample:
    task_id: str
    completion: str


def label(
    benchmark: str,
    problems: Mapping[str, Any],
    samples: Sequence[Sample],
    tests: Mapping[str, Sequence[str | IOCase]],
    executor: Executor,
    limits: Limits | None = None,
) -> list[bool | None]:
    """Per sample: True (passes every test of its task), False (fails one), None (no tests, or a
    sandbox error). `tests` are valid tests by task_id (e.g. the rows `execrl tests validate`
    marked valid)."""
    bench = get_benchmark(benchmark)
    limits = limits or Limits()
    jobs, where = [], []
    for i, s in enumerate(samples):
        task_tests = list(tests.get(s.task_id, ()))
        if not task_tests:
            continue
        task = spec(bench.NAME, problems[s.task_id])
        jobs.append(tests_job(bench, problems[s.task_id], task, s.completion, task_tests, limits))
        where.append((i, len(task_tests)))
    labels: list[bool | None] = [None] * len(samples)
    for (i, n), result in zip(where, executor.run(jobs) if jobs else []):
        if result.status is Status.SANDBOX_ERROR:
            continue
        labels[i] = len(result.tests) == n and all(r.status is Status.PASSED for r in result.tests)
    return labels


def _distinct(samples: Sequence[Sample], labels: Sequence[bool | None]) -> dict[str, list[tuple[int, bool]]]:
    """Per task, in order: (sample index, label) of labelled samples, identical completions once."""
    seen: set[tuple[str, str]] = set()
    by_task: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for i, (s, ok) in enumerate(zip(samples, labels)):
        if ok is None or (s.task_id, s.completion) in seen:
            continue
        seen.add((s.task_id, s.completion))
        by_task[s.task_id].append((i, ok))
    return by_task


def dpo_pairs(
    samples: Sequence[Sample], labels: Sequence[bool | None], *, max_pairs: int = 4, seed: int = 0
) -> list[tuple[int, int]]:
    """(chosen index, rejected index) pairs, task by task in first-appearance order."""
    rng = random.Random(seed)
    pairs: list[tuple[int, int]] = []
    for items in _distinct(samples, labels).values():
        chosen = [i for i, ok in items if ok]
        rejected = [i for i, ok in items if not ok]
        combos = [(c, r) for c in chosen for r in rejected]
        pairs += rng.sample(combos, min(max_pairs, len(combos)))
    return pairs


def kto_examples(samples: Sequence[Sample], labels: Sequence[bool | None]) -> list[tuple[int, bool]]:
    """(sample index, desirable) for every labelled sample, identical completions of a task once."""
    return [item for items in _distinct(samples, labels).values() for item in items]
