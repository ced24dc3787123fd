"""HFGenerator on a tiny random Llama (tests/tinymodel.py): determinism, seeds, stops, batching, chat.

The model writes gibberish, so stop strings are picked from its own greedy output.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import builtins
import json
from pathlib import Path

import pytest

from execrl.generation import GenerationError, SamplingParams
from tinymodel import make_tiny_model

PROMPTS = [
    "def add(x, y):",
    "print(",
    '    for k in range(3):\n        x = x - k\n    return [x, y]\ndef fib(n):\n    """Return',
]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-hf"))


@pytest.fixture(scope="module")
def gen(tiny_model: str):
    from execrl.generation.hf import HFGenerator

    return HFGenerator(tiny_model, batch_size=8)


def _ascii_stop(text: str) -> str:
    """A two-character printable substring of `text` that starts at index >= 3."""
    for i in range(3, len(text) - 1):
        if text[i : i + 2].isascii() and text[i : i + 2].isprintable() and text[i : i + 2].strip():
            return text[i : i + 2]
    pytest.skip(f"no printable two-character substring in {text!r}")


def test_greedy_is_deterministic_and_n_samples_identical(gen) -> None:
    params = SamplingParams(n=3, temperature=0, max_new_tokens=12)
    first = gen.generate(PROMPTS[:2], params)
    assert first == gen.generate(PROMPTS[:2], params)
    for samples in first:
        assert len(samples) == 3 and len(set(samples)) == 1
        assert samples[0].num_tokens == 12 and samples[0].finish_reason == "length"


def test_seeded_sampling_reproducible_across_calls(gen) -> None:
    params = SamplingParams(n=4, temperature=1.0, top_p=0.95, top_k=50, max_new_tokens=10, seed=7)
    first = gen.generate(PROMPTS, params)
    assert first == gen.generate(PROMPTS, params)
    assert all(len(samples) == 4 for samples in first)
    assert len({c.text for c in first[0]}) > 1, "n samples of one prompt must differ"


def test_different_seeds_differ(gen) -> None:
    a = gen.generate(PROMPTS[:1], SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=1))
    b = gen.generate(PROMPTS[:1], SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=2))
    assert a != b


def test_seeded_samples_do_not_depend_on_batching(tiny_model: str, gen) -> None:
    """Each sample draws from its own generator: batch size, batch-mates and order do not matter."""
    from execrl.generation.hf import HFGenerator

    params = SamplingParams(n=2, temperature=0.9, max_new_tokens=8, seed=3)
    batched = gen.generate(PROMPTS, params)
    one_row = HFGenerator(gen.model, gen.tokenizer, batch_size=1)
    assert one_row.generate(PROMPTS, params) == batched
    assert gen.generate(PROMPTS[::-1], params) == batched[::-1]
    assert gen.generate([PROMPTS[2]], params) == [batched[2]]


def test_repeated_prompt_gets_fresh_samples(gen) -> None:
    params = SamplingParams(temperature=1.0, max_new_tokens=10, seed=5)
    twice = gen.generate([PROMPTS[0], PROMPTS[0]], params)
    assert twice[0] != twice[1]


def test_stop_string_truncates_and_finishes_with_stop(gen) -> None:
    full = gen.generate(PROMPTS[:1], SamplingParams(max_new_tokens=24))[0][0]
    stop = _ascii_stop(full.text)
    cut = gen.generate(PROMPTS[:1], SamplingParams(max_new_tokens=24, stop=(stop,)))[0][0]
    assert cut.text == full.text[: full.text.find(stop)]
    assert cut.finish_reason == "stop"
    assert 0 < cut.num_tokens < full.num_tokens


def test_stop_in_one_row_leaves_the_others_running(gen) -> None:
    fulls = [c[0] for c in gen.generate(PROMPTS, SamplingParams(max_new_tokens=16))]
    stop = _ascii_stop(fulls[0].text)
    cuts = [c[0] for c in gen.generate(PROMPTS, SamplingParams(max_new_tokens=16, stop=(stop,)))]
    for full, cut in zip(fulls, cuts):
        assert cut.text == full.text.split(stop)[0]
        assert cut.finish_reason == ("stop" if stop in full.text else "length")


