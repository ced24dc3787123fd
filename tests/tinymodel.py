"""A tiny random causal LM with a locally trained tokenizer, for generation tests (no hub access).

`make_tiny_model(dir)` trains a byte-level BPE tokenizer (~400 tokens) on generated Python-ish text,
wraps it as a `PreTrainedTokenizerFast` with `<|endoftext|>` as EOS, `<|pad|>` as padding and a
small Jinja chat template, builds a 2-layer Llama of hidden size 32 with `torch.manual_seed(0)`,
and saves both with `save_pretrained`. The weights are random: the model writes gibberish, but
always the same gibberish, which is what the tests need. Takes about a second on one CPU core.
"""

from __future__ import annotations

import os
from pathlib import Path

EOS = "<|endoftext|>"
PAD = "<|pad|>"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _corpus() -> list[str]:
    names = ["add", "mul", "fib", "gcd", "is_prime", "reverse", "count", "total", "maximum", "square"]
    lines = []
    for i, name in enumerate(names * 30):
        a, b = f"x{i % 7}", f"y{i % 5}"
        lines += [
            f"def {name}({a}, {b}):",
            f'    """Return the {name} of {a} and {b}."""',
            f"    if {a} < {b}:",
            f"        return {a} + {b} * {i}",
            f"    for k in range({i}):",
            f"        {a} = {a} - k",
            f"    return [{a}, {b}, {i % 3}]",
            f"print({name}({i}, {i + 1}))",
        ]
    return lines


def make_tiny_model(directory: str | os.PathLike[str]) -> str:
    """Write a tiny Llama and its tokenizer to `directory`; return the directory as a string."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, pad_token=PAD)
    tokenizer.chat_template = CHAT_TEMPLATE

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=0.2,  # peakier logits than the default 0.02: fewer near-ties in greedy decoding
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def write_rl_tasks(path: Path, test_tasks: int = 2) -> str:
    """Six built-in train-split function tasks and `test_tasks` test-split ones, as JSONL for
    `execrl train --data`; returns the path."""
    from execrl.data import builtin

    suite = builtin.generate(seed=0, size=80)
    train = [p for p in suite.values() if p.split == "train" and p.kind == "function"][:6]
    test = [p for p in suite.values() if p.split == "test"][:test_tasks]
    builtin.write_jsonl(path, train + test)
    return str(path)
