"""`execrl rm train`: a Bradley–Terry reward model on preference pairs, for PF-PPO (docs/pf-ppo.md).

The model is any Hugging Face causal LM backbone with a scalar head, trained and saved as a
standard `AutoModelForSequenceClassification` checkpoint with one label (LlamaForSequenceClassification
for the embedded model), so TRL, OpenRLHF and verl load it as it is. The score of a sequence is
the head's output at its last non-padding token (rewards/model.py: `encode`, shared with scoring).

Loss (Bradley–Terry; Ouyang et al. 2022, with Touvron et al. 2023's optional margin):
`bradley_terry_loss(r_chosen, r_rejected, margin) = −log σ(r_chosen − r_rejected − margin)` per
pair, averaged over the pairs of an optimizer step.

Pairs (trainers/reward_pairs.py): explicit `{"prompt", "chosen", "rejected"}` rows, or samples
paired within a task by their execution results (passed over failed, then higher pass ratio over
lower) or by an LLM judge's scores (RLAIF: higher by at least `score_gap`), at most
`pairs_per_prompt` per task, deterministic given the seed.

Held-out pairs: `eval_fraction` of the prompts (a seeded shuffle of the distinct prompts, at least
one prompt when the fraction is positive and there are two or more) are held out with all their
pairs, so held-out accuracy measures the model on prompts it never saw. Reported in
`eval.jsonl` (every `eval_every` steps and at the end) and `report.json` / `report.md`: pair
accuracy (r_chosen > r_rejected; a tie counts as wrong), loss, and the reward distribution of
the chosen and of the rejected completions.

Loop, checkpoints and outputs follow `execrl sft` (trainers/sft.py): AdamW, warmup then a decay,
gradient accumulation and clipping, accelerate for CPU/GPU/DDP; every input is checked before
`out` is created (a bad row is a `DataError` naming `file:line`); `log.jsonl` (a row per optimizer
step), `checkpoint-N/` every `save_every` steps with optimizer, scheduler and RNG states, `resume`
from the latest one, and the final model, tokenizer and `rm_config.yaml` in `out`.

Deviations and limits: pairs are batched with the chosen and rejected sequences of a micro-batch
in one forward pass (2B rows); the held-out evaluation runs on the main process only.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from execrl.data.jsonl import DataError, PathLike
from execrl.trainers.config import at_least_one, field_error, load_config, not_negative, one_of, require
from execrl.trainers.reward_pairs import Pair, execution_pairs, load_pairs, split_pairs
from execrl.trainers.sft import SCHEDULES

__all__ = ["Pair", "RMConfig", "bradley_terry_loss", "execution_pairs", "load_pairs", "split_pairs", "train"]


@dataclass
class RMConfig:
    """`execrl rm train`: every field is also a flag and a key of `--config cfg.yaml`."""

    model: str = ""
    """Hugging Face causal LM directory (model + tokenizer): the backbone; its LM head is dropped."""
    out: str = ""
    """Output directory: log.jsonl, eval.jsonl, checkpoint-N/, report.json, and the final model."""
    pairs: str | None = None
    """JSONL of explicit {"prompt", "chosen", "rejected"} rows (or give samples and results)."""
    samples: str | None = None
    """JSONL of {"task_id", "completion"} samples to pair by their execution results or judge scores."""
    results: str | None = None
    """The samples' result rows (execrl evaluate --out, or bench's results.jsonl), in their order."""
    judgements: str | None = None
    """Instead of results: the samples' rows from `execrl judge --out` (RLAIF), in their order;
    pairs by judge score (docs/rlaif.md)."""
    score_gap: float = 1.0
    """With judgements: a pair needs judge scores at least this far apart (1.0: one question's worth)."""
    benchmark: str = "builtin"
    """With samples: the benchmark whose prompts the samples answer."""
    data: str | None = None
    """With samples: the benchmark's data file (default: the copy it ships or finds)."""
    chat: bool = False
    """With samples: the prompts are chat messages rendered with the tokenizer's template."""
    pairs_per_prompt: int = 8
    """With samples: keep at most this many pairs per task (a seeded draw; 0: all)."""
    eval_fraction: float = 0.1
    """Share of the prompts held out, with all their pairs, for held-out pair accuracy (0: none)."""
    margin: float = 0.0
    """Bradley–Terry margin: the loss is −log σ(r_chosen − r_rejected − margin)."""
    epochs: int = 1
    """Passes over the training pairs; ignored when max_steps is set."""
    max_steps: int | None = None
    """Optimizer steps to run (the pairs repeat as needed); overrides epochs."""
    batch_size: int = 8
    """Pairs per micro-batch (per process); a forward pass sees 2 x batch_size sequences."""
    grad_accum: int = 1
    """Micro-batches per optimizer step (summed over processes)."""
    lr: float = 1e-5
    """Peak learning rate (AdamW)."""
    warmup_ratio: float = 0.03
    schedule: str = "cosine"
    """lr decay after warmup: cosine, linear, constant or wsd (as execrl sft)."""
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    """Clip the gradient's global norm to this; 0 disables clipping."""
    max_length: int = 1024
    """Tokens per sequence; longer ones are cut from the left (the scored last token stays)."""
    seed: int = 0
    """Seeds the pairs drawn, the held-out prompts, the data order and the head's initialisation."""
    eval_every: int = 0
    """Evaluate on the held-out pairs every this many steps (0: only at the end)."""
    save_every: int = 0
    """Save out/checkpoint-N every this many steps (0: none; the final model is always saved)."""
    log_every: int = 1
    """Update the progress bar's loss every this many steps (log.jsonl gets every step)."""
    bf16: bool = False
    """bfloat16 mixed precision (GPU only)."""
    resume: bool = False
    """Continue from the latest out/checkpoint-N; needed to reuse an out dir that has checkpoints."""

    def __post_init__(self) -> None:
        bad = partial(field_error, self)
        require(self, "model", "out")
        labels = [n for n in ("results", "judgements") if getattr(self, n) is not None]
        if self.pairs is not None and (self.samples is not None or labels):
            raise DataError(
                "config: give either 'pairs' or 'samples' and 'results' (or 'judgements'), not both"
            )
        if self.pairs is None and (self.samples is None or len(labels) != 1):
            raise DataError("config: field 'pairs' is required (or 'samples' with exactly one of 'results' "
                            "and 'judgements')")  # fmt: skip
        if not (math.isfinite(self.score_gap) and self.score_gap > 0):
            raise bad("score_gap", "must be a positive number")
        at_least_one(self, "epochs", "batch_size", "grad_accum", "log_every")
        if self.max_steps is not None and self.max_steps < 1:
            raise bad("max_steps", "must be at least 1")
        if self.max_length < 2:
            raise bad("max_length", "must be at least 2")
        if not self.lr > 0:
            raise bad("lr", "must be positive")
        if not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", "must be in [0, 1)")
        if not 0 <= self.eval_fraction < 1:
            raise bad("eval_fraction", "must be in [0, 1)")
        one_of(self, "schedule", SCHEDULES)
        if not math.isfinite(self.margin):
            raise bad("margin", "must be a finite number")
        not_negative(self, "weight_decay", "max_grad_norm", "save_every", "eval_every", "pairs_per_prompt")

    @classmethod
    def load(cls, path: PathLike | None = None, overrides: dict[str, Any] | None = None) -> RMConfig:
        """Fields from a YAML file, then `overrides` (unknown keys and bad values name the field)."""
        return load_config(cls, path, overrides)


# ---------------------------------------------------------------------------------------------
# The loss: a pure function of tensors.


def bradley_terry_loss(chosen: Any, rejected: Any, margin: float = 0.0) -> tuple[Any, Any]:
    """Per-pair losses −log σ(chosen − rejected − margin) and accuracies (chosen > rejected, as
    0./1.), each (B,), for reward scalars `chosen` and `rejected` of shape (B,)."""
    import torch

    diff = chosen - rejected
    return -torch.nn.functional.logsigmoid(diff - margin), (diff > 0).to(chosen.dtype)


# ---------------------------------------------------------------------------------------------
# Evaluation and the report.


def _quantiles(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    return {f"p{q}": s[min(len(s) - 1, int(q / 100 * len(s)))] for q in (5, 25, 50, 75, 95)}


def distribution(chosen: list[float], rejected: list[float], bins: int = 10) -> dict[str, Any]:
    """Mean, std, quantiles and a shared-edge histogram of the chosen and the rejected rewards."""
    values = chosen + rejected
    lo, hi = min(values), max(values)
    width = (hi - lo) / bins or 1.0
    edges = [lo + i * width for i in range(bins + 1)]

    def describe(xs: list[float]) -> dict[str, Any]:
        mean = sum(xs) / len(xs)
        counts = [0] * bins
        for x in xs:
            counts[min(bins - 1, int((x - lo) / width))] += 1
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))
        return {"mean": mean, "std": std, **_quantiles(xs), "histogram": counts}

    return {"edges": edges, "chosen": describe(chosen), "rejected": describe(rejected)}


