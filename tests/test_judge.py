"""Verdict semantics through a real sandbox: statuses, error lines, comparisons, every test run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from execrl import AssertTests, CallCase, CallTests, IOCase, IOTests, Job, Limits, LocalExecutor, Status
from execrl.sandbox.judge import output_matches

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def ex() -> Iterator[LocalExecutor]:
    with LocalExecutor(workers=2, cache=False) as executor:
        yield executor


PROMPT = 'def f(x):\n    """Double x."""\n'


def test_runtime_error_line_is_counted_in_the_completion(ex: LocalExecutor) -> None:
    """An error on the completion's 2nd line is reported at line 2, not at its program line (4)."""
    completion = "    y = x\n    return [][y]\n"
    job = Job(PROMPT + completion, AssertTests(tests=("assert f(1) == 2",)), completion_start=len(PROMPT))
    [r] = ex.run([job])
    assert r.status is Status.RUNTIME_ERROR
    assert r.error is not None and r.error.type == "IndexError" and r.error.line == 2
    assert r.error.traceback == ((2, "return [][y]"),)


def test_error_in_prompt_has_no_completion_line(ex: LocalExecutor) -> None:
    """A traceback that never enters the completion reports line None."""
    prompt = "def g():\n    raise KeyError('k')\ndef f(x):\n"
    job = Job(
        prompt + "    return g()\n", AssertTests(tests=("assert f(1) == 2",)), completion_start=len(prompt)
    )
    [r] = ex.run([job])
    assert r.status is Status.RUNTIME_ERROR and r.error is not None
    assert r.error.type == "KeyError" and r.error.line == 1  # deepest frame in the completion: `return g()`
    assert [line for line, _ in r.error.traceback] == [1]


def test_syntax_error_line_in_completion(ex: LocalExecutor) -> None:
    """Syntax errors are found without running anything and located in the completion."""
    job = Job(
        PROMPT + "    return x *\n", AssertTests(tests=("assert f(1) == 2",)), completion_start=len(PROMPT)
    )
    [r] = ex.run([job])
    assert r.status is Status.SYNTAX_ERROR and r.error is not None and r.error.line == 1
    assert r.tests_total == 1 and r.tests_passed == 0


def test_every_test_runs_after_a_failure(ex: LocalExecutor) -> None:
    """A wrong answer on test 1 does not stop tests 2 and 3; the job status is test 1's."""
    tests = ("assert f(1) == 3", "assert f(2) == 4", "assert f(0) == 0")
    [r] = ex.run([Job("def f(x):\n    return 2 * x\n", AssertTests(tests=tests))])
    assert (r.status, r.tests_passed, r.tests_total) == (Status.FAILED, 2, 3)
    assert [t.status for t in r.tests] == [Status.FAILED, Status.PASSED, Status.PASSED]


def test_tests_continue_after_the_candidate_crashes(ex: LocalExecutor) -> None:
    """A test that kills the candidate (os._exit) is no_result; the next test gets a fresh process."""
    program = "import os\ndef f(x):\n    if x == 1:\n        os._exit(0)\n    return x\n"
    [r] = ex.run([Job(program, AssertTests(tests=("assert f(1) == 1", "assert f(2) == 2")))])
    assert [t.status for t in r.tests] == [Status.NO_RESULT, Status.PASSED]
    assert r.status is Status.NO_RESULT


def test_check_function_statements_become_tests(ex: LocalExecutor) -> None:
    """HumanEval style: each assert-bearing statement of check() is one test; setup lines are not."""
    setup = "def check(candidate):\n    xs = [1, 2]\n    assert candidate(xs[0]) == 2\n    assert candidate(5) == 11\n"
    tests = AssertTests(setup=setup, check="check", entry_point="f")
    [r] = ex.run([Job("def f(x):\n    return 2 * x\n", tests)])
    assert (r.tests_passed, r.tests_total, r.status) == (1, 2, Status.FAILED)


def test_trusted_helper_wins_over_candidate_redefinition(ex: LocalExecutor) -> None:
    """A candidate that redefines the helper its test uses cannot change the judge."""
    helpers = "def poly(x):\n    return x * x\n"
    program = helpers + "def poly(x):\n    return 0\ndef root():\n    return 3\n"
    tests = AssertTests(
        setup="def check(c):\n    assert poly(c()) == 0\n", check="check", entry_point="root", helpers=helpers
    )
    [r] = ex.run([Job(program, tests)])
    assert r.status is Status.FAILED


