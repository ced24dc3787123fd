"""Ask a model to write unit tests for each task (`execrl tests synthesize`), PLUM's first stage.

The model sees only what `TaskSpec.instruction` holds — the task's description and signature,
never a hidden test or the reference body — and is asked for tests in one of two forms:

* function tasks: `assert` statements that call the function (`Solution().name(...)` for
  LeetCode-style tasks). Completion style continues `instruction + "\\n# Tests:\\n"` (the format
  of `builtin.test_writing_examples`, so a model trained on it writes tests here); chat style is
  one user message in the voice of PLUM's prompt (a teaching assistant writing tests) asking for
  one fenced block of one-line asserts.
* stdin/stdout tasks: one JSON object per line, `{"input": "...", "output": "..."}`.

`parse_tests` turns a reply into single tests: the fenced Python blocks if there are any (else the
whole reply) are cut into the shortest runs of lines that parse, so one broken or truncated line
(a reply cut at `max_new_tokens`) loses only itself; every `assert` statement found in them (also
inside `def test_...():` bodies and loops) becomes one test, as `ast.unparse` writes it. Statements
around an assert are not kept, so an assert that reads a variable the reply assigned will fail
validation. Duplicates are dropped per task, compared by `ast.dump` (so spacing, quotes and
redundant parentheses do not count); the first occurrence keeps its provenance,
`source: {"model", "sample"}` (the index of the model sample it came from).
"""

from __future__ import annotations

import ast
import json
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from execrl.data import DataError, get_benchmark, hub
from execrl.data import sanitize as _sanitize
from execrl.data.jsonl import PathLike
from execrl.generation import Generator, Prompt, SamplingParams
from execrl.testgen.tasks import SUPPORTED, TaskSpec, spec
from execrl.types import IOCase

__all__ = ["SynthesisConfig", "parse_tests", "prompt", "run", "synthesize"]

STOP: tuple[str, ...] = ("\ndef ", "\nclass ", "\nif __name__", '\n"""', "\n```")
"""Stop strings for completion-style prompts: the model moved on from writing tests."""
IO_FORMAT = (
    'one JSON object per line, {"input": <stdin as a string>, "output": <expected stdout as a string>}'
)


@dataclass
class SynthesisConfig:
    model: str
    """A local HF model directory, or a model name served by `api_base`."""
    benchmark: str
    data: str | None = None
    n: int = 1
    """Model samples per task; their tests are pooled and deduplicated."""
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 512
    limit: int | None = None
    """Only the first `limit` tasks of the benchmark."""
    chat: bool = False
    """Chat-style prompt through the model's chat template."""
    backend: str = "hf"
    api_base: str | None = None
    api_key_env: str | None = None
    batch_size: int = 8
    """Prompts per generation call."""
    seed: int = 0


def _call_form(task: TaskSpec) -> str:
    name = task.entry_point or ""
    cls = sorted(task.classes)[0] if task.classes else None
    return f"{cls}().{name}(...)" if cls else f"{name}(...)"


def prompt(task: TaskSpec, *, chat: bool) -> Prompt:
    """What the model is asked (see the module docstring)."""
    if task.kind == "io":
        if not chat:
            return f'"""\n{task.instruction.strip()}\n"""\n# Test cases, {IO_FORMAT}:\n'
        text = (
            "You are a teaching assistant writing test cases for a programming exercise. The program "
            "reads standard input and writes standard output.\n\n"
            f"{task.instruction.strip()}\n\nWrite 5 to 10 test cases that check correct behaviour, "
            f"including edge cases. Reply with only the test cases, {IO_FORMAT}."
        )
        return [{"role": "user", "content": text}]
    if not chat:
        return f"{task.instruction.rstrip()}\n# Tests:\n"
    text = (
        "You are a teaching assistant writing unit tests for a programming exercise.\n\n"
        f"```python\n{task.instruction.strip()}\n```\n\n"
        f"Write 5 to 10 unit tests for it. Each test is one `assert` statement on one line that calls "
        f"`{_call_form(task)}` with concrete arguments and compares the result with the exact expected "
        "value; include edge cases. Reply with a single fenced Python code block (```python ... ```) "
        "that holds only the assert lines."
    )
    return [{"role": "user", "content": text}]


def _segments(text: str) -> list[ast.Module]:
    """The shortest runs of lines that parse, left to right; a line that never does is skipped."""
    lines = text.splitlines()
    out: list[ast.Module] = []
    start = 0
    while start < len(lines):
        for end in range(start + 1, min(len(lines), start + 40) + 1):
            chunk = "\n".join(lines[start:end])
            tree = _parse(chunk) or (_parse(textwrap.dedent(chunk)) if end == start + 1 else None)
            if tree is not None:
                out.append(tree)
                start = end
                break
        else:
            start += 1
    return out


