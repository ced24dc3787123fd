"""LiveCodeBench rows: safe decoding of compressed private tests, the release window, stdin and
functional jobs in the real sandbox, prompts and output post-processing."""

from __future__ import annotations

import base64
import json
import os
import pickle
import zlib
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from execrl import Limits, LocalExecutor, Status
from execrl.data import livecodebench as lcb
from execrl.data.jsonl import DataError
from execrl.types import CallCase, CallTests, IOTests
from jsonl_fixtures import write_jsonl


def compress(value: Any) -> str:
    """LiveCodeBench's encoding: base64 of zlib of a pickle."""
    return base64.b64encode(zlib.compress(pickle.dumps(value))).decode()


def cases(pairs: Sequence[tuple[str, str]], testtype: str) -> list[dict[str, str]]:
    return [{"input": i, "output": o, "testtype": testtype} for i, o in pairs]


STDIN_ROW: dict[str, Any] = {
    "question_title": "A + B",
    "question_content": "Given A and B, print A + B.",
    "platform": "atcoder",
    "question_id": "abc999_a",
    "contest_id": "abc999",
    "contest_date": "2024-03-02T00:00:00",
    "starter_code": "",
    "difficulty": "easy",
    "public_test_cases": json.dumps(cases([("1 2\n", "3\n")], "stdin")),
    "private_test_cases": compress(json.dumps(cases([("10 20\n", "30\n"), ("-1 1\n", "0\n")], "stdin"))),
    "metadata": "{}",
}
FUNC_ROW: dict[str, Any] = {
    "question_title": "max-sum",
    "question_content": "Return the largest sum of k consecutive elements of nums.",
    "platform": "leetcode",
    "question_id": "3000",
    "contest_id": "weekly-contest-400",
    "contest_date": "2024-06-02T00:00:00",
    "starter_code": "class Solution:\n    def maxSum(self, nums: List[int], k: int) -> int:\n        ",
    "difficulty": "medium",
    "public_test_cases": json.dumps(cases([("[1, 2, 3]\n2", "5")], "functional")),
    "private_test_cases": json.dumps(cases([("[5, -1, 5]\n1", "5"), ("[2, 2]\n2\n", "4")], "functional")),
    "metadata": json.dumps({"func_name": "maxSum"}),
}


@pytest.fixture(scope="module")
def ex(executor: LocalExecutor) -> LocalExecutor:
    return executor  # the session's sandbox (tests/conftest.py)


@pytest.fixture
def problems(tmp_path: Path) -> dict[str, lcb.Problem]:
    return lcb.load(write_jsonl(tmp_path / "test.jsonl.gz", [STDIN_ROW, FUNC_ROW], gz=True))


# ---------------------------------------------------------------------------------------------
# Loading and decoding.


def test_stdin_tests_are_public_then_private(problems: dict[str, lcb.Problem]) -> None:
    p = problems["abc999_a"]
    assert isinstance(p.tests, IOTests) and p.tests.float_tol == 0.0
    assert [(c.input, c.output) for c in p.tests.cases] == [
        ("1 2\n", "3\n"),
        ("10 20\n", "30\n"),
        ("-1 1\n", "0\n"),
    ]
    assert p.contest_date == datetime(2024, 3, 2) and p.platform == "atcoder" and p.func_name is None


def test_functional_inputs_are_one_json_value_per_line(problems: dict[str, lcb.Problem]) -> None:
    assert problems["3000"].tests == CallTests(
        fn_name="maxSum",
        cases=(CallCase(([1, 2, 3], 2), 5), CallCase(([5, -1, 5], 1), 5), CallCase(([2, 2], 2), 4)),
        float_tol=0.0,
    )


def test_func_name_falls_back_to_the_starter_method(tmp_path: Path) -> None:
    row = {**FUNC_ROW, "metadata": "{}"}
    assert lcb.load(write_jsonl(tmp_path / "t.jsonl", [row]))["3000"].func_name == "maxSum"


def test_functional_without_func_name_or_starter_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{**FUNC_ROW, "metadata": "{}", "starter_code": ""}])
    with pytest.raises(DataError, match=r":1: functional tests need \"func_name\""):
        lcb.load(path)


