"""Rewards → advantages, as pure functions of tensors (no models, no state).

Shapes: `B` samples, `T` completion tokens. Token-level tensors are `(B, T)` with a `mask` of 1 on
the completion's real tokens (0 on padding after it); sequence-level ones are `(B,)`. A group is
the `G` consecutive samples of one prompt, so `B = prompts * G` and sample `b` is in group `b // G`.
`valid` (B,) marks the samples that count: a sample whose execution ended in `sandbox_error` has
no reward, and it neither gets an advantage nor enters its group's statistics.

- `terminal_rewards`: a sequence score placed on the last real token (where PPO's return starts).
- `kl_per_token`: the k1, k2 and k3 estimators of KL(policy || reference) per sampled token.
- `gae`: generalized advantage estimation (Schulman et al. 2016) over the masked tokens.
- `group_advantages`: GRPO's (score - group mean) / group std, std scaling optional.
- `rloo_advantages`: REINFORCE with the leave-one-out baseline (Ahmadian et al. 2024).
- `masked_mean`, `masked_whiten`: statistics over the marked entries only.
"""

from __future__ import annotations

import torch

__all__ = [
    "gae",
    "group_advantages",
    "kl_per_token",
    "masked_mean",
    "masked_whiten",
    "rloo_advantages",
    "terminal_rewards",
]

KL_ESTIMATORS = ("k1", "k2", "k3")


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `x` where `mask` is nonzero (over `dim`, or everything); 0 where nothing is marked."""
    m = mask.to(x.dtype)
    x = torch.where(m != 0, x, torch.zeros_like(x))  # padding may hold anything, even NaN
    if dim is None:
        return (x * m).sum() / m.sum().clamp(min=1.0)
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1.0)


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """`(x - mean) / std` over the marked entries (population std); unmarked entries become 0.
    With `shift_mean=False` the mean is added back (scale only). Fewer than two marked entries:
    `x` is only centred (or returned as is), never divided by a zero std."""
    m = mask.to(x.dtype)
    n = m.sum()
    mean = masked_mean(x, m)
    if n < 2:
        out = x - mean if shift_mean else x
        return out * m
    var = ((x - mean) ** 2 * m).sum() / n
    out = (x - mean) / (var.sqrt() + eps)
    if not shift_mean:
        out = out + mean
    return out * m


def terminal_rewards(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) rewards that are `scores[b]` on the last marked token of row b and 0 elsewhere.
    A row with no marked token gets no reward."""
    mask = mask.to(torch.long)
    length = mask.sum(-1)  # (B,)
    last = (length - 1).clamp(min=0)
    out = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)
    out.scatter_(1, last.unsqueeze(1), scores.unsqueeze(1))
    return out * (length > 0).to(scores.dtype).unsqueeze(1)


def kl_per_token(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) at the sampled tokens (Schulman's k1, k2, k3).

    With `d = ref_logp - logp`: k1 = -d (unbiased, can be negative), k2 = d^2 / 2, k3 = exp(d) - d - 1
    (unbiased and never negative; GRPO's choice)."""
    d = ref_logp - logp
    if kind == "k1":
        return -d
    if kind == "k2":
        return 0.5 * d * d
    if kind == "k3":
        return torch.exp(d) - d - 1.0
    raise ValueError(f"kl estimator must be one of {', '.join(KL_ESTIMATORS)}, got {kind!r}")


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over the marked tokens; returns (advantages, returns), (B, T).

    `values[b, t]` is V(state before token t); the state after the last marked token is terminal
    (value 0). delta_t = r_t + gamma * V_{t+1} - V_t, A_t = delta_t + gamma * lam * A_{t+1},
    returns = A + V. Masked positions are skipped: a marked token's successor is the next marked one
    (completions are contiguous, so this is t + 1), and unmarked entries of the outputs are 0."""
    m = mask.to(values.dtype)
    B, T = values.shape
    advantages = torch.zeros_like(values)
    next_value = torch.zeros(B, dtype=values.dtype, device=values.device)
    next_adv = torch.zeros(B, dtype=values.dtype, device=values.device)
    for t in range(T - 1, -1, -1):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        keep = m[:, t]
        advantages[:, t] = adv * keep
        # unmarked tokens pass the successor's value and advantage through unchanged
        next_value = keep * values[:, t] + (1 - keep) * next_value
        next_adv = keep * adv + (1 - keep) * next_adv
    returns = (advantages + values) * m
    return advantages, returns


def _groups(
    scores: torch.Tensor, valid: torch.Tensor | None, group_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    if group_size < 1 or scores.numel() % group_size:
        raise ValueError(f"{scores.numel()} scores do not split into groups of {group_size}")
    v = torch.ones_like(scores) if valid is None else valid.to(scores.dtype)
    return scores.view(-1, group_size), v.view(-1, group_size)


def group_advantages(
    scores: torch.Tensor,
    group_size: int,
    valid: torch.Tensor | None = None,
    scale: bool = True,
    eps: float = 1e-4,
) -> torch.Tensor:
    """GRPO: (score - mean of its group) / (std of its group + eps), over the group's valid samples.

    `scale=False` drops the division (Dr. GRPO: the std reweights prompts by how easy they are).
    The std is the sample std (Bessel-corrected, as GRPO's reference code). A group whose valid
    samples all scored the same gets 0; invalid samples get 0. Returns (B,)."""
    s, v = _groups(scores, valid, group_size)
    n = v.sum(-1, keepdim=True)
    mean = (s * v).sum(-1, keepdim=True) / n.clamp(min=1.0)
    adv = torch.where(v != 0, s - mean, torch.zeros_like(s))
    if scale:
        var = ((adv**2) * v).sum(-1, keepdim=True) / (n - 1).clamp(min=1.0)
        denom = var.sqrt() + eps
        adv = torch.where(denom > 0, adv / denom.clamp(min=torch.finfo(s.dtype).tiny), torch.zeros_like(adv))
    return adv.view(-1)


def rloo_advantages(scores: torch.Tensor, group_size: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """RLOO: score minus the mean score of the other valid samples of its group. Returns (B,).

    For k valid samples, A_i = s_i - (sum_j s_j - s_i) / (k - 1) = k / (k - 1) * (s_i - mean). A group
    with a single valid sample has no baseline and gets 0, as do invalid samples."""
    s, v = _groups(scores, valid, group_size)
    s = torch.where(v != 0, s, torch.zeros_like(s))
    k = v.sum(-1, keepdim=True)
    total = (s * v).sum(-1, keepdim=True)
    baseline = (total - s) / (k - 1).clamp(min=1.0)
    adv = (s - baseline) * (k > 1).to(s.dtype)
    return (adv * v).view(-1)
