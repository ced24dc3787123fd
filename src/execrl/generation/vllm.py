"""`VLLMGenerator`: the `Generator` protocol on vLLM's offline engine (`vllm.LLM`), for GPUs.

Needs the optional extra: `pip install 'execrl[vllm]'`. vLLM is imported when the generator is built,
never when this module is imported.

How it maps the protocol:
- one `llm.generate` call for all prompts; vLLM schedules and batches them itself;
- chat prompts are rendered with the tokenizer's chat template (`add_generation_prompt=True`) and
  passed as token ids, so the template's BOS is not doubled by vLLM's own tokenization;
- `top_k == 0` becomes vLLM's "off" (-1); greedy prompts are decoded once and copied `n` times;
- with `params.seed`, each prompt gets its own seed derived from (seed, rendered prompt, repeat),
  as in `HFGenerator`, so a prompt's samples do not depend on the other prompts of the call. vLLM
  documents per-request seeds as reproducible for a given engine configuration and hardware only;
- stop strings are handled by vLLM (text excludes them) and applied again with `truncate_at_stop`;
  `num_tokens` is vLLM's count of generated tokens.

Not tested in CI (no GPU there): only the missing-extra error is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from execrl.generation import Completion, GenerationError, Prompt, SamplingParams, truncate_at_stop


class VLLMGenerator:
    """A `Generator` on `vllm.LLM(model, ...)`; `llm_kwargs` go to `vllm.LLM` unchanged
    (e.g. `max_model_len`, `enable_prefix_caching`). `llm` and `tokenizer` are public."""

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        seed: int = 0,
        **llm_kwargs: Any,
    ) -> None:
        try:
            import vllm
        except ImportError:
            raise GenerationError("vLLM is not installed: pip install 'execrl[vllm]'") from None
        self._vllm = vllm
        self.name = model
        try:
            self.llm = vllm.LLM(
                model=model,
                dtype=dtype,
                tensor_parallel_size=tensor_parallel_size,
                gpu_memory_utilization=gpu_memory_utilization,
                seed=seed,
                **llm_kwargs,
            )
        except (OSError, ValueError) as e:
            raise GenerationError(f"vLLM cannot load {model}: {e}") from e
        self.tokenizer = self.llm.get_tokenizer()

    def _render(self, prompt: Prompt) -> tuple[str, Any]:
        """(text that keys the seed, what vLLM gets: the string, or the chat template's token ids)."""
        if isinstance(prompt, str):
            return prompt, prompt
        if not getattr(self.tokenizer, "chat_template", None):
            raise GenerationError(f"the tokenizer of {self.name} has no chat template: pass string prompts")
        text = self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return text, {"prompt_token_ids": list(ids)}

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        from execrl.generation.hf import sample_seed  # imports torch, which vLLM has loaded already

        greedy = params.temperature == 0
        inputs, sampling = [], []
        repeats: Counter[str] = Counter()
        for prompt in prompts:
            text, vllm_input = self._render(prompt)
            seed = None if params.seed is None else sample_seed(params.seed, text, repeats[text], 0)
            repeats[text] += 1
            inputs.append(vllm_input)
            sampling.append(
                self._vllm.SamplingParams(
                    n=1 if greedy else params.n,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    top_k=params.top_k if params.top_k > 0 else -1,
                    max_tokens=params.max_new_tokens,
                    stop=[s for s in params.stop if s] or None,
                    seed=seed,
                )
            )
        outputs = self.llm.generate(inputs, sampling, use_tqdm=False)
        results = []
        for request in outputs:  # in the order of `inputs`
            completions = []
            for out in request.outputs:
                text, hit = truncate_at_stop(out.text, params.stop)
                finish: Literal["stop", "length"] = (
                    "length" if out.finish_reason == "length" and not hit else "stop"
                )
                completions.append(Completion(text=text, finish_reason=finish, num_tokens=len(out.token_ids)))
            results.append(completions * params.n if greedy else completions)
        return results
