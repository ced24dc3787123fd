"""Preference losses (PLUM's objectives) as pure functions of sequence log-probabilities.

Inputs are *summed* log-probabilities of each completion given its prompt, shape (B,), under the
policy and under the frozen reference. Each loss returns per-example losses and the implicit
rewards `beta * (log pi(y|x) - log pi_ref(y|x))` (detached: metrics, not gradients), as
torchtune's `DPOLoss.forward` does; the trainer reduces the losses (mean) and owns the loop.

- `dpo_loss`: DPO (Rafailov et al., 2023, arXiv 2305.18290), the sigmoid loss
  `-log sigmoid(beta * h)` with `h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))`;
  `label_smoothing = eps` is conservative DPO (Mitchell, 2023: the label is flipped with
  probability eps): `-(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)`.
- `ipo_loss`: IPO (Azar et al., 2023, arXiv 2310.12036, eq. 17) `(h - 1 / (2 beta))^2`, with `beta` the
  paper's tau. With `chosen_lengths` / `rejected_lengths` each log-ratio is divided by its
  completion's token count first, as TRL does (its authors' confirmed choice); without them, `h`
  uses the summed log-probabilities as the paper writes it.
- `kto_loss`: KTO (Ethayarajh et al., 2024, arXiv 2402.01306, eq. 7), unpaired: each example is
  desirable or not; `1 - sigmoid(beta (r - z0))` for desirable and `1 - sigmoid(beta (z0 - r))` for
  undesirable ones, with `r = log pi(y|x) - log pi_ref(y|x)` and the reference point `z0 = kto_kl(...)`,
  weighted by `desirable_weight` / `undesirable_weight`.
- `kto_balanced_weight`: the desirable weight that KTO's authors' rule asks for (Ethayarajh et al.
  2024, section 4: `desirable_weight * n_desirable / (undesirable_weight * n_undesirable)` in
  [1, 4/3]): `max(desirable_weight, undesirable_weight * n_undesirable / n_desirable)`, the
  smallest weight that reaches a ratio of 1; unchanged with no desirable example.
- `kto_kl`: the KL estimate as TRL computes it: the batch mean of `log pi(y'|x) - log pi_ref(y'|x)` over
  *mismatched* pairs (prompt i with the completion of example `kl_pairs(B)[i]`, i.e. i - 1,
  cyclically), clamped at 0 and detached. Under data parallelism TRL averages the per-process means
  across processes first; a trainer does that before passing `kl` to `kto_loss`.

Deviations from TRL 1.16 (checked against its source, `trl/trainer/dpo_trainer.py` and
`kto_trainer.py`; TRL is not a dependency: since 1.x its losses are inlined in the trainers'
`_compute_loss`, which needs a model and the `datasets` stack): TRL's `sigmoid` loss ignores
`label_smoothing` (smoothing moved to its `robust`/`aot` losses); ours applies it as TRL's
`sigmoid` did before 1.0. `kto_loss` returns losses in the batch's order, where TRL concatenates
the desirable ones first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["dpo_loss", "ipo_loss", "kl_pairs", "kto_balanced_weight", "kto_kl", "kto_loss"]

Losses = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _rewards(
    beta: float,
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    return beta * (policy_chosen - ref_chosen).detach(), beta * (policy_rejected - ref_rejected).detach()


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    *,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> Losses:
    """DPO's sigmoid loss per pair, shape (B,), and the chosen/rejected implicit rewards (B,)."""
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)  # (B,)
    losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    return (losses, *_rewards(beta, policy_chosen, policy_rejected, ref_chosen, ref_rejected))


def ipo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    *,
    beta: float = 0.1,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
) -> Losses:
    """IPO's squared loss per pair (B,), and the implicit rewards (of the summed log-ratios)."""
    if (chosen_lengths is None) != (rejected_lengths is None):
        raise ValueError("give both chosen_lengths and rejected_lengths, or neither")
    chosen, rejected = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    if chosen_lengths is not None and rejected_lengths is not None:
        chosen = chosen / chosen_lengths.clamp(min=1)
        rejected = rejected / rejected_lengths.clamp(min=1)
    losses = (chosen - rejected - 1 / (2 * beta)) ** 2
    return (losses, *_rewards(beta, policy_chosen, policy_rejected, ref_chosen, ref_rejected))


def kl_pairs(batch_size: int) -> list[int]:
    """Which example's completion pairs with prompt i for the KL estimate: i - 1, cyclically (TRL)."""
    return [(i - 1) % batch_size for i in range(batch_size)]


def kto_kl(policy_kl: torch.Tensor, ref_kl: torch.Tensor) -> torch.Tensor:
    """KTO's reference point: mean over mismatched pairs of the policy/reference log-ratio,
    clamped at 0, detached; a 0-dim tensor."""
    return (policy_kl - ref_kl).mean().detach().clamp(min=0)


def kto_loss(
    policy: torch.Tensor,
    ref: torch.Tensor,
    desirable: torch.Tensor,
    kl: torch.Tensor,
    *,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> Losses:
    """KTO's loss per example (B,), in the batch's order; rewards of the desirable examples and of
    the undesirable ones (each in batch order, possibly empty)."""
    desirable = desirable.bool()
    r = policy - ref  # (B,)
    kl = kl.detach()
    losses = torch.where(
        desirable,
        desirable_weight * (1 - torch.sigmoid(beta * (r - kl))),
        undesirable_weight * (1 - torch.sigmoid(beta * (kl - r))),
    )
    rewards = beta * r.detach()
    return losses, rewards[desirable], rewards[~desirable]


def kto_balanced_weight(
    n_desirable: int, n_undesirable: int, desirable_weight: float = 1.0, undesirable_weight: float = 1.0
) -> float:
    """The desirable weight for a batch of `n_desirable` passing and `n_undesirable` failing
    examples: at least `desirable_weight`, and enough that the desirable side weighs as much as
    the undesirable one."""
    if n_desirable <= 0:
        return desirable_weight
    return max(desirable_weight, undesirable_weight * n_undesirable / n_desirable)
