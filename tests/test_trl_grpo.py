"""`ExecutionReward` inside TRL's own `GRPOTrainer`: the real reward signature, not a copy of it.

Slow (TRL's trainer start-up and two steps take a while on a CPU): run with `-m slow`. A tiny Llama
from a config and a locally trained tokenizer (tests/tinymodel.py); no hub access.
"""

from __future__ import annotations

import math

import pytest

from engine_stubs import EvenPassEngine
from execrl.data import builtin
from execrl.rewards.execution import ExecutionReward
from tinymodel import make_tiny_model


@pytest.mark.slow
def test_trl_grpo_trainer_runs_with_execution_reward(tmp_path, executor):
    trl = pytest.importorskip("trl", reason="TRL is a test dependency: make install adds it")
    datasets = pytest.importorskip("datasets")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = make_tiny_model(tmp_path / "tiny")
    problems = {t: p for t, p in builtin.load().items() if p.split == "train"}
    ids = sorted(problems)[:4]
    dataset = datasets.Dataset.from_list(
        [{"prompt": builtin.prompt(problems[t], chat=False), "task_id": t} for t in ids]
    )
    calls: list[dict] = []

    # a random tiny model never passes: every other program is reported as passing, so that the
    # groups have non-zero advantages and the update must move the weights
    reward = ExecutionReward(
        "builtin", problems=problems, kind="pass_ratio", executor=EvenPassEngine(executor)
    )

    def recorded(completions, **columns):  # what TRL passes, checked below
        calls.append({"n": len(completions), "columns": set(columns)})
        return reward(completions, **columns)

    recorded.__name__ = reward.__name__
    trainer = trl.GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        reward_funcs=[recorded],
        args=trl.GRPOConfig(
            output_dir=str(tmp_path / "out"),
            num_generations=2,
            per_device_train_batch_size=4,
            max_completion_length=8,
            max_steps=2,
            learning_rate=1e-3,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            seed=0,
        ),
        train_dataset=dataset,
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    try:
        trainer.train()
    finally:
        reward.close()
    assert len(calls) >= 2 and all(c["n"] == 4 for c in calls)
    assert "task_id" in calls[0]["columns"]  # TRL passes the dataset's columns as keyword arguments
    key = f"rewards/{reward.__name__}/mean"
    rows = [r for r in trainer.state.log_history if key in r]
    assert rows and all(0 < r[key] < 1 and math.isfinite(r["loss"]) for r in rows)
    changed = any(not p.detach().equal(before[n]) for n, p in trainer.model.named_parameters())
    assert changed, "two GRPO steps left every weight as it was"
