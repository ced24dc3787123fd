"""`execrl serve`: an OpenAI-compatible HTTP server for a local Hugging Face model, on the standard library.

Routes: `GET /v1/models`, `POST /v1/completions` (`prompt`: a string or a list of strings) and
`POST /v1/chat/completions` (`messages`), with `n`, `max_tokens`, `temperature`, `top_p`, `top_k`,
`stop` (a string or a list) and `seed`. Answers have OpenAI's JSON shape; errors are
`{"error": {"message": ..., "type": ...}}` with 400 for a bad request (the message names the field),
404 for an unknown route, 405 for a wrong method, 413 for a body over `MAX_BODY` bytes.

Chat completions take `logprobs: true` and `top_logprobs` (0-20) and answer OpenAI's
`choices[i].logprobs.content`: per generated token its text, bytes, log-probability and the
`top_logprobs` most likely tokens at that position. They are computed after generation by one
forward pass over prompt + completion, with the completion's text tokenized again (which may split
it differently from how it was sampled: a token that is not valid UTF-8 on its own, which the
text cannot carry, comes back as other tokens) and under the model's own distribution (temperature 1, no
top-p/top-k), as OpenAI reports them. A completion that ended at once (EOS first) reports the EOS
token, so the first position's alternatives are always there (an LLM judge reads P(yes) from them).

Scope and limits: meant for local use (tests, evaluation, a teacher model on the same machine), not
for the open internet: no authentication, no streaming (`stream: true` is refused), no logprobs on
`/v1/completions`, no token-id prompts. Requests are served one at a time by the model (one lock around it; a request's
prompts and samples are batched together). Defaults follow OpenAI: `temperature` 1, `top_p` 1,
`max_tokens` 16 for completions; chat has no limit in OpenAI's API, here it is 512.
`usage.prompt_tokens` counts each prompt once, whatever `n`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from execrl.generation import GenerationError, Message, Prompt, SamplingParams
from execrl.generation.hf import HFGenerator

log = logging.getLogger(__name__)

MAX_BODY = 16 * 2**20
DEFAULT_MAX_TOKENS = {"completions": 16, "chat": 512}


class BadRequest(ValueError):
    """A request field is missing or invalid: answered with 400 and this message."""


def _number(body: dict[str, Any], field: str, default: float, low: float, high: float | None = None) -> float:
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{field} must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        raise BadRequest(f"{field} must be in [{low}, {high if high is not None else 'inf'}], got {value!r}")
    return float(value)


def _integer(body: dict[str, Any], field: str, default: int | None, low: int) -> int | None:
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{field} must be an integer, got {value!r}")
    if value < low:
        raise BadRequest(f"{field} must be >= {low}, got {value!r}")
    return value


def sampling_params(body: dict[str, Any], kind: str) -> SamplingParams:
    """Sampling parameters of an OpenAI request body (`kind`: "completions" or "chat")."""
    refused = ("stream", "echo") if kind == "chat" else ("stream", "logprobs", "echo")
    for field in refused:
        if body.get(field):
            raise BadRequest(f"{field} is not supported by this server")
    stop = body.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    elif not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise BadRequest(f"stop must be a string or a list of strings, got {stop!r}")
    top_p = _number(body, "top_p", 1.0, 0.0, 1.0)
    if top_p == 0:
        raise BadRequest("top_p must be in (0, 1], got 0")
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    top_k = _integer(body, "top_k", 0, -1)  # -1: off, as in vLLM
    return SamplingParams(
        n=_integer(body, "n", 1, 1) or 1,
        temperature=_number(body, "temperature", 1.0, 0.0),
        top_p=top_p,
        top_k=max(top_k or 0, 0),
        max_new_tokens=_integer({"max_tokens": max_tokens}, "max_tokens", DEFAULT_MAX_TOKENS[kind], 1) or 1,
        stop=tuple(stop),
        seed=_integer(body, "seed", None, -(2**63)),
    )


def _prompts(body: dict[str, Any]) -> list[Prompt]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    if prompt is None:
        raise BadRequest("prompt is required")
    raise BadRequest("prompt must be a string or a non-empty list of strings (token ids are not supported)")


def _messages(body: dict[str, Any]) -> list[Message]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(f"messages[{i}] must be an object with a string role")
        content = m.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            if len(parts) != len(content) or not all(isinstance(p, str) for p in parts):
                raise BadRequest(f"messages[{i}].content: only text parts are supported")
            content = "".join(parts)  # type: ignore[arg-type]
        if not isinstance(content, str):
            raise BadRequest(f"messages[{i}].content must be a string")
        out.append({"role": m["role"], "content": content})
    return out


MAX_TOP_LOGPROBS = 20


def _top_logprobs(body: dict[str, Any]) -> int | None:
    """None when the request asks for no log-probabilities, else how many alternatives per token."""
    wanted = body.get("logprobs")
    if wanted is not None and not isinstance(wanted, bool):
        raise BadRequest(f"logprobs must be a boolean, got {wanted!r}")
    top = _integer(body, "top_logprobs", None, 0)
    if top is not None and top > MAX_TOP_LOGPROBS:
        raise BadRequest(f"top_logprobs must be in [0, {MAX_TOP_LOGPROBS}], got {top}")
    if not wanted:
        if top:
            raise BadRequest("top_logprobs needs logprobs: true")
        return None
    return top or 0


def token_logprobs(generator: HFGenerator, prompt: Prompt, text: str, top: int) -> list[dict[str, Any]]:
    """OpenAI's `logprobs.content` for `text` generated after `prompt` (see the module docstring)."""
    import torch

    tokenizer = generator.tokenizer
    prompt_ids = generator.encode(prompt)
    ids = list(tokenizer(text, add_special_tokens=False).input_ids) if text else []
    if not ids and generator.eos_ids:
        ids = [min(generator.eos_ids)]
    if not ids or not prompt_ids:
        return []
    x = torch.tensor([prompt_ids + ids], device=generator.device)
    with torch.no_grad():
        logits = generator.model(x).logits[0, len(prompt_ids) - 1 : -1].float()  # (T, V)
    logp = torch.log_softmax(logits, dim=-1)

    def entry(token_id: int, value: float) -> dict[str, Any]:
        token = str(tokenizer.decode([token_id]))
        return {"token": token, "logprob": value, "bytes": list(token.encode("utf-8"))}

    out = []
    for t, token_id in enumerate(ids):
        item = entry(token_id, float(logp[t, token_id]))
        item["top_logprobs"] = []
        if top:
            values, indices = logp[t].topk(min(top, logp.shape[-1]))
            item["top_logprobs"] = [
                entry(int(k), float(v)) for v, k in zip(values.tolist(), indices.tolist())
            ]
        out.append(item)
    return out


