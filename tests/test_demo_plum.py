"""`execrl demo --method plum` end to end on a tiny model (the pipeline, not a result), and the
recipe's settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from execrl import demo_plum
from tinymodel import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]


def test_recipe_holds_the_demos_settings():
    recipe = yaml.safe_load((ROOT / "recipes" / "plum.yaml").read_text())
    assert {k: recipe.get(k) for k in demo_plum.PLUM} == demo_plum.PLUM


def own_tests_as_valid(writer, tasks_path, out_dir, **_):
    """Stands in for the test writer, which a random tiny model cannot be: each task's own asserts,
    marked valid as `execrl tests validate` would mark them."""
    from execrl.data import builtin

    path = os.path.join(out_dir, "V.jsonl")
    rows = [
        {"task_id": p.task_id, "test": t, "valid": True}
        for p in builtin.load(tasks_path).values()
        for t in p.tests
    ]
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return {
        "tests": len(rows),
        "valid": len(rows),
        "valid_rate": 1.0,
        "reasons": {"ok": len(rows)},
        "tests_path": path,
    }


@pytest.mark.slow
def test_plum_demo_runs_rounds_and_writes_its_report(tmp_path, monkeypatch):
    import execrl.testgen.embedded

    monkeypatch.setattr(execrl.testgen.embedded, "synthesize_and_validate", own_tests_as_valid)
    model = make_tiny_model(tmp_path / "tiny" / "model")
    out = tmp_path / "demo"
    r = demo_plum.run(str(out), minutes=0.02, model=model, tasks=4, writer_steps=2, eval_limit=2,
                      progress=lambda *_: None)  # fmt: skip
    assert r["hostile_passed"] == 0 and r["tasks_with_valid_tests"] == 4
    assert (out / "report.png").stat().st_size > 0
    assert "PLUM-KTO" in (out / "report.md").read_text()
    evals = [json.loads(line) for line in (out / "plum-kto" / "eval.jsonl").read_text().splitlines()]
    assert evals[0]["round"] == 0 and evals[0]["tasks"] == 2


@pytest.mark.slow
def test_plum_demo_without_a_valid_test_says_so_and_trains_nothing(tmp_path):
    model = make_tiny_model(tmp_path / "tiny" / "model")  # random: writes no parseable assert
    out = tmp_path / "demo"
    r = demo_plum.run(str(out), minutes=0.02, model=model, tasks=2, writer_steps=1, progress=lambda *_: None)
    assert r["tasks_with_valid_tests"] == 0 and r["rounds"] == 0
    assert "nothing to train on" in (out / "report.md").read_text() and not (out / "plum-kto").exists()


def test_writer_examples_are_synthesis_prompts_whose_responses_parse_back_into_the_tests():
    """A writer that learned its examples exactly would write tests that synthesis parses back,
    one by one, from the very prompt synthesis sends."""
    from execrl.data import builtin
    from execrl.testgen.embedded import writing_examples
    from execrl.testgen.synthesize import parse_tests, prompt
    from execrl.testgen.tasks import spec

    tasks = [p for p in builtin.generate(seed=0, size=60).values() if p.split == "validation" and p.tests][:3]
    for p, ex in zip(tasks, writing_examples(tasks)):
        task = spec("builtin", p)
        assert ex["prompt"] == prompt(task, chat=False)
        assert [t for t in parse_tests(ex["response"], task)] == list(p.tests)


def test_writer_with_holdout_learns_other_tasks_tests_but_never_the_held_ones(tmp_path):
    """`train_writer(holdout=...)`: test-writing examples of the train tasks outside the holdout
    join its data; no held task's test-writing prompt is in it."""
    from execrl.data import builtin
    from execrl.testgen.embedded import train_writer

    train = [p for p in builtin.load().values() if p.split == "train" and p.tests]
    held = [p.task_id for p in train[:5]]
    model = make_tiny_model(tmp_path / "tiny")
    train_writer(model, str(tmp_path / "w"), steps=1, batch_size=2, holdout=held)
    rows = [json.loads(line) for line in (tmp_path / "w-data.jsonl").read_text().splitlines()]
    prompts = {r["prompt"] for r in rows if r["prompt"].rstrip().endswith("# Tests:")}
    headers = {builtin.load()[t].header for t in held}
    assert not any(p.startswith(h) for p in prompts for h in headers)
    assert json.loads((tmp_path / "w" / "writer.json").read_text())["writing_examples"] > 277
    assert len(prompts) > 1000


def test_fast_sampler_gives_n_completions_per_prompt_reproducibly(tmp_path):
    from execrl.generation import SamplingParams
    from execrl.testgen.embedded import FastSampler

    g = FastSampler(make_tiny_model(tmp_path / "tiny"))
    params = SamplingParams(n=3, temperature=0.8, max_new_tokens=8, stop=("\ndef ",), seed=1)
    a = g.generate(["def add(a, b):\n", "def mul(x, y):\n"], params)
    assert [len(x) for x in a] == [3, 3]
    assert [[c.text for c in x] for x in a] == [[c.text for c in x] for x in g.generate(
        ["def add(a, b):\n", "def mul(x, y):\n"], params)]  # fmt: skip
    assert all(0 < c.num_tokens <= 8 for x in a for c in x)


