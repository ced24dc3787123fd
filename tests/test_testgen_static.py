"""The static rule for synthesized assertion tests: what counts as calling the function (pure AST)."""

from __future__ import annotations

import pytest

from execrl.testgen.static import check, truth

CASES = [
    # (test, reason): the function is `f`.
    ("assert f(1) == 2", "ok"),
    ("assert f(1) == 2, f(3)", "ok"),
    ("r = f(1)\nassert r == 2", "ok"),  # a name bound to the result counts as the call
    ("xs = [f(1)]\nassert xs[0] == 2", "ok"),
    ("for y in f(3):\n    assert y > 0", "ok"),
    ("assert (lambda: f(1))() == 2", "ok"),  # a lambda called where it is written
    ("assert all(f(x) == x for x in [1, 2])", "ok"),
    ("assert f(1) == 2 if True else False", "ok"),
    ("import math\nassert math.isclose(f(1), 2.0)", "ok"),
    ("if (r := f(1)) > 0:\n    pass\nassert r == 2", "ok"),  # a walrus binds the result too
    ("assert f", "does_not_call_function"),  # no call
    ("assert True", "does_not_call_function"),
    ("assert 1 == 1", "does_not_call_function"),
    ("x = 3\nassert x == 3", "does_not_call_function"),  # an assert on a local variable
    ("r = f(1)\nassert True", "does_not_call_function"),  # called, but the assert does not use it
    ("assert (lambda: f(1))", "does_not_call_function"),  # a lambda never invoked
    ("assert True or f(1)", "does_not_call_function"),  # short-circuited: f never runs
    ("assert 2 == 2 or f(1)", "does_not_call_function"),
    ("assert False and f(1)", "does_not_call_function"),
    ("assert True if True else f(1)", "does_not_call_function"),  # the branch not taken
    ("if False:\n    assert f(1) == 2\nassert True", "does_not_call_function"),
    ("def g():\n    assert f(1) == 2\nassert True", "does_not_call_function"),  # a body never called
    ("assert list(map(f, [1])) == [2]", "does_not_call_function"),  # passed as a value, not called
    ("assert f(1) or True", "always_true"),
    ("assert (f(1), 2)", "always_true"),  # a non-empty tuple is true
    ("assert [f(1)]", "always_true"),
    ("assert f(1) == f(1)", "always_true"),
    ("assert f(1) is f(1)", "always_true"),
    ("assert not f(1) != f(1)", "always_true"),
    ("f(1)", "no_assert"),
    ("print(f(1))", "no_assert"),
    ("f = lambda x: 2\nassert f(1) == 2", "shadows_function"),
    ("def f(x):\n    return 2\nassert f(1) == 2", "shadows_function"),
    ("assert (f := len)([1]) == 1", "shadows_function"),
    ("from os import path as f\nassert f(1)", "shadows_function"),
    ("assert (lambda f: f(1))(lambda x: 2) == 2", "shadows_function"),
    ("global f\nassert f(1) == 2", "shadows_function"),
    ("match 1:\n    case f:\n        pass\nassert f(1) == 2", "shadows_function"),
    ("assert f(1 ==", "syntax"),
    ("asert f(1) == 2", "syntax"),
    ("return f(1)", "syntax"),  # valid as a function body, which would change what running it does
    ("yield f(1)", "syntax"),
    ("from math import *\nassert f(1) == 2", "syntax"),  # not allowed in the function it runs as
    ("", "no_assert"),
]


METHOD_CASES = [
    # (test, reason): the function is the method `f` of `class Solution` (LeetCode style).
    ("assert Solution().f(1) == 2", "ok"),
    ("s = Solution()\nassert s.f(1) == 2", "ok"),
    ("assert f(1) == 2", "does_not_call_function"),  # the program defines no top-level f
    ("assert obj.f(1) == 2", "does_not_call_function"),  # not an instance of a class of the task
    ("assert Solution.f", "does_not_call_function"),
    ("assert Solution().f(1) or True", "always_true"),
    (
        "class Solution:\n    def f(self, x):\n        return 2\nassert Solution().f(1) == 2",
        "shadows_function",
    ),
    ("Solution = dict\nassert Solution().f(1) == 2", "shadows_function"),
]


@pytest.mark.parametrize(("test", "reason"), CASES)
def test_static_reason(test: str, reason: str) -> None:
    assert check(test, "f") == reason


@pytest.mark.parametrize(("test", "reason"), METHOD_CASES)
def test_static_reason_for_methods(test: str, reason: str) -> None:
    assert check(test, "f", ["Solution"]) == reason


def test_methods_need_a_class_of_the_task() -> None:
    """Without `classes`, `Solution().f(1)` is not a call of the task's function."""
    assert check("assert Solution().f(1) == 2", "f") == "does_not_call_function"


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("True", True),
        ("0", False),
        ("[]", False),
        ("(g(),)", True),
        ("{**d}", None),
        ("g() or 1", True),
        ("g() and 0", False),
        ("g() or 0", None),
        ("1 < 2", True),
        ("'a' in 'abc'", True),
        ("g() == g()", True),
        ("g() != g()", False),
        ("g() == h()", None),
        ("1 if g() else 1", True),
        ("not g()", None),
    ],
)
def test_truth_folds_only_what_holds_whatever_calls_return(expr: str, value: bool | None) -> None:
    import ast

    node = ast.parse(expr, mode="eval").body
    assert truth(node) is value