class OpenAIServer(ThreadingHTTPServer):
    """Serves one `HFGenerator` under `model_name`; `lock` keeps the model to one request at a time."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], generator: HFGenerator, model_name: str) -> None:
        super().__init__(address, _Handler)
        self.generator = generator
        self.model_name = model_name
        self.lock = threading.Lock()
        self.created = int(time.time())

    @property
    def url(self) -> str:
        """The API base, e.g. http://127.0.0.1:8000/v1."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def complete(self, body: dict[str, Any], kind: str) -> dict[str, Any]:
        chat = kind == "chat"
        prompts: list[Prompt] = [_messages(body)] if chat else _prompts(body)
        params = sampling_params(body, kind)
        top = _top_logprobs(body) if chat else None
        with self.lock:
            try:
                results = self.generator.generate(prompts, params)
                prompt_tokens = sum(len(self.generator.encode(p)) for p in prompts)
                logprobs = (
                    [
                        [token_logprobs(self.generator, p, c.text, top) for c in cs]
                        for p, cs in zip(prompts, results)
                    ]
                    if top is not None
                    else None
                )
            except GenerationError as e:  # e.g. a chat request to a model without a chat template
                raise BadRequest(str(e)) from e
        choices: list[dict[str, Any]] = []
        for i, completions in enumerate(results):
            for j, c in enumerate(completions):
                choice: dict[str, Any] = {"index": len(choices), "finish_reason": c.finish_reason}
                if chat:
                    choice["message"] = {"role": "assistant", "content": c.text}
                    choice["logprobs"] = {"content": logprobs[i][j]} if logprobs is not None else None
                else:
                    choice |= {"text": c.text, "logprobs": None}
                choices.append(choice)
        completion_tokens = sum(c.num_tokens for cs in results for c in cs)
        return {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIServer
    protocol_version = "HTTP/1.1"
    timeout = 120  # seconds an idle keep-alive connection is kept

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/v1/models":
            model = {"id": self.server.model_name, "object": "model", "created": self.server.created}
            self._send(200, {"object": "list", "data": [model | {"owned_by": "execrl"}]})
        elif path in ("/v1/completions", "/v1/chat/completions"):
            self._error(405, f"use POST for {path}", "invalid_request_error")
        else:
            self._error(404, f"no route {path}", "not_found_error")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        kind = {"/v1/completions": "completions", "/v1/chat/completions": "chat"}.get(path)
        body = self._read_json()
        if body is None:
            return
        if kind is None:
            self._error(404, f"no route {path}", "not_found_error")
            return
        try:
            self._send(200, self.server.complete(body, kind))
        except BadRequest as e:
            self._error(400, str(e), "invalid_request_error")
        except Exception as e:
            log.exception("%s failed", path)
            self._error(500, f"{type(e).__name__}: {e}", "server_error")

    def _read_json(self) -> dict[str, Any] | None:
        """The request's JSON object, or None after answering the error."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            code = 413 if length > MAX_BODY else 400
            self._error(code, f"Content-Length must be between 0 and {MAX_BODY}", "invalid_request_error")
            return None
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as e:
            self._error(400, f"the body is not valid JSON: {e}", "invalid_request_error")
            return None
        if not isinstance(body, dict):
            self._error(400, "the body must be a JSON object", "invalid_request_error")
            return None
        return body

    def _error(self, code: int, message: str, kind: str) -> None:
        self._send(code, {"error": {"message": message, "type": kind, "code": code}})

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def make_server(
    generator: HFGenerator, host: str = "127.0.0.1", port: int = 8000, *, model_name: str | None = None
) -> OpenAIServer:
    """A bound, not yet serving, server (port 0: any free port; see `.url`). Run `serve_forever()`."""
    return OpenAIServer((host, port), generator, model_name or generator.name or "model")


def serve(
    model_dir: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    ready: threading.Event | None = None,
    device: str | None = None,
    dtype: str | None = None,
    model_name: str | None = None,
) -> None:
    """Load `model_dir` and serve it until interrupted; `ready` is set once the port is bound.
    `model_name` (default: `model_dir`) is the id that `/v1/models` and the responses show."""
    generator = HFGenerator(model_dir, device=device, dtype=dtype)
    server = make_server(generator, host, port, model_name=model_name)
    log.info("serving %s on %s", model_dir, server.url)
    if ready is not None:
        ready.set()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def parser() -> argparse.ArgumentParser:
    """The parser of `execrl serve` (docs/cli.md is generated from it)."""
    p = argparse.ArgumentParser(
        prog="execrl serve", description="Serve a local model over an OpenAI-compatible API."
    )
    p.add_argument("--model", required=True, help="Hugging Face model directory")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16, float16 or auto")
    p.add_argument("--name", default=None, help="model id shown by the API (default: the --model path)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """`execrl serve --model DIR [--host H] [--port P] [--device D] [--dtype T]`."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        serve(args.model, args.host, args.port, device=args.device, dtype=args.dtype, model_name=args.name)
    except GenerationError as e:
        print(f"execrl serve: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the address is taken or cannot be bound
        print(f"execrl serve: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    return 0
