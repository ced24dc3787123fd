"""LiveCodeBench code generation (Jain et al. 2024) problems as sandbox jobs.

Scope: rows of `livecodebench/code_generation(_lite)` as JSON Lines: `question_title`,
`question_content`, `platform`, `question_id` (the task_id), `contest_id`, `contest_date` (ISO
8601), `starter_code`, `difficulty`, `public_test_cases`, `private_test_cases` and `metadata`.
`public_test_cases` is a JSON string holding `[{"input", "output", "testtype"}]` (testtype
"stdin" or "functional"); `private_test_cases` is the same JSON, or that JSON string pickled,
zlib-compressed and base64-encoded (the form the dataset ships). `metadata` is a JSON string (or
object) that may hold `func_name`. Decoded JSON given directly as arrays/objects is accepted too.

Private tests are unpickled WITHOUT running anything: `decode_private_tests` uses an unpickler
whose `find_class` and `persistent_load` refuse, so only plain-data opcodes load (a pickle that
names `os.system` or any other global is a `DataError`, and nothing is called); the pickled
value must be a string; decompression stops at `MAX_TESTS_BYTES`.

`load(path, *, start_date=None, end_date=None)` keeps problems whose contest date lies in the
release window, bounds included, as LiveCodeBench's `--start_date/--end_date` do: a bound given
as a day ("2024-08-01") means midnight of that day (see `in_release_window`).

Tests are the public then the private cases:

* stdin problems: `IOTests`, `main=True`;
* functional (LeetCode) problems: `CallTests` calling the `Solution` method `func_name` (from
  `metadata`, else the first method of the starter code's `class Solution`); each input line is
  one JSON argument and the output is one JSON value, as LiveCodeBench's `testing_util` reads them
  (trailing newlines of an input are dropped first).

Both use `float_tol=0`: LiveCodeBench compares outputs exactly (stdin: line by line, numbers as
`Decimal`s; functional: `==` after turning a tuple result into a list). Deviations: stdin
numbers are compared as floats and token by token rather than line by line (the sandbox's
`output_matches`), and a result equal to the only element of a one-element expected list passes
(the sandbox's APPS-style `CallTests` rule).

`make_job`: the program is LiveCodeBench's import prelude (`PRELUDE`: `from typing import *` and
the other star imports its runner prepends, which starter code such as `List[int]` relies on)
followed by the completion; error lines are counted from the completion's start. `sanitize=True`
extracts the code as `apps` does.

Prompts: chat style is LiveCodeBench's generic prompt ("### Question: ... ### Format: ...
### Answer: (use the provided format with backticks)") with its system message folded into the
one user message (some chat templates reject a system role). Completion style is the same text
ending inside an opened ```python block that holds the starter code, so `STOP` is the closing
fence; `completion_from_output` puts the starter code back in front of the continuation (or,
when the model rewrote it, keeps the model's code alone). `metadata` gives difficulty, platform
and contest date (YYYY-MM-DD).
"""

from __future__ import annotations

import ast
import base64
import binascii
import io
import json
import pickle
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from execrl.data import sanitize as _sanitize
from execrl.data.jsonl import DataError, PathLike, Row, index_rows, json_type
from execrl.data.leetcode import solution_method
from execrl.generation import Prompt, truncate_at_stop
from execrl.types import CallCase, CallTests, IOCase, IOTests, Job, Limits

__all__ = [
    "MAX_TESTS_BYTES",
    "NAME",
    "PRELUDE",
    "STOP",
    "Problem",
    "completion_from_output",
    "decode_private_tests",
    "in_release_window",
    "load",
    "make_job",
    "metadata",
    "prompt",
]

NAME = "livecodebench"
STOP: tuple[str, ...] = ("```",)
MAX_TESTS_BYTES = 1 << 30
"""Largest decompressed private-test blob accepted (the biggest LiveCodeBench ones are far smaller)."""

PRELUDE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\nfrom functools import *\n"
    "from operator import *\nfrom io import *\nfrom sys import *\nfrom json import *\n"
    "from builtins import *\nfrom typing import *\nimport string\nimport re\nimport datetime\n"
    "import collections\nimport heapq\nimport bisect\nimport copy\nimport math\nimport random\n"
    "import statistics\nimport itertools\nimport functools\nimport operator\nimport io\nimport sys\n"
    "import json\nsys.setrecursionlimit(50000)\n"
)

