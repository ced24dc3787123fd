"""The task-level rules of `execrl tests validate`: `too_few_tests` and `inadequate` (--adequacy),
and the wrong programs (trivial programs, mutants of the reference) that adequacy runs.

Bug this guards (the first `execrl demo --method plum` run): 73 of the 82 tasks with a valid
test had exactly one, 64 of the 97 valid tests were `solve([]) == 0`-style, `return 0` passed
every test of 68 tasks, and 47.5% of the SFT start's programs that passed every valid test were
wrong (docs/plum.md). Each test is one property, on the real sandbox.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from execrl.data import humaneval
from execrl.sandbox.executor import LocalExecutor
from execrl.testgen.adequacy import mutants, params_of, trivial_programs
from execrl.testgen.validate import REASONS, validate
from execrl.types import Limits

LIMITS = Limits(timeout=1.0)
REAL_0 = [  # HumanEval/0's own check, entry point named
    "assert has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True",
    "assert has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False",
    "assert has_close_elements([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True",
    "assert has_close_elements([1.0, 2.0, 5.9, 4.0, 5.0], 0.8) == False",
    "assert has_close_elements([1.1, 2.2, 3.1, 4.1, 5.1], 1.0) == True",
]


@pytest.fixture(scope="module")
def problems() -> dict[str, humaneval.Problem]:
    return humaneval.load()


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(tests: list[str], task: str = "HumanEval/0") -> list[dict[str, Any]]:
    return [{"task_id": task, "test": t, "source": i} for i, t in enumerate(tests)]


def test_new_reasons_are_listed() -> None:
    assert {"too_few_tests", "inadequate"} <= set(REASONS)


def test_defaults_keep_reference_only_validity(
    problems: dict[str, humaneval.Problem], executor: LocalExecutor, tmp_path: Path
) -> None:
    """Off by default: a test `return False` also passes is still `ok` (the documented contract)."""
    t = _write(tmp_path / "t.jsonl", _rows(["assert has_close_elements([], 0.5) == False"]))
    assert validate("humaneval", t, limits=LIMITS, executor=executor).reasons == ["ok"]


def test_too_few_tests_marks_every_passing_test_of_the_task(executor: LocalExecutor, tmp_path: Path) -> None:
    """min_tests=3, a task with two passing tests and one failing: both passing tests become
    too_few_tests (invalid), the failing one keeps fails_reference, rows stay in order."""
    tests = [REAL_0[0], "assert has_close_elements([1.0, 1.1], 0.5) == False", REAL_0[1]]
    t = _write(tmp_path / "t.jsonl", _rows(tests))
    v = validate("humaneval", t, limits=LIMITS, executor=executor, min_tests=3)
    assert v.reasons == ["too_few_tests", "fails_reference", "too_few_tests"]
    assert v.valid == [False, False, False]
    assert [r["source"] for r in v.out_rows()] == [0, 1, 2]


def test_a_test_set_a_trivial_program_passes_is_inadequate(executor: LocalExecutor, tmp_path: Path) -> None:
    """Two tests the reference passes, both also passed by `return False`: inadequate, and the
    per-task details name the trivial program."""
    tests = ["assert has_close_elements([], 0.5) == False", "assert has_close_elements([1.0], 0.5) == False"]
    t = _write(tmp_path / "t.jsonl", _rows(tests))
    v = validate("humaneval", t, limits=LIMITS, executor=executor, adequacy=True)
    assert v.reasons == ["inadequate", "inadequate"]
    assert "return False" in v.tasks["HumanEval/0"]["trivial_passed"]
    assert v.quality["adequacy"]["adequate"] == 0


def test_the_benchmarks_own_tests_are_adequate(executor: LocalExecutor, tmp_path: Path) -> None:
    """HumanEval/0's real asserts reject every trivial program and most mutants: all `ok`."""
    t = _write(tmp_path / "t.jsonl", _rows(REAL_0))
    v = validate("humaneval", t, limits=LIMITS, executor=executor, adequacy=True, min_tests=3)
    assert v.reasons == ["ok"] * len(REAL_0)
    d = v.tasks["HumanEval/0"]
    assert d["adequate"] and d["trivial_passed"] == [] and d["mutation_score"] >= 0.5


def test_mutation_score_threshold_decides(executor: LocalExecutor, tmp_path: Path) -> None:
    """The same real tests, required to reject every mutant (score 1.0): HumanEval/0's reference
    has mutants its check cannot tell apart (equivalent or untested), so the task is inadequate."""
    t = _write(tmp_path / "t.jsonl", _rows(REAL_0))
    v = validate("humaneval", t, limits=LIMITS, executor=executor, adequacy=True, min_mutation_score=1.0)
    d = v.tasks["HumanEval/0"]
    assert d["mutants_killed"] < d["mutants"]
    assert v.reasons == ["inadequate"] * len(REAL_0)


def test_false_pass_rate_drops_when_weak_tests_are_dropped(
    problems: dict[str, humaneval.Problem], executor: LocalExecutor, tmp_path: Path
) -> None:
    """A weak test set lets `return True` be chosen (a false pass); with adequacy the task labels
    nothing, so no wrong program is chosen."""
    t = _write(tmp_path / "t.jsonl", _rows(["assert has_close_elements([1.0, 1.1], 0.5) == True"]))
    sols = [problems["HumanEval/0"].canonical_solution, "    return True\n"]
    s = _write(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "completion": c} for c in sols])
    before = validate("humaneval", t, solutions=s, limits=LIMITS, executor=executor)
    after = validate("humaneval", t, solutions=s, limits=LIMITS, executor=executor, adequacy=True)
    assert before.quality["false_pass"]["count"] == 1
    assert after.reasons == ["inadequate"] and after.quality["false_pass"]["count"] == 0


