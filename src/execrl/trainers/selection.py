"""The selection stage of an RL step: policy filtration (PF-PPO) as per-sample loss weights.

PF-PPO (Shen & Zhang 2024) samples N responses per prompt and runs PPO on the ones a strategy keeps
(`execrl.filtration.strategies`: none, bon, br, bw, top, top-random, top-bottom, pow-k). Here the
strategy's weights become `Batch.weights`, the per-sample loss weights that `rl._update` multiplies
into the token mask: a sample of weight 0 contributes nothing to the policy loss, the value loss,
the entropy or the KL term, and PPO whitens its advantages over the kept samples only (ppo.py).

Scale: a group of n samples with a reward gets weights n·w, so `none` gives every such sample 1
— exactly the weights without filtration — and each prompt's kept samples carry the same total
weight as before. Samples without a reward (`sandbox_error`) are left out of the ranking and keep
weight 0; n counts the others.

Deviations from the paper: samples are ranked by the execution reward (no reward model yet); BR's
random sample is its expectation (1/(2(N−1)) each) rather than one draw, which has the same mean
gradient and less variance; GRPO and RLOO accept a filtration too, with their group baselines
still computed over every sample with a reward.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from fractions import Fraction

import torch

from execrl.filtration import r2, strategies

__all__ = ["kept_r2", "select"]


def select(
    scores: torch.Tensor,
    valid: torch.Tensor,
    group_size: int,
    strategy: str = "none",
    *,
    threshold: float | None = None,
    low_threshold: float | None = None,
    k: float | None = None,
    rng: random.Random | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """(B,) loss weights for `scores` (B,) in groups of `group_size` consecutive rows, and stats:
    `filtration/kept_fraction` (samples of weight > 0 over all B), `filtration/kept_reward` (the
    weighted mean reward of the kept samples), `filtration/weight_max`."""
    B = scores.shape[0]
    weights = torch.zeros(B, dtype=torch.float32)
    for start in range(0, B, group_size):
        rows = [b for b in range(start, min(B, start + group_size)) if valid[b] > 0]
        if not rows:
            continue
        ws = strategies.weights(strategy, [float(scores[b]) for b in rows],
                                threshold=threshold, low_threshold=low_threshold, k=k, rng=rng)  # fmt: skip
        for b, w in zip(rows, ws):
            weights[b] = float(w * len(rows))
    total = float(weights.sum())
    stats = {
        "filtration/kept_fraction": float((weights > 0).float().mean()) if B else 0.0,
        "filtration/kept_reward": float((weights * scores.float()).sum()) / total if total else 0.0,
        "filtration/weight_max": float(weights.max()) if B else 0.0,
    }
    return weights, stats


def kept_r2(
    scores: torch.Tensor,
    valid: torch.Tensor,
    weights: torch.Tensor,
    group_size: int,
    actual: Sequence[float],
    bins: int = 10,
) -> dict[str, float]:
    """`filtration/kept_r2`: R² between the training reward (`scores`) and the actual score
    (`actual`, e.g. the tests' pass ratio) over the samples that `select`'s `weights` keep, by
    `execrl filtration analyze`'s definition (filtration/r2.py) with each prompt's weights scaled
    back to sum to 1, as its step 1 gives them. Empty where R² is undefined (fewer than two bins,
    or every bin with the same mean score)."""
    B = scores.shape[0]
    w: list[Fraction] = [Fraction(0)] * B
    for start in range(0, B, group_size):
        rows = [b for b in range(start, min(B, start + group_size)) if valid[b] > 0]
        for b in rows:
            w[b] = Fraction(float(weights[b])) / len(rows)
    points = r2.bin_points([float(x) for x in scores], [float(x) for x in actual], w, bins)
    value = r2.fit_line(points)[0]  # None with no point (nothing kept) or one
    return {} if value is None else {"filtration/kept_r2": value}
