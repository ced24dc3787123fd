"""Validate synthesized tests: against the task's reference solution, or by CodeT's dual execution
agreement over sampled solutions when the data has no reference (`execrl tests validate`).

Input rows (`read_tests`): `{"task_id", "test", "source"}`, other fields kept. `test` is the
source of an assertion test (a string: usually one `assert`, optionally preceded by statements it
needs) for function tasks, or `{"input": str, "output": str}`, one stdin/stdout case, for stdin
tasks. Output: the same rows in the same order plus `valid`, `reason` and `method` (`reference`
or `dual_agreement`: how the task's tests are judged; null for `unknown_task`).

Reasons (`REASONS`), in the order they are decided:

* `unknown_task`: the task_id is not in the benchmark data.
* `wrong_kind`: a string test for a stdin/stdout task, or a case object for a function task.
* the static reasons of `static.check` (assertion tests only): `syntax`, `shadows_function`,
  `no_assert`, `does_not_call_function`, `always_true`.
* with a reference (`method: reference`): `reference_error` (the reference program itself does
  not load, so it can judge nothing), `timeout` (the reference ran out of CPU time on this test),
  `sandbox_error` (our infrastructure failed: not a verdict on the test), `fails_reference` (any
  other outcome than passing: a failed assertion, an exception, an exit), else `ok`.
* without one (`method: dual_agreement`): `no_solutions` (no sampled solution of this task ran),
  `no_consensus` (not among the tests of the best consensus set, see `consensus`), else `ok`.
* task-level, on the tests that are `ok` so far (PLUM labels a program by *all* of its task's
  tests, so they are kept or dropped together): `too_few_tests` when the task has fewer than
  `min_tests` distinct ones; with `adequacy` (assertion tasks with a reference only),
  `inadequate` when together they do not reject every trivial program of adequacy.py (`return
  None`, `return 0`, ..., the identity) or reject less than `min_mutation_score` of its mutants
  of the reference (at most `max_mutants`). Off by default (`min_tests=1`, `adequacy=False`):
  then `ok` means exactly "the reference passes it".

Execution: all the tests of a task run in *one* job per program (the reference, or each sampled
solution). Each assertion test becomes a function `__execrl_test_<i>__` appended to the program
and the job's tests call them one by one, so a test runs inside the confined candidate process
(model-written tests are not trusted code: they must not run in the sandbox's trusted runner),
in its own local scope, under the job's CPU limit per test, with `max_timeouts` raised so every
test is judged (except for adequacy's wrong programs, which one timeout already rejects: after it
their other tests are not run). The sandbox records one `TestRecord` per test and restarts the candidate after
one dies, so a test that crashes, exits or times out is charged to that test only. Limits: a test
that mutates the program's global state (`globals()`, a module-level list) is seen by the tests
after it; and because test and program share a process, the sandbox's defence against hostile
programs (an `__eq__` that always returns True) does not hold for sampled solutions judged by
synthesized tests — the dual agreement and false-pass numbers assume non-adversarial samples.
"""

from __future__ import annotations

import ast
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from execrl.data import DataError, get_benchmark, hub, read_samples
from execrl.data.jsonl import PathLike, Sample, json_type, read_rows
from execrl.sandbox.executor import LocalExecutor
from execrl.testgen import adequacy as wrong
from execrl.testgen import static
from execrl.testgen.tasks import SUPPORTED, TaskSpec, spec
from execrl.types import AssertTests, ExecutionResult, IOCase, IOTests, Job, Limits, Status

__all__ = ["REASONS", "TestRow", "Validation", "consensus", "read_tests", "tests_job", "validate"]

REASONS = (
    "ok",
    "unknown_task",
    "wrong_kind",
    "syntax",
    "shadows_function",
    "no_assert",
    "does_not_call_function",
    "always_true",
    "reference_error",
    "fails_reference",
    "timeout",
    "sandbox_error",
    "no_solutions",
    "no_consensus",
    "too_few_tests",
    "inadequate",
)


@dataclass(frozen=True)
class TestRow:
    """One input row: `test` is assertion source (str) or a stdin/stdout case (IOCase)."""

    task_id: str
    test: str | IOCase
    line: int
    data: dict[str, Any]  # the row as read, echoed in the output

    def key(self) -> str:
        return self.test if isinstance(self.test, str) else repr((self.test.input, self.test.output))