def test_bad_task_level_settings_raise(tmp_path: Path) -> None:
    from execrl.data import DataError

    t = _write(tmp_path / "t.jsonl", _rows(REAL_0[:1]))
    with pytest.raises(DataError, match="min-tests"):
        validate("humaneval", t, min_tests=0)


# ---------------------------------------------------------------------------------------------
# The wrong programs.


def test_trivial_programs_of_a_body_reference(problems: dict[str, humaneval.Problem]) -> None:
    p = problems["HumanEval/0"]
    params = params_of(p.prompt + p.canonical_solution, p.entry_point)
    progs = dict(trivial_programs(p.canonical_solution, p.entry_point, params))
    assert params == ["numbers", "threshold"]
    assert progs["return None"] == "    return None\n"
    assert progs["return identity"] == "    return numbers\n"


def test_every_mutant_compiles_and_differs_from_the_reference_in_one_place(
    problems: dict[str, humaneval.Problem],
) -> None:
    p = problems["HumanEval/0"]
    ms = mutants(p.canonical_solution, p.entry_point, limit=100)
    original = ast.dump(ast.parse("def f():\n" + p.canonical_solution))
    assert len(ms) >= 5 and len({src for _, src in ms}) == len(ms)
    for _, src in ms:
        mutated = ast.dump(ast.parse("def f():\n" + src))  # compiles as a body
        assert mutated != original


def test_mutants_of_a_full_program_and_the_limit_are_seeded() -> None:
    program = "def f(xs):\n    ys = [x for x in xs if x > 2]\n    return len(ys) + 1\n"
    a = mutants(program, "f", limit=3, seed="t")
    assert len(a) == 3 and a == mutants(program, "f", limit=3, seed="t")
    assert all(src.startswith("def f(xs):") for _, src in a)
    assert any("x >= 2" in src for _, src in mutants(program, "f", limit=100))


def test_adequacy_changes_only_ok_verdicts_on_the_held_out_corpus(
    problems: dict[str, humaneval.Problem], executor: LocalExecutor, tmp_path: Path
) -> None:
    """The HumanEval corpus of test_testgen_validate (real, wrong-expected, vacuous, broken
    tests), first 20 tasks, with adequacy on: every reason is the one built in, except that an
    `ok` may become `inadequate` — and then so do all `ok` tests of its task."""
    from test_testgen_validate import corpus

    keep = set(list(problems)[:20])
    cases = [(r, why) for r, why in corpus(problems) if r["task_id"] in keep]
    t = _write(tmp_path / "t.jsonl", [r for r, _ in cases])
    v = validate("humaneval", t, limits=LIMITS, executor=executor, adequacy=True)
    inadequate = {r["task_id"] for (r, _), got in zip(cases, v.reasons) if got == "inadequate"}
    for (r, want), got in zip(cases, v.reasons):
        if want == "ok" and r["task_id"] in inadequate:
            assert got == "inadequate", (r, got)
        else:
            assert got == want, (r, want, got)
    assert len(inadequate) < len(keep) // 2  # the benchmark's own tests are mostly adequate


class _Recording:
    """A real executor that keeps the jobs it was given."""

    def __init__(self, executor: LocalExecutor) -> None:
        self.executor, self.jobs = executor, []  # type: ignore[var-annotated]

    def run(self, jobs, progress=None):  # type: ignore[no-untyped-def]
        self.jobs += list(jobs)
        return self.executor.run(jobs, progress=progress)


def test_a_wrong_program_stops_at_its_first_timeout(executor: LocalExecutor, tmp_path: Path) -> None:
    """Adequacy's wrong programs run with max_timeouts=1 (one timeout rejects them; a mutant that
    loops forever must not cost the timeout on every test), the reference with every test judged."""
    t = _write(tmp_path / "t.jsonl", _rows(REAL_0))
    rec = _Recording(executor)
    v = validate("humaneval", t, limits=LIMITS, executor=rec, adequacy=True)  # type: ignore[arg-type]
    d = v.tasks["HumanEval/0"]
    wrong = [j for j in rec.jobs if j.limits.max_timeouts == 1]
    assert len(wrong) == d["trivial"] + d["mutants"] > 0
    judged = [j for j in rec.jobs if j not in wrong and j.tests.tests]  # the reference with its tests
    assert judged and all(j.limits.max_timeouts == len(REAL_0) + 1 for j in judged)


def test_a_looping_wrong_program_is_rejected_by_its_first_timeout(executor: LocalExecutor) -> None:
    """The sandbox side of the rule: with max_timeouts=1 a program that never returns times out
    on its first test and the others are reported "not run", so it counts as rejected."""
    from dataclasses import replace

    from execrl.data import get_benchmark
    from execrl.testgen.tasks import spec
    from execrl.testgen.validate import _verdicts, tests_job

    bench = get_benchmark("humaneval")
    problem = bench.load()["HumanEval/0"]
    task = spec("humaneval", problem)
    job = tests_job(bench, problem, task, "    while True:\n        pass\n", REAL_0, LIMITS)
    result = executor.run([replace(job, limits=replace(job.limits, max_timeouts=1))])[0]
    assert _verdicts(result, len(REAL_0)) == ["timeout"] * len(REAL_0)
    assert all("not run" in (r.error.message if r.error else "") for r in result.tests[1:])
