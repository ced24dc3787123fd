"""Progress bars tell the truth: a time-bounded run counts its budget, long evaluations count samples."""

from __future__ import annotations

import io
import re

import pytest
from tqdm import tqdm

from execrl.trainers.tracking import RunProgress


def test_step_bounded_run_counts_steps():
    p = RunProgress(max_steps=50)
    kw = p.tqdm_kwargs(step=0, train_seconds=0.0)
    assert (kw["total"], kw["unit"], kw["initial"]) == (50, "step", 0)
    assert p.position(12, 300.0) == 12
    assert p.describe(12, 300.0, reward=0.5) == "reward=0.500"


def test_timed_run_counts_its_budget_not_max_steps():
    """`demo` trains for 7 minutes with max_steps=10,000: 3.5 of 7 minutes after 40 steps is 50% of
    the budget (40/10,000 = 0.4% of the steps is the smaller fraction), and the bar's total is 100
    percent, never 10,000 steps."""
    p = RunProgress(max_steps=10_000, max_minutes=7.0)
    kw = p.tqdm_kwargs(step=0, train_seconds=0.0)
    assert (kw["total"], kw["unit"], kw["initial"]) == (100, "%", 0)
    assert p.position(40, 210.0) == 50.0
    assert p.describe(40, 210.0, reward=0.25) == "step 40, 3.5/7 min of training, reward=0.250"


def test_timed_run_ends_at_whichever_bound_comes_first():
    """max_steps=10 in a 60-minute budget: after 5 steps and 1 minute, the steps are the larger
    fraction (5/10 = 50% against 1/60 = 1.7%); the position never passes 100."""
    p = RunProgress(max_steps=10, max_minutes=60.0)
    assert p.position(5, 60.0) == 50.0
    assert p.position(10, 60.0) == 100.0
    assert p.position(3, 7200.0) == 100.0  # the last step ran past the budget


def test_resumed_timed_run_starts_where_it_stopped():
    p = RunProgress(max_steps=10_000, max_minutes=10.0)
    assert p.tqdm_kwargs(step=30, train_seconds=150.0)["initial"] == 25.0


@pytest.mark.parametrize("progress", [RunProgress(10_000, 7.0), RunProgress(50)])
def test_rendered_bar_shows_no_step_total_for_a_timed_run(progress):
    out = io.StringIO()
    bar = tqdm(desc="grpo", file=out, **progress.tqdm_kwargs(0, 0.0))
    bar.set_postfix_str(progress.describe(40, 210.0, reward=0.5), refresh=False)
    bar.n = progress.position(40, 210.0)
    bar.refresh()
    bar.close()
    line = out.getvalue().split("\r")[-1]
    if progress.timed:
        assert "50% of the budget" in line and "step 40, 3.5/7 min of training" in line
        assert "10000" not in line and "/10" not in line
    else:
        assert "40/50" in line


def test_policy_evaluation_counts_samples_generated_and_executed(tmp_path, capfd, executor):
    """10 samples of each of 3 tasks: both bars end at 30/30 samples."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from execrl.data import builtin
    from execrl.eval.policy import evaluate_policy
    from execrl.rewards.execution import ExecutionReward
    from tinymodel import make_tiny_model

    path = make_tiny_model(tmp_path / "model")
    lm, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    problems = dict(list(builtin.generate(seed=0, size=20).items())[:3])
    prompts = {t: tok(builtin.prompt(p, chat=False))["input_ids"] for t, p in problems.items()}
    reward = ExecutionReward("builtin", problems=problems, executor=executor)
    capfd.readouterr()  # saving the tiny model draws its own bar
    res = evaluate_policy(lm, tok, reward, list(problems), prompts, n=10, temperature=0.8, max_new_tokens=4,
                          ks=(1, 10), progress="held-out")  # fmt: skip
    ends = [line.split("\r")[-1] for line in capfd.readouterr().err.split("\n") if line]
    assert [e.split(":")[1].strip() for e in ends] == ["generated", "executed"]
    assert all("30/30" in e for e in ends)
    assert sum(res["status"].values()) == 30


def test_timed_training_run_shows_its_budget(tmp_path, capfd):
    """`execrl train --max-steps 2 --max-minutes 60`: the bar reads steps and minutes of the budget."""
    from execrl.trainers.rl import train
    from execrl.trainers.rl_config import RLConfig
    from tinymodel import make_tiny_model, write_rl_tasks

    cfg = RLConfig(model=make_tiny_model(tmp_path / "model"), out=str(tmp_path / "run"),
                   data=write_rl_tasks(tmp_path / "tasks.jsonl", test_tasks=2), prompts_per_step=2,
                   samples_per_prompt=2, max_new_tokens=4, max_steps=2, max_minutes=60.0, eval_every=0,
                   report_to="none", workers=1)  # fmt: skip
    capfd.readouterr()
    train(cfg)
    last = [line for line in capfd.readouterr().err.split("\n") if "grpo" in line][-1].split("\r")[-1]
    # the minutes spent depend on the machine's load: only their form is checked
    assert "of the budget" in last and re.search(r"step 2, \d+\.\d/60 min of training", last), last
