"""The self-imitation replay buffer (trainers/replay.py): what goes in, what comes out, the loss."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from engine_stubs import EvenPassEngine
from execrl.trainers.replay import ReplayBuffer, admitted, imitation_loss
from execrl.trainers.rl import train
from execrl.trainers.rl_config import RLConfig
from execrl.trainers.rollout import Rollout
from tinymodel import make_tiny_model, write_rl_tasks

PAD = 0


def rollout(prompts: list[list[int]], completions: list[list[int]]) -> Rollout:
    """Left-padded prompts, right-padded completions, as the sampler lays them out."""
    P, T, B = max(map(len, prompts)), max(map(len, completions)), len(prompts)
    r = Rollout(torch.full((B, P), PAD), torch.zeros(B, P, dtype=torch.long), torch.full((B, T), PAD),
                torch.zeros(B, T, dtype=torch.long), [""] * B, ["stop"] * B)  # fmt: skip
    for b, (p, c) in enumerate(zip(prompts, completions)):
        r.prompt_ids[b, P - len(p) :], r.prompt_mask[b, P - len(p) :] = torch.tensor(p), 1
        r.completion_ids[b, : len(c)], r.completion_mask[b, : len(c)] = torch.tensor(c), 1
    return r


def held(buf: ReplayBuffer) -> list[tuple[str, list[int], list[int]]]:
    return [(t, p, c) for t, c, p in buf.state_dict()["items"]]


def test_only_passing_rows_go_in_without_padding():
    buf = ReplayBuffer(10, PAD)
    r = rollout([[5, 6], [7]], [[8, 9, 2], [3]])
    assert buf.add(["a", "b"], r, [False, True]) == 1
    assert held(buf) == [("b", [7], [3])]


def test_a_program_is_held_once_per_task_but_again_for_another_task():
    buf = ReplayBuffer(10, PAD)
    r = rollout([[5], [5], [6]], [[8, 2], [8, 2], [8, 2]])
    assert buf.add(["a", "a", "b"], r, [True, True, True]) == 2
    assert buf.add(["a"], rollout([[5]], [[8, 2]]), [True]) == 0
    assert [t for t, _, _ in held(buf)] == ["a", "b"]
    assert buf.added == 2 and buf.tasks == 2


def test_fifo_drops_the_oldest_beyond_capacity():
    buf = ReplayBuffer(2, PAD)
    for i in range(4):
        buf.add([f"t{i}"], rollout([[1]], [[10 + i]]), [True])
    assert [t for t, _, _ in held(buf)] == ["t2", "t3"]
    assert len(buf) == 2 and buf.added == 4


def test_draw_lays_out_rows_like_the_sampler_and_never_repeats():
    buf = ReplayBuffer(10, PAD)
    buf.add(["a", "b", "c"], rollout([[5, 6, 7], [8], [9, 9]], [[1], [2, 3, 4], [5, 6]]), [True] * 3)
    d = buf.draw(8, torch.Generator().manual_seed(0))
    assert d is not None and len(d) == 3  # all of them, once each
    got = set()
    for b in range(3):
        p = d.prompt_ids[b][d.prompt_mask[b].bool()].tolist()
        c = d.completion_ids[b][d.completion_mask[b].bool()].tolist()
        assert d.prompt_mask[b, -1] == 1 and d.completion_mask[b, 0] == 1  # left / right padding
        got.add((tuple(p), tuple(c)))
    assert got == {((5, 6, 7), (1,)), ((8,), (2, 3, 4)), ((9, 9), (5, 6))}
    one = buf.draw(1, torch.Generator().manual_seed(0))
    assert one is not None and len(one) == 1


def test_draw_from_an_empty_buffer_is_none():
    assert ReplayBuffer(3, PAD).draw(4, torch.Generator()) is None


def test_state_dict_round_trip_keeps_order_and_count():
    buf = ReplayBuffer(5, PAD)
    buf.add(["a", "b"], rollout([[1], [2]], [[3], [4, 5]]), [True, True])
    again = ReplayBuffer(5, PAD)
    again.load_state_dict(buf.state_dict())
    assert held(again) == held(buf) and again.added == 2


@pytest.mark.parametrize(
    ("rewards", "group", "expected"),
    [
        ([0.2, 0.9, 0.5, 0.1], 4, [False, True, False, False]),  # the best of one prompt
        ([0.2, 0.9, 0.9, 0.1], 4, [False, True, True, False]),  # tied best: both (distinct programs)
        ([0.5, 0.5, 0.1, 0.3], 2, [False, False, False, True]),  # first prompt all equal: nothing
        ([-3.0, -1.0, 2.0, 7.0], 2, [False, True, False, True]),  # the scale does not matter
        ([None, 0.4, 0.1], 3, [None, True, False]),  # unscored: no verdict, not a failure
        ([None, 0.4], 2, [None, False]),  # one scored row: no contrast
        ([0.7, 0.1, 0.9], 1, [False, False, False]),  # PPO-S: a group of one has no best
    ],
)
def test_best_admits_each_prompts_highest_reward_when_rewards_differ(rewards, group, expected):
    passed = [False] * len(rewards)  # the tests are not read: nothing passed
    assert admitted("best", passed, rewards, group) == expected


def test_passed_admits_the_test_verdicts_whatever_the_reward():
    assert admitted("passed", [True, None, False], [0.0, 1.0, 9.0], 3) == [True, None, False]


@pytest.mark.parametrize(("rule", "rows", "group"), [("kept", 2, 2), ("best", 3, 2), ("best", 2, 0),
                                                   ("random", 3, 2), ("random", 2, 0)])  # fmt: skip
def test_admission_errors_are_named(rule, rows, group):
    with pytest.raises(ValueError, match="admission rule|groups of"):
        admitted(rule, [True] * rows, [0.0] * rows, group, rng=random.Random(0))


@pytest.mark.parametrize(
    ("rewards", "threshold", "expected"),
    [
        ([0.2, 0.9, 0.5, 0.1], 0.5, [False, True, True, False]),  # at the threshold: admitted
        ([0.9, 0.9, 0.9, 0.9], 0.5, [True, True, True, True]),  # no contrast needed, unlike best
        ([None, 0.4, 7.0], 1.0, [None, False, True]),  # unscored: no verdict
        ([-3.0, -1.0], -2.0, [False, True]),  # any scale
    ],
)
def test_threshold_admits_every_sample_whose_reward_reaches_it(rewards, threshold, expected):
    passed = [True] * len(rewards)  # the tests are not read: everything "passed"
    assert (
        admitted("threshold", passed, rewards, 2 if len(rewards) % 2 == 0 else 3, threshold=threshold)
        == expected
    )


def test_threshold_admission_needs_a_threshold():
    with pytest.raises(ValueError, match="needs a threshold"):
        admitted("threshold", [True, False], [0.1, 0.2], 2)


def test_random_admission_needs_a_seeded_rng():
    with pytest.raises(ValueError, match="seeded rng"):
        admitted("random", [True, False], [0.1, 0.2], 2)


@pytest.mark.parametrize(
    ("rewards", "group"),
    [
        ([0.2, 0.9, 0.5, 0.1], 4),
        ([0.5, 0.5, 0.5, 0.5, 0.1, 0.3], 2),  # equal rewards: still one per prompt (best: none)
        ([None, 0.4, 0.1, None, None, 0.7], 3),
        ([0.7, 0.1, 0.9], 1),  # a group of one: its one scored row
    ],
)
def test_random_admits_exactly_one_scored_row_per_prompt(rewards, group):
    for seed in range(50):
        out = admitted("random", [True] * len(rewards), rewards, group, rng=random.Random(seed))
        for start in range(0, len(rewards), group):
            chunk, got = rewards[start : start + group], out[start : start + group]
            assert [g is None for g in got] == [r is None for r in chunk]  # unscored: no verdict
            assert sum(g is True for g in got) == (1 if any(r is not None for r in chunk) else 0)


def test_random_admission_reads_neither_the_tests_nor_the_rewards_values():
    picks = admitted("random", [True, False] * 4, [0.1, 0.9, 0.3, 0.2] * 2, 4, rng=random.Random(3))
    other = admitted("random", [False, True] * 4, [9.0, -1.0, 0.0, 5.0] * 2, 4, rng=random.Random(3))
    assert picks == other


def test_random_admission_draws_every_row_of_a_prompt_alike():
    counts = [0, 0, 0, 0]
    for seed in range(2000):
        out = admitted("random", [False] * 4, [0.9, 0.1, 0.1, 0.1], 4, rng=random.Random(seed))
        counts[out.index(True)] += 1
    assert all(400 < c < 600 for c in counts)  # 500 each expected; the best row is not favoured


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, PAD)


def test_imitation_loss_hand_value_and_padding():
    logp = torch.tensor([[-1.0, -2.0, -9.0], [-0.5, -9.0, -9.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert imitation_loss(logp, mask).item() == pytest.approx(3.5 / 3)
    assert imitation_loss(logp, mask, norm=7).item() == pytest.approx(3.5 / 7)
    assert imitation_loss(logp, torch.zeros_like(mask)).item() == 0.0


# --- in the trainer ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return write_rl_tasks(tmp_path_factory.mktemp("data") / "tasks.jsonl", test_tasks=0)


def config(tiny: str, data: str, out: Path, **kw) -> RLConfig:
    base = dict(model=tiny, out=str(out), data=data, prompts_per_step=2, samples_per_prompt=2,
                max_new_tokens=10, max_steps=3, lr=1e-3, eval_split=None, report_to="none", workers=1,
                temperature=2.0, replay_size=64, replay_batch=3)  # fmt: skip
    return RLConfig(**{**base, **kw})


def log(out: Path) -> list[dict]:
    drop = ("seconds", "train_seconds")
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(drop)} for r in rows]


def test_trainer_fills_the_buffer_with_passing_samples_and_replays_them(tiny, data, tmp_path, executor):
    out = tmp_path / "run"
    train(config(tiny, data, out), executor=EvenPassEngine(executor))
    rows = log(out)
    assert [r["replay/added"] for r in rows][0] == 2  # 4 samples, the 2 even ones "pass"
    assert all(0 < r["replay/size"] <= 6 for r in rows)
    assert all(0 < r["replay/tasks"] <= r["replay/size"] for r in rows)
    assert all(r["replay/nll"] > 0 for r in rows)  # drawn after the step's samples went in


def test_best_admission_in_the_trainer_follows_the_reward(tiny, data, tmp_path, executor):
    """reward binary, replay_admit best: with the even samples passing, each prompt's passing sample
    is its best (2 added at step 1); with nothing passing every reward is 0, no prompt has a best."""
    out = tmp_path / "run"
    train(config(tiny, data, out, replay_admit="best", reward="binary"), executor=EvenPassEngine(executor))
    assert log(out)[0]["replay/added"] == 2
    flat = tmp_path / "flat"
    train(config(tiny, data, flat, replay_admit="best", reward="binary", max_steps=1))
    assert log(flat)[0]["replay/added"] == 0


def test_random_admission_in_the_trainer_adds_one_sample_per_prompt(tiny, data, tmp_path):
    """reward binary, replay_admit random, nothing passing: best would add nothing (every reward is
    0), random adds one sample of each of the step's 2 prompts and replays it."""
    out = tmp_path / "run"
    train(config(tiny, data, out, replay_admit="random", reward="binary", max_steps=1))
    [row] = log(out)
    assert row["replay/added"] == 2 and row["replay/nll"] > 0


