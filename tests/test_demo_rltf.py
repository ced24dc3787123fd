"""RLTF's recipes equal the settings the demo and the benches run, and `execrl demo --method rltf`
writes its report (the sandbox check, the embedded model and the held-out evaluation are stubbed:
their own tests cover them; the RLTF run is real, on a tiny model)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from execrl import demo
from execrl.cli import _parser
from execrl.trainers.rl_config import RLConfig
from tinymodel import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]
RUN_FIELDS = ("model", "out", "max_steps", "max_minutes", "eval_every")  # where and how long, not how


def recipe(name: str) -> dict[str, Any]:
    fields = yaml.safe_load((ROOT / "recipes" / name).read_text())
    RLConfig.load(ROOT / "recipes" / name)  # a valid config
    return {k: v for k, v in fields.items() if k not in RUN_FIELDS}


def test_rltf_recipe_is_the_demo_settings():
    assert recipe("rltf.yaml") == demo.RLTF


def test_best_loop_recipe_is_the_demo_grpo_with_the_rltf_reward():
    assert recipe("grpo-replay-rltf.yaml") == {**demo.GRPO, "reward": "rltf"}


def test_demo_method_flag_and_default_out():
    args = _parser().parse_args(["demo", "--method", "rltf"])
    assert args.method == "rltf" and demo.default_out(args.method) == "runs/demo-rltf"
    assert _parser().parse_args(["demo"]).method == "grpo" and demo.default_out("grpo") == "runs/demo"


@pytest.fixture
def stubbed(tmp_path, monkeypatch):
    """The demo's slow parts replaced: sandbox check, embedded model (a tiny one), evaluation."""
    from execrl.eval import hostile

    embedded = tmp_path / "embedded"
    make_tiny_model(embedded / "model")
    sample = SimpleNamespace(completion="ok")
    ev = SimpleNamespace(samples=[sample], results=[SimpleNamespace(passed=True)])
    monkeypatch.setattr(hostile, "run", lambda *a, **k: ev)
    monkeypatch.setattr(hostile, "HOSTILE", {})
    monkeypatch.setattr(demo, "EMBEDDED", str(embedded))
    monkeypatch.setattr(demo, "_is_default_embedded", lambda model: True)
    scores = iter([0.1, 0.2])
    monkeypatch.setattr(demo, "heldout", lambda *a, **k: dict.fromkeys(("greedy_pass@1", "pass@1", "pass@10"),
                                                                        next(scores)))  # fmt: skip
    monkeypatch.setattr(demo, "RLTF", {**demo.RLTF, "prompts_per_step": 2, "samples_per_prompt": 2,
                                       "max_new_tokens": 8, "rltf_refresh_every": 1, "rltf_batch": 4})  # fmt: skip
    monkeypatch.setitem(demo.METHODS, "rltf", demo.RLTF)


@pytest.mark.slow  # a tiny-model RLTF run on the built-in suite, with evaluation on its 446 test tasks
def test_demo_rltf_writes_the_report(stubbed, tmp_path):
    out = tmp_path / "demo-rltf"
    result = demo.run(str(out), minutes=0.01, workers=1, progress=lambda *a: None, method="rltf")
    assert result.steps >= 1
    report = (out / "report.md").read_text()
    assert report.startswith("# execrl demo: RLTF on the embedded model")
    assert "greedy baseline per problem" in report and "fine-grained scopes" in report
    assert "| greedy pass@1 | 0.100 | 0.200 | +10.0 points |" in report
    assert (out / "report.png").stat().st_size > 0
    assert (out / "rltf" / "log.jsonl").exists()
