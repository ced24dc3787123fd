"""APPS (Hendrycks et al.) problems, in the codeparrot/apps JSON Lines layout, as sandbox jobs.

Scope: rows have `problem_id` (int), `question`, `solutions` (a JSON string holding a list of
reference programs; optional), `input_output` (a JSON string `{"inputs", "outputs", "fn_name"?}`),
`difficulty` ("introductory", "interview" or "competition"; not checked), `starter_code` and
`url` (optional). `task_id = str(problem_id)`. There is no shipped copy, so `load()` needs a path.

Tests:

* with `fn_name`: `CallTests(fn_name, cases)`, one `CallCase(args=tuple(inputs[i]),
  expected=outputs[i])` per case (each input must be the list of arguments; the expected value is
  kept as given, APPS's checker unwraps one-element lists);
* without: `IOTests(cases)`, one `IOCase` per case; an input or output given as a list of lines is
  joined with "\\n" as APPS's `testing_util` does, and a joined input gets a final newline.

Rows whose `input_output` is empty ("", `{}`, or no inputs) are kept by `load` with
`tests=None`; `make_job` raises `DataError` for them. Deviation: an `input_output` that is
already a decoded JSON object (some exports decode it) is accepted as well as the JSON string.

`make_job`: the completion is the whole program (`completion_start=0`); `main=True` for
stdin/stdout problems. `sanitize=True` applies `sanitize.extract_code`, keeping every top-level
statement for stdin/stdout programs (`definitions_only=False`: their top-level code *is* the
program) and only definitions, with `fn_name` as entry point, for call-based ones.

Prompts: completion style is the APPS paper's (`generate_gpt_codes.py`):
`"\nQUESTION:\n" + question + ("\n" + starter_code if any) + "\nUse Standard Input format"` (or
`"\nUse Call-Based format"` when there is an `fn_name`) `+ "\nANSWER:\n"`. `STOP` is empty: as
in the paper, generation ends at the model's end-of-sequence token (a base model that goes on to
write a new "QUESTION:" then fails on a syntax error, as it would there). Chat style is one user
message with the question, the starter code and the input/output convention, asking for a single
fenced Python block. `completion_from_output` returns completion-style text unchanged and, for
chat, extracts the code exactly as `make_job(..., sanitize=True)` would. `metadata` gives the
difficulty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from execrl.data import sanitize as _sanitize
from execrl.data.jsonl import DataError, PathLike, Row, index_rows, json_type
from execrl.generation import Prompt, truncate_at_stop
from execrl.types import CallCase, CallTests, IOCase, IOTests, Job, Limits

__all__ = ["NAME", "STOP", "Problem", "completion_from_output", "load", "make_job", "metadata", "prompt"]

NAME = "apps"
STOP: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problem:
    task_id: str
    question: str
    tests: IOTests | CallTests | None
    starter_code: str = ""
    difficulty: str = ""
    solutions: tuple[str, ...] = ()
    url: str = ""

    @property
    def fn_name(self) -> str | None:
        return self.tests.fn_name if isinstance(self.tests, CallTests) else None


def _decode(row: Row, name: str) -> Any:
    """A field holding JSON text (or, leniently, the decoded value); None when empty."""
    raw = row.data.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise row.error(f'field "{name}" is not valid JSON ({e.msg}: column {e.colno})')
    except RecursionError:
        raise row.error(f'field "{name}" is not valid JSON (nested too deeply)')


def _text(row: Row, value: Any, where: str, *, is_input: bool) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        joined = "\n".join(value)
        return joined + "\n" if is_input and not joined.endswith("\n") else joined
    raise row.error(
        f'field "input_output": {where} must be a string or an array of strings, got {json_type(value)}'
    )


def _tests(row: Row) -> IOTests | CallTests | None:
    raw = row.data.get("input_output")
    if raw is not None and not isinstance(raw, (str, dict)):
        raise row.error(f'field "input_output" must be a JSON string, got {json_type(raw)}')
    spec = _decode(row, "input_output")
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise row.error(f'field "input_output" must hold a JSON object, got {json_type(spec)}')
    if not spec:
        return None
    inputs, outputs = spec.get("inputs"), spec.get("outputs")
    for key, value in (("inputs", inputs), ("outputs", outputs)):
        if not isinstance(value, list):
            raise row.error(f'field "input_output": "{key}" must be an array, got {json_type(value)}')
    assert isinstance(inputs, list) and isinstance(outputs, list)
    if len(inputs) != len(outputs):
        raise row.error(f'field "input_output": {len(inputs)} inputs but {len(outputs)} outputs')
    if not inputs:
        return None
    fn_name = spec.get("fn_name")
    if fn_name is not None:
        if not isinstance(fn_name, str) or not fn_name.isidentifier():
            raise row.error(f'field "input_output": "fn_name" must be an identifier, got {fn_name!r}')
        calls: list[CallCase] = []
        for i, (args, expected) in enumerate(zip(inputs, outputs, strict=True)):
            if not isinstance(args, list):
                raise row.error(
                    f'field "input_output": inputs[{i}] must be an array of arguments, got {json_type(args)}'
                )
            calls.append(CallCase(args=tuple(args), expected=expected))
        return CallTests(fn_name=fn_name, cases=tuple(calls))
    cases = tuple(
        IOCase(
            input=_text(row, inp, f"inputs[{i}]", is_input=True),
            output=_text(row, out, f"outputs[{i}]", is_input=False),
        )
        for i, (inp, out) in enumerate(zip(inputs, outputs, strict=True))
    )
    return IOTests(cases=cases)


def _solutions(row: Row) -> tuple[str, ...]:
    value = _decode(row, "solutions")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise row.error('field "solutions" must hold a JSON array of strings')
    return tuple(value)


def _problem(row: Row) -> Problem:
    return Problem(
        task_id=row.ident("problem_id"),
        question=row.text("question"),
        tests=_tests(row),
        starter_code=row.text("starter_code", default=""),
        difficulty=row.text("difficulty", default=""),
        solutions=_solutions(row),
        url=row.text("url", default=""),
    )


def load(path: PathLike | None = None) -> dict[str, Problem]:
    """Problems by task_id (`str(problem_id)`), in file order."""
    if path is None:
        raise DataError("apps: no copy of APPS ships with execrl; pass the path of a codeparrot/apps JSONL")
    return index_rows(path, _problem, "problem_id")


def make_job(problem: Problem, completion: str, limits: Limits, *, sanitize: bool = False) -> Job:
    """A job running the completion on each stdin/stdout case, or calling `fn_name` per case."""
    tests = problem.tests
    if tests is None:
        raise DataError(f"apps problem {problem.task_id} has no tests")
    stdio = isinstance(tests, IOTests)
    program = completion
    if sanitize:
        program = _sanitize.extract_code(completion, problem.fn_name, definitions_only=not stdio)
    return Job(program=program, tests=tests, limits=limits, completion_start=0, main=stdio)


# ---------------------------------------------------------------------------------------------
# Prompts and model outputs.


def prompt(problem: Problem, *, chat: bool) -> Prompt:
    """The APPS paper's QUESTION/ANSWER prompt, or a chat request (see the module docstring)."""
    call_based = problem.fn_name is not None
    if not chat:
        starter = "\n" + problem.starter_code if problem.starter_code else ""
        fmt = "Use Call-Based format" if call_based else "Use Standard Input format"
        return f"\nQUESTION:\n{problem.question}{starter}\n{fmt}\nANSWER:\n"
    parts = [problem.question.strip()]
    if problem.starter_code:
        parts.append(f"Start from this code:\n```python\n{problem.starter_code.rstrip()}\n```")
    if call_based:
        parts.append(
            f"Your code is judged by calling `{problem.fn_name}` (a method of `Solution` if you "
            "define that class) on each test's arguments and comparing what it returns."
        )
    else:
        parts.append("Read the input from standard input and write the answer to standard output.")
    parts.append(
        "Reply with a single fenced Python code block (```python ... ```) holding the complete program."
    )
    return [{"role": "user", "content": "\n\n".join(parts)}]


def completion_from_output(problem: Problem, text: str, *, chat: bool) -> str:
    """Completion style: `text` (cut at `STOP`, which is empty). Chat: the extracted program."""
    if not chat:
        return truncate_at_stop(text, STOP)[0]
    stdio = problem.fn_name is None
    return _sanitize.extract_code(text, problem.fn_name, definitions_only=not stdio)


def metadata(problem: Problem) -> dict[str, str]:
    """The APPS difficulty ("introductory", "interview" or "competition")."""
    return {"difficulty": problem.difficulty}
