"""MBPP loading (original and sanitized formats) and job building."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from execrl.data import mbpp
from execrl.data.jsonl import DataError
from execrl.types import AssertTests, Limits

ORIGINAL: dict[str, Any] = {
    "text": "Write a function to find the shared elements from the given two lists.",
    "code": "def similar_elements(a, b):\n  return tuple(set(a) & set(b))",
    "task_id": 2,
    "test_setup_code": "",
    "test_list": [
        "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
        "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))",
    ],
    "challenge_test_list": [],
}
SANITIZED: dict[str, Any] = {
    "source_file": "Benchmark Questions Verification V2.ipynb",
    "task_id": 3,
    "prompt": "Write a python function to identify non-prime numbers.",
    "code": "import math\ndef is_not_prime(n):\n    return n < 2 or any(n % i == 0 for i in range(2, n))",
    "test_imports": ["import math"],
    "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True"],
}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_load_reads_both_formats_in_order(tmp_path: Path) -> None:
    problems = mbpp.load(write_jsonl(tmp_path / "mbpp.jsonl", [ORIGINAL, SANITIZED]))
    assert list(problems) == ["2", "3"]
    assert problems["2"].prompt == ORIGINAL["text"]
    assert problems["3"].prompt == SANITIZED["prompt"] and problems["3"].test_imports == ("import math",)
    assert problems["3"].source_file == SANITIZED["source_file"]


def test_make_job_runs_completion_as_whole_program(tmp_path: Path) -> None:
    problem = mbpp.load(write_jsonl(tmp_path / "mbpp.jsonl", [ORIGINAL]))["2"]
    job = mbpp.make_job(problem, ORIGINAL["code"], Limits(timeout=2.0))
    assert job.program == ORIGINAL["code"] and job.completion_start == 0 and job.main is False
    assert job.tests == AssertTests(setup="\n", tests=tuple(ORIGINAL["test_list"]))
    assert job.limits == Limits(timeout=2.0)


def test_setup_joins_test_imports_and_setup_code(tmp_path: Path) -> None:
    row = {**SANITIZED, "test_setup_code": "X = 1"}
    problem = mbpp.load(write_jsonl(tmp_path / "mbpp.jsonl", [row]))["3"]
    tests = mbpp.make_job(problem, "", Limits()).tests
    assert isinstance(tests, AssertTests) and tests.setup == "import math\nX = 1"


def test_sanitize_extracts_the_code_block(tmp_path: Path) -> None:
    problem = mbpp.load(write_jsonl(tmp_path / "mbpp.jsonl", [SANITIZED]))["3"]
    chat = "Here you go:\n```python\ndef is_not_prime(n):\n    return n < 2\n\nprint(is_not_prime(4))\n```\n"
    assert (
        mbpp.make_job(problem, chat, Limits(), sanitize=True).program
        == "def is_not_prime(n):\n    return n < 2\n"
    )


def test_row_without_test_list_names_line_and_field(tmp_path: Path) -> None:
    bad = {k: v for k, v in ORIGINAL.items() if k != "test_list"}
    path = write_jsonl(tmp_path / "mbpp.jsonl", [SANITIZED, bad])
    with pytest.raises(DataError) as e:
        mbpp.load(path)
    assert str(e.value) == f'{path}:2: missing field "test_list"'


def test_test_list_of_wrong_type_is_rejected(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mbpp.jsonl", [{**ORIGINAL, "test_list": "assert True"}])
    with pytest.raises(DataError, match=r':1: field "test_list" must be an array, got a string'):
        mbpp.load(path)


def test_empty_test_list_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r':1: field "test_list" is empty'):
        mbpp.load(write_jsonl(tmp_path / "mbpp.jsonl", [{**ORIGINAL, "test_list": []}]))


def test_load_without_path_explains_why() -> None:
    with pytest.raises(DataError, match="pass the path"):
        mbpp.load()
