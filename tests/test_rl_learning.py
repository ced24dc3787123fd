"""Slow: GRPO learns on the embedded model, and DDP over 2 CPU processes learns like 1 process.

The embedded model is trained here from scratch (about 2 minutes). The task pool is small and fixed
(the first 16 train-split tasks) and evaluation is greedy pass@1 on the same tasks, so the signal is
strong enough to see in ten steps: the claim tested is that the loop raises the pass rate of what it
trains on, and does so as well when the batch is split across two processes (not bit-equal: each
process samples its own prompts with its own seed). Transfer to held-out tasks is measured by
bench/rl.py, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from execrl.data import builtin
from execrl.embedded import EmbeddedConfig
from execrl.embedded import train as train_embedded

pytestmark = pytest.mark.slow

SETTINGS = ["--algo", "grpo", "--benchmark", "builtin", "--split", "train", "--eval-split", "train",
            "--prompts-per-step", "16", "--samples-per-prompt", "8", "--max-new-tokens", "160",
            "--temperature", "0.7", "--lr", "2e-4", "--max-steps", "10", "--eval-every", "0",
            "--report-to", "none", "--seed", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> str:
    return train_embedded(EmbeddedConfig(out=str(tmp_path_factory.mktemp("embedded"))))


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> str:
    tasks = [p for p in builtin.generate().values() if p.split == "train"][:16]
    path = tmp_path_factory.mktemp("pool") / "tasks.jsonl"
    builtin.write_jsonl(path, tasks)
    return str(path)


def _run(launcher: list[str], processes: int, model: str, data: str, out: Path) -> list[float]:
    args = [
        *launcher,
        "-m",
        "execrl.cli",
        "train",
        "--model",
        model,
        "--data",
        data,
        "--out",
        str(out),
        *SETTINGS,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {r["processes"] for r in log} == {processes}
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [0, 10]
    return [e["pass@1"] for e in evals]


def test_grpo_learns_and_ddp_learns_like_one_process(embedded, pool, tmp_path):
    accelerate = str(Path(sys.executable).parent / "accelerate")
    one = _run([sys.executable], 1, embedded, pool, tmp_path / "one")
    # `--multi_gpu` on a machine without GPUs is DDP over gloo on CPU (`--cpu` runs one process)
    two = _run(
        [accelerate, "launch", "--multi_gpu", "--num_processes", "2"], 2, embedded, pool, tmp_path / "two"
    )
    print(f"greedy pass@1 on the pool: 1 process {one}, 2 processes {two}")
    assert one[0] == two[0]  # the same model before training
    assert one[1] - one[0] >= 0.15  # it learns what it trains on
    assert two[1] - two[0] >= 0.15  # ... and so does the DDP run
    assert abs(two[1] - one[1]) <= 0.2  # not bit-equal (each process samples its own prompts)


def test_ppo_with_replay_runs_under_ddp(embedded, pool, tmp_path):
    """Self-imitation under DDP: each process keeps its own buffer, replay-only steps run on both
    processes together, and the PPO value head (unused by the replay loss) does not stall DDP."""
    out = tmp_path / "ppo-replay"
    accelerate = str(Path(sys.executable).parent / "accelerate")
    settings = [a if a != "grpo" else "ppo" for a in SETTINGS]
    settings[settings.index("--max-steps") + 1] = "3"
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "-m", "execrl.cli", "train",
           "--model", embedded, "--data", pool, "--out", str(out), *settings, "--eval-split", "none",
           "--replay-size", "256", "--replay-steps", "2", "--save-every", "2"]  # fmt: skip
    done = subprocess.run(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["processes"] for r in log] == [2, 2, 2]
    assert log[-1]["replay/size"] > 0 and log[-1]["replay/nll"] > 0
    import torch

    state = torch.load(out / "checkpoint-2" / "trainer_state.pt", weights_only=False)
    assert len(state["replay"]) == 2  # one buffer per process
