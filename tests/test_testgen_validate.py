"""`execrl tests validate`: every candidate test of a held-out-style corpus classified exactly.

The corpus is derived from HumanEval itself: for every task, the real asserts of its `check`
(rewritten from `candidate(...)` to the entry point), the same asserts with a wrong expected
value, vacuous asserts, broken syntax, and tests that crash, exit or loop — each with the reason
it must get, known by construction. One sandbox job per task (plus one checking that the reference
loads), not one per test.
"""

from __future__ import annotations

import ast
import builtins
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from execrl.data import humaneval
from execrl.sandbox.executor import LocalExecutor
from execrl.testgen.validate import consensus, validate
from execrl.types import Limits

LIMITS = Limits(timeout=1.0)


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name(self.new, node.ctx) if node.id == self.old else node


def _program_names(problem: humaneval.Problem) -> set[str]:
    tree = ast.parse(problem.prompt + problem.canonical_solution)
    names = set(dir(builtins))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign):
            names.update(n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def _wrong(value: ast.expr) -> ast.expr:
    """A different expected value: literals changed in kind-preserving ways, else a tuple no
    function of HumanEval returns."""
    if isinstance(value, ast.Constant):
        v = value.value
        if isinstance(v, bool):
            return ast.Constant(not v)
        if isinstance(v, (int, float)):
            return ast.Constant(v + 1)
        if isinstance(v, str):
            return ast.Constant(v + "?")
    if isinstance(value, ast.List):
        return ast.List([*value.elts, ast.Constant("?")], ast.Load())
    return ast.Tuple([ast.Constant("mutated"), value], ast.Load())


def _mutant(stmt: ast.Assert) -> str | None:
    test = stmt.test
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
        new = ast.Compare(test.left, [ast.Eq()], [_wrong(test.comparators[0])])
    elif isinstance(test, ast.Call):
        new = ast.UnaryOp(ast.Not(), test)
    elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        new = test.operand
    else:
        return None
    return ast.unparse(ast.fix_missing_locations(ast.Assert(new, None)))


def corpus(problems: dict[str, humaneval.Problem]) -> list[tuple[dict[str, Any], str]]:
    """(row, expected reason) for every derived test of every task."""
    out: list[tuple[dict[str, Any], str]] = []
    for tid, p in problems.items():
        f = p.entry_point
        names = _program_names(p) | {"candidate"}
        check = next(
            n for n in ast.parse(p.test).body if isinstance(n, ast.FunctionDef) and n.name == "check"
        )
        calls: list[str] = []
        for stmt in check.body:
            if not isinstance(stmt, ast.Assert):
                continue
            used = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}
            if "candidate" not in used or not used <= names:
                continue  # reads a variable of `check`: not a standalone test
            real = _Rename("candidate", f).visit(ast.parse(ast.unparse(stmt)).body[0])
            assert isinstance(real, ast.Assert)
            # HumanEval/33's check holds three tautologies, `tuple(candidate(x)) == tuple(candidate(x))`.
            t = real.test
            same = isinstance(t, ast.Compare) and ast.dump(t.left) == ast.dump(t.comparators[0])
            out.append(
                (
                    {"task_id": tid, "test": ast.unparse(real), "source": "real"},
                    "always_true" if same else "ok",
                )
            )
            mutant = _mutant(real)
            if mutant is not None:
                out.append(({"task_id": tid, "test": mutant, "source": "wrong_expected"}, "fails_reference"))
            call = next(
                n for n in ast.walk(real.test) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == f
            )
            calls.append(ast.unparse(call))
        if not calls:
            continue
        src = next((r["test"] for r, why in reversed(out) if r["task_id"] == tid and why == "ok"), None)
        call = calls[0]
        cases = [
            ("assert True", "does_not_call_function"),
            ("assert 1 == 1", "does_not_call_function"),
            ("expected = 3\nassert expected == 3", "does_not_call_function"),
            (f"result = {call}\nassert True", "does_not_call_function"),
            (f"assert {f}", "does_not_call_function"),
            (f"assert (lambda: {call})", "does_not_call_function"),
            (f"assert True or {call}", "does_not_call_function"),
            (f"assert {call} or True", "always_true"),
            (f"assert {call} == {call}", "always_true"),
            (f"{f} = lambda *a: 0\nassert {f}() == 0", "shadows_function"),
            (call, "no_assert"),
            (f"assert {call} ==", "syntax"),
            (f"asert {call} == 1", "syntax"),
            (f"return {call}", "syntax"),
            (f"assert {call} == 1 / 0", "fails_reference"),  # raises in the test
            (f"result = {call}\nassert result == result", "always_true"),
            (f"result = {call}\nassert isinstance(result, object)", "ok"),  # weak, but it runs f
        ]
        if src is not None:
            cases.append((f"import os\nos._exit(0)\n{src}", "fails_reference"))  # exits before asserting
            cases.append((src, "ok"))  # a duplicate: same verdict, run once
        out += [({"task_id": tid, "test": t, "source": "derived"}, why) for t, why in cases]
    return out


