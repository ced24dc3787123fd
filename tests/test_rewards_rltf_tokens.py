"""RLTF's line penalties on real tokenizers and through `RLTFReward` (TRL signature, raw outputs).

The line → token rule: a token is charged to a line when its character span shares at least one
character with the line's span (the line without its line break, indentation included). Spans of
sampled ids come from `token_offsets` (decoding); a tokenizer's own offset mapping may trim
whitespace (GPT-2's ByteLevel post-processor does), which changes which straddling tokens count.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from execrl.data import builtin, humaneval  # noqa: E402
from execrl.embedded import build_tokenizer  # noqa: E402
from execrl.rewards.rltf import (  # noqa: E402
    PENALTY,
    Penalty,
    RLTFReward,
    line_span,
    rollout_token_rewards,
    token_offsets,
    token_rewards,
)

TEXT = "def f(xs):\n    total = 0\n    for x in xs:\n        total += x / 0  # é\n    return total\n"
LINE = 4  # the line a ZeroDivisionError is reported at


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    problems = [p for p in builtin.generate(seed=0, size=200).values() if p.split == "train"]
    return [e["prompt"] + e["response"] for e in builtin.sft_examples(problems)]


@pytest.fixture(scope="module")
def embedded(corpus: list[str]) -> Any:
    return build_tokenizer(corpus, 1024)


@pytest.fixture(scope="module")
def gpt2_style(corpus: list[str]) -> Any:
    """A GPT-2-shaped tokenizer trained here: byte-level BPE whose post-processor trims offsets."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")


def charged(offsets: list[tuple[int, int]], line: int = LINE) -> list[int]:
    start, end = line_span(TEXT, line)
    mask = torch.ones(1, len(offsets), dtype=torch.long)
    out = token_rewards([Penalty("line", "runtime error", line, start, end, PENALTY)], [offsets], mask)
    return [t for t in range(len(offsets)) if out[0, t] != 0]


