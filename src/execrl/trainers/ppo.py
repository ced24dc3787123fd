"""PPO (Schulman et al. 2017) for language models, as in Ouyang et al. 2022 and RLTF.

The critic is a value head on the policy: one linear layer from the policy's last hidden state to
a scalar per token (`ValueHead`), trained with the policy through a shared trunk and weighted by
`vf_coef`. We chose it over a separate critic model because on a CPU a second model doubles the
cost of every forward and backward pass; the price is that value gradients also move the policy's
features, which `vf_coef` (0.1) keeps small. The head starts at zero (V = 0), and is saved next to
the policy as `value_head.safetensors`.

Rewards per token: the execution reward on the last token of the completion, plus dense rewards
(`Batch.token_rewards`), minus `kl_coef * KL(policy || reference)` on every token when the KL is in
the reward (PPO's default). Advantages: GAE(gamma, lambda) against the values recorded at
sampling time, whitened over the batch's valid tokens (`whiten_advantages`); returns = A + V.
Loss: clipped surrogate + `vf_coef` * clipped value loss, over `epochs` passes of `minibatches`
minibatches. Samples without a reward (`sandbox_error`) are masked out of both, and so are samples
that policy filtration (PF-PPO, trainers/selection.py) does not keep: weight 0 in the loss, left out
of the advantages' whitening.
"""

from __future__ import annotations

import torch
from torch import nn

from execrl.trainers.advantages import gae, kl_per_token, masked_whiten, terminal_rewards
from execrl.trainers.rl_config import RLConfig
from execrl.trainers.rollout import Batch

__all__ = ["ValueHead", "advantages"]

USES_VALUES = True


class ValueHead(nn.Module):
    """hidden state (..., H) -> value (...). Zero-initialised: every value starts at 0."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden.to(self.proj.weight.dtype)).squeeze(-1)


def token_rewards(batch: Batch, cfg: RLConfig) -> torch.Tensor:
    """(B, T) per-token rewards: terminal execution reward + dense rewards - KL penalty."""
    mask = batch.mask.to(torch.float32)
    rewards = terminal_rewards(batch.scores * batch.valid, batch.mask) + batch.token_rewards * mask
    if cfg.kl_coef and cfg.kl_reward and batch.ref_logp is not None and batch.old_logp is not None:
        rewards = (
            rewards - cfg.kl_coef * kl_per_token(batch.old_logp, batch.ref_logp, cfg.kl_estimator) * mask
        )
    return rewards


def advantages(batch: Batch, cfg: RLConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, T) advantages and returns."""
    assert batch.old_values is not None, "PPO needs the values recorded at sampling time"
    mask = batch.mask.to(torch.float32) * batch.valid[:, None]
    adv, returns = gae(token_rewards(batch, cfg), batch.old_values, mask, cfg.gamma, cfg.lam)
    if cfg.whiten_advantages:  # over the samples the update trains on (filtration: the kept ones)
        adv = masked_whiten(adv, mask * (batch.weights > 0)[:, None])
    return adv, returns