@pytest.fixture(scope="module")
def problems() -> dict[str, humaneval.Problem]:
    return humaneval.load()


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_humaneval_corpus_is_classified_exactly(
    problems: dict[str, humaneval.Problem], executor: LocalExecutor, tmp_path: Path
) -> None:
    """Every derived test of all 164 HumanEval tasks gets the reason it was built to have."""
    cases = corpus(problems)
    assert len(cases) > 3000 and len({r["task_id"] for r, _ in cases}) >= 160
    v = validate(
        "humaneval", _write(tmp_path / "t.jsonl", [r for r, _ in cases]), limits=LIMITS, executor=executor
    )
    wrong = [(r["task_id"], r["test"], want, got) for (r, want), got in zip(cases, v.reasons) if want != got]
    assert not wrong, f"{len(wrong)} misclassified, e.g. {wrong[:5]}"
    assert v.valid == [want == "ok" for _, want in cases]
    assert set(v.methods) == {"reference"}
    assert [row["test"] for row in v.out_rows()] == [r["test"] for r, _ in cases]
    counts = Counter(why for _, why in cases)
    assert v.quality["reasons"] == {k: counts[k] for k in v.quality["reasons"]}


def test_a_crash_or_timeout_is_charged_to_its_own_test_only(
    problems: dict[str, humaneval.Problem], executor: LocalExecutor, tmp_path: Path
) -> None:
    good = "assert has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True"
    rows = [
        {
            "task_id": "HumanEval/0",
            "test": "while True:\n    pass\nassert has_close_elements([], 1.0) is False",
        },
        {"task_id": "HumanEval/0", "test": good},
        {
            "task_id": "HumanEval/0",
            "test": "import ctypes\nctypes.string_at(0)\nassert has_close_elements([], 1.0)",
        },
        {"task_id": "HumanEval/0", "test": "x = [0] * 10 ** 10\nassert has_close_elements([], 1.0) is False"},
        {
            "task_id": "HumanEval/0",
            "test": "while True:\n    pass\nassert has_close_elements([0.0], 1.0) is False",
        },
        {
            "task_id": "HumanEval/0",
            "test": "while True:\n    pass\nassert has_close_elements([1.0], 1.0) is False",
        },
        {"task_id": "HumanEval/0", "test": good.replace("0.3", "0.05").replace("True", "False")},
    ]
    v = validate(
        "humaneval", _write(tmp_path / "t.jsonl", rows), limits=Limits(timeout=0.3), executor=executor
    )
    assert v.reasons == ["timeout", "ok", "fails_reference", "fails_reference", "timeout", "timeout", "ok"]


def test_unknown_task_and_wrong_kind(
    problems: dict[str, humaneval.Problem], executor: LocalExecutor, tmp_path: Path
) -> None:
    rows = [
        {"task_id": "HumanEval/999", "test": "assert f(1) == 2"},
        {"task_id": "HumanEval/0", "test": {"input": "1\n", "output": "2\n"}},
    ]
    v = validate("humaneval", _write(tmp_path / "t.jsonl", rows), limits=LIMITS, executor=executor)
    assert v.reasons == ["unknown_task", "wrong_kind"]
    assert v.methods == [None, "reference"]


# ---------------------------------------------------------------------------------------------
# MBPP-format rows (the loader's original format), and a broken reference.

