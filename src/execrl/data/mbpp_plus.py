"""MBPP+ (evalplus): MBPP tasks judged on the base + plus inputs of each task.

Scope: `load(path, *, max_plus_inputs=None)` reads evalplus's `MbppPlus.jsonl(.gz)` (see
`evalplus` for the fields, the differential test suite, its cost and its deviations). There is
no shipped copy, so `load` needs a path.

`make_job`: the completion is the whole program, as for `mbpp` (`sanitize=True` extracts it with
the task's `entry_point`). Prompts: evalplus's `prompt` field is already the docstring
`'\"\"\"\\n{text}\\n{first assertion}\\n\"\"\"\\n'` that `mbpp.prompt` builds, so completion style is that
field as is (a field in another form is wrapped the same way, with the first of `test_list`);
chat style is `mbpp.chat_messages` with the docstring's text; `STOP` is MBPP's.
`completion_from_output` cuts completion-style text at `STOP` and extracts chat code keeping what
`entry_point` needs.
"""

from __future__ import annotations

from execrl.data import evalplus, mbpp
from execrl.data import sanitize as _sanitize
from execrl.data.evalplus import Problem
from execrl.data.jsonl import DataError, PathLike
from execrl.generation import Prompt, truncate_at_stop
from execrl.types import Job, Limits

__all__ = ["NAME", "STOP", "Problem", "completion_from_output", "load", "make_job", "metadata", "prompt"]

NAME = "mbpp_plus"
STOP = mbpp.STOP

_QUOTES = '"""'


def load(path: PathLike | None = None, *, max_plus_inputs: int | None = None) -> dict[str, Problem]:
    """Problems by task_id ("Mbpp/2"), in file order; `max_plus_inputs` caps the plus inputs."""
    if path is None:
        raise DataError("mbpp_plus: no copy of MBPP+ ships with execrl; pass the path of MbppPlus.jsonl")
    return evalplus.load(path, "mbpp", max_plus_inputs=max_plus_inputs)


def make_job(problem: Problem, completion: str, limits: Limits, *, sanitize: bool = False) -> Job:
    """A job that runs the completion as a module and compares the entry point with the reference."""
    program = _sanitize.extract_code(completion, problem.entry_point) if sanitize else completion
    return Job(program=program, tests=evalplus.tests(problem), limits=limits, completion_start=0, main=False)


def _task(problem: Problem) -> tuple[str, str]:
    """(description, assertion lines) of the task, from the docstring or the raw fields."""
    text = problem.prompt.strip()
    if text.startswith(_QUOTES) and text.endswith(_QUOTES) and len(text) >= 6:
        lines = text[3:-3].strip().splitlines()
        tests = [line for line in lines if line.lstrip().startswith("assert")]
        description = [line for line in lines if not line.lstrip().startswith("assert")]
        return "\n".join(description).strip(), "\n".join(tests)
    return text, problem.test_list[0] if problem.test_list else ""


def prompt(problem: Problem, *, chat: bool) -> Prompt:
    """evalplus's docstring prompt (completion style) or MBPP's chat request."""
    description, tests = _task(problem)
    if chat:
        return mbpp.chat_messages(description, tests)
    if problem.prompt.lstrip().startswith(_QUOTES):
        return problem.prompt
    return f"{_QUOTES}\n{description}\n{tests}\n{_QUOTES}\n"


def completion_from_output(problem: Problem, text: str, *, chat: bool) -> str:
    """Completion style: `text` cut at `STOP`. Chat: the extracted program."""
    if not chat:
        return truncate_at_stop(text, STOP)[0]
    return _sanitize.extract_code(text, problem.entry_point)


def metadata(problem: Problem) -> dict[str, str]:
    """No categories to break results down by."""
    return {}
