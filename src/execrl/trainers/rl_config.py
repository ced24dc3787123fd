"""`RLConfig`: every setting of `execrl train` (PPO, GRPO, RLOO, RLTF), checked field by field.

Each field is a flag (`--max-new-tokens`) and a key of `--config cfg.yaml`; flags override the
file. A bad value is a `DataError` naming the field, raised before anything is loaded or written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

from execrl.data.jsonl import DataError, PathLike
from execrl.filtration.strategies import STRATEGIES
from execrl.trainers.config import (
    at_least_one,
    field_error,
    load_config,
    not_negative,
    one_of,
    reporters,
    require,
    sampling_checks,
)
from execrl.trainers.sft import SCHEDULES

__all__ = ["ALGOS", "LEARNED_REWARDS", "REWARDS", "RLConfig"]

ALGOS = ("grpo", "ppo", "rloo", "rltf")
# losses.LOSS_AGG, spelled out so that `execrl --help` does not import torch (a test keeps them equal)
LOSS_AGG = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
REWARDS = ("binary", "pass_ratio", "coarse", "adaptive", "coarse+fine", "rltf", "rm", "judge")
LEARNED_REWARDS = ("rm", "judge")  # rewards that are not the tests: the tests only measure
REPLAY_WEIGHTINGS = ("uniform", "failing")  # how replay.ReplayBuffer.draw picks tasks
# which samples replay.ReplayBuffer.add keeps (replay.admitted)
REPLAY_ADMITS = ("passed", "best", "threshold", "random")
ROLLOUT_BACKENDS = ("hf", "vllm")  # trainers/async_rollout.build_rollouts
FILTRATIONS = STRATEGIES  # execrl.filtration's per-prompt strategies (no torch imported)


@dataclass
class RLConfig:
    """`execrl train`: every field is also a flag and a key of `--config cfg.yaml`."""

    model: str = ""
    """Hugging Face causal LM directory (model + tokenizer) to start from: the policy and the reference."""
    out: str = ""
    """Output directory: log.jsonl, eval.jsonl, checkpoint-N/, tensorboard/, and the final model."""
    algo: str = "grpo"
    """grpo, ppo, rloo, or rltf (RLTF's loop: samples + a greedy baseline into an online buffer,
    REINFORCE steps on draws from it; trainers/rltf.py, docs/rltf.md)."""
    benchmark: str = "builtin"
    """Benchmark whose tasks are the prompts and whose tests give the rewards."""
    data: str | None = None
    """The benchmark's data file (default: the copy it ships or finds)."""
    split: str | None = "train"
    """Train on tasks whose metadata "split" is this (none: every task)."""
    eval_split: str | None = "test"
    """Held-out tasks for greedy pass@1 during training (none: no evaluation)."""
    eval_limit: int = 0
    """Evaluate on the first this many held-out tasks (0: all)."""
    eval_every: int = 10
    """Evaluate every this many steps, and before the first and after the last (0: only those)."""
    chat: bool = False
    """Chat prompts through the tokenizer's template (default: completion-style prompts)."""
    prompts_per_step: int = 32
    """Prompts sampled per step (over all processes)."""
    samples_per_prompt: int = 8
    """Completions per prompt: the group of GRPO and RLOO, the N that filtration chooses from, and
    RLTF's samples per problem (besides its greedy baseline)."""
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    rollout_backend: str = "hf"
    """Who samples (trainers/async_rollout.py): hf (the trainer's sampler, or rollout_workers
    processes) or vllm (a colocated vLLM engine that the trainer pushes its weights into after every
    step; GPU only, needs `pip install 'execrl[vllm]'`)."""
    rollout_workers: int = 0
    """Asynchronous rollouts: processes that sample from a snapshot of the weights while the trainer
    updates (0: the trainer samples each step itself, synchronously)."""
    max_staleness: int = 0
    """With rollout_workers: a step samples from weights at most this many steps old (0: as the
    synchronous loop; must be at least sync_every - 1). PPO's ratio is to the sampling weights."""
    sync_every: int = 1
    """With rollout_workers: snapshot the weights for the workers every this many steps."""
    vllm_gpu_memory_utilization: float = 0.3
    """rollout_backend vllm: the share of the GPU's memory vLLM may take (the trainer needs the rest)."""
    reward: str = "binary"
    """binary (all tests pass), pass_ratio (share of tests passed), RLTF's scalars coarse or adaptive
    (docs/rltf.md), or those plus RLTF's fine-grained penalties on the blamed tokens: coarse+fine,
    rltf (adaptive + fine); rm (the score of the reward model `rm`; the tests then only
    measure, docs/pf-ppo.md); or judge (an LLM judge's score over the questions, in [0, 1]; the
    tests only measure, docs/rlaif.md)."""
    rm: str | None = None
    """reward rm: the reward model directory (`execrl rm train`'s out, or any one-label
    AutoModelForSequenceClassification checkpoint)."""
    judge_model: str | None = None
    """reward judge: a local HF model directory as the judge (or give judge_api_base and judge)."""
    judge_api_base: str | None = None
    """reward judge: an OpenAI-compatible API serving the judge (e.g. `execrl serve`'s /v1 URL)."""
    judge: str | None = None
    """reward judge with judge_api_base: the judge's model name at that API."""
    judge_api_key_env: str | None = None
    """reward judge with judge_api_base: the environment variable holding the API key."""
    judge_questions: str | None = None
    """reward judge: the questions YAML (default: the eight shipped with execrl)."""
    judge_cache: str | None = None
    """reward judge: the answers' SQLite cache (default out/judge.cache.sqlite); a repeated program is asked once."""
    timeout: float = 1.0
    """CPU seconds per test for the executed programs."""
    workers: int = 0
    """Sandbox workers per process (0: the CPU cores divided by the processes)."""
    executor: str = "local"
    """Where the programs run: local (this machine, `workers` fork-servers), ray (a Ray cluster) or
    http (`execrl sandbox serve`); see docs/scale.md."""
    executor_address: str | None = None
    """ray: the cluster (auto, ray://head:10001; None starts a local one); http: the service's URL (several: comma-separated)."""
    max_steps: int = 100
    """Steps (rollout + update) to run."""
    max_minutes: float = 0.0
    """Stop after this many minutes of training (evaluation excluded); 0: no limit."""
    lr: float = 1e-5
    warmup_steps: int = 0
    """The lr rises linearly over this many optimizer steps to its peak."""
    schedule: str = "constant"
    """lr after warmup: constant, linear / cosine decay to 0 over the run's budget (the larger
    fraction spent of max_steps and of max_minutes, measured at the start of each step), or wsd
    (constant, then linear to 0 over the budget's last fifth)."""
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    """Clip the gradient's global norm to this; 0 disables clipping."""
    epochs: int = 1
    """Passes over each step's samples (PPO epochs)."""
    minibatches: int = 1
    """Optimizer steps per epoch: the step's samples are split into this many minibatches."""
    micro_batch_size: int = 32
    """Rows per forward/backward pass (gradients accumulate over a minibatch)."""
    clip_eps: float = 0.2
    """Clip range of the probability ratio (lower side, and upper side unless clip_eps_high is set)."""
    clip_eps_high: float | None = None
    """Upper clip range ("clip-higher", DAPO); default clip_eps."""
    loss_agg: str = "token-mean"
    """token-mean, seq-mean-token-mean or seq-mean-token-sum-norm (Dr. GRPO)."""
    kl_coef: float = 0.0
    """Weight of KL(policy || reference); 0 skips the reference model entirely."""
    kl_estimator: str = "k3"
    """k1, k2 or k3 (per-token estimators of the KL)."""
    kl_in_reward: bool | None = None
    """Subtract the KL from the per-token rewards (PPO default) instead of adding it to the loss."""
    scale_rewards: bool = True
    """GRPO: divide by the group's std (false: Dr. GRPO)."""
    gamma: float = 1.0
    """PPO: discount."""
    lam: float = 0.95
    """PPO: GAE lambda."""
    vf_coef: float = 0.1
    """PPO: weight of the value loss."""
    value_clip: float = 0.2
    """PPO: clip range of the value update (0: none)."""
    whiten_advantages: bool = True
    """PPO: normalize advantages over the batch."""
    entropy_coef: float = 0.0
    """Entropy bonus weight."""
    pg_coef: float = 1.0
    """Weight of the clipped policy-gradient loss (0 with a replay buffer: self-imitation alone, an
    ablation); with algo rltf, of the REINFORCE loss (0 with rltf_sft_every: the supervised steps
    alone, an ablation)."""
    replay_size: int = 0
    """Self-imitation (trainers/replay.py): keep up to this many of the policy's own distinct passing
    programs in a FIFO buffer; 0: off."""
    replay_batch: int = 32
    """Programs drawn from the replay buffer for each optimizer step."""
    replay_coef: float = 1.0
    """Weight of the replayed programs' negative log-likelihood in the loss."""
    replay_steps: int = 0
    """Extra optimizer steps per step on replayed programs alone, after the step's RL updates (fewer
    while the buffer holds under replay_steps x replay_batch programs: at most one pass over it)."""
    replay_weighting: str = "uniform"
    """How replay draws pick tasks: uniform, or failing (in proportion to the share of the task's
    latest samples that failed, at least 0.1)."""
    replay_admit: str = "passed"
    """Which samples enter the replay buffer: passed (every sample that passes its tests), or best
    (per prompt, the samples of the highest reward when the prompt's rewards differ: reward-ranked
    replay, which never reads the tests; for reward rm or judge), threshold (every sample whose
    reward is at least replay_threshold, as ReST; never reads the tests), or random (one sample of
    each prompt drawn at random, reading neither the tests nor the reward: the ablation)."""
    replay_threshold: float | None = None
    """replay_admit threshold: the reward a sample needs to enter the buffer (required there, read
    nowhere else)."""
    filtration: str = "none"
    """PF-PPO policy filtration (trainers/selection.py, docs/pf-ppo.md): which of a prompt's samples
    the update trains on, as loss weights ranked by reward: none, bon, br, bw, top, top-random,
    top-bottom, pow-k."""
    filtration_threshold: float | None = None
    """top, top-random, top-bottom: the top side is the samples with reward >= this."""
    filtration_low_threshold: float | None = None
    """top-bottom: the other side is the samples with reward <= this (below filtration_threshold)."""
    filtration_k: float | None = None
    """pow-k: weights proportional to |reward|^k (k >= 0)."""
    rltf_buffer_size: int = 6400
    """RLTF: capacity of the online buffer (FIFO of samples with their per-token returns)."""
    rltf_refresh_every: int = 50
    """RLTF: RL optimizer steps per step; each step first refreshes the buffer with new samples."""
    rltf_batch: int = 32
    """RLTF: samples drawn from the buffer per optimizer step (and references per supervised step)."""
    rltf_sft_every: int = 0
    """RLTF: a supervised step on reference solutions of train tasks after every this many RL steps
    (1: alternate, as the paper; 0: none). Needs completion-style prompts and references."""
    lora_r: int = 0
    """LoRA rank (0: train all weights); needs `pip install execrl[lora]` (peft)."""
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    bf16: bool = False
    """bfloat16 mixed precision (GPU only)."""
    seed: int = 0
    """Seeds prompts, sampling and initialization: same seed, same run."""
    save_every: int = 0
    """Save out/checkpoint-N every this many steps (0: none; the final model is always saved)."""
    resume: bool = False
    """Continue from the latest out/checkpoint-N."""
    report_to: str = "tensorboard"
    """Metric sinks besides log.jsonl: tensorboard, wandb, none (comma-separated)."""

    def __post_init__(self) -> None:
        bad = partial(field_error, self)
        require(self, "model", "out")
        one_of(self, "algo", ALGOS)
        at_least_one(self, "prompts_per_step", "samples_per_prompt", "max_new_tokens", "max_steps", "epochs",
                     "minibatches", "micro_batch_size", "lora_alpha", "replay_batch", "sync_every",
                     "rltf_buffer_size", "rltf_refresh_every", "rltf_batch")  # fmt: skip
        not_negative(self, "eval_limit", "eval_every", "workers", "warmup_steps", "save_every", "lora_r",
                     "max_minutes", "weight_decay", "max_grad_norm", "kl_coef", "vf_coef", "value_clip",
                     "replay_size", "replay_coef", "replay_steps", "pg_coef",
                     "rollout_workers", "max_staleness", "rltf_sft_every")  # fmt: skip
        if self.algo in ("grpo", "rloo") and self.samples_per_prompt < 2:
            raise bad("samples_per_prompt", f"must be at least 2 for {self.algo} (a group needs a baseline)")
        if self.prompts_per_step * self.samples_per_prompt < self.minibatches:
            raise bad("minibatches", "must not exceed the samples per step")
        sampling_checks(self)
        if not 0 < self.clip_eps < 1:
            raise bad("clip_eps", "must be in (0, 1)")
        if self.clip_eps_high is not None and not self.clip_eps_high > 0:
            raise bad("clip_eps_high", "must be positive")
        one_of(self, "loss_agg", LOSS_AGG)
        if self.kl_estimator not in ("k1", "k2", "k3"):
            raise bad("kl_estimator", "must be k1, k2 or k3")
        one_of(self, "replay_weighting", REPLAY_WEIGHTINGS)
        one_of(self, "replay_admit", REPLAY_ADMITS)
        if (self.replay_admit == "threshold") != (self.replay_threshold is not None):
            raise bad("replay_threshold", "is required with replay_admit 'threshold' and read nowhere else")
        one_of(self, "schedule", SCHEDULES)
        if self.executor not in ("local", "ray", "http"):
            raise bad("executor", "must be local, ray or http")
        if self.executor == "http" and not self.executor_address:
            raise bad("executor_address", "must be the service's URL for executor http")
        one_of(self, "reward", REWARDS)
        self._check_rm(bad)
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise bad("gamma" if not 0 <= self.gamma <= 1 else "lam", "must be in [0, 1]")
        self._check_filtration(bad)
        self._check_rollouts(bad)
        if self.algo == "rltf":  # no KL in its loss, its buffer replaces replay, the trainer samples
            for name in ("kl_coef", "replay_size", "rollout_workers"):
                if getattr(self, name):
                    raise bad(name, "must be 0 with algo 'rltf'")
            if self.filtration != "none":
                raise bad("filtration", "must be none with algo 'rltf'")
            if self.rollout_backend != "hf":
                raise bad("rollout_backend", "must be hf with algo 'rltf'")
            if not self.pg_coef and not self.rltf_sft_every:
                raise bad(
                    "pg_coef",
                    "must be positive with algo 'rltf' unless rltf_sft_every is set (nothing trains)",
                )

    def _check_rm(self, bad: Any) -> None:
        if self.reward == "rm" and not self.rm:
            raise DataError("config: field 'rm' (the reward model directory) is required with reward 'rm'")
        if self.rm and self.reward != "rm":
            raise bad("rm", "is only read with reward 'rm'")
        if self.reward in LEARNED_REWARDS and self.replay_size and self.replay_admit == "passed":
            # a buffer of programs that passed their tests: the tests would train the policy
            raise bad(
                "replay_admit",
                f"must be 'best', 'threshold' or 'random' with reward {self.reward!r} and a replay buffer "
                "('passed' keeps test-passing programs: the tests would train the policy)",
            )
        judge_fields = ("judge_model", "judge_api_base", "judge", "judge_api_key_env", "judge_questions",
                        "judge_cache")  # fmt: skip
        if self.reward != "judge":
            for name in judge_fields:
                if getattr(self, name) is not None:
                    raise bad(name, "is only read with reward 'judge'")
            return
        if bool(self.judge_model) == bool(self.judge_api_base):
            raise DataError("config: reward 'judge' needs exactly one of field 'judge_model' (a local judge "
                            "directory) and field 'judge_api_base' (an OpenAI-compatible API)")  # fmt: skip
        if self.judge_api_base and not self.judge:
            raise DataError("config: field 'judge' (the judge's model name at judge_api_base) is required")
        if self.judge_model and (self.judge or self.judge_api_key_env):
            raise bad("judge" if self.judge else "judge_api_key_env", "is only read with judge_api_base")

    def _check_filtration(self, bad: Any) -> None:
        one_of(self, "filtration", FILTRATIONS)
        needs = {"top": ["threshold"], "top-random": ["threshold"], "pow-k": ["k"],
                 "top-bottom": ["threshold", "low_threshold"]}  # fmt: skip
        for option in needs.get(self.filtration, []):
            name = f"filtration_{option}"
            value = getattr(self, name)
            if value is None:
                raise DataError(f"config: field {name!r} is required with filtration {self.filtration!r}")
            if not math.isfinite(value) or (option == "k" and value < 0):
                raise bad(name, "must be a finite number" + (" >= 0" if option == "k" else ""))
        low, high = self.filtration_low_threshold, self.filtration_threshold
        if self.filtration == "top-bottom" and low is not None and high is not None and not low < high:
            raise bad("filtration_low_threshold", "must be below filtration_threshold")

    def _check_rollouts(self, bad: Any) -> None:
        one_of(self, "rollout_backend", ROLLOUT_BACKENDS)
        if self.rollout_workers and self.max_staleness < self.sync_every - 1:
            raise bad("max_staleness", f"must be at least sync_every - 1 ({self.sync_every - 1})")
        if self.rollout_workers and self.rollout_backend != "hf":
            raise bad(
                "rollout_workers", "works with rollout_backend hf only (vLLM schedules its own batches)"
            )
        if not 0 < self.vllm_gpu_memory_utilization < 1:
            raise bad("vllm_gpu_memory_utilization", "must be in (0, 1)")
        if self.lora_r and (self.rollout_workers or self.rollout_backend != "hf"):
            raise bad("lora_r", "is not supported with rollout_workers or rollout_backend vllm yet")

    @property
    def reporters(self) -> list[str]:
        return reporters(self.report_to)

    @property
    def kl_reward(self) -> bool:
        """Whether the KL penalty goes into the per-token rewards (else into the loss)."""
        return self.kl_in_reward if self.kl_in_reward is not None else self.algo == "ppo"

    @classmethod
    def load(cls, path: PathLike | None = None, overrides: dict[str, Any] | None = None) -> RLConfig:
        """Fields from a YAML file, then `overrides` (unknown keys and bad values name the field)."""
        return load_config(cls, path, overrides)
