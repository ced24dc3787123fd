"""`--reward rltf` in GRPO, PPO and RLOO: a line penalty reaches exactly the tokens of its line.

The completion `def f():\\n    return 1/0\\n` + EOS is written by six tokens of a fake tokenizer:

    token      "def f():"  "\\n    "  "return"  " 1/0"    "\\n"      EOS
    span       [0, 8)      [8, 13)    [13, 19)  [19, 23)  [23, 24)  empty

Line 2 is `    return 1/0`, characters [9, 23) (its break excluded), so tokens 1, 2 and 3 are blamed
(token 1 writes line 2's indentation) and tokens 0, 4 and EOS are not. Row 0 is that program,
a runtime error at line 2 (coarse and adaptive −0.6, penalty 0.3 on line 2); row 1 passes (+1.0,
no penalty). Both rows are one group of two samples of the same prompt.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from execrl.rewards.rltf import Penalty, RLTFReward
from execrl.trainers import grpo, ppo, rloo
from execrl.trainers.rewarding import RLTF_REWARDS, build_reward, token_rewards
from execrl.trainers.rl_config import RLConfig
from execrl.trainers.rollout import Batch, Rollout
from execrl.types import Limits

PIECES = ["def f():", "\n    ", "return", " 1/0", "\n", "<eos>"]
EOS = 5


class FakeTokenizer:
    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(PIECES[i] for i in ids if not (skip_special_tokens and i == EOS))


class Row:
    def __init__(self, reward: float, penalty: Penalty | None) -> None:
        self.reward, self.penalty = reward, penalty


def batch(reward: RLTFReward) -> Batch:
    ids = [0, 1, 2, 3, 4, EOS]
    rollout = Rollout.from_ids([[9], [9]], [ids, ids], pad=0)
    scored: list[Any] = [
        Row(-0.6, Penalty("line", "runtime error", 2, 9, 23, 0.3)),
        Row(1.0, Penalty("none", "passed")),
    ]
    mask = rollout.completion_mask
    dense = token_rewards(reward, scored, rollout, mask)
    scores = torch.tensor([-0.6, 1.0])
    ones = torch.ones(2)
    return Batch(rollout, scores, ones, dense, ones, None, None, torch.zeros(2, 6), group_size=2)


def cfg(**kw: Any) -> RLConfig:
    return RLConfig(**{"model": "m", "out": "o", "reward": "rltf", **kw})


@pytest.fixture
def reward():
    r = RLTFReward("builtin", kind="adaptive", tokenizer=FakeTokenizer(), problems={})
    yield r
    r.close()


def close(actual: torch.Tensor, expected: list[list[float]]) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float32), rtol=0.0, atol=1e-5)


def test_line_penalty_lands_on_the_tokens_of_its_line(reward):
    close(batch(reward).token_rewards, [[0, -0.3, -0.3, -0.3, 0, 0], [0] * 6])


def test_grpo_adds_the_penalty_to_the_normalised_advantage(reward):
    # group [-0.6, 1.0]: mean 0.2, sample std sqrt(2 * 0.8^2 / 1) = 1.1313708;
    # advantage -+0.8 / (1.1313708 + 1e-4) = -+0.7070443; then -0.3 on tokens 1..3 of row 0
    adv, returns = grpo.advantages(batch(reward), cfg())
    a = 0.7070443
    close(adv, [[-a, -a - 0.3, -a - 0.3, -a - 0.3, -a, -a], [a] * 6])
    assert returns is None


def test_grpo_unscaled_adds_the_penalty_to_the_centred_reward(reward):
    adv, _ = grpo.advantages(batch(reward), cfg(scale_rewards=False))  # -+0.8, then -0.3 on line 2
    close(adv, [[-0.8, -1.1, -1.1, -1.1, -0.8, -0.8], [0.8] * 6])


def test_rloo_adds_the_penalty_to_the_leave_one_out_advantage(reward):
    # row 0: -0.6 - 1.0 = -1.6; row 1: 1.0 - (-0.6) = 1.6; -0.3 on line 2's tokens of row 0
    adv, _ = rloo.advantages(batch(reward), cfg(algo="rloo"))
    close(adv, [[-1.6, -1.9, -1.9, -1.9, -1.6, -1.6], [1.6] * 6])


def test_ppo_takes_the_penalty_as_per_token_rewards(reward):
    # per-token rewards of row 0: [0, -.3, -.3, -.3, 0, -.6 (terminal, on EOS)]. With gamma = lam = 1
    # and V = 0, GAE's advantage is the reward-to-go: [-1.5, -1.5, -1.2, -.9, -.6, -.6]; each
    # blamed token t shows as A_t - A_{t+1} = -0.3. Row 1: +1 on EOS, reward-to-go 1 everywhere.
    c = cfg(algo="ppo", gamma=1.0, lam=1.0, whiten_advantages=False)
    adv, returns = ppo.advantages(batch(reward), c)
    close(adv, [[-1.5, -1.5, -1.2, -0.9, -0.6, -0.6], [1.0] * 6])
    assert returns is not None
    close(returns, [[-1.5, -1.5, -1.2, -0.9, -0.6, -0.6], [1.0] * 6])  # returns = A + V, V = 0


@pytest.mark.parametrize("name", ["coarse", "adaptive"])
def test_scalar_only_rewards_give_no_token_rewards(name):
    kind, fine = RLTF_REWARDS[name]
    r = RLTFReward("builtin", kind=kind, fine=fine, tokenizer=FakeTokenizer(), problems={})
    close(batch(r).token_rewards, [[0] * 6, [0] * 6])


@pytest.mark.parametrize(("name", "kind", "fine"), [("coarse", "coarse", False), ("adaptive", "adaptive", False),
                                                     ("coarse+fine", "coarse", True), ("rltf", "adaptive", True)])  # fmt: skip
def test_build_reward_returns_rltf_reward_with_the_tokenizer(name, kind, fine):
    tok = FakeTokenizer()
    r = build_reward(cfg(reward=name), {}, Limits(), 1, None, tok)
    assert isinstance(r, RLTFReward)
    assert (r.kind, r.fine, r.tokenizer) == (kind, fine, tok)
    r.close()


def test_unknown_reward_names_the_field():
    from execrl.data import DataError

    with pytest.raises(DataError, match="field 'reward'.*rltf"):
        cfg(reward="fine")
