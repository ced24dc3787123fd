"""Where `execrl train` gets each step's samples: the trainer itself, rollout worker processes that
sample from a weight snapshot while the trainer updates, or a colocated vLLM engine (GPU).

    rollouts = build_rollouts(...)           # InlineRollouts, AsyncRollouts or VLLMRollouts
    sampled = rollouts.get(step, prompts)    # Sampled(rollout, logp, version)
    ...update...
    rollouts.synced(step + 1, lm)            # the weights at the start of step + 1

**Asynchronous rollouts** (`rollout_workers` > 0): RLTF's generator/trainer split, the way OpenRLHF
and verl overlap generation with training at scale, here with local processes. The trainer takes a
snapshot of the policy's weights every `sync_every` steps (version v = the weights at the start of
step v); step t samples from snapshot v(t), the oldest one no more than `max_staleness` steps behind
it: v(t) = the smallest snapshot version >= t - max_staleness (so max_staleness >= sync_every - 1).
Step t is handed to an idle worker as soon as v(t) exists, so up to `max_staleness` steps are
sampled while the trainer is still updating. v(t) is a function of t, never of timing: a run is as
reproducible as the synchronous one, and with max_staleness 0 it *is* the synchronous one (the same
samples from the same seeds and weights; tested).

Off-policy correction: a worker returns, with its samples, their log-probabilities under the
snapshot that sampled them (at the policy's temperature). The trainer uses them as PPO's `old_logp`,
so the clipped ratio is pi_current / pi_sampling: the stale part of the update is importance-weighted
and clipped, as in PPO's own multi-epoch updates. (A critic's values and the reference's
log-probabilities are still computed by the trainer, on its current weights.)

Deviations and limits: workers sample with the trainer's HF sampler (rollout.sample) on CPU
threads (each gets the trainer's torch threads / workers, at least 1); snapshots travel through
shared memory (a copy of the state dict per sync); LoRA runs are refused (a snapshot is a full
state dict); under DDP each process has its own workers. Resuming restarts the snapshot schedule at
the checkpoint's step (the versions of later steps can differ from an uninterrupted run's when the
checkpoint step is not a multiple of sync_every).

**vLLM** (`rollout_backend: vllm`, GPU only, needs `execrl[vllm]`): see `VLLMRollouts`.
"""

from __future__ import annotations

import math
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from execrl.trainers.rl_tasks import seed_of
from execrl.trainers.rollout import Rollout, SampleParams, micro_batches, sample, score, trim

__all__ = [
    "AsyncRollouts",
    "InlineRollouts",
    "RolloutSource",
    "Sampled",
    "build_rollouts",
    "snapshot_version",
]


@dataclass
class Sampled:
    rollout: Rollout
    logp: torch.Tensor | None  # (B, T) under the weights that sampled; None: the trainer's live policy did
    version: int  # the step at whose start those weights were taken


class RolloutSource(Protocol):
    def get(self, step: int, prompts: Sequence[Sequence[int]]) -> Sampled: ...

    def synced(self, version: int, lm: Any) -> None:
        """Called after each update with the weights at the start of step `version`."""
        ...

    def close(self) -> None: ...


def sample_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The generator of a step's samples: a function of (seed, step, rank) only."""
    return torch.Generator().manual_seed(seed_of(seed, "sample", step, rank))


class InlineRollouts:
    """The synchronous loop: the trainer's current policy samples each step."""

    def __init__(self, lm: Any, tokenizer: Any, sampling: SampleParams, seed: int, rank: int) -> None:
        self.lm, self.tokenizer, self.sampling, self.seed, self.rank = lm, tokenizer, sampling, seed, rank

    def get(self, step: int, prompts: Sequence[Sequence[int]]) -> Sampled:
        g = sample_generator(self.seed, step, self.rank)
        return Sampled(sample(self.lm, self.tokenizer, prompts, self.sampling, g), None, step)

    def synced(self, version: int, lm: Any) -> None:
        pass

    def close(self) -> None:
        pass


def snapshot_version(step: int, start: int, max_staleness: int, sync_every: int) -> int:
    """v(t): the smallest snapshot version >= t - max_staleness (snapshots: `start`, and every
    multiple of `sync_every` after it)."""
    low = step - max_staleness
    if low <= start:
        return start
    return math.ceil(low / sync_every) * sync_every


@torch.no_grad()
def sampling_logprobs(lm: Any, r: Rollout, size: int, temperature: float) -> torch.Tensor:
    """(B, T) log-probabilities of the sampled tokens under `lm` at `temperature`; 0 on padding."""
    logp = torch.zeros(r.completion_ids.shape)
    for rows in micro_batches(r, list(range(len(r))), size):
        lp, _, _ = score(lm, trim(r.select(rows)), temperature=temperature)
        logp[torch.tensor(rows), : lp.shape[1]] = lp.float().cpu()
    return logp


def _worker(inbox: Any, outbox: Any, config: Any, model_dir: str, sampling: SampleParams, threads: int,
            micro_batch: int) -> None:  # fmt: skip
    """A rollout process: (step, version, state | None, prompts, seed, rank) in, samples out."""
    torch.set_num_threads(threads)
    from transformers import AutoModelForCausalLM

    from execrl.trainers.sft import _load_tokenizer

    lm = AutoModelForCausalLM.from_config(config).float().eval()
    tokenizer = _load_tokenizer(model_dir)
    outbox.put(None)  # ready: start-up is not a step's time
    while True:
        job = inbox.get()
        if job is None:
            return
        step, version, state, prompts, seed, rank = job
        if state is not None:
            lm.load_state_dict(state)
        rollout = sample(lm, tokenizer, prompts, sampling, sample_generator(seed, step, rank))
        logp = sampling_logprobs(lm, rollout, micro_batch, sampling.temperature)
        outbox.put((step, version, rollout, logp))