def test_threshold_admission_in_the_trainer_reads_the_reward_not_the_tests(tiny, data, tmp_path, executor):
    """reward binary, with the even samples passing: a threshold of 0.5 admits the 2 passing
    samples; nothing passing, a threshold of 0 admits every sample (each reward is 0: no best, all reach 0)."""
    out = tmp_path / "run"
    train(config(tiny, data, out, replay_admit="threshold", replay_threshold=0.5, reward="binary", max_steps=1),
          executor=EvenPassEngine(executor))  # fmt: skip
    assert log(out)[0]["replay/added"] == 2
    flat = tmp_path / "flat"
    train(
        config(tiny, data, flat, replay_admit="threshold", replay_threshold=0.0, reward="binary", max_steps=1)
    )
    assert log(flat)[0]["replay/added"] > 0  # best adds nothing here (the test above)


def test_resume_restores_the_buffer(tiny, data, tmp_path, executor):
    engine = EvenPassEngine(executor)
    whole = tmp_path / "whole"
    train(config(tiny, data, whole, save_every=1), executor=engine)
    part = tmp_path / "part"
    train(config(tiny, data, part, save_every=1, max_steps=2), executor=engine)
    state = torch.load(part / "checkpoint-1" / "trainer_state.pt", weights_only=False)
    assert len(state["replay"]) == 1 and state["replay"][0]["items"]
    train(config(tiny, data, part, save_every=1, resume=True), executor=engine)
    assert log(part) == log(whole)