def evaluate_pairs(model: Any, tokenizer: Any, pairs: Sequence[Pair], max_length: int, margin: float,
                   batch_size: int, device: Any) -> dict[str, Any]:  # fmt: skip
    """Pair accuracy, mean loss and the reward distribution of `model` on `pairs`."""
    import torch

    from execrl.rewards.model import batch_tensors, encode, pad_id

    pad = pad_id(tokenizer)
    chosen: list[float] = []
    rejected: list[float] = []
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i : i + batch_size]
            seqs = [encode(tokenizer, p.prompt, p.chosen, max_length) for p in chunk]
            seqs += [encode(tokenizer, p.prompt, p.rejected, max_length) for p in chunk]
            ids, attention = batch_tensors(seqs, pad)
            r = (
                model(input_ids=ids.to(device), attention_mask=attention.to(device))
                .logits[:, 0]
                .float()
                .cpu()
            )
            chosen += r[: len(chunk)].tolist()
            rejected += r[len(chunk) :].tolist()
    model.train(was_training)
    losses, acc = bradley_terry_loss(torch.tensor(chosen), torch.tensor(rejected), margin)
    return {
        "pairs": len(pairs),
        "accuracy": float(acc.mean()),
        "loss": float(losses.mean()),
        "margin_mean": float((torch.tensor(chosen) - torch.tensor(rejected)).mean()),
        "distribution": distribution(chosen, rejected),
    }


