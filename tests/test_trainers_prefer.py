"""`execrl prefer` (PLUM's preference rounds) on a tiny real model, the real sandbox and built-in tasks.

The tiny model's weights are random, so its own samples never pass: the tests that need pairs
give the round another model's programs (`samples`, the off-policy mode), written here from the
tasks' reference solutions (passing) and wrong bodies (failing)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from execrl.cli import main as cli
from execrl.data import builtin
from execrl.trainers.prefer import train
from execrl.trainers.prefer_config import PreferConfig
from execrl.trainers.prefer_round import batch_order, sequence_logps
from execrl.trainers.preference_losses import dpo_loss, kto_kl, kto_loss
from tinymodel import make_tiny_model, write_rl_tasks


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return write_rl_tasks(tmp_path_factory.mktemp("data") / "tasks.jsonl", test_tasks=1)


def train_tasks(data: str) -> list[Any]:
    return [p for p in builtin.load(data).values() if p.split == "train"]


@pytest.fixture(scope="module")
def valid(tmp_path_factory, data) -> str:
    """V.jsonl: each train task's own asserts marked valid, plus a wrong test marked invalid."""
    path = tmp_path_factory.mktemp("v") / "V.jsonl"
    rows = [{"task_id": p.task_id, "test": t, "valid": True} for p in train_tasks(data) for t in p.tests]
    first = train_tasks(data)[0].task_id
    rows.append({"task_id": first, "test": "assert solve([]) == 'wrong'", "valid": False})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def write_samples(path: Path, data: str, passing: int = 2, failing: int = 2, only_pass: int = 0) -> str:
    """Per train task `passing` distinct passing programs and `failing` failing ones; the first
    `only_pass` tasks get passing programs only."""
    rows = []
    for i, p in enumerate(train_tasks(data)):
        good = [p.solution + f"    # variant {k}\n" for k in range(passing)]
        bad = [] if i < only_pass else [f"    return None  # wrong {k}\n" for k in range(failing)]
        rows += [{"task_id": p.task_id, "completion": c} for c in good + bad]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def config(tiny: str, data: str, out: Path, **kw: Any) -> PreferConfig:
    base: dict[str, Any] = dict(model=tiny, out=str(out), data=data, rounds=1, samples_per_prompt=4,
                                max_new_tokens=8, max_pairs_per_prompt=2, batch_size=4, micro_batch_size=4,
                                lr=1e-2, eval_split=None, workers=1)  # fmt: skip
    base.update(kw)
    return PreferConfig(**base)


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def weights(directory: str | Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(directory).state_dict()


def recorded(out: Path, algo: str, step: int) -> tuple[Any, list[tuple[int, ...]]]:
    """The round's data and the batch that optimizer step `step` (1-based) of round 0 trained on."""
    data = torch.load(out / "round-0.pt", weights_only=False)
    order = batch_order(len(data.batches), 1, 0, 0)
    return data, data.batches[order[step - 1]]


def test_dpo_round_changes_weights_and_its_loss_is_the_pure_functions(tiny, data, valid, tmp_path):
    """Step 1: the policy is the round's reference, so h = 0 and every pair's loss is log 2.
    Step 2: the logged loss is `dpo_loss` of the policy after step 1 (checkpoint-1) and the
    reference log-probs recorded in round-0.pt, averaged over the batch."""
    from transformers import AutoModelForCausalLM

    out = tmp_path / "dpo"
    samples = write_samples(tmp_path / "s.jsonl", data)
    summary = train(config(tiny, data, out, algo="dpo", tests=valid, samples=samples, save_every=1))
    [stats] = rows(out / "rounds.jsonl")
    assert stats["pairs"] == 2 * 6 and stats["chosen"] == 12 and stats["rejected"] == 12
    log = rows(out / "log.jsonl")
    assert summary["steps"] == len(log) == 3  # 12 pairs in batches of 4
    assert log[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margin", "accuracy", "logps/chosen", "pairs"):
        assert key in log[0], key
    before, after = weights(tiny), weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)

    round_data, batch = recorded(out, "dpo", 2)
    lm = AutoModelForCausalLM.from_pretrained(out / "checkpoint-1")
    chosen, rejected = [it[0] for it in batch], [it[1] for it in batch]
    pc = sequence_logps(lm, round_data.seqs.select(chosen), 16)
    pr = sequence_logps(lm, round_data.seqs.select(rejected), 16)
    ref = round_data.ref_logp
    losses, _, _ = dpo_loss(pc, pr, ref[chosen], ref[rejected], beta=0.1)
    assert log[1]["loss"] == pytest.approx(float(losses.mean()), rel=1e-4)
    assert log[1]["loss"] != pytest.approx(math.log(2), abs=1e-6)


def test_kto_round_changes_weights_and_its_loss_is_the_pure_functions(tiny, data, valid, tmp_path):
    """KTO: 24 distinct labelled programs (12 desirable) in batches of 4; the step-2 loss is
    `kto_loss` with `kto_kl` over the batch's mismatched pairs (recorded in round-0.pt)."""
    from transformers import AutoModelForCausalLM

    out = tmp_path / "kto"
    samples = write_samples(tmp_path / "s.jsonl", data)
    train(config(tiny, data, out, algo="kto", tests=valid, samples=samples, save_every=1))
    [stats] = rows(out / "rounds.jsonl")
    assert stats["examples"] == 24 and stats["pairs"] == 0
    log = rows(out / "log.jsonl")
    assert len(log) == 6
    assert log[0]["loss"] == pytest.approx(0.5, abs=1e-5)  # policy = reference: 1 - sigmoid(0)
    before, after = weights(tiny), weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)

    round_data, batch = recorded(out, "kto", 2)
    lm = AutoModelForCausalLM.from_pretrained(out / "checkpoint-1")
    own, kl_rows = [it[0] for it in batch], [it[2] for it in batch]
    ref = round_data.ref_logp
    kl = kto_kl(sequence_logps(lm, round_data.seqs.select(kl_rows), 16), ref[kl_rows])
    desirable = torch.tensor([bool(it[1]) for it in batch])
    losses, _, _ = kto_loss(sequence_logps(lm, round_data.seqs.select(own), 16), ref[own], desirable, kl)
    assert log[1]["loss"] == pytest.approx(float(losses.mean()), rel=1e-4)
    assert log[1]["kl"] == pytest.approx(float(kl), abs=1e-6)