def test_synthesize_and_validate_with_the_batched_sampler_and_adequacy(tmp_path):
    """The demo's stage 4 end to end on a tiny model: one V.jsonl row per T.jsonl row, reasons
    from `REASONS`; the quality summary says how many tests it judged."""
    from execrl.testgen.embedded import synthesize_and_validate, write_tasks
    from execrl.testgen.validate import REASONS

    train, _ = write_tasks(str(tmp_path), 3)
    q = synthesize_and_validate(make_tiny_model(tmp_path / "tiny"), train, str(tmp_path), n=2, workers=1,
                                min_tests=2, adequacy=True)  # fmt: skip
    t_rows = (tmp_path / "T.jsonl").read_text().splitlines()
    v_rows = [json.loads(line) for line in (tmp_path / "V.jsonl").read_text().splitlines()]
    assert len(v_rows) == len(t_rows) == q["tests"]
    assert all(r["reason"] in REASONS for r in v_rows)
    assert q["synthesis"]["samples_per_task"] == 2 and q["synthesis"]["tasks"] == 3


def test_folds_partition_the_tasks_and_keep_same_header_tasks_together():
    """`folds_of`: every task in exactly one fold, sizes within one header group of each other,
    tasks that share a header (one exercise) in the same fold, seeded."""
    from execrl.data import builtin
    from execrl.testgen.embedded import folds_of

    train = [p for p in builtin.load().values() if p.split == "train" and p.tests]
    for k in (2, 3, 5):
        parts = folds_of(train, k, seed=0)
        assert len(parts) == k
        flat = [t for part in parts for t in part]
        assert sorted(flat) == sorted(p.task_id for p in train) and len(set(flat)) == len(flat)
        fold = {t: i for i, part in enumerate(parts) for t in part}
        by_header: dict[str, set[int]] = {}
        for p in train:
            by_header.setdefault(p.header, set()).add(fold[p.task_id])
        assert all(len(s) == 1 for s in by_header.values())
        largest_group = max(sum(1 for p in train if p.header == h) for h in by_header)
        assert max(map(len, parts)) - min(map(len, parts)) <= largest_group
    assert folds_of(train, 2, seed=0) == folds_of(train, 2, seed=0) != folds_of(train, 2, seed=1)
    with pytest.raises(ValueError, match="at least 2 folds"):
        folds_of(train, 1)


def test_cross_fitted_tests_ask_no_writer_about_a_task_whose_tests_it_learned(tmp_path):
    """`cross_fitted_tests`: one writer per fold, trained with that fold held out; fold k's tests
    come from writer k only; one validation over all of them (a V.jsonl row per T.jsonl row)."""
    from execrl.data import builtin
    from execrl.testgen.embedded import cross_fitted_tests, write_tasks

    train, _ = write_tasks(str(tmp_path), 6)
    q = cross_fitted_tests(make_tiny_model(tmp_path / "tiny"), train, str(tmp_path), folds=2, steps=1, n=2,
                           workers=1)  # fmt: skip
    assert sum(q["folds"]) == 6 and len(q["writers"]) == 2
    for k in range(2):
        fold_ids = {p.task_id for p in builtin.load(str(tmp_path / f"fold-{k}" / "tasks.jsonl")).values()}
        headers = {builtin.load()[t].header for t in fold_ids}
        rows = [json.loads(line) for line in (tmp_path / f"writer-{k}-data.jsonl").read_text().splitlines()]
        prompts = [r["prompt"] for r in rows if r["prompt"].rstrip().endswith("# Tests:")]
        assert prompts and not any(p.startswith(h) for p in prompts for h in headers)
        fold_rows = [
            json.loads(line) for line in (tmp_path / f"fold-{k}" / "T.jsonl").read_text().splitlines()
        ]
        assert {r["task_id"] for r in fold_rows} <= fold_ids
    t_rows = (tmp_path / "T.jsonl").read_text().splitlines()
    assert len(t_rows) == q["tests"] == len((tmp_path / "V.jsonl").read_text().splitlines())


def test_bench_plan_trains_seed_by_seed_and_restricts_seeds_per_run():
    """bench/plum.py's order: every run of a seed before the next seed, in `--runs` order; a run
    written `name:0+2` trains those seeds only."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_plum", ROOT / "bench" / "plum.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.run_plan("kto,dpo", [0, 1]) == [("kto", 0), ("dpo", 0), ("kto", 1), ("dpo", 1)]
    assert bench.run_plan("kto,nll:0,dpo:0+2", [0, 1, 2]) == [
        ("kto", 0), ("nll", 0), ("dpo", 0), ("kto", 1), ("kto", 2), ("dpo", 2)
    ]  # fmt: skip
    assert bench.run_plan("nll:5", [0, 1]) == []
