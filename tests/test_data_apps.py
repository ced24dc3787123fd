"""APPS loading (codeparrot/apps rows) and job building for stdin/stdout and call-based problems."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from execrl.data import apps
from execrl.data.jsonl import DataError
from execrl.types import CallCase, CallTests, IOCase, IOTests, Limits


def row(problem_id: int, input_output: Any, **extra: Any) -> dict[str, Any]:
    return {
        "problem_id": problem_id,
        "question": f"Question {problem_id}",
        "solutions": json.dumps(["print(1)"]),
        "input_output": json.dumps(input_output) if isinstance(input_output, dict) else input_output,
        "difficulty": "interview",
        "url": "https://example.com",
        "starter_code": "",
        **extra,
    }


IO_ROW = row(10, {"inputs": ["1 2\n", ["3 4", "5"]], "outputs": ["3\n", ["7", "5"]]})
CALL_ROW = row(
    20,
    {"fn_name": "add", "inputs": [[1, 2], [[1], [2]]], "outputs": [[3], [[1, 2]]]},
    starter_code="def add(a, b):\n\t",
)
EMPTY_ROW = row(30, "", solutions="")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def problems(tmp_path: Path) -> dict[str, apps.Problem]:
    return apps.load(write_jsonl(tmp_path / "test.jsonl", [IO_ROW, CALL_ROW, EMPTY_ROW]))


def test_load_keys_by_problem_id_in_order(problems: dict[str, apps.Problem]) -> None:
    assert list(problems) == ["10", "20", "30"]
    assert problems["10"].difficulty == "interview" and problems["10"].solutions == ("print(1)",)
    assert problems["20"].starter_code == "def add(a, b):\n\t"


def test_stdin_cases_join_line_lists(problems: dict[str, apps.Problem]) -> None:
    assert problems["10"].tests == IOTests(
        cases=(IOCase(input="1 2\n", output="3\n"), IOCase(input="3 4\n5\n", output="7\n5"))
    )


def test_call_cases_spread_arguments(problems: dict[str, apps.Problem]) -> None:
    assert problems["20"].tests == CallTests(
        fn_name="add",
        cases=(CallCase(args=(1, 2), expected=[3]), CallCase(args=([1], [2]), expected=[[1, 2]])),
    )
    assert problems["20"].fn_name == "add"


def test_stdin_job_runs_as_main(problems: dict[str, apps.Problem]) -> None:
    job = apps.make_job(problems["10"], "print(sum(map(int, input().split())))", Limits())
    assert job.main is True and job.completion_start == 0
    assert job.program == "print(sum(map(int, input().split())))"


def test_call_job_is_not_main(problems: dict[str, apps.Problem]) -> None:
    job = apps.make_job(problems["20"], "def add(a, b):\n    return a + b\n", Limits())
    assert job.main is False and isinstance(job.tests, CallTests)


def test_problem_without_tests_loads_but_cannot_make_a_job(problems: dict[str, apps.Problem]) -> None:
    assert problems["30"].tests is None and problems["30"].solutions == ()
    with pytest.raises(DataError, match=r"^apps problem 30 has no tests$"):
        apps.make_job(problems["30"], "print(1)", Limits())


def test_sanitize_keeps_stdin_top_level_code(problems: dict[str, apps.Problem]) -> None:
    chat = "```python\na, b = map(int, input().split())\nprint(a + b)\n```\nThis adds."
    job = apps.make_job(problems["10"], chat, Limits(), sanitize=True)
    assert job.program == "a, b = map(int, input().split())\nprint(a + b)\n"


def test_sanitize_keeps_only_definitions_for_call_problems(problems: dict[str, apps.Problem]) -> None:
    chat = "```python\ndef add(a, b):\n    return a + b\n\nprint(add(1, 2))\n```"
    assert (
        apps.make_job(problems["20"], chat, Limits(), sanitize=True).program
        == "def add(a, b):\n    return a + b\n"
    )


def test_decoded_input_output_object_is_accepted(tmp_path: Path) -> None:
    decoded = {**IO_ROW, "input_output": {"inputs": ["1\n"], "outputs": ["1\n"]}}
    problem = apps.load(write_jsonl(tmp_path / "a.jsonl", [decoded]))["10"]
    assert problem.tests == IOTests(cases=(IOCase("1\n", "1\n"),))


def test_malformed_input_output_json_names_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "a.jsonl", [IO_ROW, {**IO_ROW, "problem_id": 11, "input_output": '{"inputs": ['}]
    )
    with pytest.raises(DataError, match=r'a\.jsonl:2: field "input_output" is not valid JSON \('):
        apps.load(path)


def test_wrong_type_of_input_output_is_rejected(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{**IO_ROW, "input_output": [1, 2]}])
    with pytest.raises(DataError) as e:
        apps.load(path)
    assert str(e.value) == f'{path}:1: field "input_output" must be a JSON string, got an array'


def test_mismatched_case_counts_are_rejected(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [row(1, {"inputs": ["1"], "outputs": []})])
    with pytest.raises(DataError, match=r':1: field "input_output": 1 inputs but 0 outputs'):
        apps.load(path)


def test_call_input_must_be_argument_list(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [row(1, {"fn_name": "f", "inputs": [5], "outputs": [5]})])
    with pytest.raises(DataError, match=r'field "input_output": inputs\[0\] must be an array of arguments'):
        apps.load(path)


def test_missing_question_names_field(tmp_path: Path) -> None:
    bad = {k: v for k, v in IO_ROW.items() if k != "question"}
    with pytest.raises(DataError, match=r':1: missing field "question"$'):
        apps.load(write_jsonl(tmp_path / "a.jsonl", [bad]))
