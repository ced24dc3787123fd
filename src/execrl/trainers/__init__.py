"""Trainers: each loop is one module with its config; the math lives in pure modules.

- `losses`, `advantages`: pure tensor functions (SFT loss, clipped surrogate, value loss, loss
  aggregation; GAE, GRPO and RLOO advantages, KL estimators), tested against hand-derived values.
- `sft`: supervised fine-tuning on prompt/response pairs (`execrl sft`).
- `rl`: online RL from execution feedback (`execrl train`); `grpo`, `ppo`, `rloo` hold each
  algorithm's advantages; `rollout` samples and scores token ids; `rl_config`, `rl_checkpoint`,
  `tracking` (JSONL, TensorBoard, wandb).
- `config`: YAML + flag loading for the trainers' config dataclasses.

Importing this package does not import torch; the modules above do (except `config`, `rl_config`).
"""

from __future__ import annotations

__all__: list[str] = []