def read_tests(path: PathLike) -> list[TestRow]:
    """The rows of a tests file; a `DataError` naming file:line for any row that does not fit."""
    out = []
    for row in read_rows(path):
        task_id = row.ident("task_id")
        test = row.data.get("test")
        if isinstance(test, dict):
            if set(test) != {"input", "output"} or not all(isinstance(v, str) for v in test.values()):
                raise row.error('field "test" as an object must be {"input": string, "output": string}')
            out.append(TestRow(task_id, IOCase(test["input"], test["output"]), row.line, row.data))
        elif isinstance(test, str):
            out.append(TestRow(task_id, test, row.line, row.data))
        else:
            raise row.error(f'field "test" must be a string or an object, got {json_type(test)}')
    return out


def consensus(passed: Sequence[frozenset[int]]) -> frozenset[int]:
    """CodeT's dual execution agreement: the tests to keep, given each solution's passed tests.

    Solutions that pass exactly the same set of tests form a consensus set; its score is (number
    of solutions) x (number of tests). The best set's tests are kept. Ties go to the set with more
    tests, then more solutions, then the one whose first solution comes first. A best score of 0
    (no solution passes any test) keeps nothing."""
    groups: dict[frozenset[int], list[int]] = defaultdict(list)
    for i, tests in enumerate(passed):
        groups[tests].append(i)
    if not groups:
        return frozenset()
    best = max(groups.items(), key=lambda g: (len(g[1]) * len(g[0]), len(g[0]), len(g[1]), -g[1][0]))
    return best[0] if best[1] and best[0] else frozenset()


def _base_job(bench: Any, problem: Any, completion: str, limits: Limits, kind: str) -> Job:
    try:
        return bench.make_job(problem, completion, limits)
    except DataError:  # e.g. an APPS task without hidden tests: the program as is
        return Job(program=completion, tests=AssertTests(), limits=limits, main=kind == "io")


def tests_job(
    bench: Any, problem: Any, task: TaskSpec, completion: str, tests: Sequence[str | IOCase], limits: Limits
) -> Job:
    """One job running `tests` (statically valid ones) against `completion` (see module docstring)."""
    base = _base_job(bench, problem, completion, limits, task.kind)
    limits = replace(limits, max_timeouts=len(tests) + 1)
    if task.kind == "io":
        cases = tuple(t for t in tests if isinstance(t, IOCase))
        tol = getattr(base.tests, "float_tol", 1e-6)
        return replace(base, tests=IOTests(cases=cases, float_tol=tol), limits=limits)
    names, blocks = [], [task.setup] if task.setup.strip() else []
    for i, t in enumerate(tests):
        assert isinstance(t, str)
        name = f"__execrl_test_{i}__"
        blocks.append(ast.unparse(static.function_body(name, ast.parse(t))))
        names.append(f"{name}()")
    program = base.program.rstrip("\n") + "\n\n\n" + "\n\n\n".join(blocks) + "\n"
    return replace(base, program=program, tests=AssertTests(tests=tuple(names)), limits=limits)


def _loads_job(bench: Any, problem: Any, task: TaskSpec, completion: str, limits: Limits) -> Job:
    """The program with no tests: its verdict is whether it loads."""
    base = _base_job(bench, problem, completion, limits, task.kind)
    # An io program reads stdin as it loads, so for io only a syntax error says it cannot run.
    tests = IOTests(cases=(IOCase("", ""),)) if task.kind == "io" else AssertTests()
    return replace(base, tests=tests)


def _verdicts(result: ExecutionResult, n: int) -> list[str]:
    """Per-test outcome: "ok", "timeout", "sandbox_error" or "fails"."""
    if result.status is Status.SANDBOX_ERROR:
        return ["sandbox_error"] * n
    if len(result.tests) != n:
        return ["fails"] * n
    table = {Status.PASSED: "ok", Status.TIMEOUT: "timeout", Status.SANDBOX_ERROR: "sandbox_error"}
    return [table.get(r.status, "fails") for r in result.tests]


