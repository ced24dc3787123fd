"""LeetCode-contest problems (DeepSeek-Coder's `20240121-Jul.jsonl`, used by PF-PPO) as jobs.

Scope: one JSON object per line with
`task_id` (string or integer); the problem text as `content`, or as `prompt` (DeepSeek-Coder's
form `'\"\"\"\\n{text}\\n\"\"\"\\n{starter code}'` is split into text and starter code, any other
`prompt` is the text); `starter_code` (a `class Solution:` with one method; optional when the
prompt carries it); `entry_point` or `func_name` (optional: else the first public method of the
starter's `class Solution`); `difficulty` or `meta.difficulty` (optional); and the tests, in one
of two forms:

* `tests`: `[{"input": [args...], "output": value}]` -> `CallTests`, the method called on a fresh
  `Solution()` (or a top-level function of that name). An `input` given as an object of keyword
  arguments is put in the order of the starter method's parameters.
* `test`: Python source of top-level statements and asserts (DeepSeek-Coder: `my_solution =
  Solution()`, then `test_input = {...}` / `assert my_solution.f(**test_input) == 5` pairs) ->
  `AssertTests`, one test per top-level `assert`, each holding the statements since the previous
  assert. The statements before the first assert that bind names no later statement rebinds
  (`my_solution = Solution()`) are repeated at the start of every test, so each test gets its
  own `Solution()` and a test after a crash or timeout (which restarts the candidate process)
  does not call into a dead one. Source with no top-level assert (e.g. a `check(candidate)`
  function) is refused.

`make_job`: the program is `PRELUDE` (DeepSeek-Coder's import helper for Python, without its
`import numpy` lines: numpy is not needed by any starter code and need not be installed) followed
by the completion, which must hold the whole `class Solution`; error lines count from the
completion's start. `sanitize=True` extracts the code with the entry point as `apps` does.
Float results compare within `CallTests.float_tol` (1e-6) in the list form, exactly in the
asserts of the `test` form (as DeepSeek-Coder's harness does).

Prompts: completion style is DeepSeek-Coder's `prompt` (text as a docstring, then the starter
code, ending in the method's open body); `STOP` is the Codex-style list its evaluation cuts
completions at (`\\ndef`, `\\nclass`, `\\nif`, `\\n#`, `\\nprint`: unindented, so methods survive);
`completion_from_output` puts the starter code back in front of the continuation (or keeps the
model's code alone when it rewrote the class). Chat style is one user message in the spirit of
DeepSeek-Coder's `prompt_sft` asking for one fenced block with the complete class;
`completion_from_output` extracts it (DeepSeek's `[PYTHON]` tags are read as fences). `metadata`
gives the difficulty when the row has one (DeepSeek-Coder reports Easy/Medium/Hard).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from execrl.data import sanitize as _sanitize
from execrl.data.jsonl import DataError, PathLike, Row, index_rows, json_type
from execrl.generation import Prompt, truncate_at_stop
from execrl.types import AssertTests, CallCase, CallTests, Job, Limits

__all__ = [
    "NAME",
    "PRELUDE",
    "STOP",
    "Problem",
    "completion_from_output",
    "load",
    "make_job",
    "metadata",
    "prompt",
    "solution_method",
]

NAME = "leetcode"
STOP: tuple[str, ...] = ("\ndef", "\nclass", "\nif", "\n#", "\nprint")
PRELUDE = (
    "import math\nimport re\nimport sys\nimport copy\nimport datetime\nimport itertools\n"
    "import collections\nimport heapq\nimport functools\nimport hashlib\nimport string\n"
    "from typing import *\nfrom collections import *\nfrom functools import *\n"
)
_QUOTES = '"""'


@dataclass(frozen=True)
class Problem:
    task_id: str
    content: str
    starter_code: str
    entry_point: str
    tests: CallTests | AssertTests
    difficulty: str = ""