def test_kto_balance_raises_the_desirable_weight_to_balance_the_round(tiny, data, valid, tmp_path):
    """1 passing and 3 failing programs per task: 6 desirable, 18 undesirable examples, so the
    desirable weight becomes 3; step 1 (policy = reference, KL 0) costs weight x 1/2 per example."""
    out = tmp_path / "kto-balance"
    samples = write_samples(tmp_path / "s.jsonl", data, passing=1, failing=3)
    train(config(tiny, data, out, algo="kto", tests=valid, samples=samples, kto_balance=True))
    [stats] = rows(out / "rounds.jsonl")
    assert (stats["chosen"], stats["rejected"], stats["desirable_weight"]) == (6, 18, 3.0)
    round_data, batch = recorded(out, "kto", 1)
    expected = sum(1.5 if it[1] else 0.5 for it in batch) / len(batch)
    assert rows(out / "log.jsonl")[0]["loss"] == pytest.approx(expected, abs=1e-5)


def test_kto_without_balance_keeps_the_configured_weight(tiny, data, valid, tmp_path):
    out = tmp_path / "kto-plain"
    samples = write_samples(tmp_path / "s.jsonl", data, passing=1, failing=3)
    train(config(tiny, data, out, algo="kto", tests=valid, samples=samples, desirable_weight=1.25))
    [stats] = rows(out / "rounds.jsonl")
    assert stats["desirable_weight"] == 1.25
    round_data, batch = recorded(out, "kto", 1)
    expected = sum(0.625 if it[1] else 0.5 for it in batch) / len(batch)
    assert rows(out / "log.jsonl")[0]["loss"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("algo", ["dpo", "kto"])
def test_sft_coef_logs_the_passing_programs_nll_and_changes_the_update(tiny, data, valid, tmp_path, algo):
    """Step 1's logged `nll` is the token-mean NLL of the batch's passing programs under the
    starting model (the recorded round data); the same step without it moves the weights elsewhere;
    without sft_coef no `nll` is logged."""
    samples = write_samples(tmp_path / "s.jsonl", data)
    with_nll, without = tmp_path / "with", tmp_path / "without"
    train(config(tiny, data, with_nll, algo=algo, tests=valid, samples=samples, sft_coef=1.0))
    train(config(tiny, data, without, algo=algo, tests=valid, samples=samples))
    round_data, batch = recorded(with_nll, algo, 1)
    good = [it[0] for it in batch if algo == "dpo" or it[1]]
    seqs = round_data.seqs.select(good)
    from transformers import AutoModelForCausalLM

    logp = sequence_logps(AutoModelForCausalLM.from_pretrained(tiny), seqs, 16)
    expected = float((-logp / seqs.completion_mask.sum(-1).clamp(min=1)).mean())
    row = rows(with_nll / "log.jsonl")[0]
    assert row["nll"] == pytest.approx(expected, rel=1e-4)
    assert "nll" not in rows(without / "log.jsonl")[0]
    a, b = weights(with_nll), weights(without)
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_a_prompt_with_only_passing_samples_gives_no_pair(tiny, data, valid, tmp_path):
    out = tmp_path / "only-pass"
    samples = write_samples(tmp_path / "s.jsonl", data, only_pass=2)
    train(config(tiny, data, out, algo="dpo", tests=valid, samples=samples, max_steps=1))
    [data0] = [torch.load(out / "round-0.pt", weights_only=False)]
    assert data0.stats["pairs"] == 2 * 4 and data0.stats["prompts_with_both"] == 4
    texts = data0.seqs.texts
    tasks = {t.task_id for t in train_tasks(data)[:2]}
    solutions = {p.solution for p in train_tasks(data) if p.task_id in tasks}
    assert not any(t.split("    # variant")[0] in solutions for t in texts if t)


def test_on_policy_round_samples_labels_and_trains_on_what_it_gets(tiny, data, valid, tmp_path):
    """The random tiny model's own programs all fail: the round labels them and forms no pair."""
    out = tmp_path / "on-policy"
    summary = train(config(tiny, data, out, algo="dpo", tests=valid, rounds=2, eval_split="test"))
    stats = rows(out / "rounds.jsonl")
    assert [s["round"] for s in stats] == [1, 2]
    assert stats[0]["programs"] == 6 * 4 and stats[0]["labelled"] == 24 and stats[0]["pairs"] == 0
    assert summary["steps"] == 0
    assert [e["round"] for e in rows(out / "eval.jsonl")] == [0, 1, 2]
    assert "pass@1" in stats[1]


def test_ground_truth_tests_label_with_the_benchmarks_own(tiny, data, tmp_path):
    out = tmp_path / "gt"
    samples = write_samples(tmp_path / "s.jsonl", data)
    train(config(tiny, data, out, algo="dpo", ground_truth_tests=True, samples=samples, max_steps=1))
    stats = torch.load(out / "round-0.pt", weights_only=False).stats
    assert stats["chosen"] == 12 and stats["rejected"] == 12 and stats["pairs"] == 12


@pytest.mark.parametrize("algo", ["kto", "dpo"])
def test_stopping_after_k_steps_and_resuming_equals_the_uninterrupted_run(tiny, data, valid, tmp_path, algo):
    """Two rounds (the second's reference is the policy the first left); the run stops after 4
    steps (mid-round 1 for KTO: 6 steps a round) and resumes from its checkpoint."""
    samples = write_samples(tmp_path / "s.jsonl", data)
    common = dict(algo=algo, tests=valid, samples=samples, rounds=2)
    train(config(tiny, data, tmp_path / "whole", **common))
    stopped = train(config(tiny, data, tmp_path / "cut", max_steps=4, **common))
    assert stopped["steps"] == 4 and (tmp_path / "cut" / "checkpoint-4").is_dir()
    train(config(tiny, data, tmp_path / "cut", resume=True, **common))
    whole, cut = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    assert all(torch.equal(whole[k], cut[k]) for k in whole)
    assert [r["loss"] for r in rows(tmp_path / "whole" / "log.jsonl")] == [
        r["loss"] for r in rows(tmp_path / "cut" / "log.jsonl")
    ]
    assert (
        rows(tmp_path / "whole" / "rounds.jsonl") != [] and len(rows(tmp_path / "cut" / "rounds.jsonl")) == 2
    )


def test_yaml_config_with_flag_overrides(tiny, data, valid, tmp_path, capsys):
    cfg = tmp_path / "plum.yaml"
    cfg.write_text(yaml.safe_dump({"model": tiny, "data": data, "tests": valid, "algo": "kto", "rounds": 1,
                                   "samples_per_prompt": 2, "max_new_tokens": 4, "eval_split": None,
                                   "workers": 1}))  # fmt: skip
    out = tmp_path / "run"
    assert cli(["prefer", "--config", str(cfg), "--out", str(out), "--algo", "dpo"]) == 0
    saved = yaml.safe_load((out / "prefer_config.yaml").read_text())
    assert saved["algo"] == "dpo" and saved["samples_per_prompt"] == 2
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rounds"] == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algo", "ppo"], "field 'algo'"),
        (["--reference", "sft"], "field 'reference'"),
        (["--samples-per-prompt", "0"], "field 'samples_per_prompt'"),
        (["--algo", "kto", "--batch-size", "1"], "field 'batch_size'"),
        (["--label-smoothing", "0.5"], "field 'label_smoothing'"),
        (["--rounds", "two"], "field 'rounds'"),
    ],
)
def test_config_errors_name_the_field_and_write_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert cli(["prefer", "--model", "m", "--out", str(out), "--ground-truth-tests", *argv]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_tests_are_required_unless_ground_truth(tmp_path, capsys):
    assert cli(["prefer", "--model", "m", "--out", str(tmp_path / "o")]) == 2
    assert "field 'tests'" in capsys.readouterr().err


def test_tests_file_that_is_not_validate_output_names_the_line(tiny, data, tmp_path, capsys):
    bad = tmp_path / "V.jsonl"
    task = train_tasks(data)[0].task_id
    bad.write_text(json.dumps({"task_id": task, "test": "assert solve([]) == ''"}) + "\n")
    out = tmp_path / "out"
    assert cli(["prefer", "--model", tiny, "--data", data, "--tests", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1" in err and "valid" in err and not out.exists()


def test_samples_of_an_unknown_task_name_the_line(tiny, data, valid, tmp_path, capsys):
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": "nope/1", "completion": "    return 1\n"}) + "\n")
    out = tmp_path / "out"
    argv = ["prefer", "--model", tiny, "--data", data, "--tests", valid, "--samples", str(samples)]
    assert cli([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "s.jsonl:1" in err and "nope/1" in err and not out.exists()


def test_existing_checkpoints_need_resume(tiny, data, valid, tmp_path, capsys):
    samples = write_samples(tmp_path / "s.jsonl", data)
    out = tmp_path / "run"
    train(config(tiny, data, out, algo="dpo", tests=valid, samples=samples, max_steps=1))
    argv = ["prefer", "--model", tiny, "--data", data, "--tests", valid, "--out", str(out)]
    assert cli(argv) == 2
    assert "--resume" in capsys.readouterr().err


def test_lora_with_the_start_as_reference_trains_adapters_and_saves_a_merged_model(
    tiny, data, valid, tmp_path
):
    """With LoRA the "start" reference is the base model with the adapters off: at step 1 the
    adapters are zero, so the policy equals it and the DPO loss is log 2."""
    out = tmp_path / "lora"
    samples = write_samples(tmp_path / "s.jsonl", data)
    summary = train(config(tiny, data, out, algo="dpo", tests=valid, samples=samples, lora_r=4,
                           reference="start", lr=5e-2, rounds=2))  # fmt: skip
    log = rows(out / "log.jsonl")
    assert summary["steps"] == 6 and log[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert log[3]["loss"] != pytest.approx(math.log(2), abs=1e-4)  # round 2: the reference stayed the start
    before, after = weights(tiny), weights(out)  # merged: a standard checkpoint
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)


def test_ipo_round_starts_at_its_target_margin_loss(tiny, data, valid, tmp_path):
    """IPO at step 1 (policy = reference, h = 0): (0 - 1 / (2 beta))^2 = 25 for beta 0.1."""
    out = tmp_path / "ipo"
    samples = write_samples(tmp_path / "s.jsonl", data)
    train(config(tiny, data, out, algo="ipo", tests=valid, samples=samples, max_steps=2))
    log = rows(out / "log.jsonl")
    assert log[0]["loss"] == pytest.approx(25.0, rel=1e-5) and log[1]["loss"] < 25.0
