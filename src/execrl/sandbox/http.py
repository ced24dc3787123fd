"""`HTTPExecutor`: the batch `Executor` API over `execrl sandbox serve` (service.py), on httpx.

    with HTTPExecutor("http://127.0.0.1:8100") as ex:    # token from $EXECRL_SANDBOX_TOKEN, if set
        results = ex.run(jobs)                            # in the jobs' order, as LocalExecutor's
    HTTPExecutor(["http://node1:8100", "http://node2:8100"])   # several servers, no load balancer

Jobs are deduplicated and cached like `LocalExecutor`'s, given ids unique to this executor, cut into
batches of `batch_size`, and at most `concurrency` batches are in flight at once. Each batch is
submitted, then its results are awaited (long polls); ids the server does not know (it restarted)
are submitted again. Because the server runs an id at most once, a submit retried after a lost
response never runs twice. 429 and 503 are waited out as the server's Retry-After says (up to
`patience` seconds per batch); connection errors and 5xx are retried with exponential backoff and
jitter, `retries` times in a row. A job still without a result after that is `sandbox_error` —
never a wrong verdict. 400, 401, 409 and 413 are our own mistakes and raise `ServiceRequestError`.

With several servers, each batch goes to the first of the servers in its own rendezvous-hash order
(a hash of server and batch id: batches spread evenly, and a batch always starts at the same
server, so its ids stay with the server that remembers them); a batch whose server stays
unreachable for `retries` tries fails over to the next server in its order, which runs its jobs
afresh (it never saw those ids). Only after the last server is a job `sandbox_error`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from execrl.sandbox.cache import ResultCache
from execrl.sandbox.executor import weakest
from execrl.types import ExecutionResult, Isolation, Job

TOKEN_ENV = "EXECRL_SANDBOX_TOKEN"


class ServiceRequestError(RuntimeError):
    """The service refused a request as malformed, unauthorised, conflicting or too large."""


class HTTPExecutor:
    """Run jobs on a sandbox service; the `Executor` protocol (`run`, `arun`, `close`).

    Args:
        url: the service, e.g. `http://127.0.0.1:8100`, or a list of servers.
        token: the bearer token; default the value of `token_env`, if set.
        token_env: the environment variable holding the token.
        concurrency: batches in flight at once (each one open request).
        batch_size: jobs per request.
        wait: seconds a request waits on the server for its batch's results.
        retries: connection errors or 5xx in a row before a batch's jobs become `sandbox_error`.
        backoff, max_backoff: the first retry's delay, doubled each time up to `max_backoff`.
        patience: seconds a batch keeps waiting out 429/503 before its jobs become `sandbox_error`.
        cache: as `LocalExecutor`'s, kept in the client.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        token: str | None = None,
        token_env: str = TOKEN_ENV,
        concurrency: int = 8,
        batch_size: int = 32,
        wait: float = 10.0,
        retries: int = 8,
        backoff: float = 0.2,
        max_backoff: float = 10.0,
        patience: float = 600.0,
        cache: bool | ResultCache = True,
    ) -> None:
        if concurrency < 1 or batch_size < 1 or retries < 0:
            raise ValueError("concurrency and batch_size must be >= 1, retries >= 0")
        self.urls = [u.rstrip("/") for u in ([url] if isinstance(url, str) else url)]
        if not self.urls:
            raise ValueError("no service URL given")
        token = token if token is not None else os.environ.get(token_env) or None
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.wait = wait
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.patience = patience
        self.cache: ResultCache | None = (
            ResultCache() if cache is True else cache if isinstance(cache, ResultCache) else None
        )
        self.stats = {"requests": 0, "retried": 0, "throttled": 0, "resubmitted": 0, "failovers": 0}
        """Counters: requests sent, retried after an error, answered 429/503, ids submitted again,
        batches moved to another server."""
        self._prefix = uuid.uuid4().hex
        self._ids = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="execrl-http")
        self._thread.start()
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None
        self._isolation: Isolation | None = None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------

    def _call(self, coro: Any) -> Any:
        if self._closed:
            coro.close()
            raise RuntimeError("the executor is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _open(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(self.wait + 30.0, connect=10.0),
                limits=httpx.Limits(  # per server
                    max_connections=self.concurrency + 2, max_keepalive_connections=self.concurrency + 2
                ),
            )
            self._slots = asyncio.Semaphore(self.concurrency)
        return self._client

    @property
    def isolation(self) -> Isolation | None:
        """The layers every server's sandbox has in force (`GET /v1/info`; each result records
        its own server's)."""
        if self._isolation is None:

            async def info(url: str) -> Isolation:
                client = await self._open()
                response = await client.get(url + "/v1/info")
                self._check(response)
                return Isolation.from_dict(response.json()["isolation"])

            async def every() -> list[Isolation]:
                return list(await asyncio.gather(*(info(u) for u in self.urls)))

            self._isolation = weakest(self._call(every()).result())
        return self._isolation

    def order(self, batch_id: str) -> list[str]:
        """The servers in the order a batch tries them (rendezvous hashing on the batch's id)."""
        return sorted(self.urls, key=lambda u: hashlib.sha256(f"{u}|{batch_id}".encode()).digest())

    def close(self) -> None:
        if self._closed:
            return

        async def shut() -> None:
            if self._client is not None:
                await self._client.aclose()

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result()
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> HTTPExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running --------------------------------------------------------------------------------

    def run(
        self, jobs: Sequence[Job], progress: Callable[[ExecutionResult], None] | None = None
    ) -> list[ExecutionResult]:
        """Run a batch; results come back in the jobs' order. Identical jobs run once."""
        keys, todo, done = self._plan(jobs)
        for result in done.values():
            if progress is not None:
                progress(result)
        arrived: queue.Queue[tuple[int, ExecutionResult]] = queue.Queue()
        future = self._call(self._run_batches(jobs, todo, lambda i, r: arrived.put((i, r))))
        for _ in range(len(todo)):
            while True:
                try:
                    i, result = arrived.get(timeout=0.5)
                    break
                except queue.Empty:
                    if future.done():
                        future.result()  # raises what stopped the batches
            self._finish(keys[i], result, done)
            if progress is not None:
                progress(result)
        future.result()
        return [done[key] for key in keys]

    async def arun(self, jobs: Sequence[Job]) -> list[ExecutionResult]:
        """`run` for async code (any event loop: the requests run on this executor's own)."""
        keys, todo, done = self._plan(jobs)
        got: list[tuple[int, ExecutionResult]] = []
        await asyncio.wrap_future(self._call(self._run_batches(jobs, todo, lambda i, r: got.append((i, r)))))
        for i, result in got:
            self._finish(keys[i], result, done)
        return [done[key] for key in keys]

    def _plan(self, jobs: Sequence[Job]) -> tuple[list[str], list[int], dict[str, ExecutionResult]]:
        """(each job's key, indices of the unique uncached jobs, results known already by key)."""
        keys = [job.key() for job in jobs]
        todo: list[int] = []
        done: dict[str, ExecutionResult] = {}
        seen: set[str] = set()
        for i, key in enumerate(keys):
            if key in seen:
                continue
            seen.add(key)
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                done[key] = hit
            else:
                todo.append(i)
        return keys, todo, done

    def _finish(self, key: str, result: ExecutionResult, done: dict[str, ExecutionResult]) -> None:
        done[key] = result
        if self.cache is not None:
            self.cache.put(key, result)

    async def _run_batches(
        self, jobs: Sequence[Job], todo: list[int], deliver: Callable[[int, ExecutionResult], None]
    ) -> None:
        await self._open()
        batches = [todo[i : i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
        tasks = [
            asyncio.ensure_future(
                self._batch({f"{self._prefix}-{next(self._ids)}": i for i in b}, jobs, deliver)
            )
            for b in batches
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    async def _batch(
        self, index: dict[str, int], jobs: Sequence[Job], deliver: Callable[[int, ExecutionResult], None]
    ) -> None:
        """Submit one batch and collect its results, resubmitting what a restarted server lost."""
        assert self._client is not None and self._slots is not None
        async with self._slots:
            pending = dict(index)  # id -> job index, until its result arrived
            submit = set(pending)  # ids the server must be sent (again)
            failures, throttled_since = 0, None
            servers = self.order(next(iter(index)))
            url = servers.pop(0)
            while pending:
                if submit:
                    body: dict[str, Any] = {
                        "jobs": [
                            {"id": i, "job": jobs[pending[i]].to_dict()} for i in pending if i in submit
                        ],
                        "wait": self.wait,
                    }
                    path = "/v1/jobs"
                else:
                    body, path = {"ids": list(pending), "wait": self.wait}, "/v1/results"
                self.stats["requests"] += 1
                try:
                    response = await self._client.post(url + path, json=body)
                except httpx.TransportError as e:
                    failures += 1
                    if failures > self.retries and servers:  # this server is gone: the next one
                        url, failures, submit = servers.pop(0), 0, set(pending)
                        self.stats["failovers"] += 1
                        continue
                    if not await self._backoff(failures, pending, deliver, f"{url}: {type(e).__name__}: {e}"):
                        return
                    continue
                if response.status_code in (429, 503):
                    self.stats["throttled"] += 1
                    throttled_since = throttled_since or time.monotonic()
                    if time.monotonic() - throttled_since > self.patience:
                        self._give_up(
                            pending,
                            deliver,
                            f"still refused ({response.status_code}) after {self.patience:.0f} s",
                        )
                        return
                    await asyncio.sleep(_retry_after(response) * random.uniform(1.0, 1.5))
                    continue
                if response.status_code >= 500:
                    failures += 1
                    if failures > self.retries and servers:
                        url, failures, submit = servers.pop(0), 0, set(pending)
                        self.stats["failovers"] += 1
                        continue
                    detail = f"{url}: HTTP {response.status_code}: {response.text[:200]}"
                    if not await self._backoff(failures, pending, deliver, detail):
                        return
                    continue
                self._check(response)
                failures, throttled_since = 0, None
                answer = response.json()
                for job_id, d in answer["results"].items():
                    if job_id in pending:
                        deliver(pending.pop(job_id), ExecutionResult.from_dict(d))
                submit = set(answer.get("unknown", ())) & set(pending)
                self.stats["resubmitted"] += len(submit)

    async def _backoff(
        self,
        failures: int,
        pending: dict[str, int],
        deliver: Callable[[int, ExecutionResult], None],
        detail: str,
    ) -> bool:
        """Sleep before retry number `failures`; False (and sandbox errors) once out of retries."""
        if failures > self.retries:
            self._give_up(pending, deliver, f"{detail} ({failures} tries)")
            return False
        self.stats["retried"] += 1
        delay = min(self.max_backoff, self.backoff * 2 ** (failures - 1))
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        return True

    def _give_up(
        self, pending: dict[str, int], deliver: Callable[[int, ExecutionResult], None], detail: str
    ) -> None:
        for i in pending.values():
            deliver(i, ExecutionResult.sandbox_error(f"sandbox service: {detail}"))
        pending.clear()

    @staticmethod
    def _check(response: httpx.Response) -> None:
        if response.status_code == 200:
            return
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise ServiceRequestError(f"sandbox service answered {response.status_code}: {message}")


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.05, min(60.0, float(response.headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0  # an HTTP date: wait a second and ask again
