"""What one round of `execrl prefer` trains on (trainers/prefer.py runs the rounds).

`build_round` takes the round's prompts (a pure function of (seed, round)), samples the policy's
programs (rollout.py `sample`) or takes another model's (off-policy), labels them in the sandbox
(preference_data.py `label` with the valid tests, or the benchmark's own tests), forms DPO/IPO
pairs or KTO examples with KTO's mismatched KL pairs, and records the reference's summed
log-probabilities of every sequence once: a `RoundData`, which the trainer saves as round-R.pt so
that a resumed round trains on exactly the same data. `read_valid_tests` and `read_samples` read
the inputs (a `DataError` at file:line for a row that does not fit).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch

from execrl.data import DataError
from execrl.data.jsonl import read_rows
from execrl.rewards.execution import ExecutionReward
from execrl.testgen.validate import read_tests
from execrl.trainers.prefer_config import PreferConfig
from execrl.trainers.preference_data import Sample, dpo_pairs, kto_examples, label
from execrl.trainers.preference_losses import kl_pairs, kto_balanced_weight
from execrl.trainers.rl import Policy
from execrl.trainers.rl_tasks import seed_of, step_prompts
from execrl.trainers.rollout import Rollout, SampleParams, micro_batches, sample, score, trim
from execrl.types import IOCase, Limits

__all__ = ["RoundData", "batch_order", "build_round", "read_samples", "read_valid_tests", "sequence_logps"]


@dataclass
class RoundData:
    """What a round trains on, fixed when it starts. `seqs` holds every sequence a loss scores:
    the labelled programs, then (KTO) the mismatched prompt/completion pairs of the KL estimate.
    `batches[b]` lists items: (chosen row, rejected row) for DPO/IPO, (row, desirable, kl row) for
    KTO, rows indexing `seqs` and `ref_logp` (N,)."""

    round: int
    seqs: Rollout
    batches: list[list[tuple[int, ...]]]
    ref_logp: torch.Tensor
    stats: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Inputs: validated tests, off-policy samples. Checked before `out` is touched.


def read_valid_tests(path: str, problems: dict[str, Any]) -> dict[str, list[str | IOCase]]:
    """The tests that `execrl tests validate` marked valid, by task_id; rows without a boolean
    `valid` (not its output) or naming a task the benchmark lacks are a `DataError` at file:line."""
    valid: dict[str, list[str | IOCase]] = defaultdict(list)
    for row in read_tests(path):
        flag = row.data.get("valid")
        if not isinstance(flag, bool):
            raise DataError(f'{path}:{row.line}: no boolean "valid": is this `execrl tests validate` output?')
        if row.task_id not in problems:
            raise DataError(f"{path}:{row.line}: task_id {row.task_id!r} is not in the benchmark data")
        if flag:
            valid[row.task_id].append(row.test)
    return dict(valid)


def read_samples(path: str, problems: dict[str, Any]) -> dict[str, list[str]]:
    """Off-policy programs by task_id, in file order (`{"task_id", "completion"}` rows)."""
    out: dict[str, list[str]] = defaultdict(list)
    for row in read_rows(path):
        task_id = row.ident("task_id")
        if task_id not in problems:
            raise row.error(f"task_id {task_id!r} is not in the benchmark data")
        out[task_id].append(row.text("completion"))
    if not out:
        raise DataError(f"{path}: no samples (the file is empty)")
    return dict(out)


# ---------------------------------------------------------------------------------------------
# Pure helpers.


def batch_order(n_batches: int, epochs: int, seed: int, round_: int) -> list[int]:
    """The batch index of each optimizer step of a round: every batch once per epoch, a seeded
    shuffle per epoch (a pure function, so a resumed round takes the same steps)."""
    order: list[int] = []
    for epoch in range(epochs):
        perm = list(range(n_batches))
        random.Random(seed_of(seed, "batch-order", round_, epoch)).shuffle(perm)
        order += perm
    return order


def _unpadded(r: Rollout, b: int) -> tuple[list[int], list[int]]:
    prompt = r.prompt_ids[b][r.prompt_mask[b].bool()].tolist()
    return prompt, r.completion_ids[b][: int(r.completion_mask[b].sum())].tolist()


def sequence_logps(model: Any, r: Rollout, size: int, grad: bool = False) -> torch.Tensor:
    """Summed log-probabilities of each row's completion under `model` (a bare LM or a Policy), (B,)."""
    out = torch.zeros(len(r))
    with contextlib.nullcontext() if grad else torch.no_grad():
        for rows in micro_batches(r, list(range(len(r))), size):
            sub = trim(r.select(rows))
            lp = policy_logp(model, sub)
            out[torch.tensor(rows)] = (lp * sub.completion_mask.to(lp.device)).sum(-1).float().cpu()
    return out


def policy_logp(model: Any, sub: Rollout) -> torch.Tensor:
    if isinstance(model, Policy) or isinstance(getattr(model, "module", None), Policy):
        return model(sub)[0]
    return score(model, sub)[0]


# ---------------------------------------------------------------------------------------------
# A round's data.


