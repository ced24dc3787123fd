"""pass@k of a policy held in memory (a training run's), sampled with the trainer's fast sampler."""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import torch

from execrl.rewards.execution import ExecutionReward
from execrl.trainers.rollout import SampleParams, sample

__all__ = ["evaluate_policy"]


def evaluate_policy(
    lm: Any,
    tokenizer: Any,
    reward: ExecutionReward,
    task_ids: list[str],
    prompts: dict[str, list[int]],
    *,
    n: int = 1,
    temperature: float = 0.0,
    max_new_tokens: int = 256,
    stop: tuple[str, ...] = (),
    seed: int = 0,
    ks: tuple[int, ...] = (1,),
    progress: str = "",
) -> dict[str, Any]:
    """pass@k of `lm` on `task_ids` (greedy when temperature is 0) and the status counts.

    `progress`: a label; when given, two bars on stderr count the samples generated and the
    samples executed out of the total (a held-out evaluation takes minutes on a CPU)."""
    from execrl.eval.passk import pass_at_k

    params = SampleParams(temperature=temperature, max_new_tokens=max_new_tokens, stop=stop)
    g = torch.Generator().manual_seed(seed)
    rows = [t for t in task_ids for _ in range(1 if temperature == 0 else n)]
    with _bar(progress, "generated", len(rows)) as bar:
        r = sample(lm, tokenizer, [prompts[t] for t in rows], params, g, progress=bar and bar.update)
    with _bar(progress, "executed", len(rows)) as bar:
        scored = reward.score(rows, r.texts, progress=bar and (lambda _: bar.update()))
    passed: dict[str, list[bool]] = {}
    for t, s in zip(rows, scored):
        passed.setdefault(t, []).append(s.result.passed)
    if temperature == 0:
        passed = {t: v * n for t, v in passed.items()}
    out: dict[str, Any] = pass_at_k(passed, [k for k in ks if k <= n])
    out["status"] = dict(Counter(s.result.status.value for s in scored))
    return out


@contextlib.contextmanager
def _bar(label: str, what: str, total: int) -> Iterator[Any]:
    """A tqdm bar of `total` samples on stderr, or None when `label` is empty."""
    if not label:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=f"{label}: {what}", unit="sample", file=sys.stderr) as bar:
        yield bar
