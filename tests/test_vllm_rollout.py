"""`rollout_backend: vllm` (trainers/vllm_rollout.py): two steps of `execrl train` sampling with a
colocated vLLM engine. Needs a CUDA GPU and vLLM; skipped (with the reason) elsewhere. Never run
on the machine it was written on (no GPU there)."""

from __future__ import annotations

import json
import math

import pytest

from tinymodel import make_tiny_model, write_rl_tasks

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible here)"),
]


def test_train_with_vllm_rollouts_pushes_weights_each_step(tmp_path):
    pytest.importorskip("vllm", reason="needs vLLM: pip install 'execrl[vllm]'")
    from execrl.trainers.rl import train
    from execrl.trainers.rl_config import RLConfig

    model = make_tiny_model(tmp_path / "tiny")
    data = write_rl_tasks(tmp_path / "tasks.jsonl")
    out = tmp_path / "out"
    cfg = RLConfig(model=model, out=str(out), data=data, prompts_per_step=2, samples_per_prompt=4,
                   max_new_tokens=16, max_steps=2, lr=1e-2, eval_every=0, report_to="none", workers=1,
                   rollout_backend="vllm", vllm_gpu_memory_utilization=0.2)  # fmt: skip
    train(cfg)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["samples"] for r in log] == [8, 8]
    assert all(math.isfinite(r["loss"]) and r["completion_length"] > 0 for r in log)


def test_synced_weights_reach_the_engine(tmp_path):
    pytest.importorskip("vllm", reason="needs vLLM: pip install 'execrl[vllm]'")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from execrl.trainers.rl_config import RLConfig
    from execrl.trainers.rollout import SampleParams
    from execrl.trainers.vllm_rollout import VLLMRollouts

    model = make_tiny_model(tmp_path / "tiny")
    lm = AutoModelForCausalLM.from_pretrained(model).cuda()
    tok = AutoTokenizer.from_pretrained(model)
    cfg = RLConfig(
        model=model, out=str(tmp_path / "o"), rollout_backend="vllm", vllm_gpu_memory_utilization=0.2
    )
    source = VLLMRollouts(cfg, lm, tok, SampleParams(temperature=0.0, max_new_tokens=8), rank=0)
    prompt = [tok("def add(a, b):")["input_ids"]]
    before = source.get(0, prompt).rollout.completion_ids.tolist()
    with torch.no_grad():
        lm.lm_head.weight.mul_(-1.0)  # greedy output must change once the engine has these weights
    source.synced(1, lm)
    after = source.get(1, prompt).rollout.completion_ids.tolist()
    source.close()
    assert before != after
