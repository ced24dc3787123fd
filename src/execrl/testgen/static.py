"""Static checks on one synthesized assertion test, decided from its source before anything runs.

A test is Python source (one or more statements, usually one `assert`). `check(test, entry_point,
classes)` returns the first reason that applies, in this order:

* `syntax`: the source does not compile as a module (`return`, `yield` or `await` at the top level
  are rejected here: as a function body they would change what calling the test does), or does
  not compile as the body of a function, the form in which it runs (`from m import *`).
* `shadows_function`: the test binds the name of the function (or of a class in `classes`) itself:
  an assignment, a walrus, a `def`/`class`, an import, a `for`/`with`/`except`/`match` target, a
  parameter, a `del`, a `global`/`nonlocal` declaration. Its calls would then test its own definition, not the program's.
* `no_assert`: no `assert` statement outside function and class bodies.
* `does_not_call_function`: no assert *evaluates* a call of the function (see below).
* `always_true`: every assert that calls the function holds whatever the function returns (its
  condition folds to a true constant: `assert f(1) or True`, `assert (f(1), 2)`,
  `assert f(1) == f(1)`).
* `ok` otherwise.

"Calls the function", precisely: an assert's condition contains a `Call` node that Python evaluates
whenever the condition is evaluated, whose `func` is the entry-point `Name` (`f(1)`), or, when
the function is a method of one of `classes` (LeetCode style; then only this form counts), an
attribute named like it whose receiver is an instance of one of `classes`
(`Solution().twoSum(...)`, or `s.twoSum(...)` after `s = Solution()` in the test). A name the test
assigned (also by a walrus) from an expression that calls the function counts as the call
(`r = f(1)` then `assert r == 2`). Not evaluated, so not counted: the body of a lambda that is not called where it
is written (`assert (lambda: f(1))` holds a function, not its result; `assert (lambda: f(1))()`
counts), operands after a short-circuit whose outcome is a constant (`assert True or f(1)`), the
branch of a conditional expression not taken when its test is a constant, the assert's message,
statements under `if`/`while` whose test is a false constant, and function/class bodies. The
function passed as a value (`map(f, xs)`, `sorted(xs, key=f)`) is not a call: such a test is
`does_not_call_function` (write `[f(x) for x in xs]`). Comprehensions count as evaluated even
when they iterate over an empty literal.

Constant folding (`truth`) is deliberately small: constants, container displays (their truth is
their length), `not`, `and`/`or`, conditional expressions, comparisons of two literals, and
`X == X` / `X is X` / `X <= X` / `X >= X` (and their negations) for the same expression `X`.
"""

from __future__ import annotations

import ast
import operator
import warnings
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["REASONS", "check", "function_body", "parse", "truth"]

REASONS = ("syntax", "shadows_function", "no_assert", "does_not_call_function", "always_true", "ok")

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_REFLEXIVE = {ast.Eq: True, ast.Is: True, ast.LtE: True, ast.GtE: True, ast.NotEq: False, ast.IsNot: False}


def parse(test: str) -> ast.Module | None:
    """The test's module AST, or None when it is not valid as a module and as a function body."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "assertion is always true": that is ours to report
            tree = ast.parse(test)
            compile(tree, "<test>", "exec", dont_inherit=True)  # `return`/`yield`/`await` outside a function
            compile(function_body("__t", tree), "<test>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None
    return tree


def function_body(name: str, tree: ast.Module) -> ast.Module:
    """`def name():` with the test's statements as its body (how a test runs: own local scope)."""
    wrapper = ast.parse(f"def {name}():\n    pass\n")
    func = wrapper.body[0]
    assert isinstance(func, ast.FunctionDef)
    func.body = list(tree.body) or [ast.Pass()]
    return ast.fix_missing_locations(wrapper)


def truth(node: ast.AST) -> bool | None:
    """The truth value of an expression when it is the same whatever any call returns, else None."""
    if isinstance(node, ast.Constant):
        return bool(node.value)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return None if any(isinstance(e, ast.Starred) for e in node.elts) else bool(node.elts)
    if isinstance(node, ast.Dict):
        return None if any(k is None for k in node.keys) else bool(node.keys)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = truth(node.operand)
        return None if inner is None else not inner
    if isinstance(node, ast.BoolOp):
        values = [truth(v) for v in node.values]
        decisive = isinstance(node.op, ast.Or)  # `or` is true if any operand is; `and` false if any is
        if decisive in values:
            return decisive
        return (not decisive) if all(v is not None for v in values) else None
    if isinstance(node, ast.IfExp):
        test = truth(node.test)
        if test is not None:
            return truth(node.body if test else node.orelse)
        body, orelse = truth(node.body), truth(node.orelse)
        return body if body == orelse else None
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right, op = node.left, node.comparators[0], type(node.ops[0])
        if op in _REFLEXIVE and ast.dump(left) == ast.dump(right):
            return _REFLEXIVE[op]
        if op in _COMPARE:
            try:
                return bool(_COMPARE[op](ast.literal_eval(left), ast.literal_eval(right)))
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                return None
    return None


