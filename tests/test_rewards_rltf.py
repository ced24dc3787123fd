"""RLTF's feedback (rewards/rltf.py): scalars by hand, scopes of real programs through the real
sandbox (the venv's Python) and of every harvested wording (3.8–3.13, rltf_messages.json), spans
and the per-token tensor by hand."""

from __future__ import annotations

import json
from typing import Any

import pytest

from execrl import Job, LocalExecutor
from execrl.data import humaneval
from execrl.rewards.rltf import (
    PENALTY,
    Penalty,
    adaptive,
    classify,
    coarse,
    line_span,
    penalty,
    to_raw,
    token_rewards,
    verdict,
)
from execrl.types import AssertTests, ErrorInfo, ExecutionResult, Limits, Status
from execrl.types import TestRecord as Record
from rltf_cases import MESSAGES_FILE, SYNTAX

with open(MESSAGES_FILE, encoding="utf-8") as _f:
    MESSAGES: dict[str, dict[str, list[Any]]] = json.load(_f)

ANY_TESTS = AssertTests(tests=("assert f(1) == 2",))


def result(
    status: Status, passed: int = 0, total: int = 4, tests: tuple[Status, ...] = ()
) -> ExecutionResult:
    records = tuple(Record(s) for s in tests)
    return ExecutionResult(status, passed, total, records)


# ---------------------------------------------------------------------------------------------
# Scalars.


@pytest.mark.parametrize(
    ("status", "value"),
    [
        (Status.SYNTAX_ERROR, -1.0),
        (Status.RUNTIME_ERROR, -0.6),
        (Status.TIMEOUT, -0.6),
        (Status.MEMORY_EXCEEDED, -0.6),
        (Status.OUTPUT_EXCEEDED, -0.6),
        (Status.NO_RESULT, -0.6),
        (Status.FAILED, -0.3),
        (Status.PASSED, 1.0),
    ],
)
def test_coarse_values(status, value):
    assert coarse(result(status)) == value


def test_adaptive_is_linear_in_the_pass_ratio():
    """3 of 4 passed, every failure a wrong answer: -0.3 + 1.3 * 3/4 = 0.675; 0 of 4: -0.3;
    4 of 4 is `passed`: 1.0, which the formula also gives (-0.3 + 1.3)."""
    fail, ok = Status.FAILED, Status.PASSED
    assert adaptive(result(fail, 3, 4, (ok, fail, ok, ok))) == pytest.approx(0.675)
    assert adaptive(result(fail, 0, 4, (fail,) * 4)) == pytest.approx(-0.3)
    assert adaptive(result(ok, 4, 4, (ok,) * 4)) == 1.0


@pytest.mark.parametrize(
    "status", [Status.SYNTAX_ERROR, Status.RUNTIME_ERROR, Status.TIMEOUT, Status.NO_RESULT, Status.PASSED]
)
def test_adaptive_equals_coarse_outside_failed(status):
    assert adaptive(result(status, 2, 4)) == coarse(result(status, 2, 4))


def test_a_failed_job_with_a_crashing_test_counts_as_the_crash():
    """Wrong on test 1, crash on test 2: the job is `failed`, but the program did not run every
    test to a verdict, so it scores as a runtime error whichever test came first."""
    ok, fail, crash = Status.PASSED, Status.FAILED, Status.RUNTIME_ERROR
    wrong_then_crash = result(fail, 2, 4, (ok, fail, crash, ok))
    crash_then_wrong = result(crash, 2, 4, (ok, crash, fail, ok))
    assert verdict(wrong_then_crash)[0] is crash
    assert coarse(wrong_then_crash) == adaptive(wrong_then_crash) == -0.6
    assert adaptive(crash_then_wrong) == adaptive(wrong_then_crash)
    timeout_later = result(fail, 1, 3, (fail, ok, Status.TIMEOUT))
    assert verdict(timeout_later)[0] is Status.TIMEOUT


def test_sandbox_error_gets_no_reward_and_no_penalty():
    broken = ExecutionResult.sandbox_error("worker died")
    assert coarse(broken) is None and adaptive(broken) is None
    assert penalty(broken, "x = 1\n") is None


def test_a_test_lost_to_a_sandbox_error_voids_the_reward():
    """1 of 3 passed, one wrong, one lost on our side: no pass ratio can be trusted."""
    lost = result(Status.FAILED, 1, 3, (Status.PASSED, Status.FAILED, Status.SANDBOX_ERROR))
    assert coarse(lost) is None and adaptive(lost) is None and penalty(lost, "x = 1\n") is None


# ---------------------------------------------------------------------------------------------
# Scopes of real programs, run through the real sandbox on the venv's Python.


