"""HumanEval loading and job building, on written fixtures and on the real shipped HumanEval."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from execrl.data import humaneval
from execrl.data.jsonl import DataError
from execrl.types import AssertTests, Limits

PROMPT = '''import math


def double(x: int) -> int:
    return 2 * x


def quad(x: int) -> int:
    """Return 4 * x using double.
    >>> quad(1)
    4
    """
'''
ROW = {
    "task_id": "Toy/0",
    "prompt": PROMPT,
    "canonical_solution": "    return double(double(x))\n",
    "test": "\n\ndef check(candidate):\n    assert candidate(1) == 4\n    assert double(3) == 6\n",
    "entry_point": "quad",
}
PLUS_ROW = {
    **ROW,
    "task_id": "Toy/1",
    "base_input": [[1]],
    "plus_input": [[2], [3]],
    "atol": 0,
    "contract": "",
}


def write_jsonl(path: Path, rows: Sequence[Mapping[str, object]], *, gz: bool = False) -> Path:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture(scope="module")
def shipped() -> dict[str, humaneval.Problem]:
    return humaneval.load()


def test_load_gzip_fixture(tmp_path: Path) -> None:
    problems = humaneval.load(write_jsonl(tmp_path / "he.jsonl.gz", [ROW], gz=True))
    assert problems == {
        "Toy/0": humaneval.Problem("Toy/0", PROMPT, "quad", ROW["test"], ROW["canonical_solution"])
    }


def test_load_humaneval_plus_rows_keeps_common_fields(tmp_path: Path) -> None:
    problems = humaneval.load(write_jsonl(tmp_path / "plus.jsonl", [ROW, PLUS_ROW]))
    assert list(problems) == ["Toy/0", "Toy/1"]
    assert problems["Toy/1"].prompt == PROMPT and problems["Toy/1"].entry_point == "quad"


def test_load_missing_field_names_line_and_field(tmp_path: Path) -> None:
    bad = {k: v for k, v in ROW.items() if k != "entry_point"}
    path = write_jsonl(tmp_path / "he.jsonl", [ROW, {**bad, "task_id": "Toy/9"}])
    with pytest.raises(DataError) as e:
        humaneval.load(path)
    assert str(e.value) == f'{path}:2: missing field "entry_point"'


def test_load_duplicate_task_id_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r':2: duplicate task_id "Toy/0"'):
        humaneval.load(write_jsonl(tmp_path / "he.jsonl", [ROW, ROW]))


def test_make_job_concatenates_like_human_eval() -> None:
    problem = humaneval.Problem("Toy/0", PROMPT, "quad", ROW["test"])
    limits = Limits(timeout=1.0)
    job = humaneval.make_job(problem, "    return 4 * x\n", limits)
    assert job.program == PROMPT + "    return 4 * x\n"
    assert job.completion_start == len(PROMPT)
    assert job.main is False and job.limits == limits
    assert job.tests == AssertTests(
        setup=ROW["test"], check="check", entry_point="quad", helpers=problem.helpers, tests=()
    )


def test_helpers_hold_imports_and_other_functions_but_not_entry_point() -> None:
    helpers = humaneval.prompt_helpers(PROMPT, "quad")
    assert helpers == "import math\n\n\ndef double(x: int) -> int:\n    return 2 * x\n"


def test_helpers_of_unparseable_prompt_are_empty() -> None:
    assert humaneval.prompt_helpers("def f(:\n", "f") == ""


def test_sanitize_extracts_full_function_after_prompt_helpers() -> None:
    problem = humaneval.Problem("Toy/0", PROMPT, "quad", ROW["test"])
    chat = (
        "Sure!\n```python\ndef quad(x: int) -> int:\n    return double(x) * 2\n\nprint(quad(2))\n```\nDone."
    )
    job = humaneval.make_job(problem, chat, Limits(), sanitize=True)
    code = "def quad(x: int) -> int:\n    return double(x) * 2\n"
    assert job.program.endswith("\n\n" + code) and job.program[job.completion_start :] == code
    assert job.program.startswith(problem.helpers)
    compile(job.program, "job", "exec")


def test_sanitize_treats_body_as_continuation_and_drops_trailing_junk() -> None:
    problem = humaneval.Problem("Toy/0", PROMPT, "quad", ROW["test"])
    completion = "    return 4 * x\n\n\nprint(quad(3))\n```\n\nThis multiplies by four."
    job = humaneval.make_job(problem, completion, Limits(), sanitize=True)
    assert job.program == PROMPT + "    return 4 * x\n"
    assert job.completion_start == len(PROMPT)


def test_sanitize_keeps_indented_body_inside_a_fence() -> None:
    problem = humaneval.Problem("Toy/0", PROMPT, "quad", ROW["test"])
    job = humaneval.make_job(problem, "```python\n    return 4 * x\n```\n", Limits(), sanitize=True)
    assert job.program == PROMPT + "    return 4 * x\n"


def test_sanitize_falls_back_to_raw_concatenation() -> None:
    problem = humaneval.Problem("Toy/0", PROMPT, "quad", ROW["test"])
    job = humaneval.make_job(problem, "I don't know.", Limits(), sanitize=True)
    assert job.program == PROMPT + "I don't know."


def test_shipped_humaneval_has_164_problems_in_order(shipped: dict[str, humaneval.Problem]) -> None:
    assert len(shipped) == 164
    assert list(shipped)[:2] == ["HumanEval/0", "HumanEval/1"] and list(shipped)[-1] == "HumanEval/163"


def test_shipped_helpers_all_compile_and_never_define_entry_point(
    shipped: dict[str, humaneval.Problem],
) -> None:
    for problem in shipped.values():
        compile(problem.helpers, problem.task_id, "exec")
        assert f"def {problem.entry_point}(" not in problem.helpers


@pytest.mark.parametrize(
    ("task_id", "needed"),
    [
        ("HumanEval/32", "def poly("),
        ("HumanEval/38", "def encode_cyclic("),
        ("HumanEval/50", "def encode_shift("),
    ],
)
def test_shipped_helpers_contain_functions_the_tests_call(
    shipped: dict[str, humaneval.Problem], task_id: str, needed: str
) -> None:
    helpers = shipped[task_id].helpers
    assert needed in helpers
    namespace: dict[str, object] = {}
    exec(compile(helpers, task_id, "exec"), namespace)
    assert callable(namespace[needed[4:-1]])


def test_shipped_canonical_solutions_survive_sanitize(shipped: dict[str, humaneval.Problem]) -> None:
    for problem in shipped.values():
        job = humaneval.make_job(problem, problem.canonical_solution, Limits(), sanitize=True)
        assert job.program == (problem.prompt + problem.canonical_solution).rstrip() + "\n", problem.task_id
