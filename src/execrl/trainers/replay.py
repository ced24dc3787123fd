"""Self-imitation from a replay buffer of the policy's own passing programs (`replay_size > 0`).

RLTF keeps an online buffer of sampled programs and their test results; self-imitation learning
(Oh et al., 2018) replays past actions whose return beat the baseline. For unit-test rewards both
come down to this: every sample that passes all of its task's tests goes into a FIFO buffer
(each distinct program once per task), and every optimizer step adds `replay_coef` times the
mean negative log-likelihood of `replay_batch` programs drawn from the buffer (balanced by task)
to the RL loss; `replay_steps` more optimizer steps per step train on draws alone.

Why (measured, docs/experiments/rl-embedded.md): on the embedded model the online
policy-gradient step, fed a few dozen fresh samples of a few dozen tasks, loses held-out accuracy
in its first steps under every advantage tried, while the same model fine-tuned on its own passing
programs gains steadily. The buffer gives every step a broad batch of known-good programs from many
tasks; the policy gradient on the fresh samples still pushes away from failing ones.

The buffer holds token ids (prompt, completion) exactly as sampled; a `sandbox_error` sample never
enters it. Which samples it admits (`admitted`): those that pass their tests (`replay_admit:
passed`), or, for a reward that is not the tests (a reward model, a judge), each prompt's
highest-reward samples (`best`: reward-ranked replay, as RAFT), or every sample whose reward
reaches a fixed threshold (`threshold`: as ReST's filtered improve step) — both never read the
tests — or one sample of each prompt drawn at random (`random`: the ablation, which reads neither
the tests nor the reward — what imitating the policy's own samples does without any feedback).
"""

from __future__ import annotations

import contextlib
import random
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

from execrl.trainers.rl_config import REPLAY_WEIGHTINGS
from execrl.trainers.rollout import Rollout, micro_batches, trim

__all__ = ["ReplayBuffer", "admitted", "imitation_loss", "replay_backward", "replay_step_count"]

MIN_WEIGHT = 0.1  # "failing": a task whose latest samples all passed is still replayed, less often


def admitted(
    rule: str,
    passed: Sequence[bool | None],
    rewards: Sequence[float | None],
    group: int,
    rng: random.Random | None = None,
    threshold: float | None = None,
) -> list[bool | None]:
    """Which rows of a step enter the buffer (None: no verdict, neither admitted nor a failure).

    `passed`: a row that passed its tests (None: `sandbox_error`). `best` (reward-ranked replay, as
    RAFT, Dong et al. 2023; for rewards that are not the tests): within each prompt's `group`
    consecutive rows, the rows whose reward (None: unscored) equals the group's highest, provided
    the group's scored rewards are not all equal — a prompt whose samples the reward cannot tell
    apart teaches nothing, and a group of one (PPO-S) never has a best. The tests are not read.
    `random`: one row of each group, drawn by `rng` among the rows that were scored (None: a
    `sandbox_error` or unscored row, never drawn); neither the tests nor the reward's value is read,
    so it admits as many rows as `best` does when every group's rewards differ.
    `threshold`: every scored row whose reward is at least `threshold`, whatever its group: a
    learned reward's order within a prompt can be near-random where its level still separates the
    programs it has seen fail from the rest (docs/rlaif.md)."""
    if rule == "passed":
        return list(passed)
    if rule == "threshold":
        if threshold is None:
            raise ValueError("replay admission rule 'threshold' needs a threshold")
        return [None if r is None else r >= threshold for r in rewards]
    if rule not in ("best", "random"):
        raise ValueError(
            f"replay admission rule must be 'passed', 'best', 'threshold' or 'random', got {rule!r}"
        )
    if group < 1 or len(rewards) % group:
        raise ValueError(f"{len(rewards)} rows do not split into groups of {group}")
    if rule == "random" and rng is None:
        raise ValueError("replay admission rule 'random' needs a seeded rng")
    out: list[bool | None] = []
    for start in range(0, len(rewards), group):
        chunk = rewards[start : start + group]
        if rule == "random":
            scored_rows = [i for i, r in enumerate(chunk) if r is not None]
            pick = rng.choice(scored_rows) if scored_rows else None  # type: ignore[union-attr]
            out += [None if r is None else i == pick for i, r in enumerate(chunk)]
            continue
        scored = [r for r in chunk if r is not None]
        top = max(scored, default=None)
        contrast = top is not None and min(scored) < top
        out += [None if r is None else (contrast and r == top) for r in chunk]
    return out


