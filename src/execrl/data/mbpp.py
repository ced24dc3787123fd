"""MBPP (Google) problems turned into sandbox jobs.

Scope: `load` reads either format, row by row:

* the original `mbpp.jsonl`: `task_id` (int), `text`, `code`, `test_list`, `test_setup_code`,
  `challenge_test_list`;
* the sanitized `sanitized-mbpp.json` rows as JSON Lines: `task_id`, `prompt`, `code`,
  `test_imports`, `test_list`, `source_file`.

The task description is `prompt` (sanitized) or `text` (original); `test_list` is required and
must not be empty.
There is no shipped copy of MBPP, so `load()` needs a path.

`make_job`: the completion is the whole program (`completion_start=0`, `main=False`). Each entry
of `test_list` is one assertion test, run after
`setup = "\\n".join(test_imports) + "\\n" + test_setup_code`. `challenge_test_list` is kept on the
problem but not run (the standard MBPP evaluation ignores it). `sanitize=True` applies
`sanitize.extract_code(completion)` with no entry point: MBPP names no function, so the longest
cleaned code block wins and every top-level definition is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from execrl.data import sanitize as _sanitize
from execrl.data.jsonl import DataError, PathLike, Row, read_rows
from execrl.types import AssertTests, Job, Limits

__all__ = ["NAME", "Problem", "load", "make_job"]

NAME = "mbpp"


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    test_list: tuple[str, ...]
    code: str = ""
    test_setup_code: str = ""
    test_imports: tuple[str, ...] = ()
    challenge_test_list: tuple[str, ...] = ()
    source_file: str = ""

    @property
    def setup(self) -> str:
        """Source run before each assertion: the sanitized format's imports, then the setup code."""
        return "\n".join(self.test_imports) + "\n" + self.test_setup_code


def _problem(row: Row) -> Problem:
    prompt_field = "prompt" if row.data.get("prompt") is not None else "text"
    if not row.strings("test_list"):
        raise row.error('field "test_list" is empty')
    return Problem(
        task_id=row.ident("task_id"),
        prompt=row.text(prompt_field),
        test_list=row.strings("test_list"),
        code=row.text("code", default=""),
        test_setup_code=row.text("test_setup_code", default=""),
        test_imports=row.strings("test_imports", default=()),
        challenge_test_list=row.strings("challenge_test_list", default=()),
        source_file=row.text("source_file", default=""),
    )


def load(path: PathLike | None = None) -> dict[str, Problem]:
    """Problems by task_id (as a string), in file order."""
    if path is None:
        raise DataError("mbpp: no copy of MBPP ships with execrl; pass the path of mbpp.jsonl")
    problems: dict[str, Problem] = {}
    for row in read_rows(path):
        problem = _problem(row)
        if problem.task_id in problems:
            raise row.error(f'duplicate task_id "{problem.task_id}"')
        problems[problem.task_id] = problem
    return problems


def make_job(problem: Problem, completion: str, limits: Limits, *, sanitize: bool = False) -> Job:
    """A job that runs the completion as a module, then each assertion of `test_list`."""
    program = _sanitize.extract_code(completion) if sanitize else completion
    tests = AssertTests(setup=problem.setup, tests=problem.test_list)
    return Job(program=program, tests=tests, limits=limits, completion_start=0, main=False)