def test_replay_steps_are_extra_optimizer_steps(tiny, data, tmp_path, executor):
    out = tmp_path / "run"
    train(
        config(tiny, data, out, max_steps=1, replay_steps=2, replay_batch=1, warmup_steps=100),
        executor=EvenPassEngine(executor),
    )
    [row] = log(out)
    assert row["lr"] == pytest.approx(1e-3 * 4 / 100)  # 1 RL update + 2 replay updates, then lr(step 3)


def test_no_replay_steps_while_the_buffer_is_empty(tiny, data, tmp_path):
    out = tmp_path / "run"
    train(config(tiny, data, out, max_steps=1, replay_steps=2, warmup_steps=100))  # nothing passes
    [row] = log(out)
    assert row["replay/size"] == 0 and row["replay/nll"] == 0.0
    assert row["lr"] == pytest.approx(1e-3 * 2 / 100)


def test_draws_are_balanced_by_task_not_by_program():
    buf = ReplayBuffer(100, PAD)
    buf.add(["easy"] * 9 + ["hard"], rollout([[1]] * 10, [[10 + i] for i in range(10)]), [True] * 10)
    tasks = []
    for seed in range(200):
        d = buf.draw(1, torch.Generator().manual_seed(seed))
        assert d is not None
        tasks.append("hard" if d.completion_ids[0, 0] == 19 else "easy")
    assert 70 < tasks.count("hard") < 130  # ~1/2, not 1/10
    two = buf.draw(2, torch.Generator().manual_seed(0))
    assert two is not None and sorted(two.completion_ids[:, 0].tolist())[-1] == 19  # both tasks


