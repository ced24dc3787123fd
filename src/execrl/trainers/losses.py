"""Training losses as pure functions of tensors; the trainers own the loops.

`sft_loss` is the supervised fine-tuning objective: next-token cross-entropy averaged over response
tokens only (the prompt is context, not a target).

The RL objectives work on completion tokens, shape (B, T), with a `mask` of the real tokens:
- `token_logprobs`, `entropy`: per-token log-probabilities of the sampled tokens and entropies.
- `policy_loss`: PPO's clipped surrogate (asymmetric clip range allowed, "clip-higher"), shared by
  PPO, GRPO and RLOO; `value_loss`: PPO's clipped value regression.
- `aggregate`: how per-token losses become one number (`LOSS_AGG`):
  `token-mean` (every token of the batch weighs the same; DAPO), `seq-mean-token-mean` (each
  sequence weighs the same; GRPO's paper) and `seq-mean-token-sum-norm` (token sums divided by a
  constant, the maximum length: Dr. GRPO, no length bias).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LOSS_AGG", "aggregate", "entropy", "policy_loss", "sft_loss", "token_logprobs", "value_loss"]

LOSS_AGG = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def sft_loss(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, normalizer: float | None = None
) -> torch.Tensor:
    """Mean next-token negative log-likelihood of the tokens that `mask` marks.

    logits: (B, T, V), the model's output at each position; labels: (B, T), the input ids;
    mask: (B, T), 1 where the token at that position is a training target (a response token), 0 for
    prompt and padding. Position t predicts token t + 1, so the loss is
    `sum_{b, t < T-1} mask[b, t+1] * -log softmax(logits[b, t])[labels[b, t+1]] / N` with
    `N = sum(mask[:, 1:])`, or `N = normalizer` when given: a trainer that accumulates gradients over
    several micro-batches passes the target count of the whole accumulation group, so the summed
    gradient is exactly the token mean over the group. A mask that marks position 0 has no effect
    (nothing predicts the first token). Returns a scalar in float32; 0 when nothing is marked.
    """
    logits = logits[:, :-1].float()  # (B, T-1, V)
    targets = labels[:, 1:]  # (B, T-1)
    weights = mask[:, 1:].to(logits.dtype)  # (B, T-1)
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    total = (nll * weights.reshape(-1)).sum()
    count = weights.sum() if normalizer is None else torch.tensor(float(normalizer), device=total.device)
    return total / count.clamp(min=1.0)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits[b, t])[tokens[b, t]]: (B, T, V) and (B, T) -> (B, T), in float32.
    `logits[b, t]` must already be the prediction of `tokens[b, t]` (shifted by the caller)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each position's next-token distribution: (B, T, V) -> (B, T), float32."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def aggregate(
    per_token: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean", norm: float | None = None
) -> torch.Tensor:
    """One scalar from per-token losses (B, T) over the marked tokens; see `LOSS_AGG`.

    token-mean: sum / number of marked tokens. seq-mean-token-mean: mean over sequences (with at
    least one marked token) of each sequence's token mean. seq-mean-token-sum-norm: mean over all
    B sequences of token sum / `norm` (default T, the padded length: pass the generation limit so
    the constant does not depend on the batch). For `token-mean`, `norm` replaces the token count:
    a trainer that sums the gradients of several micro-batches passes the whole batch's count."""
    m = mask.to(per_token.dtype)
    if mode == "token-mean":
        denom = m.sum().clamp(min=1.0) if norm is None else torch.tensor(float(norm))
        return (per_token * m).sum() / denom
    if mode == "seq-mean-token-mean":
        count = m.sum(-1)
        seq = (per_token * m).sum(-1) / count.clamp(min=1.0)
        present = (count > 0).to(per_token.dtype)
        return (seq * present).sum() / present.sum().clamp(min=1.0)
    if mode == "seq-mean-token-sum-norm":
        seq = (per_token * m).sum(-1) / float(norm if norm is not None else per_token.shape[-1])
        return seq.mean()
    raise ValueError(f"loss aggregation must be one of {', '.join(LOSS_AGG)}, got {mode!r}")


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    mode: str = "token-mean",
    norm: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate, to minimise: per token `-min(r A, clip(r, 1 - clip_low,
    1 + clip_high) A)` with `r = exp(logp - old_logp)`, aggregated by `mode` (see `aggregate`).

    `clip_high` defaults to `clip_low` (symmetric). Returns the loss and detached statistics over
    the marked tokens: `clip_frac` (share where the clipped term is the smaller one, so the token
    gives no gradient) and `approx_kl` (k3 estimate of KL(old || new))."""
    high = clip_low if clip_high is None else clip_high
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + high) * advantages
    per_token = -torch.minimum(unclipped, clipped)
    loss = aggregate(per_token, mask, mode, norm)
    with torch.no_grad():
        m = mask.to(per_token.dtype)
        n = m.sum().clamp(min=1.0)
        stats = {
            "clip_frac": ((clipped < unclipped).to(m.dtype) * m).sum() / n,
            "approx_kl": ((ratio - 1.0 - log_ratio) * m).sum() / n,
        }
    return loss, stats


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float | None = 0.2,
    norm: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's value loss: per token `0.5 * max((V - R)^2, (clip(V, V_old - c, V_old + c) - R)^2)`,
    token-mean over the marked tokens (`norm` replaces the count). `clip=None` or 0 is the plain
    squared error. Returns the loss and `value_clip_frac` (share where the clipped error is larger)."""
    err = (values - returns) ** 2
    if clip:
        clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
        err_clipped = (clipped_values - returns) ** 2
        per_token = 0.5 * torch.maximum(err, err_clipped)
    else:
        err_clipped = err
        per_token = 0.5 * err
    loss = aggregate(per_token, mask, "token-mean", norm)
    with torch.no_grad():
        m = mask.to(per_token.dtype)
        frac = ((err_clipped > err).to(m.dtype) * m).sum() / m.sum().clamp(min=1.0)
    return loss, {"value_clip_frac": frac}
