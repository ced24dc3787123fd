"""The embedded recipe end to end at toy size: a standard checkpoint, deterministic for a seed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"


def _weights_hash(model_dir: str) -> str:
    return hashlib.sha256(Path(model_dir, "model.safetensors").read_bytes()).hexdigest()


def test_recipe_gives_a_loadable_deterministic_checkpoint(tmp_path: Path) -> None:
    """Same seed, same weights; the result loads with the standard Auto classes."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from execrl.embedded import EmbeddedConfig, train

    small = {
        "suite_size": 120,
        "vocab_size": 300,
        "hidden_size": 32,
        "layers": 1,
        "heads": 2,
        "max_steps": 3,
        "batch_size": 4,
    }
    a = train(EmbeddedConfig(out=str(tmp_path / "a"), **small))  # type: ignore[arg-type]
    b = train(EmbeddedConfig(out=str(tmp_path / "b"), **small))  # type: ignore[arg-type]
    assert _weights_hash(a) == _weights_hash(b)
    model = AutoModelForCausalLM.from_pretrained(a)
    tokenizer = AutoTokenizer.from_pretrained(a)
    assert model.config.vocab_size == len(tokenizer)
    assert all(split == "train" for split in _splits(tmp_path / "a" / "sft.jsonl"))


def _splits(path: Path) -> list[str]:
    import json

    from execrl.data import builtin

    problems = builtin.generate(seed=0, size=120)
    return [problems[json.loads(line)["task_id"]].split for line in path.read_text().splitlines()]
