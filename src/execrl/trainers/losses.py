"""Training losses as pure functions of tensors; the trainers own the loops.

`sft_loss` is the supervised fine-tuning objective: next-token cross-entropy averaged over response
tokens only (the prompt is context, not a target).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sft_loss"]


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
