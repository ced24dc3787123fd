"""RLTF's fine-grained rules on mutants of every HumanEval canonical solution whose error line is
known by construction (the held-out check's MBPP mutants, built here on the data we have): each
mutant goes through `RLTFReward.score` (the real sandbox, program = prompt + completion) and its
penalty's scope and line in the completion must be exactly the rule's.

Every task gets one mutant of each family below; within a family the variant rotates with the
task, so each variant runs on about 164 / len(family) different programs. Lines are 1-based in
the completion."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from execrl.data import humaneval
from execrl.rewards.rltf import RLTFReward
from execrl.types import Limits

PROBLEMS = sorted(humaneval.load().values(), key=lambda p: int(p.task_id.split("/")[1]))

# Runtime errors on the completion's first line, which every test executes: scope line, line 1.
RUNTIME_FIRST = [
    "    _x = 1 // 0\n",
    "    _x = undefined_name_\n",
    "    _x = None + 1\n",
    "    _x = [][0]\n",
    '    _x = {}["k"]\n',
    "    _x = (1).nope\n",
    "    import no_such_module_xyz\n",
    '    raise ValueError("boom")\n',
    "    assert False\n",
    '    _x = int("abc")\n',
    "    _x = [1, 2].index(3)\n",
    '    _x = open("/nonexistent/x").read()\n',
]
# Syntax errors followed by more code: scope line, the inserted line (1).
SYNTAX_FIRST = [
    "    x = = 1\n",  # invalid syntax
    "    return )\n",  # unmatched ')'
    '    print "x"\n',  # Missing parentheses in call to 'print'
    "    f(a=1, 2)\n",  # positional argument follows keyword argument
    "    1 = x\n",  # cannot assign to literal
    '    s = "abc\n',  # unterminated string literal, not on the last line
    "    for i in range(3)\n",  # expected ':', not on the last line
    "    x = [1, 2 3]\n",  # invalid syntax. Perhaps you forgot a comma?
    "    x = 1 +\n",  # invalid syntax
    "    else:\n",  # invalid syntax
    "    import\n",  # invalid syntax
    "    x = (1 for)\n",  # invalid syntax
]
# Appended after the solution, the program ends early: scope global.
END_GLOBAL = [
    "    x = (1,\n",  # '(' was never closed
    "    y = [\n",  # '[' was never closed
    "    z = {1:\n",  # '{' was never closed
    "    x = = 1\n",  # invalid syntax on the last line
    '    s = "abc\n',  # unterminated string literal on the last line
    "    if True:\n",  # expected an indented block at the end
    "    for i in range(3)\n",  # expected ':' on the last line
    "    x = [1, 2 3]\n",  # invalid syntax. Perhaps you forgot a comma? on the last line
    "    try:\n        pass\n",  # expected 'except' or 'finally' block at the end
    "    x = (1,\n\n    # never closed\n",  # trailing blank line and comment
    "    if True:\n        # only a comment\n",
    "    x = = 1\n\n\n",  # trailing blank lines do not move the last line
]
# Scope none, whatever the outcome.
NONE = [
    "\t_a = 1\n",  # a tab against the solution's spaces: TabError / unindent mismatch
    "    _a = 1\n  _b = 2\n",  # unindent does not match any outer indentation level
    "    return None\n",  # a wrong answer
    "    def _g(a, a):\n        pass\n",  # duplicate argument
    "    from os import *\n",  # import * only allowed at module level
]
NONE_APPENDED = ['    s = """abc\n', "    s = '''\n"]  # EOF inside a triple-quoted string


@dataclass(frozen=True)
class Case:
    family: str
    task_id: str
    completion: str
    scope: str
    line: int | None


def _first_code_line(text: str) -> int:
    """1-based number of the first line of `text` holding code."""
    return next(i for i, line in enumerate(text.split("\n"), 1) if line.strip())


def _last_code_line(text: str) -> int:
    """1-based number of the last line of `text` holding code (not blank, not only a comment)."""
    lines = text.split("\n")
    return max(i for i, line in enumerate(lines, 1) if line.strip() and not line.strip().startswith("#"))


