"""`OpenAIGenerator`: completions from any OpenAI-compatible HTTP API (OpenAI, vLLM, `execrl serve`, ...).

One request per prompt, asking for all `n` samples at once: string prompts go to `{api_base}/completions`,
chat prompts to `{api_base}/chat/completions`. Requests run on a pool of `concurrency` threads that
share one `httpx.Client`. `timeout` (seconds) bounds connecting, sending, and each wait for response bytes;
requests are not streamed, so it also bounds the server's whole generation.

Failures: 408, 409, 429 and 5xx answers, connection errors and timeouts are retried up to `max_retries`
times, waiting `Retry-After` when the server sends one (capped at `MAX_WAIT` seconds), otherwise
`backoff * 2**attempt` seconds with ±50% jitter. Any other 4xx fails at once with the server's
message. The first failing prompt aborts the whole call (the other requests are not awaited).

The API key is read once, at construction, from the environment variable named by `api_key_env`; it is
sent as `Authorization: Bearer ...`, and is cut out of every error message and log line.

Deviations and limits, as servers differ:
- at most `MAX_STOP` (4, OpenAI's limit) stop strings are sent; all of them are applied client-side
  as well, so the returned text never holds one;
- `top_k` is sent only when set (a vLLM extension that OpenAI itself rejects); `seed` only when set;
- a server that returns fewer than `n` choices is asked again for the rest (with `seed + len(done)`
  when seeded);
- `Completion.num_tokens` is the response's `usage.completion_tokens` when the response holds one
  choice, and 0 (unknown) otherwise: the API reports token counts per request, not per choice.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, Literal

import httpx

from execrl.generation import Completion, GenerationError, Message, Prompt, SamplingParams, truncate_at_stop

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429})
"""Retried besides every 5xx."""
MAX_WAIT = 60.0
"""Longest wait between two attempts, whatever `Retry-After` asks for."""
MAX_STOP = 4


class OpenAIGenerator:
    """A `Generator` over an OpenAI-compatible API. `api_base` ends before `/completions`, e.g.
    `http://127.0.0.1:8000/v1`. Use it as a context manager, or call `close()`, to free connections."""

    def __init__(
        self,
        api_base: str,
        model: str,
        *,
        api_key_env: str | None = None,
        concurrency: int = 8,
        max_retries: int = 5,
        timeout: float = 60.0,
        backoff: float = 0.5,
    ) -> None:
        if not api_base.startswith(("http://", "https://")):
            raise GenerationError(f"api_base must start with http:// or https://, got {api_base!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.api_base = api_base.rstrip("/")
        self.model = model
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self._key = ""
        headers = {"Content-Type": "application/json"}
        if api_key_env is not None:
            self._key = os.environ.get(api_key_env, "")
            if not self._key:
                raise GenerationError(f"environment variable {api_key_env} (the API key) is not set or empty")
            headers["Authorization"] = f"Bearer {self._key}"
        self._client = httpx.Client(
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    def __enter__(self) -> OpenAIGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def chat(self, messages: list[Message], params: SamplingParams) -> list[Completion]:
        """`params.n` completions of one conversation."""
        return self.generate([messages], params)[0]

    def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        """`params.n` completions of one string prompt."""
        return self.generate([prompt], params)[0]

    def post(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        """One request (`route`, e.g. "/chat/completions") with this client's retries; the JSON answer.
        For callers that need fields `generate` drops (an LLM judge reads `logprobs`)."""
        return self._post(route, body, threading.Event())

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        abort = threading.Event()  # set on the first failure: the other requests stop retrying
        if len(prompts) <= 1:
            return [self._one(p, params, abort) for p in prompts]
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai-generator")
        try:
            futures = [pool.submit(self._one, p, params, abort) for p in prompts]
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f.done() and f.exception() is not None]
            if failed:
                failed[0].result()
            return [f.result() for f in futures]
        finally:
            abort.set()
            pool.shutdown(wait=False, cancel_futures=True)

    def _one(self, prompt: Prompt, params: SamplingParams, abort: threading.Event) -> list[Completion]:
        """All `params.n` completions of one prompt, asking again if the server returns fewer."""
        chat = not isinstance(prompt, str)
        done: list[Completion] = []
        while len(done) < params.n:
            seed = None if params.seed is None else params.seed + len(done)
            body = _request_body(self.model, prompt, params, params.n - len(done), seed)
            response = self._post("/chat/completions" if chat else "/completions", body, abort)
            got = _parse_choices(response, chat, params.stop)
            if not got:
                raise GenerationError(f"{self.api_base} returned no choices")
            done += got[: params.n - len(done)]
        return done

    def _post(self, route: str, body: dict[str, Any], abort: threading.Event) -> dict[str, Any]:
        url = self.api_base + route
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            if abort.is_set():
                raise GenerationError(f"{url}: aborted, another request of this call failed")
            try:
                response = self._client.post(url, json=body)
            except httpx.TransportError as e:  # connection refused, DNS, timeouts, resets
                if last:
                    raise GenerationError(
                        self._redact(f"cannot reach {self.api_base}: {_describe(e)}")
                    ) from None
                self._sleep(attempt, None, f"{url}: {_describe(e)}", abort)
                continue
            if response.is_success:
                try:
                    data = response.json()
                except ValueError:
                    raise GenerationError(f"{url} returned invalid JSON: {response.text[:200]!r}") from None
                if not isinstance(data, dict):
                    raise GenerationError(f"{url} returned {type(data).__name__}, not a JSON object")
                return data
            message = self._redact(_error_message(response))
            if response.status_code not in RETRY_STATUS and response.status_code < 500:
                raise GenerationError(f"{url} returned {response.status_code}: {message}")
            if last:
                raise GenerationError(
                    f"{url} returned {response.status_code} after {attempt + 1} attempts: {message}"
                )
            self._sleep(attempt, response.headers.get("retry-after"), f"{url}: {response.status_code}", abort)
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: str | None, why: str, abort: threading.Event) -> None:
        delay = _retry_after_seconds(retry_after)
        if delay is None:
            delay = self.backoff * 2**attempt * random.uniform(0.5, 1.5)
        delay = min(max(delay, 0.0), MAX_WAIT)
        log.warning("%s; retry %d/%d in %.2fs", self._redact(why), attempt + 1, self.max_retries, delay)
        abort.wait(delay)

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text


def _request_body(
    model: str, prompt: Prompt, params: SamplingParams, n: int, seed: int | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "n": n,
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if isinstance(prompt, str):
        body["prompt"] = prompt
    else:
        body["messages"] = prompt
    stop = [s for s in params.stop if s][:MAX_STOP]
    if stop:
        body["stop"] = stop
    if seed is not None:
        body["seed"] = seed
    if params.top_k:
        body["top_k"] = params.top_k
    return body


def _parse_choices(data: dict[str, Any], chat: bool, stop: Sequence[str]) -> list[Completion]:
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise GenerationError(f"response has no 'choices' list: {str(data)[:200]}")
    usage = data.get("usage") or {}
    tokens = int(usage.get("completion_tokens") or 0) if len(choices) == 1 else 0
    completions = []
    if not all(isinstance(c, dict) for c in choices):
        raise GenerationError(f"response 'choices' must be objects: {str(choices)[:200]}")
    for choice in sorted(choices, key=lambda c: c.get("index", 0)):
        if chat:
            text = (choice.get("message") or {}).get("content") or ""
        else:
            text = choice.get("text") or ""
        text, hit = truncate_at_stop(text, stop)
        finish: Literal["stop", "length"] = (
            "length" if choice.get("finish_reason") == "length" and not hit else "stop"
        )
        completions.append(Completion(text=text, finish_reason=finish, num_tokens=tokens))
    return completions


def _error_message(response: httpx.Response) -> str:
    """The server's own words: OpenAI's `{"error": {"message": ...}}`, else the start of the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:500]
        if isinstance(error, str):
            return error[:500]
    return str(data)[:500]


def _retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def _describe(e: Exception) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
