"""Reward-model scores: a learned scalar reward over (prompt, completion) text.

    rm = RewardModel("runs/rm")                       # a directory `execrl rm train` wrote
    rm.scores(["def f(x):\\n"], ["    return x\\n"])   # -> [0.73]
    rm(completions=[...], prompts=[...])              # TRL's reward signature

A reward model here is any `AutoModelForSequenceClassification` checkpoint with one label (a
causal LM backbone with a scalar head: LlamaForSequenceClassification for the embedded model), so
the directories `execrl rm train` writes load in TRL, OpenRLHF and verl unchanged, and theirs load
here. The scalar is read at the last token that is not padding: `config.pad_token_id` must be set
and must differ from every token of the input, which `encode` guarantees by appending EOS only
when EOS is not the padding token.

`encode` is the one tokenization of a (prompt, completion) pair, shared by training
(trainers/reward_model.py) and scoring, so a model is scored on exactly the input it learnt from:
prompt text + completion text, tokenized as one string (no special tokens but a final EOS), cut
from the *left* to `max_length` tokens so the scored last token is always kept.

`ModelReward` is the training reward of `execrl train --reward rm` (trainers/rewarding.py). The
scores are computed frozen, without gradients, in batches, on the policy's device.

Deviations and limits: a prompt given as chat messages is rendered with the reward model's chat
template (`add_generation_prompt=True`) and the completion appended as text; the model is scored
in float32 unless a `dtype` is given (`execrl train --bf16` scores in bfloat16).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Any

from execrl.data.jsonl import DataError
from execrl.rewards.execution import ExecutionReward, Scored
from execrl.types import Status

__all__ = ["ModelReward", "RewardModel", "encode", "prompt_text"]


def prompt_text(tokenizer: Any, prompt: Any) -> str:
    """A benchmark prompt (a string, or chat messages) as the text the reward model reads."""
    if isinstance(prompt, str):
        return prompt
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("a chat prompt needs a reward model whose tokenizer has a chat template")
    return str(tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True))


def encode(tokenizer: Any, prompt: str, completion: str, max_length: int) -> list[int]:
    """Token ids of prompt + completion (+ EOS when EOS is not the padding token), cut from the
    left to `max_length`."""
    ids: list[int] = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
    eos, pad = tokenizer.eos_token_id, pad_id(tokenizer)
    if eos is not None and eos != pad:
        ids = ids + [eos]
    return ids[-max_length:]


def pad_id(tokenizer: Any) -> int:
    """The padding id the scalar head skips: the tokenizer's pad token, else its EOS."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise DataError("the reward model's tokenizer has neither a pad nor an EOS token")
    return int(pad)


