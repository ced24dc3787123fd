"""LeetCode-contest rows (DeepSeek-Coder's format and the list-of-cases form): loading, jobs in
the real sandbox, prompts and output post-processing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from execrl import Limits, LocalExecutor, Status
from execrl.data import leetcode
from execrl.data.jsonl import DataError
from execrl.types import AssertTests, CallCase, CallTests
from jsonl_fixtures import write_jsonl

TEXT = "You are given a string word of distinct letters. Return the minimum number of pushes."
STARTER = "class Solution:\n    def minimumPushes(self, word: str) -> int:\n        "
DEEPSEEK_TEST = """
my_solution = Solution()

test_input = { "word": "abcde" }
assert my_solution.minimumPushes(**test_input) == 5

test_input = { "word": "b" }
assert my_solution.minimumPushes(**test_input) == 1

test_input = { "word": "xycdefghij" }
assert my_solution.minimumPushes(**test_input) == 12"""
DEEPSEEK_ROW: dict[str, Any] = {
    "task_id": "weekly-contest-381-minimum-number-of-pushes-to-type-word-i",
    "url": "https://leetcode.com/problems/minimum-number-of-pushes-to-type-word-i",
    "meta": {"questionId": "3275", "difficulty": "Easy"},
    "prompt": f'"""\n{TEXT}\n"""\n{STARTER}',
    "prompt_sft": f"{TEXT}\n\nPlease complete the code below to solve above prblem:\n```python\n{STARTER}\n```",
    "test": DEEPSEEK_TEST,
    "start_time": 1705804200,
}
LIST_ROW: dict[str, Any] = {
    "task_id": 42,
    "content": "Return a + b.",
    "starter_code": "class Solution:\n    def add(self, a: int, b: int) -> int:\n        ",
    "tests": [{"input": [1, 2], "output": 3}, {"input": {"b": 5, "a": 1}, "output": 6}],
    "difficulty": "Medium",
}
GOOD = (
    "class Solution:\n    def minimumPushes(self, word: str) -> int:\n"
    "        return sum(i // 8 + 1 for i in range(len(word)))\n"
)


@pytest.fixture(scope="module")
def ex(executor: LocalExecutor) -> LocalExecutor:
    return executor  # the session's sandbox (tests/conftest.py)


@pytest.fixture
def problems(tmp_path: Path) -> dict[str, leetcode.Problem]:
    return leetcode.load(write_jsonl(tmp_path / "20240121-Jul.jsonl.gz", [DEEPSEEK_ROW, LIST_ROW], gz=True))


# ---------------------------------------------------------------------------------------------
# Loading.


def test_deepseek_prompt_is_split_into_text_and_starter(problems: dict[str, leetcode.Problem]) -> None:
    p = problems[DEEPSEEK_ROW["task_id"]]
    assert (p.content, p.starter_code, p.entry_point, p.difficulty) == (
        TEXT,
        STARTER,
        "minimumPushes",
        "Easy",
    )


def test_deepseek_asserts_become_one_test_each_with_a_fresh_solution(
    problems: dict[str, leetcode.Problem],
) -> None:
    tests = problems[DEEPSEEK_ROW["task_id"]].tests
    assert isinstance(tests, AssertTests)
    assert tests.tests == (
        'my_solution = Solution()\ntest_input = { "word": "abcde" }\n'
        "assert my_solution.minimumPushes(**test_input) == 5",
        'my_solution = Solution()\ntest_input = { "word": "b" }\nassert my_solution.minimumPushes(**test_input) == 1',
        'my_solution = Solution()\ntest_input = { "word": "xycdefghij" }\n'
        "assert my_solution.minimumPushes(**test_input) == 12",
    )


def test_case_list_becomes_call_tests_with_keyword_inputs_ordered(
    problems: dict[str, leetcode.Problem],
) -> None:
    p = problems["42"]
    assert p.tests == CallTests(fn_name="add", cases=(CallCase((1, 2), 3), CallCase((1, 5), 6)))
    assert p.content == "Return a + b." and p.entry_point == "add"


def test_explicit_func_name_wins(tmp_path: Path) -> None:
    row = {**LIST_ROW, "func_name": "plus", "tests": [{"input": [1, 2], "output": 3}]}
    assert leetcode.load(write_jsonl(tmp_path / "l.jsonl", [row]))["42"].entry_point == "plus"


def test_keyword_input_not_matching_the_signature_is_an_error(tmp_path: Path) -> None:
    row = {**LIST_ROW, "tests": [{"input": {"a": 1, "c": 2}, "output": 3}]}
    path = write_jsonl(tmp_path / "l.jsonl", [row])
    with pytest.raises(
        DataError, match=r":1: field \"tests\" item 0: keyword input \['a', 'c'\] does not match"
    ):
        leetcode.load(path)


def test_test_source_without_top_level_assert_is_an_error(tmp_path: Path) -> None:
    row = {**DEEPSEEK_ROW, "test": "def check(candidate):\n    assert candidate('a') == 1\n"}
    path = write_jsonl(tmp_path / "l.jsonl", [LIST_ROW, row])
    with pytest.raises(DataError) as e:
        leetcode.load(path)
    assert str(e.value) == f'{path}:2: field "test" has no top-level assert'


def test_missing_tests_and_entry_point_are_named(tmp_path: Path) -> None:
    row = {k: v for k, v in LIST_ROW.items() if k != "tests"}
    with pytest.raises(DataError, match=r':1: missing field "tests" \(or "test"\)'):
        leetcode.load(write_jsonl(tmp_path / "l.jsonl", [row]))
    row = {**LIST_ROW, "starter_code": ""}
    with pytest.raises(DataError, match=r':1: missing field "entry_point"'):
        leetcode.load(write_jsonl(tmp_path / "l.jsonl", [row]))


# ---------------------------------------------------------------------------------------------
# Jobs in the real sandbox.


def test_jobs_pass_and_fail_in_the_sandbox(ex: LocalExecutor, problems: dict[str, leetcode.Problem]) -> None:
    ds, listed = problems[DEEPSEEK_ROW["task_id"]], problems["42"]
    add = "class Solution:\n    def add(self, a: int, b: int) -> int:\n        return a + b\n"
    jobs = [
        leetcode.make_job(ds, GOOD, Limits()),
        leetcode.make_job(ds, GOOD.replace("// 8", "// 2"), Limits()),
        leetcode.make_job(listed, add, Limits()),
        leetcode.make_job(listed, add.replace("a + b", "a * b"), Limits()),
    ]
    results = ex.run(jobs)
    assert [r.status for r in results] == [Status.PASSED, Status.FAILED, Status.PASSED, Status.FAILED]
    assert results[0].tests_total == 3


def test_a_crash_in_one_test_does_not_sink_the_next(
    ex: LocalExecutor, problems: dict[str, leetcode.Problem]
) -> None:
    """The candidate exits on the second input; the third test restarts it and gets its own
    `Solution()` (the repeated `my_solution = Solution()`), so it still passes."""
    crashing = GOOD.replace(
        "        return", "        if word == 'b':\n            import os; os._exit(0)\n        return"
    )
    [result] = ex.run([leetcode.make_job(problems[DEEPSEEK_ROW["task_id"]], crashing, Limits())])
    assert [t.status for t in result.tests] == [Status.PASSED, Status.NO_RESULT, Status.PASSED]


# ---------------------------------------------------------------------------------------------
# Prompts and outputs.


def test_completion_prompt_is_deepseeks_prompt(problems: dict[str, leetcode.Problem]) -> None:
    assert leetcode.prompt(problems[DEEPSEEK_ROW["task_id"]], chat=False) == DEEPSEEK_ROW["prompt"]
    assert leetcode.STOP == ("\ndef", "\nclass", "\nif", "\n#", "\nprint")


def test_chat_prompt_shows_text_and_starter(problems: dict[str, leetcode.Problem]) -> None:
    [message] = leetcode.prompt(problems[DEEPSEEK_ROW["task_id"]], chat=True)
    assert message["content"].startswith(TEXT)
    assert f"```python\n{STARTER.rstrip()}\n```" in message["content"]


def test_completion_output_continues_the_starter(problems: dict[str, leetcode.Problem]) -> None:
    p = problems[DEEPSEEK_ROW["task_id"]]
    raw = "return sum(i // 8 + 1 for i in range(len(word)))\n\n\nif __name__ == '__main__':\n    print(1)"
    assert leetcode.completion_from_output(p, raw, chat=False) == GOOD.rstrip("\n") + "\n\n"


def test_chat_output_with_deepseek_tags_or_fences(problems: dict[str, leetcode.Problem]) -> None:
    p = problems[DEEPSEEK_ROW["task_id"]]
    tagged = f"[PYTHON]\n{GOOD}[/PYTHON]\nThis greedy assignment is optimal."
    assert leetcode.completion_from_output(p, tagged, chat=True) == GOOD
    fenced = f"Explanation first.\n```python\n{GOOD}\nprint(Solution().minimumPushes('abc'))\n```"
    assert leetcode.completion_from_output(p, fenced, chat=True) == GOOD


def test_completions_run(ex: LocalExecutor, problems: dict[str, leetcode.Problem]) -> None:
    p = problems[DEEPSEEK_ROW["task_id"]]
    raw = "return sum(i // 8 + 1 for i in range(len(word)))\n\n\nif __name__ == '__main__':\n    print(1)"
    [result] = ex.run([leetcode.make_job(p, leetcode.completion_from_output(p, raw, chat=False), Limits())])
    assert result.status is Status.PASSED


def test_metadata_is_the_difficulty(problems: dict[str, leetcode.Problem]) -> None:
    assert leetcode.metadata(problems[DEEPSEEK_ROW["task_id"]]) == {"difficulty": "Easy"}
    assert leetcode.metadata(problems["42"]) == {"difficulty": "Medium"}