SYSTEM = (
    "You are an expert Python programmer. You will be given a question (problem specification) and "
    "will generate a correct Python program that matches the specification and passes all tests."
)
FORMAT_STARTER = (
    "You will use the following starter code to write the solution to the problem and enclose your "
    "code within delimiters."
)
FORMAT_STDIN = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly "
    "test on the sample inputs). Enclose your code within delimiters as follows. Ensure that when "
    "the python program runs, it reads the inputs, runs the algorithm and writes output to STDOUT."
)
ANSWER = "### Answer: (use the provided format with backticks)\n\n"


@dataclass(frozen=True)
class Problem:
    task_id: str
    title: str
    content: str
    platform: str
    contest_id: str
    contest_date: datetime
    starter_code: str
    difficulty: str
    tests: IOTests | CallTests

    @property
    def func_name(self) -> str | None:
        return self.tests.fn_name if isinstance(self.tests, CallTests) else None


# ---------------------------------------------------------------------------------------------
# Private tests: base64 of zlib of a pickle of a JSON string, decoded without running anything.


class _PlainDataUnpickler(pickle.Unpickler):
    """Loads only plain-data opcodes: every global (class, function) and persistent id refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load the global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing a persistent id")


def decode_private_tests(blob: str, max_bytes: int = MAX_TESTS_BYTES) -> str:
    """The JSON text inside LiveCodeBench's compressed `private_test_cases` (see module doc)."""
    try:
        compressed = base64.b64decode(blob.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise DataError(f"not base64 ({e})")
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, max_bytes)
    except zlib.error as e:
        raise DataError(f"not zlib data ({e})")
    if inflater.unconsumed_tail:
        raise DataError(f"decompresses to more than {max_bytes} bytes")
    try:
        value = _PlainDataUnpickler(io.BytesIO(raw)).load()
    except Exception as e:  # UnpicklingError, EOFError, ValueError, ... on hostile or broken data
        raise DataError(f"not a plain-data pickle ({type(e).__name__}: {e})")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError("the pickled bytes are not UTF-8")
    if not isinstance(value, str):
        raise DataError(f"the pickle holds {type(value).__name__}, not a JSON string")
    return value


# ---------------------------------------------------------------------------------------------
# Loading.

DateLike = str | date | datetime


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def _as_datetime(value: DateLike) -> datetime:
    if isinstance(value, datetime):
        return _naive_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    text = value.strip()
    if text.endswith("Z"):  # Python 3.10's fromisoformat does not read "Z"
        text = text[:-1] + "+00:00"
    try:
        return _naive_utc(datetime.fromisoformat(text))
    except ValueError:
        raise DataError(f"not an ISO 8601 date: {value!r}")


def in_release_window(
    contest_date: DateLike, start: DateLike | None = None, end: DateLike | None = None
) -> bool:
    """`start <= contest_date <= end`, each bound optional; days mean midnight, aware times UTC."""
    when = _as_datetime(contest_date)
    if start is not None and when < _as_datetime(start):
        return False
    return not (end is not None and when > _as_datetime(end))


