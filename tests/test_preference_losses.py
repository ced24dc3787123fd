"""DPO, IPO and KTO losses (`execrl.trainers.preference_losses`) against hand-worked values.

Numbers are chosen so the sigmoids are exact: sigmoid(ln 3) = 3/4, sigmoid(0) = 1/2. Each
derivation is in the test's docstring. The last tests compare with TRL 1.16's expressions,
transcribed from its source (`trl/trainer/dpo_trainer.py`, `kto_trainer.py`, `_compute_loss`):
TRL is not installed as an oracle because since 1.x those losses are inlined in trainer methods
that need a model and the `datasets` stack (see the module docstring).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from execrl.trainers.preference_losses import (
    dpo_loss,
    ipo_loss,
    kl_pairs,
    kto_balanced_weight,
    kto_kl,
    kto_loss,
)

LN3 = math.log(3)


def t(x: list[float], grad: bool = False) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


def test_dpo_by_hand() -> None:
    """Row 0: chosen log-ratio (-1) - (-2) = 1, rejected (-4) - (-3) = -1, so h = 2; with
    beta = ln3 / 2, beta h = ln 3, loss = -log sigmoid(ln 3) = -log(3/4) = ln(4/3); rewards
    beta * 1 = ln3/2 and beta * -1 = -ln3/2. Row 1: equal log-ratios (h = 0): loss ln 2.
    Gradient of row 0's loss by the policy's chosen log-prob: -beta (1 - sigmoid(beta h)) = -ln3/8."""
    pc = t([-1.0, -5.0], grad=True)
    losses, chosen, rejected = dpo_loss(pc, t([-4.0, -6.0]), t([-2.0, -5.0]), t([-3.0, -6.0]), beta=LN3 / 2)
    assert torch.allclose(losses, t([math.log(4 / 3), math.log(2)]))
    assert torch.allclose(chosen, t([LN3 / 2, 0.0])) and torch.allclose(rejected, t([-LN3 / 2, 0.0]))
    assert not chosen.requires_grad and not rejected.requires_grad
    losses[0].backward()
    assert pc.grad is not None and pc.grad[0].item() == pytest.approx(-LN3 / 8) and pc.grad[1].item() == 0


def test_dpo_label_smoothing_by_hand() -> None:
    """eps = 0.25, beta h = ln 3: -(1 - eps) log(3/4) - eps log(1 - 3/4) = 0.75 ln(4/3) + 0.25 ln 4."""
    losses, _, _ = dpo_loss(t([-1.0]), t([-4.0]), t([-2.0]), t([-3.0]), beta=LN3 / 2, label_smoothing=0.25)
    assert losses.item() == pytest.approx(0.75 * math.log(4 / 3) + 0.25 * math.log(4))
    with pytest.raises(ValueError):
        dpo_loss(t([0.0]), t([0.0]), t([0.0]), t([0.0]), label_smoothing=0.5)


def test_ipo_by_hand() -> None:
    """beta = 0.5, so the target margin 1 / (2 beta) = 1. h = 2: (2 - 1)^2 = 1; h = 0: (0 - 1)^2 = 1;
    h = 3: 4. Rewards are beta times the log-ratios: 0.5 * 1 and 0.5 * -1 for row 0."""
    losses, chosen, rejected = ipo_loss(
        t([-1.0, -5.0, 0.0]), t([-4.0, -6.0, -3.0]), t([-2.0, -5.0, 0.0]), t([-3.0, -6.0, 0.0]), beta=0.5
    )
    assert torch.allclose(losses, t([1.0, 1.0, 4.0]))
    assert torch.allclose(chosen, t([0.5, 0.0, 0.0])) and torch.allclose(rejected, t([-0.5, 0.0, -1.5]))


def test_ipo_length_normalised_by_hand() -> None:
    """Chosen log-ratio 4 over 2 tokens = 2, rejected -2 over 4 tokens = -0.5: h = 2.5;
    beta = 0.5: (2.5 - 1)^2 = 2.25. A length of 0 counts as 1 (TRL clamps it)."""
    losses, _, _ = ipo_loss(
        t([0.0, 1.0]), t([-2.0, 0.0]), t([-4.0, 0.0]), t([0.0, 0.0]),
        beta=0.5, chosen_lengths=t([2.0, 0.0]), rejected_lengths=t([4.0, 3.0]),
    )  # fmt: skip
    # row 1: chosen 1 / max(0, 1) = 1, rejected 0: h = 1, (1 - 1)^2 = 0
    assert torch.allclose(losses, t([2.25, 0.0]))
    with pytest.raises(ValueError):
        ipo_loss(t([0.0]), t([0.0]), t([0.0]), t([0.0]), chosen_lengths=t([1.0]))


def test_kto_kl_by_hand() -> None:
    """Mismatched-pair log-ratios 3 and -1: mean 1. Log-ratios -3 and 1: mean -1, clamped to 0."""
    pol = t([0.0, 0.0], grad=True)
    assert kto_kl(pol, t([-3.0, 1.0])).item() == 1.0
    assert kto_kl(t([-3.0, 1.0]), t([0.0, 0.0])).item() == 0.0
    assert not kto_kl(pol, t([-3.0, 1.0])).requires_grad


def test_kl_pairs_shift_completions_by_one() -> None:
    """TRL: KL_completion_ids = [c[-1]] + c[:-1], so prompt i pairs with completion i - 1."""
    assert kl_pairs(3) == [2, 0, 1]
    assert kl_pairs(1) == [0]


def test_kto_by_hand() -> None:
    """beta = 1, z0 = 1. Log-ratios r = [1 + ln3, 1, 1 - ln3], desirable [yes, yes, no].
    Row 0: 1 - sigmoid(r - z0) = 1 - sigmoid(ln 3) = 1/4, weight 2: 1/2.
    Row 1: 1 - sigmoid(0) = 1/2, weight 2: 1.
    Row 2: 1 - sigmoid(z0 - r) = 1 - sigmoid(ln 3) = 1/4, weight 3: 3/4.
    Gradient of row 0 by its policy log-prob: -2 * s (1 - s) with s = 3/4: -3/8. None flows to z0."""
    ref = t([-5.0, -4.0, -3.0])
    policy = (ref + t([1 + LN3, 1.0, 1 - LN3])).detach().requires_grad_(True)
    kl = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    losses, chosen, rejected = kto_loss(
        policy,
        ref,
        torch.tensor([True, True, False]),
        kl,
        beta=1.0,
        desirable_weight=2.0,
        undesirable_weight=3.0,
    )
    assert torch.allclose(losses, t([0.5, 1.0, 0.75]))
    assert torch.allclose(chosen, t([1 + LN3, 1.0])) and torch.allclose(rejected, t([1 - LN3]))
    losses[0].backward()
    assert policy.grad is not None and policy.grad[0].item() == pytest.approx(-3 / 8)
    assert kl.grad is None


def test_kto_all_desirable_gives_empty_rejected_rewards() -> None:
    _, chosen, rejected = kto_loss(t([0.0, 0.0]), t([0.0, 0.0]), torch.tensor([1, 1]), torch.tensor(0.0))
    assert chosen.shape == (2,) and rejected.shape == (0,)


# ---------------------------------------------------------------------------------------------
# TRL 1.16's expressions, transcribed (line numbers of trl-1.16.0's files), on the same tensors.


def _trl_dpo_sigmoid(pc, pr, rc, rr, beta):  # dpo_trainer.py 1350-1388, f_divergence reverse_kl
    delta_score = (pc - rc) - (pr - rr)
    return -F.logsigmoid(beta * delta_score)


def _trl_ipo(pc, pr, rc, rr, beta, chosen_mask_sum, rejected_mask_sum):  # dpo_trainer.py 1393-1404
    chosen_avg_score = (pc - rc) / chosen_mask_sum.clamp(min=1.0)
    rejected_avg_score = (pr - rr) / rejected_mask_sum.clamp(min=1.0)
    return (chosen_avg_score - rejected_avg_score - 1 / (2 * beta)) ** 2


def _trl_kto(chosen_logps, rejected_logps, ref_chosen, ref_rejected, kl_logps, ref_kl_logps, beta, dw, uw):
    kl = (kl_logps - ref_kl_logps).mean().detach().clamp(min=0)  # kto_trainer.py 1443-1444 (one process)
    chosen_losses = 1 - F.sigmoid(beta * ((chosen_logps - ref_chosen) - kl))  # 1453
    rejected_losses = 1 - F.sigmoid(beta * (kl - (rejected_logps - ref_rejected)))  # 1469
    return torch.cat((dw * chosen_losses, uw * rejected_losses), 0), kl  # 1479-1482


def test_matches_trl_expressions_on_random_tensors() -> None:
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (-20 * torch.rand(16, generator=g, dtype=torch.float64) for _ in range(4))
    ours, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.3)
    assert torch.allclose(ours, _trl_dpo_sigmoid(pc, pr, rc, rr, 0.3))
    lc, lr = (
        torch.randint(0, 30, (16,), generator=g).double(),
        torch.randint(1, 30, (16,), generator=g).double(),
    )
    ours, _, _ = ipo_loss(pc, pr, rc, rr, beta=0.3, chosen_lengths=lc, rejected_lengths=lr)
    assert torch.allclose(ours, _trl_ipo(pc, pr, rc, rr, 0.3, lc, lr))

    policy, ref = pc, rc
    desirable = torch.rand(16, generator=g) < 0.5
    idx = kl_pairs(16)
    policy_kl, ref_kl = pr[idx], rr[idx]  # stand-ins for log-probs of the mismatched pairs
    kl = kto_kl(policy_kl, ref_kl)
    ours, _, _ = kto_loss(policy, ref, desirable, kl, beta=0.3, desirable_weight=1.5, undesirable_weight=0.7)
    trl, trl_kl = _trl_kto(
        policy[desirable],
        policy[~desirable],
        ref[desirable],
        ref[~desirable],
        policy_kl,
        ref_kl,
        0.3,
        1.5,
        0.7,
    )
    assert torch.equal(kl, trl_kl)
    assert torch.allclose(torch.cat((ours[desirable], ours[~desirable])), trl)


@pytest.mark.parametrize(
    ("n_desirable", "n_undesirable", "desirable_weight", "undesirable_weight", "expected"),
    [
        (3, 7, 1.0, 1.0, 7 / 3),  # too few passing programs: raised until both sides weigh the same
        (7, 3, 1.0, 1.0, 1.0),  # already at least balanced: the given weight stays
        (5, 5, 1.0, 1.0, 1.0),
        (2, 6, 1.0, 0.5, 1.5),  # the undesirable weight counts
        (2, 6, 4.0, 1.0, 4.0),  # a larger given weight is kept
        (0, 9, 1.0, 1.0, 1.0),  # nothing desirable: nothing to weigh
        (4, 0, 1.0, 1.0, 1.0),
    ],
)
def test_kto_balanced_weight_reaches_the_recommended_ratio(
    n_desirable, n_undesirable, desirable_weight, undesirable_weight, expected
):
    w = kto_balanced_weight(n_desirable, n_undesirable, desirable_weight, undesirable_weight)
    assert w == pytest.approx(expected)
    if n_desirable and n_undesirable:
        assert w * n_desirable / (undesirable_weight * n_undesirable) >= 1 - 1e-12
