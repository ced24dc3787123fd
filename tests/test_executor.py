"""The batch API: ordering, de-duplication, caching, async use, recovery, refusal to run unconfined."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from execrl import AssertTests, Job, LocalExecutor, Status
from execrl.sandbox.cache import ResultCache
from execrl.sandbox.executor import SandboxUnavailable

os.environ["HF_HUB_OFFLINE"] = "1"


def job(value: int) -> Job:
    return Job(f"def f():\n    return {value}\n", AssertTests(tests=("assert f() == 1",)))


@pytest.fixture(scope="module")
def ex() -> Iterator[LocalExecutor]:
    with LocalExecutor(workers=2) as executor:
        yield executor


def test_results_come_back_in_job_order(ex: LocalExecutor) -> None:
    """Each result belongs to the job at the same index, whatever the completion order."""
    values = [1, 0, 1, 2, 1, 3, 0, 1]
    results = ex.run([job(v) for v in values])
    assert [r.passed for r in results] == [v == 1 for v in values]


def test_cache_returns_the_same_verdict_flagged_cached(ex: LocalExecutor) -> None:
    """A repeated job is answered from the cache with an identical verdict."""
    first = ex.run([job(41)])[0]
    second = ex.run([job(41)])[0]
    assert not first.cached and second.cached
    assert (second.status, second.tests_passed, second.error) == (
        first.status,
        first.tests_passed,
        first.error,
    )


def test_every_result_records_the_isolation_in_force(ex: LocalExecutor) -> None:
    """Results say which layers were active; on this kernel all of them."""
    [r] = ex.run([job(7)])
    assert r.isolation == ex.isolation
    assert r.isolation is not None and r.isolation.any_confinement


def test_arun_from_async_code(ex: LocalExecutor) -> None:
    """arun awaits without blocking the loop; other coroutines progress meanwhile."""

    async def main() -> tuple[list[bool], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            for _ in range(3):
                ticks += 1
                await asyncio.sleep(0)

        results, _ = await asyncio.gather(ex.arun([job(1), job(5)]), ticker())
        return [r.passed for r in results], ticks

    passed, ticks = asyncio.run(main())
    assert passed == [True, False] and ticks == 3


def test_recovers_when_a_fork_server_is_killed(ex: LocalExecutor) -> None:
    """Killing the fork-servers from outside loses no job: they are restarted and the job retried."""
    for pid in ex.server_pids():
        os.killpg(pid, signal.SIGKILL)
    results = ex.run([job(1), job(8)])
    assert [r.status for r in results] == [Status.PASSED, Status.FAILED]


def test_sandbox_error_is_not_cached() -> None:
    """Infrastructure failures never poison the cache."""
    from execrl import ExecutionResult

    cache = ResultCache()
    cache.put("k", ExecutionResult.sandbox_error("boom"))
    assert cache.get("k") is None


def test_disk_cache_is_shared_across_executors(tmp_path: os.PathLike[str]) -> None:
    """A SQLite-backed cache answers a later executor without running the job."""
    path = os.path.join(os.fspath(tmp_path), "cache.sqlite")
    with LocalExecutor(workers=1, cache=ResultCache(path)) as a:
        assert not a.run([job(9)])[0].cached
    with LocalExecutor(workers=1, cache=ResultCache(path)) as b:
        r = b.run([job(9)])[0]
    assert r.cached and r.status is Status.FAILED


def test_refuses_to_run_without_any_confinement() -> None:
    """With every layer off, the executor refuses unless the caller accepts running unconfined."""
    with pytest.raises(SandboxUnavailable, match="--unsafe"):
        LocalExecutor(workers=1, disable=("namespaces", "seccomp", "landlock")).run([job(1)])
    with LocalExecutor(workers=1, disable=("namespaces", "seccomp", "landlock"), allow_unsafe=True) as ex:
        [r] = ex.run([job(1)])
    assert r.passed and r.isolation is not None and not r.isolation.any_confinement


def test_start_brings_up_every_fork_server_before_any_job() -> None:
    """`start` starts all the workers' fork-servers at once (lazily, only the first would be up),
    and the jobs then run on exactly those servers."""
    with LocalExecutor(workers=3, cache=False) as ex:
        assert ex.start().any_confinement
        pids = ex.server_pids()
        assert len(pids) == 3
        assert [r.passed for r in ex.run([job(v) for v in (1, 0, 1, 1, 2, 1)])] == [
            True, False, True, True, False, True,
        ]  # fmt: skip
        assert sorted(ex.server_pids()) == sorted(pids)


def test_start_survives_a_fork_server_that_fails_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """One of the fork-servers `start` launches fails: the executor still starts, and that
    worker starts its own fork-server at its first job, as it would without `start`."""
    from execrl.sandbox import executor as executor_module

    real = executor_module._ForkServer
    calls: list[int] = []

    def flaky(layers: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the fork-server did not start: injected")
        return real(layers)  # type: ignore[arg-type]

    monkeypatch.setattr(executor_module, "_ForkServer", flaky)
    with LocalExecutor(workers=2, cache=False) as ex:
        ex.start()
        assert len(ex.server_pids()) == 1
        distinct = [
            Job(f"def f():\n    return 1  # {i}\n", AssertTests(tests=("assert f() == 1",))) for i in range(8)
        ]
        assert all(r.passed for r in ex.run(distinct))


def test_start_refuses_to_run_without_any_confinement() -> None:
    """`start` with every layer off raises like the first job would, leaving no fork-server behind."""
    ex = LocalExecutor(workers=2, disable=("namespaces", "seccomp", "landlock"))
    with pytest.raises(SandboxUnavailable, match="--unsafe"):
        ex.start()
    assert ex.server_pids() == []


def test_unknown_layer_is_rejected() -> None:
    """A typo in `disable` is an error, not a silently weaker sandbox."""
    with pytest.raises(ValueError, match="unknown isolation layer"):
        LocalExecutor(disable=("seccom",))
