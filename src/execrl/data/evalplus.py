"""HumanEval+ and MBPP+ (evalplus): rows, loading and the differential test suite.

Shared by `humaneval_plus` and `mbpp_plus`, which differ only in how the program and the prompt
are built. Rows are evalplus's release JSONL (`HumanEvalPlus.jsonl.gz`, `MbppPlus.jsonl.gz`):
`task_id`, `prompt`, `entry_point`, `canonical_solution`, `base_input` and `plus_input` (arrays of
argument lists), `atol` (optional, 0), and for MBPP+ `assertion` (the original assert lines, one
string) or `test_list` (optional; kept for reference). Other fields (`contract`, `test`) are
ignored. `load(path, max_plus_inputs=None)` keeps the first `max_plus_inputs` plus inputs of each
task (None: all; 0: the base inputs only).

Tests: one per input, base inputs first. Expected outputs are not in the file; evalplus computes
them by running the canonical solution, and so do we, inside the sandbox's trusted test process
(`evalplus_oracle`): the suite's `helpers` are the oracle's source, its `setup` builds the
reference (HumanEval+: `prompt + canonical_solution`; MBPP+: `canonical_solution`) and decodes
the inputs, and each test is `plus_judge(PLUS_TASK, <entry_point>, i)`. Nothing runs at load time.

Cost: each input is one test: one call into the candidate process (a pipe round trip) plus one
reference call in the trusted process, repeated for every sample (reference outputs are not
cached across jobs). Measured on a shared 2-core VM: a 701-input task with small list inputs
takes about 0.4 s per job, ~0.5 ms per input. HumanEval+ averages several hundred inputs per task
(evalplus reports ~760), MBPP+ fewer. The suite, inputs included, is part of every job and of its
cache key. Cap the inputs with `max_plus_inputs` for quick runs or RL rewards.

Limits and deviations from evalplus: the time limit is `Limits.timeout` CPU seconds per input
(evalplus derives per-input limits from the reference's run time) and, as for every suite, the
inputs after `Limits.max_timeouts` timeouts are reported as timeouts without running; the
reference runs unconfined in the trusted process, which is the sandbox's long-lived fork-server,
so a reference that changed global state (seeding `random`, the recursion limit) would affect
later jobs of that server (evalplus's canonical solutions were not checked for this); the
original HumanEval `check` is not run (the base inputs stand in for it, as in evalplus); a task
whose entry point is a name the oracle defines is refused by `load` (its test could not tell the
candidate's function from the oracle's).
"""

from __future__ import annotations

import ast
import importlib.resources
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from execrl.data.jsonl import DataError, PathLike, Row, index_rows, json_type
from execrl.types import AssertTests

__all__ = ["ORACLE_SOURCE", "Problem", "load", "tests"]

Dataset = Literal["humaneval", "mbpp"]

ORACLE_SOURCE = importlib.resources.files("execrl.data").joinpath("evalplus_oracle.py").read_text("utf-8")


def _top_level_names(source: str) -> frozenset[str]:
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return frozenset(names)


_ORACLE_NAMES = _top_level_names(ORACLE_SOURCE) | {"PLUS_TASK"}


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    base_input: tuple[Any, ...]
    """Argument lists as decoded from JSON (MBPP+ tuples/sets are rebuilt by the oracle)."""
    plus_input: tuple[Any, ...]
    atol: float = 0.0
    dataset: Dataset = "humaneval"
    test_list: tuple[str, ...] = ()
    """MBPP+: the original MBPP assertions (not run; the inputs are the tests)."""

    @property
    def inputs(self) -> tuple[Any, ...]:
        return self.base_input + self.plus_input

    @property
    def reference_source(self) -> str:
        """The trusted program that defines the reference `entry_point`."""
        if self.dataset == "humaneval":
            return self.prompt + self.canonical_solution
        return self.canonical_solution


def _inputs(row: Row, name: str, *, required: bool = True) -> tuple[Any, ...]:
    value = row.get(name, list) if required else row.get(name, list, [])
    for i, args in enumerate(value):
        if not isinstance(args, list):
            raise row.error(f'field "{name}" item {i} must be an array of arguments, got {json_type(args)}')
    return tuple(value)


def _problem(row: Row, dataset: Dataset, max_plus_inputs: int | None) -> Problem:
    entry_point = row.text("entry_point")
    if not entry_point.isidentifier():
        raise row.error(f'field "entry_point" must be an identifier, got {entry_point!r}')
    if entry_point in _ORACLE_NAMES:
        raise row.error(f'field "entry_point": {entry_point!r} clashes with a name of the plus oracle')
    atol = row.get("atol", (int, float), 0)
    if not math.isfinite(atol) or atol < 0:
        raise row.error(f'field "atol" must be a finite number >= 0, got {atol!r}')
    plus = _inputs(row, "plus_input", required=False)
    if max_plus_inputs is not None:
        plus = plus[:max_plus_inputs]
    test_list = row.strings("test_list", default=())
    if not test_list:
        test_list = tuple(line for line in row.text("assertion", default="").splitlines() if line.strip())
    return Problem(
        task_id=row.ident("task_id"),
        prompt=row.text("prompt"),
        entry_point=entry_point,
        canonical_solution=row.text("canonical_solution"),
        base_input=_inputs(row, "base_input"),
        plus_input=plus,
        atol=float(atol),
        dataset=dataset,
        test_list=test_list,
    )


def load(path: PathLike, dataset: Dataset, *, max_plus_inputs: int | None = None) -> dict[str, Problem]:
    """Problems by task_id, in file order (see the module docstring)."""
    if max_plus_inputs is not None and max_plus_inputs < 0:
        raise DataError(f"max_plus_inputs must be >= 0, got {max_plus_inputs}")
    return index_rows(path, lambda row: _problem(row, dataset, max_plus_inputs))


def tests(problem: Problem) -> AssertTests:
    """The differential suite: one `plus_judge` test per input (see the module docstring)."""
    inputs_json = json.dumps(list(problem.inputs))
    setup = (
        f"PLUS_TASK = PlusTask({problem.dataset!r}, {problem.task_id!r}, {problem.entry_point!r}, "
        f"{problem.atol!r}, {problem.reference_source!r}, {inputs_json!r})\n"
    )
    calls = tuple(f"plus_judge(PLUS_TASK, {problem.entry_point}, {i})" for i in range(len(problem.inputs)))
    return AssertTests(setup=setup, tests=calls, helpers=ORACLE_SOURCE)