MBPP = [
    {
        "task_id": 1,
        "text": "Write a function to find the square root of the sum of two squares.",
        "code": "import math\ndef hypot2(a, b):\n    return math.sqrt(a * a + b * b)",
        "test_list": ["assert hypot2(3, 4) == 5.0", "assert hypot2(5, 12) == 13.0"],
        "test_setup_code": "",
        "challenge_test_list": [],
    },
    {
        "task_id": 2,
        "text": "Write a function to reverse the words of a sentence.",
        "code": "def reverse_words(s):\n    return ' '.join(reversed(s.split()))",
        "test_list": ["assert reverse_words('a b c') == 'c b a'"],
        "test_setup_code": "import re",
        "challenge_test_list": [],
    },
    {
        "task_id": 3,
        "text": "A task whose reference does not even load.",
        "code": "def broken(x):\n    return x\nraise SystemExit(1)\n",
        "test_list": ["assert broken(1) == 1"],
        "test_setup_code": "",
        "challenge_test_list": [],
    },
]


def test_mbpp_rows(executor: LocalExecutor, tmp_path: Path) -> None:
    data = _write(tmp_path / "mbpp.jsonl", MBPP)
    rows_and_reasons = [
        ({"task_id": "1", "test": "assert hypot2(3, 4) == 5.0"}, "ok"),
        ({"task_id": 1, "test": "assert hypot2(6, 8) == 10.0"}, "ok"),  # an integer task_id, as MBPP's
        (
            {"task_id": "1", "test": "assert math.isclose(hypot2(1, 1), math.sqrt(2))"},
            "ok",
        ),  # the program's import
        ({"task_id": "1", "test": "assert hypot2(3, 4) == 6.0"}, "fails_reference"),
        ({"task_id": "1", "test": "assert hypot2('3', 4) == 5.0"}, "fails_reference"),  # the reference raises
        ({"task_id": "1", "test": "assert math.sqrt(25) == 5.0"}, "does_not_call_function"),
        (
            {"task_id": "2", "test": "assert re.sub('a', 'b', reverse_words('a c')) == 'c b'"},
            "ok",
        ),  # setup import
        ({"task_id": "2", "test": "assert reverse_words('a b') == 'a b'"}, "fails_reference"),
        ({"task_id": "2", "test": "assert reverse_words('x') == 'x'"}, "ok"),
        ({"task_id": "3", "test": "assert broken(2) == 2"}, "reference_error"),
    ]
    tests = _write(tmp_path / "t.jsonl", [r for r, _ in rows_and_reasons])
    v = validate("mbpp", tests, data=data, limits=LIMITS, executor=executor)
    assert v.reasons == [why for _, why in rows_and_reasons]


# ---------------------------------------------------------------------------------------------
# stdin/stdout tasks (the built-in suite's io kind).


def test_io_tasks(executor: LocalExecutor, tmp_path: Path) -> None:
    from execrl.data import builtin

    problems = [p for p in builtin.generate(seed=0, size=60).values() if p.kind == "io"][:3]
    assert problems
    data = tmp_path / "b.jsonl"
    builtin.write_jsonl(data, problems)
    rows, want = [], []
    for p in problems:
        for c in p.io_cases[:3]:
            rows.append({"task_id": p.task_id, "test": {"input": c.input, "output": c.output}})
            want.append("ok")
            rows.append(
                {"task_id": p.task_id, "test": {"input": c.input, "output": c.output.strip() + " x\n"}}
            )
            want.append("fails_reference")
        rows.append({"task_id": p.task_id, "test": "assert solve(1) == 1"})
        want.append("wrong_kind")
    v = validate("builtin", _write(tmp_path / "t.jsonl", rows), data=data, limits=LIMITS, executor=executor)
    assert v.reasons == want


# ---------------------------------------------------------------------------------------------
# Dual execution agreement (no reference in the data).


def test_consensus_by_hand() -> None:
    """Solutions 0, 1, 2 pass tests {0, 1}; solution 3 passes {0, 1, 2}; solution 4 passes {2}.
    Scores: {0,1}: 3 solutions x 2 tests = 6; {0,1,2}: 1 x 3 = 3; {2}: 1 x 1 = 1. Keep {0, 1}."""
    a, b, c = frozenset({0, 1}), frozenset({0, 1, 2}), frozenset({2})
    assert consensus([a, a, a, b, c]) == {0, 1}


def test_consensus_ties_and_empty() -> None:
    """{0}: 2 x 1 = 2 ties {0, 1}: 1 x 2 = 2: the set with more tests wins. Equal sizes: the
    earlier first solution. Nobody passing anything keeps nothing."""
    assert consensus([frozenset({0}), frozenset({0}), frozenset({0, 1})]) == {0, 1}
    assert consensus([frozenset({1}), frozenset({0})]) == {1}
    assert consensus([frozenset(), frozenset()]) == frozenset()
    assert consensus([]) == frozenset()