class _Calls:
    """Which expressions evaluate a call of the function; tracks names bound to such results."""

    def __init__(self, entry_point: str, classes: frozenset[str]) -> None:
        self.entry, self.classes = entry_point, classes
        self.results: set[str] = set()  # names bound to values computed by calling the function
        self.instances: set[str] = set()  # names bound to instances of `classes`

    def is_call(self, node: ast.Call) -> bool:
        func = node.func
        if isinstance(func, ast.Name):
            return func.id == self.entry and not self.classes
        if isinstance(func, ast.Attribute) and func.attr == self.entry:
            return self.is_instance(func.value)
        return False

    def is_instance(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.instances
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in self.classes

    def reaches(self, node: ast.AST) -> bool:
        """Whether evaluating `node` evaluates a call of the function (or reads its result)."""
        if isinstance(node, _SCOPES):
            return False  # a body runs only when called
        if isinstance(node, ast.Name):
            return isinstance(node.ctx, ast.Load) and node.id in self.results
        if isinstance(node, ast.Call):
            if self.is_call(node):
                return True
            if isinstance(node.func, ast.Lambda) and self.reaches(node.func.body):
                return True  # a lambda called where it is written
        if isinstance(node, ast.BoolOp):
            stop = isinstance(node.op, ast.Or)  # `or` stops at a true operand, `and` at a false one
            for value in node.values:
                if self.reaches(value):
                    return True
                if truth(value) is stop:
                    return False
            return False
        if isinstance(node, ast.IfExp):
            test = truth(node.test)
            if self.reaches(node.test):
                return True
            if test is None:
                return self.reaches(node.body) or self.reaches(node.orelse)
            return self.reaches(node.body if test else node.orelse)
        return any(self.reaches(child) for child in ast.iter_child_nodes(node))

    def bind(self, targets: Iterable[ast.AST], value: ast.AST | None) -> None:
        names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        if value is not None and self.reaches(value):
            self.results.update(names)
        if value is not None and self.is_instance(value):
            self.instances.update(names)


def _binds(node: ast.AST, names: set[str]) -> bool:
    """Whether the test binds one of `names` anywhere (including inside nested scopes)."""
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)) and n.id in names:
            return True
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name in names:
            return True
        if isinstance(n, ast.alias) and (n.asname or n.name.split(".")[0]) in names:
            return True
        if isinstance(n, ast.arg) and n.arg in names:
            return True
        if isinstance(n, ast.ExceptHandler) and n.name in names:
            return True
        if isinstance(n, (ast.Global, ast.Nonlocal)) and names & set(n.names):
            return True
        if isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name in names:
            return True
        if isinstance(n, ast.MatchMapping) and n.rest in names:
            return True
    return False


def _statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """The statements that can run, in order: compound statements are entered, except
    function/class bodies and `if`/`while` bodies under a false constant test."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(stmt, (ast.If, ast.While)):
            test = truth(stmt.test)
            if test is not False:
                yield from _statements(stmt.body)
            if test is not True:
                yield from _statements(stmt.orelse)
            continue
        for field in ("body", "orelse", "finalbody"):
            yield from _statements(getattr(stmt, field, []))
        for handler in getattr(stmt, "handlers", []):
            yield from _statements(handler.body)
        for case in getattr(stmt, "cases", []):
            yield from _statements(case.body)


def _walk_evaluated(stmt: ast.stmt) -> Iterable[ast.AST]:
    """The nodes of one statement itself, not of nested statements or function/class bodies."""
    todo: list[ast.AST] = [c for c in ast.iter_child_nodes(stmt) if not isinstance(c, ast.stmt)]
    while todo:
        node = todo.pop()
        if isinstance(node, _SCOPES):
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


def check(test: str, entry_point: str, classes: Iterable[str] = ()) -> str:
    """The static verdict on one assertion test (see the module docstring for each reason)."""
    tree = parse(test)
    if tree is None:
        return "syntax"
    classes = frozenset(classes)
    if _binds(tree, {entry_point, *classes}):
        return "shadows_function"
    calls = _Calls(entry_point, classes)
    asserts = calls_seen = 0
    for stmt in _statements(tree.body):
        for node in _walk_evaluated(stmt):
            if isinstance(node, ast.NamedExpr):  # `(r := f(1))` binds r for the statements after it
                calls.bind([node.target], node.value)
        if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            calls.bind(targets, stmt.value)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            calls.bind([stmt.target], stmt.iter)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                if item.optional_vars is not None:
                    calls.bind([item.optional_vars], item.context_expr)
        elif isinstance(stmt, ast.Assert):
            asserts += 1
            if calls.reaches(stmt.test):
                calls_seen += 1
                if truth(stmt.test) is not True:
                    return "ok"
    if asserts == 0:
        return "no_assert"
    return "always_true" if calls_seen else "does_not_call_function"