@pytest.fixture(scope="module")
def syntax_results(executor: LocalExecutor) -> dict[str, ExecutionResult]:
    jobs = [Job(program, ANY_TESTS) for program, _, _ in SYNTAX.values()]
    return dict(zip(SYNTAX, executor.run(jobs)))


@pytest.mark.parametrize("name", list(SYNTAX))
def test_syntax_error_scope_in_the_sandbox(name, syntax_results):
    program, scope, line = SYNTAX[name]
    r = syntax_results[name]
    assert r.status is Status.SYNTAX_ERROR, r
    p = penalty(r, program)
    assert p is not None
    assert (p.scope, p.line) == (scope, line), (r.error, p)
    assert p.value == (0.0 if scope == "none" else PENALTY)
    assert coarse(r) == -1.0


def test_the_table_covers_every_rule():
    scopes = [scope for _, scope, _ in SYNTAX.values()] + [scope for _, _, scope, _ in RUNTIME.values()]
    assert len(scopes) >= 60
    assert {s: scopes.count(s) >= 10 for s in ("global", "line", "none")} == dict.fromkeys(
        ("global", "line", "none"), True
    )


@pytest.mark.parametrize("version", ["3.10", "3.11", "3.12", "3.13"])
def test_every_wording_of_3_10_to_3_13(version):
    """The messages each interpreter printed for the table's programs (harvested with
    tests/rltf_cases.py) classify as the table says."""
    wrong = {}
    for name, (program, scope, line) in SYNTAX.items():
        kind, message, lineno = MESSAGES[version][name]
        got = classify(Status.SYNTAX_ERROR, ErrorInfo(kind, message, lineno), program)
        if got[:2] != (scope, line):
            wrong[name] = (message, got)
    assert wrong == {}


# Where 3.8/3.9 print another verdict than 3.10+, the program is judged by what was printed:
# `match` does not parse there, a swallowed line is reported instead of the unclosed bracket, and
# 3.8 overflows its parser stack on 250 parentheses.
LEGACY_DIFFERENT = {
    "3.8": {"unclosed_paren_swallows_rest", "indent_eof_case", "too_many_parentheses"},
    "3.9": {"unclosed_paren_swallows_rest", "indent_eof_case"},
}


@pytest.mark.parametrize("version", ["3.8", "3.9"])
def test_the_wordings_rltf_was_written_for(version):
    """RLTF's own wordings ("unexpected EOF while parsing", "EOL while scanning string literal",
    "EOF while scanning triple-quoted string literal", 3.9's bare "expected an indented block")
    give the same scopes as their 3.10+ successors."""
    differ = set()
    for name, (program, scope, line) in SYNTAX.items():
        kind, message, lineno = MESSAGES[version][name]
        if classify(Status.SYNTAX_ERROR, ErrorInfo(kind, message, lineno), program)[:2] != (scope, line):
            differ.add(name)
    assert differ == LEGACY_DIFFERENT[version]


def test_each_wording_is_harvested_from_each_version():
    assert set(MESSAGES) == {"3.8", "3.9", "3.10", "3.11", "3.12", "3.13"}
    assert all(set(m) == set(SYNTAX) for m in MESSAGES.values())


THREE = AssertTests(tests=("assert f(1) == 2", "assert f(2) == 3", "assert f(3) == 4"))

# name: (program, tests, expected scope, expected line in the program)
RUNTIME: dict[str, tuple[str, AssertTests, str, int | None]] = {
    "module_not_found": ("import numpyy\ndef f(x):\n    return x + 1\n", THREE, "line", 1),
    "cannot_import_name": ("from os import nothing_here\ndef f(x):\n    return x + 1\n", THREE, "line", 1),
    "import_inside_function": ("def f(x):\n    import numpyy\n    return x + 1\n", THREE, "line", 2),
    "deepest_candidate_frame": (
        "def g(x):\n    return 1 // x\n\ndef f(x):\n    y = 2\n    return g(0)\n",
        THREE,
        "line",
        2,
    ),
    "library_frame_below_candidate": (
        "import json\ndef f(x):\n    return json.loads('{')\n",
        THREE,
        "line",
        3,
    ),
    "name_error_at_load": ("def f(x):\n    return x + 1\nprint(undefined_name)\n", THREE, "line", 3),
    "recursion": ("def f(x):\n    return f(x)\n", THREE, "global", None),
    "timeout": (
        "def f(x):\n    while True:\n        pass\n",
        AssertTests(tests=("assert f(1) == 2",)),
        "global",
        None,
    ),
    "memory": ("def f(x):\n    a = [0] * (10**10)\n    return a\n", THREE, "global", None),
    "output": ("def f(x):\n    while True:\n        print('x' * 10000)\n", THREE, "global", None),
    "exit_before_tests": ("import sys\nsys.exit(0)\ndef f(x):\n    return x + 1\n", THREE, "none", None),
    "wrong_answer": ("def f(x):\n    return x\n", THREE, "none", None),
    "passes": ("def f(x):\n    return x + 1\n", THREE, "none", None),
    "wrong_signature": ("def f():\n    return 1\n", THREE, "none", None),
    "missing_function": ("def g(x):\n    return x + 1\n", THREE, "none", None),
    "wrong_then_crash": (
        "def f(x):\n    if x == 2:\n        raise ValueError('boom')\n    return x\n",
        THREE,
        "line",
        3,
    ),
}


