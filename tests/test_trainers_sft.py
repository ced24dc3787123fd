"""`execrl.trainers`: the SFT loss against hand-worked values, and `execrl sft` on a tiny model."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from execrl.cli import main
from execrl.trainers.losses import sft_loss
from execrl.trainers.sft import SFTConfig, decay_factor, epoch_batches, lr_factor
from tinymodel import make_tiny_model

ROWS = [{"prompt": f"def add(x{i}, y{i}):\n", "response": f"    return x{i} + y{i}\n"} for i in range(6)] + [
    {
        "messages": [
            {"role": "user", "content": "print fib"},
            {"role": "assistant", "content": "print(fib(3))"},
        ]
    }
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def sft(model: str, data: Path, out: Path, *extra: str) -> int:
    base = [
        "sft",
        "--model",
        model,
        "--data",
        str(data),
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--lr",
        "1e-2",
    ]
    return main([*base, *extra])


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(directory / "model.safetensors")


def log_rows(out: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------------------------
# The loss


def test_sft_loss_matches_hand_computed_value() -> None:
    """B=1, T=3, V=2, labels [1, 0, 1], mask [0, 1, 1] (token 0 is the prompt).

    Position 0 has logits [0, 0] and predicts labels[1] = 0: p = 1/2, nll = ln 2.
    Position 1 has logits [ln 3, 0] and predicts labels[2] = 1: p = 1 / (3 + 1) = 1/4, nll = ln 4.
    Position 2 predicts nothing. Loss = (ln 2 + ln 4) / 2 = 1.5 ln 2 ≈ 1.0397.
    With normalizer=4 (a 4-target accumulation group): (ln 2 + ln 4) / 4 = 0.75 ln 2."""
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]]])
    labels = torch.tensor([[1, 0, 1]])
    mask = torch.tensor([[0, 1, 1]])
    assert sft_loss(logits, labels, mask).item() == pytest.approx(1.5 * math.log(2.0), rel=1e-6)
    assert sft_loss(logits, labels, mask, normalizer=4).item() == pytest.approx(
        0.75 * math.log(2.0), rel=1e-6
    )


def test_sft_loss_ignores_prompt_tokens() -> None:
    """With mask [0, 0, 1] only labels[2] counts (ln 4), whatever the logits that predict prompt tokens."""
    labels = torch.tensor([[1, 0, 1]])
    mask = torch.tensor([[0, 0, 1]])
    a = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [0.0, 0.0]]])
    b = a.clone()
    b[0, 0] = torch.tensor([9.0, -9.0])  # predicts the masked labels[1]
    b[0, 2] = torch.tensor([-9.0, 9.0])  # the last position predicts nothing
    assert sft_loss(a, labels, mask).item() == pytest.approx(math.log(4.0), rel=1e-6)
    assert sft_loss(b, labels, mask).item() == pytest.approx(math.log(4.0), rel=1e-6)


def test_schedule_warms_up_then_decays_to_zero() -> None:
    """Warmup 2 of 10 steps: 1/2, 1, then cosine from 1 towards 0; linear ends at 1/8."""
    assert [lr_factor(s, 10, 2, "cosine") for s in (0, 1, 2)] == [0.5, 1.0, 1.0]
    assert lr_factor(6, 10, 2, "cosine") == pytest.approx(0.5)
    assert lr_factor(9, 10, 2, "linear") == pytest.approx(1 / 8)
    assert lr_factor(9, 10, 2, "constant") == 1.0


def test_decay_by_fraction_spent_clamps_past_the_budget() -> None:
    assert [decay_factor(p, "linear") for p in (0.0, 0.75, 1.5)] == pytest.approx([1.0, 0.25, 0.0])
    assert [decay_factor(p, "cosine") for p in (0.0, 0.5, 1.0, 2.0)] == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert decay_factor(0.9, "constant") == 1.0
    # warmup-stable-decay: full lr for the first 80%, then linear to 0
    assert [decay_factor(p, "wsd") for p in (0.0, 0.8, 0.9, 1.0, 1.2)] == pytest.approx(
        [1.0, 1.0, 0.5, 0.0, 0.0]
    )


def test_length_buckets_hold_similar_lengths() -> None:
    """Bucketed batches are contiguous in length order; every index appears once per epoch."""
    lengths = [5, 1, 9, 2, 8, 3]
    batches = epoch_batches(lengths, 2, seed=0, epoch=0, bucket=True)
    assert sorted(sorted(lengths[i] for i in b) for b in batches) == [[1, 2], [3, 5], [8, 9]]
    assert sorted(i for b in batches for i in b) == list(range(6))


# ---------------------------------------------------------------------------------------------
# Training on the tiny model


def test_training_lowers_loss_and_saves_a_loadable_model(model_dir: str, tmp_path: Path) -> None:
    """12 steps on a repeated tiny dataset: the loss falls, weights change, `out` loads with Auto*."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    out = tmp_path / "out"
    assert sft(model_dir, data, out, "--max-steps", "12", "--warmup-ratio", "0") == 0
    rows = log_rows(out)
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert {"step", "loss", "lr", "tokens", "seconds"} <= rows[0].keys()
    first, last = [r["loss"] for r in rows[:3]], [r["loss"] for r in rows[-3:]]
    assert sum(last) / 3 < sum(first) / 3
    before, after = weights(Path(model_dir)), weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.eos_token == "<|endoftext|>"
    assert model(**tokenizer("def add(", return_tensors="pt")).logits.shape[-1] == len(tokenizer)