def _method(starter_code: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    # Starter code ends inside the method's empty body; try closing it.
    for source in (starter_code, starter_code + "pass\n", starter_code.rstrip() + "\n        pass\n"):
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == "Solution":
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith(
                        "_"
                    ):
                        return item
        return None
    return None


def solution_method(starter_code: str) -> str | None:
    """The first public method of `class Solution` in LeetCode starter code, if any."""
    method = _method(starter_code)
    return method.name if method is not None else None


def _split_prompt(prompt: str) -> tuple[str, str]:
    """DeepSeek-Coder's prompt as (text, starter code); any other prompt is all text."""
    if prompt.startswith(_QUOTES + "\n"):
        end = prompt.find("\n" + _QUOTES + "\n", 3)
        if end >= 0:
            return prompt[4:end], prompt[end + 5 :]
    return prompt, ""


def _call_tests(row: Row, entry_point: str, starter_code: str) -> CallTests:
    value = row.get("tests", list)
    method = _method(starter_code)
    params = [a.arg for a in method.args.args[1:]] if method is not None else []
    cases: list[CallCase] = []
    for i, case in enumerate(value):
        if not isinstance(case, dict) or "input" not in case or "output" not in case:
            raise row.error(f'field "tests" item {i} must be an object with "input" and "output"')
        args = case["input"]
        if isinstance(args, dict):
            unknown = sorted(set(args) - set(params))
            if unknown or len(args) != len(params):
                raise row.error(
                    f'field "tests" item {i}: keyword input {sorted(args)} does not match the starter '
                    f"method's parameters {params}"
                )
            args = [args[p] for p in params]
        if not isinstance(args, list):
            raise row.error(
                f'field "tests" item {i}: "input" must be an array of arguments, got {json_type(args)}'
            )
        cases.append(CallCase(args=tuple(args), expected=case["output"]))
    if not cases:
        raise row.error('field "tests" is empty')
    return CallTests(fn_name=entry_point, cases=tuple(cases))


def _bound(node: ast.stmt) -> set[str]:
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _assert_tests(row: Row, source: str) -> AssertTests:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as e:
        raise row.error(f'field "test" is not valid Python ({e})')
    groups: list[list[ast.stmt]] = [[]]
    for node in tree.body:
        groups[-1].append(node)
        if isinstance(node, ast.Assert):
            groups.append([])
    trailing = groups.pop()
    if not groups:
        raise row.error('field "test" has no top-level assert')
    groups[-1].extend(trailing)  # statements after the last assert run with it
    # Bindings made before the first assert and never remade (my_solution = Solution()).
    later = {name for group in groups[1:] for node in group for name in _bound(node)}
    before_first = groups[0][: next(i for i, n in enumerate(groups[0]) if isinstance(n, ast.Assert))]
    prelude = [n for n in before_first if _bound(n) and not _bound(n) & later]

    def text(nodes: list[ast.stmt]) -> str:
        return "\n".join(ast.get_source_segment(source, n) or ast.unparse(n) for n in nodes)

    tests = tuple(text(prelude + [n for n in group if n not in prelude]) for group in groups)
    return AssertTests(tests=tests)


def _difficulty(row: Row) -> str:
    meta = row.get("meta", dict, {})
    value = row.data.get("difficulty") or meta.get("difficulty") or ""
    if not isinstance(value, str):
        raise row.error(f'field "difficulty" must be a string, got {json_type(value)}')
    return value


def _problem(row: Row) -> Problem:
    text_field = "content" if row.data.get("content") is not None else "prompt"
    content, embedded_starter = _split_prompt(row.text(text_field))
    starter_code = row.text("starter_code", default="") or embedded_starter
    name_field = "entry_point" if row.data.get("entry_point") is not None else "func_name"
    entry_point = row.text(name_field, default="") or solution_method(starter_code)
    if not entry_point:
        raise row.error('missing field "entry_point" (and no class Solution method in the starter code)')
    if not entry_point.isidentifier():
        raise row.error(f'field "{name_field}" must be an identifier, got {entry_point!r}')
    tests: CallTests | AssertTests
    if row.data.get("tests") is not None:
        tests = _call_tests(row, entry_point, starter_code)
    elif row.data.get("test") is not None:
        tests = _assert_tests(row, row.text("test"))
    else:
        raise row.error('missing field "tests" (or "test")')
    return Problem(
        task_id=row.ident("task_id"),
        content=content,
        starter_code=starter_code,
        entry_point=entry_point,
        tests=tests,
        difficulty=_difficulty(row),
    )


def load(path: PathLike | None = None) -> dict[str, Problem]:
    """Problems by task_id, in file order."""
    if path is None:
        raise DataError("leetcode: no copy ships with execrl; pass the path of a LeetCode-contest JSONL")
    return index_rows(path, _problem)


def make_job(problem: Problem, completion: str, limits: Limits, *, sanitize: bool = False) -> Job:
    """`PRELUDE + completion`, judged by calling the `Solution` method (or running the asserts)."""
    code = _sanitize.extract_code(completion, problem.entry_point) if sanitize else completion
    return Job(
        program=PRELUDE + code, tests=problem.tests, limits=limits, completion_start=len(PRELUDE), main=False
    )


def prompt(problem: Problem, *, chat: bool) -> Prompt:
    """DeepSeek-Coder's docstring + starter code prompt, or a chat request (see module doc)."""
    if not chat:
        return f"{_QUOTES}\n{problem.content}\n{_QUOTES}\n{problem.starter_code}"
    content = (
        f"{problem.content.strip()}\n\nPlease complete the code below to solve the problem above. Reply "
        "with a single fenced Python code block (```python ... ```) holding the complete "
        f"`class Solution`.\n```python\n{problem.starter_code.rstrip()}\n```"
    )
    return [{"role": "user", "content": content}]


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def completion_from_output(problem: Problem, text: str, *, chat: bool) -> str:
    """Completion style: starter code + `text` cut at `STOP`. Chat: the extracted class."""
    if chat:
        text = text.replace("[PYTHON]", "```python\n").replace("[/PYTHON]", "\n```")
        return _sanitize.extract_code(text, problem.entry_point)
    cut = truncate_at_stop(text, STOP)[0]
    joined = problem.starter_code + cut
    if problem.starter_code and not _parses(joined) and _parses(cut):
        return cut
    return joined


def metadata(problem: Problem) -> dict[str, str]:
    """The difficulty, when the data has one."""
    return {"difficulty": problem.difficulty} if problem.difficulty else {}