def batch_tensors(seqs: Sequence[Sequence[int]], pad: int) -> tuple[Any, Any]:
    """(input_ids, attention_mask), each (B, T), right-padded with `pad`."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = torch.tensor(list(s), dtype=torch.long)
        attention[b, : len(s)] = 1
    return ids, attention


class RewardModel:
    """A frozen sequence-classification checkpoint with one label; `scores` in batches, no grad.

    `device`: where it runs (default: CUDA when available); `batch_size`: sequences per forward
    pass; `max_length`: tokens per sequence (default: the model's `max_position_embeddings`);
    `dtype`: of the weights (default float32; bfloat16 halves a large RM's memory on a GPU)."""

    def __init__(
        self,
        directory: str,
        *,
        device: Any = None,
        batch_size: int = 32,
        max_length: int | None = None,
        dtype: Any = None,
    ) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        try:
            config = AutoConfig.from_pretrained(directory)
            self.tokenizer = AutoTokenizer.from_pretrained(directory)
        except (OSError, ValueError, KeyError, TypeError) as e:
            first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise DataError(f"{directory}: not a reward model directory ({first})") from None
        if getattr(config, "num_labels", None) != 1:
            raise DataError(f"{directory}: a reward model has one output (num_labels 1), this one has "
                            f"{getattr(config, 'num_labels', None)}")  # fmt: skip
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = AutoModelForSequenceClassification.from_pretrained(
            directory, dtype=dtype or torch.float32
        )
        self.model.eval().requires_grad_(False).to(self.device)
        self.pad = pad_id(self.tokenizer)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.pad
        self.batch_size = batch_size
        limit = getattr(self.model.config, "max_position_embeddings", None) or 2048
        self.max_length = min(max_length or limit, limit)

    def scores(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        """One scalar per (prompt, completion), in order."""
        import torch

        if len(prompts) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(prompts)} prompts")
        seqs = [encode(self.tokenizer, p, c, self.max_length) for p, c in zip(prompts, completions)]
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # length-bucketed batches
        out = [0.0] * len(seqs)
        with torch.inference_mode():
            for i in range(0, len(order), self.batch_size):
                rows = order[i : i + self.batch_size]
                ids, attention = batch_tensors([seqs[r] for r in rows], self.pad)
                logits = self.model(
                    input_ids=ids.to(self.device), attention_mask=attention.to(self.device)
                ).logits
                for r, value in zip(rows, logits[:, 0].float().cpu().tolist()):
                    out[r] = value
        return out

    def __call__(
        self, completions: Sequence[Any], prompts: Sequence[Any] | None = None, **columns: Any
    ) -> list[float | None]:
        """TRL's reward signature; `prompts` is TRL's prompt column (strings or chat messages)."""
        if prompts is None:
            raise DataError("a reward model needs the prompts column")
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return list(self.scores([prompt_text(self.tokenizer, p) for p in prompts], texts))


class ModelReward:
    """`execrl train --reward rm`: the reward model's score is the training reward; the tests run
    as well, concurrently with the scoring, and only measure (pass rate, status counts, the
    held-out evaluation through `execution`).

    Why execute at all: without it the logs could not show what the policy's programs actually do
    — the very thing PF-PPO's R² is about — and the run's held-out evaluation needs the tests
    anyway. A sample whose execution ended in `sandbox_error` gets `None`, as under every other
    reward: the samples trained on and the samples measured stay the same set (sandbox errors are
    retried and rare; the loss of a sample is cheap)."""

    def __init__(self, rm: RewardModel, execution: ExecutionReward, prompt_of: Callable[[str], str]) -> None:
        self.rm = rm
        self._execution = execution
        self.prompt_of = prompt_of

    @property
    def execution(self) -> ExecutionReward:
        return self._execution

    def score(self, task_ids: list[str], completions: list[Any], progress: Any = None) -> list[Scored]:
        """RM scores and the tests' results, in order; `progress(result)` as each program finishes."""
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(self._execution.score, task_ids, completions, progress)
            rewards = self.rm.scores([self.prompt_of(t) for t in task_ids], completions)
            executed = pending.result()
        return [
            Scored(None if s.result.status is Status.SANDBOX_ERROR else r, s.result)
            for r, s in zip(rewards, executed)
        ]

    def close(self) -> None:
        self._execution.close()


def score_file(
    rm_dir: str,
    benchmark: str,
    samples: str,
    out: str,
    *,
    data: str | None = None,
    chat: bool = False,
    batch_size: int = 32,
) -> list[dict[str, Any]]:
    """`execrl rm score`: one row `{"task_id", "sample_index", "reward"}` per sample of `samples`,
    in its order, written atomically to `out`; every input is checked before anything is scored."""
    import os

    from execrl.data import get_benchmark, read_samples
    from execrl.eval.evaluate import write_jsonl_atomic

    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise DataError(f"{out}: the output directory does not exist")
    bench = get_benchmark(benchmark)
    problems = bench.load(data)
    rows = read_samples(samples)
    if not rows:
        raise DataError(f"{samples}: no samples")
    for s in rows:
        if s.task_id not in problems:
            raise DataError(f"{samples}:{s.line}: task_id {s.task_id!r} is not in the {bench.NAME} data")
    rm = RewardModel(rm_dir, batch_size=batch_size)
    prompts = {
        t: prompt_text(rm.tokenizer, bench.prompt(problems[t], chat=chat)) for t in {s.task_id for s in rows}
    }
    rewards = rm.scores([prompts[s.task_id] for s in rows], [s.completion for s in rows])
    seen: dict[str, int] = {}
    out_rows = []
    for s, r in zip(rows, rewards):
        out_rows.append({"task_id": s.task_id, "sample_index": seen.get(s.task_id, 0), "reward": r})
        seen[s.task_id] = seen.get(s.task_id, 0) + 1
    write_jsonl_atomic(out, out_rows)
    return out_rows