def test_max_new_tokens_finishes_with_length(gen) -> None:
    (c,) = gen.generate(PROMPTS[:1], SamplingParams(max_new_tokens=5))[0]
    assert c.finish_reason == "length" and c.num_tokens == 5


def test_eos_finishes_with_stop_and_counts_the_eos(tiny_model: str, gen) -> None:
    """Declare the third greedy token an EOS: the row ends there, text without it, finish "stop"."""
    import torch

    from execrl.generation.hf import HFGenerator

    ids = gen.encode(PROMPTS[0])
    out = gen.model.generate(input_ids=torch.tensor([ids]), max_new_tokens=3, do_sample=False, pad_token_id=1)
    third = int(out[0, -1])
    fake = HFGenerator(gen.model, gen.tokenizer)
    fake.eos_ids = {third}
    (c,) = fake.generate(PROMPTS[:1], SamplingParams(max_new_tokens=10))[0]
    new = [int(t) for t in out[0, len(ids) :]]
    assert c.finish_reason == "stop"
    assert c.num_tokens == new.index(third) + 1
    assert c.text == gen.tokenizer.decode(new[: new.index(third)], skip_special_tokens=True)


def test_generate_restores_train_mode(gen) -> None:
    gen.model.train()
    try:
        gen.generate(PROMPTS[:1], SamplingParams(max_new_tokens=2))
        assert gen.model.training
    finally:
        gen.model.eval()


def test_chat_prompts_use_the_chat_template(gen) -> None:
    messages = [{"role": "user", "content": "Write add."}]
    assert gen.render(messages) == "<|user|>\nWrite add.\n<|assistant|>\n"
    chat = gen.generate([messages], SamplingParams(max_new_tokens=6))
    as_text = gen.generate(["<|user|>\nWrite add.\n<|assistant|>\n"], SamplingParams(max_new_tokens=6))
    assert chat == as_text and chat[0][0].num_tokens == 6


def test_chat_without_template_is_a_clear_error(gen) -> None:
    from transformers import AutoTokenizer

    from execrl.generation.hf import HFGenerator

    tokenizer = AutoTokenizer.from_pretrained(gen.name)
    tokenizer.chat_template = None
    bare = HFGenerator(gen.model, tokenizer)
    with pytest.raises(GenerationError, match="no chat template"):
        bare.generate([[{"role": "user", "content": "hi"}]], SamplingParams(max_new_tokens=2))


def test_mixed_length_batch_matches_one_by_one(gen) -> None:
    params = SamplingParams(max_new_tokens=12)
    batched = gen.generate(PROMPTS, params)
    assert batched == [gen.generate([p], params)[0] for p in PROMPTS]


def test_pad_token_defaults_to_eos(tiny_model: str, gen) -> None:
    from transformers import AutoTokenizer

    from execrl.generation.hf import HFGenerator

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.pad_token = None
    g = HFGenerator(gen.model, tokenizer)
    assert g.tokenizer.pad_token_id == g.tokenizer.eos_token_id
    assert g.generate(PROMPTS, SamplingParams(max_new_tokens=6)) == gen.generate(
        PROMPTS, SamplingParams(max_new_tokens=6)
    )


def test_directory_without_config_is_named_in_the_error(tmp_path: Path) -> None:
    from execrl.generation.hf import HFGenerator

    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(GenerationError, match=f"{tmp_path}.*no config.json"):
        HFGenerator(str(tmp_path))


def test_directory_without_weights_is_named_in_the_error(tmp_path: Path) -> None:
    from execrl.generation.hf import HFGenerator

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(GenerationError, match=f"{tmp_path}.*no weights"):
        HFGenerator(str(tmp_path))


def test_missing_path_is_named_in_the_error(tmp_path: Path) -> None:
    from execrl.generation.hf import HFGenerator

    with pytest.raises(GenerationError, match="does not exist"):
        HFGenerator(str(tmp_path / "nowhere"))


def test_vllm_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from execrl.generation.vllm import VLLMGenerator

    real_import = builtins.__import__

    def no_vllm(name: str, *args, **kwargs):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("No module named 'vllm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(GenerationError, match=r"vLLM is not installed: pip install 'execrl\[vllm\]'"):
        VLLMGenerator("some-model")
