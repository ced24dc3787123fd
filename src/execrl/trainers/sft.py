"""Supervised fine-tuning (SFT) of any Hugging Face causal LM on prompt/response pairs.

Data: JSONL rows `{"prompt": str, "response": str}`, or `{"messages": [{"role", "content"}, ...]}`
whose last message is the assistant's response and whose earlier messages are rendered with the
tokenizer's chat template (`add_generation_prompt=True`). The loss is next-token cross-entropy on
the response tokens only (`losses.sft_loss`), with the tokenizer's EOS appended to every response.

Loop: AdamW (no weight decay on 1-D parameters: biases, norms), linear warmup then cosine, linear, wsd or
constant decay, gradient accumulation, gradient clipping, one code path through
`accelerate.Accelerator` for CPU, one GPU or DDP (`accelerate launch -m execrl.cli sft ...`).
Everything is checked before training starts and before `out` is created: the config, the model
directory, and every data row (`DataError` naming `file:line`).

Outputs in `out`: `log.jsonl` (one row per optimizer step: step, loss, lr, tokens, loss_tokens,
grad_norm, seconds), `checkpoint-N/` every `save_every` steps (model and tokenizer via
`save_pretrained` plus `trainer_state.pt`: optimizer, scheduler, RNG states, step), and at the end
the final model, tokenizer and `sft_config.yaml` in `out` itself, a standard HF checkpoint directory.
`resume=True` continues from the highest `checkpoint-N` (from scratch if there is none).

Reproducibility: the data order is a pure function of (seed, epoch), so the same config on the same
machine gives the same final weights, and a resumed run the same weights as an uninterrupted one.

Deviations and limits:
- Prompt and response are tokenized separately and concatenated (a merge across the boundary is
  not formed); for chat rows the template's own end-of-turn token after the response is not added,
  EOS is. A sequence longer than `max_length` is cut from the right (its EOS is lost); a row whose
  prompt alone leaves no response token within `max_length` is an error.
- `packing` concatenates whole examples into sequences of at most `max_length` tokens without
  per-example attention isolation or position reset: an example attends to the ones before it in
  its sequence. Without packing, batches are length-bucketed (sorted by length after a seeded
  shuffle); the buckets are fixed, their order is reshuffled every epoch.
- Loss is the token mean over an optimizer step (all micro-batches and processes), not the mean of
  per-micro-batch means. With `max_steps` the data is repeated as often as needed.
- All checkpoints are kept. `bf16` is mixed precision (autocast) and needs a GPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from execrl.data.jsonl import DataError, PathLike, Row, read_rows
from execrl.trainers.config import at_least_one, field_error, load_config, not_negative, one_of, require

__all__ = [
    "Example",
    "SFTConfig",
    "adamw",
    "decay_factor",
    "epoch_batches",
    "load_examples",
    "lr_factor",
    "pack",
    "train",
]

SCHEDULES = ("cosine", "linear", "constant", "wsd")
WSD_COOLDOWN = 0.2  # "wsd": the last fifth of the decay goes linearly to 0 (Hägele et al., 2024)


@dataclass
class SFTConfig:
    """`execrl sft`: every field is also a flag (`--max-length`) and a key of `--config cfg.yaml`."""

    model: str = ""
    """Hugging Face causal LM directory (model + tokenizer) to start from."""
    data: str = ""
    """JSONL of {"prompt", "response"} or {"messages": [...]} rows (.jsonl.gz accepted)."""
    out: str = ""
    """Output directory: log.jsonl, checkpoint-N/, and the final model."""
    epochs: int = 1
    """Passes over the data; ignored when max_steps is set."""
    max_steps: int | None = None
    """Optimizer steps to run (the data repeats as needed); overrides epochs."""
    batch_size: int = 8
    """Sequences per micro-batch (per process)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step (summed over processes)."""
    lr: float = 2e-5
    """Peak learning rate (AdamW)."""
    warmup_ratio: float = 0.03
    """Fraction of the steps over which the lr rises linearly to its peak."""
    schedule: str = "cosine"
    """lr decay after warmup: cosine (to 0), linear (to 0), constant, or wsd (constant, then linear
    to 0 over the last fifth of the steps)."""
    weight_decay: float = 0.0
    """AdamW weight decay, applied to parameters with 2 or more dimensions only."""
    max_grad_norm: float = 1.0
    """Clip the gradient's global norm to this; 0 disables clipping."""
    max_length: int = 1024
    """Tokens per sequence; longer examples are cut from the right."""
    packing: bool = False
    """Pack several examples into one sequence (no attention isolation); else length bucketing."""
    seed: int = 0
    """Seeds the data order and torch/python/numpy RNGs: same seed, same final weights."""
    save_every: int = 0
    """Save out/checkpoint-N every this many steps; 0 saves none (the final model is always saved)."""
    log_every: int = 1
    """Update the progress bar's loss every this many steps (log.jsonl gets every step)."""
    bf16: bool = False
    """bfloat16 mixed precision (GPU only)."""
    resume: bool = False
    """Continue from the latest out/checkpoint-N; needed to reuse an out dir that has checkpoints."""

    def __post_init__(self) -> None:
        bad = partial(field_error, self)
        require(self, "model", "data", "out")
        at_least_one(self, "epochs", "batch_size", "grad_accum", "max_length", "log_every")
        if self.max_steps is not None and self.max_steps < 1:
            raise bad("max_steps", "must be at least 1")
        if self.max_length < 2:
            raise bad("max_length", "must be at least 2")
        if not self.lr > 0:
            raise bad("lr", "must be positive")
        if not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", "must be in [0, 1)")
        one_of(self, "schedule", SCHEDULES)
        not_negative(self, "weight_decay", "max_grad_norm", "save_every")

    @classmethod
    def load(cls, path: PathLike | None = None, overrides: dict[str, Any] | None = None) -> SFTConfig:
        """Fields from a YAML file, then `overrides` (unknown keys and bad values name the field)."""
        return load_config(cls, path, overrides)


