"""`HFGenerator`: sample from a local Hugging Face causal LM with `model.generate`, batched and left-padded.

Scope: decoder-only models that `AutoModelForCausalLM` loads, on CPU or one GPU (the model's device
is respected; no sharding, no tensor parallelism). Prompts longer than the model's context are not
truncated here: the model fails on them.

How it decodes: each (prompt, sample) pair is one row; rows are sorted by prompt length and cut into
batches of `batch_size` rows, left-padded, and run through `model.generate` with the KV cache.
Greedy rows (`temperature == 0`) are decoded once per prompt and copied `n` times. Sampling does not
use `generate`'s own sampler, which draws all rows from the global RNG (so one row's samples would
depend on its batch-mates): a logits processor applies temperature, top-k and top-p, draws each row's
token from that row's own `torch.Generator`, and hands `generate` scores whose argmax is that token.

Reproducibility, as guaranteed: with `params.seed` set, a row's generator is seeded from
(seed, the rendered prompt, which repeat of that prompt in the call it is, the sample index), so

- the same call twice gives identical completions (same model, device and dtype);
- a prompt's samples do not depend on the other prompts in the call, their order, or `batch_size`,
  up to floating-point differences that padding introduces in the logits: these can flip a greedy
  tie or a draw that falls on a probability boundary, which is rare in float32 and less rare in bf16.

Without a seed, row seeds come from torch's global RNG, so `torch.manual_seed` before a call fixes it.

Deviations: only `SamplingParams` steer decoding. Sampling defaults in the model's
`generation_config` (temperature, top-p/k, repetition penalty) are not applied. Stop strings are
matched on the decoded text of the last few tokens of each row after every step; a row that hits a
stop string or EOS is finished (padded from then on) and the batch ends when every row has finished.
`num_tokens` counts the tokens generated up to and including the one that finished the row (EOS or
the end of a stop string), before the text is cut at the stop string.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from execrl.generation import Completion, GenerationError, Prompt, SamplingParams, truncate_at_stop

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def sample_seed(seed: int, prompt: str, repeat: int, sample: int) -> int:
    """The seed of one sample's generator: a hash of everything that identifies the sample in a call."""
    digest = hashlib.sha256(f"{seed}\0{repeat}\0{sample}\0{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass
class _Row:
    prompt: int  # index of the prompt in the call
    sample: int
    ids: list[int]
    seed: int


class HFGenerator:
    """A `Generator` over a local Hugging Face causal LM. `model` and `tokenizer` are public for trainers.

    `model` is a model directory (or a hub id already in the local cache) or a loaded `PreTrainedModel`;
    `tokenizer` defaults to the one saved with the model. `device` defaults to the loaded model's
    device, or for a directory to "cuda" when available, else "cpu". `dtype` ("float32", "bfloat16",
    "float16" or "auto") defaults to float32 on CPU and the checkpoint's dtype elsewhere.
    `batch_size` counts rows (prompt × sample) per `generate` call.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 16,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        if isinstance(model, (str, os.PathLike)):
            source = os.fspath(model)
            self.model: PreTrainedModel = _load_model(source, device, dtype)
        else:
            source = getattr(model, "name_or_path", "") or ""
            self.model = model
            if device is not None:
                self.model.to(device)  # type: ignore[arg-type]
        if tokenizer is None:
            if not source:
                raise GenerationError(
                    "pass tokenizer= with a model object that was not loaded from a directory"
                )
            tokenizer = _load_tokenizer(source)
        self.tokenizer: PreTrainedTokenizerBase = tokenizer
        if self.tokenizer.pad_token_id is None:
            if self.tokenizer.eos_token is None:
                raise GenerationError(
                    f"the tokenizer of {source or 'the model'} has neither a pad nor an EOS token"
                )
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.name = source
        self.eos_ids = _eos_ids(self.model, self.tokenizer)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def render(self, prompt: Prompt) -> str:
        """The text the model sees: a string prompt as is, chat messages through the chat template."""
        if isinstance(prompt, str):
            return prompt
        if not getattr(self.tokenizer, "chat_template", None):
            raise GenerationError(
                f"the tokenizer of {self.name or 'the model'} has no chat template: "
                "pass string prompts, or a tokenizer with `chat_template` set"
            )
        text = self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        assert isinstance(text, str)
        return text

    def encode(self, prompt: Prompt) -> list[int]:
        """Prompt token ids. A rendered chat template already holds its special tokens (BOS), so none
        are added to it; a string prompt gets the tokenizer's usual ones."""
        return self._tokenize(prompt)[1]

    def _tokenize(self, prompt: Prompt) -> tuple[str, list[int]]:
        text = self.render(prompt)
        return text, _token_ids(self.tokenizer, text, prompt)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        greedy = params.temperature == 0
        base_seed = params.seed if params.seed is not None else int(torch.randint(2**62, ()).item())
        rows: list[_Row] = []
        repeats: Counter[str] = Counter()
        for i, prompt in enumerate(prompts):
            text, ids = self._tokenize(prompt)
            if not ids:
                raise GenerationError(f"prompt {i} is empty after tokenization")
            repeat = repeats[text]
            repeats[text] += 1
            for j in range(1 if greedy else params.n):
                rows.append(_Row(i, j, ids, sample_seed(base_seed, text, repeat, j)))

        rows.sort(key=lambda r: len(r.ids), reverse=True)
        results: list[list[Completion]] = [[] for _ in prompts]
        was_training = self.model.training  # a trainer's policy goes back to train mode afterwards
        self.model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(rows), self.batch_size):
                    batch = rows[start : start + self.batch_size]
                    for row, completion in zip(batch, self._generate_batch(batch, params)):
                        results[row.prompt].append(completion)
        finally:
            self.model.train(was_training)
        # A prompt's rows have one length, so the stable sort kept them in sample order.
        return [done * params.n for done in results] if greedy else results

    def _generate_batch(self, rows: list[_Row], params: SamplingParams) -> list[Completion]:
        pad = self.tokenizer.pad_token_id
        width = max(len(r.ids) for r in rows)
        input_ids = torch.tensor([[pad] * (width - len(r.ids)) + r.ids for r in rows], device=self.device)
        attention_mask = torch.tensor(
            [[0] * (width - len(r.ids)) + [1] * len(r.ids) for r in rows], device=self.device
        )
        watcher = _StopWatcher(self.tokenizer, width, params.stop, self.eos_ids, len(rows))
        processors = LogitsProcessorList()
        if params.temperature > 0:
            generators = [torch.Generator(device=self.device).manual_seed(r.seed) for r in rows]
            processors.append(_SeededSampler(generators, params))
        out = self.model.generate(  # type: ignore[operator]
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=params.max_new_tokens,
            do_sample=False,
            num_beams=1,
            use_cache=True,
            temperature=None,
            top_p=None,
            top_k=None,
            repetition_penalty=None,
            pad_token_id=pad,
            eos_token_id=sorted(self.eos_ids),
            logits_processor=processors,
            stopping_criteria=StoppingCriteriaList([watcher]),
        )
        new_tokens = out[:, width:]  # (B, T) with T <= max_new_tokens
        completions = []
        for r in range(len(rows)):
            done_at = watcher.done_at[r]
            num_tokens = done_at if done_at is not None else new_tokens.shape[1]
            keep = num_tokens - 1 if watcher.eos[r] else num_tokens  # an EOS may be no special token
            text = str(self.tokenizer.decode(new_tokens[r, :keep], skip_special_tokens=True))
            text, hit = truncate_at_stop(text, params.stop)
            finish: Literal["stop", "length"] = "stop" if done_at is not None or hit else "length"
            completions.append(Completion(text=text, finish_reason=finish, num_tokens=num_tokens))
        return completions