def _parse(source: str) -> ast.Module | None:
    if not source.strip():
        return None
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def parse_tests(text: str, task: TaskSpec) -> list[str | IOCase]:
    """The single tests in one reply, in order, duplicates within the reply dropped."""
    seen: set[str] = set()
    tests: list[str | IOCase] = []
    if task.kind == "io":
        for line in text.splitlines():
            try:
                obj = json.loads(line.strip().rstrip(","))
            except ValueError:
                continue
            if (
                isinstance(obj, dict)
                and isinstance(obj.get("input"), str)
                and isinstance(obj.get("output"), str)
            ):
                key = repr((obj["input"], obj["output"]))
                if key not in seen:
                    seen.add(key)
                    tests.append(IOCase(obj["input"], obj["output"]))
        return tests
    blocks = [body for lang, body in _sanitize.fenced_blocks(text) if lang in _sanitize.PYTHON_LANGS]
    for source in blocks or [text]:
        for tree in _segments(source):
            for node in ast.walk(tree):
                if isinstance(node, ast.Assert):
                    key = ast.dump(node)
                    if key not in seen:
                        seen.add(key)
                        tests.append(ast.unparse(node))
    return tests


def _key(test: str | IOCase) -> str:
    if isinstance(test, IOCase):
        return repr((test.input, test.output))
    tree = _parse(test)
    return ast.dump(tree) if tree is not None else test


def synthesize(
    tasks: Sequence[TaskSpec],
    generator: Generator,
    params: SamplingParams,
    *,
    model: str,
    chat: bool,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """`{"task_id", "test", "source": {"model", "sample"}}` rows, task by task, deduplicated."""
    rows: list[dict[str, Any]] = []
    for i in range(0, len(tasks), batch_size):
        chunk = tasks[i : i + batch_size]
        outputs = generator.generate([prompt(t, chat=chat) for t in chunk], params)
        for task, completions in zip(chunk, outputs):
            seen: set[str] = set()
            for sample, completion in enumerate(completions):
                for test in parse_tests(completion.text, task):
                    key = _key(test)
                    if key in seen:
                        continue
                    seen.add(key)
                    value: Any = (
                        {"input": test.input, "output": test.output} if isinstance(test, IOCase) else test
                    )
                    rows.append(
                        {"task_id": task.task_id, "test": value, "source": {"model": model, "sample": sample}}
                    )
    return rows


def run(cfg: SynthesisConfig, out: PathLike, generator: Generator | None = None) -> dict[str, Any]:
    """Load the tasks, build the generator (unless given), write `out` atomically; a summary."""
    from execrl.eval.evaluate import write_jsonl_atomic

    if cfg.n < 1 or cfg.batch_size < 1:
        raise DataError("--n and --batch-size must be positive")
    bench = get_benchmark(cfg.benchmark)
    if bench.NAME not in SUPPORTED:
        raise DataError(
            f"tests: benchmark {bench.NAME!r} is not supported; choose from {', '.join(SUPPORTED)}"
        )
    data = hub.resolve(cfg.data) if cfg.data is not None else None
    problems = list(bench.load(data).values())[: cfg.limit]
    tasks = [spec(bench.NAME, p) for p in problems]
    stop = () if cfg.chat else STOP
    params = SamplingParams(
        n=cfg.n,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        stop=stop,
        seed=cfg.seed,
    )
    own = generator is None
    if generator is None:
        from execrl.eval.bench import BenchConfig, make_generator

        generator = make_generator(
            BenchConfig(
                model=cfg.model,
                benchmark=cfg.benchmark,
                out=os.fspath(out),
                backend=cfg.backend,
                api_base=cfg.api_base,
                api_key_env=cfg.api_key_env,
                batch_size=cfg.batch_size,
            )
        )
    try:
        rows = synthesize(tasks, generator, params, model=cfg.model, chat=cfg.chat, batch_size=cfg.batch_size)
    finally:
        close = getattr(generator, "close", None)
        if own and callable(close):
            close()
    write_jsonl_atomic(out, rows)
    with_tests = len({r["task_id"] for r in rows})
    return {
        "tasks": len(tasks),
        "tasks_with_tests": with_tests,
        "tests": len(rows),
        "samples_per_task": cfg.n,
    }
