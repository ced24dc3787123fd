"""Preference pairs for `execrl rm train` (trainers/reward_model.py): explicit, by execution, or
by an LLM judge's scores.

- explicit: JSONL rows `{"prompt", "chosen", "rejected"}`;
- execution (`execution_pairs`): samples `{"task_id", "completion"}` and their result rows from
  `execrl evaluate --out` or `execrl bench` (results.jsonl, in the samples' order), paired within
  a task by outcome: a program that passed beats one that failed, and among failing programs a
  higher share of tests passed beats a lower one (`(passed, tests_passed / tests_total)` compared
  as a tuple). Equal outcomes give no pair; a completion that appears again for the same task
  counts once (its first row); a `sandbox_error` row has no outcome and takes no part. Of a task's
  pairs at most `pairs_per_prompt` are kept, drawn by a shuffle seeded by (seed, task).

- judge (`judge_pairs`, RLAIF): samples and the rows `execrl judge --out` wrote for them (in the
  samples' order), paired within a task by score: a program whose judge score exceeds another's
  by at least `score_gap` is chosen over it; closer scores give no pair (the judge's noise is not
  learnt as a preference), an all-unanswered row (`unanswered` holds every question) none. The
  same repeat, cap and seed rules as execution pairs. Why pairs and not a regression on the
  score: the reward model, its loss and its report stay those of PF-PPO, its output's scale does
  not matter to PPO (rewards are normalised), and the gap keeps near-ties out.

PLUM's `preference_data.dpo_pairs` is the binary special case (passes every test vs fails one),
over model-written tests; here the benchmark's own results rank failures too.

`split_pairs` holds out whole prompts, so held-out accuracy is on prompts the model never saw.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from execrl.data.jsonl import DataError, read_rows

__all__ = ["Outcome", "Pair", "execution_pairs", "judge_pairs", "load_pairs", "split_pairs"]


@dataclass(frozen=True)
class Pair:
    """One preference: `group` identifies the prompt (a task id, or the prompt text) for the
    held-out split; `line` is where the pair came from (explicit pairs) or the chosen sample's line."""

    prompt: str
    chosen: str
    rejected: str
    group: str
    line: int


Outcome = tuple[bool, float]  # (passed, share of tests passed): compared as a tuple


def execution_pairs(
    samples: Sequence[tuple[str, str]], outcomes: Sequence[Outcome | None], cap: int, seed: int
) -> list[tuple[str, int, int]]:
    """(task_id, chosen index, rejected index) into `samples` (task_id, completion) for every pair
    of the same task with different outcomes, the better one chosen; a repeated completion counts
    once (its first row), a None outcome (sandbox_error) never; at most `cap` pairs per task (0:
    all), drawn by `random.Random(f"{seed}:{task_id}")`. Tasks in order of first appearance."""
    return _ranked_pairs(samples, outcomes, lambda a, b: a > b, cap, seed)


def judge_pairs(
    samples: Sequence[tuple[str, str]], scores: Sequence[float | None], gap: float, cap: int, seed: int
) -> list[tuple[str, int, int]]:
    """As `execution_pairs`, ranking by judge score: chosen when its score is at least `gap`
    above the other's (a None score takes no part)."""
    return _ranked_pairs(samples, scores, lambda a, b: a - b >= gap, cap, seed)


