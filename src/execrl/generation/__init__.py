"""Generation backends behind one protocol: sample programs from a model.

A prompt is either a string (completion style: the model continues it) or a list of chat
messages `[{"role": "user", "content": ...}, ...]` (chat style: the backend applies the model's
chat template, or the server's). `Generator.generate(prompts, params)` returns, for each prompt,
`params.n` `Completion`s. Backends:

- `hf.HFGenerator`: any local Hugging Face causal LM (CPU or GPU), batched and left-padded.
- `openai.OpenAIGenerator`: any OpenAI-compatible HTTP API (bounded concurrency, retries).
- `vllm.VLLMGenerator`: vLLM on a GPU (optional extra `execrl[vllm]`).
- `server`: `execrl serve`, an OpenAI-compatible server for a local HF model.

Heavy libraries are imported inside the backend modules, never here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Message = dict[str, str]
Prompt = str | list[Message]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. `temperature == 0` means greedy (then `n` identical samples are allowed)."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 512
    stop: tuple[str, ...] = ()
    """Generation ends at the first of these strings; the returned text excludes it."""
    seed: int | None = None
    """Same seed, same prompts, same backend and hardware → same samples."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: Literal["stop", "length"] = "stop"
    """"stop": an EOS token or a stop string ended it; "length": max_new_tokens did."""
    num_tokens: int = 0


class Generator(Protocol):
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for each prompt, in the prompts' order."""
        ...


class GenerationError(RuntimeError):
    """A backend could not produce completions (unreachable API, not a model directory, ...)."""


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop string. Returns (text, whether a stop string was found)."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


__all__ = [
    "Completion",
    "GenerationError",
    "Generator",
    "Message",
    "Prompt",
    "SamplingParams",
    "truncate_at_stop",
]
