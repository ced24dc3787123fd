"""RayExecutor on a local Ray cluster (2 CPUs, one actor per core): order, isolation, an actor
killed mid-batch, and the missing extra. One cluster for the module (starting Ray takes ~8 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from execrl import AssertTests, Job, Status
from execrl.cli import main
from execrl.data import humaneval
from execrl.sandbox.executor import SandboxUnavailable
from execrl.types import Limits

# A single-machine cluster on 127.0.0.1 (Ray otherwise binds the host's address); read at import.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")

from execrl.sandbox.ray import RayExecutor  # noqa: E402


def job(value: int, spin: int = 0) -> Job:
    """Passes iff value is even; `spin` adds CPU work so a batch takes a while."""
    program = f"def f():\n    sum(range({spin}))\n    return {value}\n"
    return Job(program, AssertTests(tests=(f"assert f() == {value - value % 2}",)), Limits(timeout=5))


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    if not sys.platform.startswith("linux"):
        pytest.skip("the sandbox runs on Linux only")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_actors_refuse_to_run_unconfined(cluster: None) -> None:
    """With every layer off on the nodes, `run` raises SandboxUnavailable as LocalExecutor does,
    instead of running programs unconfined on the cluster."""
    with (
        RayExecutor(disable=("namespaces", "seccomp", "landlock"), cache=False) as unconfined,
        pytest.raises(SandboxUnavailable, match="--unsafe"),
    ):
        unconfined.run([job(0)])


def test_an_actor_starts_all_its_fork_servers_before_its_first_chunk(cluster: None) -> None:
    """Once an actor reports ready, a fork-server per reserved core is up (started in parallel
    while the driver still prepares its jobs), not only the first."""
    with RayExecutor(cache=False) as whole_node:  # one actor holding both CPUs
        assert whole_node.isolation is not None
        [actor] = whole_node.actors()
        servers = ray.get(actor.__ray_call__.remote(lambda self: self.executor.server_pids()))
        assert len(servers) == 2
        assert [r.status for r in whole_node.run([job(2), job(3)])] == [Status.PASSED, Status.FAILED]


def test_close_disconnects_a_driver_it_connected(cluster: None, tmp_path: Path) -> None:
    """Executors that called `ray.init` themselves (here: joining this cluster by address, as
    `execrl evaluate --ray-address` does) share that connection; the last to close ends it, so
    the process exits without Ray's slower exit hook; the cluster they joined keeps running."""
    script = (
        "import ray, sys\n"
        "from execrl import AssertTests, Job\n"
        "from execrl.sandbox.ray import RayExecutor\n"
        "a = RayExecutor(sys.argv[1], actors=1, cache=False)\n"
        "b = RayExecutor(sys.argv[1], actors=1, cache=False)\n"
        "a.close()\n"
        "print(ray.is_initialized())\n"
        "[r] = b.run([Job('def f():\\n    return 1\\n', AssertTests(tests=('assert f() == 1',)))])\n"
        "print(r.passed)\n"
        "b.close()\n"
        "print(ray.is_initialized())\n"
    )
    address = ray.get_runtime_context().gcs_address
    proc = subprocess.run(
        [sys.executable, "-c", script, address], capture_output=True, text=True, timeout=120, env=os.environ
    )
    assert proc.stdout.split() == ["True", "True", "False"], proc.stderr[-2000:]
    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2


@pytest.fixture(scope="module")
def ex(cluster: None) -> Iterator[RayExecutor]:
    executor = RayExecutor(cores_per_actor=1, cache=False)
    try:
        yield executor
    finally:
        executor.close()


def test_execrl_evaluate_on_ray_gives_the_local_rows(
    cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`execrl evaluate --executor ray` (one actor holding the node's 2 cores) writes the same
    verdicts as the local executor. First in the file: `ex` below takes both CPUs afterwards."""
    samples = tmp_path / "samples.jsonl"
    rows = []
    for p in list(humaneval.load().values())[:6]:
        rows += [{"task_id": p.task_id, "completion": c} for c in (p.canonical_solution, "    return (\n")]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["evaluate", "--benchmark", "humaneval", "--samples", str(samples), "--k", "1"]
    assert main([*args, "--executor", "ray", "--out", str(tmp_path / "ray.jsonl")]) == 0
    assert main([*args, "--out", str(tmp_path / "local.jsonl")]) == 0
    assert "isolation" in capsys.readouterr().out
    ray_rows, local_rows = ([json.loads(x) for x in open(tmp_path / f)] for f in ("ray.jsonl", "local.jsonl"))
    assert (
        [r["status"] for r in ray_rows] == [r["status"] for r in local_rows] == ["passed", "syntax_error"] * 6
    )


def test_results_come_back_in_job_order(ex: RayExecutor) -> None:
    """Each result belongs to the job at its index, across chunks and actors; duplicates run once."""
    values = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 2, 3]
    results = ex.run([job(v) for v in values])
    assert [r.status for r in results] == [Status.PASSED if v % 2 == 0 else Status.FAILED for v in values]


def test_concurrent_batches_each_get_their_own_results(ex: RayExecutor) -> None:
    """Two `arun` batches at once (async rollouts) share the actors; neither sees the other's results."""
    import asyncio

    a, b = list(range(300, 320)), list(range(401, 431, 3))

    async def both() -> tuple[list[object], list[object]]:
        ra, rb = await asyncio.gather(ex.arun([job(v) for v in a]), ex.arun([job(v) for v in b]))
        return [r.status for r in ra], [r.status for r in rb]

    assert asyncio.run(both()) == (
        [Status.PASSED if v % 2 == 0 else Status.FAILED for v in a],
        [Status.PASSED if v % 2 == 0 else Status.FAILED for v in b],
    )


def test_results_record_the_actors_isolation(ex: RayExecutor) -> None:
    """Every result says which layers confined it; the executor reports the weakest actor's."""
    [r] = ex.run([job(20)])
    assert r.isolation is not None and r.isolation.any_confinement
    assert ex.isolation is not None and ex.isolation.any_confinement


def test_an_actor_killed_mid_batch_loses_no_job(ex: RayExecutor) -> None:
    """ray.kill of an actor with chunks in flight: they run again elsewhere, every verdict is right,
    no job is missing or reported twice, and a replacement actor takes the dead one's place."""
    killed: list[int] = []
    seen: list[int] = []

    def kill_once(_: object) -> None:
        seen.append(1)
        if not killed:
            victim = ex.actors()[0]
            ray.kill(victim, no_restart=True)
            killed.append(1)

    deaths = ex.stats["actor_deaths"]
    values = list(range(100, 140))
    results = ex.run([job(v, spin=200_000) for v in values], progress=kill_once)
    assert len(results) == len(values) == len(seen)
    assert [r.status for r in results] == [Status.PASSED if v % 2 == 0 else Status.FAILED for v in values]
    assert ex.stats["actor_deaths"] == deaths + 1 and ex.stats["jobs_retried"] > 0
    assert len(ex.actors()) == 2  # the stand-in is up
    assert [r.status for r in ex.run([job(200), job(201)])] == [Status.PASSED, Status.FAILED]


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Ray installed, the error says which extra to install."""
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"execrl\[ray\]"):
        RayExecutor()
