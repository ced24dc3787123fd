"""`execrl prefer`: PLUM's on-policy preference rounds (Zhang et al., 2024, arXiv 2406.06887).

One round: take the round's prompts (all training tasks with a valid test, or `prompts_per_round`
of them, a pure function of (seed, round)) → sample `samples_per_prompt` programs each from the
current policy (rollout.py `sample`) → run them against the task's tests in the sandbox: the rows
of `execrl tests validate` marked valid (preference_data.py `label`), or with
`ground_truth_tests` the benchmark's own → a program that passes all is chosen, one that fails any
is rejected → DPO/IPO pairs (a chosen and a rejected program of one prompt, at most
`max_pairs_per_prompt`; a prompt without both kinds gives none) or KTO examples (every labelled
program, desirable = chosen) → the reference's summed log-probabilities of every sequence the
round trains on, recorded once → `epochs` passes of optimizer steps on preference_losses.py's
losses → the next round samples from the updated policy. With `samples` (off-policy, the paper's
comparison) the round's programs are another model's, read from a file instead of sampled.

The reference is the policy at the round's start (`reference: round`, online iterations) or the
model the run started from (`reference: start`; with LoRA, the base with adapters off). Since its
log-probabilities are recorded when the round starts, no second model is kept in memory for
`round`.

The round's data (prompts, programs, labels, pairs or examples, reference log-probs) is built by
prefer_round.py; this module runs the rounds, the optimizer steps, checkpoints and evaluation.

Outputs in `out`: log.jsonl (a row per optimizer step: round, the round's pairs, loss, implicit
rewards of chosen and rejected, their margin, accuracy, the policy's summed log-probs of chosen and
rejected, KTO's KL estimate, lr, grad norm), rounds.jsonl (a row per finished round: programs,
labels, pass rate, pairs, prompts with a pair, seconds per phase, held-out pass@1), eval.jsonl
(held-out greedy pass@1 before the first round and after each), round-R.pt (the round's labelled
sequences, batches and reference log-probs: a resumed round trains on exactly the same data),
checkpoint-N/ and at the end the final model (LoRA merged) and prefer_config.yaml. `resume`
continues from the latest checkpoint, mid-round included: the same run, step for step.

Deviations and limits:
- Losses use summed log-probabilities of the exact sampled token ids (the stop string's last token
  included, as `execrl train` does), scored by the untempered model; programs are sampled at
  `temperature`.
- KTO's KL reference point pairs example i with the completion of example i - 1 of its batch (TRL);
  a round's batches are fixed when the round starts (their order is reshuffled every epoch), so
  those mismatched pairs' reference log-probs are recorded once. KTO's "accuracy" is the share of
  examples whose implicit reward has the sign of their label (TRL logs none).
- The lr warms up, then stays constant: a run bounded by time has no known length.
- Under `accelerate launch` every process samples and labels the whole round (same seed, same
  data) and only the updates' micro-batches are split; multi-process runs are not tested yet.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from execrl.data import DataError, get_benchmark
from execrl.eval.policy import evaluate_policy
from execrl.generation.hf import encode_prompt
from execrl.rewards.execution import ExecutionReward
from execrl.trainers.prefer_config import PreferConfig
from execrl.trainers.prefer_round import (
    RoundData,
    batch_order,
    build_round,
    policy_logp,
    read_samples,
    read_valid_tests,
    sequence_logps,
)
from execrl.trainers.preference_losses import dpo_loss, ipo_loss, kto_kl, kto_loss
from execrl.trainers.rl import Policy, _apply_lora, _stop_now
from execrl.trainers.rl_checkpoint import save_final, save_policy
from execrl.trainers.rl_tasks import check_lengths, check_tasks, tasks
from execrl.trainers.rollout import trim
from execrl.trainers.sft import (
    _load_tokenizer,
    _set_rng_state,
    adamw,
    latest_checkpoint,
    make_accelerator,
    write_checkpoint,
)
from execrl.trainers.tracking import RunProgress, Tracker
from execrl.trainers.tracking import require as require_sinks
from execrl.types import Limits

__all__ = ["train"]

# ---------------------------------------------------------------------------------------------
# One optimizer step on one batch.


def _step(
    cfg: PreferConfig, accelerator: Any, policy: Any, optimizer: Any, scheduler: Any, data: RoundData, b: int
) -> dict[str, Any]:
    """Loss = the batch's mean per-example loss; returns the step's metrics."""
    items = data.batches[b]
    B = len(items)
    procs, rank = accelerator.num_processes, accelerator.process_index
    ref = data.ref_logp
    kl = torch.zeros(())
    if cfg.algo == "kto":  # the reference point: mismatched pairs of the whole batch, no gradient
        kl_rows = [it[2] for it in items]
        policy_kl = sequence_logps(policy, data.seqs.select(kl_rows), cfg.micro_batch_size)
        kl = kto_kl(policy_kl, ref[kl_rows])
        per_micro = cfg.micro_batch_size
    else:
        per_micro = max(1, cfg.micro_batch_size // 2)  # a pair is two sequences
    n_good = sum(bool(it[1]) for it in items) if cfg.algo == "kto" else B  # passing programs of the batch
    micro = [list(range(s, min(s + per_micro, B))) for s in range(0, B, per_micro)]
    mine = micro[rank::procs]
    weight = 1.0 if mine else 0.0  # a process with no micro-batch still joins the gradient sync
    mine = mine or micro[:1]
    policy.train()
    sums: dict[str, float] = defaultdict(float)
    counts: Counter[str] = Counter()
    for i, idx in enumerate(mine):
        part = [items[k] for k in idx]
        if cfg.algo == "kto":
            rows = [it[0] for it in part]
        else:
            rows = [it[0] for it in part] + [it[1] for it in part]
        sub = trim(data.seqs.select(rows))
        last = i == len(mine) - 1
        with accelerator.no_sync(policy) if not last else contextlib.nullcontext(), accelerator.autocast():
            logp = policy_logp(policy, sub)
            summed = (logp * sub.completion_mask.to(logp.device)).sum(-1).float()  # (b,)
            r = ref[rows].to(summed.device)
            if cfg.algo == "kto":
                desirable = torch.tensor([bool(it[1]) for it in part], device=summed.device)
                losses, chosen, rejected = kto_loss(summed, r, desirable, kl.to(summed.device), beta=cfg.beta,
                                                    desirable_weight=data.stats["desirable_weight"],
                                                    undesirable_weight=cfg.undesirable_weight)  # fmt: skip
                pc, pr = summed[desirable], summed[~desirable]
                sums["accuracy"] += float((chosen > 0).sum() + (rejected < 0).sum())
                counts["accuracy"] += len(part)
            else:
                n = len(part)
                pc, pr = summed[:n], summed[n:]
                if cfg.algo == "dpo":
                    losses, chosen, rejected = dpo_loss(pc, pr, r[:n], r[n:], beta=cfg.beta,
                                                        label_smoothing=cfg.label_smoothing)  # fmt: skip
                else:
                    lengths = sub.completion_mask.sum(-1).to(summed.device)
                    losses, chosen, rejected = ipo_loss(pc, pr, r[:n], r[n:], beta=cfg.beta,
                                                        chosen_lengths=lengths[:n], rejected_lengths=lengths[n:])  # fmt: skip
                sums["accuracy"] += float((chosen > rejected).sum())
                counts["accuracy"] += n
            # DDP averages gradients over processes: scale so that their sum is the batch mean
            loss = losses.sum() / B * procs * weight
            if cfg.sft_coef and n_good:  # DPO+NLL / RPO: the passing programs' token-mean NLL
                good = desirable if cfg.algo == "kto" else torch.arange(len(summed), device=summed.device) < n
                lengths = sub.completion_mask.sum(-1).to(summed.device).clamp(min=1)
                nll = -(summed / lengths)[good]
                loss = loss + cfg.sft_coef * nll.sum() / n_good * procs * weight
                sums["nll"] += float(nll.detach().sum()) * weight
                counts["nll"] += len(nll) if weight else 0
            accelerator.backward(loss)
        sums["loss"] += float(losses.detach().sum()) * weight
        for name, values in (("rewards/chosen", chosen), ("rewards/rejected", rejected),
                             ("logps/chosen", pc.detach()), ("logps/rejected", pr.detach())):  # fmt: skip
            sums[name] += float(values.sum()) * weight
            counts[name] += len(values) if weight else 0
    grad_norm = accelerator.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm or float("inf"))
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    totals = accelerator.reduce(
        torch.tensor([sums[k] for k in _KEYS] + [float(counts[k]) for k in _KEYS], device=accelerator.device),
        "sum",
    ).cpu()
    totals[0] = totals[0] / B  # the loss: the batch mean over all processes
    row: dict[str, Any] = {"loss": float(totals[0])}
    for j, k in enumerate(_KEYS[1:], 1):
        count = float(totals[len(_KEYS) + j])
        row[k] = float(totals[j]) / count if count else float("nan")
    if not cfg.sft_coef:
        row.pop("nll")
    row["rewards/margin"] = row["rewards/chosen"] - row["rewards/rejected"]
    if cfg.algo == "kto":
        row["kl"] = float(kl)
    row.update({"batch": B, "lr": lr, "grad_norm": float(grad_norm)})
    return row


_KEYS = ("loss", "rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected", "accuracy", "nll")


# ---------------------------------------------------------------------------------------------
# The loop.


def train(cfg: PreferConfig, executor: Any = None) -> dict[str, Any]:
    """Run `cfg.rounds` preference rounds from `cfg.model` into `cfg.out`; returns {"rounds",
    "steps", "out", "eval", "train_seconds"}. `executor`: an `Executor` for the programs (default
    a `LocalExecutor` with `cfg.workers` workers)."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM

    out = Path(cfg.out)
    resume_from = latest_checkpoint(out) if out.is_dir() else None
    if resume_from is not None and not cfg.resume:
        raise DataError(f"{out}: has checkpoints; pass --resume to continue, or choose another out")
    accelerator = make_accelerator(cfg.bf16)
    tokenizer = _load_tokenizer(cfg.model)
    bench = get_benchmark(cfg.benchmark)
    problems = bench.load(cfg.data)
    limits = Limits(timeout=cfg.timeout)
    train_ids = tasks(bench, problems, cfg.split, "split")
    eval_ids = tasks(bench, problems, cfg.eval_split, "eval_split") if cfg.eval_split else []
    if cfg.eval_limit:
        eval_ids = eval_ids[: cfg.eval_limit]
    check_tasks(bench, problems, eval_ids + (train_ids if cfg.ground_truth_tests else []), limits)
    valid_tests = read_valid_tests(cfg.tests, problems) if cfg.tests else None
    if valid_tests is not None:
        train_ids = [t for t in train_ids if valid_tests.get(t)]
        if not train_ids:
            raise DataError(
                f"config: field 'tests': no task of split {cfg.split!r} has a valid test in {cfg.tests}"
            )
    offline = read_samples(cfg.samples, problems) if cfg.samples else None
    if offline is not None:
        train_ids = [t for t in train_ids if offline.get(t)]
        if not train_ids:
            raise DataError(f"config: field 'samples': no sample in {cfg.samples} is of a training task")
    prompts = {
        t: encode_prompt(tokenizer, bench.prompt(problems[t], chat=cfg.chat)) for t in train_ids + eval_ids
    }
    stop = () if cfg.chat else tuple(bench.STOP)
    require_sinks(cfg.reporters)

    set_seed(cfg.seed)
    lm = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
    check_lengths(tokenizer, lm, prompts, cfg.max_new_tokens)
    start_ref = None
    if cfg.reference == "start" and not cfg.lora_r:
        start_ref = copy.deepcopy(lm).eval().requires_grad_(False).to(accelerator.device)
    if cfg.lora_r:
        lm = _apply_lora(lm, cfg)  # type: ignore[arg-type]  # reads lora_r/alpha/dropout only
        if resume_from is not None:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(
                lm, load_file(str(resume_from / "adapter" / "adapter_model.safetensors"))
            )
    elif resume_from is not None:
        lm = AutoModelForCausalLM.from_pretrained(resume_from, dtype=torch.float32)
    policy = Policy(lm, None, 1.0)
    optimizer = adamw(policy, cfg.lr, cfg.weight_decay)
    warmup = cfg.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
    )
    policy, optimizer = accelerator.prepare(policy, optimizer)
    step, round_, pos, train_seconds = 0, 0, 0, 0.0
    if resume_from is not None:
        state = torch.load(resume_from / "trainer_state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"][min(accelerator.process_index, len(state["rng"]) - 1)])
        step, round_, pos, train_seconds = (
            state["step"],
            state["round"],
            state["round_step"],
            state["train_seconds"],
        )

    reward = ExecutionReward(cfg.benchmark, problems=problems, kind="binary", limits=limits, chat=cfg.chat,
                             workers=cfg.workers or os.cpu_count() or 1, executor=executor)  # fmt: skip
    unwrapped = accelerator.unwrap_model(policy)
    tracker = None
    evals: list[dict[str, Any]] = []
    if accelerator.is_main_process:
        from execrl.trainers.config import dump_config

        out.mkdir(parents=True, exist_ok=True)
        (out / "prefer_config.yaml").write_text(dump_config(asdict(cfg)))
        tracker = Tracker(out, cfg.reporters, asdict(cfg), start_step=step)
        if step or round_:  # rows after the checkpoint, and a stopped run's closing evaluation, go
            _drop_rows(out / "eval.jsonl", lambda row: row.get("final", False))
            _drop_rows(out / "rounds.jsonl", lambda row: row["round"] > round_)
            evals += [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines() if line]
        else:
            (out / "rounds.jsonl").write_text("", encoding="utf-8")

    def run_eval(done: int, final: bool = False) -> dict[str, Any]:
        row: dict[str, Any] = {"step": step, "round": done}
        if eval_ids and accelerator.is_main_process:
            t0 = time.perf_counter()
            res = evaluate_policy(unwrapped.lm, tokenizer, reward, eval_ids, prompts,
                                  max_new_tokens=cfg.max_new_tokens, stop=stop)  # fmt: skip
            row.update({"pass@1": res["pass@1"], "tasks": len(eval_ids), "seconds": time.perf_counter() - t0})
            row.update({f"status/{k}": v for k, v in res["status"].items()})
            if final:
                row["final"] = True
            evals.append(row)
            assert tracker is not None
            tracker.log_eval(row)
        accelerator.wait_for_everyone()
        return row

    def save(round_at: int, pos_at: int) -> None:
        write_checkpoint(out, step, accelerator,
                         lambda tmp: save_policy(tmp, accelerator, policy, tokenizer, merge=False),
                         {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                          "round": round_at, "round_step": pos_at, "train_seconds": train_seconds})  # fmt: skip

    def exhausted() -> bool:
        mine = bool(cfg.max_steps and step >= cfg.max_steps)
        mine = mine or bool(cfg.max_minutes and train_seconds >= cfg.max_minutes * 60)
        return _stop_now(accelerator, mine)

    budget = bool(cfg.max_steps or cfg.max_minutes)  # else the bar counts steps of unknown total
    shown = RunProgress(cfg.max_steps or 10**9, cfg.max_minutes)
    stopped = False
    try:
        if step == 0 and round_ == 0 and pos == 0:
            run_eval(0)
        kwargs = shown.tqdm_kwargs(step, train_seconds) if budget else {"initial": step, "unit": "step"}
        bar = tqdm(desc=f"plum-{cfg.algo}", disable=not accelerator.is_local_main_process, **kwargs)
        while round_ < cfg.rounds:
            if pos == 0:
                if exhausted():
                    stopped = True
                    break
                t0 = time.perf_counter()
                ref_model = unwrapped.lm if cfg.reference == "round" else start_ref
                data = build_round(cfg, round_, unwrapped.lm, ref_model, tokenizer, bench, problems, train_ids,
                                    prompts, valid_tests, offline, reward, limits)  # fmt: skip
                train_seconds += time.perf_counter() - t0
                if accelerator.is_main_process:
                    torch.save(data, out / f"round-{round_}.pt")
            else:
                data = torch.load(out / f"round-{round_}.pt", weights_only=False)
            order = batch_order(len(data.batches), cfg.epochs, cfg.seed, round_)
            while pos < len(order):
                if exhausted():
                    stopped = True
                    break
                t0 = time.perf_counter()
                row = _step(cfg, accelerator, policy, optimizer, scheduler, data, order[pos])
                train_seconds += time.perf_counter() - t0
                pos, step = pos + 1, step + 1
                row = {"step": step, "round": round_ + 1, "pairs": data.stats["pairs"], **row,
                       "seconds": time.perf_counter() - t0, "train_seconds": train_seconds,
                       "processes": accelerator.num_processes}  # fmt: skip
                if tracker is not None:
                    tracker.log(row)
                    bar.set_postfix_str(shown.describe(step, train_seconds, loss=row["loss"]), refresh=False)
                bar.n = shown.position(step, train_seconds) if budget else step
                bar.refresh()
                if cfg.save_every and step % cfg.save_every == 0 and pos < len(order):
                    save(round_, pos)
            if stopped:
                break
            round_, pos = round_ + 1, 0
            last = round_ == cfg.rounds
            due = last or (cfg.eval_every and round_ % cfg.eval_every == 0)
            ev = run_eval(round_) if due else {}
            if tracker is not None:
                _append(out / "rounds.jsonl", {**data.stats, "step": step, "pass@1": ev.get("pass@1")})
            if cfg.save_every and step and step % cfg.save_every == 0 and not last:
                save(round_, 0)
        bar.close()
        if stopped:
            save(round_, pos)  # `resume` with a larger budget continues from here
            if not evals or evals[-1]["step"] != step:
                run_eval(round_, final=True)
        save_final(out, accelerator, policy, tokenizer, cfg)
    finally:
        reward.close()
        if tracker is not None:
            tracker.close()
    return {"rounds": round_, "steps": step, "out": str(out), "eval": evals, "train_seconds": train_seconds}


def _append(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _drop_rows(path: Path, drop: Any) -> None:
    if path.exists():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows if not drop(r)), encoding="utf-8")
