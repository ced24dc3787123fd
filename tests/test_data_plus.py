"""HumanEval+ / MBPP+ (evalplus rows): loading, the differential suite in the real sandbox, the
oracle's comparison rules, prompts and output post-processing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from execrl import Limits, LocalExecutor, Status
from execrl.data import evalplus_oracle as oracle
from execrl.data import humaneval, humaneval_plus, mbpp, mbpp_plus
from execrl.data.jsonl import DataError
from jsonl_fixtures import write_jsonl

HE_PROMPT = (
    'def mean(xs: list) -> float:\n    """Mean of a non-empty list.\n    >>> mean([1, 2])\n    1.5\n    """\n'
)
HE_ROW: dict[str, Any] = {
    "task_id": "HumanEval/900",
    "prompt": HE_PROMPT,
    "entry_point": "mean",
    # The reference prints: the trusted process must swallow it (its stdout is the protocol pipe).
    "canonical_solution": "    print('computing', xs * 2000)\n    return sum(xs) / len(xs)\n",
    "base_input": [[[1, 2]], [[1.5]]],
    "plus_input": [[[0.1, 0.2, 0.3]], [[4.0, 8.0]], [[-1, 1, 5]]],
    "atol": 0,
    "contract": "\n    assert len(xs) > 0\n",
}
MB_PROMPT = (
    '"""\nWrite a function to find the shared elements from the given two lists.\n'
    'assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"""\n'
)
MB_ROW: dict[str, Any] = {
    "task_id": "Mbpp/2",
    "prompt": MB_PROMPT,
    "entry_point": "similar_elements",
    "canonical_solution": "def similar_elements(test_tup1, test_tup2):\n  return tuple(set(test_tup1) & set(test_tup2))\n",
    "base_input": [[[3, 4, 5, 6], [5, 7, 4, 10]], [[1, 2, 3, 4], [5, 4, 3, 7]]],
    "plus_input": [[[1, 2], [2, 1]], [[], [1]], [[7], [7, 7]]],
    "atol": 0,
    "assertion": "\nassert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n",
}


@pytest.fixture(scope="module")
def ex(executor: LocalExecutor) -> LocalExecutor:
    return executor  # the session's sandbox (tests/conftest.py)


@pytest.fixture
def he(tmp_path: Path) -> humaneval_plus.Problem:
    return humaneval_plus.load(write_jsonl(tmp_path / "HumanEvalPlus.jsonl.gz", [HE_ROW], gz=True))[
        "HumanEval/900"
    ]


@pytest.fixture
def mb(tmp_path: Path) -> mbpp_plus.Problem:
    return mbpp_plus.load(write_jsonl(tmp_path / "MbppPlus.jsonl.gz", [MB_ROW], gz=True))["Mbpp/2"]


# ---------------------------------------------------------------------------------------------
# Loading.


def test_load_keeps_inputs_in_order_base_first(he: humaneval_plus.Problem, mb: mbpp_plus.Problem) -> None:
    assert he.inputs == ([[1, 2]], [[1.5]], [[0.1, 0.2, 0.3]], [[4.0, 8.0]], [[-1, 1, 5]])
    assert he.reference_source == HE_PROMPT + HE_ROW["canonical_solution"]
    assert mb.dataset == "mbpp" and mb.reference_source == MB_ROW["canonical_solution"]
    assert mb.test_list == ("assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",)


def test_max_plus_inputs_caps_the_plus_inputs_only(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "he.jsonl", [HE_ROW])
    assert len(humaneval_plus.load(path, max_plus_inputs=1)["HumanEval/900"].inputs) == 3
    assert len(humaneval_plus.load(path, max_plus_inputs=0)["HumanEval/900"].inputs) == 2
    with pytest.raises(DataError, match="max_plus_inputs must be >= 0"):
        humaneval_plus.load(path, max_plus_inputs=-1)


def test_an_input_that_is_not_an_argument_list_names_file_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "he.jsonl", [HE_ROW, {**HE_ROW, "task_id": "HumanEval/901", "plus_input": [[1], 2]}]
    )
    with pytest.raises(DataError) as e:
        humaneval_plus.load(path)
    assert str(e.value) == f'{path}:2: field "plus_input" item 1 must be an array of arguments, got a number'


def test_missing_canonical_solution_names_the_field(tmp_path: Path) -> None:
    row = {k: v for k, v in MB_ROW.items() if k != "canonical_solution"}
    path = write_jsonl(tmp_path / "mb.jsonl", [row])
    with pytest.raises(DataError, match=r':1: missing field "canonical_solution"$'):
        mbpp_plus.load(path)


