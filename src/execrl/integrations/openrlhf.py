"""`execrl reward-server`: execrl's sandbox as an OpenRLHF remote reward model (`--remote_rm_url`).

OpenRLHF posts a batch to the URL given with `--remote_rm_url` and reads the reply's `rewards`:

    POST /get_reward  {"query": [prompt + response, ...], "prompts": [prompt, ...], "labels": [label, ...]}
    200  {"rewards": [float, ...], "scores": [float, ...],
          "extra_logs": {"pass_ratio": [...], "tests_passed": [...], "tests_total": [...], "sandbox_error": [...]}}

`query` is the decoded prompt + response (OpenRLHF decodes with special tokens, so left padding
may precede the prompt); the response is what follows the first occurrence of the sample's prompt
in its query (`--strip TEXT` also removes an EOS string from its end). `labels` is the dataset's
label column (`--label_key`): a task id of `--benchmark`, or JSON tests
(`{"inputs", "outputs", "fn_name"?}` or `{"asserts", "setup"?}`; see `execrl.rewards.labeled`).
`rewards` and `scores` are equal (`--kind binary`: 1.0 when every test passed; `pass_ratio`: the
share passed); `extra_logs` holds per-sample details, which recent OpenRLHF versions log.

Sandbox errors. OpenRLHF needs a float for every sample and has no "no reward" value. A batch in
which a sample still has a sandbox error after the executor's own retry is answered with 503
(`{"error": ...}`): OpenRLHF's client retries the request (a few times, then the step fails), and
no sandbox failure is ever scored as a failed test. `--on-sandbox-error VALUE` answers with that
value instead and counts the sample in `extra_logs.sandbox_error`.

In-process instead of a server: recent OpenRLHF versions also accept a Python file as
`--remote_rm_url` and call its `reward_func(queries, prompts, labels)`; this module is such a file
(`reward_func` below: the same scoring, tensors out, a sandbox error raises; settings from the
environment: `EXECRL_BENCHMARK`, `EXECRL_REWARD_KIND`, `EXECRL_ON_SANDBOX_ERROR`, `EXECRL_WORKERS`).

Errors: 400 for a bad request (the message names the field and the sample), 404 for another path,
413 for a body over `MAX_BODY` bytes. Standard library only; meant for a trusted network (no
authentication), like OpenRLHF's own reward server. Batches are scored one at a time, each as one
parallel sandbox batch.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from execrl.data import DataError
from execrl.rewards.execution import KINDS
from execrl.rewards.labeled import LabeledReward

__all__ = ["RewardServer", "main", "make_server", "parser", "reward_func", "rewards_of"]

log = logging.getLogger(__name__)

MAX_BODY = 64 * 2**20


class BadRequest(ValueError):
    pass


class SandboxFailed(RuntimeError):
    pass


def _strings(body: dict[str, Any], field: str) -> list[Any]:
    value = body.get(field)
    if not isinstance(value, list):
        raise BadRequest(f'"{field}" must be an array, got {type(value).__name__}')
    return value


def response_of(query: str, prompt: str, strip: Sequence[str] = ()) -> str:
    """The text after the first occurrence of `prompt` in `query`, minus trailing `strip` strings."""
    at = query.find(prompt)
    if at < 0:
        raise BadRequest("the prompt does not occur in its query")
    text = query[at + len(prompt) :]
    changed = True
    while changed:  # e.g. EOS then padding
        changed = False
        for s in strip:
            if s and text.endswith(s):
                text, changed = text[: -len(s)], True
    return text


def rewards_of(
    reward: LabeledReward,
    queries: Sequence[Any],
    prompts: Sequence[Any],
    labels: Sequence[Any],
    *,
    on_sandbox_error: float | None = None,
    strip: Sequence[str] = (),
) -> dict[str, Any]:
    """OpenRLHF's reward dict (plain lists) for a batch; BadRequest names the sample at fault,
    SandboxFailed when a sample has no reward and no `on_sandbox_error` value was chosen."""
    if not len(queries) == len(prompts) == len(labels):
        raise BadRequest(f"{len(queries)} queries, {len(prompts)} prompts and {len(labels)} labels")
    texts = []
    for i, (q, p) in enumerate(zip(queries, prompts)):
        if not isinstance(q, str) or not isinstance(p, str):
            raise BadRequest(f"sample {i}: query and prompt must be strings")
        try:
            texts.append(response_of(q, p, strip))
        except BadRequest as e:
            raise BadRequest(f"sample {i}: {e}") from None
    try:
        jobs = [reward.job(t, lab) for t, lab in zip(texts, labels)]
    except DataError as e:
        raise BadRequest(str(e)) from e
    results = reward.executor.run(jobs)
    scored = [reward.score_result(r) for r in results]
    errors = [i for i, s in enumerate(scored) if s is None]
    if errors and on_sandbox_error is None:
        raise SandboxFailed(f"the sandbox failed on samples {errors[:10]} (not the programs): retry")
    rewards = [on_sandbox_error if s is None else s for s in scored]
    return {
        "rewards": rewards,
        "scores": rewards,
        "extra_logs": {
            "pass_ratio": [r.pass_ratio for r in results],
            "tests_passed": [r.tests_passed for r in results],
            "tests_total": [r.tests_total for r in results],
            "sandbox_error": [float(s is None) for s in scored],
        },
    }


class RewardServer(ThreadingHTTPServer):
    """Scores OpenRLHF reward requests with `reward`; `on_sandbox_error` None answers them with 503."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        reward: LabeledReward,
        *,
        on_sandbox_error: float | None = None,
        strip: Sequence[str] = (),
    ) -> None:
        super().__init__(address, _Handler)
        self.reward = reward
        self.on_sandbox_error = on_sandbox_error
        self.strip = tuple(s for s in strip if s)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        """What OpenRLHF's `--remote_rm_url` takes, e.g. http://127.0.0.1:5000/get_reward."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/get_reward"

    def rewards(self, body: dict[str, Any]) -> dict[str, Any]:
        queries, prompts, labels = (_strings(body, f) for f in ("query", "prompts", "labels"))
        with self.lock:
            return rewards_of(self.reward, queries, prompts, labels, on_sandbox_error=self.on_sandbox_error,
                              strip=self.strip)  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    server: RewardServer
    protocol_version = "HTTP/1.1"
    timeout = 600

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._send(413 if length > MAX_BODY else 400, {"error": f"Content-Length must be 0..{MAX_BODY}"})
            return
        raw = self.rfile.read(length)
        if path != "/get_reward":
            self._send(404, {"error": f"no route {path or '/'}; POST /get_reward"})
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object")
            self._send(200, self.server.rewards(body))
        except (ValueError, UnicodeDecodeError) as e:  # BadRequest and invalid JSON
            self._send(400, {"error": str(e)})
        except SandboxFailed as e:
            self._send(503, {"error": str(e)})
        except Exception as e:
            log.exception("reward request failed")
            self._send(500, {"error": f"{type(e).__name__}: {e}"})

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


_in_process: list[LabeledReward] = []


def reward_func(queries: list[str], prompts: list[str], labels: list[Any]) -> dict[str, Any]:
    """OpenRLHF's in-process reward function (a Python file as `--remote_rm_url`): tensors out."""
    import os

    import torch

    from execrl.types import Limits

    if not _in_process:
        workers = int(os.environ.get("EXECRL_WORKERS", "0")) or None
        kind = os.environ.get("EXECRL_REWARD_KIND", "binary")
        _in_process.append(LabeledReward(os.environ.get("EXECRL_BENCHMARK") or None, kind=kind,
                                         limits=Limits(), workers=workers))  # fmt: skip
    value = os.environ.get("EXECRL_ON_SANDBOX_ERROR")
    out = rewards_of(_in_process[0], queries, prompts, labels,
                     on_sandbox_error=float(value) if value else None)  # fmt: skip
    return {
        "rewards": torch.tensor(out["rewards"], dtype=torch.float32),
        "scores": torch.tensor(out["scores"], dtype=torch.float32),
        "extra_logs": {k: torch.tensor(v, dtype=torch.float32) for k, v in out["extra_logs"].items()},
    }


