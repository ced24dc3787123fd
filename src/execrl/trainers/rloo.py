"""RLOO (Ahmadian et al. 2024, "Back to Basics"): REINFORCE with a leave-one-out baseline.

Each of a prompt's `k` samples is baselined by the mean reward of the other `k - 1`:
A_i = r_i - mean_{j != i} r_j. This is unbiased (the baseline does not depend on the sample) and
needs no critic. No std scaling. Samples without a reward (`sandbox_error`) are neither baselined
nor part of the others' baselines; a group left with one valid sample contributes nothing. As in
GRPO, dense per-token rewards are added to every token's advantage, and the KL is a loss term
unless `kl_in_reward`. The loss is PPO's clipped surrogate, which for one epoch and one minibatch
is REINFORCE.
"""

from __future__ import annotations

import torch

from execrl.trainers.advantages import kl_per_token, rloo_advantages
from execrl.trainers.rl_config import RLConfig
from execrl.trainers.rollout import Batch

__all__ = ["advantages"]

USES_VALUES = False


def advantages(batch: Batch, cfg: RLConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, T) advantages; no returns (no critic)."""
    mask = batch.mask.to(torch.float32)
    seq = rloo_advantages(batch.scores, batch.group_size, batch.valid)
    adv = seq[:, None] * mask + batch.token_rewards * mask
    if cfg.kl_coef and cfg.kl_reward and batch.ref_logp is not None and batch.old_logp is not None:
        adv = adv - cfg.kl_coef * kl_per_token(batch.old_logp, batch.ref_logp, cfg.kl_estimator) * mask
    return adv, None
