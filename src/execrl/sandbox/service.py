"""`execrl sandbox serve`: the sandbox as a batch HTTP service (extra `service`: starlette, uvicorn).

The client is `HTTPExecutor` (http.py). All bodies are JSON; jobs and results are `Job.to_dict()` and
`ExecutionResult.to_dict()` (with `isolation` as a dict of layers).

    POST /v1/jobs     {"jobs": [{"id": "...", "job": {...}}, ...], "wait": 10}
                      200 {"results": {id: result}, "pending": [id, ...]}  (results of those done within
                      `wait` seconds; the rest are still queued or running)
                      429 + Retry-After: the queue cannot take this request's new jobs (none was queued)
                      503 + Retry-After: shutting down      409: an id already names a different job
                      413: body or batch too large           400: malformed     401: bad or no token
    POST /v1/results  {"ids": [...], "wait": 10} -> {"results": {...}, "pending": [...], "unknown": [...]}
    GET  /v1/info     workers, capacity, limits, isolation
    GET  /health      {"status": "ok" | "draining", "queued", "running", "executed"} (no token needed)

Guarantees: a job id runs at most once per server process, whatever the number of submits (a
retried submit, or a second client with the same id, waits for the same execution; the same id
with a different job is refused with 409). Ids are remembered until `retain` finished jobs later;
resubmitting an id that was forgotten runs it again. The queue is bounded: a request either queues
all its new jobs or none (429). An unknown id in `/v1/results` means the server does not have it
(restarted, or forgotten): the client submits it again. On SIGTERM the server stops taking jobs
(503), answers pending waits at once, finishes the jobs that are running (their results reach the
`cache` file, if any) and drops the queued ones, which clients resubmit elsewhere or after the
restart. With a shared `--cache` file a job finished before a restart is answered from the cache
after it, not run again; a job running when the server is killed (SIGKILL, power loss) runs again.

Not covered: TLS (put a reverse proxy in front when leaving the machine), rate limits per client,
persistence of the queue itself.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import math
import os
import socket
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

from execrl.sandbox.cache import ResultCache
from execrl.sandbox.executor import LocalExecutor
from execrl.types import ExecutionResult, Job, Limits

TOKEN_ENV = "EXECRL_SANDBOX_TOKEN"
MAX_ID = 200
LIMITS_CAP = Limits(
    timeout=60.0,
    max_timeouts=1000,
    wall_factor=10.0,
    memory_mb=8192,
    output_mb=256,
    open_files=1024,
    disk_mb=2048,
)
"""The largest limits a submitted job may ask for (a client cannot book the machine for an hour)."""


def result_to_json(result: ExecutionResult) -> dict[str, Any]:
    """`to_dict`, keeping the isolation record whole (so `from_dict` restores it)."""
    d = result.to_dict()
    d["isolation"] = asdict(result.isolation) if result.isolation is not None else None
    return d


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve beyond this machine


class ServiceError(RuntimeError):
    """The service cannot start as configured (e.g. no token for a non-loopback address)."""


@dataclass
class _Entry:
    key: str
    job: Job | None  # dropped once it ran
    done: asyncio.Future[dict[str, Any]]


class SandboxService:
    """The queue, the ids and the HTTP routes around one `LocalExecutor`.

    Args:
        executor: runs the jobs; `workers` of them at a time (its fork-servers).
        workers: jobs handed to the executor at once (its worker count).
        queue_size: most jobs waiting to run; beyond, submits get 429.
        max_batch: most jobs (or ids) in one request.
        max_body_mb: largest request body.
        max_wait: longest a request may wait for results.
        retain: finished jobs whose ids (and results) are remembered.
        token: the bearer token every route but /health requires (None: no token).
        limits_cap: the largest `Limits` a job may ask for; beyond, the request answers 400.
    """

    def __init__(
        self,
        executor: LocalExecutor,
        *,
        workers: int,
        queue_size: int = 4096,
        max_batch: int = 512,
        max_body_mb: float = 32.0,
        max_wait: float = 30.0,
        retain: int = 50_000,
        token: str | None = None,
        limits_cap: Limits = LIMITS_CAP,
    ) -> None:
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        self.executor = executor
        self.workers = workers
        self.queue_size = queue_size
        self.max_batch = min(max_batch, queue_size)
        self.max_body = int(max_body_mb * 1024 * 1024)
        self.max_wait = max_wait
        self.retain = retain
        self.token = token
        self.limits_cap = limits_cap
        self.entries: OrderedDict[str, _Entry] = OrderedDict()
        self.finished: OrderedDict[str, None] = OrderedDict()  # ids in the order they finished
        self.queued = self.running = self.executed = self.cached = 0
        self.job_seconds = 0.05  # moving average of a job's wall time, for Retry-After
        self._queue: asyncio.Queue[str] | None = None
        self._draining: asyncio.Event | None = None
        self._dispatchers: list[asyncio.Task[None]] = []
        self._busy: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_ready: Any = None  # called once the executor is up (e.g. to print the address)

        async def http_error(request: Any, exc: Exception) -> JSONResponse:
            assert isinstance(exc, HTTPException)
            return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)

        self.app = Starlette(
            routes=[
                Route("/health", self.health, methods=["GET"]),
                Route("/v1/info", self.info, methods=["GET"]),
                Route("/v1/jobs", self.submit, methods=["POST"]),
                Route("/v1/results", self.results, methods=["POST"]),
            ],
            exception_handlers={HTTPException: http_error},
            lifespan=self._lifespan,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    @asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._draining = asyncio.Event()
        await asyncio.to_thread(lambda: self.executor.isolation)  # start the fork-servers now
        self._dispatchers = [asyncio.create_task(self._dispatch()) for _ in range(self.workers)]
        if self.on_ready is not None:
            self.on_ready()
        try:
            yield
        finally:
            await self._stop()

    def drain(self) -> None:
        """Stop taking jobs; safe to call from a signal handler or another thread."""
        if self._loop is not None and self._draining is not None:
            self._loop.call_soon_threadsafe(self._draining.set)

    async def _stop(self, grace: float = 120.0) -> None:
        assert self._draining is not None
        self._draining.set()
        for task in self._dispatchers:
            if task not in self._busy:
                task.cancel()  # idle: waiting for the queue
        if self._busy:  # running jobs finish, so their results reach the cache
            await asyncio.wait(set(self._busy), timeout=grace)
        for task in self._dispatchers:
            task.cancel()
        await asyncio.gather(*self._dispatchers, return_exceptions=True)
        await asyncio.to_thread(self.executor.close)
        print(
            f"execrl sandbox: stopped; executed {self.executed}, from cache {self.cached}, "
            f"dropped from the queue {self.queued}",
            file=sys.stderr,
            flush=True,
        )

    async def _dispatch(self) -> None:
        assert self._queue is not None and self._draining is not None
        me = asyncio.current_task()
        assert me is not None
        while not self._draining.is_set():
            job_id = await self._queue.get()
            self.queued -= 1
            entry = self.entries.get(job_id)
            if entry is None or entry.job is None:
                continue
            self.running += 1
            self._busy.add(me)
            t0 = time.monotonic()
            try:
                result = await asyncio.wrap_future(self.executor.submit(entry.job))
            except Exception as e:  # the executor itself failed: infrastructure, never the program
                result = ExecutionResult.sandbox_error(f"service: {type(e).__name__}: {e}")
            finally:
                self.running -= 1
                self._busy.discard(me)
            if result.cached:
                self.cached += 1
            else:
                self.executed += 1
                self.job_seconds = 0.9 * self.job_seconds + 0.1 * (time.monotonic() - t0)
            entry.job = None
            entry.done.set_result(result_to_json(result))
            self.finished[job_id] = None
            while len(self.finished) > self.retain:
                old, _ = self.finished.popitem(last=False)
                self.entries.pop(old, None)

    # -- routes ---------------------------------------------------------------------------------

    def _authorize(self, request: Any) -> None:
        from starlette.exceptions import HTTPException

        if self.token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})

    async def _body(self, request: Any) -> dict[str, Any]:
        import json

        from starlette.exceptions import HTTPException

        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise HTTPException(413, f"body larger than {self.max_body} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise HTTPException(413, f"body larger than {self.max_body} bytes")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks))
        except ValueError as e:
            raise HTTPException(400, f"body is not JSON: {e}") from None
        if not isinstance(body, dict):
            raise HTTPException(400, "body must be a JSON object")
        return body

    def _wait_seconds(self, body: dict[str, Any]) -> float:
        from starlette.exceptions import HTTPException

        wait = body.get("wait", 0)
        if not isinstance(wait, int | float) or wait < 0:
            raise HTTPException(400, "'wait' must be a number of seconds >= 0")
        return min(float(wait), self.max_wait)

    def _retry_after(self, jobs: int) -> str:
        seconds = math.ceil((self.queued + jobs) * self.job_seconds / max(1, self.workers))
        return str(min(60, max(1, seconds)))

    async def _answer(self, ids: list[str], wait: float) -> tuple[dict[str, Any], list[str]]:
        """Results of `ids` (all known), waiting up to `wait` seconds for all of them to finish."""
        assert self._draining is not None
        known = {i: self.entries[i] for i in ids if i in self.entries}  # kept even if evicted meanwhile
        open_ = [e.done for e in known.values() if not e.done.done()]
        if open_ and wait > 0 and not self._draining.is_set():
            all_done = asyncio.ensure_future(asyncio.wait(open_))
            draining = asyncio.ensure_future(self._draining.wait())
            await asyncio.wait({all_done, draining}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            all_done.cancel()
            draining.cancel()
        results, pending = {}, []
        for i, entry in known.items():
            if entry.done.done():
                results[i] = entry.done.result()
            else:
                pending.append(i)
        return results, pending

    def _check_job(self, job: Job) -> None:
        """Types the sandbox relies on, and limits within `limits_cap` (ValueError otherwise)."""
        if not isinstance(job.program, str) or not isinstance(job.completion_start, int):
            raise ValueError("'program' must be a string and 'completion_start' an integer")
        for name, cap in asdict(self.limits_cap).items():
            value = getattr(job.limits, name)
            if not isinstance(value, int | float) or not 0 < value <= cap:
                raise ValueError(f"limits.{name} must be a number in (0, {cap}], got {value!r}")

    async def submit(self, request: Any) -> Any:
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse

        assert self._queue is not None and self._draining is not None
        self._authorize(request)
        if self._draining.is_set():
            raise HTTPException(503, "shutting down", {"Retry-After": "1"})
        body = await self._body(request)
        items = body.get("jobs")
        if not isinstance(items, list):
            raise HTTPException(400, "'jobs' must be a list of {id, job}")
        if len(items) > self.max_batch:
            raise HTTPException(413, f"{len(items)} jobs in one request; at most {self.max_batch}")
        wait = self._wait_seconds(body)
        new: dict[str, _Entry] = {}
        ids: list[str] = []
        for n, item in enumerate(items):
            job_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(job_id, str) or not 0 < len(job_id) <= MAX_ID:
                raise HTTPException(400, f"jobs[{n}]: 'id' must be a string of 1 to {MAX_ID} characters")
            try:
                job = Job.from_dict(item["job"])
                self._check_job(job)
                key = job.key()
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise HTTPException(400, f"jobs[{n}]: not a job: {type(e).__name__}: {e}") from None
            known = self.entries.get(job_id) or new.get(job_id)
            if known is not None:
                if known.key != key:
                    raise HTTPException(409, f"jobs[{n}]: id {job_id!r} already names a different job")
            else:
                new[job_id] = _Entry(key, job, asyncio.get_running_loop().create_future())
            ids.append(job_id)
        if self.queued + len(new) > self.queue_size:
            raise HTTPException(
                429,
                f"queue full ({self.queued} of {self.queue_size} jobs waiting)",
                {"Retry-After": self._retry_after(len(new))},
            )
        for job_id, entry in new.items():
            self.entries[job_id] = entry
            self.queued += 1
            self._queue.put_nowait(job_id)
        results, pending = await self._answer(list(dict.fromkeys(ids)), wait)
        return JSONResponse({"results": results, "pending": pending})

    async def results(self, request: Any) -> Any:
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse

        self._authorize(request)
        body = await self._body(request)
        ids = body.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise HTTPException(400, "'ids' must be a list of strings")
        if len(ids) > self.max_batch:
            raise HTTPException(413, f"{len(ids)} ids in one request; at most {self.max_batch}")
        ids = list(dict.fromkeys(ids))
        unknown = [i for i in ids if i not in self.entries]
        results, pending = await self._answer([i for i in ids if i in self.entries], self._wait_seconds(body))
        return JSONResponse({"results": results, "pending": pending, "unknown": unknown})

    async def info(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        self._authorize(request)
        iso = self.executor.isolation
        return JSONResponse(
            {
                "workers": self.workers,
                "queue_size": self.queue_size,
                "max_batch": self.max_batch,
                "max_body_bytes": self.max_body,
                "max_wait": self.max_wait,
                "isolation": asdict(iso),
            }
        )

    async def health(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        draining = self._draining is not None and self._draining.is_set()
        return JSONResponse(
            {
                "status": "draining" if draining else "ok",
                "queued": self.queued,
                "running": self.running,
                "executed": self.executed,
                "cached": self.cached,
            }
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one), reusable at once after a restart."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def make_server(service: SandboxService, sock: socket.socket, *, graceful_seconds: float = 150.0) -> Any:
    """A uvicorn server for `service` on `sock`; SIGTERM/SIGINT drain the service before it stops."""
    try:
        import uvicorn
    except ImportError:
        raise ImportError("the sandbox service needs starlette and uvicorn: pip install 'execrl[service]'")

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            service.drain()  # answer long waits now, so connections close and shutdown proceeds
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        service.app,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=int(graceful_seconds),
        access_log=False,
    )
    return Server(config)


def serve(
    host: str = "127.0.0.1",
    port: int = 8100,
    *,
    workers: int | None = None,
    queue_size: int = 4096,
    max_batch: int = 512,
    max_body_mb: float = 32.0,
    max_wait: float = 30.0,
    retain: int = 50_000,
    cache: str | None = None,
    no_cache: bool = False,
    token_env: str = TOKEN_ENV,
    allow_unsafe: bool = False,
) -> None:
    """Run the service until SIGTERM/SIGINT. Prints `execrl sandbox: serving on URL` once ready."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ImportError("the sandbox service needs starlette and uvicorn: pip install 'execrl[service]'")
    token = os.environ.get(token_env) or None
    if token is None and not is_loopback(host):
        raise ServiceError(
            f"binding {host} reaches beyond this machine: set a bearer token in ${token_env} first"
        )
    workers = max(1, workers or os.cpu_count() or 1)
    result_cache: bool | ResultCache = False if no_cache else ResultCache(cache) if cache else True
    executor = LocalExecutor(workers, allow_unsafe=allow_unsafe, cache=result_cache)
    service = SandboxService(
        executor,
        workers=workers,
        queue_size=queue_size,
        max_batch=max_batch,
        max_body_mb=max_body_mb,
        max_wait=max_wait,
        retain=retain,
        token=token,
    )
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}"
    auth = f"bearer token from ${token_env}" if token else "no token"
    service.on_ready = lambda: print(
        f"execrl sandbox: serving on {url} ({workers} workers, queue {queue_size}, {auth})", flush=True
    )
    make_server(service, sock, graceful_seconds=max_wait + 120).run(sockets=[sock])