class _SeededSampler(LogitsProcessor):
    """Draws row r's next token from `generators[r]` after temperature, top-k and top-p, and returns
    scores that are 0 at that token and -inf elsewhere, so that greedy decoding picks it."""

    def __init__(self, generators: list[torch.Generator], params: SamplingParams) -> None:
        self.generators = generators
        self.warpers: list[LogitsProcessor] = [TemperatureLogitsWarper(params.temperature)]
        if params.top_k > 0:
            self.warpers.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1:
            self.warpers.append(TopPLogitsWarper(params.top_p))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        warped = scores.float()
        for warper in self.warpers:
            warped = warper(input_ids, warped)
        probs = torch.softmax(warped, dim=-1)  # (B, V)
        chosen = torch.stack(
            [torch.multinomial(probs[r], 1, generator=g) for r, g in enumerate(self.generators)]
        )  # (B, 1)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen, 0.0)  # type: ignore[return-value]


class _StopWatcher(StoppingCriteria):
    """Finishes a row at EOS or once a stop string appears in its decoded text; records when."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        prompt_width: int,
        stop: Sequence[str],
        eos_ids: set[int],
        rows: int,
    ) -> None:
        self.tokenizer = tokenizer
        self.prompt_width = prompt_width
        self.stop = [s for s in stop if s]
        # A token decodes to at least one byte and a character is at most four: a stop string of L
        # characters ends within the last 4L + 1 tokens; the margin covers skipped special tokens.
        self.window = 4 * max((len(s) for s in self.stop), default=0) + 8
        self.eos_ids = eos_ids
        self.done_at: list[int | None] = [None] * rows
        """Per row: tokens generated when it finished (EOS or a stop string), None while running."""
        self.eos = [False] * rows
        """Per row: whether an EOS token finished it."""

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_width
        for r, done in enumerate(self.done_at):
            if done is not None:
                continue
            if int(input_ids[r, -1]) in self.eos_ids:
                self.done_at[r] = generated
                self.eos[r] = True
            elif self.stop:
                tail = input_ids[r, max(self.prompt_width, input_ids.shape[1] - self.window) :]
                text = self.tokenizer.decode(tail, skip_special_tokens=True)
                if any(s in text for s in self.stop):
                    self.done_at[r] = generated
        finished = [d is not None for d in self.done_at]
        return torch.tensor(finished, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


def _token_ids(tokenizer: PreTrainedTokenizerBase, text: str, prompt: Prompt) -> list[int]:
    """A rendered chat template already holds its special tokens; a string prompt gets the usual ones."""
    return list(tokenizer(text, add_special_tokens=isinstance(prompt, str))["input_ids"])


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: Prompt) -> list[int]:
    """The token ids a model sees for `prompt` (as `HFGenerator.encode`), for code that holds a
    tokenizer but no generator (trainers)."""
    if isinstance(prompt, str):
        return _token_ids(tokenizer, prompt, prompt)
    if not getattr(tokenizer, "chat_template", None):
        raise GenerationError("chat prompts need a tokenizer with a chat template")
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert isinstance(text, str)
    return _token_ids(tokenizer, text, prompt)


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def _local_only() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _check_model_dir(path: str) -> None:
    """Raise a GenerationError naming what is missing if an existing `path` is not a model directory."""
    p = Path(path)
    if not p.is_dir():
        raise GenerationError(f"{path} is not a model directory: it is a file")
    if not (p / "config.json").is_file():
        raise GenerationError(f"{path} is not a Hugging Face model directory: no config.json")
    if not any(p.glob("*.safetensors")) and not any(p.glob("*.bin")) and not any(p.glob("*.pt")):
        raise GenerationError(
            f"{path} is not a Hugging Face model directory: no weights (*.safetensors, *.bin)"
        )


def _load_model(path: str, device: str | None, dtype: str | None) -> PreTrainedModel:
    exists = os.path.exists(path)
    if exists:
        _check_model_dir(path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = "float32" if device == "cpu" else "auto"
    if dtype != "auto" and dtype not in DTYPES:
        raise GenerationError(f"unknown dtype {dtype!r}: expected one of {', '.join([*DTYPES, 'auto'])}")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=DTYPES.get(dtype, "auto"), local_files_only=_local_only()
        )
    except (OSError, ValueError, KeyError) as e:
        if not exists:
            raise GenerationError(
                f"{path} does not exist, and is no model in the local hub cache: {e}"
            ) from e
        raise GenerationError(f"cannot load a causal LM from {path}: {e}") from e
    return model.to(device)  # type: ignore[arg-type]


def _load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=_local_only())
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise GenerationError(
            f"cannot load a tokenizer from {path} (tokenizer.json / tokenizer_config.json): {e}"
        ) from e