def _cases() -> list[Case]:
    cases = []
    for i, p in enumerate(PROBLEMS):
        sol = p.canonical_solution if p.canonical_solution.endswith("\n") else p.canonical_solution + "\n"
        tid = p.task_id

        def add(family: str, completion: str, scope: str, line: int | None, tid: str = tid) -> None:
            cases.append(Case(family, tid, completion, scope, line))

        add("passes", sol, "none", None)
        add("runtime, first line", RUNTIME_FIRST[i % len(RUNTIME_FIRST)] + sol, "line", 1)
        # after a comment and a blank line: the error's own line
        add(
            "runtime, after a comment",
            "    # check\n\n" + RUNTIME_FIRST[(i + 5) % len(RUNTIME_FIRST)] + sol,
            "line",
            3,
        )
        # raised inside a helper the completion defines: the deepest frame in the candidate (line 2)
        add("runtime, in a helper", "    def _h(v):\n        return v / 0\n    _h(1)\n" + sol, "line", 2)
        add("syntax, first line", SYNTAX_FIRST[i % len(SYNTAX_FIRST)] + sol, "line", 1)
        # a try with no handler, followed by code: Python reports the next statement's line, and
        # when that is the last code line (a one-line solution), 3.8 said "invalid syntax" on the
        # last line there: the program ended early, global
        reported = 2 + _first_code_line(sol)
        try_scope = ("line", reported) if reported < _last_code_line(sol) + 2 else ("global", None)
        add("syntax, try without handler", "    try:\n        pass\n" + sol, *try_scope)
        add("ends early", sol + END_GLOBAL[i % len(END_GLOBAL)], "global", None)
        add("RecursionError", "    def _r(n):\n        return _r(n + 1)\n    _r(0)\n" + sol, "global", None)
        add("scope none", NONE[i % len(NONE)] + sol, "none", None)
        add("scope none, appended", sol + NONE_APPENDED[i % len(NONE_APPENDED)], "none", None)
    return cases


# Resource limits are global; a few tasks each (a timeout costs its CPU limit).
LIMIT_CASES = [
    ("timeout", "    while True:\n        pass\n"),
    ("memory exceeded", "    _x = bytearray(1 << 34)\n"),
    ("output exceeded", '    print("x" * (1 << 25))\n'),
]

CASES = _cases()


@pytest.fixture(scope="module")
def scored() -> dict[Case, object]:
    reward = RLTFReward("humaneval", kind="adaptive", limits=Limits(timeout=3.0))
    try:
        results = reward.score([c.task_id for c in CASES], [c.completion for c in CASES])
    finally:
        reward.close()
    return dict(zip(CASES, results))


@pytest.mark.parametrize("family", list(dict.fromkeys(c.family for c in CASES)))
def test_every_mutant_of_a_family_gets_its_scope_and_line(family, scored):
    cases = [c for c in CASES if c.family == family]
    wrong = []
    for c in cases:
        s = scored[c]
        p = s.penalty
        got = (p.scope, p.line) if p is not None else None
        if got != (c.scope, c.line):
            r = s.result
            error = (r.error.type, r.error.message, r.error.line) if r.error else None
            wrong.append((c.task_id, c.completion.split("\n")[:3], got, r.status.value, error))
    assert not wrong, f"{len(wrong)} of {len(cases)} mutants:\n" + "\n".join(map(str, wrong[:10]))


def test_line_penalties_span_the_mutated_line(scored):
    """The span of a line penalty is exactly that line's characters in the completion."""
    for c, s in scored.items():
        p = s.penalty
        if p is not None and p.scope == "line":
            assert c.completion[p.start : p.end] == c.completion.split("\n")[p.line - 1], c


@pytest.mark.parametrize(("name", "prefix"), LIMIT_CASES)
def test_resource_limits_are_global(name, prefix):
    tasks = [p for p in PROBLEMS[:: len(PROBLEMS) // 4]][:4]
    reward = RLTFReward(
        "humaneval", kind="adaptive", limits=Limits(timeout=0.5, max_timeouts=1, memory_mb=512)
    )
    try:
        scored = reward.score([p.task_id for p in tasks], [prefix + p.canonical_solution for p in tasks])
    finally:
        reward.close()
    for p, s in zip(tasks, scored):
        assert s.penalty is not None and s.penalty.scope == "global", (
            p.task_id,
            s.result.status,
            s.result.error,
        )
        assert s.reward == -0.6
