"""`rollout_backend: vllm`: `execrl train` samples with a vLLM engine colocated with the trainer on
the same GPU, and pushes the policy's weights into it after every step (as TRL's colocate mode and
verl's hybrid engine do).

UNTESTED HERE: the machine this was written on has no GPU. Only the errors for a missing vLLM or GPU
are tested on CPU; `tests/test_vllm_rollout.py` (marker `gpu`) runs two steps where there is one.

How it works:
- one `vllm.LLM(cfg.model)` in each trainer process, set up as TRL 1.16's colocate mode does it
  (`distributed_executor_backend="external_launcher"`, RANK / LOCAL_RANK / WORLD_SIZE from the
  trainer's processes, `max_num_batched_tokens=4096`), so the engine's model lives in this process;
  it takes `vllm_gpu_memory_utilization` of the GPU's memory;
- each step's prompts go in as token ids; each sample gets its own seed from (seed, step, rank,
  row), so a step's samples do not depend on batching. The sampled token ids come back as they
  are (EOS included; a stop string's last token kept, text cut before it), as rollout.sample
  returns them;
- after each update, `synced` loads the trainer's state dict into the engine's model
  (`model_executor.driver_worker.model_runner.model.load_weights`, which takes Hugging Face
  parameter names: TRL's path; `LLM.apply_model` where that is missing) and resets vLLM's prefix
  cache, so step t+1
  always samples from the weights after update t: staleness 0.

Deviations: the trainer recomputes the sampling policy's log-probabilities with its own forward
(vLLM's logprobs are of the raw distribution, not the tempered one the trainer's ratio needs), so
numerical differences between vLLM's kernels and the trainer's are not importance-corrected. LoRA
and DDP are not supported with this backend yet (refused by RLConfig / untested respectively).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from execrl.data import DataError
from execrl.generation import truncate_at_stop
from execrl.trainers.rl_tasks import seed_of
from execrl.trainers.rollout import Rollout, SampleParams

__all__ = ["VLLMRollouts", "require_vllm"]


def require_vllm() -> Any:
    """The vllm module, or a DataError naming the extra (and the GPU it needs)."""
    try:
        import vllm
    except ImportError:
        raise DataError("config: rollout_backend 'vllm' needs vLLM: pip install 'execrl[vllm]'") from None
    import torch

    if not torch.cuda.is_available():
        raise DataError("config: rollout_backend 'vllm' needs a CUDA GPU (none is visible)")
    return vllm


class VLLMRollouts:
    """A colocated vLLM engine as `execrl train`'s rollout source (module docstring)."""

    def __init__(
        self, cfg: Any, lm: Any, tokenizer: Any, sampling: SampleParams, *, rank: int, procs: int = 1
    ) -> None:
        vllm = require_vllm()
        import torch

        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank % max(1, torch.cuda.device_count())),
                          WORLD_SIZE=str(procs))  # fmt: skip
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29533")
        self.vllm, self.sampling, self.seed, self.rank = vllm, sampling, cfg.seed, rank
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.llm = vllm.LLM(
            model=cfg.model,
            dtype="bfloat16" if cfg.bf16 else "auto",
            gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
            seed=cfg.seed,
            enable_prefix_caching=True,
            distributed_executor_backend="external_launcher",
            max_num_batched_tokens=4096,
        )
        self.synced(0, lm)  # the trainer's weights (a resumed run's are not the directory's)

    def get(self, step: int, prompts: Sequence[Sequence[int]]) -> Any:
        from execrl.trainers.async_rollout import Sampled

        s = self.sampling
        params = [
            self.vllm.SamplingParams(
                n=1,
                temperature=s.temperature,
                top_p=s.top_p,
                max_tokens=s.max_new_tokens,
                stop=[x for x in s.stop if x] or None,
                seed=seed_of(self.seed, "sample", step, self.rank, i),
            )
            for i in range(len(prompts))
        ]
        outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params, use_tqdm=False)
        tokens, texts, finish = [], [], []
        for request in outputs:  # in the order of the prompts
            out = request.outputs[0]
            tokens.append(list(out.token_ids))
            texts.append(truncate_at_stop(out.text, s.stop)[0])
            finish.append("length" if out.finish_reason == "length" else "stop")
        return Sampled(Rollout.from_ids(prompts, tokens, self.pad, texts, finish), None, step)

    def _load(self, state: dict[str, Any]) -> None:
        weights = list(state.items())
        worker = getattr(self.llm.llm_engine.model_executor, "driver_worker", None)
        runner = getattr(worker, "model_runner", None) or getattr(
            getattr(worker, "worker", None), "model_runner", None
        )
        if runner is not None:
            runner.model.load_weights(weights)
        elif hasattr(self.llm, "apply_model"):
            self.llm.apply_model(lambda model: model.load_weights(weights))
        else:
            raise RuntimeError("this vLLM version exposes no model to load weights into (looked for "
                               "llm_engine.model_executor.driver_worker[.worker].model_runner, LLM.apply_model)")  # fmt: skip

    def synced(self, version: int, lm: Any) -> None:
        self._load(lm.state_dict())
        self.llm.reset_prefix_cache()  # cached prefixes hold keys/values of the old weights

    def close(self) -> None:
        del self.llm