def test_entry_point_clashing_with_the_oracle_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "he.jsonl", [{**HE_ROW, "entry_point": "plus_judge"}])
    with pytest.raises(DataError, match="clashes with a name of the plus oracle"):
        humaneval_plus.load(path)


def test_negative_atol_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r':1: field "atol" must be a finite number >= 0'):
        humaneval_plus.load(write_jsonl(tmp_path / "he.jsonl", [{**HE_ROW, "atol": -1}]))


def test_no_path_is_an_error() -> None:
    with pytest.raises(DataError, match="pass the path"):
        humaneval_plus.load()
    with pytest.raises(DataError, match="pass the path"):
        mbpp_plus.load()


# ---------------------------------------------------------------------------------------------
# Jobs in the real sandbox.


def test_jobs_pass_with_a_correct_program_and_fail_with_a_wrong_one(
    ex: LocalExecutor, he: humaneval_plus.Problem, mb: mbpp_plus.Problem
) -> None:
    """One test per input. The float sum of [0.1, 0.2, 0.3] differs in the last bits between
    `sum(xs)/len(xs)` and `fsum`, which evalplus's auto-atol (1e-6) accepts. The MBPP+ candidate
    asserts it receives tuples (rebuilt by the oracle from JSON lists) and returns a list in
    another order: Mbpp/2 compares as sets."""
    jobs = [
        humaneval_plus.make_job(he, "    import math\n    return math.fsum(xs) / len(xs)\n", Limits()),
        humaneval_plus.make_job(he, "    return sum(xs) / max(len(xs) - 1, 1)\n", Limits()),
        mbpp_plus.make_job(
            mb,
            "def similar_elements(a, b):\n    assert type(a) is tuple and type(b) is tuple\n"
            "    return sorted(set(a) & set(b), reverse=True)\n",
            Limits(),
        ),
        mbpp_plus.make_job(mb, "def similar_elements(a, b):\n    return tuple(set(a) | set(b))\n", Limits()),
    ]
    good_he, bad_he, good_mb, bad_mb = ex.run(jobs)
    assert good_he.status is Status.PASSED and good_he.tests_total == 5, good_he
    assert bad_he.status is Status.FAILED and bad_he.tests_passed == 1  # only [1.5] agrees
    assert bad_he.error is not None and bad_he.error.message == "input #0: expected 1.5, got 3.0"
    assert good_mb.status is Status.PASSED and good_mb.tests_total == 5, good_mb
    assert bad_mb.status is Status.FAILED


def test_a_missing_entry_point_and_a_crash_are_not_passes(ex: LocalExecutor, mb: mbpp_plus.Problem) -> None:
    missing, crash = ex.run(
        [
            mbpp_plus.make_job(mb, "def other(a, b):\n    return ()\n", Limits()),
            mbpp_plus.make_job(mb, "def similar_elements(a, b):\n    return a[10]\n", Limits()),
        ]
    )
    assert missing.status is Status.FAILED and missing.tests_passed == 0
    assert (
        crash.status is Status.RUNTIME_ERROR and crash.error is not None and crash.error.type == "IndexError"
    )


def test_sanitize_extracts_the_function_from_a_chat_answer(ex: LocalExecutor, mb: mbpp_plus.Problem) -> None:
    raw = "Sure:\n```python\ndef similar_elements(a, b):\n    return tuple(set(a) & set(b))\n\nprint(1)\n```"
    [result] = ex.run([mbpp_plus.make_job(mb, raw, Limits(), sanitize=True)])
    assert result.status is Status.PASSED


# ---------------------------------------------------------------------------------------------
# The oracle's comparison rules (evalplus), as pure functions.


def test_floats_get_an_automatic_tolerance_only_when_atol_is_zero() -> None:
    assert oracle.plus_check_output([], 0.30000000000000004, 0.3, 0, "humaneval", "f")
    assert not oracle.plus_check_output([], 0.3001, 0.3, 0, "humaneval", "f")
    assert oracle.plus_check_output([], 0.3001, 0.3, 1e-3, "humaneval", "f")
    assert oracle.plus_check_output([], [1.0, 2.0000001], [1.0, 2.0], 0, "humaneval", "f")


def test_close_values_must_have_the_same_type_and_length() -> None:
    assert not oracle.plus_check_output([], (1.0,), [1.0000001], 0, "humaneval", "f")
    assert not oracle.plus_check_output([], [1.0], [1.0, 2.0], 0, "humaneval", "f")
    assert not oracle.plus_check_output([], "1.0", 1.0, 0, "humaneval", "f")


