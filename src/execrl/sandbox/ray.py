"""`RayExecutor`: the batch `Executor` API over a Ray cluster (extra `ray`).

    with RayExecutor(address="auto") as ex:        # or address=None: a local cluster
        results = ex.run(jobs)                      # in the jobs' order, as LocalExecutor's

One actor per node by default (or one per `cores_per_actor` cores), each holding a `LocalExecutor`
with a fork-server per core it reserved. The driver deduplicates and caches like `LocalExecutor`,
cuts the unique jobs into chunks, and keeps at most `in_flight_per_actor` chunks per live actor in
flight (backpressure: a batch of a million jobs never queues a million objects in the cluster).

Guarantees: every job gets exactly one result, at its index. A chunk whose actor dies (node lost,
`ray.kill`, out of memory) is run again on another live actor, and a replacement actor is started;
a job that comes back as `sandbox_error` is also retried on another actor. Only after `retries`
further attempts is a job reported as `sandbox_error` — never as a wrong program: a chunk either
returns the verdicts its actor computed or nothing. A job that was running when its actor died runs
again (jobs are pure: the same verdict). Not covered: an actor that hangs without dying (Ray's
node health checks turn a lost node into an actor death; a stuck process is not detected), and a
driver that dies (the batch is lost with it; rerun it, the result cache helps only within a driver).
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from execrl.sandbox.cache import ResultCache
from execrl.sandbox.executor import LocalExecutor, SandboxUnavailable, weakest
from execrl.types import ExecutionResult, Isolation, Job, Status

JOBS_PER_CORE = 16
"""Default chunk size per core of an actor. A chunk's round trip (driver, actor and raylet) cost ~4
ms of CPU on the 2-core development machine whatever its size, against ~8.5 ms of a core per
HumanEval program in the sandbox: 16 per core keeps round trips near 1.5% of the work, while a
batch's last chunk (the tail, when other actors have run dry) stays at ~0.14 s of work."""


_CONNECTION_LOCK = threading.Lock()
_connection = {"ours": False, "users": 0}  # did a RayExecutor call ray.init; how many use it


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError("RayExecutor needs Ray: pip install 'execrl[ray]'") from None
    return ray


class SandboxActor:
    """What runs inside each Ray actor: a `LocalExecutor` (no cache: the driver caches)."""

    def __init__(self, workers: int, disable: Sequence[str], allow_unsafe: bool) -> None:
        self.executor = LocalExecutor(workers, disable=disable, allow_unsafe=allow_unsafe, cache=False)

    def isolation(self) -> Isolation:
        """Starts all the fork-servers at once (the actor has nothing else to do until its first
        chunk arrives); raises `SandboxUnavailable` like `LocalExecutor` does."""
        return self.executor.start()

    def pid(self) -> int:
        return os.getpid()

    def run(self, jobs: list[Job]) -> list[ExecutionResult]:
        # submit, not run: the driver deduplicated already, so no second content hash per job here
        futures = [self.executor.submit(job) for job in jobs]
        return [f.result() for f in futures]

    def close(self) -> None:
        self.executor.close()


@dataclass
class _Slot:
    """One actor as the driver sees it."""

    handle: Any
    ready: Any  # ObjectRef of isolation(), resolved once the fork-servers are up
    cores: int
    node: str | None
    strategy: Any
    started: bool = False
    dead: bool = False
    load: int = 0  # chunks in flight
    isolation: Isolation | None = None


@dataclass
class _Chunk:
    indices: list[int]  # positions in the run's list of unique jobs
    attempts: int = 0
    avoid: set[int] = field(default_factory=set)  # ids of slots it failed on


