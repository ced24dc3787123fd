"""Rewards: turn what happened to a program into numbers a trainer can use.

- `execution.ExecutionReward`: unit-test rewards on the sandbox (binary pass, or pass ratio), as a
  TRL-style reward function `(completions, **columns) -> list[float | None]`; `None` marks a sample
  whose execution failed on our side (`sandbox_error`), which trainers mask out instead of scoring
  it as wrong code.
- `rltf.RLTFReward`: RLTF's coarse and adaptive rewards in the same signature, and its
  fine-grained line penalties, located in the raw output and turned into (B, T) token rewards by
  `rltf.token_rewards` (docs/rltf.md).
- `judge.JudgeReward`: an LLM judge's score (yes/no questions -> weighted P(yes)) in the same
  signature, RLAIF's feedback (docs/rlaif.md).
- `model.RewardModel`: a learned reward (a one-label sequence-classification checkpoint, e.g. from
  `execrl rm train`) in TRL's signature with a `prompts` column; `model.ModelReward` is
  `execrl train --reward rm` (docs/pf-ppo.md).

Importing this package imports neither torch nor the sandbox.
"""

from __future__ import annotations

__all__: list[str] = []
