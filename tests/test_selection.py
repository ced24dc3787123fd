"""Policy filtration as the selection stage of an RL step (trainers/selection.py)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch

from execrl.data import DataError
from execrl.filtration.r2 import ScoredSample, r_squared
from execrl.trainers import ppo
from execrl.trainers.rl import Policy, _record, _update, train
from execrl.trainers.rl_config import RLConfig
from execrl.trainers.rollout import Batch, Rollout
from execrl.trainers.selection import kept_r2, select
from execrl.trainers.sft import make_accelerator
from tinymodel import make_tiny_model, write_rl_tasks


def t(x: list[float]) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


# ---------------------------------------------------------------- the weights


def test_none_gives_the_weights_without_filtration():
    valid = t([1, 0, 1, 1, 1, 1])
    weights, stats = select(t([0.5, 0.0, 1.0, 0.2, 0.2, 0.9]), valid, 3, "none")
    assert torch.equal(weights, valid)  # 1 per sample with a reward, 0 for the sandbox error
    assert stats["filtration/kept_fraction"] == pytest.approx(5 / 6)


def test_bon_keeps_the_best_of_each_group_scaled_by_its_size():
    # group 0: rows 0-2, best row 1; group 1: rows 3-5 tie at 0.2 except row 5 → row 5
    weights, stats = select(t([0.1, 0.9, 0.5, 0.2, 0.2, 0.7]), t([1] * 6), 3, "bon")
    assert weights.tolist() == [0, 3, 0, 0, 0, 3]  # n·w: each prompt still carries weight 3
    assert stats["filtration/kept_fraction"] == pytest.approx(2 / 6)
    # weighted mean reward of the kept: (3·0.9 + 3·0.7)/6 = 0.8
    assert stats["filtration/kept_reward"] == pytest.approx(0.8)
    assert stats["filtration/weight_max"] == 3


def test_sandbox_errors_are_not_ranked():
    # row 0 has the highest score slot but no reward: bw ranks rows 1, 2, 3 only (n = 3)
    weights, _ = select(t([0.0, 0.4, 0.9, 0.1]), t([0, 1, 1, 1]), 4, "bw")
    # best row 2, worst row 3: 1/2 · 3 each
    assert weights.tolist() == [0, 0, 1.5, 1.5]


def test_br_and_ties_follow_sample_order():
    weights, _ = select(t([0.0, 0.0, 0.0]), t([1, 1, 1]), 3, "br")
    # all tied: row 0 is best (1/2 · 3), rows 1, 2 get 1/4 · 3
    assert weights.tolist() == [1.5, 0.75, 0.75]


@pytest.mark.parametrize("strategy", ["none", "bon", "br", "bw", "pow-k"])
def test_kept_r2_is_analyzes_r2_of_the_kept_samples(strategy):
    """Per step, R² over the kept samples equals `execrl filtration analyze`'s R² of the same
    strategy on the same (reward, score) rows — sandbox errors (no reward) left out, ties and a
    group whose valid samples are fewer than N included."""
    g = torch.Generator().manual_seed(3)
    G, prompts = 5, 6
    scores = torch.randint(0, 4, (G * prompts,), generator=g).float() / 4  # ties on purpose
    actual = (torch.randint(0, 5, (G * prompts,), generator=g).float() / 4).tolist()
    valid = torch.ones(G * prompts)
    valid[[2, 7, 8]] = 0  # group 0 ranks 4 samples, group 1 ranks 3
    k = 2.0 if strategy == "pow-k" else None
    weights, _ = select(scores, valid, G, strategy, k=k)
    samples = [ScoredSample(b // G, float(scores[b]), actual[b]) for b in range(G * prompts) if valid[b]]
    expected = r_squared(samples, strategy, 10, k=k).r2
    got = kept_r2(scores, valid, weights, G, actual)
    assert expected is not None
    assert got["filtration/kept_r2"] == pytest.approx(expected, abs=1e-9)


def test_kept_r2_is_absent_where_undefined():
    scores, valid = t([0.1, 0.9, 0.5, 0.2]), t([1, 1, 1, 1])
    weights, _ = select(scores, valid, 2, "bw")
    assert kept_r2(scores, valid, weights, 2, [0.0, 0.0, 0.0, 0.0]) == {}  # every bin the same score
    assert kept_r2(scores, t([0, 0, 0, 0]), torch.zeros(4), 2, [0.0, 1.0, 0.0, 1.0]) == {}  # nothing kept


def test_config_names_missing_and_bad_filtration_fields():
    base: dict[str, Any] = {"model": "m", "out": "o"}
    with pytest.raises(DataError, match="'filtration' must be one of"):
        RLConfig(**base, filtration="best")
    with pytest.raises(DataError, match="'filtration_threshold' is required"):
        RLConfig(**base, filtration="top-random")
    with pytest.raises(DataError, match="'filtration_k' must be a finite number >= 0"):
        RLConfig(**base, filtration="pow-k", filtration_k=-1.0)
    with pytest.raises(DataError, match="'filtration_low_threshold' must be below"):
        RLConfig(**base, filtration="top-bottom", filtration_threshold=0.5, filtration_low_threshold=0.5)


# ---------------------------------------------------------------- a PPO update on the tiny model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def ppo_update(
    tiny: str, completions: list[list[int]], rewards: list[float], filtration: str
) -> dict[str, Any]:
    """One `_update` (2 epochs x 2 minibatches, micro-batches of 2) from the tiny model's weights
    with SGD, on 2 prompts x 3 samples; returns each parameter's change."""
    from transformers import AutoModelForCausalLM

    cfg = RLConfig(model=tiny, out="unused", algo="ppo", prompts_per_step=2, samples_per_prompt=3,
                   epochs=2, minibatches=2, micro_batch_size=2, max_grad_norm=0.0, filtration=filtration)  # fmt: skip
    accelerator = make_accelerator(False)
    lm = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    head = ppo.ValueHead(lm.config.hidden_size)
    torch.nn.init.normal_(head.proj.weight, std=0.1, generator=torch.Generator().manual_seed(0))
    policy = Policy(lm, head)
    before = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.5)  # the change is the gradient itself
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    policy, optimizer = accelerator.prepare(policy, optimizer)
    prompts = [[5, 6, 7]] * 3 + [[8, 9]] * 3
    rollout = Rollout.from_ids(prompts, completions, pad=1)
    old_logp, old_values = _record(policy, rollout, 2, True)
    scores, valid = t(rewards), t([1] * 6)
    weights, _ = select(scores, valid, 3, filtration)
    batch = Batch(rollout, scores, valid, torch.zeros(rollout.completion_ids.shape), weights, old_logp,
                  None, old_values, 3)  # fmt: skip
    adv, returns = ppo.advantages(batch, cfg)
    _update(cfg, ppo, 0, accelerator, policy, optimizer, scheduler, batch, adv, returns)
    after = accelerator.unwrap_model(policy).state_dict()
    return {k: after[k] - before[k] for k in before}


