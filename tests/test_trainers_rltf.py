"""RLTF's loop (trainers/rltf.py): the relative return and the REINFORCE loss against hand values,
the online buffer, and `execrl train --algo rltf` end to end on a tiny real model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from engine_stubs import EvenPassEngine
from execrl.data import DataError
from execrl.trainers.rl import train
from execrl.trainers.rl_config import RLConfig
from execrl.trainers.rltf import OnlineBuffer, reinforce_loss, relative_returns
from execrl.trainers.rollout import Rollout
from tinymodel import make_tiny_model, write_rl_tasks

PAD = 0


def t(x: Any) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


# --- the math ------------------------------------------------------------------------------------


def test_relative_return_is_reward_minus_greedy_plus_penalties_on_real_tokens():
    # row 0: adaptive -0.3 + 1.3 * 1/2 = 0.35 against a greedy -0.6: +0.95 on each of its 3 tokens,
    #        with line 1's tokens (0, 1) charged -0.3: [0.65, 0.65, 0.95], padding 0.
    # row 1: -1.0 (syntax error, global) against the same greedy: -0.4, and -0.3 on every token:
    #        [-0.7, -0.7, -0.7, -0.7].
    scores, greedy = t([0.35, -1.0]), t([-0.6, -0.6])
    dense = t([[-0.3, -0.3, 0.0, 0.0], [-0.3, -0.3, -0.3, -0.3]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    out = relative_returns(scores, greedy, dense, mask)
    torch.testing.assert_close(out, t([[0.65, 0.65, 0.95, 0.0], [-0.7, -0.7, -0.7, -0.7]]))


def test_relative_return_of_a_sample_equal_to_greedy_is_its_penalties_alone():
    out = relative_returns(t([1.0]), t([1.0]), t([[0.0, 0.0]]), torch.tensor([[1, 1]]))
    torch.testing.assert_close(out, t([[0.0, 0.0]]))


def test_reinforce_loss_is_minus_token_mean_of_return_times_logp():
    # marked: (r, logp) = (1, -0.5), (1, -1.0), (-0.5, -2.0); padding (99, -7) ignored.
    # -sum(r * logp) = -(-0.5 - 1.0 + 1.0) = 0.5; over 3 tokens: 0.5 / 3; with norm 5: 0.5 / 5.
    logp = t([[-0.5, -1.0, -7.0], [-2.0, -7.0, -7.0]])
    returns = t([[1.0, 1.0, 99.0], [-0.5, 99.0, 99.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert reinforce_loss(logp, returns, mask).item() == pytest.approx(0.5 / 3)
    assert reinforce_loss(logp, returns, mask, norm=5).item() == pytest.approx(0.5 / 5)


def test_reinforce_gradient_is_minus_return_over_n():
    # d/d logp_t of -sum(r_t logp_t m_t) / N = -r_t m_t / N; r = [1, -0.5, 4], mask [1, 1, 0], so
    # N = 2 marked tokens: [-1/2, +0.5/2, 0] (the unmarked token's return 4 never counts).
    logp = t([[-1.0, -2.0, -3.0]]).requires_grad_()
    reinforce_loss(logp, t([[1.0, -0.5, 4.0]]), torch.tensor([[1, 1, 0]])).backward()
    assert logp.grad is not None
    torch.testing.assert_close(logp.grad, t([[-0.5, 0.25, 0.0]]))


# --- the online buffer ---------------------------------------------------------------------------


def rollout(prompts: list[list[int]], completions: list[list[int]]) -> Rollout:
    return Rollout.from_ids(prompts, completions, PAD)


def test_buffer_keeps_marked_rows_with_their_returns_and_drops_the_oldest():
    buf = OnlineBuffer(3, PAD, {})
    r = rollout([[5, 6], [7]], [[8, 9, 2], [3]])
    returns = t([[0.5, 0.5, 0.2], [9.0, 9.0, 9.0]])
    assert buf.add(r, returns, [True, False]) == 1
    items = buf.state_dict()["items"]
    assert items == [([5, 6], [8, 9, 2], pytest.approx([0.5, 0.5, 0.2]))]
    for i in range(3):
        buf.add(rollout([[1]], [[10 + i]]), t([[float(i)]]), [True])
    assert [c for _, c, _ in buf.state_dict()["items"]] == [[10], [11], [12]]
    assert len(buf) == 3 and buf.refreshes == 4


def test_draw_returns_rows_aligned_with_their_returns_and_never_repeats():
    buf = OnlineBuffer(10, PAD, {})
    buf.add(
        rollout([[1], [2], [3]], [[4], [5, 6], [7, 8, 9]]), t([[1, 0, 0], [2, 2, 0], [3, 3, 3]]), [True] * 3
    )
    drawn = buf.draw(5, torch.Generator().manual_seed(0))
    assert drawn is not None
    r, returns = drawn
    assert len(r) == 3
    for b in range(3):
        n = int(r.completion_mask[b].sum())
        first = int(r.completion_ids[b, 0])
        assert returns[b, :n].tolist() == [float({4: 1, 5: 2, 7: 3}[first])] * n
        assert returns[b, n:].abs().sum() == 0
    assert OnlineBuffer(2, PAD, {}).draw(1, torch.Generator()) is None


def test_state_dict_round_trip():
    buf = OnlineBuffer(4, PAD, {})
    buf.add(rollout([[1], [2]], [[3], [4, 5]]), t([[0.1, 0.0], [0.2, 0.3]]), [True, True])
    other = OnlineBuffer(4, PAD, {})
    other.load_state_dict(buf.state_dict())
    assert other.state_dict() == buf.state_dict()


# --- in the trainer ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return write_rl_tasks(tmp_path_factory.mktemp("data") / "tasks.jsonl", test_tasks=1)


def config(tiny: str, data: str, out: Path, **kw: Any) -> RLConfig:
    base = dict(model=tiny, out=str(out), data=data, algo="rltf", reward="rltf", prompts_per_step=2,
                samples_per_prompt=2, max_new_tokens=10, max_steps=2, lr=1e-3, eval_split=None, report_to="none",
                workers=1, temperature=2.0, rltf_buffer_size=6, rltf_refresh_every=2, rltf_batch=3)  # fmt: skip
    return RLConfig(**{**base, **kw})  # type: ignore[arg-type]


def log(out: Path) -> list[dict[str, Any]]:
    drop = ("seconds", "train_seconds")
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(drop)} for r in rows]


def test_rltf_trains_logs_the_buffer_and_the_baseline(tiny, data, tmp_path):
    out = tmp_path / "run"
    before = {k: v.clone() for k, v in _weights(tiny).items()}
    train(config(tiny, data, out, eval_split="test"))
    rows = log(out)
    assert [r["rltf/buffer_size"] for r in rows] == [4, 6]  # 2 x 2 samples per step, capacity 6
    assert [r["rltf/refreshes"] for r in rows] == [1, 2]
    assert all(r["rltf/rl_steps"] == 2 and r["samples"] == 4 for r in rows)
    for key in ("rltf/greedy_reward", "rltf/greedy_pass_rate", "rltf/return", "rltf/syntax_error_share",
                "rltf/runtime_error_share", "loss", "grad_norm", "status/syntax_error"):  # fmt: skip
        assert key in rows[0], key
    assert all(sum(r[f"rltf/scope_{s}"] for s in ("global", "line", "none")) == 4 for r in rows)
    assert all(-2.0 <= r["reward"] <= 1.0 for r in rows)
    after = _weights(str(out))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert [e["step"] for e in (json.loads(x) for x in (out / "eval.jsonl").read_text().splitlines())] == [
        0,
        2,
    ]


def _weights(model: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(model) / "model.safetensors"))


def test_supervised_steps_alternate_with_rl_steps(tiny, data, tmp_path):
    out = tmp_path / "sft"
    train(config(tiny, data, out, max_steps=1, rltf_sft_every=1, warmup_steps=100))
    [row] = log(out)
    assert row["rltf/sft_steps"] == 2 and row["rltf/sft_nll"] > 0
    assert row["lr"] == pytest.approx(1e-3 * 5 / 100)  # 2 RL + 2 supervised optimizer steps, then lr(step 4)


def test_pg_coef_0_keeps_the_supervised_steps_alone(tiny, data, tmp_path):
    """The ablation: no RL step, the supervised steps on the same cadence (one per would-be RL
    step), and the weights still move."""
    out = tmp_path / "sft-only"
    train(config(tiny, data, out, max_steps=2, rltf_sft_every=1, pg_coef=0.0))
    rows = log(out)
    assert [(r["rltf/rl_steps"], r["rltf/sft_steps"]) for r in rows] == [(0, 2), (0, 2)]
    assert all(r["rltf/sft_nll"] > 0 and r["loss"] == 0 for r in rows)
    before, after = _weights(tiny), _weights(str(out))
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_pg_coef_scales_the_reinforce_loss(tiny, data, tmp_path):
    """Same seed, pg_coef 2: the same samples, twice the REINFORCE loss at the first RL step."""
    one, two = tmp_path / "one", tmp_path / "two"
    train(config(tiny, data, one, max_steps=1, rltf_refresh_every=1))
    train(config(tiny, data, two, max_steps=1, rltf_refresh_every=1, pg_coef=2.0))
    [a], [b] = log(one), log(two)
    assert b["loss"] == pytest.approx(2 * a["loss"], rel=1e-5, abs=1e-7)


def test_resume_restores_the_online_buffer(tiny, data, tmp_path, executor):
    engine = EvenPassEngine(executor)  # some samples pass: returns of both signs
    whole = tmp_path / "whole"
    train(config(tiny, data, whole, max_steps=3, save_every=1), executor=engine)
    part = tmp_path / "part"
    train(config(tiny, data, part, max_steps=2, save_every=1), executor=engine)
    state = torch.load(part / "checkpoint-1" / "trainer_state.pt", weights_only=False)
    assert len(state["replay"][0]["items"]) == 4 and state["replay"][0]["refreshes"] == 1
    train(config(tiny, data, part, max_steps=3, save_every=1, resume=True), executor=engine)
    assert log(part) == log(whole)


def test_grpo_trains_with_the_rltf_reward(tiny, data, tmp_path):
    out = tmp_path / "grpo"
    train(config(tiny, data, out, algo="grpo", max_steps=1))
    [row] = log(out)
    assert row["samples"] == 4 and -1.0 <= row["reward"] <= 1.0
    assert sum(row[f"rltf/scope_{s}"] for s in ("global", "line", "none")) == 4  # RLTF's feedback is logged
    assert 0 <= row["rltf/syntax_error_share"] + row["rltf/runtime_error_share"] <= 1


@pytest.mark.parametrize(("field", "value"), [("kl_coef", 0.1), ("replay_size", 8), ("filtration", "bon"),
                                              ("rltf_refresh_every", 0), ("rltf_batch", 0),
                                              ("rltf_buffer_size", 0), ("rltf_sft_every", -1),
                                              ("rollout_workers", 1), ("rollout_backend", "vllm"),
                                              ("pg_coef", 0.0)])  # fmt: skip
def test_bad_rltf_settings_name_the_field(tiny, data, tmp_path, field, value):
    with pytest.raises(DataError, match=f"field '{field}'"):
        config(tiny, data, tmp_path / "x", **{field: value})


def test_supervised_steps_need_completion_prompts(tiny, data, tmp_path):
    with pytest.raises(DataError, match="rltf_sft_every"):
        train(config(tiny, data, tmp_path / "chat", rltf_sft_every=1, chat=True))
    assert not (tmp_path / "chat").exists()