@pytest.mark.parametrize("name", ["embedded", "gpt2_style"])
def test_token_offsets_are_the_untrimmed_spans_of_each_token(name, request):
    """Each token covers exactly the text it decodes to; the two byte tokens of "é" both cover
    it; EOS covers nothing."""
    tok = request.getfixturevalue(name)
    ids = tok(TEXT, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    spans = token_offsets(tok, ids)
    e = TEXT.index("é")
    for i, (a, b) in zip(ids[:-1], spans):
        piece = tok.decode([i])
        assert TEXT[a:b] == piece or ("\ufffd" in piece and (a, b) == (e, e + 1)), (piece, a, b)
    assert sum((a, b) == (e, e + 1) for a, b in spans) == 2
    assert spans[0][0] == 0 and spans[-2][1] == len(TEXT) and spans[-1] == (len(TEXT), len(TEXT))


def test_token_offsets_equal_the_embedded_tokenizers_own_mapping(embedded):
    enc = embedded(TEXT, return_offsets_mapping=True, add_special_tokens=False)
    assert token_offsets(embedded, enc["input_ids"]) == [tuple(o) for o in enc["offset_mapping"]]


def test_embedded_tokenizer_charges_the_line_and_the_token_that_indents_it(embedded):
    ids = embedded(TEXT, add_special_tokens=False)["input_ids"]
    spans = token_offsets(embedded, ids)
    start, end = line_span(TEXT, LINE)
    hit = charged(spans)
    assert hit == list(range(hit[0], hit[-1] + 1))  # one run of tokens
    first, last = spans[hit[0]], spans[hit[-1]]
    assert first[0] < start and TEXT[first[0]] == "\n"  # "\n" + indentation straddles the break
    assert last[1] >= end  # the line's last character ("é", two byte tokens) is covered
    after = spans[hit[-1] + 1]
    assert after[0] == end and TEXT[after[0] : after[1]].startswith("\n")  # indents line 5: not ours
    # the tokenizer's own mapping (no trimming here) charges the same tokens
    mapping = [
        tuple(o)
        for o in embedded(TEXT, return_offsets_mapping=True, add_special_tokens=False)["offset_mapping"]
    ]
    assert charged(mapping) == hit


def test_trimmed_offsets_leave_the_straddling_token_out(gpt2_style):
    """GPT-2's post-processor trims "\\n       " to its "\\n" and a lone " " to nothing: with the
    offset mapping, whitespace-only tokens, among them the one that writes the line's
    indentation, are not charged; with `token_offsets` they are."""
    enc = gpt2_style(TEXT, return_offsets_mapping=True, add_special_tokens=False)
    mapping = [tuple(o) for o in enc["offset_mapping"]]
    decoded = token_offsets(gpt2_style, enc["input_ids"])
    assert set(charged(mapping)) < set(charged(decoded))
    extra = [TEXT[slice(*decoded[t])] for t in sorted(set(charged(decoded)) - set(charged(mapping)))]
    assert all(piece.strip() == "" for piece in extra)
    assert extra[0].startswith("\n") and len(extra[0]) > 1


def test_rollout_token_rewards_on_padded_sampled_ids(embedded):
    """Row 0: TEXT + EOS with a line-4 penalty; row 1: a shorter row, padded, with a global one;
    row 2: a sandbox error. Row 0 matches token_rewards on token_offsets; padding is never charged."""
    row0 = embedded(TEXT, add_special_tokens=False)["input_ids"] + [embedded.eos_token_id]
    row1 = embedded("    return 1\n", add_special_tokens=False)["input_ids"]
    T = len(row0)
    pad = embedded.pad_token_id
    ids = torch.tensor([row0, row1 + [pad] * (T - len(row1)), [pad] * T])
    mask = torch.tensor([[1] * T, [1] * len(row1) + [0] * (T - len(row1)), [1] + [0] * (T - 1)])
    line = Penalty("line", "runtime error", LINE, *line_span(TEXT, LINE), PENALTY)
    out = rollout_token_rewards(
        embedded, ids, mask, [line, Penalty("global", "timeout", value=PENALTY), None]
    )
    expected0 = token_rewards([line], [token_offsets(embedded, row0)], mask[:1])[0]
    assert torch.equal(out[0], expected0) and expected0[-1] == 0  # EOS writes no character of line 4
    assert torch.equal(out[1], -PENALTY * mask[1].float())
    assert torch.equal(out[2], torch.zeros(T))


# ---------------------------------------------------------------------------------------------
# RLTFReward: TRL's signature, penalties located in the raw output.

HE = humaneval.load()["HumanEval/2"]  # truncate_number(number) -> number % 1.0


@pytest.fixture
def reward(executor: Any) -> RLTFReward:
    return RLTFReward("humaneval", problems={HE.task_id: HE}, executor=executor)


def test_trl_signature_returns_the_adaptive_scalar(reward):
    out = reward(
        prompts=[HE.prompt] * 3,
        completions=["    return number % 1.0\n", "    return 0.5\n", "    return int(number\n"],
        completion_ids=[[1], [2], [3]],
        task_id=[HE.task_id] * 3,
    )
    assert out == [1.0, pytest.approx(-0.3 + 1.3 / 3), -1.0]
    assert reward.__name__ == "rltf_adaptive"


def test_a_cut_completion_keeps_its_offsets(reward):
    raw = "    x = [1]\n    return x[5]\n\ndef unused():\n    pass\n"  # cut at "\ndef"
    [s] = reward.score([HE.task_id], [raw])
    assert s.penalty is not None and s.penalty.scope == "line" and s.penalty.line == 2
    assert raw[s.penalty.start : s.penalty.end] == "    return x[5]"


def test_a_chat_reply_is_charged_in_the_raw_text(executor):
    chat = RLTFReward("humaneval", problems={HE.task_id: HE}, executor=executor, chat=True, kind="coarse")
    raw = (
        "Here is the function:\n\n"
        "```python\n"
        "def truncate_number(number: float) -> float:\n"
        "    parts = str(number).split('.')\n"
        "    return float('0.' + parts[2])\n"
        "```\n"
        "It splits the number at the point.\n"
    )
    [s] = chat.score([HE.task_id], [raw])
    assert s.reward == -0.6 and s.result.error is not None and s.result.error.type == "IndexError"
    assert s.penalty is not None and s.penalty.scope == "line"
    assert raw[s.penalty.start : s.penalty.end] == "    return float('0.' + parts[2])"
    assert s.penalty.line == 6 and raw.splitlines()[5] == "    return float('0.' + parts[2])"


def test_rltf_reward_is_a_token_reward_stage_for_the_trainer(executor, embedded):
    """`RLTFReward(tokenizer=...)` plugs into trainers/rewarding.py: its `token_rewards` charges
    the sampled tokens of the blamed line, and `rewarding.token_rewards` keeps them under the mask."""
    from execrl.trainers.rewarding import TokenRewards
    from execrl.trainers.rewarding import token_rewards as stage_token_rewards
    from execrl.trainers.rollout import Rollout

    reward = RLTFReward("humaneval", problems={HE.task_id: HE}, executor=executor, tokenizer=embedded)
    assert isinstance(reward, TokenRewards) and reward.execution.problems == {HE.task_id: HE}
    texts = ["    x = [1]\n    return x[5]\n", "    return number % 1.0\n"]
    ids = [embedded(t, add_special_tokens=False)["input_ids"] + [embedded.eos_token_id] for t in texts]
    rollout = Rollout.from_ids([[0], [0]], ids, embedded.pad_token_id, texts)
    scored = reward.score([HE.task_id] * 2, rollout.texts)
    assert [s.reward for s in scored] == [-0.6, 1.0]
    dense = stage_token_rewards(reward, scored, rollout, rollout.completion_mask.float())  # as rl.py
    spans = token_offsets(embedded, ids[0])
    start, end = line_span(texts[0], 2)
    blamed = [t for t, (a, z) in enumerate(spans) if a < end and start < z]
    assert blamed and [t for t in range(dense.shape[1]) if dense[0, t] != 0] == blamed
    assert not dense[1].any()