def _report_md(cfg: RMConfig, n_train: int, held: dict[str, Any] | None, train_acc: dict[str, Any]) -> str:
    lines = [
        "# Reward model",
        "",
        f"Backbone `{cfg.model}`; {n_train} training pairs; Bradley–Terry, margin {cfg.margin:g}.",
        "",
    ]
    lines += [
        "| pairs | n | accuracy | loss | mean r(chosen) | mean r(rejected) |",
        "|---|---|---|---|---|---|",
    ]
    for name, ev in (("train", train_acc), ("held-out", held)):
        if ev:
            d = ev["distribution"]
            lines.append(f"| {name} | {ev['pairs']} | {ev['accuracy']:.3f} | {ev['loss']:.4f} | "
                         f"{d['chosen']['mean']:.3f} ± {d['chosen']['std']:.3f} | "
                         f"{d['rejected']['mean']:.3f} ± {d['rejected']['std']:.3f} |")  # fmt: skip
    if held is None:
        lines += ["", "No held-out pairs (eval_fraction 0, or a single prompt)."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The loop.


def train(cfg: RMConfig) -> dict[str, Any]:
    """Train a reward model into `cfg.out`; returns {"steps", "loss", "out", "eval", "train_eval"}."""
    import torch
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import AutoModelForSequenceClassification

    from execrl.rewards.model import batch_tensors, encode, pad_id
    from execrl.trainers.sft import (
        _load_tokenizer,
        _set_rng_state,
        adamw,
        epoch_batches,
        latest_checkpoint,
        lr_factor,
        make_accelerator,
        write_checkpoint,
    )

    out = Path(cfg.out)
    resume_from = latest_checkpoint(out) if out.is_dir() else None
    if resume_from is not None and not cfg.resume:
        raise DataError(f"{out}: has checkpoints; pass --resume to continue, or choose another out")
    if cfg.bf16 and not torch.cuda.is_available():  # before accelerate's process-wide state is set
        raise DataError("config: field 'bf16' needs a GPU, and this run is on the CPU")
    accelerator = make_accelerator(cfg.bf16)
    tokenizer = _load_tokenizer(cfg.model)
    pad = pad_id(tokenizer)
    pairs = load_pairs(tokenizer, pairs=cfg.pairs, samples=cfg.samples, results=cfg.results,
                       judgements=cfg.judgements, score_gap=cfg.score_gap, benchmark=cfg.benchmark, data=cfg.data, chat=cfg.chat,
                       pairs_per_prompt=cfg.pairs_per_prompt, seed=cfg.seed)  # fmt: skip
    train_pairs, held = split_pairs(pairs, cfg.eval_fraction, cfg.seed)
    seqs = [(encode(tokenizer, p.prompt, p.chosen, cfg.max_length),
             encode(tokenizer, p.prompt, p.rejected, cfg.max_length)) for p in train_pairs]  # fmt: skip
    lengths = [max(len(c), len(r)) for c, r in seqs]
    per_epoch = math.ceil(len(seqs) / cfg.batch_size)
    n_micro = per_epoch * cfg.epochs if cfg.max_steps is None else cfg.max_steps * cfg.grad_accum
    total = cfg.max_steps or math.ceil(n_micro / cfg.grad_accum)
    warmup = math.ceil(cfg.warmup_ratio * total)

    set_seed(cfg.seed)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            resume_from or cfg.model, num_labels=1, dtype=torch.float32
        )
    except ValueError as e:  # "Unrecognized configuration class ...": no such head for this architecture
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{cfg.model}: no sequence-classification head for this model ({first})") from None
    model.config.pad_token_id = pad  # the head reads the last token that is not padding
    optimizer = adamw(model, cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warmup, cfg.schedule)
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    start = 0
    if resume_from is not None:
        state = torch.load(resume_from / "trainer_state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"][min(accelerator.process_index, len(state["rng"]) - 1)])
        start = state["step"]
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("log.jsonl", "eval.jsonl"):  # keep the rows up to the checkpoint
            path = out / name
            kept = path.read_text().splitlines() if resume_from is not None and path.exists() else []
            path.write_text("".join(f"{r}\n" for r in kept if json.loads(r)["step"] <= start))
    unwrapped = accelerator.unwrap_model(model)
    evals: list[dict[str, Any]] = []

    def run_eval(step: int) -> None:
        if held and accelerator.is_main_process:
            ev = evaluate_pairs(unwrapped, tokenizer, held, cfg.max_length, cfg.margin, cfg.batch_size * 2,
                                accelerator.device)  # fmt: skip
            row = {"step": step, **{k: v for k, v in ev.items() if k != "distribution"}}
            evals.append({**row, "distribution": ev["distribution"]})
            with open(out / "eval.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        accelerator.wait_for_everyone()

    cache: dict[int, list[list[int]]] = {}

    def micro_batch(m: int) -> tuple[Any, Any, int]:
        epoch = m // per_epoch
        if epoch not in cache:
            cache.clear()
            cache[epoch] = epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch, bucket=True)
        order = cache[epoch][m % per_epoch]
        ids, attention = batch_tensors([seqs[i][0] for i in order] + [seqs[i][1] for i in order], pad)
        return ids, attention, len(order)  # (2B, T): the chosen rows, then the rejected

    bar = tqdm(total=total, initial=start, desc="rm", disable=not accelerator.is_local_main_process)
    model.train()
    loss_value = float("nan")
    for step in range(start, total):
        t0 = time.perf_counter()
        group = [
            micro_batch(m) for m in range(step * cfg.grad_accum, min((step + 1) * cfg.grad_accum, n_micro))
        ]
        n_pairs = sum(n for _, _, n in group)
        mine = group[accelerator.process_index :: accelerator.num_processes]
        weight = 1.0 if mine else 0.0  # a process with no micro-batch still joins the gradient sync
        mine = mine or group[:1]
        local_loss = torch.zeros((), device=accelerator.device)
        local_acc = torch.zeros((), device=accelerator.device)
        for i, (ids, attention, n) in enumerate(mine):
            sync = i == len(mine) - 1
            with accelerator.no_sync(model) if not sync else contextlib.nullcontext(), accelerator.autocast():
                r = model(
                    input_ids=ids.to(accelerator.device), attention_mask=attention.to(accelerator.device)
                ).logits[:, 0]
                losses, acc = bradley_terry_loss(r[:n], r[n:], cfg.margin)
                # DDP averages gradients over processes: scale so the sum is the step's pair mean
                loss = losses.sum() / n_pairs * accelerator.num_processes * weight
                accelerator.backward(loss)
            local_loss += losses.detach().sum() * weight
            local_acc += acc.sum() * weight
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm or float("inf"))
        optimizer.step()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(accelerator.reduce(local_loss, reduction="sum")) / n_pairs
        accuracy = float(accelerator.reduce(local_acc, reduction="sum")) / n_pairs
        row = {"step": step + 1, "loss": loss_value, "accuracy": accuracy, "lr": lr, "pairs": n_pairs,
               "grad_norm": float(grad_norm), "seconds": time.perf_counter() - t0,
               "processes": accelerator.num_processes}  # fmt: skip
        if accelerator.is_main_process:
            with open(out / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        bar.update(1)
        if (step + 1) % cfg.log_every == 0:
            bar.set_postfix(loss=f"{loss_value:.4f}", acc=f"{accuracy:.2f}")
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < total:
            run_eval(step + 1)
        if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < total:
            write_checkpoint(out, step + 1, accelerator, lambda tmp: _save(tmp, accelerator, model, tokenizer),
                             {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})  # fmt: skip
    bar.close()
    run_eval(total)
    train_eval = None
    if accelerator.is_main_process:
        sample = train_pairs[: max(len(held), 256)]
        train_eval = evaluate_pairs(unwrapped, tokenizer, sample, cfg.max_length, cfg.margin, cfg.batch_size * 2,
                                    accelerator.device)  # fmt: skip
    accelerator.wait_for_everyone()
    _save(out, accelerator, model, tokenizer)
    final = evals[-1] if evals else None
    if accelerator.is_main_process:
        from execrl.trainers.config import dump_config

        (out / "rm_config.yaml").write_text(dump_config(asdict(cfg)))
        report = {"train_pairs": len(train_pairs), "heldout_prompts": len({p.group for p in held}),
                  "heldout": final, "train": train_eval}  # fmt: skip
        (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        assert train_eval is not None
        (out / "report.md").write_text(_report_md(cfg, len(train_pairs), final, train_eval))
    accelerator.wait_for_everyone()
    return {"steps": total, "loss": loss_value, "out": str(out), "eval": final, "train_eval": train_eval}


def _save(directory: Path, accelerator: Any, model: Any, tokenizer: Any) -> None:
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(directory, state_dict=state_dict)
        tokenizer.save_pretrained(directory)
