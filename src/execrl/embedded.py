"""The embedded default: a tokenizer and a tiny Llama trained from scratch on the built-in suite.

    from execrl.embedded import EmbeddedConfig, train
    model_dir = train(EmbeddedConfig(out="runs/embedded"))   # a standard HF checkpoint directory

Steps: generate the built-in suite (data/builtin.py); train a byte-level BPE tokenizer on its
train-split prompts and solutions; build a randomly initialised Llama of a few million parameters;
fine-tune it with `execrl sft` (trainers/sft.py) on the train split's prompt -> reference-solution
pairs. Only the train split is ever seen: validation and test tasks hold out operation
compositions. Everything is seeded; on one machine the same seed gives the same checkpoint.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

EOS, PAD = "<|endoftext|>", "<|pad|>"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass
class EmbeddedConfig:
    out: str = "runs/embedded"
    """Directory for the tokenizer, the base model, the SFT data and the trained model (out/model)."""
    seed: int = 0
    suite_size: int = 3000
    """Tasks generated for the built-in suite (all splits)."""
    vocab_size: int = 1024
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    max_steps: int = 300
    """Measured (bench/embedded.py): 300 steps leave held-out greedy pass@1 at 37%; 600 reach 74%."""
    batch_size: int = 32
    lr: float = 2e-3
    max_length: int = 256


def build_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """The embedded model's tokenizer: byte-level BPE (no prefix space, no offset trimming)
    trained on `texts`, as a `PreTrainedTokenizerFast` with EOS, PAD and the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, pad_token=PAD)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def llama_config(tokenizer: Any, *, hidden_size: int, layers: int, heads: int, positions: int) -> Any:
    """The embedded family's architecture for `tokenizer`: a Llama with tied embeddings, an MLP 4x
    the width, full multi-head attention, no BOS (the embedded model; its judge's larger sibling)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=positions,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )


def _build_base(cfg: EmbeddedConfig, texts: list[str], base_dir: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = build_tokenizer(texts, cfg.vocab_size)
    config = llama_config(tokenizer, hidden_size=cfg.hidden_size, layers=cfg.layers, heads=cfg.heads,
                          positions=cfg.max_length)  # fmt: skip
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)


def write_sft_data(path: str, seed: int = 0, size: int = 3000) -> list[dict[str, Any]]:
    """The train split's prompt -> reference-solution pairs as `execrl sft` JSONL; returns them."""
    from execrl.data import builtin

    problems = [p for p in builtin.generate(seed=seed, size=size).values() if p.split == "train"]
    examples = builtin.sft_examples(problems)
    with open(path, "w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(ex) + "\n")
    return examples


def train(cfg: EmbeddedConfig) -> str:
    """Build and fine-tune the embedded model; returns the trained checkpoint directory."""
    from execrl.trainers.sft import SFTConfig
    from execrl.trainers.sft import train as sft_train

    os.makedirs(cfg.out, exist_ok=True)
    data = os.path.join(cfg.out, "sft.jsonl")
    examples = write_sft_data(data, seed=cfg.seed, size=cfg.suite_size)
    base = os.path.join(cfg.out, "base")
    _build_base(cfg, [ex["prompt"] + ex["response"] for ex in examples], base)
    model_dir = os.path.join(cfg.out, "model")
    sft_train(
        SFTConfig(
            model=base,
            data=data,
            out=model_dir,
            max_steps=cfg.max_steps,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            warmup_ratio=0.05,
            schedule="cosine",
            max_length=cfg.max_length,
            seed=cfg.seed,
            log_every=10,
        )
    )
    return model_dir
