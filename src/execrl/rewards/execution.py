"""Unit-test rewards from the execution engine.

    reward = ExecutionReward("builtin", kind="pass_ratio")
    reward(completions=["    return sum(xs)\n"], task_id=["builtin/0"])   # -> [1.0]

`ExecutionReward` is a reward function in TRL's signature, `(completions, **columns) ->
list[float | None]`: `completions` are the model's outputs (strings, or chat messages whose last
message is the reply), and the dataset column `task_id` names each completion's task in the
benchmark. It can therefore be handed to TRL's `GRPOTrainer(reward_funcs=[reward], ...)` as is
(see docs/rewards.md). Trainers here call `score`, which also returns each sample's result.

Kinds:
- `binary`: 1.0 if every test passed, else 0.0.
- `pass_ratio`: the share of tests that passed (a program that does not load gets 0.0).

A sample whose execution ended in `sandbox_error` (the engine failed, never the program) gets
`None`: no reward at all, rather than the 0 of wrong code. TRL ignores `None` rewards; our
trainers mask the sample out of the loss and count it in the logs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from execrl.data import DataError, get_benchmark
from execrl.data.jsonl import PathLike
from execrl.types import ExecutionResult, Job, Limits, Status

__all__ = ["KINDS", "ExecutionReward", "Scored"]

KINDS = ("binary", "pass_ratio")


@dataclass(frozen=True)
class Scored:
    """One completion's reward (None after a sandbox_error) and the result it came from."""

    reward: float | None
    result: ExecutionResult


def reward_of(result: ExecutionResult, kind: str) -> float | None:
    if result.status is Status.SANDBOX_ERROR:
        return None
    if kind == "binary":
        return 1.0 if result.passed else 0.0
    if kind == "pass_ratio":
        return result.pass_ratio
    raise ValueError(f"reward kind must be one of {', '.join(KINDS)}, got {kind!r}")


class ExecutionReward:
    """A TRL-style reward function that runs completions against a benchmark's tests.

    `benchmark`: a benchmark name (`execrl.data.get_benchmark`); `problems`: its tasks by id
    (default: `load(data)`); `executor`: an `Executor` (default: a `LocalExecutor` created on first
    use and closed by `close()`); `chat`: whether completions are chat replies (code is then
    extracted from a fenced block, as the benchmark does for evaluation)."""

    def __init__(
        self,
        benchmark: str,
        *,
        data: PathLike | None = None,
        problems: dict[str, Any] | None = None,
        kind: str = "binary",
        limits: Limits | None = None,
        executor: Any = None,
        chat: bool = False,
        workers: int | None = None,
    ) -> None:
        if kind not in KINDS:
            raise DataError(f"reward kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.bench = get_benchmark(benchmark)
        self.problems = problems if problems is not None else self.bench.load(data)
        self.kind = kind
        self.limits = limits or Limits()
        self.chat = chat
        self.workers = workers
        self._executor = executor
        self._own = executor is None
        self.__name__ = f"execution_{kind}"  # TRL names reward columns after the function

    @property
    def execution(self) -> ExecutionReward:
        """Itself: the tests' reward (trainers evaluate with a stage's `execution`)."""
        return self

    @property
    def executor(self) -> Any:
        if self._executor is None:
            from execrl.sandbox.executor import LocalExecutor

            self._executor = LocalExecutor(workers=self.workers)
        return self._executor

    def score(
        self,
        task_ids: Sequence[str],
        outputs: Sequence[str],
        progress: Callable[[ExecutionResult], None] | None = None,
    ) -> list[Scored]:
        """Run each model output against its task's tests; results in the same order.
        `progress(result)` is called as each program finishes."""
        return [Scored(reward_of(r, self.kind), r) for _, r in self.run(task_ids, outputs, progress)]

    def run(
        self,
        task_ids: Sequence[str],
        outputs: Sequence[str],
        progress: Callable[[ExecutionResult], None] | None = None,
    ) -> list[tuple[Job, ExecutionResult]]:
        """Each model output's job (built from `completion_from_output`) and its result, in order."""
        if len(task_ids) != len(outputs):
            raise ValueError(f"{len(outputs)} completions but {len(task_ids)} task ids")
        jobs = []
        for task_id, text in zip(task_ids, outputs):
            problem = self.problems.get(task_id)
            if problem is None:
                raise DataError(f"task_id {task_id!r} is not in the {self.bench.NAME} data")
            completion = self.bench.completion_from_output(problem, text, chat=self.chat)
            jobs.append(self.bench.make_job(problem, completion, self.limits))
        return list(zip(jobs, self.executor.run(jobs, progress=progress)))

    def __call__(
        self, completions: Sequence[Any], task_id: Sequence[str] | None = None, **columns: Any
    ) -> list[float | None]:
        if task_id is None:
            raise DataError('the dataset needs a "task_id" column naming each completion\'s task')
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [s.reward for s in self.score(task_id, texts)]

    def close(self) -> None:
        if self._own and self._executor is not None:
            self._executor.close()
            self._executor = None