def test_packing_trains(model_dir: str, tmp_path: Path) -> None:
    """--packing with grad accumulation runs and logs one row per optimizer step."""
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    out = tmp_path / "out"
    assert (
        sft(model_dir, data, out, "--packing", "--max-length", "64", "--grad-accum", "2", "--epochs", "2")
        == 0
    )
    assert len(log_rows(out)) >= 1
    assert all(math.isfinite(r["loss"]) for r in log_rows(out))


def test_same_seed_same_weights(model_dir: str, tmp_path: Path) -> None:
    """Two runs with the same seed end with identical weights."""
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    for name in ("a", "b"):
        assert sft(model_dir, data, tmp_path / name, "--max-steps", "4", "--seed", "3") == 0
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_reaches_the_uninterrupted_weights(model_dir: str, tmp_path: Path) -> None:
    """Keep only checkpoint-3 of a 6-step run, resume: same final weights, one log row per step."""
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    full, cut = tmp_path / "full", tmp_path / "cut"
    args = ("--max-steps", "6", "--save-every", "3", "--grad-accum", "2")
    assert sft(model_dir, data, full, *args) == 0
    cut.mkdir()
    shutil.copytree(full / "checkpoint-3", cut / "checkpoint-3")
    shutil.copy(full / "log.jsonl", cut / "log.jsonl")  # rows 4..6 must be dropped on resume
    assert sft(model_dir, data, cut, *args) == 2  # an out dir with checkpoints needs --resume
    assert sft(model_dir, data, cut, *args, "--resume") == 0
    a, b = weights(full), weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in log_rows(cut)] == list(range(1, 7))


def test_yaml_config_with_flag_override(model_dir: str, tmp_path: Path) -> None:
    """--config supplies the fields; a flag overrides one of them."""
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"model: {model_dir}\ndata: {data}\nout: {tmp_path / 'out'}\nmax_steps: 5\nlr: 0.001\n")
    assert main(["sft", "--config", str(cfg), "--max-steps", "2"]) == 0
    assert len(log_rows(tmp_path / "out")) == 2
    assert SFTConfig.load(cfg, {"lr": "1e-4"}).lr == 1e-4


# ---------------------------------------------------------------------------------------------
# Bad input: exit 2, one line naming the place, nothing written


BAD_DATA = {
    "missing_field": ('{"prompt": "a", "response": "b"}\n{"prompt": "a"}\n', ":2:", "missing field"),
    "empty_file": ("", ":", "no examples"),
    "not_utf8": (b'{"prompt": "a", "response": "b"}\n{"prompt": "\xff", "response": "b"}\n', ":2:", "UTF-8"),
    "empty_response": ('{"prompt": "a", "response": "  "}\n', ":1:", "empty response"),
    "bad_messages": ('{"messages": [{"role": "user", "content": "hi"}]}\n', ":1:", "assistant"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_fails_before_training(
    case: str, model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, where, what = BAD_DATA[case]
    data = tmp_path / "d.jsonl"
    data.write_bytes(content if isinstance(content, bytes) else content.encode())
    capsys.readouterr()
    assert sft(model_dir, data, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{data}{where}" in err[0] and what in err[0]
    assert not (tmp_path / "out").exists()


def test_model_dir_that_is_not_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    capsys.readouterr()
    assert sft(str(empty), data, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(empty) in err[0] and "not a Hugging Face model" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [("lrr: 0.1\n", "unknown field 'lrr'"), ("lr: fast\n", "field 'lr' must be a number")],
)
def test_bad_config_names_the_field(
    yaml_text: str, expected: str, model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"model: {model_dir}\ndata: d.jsonl\nout: {tmp_path / 'out'}\n" + yaml_text)
    capsys.readouterr()
    assert main(["sft", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(cfg) in err[0] and expected in err[0]
    assert not (tmp_path / "out").exists()


def test_bad_flag_value_names_the_flag(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    capsys.readouterr()
    assert sft(model_dir, data, tmp_path / "out", "--batch-size", "two") == 2
    assert "--batch-size" in capsys.readouterr().err
    assert sft(model_dir, data, tmp_path / "out", "--schedule", "step") == 2
    assert "schedule" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_two_processes_follow_the_one_process_curve(model_dir: str, tmp_path: Path) -> None:
    """Each process takes one micro-batch of the accumulation group; DDP sums them back."""
    import os
    import subprocess
    import sys

    data = write_jsonl(tmp_path / "d.jsonl", ROWS * 2)
    args = ["-m", "execrl.cli", "sft", "--model", model_dir, "--data", str(data), "--batch-size", "2",
            "--grad-accum", "2", "--lr", "1e-2", "--max-steps", "3", "--seed", "0"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    accelerate = str(Path(sys.executable).parent / "accelerate")
    for name, launcher in (
        ("one", [sys.executable]),
        ("two", [accelerate, "launch", "--multi_gpu", "--num_processes", "2"]),
    ):
        done = subprocess.run([*launcher, *args, "--out", str(tmp_path / name)], env=env, capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
    one, two = log_rows(tmp_path / "one"), log_rows(tmp_path / "two")
    assert [r["processes"] for r in one] == [1, 1, 1] and [r["processes"] for r in two] == [2, 2, 2]
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], rel=1e-4)
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