@dataclass
class Validation:
    rows: list[TestRow]
    valid: list[bool]
    reasons: list[str]
    methods: list[str | None]
    quality: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per task with a test that passed the reference or the consensus: "passing" (distinct such
    tests); with adequacy "trivial", "trivial_passed" (the trivial programs no test rejects),
    "mutants", "mutants_killed", "mutation_score", "adequate"; with solutions and a valid test,
    "judged", "pass_valid", "false_pass" (as in the quality report, for this task)."""

    def out_rows(self) -> list[dict[str, Any]]:
        return [
            {**r.data, "valid": v, "reason": why, "method": m}
            for r, v, why, m in zip(self.rows, self.valid, self.reasons, self.methods)
        ]

    def report(self) -> str:
        q = self.quality
        n = len(self.rows)
        lines = [f"tests        {n}, valid {q['valid']} ({q['valid_rate']:.1%})", ""]
        lines.append(f"{'reason':<24}{'tests':>8}{'share':>9}")
        for reason, c in q["reasons"].items():
            lines.append(f"{reason:<24}{c:>8}{c / max(n, 1):>9.1%}")
        lines.append("")
        lines.append("method       " + ", ".join(f"{m} {c}" for m, c in q["methods"].items()))
        ad = q.get("adequacy")
        if ad is not None:
            lines.append(
                f"adequacy     {ad['adequate']} of {ad['tasks']} tasks adequate; mean mutation score "
                f"{ad['mutation_score_mean']:.2f}; trivial programs passing all of a task's tests: "
                + (", ".join(f"{k} {c}" for k, c in ad["trivial_passed"].items()) or "none")
            )
        fp = q.get("false_pass")
        if fp is not None:
            rate = "n/a" if fp["rate"] is None else f"{fp['rate']:.1%}"
            lines.append(
                f"false pass   {fp['count']} of {fp['pass_valid']} solutions that pass every valid test fail "
                f"the hidden tests ({rate}); {fp['judged']} solutions judged, {fp['false_fail']} fail a valid "
                "test but pass the hidden ones"
            )
        return "\n".join(lines)


def validate(
    benchmark: str,
    tests: PathLike,
    *,
    data: PathLike | None = None,
    solutions: PathLike | None = None,
    limits: Limits | None = None,
    workers: int | None = None,
    executor: LocalExecutor | None = None,
    allow_unsafe: bool = False,
    progress: bool = False,
    min_tests: int = 1,
    adequacy: bool = False,
    max_mutants: int = 24,
    min_mutation_score: float = 0.5,
) -> Validation:
    """Validate every row of `tests` (see the module docstring). Input problems raise `DataError`
    before anything runs. `min_tests`, `adequacy`, `max_mutants`, `min_mutation_score`: the
    task-level rules (`too_few_tests`, `inadequate`)."""
    if min_tests < 1 or max_mutants < 0 or not 0 <= min_mutation_score <= 1:
        raise DataError("tests: --min-tests must be >= 1, --max-mutants >= 0, --min-mutation-score in [0, 1]")
    bench = get_benchmark(benchmark)
    if bench.NAME not in SUPPORTED:
        raise DataError(
            f"tests: benchmark {bench.NAME!r} is not supported; choose from {', '.join(SUPPORTED)}"
        )
    data = hub.resolve(os.fspath(data)) if data is not None else None
    problems = bench.load(data)
    rows = read_tests(tests)
    samples: list[Sample] = read_samples(solutions) if solutions is not None else []
    for s in samples:
        if s.task_id not in problems:
            raise DataError(
                f"{os.fspath(solutions or '')}:{s.line}: task_id {s.task_id!r} is not in the {bench.NAME} data"
            )
    limits = limits or Limits()
    specs: dict[str, TaskSpec] = {}
    for tid in {r.task_id for r in rows if r.task_id in problems} | {s.task_id for s in samples}:
        specs[tid] = spec(bench.NAME, problems[tid])

    reasons = [_static_reason(r, specs.get(r.task_id)) for r in rows]
    # Statically valid tests per task, deduplicated: task -> test key -> (index, test).
    pending: dict[str, dict[str, str | IOCase]] = defaultdict(dict)
    for r, why in zip(rows, reasons):
        if why == "ok":
            pending[r.task_id].setdefault(r.key(), r.test)
    by_task: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_task[s.task_id].append(s)

    # Jobs: per task, the reference loading alone and with all its tests; every sample with the
    # task's tests and with the hidden tests.
    jobs: list[Job] = []
    plan: list[tuple[str, str, int]] = []  # (task, what, sample index)
    for tid, task in specs.items():
        keys = list(pending.get(tid, {}))
        tlist = [pending[tid][k] for k in keys]
        if task.reference is not None and tlist:
            jobs.append(_loads_job(bench, problems[tid], task, task.reference, limits))
            plan.append((tid, "loads", -1))
            jobs.append(tests_job(bench, problems[tid], task, task.reference, tlist, limits))
            plan.append((tid, "reference", -1))
        for i, s in enumerate(by_task.get(tid, []) if tlist else []):
            jobs.append(tests_job(bench, problems[tid], task, s.completion, tlist, limits))
            plan.append((tid, "sample", i))
            try:
                jobs.append(bench.make_job(problems[tid], s.completion, limits))
            except DataError:  # no hidden tests (an APPS task without them): no false-pass verdict
                continue
            plan.append((tid, "hidden", i))
    own = executor is None
    ex = executor or LocalExecutor(workers=workers, allow_unsafe=allow_unsafe)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="job", file=sys.stderr, disable=None)
    try:
        results = ex.run(jobs, progress=(lambda _: bar.update()) if bar is not None else None) if jobs else []
    except BaseException:
        if own:
            ex.close()
        raise
    finally:
        if bar is not None:
            bar.close()

    loads: dict[str, ExecutionResult] = {}
    reference: dict[str, list[str]] = {}
    sample_verdicts: dict[str, dict[int, list[str]]] = defaultdict(dict)
    hidden: dict[str, dict[int, ExecutionResult]] = defaultdict(dict)
    for (tid, what, i), result in zip(plan, results):
        n = len(pending.get(tid, {}))
        if what == "loads":
            loads[tid] = result
        elif what == "reference":
            reference[tid] = _verdicts(result, n)
        elif what == "sample":
            sample_verdicts[tid][i] = _verdicts(result, n)
        else:
            hidden[tid][i] = result

    # Verdict per unique test of each task.
    verdict: dict[tuple[str, str], str] = {}
    for tid, tests_of in pending.items():
        keys = list(tests_of)
        task = specs[tid]
        if task.reference is not None:
            broken = loads[tid].status not in (Status.PASSED, Status.SANDBOX_ERROR) and task.kind == "assert"
            broken = broken or loads[tid].status is Status.SYNTAX_ERROR
            for k, outcome in zip(keys, reference[tid]):
                verdict[(tid, k)] = (
                    "reference_error" if broken else ("fails_reference" if outcome == "fails" else outcome)
                )
            continue
        usable = [sv for sv in sample_verdicts[tid].values() if "sandbox_error" not in sv]
        kept = consensus([frozenset(j for j, x in enumerate(sv) if x == "ok") for sv in usable])
        for j, k in enumerate(keys):
            verdict[(tid, k)] = "no_solutions" if not usable else ("ok" if j in kept else "no_consensus")
    try:
        task_info = _task_level(bench, problems, specs, pending, verdict, limits, ex, min_tests,
                                adequacy, max_mutants, min_mutation_score)  # fmt: skip
    finally:
        if own:
            ex.close()
    for idx, r in enumerate(rows):
        if reasons[idx] == "ok":
            reasons[idx] = verdict[(r.task_id, r.key())]
    methods: list[str | None] = [
        None
        if (t := specs.get(r.task_id)) is None
        else "reference"
        if t.reference is not None
        else "dual_agreement"
        for r in rows
    ]
    valid = [why == "ok" for why in reasons]
    v = Validation(rows, valid, reasons, methods, tasks=task_info)
    v.quality = _quality(v, pending, verdict, sample_verdicts, hidden, bool(samples))
    return v


def _task_level(
    bench: Any,
    problems: dict[str, Any],
    specs: dict[str, TaskSpec],
    pending: dict[str, dict[str, str | IOCase]],
    verdict: dict[tuple[str, str], str],
    limits: Limits,
    executor: Any,
    min_tests: int,
    adequacy: bool,
    max_mutants: int,
    min_mutation_score: float,
) -> dict[str, dict[str, Any]]:
    """Apply `too_few_tests` and `inadequate` to `verdict` in place; per-task details."""
    info: dict[str, dict[str, Any]] = {}
    jobs: list[Job] = []
    plan: list[tuple[str, str, str]] = []  # (task, "trivial" | "mutant", program name)
    for tid, tests_of in pending.items():
        passing = [k for k in tests_of if verdict[(tid, k)] == "ok"]
        if not passing:
            continue
        info[tid] = {"passing": len(passing)}
        if len(passing) < min_tests:
            for k in passing:
                verdict[(tid, k)] = "too_few_tests"
            continue
        task = specs[tid]
        if not adequacy or task.reference is None or task.kind != "assert":
            continue
        assert task.entry_point is not None
        program = _base_job(bench, problems[tid], task.reference, limits, task.kind).program
        trivial, mutants = wrong.wrong_programs(task.reference, task.entry_point,
                                                wrong.params_of(program, task.entry_point),
                                                limit=max_mutants, seed=tid)  # fmt: skip
        info[tid].update({"trivial": len(trivial), "mutants": len(mutants)})
        tlist = [tests_of[k] for k in passing]
        for what, programs in (("trivial", trivial), ("mutant", mutants)):
            for name, completion in programs:
                job = tests_job(bench, problems[tid], task, completion, tlist, limits)
                # One timeout already rejects a wrong program: the rest of its tests are not run
                # (a mutant that loops forever would otherwise cost `timeout` on every test).
                jobs.append(replace(job, limits=replace(job.limits, max_timeouts=1)))
                plan.append((tid, what, name))
    results = executor.run(jobs) if jobs else []
    survived: dict[str, list[str]] = defaultdict(list)
    killed: Counter[str] = Counter()
    judged: Counter[str] = Counter()
    for (tid, what, name), result in zip(plan, results):
        outcomes = _verdicts(result, info[tid]["passing"])
        if "sandbox_error" in outcomes:  # no verdict on this program: left out
            continue
        rejected = any(o != "ok" for o in outcomes)
        if what == "trivial" and not rejected:
            survived[tid].append(name)
        elif what == "mutant":
            judged[tid] += 1
            killed[tid] += rejected
    for tid, d in info.items():
        if "trivial" not in d:
            continue
        score = killed[tid] / judged[tid] if judged[tid] else 1.0
        d.update({"trivial_passed": survived[tid], "mutants_killed": killed[tid], "mutation_score": score})
        d["adequate"] = not survived[tid] and score >= min_mutation_score
        if not d["adequate"]:
            for k in pending[tid]:
                if verdict[(tid, k)] == "ok":
                    verdict[(tid, k)] = "inadequate"
    return info


def _static_reason(row: TestRow, task: TaskSpec | None) -> str:
    if task is None:
        return "unknown_task"
    if (task.kind == "io") != isinstance(row.test, IOCase):
        return "wrong_kind"
    if isinstance(row.test, IOCase):
        return "ok"
    assert task.entry_point is not None
    return static.check(row.test, task.entry_point, task.classes)


def _quality(
    v: Validation,
    pending: dict[str, dict[str, str | IOCase]],
    verdict: dict[tuple[str, str], str],
    sample_verdicts: dict[str, dict[int, list[str]]],
    hidden: dict[str, dict[int, ExecutionResult]],
    have_samples: bool,
) -> dict[str, Any]:
    n = len(v.rows)
    counts = Counter(v.reasons)
    q: dict[str, Any] = {
        "tests": n,
        "valid": sum(v.valid),
        "valid_rate": sum(v.valid) / n if n else 0.0,
        "reasons": {r: counts[r] for r in REASONS if counts[r]},
        "methods": dict(Counter(m for m in v.methods if m is not None)),
    }
    judged_tasks = [d for d in v.tasks.values() if "adequate" in d]
    if judged_tasks:
        trivial = Counter(name for d in judged_tasks for name in d["trivial_passed"])
        q["adequacy"] = {
            "tasks": len(judged_tasks),
            "adequate": sum(d["adequate"] for d in judged_tasks),
            "mutation_score_mean": sum(d["mutation_score"] for d in judged_tasks) / len(judged_tasks),
            "trivial_passed": dict(trivial.most_common()),
        }
    if not have_samples:
        return q
    judged = pass_valid = false_pass = false_fail = 0
    for tid, per_sample in hidden.items():
        keys = list(pending.get(tid, {}))
        valid_idx = [j for j, k in enumerate(keys) if verdict.get((tid, k)) == "ok"]
        if not valid_idx:
            continue
        for i, h in per_sample.items():
            sv = sample_verdicts[tid].get(i)
            if h.status is Status.SANDBOX_ERROR or sv is None or "sandbox_error" in sv:
                continue
            judged += 1
            ok = all(sv[j] == "ok" for j in valid_idx)
            pass_valid += ok
            false_pass += ok and not h.passed
            false_fail += (not ok) and h.passed
            per_task = v.tasks.setdefault(tid, {})
            for name, x in (("judged", 1), ("pass_valid", ok), ("false_pass", ok and not h.passed)):
                per_task[name] = per_task.get(name, 0) + x
    q["false_pass"] = {
        "judged": judged,
        "pass_valid": pass_valid,
        "count": false_pass,
        "rate": false_pass / pass_valid if pass_valid else None,
        "false_fail": false_fail,
    }
    return q
