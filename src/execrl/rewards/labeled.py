"""Rewards for completions whose tests come with each sample: the form other frameworks pass.

verl hands a reward function `ground_truth` per sample, OpenRLHF's remote reward server gets
`labels`; `LabeledReward` scores a completion against such a label. A label is either

- a **task id** of a benchmark execrl knows (`"HumanEval/34"`, `"builtin/3"`): the task's own tests,
  prompt handling and code extraction, exactly as `ExecutionReward` and `execrl evaluate` use them;
- a **JSON object of tests** (a string or an already decoded dict), in one of two forms:
  - APPS's `input_output` (also PRIME's and verl's code data): `{"inputs": [...], "outputs": [...]}`
    runs the program as `__main__` once per case with the input on stdin and compares stdout;
    with `"fn_name": "f"`, `inputs[i]` is the argument list of a call `f(*inputs[i])` and
    `outputs[i]` the value it must return;
  - assertions: `{"asserts": ["assert f(1) == 2", ...], "setup": "import math"}` (`setup`
    optional): each assert is one test, run in the trusted test process against the program.

For JSON tests the program is taken from the completion's fenced code block (or the whole text),
like the benchmarks' chat mode. Scores have `ExecutionReward`'s kinds (`binary`, `pass_ratio`), and
a `sandbox_error` (the engine failed, never the program) has no reward: `Scored.reward` is None.
Callers with a float-only contract decide what that becomes (see integrations/).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from execrl.data import DataError, get_benchmark
from execrl.data import sanitize as _sanitize
from execrl.data.jsonl import PathLike, Row
from execrl.rewards.execution import KINDS, Scored, reward_of
from execrl.types import AssertTests, ExecutionResult, Job, Limits

__all__ = ["LabeledReward", "job_from_tests"]


def job_from_tests(spec: Any, text: str, limits: Limits) -> Job:
    """A job running the program in `text` against the JSON tests `spec` (a string or a dict)."""
    from execrl.data import apps

    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as e:
            raise DataError(f"label: not valid JSON ({e.msg}: column {e.colno})") from None
    if not isinstance(spec, dict):
        raise DataError(f"label: JSON tests must be an object, got {type(spec).__name__}")
    if "asserts" in spec:
        asserts, setup = spec["asserts"], spec.get("setup", "")
        if not isinstance(asserts, list) or not asserts or not all(isinstance(a, str) for a in asserts):
            raise DataError('label: "asserts" must be a non-empty array of strings')
        if not isinstance(setup, str):
            raise DataError('label: "setup" must be a string')
        program = _sanitize.extract_code(text, None, definitions_only=False)
        return Job(program=program, tests=AssertTests(setup=setup, tests=tuple(asserts)), limits=limits)
    tests = apps._tests(Row("label", 0, {"input_output": spec}))
    if tests is None:
        raise DataError('label: JSON tests need "inputs" and "outputs" (non-empty) or "asserts"')
    problem = apps.Problem(task_id="label", question="", tests=tests)
    return apps.make_job(problem, apps.completion_from_output(problem, text, chat=True), limits)


def _is_json_tests(label: Any) -> bool:
    return isinstance(label, dict) or (isinstance(label, str) and label.lstrip().startswith("{"))


class LabeledReward:
    """Scores completions against per-sample labels (task ids or JSON tests, see the module doc).

    `benchmark` (with `data`): where task-id labels are looked up, unless a call names another
    benchmark per sample; `chat`: whether benchmark completions are chat replies (code taken from a
    fenced block) or the text after the benchmark's prompt; `executor`: an `Executor` (default a
    `LocalExecutor` of `workers` workers, created on first use and closed by `close()`)."""

    def __init__(
        self,
        benchmark: str | None = None,
        *,
        data: PathLike | None = None,
        kind: str = "binary",
        limits: Limits | None = None,
        chat: bool = True,
        executor: Any = None,
        workers: int | None = None,
    ) -> None:
        if kind not in KINDS:
            raise DataError(f"reward kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.benchmark, self.data, self.kind, self.chat = benchmark, data, kind, chat
        self.limits = limits or Limits()
        self.workers = workers
        self._executor = executor
        self._own = executor is None
        self._problems: dict[str, dict[str, Any]] = {}

    @property
    def executor(self) -> Any:
        if self._executor is None:
            from execrl.sandbox.executor import LocalExecutor

            self._executor = LocalExecutor(workers=self.workers)
        return self._executor

    def _task_job(self, task_id: str, text: str, benchmark: str | None) -> Job:
        name = benchmark or self.benchmark
        if not name:
            raise DataError(
                f"label {task_id!r} is a task id, but no benchmark is named (or the label is not JSON)"
            )
        bench = get_benchmark(name)
        if bench.NAME not in self._problems:
            self._problems[bench.NAME] = bench.load(self.data if name == self.benchmark else None)
        problem = self._problems[bench.NAME].get(task_id)
        if problem is None:
            raise DataError(f"label {task_id!r} is not a task of {bench.NAME}")
        return bench.make_job(
            problem, bench.completion_from_output(problem, text, chat=self.chat), self.limits
        )

    def job(self, text: str, label: Any, benchmark: str | None = None) -> Job:
        """The job that scores `text` against `label`; DataError for a label that names no tests."""
        if _is_json_tests(label):
            return job_from_tests(label, text, self.limits)
        if not isinstance(label, str):
            raise DataError(f"label must be a task id or JSON tests, got {type(label).__name__}")
        return self._task_job(label, text, benchmark)

    def score(
        self, texts: Sequence[str], labels: Sequence[Any], benchmarks: Sequence[str | None] | None = None
    ) -> list[Scored]:
        """One `Scored` per text, in order; the programs run as one batch."""
        if len(texts) != len(labels):
            raise DataError(f"{len(texts)} completions but {len(labels)} labels")
        names = list(benchmarks) if benchmarks is not None else [None] * len(texts)
        jobs = [self.job(t, lab, b) for t, lab, b in zip(texts, labels, names)]
        return [Scored(self.score_result(r), r) for r in self.executor.run(jobs)]

    def score_result(self, result: ExecutionResult) -> float | None:
        """The reward of one result (None after a sandbox_error)."""
        return reward_of(result, self.kind)

    def close(self) -> None:
        if self._own and self._executor is not None:
            self._executor.close()
            self._executor = None