# ---------------------------------------------------------------------------------------------
# Data: rows → token ids with a response mask → sequences → batches. Pure, no torch.


@dataclass(frozen=True)
class Example:
    """One tokenized sequence; `mask[t]` is 1 where `input_ids[t]` is a response token (a target)."""

    input_ids: list[int]
    mask: list[int]
    line: int


def _prompt_response(row: Row, tokenizer: Any) -> tuple[str, str, bool]:
    """(prompt text, response text, whether the prompt is a rendered chat template)."""
    if "messages" not in row.data:
        return row.text("prompt", default=""), row.text("response"), False
    messages = row.get("messages", list)
    for i, m in enumerate(messages):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            raise row.error(f'field "messages" item {i} must be an object with string "role" and "content"')
    if not messages or messages[-1]["role"] != "assistant":
        raise row.error('field "messages" must end with an "assistant" message (the response)')
    if not getattr(tokenizer, "chat_template", None):
        raise row.error('"messages" row, but the tokenizer has no chat template')
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    return prompt, messages[-1]["content"], True


def load_examples(path: PathLike, tokenizer: Any, *, max_length: int) -> list[Example]:
    """Read and tokenize every row; any bad row is a `DataError` naming its line."""
    eos = tokenizer.eos_token_id
    examples = []
    for row in read_rows(path):
        prompt, response, chat = _prompt_response(row, tokenizer)
        if not response.strip():
            raise row.error("empty response")
        prompt_ids = tokenizer(prompt, add_special_tokens=not chat)["input_ids"] if prompt else []
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [eos]
        if len(prompt_ids) >= max_length:
            raise row.error(
                f"prompt is {len(prompt_ids)} tokens: no room for the response in max_length {max_length}"
            )
        ids = (prompt_ids + response_ids)[:max_length]
        mask = ([0] * len(prompt_ids) + [1] * len(response_ids))[:max_length]
        examples.append(Example(ids, mask, row.line))
    if not examples:
        raise DataError(f"{os.fspath(path)}: no examples (the file is empty)")
    return examples


def pack(examples: Sequence[Example], max_length: int) -> list[Example]:
    """Concatenate consecutive whole examples into sequences of at most `max_length` tokens."""
    packed: list[Example] = []
    ids: list[int] = []
    mask: list[int] = []
    line = examples[0].line  # a packed sequence keeps the line of its first example
    for ex in examples:
        if ids and len(ids) + len(ex.input_ids) > max_length:
            packed.append(Example(ids, mask, line))
            ids, mask, line = [], [], ex.line
        ids, mask = ids + ex.input_ids, mask + ex.mask
    packed.append(Example(ids, mask, line))
    return packed


