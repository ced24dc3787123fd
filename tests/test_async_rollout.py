"""Asynchronous rollouts (trainers/async_rollout.py): the snapshot schedule, the sampling snapshot's
log-probabilities as PPO's old_logp, and staleness 0 being the synchronous run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from execrl.data import DataError
from execrl.trainers.async_rollout import AsyncRollouts, sampling_logprobs, snapshot_version
from execrl.trainers.rl import train
from execrl.trainers.rl_config import RLConfig
from execrl.trainers.rollout import SampleParams
from tinymodel import make_tiny_model, write_rl_tasks


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return write_rl_tasks(tmp_path_factory.mktemp("data") / "tasks.jsonl", test_tasks=2)


def config(tiny: str, data: str, out: Path, **kw: Any) -> RLConfig:
    base: dict[str, Any] = dict(
        model=tiny, out=str(out), data=data, prompts_per_step=2, samples_per_prompt=2, max_new_tokens=10,
        max_steps=3, lr=1e-3, eval_every=0, eval_limit=1, report_to="none", workers=1,
    )  # fmt: skip
    base.update(kw)
    return RLConfig(**base)


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_snapshot_version_is_the_oldest_allowed_snapshot():
    """Snapshots at start=0 and every multiple of sync_every. Step t samples from the smallest one
    >= t - max_staleness: staleness 0, sync 1 -> v(t) = t; staleness 1, sync 2 -> v = 0,0,2,2,4
    (staleness 0,1,0,1,0); staleness 3, sync 2 -> v(t) = ceil((t-3)/2)*2 = 0,0,0,0,2,2 for t=0..5."""
    assert [snapshot_version(t, 0, 0, 1) for t in range(4)] == [0, 1, 2, 3]
    assert [snapshot_version(t, 0, 1, 2) for t in range(5)] == [0, 0, 2, 2, 4]
    assert [snapshot_version(t, 0, 3, 2) for t in range(6)] == [0, 0, 0, 0, 2, 2]
    assert [snapshot_version(t, 5, 2, 4) for t in range(5, 9)] == [5, 5, 5, 8]  # resumed at step 5


def test_config_checks_the_staleness_bound(tiny, data, tmp_path):
    with pytest.raises(DataError, match="max_staleness"):
        config(tiny, data, tmp_path, rollout_workers=1, sync_every=3, max_staleness=1)
    with pytest.raises(DataError, match="lora_r"):
        config(tiny, data, tmp_path, rollout_workers=1, lora_r=4)


def test_stale_samples_carry_the_sampling_snapshots_logprobs(tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lm = AutoModelForCausalLM.from_pretrained(tiny)
    tok = AutoTokenizer.from_pretrained(tiny)
    before = AutoModelForCausalLM.from_pretrained(tiny)  # the weights of snapshot 0
    prompts = [tok("def add(a, b):")["input_ids"]] * 3
    sampling = SampleParams(temperature=0.7, max_new_tokens=6)
    source = AsyncRollouts(lm, tiny, sampling, plan=lambda s: prompts, seed=0, rank=0, workers=1,
                           max_staleness=1, sync_every=1, start=0, max_steps=3)  # fmt: skip
    try:
        first = source.get(0, prompts)
        with torch.no_grad():  # the "update" of step 0
            for p in lm.parameters():
                p.add_(0.05 * torch.randn_like(p))
        source.synced(1, lm)
        second = source.get(1, prompts)  # sampled from snapshot 0 while step 0 updated
    finally:
        source.close()
    assert (first.version, second.version) == (0, 0)
    for got in (first, second):
        mask = got.rollout.completion_mask.bool()
        expected = sampling_logprobs(before, got.rollout, 32, 0.7)
        assert torch.allclose(got.logp[mask], expected[mask], atol=1e-5)
        assert not torch.allclose(
            got.logp[mask], sampling_logprobs(lm, got.rollout, 32, 0.7)[mask], atol=1e-3
        )


VOLATILE = ("seconds/", "train_seconds", "rollout/staleness")


def test_staleness_zero_is_the_synchronous_run(tiny, data, tmp_path):
    train(config(tiny, data, tmp_path / "sync"))
    train(config(tiny, data, tmp_path / "async", rollout_workers=1, max_staleness=0))
    sync, asyn = rows(tmp_path / "sync" / "log.jsonl"), rows(tmp_path / "async" / "log.jsonl")
    assert [r["rollout/staleness"] for r in asyn] == [0, 0, 0]
    assert len(sync) == len(asyn) == 3
    for a, b in zip(sync, asyn):
        keys = {k for k in a if not k.startswith(VOLATILE)}
        assert keys == {k for k in b if not k.startswith(VOLATILE)}
        for k in keys:
            assert math.isclose(a[k], b[k], rel_tol=1e-4, abs_tol=1e-5), (a["step"], k, a[k], b[k])
    from safetensors.torch import load_file

    wa = load_file(str(tmp_path / "sync" / "model.safetensors"))
    wb = load_file(str(tmp_path / "async" / "model.safetensors"))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_ppo_with_stale_rollouts_logs_the_staleness(tiny, data, tmp_path):
    out = tmp_path / "ppo"
    train(config(tiny, data, out, algo="ppo", max_steps=4, rollout_workers=2, max_staleness=1, sync_every=2))
    log = rows(out / "log.jsonl")
    assert [r["rollout/staleness"] for r in log] == [0, 1, 0, 1]
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["value_loss"]) for r in log)


def test_vllm_backend_without_vllm_names_the_extra_before_writing(tiny, data, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed
    out = tmp_path / "vllm"
    with pytest.raises(DataError, match=r"execrl\[vllm\]"):
        train(config(tiny, data, out, rollout_backend="vllm"))
    assert not out.exists()