def make_server(reward: LabeledReward, host: str = "127.0.0.1", port: int = 5000, **kw: Any) -> RewardServer:
    """A bound, not yet serving, server (port 0: a free one; see `.url`). Run `serve_forever()`."""
    return RewardServer((host, port), reward, **kw)


def parser() -> argparse.ArgumentParser:
    """The parser of `execrl reward-server` (docs/cli.md is generated from it)."""
    p = argparse.ArgumentParser(
        prog="execrl reward-server",
        description="Serve execution rewards to OpenRLHF (--remote_rm_url http://HOST:PORT/get_reward).",
    )
    p.add_argument(
        "--benchmark",
        default=None,
        help="benchmark whose task ids labels may name (default: JSON tests only)",
    )
    p.add_argument(
        "--data", default=None, help="the benchmark's data file (default: the copy it ships or finds)"
    )
    p.add_argument("--kind", choices=KINDS, default="binary", help="reward: binary or pass_ratio")
    p.add_argument(
        "--completion-style",
        action="store_true",
        help="benchmark responses are the text after the prompt (default: chat replies, code in a fenced block)",
    )
    p.add_argument(
        "--strip",
        action="append",
        default=[],
        help="remove this string from the end of each response (e.g. the EOS token; repeatable)",
    )
    p.add_argument(
        "--on-sandbox-error",
        type=float,
        default=None,
        help="reward for a sample the sandbox failed on (default: answer 503, OpenRLHF retries)",
    )
    p.add_argument("--timeout", type=float, default=3.0, help="CPU seconds per test (default 3)")
    p.add_argument("--workers", type=int, default=None, help="sandbox workers (default: the CPU count)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000; 0 picks a free one)")
    return p  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    from execrl.types import Limits

    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reward = LabeledReward(args.benchmark, data=args.data, kind=args.kind, chat=not args.completion_style,
                           limits=Limits(timeout=args.timeout), workers=args.workers)  # fmt: skip
    try:
        server = make_server(
            reward, args.host, args.port, on_sandbox_error=args.on_sandbox_error, strip=args.strip
        )
    except OSError as e:
        print(f"execrl reward-server: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    log.info("execution rewards on %s", server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        reward.close()
    return 0