def test_failing_weighting_draws_the_tasks_the_policy_still_fails():
    buf = ReplayBuffer(100, PAD, weighting="failing")
    # "solid": 4 of 4 samples passed; "shaky": 1 of 4 (weights 0.1 and 0.75)
    r = rollout([[1]] * 8, [[10], [11], [12], [13], [20], [21], [22], [23]])
    buf.add(["solid"] * 4 + ["shaky"] * 4, r, [True] * 4 + [True, False, False, False])
    firsts = []
    for seed in range(300):
        d = buf.draw(1, torch.Generator().manual_seed(seed))
        assert d is not None
        firsts.append(int(d.completion_ids[0, 0]))
    shaky = sum(c == 20 for c in firsts) / len(firsts)
    assert 0.8 < shaky < 0.95  # 0.75 / 0.85
    two = buf.draw(2, torch.Generator().manual_seed(0))
    assert two is not None and 20 in two.completion_ids[:, 0].tolist()  # both tasks, each once


def test_failing_weighting_follows_the_latest_samples_and_survives_a_round_trip():
    buf = ReplayBuffer(100, PAD, weighting="failing")
    buf.add(["t", "t"], rollout([[1], [1]], [[10], [11]]), [True, False])
    buf.add(["t", "t"], rollout([[1], [1]], [[10], [12]]), [True, True])  # now solved: weight 0.1
    again = ReplayBuffer(100, PAD, weighting="failing")
    again.load_state_dict(buf.state_dict())
    assert again.state_dict() == buf.state_dict()
    assert buf.state_dict()["fail_rate"] == {"t": 0.0}
    buf.add(["t", "t"], rollout([[1], [1]], [[13], [14]]), [None, True])  # a sandbox error is no failure
    assert buf.state_dict()["fail_rate"] == {"t": 0.0} and len(buf) == 3


def test_unknown_weighting_is_named():
    with pytest.raises(ValueError, match="weighting"):
        ReplayBuffer(4, PAD, weighting="newest")


def test_pg_coef_zero_leaves_only_the_replay_loss(tiny, data, tmp_path, executor):
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(tiny).state_dict()
    out = tmp_path / "off"
    train(config(tiny, data, out, max_steps=1, pg_coef=0.0, replay_size=0))  # no replay: no gradient at all
    after = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    out = tmp_path / "replay"
    train(config(tiny, data, out, max_steps=1, pg_coef=0.0), executor=EvenPassEngine(executor))
    after = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert not all(torch.equal(before[k], after[k]) for k in before)  # the replay term still trains