class RayExecutor:
    """Run jobs on the actors of a Ray cluster; the `Executor` protocol (`run`, `arun`, `close`).

    Args:
        address: the cluster to join (`"auto"`, `"ray://head:10001"`); None starts a local one.
            Only when Ray is not initialised yet: then the last open executor sharing that
            connection disconnects on `close` (`ray.shutdown()`, which also stops a local cluster
            it started); a Ray the caller initialised is left as it was.
        cores_per_actor: cores each actor reserves (its fork-servers); None: one actor per node
            holding all of that node's CPUs.
        actors: a fixed number of actors (each `cores_per_actor` or 1 cores) spread over the
            cluster instead of the per-node placement.
        chunk_size: most jobs sent to an actor in one call; None: `JOBS_PER_CORE` per core of the
            largest actor. Smaller for small batches, so each actor gets work.
        in_flight_per_actor: chunks queued per actor (2: one running, one waiting).
        retries: further attempts on another actor for a chunk whose actor died, or a job that
            came back as `sandbox_error`.
        cache: as `LocalExecutor`'s, kept in the driver.
        disable, allow_unsafe: as `LocalExecutor`'s, applied on every actor.
        init_kwargs: passed to `ray.init` when this executor starts Ray (e.g. `num_cpus=2`).
        start_timeout: seconds to wait for a first actor to start (the cluster may have no free
            CPUs) before `run` raises instead of waiting forever.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        cores_per_actor: int | None = None,
        actors: int | None = None,
        chunk_size: int | None = None,
        in_flight_per_actor: int = 2,
        retries: int = 2,
        cache: bool | ResultCache = True,
        disable: Iterable[str] = (),
        allow_unsafe: bool = False,
        init_kwargs: dict[str, Any] | None = None,
        start_timeout: float = 300.0,
    ) -> None:
        if (chunk_size is not None and chunk_size < 1) or in_flight_per_actor < 1 or retries < 0:
            raise ValueError("chunk_size and in_flight_per_actor must be >= 1, retries >= 0")
        self.ray = _import_ray()
        self.chunk_size = chunk_size
        self.in_flight_per_actor = in_flight_per_actor
        self.retries = retries
        self.start_timeout = start_timeout
        self.disable = tuple(disable)
        self.allow_unsafe = allow_unsafe
        self.cache: ResultCache | None = (
            ResultCache() if cache is True else cache if isinstance(cache, ResultCache) else None
        )
        # A connection (and, with address=None, a cluster) that RayExecutors opened is shared by
        # those alive and ended by the last to close, as exiting would end it, but at once (Ray's
        # exit hook sleeps 0.5 s first, to let logs print). A Ray the caller initialised is theirs.
        with _CONNECTION_LOCK:
            if not self.ray.is_initialized():
                kwargs = {"include_dashboard": False, "log_to_driver": False, **(init_kwargs or {})}
                self.ray.init(address=address, **kwargs)
                _connection["ours"] = True
            self._owns_ray = bool(_connection["ours"])
            _connection["users"] += self._owns_ray
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []
        self._replacements = 0
        self._closed = False
        self.stats = {"actor_deaths": 0, "chunks_retried": 0, "jobs_retried": 0}
        """Counters over this executor's life: dead actors seen, chunks and jobs sent again."""
        self._cls = self.ray.remote(SandboxActor)
        self._place(cores_per_actor, actors)
        self._placed = len(self._slots)

    # -- actors ---------------------------------------------------------------------------------

    def _place(self, cores_per_actor: int | None, actors: int | None) -> None:
        if actors is not None:
            cores = cores_per_actor or 1
            for _ in range(actors):
                self._start(cores, None, "SPREAD")
            return
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        for node in self.ray.nodes():
            cpus = int(node.get("Resources", {}).get("CPU", 0))
            if not node.get("Alive") or cpus < 1:
                continue
            cores = min(cores_per_actor or cpus, cpus)
            for _ in range(cpus // cores):
                strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=True)
                self._start(cores, node["NodeID"], strategy)
        if not self._slots:
            raise RuntimeError("the Ray cluster has no node with a CPU to run sandbox actors on")

    def _start(self, cores: int, node: str | None, strategy: Any) -> _Slot:
        handle = self._cls.options(
            num_cpus=cores,
            max_concurrency=self.in_flight_per_actor + 1,  # + 1: isolation()/pid() while busy
            max_restarts=0,  # the driver replaces dead actors itself, and knows which chunks they had
            scheduling_strategy=strategy,
        ).remote(cores, self.disable, self.allow_unsafe)
        slot = _Slot(handle, handle.isolation.remote(), cores, node, strategy)
        self._slots.append(slot)
        return slot

    def _replace(self, slot: _Slot) -> None:
        """Start a stand-in for a dead actor (bounded, so a broken cluster cannot loop forever)."""
        if self._replacements >= 2 * self._placed + 4 or self._closed:
            return
        self._replacements += 1
        self._start(slot.cores, slot.node, slot.strategy)

    def _check_ready(self, slot: _Slot, timeout: float | None) -> bool:
        """True once the actor's fork-servers are up; marks it dead if it failed to start."""
        if slot.started or slot.dead:
            return slot.started
        done, _ = self.ray.wait([slot.ready], timeout=timeout)
        if not done:
            return False
        try:
            slot.isolation = self.ray.get(slot.ready)
            slot.started = True
        except self.ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, SandboxUnavailable):
                raise e.cause from None
            slot.dead = True
        except self.ray.exceptions.RayError:
            slot.dead = True
        return slot.started

    @property
    def isolation(self) -> Isolation | None:
        """The layers every started actor has (each result records its own actor's layers)."""
        deadline = time.monotonic() + self.start_timeout
        with self._lock:
            while True:  # actors not up yet are not waited for, unless none is up
                for slot in self._slots:
                    self._check_ready(slot, 0)
                started = [s.isolation for s in self._slots if s.started and s.isolation is not None]
                starting = [s.ready for s in self._slots if not s.started and not s.dead]
                if started or not starting or time.monotonic() > deadline:
                    return weakest(started)
                self.ray.wait(starting, timeout=1.0)

    def actor_pids(self) -> list[int]:
        """Process ids of the live actors (for tests and diagnostics)."""
        with self._lock:
            live = [s for s in self._slots if not s.dead]
        return list(self.ray.get([s.handle.pid.remote() for s in live]))

    def actors(self) -> list[Any]:
        """Handles of the live actors (e.g. to `ray.kill` one in a test)."""
        with self._lock:
            return [s.handle for s in self._slots if not s.dead]

    # -- running --------------------------------------------------------------------------------

    def run(
        self, jobs: Sequence[Job], progress: Callable[[ExecutionResult], None] | None = None
    ) -> list[ExecutionResult]:
        """Run a batch; results come back in the jobs' order. Identical jobs run once."""
        if self._closed:
            raise RuntimeError("the executor is closed")
        keys = [job.key() for job in jobs]
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        done: dict[str, ExecutionResult] = {}
        todo: list[int] = []  # indices into `jobs` of unique, uncached jobs
        for key, i in first.items():
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                done[key] = hit
            else:
                todo.append(i)
        for key in done:
            if progress is not None:
                progress(done[key])

        def finish(i: int, result: ExecutionResult) -> None:
            done[keys[i]] = result
            if self.cache is not None:
                self.cache.put(keys[i], result)
            if progress is not None:
                progress(result)

        self._schedule(jobs, todo, finish)
        return [done[key] for key in keys]

    def _schedule(
        self, jobs: Sequence[Job], todo: list[int], finish: Callable[[int, ExecutionResult], None]
    ) -> None:
        ray = self.ray
        if not todo:
            return
        live = max(1, sum(not s.dead for s in self._slots))
        largest = self.chunk_size or JOBS_PER_CORE * max(s.cores for s in self._slots)
        size = max(1, min(largest, math.ceil(len(todo) / (live * self.in_flight_per_actor))))
        queue = deque(_Chunk(todo[i : i + size]) for i in range(0, len(todo), size))
        flying: dict[Any, tuple[_Chunk, _Slot]] = {}
        since = time.monotonic()

        def fail(chunk: _Chunk, slot: _Slot | None, detail: str, indices: list[int]) -> None:
            """Retry `indices` elsewhere, or report them as sandbox errors once out of attempts."""
            if chunk.attempts < self.retries:
                self.stats["chunks_retried"] += 1
                self.stats["jobs_retried"] += len(indices)
                avoid = chunk.avoid | ({id(slot)} if slot is not None else set())
                queue.appendleft(_Chunk(indices, chunk.attempts + 1, avoid))
            else:
                for i in indices:
                    finish(
                        i,
                        ExecutionResult.sandbox_error(f"ray: {detail} (after {chunk.attempts + 1} attempts)"),
                    )

        while queue or flying:
            with self._lock:
                for slot in self._slots:
                    self._check_ready(slot, 0)
                starting = [s.ready for s in self._slots if not s.started and not s.dead]
                ready = [s for s in self._slots if s.started and not s.dead]
                if ready or flying:
                    since = time.monotonic()
                elif time.monotonic() - since > self.start_timeout:
                    raise RuntimeError(
                        f"no sandbox actor started within {self.start_timeout:.0f} s: does the Ray "
                        "cluster have free CPUs? (ray status)"
                    )
                if not ready and not starting and not flying:
                    # no actor can run anything: report the rest, never hang
                    while queue:
                        chunk = queue.popleft()
                        for i in chunk.indices:
                            finish(i, ExecutionResult.sandbox_error("ray: no live sandbox actor"))
                    break
                while queue:
                    chunk = queue[0]
                    free = [s for s in ready if s.load < self.in_flight_per_actor]
                    if not free:
                        break
                    fresh = [s for s in free if id(s) not in chunk.avoid]
                    if fresh:
                        slot = min(fresh, key=lambda s: s.load)
                    elif any(id(s) not in chunk.avoid for s in ready):
                        break  # wait for an actor it has not failed on to free up
                    else:
                        slot = min(free, key=lambda s: s.load)
                    queue.popleft()
                    slot.load += 1
                    flying[slot.handle.run.remote([jobs[i] for i in chunk.indices])] = (chunk, slot)
            waiting = list(flying) + starting
            if not waiting:
                continue
            finished, _ = ray.wait(waiting, num_returns=1, timeout=1.0)
            for ref in finished:
                if ref not in flying:
                    continue  # an actor became ready
                chunk, slot = flying.pop(ref)
                with self._lock:
                    slot.load -= 1
                try:
                    results: list[ExecutionResult] = ray.get(ref)
                except ray.exceptions.RayError as e:
                    with self._lock:
                        died = ray.exceptions.RayActorError | ray.exceptions.ActorUnavailableError
                        if isinstance(e, died) and not slot.dead:
                            slot.dead = True
                            self.stats["actor_deaths"] += 1
                            self._replace(slot)
                    fail(chunk, slot, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}", chunk.indices)
                    continue
                again = []
                for i, result in zip(chunk.indices, results):
                    if result.status is Status.SANDBOX_ERROR and chunk.attempts < self.retries:
                        again.append(i)
                    else:
                        finish(i, result)
                if again:
                    fail(chunk, slot, "sandbox_error", again)

    async def arun(self, jobs: Sequence[Job]) -> list[ExecutionResult]:
        """`run` for async code: runs in a thread, so the event loop keeps going."""
        return await asyncio.to_thread(self.run, jobs)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            slots, self._slots = self._slots, []
        live = [s for s in slots if not s.dead]
        try:  # stop the fork-servers cleanly (they remove their scratch directories) ...
            self.ray.wait([s.handle.close.remote() for s in live], num_returns=len(live), timeout=30)
        except Exception:
            pass
        for slot in live:  # ... then the actors (a killed actor's fork-servers exit on their own)
            try:
                self.ray.kill(slot.handle)
            except Exception:
                pass
        if self.cache is not None:
            self.cache.close()
        if self._owns_ray:
            with _CONNECTION_LOCK:
                _connection["users"] -= 1
                if _connection["users"] == 0 and _connection["ours"]:
                    _connection["ours"] = False
                    self.ray.shutdown()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["RayExecutor", "SandboxActor"]