def test_dual_agreement_without_reference(
    problems: dict[str, humaneval.Problem], executor: LocalExecutor, tmp_path: Path
) -> None:
    """HumanEval/0 with its reference removed: three right solutions and two wrong ones (that
    agree with each other) choose the real tests over the mutants; the hidden tests show that a
    wrong solution passing every kept test would be a false pass (here none does)."""
    p = problems["HumanEval/0"]
    row = {
        "task_id": p.task_id,
        "prompt": p.prompt,
        "entry_point": p.entry_point,
        "test": p.test,
        "canonical_solution": "",
    }
    data = _write(tmp_path / "he.jsonl", [row, {**row, "task_id": "HumanEval/x"}])
    right = p.canonical_solution
    alt = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1 :])\n"
    wrong = "    return False\n"
    sols = [right, alt, right + "\n", wrong, wrong + "\n"]
    solutions = _write(tmp_path / "s.jsonl", [{"task_id": p.task_id, "completion": c} for c in sols])
    f = "has_close_elements"
    rows = [
        {"task_id": p.task_id, "test": f"assert {f}([1.0, 2.0, 3.0], 0.5) == False"},  # all five pass
        {"task_id": p.task_id, "test": f"assert {f}([1.0, 2.8, 3.0], 0.3) == True"},  # the right three
        {"task_id": p.task_id, "test": f"assert {f}([1.0, 2.8, 3.0], 0.3) == False"},  # the wrong two
        {"task_id": p.task_id, "test": f"assert {f}([], 1.0) == 1"},  # nobody
        {"task_id": p.task_id, "test": "assert True"},
        {"task_id": "HumanEval/x", "test": f"assert {f}([], 1.0) == False"},  # no solutions for this task
    ]
    v = validate(
        "humaneval",
        _write(tmp_path / "t.jsonl", rows),
        data=data,
        solutions=solutions,
        limits=LIMITS,
        executor=executor,
    )
    assert v.methods == ["dual_agreement"] * 6
    # {0, 1}: 3 solutions x 2 tests = 6 beats {0, 2}: 2 x 2 = 4.
    assert v.reasons == ["ok", "ok", "no_consensus", "no_consensus", "does_not_call_function", "no_solutions"]
    fp = v.quality["false_pass"]
    assert fp == {"judged": 5, "pass_valid": 3, "count": 0, "rate": 0.0, "false_fail": 0}


def test_false_pass_rate_counts_wrong_programs_that_pass_every_valid_test(
    problems: dict[str, humaneval.Problem], executor: LocalExecutor, tmp_path: Path
) -> None:
    """One weak valid test: `return True` passes it but fails the hidden tests (1 of the 2
    programs passing every valid test); `return False` fails it and the hidden tests."""
    tests = _write(
        tmp_path / "t.jsonl",
        [{"task_id": "HumanEval/0", "test": "assert has_close_elements([1.0, 1.1], 0.5) == True"}],
    )
    sols = [problems["HumanEval/0"].canonical_solution, "    return True\n", "    return False\n"]
    solutions = _write(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "completion": c} for c in sols])
    v = validate("humaneval", tests, solutions=solutions, limits=LIMITS, executor=executor)
    assert v.reasons == ["ok"]
    assert v.quality["false_pass"] == {"judged": 3, "pass_valid": 2, "count": 1, "rate": 0.5, "false_fail": 0}


