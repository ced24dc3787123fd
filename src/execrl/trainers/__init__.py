"""Trainers: each is one module holding its config dataclass and its loop; the math is in `losses`.

- `sft`: supervised fine-tuning on prompt/response pairs (`execrl sft`).
- `losses`: pure loss functions of tensors (`sft_loss`).
- `config`: YAML + flag loading for the trainers' config dataclasses.

Importing this package does not import torch; `losses` and the loops do.
"""

from __future__ import annotations

__all__: list[str] = []
