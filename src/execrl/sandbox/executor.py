"""The batch execution API: `LocalExecutor` runs many jobs across warm fork-servers.

    with LocalExecutor(workers=2) as ex:
        results = ex.run(jobs)                 # blocking, results in the jobs' order
        results = await ex.arun(jobs)          # from async code (e.g. while generating)
        future = ex.submit(job)                # one job, a concurrent.futures.Future

One fork-server per worker (default: one per core; more would turn CPU-bound programs into false
timeouts). Identical jobs in a batch run once; a content-addressed cache remembers verdicts across
batches. A job whose fork-server fails is retried once on a fresh one and then reported as
`sandbox_error` — never as a wrong program. Any backend with the same `run`/`arun`/`close`
(the `Executor` protocol: Ray actors across nodes, a batch HTTP service) can stand in.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import fields, replace
from typing import Any, Protocol

from execrl.sandbox import wire
from execrl.sandbox.cache import ResultCache
from execrl.types import ExecutionResult, Isolation, Job, Status

LAYERS = ("namespaces", "seccomp", "landlock")
SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
}
_BOOT = (
    "import sys, json; sys.path[:] = [sys.argv[2]] + [p for p in sys.path if p]; "
    "from execrl.sandbox.zygote import serve; serve(json.loads(sys.argv[1]))"
)


class SandboxUnavailable(RuntimeError):
    """No isolation layer works here and the caller did not accept running unconfined."""


class Executor(Protocol):
    def run(
        self, jobs: Sequence[Job], progress: Callable[[ExecutionResult], None] | None = None
    ) -> list[ExecutionResult]: ...

    async def arun(self, jobs: Sequence[Job]) -> list[ExecutionResult]: ...

    def close(self) -> None: ...


class _ForkServer:
    """One zygote process and its pipes. Not thread-safe: owned by one worker thread."""

    def __init__(self, layers: Sequence[str]) -> None:
        self.scratch = tempfile.mkdtemp(prefix="execrl-")
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        cfg = {"scratch": self.scratch, "layers": list(layers), "env": SANDBOX_ENV}
        debug = os.environ.get("EXECRL_DEBUG")
        self.proc = subprocess.Popen(
            [sys.executable, "-s", "-c", _BOOT, json.dumps(cfg), src],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if debug else subprocess.DEVNULL,
            env=SANDBOX_ENV,
            close_fds=True,
            start_new_session=True,
            cwd=self.scratch,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.wfd, self.rfd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        try:
            hello = wire.recv(self.rfd, time.monotonic() + 60)
            self.isolation = Isolation.from_dict(hello["hello"])
        except (wire.WireError, KeyError, TypeError) as e:
            self.stop()
            raise RuntimeError(
                f"the fork-server did not start: {e} (set EXECRL_DEBUG=1 to see its stderr)"
            ) from None

    def run(self, job: Job) -> ExecutionResult:
        lim = job.limits
        n = len(getattr(job.tests, "cases", ())) or len(getattr(job.tests, "tests", ())) or 16
        deadline = time.monotonic() + (n + 2) * (lim.timeout * lim.wall_factor + 1.0) + 60.0
        wire.send(self.wfd, job.to_dict())
        return ExecutionResult.from_dict(wire.recv(self.rfd, deadline))

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


_STOP = object()


class LocalExecutor:
    """Run jobs on this machine in confined processes.

    Args:
        workers: fork-servers running jobs in parallel; default `os.cpu_count()`.
        disable: isolation layers to leave off ("namespaces", "seccomp", "landlock"), e.g. to measure them.
        allow_unsafe: run even when no layer confines the program (off network and files). Without it,
            the executor refuses to start on such a machine.
        cache: True for an in-memory result cache, False for none, or a `ResultCache` (e.g. on disk).
        retries: how many times a job whose sandbox failed is retried on a fresh fork-server.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        disable: Iterable[str] = (),
        allow_unsafe: bool = False,
        cache: bool | ResultCache = True,
        retries: int = 1,
    ) -> None:
        disabled = set(disable)
        unknown = disabled - set(LAYERS)
        if unknown:
            raise ValueError(f"unknown isolation layer(s) {sorted(unknown)}; choose from {list(LAYERS)}")
        self.layers = [name for name in LAYERS if name not in disabled]
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.allow_unsafe = allow_unsafe
        self.retries = retries
        self.cache: ResultCache | None = (
            ResultCache() if cache is True else cache if isinstance(cache, ResultCache) else None
        )
        self._queue: queue.Queue[Any] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._isolation: Isolation | None = None
        self._start_lock = threading.Lock()
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._closed = False
        self._servers: set[_ForkServer] = set()

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def isolation(self) -> Isolation:
        """The layers in force (probed by the first fork-server)."""
        self._ensure_started()
        assert self._isolation is not None
        return self._isolation

    def start(self) -> Isolation:
        """Start every fork-server now, all at once, and return the layers in force.

        Without it the first job starts the first fork-server and each worker starts its own at
        its first job, so the later ones start while the first runs jobs. `start` is for a caller
        that is otherwise idle while it waits (a Ray actor between its creation and its first
        chunk): the fork-servers start in parallel, each on its own core, and none is left to
        start once jobs arrive. A no-op once started."""
        self._ensure_started(all_servers=True)
        assert self._isolation is not None
        return self._isolation

    def _ensure_started(self, all_servers: bool = False) -> None:
        with self._start_lock:
            if self._closed:
                raise RuntimeError("the executor is closed")
            if self._threads:
                return
            servers = _start_servers(self.layers, self.workers if all_servers else 1)
            started = [s for s in servers if s is not None]
            iso = started[0].isolation
            if not iso.any_confinement and not self.allow_unsafe:
                for server in started:
                    server.stop()
                notes = "; ".join(iso.notes) or "no layer available"
                raise SandboxUnavailable(
                    f"no isolation layer can confine programs on this machine ({notes}); "
                    "pass allow_unsafe=True (CLI: --unsafe) to run them with resource limits only"
                )
            self._isolation = iso
            self._servers.update(started)
            for i in range(self.workers):
                own = servers[i] if i < len(servers) else None  # None: started at the worker's first job
                t = threading.Thread(target=self._work, args=(own,), daemon=True, name=f"execrl-{i}")
                t.start()
                self._threads.append(t)

    def server_pids(self) -> list[int]:
        """Process ids of the live fork-servers (for diagnostics: each is the root of its job tree)."""
        with self._start_lock:
            return [s.proc.pid for s in self._servers]

    def close(self) -> None:
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._queue.put(_STOP)
        for t in self._threads:
            t.join()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running --------------------------------------------------------------------------------

    def _spawn(self) -> _ForkServer:
        server = _ForkServer(self.layers)
        with self._start_lock:
            self._servers.add(server)
        return server

    def _retire(self, server: _ForkServer) -> None:
        server.stop()
        with self._start_lock:
            self._servers.discard(server)

    def _work(self, server: _ForkServer | None) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            result: ExecutionResult | None = None
            for _ in range(self.retries + 1):
                try:
                    if server is None:
                        server = self._spawn()
                    result = server.run(job)
                except Exception as e:  # the fork-server died or hung: start afresh
                    result = ExecutionResult.sandbox_error(f"fork-server failed: {type(e).__name__}: {e}")
                    if server is not None:
                        self._retire(server)
                    server = None
                if result.status is not Status.SANDBOX_ERROR:
                    break
            assert result is not None
            future.set_result(replace(result, isolation=self._isolation))
        if server is not None:
            self._retire(server)

    def submit(self, job: Job) -> Future[ExecutionResult]:
        """Queue one job; the future resolves to its result (from the cache when known)."""
        future: Future[ExecutionResult] = Future()
        key = job.key() if self.cache is not None else None
        if key is not None and self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                future.set_result(replace(hit, isolation=hit.isolation or self._isolation))
                return future
        self._ensure_started()
        inner: Future[ExecutionResult] = Future()
        self._queue.put((job, inner))

        def done(f: Future[ExecutionResult]) -> None:
            result = f.result()
            if key is not None and self.cache is not None:
                self.cache.put(key, result)
            future.set_result(result)

        inner.add_done_callback(done)
        return future

    def run(
        self, jobs: Sequence[Job], progress: Callable[[ExecutionResult], None] | None = None
    ) -> list[ExecutionResult]:
        """Run a batch; results come back in the jobs' order. Identical jobs run once."""
        by_key: dict[str, Future[ExecutionResult]] = {}
        futures: list[Future[ExecutionResult]] = []
        for job in jobs:
            key = job.key()
            if key not in by_key:
                by_key[key] = self.submit(job)
            futures.append(by_key[key])
        results: list[ExecutionResult] = []
        for f in futures:
            results.append(f.result())
            if progress is not None:
                progress(results[-1])
        return results

    async def arun(self, jobs: Sequence[Job]) -> list[ExecutionResult]:
        """`run` for async code: awaits without blocking the event loop."""
        by_key: dict[str, Future[ExecutionResult]] = {}
        futures: list[Future[ExecutionResult]] = []
        for job in jobs:
            key = job.key()
            if key not in by_key:
                by_key[key] = self.submit(job)
            futures.append(by_key[key])
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))


def _start_servers(layers: Sequence[str], n: int) -> list[_ForkServer | None]:
    """`n` fork-servers started in parallel (each is a fresh interpreter: ~0.3-0.5 s of one core).
    One that fails to start is None (its worker starts one at its first job, as a lazy start
    would); only when none starts is the first failure raised."""
    if n == 1:
        return [_ForkServer(layers)]
    servers: list[_ForkServer | None] = [None] * n
    errors: list[Exception] = []

    def one(i: int) -> None:
        try:
            servers[i] = _ForkServer(layers)
        except Exception as e:  # re-raised below, in the caller's thread, if no server started
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if all(s is None for s in servers):
        raise errors[0]
    return servers


def weakest(isolations: Iterable[Isolation]) -> Isolation | None:
    """The layers every one of `isolations` has (a cluster is as confined as its weakest node)."""
    items = list(isolations)
    if not items:
        return None
    values: dict[str, Any] = {}
    for f in fields(Isolation):
        got = [getattr(i, f.name) for i in items]
        if f.name == "notes":
            values[f.name] = tuple(dict.fromkeys(n for notes in got for n in notes))
        elif f.name == "landlock":
            values[f.name] = min(got)
        else:
            values[f.name] = all(got)
    return Isolation(**values)
