"""`execrl.trainers.advantages` and the RL losses of `execrl.trainers.losses` against hand-worked values.

Every expected number is derived by hand in the comment next to it; nothing here re-implements the
functions under test. Padding positions carry large garbage values on purpose: they must come out 0
and must not move the results of the real positions.
"""

from __future__ import annotations

import math

import pytest
import torch

from execrl.trainers.advantages import (
    gae,
    group_advantages,
    kl_per_token,
    masked_mean,
    masked_whiten,
    rloo_advantages,
    terminal_rewards,
)
from execrl.trainers.losses import aggregate, entropy, policy_loss, token_logprobs, value_loss

GARBAGE = 1e3  # finite junk in padding slots


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


def close(actual: torch.Tensor, expected, atol: float = 1e-5) -> None:
    torch.testing.assert_close(actual, t(expected), rtol=0.0, atol=atol)


# ---------------------------------------------------------------- masked_mean / masked_whiten


def test_masked_mean_all_and_per_row_ignores_padding():
    x = t([[1.0, 2.0, GARBAGE], [4.0, -GARBAGE, GARBAGE]])
    mask = t([[1, 1, 0], [1, 0, 0]])
    # all: (1 + 2 + 4) / 3 = 7/3; per row: (1+2)/2 = 1.5, 4/1 = 4
    close(masked_mean(x, mask), 7.0 / 3.0)
    close(masked_mean(x, mask, dim=-1), [1.5, 4.0])


def test_masked_mean_empty_row_is_zero():
    x = t([[1.0, 2.0, 3.0], [GARBAGE, GARBAGE, GARBAGE]])
    mask = t([[1, 1, 0], [0, 0, 0]])
    # row 0: 1.5; row 1: nothing marked -> 0 (not 0/0); whole thing with nothing marked -> 0
    close(masked_mean(x, mask, dim=-1), [1.5, 0.0])
    close(masked_mean(x, torch.zeros_like(mask)), 0.0)


def test_masked_whiten_population_std_and_padding_zero():
    x = t([[1.0, 2.0], [3.0, GARBAGE]])
    mask = t([[1, 1], [1, 0]])
    # marked 1,2,3: mean 2, population var (1+0+1)/3 = 2/3, std .8164966 -> +-1/.8164966 = +-1.2247449
    close(masked_whiten(x, mask), [[-1.2247449, 0.0], [1.2247449, 0.0]])


def test_masked_whiten_padding_value_does_not_matter():
    mask = t([[1, 1], [1, 0]])
    a = masked_whiten(t([[1.0, 2.0], [3.0, GARBAGE]]), mask)
    b = masked_whiten(t([[1.0, 2.0], [3.0, -GARBAGE]]), mask)
    # same marked entries 1,2,3 -> same whitened values; padding 0 in both
    torch.testing.assert_close(a, b, rtol=0.0, atol=1e-6)
    close(a[1, 1], 0.0)


def test_masked_whiten_scale_only_adds_mean_back():
    x = t([[1.0, 2.0], [3.0, GARBAGE]])
    mask = t([[1, 1], [1, 0]])
    # (x - 2) / .8164966 + 2: 1 -> .7752551, 2 -> 2, 3 -> 3.2247449; padding 0
    close(masked_whiten(x, mask, shift_mean=False), [[0.7752551, 2.0], [3.2247449, 0.0]])


def test_masked_whiten_fewer_than_two_marked_never_divides():
    x = t([[5.0, 7.0, 9.0]])
    one = t([[0, 1, 0]])
    # one marked entry (7): mean 7 -> centred 0, no division; scale-only returns x on the mask
    close(masked_whiten(x, one), [[0.0, 0.0, 0.0]])
    close(masked_whiten(x, one, shift_mean=False), [[0.0, 7.0, 0.0]])
    # nothing marked: all 0, no NaN
    close(masked_whiten(x, torch.zeros_like(one)), [[0.0, 0.0, 0.0]])


def test_masked_whiten_constant_entries_give_zero_not_nan():
    # marked 3,3,3: mean 3, std 0 -> 0 / (0 + eps) = 0
    out = masked_whiten(t([[3.0, 3.0, 3.0, GARBAGE]]), t([[1, 1, 1, 0]]))
    close(out, [[0.0, 0.0, 0.0, 0.0]])


