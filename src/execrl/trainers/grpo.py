"""GRPO (Shao et al. 2024, DeepSeekMath): group-relative advantages, no critic.

Each prompt's `G` samples form a group. A sample's advantage is its reward minus the mean reward of
its group, divided by the group's std (`scale_rewards`; Dr. GRPO, Liu et al. 2025, drops the
division because it up-weights prompts that are almost always or almost never solved, and also
drops the per-sequence length mean: `loss_agg=seq-mean-token-sum-norm`). The advantage is the same
for every token of a sample, plus any dense per-token rewards (`Batch.token_rewards`, e.g. RLTF's
line penalties), which are added unnormalized. Samples without a reward (`sandbox_error`) are left
out of their group's mean and std and get no advantage.

The KL to the reference is, by default, a loss term `kl_coef * k3` (as GRPO); with `kl_in_reward`
it is subtracted from each token's advantage instead. The loss itself is PPO's clipped surrogate
(`losses.policy_loss`), which with one epoch and one minibatch is the plain policy gradient.
"""

from __future__ import annotations

import torch

from execrl.trainers.advantages import group_advantages, kl_per_token
from execrl.trainers.rl_config import RLConfig
from execrl.trainers.rollout import Batch

__all__ = ["advantages"]

USES_VALUES = False


def advantages(batch: Batch, cfg: RLConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, T) advantages; no returns (no critic)."""
    mask = batch.mask.to(torch.float32)
    seq = group_advantages(batch.scores, batch.group_size, batch.valid, scale=cfg.scale_rewards)
    adv = seq[:, None] * mask + batch.token_rewards * mask
    if cfg.kl_coef and cfg.kl_reward and batch.ref_logp is not None and batch.old_logp is not None:
        adv = adv - cfg.kl_coef * kl_per_token(batch.old_logp, batch.ref_logp, cfg.kl_estimator) * mask
    return adv, None
