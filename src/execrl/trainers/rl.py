"""`execrl train`: online RL from execution feedback (GRPO, PPO, RLOO, RLTF) for any HF causal LM.

One step: take the next `prompts_per_step` tasks (a seeded shuffle per pass over the tasks) →
sample `samples_per_prompt` completions each from the current policy (rollout.py; or from a weight
snapshot in rollout workers, or a colocated vLLM engine: async_rollout.py) → run them in the
sandbox against the tasks' tests (rewards/execution.py), overlapped with the forward passes that
record the sampling policy's log-probabilities, the reference's and the critic's values → rewards
→ advantages (grpo.py, ppo.py or rloo.py: each algorithm is only its `advantages`) → `epochs`
passes of `minibatches` optimizer steps on the clipped surrogate (+ KL, entropy, value terms).
RLTF (`algo=rltf`) replaces this step with its own (trainers/rltf.py: k samples + a greedy baseline,
an online buffer, REINFORCE steps); the set-up, checkpoints, evaluation and logs are shared.

Token level: advantages are (B, T) tensors over completion tokens with a mask, and every sample has
a loss weight. A sample whose execution ended in `sandbox_error` gets weight 0 (out of the loss,
out of its group's statistics) and is counted in the logs (`status/sandbox_error`).

Devices: one code path through `accelerate` (CPU, a GPU, `accelerate launch` for DDP or
DeepSpeed). Each process samples, executes and scores its share of the step's prompts (whole
groups), and gradients are averaged by DDP; metrics are averaged over processes (counts summed).
Held-out evaluation (greedy pass@1 on `eval_split`) runs on the main process only.

Outputs in `out`: log.jsonl (a row per step: rewards, pass rate, status counts, KL, entropy,
clip fraction, value loss, lengths, seconds per phase), eval.jsonl, tensorboard/, checkpoint-N/
(model or LoRA adapter, value head, optimizer, scheduler, RNG states, step, training seconds), and
at the end the final model (LoRA merged) with its tokenizer, value_head.safetensors (PPO) and
rl_config.yaml. `resume` continues from the latest checkpoint-N: the prompts of a step and its
samples are pure functions of (seed, step), so a resumed run continues the same curve.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import os
import random
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from execrl.data import DataError, get_benchmark
from execrl.eval.policy import evaluate_policy
from execrl.generation.hf import encode_prompt
from execrl.trainers import grpo, ppo, rloo, rltf
from execrl.trainers.advantages import kl_per_token, masked_mean
from execrl.trainers.async_rollout import RolloutSource, build_rollouts
from execrl.trainers.losses import aggregate, policy_loss, value_loss
from execrl.trainers.replay import ReplayBuffer, admitted, replay_backward, replay_step_count
from execrl.trainers.rewarding import StepReward, build_reward, token_rewards
from execrl.trainers.rl_checkpoint import save_checkpoint, save_final
from execrl.trainers.rl_config import LEARNED_REWARDS, RLConfig
from execrl.trainers.rl_tasks import check_lengths, check_tasks, seed_of, step_prompts, tasks
from execrl.trainers.rollout import Batch, Rollout, SampleParams, micro_batches, score, trim
from execrl.trainers.selection import kept_r2, select
from execrl.trainers.sft import (
    _load_tokenizer,
    _set_rng_state,
    adamw,
    decay_factor,
    latest_checkpoint,
    make_accelerator,
)
from execrl.trainers.tracking import RunProgress
from execrl.trainers.tracking import require as require_sinks
from execrl.types import Limits, Status

__all__ = ["Policy", "evaluate_policy", "train"]


ALGORITHMS: dict[str, Any] = {"grpo": grpo, "ppo": ppo, "rloo": rloo, "rltf": rltf}


class Policy(nn.Module):
    """The language model, and for PPO its value head; one module so DDP and the optimizer see both."""

    def __init__(self, lm: nn.Module, value_head: nn.Module | None = None, temperature: float = 1.0) -> None:
        super().__init__()
        self.lm = lm
        self.value_head = value_head
        self.temperature = temperature  # the policy is the tempered distribution that samples

    def forward(self, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Log-probabilities, entropies and values (or None) of the completion tokens, each (B, T)."""
        logp, ent, hidden = score(
            self.lm, rollout, entropy=True, hidden=self.value_head is not None, temperature=self.temperature
        )
        values = self.value_head(hidden) if self.value_head is not None and hidden is not None else None
        assert ent is not None
        return logp, ent, values