def test_max_timeouts_skips_the_rest(ex: LocalExecutor) -> None:
    """After max_timeouts tests time out, the others are timeouts without running."""
    tests = AssertTests(tests=tuple("assert f() == 1" for _ in range(5)))
    job = Job("def f():\n    while True:\n        pass\n", tests, limits=Limits(timeout=0.3, max_timeouts=2))
    [r] = ex.run([job])
    assert r.status is Status.TIMEOUT and all(t.status is Status.TIMEOUT for t in r.tests)
    assert r.cpu_time < 2.0
    assert "not run" in (r.tests[-1].error.message if r.tests[-1].error else "")


def test_cpu_bound_overrun_is_a_timeout(ex: LocalExecutor) -> None:
    """A test that computes past its CPU budget is a timeout even if it would finish."""
    program = "def f():\n    s = 0\n    for i in range(10**8):\n        s += i\n    return 1\n"
    [r] = ex.run([Job(program, AssertTests(tests=("assert f() == 1",)), limits=Limits(timeout=0.3))])
    assert r.status is Status.TIMEOUT


def test_memory_error_is_memory_exceeded(ex: LocalExecutor) -> None:
    """Allocating past the address-space limit is memory_exceeded."""
    program = "def f():\n    return len(bytearray(400 * 2**20))\n"
    [r] = ex.run([Job(program, AssertTests(tests=("assert f() > 0",)), limits=Limits(memory_mb=256))])
    assert r.status is Status.MEMORY_EXCEEDED


def test_io_cases_run_each_program_afresh(ex: LocalExecutor) -> None:
    """stdin/stdout: one process per case; trailing whitespace and blank lines are ignored."""
    cases = (IOCase("1 2\n", "3\n"), IOCase("2 2\n", "4   \n\n\n"), IOCase("1 1\n", "3\n"))
    program = "a, b = map(int, input().split())\nprint(a + b)\n"
    [r] = ex.run([Job(program, IOTests(cases=cases), main=True)])
    assert [t.status for t in r.tests] == [Status.PASSED, Status.PASSED, Status.FAILED]
    assert r.tests[2].expected_head == "3\n" and r.tests[2].actual_head == "2\n"


def test_io_runtime_error_after_correct_output_is_an_error(ex: LocalExecutor) -> None:
    """Printing the right answer and then crashing is a runtime error, with its line."""
    program = "print(3)\nraise ValueError('late')\n"
    [r] = ex.run([Job(program, IOTests(cases=(IOCase("", "3\n"),)), main=True)])
    assert r.status is Status.RUNTIME_ERROR and r.error is not None and r.error.line == 2


def test_call_based_unwraps_single_element_expected_list(ex: LocalExecutor) -> None:
    """APPS's rule: a result equal to the only element of the expected list passes; tuples == lists."""
    cases = (CallCase((2,), [4]), CallCase((1,), [1, 1]), CallCase((3,), 9.0000001))
    program = "def f(x):\n    return (x, x) if x == 1 else x * x\n"
    [r] = ex.run([Job(program, CallTests("f", cases))])
    assert [t.status for t in r.tests] == [Status.PASSED, Status.PASSED, Status.PASSED]


def test_call_based_solution_class(ex: LocalExecutor) -> None:
    """LeetCode style: fn_name is a method of Solution()."""
    program = "class Solution:\n    def twice(self, x):\n        return 2 * x\n"
    [r] = ex.run([Job(program, CallTests("twice", (CallCase((4,), 8),)))])
    assert r.passed


@pytest.mark.parametrize(
    ("actual", "expected", "ok"),
    [("1 2\n", "1 2", True), ("1 2  \n\n", "1 2\n", True), ("0.3333333", "0.33333333", True),
     ("1 2", "1 3", False), ("", "0", False), ("a\nb", "a b", True), ("1e-9", "0", True), ("x", "y", False)],
)  # fmt: skip
def test_output_matching(actual: str, expected: str, ok: bool) -> None:
    """Trailing whitespace is ignored; numeric tokens compare within tolerance."""
    assert output_matches(actual, expected, 1e-6) is ok
