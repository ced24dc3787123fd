"""PLUM's first stage on the embedded default: a test writer, its tests, and their validation.

PLUM has a strong model (GPT-4) write the tests. The embedded default has no such model, and the
embedded policy never saw a test (its SFT data are prompt -> solution pairs). The smallest honest
stand-in: a *sibling* of the embedded model, fine-tuned from it with `execrl sft` on test-writing
examples of the built-in suite's *validation* split (`writing_examples`: the prompt `execrl tests
synthesize` sends, the task's header then `# Tests:`, and the task's asserts), plus the train
split's reference solutions. It writes tests in the format `execrl tests synthesize` prompts for, for train tasks
whose tests it never saw (validation tasks hold out operation compositions); the reference
solutions make it a stronger sibling that also serves as the "other model" of the off-policy
comparison. A 1.2 M-parameter model computes expected values badly, so many of its tests fail the
reference: the validity and false-pass rates that `synthesize_and_validate` returns measure that,
and only valid tests label anything. Held-out (test split) tasks never get synthesized tests.

    writer = train_writer("runs/embedded/model", "runs/plum/writer", steps=200)
    quality = synthesize_and_validate(writer, "runs/plum/train-tasks.jsonl", "runs/plum", n=2)

`write_tasks` writes the tasks a PLUM run uses: `train` tasks of the train split (a seeded choice)
and the whole test split, so synthesis, validation and `execrl prefer` read the same task ids.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from execrl.generation import Completion, Prompt, SamplingParams

__all__ = [
    "cross_fitted_tests",
    "folds_of",
    "sample_solutions",
    "synthesize_and_validate",
    "train_writer",
    "write_tasks",
    "writing_examples",
]


def write_tasks(out_dir: str, train: int, seed: int = 0) -> tuple[str, str]:
    """(train-tasks.jsonl: `train` train-split tasks with asserts (function and api kinds; the
    writer writes no stdin/stdout cases; 0: all of them), tasks.jsonl: those plus the whole test
    split)."""
    from execrl.data import builtin

    problems = list(builtin.load().values())
    pool = [p for p in problems if p.split == "train" and p.tests]  # function and api tasks: asserts
    take = len(pool) if train == 0 else min(train, len(pool))
    chosen = sorted(random.Random(seed).sample(pool, take), key=lambda p: p.task_id)
    os.makedirs(out_dir, exist_ok=True)
    train_path, all_path = os.path.join(out_dir, "train-tasks.jsonl"), os.path.join(out_dir, "tasks.jsonl")
    builtin.write_jsonl(train_path, chosen)
    builtin.write_jsonl(all_path, chosen + [p for p in problems if p.split == "test"])
    return train_path, all_path


def writing_examples(problems: Any) -> list[dict[str, str]]:
    """Test-writing examples in exactly the prompt `execrl tests synthesize` sends (completion
    style: the task's header, then `# Tests:`), the task's asserts as the response. Not
    `builtin.test_writing_examples`, whose prompt (`# instruction`, the `def` line) differs from
    synthesis's (the header with its docstring): a writer trained on it sees another prompt."""
    from execrl.testgen.synthesize import prompt
    from execrl.testgen.tasks import spec

    return [
        {"prompt": str(prompt(spec("builtin", p), chat=False)), "response": "\n".join(p.tests) + "\n"}
        for p in problems
        if p.tests
    ]


def train_writer(
    model: str,
    out: str,
    *,
    steps: int = 200,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    holdout: Collection[str] | None = None,
) -> str:
    """Fine-tune `model` on the validation split's test-writing examples and the train split's
    reference solutions; the writer's directory. With `holdout` (the task ids it will write tests
    for), it also learns the test-writing examples of every other train task whose header differs
    from every held task's (the suite has tasks with identical headers): about 6x more tests
    seen, none of the exercises it is asked about. A finished writer of the same model, steps,
    seed and holdout is reused."""
    import hashlib

    import yaml

    from execrl.data import builtin
    from execrl.trainers.sft import SFTConfig
    from execrl.trainers.sft import train as sft_train

    saved, marker = os.path.join(out, "sft_config.yaml"), os.path.join(out, "writer.json")
    key = hashlib.sha256(json.dumps(sorted(holdout)).encode()).hexdigest() if holdout is not None else None
    if os.path.isfile(saved) and os.path.isfile(os.path.join(out, "model.safetensors")):
        with open(saved) as f:
            cfg = yaml.safe_load(f)
        same_data = (json.load(open(marker)) if os.path.isfile(marker) else {}).get("holdout") == key
        if (
            cfg.get("max_steps") == steps
            and cfg.get("seed") == seed
            and cfg.get("model") == model
            and same_data
        ):
            return out
    problems = builtin.load().values()
    writing = [p for p in problems if p.split == "validation"]
    if holdout is not None:  # a task with the same header as a held one is the same exercise: out too
        held = set(holdout)
        held_headers = {p.header for p in problems if p.task_id in held}
        writing += [p for p in problems if p.split == "train" and p.task_id not in held]
        writing = [p for p in writing if p.header not in held_headers]
    tests_rows = writing_examples(writing)
    rows = tests_rows + builtin.sft_examples(p for p in problems if p.split == "train")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    data = out.rstrip("/") + "-data.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"prompt": r["prompt"], "response": r["response"]}) + "\n" for r in rows)
    sft_train(SFTConfig(model=model, data=data, out=out, max_steps=steps, batch_size=batch_size, lr=lr,
                        warmup_ratio=0.05, schedule="cosine", max_length=256, seed=seed, log_every=10))  # fmt: skip
    with open(marker, "w") as f:
        json.dump({"holdout": key, "writing_examples": len(tests_rows)}, f)
    return out


def sample_solutions(
    model: str, tasks_path: str, out: str, *, n: int, temperature: float = 0.7, seed: int = 0
) -> str:
    """`n` programs per task of `tasks_path` from `model` (the trainer's fast sampler), written as
    `{"task_id", "completion"}` rows: false-pass judging and off-policy samples."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from execrl.data import builtin
    from execrl.generation.hf import encode_prompt
    from execrl.trainers.rollout import SampleParams, sample

    problems = builtin.load(tasks_path)
    lm = AutoModelForCausalLM.from_pretrained(model)
    tok = AutoTokenizer.from_pretrained(model)
    ids = [t for t in problems for _ in range(n)]
    prompts = {t: encode_prompt(tok, builtin.prompt(problems[t], chat=False)) for t in problems}
    params = SampleParams(temperature=temperature, max_new_tokens=160, stop=builtin.STOP)
    r = sample(lm, tok, [prompts[t] for t in ids], params, torch.Generator().manual_seed(seed))
    with open(out, "w", encoding="utf-8") as f:
        for t, text in zip(ids, r.texts):
            completion = builtin.completion_from_output(problems[t], text, chat=False)
            f.write(json.dumps({"task_id": t, "completion": completion}) + "\n")
    return out


class FastSampler:
    """A `Generator` over the trainer's batched sampler (trainers/rollout.py `sample`), for
    completion-style prompts of a small local model: the same samples in distribution as the HF
    backend (temperature, top-p, stop strings), much faster for the embedded model on a CPU (once,
    on a loaded 2-core machine: 2,048 samples of 160 tokens in 4 min, where the HF backend had not
    finished 2,048 of 128 tokens after 27 min; not a benchmark)."""

    def __init__(self, model: str) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.lm = AutoModelForCausalLM.from_pretrained(model)
        self.tok = AutoTokenizer.from_pretrained(model)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        import torch

        from execrl.generation import Completion
        from execrl.generation.hf import encode_prompt
        from execrl.trainers.rollout import SampleParams, sample

        ids = [encode_prompt(self.tok, p) for p in prompts for _ in range(params.n)]
        sp = SampleParams(params.temperature, params.top_p, params.max_new_tokens, tuple(params.stop))
        g = torch.Generator().manual_seed(params.seed or 0)
        r = sample(self.lm, self.tok, ids, sp, g)
        done = [Completion(t, num_tokens=int(n)) for t, n in zip(r.texts, r.completion_mask.sum(-1))]
        return [done[i * params.n : (i + 1) * params.n] for i in range(len(prompts))]


def synthesize_and_validate(
    writer: str,
    tasks_path: str,
    out_dir: str,
    *,
    n: int = 2,
    solutions: str | None = None,
    workers: int | None = None,
    seed: int = 0,
    min_tests: int = 1,
    adequacy: bool = False,
) -> dict[str, Any]:
    """`execrl tests synthesize` (n samples per task, T=0.8) then `execrl tests validate` against
    the references (with `min_tests` and `adequacy`, its task-level rules; with `solutions`, the
    false-pass rate); writes out_dir/T.jsonl and out_dir/V.jsonl and returns validation's quality
    summary with "tests_path"."""
    t_path = os.path.join(out_dir, "T.jsonl")
    synthesized = _synthesize(writer, tasks_path, t_path, n, seed)
    quality = _validate(tasks_path, t_path, out_dir, solutions, workers, min_tests, adequacy)
    return {**quality, "synthesis": synthesized}


def cross_fitted_tests(
    model: str,
    tasks_path: str,
    out_dir: str,
    *,
    folds: int = 2,
    steps: int = 300,
    n: int = 2,
    solutions: str | None = None,
    workers: int | None = None,
    seed: int = 0,
    min_tests: int = 1,
    adequacy: bool = False,
) -> dict[str, Any]:
    """Tests for every task of `tasks_path` when they are all PLUM's (the whole train split): the
    tasks are split into `folds` folds (`folds_of`: tasks with the same header stay together), and
    fold k's tests are written by a writer that learned the test-writing examples of the other
    folds only (`train_writer(holdout=fold k)`, out_dir/writer-k), so no writer is asked about a
    task whose tests it saw — cross-fitting. Then one validation of all of them, as
    `synthesize_and_validate`. Returns its quality summary plus "writers" (the directories) and
    "folds" (tasks per fold)."""
    from execrl.data import builtin

    problems = builtin.load(tasks_path)
    parts = folds_of(problems.values(), folds, seed)
    t_path = os.path.join(out_dir, "T.jsonl")
    writers, synthesized, rows = [], [], []
    for k, part in enumerate(parts):
        fold_dir = os.path.join(out_dir, f"fold-{k}")
        os.makedirs(fold_dir, exist_ok=True)
        fold_tasks = os.path.join(fold_dir, "tasks.jsonl")
        builtin.write_jsonl(fold_tasks, (problems[t] for t in part))
        writer = train_writer(
            model, os.path.join(out_dir, f"writer-{k}"), steps=steps, seed=seed, holdout=part
        )
        writers.append(writer)
        fold_t = os.path.join(fold_dir, "T.jsonl")
        synthesized.append(_synthesize(writer, fold_tasks, fold_t, n, seed))
        with open(fold_t, encoding="utf-8") as f:
            rows.extend(f.readlines())
    with open(t_path, "w", encoding="utf-8") as f:
        f.writelines(rows)
    quality = _validate(tasks_path, t_path, out_dir, solutions, workers, min_tests, adequacy)
    return {**quality, "synthesis": synthesized, "writers": writers, "folds": [len(p) for p in parts]}


def folds_of(problems: Any, folds: int, seed: int = 0) -> list[list[str]]:
    """Task ids in `folds` folds of near-equal size: tasks grouped by header (the suite has tasks
    with identical headers: one exercise, which must not be in two folds), groups dealt in a
    seeded order to the fold with the fewest tasks so far. Each fold sorted."""
    if folds < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, got {folds}")
    groups: dict[str, list[str]] = {}
    for p in problems:
        groups.setdefault(p.header, []).append(p.task_id)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    parts: list[list[str]] = [[] for _ in range(folds)]
    for header in order:
        min(parts, key=len).extend(groups[header])
    return [sorted(p) for p in parts]


def _synthesize(writer: str, tasks_path: str, t_path: str, n: int, seed: int) -> Any:
    from execrl.testgen.synthesize import SynthesisConfig, run

    cfg = SynthesisConfig(model=writer, benchmark="builtin", data=tasks_path, n=n, temperature=0.8,
                          max_new_tokens=128, batch_size=64, seed=seed)  # fmt: skip
    return run(cfg, t_path, generator=FastSampler(writer))


def _validate(
    tasks_path: str,
    t_path: str,
    out_dir: str,
    solutions: str | None,
    workers: int | None,
    min_tests: int,
    adequacy: bool,
) -> dict[str, Any]:
    from execrl.eval.evaluate import write_jsonl_atomic
    from execrl.testgen.validate import validate

    v_path = os.path.join(out_dir, "V.jsonl")
    v = validate("builtin", t_path, data=tasks_path, solutions=solutions, workers=workers, min_tests=min_tests,
                 adequacy=adequacy)  # fmt: skip
    write_jsonl_atomic(v_path, v.out_rows())
    return {**v.quality, "tests_path": v_path}
