"""Wrong programs that a task's tests should reject: trivial programs and mutants of the reference.

A test the reference passes is *correct*, not necessarily *useful*: `assert solve([]) == 0` is
passed by the reference and by `return 0`. PLUM labels a program "chosen" when it passes every
valid test of its task, so a task whose tests a wrong program also passes turns wrong programs
into chosen ones. `validate(..., adequacy=True)` (`execrl tests validate --adequacy`) runs the
programs made here against the task's reference-passing tests and keeps the tests only when they
reject them (the rule is in validate.py's docstring). The programs:

* trivial programs (`TRIVIAL`): the entry point's body replaced by `return <c>` for a few
  constants (None, 0, -1, 1, 0.0, '', [], {}, False, True) and by `return <first parameter>`
  (the identity): what a model that learned nothing writes;
* mutants of the reference (mutation testing, DeMillo et al. 1978): one change each — a
  statement deleted (an assignment, `if`, loop or expression statement; a block left empty gets
  `pass`), an integer constant ±1, a comparison flipped (`>`↔`>=`, `<`↔`<=`, `==`↔`!=`, `in`↔`not in`,
  `is`↔`is not`), an arithmetic operator changed (`+`↔`-`, `*`→`+`, `/`→`*`, `//`→`/`, `%`→`//`),
  `and`↔`or`. They are the near misses a policy writes (a filter forgotten, a bound off by one).

Limits: a mutant can be *equivalent* to the reference (deleting a filter that a later filter
implies), so no test can reject it; the mutation score is therefore required to reach a
threshold, not 1. A trivial program can be equivalent too (a reference that always returns None):
such a task can never be adequate. Mutants are made from the reference's AST (`ast.unparse`, so
comments are lost); a reference that does not parse, or that does not define the entry point
(a body-style reference, as HumanEval's and the built-in suite's, is parsed as a function body),
gives none. A constant used as a default argument or in a decorator is not mutated.
"""

from __future__ import annotations

import ast
import copy
import random
import textwrap
import zlib
from collections.abc import Iterator

__all__ = ["TRIVIAL", "mutants", "params_of", "trivial_programs", "wrong_programs"]

TRIVIAL = ("None", "0", "-1", "1", "0.0", "''", "[]", "{}", "False", "True")

_WRAP = "def __execrl_body__():\n"
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_CMP = {ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}  # fmt: skip
_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
        ast.Mod: ast.FloorDiv}  # fmt: skip
_DELETABLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.If, ast.For, ast.While, ast.Expr)


def _parse(
    completion: str, entry_point: str
) -> tuple[ast.Module, ast.FunctionDef | ast.AsyncFunctionDef, bool] | None:
    """(module, the function whose body is mutated, wrapped): a full program defining
    `entry_point`, or a function body (wrapped in a def to parse it)."""
    try:
        mod = ast.parse(completion)
    except SyntaxError:
        pass
    else:
        fn = next((n for n in ast.walk(mod) if isinstance(n, _FUNCS) and n.name == entry_point), None)
        return (mod, fn, False) if fn is not None else None
    try:
        mod = ast.parse(_WRAP + completion)
    except SyntaxError:
        return None
    wrapper = mod.body[0]
    assert isinstance(wrapper, ast.FunctionDef)
    return mod, wrapper, True


def _source(mod: ast.Module, wrapped: bool) -> str:
    if not wrapped:
        return ast.unparse(mod) + "\n"
    fn = mod.body[0]
    assert isinstance(fn, ast.FunctionDef)
    return "".join(textwrap.indent(ast.unparse(s), "    ") + "\n" for s in fn.body)


def trivial_programs(completion: str, entry_point: str, params: list[str]) -> list[tuple[str, str]]:
    """(name, completion) per trivial program, in the form of `completion` (a body or a program);
    `params` are the entry point's parameters (the first one is returned by "identity")."""
    parsed = _parse(completion, entry_point)
    if parsed is None:
        return []
    out = []
    for expr in TRIVIAL + ((params[0],) if params else ()):
        mod, fn, wrapped = copy.deepcopy(parsed)
        body = fn if not wrapped else mod.body[0]
        assert isinstance(body, _FUNCS)
        body.body = [ast.Return(ast.parse(expr, mode="eval").body)]
        name = "return " + ("identity" if params and expr == params[0] else expr)
        out.append((name, _source(ast.fix_missing_locations(mod), wrapped)))
    return out