@pytest.fixture(scope="module")
def runtime_results(executor: LocalExecutor) -> dict[str, ExecutionResult]:
    limits = Limits(timeout=0.5, memory_mb=512, output_mb=1, max_timeouts=1)
    jobs = [Job(program, tests, limits) for program, tests, _, _ in RUNTIME.values()]
    return dict(zip(RUNTIME, executor.run(jobs)))


@pytest.mark.parametrize("name", list(RUNTIME))
def test_runtime_scope_in_the_sandbox(name, runtime_results):
    program, _, scope, line = RUNTIME[name]
    r = runtime_results[name]
    assert r.status is not Status.SANDBOX_ERROR, r
    p = penalty(r, program)
    assert p is not None
    assert (p.scope, p.line) == (scope, line), (r.status, r.error, p)


def test_wrong_then_crash_is_blamed_on_the_crash(runtime_results):
    r = runtime_results["wrong_then_crash"]
    assert r.status is Status.FAILED and r.tests_passed == 0
    assert adaptive(r) == -0.6


# ---------------------------------------------------------------------------------------------
# HumanEval: program = prompt + completion; lines count in the completion.

HE = humaneval.load()["HumanEval/2"]  # truncate_number(number) -> number % 1.0, 3 tests

HE_CASES = {
    # completion: (scope, line in the completion, text of that line)
    "    return number % 1.0\n": ("none", None, None),
    "    return 0.5\n": ("none", None, None),
    "    x = [1, 2]\n    return x[number]\n": ("line", 2, "    return x[number]"),
    "    return int(number\n": ("global", None, None),
    "    return int(number\n\n\n": ("global", None, None),
    "    if number > 0:\n": ("global", None, None),
    "    if number > 0:\n        # fraction\n": ("global", None, None),
    "    return number %\n    # done\n": ("global", None, None),
    "    return number %": ("global", None, None),
    "    return number %\n    y = 1\n": ("line", 1, "    return number %"),
    "    for i in range(3)\n        pass\n    return 0.5\n": ("line", 1, "    for i in range(3)"),
    "    return number % 1.0\n  x = 1\n": ("none", None, None),
    "    return '''\n": ("none", None, None),
    "    return undefined\n": ("line", 1, "    return undefined"),
}


@pytest.fixture(scope="module")
def humaneval_results(executor: LocalExecutor) -> dict[str, ExecutionResult]:
    jobs = [humaneval.make_job(HE, c, Limits()) for c in HE_CASES]
    return dict(zip(HE_CASES, executor.run(jobs)))


@pytest.mark.parametrize("completion", list(HE_CASES))
def test_humaneval_error_lines_map_into_the_completion(completion, humaneval_results):
    scope, line, text = HE_CASES[completion]
    r = humaneval_results[completion]
    p = penalty(r, completion)
    assert p is not None and (p.scope, p.line) == (scope, line), (r.status, r.error, p)
    if text is not None:
        assert p.start is not None and completion[p.start : p.end] == text


def test_humaneval_adaptive_partial_credit(humaneval_results):
    """`return 0.5` passes truncate_number(3.5) only: -0.3 + 1.3 * 1/3."""
    r = humaneval_results["    return 0.5\n"]
    assert (r.status, r.tests_passed, r.tests_total) == (Status.FAILED, 1, 3)
    assert adaptive(r) == pytest.approx(-0.3 + 1.3 / 3)


# ---------------------------------------------------------------------------------------------
# Spans.


def test_line_span_leaves_out_the_line_break():
    code = "a = 1\r\nbb = 2\n\ncc = 3"
    assert [code[slice(*line_span(code, n))] for n in (1, 2, 3, 4)] == ["a = 1", "bb = 2", "", "cc = 3"]
    assert line_span(code, 9) == line_span(code, 4)  # past the end: the last line
    assert line_span("x\n", 2) == (0, 1)  # no empty line after a final break


def test_to_raw_keeps_offsets_of_a_cut_completion():
    raw = "    return x +\n\ndef other():\n"
    assert to_raw(raw, "    return x +\n", 4, 14) == (4, 14)


