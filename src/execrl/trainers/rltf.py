"""RLTF's online loop (Liu et al., 2023, arXiv 2307.04349): `execrl train --algo rltf`.

One step of `execrl train` is one refresh of RLTF's online buffer, then the optimizer steps that
train on it:

1. Take the step's `prompts_per_step` tasks; sample `samples_per_prompt` completions of each from
   the current policy (`temperature`, `top_p`), plus one greedy completion: the baseline.
2. Run all of them in the sandbox; `reward` gives each a scalar (RLTF's coarse or adaptive
   feedback) and, for `coarse+fine` / `rltf`, fine-grained penalties on the blamed tokens
   (rewards/rltf.py).
3. Each sample's per-token return is RLTF's relative return (`relative_returns`): its scalar
   minus the greedy baseline's scalar for the same task, on every token, plus its token penalties.
4. The samples go into a FIFO `OnlineBuffer` (`rltf_buffer_size`) with their returns.
5. `rltf_refresh_every` optimizer steps, each on `rltf_batch` samples drawn uniformly from the
   buffer, minimising the REINFORCE loss `-mean_t(r_t * log pi(w_t))` (`reinforce_loss`): no
   clipping, no KL, no critic, as the official code. With `rltf_sft_every = n`, every n-th RL step
   is followed by a supervised step on `rltf_batch` reference solutions of train tasks (the
   paper's alternating supervised step; `n = 1` alternates). `pg_coef` weighs the REINFORCE loss;
   0 skips the RL steps and keeps the supervised ones on the same cadence: the ablation that
   says what the supervised steps alone are worth.

Deviations from the official code, and why:
- The generator is the trainer itself (its weights are the current ones at every refresh), not a
  separate process that reloads them periodically: on one CPU nothing runs beside the trainer.
- Returns are computed once, when a sample enters the buffer, against the greedy baseline of
  its own refresh (as the official code writes them with the sample).
- log pi is the tempered distribution that sampled (`temperature`), as in every `execrl train`
  algorithm; the official code scores at temperature 1.
- A sample without a reward (`sandbox_error`), or whose task's greedy baseline has none, never
  enters the buffer; the greedy samples themselves are baselines only and are not trained on.
- Optimizer steps are counted per process from its own buffer; with several processes the steps
  happen on every process only once every buffer holds samples.

Logged per step (besides `execrl train`'s reward, pass rate and status counts of the sampled
completions): `rltf/greedy_reward`, `rltf/greedy_pass_rate`, `rltf/buffer_size`, `rltf/added`,
`rltf/refreshes`, `rltf/return` (mean relative scalar return), `rltf/scope_{global,line,none}`
(fine-grained scopes of the samples), `rltf/syntax_error_share`, `rltf/runtime_error_share`,
`rltf/sft_nll`.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from typing import Any

import torch

from execrl.data import DataError
from execrl.trainers.replay import imitation_loss
from execrl.trainers.rewarding import StepReward, token_rewards
from execrl.trainers.rl_tasks import seed_of, step_prompts
from execrl.trainers.rollout import Rollout, SampleParams, micro_batches, sample, trim
from execrl.types import Status

__all__ = ["OnlineBuffer", "feedback_stats", "online_buffer", "reinforce_loss", "relative_returns", "step"]

USES_VALUES = False


def relative_returns(
    scores: torch.Tensor, greedy: torch.Tensor, dense: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """RLTF's per-token return: `r_t = (r - r_greedy) + p_t` on the completion's tokens, 0 elsewhere.

    `scores` (B,) is each sample's scalar reward, `greedy` (B,) the greedy baseline's reward for
    the sample's task, `dense` (B, T) the fine-grained penalties (-0.3 on blamed tokens, else 0)
    and `mask` (B, T) the completion mask. A sample that beats the greedy answer gets a positive
    return on every token, one that does worse a negative one, and the blamed tokens 0.3 less."""
    m = mask.to(torch.float32)
    return (scores - greedy)[:, None] * m + dense * m


def reinforce_loss(
    logp: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, norm: float | None = None
) -> torch.Tensor:
    """REINFORCE over tokens, `-sum_t(r_t * log pi(w_t) * m_t) / N`: N the number of marked tokens,
    or `norm` when given (micro-batches of one draw pass the draw's token count, so their summed
    gradients are the token mean over the draw). Its gradient is `-mean_t r_t * grad log pi(w_t)`:
    raise the probability of tokens with positive return, lower it where the return is negative."""
    m = mask.to(logp.dtype)
    denom = m.sum().clamp(min=1.0) if norm is None else torch.tensor(float(norm), device=logp.device)
    return -(returns.to(logp.dtype) * logp * m).sum() / denom


class OnlineBuffer:
    """RLTF's online buffer: a FIFO of at most `capacity` samples (prompt ids, completion ids and
    the per-token returns they were written with). `references` holds each train task's (prompt
    ids, reference completion ids) for the supervised steps; it is a function of the data and is
    not part of `state_dict`."""

    def __init__(
        self, capacity: int, pad_id: int, references: dict[str, tuple[list[int], list[int]]]
    ) -> None:
        if capacity < 1:
            raise ValueError(f"online buffer capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.pad_id = pad_id
        self.references = references
        self._items: deque[tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...]]] = deque(
            maxlen=capacity
        )
        self.refreshes = 0  # how many times samples were added

    def __len__(self) -> int:
        return len(self._items)

    def add(self, rollout: Rollout, returns: torch.Tensor, keep: Sequence[bool]) -> int:
        """Add the rows of `rollout` that `keep` marks, with their (B, T) `returns`; the oldest
        samples leave when the buffer is full. Returns how many were added."""
        n = 0
        for b, ok in enumerate(keep):
            if not ok:
                continue
            length = int(rollout.completion_mask[b].sum())
            prompt = tuple(rollout.prompt_ids[b][rollout.prompt_mask[b].bool()].tolist())
            completion = tuple(rollout.completion_ids[b, :length].tolist())
            self._items.append((prompt, completion, tuple(returns[b, :length].tolist())))
            n += 1
        self.refreshes += 1
        return n

    def draw(self, n: int, generator: torch.Generator) -> tuple[Rollout, torch.Tensor] | None:
        """Up to `n` distinct samples drawn uniformly, as a padded `Rollout` and their (B, T) returns."""
        if not self._items:
            return None
        picked = torch.randperm(len(self._items), generator=generator)[:n].tolist()
        rows = [self._items[i] for i in picked]
        rollout = Rollout.from_ids([p for p, _, _ in rows], [c for _, c, _ in rows], self.pad_id)
        returns = torch.zeros(rollout.completion_ids.shape)
        for b, (_, _, r) in enumerate(rows):
            returns[b, : len(r)] = torch.tensor(r)
        return rollout, returns

    def draw_references(self, n: int, generator: torch.Generator) -> Rollout | None:
        """Up to `n` distinct train tasks' reference solutions, drawn uniformly."""
        if not self.references:
            return None
        tasks = sorted(self.references)
        picked = torch.randperm(len(tasks), generator=generator)[:n].tolist()
        rows = [self.references[tasks[i]] for i in picked]
        return Rollout.from_ids([p for p, _ in rows], [c for _, c in rows], self.pad_id)

    def state_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "refreshes": self.refreshes,
            "items": [(list(p), list(c), list(r)) for p, c, r in self._items],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._items = deque(
            ((tuple(p), tuple(c), tuple(r)) for p, c, r in state["items"]), maxlen=self.capacity
        )
        self.refreshes = state["refreshes"]