def test_decode_private_tests_round_trips() -> None:
    text = json.dumps(cases([("1", "2")], "stdin"))
    assert lcb.decode_private_tests(compress(text)) == text


def test_malicious_pickle_raises_and_executes_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    blob = compress(Exploit())
    assert b"system" in zlib.decompress(base64.b64decode(blob))  # pickle.loads would run it
    path = write_jsonl(tmp_path / "t.jsonl", [STDIN_ROW, {**STDIN_ROW, "private_test_cases": blob}])
    with pytest.raises(DataError) as e:
        lcb.load(path)
    assert str(e.value).startswith(f'{path}:2: field "private_test_cases": not a plain-data pickle (')
    assert "refusing to load the global" in str(e.value)
    assert not marker.exists()


def test_pickle_of_anything_but_a_string_is_refused() -> None:
    with pytest.raises(DataError, match="the pickle holds list, not a JSON string"):
        lcb.decode_private_tests(compress([{"input": "1"}]))


def test_garbage_private_tests_name_the_field(tmp_path: Path) -> None:
    for blob, message in (("not base64!", "not base64"), (base64.b64encode(b"xx").decode(), "not zlib data")):
        path = write_jsonl(tmp_path / "t.jsonl", [{**STDIN_ROW, "private_test_cases": blob}])
        with pytest.raises(DataError, match=rf':1: field "private_test_cases": {message}'):
            lcb.load(path)


def test_decompression_is_bounded() -> None:
    blob = base64.b64encode(zlib.compress(b"\0" * 100_000)).decode()
    with pytest.raises(DataError, match="decompresses to more than 1000 bytes"):
        lcb.decode_private_tests(blob, max_bytes=1000)


def test_bad_public_tests_name_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [STDIN_ROW, {**FUNC_ROW, "public_test_cases": "[{]"}])
    with pytest.raises(DataError, match=r':2: field "public_test_cases" is not valid JSON'):
        lcb.load(path)
    path = write_jsonl(
        tmp_path / "t.jsonl", [{**STDIN_ROW, "public_test_cases": json.dumps([{"input": "1"}])}]
    )
    with pytest.raises(DataError, match=r':1: field "public_test_cases" case 0: "output" must be a string'):
        lcb.load(path)


def test_bad_functional_input_line_is_reported(tmp_path: Path) -> None:
    row = {**FUNC_ROW, "public_test_cases": json.dumps(cases([("[1, 2\n2", "3")], "functional"))}
    with pytest.raises(
        DataError, match=r':1: field "public_test_cases" case 0: "input" line .* is not a JSON value'
    ):
        lcb.load(write_jsonl(tmp_path / "t.jsonl", [row]))


def test_bad_contest_date_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r':1: field "contest_date": not an ISO 8601 date'):
        lcb.load(write_jsonl(tmp_path / "t.jsonl", [{**STDIN_ROW, "contest_date": "March 2024"}]))


# ---------------------------------------------------------------------------------------------
# Release window.


def test_load_filters_by_release_window(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [STDIN_ROW, FUNC_ROW])
    assert list(lcb.load(path, start_date="2024-04-01")) == ["3000"]
    assert list(lcb.load(path, end_date="2024-04-01")) == ["abc999_a"]
    assert list(lcb.load(path, start_date="2024-03-02", end_date="2024-06-02")) == ["abc999_a", "3000"]
    assert list(lcb.load(path, start_date=date(2024, 7, 1))) == []


def test_release_window_bounds_are_inclusive_and_days_mean_midnight() -> None:
    assert lcb.in_release_window("2024-03-02T00:00:00", "2024-03-02", "2024-03-02")
    assert not lcb.in_release_window("2024-03-02T10:00:00", None, "2024-03-02")
    assert lcb.in_release_window("2024-03-02T10:00:00Z", datetime(2024, 3, 2, 10), None)
    assert lcb.in_release_window("2024-03-02T12:00:00+02:00", "2024-03-02T10:00:00", "2024-03-02T10:00:00")
    with pytest.raises(DataError, match="not an ISO 8601 date"):
        lcb.in_release_window("2024-03-02", "yesterday")


# ---------------------------------------------------------------------------------------------
# Jobs in the real sandbox.

