"""Checkpoints of `execrl train`: the policy (or its LoRA adapter), the value head, and the trainer state.

`checkpoint-N/` holds the model (`save_pretrained`; with LoRA only `adapter/`), its tokenizer,
`value_head.safetensors` (PPO) and `trainer_state.pt` (optimizer, scheduler, the RNG states of every
process, the step, the training seconds so far and every process's replay buffer). It is written to `checkpoint-N.tmp` and renamed,
so a run killed while saving leaves no half checkpoint. The final save merges LoRA adapters into a
standard HF checkpoint directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from execrl.trainers.sft import write_checkpoint

__all__ = ["save_checkpoint", "save_final", "save_policy"]


def save_policy(directory: Path, accelerator: Any, policy: Any, tokenizer: Any, merge: bool) -> None:
    from safetensors.torch import save_file

    unwrapped = accelerator.unwrap_model(policy)
    if accelerator.is_main_process:
        directory.mkdir(parents=True, exist_ok=True)
        lm = unwrapped.lm
        if hasattr(lm, "peft_config"):
            if merge:
                lm.merge_and_unload().save_pretrained(directory)
            else:
                lm.save_pretrained(directory / "adapter")
        else:
            lm.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        if unwrapped.value_head is not None:
            state = {k: v.detach().contiguous().cpu() for k, v in unwrapped.value_head.state_dict().items()}
            save_file(state, str(directory / "value_head.safetensors"))


def save_checkpoint(
    out: Path,
    step: int,
    seconds: float,
    accelerator: Any,
    policy: Any,
    tokenizer: Any,
    optimizer: Any,
    scheduler: Any,
    replay: list[dict[str, Any]] | None = None,
) -> None:
    """Write out/checkpoint-N atomically (a temporary directory renamed at the end). `replay`: every
    process's replay buffer state, in process order."""
    write_checkpoint(
        out,
        step,
        accelerator,
        lambda tmp: save_policy(tmp, accelerator, policy, tokenizer, merge=False),
        {
            "train_seconds": seconds,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "replay": replay,
        },
    )


def save_final(out: Path, accelerator: Any, policy: Any, tokenizer: Any, cfg: Any) -> None:
    accelerator.wait_for_everyone()
    save_policy(out, accelerator, policy, tokenizer, merge=True)
    accelerator.wait_for_everyone()