# ---------------------------------------------------------------- terminal_rewards


def test_terminal_rewards_on_last_marked_token():
    scores = t([1.0, -0.5, 2.0, 3.0])
    mask = t([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    # lengths 3, 1, 4, 0 -> score at index 2, 0, 3; the empty row gets nothing
    expected = [[0, 0, 1.0, 0], [-0.5, 0, 0, 0], [0, 0, 0, 2.0], [0, 0, 0, 0]]
    close(terminal_rewards(scores, mask), expected)


# ---------------------------------------------------------------- kl_per_token


def test_kl_estimators_at_hand_point_ref_below_policy():
    logp = t([math.log(0.5)])
    ref = t([math.log(0.25)])
    # d = ln(.25/.5) = -ln2 = -.6931472
    # k1 = -d = .6931472; k2 = d^2/2 = .4804530/2 = .2402265; k3 = e^d - d - 1 = .5 + .6931472 - 1 = .1931472
    close(kl_per_token(logp, ref, "k1"), [0.6931472])
    close(kl_per_token(logp, ref, "k2"), [0.2402265])
    close(kl_per_token(logp, ref, "k3"), [0.1931472])


def test_kl_estimators_at_hand_point_ref_above_policy():
    logp = t([math.log(0.25)])
    ref = t([math.log(0.5)])
    # d = +ln2: k1 = -.6931472 (negative is allowed), k2 = .2402265, k3 = 2 - .6931472 - 1 = .3068528
    close(kl_per_token(logp, ref, "k1"), [-0.6931472])
    close(kl_per_token(logp, ref, "k2"), [0.2402265])
    close(kl_per_token(logp, ref, "k3"), [0.3068528])


def test_kl_default_is_k3_and_zero_when_equal():
    logp = t([[-1.0, -2.0, -0.1]])
    # d = 0 -> every estimator is 0; default kind is k3
    close(kl_per_token(logp, logp.clone()), [[0.0, 0.0, 0.0]])
    close(kl_per_token(logp, logp.clone(), "k1"), [[0.0, 0.0, 0.0]])


def test_kl_k3_never_negative():
    # e^d >= 1 + d for every d, so k3 >= 0 over a wide range of log-ratios
    d = torch.linspace(-10.0, 10.0, 201)
    k3 = kl_per_token(torch.zeros_like(d), d, "k3")
    assert bool((k3 >= 0).all())


def test_kl_unknown_estimator_raises():
    with pytest.raises(ValueError):
        kl_per_token(t([0.0]), t([0.0]), "k4")


# ---------------------------------------------------------------- gae


def test_gae_gamma1_lam1_is_reward_to_go_minus_value():
    rewards = t([[0.0, 0.0, 1.0, 0.0], [0.5, 0.0, 0.0, -1.0]])
    values = t([[0.2, 0.4, 0.6, 0.0], [0.1, 0.2, 0.3, 0.4]])
    mask = t([[1, 1, 1, 0], [1, 1, 1, 1]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    # row 0: reward-to-go 1,1,1 minus V .2,.4,.6 -> .8,.6,.4; padding 0
    # row 1: reward-to-go -.5,-1,-1,-1 minus V .1,.2,.3,.4 -> -.6,-1.2,-1.3,-1.4
    close(adv, [[0.8, 0.6, 0.4, 0.0], [-0.6, -1.2, -1.3, -1.4]])
    # returns = A + V = reward-to-go on marked tokens
    close(ret, [[1.0, 1.0, 1.0, 0.0], [-0.5, -1.0, -1.0, -1.0]])


def test_gae_lam0_is_one_step_td_error():
    rewards = t([[0.0, 0.0, 1.0, 0.0]])
    values = t([[0.2, 0.4, 0.6, 0.0]])
    mask = t([[1, 1, 1, 0]])
    adv, _ = gae(rewards, values, mask, gamma=0.9, lam=0.0)
    # delta_2 = 1 + .9*0 (terminal) - .6 = .4; delta_1 = 0 + .9*.6 - .4 = .14; delta_0 = .9*.4 - .2 = .16
    close(adv, [[0.16, 0.14, 0.4, 0.0]])


def test_gae_general_recursion():
    rewards = t([[0.0, 0.0, 1.0]])
    values = t([[0.2, 0.4, 0.6]])
    mask = t([[1, 1, 1]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    # deltas .16, .14, .4 (as above); gamma*lam = .45
    # A2 = .4; A1 = .14 + .45*.4 = .32; A0 = .16 + .45*.32 = .304; returns = A + V = .504, .72, 1.0
    close(adv, [[0.304, 0.32, 0.4]])
    close(ret, [[0.504, 0.72, 1.0]])


def test_gae_trailing_padding_ignored():
    # same completion as test_gae_general_recursion, padded with junk reward and value
    rewards = t([[0.0, 0.0, 1.0, 5.0, -3.0]])
    values = t([[0.2, 0.4, 0.6, -7.0, GARBAGE]])
    mask = t([[1, 1, 1, 0, 0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    # the state after the last marked token is terminal (value 0): same .304,.32,.4; padding 0
    close(adv, [[0.304, 0.32, 0.4, 0.0, 0.0]])
    close(ret, [[0.504, 0.72, 1.0, 0.0, 0.0]])


# ---------------------------------------------------------------- group_advantages (GRPO)


def test_group_advantages_two_groups_sample_std():
    scores = t([1.0, 0.0, 0.0, 1.0, 2.0, 4.0, 6.0, 8.0])
    # group [1,0,0,1]: mean .5, sample var 4*.25/3 = 1/3, std .5773503 -> +-.5/.5773503 = +-.8660254
    # group [2,4,6,8]: mean 5, devs -3,-1,1,3, sample var 20/3, std 2.5819889
    #   -> -3/2.5819889 = -1.1618950, -1/2.5819889 = -.3872983, +.3872983, +1.1618950
    expected = [0.8660254, -0.8660254, -0.8660254, 0.8660254, -1.1618950, -0.3872983, 0.3872983, 1.1618950]
    close(group_advantages(scores, 4, eps=0.0), expected)


def test_group_advantages_default_eps_in_denominator():
    # [1,0,0,1]: .5 / (.5773503 + 1e-4) = .5 / .5774503 = .8658754
    close(group_advantages(t([1.0, 0.0, 0.0, 1.0]), 4), [0.8658754, -0.8658754, -0.8658754, 0.8658754])


def test_group_advantages_invalid_excluded_and_zero():
    valid = t([1, 1, 1, 0])
    # valid 1,0,1: mean 2/3, devs 1/3,-2/3,1/3, sum sq 6/9, sample var (2/3)/2 = 1/3, std .5773503
    #   -> .3333333/.5773503 = .5773503, -.6666667/.5773503 = -1.1547005; invalid -> 0
    expected = [0.5773503, -1.1547005, 0.5773503, 0.0]
    close(group_advantages(t([1.0, 0.0, 1.0, 0.3]), 4, valid=valid, eps=0.0), expected)
    # the invalid sample's score does not enter the statistics
    close(group_advantages(t([1.0, 0.0, 1.0, GARBAGE]), 4, valid=valid, eps=0.0), expected)


def test_group_advantages_constant_group_is_zero_not_nan():
    # valid samples all 1 (the invalid one scored 0): mean 1, std 0 -> 0; all-equal group [0,0,0,0] -> 0
    scores = t([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    valid = t([1, 1, 0, 1, 1, 1, 1, 1])
    close(group_advantages(scores, 4, valid=valid), [0.0] * 8)


def test_group_advantages_single_or_no_valid_sample_is_zero():
    scores = t([5.0, 0.0, 0.0, 3.0, 4.0, 9.0])
    valid = t([1, 0, 0, 0, 0, 0])
    # group 0: one valid sample (5) -> 5 - 5 = 0; group 1: none valid -> all 0, no NaN
    close(group_advantages(scores, 3, valid=valid), [0.0] * 6)


def test_group_advantages_zero_std_with_eps_zero_is_zero():
    # group 0: valid 1,1,1 (std 0) -> 0; group 1: one valid sample -> 0; group 2: none valid -> 0
    scores = t([1.0, 1.0, 1.0, 5.0, 0.0, 0.0, 3.0, 4.0, 9.0])
    valid = t([1, 1, 1, 1, 0, 0, 0, 0, 0])
    close(group_advantages(scores, 3, valid=valid, eps=0.0), [0.0] * 9)


def test_group_advantages_unscaled_dr_grpo():
    # [1,0,0,1] mean .5 -> .5,-.5,-.5,.5; with sample 3 invalid: mean of 1,0,0 = 1/3 -> 2/3,-1/3,-1/3,0
    close(group_advantages(t([1.0, 0.0, 0.0, 1.0]), 4, scale=False), [0.5, -0.5, -0.5, 0.5])
    close(
        group_advantages(t([1.0, 0.0, 0.0, 1.0]), 4, valid=t([1, 1, 1, 0]), scale=False),
        [2.0 / 3.0, -1.0 / 3.0, -1.0 / 3.0, 0.0],
    )


@pytest.mark.parametrize("group_size", [2, 0])
def test_group_advantages_bad_group_size_raises(group_size):
    # 5 scores do not split into groups of 2; 0 is not a group size
    with pytest.raises(ValueError):
        group_advantages(t([1.0, 0.0, 1.0, 0.0, 1.0]), group_size)


# ---------------------------------------------------------------- rloo_advantages


def test_rloo_leave_one_out_baseline():
    # [1,0,0,1]: total 2, k 4; s=1: baseline (2-1)/3 = 1/3 -> 2/3; s=0: baseline 2/3 -> -2/3
    # (check: k/(k-1) * (s - mean) = 4/3 * .5 = 2/3)
    close(rloo_advantages(t([1.0, 0.0, 0.0, 1.0]), 4), [2 / 3, -2 / 3, -2 / 3, 2 / 3])


def test_rloo_invalid_excluded_and_zero():
    valid = t([1, 1, 1, 0])
    # valid 1,0,1: total 2, k 3; s=1: baseline (2-1)/2 = .5 -> .5; s=0: baseline 2/2 = 1 -> -1; invalid 0
    close(rloo_advantages(t([1.0, 0.0, 1.0, GARBAGE]), 4, valid=valid), [0.5, -1.0, 0.5, 0.0])


def test_rloo_single_valid_sample_gets_zero():
    scores = t([4.0, 0.0, 0.0, 1.0, 2.0, 3.0])
    valid = t([1, 0, 0, 1, 1, 1])
    # group 0: only one valid sample -> no baseline -> 0
    # group 1: total 6, k 3; s=1: baseline 5/2 -> -1.5; s=2: baseline 2 -> 0; s=3: baseline 1.5 -> 1.5
    close(rloo_advantages(scores, 3, valid=valid), [0.0, 0.0, 0.0, -1.5, 0.0, 1.5])


def test_rloo_all_invalid_group_is_zero():
    close(rloo_advantages(t([1.0, 2.0, 3.0]), 3, valid=t([0, 0, 0])), [0.0, 0.0, 0.0])


@pytest.mark.parametrize("group_size", [2, 0])
def test_rloo_bad_group_size_raises(group_size):
    with pytest.raises(ValueError):
        rloo_advantages(t([1.0, 0.0, 1.0, 0.0, 1.0]), group_size)


# ---------------------------------------------------------------- token_logprobs / entropy


def test_token_logprobs_uniform():
    logits = torch.zeros(2, 3, 4)
    tokens = torch.tensor([[0, 3, 1], [2, 2, 0]])
    # uniform over V=4: log(1/4) = -1.3862944 whatever the token
    close(token_logprobs(logits, tokens), [[-1.3862944] * 3] * 2)
    # softmax is shift-invariant: constant logits 7 give the same
    close(token_logprobs(torch.full((2, 3, 4), 7.0), tokens), [[-1.3862944] * 3] * 2)


def test_token_logprobs_hand_point_and_float32():
    # logits [0, ln3] -> probs [.25, .75]: token 1 -> ln .75 = -.2876821, token 0 -> ln .25 = -1.3862944
    logits = t([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])
    out = token_logprobs(logits.to(torch.bfloat16), torch.tensor([[1, 0]]))
    assert out.dtype == torch.float32
    close(out, [[-0.2876821, -1.3862944]], atol=1e-2)  # bf16 input: ln3 is rounded
    close(token_logprobs(logits, torch.tensor([[1, 0]])), [[-0.2876821, -1.3862944]])


def test_entropy_uniform_is_log_v():
    # uniform over V=4: entropy ln 4 = 1.3862944
    out = entropy(torch.zeros(2, 3, 4))
    assert out.shape == (2, 3)
    close(out, [[1.3862944] * 3] * 2)


def test_entropy_hand_point_and_peaked():
    # probs [.25,.75]: .25*1.3862944 + .75*.2876821 = .3465736 + .2157616 = .5623352
    # a near one-hot distribution (logits 100,0,0) has entropy ~0
    close(entropy(t([[[0.0, math.log(3.0)]]])), [[0.5623352]])
    close(entropy(t([[[100.0, 0.0, 0.0]]])), [[0.0]])


# ---------------------------------------------------------------- aggregate

PER_TOKEN = t([[1.0, 2.0, 3.0, GARBAGE], [8.0, GARBAGE, GARBAGE, GARBAGE]])
AGG_MASK = t([[1, 1, 1, 0], [1, 0, 0, 0]])


def test_aggregate_token_mean():
    # (1 + 2 + 3 + 8) / 4 marked tokens = 14/4 = 3.5
    close(aggregate(PER_TOKEN, AGG_MASK, "token-mean"), 3.5)
    close(aggregate(PER_TOKEN, AGG_MASK), 3.5)  # default mode


def test_aggregate_token_mean_norm_replaces_count():
    # 14 / norm 7 = 2
    close(aggregate(PER_TOKEN, AGG_MASK, "token-mean", norm=7), 2.0)


def test_aggregate_seq_mean_token_mean():
    # row means (1+2+3)/3 = 2 and 8/1 = 8 -> (2 + 8)/2 = 5
    close(aggregate(PER_TOKEN, AGG_MASK, "seq-mean-token-mean"), 5.0)


def test_aggregate_seq_mean_token_sum_norm():
    # row sums 6 and 8; default norm T = 4: (6/4 + 8/4)/2 = 1.75; norm 7: (6/7 + 8/7)/2 = 1.0
    close(aggregate(PER_TOKEN, AGG_MASK, "seq-mean-token-sum-norm"), 1.75)
    close(aggregate(PER_TOKEN, AGG_MASK, "seq-mean-token-sum-norm", norm=7), 1.0)


def test_aggregate_empty_row():
    per_token = torch.cat([PER_TOKEN, t([[GARBAGE] * 4])])
    mask = torch.cat([AGG_MASK, t([[0, 0, 0, 0]])])
    # token-mean: still 14/4 = 3.5; seq-mean-token-mean skips the empty row: still 5
    # seq-mean-token-sum-norm averages over all B = 3 rows: (6 + 8 + 0)/4/3 = 1.1666667
    close(aggregate(per_token, mask, "token-mean"), 3.5)
    close(aggregate(per_token, mask, "seq-mean-token-mean"), 5.0)
    close(aggregate(per_token, mask, "seq-mean-token-sum-norm"), 14.0 / 12.0)


def test_aggregate_nothing_marked_is_zero():
    mask = torch.zeros_like(AGG_MASK)
    close(aggregate(PER_TOKEN, mask, "token-mean"), 0.0)
    close(aggregate(PER_TOKEN, mask, "seq-mean-token-mean"), 0.0)
    close(aggregate(PER_TOKEN, mask, "seq-mean-token-sum-norm"), 0.0)


def test_aggregate_unknown_mode_raises():
    with pytest.raises(ValueError):
        aggregate(PER_TOKEN, AGG_MASK, "sum")


# ---------------------------------------------------------------- policy_loss


def test_policy_loss_ratio_one_is_minus_mean_advantage():
    logp = t([[-1.0, -2.0, -0.5, -3.0], [-0.1, -0.2, -9.0, -9.0]])
    adv = t([[1.0, -2.0, 3.0, GARBAGE], [0.5, 0.5, GARBAGE, GARBAGE]])
    mask = t([[1, 1, 1, 0], [1, 1, 0, 0]])
    loss, stats = policy_loss(logp, logp.clone(), adv, mask)
    # ratio 1 everywhere: -(1 - 2 + 3 + .5 + .5)/5 = -3/5 = -.6; nothing clipped, approx_kl 0
    close(loss, -0.6)
    close(stats["clip_frac"], 0.0)
    close(stats["approx_kl"], 0.0)


def test_policy_loss_positive_advantage_clips_only_above():
    # ratios 1.5 (above 1.2), .5 (below .8), 1.1 (inside); A = 1 each; eps .2
    logp = t([[math.log(1.5), math.log(0.5), math.log(1.1)]]).requires_grad_(True)
    loss, stats = policy_loss(logp, torch.zeros(1, 3), torch.ones(1, 3), torch.ones(1, 3))
    # per token -min(rA, clip(r)A): -min(1.5,1.2) = -1.2, -min(.5,.8) = -.5, -1.1 -> mean -2.8/3 = -.9333333
    close(loss, -2.8 / 3)
    close(stats["clip_frac"], 1.0 / 3.0)  # only the 1.5 token
    loss.backward()
    # d/dlogp of -rA/3 = -r/3: clipped token 0 -> 0; .5 token -> -.1666667 (NOT clipped); 1.1 -> -.3666667
    close(logp.grad, [[0.0, -0.5 / 3, -1.1 / 3]])


def test_policy_loss_negative_advantage_clips_only_below():
    # ratios .5 and 1.5 with A = -1
    logp = t([[math.log(0.5), math.log(1.5)]]).requires_grad_(True)
    loss, stats = policy_loss(logp, torch.zeros(1, 2), -torch.ones(1, 2), torch.ones(1, 2))
    # r=.5: -min(-.5, -.8) = .8 (clipped); r=1.5: -min(-1.5, -1.2) = 1.5 (not) -> (0.8 + 1.5)/2 = 1.15
    close(loss, 1.15)
    close(stats["clip_frac"], 0.5)
    loss.backward()
    # grad of -rA/2 = r/2: clipped token 0 -> 0; r=1.5 -> .75
    close(logp.grad, [[0.0, 0.75]])


def test_policy_loss_asymmetric_clip_high():
    # ratio 1.25 with A = +1, ratio .7 with A = -1
    logp = t([[math.log(1.25), math.log(0.7)]])
    old, adv, mask = torch.zeros(1, 2), t([[1.0, -1.0]]), torch.ones(1, 2)
    # symmetric .2: -min(1.25, 1.2) = -1.2; -min(-.7, -.8) = .8 -> (-1.2 + .8)/2 = -.2; both clipped
    sym, sym_stats = policy_loss(logp, old, adv, mask, clip_low=0.2)
    close(sym, -0.2)
    close(sym_stats["clip_frac"], 1.0)
    # clip_high .28: 1.25 < 1.28 not clipped -> -1.25; low side unchanged .8 -> (-1.25 + .8)/2 = -.225
    asym, asym_stats = policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.28)
    close(asym, -0.225)
    close(asym_stats["clip_frac"], 0.5)


def test_policy_loss_approx_kl():
    logp = t([[math.log(1.5), math.log(0.5), math.log(1.1)]])
    _, stats = policy_loss(logp, torch.zeros(1, 3), torch.ones(1, 3), torch.ones(1, 3))
    # k3 of KL(old||new) = r - 1 - ln r: 1.5: .5 - .4054651 = .0945349; .5: -.5 + .6931472 = .1931472;
    # 1.1: .1 - .0953102 = .0046898 -> sum .2923719 / 3 = .0974573
    close(stats["approx_kl"], 0.0974573)


def test_policy_loss_padding_ignored():
    # marked tokens have ratio 1 and A = 2, 4; the padding token has ratio e^3 and A = GARBAGE
    logp = t([[-1.0, -1.0, 2.0]]).requires_grad_(True)
    old = t([[-1.0, -1.0, -1.0]])
    loss, stats = policy_loss(logp, old, t([[2.0, 4.0, GARBAGE]]), t([[1, 1, 0]]))
    # -(2 + 4)/2 = -3; the padding token would be clipped but is not counted; no gradient reaches it
    close(loss, -3.0)
    close(stats["clip_frac"], 0.0)
    close(stats["approx_kl"], 0.0)
    loss.backward()
    close(logp.grad[0, 2], 0.0)


def test_policy_loss_passes_mode_and_norm():
    logp = torch.zeros(2, 3)
    adv = t([[1.0, 1.0, 1.0], [4.0, GARBAGE, GARBAGE]])
    mask = t([[1, 1, 1], [1, 0, 0]])
    # ratio 1, per token -A: token-mean -(3 + 4)/4 = -1.75; seq-mean-token-mean -(1 + 4)/2 = -2.5;
    # seq-mean-token-sum-norm with norm 4: -(3/4 + 4/4)/2 = -.875; token-mean with norm 14: -7/14 = -.5
    close(policy_loss(logp, logp, adv, mask)[0], -1.75)
    close(policy_loss(logp, logp, adv, mask, mode="seq-mean-token-mean")[0], -2.5)
    close(policy_loss(logp, logp, adv, mask, mode="seq-mean-token-sum-norm", norm=4)[0], -0.875)
    close(policy_loss(logp, logp, adv, mask, norm=14)[0], -0.5)


def test_policy_loss_unknown_mode_raises():
    with pytest.raises(ValueError):
        policy_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2), mode="nope")


# ---------------------------------------------------------------- value_loss

# token 0: V 1.0, V_old .5, R 0  -> clipped V .7:  err 1.0, clipped err .49 -> max 1.0 (unclipped larger)
# token 1: V .9,  V_old 0,  R 1  -> clipped V .2:  err .01, clipped err .64 -> max .64 (clipped larger)
# token 2: V .6,  V_old .5, R .5 -> inside, V .6: err .01 = clipped err .01 -> .01 (a tie is no clip)
V = t([[1.0, 0.9, 0.6]])
V_OLD = t([[0.5, 0.0, 0.5]])
RET = t([[0.0, 1.0, 0.5]])


def test_value_loss_clip_takes_larger_error():
    loss, stats = value_loss(V, V_OLD, RET, torch.ones(1, 3), clip=0.2)
    # .5 * (1.0 + .64 + .01) / 3 = .825 / 3 = .275; clipped error larger on 1 of 3 tokens
    close(loss, 0.275)
    close(stats["value_clip_frac"], 1.0 / 3.0)


def test_value_loss_clipped_token_has_no_gradient():
    values = V.clone().requires_grad_(True)
    loss, _ = value_loss(values, V_OLD, RET, torch.ones(1, 3), clip=0.2)
    loss.backward()
    # d/dV of .5*(V-R)^2/3 = (V-R)/3: token 0 -> 1/3; token 1 uses the clipped (saturated) value -> 0;
    # token 2 -> .1/3 (tie: either branch has the same derivative)
    close(values.grad, [[1.0 / 3.0, 0.0, 0.1 / 3.0]])


@pytest.mark.parametrize("clip", [None, 0.0])
def test_value_loss_no_clip_is_plain_squared_error(clip):
    loss, stats = value_loss(V, V_OLD, RET, torch.ones(1, 3), clip=clip)
    # .5 * (1.0 + .01 + .01) / 3 = .51 / 3 = .17
    close(loss, 0.17)
    close(stats["value_clip_frac"], 0.0)


def test_value_loss_norm_and_padding():
    values = torch.cat([V, t([[GARBAGE]])], dim=1)
    old = torch.cat([V_OLD, t([[0.0]])], dim=1)
    ret = torch.cat([RET, t([[-GARBAGE]])], dim=1)
    mask = t([[1, 1, 1, 0]])
    # padding (clipped error huge) ignored: .825/3 = .275, clip frac 1/3; with norm 6: .825/6 = .1375
    loss, stats = value_loss(values, old, ret, mask)
    close(loss, 0.275)
    close(stats["value_clip_frac"], 1.0 / 3.0)
    close(value_loss(values, old, ret, mask, norm=6)[0], 0.1375)
