"""`execrl filtration collect`: a scores file for `execrl filtration analyze`, from a policy.

    execrl filtration collect --model POLICY --rm RM --benchmark builtin --split validation --n 5 --out s.jsonl
    execrl filtration analyze --scores s.jsonl

For each task: `n` samples from the policy (the trainer's sampler, `trainers/rollout.py`, seeded:
the same arguments give the same file), each executed against the task's tests and scored by the
reward model. One row per sample, grouped by task in task order:
`{"prompt_id", "reward", "score", "passed", "status", "completion"}` — `reward` the RM's score of
prompt + completion (what filtration ranks by), `score` the share of tests passed (the actual
quality R² compares it with). A sample whose execution ended in `sandbox_error` has no score and
is left out (counted in the summary). The file is written atomically after everything ran; every
input is checked before the models are loaded.

`sample_programs` (sampling only) is shared with bench/pfppo.py and the PF-PPO demo, which sample
the SFT policy to build the reward model's pairs.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from execrl.data.jsonl import DataError
from execrl.types import Limits, Status

__all__ = ["collect", "sample_programs"]


def sample_programs(
    lm: Any,
    tokenizer: Any,
    bench: Any,
    problems: dict[str, Any],
    task_ids: list[str],
    *,
    n: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    seed: int = 0,
    chat: bool = False,
    batch_size: int = 256,
    progress: bool = False,
) -> tuple[list[str], list[str]]:
    """(task id per sample, the model's text per sample): `n` samples per task, tasks in order."""
    import torch

    from execrl.eval.policy import _bar
    from execrl.generation.hf import encode_prompt
    from execrl.trainers.rollout import SampleParams, sample

    rows = [t for t in task_ids for _ in range(n)]
    prompts = {t: encode_prompt(tokenizer, bench.prompt(problems[t], chat=chat)) for t in task_ids}
    params = SampleParams(temperature, top_p, max_new_tokens, () if chat else tuple(bench.STOP))
    g = torch.Generator().manual_seed(seed)
    with _bar("sample" if progress else "", "generated", len(rows)) as bar:
        r = sample(lm, tokenizer, [prompts[t] for t in rows], params, g, batch_size=batch_size,
                   progress=bar and bar.update)  # fmt: skip
    return rows, r.texts


def collect(
    model: str,
    rm: str,
    benchmark: str,
    out: str,
    *,
    data: str | None = None,
    n: int = 5,
    split: str | None = None,
    limit: int | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    seed: int = 0,
    timeout: float = 3.0,
    workers: int | None = None,
    chat: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Write `out`; returns a summary: samples, tasks, rows written, sandbox errors, pass rate,
    mean reward."""
    import torch
    from transformers import AutoModelForCausalLM

    from execrl.data import get_benchmark
    from execrl.eval.evaluate import write_jsonl_atomic
    from execrl.rewards.execution import ExecutionReward
    from execrl.rewards.model import RewardModel, prompt_text
    from execrl.trainers.rl_tasks import tasks
    from execrl.trainers.sft import _load_tokenizer

    if n < 1:
        raise DataError(f"--n must be at least 1, got {n}")
    if limit is not None and limit < 1:
        raise DataError(f"--limit must be at least 1, got {limit}")
    if not temperature > 0:
        raise DataError(
            f"--temperature must be positive (filtration ranks sampled responses), got {temperature}"
        )
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise DataError(f"{out}: the output directory does not exist")
    bench = get_benchmark(benchmark)
    problems = bench.load(data)
    ids = tasks(bench, problems, split, "split")[:limit]
    tokenizer = _load_tokenizer(model)
    reward_model = RewardModel(rm)
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    rows, texts = sample_programs(lm, tokenizer, bench, problems, ids, n=n, temperature=temperature, top_p=top_p,
                                  max_new_tokens=max_new_tokens, seed=seed, chat=chat, progress=progress)  # fmt: skip
    del lm
    execution = ExecutionReward(benchmark, problems=problems, kind="pass_ratio", limits=Limits(timeout=timeout),
                                chat=chat, workers=workers)  # fmt: skip
    try:
        scored = execution.score(rows, texts)
    finally:
        execution.close()
    prompts = {t: prompt_text(reward_model.tokenizer, bench.prompt(problems[t], chat=chat)) for t in ids}
    rewards = reward_model.scores([prompts[t] for t in rows], texts)
    out_rows = [
        {"prompt_id": t, "reward": r, "score": s.result.pass_ratio, "passed": s.result.passed,
         "status": s.result.status.value, "completion": text}
        for t, text, r, s in zip(rows, texts, rewards, scored)
        if s.result.status is not Status.SANDBOX_ERROR
    ]  # fmt: skip
    if not out_rows:
        raise DataError("every sample ended in a sandbox error: nothing to write")
    write_jsonl_atomic(out, out_rows)
    statuses = Counter(s.result.status.value for s in scored)
    return {
        "samples": len(rows),
        "tasks": len(ids),
        "rows": len(out_rows),
        "sandbox_errors": statuses.get(Status.SANDBOX_ERROR.value, 0),
        "pass_rate": sum(s.result.passed for s in scored) / len(scored),
        "reward_mean": sum(rewards) / len(rewards),
        "out": out,
    }
