"""What test synthesis and validation need to know about one benchmark task: `TaskSpec`.

`spec(benchmark, problem)` reads it from the benchmark's own `Problem`:

| benchmark | kind | function the tests must call | reference solution | what the test writer sees |
|---|---|---|---|---|
| humaneval, humaneval_plus | assert | `entry_point` | `canonical_solution` | the prompt (signature + docstring) |
| mbpp | assert | the function the first hidden assert calls | `code` | the description + the reference's `def` line |
| mbpp_plus | assert | `entry_point` | `canonical_solution` | the description + the reference's `def` line |
| builtin (function, api) | assert | `solve` | `solution` | the header (signature + docstring) |
| builtin (io) | io | - | `solution` | the instruction |
| apps | io, or assert for `fn_name` tasks | `fn_name` | the first of `solutions` | question + starter code |
| livecodebench | io, or assert for `func_name` tasks | `func_name` (a `Solution` method) | none | question + starter code |
| leetcode | assert | `entry_point` (a `Solution` method) | none | question + starter code |

The writer never sees a hidden test or the reference body (MBPP names its function only in its
tests, so its signature line is shown). `classes` are the top-level classes of the starter code
or reference that define the entry point as a method (LeetCode style): a test may call it as
`Solution().name(...)`. `setup` is trusted source the tests may need (MBPP's test imports, the
built-in api tasks' module import); it runs in the program's namespace before the tests.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Literal

from execrl.data import DataError, mbpp

__all__ = ["SUPPORTED", "TaskSpec", "spec"]

SUPPORTED = (
    "humaneval",
    "humaneval_plus",
    "mbpp",
    "mbpp_plus",
    "builtin",
    "apps",
    "livecodebench",
    "leetcode",
)


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    kind: Literal["assert", "io"]
    entry_point: str | None  # the function an assertion test must call (None for io tasks)
    classes: frozenset[str]  # classes of which `entry_point` is a method (LeetCode style)
    reference: str | None  # a completion that `make_job` runs; None when the data has none
    setup: str  # trusted source the tests need, run in the program before them
    instruction: str  # what a test writer sees: description and signature, no tests, no body


def _classes_with(source: str, method: str | None) -> frozenset[str]:
    if not method:
        return frozenset()
    for text in (source, source + "pass\n", source.rstrip() + "\n        pass\n"):
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        return frozenset(
            node.name
            for node in tree.body
            if isinstance(node, ast.ClassDef)
            and any(
                isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name == method for f in node.body
            )
        )
    return frozenset()


def _def_line(code: str, name: str | None) -> str:
    for line in code.splitlines():
        if name and line.lstrip().startswith((f"def {name}(", f"async def {name}(")):
            return line.strip()
    return ""


def _with_starter(text: str, starter: str) -> str:
    return text.strip() + (
        f"\n\nStarter code:\n```python\n{starter.rstrip()}\n```" if starter.strip() else ""
    )


def spec(benchmark: str, problem: Any) -> TaskSpec:
    """The `TaskSpec` of one problem of `benchmark` (a name from `SUPPORTED`)."""
    tid = problem.task_id
    if benchmark in ("humaneval", "humaneval_plus"):
        ref = problem.canonical_solution or None
        return TaskSpec(tid, "assert", problem.entry_point, frozenset(), ref, "", problem.prompt)
    if benchmark in ("mbpp", "mbpp_plus"):
        entry = mbpp.entry_point(problem.test_list[0]) if benchmark == "mbpp" else problem.entry_point
        code = problem.code if benchmark == "mbpp" else problem.canonical_solution
        text = problem.prompt if benchmark == "mbpp" else problem.prompt.strip().strip('"').strip()
        if benchmark == "mbpp_plus":  # the prompt is a docstring with the first assert: drop it
            text = "\n".join(x for x in text.splitlines() if not x.lstrip().startswith("assert")).strip()
        signature = _def_line(code, entry)
        instruction = text + (f"\n\n{signature}" if signature else f"\n\nThe function is called {entry}.")
        setup = problem.setup if benchmark == "mbpp" else ""
        return TaskSpec(tid, "assert", entry, frozenset(), code or None, setup, instruction)
    if benchmark == "builtin":
        if problem.kind == "io":
            return TaskSpec(tid, "io", None, frozenset(), problem.solution, "", problem.instruction)
        setup = f"import {problem.api_call.module}" if problem.api_call else ""
        return TaskSpec(tid, "assert", "solve", frozenset(), problem.solution, setup, problem.header)
    if benchmark in ("apps", "livecodebench"):
        name = problem.fn_name if benchmark == "apps" else problem.func_name
        ref = (problem.solutions[0] if problem.solutions else None) if benchmark == "apps" else None
        text = _with_starter(
            problem.question if benchmark == "apps" else problem.content, problem.starter_code
        )
        if name is None:
            return TaskSpec(tid, "io", None, frozenset(), ref, "", text)
        classes = _classes_with(problem.starter_code or (ref or ""), name)
        return TaskSpec(tid, "assert", name, classes, ref, "", text)
    if benchmark == "leetcode":
        classes = _classes_with(problem.starter_code, problem.entry_point)
        text = _with_starter(problem.content, problem.starter_code)
        return TaskSpec(tid, "assert", problem.entry_point, classes, None, "", text)
    raise DataError(f"tests: benchmark {benchmark!r} is not supported; choose from {', '.join(SUPPORTED)}")