def _sites(fn: ast.AST) -> Iterator[tuple[int, str, int]]:
    """(walk index of a node, what to change, index in a statement list); deterministic order."""
    for k, node in enumerate(ast.walk(fn)):
        for name in ("body", "orelse", "finalbody"):
            stmts = getattr(node, name, None)
            if not isinstance(stmts, list):
                continue
            for j, s in enumerate(stmts):
                docstring = isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                if isinstance(s, _DELETABLE) and not docstring:
                    yield k, "delete:" + name, j
        if isinstance(node, ast.Constant) and type(node.value) is int:
            yield k, "const", 1
            yield k, "const", -1
        elif isinstance(node, ast.Compare):
            for j, op in enumerate(node.ops):
                if type(op) in _CMP:
                    yield k, "cmp", j
        elif isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            yield k, "bin", 0
        elif isinstance(node, ast.BoolOp):
            yield k, "bool", 0


def _apply(node: ast.AST, what: str, j: int) -> None:
    if what.startswith("delete:"):
        stmts = getattr(node, what.split(":")[1])
        del stmts[j]
        if not stmts and what != "delete:orelse" and what != "delete:finalbody":
            stmts.append(ast.Pass())
    elif what == "const":
        assert isinstance(node, ast.Constant) and type(node.value) is int
        node.value = int(node.value) + j
    elif what == "cmp":
        assert isinstance(node, ast.Compare)
        node.ops[j] = _CMP[type(node.ops[j])]()
    elif what == "bin":
        assert isinstance(node, ast.BinOp)
        node.op = _BIN[type(node.op)]()
    else:
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()


def mutants(completion: str, entry_point: str, *, limit: int = 24, seed: str = "") -> list[tuple[str, str]]:
    """(name, completion) of at most `limit` distinct one-change mutants of the entry point's body,
    a seeded choice (by `seed`, e.g. the task id) when there are more; none differs from
    `completion` only in formatting."""
    parsed = _parse(completion, entry_point)
    if parsed is None:
        return []
    mod, fn, wrapped = parsed
    original = _source(mod, wrapped)
    k_of_fn = next(k for k, n in enumerate(ast.walk(mod)) if n is fn)
    out: dict[str, str] = {}
    for k, what, j in _sites(fn):
        m = copy.deepcopy(mod)
        m_fn = list(ast.walk(m))[k_of_fn]
        _apply(list(ast.walk(m_fn))[k], what, j)
        try:
            src = _source(ast.fix_missing_locations(m), wrapped)
            compile(src if not wrapped else _WRAP + src, "<mutant>", "exec")
        except (SyntaxError, ValueError, TypeError):
            continue
        if src != original and src not in out.values():
            out[f"{what.split(':')[0]}@{k}.{j}"] = src
    items = sorted(out.items())
    if len(items) > limit:
        items = sorted(random.Random(zlib.crc32(seed.encode())).sample(items, limit))
    return items


def wrong_programs(
    completion: str, entry_point: str, params: list[str], *, limit: int = 24, seed: str = ""
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(trivial programs, mutants) of a reference `completion`."""
    return trivial_programs(completion, entry_point, params), mutants(
        completion, entry_point, limit=limit, seed=seed
    )


def params_of(program: str, entry_point: str) -> list[str]:
    """The entry point's parameters in a full program (`self`/`cls` of a method left out)."""
    try:
        mod = ast.parse(program)
    except SyntaxError:
        return []
    fn = next((n for n in ast.walk(mod) if isinstance(n, _FUNCS) and n.name == entry_point), None)
    if fn is None:
        return []
    names = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    return names[1:] if names[:1] in (["self"], ["cls"]) else names