def test_nan_and_infinities() -> None:
    inf, nan = float("inf"), float("nan")
    assert oracle.plus_check_output([], inf, inf, 0, "humaneval", "f")
    assert not oracle.plus_check_output([], nan, nan, 0, "humaneval", "f")
    assert not oracle.plus_check_output([], 1e308, inf, 0, "humaneval", "f")


def test_integers_compare_exactly() -> None:
    assert not oracle.plus_check_output([], 3, 4, 0, "humaneval", "f")
    assert oracle.plus_check_output([], 10**30, 10**30, 0, "humaneval", "f")


def test_special_oracles() -> None:
    assert oracle.plus_check_output([[-6, 11, -6, 1]], 1.0000001, 99.0, 1e-4, "humaneval", "find_zero")
    assert not oracle.plus_check_output([[-6, 11, -6, 1]], 1.5, 1.0, 1e-4, "humaneval", "find_zero")
    assert oracle.plus_check_output([[1, 2], [3]], [2, 1], (1, 2), 0, "mbpp", "similar_elements")
    assert oracle.plus_check_output(["abc"], "<a match object>", True, 0, "mbpp", "check_str")
    assert not oracle.plus_check_output(["abc"], None, True, 0, "mbpp", "check_str")
    assert oracle.plus_check_output([4], 0, 7, 0, "mbpp", "sum_div")
    assert oracle.plus_check_output([1, 2], False, True, 0, "mbpp", "are_equivalent")


def test_mbpp_inputs_are_rebuilt_as_evalplus_does() -> None:
    assert oracle.plus_deserialize("mbpp", "Mbpp/2", [[[1, 2], [3]]]) == [[(1, 2), (3,)]]
    assert oracle.plus_deserialize("mbpp", "Mbpp/124", [["1", "1+2j"]]) == [(1.0, 1 + 2j)]
    assert oracle.plus_deserialize("mbpp", "Mbpp/580", [[[1, [2, 3]], 4]]) == [((1, (2, 3)), 4)]
    assert oracle.plus_deserialize("mbpp", "Mbpp/115", [[[[1], []]]]) == [[[{1}, {}]]]
    assert oracle.plus_deserialize("mbpp", "Mbpp/3", [[7]]) == [[7]]
    assert oracle.plus_deserialize("humaneval", "Mbpp/2", [[[1]]]) == [[[1]]]


# ---------------------------------------------------------------------------------------------
# Prompts and outputs.


def test_humaneval_plus_prompts_and_outputs_are_humanevals(he: humaneval_plus.Problem) -> None:
    base = humaneval.Problem(he.task_id, he.prompt, he.entry_point, test="")
    assert humaneval_plus.STOP == humaneval.STOP
    for chat in (False, True):
        assert humaneval_plus.prompt(he, chat=chat) == humaneval.prompt(base, chat=chat)
    raw = "```python\ndef mean(xs):\n    return sum(xs) / len(xs)\n```"
    assert (
        humaneval_plus.completion_from_output(he, raw, chat=True)
        == "def mean(xs):\n    return sum(xs) / len(xs)\n"
    )
    assert humaneval_plus.metadata(he) == {}


def test_mbpp_plus_completion_prompt_is_evalplus_prompt_field(mb: mbpp_plus.Problem) -> None:
    assert mbpp_plus.prompt(mb, chat=False) == MB_PROMPT
    assert mbpp_plus.STOP == mbpp.STOP


def test_mbpp_plus_chat_prompt_separates_text_and_assertion(mb: mbpp_plus.Problem) -> None:
    [message] = mbpp_plus.prompt(mb, chat=True)
    content = message["content"]
    assert (
        "here is your task: Write a function to find the shared elements from the given two lists. "
        in content
    )
    assert "tests:\n\nassert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n\n" in content


def test_mbpp_plus_prompt_from_a_plain_text_field(tmp_path: Path) -> None:
    row = {**MB_ROW, "prompt": "Write a function to find the shared elements."}
    problem = mbpp_plus.load(write_jsonl(tmp_path / "mb.jsonl", [row]))["Mbpp/2"]
    assert mbpp_plus.prompt(problem, chat=False) == (
        '"""\nWrite a function to find the shared elements.\n'
        'assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"""\n'
    )


def test_mbpp_plus_outputs(mb: mbpp_plus.Problem) -> None:
    code = "def similar_elements(a, b):\n    return tuple(set(a) & set(b))"
    assert (
        mbpp_plus.completion_from_output(mb, code + "\nassert similar_elements((1,), (1,))", chat=False)
        == code
    )
    chatty = f"Here you go!\n```python\n{code}\n\nprint(similar_elements((1, 2), (2,)))\n```\nDone."
    assert mbpp_plus.completion_from_output(mb, chatty, chat=True) == code + "\n"
