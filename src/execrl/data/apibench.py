"""Gorilla APIBench (Patil et al. 2023) questions: API-call generation, scored without execution.

Scope: `load(path)` reads one APIBench file (`huggingface_eval.json`, `tensorflow_eval.json`,
`torchhub_eval.json`, ...: JSON Lines despite the suffix), rows with `code`, `api_call`,
`provider` and `api_data` (an object with `domain`, `framework`, `functionality`, `api_name`,
`api_call`, `api_arguments`, ...). `code` holds the instruction and the reference answer as
`###Instruction: ... ###Output: ...`; it is split at those markers (a `code` without them is all
instruction). `api_call` falls back to `api_data.api_call`, `provider` to `api_data.framework`.

`task_id` is the row's 1-based position among the file's rows, which is Gorilla's `question_id`
for the same file (a `question_id` or `task_id` field, when present, wins). Problems from
different files can share ids; keep them apart by file (or by `metadata(problem)["provider"]`).

There are no execution tests: `make_job` raises `DataError`. Outputs are scored by
`execrl.eval.apibench` (AST sub-tree matching against the reference call and the API database)
and `execrl.eval.api_metrics` (`execrl evaluate --benchmark apibench`: also ROUGE-L, CodeBLEU
and a dry-run executability in the sandbox).

Prompts: completion style is Gorilla's fine-tuning format, `"###Instruction: {instruction}\\n
###Output:"`, which a Gorilla model continues with `<<<domain>>>: ... <<<api_call>>>: ...`;
`STOP` ends the answer where the model would start a new instruction. Chat style is one user
message with Gorilla's zero-shot answer format (`<<<domain>>>`, `<<<api_call>>>`,
`<<<api_provider>>>`, `<<<explanation>>>`, `<<<code>>>`); the metric reads the `api_call` part.
`completion_from_output` only cuts completion-style text at `STOP`: the metric parses the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from execrl.data.jsonl import DataError, PathLike, Row, read_rows
from execrl.generation import Prompt, truncate_at_stop
from execrl.types import Job, Limits

__all__ = [
    "NAME",
    "STOP",
    "Problem",
    "completion_from_output",
    "load",
    "make_job",
    "metadata",
    "prompt",
    "split_code",
]

NAME = "apibench"
STOP: tuple[str, ...] = ("###Instruction",)

_INSTRUCTION = "###Instruction:"
_OUTPUT = "###Output:"


@dataclass(frozen=True)
class Problem:
    task_id: str
    instruction: str
    api_call: str
    """The reference call, e.g. `pipeline('text-classification', model='distilbert-base-uncased')`."""
    provider: str
    domain: str = ""
    framework: str = ""
    functionality: str = ""
    api_name: str = ""
    api_arguments: str = ""
    """`api_data.api_arguments` as JSON text (its shape differs between providers)."""
    reference_output: str = ""
    """The `###Output:` part of `code`: Gorilla's full reference answer."""


def split_code(code: str) -> tuple[str, str]:
    """(instruction, reference output) of an APIBench `code` field."""
    start = code.find(_INSTRUCTION)
    end = code.find(_OUTPUT, start + 1 if start >= 0 else 0)
    if start < 0 and end < 0:
        return code.strip(), ""
    body_start = start + len(_INSTRUCTION) if start >= 0 else 0
    if end < 0:
        return code[body_start:].strip(), ""
    return code[body_start:end].strip(), code[end + len(_OUTPUT) :].strip()


def _string(row: Row, api_data: dict[str, Any], name: str) -> str:
    value = api_data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise row.error(f'field "api_data.{name}" must be a string, got {type(value).__name__}')
    return value


def _problem(row: Row, index: int) -> Problem:
    api_data = row.get("api_data", dict, {})
    instruction, output = split_code(row.text("code"))
    if not instruction:
        raise row.error('field "code" has an empty instruction')
    api_call = row.text("api_call", default="") or _string(row, api_data, "api_call")
    if not api_call.strip():
        raise row.error('missing field "api_call" (also absent from "api_data")')
    provider = row.text("provider", default="") or _string(row, api_data, "framework")
    if not provider:
        raise row.error('missing field "provider"')
    arguments = api_data.get("api_arguments")
    id_field = next((f for f in ("question_id", "task_id") if row.data.get(f) is not None), None)
    return Problem(
        task_id=row.ident(id_field) if id_field else str(index),
        instruction=instruction,
        api_call=api_call.strip(),
        provider=provider,
        domain=_string(row, api_data, "domain"),
        framework=_string(row, api_data, "framework"),
        functionality=_string(row, api_data, "functionality"),
        api_name=_string(row, api_data, "api_name"),
        api_arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
        reference_output=output,
    )


def load(path: PathLike | None = None) -> dict[str, Problem]:
    """Problems by task_id (1-based row position unless the rows carry ids), in file order."""
    if path is None:
        raise DataError("apibench: no copy ships with execrl; pass the path of an APIBench *_eval.json file")
    problems: dict[str, Problem] = {}
    for index, row in enumerate(read_rows(path), start=1):
        problem = _problem(row, index)
        if problem.task_id in problems:
            raise row.error(f'duplicate task_id "{problem.task_id}"')
        problems[problem.task_id] = problem
    return problems


def make_job(problem: Problem, completion: str, limits: Limits, *, sanitize: bool = False) -> Job:
    """Always raises: APIBench answers are scored by AST matching, not by running them."""
    raise DataError("apibench has no execution tests; use execrl.eval.apibench")


def prompt(problem: Problem, *, chat: bool) -> Prompt:
    """Gorilla's fine-tuning format (completion) or its zero-shot answer format (chat)."""
    if not chat:
        return f"{_INSTRUCTION} {problem.instruction}\n{_OUTPUT}"
    content = (
        f"{problem.instruction}\nWrite a python program in 1 to 2 lines to call an API in {problem.provider}.\n\n"
        "The answer should follow the format: <<<domain>>>: $DOMAIN, <<<api_call>>>: $API_CALL, "
        "<<<api_provider>>>: $API_PROVIDER, <<<explanation>>>: $EXPLANATION, <<<code>>>: $CODE. "
        "Here are the requirements:\n"
        "1. $DOMAIN is the task domain of the API.\n"
        "2. The $API_CALL should have only 1 line of code that calls the API.\n"
        "3. The $API_PROVIDER should be the programming framework used.\n"
        "4. $EXPLANATION should be a step-by-step explanation.\n"
        "5. The $CODE is the python code.\n"
        "6. Do not repeat the format in your answer."
    )
    return [{"role": "user", "content": content}]


def completion_from_output(problem: Problem, text: str, *, chat: bool) -> str:
    """Completion style: `text` cut at `STOP`; chat: `text` unchanged (the metric parses it)."""
    return text if chat else truncate_at_stop(text, STOP)[0]


def metadata(problem: Problem) -> dict[str, str]:
    """Provider and API domain (Gorilla reports per provider)."""
    return {"provider": problem.provider, "domain": problem.domain}
