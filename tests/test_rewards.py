"""Execution rewards on the real sandbox: what counts as a pass, and what gets no reward at all."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from engine_stubs import HalfBrokenEngine
from execrl.data import DataError, builtin
from execrl.rewards.execution import ExecutionReward, reward_of
from execrl.types import ExecutionResult, Status


@pytest.fixture(scope="module")
def problems() -> dict[str, builtin.Problem]:
    suite = builtin.generate(seed=0, size=60)
    return {t: p for t, p in suite.items() if p.kind == "function"}


@pytest.fixture
def task(problems: dict[str, builtin.Problem]) -> builtin.Problem:
    return next(iter(problems.values()))


def make(problems: dict[str, Any], executor: Any, kind: str = "binary") -> ExecutionReward:
    return ExecutionReward("builtin", problems=problems, kind=kind, executor=executor)


def test_reference_solution_scores_one(problems, task, executor):
    assert make(problems, executor)(completions=[task.solution], task_id=[task.task_id]) == [1.0]


def test_wrong_code_scores_zero(problems, task, executor):
    assert make(problems, executor)(completions=["    return None\n"], task_id=[task.task_id]) == [0.0]


@pytest.mark.parametrize(
    "hostile",
    [
        "    import sys\n    sys.exit(0)\n",
        "    class E:\n        def __eq__(self, o): return True\n        def __ne__(self, o): return False\n    return E()\n",
        "    import os\n    os._exit(0)\n",
    ],
    ids=["exit_early", "always_equal", "os_exit"],
)
def test_reward_hacks_score_zero(problems, task, executor, hostile):
    assert make(problems, executor, "pass_ratio")(completions=[hostile], task_id=[task.task_id]) == [0.0]


def test_pass_ratio_counts_the_tests_that_passed(problems, executor):
    # a solution that is right only when the input is empty passes some tests and fails others
    scored = []
    for p in problems.values():
        first = p.tests[0]
        guess = first.split("==", 1)[1].strip() if "==" in first else "None"
        r = make(problems, executor, "pass_ratio").score([p.task_id], [f"    return {guess}\n"])[0]
        scored.append((r.reward, r.result))
    partial = [(rw, res) for rw, res in scored if rw is not None and 0 < rw < 1]
    assert partial, "no task where returning one test's answer passes some but not all tests"
    for rw, res in partial:
        assert rw == pytest.approx(res.tests_passed / res.tests_total)


def test_sandbox_error_gets_no_reward_not_zero():
    r = ExecutionResult(status=Status.SANDBOX_ERROR, tests_passed=0, tests_total=3)
    assert reward_of(r, "binary") is None
    assert reward_of(r, "pass_ratio") is None
    assert reward_of(replace(r, status=Status.TIMEOUT), "binary") == 0.0


def test_sandbox_errors_become_none_in_order(problems, task, executor):
    reward = make(problems, HalfBrokenEngine(executor))
    assert reward(completions=[task.solution] * 4, task_id=[task.task_id] * 4) == [1.0, None, 1.0, None]


def test_trl_calling_convention(problems, task, executor):
    """TRL passes prompts, conversational completions, completion ids and every dataset column."""
    reward = make(problems, executor)
    out = reward(
        prompts=[[{"role": "user", "content": "..."}]] * 2,
        completions=[
            [{"role": "assistant", "content": task.solution}],
            [{"role": "assistant", "content": "    return 0\n"}],
        ],
        completion_ids=[[1, 2], [3]],
        task_id=[task.task_id] * 2,
        trainer_state=None,
        split=["train", "train"],
    )
    assert out == [1.0, 0.0]
    assert reward.__name__ == "execution_binary"


def test_missing_task_id_column_is_a_clear_error(problems, executor):
    with pytest.raises(DataError, match="task_id"):
        make(problems, executor)(completions=["    return 1\n"])


def test_unknown_task_is_a_clear_error(problems, executor):
    with pytest.raises(DataError, match="builtin/nope"):
        make(problems, executor)(completions=["    return 1\n"], task_id=["builtin/nope"])


def test_unknown_kind_is_rejected(problems, executor):
    with pytest.raises(DataError, match="reward kind"):
        ExecutionReward("builtin", problems=problems, kind="partial", executor=executor)


def test_score_reports_each_finished_program(problems, task, executor):
    seen: list[ExecutionResult] = []
    make(problems, executor).score(
        [task.task_id] * 3, [task.solution, "    return None\n", "x ="], seen.append
    )
    assert len(seen) == 3