def build_round(
    cfg: PreferConfig,
    r: int,
    lm: Any,
    ref_model: Any,
    tokenizer: Any,
    bench: Any,
    problems: dict[str, Any],
    train_ids: list[str],
    prompts: dict[str, list[int]],
    valid_tests: dict[str, list[str | IOCase]] | None,
    offline: dict[str, list[str]] | None,
    reward: ExecutionReward,
    limits: Limits,
) -> RoundData:
    seconds: dict[str, float] = {}
    per_round = cfg.prompts_per_round or len(train_ids)
    chosen_tasks = [train_ids[i] for i in step_prompts(len(train_ids), per_round, cfg.seed, r)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    t0 = time.perf_counter()
    if offline is not None:
        task_rows = [t for t in chosen_tasks for _ in offline[t][: cfg.samples_per_prompt]]
        completions = [c for t in chosen_tasks for c in offline[t][: cfg.samples_per_prompt]]
        ids = [
            tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            for c in completions
        ]
        rollout = Rollout.from_ids([prompts[t] for t in task_rows], ids, pad, completions)
    else:
        task_rows = [t for t in chosen_tasks for _ in range(cfg.samples_per_prompt)]
        params = SampleParams(
            cfg.temperature, cfg.top_p, cfg.max_new_tokens, () if cfg.chat else tuple(bench.STOP)
        )
        g = torch.Generator().manual_seed(seed_of(cfg.seed, "sample", r))
        rollout = sample(lm, tokenizer, [prompts[t] for t in task_rows], params, g)
        completions = [
            bench.completion_from_output(problems[t], text, chat=cfg.chat)
            for t, text in zip(task_rows, rollout.texts)
        ]
    seconds["sampling"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    samples = [Sample(t, c) for t, c in zip(task_rows, completions)]
    labels: list[bool | None]
    if valid_tests is None:  # the benchmark's own tests
        labels = [
            s.result.passed if s.reward is not None else None for s in reward.score(task_rows, completions)
        ]
    else:
        labels = label(bench.NAME, problems, samples, valid_tests, reward.executor, limits)
    seconds["labelling"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    desirable_weight = cfg.desirable_weight  # KTO with kto_balance: raised below for this round
    if cfg.algo == "kto":
        examples = kto_examples(samples, labels)
        random.Random(seed_of(cfg.seed, "batches", r)).shuffle(examples)
        used = [i for i, _ in examples]
        seq_ids = [_unpadded(rollout, i) for i in used]
        row = {i: k for k, i in enumerate(used)}
        batches: list[list[tuple[int, ...]]] = []
        for start in range(0, len(examples), cfg.batch_size):
            chunk = examples[start : start + cfg.batch_size]
            items: list[tuple[int, ...]] = []
            for j, (i, desirable) in enumerate(chunk):
                other = chunk[kl_pairs(len(chunk))[j]][0]  # prompt of i, completion of i - 1
                seq_ids.append((seq_ids[row[i]][0], seq_ids[row[other]][1]))
                items.append((row[i], int(desirable), len(seq_ids) - 1))
            batches.append(items)
        n_items, n_pairs = len(examples), 0
        n_desirable = sum(d for _, d in examples)
        if cfg.kto_balance:
            desirable_weight = kto_balanced_weight(n_desirable, n_items - n_desirable, cfg.desirable_weight,
                                                   cfg.undesirable_weight)  # fmt: skip
    else:
        pairs = dpo_pairs(
            samples, labels, max_pairs=cfg.max_pairs_per_prompt, seed=seed_of(cfg.seed, "pairs", r)
        )
        random.Random(seed_of(cfg.seed, "batches", r)).shuffle(pairs)
        used = sorted({i for p in pairs for i in p})
        row = {i: k for k, i in enumerate(used)}
        seq_ids = [_unpadded(rollout, i) for i in used]
        items = [(row[c], row[j]) for c, j in pairs]
        batches = [items[s : s + cfg.batch_size] for s in range(0, len(items), cfg.batch_size)]
        n_items = n_pairs = len(pairs)
    texts = [completions[i] for i in used] + [""] * (len(seq_ids) - len(used))
    if seq_ids:
        seqs = Rollout.from_ids([p for p, _ in seq_ids], [c for _, c in seq_ids], pad, texts)
        if ref_model is None:  # LoRA with reference "start": the base model, adapters off
            with lm.disable_adapter():
                ref_logp = sequence_logps(lm, seqs, cfg.micro_batch_size)
        else:
            ref_logp = sequence_logps(ref_model, seqs, cfg.micro_batch_size)
    else:  # the round trains on nothing: a placeholder
        seqs, ref_logp = Rollout.from_ids([[pad]], [[pad]], pad), torch.zeros(1)
    seconds["reference"] = time.perf_counter() - t0

    labelled = [x for x in labels if x is not None]
    kinds: dict[str, set[bool]] = defaultdict(set)
    for t, ok in zip(task_rows, labels):
        if ok is not None:
            kinds[t].add(ok)
    stats = {
        "round": r + 1,
        "prompts": len(chosen_tasks),
        "programs": len(samples),
        "labelled": len(labelled),
        "chosen": sum(labelled),
        "rejected": len(labelled) - sum(labelled),
        "pass_rate": sum(labelled) / max(1, len(labelled)),
        "pairs": n_pairs,
        "examples": n_items,
        "desirable_weight": desirable_weight,
        "prompts_with_both": sum(len(k) == 2 for k in kinds.values()),
        "batches": len(batches),
        **{f"seconds/{k}": v for k, v in seconds.items()},
    }
    return RoundData(r, seqs, batches, ref_logp, stats)