def _json_field(row: Row, name: str, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise row.error(f'field "{name}" is not valid JSON ({e.msg}: column {e.colno})')
    except RecursionError:
        raise row.error(f'field "{name}" is not valid JSON (nested too deeply)')


def _cases(row: Row, name: str) -> list[dict[str, Any]]:
    raw = row.data.get(name)
    if raw is None or raw == "":
        return []
    if not isinstance(raw, (str, list)):
        raise row.error(f'field "{name}" must be a JSON string, got {json_type(raw)}')
    if isinstance(raw, str) and not raw.lstrip().startswith("["):
        try:
            raw = decode_private_tests(raw)
        except DataError as e:
            raise row.error(f'field "{name}": {e}')
    value = _json_field(row, name, raw)
    if not isinstance(value, list):
        raise row.error(f'field "{name}" must hold an array of test cases, got {json_type(value)}')
    for i, case in enumerate(value):
        if not isinstance(case, dict):
            raise row.error(f'field "{name}" case {i} must be an object, got {json_type(case)}')
        for key in ("input", "output"):
            if not isinstance(case.get(key), str):
                raise row.error(
                    f'field "{name}" case {i}: "{key}" must be a string, got {json_type(case.get(key))}'
                )
        if case.get("testtype") not in ("stdin", "functional"):
            raise row.error(
                f'field "{name}" case {i}: "testtype" must be "stdin" or "functional", got {case.get("testtype")!r}'
            )
    return value


def _json_value(row: Row, name: str, i: int, key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise row.error(f'field "{name}" case {i}: "{key}" line {text[:40]!r} is not a JSON value')


def _tests(row: Row, starter_code: str) -> IOTests | CallTests:
    named = [
        (name, i, case)
        for name in ("public_test_cases", "private_test_cases")
        for i, case in enumerate(_cases(row, name))
    ]
    if not named:
        raise row.error("no test cases (public_test_cases and private_test_cases are empty)")
    kinds = {case["testtype"] for _, _, case in named}
    if len(kinds) > 1:
        raise row.error("mixes stdin and functional test cases")
    if kinds == {"stdin"}:
        return IOTests(cases=tuple(IOCase(c["input"], c["output"]) for _, _, c in named), float_tol=0.0)
    meta = _json_field(row, "metadata", row.data.get("metadata") or {})
    if not isinstance(meta, dict):
        raise row.error(f'field "metadata" must hold a JSON object, got {json_type(meta)}')
    func_name = meta.get("func_name") or solution_method(starter_code)
    if not isinstance(func_name, str) or not func_name.isidentifier():
        raise row.error(
            'functional tests need "func_name" in field "metadata" or a Solution method in "starter_code"'
        )
    calls = []
    for name, i, c in named:
        lines = c["input"].rstrip("\n").split("\n")
        args = tuple(_json_value(row, name, i, "input", line) for line in lines)
        calls.append(CallCase(args=args, expected=_json_value(row, name, i, "output", c["output"])))
    return CallTests(fn_name=func_name, cases=tuple(calls), float_tol=0.0)


def _problem(row: Row) -> Problem:
    try:
        contest_date = _as_datetime(row.text("contest_date"))
    except DataError as e:
        raise row.error(f'field "contest_date": {e}')
    starter_code = row.text("starter_code", default="")
    return Problem(
        task_id=row.ident("question_id"),
        title=row.text("question_title", default=""),
        content=row.text("question_content"),
        platform=row.text("platform", default=""),
        contest_id=str(row.get("contest_id", (str, int), "")),
        contest_date=contest_date,
        starter_code=starter_code,
        difficulty=row.text("difficulty", default=""),
        tests=_tests(row, starter_code),
    )


def load(
    path: PathLike | None = None, *, start_date: DateLike | None = None, end_date: DateLike | None = None
) -> dict[str, Problem]:
    """Problems by question_id, in file order, whose contest date is in the release window."""
    if path is None:
        raise DataError("livecodebench: no copy ships with execrl; pass the path of a code_generation JSONL")
    start = None if start_date is None else _as_datetime(start_date)
    end = None if end_date is None else _as_datetime(end_date)
    problems = {
        task_id: p
        for task_id, p in index_rows(path, _problem, "question_id").items()
        if in_release_window(p.contest_date, start, end)
    }
    return problems


# ---------------------------------------------------------------------------------------------
# Jobs, prompts and model outputs.


def make_job(problem: Problem, completion: str, limits: Limits, *, sanitize: bool = False) -> Job:
    """`PRELUDE + completion` run on each stdin case, or its `Solution().func_name` called per case."""
    stdio = isinstance(problem.tests, IOTests)
    code = completion
    if sanitize:
        code = _sanitize.extract_code(completion, problem.func_name, definitions_only=not stdio)
    return Job(
        program=PRELUDE + code, tests=problem.tests, limits=limits, completion_start=len(PRELUDE), main=stdio
    )


def _question(problem: Problem) -> str:
    text = f"### Question:\n{problem.content}\n\n"
    if problem.starter_code:
        return text + f"### Format: {FORMAT_STARTER}\n```python\n{problem.starter_code}\n```\n\n"
    return text + f"### Format: {FORMAT_STDIN}\n```python\n# YOUR CODE HERE\n```\n\n"


def prompt(problem: Problem, *, chat: bool) -> Prompt:
    """LiveCodeBench's generic prompt, as chat or continued inside a code block (module doc)."""
    if chat:
        return [{"role": "user", "content": f"{SYSTEM}\n\n{_question(problem)}{ANSWER}"}]
    return f"{SYSTEM}\n\n{_question(problem)}{ANSWER}```python\n{problem.starter_code}"


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def completion_from_output(problem: Problem, text: str, *, chat: bool) -> str:
    """Completion style: starter code + `text` cut at `STOP`. Chat: the extracted program."""
    stdio = isinstance(problem.tests, IOTests)
    if chat:
        return _sanitize.extract_code(text, problem.func_name, definitions_only=not stdio)
    cut = truncate_at_stop(text, STOP)[0]
    joined = problem.starter_code + cut
    if problem.starter_code and not _parses(joined) and _parses(cut):
        return cut
    return joined


def metadata(problem: Problem) -> dict[str, str]:
    """Difficulty, platform and contest date (YYYY-MM-DD)."""
    return {
        "difficulty": problem.difficulty,
        "platform": problem.platform,
        "contest_date": problem.contest_date.date().isoformat(),
    }
