"""`make demo` reuses a cached embedded model only when it is the default recipe's."""

from __future__ import annotations

from execrl.demo import _is_default_embedded
from execrl.embedded import EmbeddedConfig


def write(model_dir, **fields):
    model_dir.mkdir(parents=True)
    (model_dir / "model.safetensors").write_bytes(b"")
    (model_dir / "sft_config.yaml").write_text("".join(f"{k}: {v}\n" for k, v in fields.items()))
    return str(model_dir)


def test_default_recipe_is_reused(tmp_path):
    d = EmbeddedConfig()
    assert _is_default_embedded(write(tmp_path / "m", max_steps=d.max_steps, seed=d.seed))


def test_other_steps_are_not_reused(tmp_path):
    d = EmbeddedConfig()
    assert not _is_default_embedded(write(tmp_path / "m", max_steps=d.max_steps * 2, seed=d.seed))


def test_half_written_model_is_not_reused(tmp_path):
    assert not _is_default_embedded(str(tmp_path / "missing"))
    (tmp_path / "m").mkdir()
    assert not _is_default_embedded(str(tmp_path / "m"))
