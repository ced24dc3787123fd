"""The reward stage of `execrl train`: what turns a step's completions into rewards.

`build_reward(cfg, ...)` returns the `StepReward` that `cfg.reward` names: the tests' reward
(`binary`, `pass_ratio`), RLTF's (`RLTF_REWARDS`), a reward model's score (`rm`:
rewards/model.py), or an LLM judge's (`judge`: rewards/judge.py, RLAIF's questions, its score
divided by the weights' sum, batched and cached) — the last two with the tests run alongside to
measure. Every stage scores a
step's completions into `Scored` rows (a scalar reward, None after a sandbox error, and the
execution result); a stage that also gives dense, token-level rewards (RLTF's line penalties)
implements `token_rewards`, whose (B, T) tensor the algorithms add to their per-token advantages
(`Batch.token_rewards`). A method adds its reward here, never a branch in the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from execrl.rewards.execution import KINDS, ExecutionReward
from execrl.rewards.rltf import RLTFReward
from execrl.types import ExecutionResult, Limits

__all__ = ["RLTF_REWARDS", "ScoredSample", "StepReward", "TokenRewards", "build_reward", "token_rewards"]

# `reward` names of RLTF's feedback (docs/rltf.md): the scalar kind, and whether the fine-grained
# penalties are added on the blamed tokens (the paper's ablation: coarse, +adaptive, +fine, all)
RLTF_REWARDS = {
    "coarse": ("coarse", False),
    "adaptive": ("adaptive", False),
    "coarse+fine": ("coarse", True),
    "rltf": ("adaptive", True),
}


class ScoredSample(Protocol):
    """What the loop reads of a scored sample (`execution.Scored`, `rltf.Scored`, ...)."""

    @property
    def reward(self) -> float | None: ...

    @property
    def result(self) -> ExecutionResult: ...


class StepReward(Protocol):
    """`execution` is the tests' reward the run's held-out evaluation measures with, whatever the
    training reward is (a reward model's score never grades the evaluation)."""

    @property
    def execution(self) -> ExecutionReward: ...

    def score(self, task_ids: list[str], completions: list[Any], /) -> Sequence[ScoredSample]: ...

    def close(self) -> None: ...


@runtime_checkable
class TokenRewards(Protocol):
    def token_rewards(self, scored: Sequence[Any], rollout: Any, mask: torch.Tensor) -> torch.Tensor:
        """(B, T) rewards per completion token, 0 outside `mask`."""
        ...


def build_reward(
    cfg: Any, problems: dict[str, Any], limits: Limits, workers: int, executor: Any, tokenizer: Any
) -> StepReward:
    """The reward `cfg.reward` names, over `cfg.benchmark`'s `problems`."""
    options: dict[str, Any] = dict(
        problems=problems, limits=limits, chat=cfg.chat, workers=workers, executor=executor
    )
    if cfg.reward in KINDS:
        return ExecutionReward(cfg.benchmark, kind=cfg.reward, **options)
    if cfg.reward in RLTF_REWARDS:
        kind, fine = RLTF_REWARDS[cfg.reward]
        return RLTFReward(cfg.benchmark, kind=kind, fine=fine, tokenizer=tokenizer, **options)
    if cfg.reward == "rm":
        return _model_reward(cfg, options)
    if cfg.reward == "judge":
        return _judge_reward(cfg, options)
    names = (*KINDS, *RLTF_REWARDS, "rm", "judge")
    raise ValueError(f"config: field 'reward' must be one of {', '.join(names)}, got {cfg.reward!r}")


def _model_reward(cfg: Any, options: dict[str, Any]) -> StepReward:
    """The reward model `cfg.rm`, frozen on this process's device; the tests (binary) measure."""
    from accelerate import PartialState

    from execrl.rewards.model import ModelReward, RewardModel, prompt_text

    problems = options["problems"]
    execution = ExecutionReward(cfg.benchmark, kind="binary", **options)
    rm = RewardModel(cfg.rm, device=PartialState().device, dtype=torch.bfloat16 if cfg.bf16 else None)
    texts: dict[str, str] = {}

    def prompt_of(task_id: str) -> str:
        if task_id not in texts:
            texts[task_id] = prompt_text(
                rm.tokenizer, execution.bench.prompt(problems[task_id], chat=cfg.chat)
            )
        return texts[task_id]

    return ModelReward(rm, execution, prompt_of)


class JudgeScores:
    """An LLM judge behind `ModelReward`'s `scores(keys, completions)`: the keys are task ids, the
    judge's items (instruction, code) are made as `execrl judge` makes them for the benchmark."""

    def __init__(self, reward: Any, item_of: Any) -> None:
        self.reward = reward
        self.item_of = item_of

    def scores(self, task_ids: Sequence[str], completions: Sequence[str]) -> list[float | None]:
        items = [self.item_of(t, c) for t, c in zip(task_ids, completions)]
        return self.reward([code for _, code in items], instruction=[i for i, _ in items])


def _judge_reward(cfg: Any, options: dict[str, Any]) -> StepReward:
    """The judge `cfg.judge_model` (local, on this process's device) or at `cfg.judge_api_base`,
    its answers cached in `cfg.judge_cache`; the tests (binary) measure."""
    import os

    from accelerate import PartialState

    from execrl.rewards import judge
    from execrl.rewards.model import ModelReward

    problems = options["problems"]
    execution = ExecutionReward(cfg.benchmark, kind="binary", **options)
    questions = judge.load_questions(cfg.judge_questions)
    backend: judge.JudgeBackend
    if cfg.judge_model:
        backend = judge.HFJudge(cfg.judge_model, device=str(PartialState().device))
    else:
        api = judge.OpenAIJudge(cfg.judge_api_base, cfg.judge, api_key_env=cfg.judge_api_key_env)
        api.check()
        backend = api
    os.makedirs(cfg.out, exist_ok=True)
    cache = judge.JudgeCache(cfg.judge_cache or os.path.join(cfg.out, "judge.cache.sqlite"))
    bench = execution.bench

    def item_of(task_id: str, completion: str) -> tuple[str, str]:
        p = problems[task_id]
        if bench.NAME == "builtin":
            return p.instruction, p.header + completion
        prompt = bench.prompt(p, chat=cfg.chat)
        return (prompt if isinstance(prompt, str) else prompt[-1]["content"]), completion

    scorer = JudgeScores(judge.JudgeReward(backend, questions, cache=cache), item_of)
    return ModelReward(scorer, execution, lambda t: t)  # type: ignore[arg-type]


def token_rewards(
    reward: StepReward, scored: Sequence[ScoredSample], rollout: Any, mask: torch.Tensor
) -> torch.Tensor:
    """The stage's dense rewards, or zeros for a reward that has none."""
    if isinstance(reward, TokenRewards):
        m = mask.to(torch.float32)  # a long completion mask would truncate -0.3 to 0
        return reward.token_rewards(scored, rollout, m).to(torch.float32) * m
    return torch.zeros(mask.shape, dtype=torch.float32)