def _ranked_pairs(
    samples: Sequence[tuple[str, str]], keys: Sequence[Any], better: Any, cap: int, seed: int
) -> list[tuple[str, int, int]]:
    by_task: dict[str, list[int]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for i, ((task, completion), key) in enumerate(zip(samples, keys)):
        if key is None or (task, completion) in seen:
            continue
        seen.add((task, completion))
        by_task[task].append(i)
    out: list[tuple[str, int, int]] = []
    for task, rows in by_task.items():
        pairs = []
        for a_pos, a in enumerate(rows):
            for b in rows[a_pos + 1 :]:
                if better(keys[a], keys[b]):
                    pairs.append((task, a, b))
                elif better(keys[b], keys[a]):
                    pairs.append((task, b, a))
        if cap and len(pairs) > cap:
            random.Random(f"{seed}:{task}").shuffle(pairs)
            pairs = pairs[:cap]
        out += pairs
    return out


def _judge_score(row: Any) -> float | None:
    unanswered = row.get("unanswered", list, default=[])
    p_yes = row.get("p_yes", dict, default={})
    if p_yes and len(unanswered) == len(p_yes):
        return None
    return float(row.get("score", (int, float)))


def _outcome(row: Any) -> Outcome | None:
    status = row.text("status")
    if status == "sandbox_error":
        return None
    passed = row.get("passed", bool)
    total = row.get("tests_total", int)
    done = row.get("tests_passed", int)
    return passed, done / total if total else 0.0


def load_pairs(
    tokenizer: Any,
    *,
    pairs: str | None = None,
    samples: str | None = None,
    results: str | None = None,
    judgements: str | None = None,
    score_gap: float = 1.0,
    benchmark: str = "builtin",
    data: str | None = None,
    chat: bool = False,
    pairs_per_prompt: int = 8,
    seed: int = 0,
) -> list[Pair]:
    """Every pair of the source given (`pairs`, or `samples` with `results` or with `judgements`);
    `DataError` naming file:line for a bad row. `tokenizer` renders chat prompts."""
    from execrl.rewards.model import prompt_text

    if pairs is not None:
        explicit = []
        for row in read_rows(pairs):
            prompt = row.text("prompt", default="")
            chosen, rejected = row.text("chosen"), row.text("rejected")
            explicit.append(Pair(prompt, chosen, rejected, prompt, row.line))
        if not explicit:
            raise DataError(f"{pairs}: no pairs (the file is empty)")
        return explicit
    from execrl.data import get_benchmark, read_samples

    if samples is None or (results is None) == (judgements is None):
        raise DataError("pairs need a pairs file, or a samples file and its results or its judgements")
    labels = results if results is not None else judgements
    assert labels is not None
    bench = get_benchmark(benchmark)
    problems = bench.load(data)
    rows = read_samples(samples)
    result_rows = list(read_rows(labels))
    for s, r in zip(rows, result_rows):
        if r.ident("task_id") != s.task_id:
            raise r.error(f"task_id {r.ident('task_id')!r} but sample {samples}:{s.line} is for "
                          f"{s.task_id!r}: rows must be in the samples' order")  # fmt: skip
        if s.task_id not in problems:
            raise DataError(f"{samples}:{s.line}: task_id {s.task_id!r} is not in the {bench.NAME} data")
    if len(rows) != len(result_rows):
        raise DataError(f"{labels}: {len(result_rows)} rows for {len(rows)} samples in {samples}")
    if not rows:
        raise DataError(f"{samples}: no samples")
    keyed = [(s.task_id, s.completion) for s in rows]
    if judgements is not None:
        scores = [_judge_score(r) for r in result_rows]
        picked = judge_pairs(keyed, scores, score_gap, pairs_per_prompt, seed)
    else:
        picked = execution_pairs(keyed, [_outcome(r) for r in result_rows], pairs_per_prompt, seed)
    prompts: dict[str, str] = {}
    out = []
    for task, a, b in picked:
        if task not in prompts:
            prompts[task] = prompt_text(tokenizer, bench.prompt(problems[task], chat=chat))
        out.append(Pair(prompts[task], rows[a].completion, rows[b].completion, task, rows[a].line))
    if not out:
        why = f"judge scores {score_gap:g} apart" if judgements is not None else "different outcomes"
        raise DataError(f"{samples}: no pairs: no task has two samples with {why}")
    return out


def split_pairs(pairs: Sequence[Pair], eval_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held out): the pairs of a seeded `eval_fraction` of the prompts are held out."""
    groups = list(dict.fromkeys(p.group for p in pairs))
    n_out = min(len(groups) - 1, math.ceil(eval_fraction * len(groups))) if eval_fraction > 0 else 0
    random.Random(seed).shuffle(groups)
    held = set(groups[:n_out])
    return [p for p in pairs if p.group not in held], [p for p in pairs if p.group in held]
