"""`execrl serve` chat completions with `logprobs`/`top_logprobs`, checked against the model itself."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import math
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import torch

from tinymodel import make_tiny_model

CHAT = [{"role": "user", "content": "Is this code right? Answer yes or no."}]


@pytest.fixture(scope="module")
def hf(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from execrl.generation.hf import HFGenerator

    return HFGenerator(make_tiny_model(tmp_path_factory.mktemp("tiny-logprobs")), batch_size=8)


@pytest.fixture(scope="module")
def server(hf: Any) -> Iterator[str]:
    from execrl.generation.server import make_server

    srv = make_server(hf, "127.0.0.1", 0, model_name="tiny")
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv.url
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def post(server: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server}/chat/completions", json={"messages": CHAT, **body}, timeout=60)


def test_top_logprobs_are_the_models_next_token_distribution(server: str, hf: Any) -> None:
    """The first position's top-5 alternatives are the 5 largest entries of log_softmax of the
    model's logits after the rendered prompt (whatever the sampled token re-tokenizes to: the
    tiny model writes partial UTF-8 bytes, which the completion's text cannot carry)."""
    r = post(server, {"max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": 5})
    assert r.status_code == 200, r.text
    first = r.json()["choices"][0]["logprobs"]["content"][0]
    ids = hf.encode(CHAT)
    with torch.no_grad():
        logp = torch.log_softmax(hf.model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)
    values, indices = logp.topk(5)
    assert [t["token"] for t in first["top_logprobs"]] == [hf.tokenizer.decode([int(i)]) for i in indices]
    assert all(
        math.isclose(t["logprob"], float(v), abs_tol=1e-5) for t, v in zip(first["top_logprobs"], values)
    )
    assert first["bytes"] == list(first["token"].encode()) and first["logprob"] <= 0


def test_every_generated_token_has_an_entry(server: str) -> None:
    r = post(server, {"max_tokens": 4, "temperature": 0, "logprobs": True, "n": 2})
    for choice in r.json()["choices"]:
        content = choice["logprobs"]["content"]
        assert content and all(t["top_logprobs"] == [] and t["logprob"] <= 0 for t in content)


def test_without_logprobs_the_field_is_null(server: str) -> None:
    assert post(server, {"max_tokens": 1}).json()["choices"][0]["logprobs"] is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"top_logprobs": 3}, "top_logprobs needs logprobs: true"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs must be in [0, 20]"),
        ({"logprobs": "yes"}, "logprobs must be a boolean"),
    ],
)
def test_bad_logprobs_requests_are_400(server: str, body: dict[str, Any], message: str) -> None:
    r = post(server, {"max_tokens": 1, **body})
    assert r.status_code == 400 and message in r.json()["error"]["message"]


def test_completions_route_still_refuses_logprobs(server: str) -> None:
    r = httpx.post(f"{server}/completions", json={"prompt": "x", "logprobs": 2}, timeout=30)
    assert r.status_code == 400 and "logprobs" in r.json()["error"]["message"]