def test_ppo_with_bon_trains_only_on_the_best_sample(tiny):
    """bon keeps rows 1 and 3 (the best of each group). Replacing every other sample — its tokens,
    hence its log-probs, values and advantage, and its reward (still below the best) — must not
    change the update at all; with `none` the same change does move it."""
    g = torch.Generator().manual_seed(0)
    completions = torch.randint(10, 300, (6, 5), generator=g).tolist()
    rewards = [0.2, 0.9, 0.5, 1.0, 0.0, 0.3]
    others = torch.randint(10, 300, (6, 5), generator=g).tolist()
    changed = [others[i] if i not in (1, 3) else completions[i] for i in range(6)]
    changed_rewards = [0.7, 0.9, -1.0, 1.0, 0.4, 0.8]

    kept = ppo_update(tiny, completions, rewards, "bon")
    swapped = ppo_update(tiny, changed, changed_rewards, "bon")
    assert any(d.abs().max() > 0 for d in kept.values())  # the best samples did train
    for name in kept:
        torch.testing.assert_close(swapped[name], kept[name], rtol=0, atol=1e-7, msg=name)

    full = ppo_update(tiny, completions, rewards, "none")
    full_swapped = ppo_update(tiny, changed, changed_rewards, "none")
    assert max(float((full[k] - full_swapped[k]).abs().max()) for k in full) > 1e-4


def test_train_logs_the_kept_fraction(tiny, tmp_path):
    data = write_rl_tasks(tmp_path / "tasks.jsonl", test_tasks=2)
    out = tmp_path / "run"
    cfg = RLConfig(model=tiny, out=str(out), data=data, algo="ppo", prompts_per_step=2, samples_per_prompt=2,
                   max_new_tokens=8, max_steps=1, eval_split=None, report_to="none", workers=1,
                   filtration="bon")  # fmt: skip
    train(cfg)
    row = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert row["filtration/kept_fraction"] == 0.5  # one of each prompt's two samples
    assert row["filtration/weight_max"] == 2.0
    assert math.isfinite(row["loss"])