# ---------------------------------------------------------------------------------------------
# Set-up: everything is checked before `out` is touched.


def _apply_lora(lm: Any, cfg: RLConfig) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise DataError("config: field 'lora_r' needs peft: pip install 'execrl[lora]'") from None
    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules="all-linear"
    )
    return get_peft_model(lm, lora)


# ---------------------------------------------------------------------------------------------
# Recording log-probabilities and values before the update.


def _pad_to(x: torch.Tensor, width: int) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, width - x.shape[1]))


@torch.no_grad()
def _record(
    model: Any, r: Rollout, size: int, values: bool, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probabilities (and values) of every row under `model` (a Policy or a bare LM), (B, T)."""
    T = r.completion_ids.shape[1]
    logp = torch.zeros(r.completion_ids.shape)
    vals = torch.zeros(r.completion_ids.shape) if values else None
    for rows in micro_batches(r, list(range(len(r))), size):
        sub = trim(r.select(rows))
        if isinstance(model, Policy) or isinstance(getattr(model, "module", None), Policy):
            lp, _, v = model(sub)
        else:
            lp, _, _ = score(model, sub, temperature=temperature)
            v = None
        idx = torch.tensor(rows)
        logp[idx] = _pad_to(lp.float().cpu(), T)
        if vals is not None and v is not None:
            vals[idx] = _pad_to(v.float().cpu(), T)
    return logp, vals


# ---------------------------------------------------------------------------------------------
# The loop.


def train(cfg: RLConfig, executor: Any = None) -> dict[str, Any]:
    """Run `cfg.algo` on `cfg.model` into `cfg.out`; returns {"steps", "out", "eval", "train_seconds"}.

    `executor`: an `Executor` for the programs (a remote backend); default the one `cfg.executor`
    names (a `LocalExecutor` per process with `cfg.workers` workers, a `RayExecutor` or an
    `HTTPExecutor`), closed at the end."""
    from accelerate.utils import gather_object, set_seed
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM

    algo = ALGORITHMS[cfg.algo]
    out = Path(cfg.out)
    resume_from = latest_checkpoint(out) if out.is_dir() else None
    if resume_from is not None and not cfg.resume:
        raise DataError(f"{out}: has checkpoints; pass --resume to continue, or choose another out")
    accelerator = make_accelerator(cfg.bf16)
    procs, rank = accelerator.num_processes, accelerator.process_index
    if cfg.prompts_per_step % procs:
        raise DataError(
            f"config: field 'prompts_per_step' ({cfg.prompts_per_step}) must divide among {procs} processes"
        )
    tokenizer = _load_tokenizer(cfg.model)
    bench = get_benchmark(cfg.benchmark)
    problems = bench.load(cfg.data)
    limits = Limits(timeout=cfg.timeout)
    train_ids = tasks(bench, problems, cfg.split, "split")
    eval_ids = tasks(bench, problems, cfg.eval_split, "eval_split") if cfg.eval_split else []
    if cfg.eval_limit:
        eval_ids = eval_ids[: cfg.eval_limit]
    check_tasks(bench, problems, train_ids + eval_ids, limits)
    prompts = {
        t: encode_prompt(tokenizer, bench.prompt(problems[t], chat=cfg.chat)) for t in train_ids + eval_ids
    }
    stop = () if cfg.chat else tuple(bench.STOP)
    require_sinks(cfg.reporters)  # a missing package fails now, before anything is written
    if cfg.rollout_backend == "vllm":
        from execrl.trainers.vllm_rollout import require_vllm

        require_vllm()

    set_seed(cfg.seed)
    lm = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
    check_lengths(tokenizer, lm, prompts, cfg.max_new_tokens)
    ref = None
    if cfg.kl_coef and not cfg.lora_r:
        ref = copy.deepcopy(lm).eval().requires_grad_(False).to(accelerator.device)
    if cfg.lora_r:
        lm = _apply_lora(lm, cfg)
        if resume_from is not None:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(
                lm, load_file(str(resume_from / "adapter" / "adapter_model.safetensors"))
            )
    elif resume_from is not None:
        lm = AutoModelForCausalLM.from_pretrained(resume_from, dtype=torch.float32)
    value_head = ppo.ValueHead(lm.config.hidden_size) if algo.USES_VALUES else None
    if value_head is not None and resume_from is not None:
        from safetensors.torch import load_file

        value_head.load_state_dict(load_file(str(resume_from / "value_head.safetensors")))
    policy = Policy(lm, value_head, cfg.temperature)
    optimizer = adamw(policy, cfg.lr, cfg.weight_decay)
    warmup = cfg.warmup_steps
    decay = [1.0]  # `schedule`'s factor for the budget spent, set at the start of each step
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (min(1.0, (s + 1) / warmup) if warmup else 1.0) * decay[0]
    )
    policy, optimizer = accelerator.prepare(policy, optimizer)
    start, train_seconds = 0, 0.0
    buffer: Any = (
        ReplayBuffer(cfg.replay_size, tokenizer.pad_token_id, cfg.replay_weighting)
        if cfg.replay_size
        else None
    )
    if cfg.algo == "rltf":  # RLTF's online buffer (trainers/rltf.py), checkpointed as the replay buffer
        buffer = rltf.online_buffer(cfg, tokenizer, bench, problems, train_ids, prompts)
    if resume_from is not None:
        state = torch.load(resume_from / "trainer_state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"][min(rank, len(state["rng"]) - 1)])
        start, train_seconds = state["step"], state["train_seconds"]
        if buffer is not None and state.get("replay"):
            buffer.load_state_dict(state["replay"][min(rank, len(state["replay"]) - 1)])

    own_executor = executor is None and cfg.executor != "local"
    if own_executor and cfg.executor == "ray" and procs > 1:  # each would place actors on every node
        raise DataError("config: executor ray runs from one process; with several, use executor http")
    if own_executor:
        from execrl.sandbox.backends import make_executor

        executor = make_executor(cfg.executor, address=cfg.executor_address or None)
    reward = build_reward(
        cfg, problems, limits, cfg.workers or max(1, (os.cpu_count() or 1) // procs), executor, tokenizer
    )
    tracker = None
    if accelerator.is_main_process:
        from execrl.trainers.config import dump_config
        from execrl.trainers.tracking import Tracker

        out.mkdir(parents=True, exist_ok=True)
        (out / "rl_config.yaml").write_text(dump_config(asdict(cfg)))
        tracker = Tracker(out, cfg.reporters, asdict(cfg), start_step=start)
    unwrapped = accelerator.unwrap_model(policy)
    sampling = SampleParams(cfg.temperature, cfg.top_p, cfg.max_new_tokens, stop)
    pool = concurrent.futures.ThreadPoolExecutor(1)  # the sandbox runs while the models score
    rows_of = lambda s: [prompts[t] for t in _task_rows(cfg, train_ids, s, rank, procs)]  # noqa: E731
    rollouts = build_rollouts(
        cfg, unwrapped.lm, tokenizer, sampling, plan=rows_of, rank=rank, start=start, procs=procs
    )
    evals: list[dict[str, Any]] = []

    def run_eval(step: int) -> None:
        if eval_ids and accelerator.is_main_process:
            t0 = time.perf_counter()
            res = evaluate_policy(unwrapped.lm, tokenizer, reward.execution, eval_ids, prompts,
                                  max_new_tokens=cfg.max_new_tokens, stop=stop)  # fmt: skip
            row = {
                "step": step,
                "pass@1": res["pass@1"],
                "tasks": len(eval_ids),
                "seconds": time.perf_counter() - t0,
            }
            row.update({f"status/{k}": v for k, v in res["status"].items()})
            evals.append(row)
            assert tracker is not None
            tracker.log_eval(row)
        accelerator.wait_for_everyone()

    try:
        if start == 0:
            run_eval(0)
        shown = RunProgress(cfg.max_steps, cfg.max_minutes)
        bar = tqdm(desc=cfg.algo, disable=not accelerator.is_local_main_process,
                   **shown.tqdm_kwargs(start, train_seconds))  # fmt: skip
        step = start
        while step < cfg.max_steps:
            if cfg.max_minutes and _stop_now(accelerator, train_seconds >= cfg.max_minutes * 60):
                break
            if cfg.schedule != "constant":
                decay[0] = decay_factor(_budget_spent(cfg, accelerator, step, train_seconds), cfg.schedule)
                for group, lr in zip(optimizer.param_groups, scheduler.base_lrs):  # now, not after a step
                    group["lr"] = lr * scheduler.lr_lambdas[0](scheduler.last_epoch)
            t_step = time.perf_counter()
            if cfg.algo == "rltf":  # RLTF's refresh + its optimizer steps; the trainer samples itself
                row = rltf.step(cfg, step, accelerator, policy, unwrapped, optimizer, scheduler, tokenizer,
                                reward, train_ids, prompts, sampling, buffer)  # fmt: skip
            else:
                row = _step(cfg, algo, step, accelerator, policy, unwrapped, ref, optimizer, scheduler,
                            tokenizer, reward, train_ids, prompts, rollouts, pool, buffer)  # fmt: skip
            rollouts.synced(step + 1, unwrapped.lm)
            train_seconds += time.perf_counter() - t_step
            row["train_seconds"] = train_seconds
            rows = gather_object([row])
            step += 1
            if tracker is not None:
                merged = _merge(rows)
                merged["step"] = step
                merged["processes"] = len(rows)  # a launcher that silently ran one process shows here
                tracker.log(merged)
                text = shown.describe(step, train_seconds, **{k: merged[k] for k in ("reward", "pass_rate")})
                bar.set_postfix_str(text, refresh=False)
            bar.n = shown.position(step, train_seconds)
            bar.refresh()
            if cfg.save_every and step % cfg.save_every == 0 and step < cfg.max_steps:
                # every process's buffer (each holds its own samples)
                replay = list(gather_object([buffer.state_dict()])) if buffer is not None else None
                save_checkpoint(
                    out, step, train_seconds, accelerator, policy, tokenizer, optimizer, scheduler, replay
                )
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
                run_eval(step)
        bar.close()
        if not evals or evals[-1]["step"] != step:
            run_eval(step)
        save_final(out, accelerator, policy, tokenizer, cfg)
    finally:
        pool.shutdown()
        rollouts.close()
        reward.close()
        if own_executor:
            executor.close()
        if tracker is not None:
            tracker.close()
    return {"steps": step, "out": str(out), "eval": evals, "train_seconds": train_seconds}


def _budget_spent(cfg: RLConfig, accelerator: Any, step: int, train_seconds: float) -> float:
    """The larger fraction spent of max_steps and max_minutes; the same on every process (the
    slowest clock), so every process steps with the same lr."""
    spent = step / cfg.max_steps
    if cfg.max_minutes:
        spent = max(spent, train_seconds / (cfg.max_minutes * 60))
    return float(accelerator.gather(torch.tensor([spent], device=accelerator.device)).max())


def _stop_now(accelerator: Any, mine: bool) -> bool:
    """The same decision on every process (the main process's clock can differ slightly)."""
    flag = torch.tensor(float(mine), device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="sum") > 0)


def _merge(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-process metrics (every process logs the same keys) → one row: counts summed, the rest
    averaged."""
    merged: dict[str, Any] = {}
    for key in rows[0]:
        total = sum(r[key] for r in rows)
        counted = key.startswith("status/") or key in ("samples", "tokens", "sandbox_errors")
        counted = counted or key in ("replay/added", "replay/size", "replay/tasks")  # a buffer per process
        counted = counted or key in ("rltf/added", "rltf/buffer_size") or key.startswith("rltf/scope_")
        merged[key] = total if counted else total / len(rows)
    return merged


def _step(
    cfg: RLConfig,
    algo: Any,
    step: int,
    accelerator: Any,
    policy: Any,
    unwrapped: Policy,
    ref: Any,
    optimizer: Any,
    scheduler: Any,
    tokenizer: Any,
    reward: StepReward,
    train_ids: list[str],
    prompts: dict[str, list[int]],
    rollouts: RolloutSource,
    pool: concurrent.futures.ThreadPoolExecutor,
    buffer: ReplayBuffer | None = None,
) -> dict[str, Any]:
    procs, rank = accelerator.num_processes, accelerator.process_index
    G = cfg.samples_per_prompt
    task_rows = _task_rows(cfg, train_ids, step, rank, procs)
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    sampled = rollouts.get(step, [prompts[t] for t in task_rows])  # async_rollout.py
    rollout = sampled.rollout
    seconds["generation"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    pending = pool.submit(reward.score, task_rows, rollout.texts)
    size = cfg.micro_batch_size
    # one pass over fresh samples without a critic: the update's own forward is the sampling policy
    on_policy = cfg.epochs == 1 and cfg.minibatches == 1 and not algo.USES_VALUES
    on_policy = on_policy and not (cfg.kl_coef and cfg.kl_reward)
    old_logp, old_values = (None, None) if on_policy else _record(policy, rollout, size, algo.USES_VALUES)
    if sampled.logp is not None:  # an older snapshot sampled: PPO's ratio is to its log-probs
        old_logp = sampled.logp
    ref_logp = None
    if cfg.kl_coef:
        if ref is not None:
            ref_logp, _ = _record(ref, rollout, size, False, cfg.temperature)
        else:  # LoRA: the reference is the base model, adapters off
            with unwrapped.lm.disable_adapter():  # type: ignore[operator]
                ref_logp, _ = _record(unwrapped.lm, rollout, size, False, cfg.temperature)
    seconds["scoring"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scored = pending.result()
    seconds["execution_wait"] = time.perf_counter() - t0

    valid = torch.tensor([s.reward is not None for s in scored], dtype=torch.float32)
    scores = torch.tensor([s.reward if s.reward is not None else 0.0 for s in scored], dtype=torch.float32)
    mask = rollout.completion_mask.float()
    weights, kept = select(scores, valid, G, cfg.filtration, threshold=cfg.filtration_threshold,
                           low_threshold=cfg.filtration_low_threshold, k=cfg.filtration_k,
                           rng=random.Random(seed_of(cfg.seed, "filtration", step, rank)))  # fmt: skip
    if cfg.reward in LEARNED_REWARDS:  # how well the reward predicts the tests on the kept samples
        kept.update(kept_r2(scores, valid, weights, G, [s.result.pass_ratio for s in scored]))
    dense = token_rewards(reward, scored, rollout, mask)  # (B, T): RLTF's line penalties, else 0
    batch = Batch(rollout, scores, valid, dense, weights, old_logp, ref_logp, old_values, G)
    advantages, returns = algo.advantages(batch, cfg)
    replay_stats: dict[str, Any] = {}
    if buffer is not None:
        passed = [s.result.passed if s.reward is not None else None for s in scored]
        admit = admitted(cfg.replay_admit, passed, [s.reward for s in scored], G,
                         rng=random.Random(seed_of(cfg.seed, "replay-admit", step, rank)),
                         threshold=cfg.replay_threshold)  # fmt: skip
        added = buffer.add(task_rows, rollout, admit)
        replay_stats = {"replay/added": added, "replay/size": len(buffer), "replay/tasks": buffer.tasks}

    t0 = time.perf_counter()
    stats = _update(cfg, algo, step, accelerator, policy, optimizer, scheduler, batch, advantages, returns,
                    buffer)  # fmt: skip
    seconds["update"] = time.perf_counter() - t0

    lengths = rollout.completion_mask.sum(-1).float()
    statuses = Counter(s.result.status.value for s in scored)
    row: dict[str, Any] = {
        "reward": float(masked_mean(scores, valid)),
        "pass_rate": sum(s.result.passed for s in scored) / len(scored),
        "samples": len(scored),
        "sandbox_errors": statuses.get(Status.SANDBOX_ERROR.value, 0),
        "tokens": int(lengths.sum()),
        "completion_length": float(lengths.mean()),
        "completion_length_max": float(lengths.max()),
        "truncated": sum(f == "length" for f in rollout.finish) / len(rollout),
        "advantage_abs": float(masked_mean(advantages.abs(), mask * valid[:, None])),
        "lr": scheduler.get_last_lr()[0],
    }
    row.update({f"status/{s.value}": statuses.get(s.value, 0) for s in Status})
    row.update(stats)
    row.update(kept)
    row.update(replay_stats)
    row.update(rltf.feedback_stats(scored))  # scopes and error shares with an RLTF reward, else nothing
    row.update({f"seconds/{k}": v for k, v in seconds.items()})
    if sampled.logp is not None:
        row["rollout/staleness"] = step - sampled.version
    return row


def _task_rows(cfg: RLConfig, train_ids: list[str], step: int, rank: int, procs: int) -> list[str]:
    """This process's task per sample of `step`: its share of the step's prompts, each repeated G times."""
    chosen = step_prompts(len(train_ids), cfg.prompts_per_step, cfg.seed, step)[rank::procs]
    return [train_ids[i] for i in chosen for _ in range(cfg.samples_per_prompt)]


def _update(
    cfg: RLConfig,
    algo: Any,
    step: int,
    accelerator: Any,
    policy: Any,
    optimizer: Any,
    scheduler: Any,
    batch: Batch,
    advantages: torch.Tensor,
    returns: torch.Tensor | None,
    buffer: ReplayBuffer | None = None,
) -> dict[str, float]:
    """`epochs` passes of `minibatches` optimizer steps over the batch; mean statistics.

    With a replay `buffer`, each optimizer step also draws `replay_batch` passing programs from it
    and adds `replay_coef` times their token-mean negative log-likelihood (trainers/replay.py)."""
    r = batch.rollout
    B, T = r.completion_ids.shape
    weighted = batch.mask.float() * batch.weights[:, None]  # (B, T) loss mask with sample weights
    totals: dict[str, float] = defaultdict(float)
    n_updates = 0
    g = torch.Generator().manual_seed(seed_of(cfg.seed, "minibatches", step))
    policy.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(B, generator=g).tolist()
        for mb in range(cfg.minibatches):
            rows = perm[mb * B // cfg.minibatches : (mb + 1) * B // cfg.minibatches]
            m_all = weighted[rows]
            n_tokens = float(m_all.sum().clamp(min=1.0))
            n_seqs = float((m_all.sum(-1) > 0).sum().clamp(min=1.0))
            if buffer is not None:  # before the RL pass, whose last micro-batch syncs DDP
                nll = replay_backward(
                    cfg, accelerator, policy, buffer, seed_of(cfg.seed, "replay", step, n_updates)
                )
                totals["replay/nll"] += nll
            micro = micro_batches(r, rows, cfg.micro_batch_size)
            for i, mrows in enumerate(micro):
                sub = trim(r.select(mrows))
                t = sub.completion_ids.shape[1]
                m = weighted[mrows][:, :t]
                # each micro-batch's share of the minibatch's aggregate
                if cfg.loss_agg == "token-mean":
                    norm, share = n_tokens, 1.0
                elif cfg.loss_agg == "seq-mean-token-mean":
                    norm, share = None, float((m.sum(-1) > 0).sum()) / n_seqs
                else:
                    norm, share = float(cfg.max_new_tokens), len(mrows) / len(rows)
                last = i == len(micro) - 1
                with (
                    accelerator.no_sync(policy) if not last else contextlib.nullcontext(),
                    accelerator.autocast(),
                ):
                    logp, ent, values = policy(sub)
                    adv = advantages[mrows][:, :t].to(logp.device)
                    old = (
                        logp.detach()
                        if batch.old_logp is None
                        else batch.old_logp[mrows][:, :t].to(logp.device)
                    )
                    md = m.to(logp.device)
                    loss, st = policy_loss(
                        logp, old, adv, md, cfg.clip_eps, cfg.clip_eps_high, cfg.loss_agg, norm
                    )
                    loss = loss * share * cfg.pg_coef
                    if cfg.kl_coef and not cfg.kl_reward and batch.ref_logp is not None:
                        kl = kl_per_token(
                            logp, batch.ref_logp[mrows][:, :t].to(logp.device), cfg.kl_estimator
                        )
                        loss = loss + cfg.kl_coef * aggregate(kl, md, cfg.loss_agg, norm) * share
                    if cfg.entropy_coef:
                        loss = loss - cfg.entropy_coef * aggregate(ent, md, cfg.loss_agg, norm) * share
                    if values is not None and returns is not None and batch.old_values is not None:
                        vl, vst = value_loss(values, batch.old_values[mrows][:, :t].to(logp.device),
                                             returns[mrows][:, :t].to(logp.device), md, cfg.value_clip or None,
                                             norm=n_tokens)  # fmt: skip
                        loss = loss + cfg.vf_coef * vl
                        totals["value_loss"] += float(vl.detach()) * len(rows) / B
                        totals["value_clip_frac"] += float(vst["value_clip_frac"]) * len(mrows) / B
                    accelerator.backward(loss)
                frac = len(mrows) / B
                totals["loss"] += float(loss.detach())
                totals["clip_frac"] += float(st["clip_frac"]) * frac
                totals["approx_kl"] += float(st["approx_kl"]) * frac
                totals["entropy"] += float(masked_mean(ent.detach(), md)) * frac
                if batch.ref_logp is not None:  # KL(policy || reference) of the policy being updated
                    ref = batch.ref_logp[mrows][:, :t].to(logp.device)
                    totals["kl"] += (
                        float(masked_mean(kl_per_token(logp.detach(), ref, cfg.kl_estimator), md)) * frac
                    )
            totals["grad_norm"] += _optimizer_step(cfg, accelerator, policy, optimizer, scheduler)
            n_updates += 1
    replay_updates = 0
    if buffer is not None and cfg.replay_steps:
        for _ in range(replay_step_count(cfg, accelerator, buffer)):
            seed = seed_of(cfg.seed, "replay", step, n_updates + replay_updates)
            totals["replay/nll"] += replay_backward(cfg, accelerator, policy, buffer, seed, sync=True)
            _optimizer_step(cfg, accelerator, policy, optimizer, scheduler)
            replay_updates += 1
    out = {k: v / cfg.epochs for k, v in totals.items() if k != "grad_norm"}
    out["loss"] = totals["loss"] / n_updates
    out["grad_norm"] = totals["grad_norm"] / n_updates
    if "value_loss" in totals:
        out["value_loss"] = totals["value_loss"] / n_updates
    if "replay/nll" in totals:
        out["replay/nll"] = totals["replay/nll"] / (n_updates + replay_updates)
    return out


def _optimizer_step(cfg: RLConfig, accelerator: Any, policy: Any, optimizer: Any, scheduler: Any) -> float:
    """Clip the accumulated gradient, step the optimizer and the scheduler; returns the grad norm."""
    grad_norm = accelerator.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm or float("inf"))
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(grad_norm)