# ---------------------------------------------------------------------------------------------
# The command line.


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "execrl.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_writes_rows_and_ends_with_json(tmp_path: Path) -> None:
    rows = [
        {
            "task_id": "HumanEval/2",
            "test": "assert truncate_number(3.5) == 0.5",
            "source": {"model": "m", "sample": 0},
        },
        {
            "task_id": "HumanEval/2",
            "test": "assert truncate_number(3.5) == 0.25",
            "source": {"model": "m", "sample": 1},
        },
    ]
    out = tmp_path / "v.jsonl"
    r = _cli(
        "tests",
        "validate",
        "--benchmark",
        "humaneval",
        "--tests",
        str(_write(tmp_path / "t.jsonl", rows)),
        "--out",
        str(out),
        "--workers",
        "1",
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["valid"] == 1 and summary["reasons"] == {"ok": 1, "fails_reference": 1}
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [w["reason"] for w in written] == ["ok", "fails_reference"]
    assert written[0]["source"] == {"model": "m", "sample": 0} and written[0]["method"] == "reference"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"task_id": "HumanEval/0", "test": "assert True"}\n{"task_id": "HumanEval/0"\n', "t.jsonl:2:"),
        ('{"task_id": "HumanEval/0", "test": 3}\n', 't.jsonl:1: field "test" must be a string or an object'),
        ('{"task_id": "HumanEval/0", "test": {"input": "1"}}\n', "t.jsonl:1:"),
        ('{"test": "assert True"}\n', 't.jsonl:1: missing field "task_id"'),
    ],
)
def test_cli_bad_input_names_the_line_and_writes_nothing(tmp_path: Path, content: str, message: str) -> None:
    tests = tmp_path / "t.jsonl"
    tests.write_text(content)
    out = tmp_path / "v.jsonl"
    r = _cli("tests", "validate", "--benchmark", "humaneval", "--tests", str(tests), "--out", str(out))
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_bad_solutions_line(tmp_path: Path) -> None:
    tests = _write(tmp_path / "t.jsonl", [{"task_id": "HumanEval/0", "test": "assert True"}])
    sols = _write(
        tmp_path / "s.jsonl",
        [{"task_id": "HumanEval/0", "completion": "x"}, {"task_id": "Nope", "completion": "x"}],
    )
    out = tmp_path / "v.jsonl"
    r = _cli(
        "tests",
        "validate",
        "--benchmark",
        "humaneval",
        "--tests",
        str(tests),
        "--solutions",
        str(sols),
        "--out",
        str(out),
    )
    assert r.returncode == 2 and "s.jsonl:2:" in r.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# LeetCode style: the function is a method of `class Solution`.

LEETCODE = {
    "task_id": "two-sum",
    "content": "Return the indices of the two numbers that add up to target.",
    "starter_code": "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        ",
    "tests": [{"input": [[2, 7, 11, 15], 9], "output": [0, 1]}],
}
TWO_SUM = (
    "class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n"
    "        for i, x in enumerate(nums):\n            if target - x in seen:\n"
    "                return [seen[target - x], i]\n            seen[x] = i\n"
)


def test_leetcode_methods_by_dual_agreement(executor: LocalExecutor, tmp_path: Path) -> None:
    """No reference: two right solutions and one that always answers [0, 1]. Scores: the right
    pair passes tests {0, 1}: 2 x 2 = 4; the wrong one passes {0, 2}: 1 x 2 = 2. Keep {0, 1}."""
    data = _write(tmp_path / "lc.jsonl", [LEETCODE])
    wrong = "class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n"
    sols = [TWO_SUM, TWO_SUM + "\n", wrong]
    solutions = _write(tmp_path / "s.jsonl", [{"task_id": "two-sum", "completion": c} for c in sols])
    rows_and_reasons = [
        ({"task_id": "two-sum", "test": "assert Solution().twoSum([2, 7, 11, 15], 9) == [0, 1]"}, "ok"),
        ({"task_id": "two-sum", "test": "s = Solution()\nassert s.twoSum([3, 2, 4], 6) == [1, 2]"}, "ok"),
        ({"task_id": "two-sum", "test": "assert Solution().twoSum([3, 3], 6) == [0, 1] and True"}, "ok"),
        ({"task_id": "two-sum", "test": "assert Solution().twoSum([1, 5, 3], 8) == [0, 1]"}, "no_consensus"),
        ({"task_id": "two-sum", "test": "assert twoSum([3, 3], 6) == [0, 1]"}, "does_not_call_function"),
        (
            {"task_id": "two-sum", "test": "assert other.twoSum([3, 3], 6) == [0, 1]"},
            "does_not_call_function",
        ),
    ]
    tests = _write(tmp_path / "t.jsonl", [r for r, _ in rows_and_reasons])
    v = validate("leetcode", tests, data=data, solutions=solutions, limits=LIMITS, executor=executor)
    # Test 2 ([3, 3] -> [0, 1]) is passed by all three: the sets are {0, 1, 2} (right, 2 x 3 = 6)
    # and {0, 2, 3} (wrong, 1 x 3 = 3).
    assert v.reasons == [why for _, why in rows_and_reasons]
    assert set(v.methods) == {"dual_agreement"}


