"""`execrl train` end to end on a tiny real model, the real sandbox and built-in tasks."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine_stubs import HalfBrokenEngine
from execrl.cli import _parser
from execrl.cli import main as cli
from execrl.data import builtin
from execrl.trainers.rl import train
from execrl.trainers.rl_config import RLConfig
from tinymodel import make_tiny_model, write_rl_tasks

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return write_rl_tasks(tmp_path_factory.mktemp("data") / "tasks.jsonl", test_tasks=2)


def config(tiny: str, data: str, out: Path, **kw: Any) -> RLConfig:
    base: dict[str, Any] = dict(
        model=tiny, out=str(out), data=data, prompts_per_step=2, samples_per_prompt=2, max_new_tokens=10,
        max_steps=2, lr=1e-3, eval_every=0, report_to="none", workers=1,
    )  # fmt: skip
    base.update(kw)
    return RLConfig(**base)


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("algo", ["grpo", "ppo", "rloo"])
def test_train_runs_logs_and_saves_a_standard_checkpoint(tiny, data, tmp_path, algo):
    from transformers import AutoModelForCausalLM

    out = tmp_path / algo
    summary = train(config(tiny, data, out, algo=algo, kl_coef=0.05))
    assert summary["steps"] == 2
    log = rows(out / "log.jsonl")
    assert [r["step"] for r in log] == [1, 2]
    for key in ("reward", "pass_rate", "kl", "entropy", "clip_frac", "completion_length", "seconds/generation",
                "seconds/update", "status/passed", "status/sandbox_error", "grad_norm", "loss"):  # fmt: skip
        assert key in log[0], key
    assert all(math.isfinite(r["loss"]) for r in log)
    assert log[0]["samples"] == 4
    assert ("value_loss" in log[0]) == (algo == "ppo")
    assert (out / "value_head.safetensors").exists() == (algo == "ppo")
    assert [r["step"] for r in rows(out / "eval.jsonl")] == [0, 2]
    AutoModelForCausalLM.from_pretrained(out)  # a standard HF checkpoint directory
    assert yaml.safe_load((out / "rl_config.yaml").read_text())["algo"] == algo


def test_ppo_needs_no_group_one_sample_per_prompt(tiny, data, tmp_path):
    # PPO's baseline is its critic: bench/rl.py runs it at 128 prompts x 1 sample
    out = tmp_path / "ppo1"
    train(config(tiny, data, out, algo="ppo", prompts_per_step=4, samples_per_prompt=1))
    log = rows(out / "log.jsonl")
    assert [r["samples"] for r in log] == [4, 4]
    assert all(math.isfinite(r["value_loss"]) and math.isfinite(r["loss"]) for r in log)


def test_training_changes_the_weights_and_tensorboard_logs(tiny, data, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "run"
    # the tiny model never passes (all advantages 0): the entropy bonus is what moves the weights
    train(config(tiny, data, out, report_to="tensorboard", entropy_coef=0.1))
    before, after = load_file(f"{tiny}/model.safetensors"), load_file(str(out / "model.safetensors"))
    assert any(not (before[k] == after[k]).all() for k in before)
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_sandbox_errors_are_masked_and_counted_not_scored(tiny, data, tmp_path, executor):
    out = tmp_path / "broken"
    train(config(tiny, data, out, samples_per_prompt=4, eval_split=None), executor=HalfBrokenEngine(executor))
    for r in rows(out / "log.jsonl"):
        assert r["status/sandbox_error"] == 4 == r["sandbox_errors"]
        assert math.isfinite(r["loss"]) and math.isfinite(r["advantage_abs"])


def test_yaml_config_with_flag_overrides(tmp_path):
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump({"model": "m", "out": "o", "algo": "grpo", "lr": 1e-3, "epochs": 2}))
    args = _parser().parse_args(["train", "--config", str(cfg_file), "--algo", "ppo", "--lr", "1e-5"])
    overrides = {k: getattr(args, k) for k in RLConfig.__dataclass_fields__}
    cfg = RLConfig.load(args.config, overrides)
    assert (cfg.algo, cfg.lr, cfg.epochs, cfg.model) == ("ppo", 1e-5, 2, "m")


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--algo", "sac"], "algo"),
        (["--samples-per-prompt", "1"], "samples_per_prompt"),
        (["--lr", "fast"], "lr"),
        (["--loss-agg", "sum"], "loss_agg"),
        (["--kl-estimator", "k9"], "kl_estimator"),
        (["--replay-batch", "0"], "replay_batch"),
        (["--replay-steps", "-1"], "replay_steps"),
        (["--schedule", "step"], "schedule"),
    ],
)
def test_config_errors_name_the_field_and_write_nothing(tmp_path, capsys, argv, field):
    out = tmp_path / "out"
    assert cli(["train", "--model", "m", "--out", str(out), *argv]) == 2
    assert field in capsys.readouterr().err
    assert not out.exists()


def test_unknown_yaml_key_names_it(tmp_path, capsys):
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text("model: m\nout: o\nlearning_rate: 0.1\n")
    assert cli(["train", "--config", str(cfg_file)]) == 2
    assert "learning_rate" in capsys.readouterr().err


def test_missing_model_fails_before_anything_is_written(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(["train", "--model", str(tmp_path / "nope"), "--out", str(out), "--data", data]) == 2
    assert "nope" in capsys.readouterr().err
    assert not out.exists()


def test_tasks_without_tests_fail_before_training(tiny, tmp_path, capsys):
    task = next(iter(builtin.generate(seed=0, size=10).values()))
    row = {**builtin._to_row(task), "tests": [], "io_cases": []}
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps(row) + "\n")
    out = tmp_path / "out"
    assert cli(["train", "--model", tiny, "--out", str(out), "--data", str(data)]) == 2
    assert "neither tests nor io_cases" in capsys.readouterr().err
    assert not out.exists()


def test_a_split_with_no_tasks_names_the_field(tiny, data, tmp_path, capsys):
    assert (
        cli(["train", "--model", tiny, "--out", str(tmp_path / "o"), "--data", data, "--split", "dev"]) == 2
    )
    assert "split" in capsys.readouterr().err


def test_lora_trains_adapters_and_saves_a_merged_model(tiny, data, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora"
    train(config(tiny, data, out, lora_r=4, max_steps=2, save_every=1, kl_coef=0.1))
    assert (out / "checkpoint-1" / "adapter" / "adapter_model.safetensors").exists()
    model = AutoModelForCausalLM.from_pretrained(out)  # merged: loads without peft
    assert not any("lora" in name for name, _ in model.named_parameters())


def _cli_args(tiny: str, data: str, out: Path, steps: int) -> list[str]:
    return ["train", "--model", tiny, "--data", data, "--out", str(out), "--prompts-per-step", "2",
            "--samples-per-prompt", "2", "--max-new-tokens", "10", "--max-steps", str(steps), "--lr", "1e-3",
            "--eval-every", "0", "--eval-split", "none", "--report-to", "none", "--workers", "1",
            "--save-every", "1", "--temperature", "2.0"]  # fmt: skip


def _curve(path: Path) -> list[dict[str, Any]]:
    drop = ("seconds", "train_seconds")
    return [{k: v for k, v in r.items() if not k.startswith(drop)} for r in rows(path)]


def test_sigkilled_run_resumes_on_the_same_curve(tiny, data, tmp_path):
    steps = 4
    whole = tmp_path / "whole"
    assert cli(_cli_args(tiny, data, whole, steps)) == 0

    killed = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "execrl.cli", *_cli_args(tiny, data, killed, steps)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    while not (killed / "checkpoint-2").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / "checkpoint-2").exists()
    assert cli([*_cli_args(tiny, data, killed, steps), "--resume"]) == 0
    assert _curve(killed / "log.jsonl") == _curve(whole / "log.jsonl")


def test_existing_checkpoints_need_resume(tiny, data, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(_cli_args(tiny, data, out, 2)) == 0
    assert cli(_cli_args(tiny, data, out, 2)) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tiny, data, tmp_path):
    out = tmp_path / "ddp"
    cmd = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
           "-m", "execrl.cli", *_cli_args(tiny, data, out, 2)]  # fmt: skip
    done = subprocess.run(
        cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    log = rows(out / "log.jsonl")
    assert [r["step"] for r in log] == [1, 2]
    assert all(r["samples"] == 4 for r in log)  # 2 prompts x 2 samples, one prompt per process
    assert all(r["processes"] == 2 for r in log)  # `--cpu` would have run a single process


def test_linear_schedule_decays_the_lr_over_the_step_budget(tiny, data, tmp_path):
    out = tmp_path / "linear"
    train(config(tiny, data, out, max_steps=4, schedule="linear"))
    # the lr of each step's optimizer step: 1 - (steps done) / max_steps of the peak
    assert [r["lr"] for r in rows(out / "log.jsonl")] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])


def test_config_knows_every_loss_aggregation():
    from execrl.trainers import losses, rl_config

    assert rl_config.LOSS_AGG == losses.LOSS_AGG


def test_missing_tensorboard_names_the_extra_before_writing(tiny, data, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # importing it now fails
    out = tmp_path / "out"
    assert (
        cli(["train", "--model", tiny, "--data", data, "--out", str(out), "--report-to", "tensorboard"]) == 2
    )
    err = capsys.readouterr().err
    assert "tensorboard" in err and "execrl[train]" in err
    assert not out.exists()


def test_step_prompts_cover_every_task_once_per_pass():
    from execrl.trainers.rl_tasks import step_prompts as _step_prompts

    seq = [i for step in range(7) for i in _step_prompts(7, 3, 0, step)]  # 21 = three passes over 7 tasks
    for k in range(3):
        assert sorted(seq[7 * k : 7 * (k + 1)]) == list(range(7))
    assert seq[:7] != seq[7:14]  # a fresh shuffle each pass