STDIN_GOOD = "a, b = map(int, input().split())\nprint(a + b)\n"
FUNC_GOOD = (
    "class Solution:\n    def maxSum(self, nums: List[int], k: int) -> int:\n"
    "        return max(sum(nums[i:i + k]) for i in range(len(nums) - k + 1))\n"
)


def test_jobs_pass_and_fail_in_the_sandbox(ex: LocalExecutor, problems: dict[str, lcb.Problem]) -> None:
    """The functional solution uses `List` unimported: the prelude provides it, as in LCB."""
    stdin, func = problems["abc999_a"], problems["3000"]
    jobs = [
        lcb.make_job(stdin, STDIN_GOOD, Limits()),
        lcb.make_job(stdin, STDIN_GOOD.replace("a + b", "a - b"), Limits()),
        lcb.make_job(func, FUNC_GOOD, Limits()),
        lcb.make_job(func, FUNC_GOOD.replace("max(", "min("), Limits()),
    ]
    results = ex.run(jobs)
    assert [r.status for r in results] == [Status.PASSED, Status.FAILED, Status.PASSED, Status.FAILED]
    assert results[0].tests_total == 3 and results[2].tests_total == 3


def test_error_lines_count_from_the_completion(ex: LocalExecutor, problems: dict[str, lcb.Problem]) -> None:
    job = lcb.make_job(problems["abc999_a"], "x = 1\nprint(1 / 0)\n", Limits())
    assert job.program.startswith(lcb.PRELUDE) and job.completion_start == len(lcb.PRELUDE)
    [result] = ex.run([job])
    assert result.status is Status.RUNTIME_ERROR and result.error is not None and result.error.line == 2


# ---------------------------------------------------------------------------------------------
# Prompts and outputs.


def test_chat_prompt_is_lcbs_generic_prompt(problems: dict[str, lcb.Problem]) -> None:
    [message] = lcb.prompt(problems["3000"], chat=True)
    content = message["content"]
    assert content.startswith("You are an expert Python programmer.")
    assert "### Question:\nReturn the largest sum" in content
    assert f"```python\n{FUNC_ROW['starter_code']}\n```" in content
    assert content.endswith("### Answer: (use the provided format with backticks)\n\n")
    [stdin_message] = lcb.prompt(problems["abc999_a"], chat=True)
    assert "Read the inputs from stdin" in stdin_message["content"]


def test_completion_prompt_ends_in_the_starter_code(problems: dict[str, lcb.Problem]) -> None:
    text = lcb.prompt(problems["3000"], chat=False)
    assert isinstance(text, str) and text.endswith("```python\n" + FUNC_ROW["starter_code"])
    assert lcb.STOP == ("```",)


def test_completion_output_is_joined_to_the_starter_code(problems: dict[str, lcb.Problem]) -> None:
    func = problems["3000"]
    body = "return max(sum(nums[i:i + k]) for i in range(len(nums) - k + 1))\n```\n\nThis is O(n*k)."
    completion = lcb.completion_from_output(func, body, chat=False)
    assert (
        completion
        == FUNC_ROW["starter_code"] + "return max(sum(nums[i:i + k]) for i in range(len(nums) - k + 1))\n"
    )
    rewritten = lcb.completion_from_output(func, "\n" + FUNC_GOOD + "```", chat=False)
    assert rewritten == "\n" + FUNC_GOOD  # the model rewrote the class: keep its code alone


def test_chat_outputs_are_extracted(problems: dict[str, lcb.Problem]) -> None:
    chatty = f"Let's think.\n\n```python\n{STDIN_GOOD}```\n\nThis reads two integers."
    assert lcb.completion_from_output(problems["abc999_a"], chatty, chat=True) == STDIN_GOOD
    chatty = f"```python\n{FUNC_GOOD}\nprint(Solution().maxSum([1], 1))\n```"
    assert lcb.completion_from_output(problems["3000"], chatty, chat=True) == FUNC_GOOD


def test_metadata(problems: dict[str, lcb.Problem]) -> None:
    assert lcb.metadata(problems["3000"]) == {
        "difficulty": "medium",
        "platform": "leetcode",
        "contest_date": "2024-06-02",
    }
