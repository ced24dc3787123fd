"""Rollouts on a tiny real Llama: the fast sampler against the model's own forward and `generate`."""

from __future__ import annotations

import pytest
import torch

from execrl.trainers import rollout as ro
from execrl.trainers.rollout import SampleParams, sample, score
from tinymodel import make_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


PROMPTS = ["def add(x0, y0):\n", "print(fib(3", "def total(x1, y1):\n    if x1 < y1:\n        return"]


def encode(tok, texts):
    return [tok(t)["input_ids"] for t in texts]


def test_fast_greedy_equals_generate_greedy(tiny, monkeypatch):
    model, tok = tiny
    params = SampleParams(temperature=0, max_new_tokens=12)
    fast = sample(model, tok, encode(tok, PROMPTS), params)
    monkeypatch.setattr(ro, "_fast_path", lambda m: False)
    slow = sample(model, tok, encode(tok, PROMPTS), params)
    assert fast.completion_ids.tolist() == slow.completion_ids.tolist()
    assert fast.texts == slow.texts


def test_rows_do_not_depend_on_their_batch_mates(tiny):
    """Left padding and dropping finished rows must not change a row's greedy tokens."""
    model, tok = tiny
    params = SampleParams(temperature=0, max_new_tokens=10)
    together = sample(model, tok, encode(tok, PROMPTS), params)
    for i, p in enumerate(PROMPTS):
        alone = sample(model, tok, encode(tok, [p]), params)
        assert alone.texts[0] == together.texts[i]


def test_score_matches_unpadded_forward(tiny):
    model, tok = tiny
    r = sample(
        model,
        tok,
        encode(tok, PROMPTS),
        SampleParams(temperature=1.0, max_new_tokens=8),
        torch.Generator().manual_seed(1),
    )
    with torch.no_grad():
        logp, ent, hidden = score(model, r, entropy=True, hidden=True)
        for b in range(len(r)):
            p = r.prompt_ids[b][r.prompt_mask[b].bool()]
            c = r.completion_ids[b][r.completion_mask[b].bool()]
            full = model(input_ids=torch.cat([p, c])[None]).logits[0].log_softmax(-1)
            want = full[len(p) - 1 : len(p) + len(c) - 1].gather(-1, c[:, None]).squeeze(-1)
            torch.testing.assert_close(logp[b, : len(c)], want, atol=1e-4, rtol=1e-4)
    assert ent is not None and hidden is not None and hidden.shape[:2] == logp.shape


def test_temperature_scores_the_tempered_policy(tiny):
    model, tok = tiny
    r = sample(
        model,
        tok,
        encode(tok, PROMPTS[:1]),
        SampleParams(temperature=0.5, max_new_tokens=6),
        torch.Generator().manual_seed(0),
    )
    with torch.no_grad():
        hot, _, _ = score(model, r, temperature=0.5)
        plain, _, _ = score(model, r)
    assert not torch.allclose(hot, plain)
    assert (hot <= 0).all()


def test_same_generator_seed_same_samples(tiny):
    model, tok = tiny
    params = SampleParams(temperature=1.0, max_new_tokens=10)
    a = sample(model, tok, encode(tok, PROMPTS * 3), params, torch.Generator().manual_seed(7))
    b = sample(model, tok, encode(tok, PROMPTS * 3), params, torch.Generator().manual_seed(7))
    c = sample(model, tok, encode(tok, PROMPTS * 3), params, torch.Generator().manual_seed(8))
    assert a.completion_ids.tolist() == b.completion_ids.tolist()
    assert a.completion_ids.tolist() != c.completion_ids.tolist()


def test_masks_mark_exactly_the_sampled_tokens(tiny):
    model, tok = tiny
    r = sample(
        model,
        tok,
        encode(tok, PROMPTS * 2),
        SampleParams(temperature=1.0, max_new_tokens=9),
        torch.Generator().manual_seed(3),
    )
    pad = tok.pad_token_id
    for b in range(len(r)):
        n = int(r.completion_mask[b].sum())
        assert 1 <= n <= 9
        assert (r.completion_ids[b, n:] == pad).all()
        assert r.finish[b] == (
            "length" if n == 9 and int(r.completion_ids[b, n - 1]) != tok.eos_token_id else "stop"
        )
        assert int(r.prompt_mask[b].sum()) == len(tok(PROMPTS[b % 3])["input_ids"])


def test_stop_string_ends_the_row_at_the_token_that_completes_it(tiny):
    model, tok = tiny
    free = sample(model, tok, encode(tok, PROMPTS), SampleParams(temperature=0, max_new_tokens=40))
    # a stop string taken from the middle of a free-running completion
    text = next(t for t in free.texts if len(t) > 12)
    stop = text[5:9]
    r = sample(model, tok, encode(tok, PROMPTS), SampleParams(temperature=0, max_new_tokens=40, stop=(stop,)))
    for b in range(len(r)):
        ids = r.completion_ids[b][r.completion_mask[b].bool()].tolist()
        decoded = tok.decode(ids, skip_special_tokens=True)
        if stop in free.texts[b]:
            assert r.finish[b] == "stop"
            assert stop in decoded and stop not in tok.decode(ids[:-1], skip_special_tokens=True)
            assert r.texts[b] == free.texts[b][: free.texts[b].index(stop)]
        assert stop not in r.texts[b]


def test_sampler_never_draws_a_zero_probability_token():
    logits = torch.full((4000, 5), float("-inf"))
    logits[:, 1] = 0.0
    logits[:, 3] = 0.0
    drawn = ro._pick(logits, SampleParams(temperature=1.0), torch.Generator().manual_seed(0))
    assert set(drawn.tolist()) == {1, 3}
    assert abs((drawn == 1).float().mean().item() - 0.5) < 0.05


def test_top_p_keeps_the_nucleus_only():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(3000, 1)
    drawn = ro._pick(logits, SampleParams(temperature=1.0, top_p=0.75), torch.Generator().manual_seed(0))
    assert set(drawn.tolist()) == {0, 1}  # 0.5 + 0.3 >= 0.75: the nucleus is the first two


def test_progress_counts_every_sample_once(tiny):
    model, tok = tiny
    counted: list[int] = []
    params = SampleParams(temperature=0, max_new_tokens=4)
    sample(model, tok, encode(tok, PROMPTS * 3), params, batch_size=4, progress=counted.append)
    assert counted == [4, 4, 1]