class AsyncRollouts:
    """`workers` processes sampling step t from snapshot `snapshot_version(t)` (module docstring).

    `plan(step)` gives a step's prompts (token ids) before the trainer reaches it, so workers can
    sample ahead; it must be what the trainer then passes to `get`."""

    def __init__(
        self,
        lm: Any,
        model_dir: str,
        sampling: SampleParams,
        *,
        plan: Callable[[int], list[list[int]]],
        seed: int,
        rank: int,
        workers: int,
        max_staleness: int,
        sync_every: int,
        start: int,
        max_steps: int,
        micro_batch_size: int = 32,
    ) -> None:
        if max_staleness < sync_every - 1:
            raise ValueError(
                f"max_staleness ({max_staleness}) must be at least sync_every - 1 ({sync_every - 1})"
            )
        import torch.multiprocessing as mp

        self.plan, self.seed, self.rank = plan, seed, rank
        self.max_staleness, self.sync_every, self.start, self.max_steps = (
            max_staleness,
            sync_every,
            start,
            max_steps,
        )
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}
        self.next_step = start  # the next step to hand to a worker
        self.results: dict[int, tuple[int, Rollout, torch.Tensor]] = {}
        ctx = mp.get_context("spawn")  # the trainer has threads; fork would copy their locks
        self.outbox = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(workers)]
        self.loaded: list[int | None] = [None] * workers  # each worker's snapshot version
        self.idle = list(range(workers))
        self.running: dict[int, int] = {}  # step -> worker
        threads = max(1, torch.get_num_threads() // workers)
        self.procs = [
            ctx.Process(target=_worker, daemon=True,
                        args=(box, self.outbox, lm.config, model_dir, sampling, threads, micro_batch_size))
            for box in self.inboxes
        ]  # fmt: skip
        for p in self.procs:
            p.start()
        for _ in self.procs:
            self._next_message()
        self.synced(start, lm)

    def version_of(self, step: int) -> int:
        return snapshot_version(step, self.start, self.max_staleness, self.sync_every)

    def synced(self, version: int, lm: Any) -> None:
        if version == self.start or version % self.sync_every == 0:
            self.snapshots[version] = {k: v.detach().to("cpu", copy=True) for k, v in lm.state_dict().items()}
            for old in [v for v in self.snapshots if v < self.version_of(self.next_step)]:
                del self.snapshots[old]  # no step still to be handed out needs it
        self._hand_out()

    def _hand_out(self) -> None:
        while self.idle and self.next_step < self.max_steps:
            t = self.next_step
            v = self.version_of(t)
            if v not in self.snapshots:
                return  # the trainer has not reached step v yet
            w = self.idle.pop(0)
            state = self.snapshots[v] if self.loaded[w] != v else None
            self.loaded[w] = v
            self.inboxes[w].put((t, v, state, self.plan(t), self.seed, self.rank))
            self.running[t] = w
            self.next_step += 1

    def _next_message(self) -> Any:
        while True:
            try:
                return self.outbox.get(timeout=1.0)
            except queue.Empty:
                dead = [p.exitcode for p in self.procs if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"a rollout worker exited (code {dead[0]})") from None

    def _receive(self) -> None:
        step, version, rollout, logp = self._next_message()
        self.results[step] = (version, rollout, logp)
        self.idle.append(self.running.pop(step))
        self._hand_out()

    def get(self, step: int, prompts: Sequence[Sequence[int]]) -> Sampled:
        self._hand_out()
        if step not in self.results and step not in self.running:
            raise RuntimeError(
                f"step {step} was not handed to a rollout worker (snapshot {self.version_of(step)} missing)"
            )
        while step not in self.results:
            self._receive()
        version, rollout, logp = self.results.pop(step)
        if [list(p) for p in prompts] != [list(p) for p in self.plan(step)]:
            raise RuntimeError(f"step {step}: the trainer's prompts differ from the plan the workers sampled")
        return Sampled(rollout, logp, version)

    def close(self) -> None:
        for box in self.inboxes:
            box.put(None)
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()


def build_rollouts(cfg: Any, lm: Any, tokenizer: Any, sampling: SampleParams, *, plan: Callable[[int], list[list[int]]],
                   rank: int, start: int, procs: int = 1) -> RolloutSource:  # fmt: skip
    """The rollout source `cfg` asks for (`rollout_backend`, `rollout_workers`)."""
    if getattr(cfg, "rollout_backend", "hf") == "vllm":
        from execrl.trainers.vllm_rollout import VLLMRollouts

        return VLLMRollouts(cfg, lm, tokenizer, sampling, rank=rank, procs=procs)
    if getattr(cfg, "rollout_workers", 0):
        return AsyncRollouts(
            lm, cfg.model, sampling, plan=plan, seed=cfg.seed, rank=rank, workers=cfg.rollout_workers,
            max_staleness=cfg.max_staleness, sync_every=cfg.sync_every, start=start, max_steps=cfg.max_steps,
            micro_batch_size=cfg.micro_batch_size,
        )  # fmt: skip
    return InlineRollouts(lm, tokenizer, sampling, cfg.seed, rank)