def epoch_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, bucket: bool
) -> list[list[int]]:
    """Indices of the sequences in each micro-batch of one epoch, a pure function of its arguments.

    bucket: sort by length after a seeded shuffle (the buckets are the same every epoch, their order
    is not); else a fresh shuffle every epoch."""
    if bucket:
        order = list(range(len(lengths)))
        random.Random(seed).shuffle(order)
        order.sort(key=lambda i: lengths[i])  # stable: equal lengths stay shuffled
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        random.Random(f"{seed}:{epoch}").shuffle(batches)
        return batches
    order = list(range(len(lengths)))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def adamw(module: Any, lr: float, weight_decay: float) -> Any:
    """AdamW over `module`'s trainable parameters, with weight decay on the matrices only (not on
    biases and norms), as every trainer here uses it."""
    import torch

    params = [p for p in module.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]  # fmt: skip
    return torch.optim.AdamW(groups, lr=lr)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak lr for optimizer step `step` (0-based) of `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return decay_factor((step - warmup) / max(1, total - warmup), schedule)


def decay_factor(progress: float, schedule: str) -> float:
    """Multiplier of the peak lr once `progress` (0 → 1) of the decay is done: constant, linear or
    cosine to 0 at 1, or "wsd" (warmup-stable-decay): constant, then linear to 0 over the last
    `WSD_COOLDOWN` of the run. A run of unknown length (a time budget) keeps its full lr for most
    of it and still ends annealed."""
    progress = min(1.0, max(0.0, progress))
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "wsd":
        return min(1.0, (1.0 - progress) / WSD_COOLDOWN)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------------------
# Checks and checkpoints.


def _load_tokenizer(model: str) -> Any:
    from transformers import AutoConfig, AutoTokenizer

    try:
        AutoConfig.from_pretrained(model)
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError, KeyError, TypeError) as e:
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise DataError(f"{model}: not a Hugging Face model directory ({first})")
    if tokenizer.eos_token_id is None:
        raise DataError(f"{model}: the tokenizer has no EOS token to end responses with")
    return tokenizer


def make_accelerator(bf16: bool) -> Any:
    """The run's `Accelerator`. Without a GPU it must be told `cpu=True`: only then does it join
    the process group that `accelerate launch` / `torchrun` set up (DDP over gloo); otherwise
    every process trains alone as rank 0 of 1."""
    import torch
    from accelerate import Accelerator

    has_device = torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
    has_device = has_device or torch.backends.mps.is_available()
    accelerator = Accelerator(mixed_precision="bf16" if bf16 else "no", cpu=not has_device)
    if bf16 and accelerator.device.type == "cpu":
        raise DataError("config: field 'bf16' needs a GPU, and this run is on the CPU")
    return accelerator


def latest_checkpoint(out: PathLike) -> Path | None:
    """The `checkpoint-N` directory in `out` with the highest N, or None."""
    found = [p for p in Path(out).glob("checkpoint-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-", 1)[1]), default=None)


def _rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_model(directory: Path, accelerator: Any, model: Any, tokenizer: Any) -> None:
    state_dict = accelerator.get_state_dict(model)  # all processes (sharded backends gather here)
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(directory, state_dict=state_dict)
        tokenizer.save_pretrained(directory)


# ---------------------------------------------------------------------------------------------
# The loop.


def train(cfg: SFTConfig) -> dict[str, Any]:
    """Fine-tune `cfg.model` on `cfg.data` into `cfg.out`; returns {"steps", "loss", "out"}."""
    import torch
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM

    from execrl.trainers.losses import sft_loss

    out = Path(cfg.out)
    resume_from = latest_checkpoint(out) if out.is_dir() else None
    if resume_from is not None and not cfg.resume:
        raise DataError(f"{out}: has checkpoints; pass --resume to continue, or choose another out")
    accelerator = make_accelerator(cfg.bf16)
    tokenizer = _load_tokenizer(cfg.model)
    examples = load_examples(cfg.data, tokenizer, max_length=cfg.max_length)
    sequences = pack(examples, cfg.max_length) if cfg.packing else examples
    lengths = [len(s.input_ids) for s in sequences]
    per_epoch = math.ceil(len(sequences) / cfg.batch_size)  # micro-batches
    n_micro = per_epoch * cfg.epochs if cfg.max_steps is None else cfg.max_steps * cfg.grad_accum
    total = cfg.max_steps or math.ceil(n_micro / cfg.grad_accum)
    warmup = math.ceil(cfg.warmup_ratio * total)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    set_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(resume_from or cfg.model, dtype=torch.float32)
    optimizer = adamw(model, cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warmup, cfg.schedule)
    )
    model, optimizer = accelerator.prepare(model, optimizer)  # the scheduler steps once per step, here
    start = 0
    if resume_from is not None:
        state = torch.load(resume_from / "trainer_state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"][min(accelerator.process_index, len(state["rng"]) - 1)])
        start = state["step"]
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        log_path = out / "log.jsonl"
        kept = log_path.read_text().splitlines() if resume_from is not None and log_path.exists() else []
        log_path.write_text("".join(f"{r}\n" for r in kept if json.loads(r)["step"] <= start))

    cache: dict[int, list[list[int]]] = {}

    def micro_batch(m: int) -> Any:
        epoch = m // per_epoch
        if epoch not in cache:
            cache.clear()
            cache[epoch] = epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch, bucket=not cfg.packing)
        seqs = [sequences[i] for i in cache[epoch][m % per_epoch]]
        width = max(len(s.input_ids) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)  # (B, T), right-padded
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        attention = torch.zeros((len(seqs), width), dtype=torch.long)
        for b, s in enumerate(seqs):
            n = len(s.input_ids)
            ids[b, :n] = torch.tensor(s.input_ids)
            mask[b, :n] = torch.tensor(s.mask)
            attention[b, :n] = 1
        return ids, mask, attention

    bar = tqdm(total=total, initial=start, desc="sft", disable=not accelerator.is_local_main_process)
    model.train()
    loss_value = float("nan")
    for step in range(start, total):
        t0 = time.perf_counter()
        group = [
            micro_batch(m) for m in range(step * cfg.grad_accum, min((step + 1) * cfg.grad_accum, n_micro))
        ]
        n_targets = sum(int(mask[:, 1:].sum()) for _, mask, _ in group)
        n_tokens = sum(int(attention.sum()) for _, _, attention in group)
        mine = group[accelerator.process_index :: accelerator.num_processes]
        weight = 1.0 if mine else 0.0  # a process with no micro-batch still joins the gradient sync
        mine = mine or group[:1]
        local = torch.zeros((), device=accelerator.device)
        for i, (ids, mask, attention) in enumerate(mine):
            ids, mask, attention = (t.to(accelerator.device) for t in (ids, mask, attention))
            sync = i == len(mine) - 1
            with accelerator.no_sync(model) if not sync else contextlib.nullcontext(), accelerator.autocast():
                logits = model(input_ids=ids, attention_mask=attention).logits
                # DDP averages gradients over processes: scale so the sum is the group's token mean
                loss = sft_loss(logits, ids, mask, normalizer=n_targets) * accelerator.num_processes * weight
                accelerator.backward(loss)
            local += loss.detach()
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm or float("inf"))
        optimizer.step()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(accelerator.reduce(local, reduction="sum")) / accelerator.num_processes
        row = {
            "step": step + 1,
            "loss": loss_value,
            "lr": lr,
            "tokens": n_tokens,
            "loss_tokens": n_targets,
            "grad_norm": float(grad_norm),
            "seconds": time.perf_counter() - t0,
            "processes": accelerator.num_processes,
        }
        if accelerator.is_main_process:
            with open(out / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        bar.update(1)
        if (step + 1) % cfg.log_every == 0:
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
        if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < total:
            _save_checkpoint(out, step + 1, accelerator, model, tokenizer, optimizer, scheduler)
    bar.close()

    accelerator.wait_for_everyone()
    _save_model(out, accelerator, model, tokenizer)
    if accelerator.is_main_process:
        from execrl.trainers.config import dump_config

        (out / "sft_config.yaml").write_text(dump_config(asdict(cfg)))
    accelerator.wait_for_everyone()
    return {"steps": total, "loss": loss_value, "out": str(out)}


def _save_checkpoint(
    out: Path, step: int, accelerator: Any, model: Any, tokenizer: Any, optimizer: Any, scheduler: Any
) -> None:
    write_checkpoint(
        out,
        step,
        accelerator,
        lambda tmp: _save_model(tmp, accelerator, model, tokenizer),
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
    )


def write_checkpoint(out: Path, step: int, accelerator: Any, save_model: Any, state: dict[str, Any]) -> None:
    """Write out/checkpoint-N atomically: `save_model(tmp_dir)` (called on every process), then
    `trainer_state.pt` = `state` + step + every process's RNG states, then the rename."""
    import torch
    from accelerate.utils import gather_object

    final, tmp = out / f"checkpoint-{step}", out / f"checkpoint-{step}.tmp"
    accelerator.wait_for_everyone()
    rngs = gather_object([_rng_state()])  # one per process
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    save_model(tmp)
    if accelerator.is_main_process:
        torch.save({**state, "step": step, "rng": list(rngs)}, tmp / "trainer_state.pt")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    accelerator.wait_for_everyone()