def _reference(problem: Any) -> str | None:
    """A completion-style reference solution: the text that continues the prompt."""
    return getattr(problem, "solution", None) or getattr(problem, "canonical_solution", None) or None


def online_buffer(
    cfg: Any,
    tokenizer: Any,
    bench: Any,
    problems: dict[str, Any],
    train_ids: list[str],
    prompts: dict[str, list[int]],
) -> OnlineBuffer:
    """The run's buffer; with `rltf_sft_every`, the train tasks' references, tokenized as `execrl
    sft` does (reference ids + EOS after the prompt). A `DataError` names the field when the
    supervised steps cannot have references (chat prompts, or a benchmark without them)."""
    refs: dict[str, tuple[list[int], list[int]]] = {}
    if cfg.rltf_sft_every:
        if cfg.chat:
            raise DataError("config: field 'rltf_sft_every' needs completion-style prompts (chat is set)")
        for t in train_ids:
            text = _reference(problems[t])
            if text:
                ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                refs[t] = (prompts[t], ids)
        if not refs:
            raise DataError(
                f"config: field 'rltf_sft_every': no {bench.NAME} train task has a reference solution"
            )
    return OnlineBuffer(cfg.rltf_buffer_size, tokenizer.pad_token_id, refs)


def feedback_stats(scored: Sequence[Any]) -> dict[str, Any]:
    """RLTF's feedback over scored samples: the fine-grained scopes (counts) and the shares of
    syntax and runtime errors; {} for a reward without penalties (`execrl train` logs these for
    any algorithm trained with an RLTF reward)."""
    penalties = [getattr(s, "penalty", None) for s in scored]
    if not scored or not any(p is not None for p in penalties):
        return {}
    scopes = Counter(p.scope for p in penalties if p is not None)
    statuses = Counter(s.result.status for s in scored)
    row: dict[str, Any] = {f"rltf/scope_{s}": scopes.get(s, 0) for s in ("global", "line", "none")}
    row["rltf/syntax_error_share"] = statuses.get(Status.SYNTAX_ERROR, 0) / len(scored)
    row["rltf/runtime_error_share"] = statuses.get(Status.RUNTIME_ERROR, 0) / len(scored)
    return row