class ReplayBuffer:
    """FIFO of distinct (task, completion) passing samples, at most `capacity` of them."""

    def __init__(self, capacity: int, pad_id: int, weighting: str = "uniform") -> None:
        if capacity < 1:
            raise ValueError(f"replay buffer capacity must be at least 1, got {capacity}")
        if weighting not in REPLAY_WEIGHTINGS:
            raise ValueError(
                f"replay weighting must be one of {', '.join(REPLAY_WEIGHTINGS)}, got {weighting!r}"
            )
        self.capacity = capacity
        self.pad_id = pad_id
        self.weighting = weighting
        self._items: OrderedDict[tuple[str, tuple[int, ...]], tuple[int, ...]] = OrderedDict()
        self._fail_rate: dict[str, float] = {}  # task -> share of its latest samples that failed
        self.added = 0  # distinct programs ever added

    def __len__(self) -> int:
        return len(self._items)

    @property
    def tasks(self) -> int:
        """Distinct tasks with at least one program held."""
        return len({task for task, _ in self._items})

    def add(self, task_ids: Sequence[str], rollout: Rollout, passed: Sequence[bool | None]) -> int:
        """Add the rows that passed; a program already held for its task is not added again (it
        stays where it is in the FIFO). None marks a row without a verdict (`sandbox_error`): not
        added, and not counted as a failure of its task. Returns how many were added."""
        outcomes: dict[str, list[bool]] = {}
        for task, ok in zip(task_ids, passed):
            if ok is not None:
                outcomes.setdefault(task, []).append(ok)
        self._fail_rate.update({t: 1.0 - sum(oks) / len(oks) for t, oks in outcomes.items()})
        n = 0
        for b, (task, ok) in enumerate(zip(task_ids, passed)):
            if not ok:
                continue
            prompt = tuple(rollout.prompt_ids[b][rollout.prompt_mask[b].bool()].tolist())
            completion = tuple(rollout.completion_ids[b][rollout.completion_mask[b].bool()].tolist())
            key = (task, completion)
            if key in self._items:
                continue
            self._items[key] = prompt
            n += 1
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
        self.added += n
        return n

    def draw(self, n: int, generator: torch.Generator) -> Rollout | None:
        """Up to `n` distinct samples as one padded `Rollout` (None when empty), balanced by task:
        tasks are drawn, each at most once while the buffer holds others, then one of that task's
        programs uniformly; so tasks with many distinct passing programs (the easy ones) do not
        crowd out the rest. Tasks are drawn uniformly, or with `weighting="failing"` in proportion
        to the share of their latest samples that failed (at least `MIN_WEIGHT`): replay goes to
        the programs the policy does not yet produce reliably."""
        if not self._items:
            return None
        by_task: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
        for key in self._items:
            by_task.setdefault(key[0], []).append(key)
        tasks = list(by_task)
        rows: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        while len(rows) < n and tasks:
            k = min(n - len(rows), len(tasks))
            if self.weighting == "failing":
                w = torch.tensor([max(self._fail_rate.get(t, 1.0), MIN_WEIGHT) for t in tasks])
                picked = torch.multinomial(w, k, replacement=False, generator=generator).tolist()
            else:
                picked = torch.randperm(len(tasks), generator=generator)[:k].tolist()
            for i in picked:
                keys = by_task[tasks[i]]
                key = keys.pop(int(torch.randint(len(keys), (1,), generator=generator)))
                rows.append((self._items[key], key[1]))
            tasks = [t for t in tasks if by_task[t]]
        return Rollout.from_ids([p for p, _ in rows], [c for _, c in rows], self.pad_id)

    def state_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "added": self.added,
            "items": [(task, list(c), list(p)) for (task, c), p in self._items.items()],
            "fail_rate": dict(self._fail_rate),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._items = OrderedDict(((t, tuple(c)), tuple(p)) for t, c, p in state["items"])
        self.added = state["added"]
        self._fail_rate = dict(state.get("fail_rate", {}))
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)


def imitation_loss(logp: torch.Tensor, mask: torch.Tensor, norm: float | None = None) -> torch.Tensor:
    """Negative log-likelihood of the marked tokens, `-sum(logp * mask) / N` with N the number of
    marked tokens, or `norm` when given (micro-batches of one draw pass the draw's token count, so
    their summed gradients are the token mean over the draw)."""
    m = mask.to(logp.dtype)
    denom = m.sum().clamp(min=1.0) if norm is None else torch.tensor(float(norm), device=logp.device)
    return -(logp * m).sum() / denom


def replay_step_count(cfg: Any, accelerator: Any, buffer: ReplayBuffer) -> int:
    """Replay-only steps this step: `replay_steps`, but at most one pass over the buffer (a small
    early buffer is not fitted many times over), and the same number on every process (DDP)."""
    mine = torch.tensor([min(cfg.replay_steps, len(buffer) // cfg.replay_batch)], device=accelerator.device)
    return int(accelerator.gather(mine).min())


def replay_backward(
    cfg: Any, accelerator: Any, policy: Any, buffer: ReplayBuffer, seed: int, sync: bool = False
) -> float:
    """Backward of `replay_coef` x the token-mean NLL of a draw from the buffer. Gradients are
    synchronised (DDP) on the last micro-batch only with `sync`; otherwise the RL pass that follows
    syncs them. Returns the NLL (0 when the buffer is empty)."""
    drawn = buffer.draw(cfg.replay_batch, torch.Generator().manual_seed(seed))
    if drawn is None:
        return 0.0
    n_tokens = float(drawn.completion_mask.sum())
    total = 0.0
    micro = micro_batches(drawn, list(range(len(drawn))), cfg.micro_batch_size)
    for i, mrows in enumerate(micro):
        sub = trim(drawn.select(mrows))
        last = sync and i == len(micro) - 1
        with accelerator.no_sync(policy) if not last else contextlib.nullcontext(), accelerator.autocast():
            logp, _, values = policy(sub)
            nll = imitation_loss(logp, sub.completion_mask.to(logp.device), n_tokens)
            loss = cfg.replay_coef * nll
            if values is not None:  # PPO: DDP needs a gradient for the value head in every backward
                loss = loss + 0.0 * values.sum()
            accelerator.backward(loss)
        total += float(nll.detach())
    return total