# ---------------------------------------------------------------------------------------------
# APPS: call-based tasks with a reference solution, and stdin/stdout tasks.


def _apps_row(pid: int, io: dict[str, Any], solution: str, starter: str = "") -> dict[str, Any]:
    return {
        "problem_id": pid,
        "question": "See the tests.",
        "solutions": json.dumps([solution]),
        "input_output": json.dumps(io),
        "difficulty": "introductory",
        "starter_code": starter,
    }


def test_apps_call_based_and_stdio(executor: LocalExecutor, tmp_path: Path) -> None:
    data = _write(
        tmp_path / "apps.jsonl",
        [
            _apps_row(
                1,
                {"fn_name": "double", "inputs": [[1]], "outputs": [2]},
                "def double(x):\n    return 2 * x\n",
            ),
            _apps_row(2, {"inputs": ["3\n"], "outputs": ["6\n"]}, "print(2 * int(input()))\n"),
            _apps_row(
                3,
                {"fn_name": "half", "inputs": [[4]], "outputs": [2]},
                "class Solution:\n    def half(self, x):\n        return x // 2\n",
                starter="class Solution:\n    def half(self, x):\n        ",
            ),
        ],
    )
    rows_and_reasons = [
        ({"task_id": "1", "test": "assert double(21) == 42"}, "ok"),
        ({"task_id": "1", "test": "assert double(21) == 41"}, "fails_reference"),
        ({"task_id": "2", "test": {"input": "5\n", "output": "10\n"}}, "ok"),
        ({"task_id": "2", "test": {"input": "5\n", "output": "11\n"}}, "fails_reference"),
        (
            {"task_id": "2", "test": {"input": "x\n", "output": "10\n"}},
            "fails_reference",
        ),  # the reference crashes
        ({"task_id": "3", "test": "assert Solution().half(9) == 4"}, "ok"),
        ({"task_id": "3", "test": "assert half(9) == 4"}, "does_not_call_function"),
    ]
    tests = _write(tmp_path / "t.jsonl", [r for r, _ in rows_and_reasons])
    v = validate("apps", tests, data=data, limits=LIMITS, executor=executor)
    assert v.reasons == [why for _, why in rows_and_reasons]
    assert set(v.methods) == {"reference"}


# ---------------------------------------------------------------------------------------------
# HumanEval+ and MBPP+ rows (evalplus format): the reference is `canonical_solution`.


def test_plus_benchmarks(executor: LocalExecutor, tmp_path: Path) -> None:
    from test_data_plus import HE_ROW, MB_ROW

    he = _write(tmp_path / "he.jsonl", [HE_ROW])
    rows = [
        {"task_id": "HumanEval/900", "test": "assert mean([2, 4]) == 3"},
        {"task_id": "HumanEval/900", "test": "assert mean([2, 4]) == 4"},
        {"task_id": "HumanEval/900", "test": "assert mean([]) == 0"},  # the reference divides by zero
    ]
    v = validate(
        "humaneval_plus", _write(tmp_path / "t.jsonl", rows), data=he, limits=LIMITS, executor=executor
    )
    assert v.reasons == ["ok", "fails_reference", "fails_reference"]
    mb = _write(tmp_path / "mb.jsonl", [MB_ROW])
    rows = [
        {"task_id": "Mbpp/2", "test": "assert set(similar_elements((1, 2), (2, 3))) == {2}"},
        {"task_id": "Mbpp/2", "test": "assert similar_elements((1, 2), (2, 3)) == (3,)"},
        {"task_id": "Mbpp/2", "test": "assert set((1, 2)) == {1, 2}"},
    ]
    v = validate("mbpp_plus", _write(tmp_path / "t2.jsonl", rows), data=mb, limits=LIMITS, executor=executor)
    assert v.reasons == ["ok", "fails_reference", "does_not_call_function"]


def test_cli_unsupported_benchmark(tmp_path: Path) -> None:
    tests = _write(tmp_path / "t.jsonl", [{"task_id": "1", "test": "assert True"}])
    r = _cli(
        "tests",
        "validate",
        "--benchmark",
        "apibench",
        "--data",
        str(tests),
        "--tests",
        str(tests),
        "--out",
        str(tmp_path / "v.jsonl"),
    )
    assert r.returncode == 2 and "not supported" in r.stderr