def test_to_raw_finds_a_line_of_code_extracted_from_a_chat_reply():
    raw = (
        "Sure! Here it is:\n\n"
        "1. The function:\n"
        "   ```python\n"
        "   def f(x):\n"
        "       y = x + 1\n"
        "       return y\n"
        "   ```\n"
        "Call it as `f(2)`.\n"
    )
    code = "def f(x):\n    y = x + 1\n    return y\n"
    start, end = line_span(code, 2)
    span = to_raw(raw, code, start, end)
    assert span is not None and raw[span[0] : span[1]] == "    y = x + 1"
    assert raw[span[0] - 3 : span[0]] == "   "  # the fence's own indentation stays outside


def test_to_raw_prefers_the_block_that_matches_most_lines():
    raw = "```python\ndef f(x):\n    return x\n```\nBetter:\n```python\ndef f(x):\n    y = x * 2\n    return y\n```\n"
    code = "def f(x):\n    y = x * 2\n    return y\n"
    span = to_raw(raw, code, *line_span(code, 1))
    assert span is not None and raw.index("Better") < span[0]


def test_to_raw_skips_a_line_the_model_did_not_write():
    """HumanEval's chat completion may put a `pass` before the model's function: that line maps
    to nothing, the model's lines still map."""
    code = "    pass\n\ndef f(x):\n    y = x[1]\n    return y\n"
    raw = "```python\ndef f(x):\n    y = x[1]\n    return y\n```"
    assert to_raw(raw, code, *line_span(code, 1)) is None
    span = to_raw(raw, code, *line_span(code, 4))
    assert span is not None and raw[span[0] : span[1]] == "    y = x[1]"


def test_to_raw_gets_past_a_line_missing_from_the_reply():
    """A line absent from the reply (here edited) does not stop the lines after it from mapping."""
    code = "def f(x):\n    y = 1\n    z = 2\n    return y + z\n"
    raw = "```python\ndef f(x):\n    y = 1  \n    z=2\n    return y + z\n```"
    span = to_raw(raw, code, *line_span(code, 4))
    assert span is not None and raw[span[0] : span[1]] == "    return y + z"
    assert to_raw(raw, code, *line_span(code, 3)) is None


# ---------------------------------------------------------------------------------------------
# Token rewards.


def test_token_rewards_by_hand():
    """Text "def f():\\n    return g(\\n" in 5 tokens: "def f():" (0, 8), "\\n    " (8, 13),
    "return" (13, 19), " g(" (19, 22), "\\n" (22, 23). Line 2 spans (9, 22): it overlaps "\\n    "
    (which writes its indentation), "return" and " g(", but not the break before nor after it.
    Row 1: global over its 3 real tokens; row 2: none; row 3: no reward at all (sandbox error)."""
    import torch

    offsets = [[(0, 8), (8, 13), (13, 19), (19, 22), (22, 23)], [(0, 1), (1, 2), (2, 3)], [], [(0, 3)]]
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    penalties = [
        Penalty("line", "runtime error", 2, 9, 22, PENALTY),
        Penalty("global", "timeout", value=PENALTY),
        Penalty("none", "wrong answer"),
        None,
    ]
    out = token_rewards(penalties, offsets, mask)
    p = -PENALTY
    expected = torch.tensor(
        [[0, p, p, p, 0], [p, p, p, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.float32
    )
    assert torch.equal(out, expected)


def test_a_token_closing_one_line_and_opening_the_next_is_charged_to_both():
    """The token ")\\n    " (4, 10) writes the end of line 1 (0, 5) and the indentation of line 2 (6, 14)."""
    import torch

    offsets = [[(0, 4), (4, 10), (10, 14)]]
    mask = torch.ones(1, 3, dtype=torch.long)
    line1 = token_rewards([Penalty("line", "r", 1, 0, 5, PENALTY)], offsets, mask)
    line2 = token_rewards([Penalty("line", "r", 2, 6, 14, PENALTY)], offsets, mask)
    p = -PENALTY
    assert torch.equal(line1, torch.tensor([[p, p, 0.0]]))
    assert torch.equal(line2, torch.tensor([[0.0, p, p]]))


def test_masked_and_unlocated_tokens_are_never_charged():
    import torch

    offsets = [[(0, 5), (5, 9)], [(0, 5)]]
    mask = torch.tensor([[1, 0], [1, 0]])
    unlocated = Penalty("line", "r", 3, None, None, PENALTY)
    out = token_rewards([Penalty("line", "r", 1, 0, 9, PENALTY), unlocated], offsets, mask)
    assert torch.equal(out, torch.tensor([[-PENALTY, 0.0], [0.0, 0.0]]))
