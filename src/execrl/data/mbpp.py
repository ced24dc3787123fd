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

Prompts (one choice, used by both styles and by `mbpp_plus`): the task shown with its *first*
test only, as bigcode-evaluation-harness and evalplus (MBPP+'s own `prompt` field) do; showing
all tests, as the MBPP paper's few-shot prompt does, gives away the expected outputs of every
test. Completion style is the docstring form `'\"\"\"\\n{text}\\n{test_list[0]}\\n\"\"\"\\n'`, continued
by the model with the program and cut at `STOP`, evalplus's stop strings for MBPP direct
completion (`\\n\"\"\"`, `\\nassert`, and its generic `\\nif __name__`, `\\ndef main(`, `\\nprint(`).
Chat style is one user message in the MBPP paper's wording ("You are an expert Python programmer,
and here is your task: ...") asking for a single fenced Python block. `completion_from_output`
cuts completion-style text at `STOP`; for chat it extracts the code with the function the first
test calls as entry point (`entry_point`), so example calls and prints are dropped.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass

from execrl.data import sanitize as _sanitize
from execrl.data.jsonl import DataError, PathLike, Row, index_rows
from execrl.generation import Message, Prompt, truncate_at_stop
from execrl.types import AssertTests, Job, Limits

__all__ = [
    "NAME",
    "STOP",
    "Problem",
    "chat_messages",
    "completion_from_output",
    "entry_point",
    "load",
    "make_job",
    "metadata",
    "prompt",
]

NAME = "mbpp"
STOP: tuple[str, ...] = ('\n"""', "\nassert", "\nif __name__", "\ndef main(", "\nprint(")


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
    return index_rows(path, _problem)


def make_job(problem: Problem, completion: str, limits: Limits, *, sanitize: bool = False) -> Job:
    """A job that runs the completion as a module, then each assertion of `test_list`."""
    program = _sanitize.extract_code(completion) if sanitize else completion
    tests = AssertTests(setup=problem.setup, tests=problem.test_list)
    return Job(program=program, tests=tests, limits=limits, completion_start=0, main=False)


# ---------------------------------------------------------------------------------------------
# Prompts and model outputs.


def chat_messages(text: str, test: str) -> list[Message]:
    """One user message: the task, one test it must pass, and the request for one code block."""
    content = (
        f"You are an expert Python programmer, and here is your task: {text.strip()} "
        f"Your code should pass these tests:\n\n{test.strip()}\n\n"
        "Reply with a single fenced Python code block (```python ... ```) that contains the "
        "complete function and the imports it needs."
    )
    return [{"role": "user", "content": content}]


def prompt(problem: Problem, *, chat: bool) -> Prompt:
    """The task and its first test, as a docstring to continue or as a chat request."""
    test = problem.test_list[0]
    if chat:
        return chat_messages(problem.prompt, test)
    return f'"""\n{problem.prompt.strip()}\n{test.strip()}\n"""\n'


def entry_point(test: str) -> str | None:
    """The function an MBPP assertion tests: the first call of a name that is not a builtin
    (`assert set(similar_elements(a, b)) == ...` gives `similar_elements`); None if none."""
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and not hasattr(builtins, node.func.id)
        ):
            return node.func.id
    return None


def completion_from_output(problem: Problem, text: str, *, chat: bool) -> str:
    """Completion style: `text` cut at `STOP`. Chat: the extracted program (see module docstring)."""
    if not chat:
        return truncate_at_stop(text, STOP)[0]
    return _sanitize.extract_code(text, entry_point(problem.test_list[0]))


def metadata(problem: Problem) -> dict[str, str]:
    """MBPP has no categories to break results down by."""
    return {}
