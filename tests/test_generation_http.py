"""`execrl serve` and `OpenAIGenerator`, on loopback only.

The real server serves the tiny model (tests/tinymodel.py), and its answers are compared with
`HFGenerator`'s. Client failure handling runs against `Stub`, a stdlib server that answers from a
script and records what it was sent.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from execrl.generation import Completion, GenerationError, SamplingParams
from execrl.generation.openai import OpenAIGenerator
from tinymodel import make_tiny_model

PROMPTS = ["def add(x, y):", "print(", "    return [x, y]\ndef fib(n):"]
CHAT = [{"role": "user", "content": "Write fib."}]

Reply = tuple[int, dict[str, str], Any]
"""(status, headers, JSON payload) that a stub sends back."""


def completion_payload(texts: list[str], finish: str = "stop") -> dict[str, Any]:
    choices = [{"index": i, "text": t, "finish_reason": finish} for i, t in enumerate(texts)]
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "choices": choices,
        "usage": {"completion_tokens": 3},
    }


class Stub:
    """A loopback server answering POSTs with `reply(index, body)`; records requests and peak concurrency."""

    def __init__(self, reply: Callable[[int, dict[str, Any]], Reply]) -> None:
        self.reply = reply
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.active = self.peak = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    index = len(stub.requests)
                    stub.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    stub.active += 1
                    stub.peak = max(stub.peak, stub.active)
                try:
                    status, headers, payload = stub.reply(index, body)
                finally:
                    with stub.lock:
                        stub.active -= 1
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def stub() -> Iterator[Callable[[Callable[[int, dict[str, Any]], Reply]], Stub]]:
    started: list[Stub] = []

    def start(reply: Callable[[int, dict[str, Any]], Reply]) -> Stub:
        started.append(Stub(reply))
        return started[-1]

    yield start
    for s in started:
        s.close()


@pytest.fixture(scope="module")
def hf(tmp_path_factory: pytest.TempPathFactory):
    from execrl.generation.hf import HFGenerator

    return HFGenerator(make_tiny_model(tmp_path_factory.mktemp("tiny-http")), batch_size=8)


@pytest.fixture(scope="module")
def server(hf) -> Iterator[str]:
    from execrl.generation.server import make_server

    srv = make_server(hf, "127.0.0.1", 0, model_name="tiny")
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv.url
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture
def client(server: str) -> Iterator[OpenAIGenerator]:
    with OpenAIGenerator(server, "tiny", max_retries=0, timeout=30) as c:
        yield c


def texts(results: list[list[Completion]]) -> list[list[tuple[str, str]]]:
    return [[(c.text, c.finish_reason) for c in cs] for cs in results]


# --- the server, through the client -------------------------------------------------------------


def test_completions_with_n_match_the_model(client: OpenAIGenerator, hf) -> None:
    params = SamplingParams(n=3, temperature=0.8, max_new_tokens=8, seed=11)
    got = client.generate(PROMPTS, params)
    assert texts(got) == texts(hf.generate(PROMPTS, params))
    assert [len(cs) for cs in got] == [3, 3, 3]


def test_single_choice_reports_its_token_count(client: OpenAIGenerator) -> None:
    (c,) = client.complete(PROMPTS[0], SamplingParams(max_new_tokens=5))
    assert c.num_tokens == 5 and c.finish_reason == "length"


def test_chat_completions_match_the_model(client: OpenAIGenerator, hf) -> None:
    params = SamplingParams(n=2, max_new_tokens=6)
    assert texts([client.chat(CHAT, params)]) == texts(hf.generate([CHAT], params))


def test_stop_strings_reach_the_server(client: OpenAIGenerator, hf) -> None:
    full = hf.generate(PROMPTS[:1], SamplingParams(max_new_tokens=24))[0][0].text
    stop = next(
        full[i : i + 2] for i in range(3, len(full)) if full[i : i + 2].isascii() and full[i].isalnum()
    )
    (c,) = client.complete(PROMPTS[0], SamplingParams(max_new_tokens=24, stop=(stop,)))
    assert (c.text, c.finish_reason) == (full[: full.find(stop)], "stop")


def test_models_route_lists_the_model(server: str) -> None:
    data = httpx.get(f"{server}/models").json()
    assert data["object"] == "list" and data["data"][0]["id"] == "tiny"


def test_response_has_openai_shape(server: str) -> None:
    r = httpx.post(
        f"{server}/chat/completions", json={"messages": CHAT, "max_tokens": 3, "n": 2, "stop": "zz"}
    )
    data = r.json()
    assert r.status_code == 200 and data["object"] == "chat.completion" and data["model"] == "tiny"
    assert [c["index"] for c in data["choices"]] == [0, 1]
    assert data["choices"][0]["message"]["role"] == "assistant"
    assert (
        data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("completions", {"max_tokens": 2}, "prompt"),
        ("completions", {"prompt": "x", "temperature": -1}, "temperature"),
        ("completions", {"prompt": "x", "n": "2"}, "n"),
        ("completions", {"prompt": [1, 2]}, "prompt"),
        ("completions", {"prompt": "x", "stop": 3}, "stop"),
        ("chat/completions", {"messages": [{"content": "hi"}]}, "messages[0]"),
        ("chat/completions", {"messages": CHAT, "stream": True}, "stream"),
    ],
)
def test_bad_request_is_400_naming_the_field(server: str, route: str, body: dict, field: str) -> None:
    r = httpx.post(f"{server}/{route}", json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and field in error["message"]


def test_invalid_json_and_unknown_route(server: str) -> None:
    assert httpx.post(f"{server}/completions", content=b"{not json").status_code == 400
    assert httpx.post(f"{server}/embeddings", json={}).status_code == 404
    assert httpx.get(f"{server.removesuffix('/v1')}/nothing").status_code == 404


def test_client_surfaces_the_servers_400_message(client: OpenAIGenerator) -> None:
    with pytest.raises(GenerationError, match="400: top_k must be >= -1"):
        client.complete("x", SamplingParams(top_k=-5, max_new_tokens=2))


def test_serve_main_rejects_a_non_model_directory(tmp_path) -> None:
    from execrl.generation.server import main

    assert main(["--model", str(tmp_path), "--port", "0"]) == 2


# --- the client against scripted servers --------------------------------------------------------


def test_retries_429_and_503_then_succeeds(stub) -> None:
    script: list[Reply] = [
        (429, {"Retry-After": "0"}, {"error": {"message": "slow down"}}),
        (503, {}, {"error": {"message": "overloaded"}}),
        (200, {}, completion_payload(["ok"])),
    ]
    s = stub(lambda i, body: script[i])
    with OpenAIGenerator(s.url, "m", max_retries=3, backoff=0.001) as client:
        assert client.complete("p", SamplingParams()) == [Completion("ok", "stop", 3)]
    assert len(s.requests) == 3


def test_400_is_not_retried(stub) -> None:
    s = stub(lambda i, body: (400, {}, {"error": {"message": "max_tokens is too large"}}))
    with (
        OpenAIGenerator(s.url, "m", max_retries=3, backoff=0.001) as client,
        pytest.raises(GenerationError, match="400: max_tokens is too large"),
    ):
        client.complete("p", SamplingParams())
    assert len(s.requests) == 1


def test_retries_give_up_after_max_retries(stub) -> None:
    s = stub(lambda i, body: (500, {}, {"error": {"message": "boom"}}))
    with (
        OpenAIGenerator(s.url, "m", max_retries=2, backoff=0.001) as client,
        pytest.raises(GenerationError, match="500 after 3 attempts: boom"),
    ):
        client.complete("p", SamplingParams())
    assert len(s.requests) == 3


def test_unreachable_api_fails_quickly() -> None:
    with socket.socket() as sock:  # a port that nothing listens on once this socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}/v1"
    with (
        OpenAIGenerator(base, "m", max_retries=1, backoff=0.001, timeout=2) as client,
        pytest.raises(GenerationError, match=f"cannot reach {base}"),
    ):
        client.complete("p", SamplingParams())


def test_timeout_is_per_request(stub) -> None:
    s = stub(lambda i, body: (time.sleep(1.0), (200, {}, completion_payload(["late"])))[1])
    with (
        OpenAIGenerator(s.url, "m", max_retries=0, timeout=0.1) as client,
        pytest.raises(GenerationError, match="cannot reach .*Timeout"),
    ):
        client.complete("p", SamplingParams())


def test_api_key_is_sent_as_bearer_and_kept_out_of_errors(stub, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-0123456789"
    monkeypatch.setenv("EXECRL_TEST_KEY", secret)
    s = stub(
        lambda i, body: (401, {}, {"error": {"message": f"bad key {s.requests[i][0]['authorization']}"}})
    )
    with (
        OpenAIGenerator(s.url, "m", api_key_env="EXECRL_TEST_KEY", max_retries=0) as client,
        pytest.raises(GenerationError) as err,
    ):
        client.complete("p", SamplingParams())
    assert s.requests[0][0]["authorization"] == f"Bearer {secret}"
    assert "bad key" in str(err.value) and secret not in str(err.value)


def test_missing_api_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXECRL_NO_SUCH_KEY", raising=False)
    with pytest.raises(GenerationError, match="EXECRL_NO_SUCH_KEY"):
        OpenAIGenerator("http://127.0.0.1:9/v1", "m", api_key_env="EXECRL_NO_SUCH_KEY")


def test_concurrency_is_bounded_and_order_kept(stub) -> None:
    def reply(i: int, body: dict[str, Any]) -> Reply:
        time.sleep(0.05)
        return 200, {}, completion_payload([body["prompt"].upper()])

    s = stub(reply)
    prompts = [f"p{i}" for i in range(6)]
    with OpenAIGenerator(s.url, "m", concurrency=2) as client:
        got = client.generate(prompts, SamplingParams())
    assert [cs[0].text for cs in got] == [p.upper() for p in prompts]
    assert len(s.requests) == 6 and 1 <= s.peak <= 2


def test_request_body_and_client_side_stop(stub) -> None:
    s = stub(lambda i, body: (200, {}, completion_payload(["abc STOP def", "xyz"], finish="length")))
    params = SamplingParams(
        n=2, temperature=0.5, top_k=4, max_new_tokens=9, stop=tuple("ABCDE") + ("STOP",), seed=1
    )
    with OpenAIGenerator(s.url, "m") as client:
        got = client.complete("p", params)
    assert [(c.text, c.finish_reason) for c in got] == [("abc ", "stop"), ("xyz", "length")]
    body = s.requests[0][1]
    assert body == {
        "model": "m",
        "prompt": "p",
        "n": 2,
        "max_tokens": 9,
        "temperature": 0.5,
        "top_p": 1.0,
        "stop": ["A", "B", "C", "D"],
        "seed": 1,
        "top_k": 4,
    }


def test_fewer_choices_than_n_are_asked_for_again(stub) -> None:
    s = stub(lambda i, body: (200, {}, completion_payload([f"s{body['seed']}"])))
    with OpenAIGenerator(s.url, "m") as client:
        got = client.complete("p", SamplingParams(n=3, temperature=1.0, seed=10))
    assert [c.text for c in got] == ["s10", "s11", "s12"]
    assert [body["n"] for _, body in s.requests] == [3, 2, 1]


def test_chat_body_goes_to_chat_route(stub) -> None:
    seen: list[str] = []

    def reply(i: int, body: dict[str, Any]) -> Reply:
        seen.append(json.dumps(body["messages"]))
        return 200, {}, {"choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}]}

    s = stub(reply)
    with OpenAIGenerator(s.url, "m") as client:
        assert client.chat(CHAT, SamplingParams())[0].text == "hi"
    assert seen == [json.dumps(CHAT)]