def _backward(
    accelerator: Any, policy: Any, rollout: Rollout, returns: torch.Tensor | None, size: int, sync: bool
) -> float:
    """Backward of the REINFORCE loss of a draw (`returns`), or of its token-mean NLL (None);
    DDP syncs gradients on the last micro-batch when `sync`. Returns the loss."""
    n_tokens = float(rollout.completion_mask.sum())
    micro = micro_batches(rollout, list(range(len(rollout))), size)
    total = 0.0
    for i, rows in enumerate(micro):
        sub = trim(rollout.select(rows))
        t = sub.completion_ids.shape[1]
        last = sync and i == len(micro) - 1
        with accelerator.no_sync(policy) if not last else contextlib.nullcontext(), accelerator.autocast():
            logp, _, _ = policy(sub)
            mask = sub.completion_mask.to(logp.device)
            if returns is None:
                loss = imitation_loss(logp, mask, n_tokens)
            else:
                loss = reinforce_loss(logp, returns[rows][:, :t].to(logp.device), mask, n_tokens)
            accelerator.backward(loss)
        total += float(loss.detach())
    return total


def step(
    cfg: Any,
    step: int,
    accelerator: Any,
    policy: Any,
    unwrapped: Any,
    optimizer: Any,
    scheduler: Any,
    tokenizer: Any,
    reward: StepReward,
    train_ids: list[str],
    prompts: dict[str, list[int]],
    sampling: SampleParams,
    buffer: Any,
) -> dict[str, Any]:
    """One refresh of the buffer and `rltf_refresh_every` optimizer steps on it; the step's log row.
    `execrl train` calls it instead of `rl._step` with the loop's pieces (`policy` DDP-wrapped,
    `unwrapped` the bare `Policy` that samples)."""
    from execrl.trainers.rl import _optimizer_step

    assert isinstance(buffer, OnlineBuffer)
    procs, rank = accelerator.num_processes, accelerator.process_index
    K = cfg.samples_per_prompt
    chosen = [
        train_ids[i] for i in step_prompts(len(train_ids), cfg.prompts_per_step, cfg.seed, step)[rank::procs]
    ]
    task_rows = [t for t in chosen for _ in range(K)]
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed_of(cfg.seed, "sample", step, rank))
    rollout = sample(unwrapped.lm, tokenizer, [prompts[t] for t in task_rows], sampling, g)
    greedy_params = SampleParams(0.0, 1.0, sampling.max_new_tokens, sampling.stop)
    greedy = sample(unwrapped.lm, tokenizer, [prompts[t] for t in chosen], greedy_params, g)
    seconds["generation"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scored = list(reward.score(task_rows + chosen, rollout.texts + greedy.texts))
    seconds["execution"] = time.perf_counter() - t0
    sampled, baseline = scored[: len(task_rows)], scored[len(task_rows) :]

    valid = torch.tensor([s.reward is not None for s in sampled], dtype=torch.float32)
    scores = torch.tensor([s.reward if s.reward is not None else 0.0 for s in sampled], dtype=torch.float32)
    by_task = {t: s.reward for t, s in zip(chosen, baseline)}
    greedy_scores = torch.tensor([by_task[t] or 0.0 for t in task_rows], dtype=torch.float32)
    keep = [s.reward is not None and by_task[t] is not None for t, s in zip(task_rows, sampled)]
    mask = rollout.completion_mask.float()
    dense = token_rewards(reward, sampled, rollout, mask)  # (B, T): fine-grained penalties, else 0
    returns = relative_returns(scores, greedy_scores, dense, mask)
    added = buffer.add(rollout, returns, keep)

    t0 = time.perf_counter()
    policy.train()
    totals: dict[str, float] = defaultdict(float)
    rl_steps = sft_steps = 0
    ready = accelerator.gather(torch.tensor([len(buffer)], device=accelerator.device)).min() > 0
    for i in range(cfg.rltf_refresh_every if ready else 0):
        if cfg.pg_coef:  # 0: the supervised steps alone (an ablation), on the same cadence
            g = torch.Generator().manual_seed(seed_of(cfg.seed, "rltf", step, i))
            draw = buffer.draw(cfg.rltf_batch, g)
            assert draw is not None
            returns = draw[1] * cfg.pg_coef
            totals["loss"] += _backward(
                accelerator, policy, draw[0], returns, cfg.micro_batch_size, sync=True
            )
            totals["grad_norm"] += _optimizer_step(cfg, accelerator, policy, optimizer, scheduler)
            rl_steps += 1
        if cfg.rltf_sft_every and (i + 1) % cfg.rltf_sft_every == 0:
            refs = buffer.draw_references(
                cfg.rltf_batch, torch.Generator().manual_seed(seed_of(cfg.seed, "sft", step, i))
            )
            assert refs is not None
            totals["sft_nll"] += _backward(accelerator, policy, refs, None, cfg.micro_batch_size, sync=True)
            _optimizer_step(cfg, accelerator, policy, optimizer, scheduler)
            sft_steps += 1
    seconds["update"] = time.perf_counter() - t0

    statuses = Counter(s.result.status.value for s in sampled)
    lengths = rollout.completion_mask.sum(-1).float()
    n = len(sampled)
    greedy_valid = [s for s in baseline if s.reward is not None]
    row: dict[str, Any] = {
        "reward": float((scores * valid).sum() / valid.sum().clamp(min=1.0)),
        "pass_rate": sum(s.result.passed for s in sampled) / n,
        "samples": n,
        "sandbox_errors": statuses.get(Status.SANDBOX_ERROR.value, 0),
        "tokens": int(lengths.sum()),
        "completion_length": float(lengths.mean()),
        "truncated": sum(f == "length" for f in rollout.finish) / n,
        "loss": totals["loss"] / max(1, rl_steps),
        "grad_norm": totals["grad_norm"] / max(1, rl_steps),
        "lr": scheduler.get_last_lr()[0],
        "rltf/greedy_reward": sum(s.reward for s in greedy_valid if s.reward is not None)
        / max(1, len(greedy_valid)),
        "rltf/greedy_pass_rate": sum(s.result.passed for s in baseline) / len(baseline),
        "rltf/return": float(((scores - greedy_scores) * torch.tensor(keep)).sum() / max(1, sum(keep))),
        "rltf/added": added,
        "rltf/buffer_size": len(buffer),
        "rltf/refreshes": buffer.refreshes,
        "rltf/rl_steps": rl_steps,
        "rltf/sft_steps": sft_steps,
        "rltf/syntax_error_share": statuses.get(Status.SYNTAX_ERROR.value, 0) / n,
        "rltf/runtime_error_share": statuses.get(Status.RUNTIME_ERROR.value, 0) / n,
    }
    if cfg.rltf_sft_every:
        row["rltf/sft_nll"] = totals["sft_nll"] / max(1, sft_steps)
    row.update(feedback_stats(sampled))
    row.update({f"status/{s.value}": statuses.get(s.value, 0) for s in Status})
    row.update({f"seconds/{k}": v for k, v in seconds.items()})
    return row
