"""The built-in generated suite: references pass in the real sandbox, splits hold out compositions."""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

import pytest

from execrl import LocalExecutor
from execrl.cli import main
from execrl.data import BENCHMARKS, DataError, builtin
from execrl.types import Limits

SUITE = builtin.generate(seed=0, size=600)
PROBLEMS = list(SUITE.values())


def sample(n: int) -> list[builtin.Problem]:
    """`n` problems covering every (split, kind) pair."""
    rng = random.Random(1)
    picked = {(p.split, p.kind): p for p in PROBLEMS}
    rest = rng.sample(PROBLEMS, n - len(picked))
    return list(picked.values()) + rest


def test_registered_and_default_load_is_seed_zero() -> None:
    assert BENCHMARKS["builtin"] is builtin
    assert builtin.load.__defaults__ == (None,)
    assert builtin.generate(0, 50) == builtin.generate(0, 50)


def test_references_pass_and_a_wrong_body_fails() -> None:
    """~150 tasks of every kind and split, each run twice: the reference and `return None`."""
    problems = sample(150)
    limits = Limits(timeout=5.0)
    jobs = [builtin.make_job(p, p.solution, limits) for p in problems]
    jobs += [builtin.make_job(p, "    return None\n", limits) for p in problems]
    with LocalExecutor(workers=2) as ex:
        results = ex.run(jobs)
    good, bad = results[: len(problems)], results[len(problems) :]
    assert [(p.task_id, r.status.value) for p, r in zip(problems, good) if not r.passed] == []
    assert not any(r.passed for r in bad)


def test_tests_per_task_and_sizes() -> None:
    for p in PROBLEMS:
        assert 5 <= len(p.tests or p.io_cases) <= 8
        assert len(p.instruction.split()) <= 40
        assert p.kind == "io" or p.solution.count("\n") <= 8
        assert 2 <= len(p.ops) <= 3
        assert builtin.metadata(p) == {"split": p.split, "kind": p.kind, "ops": str(len(p.ops))}


def test_same_seed_same_suite_other_seed_differs() -> None:
    assert builtin.generate(3, 40) == builtin.generate(3, 40)
    a = [(p.ops, p.tests, p.io_cases) for p in builtin.generate(3, 40).values()]
    b = [(p.ops, p.tests, p.io_cases) for p in builtin.generate(4, 40).values()]
    assert a != b


def test_splits_hold_out_compositions() -> None:
    combos = {s: {p.ops for p in PROBLEMS if p.split == s} for s in ("train", "validation", "test")}
    assert all(combos.values())
    assert not combos["test"] & combos["train"]
    assert not combos["validation"] & combos["train"]
    pairs = {s: {c[:2] for c in cs} for s, cs in combos.items()}
    assert not pairs["test"] & pairs["train"]


def test_api_solutions_call_their_recorded_api() -> None:
    api = [p for p in PROBLEMS if p.kind == "api"]
    assert {p.api_call.module for p in api if p.api_call} >= {"math", "statistics", "heapq", "collections"}
    for p in api:
        assert p.api_call is not None
        assert builtin.calls_api(p.header + p.solution, p.api_call), p.task_id
        assert not builtin.calls_api(p.header + "    return None\n", p.api_call)
    assert all(p.api_call is None for p in PROBLEMS if p.kind != "api")


def test_training_examples_are_well_formed() -> None:
    tw = builtin.test_writing_examples(PROBLEMS)
    assert len(tw) == sum(1 for p in PROBLEMS if p.kind != "io")
    for row in tw:
        assert "def solve(" in row["prompt"]
        lines = row["response"].splitlines()
        assert 5 <= len(lines) <= 8 and all(line.startswith("assert solve(") for line in lines)
        ast.parse(row["response"])
    sft = builtin.sft_examples(PROBLEMS)
    assert len(sft) == len(PROBLEMS)
    for p, row in zip(PROBLEMS, sft):
        assert row["prompt"] == builtin.prompt(p, chat=False)
        ast.parse(row["prompt"] + row["response"])


def test_prompts_and_output_extraction() -> None:
    fn = next(p for p in PROBLEMS if p.kind == "function")
    io = next(p for p in PROBLEMS if p.kind == "io")
    assert builtin.completion_from_output(fn, fn.solution + "\ndef other():\n", chat=False) == fn.solution
    assert builtin.completion_from_output(io, io.solution, chat=False) == io.solution  # no stop inside
    chat = builtin.prompt(fn, chat=True)
    assert isinstance(chat, list) and len(chat) == 1 and chat[0]["role"] == "user"
    reply = f"```python\n{fn.header}{fn.solution}```"
    completion = builtin.completion_from_output(fn, reply, chat=True)
    assert "def solve(" in completion
    ast.parse(fn.header + completion)


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "suite.jsonl"
    builtin.write_jsonl(path, PROBLEMS[:80])
    assert builtin.load(path) == {p.task_id: p for p in PROBLEMS[:80]}


def test_bad_row_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    row = json.loads(json.dumps(builtin._to_row(PROBLEMS[0])))
    row["kind"] = "essay"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: .*kind"):
        builtin.load(path)


def test_cli_evaluate_scores_references(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "suite.jsonl"
    chosen = sample(10)[:6]
    builtin.write_jsonl(data, chosen)
    samples = tmp_path / "s.jsonl"
    samples.write_text(
        "".join(json.dumps({"task_id": p.task_id, "completion": p.solution}) + "\n" for p in chosen)
    )
    args = ["evaluate", "--benchmark", "builtin", "--data", str(data), "--samples", str(samples), "--k", "1"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"pass@1": 1.0}
