"""The sandbox service on a real server on 127.0.0.1 and its client `HTTPExecutor`: order, 429 with
Retry-After, idempotent ids, bearer tokens, size limits, and a restart under load."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from execrl import AssertTests, Job, Status
from execrl.types import Limits

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from conftest import fresh_executor  # noqa: E402
from execrl.sandbox.http import HTTPExecutor, ServiceRequestError  # noqa: E402
from execrl.sandbox.service import SandboxService, ServiceError, bind, make_server, serve  # noqa: E402


def job(value: int, spin: int = 0, sleep: float = 0.0) -> Job:
    """Passes iff value is even; `spin` adds CPU work, `sleep` wall time."""
    program = f"import time\ndef f():\n    sum(range({spin}))\n    time.sleep({sleep})\n    return {value}\n"
    return Job(program, AssertTests(tests=(f"assert f() == {value - value % 2}",)), Limits(timeout=5))


def expected(values: list[int]) -> list[Status]:
    return [Status.PASSED if v % 2 == 0 else Status.FAILED for v in values]


@contextmanager
def running_service(**options: Any) -> Iterator[tuple[str, SandboxService]]:
    """A service on a free port of 127.0.0.1, served from a thread of this process."""
    service = SandboxService(fresh_executor(), workers=1, **options)
    sock = bind("127.0.0.1", 0)
    server = make_server(service, sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the service did not start"
        time.sleep(0.02)
    try:
        yield url, service
    finally:
        service.drain()
        server.should_exit = True
        thread.join(60)


def post(url: str, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=30, **kwargs)


def submit_body(pairs: list[tuple[str, Job]], wait: float = 0) -> dict[str, Any]:
    return {"jobs": [{"id": i, "job": j.to_dict()} for i, j in pairs], "wait": wait}


def test_results_come_back_in_job_order() -> None:
    """The client gets each job's verdict at its index, with the isolation the server ran it under."""
    values = [3, 0, 1, 2, 5, 4, 4]
    with running_service() as (url, _), HTTPExecutor(url, batch_size=2, concurrency=2) as ex:
        results = ex.run([job(v) for v in values])
        assert [r.status for r in results] == expected(values)
        assert results[0].isolation is not None and results[0].isolation == ex.isolation
        assert ex.isolation.any_confinement


def test_concurrent_batches_each_get_their_own_results() -> None:
    """Two `arun` batches at once through one client: each gets its own verdicts, in its order."""
    import asyncio

    a, b = list(range(20)), list(range(101, 131, 3))
    with running_service() as (url, _), HTTPExecutor(url, batch_size=3, concurrency=3) as ex:

        async def both() -> tuple[list[Status], list[Status]]:
            ra, rb = await asyncio.gather(ex.arun([job(v) for v in a]), ex.arun([job(v) for v in b]))
            return [r.status for r in ra], [r.status for r in rb]

        assert asyncio.run(both()) == (expected(a), expected(b))


def test_a_full_queue_answers_429_with_retry_after() -> None:
    """Beyond `queue_size` waiting jobs a submit is refused whole with Retry-After; the client
    waits it out and still gets every result."""
    with running_service(queue_size=2) as (url, service):
        first = post(url, "/v1/jobs", submit_body([("slow", job(0, sleep=1.0))]))
        assert first.status_code == 200 and first.json()["pending"] == ["slow"]
        assert post(url, "/v1/jobs", submit_body([("a", job(2)), ("b", job(4))])).status_code == 200
        refused = post(url, "/v1/jobs", submit_body([("c", job(6))]))
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "c" not in service.entries  # a refused request queues nothing
        values = list(range(8))
        with HTTPExecutor(url, batch_size=2, concurrency=4) as ex:
            assert [r.status for r in ex.run([job(v, spin=1) for v in values])] == expected(values)
            assert ex.stats["throttled"] > 0


def test_a_resubmitted_id_runs_once() -> None:
    """The same id submitted again (while queued, and after it finished) never runs twice; the
    same id for a different job is refused."""
    with running_service() as (url, service):
        pair = [("job-1", job(1, sleep=0.3))]
        a = post(url, "/v1/jobs", submit_body(pair))
        b = post(url, "/v1/jobs", submit_body(pair, wait=10))
        c = post(url, "/v1/jobs", submit_body(pair, wait=10))
        assert a.status_code == b.status_code == c.status_code == 200
        assert b.json()["results"]["job-1"] == c.json()["results"]["job-1"]
        assert b.json()["results"]["job-1"]["status"] == "failed"
        assert service.executed == 1
        conflict = post(url, "/v1/jobs", submit_body([("job-1", job(2))]))
        assert conflict.status_code == 409


def test_a_token_is_required_beyond_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Binding beyond 127.0.0.0/8 without a token refuses to start (before binding anything)."""
    monkeypatch.delenv("EXECRL_SANDBOX_TOKEN", raising=False)
    with pytest.raises(ServiceError, match="EXECRL_SANDBOX_TOKEN"):
        serve("0.0.0.0", 0)


def test_the_token_is_checked() -> None:
    """With a token, every route but /health needs `Authorization: Bearer <token>`."""
    with running_service(token="s3cret") as (url, _):
        body = submit_body([("x", job(0))], wait=10)
        assert post(url, "/v1/jobs", body).status_code == 401
        assert post(url, "/v1/jobs", body, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(url + "/health").status_code == 200
        with HTTPExecutor(url, token="wrong") as ex, pytest.raises(ServiceRequestError, match="401"):
            ex.run([job(0)])
        with HTTPExecutor(url, token="s3cret") as ex:
            assert ex.run([job(0)])[0].status is Status.PASSED


def test_requests_beyond_the_size_limits_are_refused() -> None:
    """A body over `max_body_mb` (declared or streamed without a length) or a batch over
    `max_batch` answers 413 and queues nothing."""
    with running_service(max_body_mb=0.01, max_batch=4) as (url, service):
        big = submit_body([("big", job(0).__class__("x = 1\n" * 4000, AssertTests(tests=("assert x",))))])
        assert post(url, "/v1/jobs", big).status_code == 413
        chunked = httpx.post(url + "/v1/jobs", content=iter([b"{" + b" " * 20_000 + b"}"]), timeout=30)
        assert chunked.status_code == 413
        many = submit_body([(f"j{i}", job(i)) for i in range(5)])
        assert post(url, "/v1/jobs", many).status_code == 413
        assert not service.entries


def test_jobs_beyond_the_limits_cap_are_refused() -> None:
    """A job asking for more than the server's `limits_cap` (an hour of CPU) answers 400 naming it."""
    with running_service() as (url, service):
        greedy = Job("def f(): pass\n", AssertTests(tests=("assert True",)), Limits(timeout=3600))
        refused = post(url, "/v1/jobs", submit_body([("greedy", greedy)]))
        assert refused.status_code == 400 and "limits.timeout" in refused.json()["error"]
        assert not service.entries


def _start_cli(port: int, cache: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "execrl.cli", "sandbox", "serve", "--port", str(port), "--workers", "1",
         "--cache", cache, "--max-wait", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "serving on http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.stderr else "")
    return proc, line.split("serving on ")[1].split()[0]


def _stopped(proc: subprocess.Popen[str]) -> dict[str, int]:
    """Stop the server with SIGTERM; its counts from the last line it prints."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    last = [line for line in err.splitlines() if line.startswith("execrl sandbox: stopped")][-1]
    words = last.replace(",", "").split()
    return {"executed": int(words[words.index("executed") + 1])}


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_a_restart_under_load_loses_and_duplicates_nothing(tmp_path: Any, stop: str) -> None:
    """Stop the server mid-run and start it again on the same port: the client resubmits what the
    first server had not finished and every job gets exactly one right verdict. After SIGTERM (the
    running jobs finish into the shared cache file) no job is executed twice across the two
    servers; after SIGKILL the job that was running may run again, nothing more."""
    cache = str(tmp_path / "cache.sqlite")
    first, url = _start_cli(0, cache)
    port = int(url.rsplit(":", 1)[1])
    values = list(range(60))
    seen: list[int] = []
    out: dict[str, Any] = {}

    def load(progress: Callable[[object], None]) -> None:
        with HTTPExecutor(url, batch_size=3, concurrency=4, wait=2, backoff=0.1, cache=False) as ex:
            out["results"] = ex.run([job(v, spin=300_000) for v in values], progress=progress)
            out["stats"] = dict(ex.stats)

    client = threading.Thread(target=load, args=(lambda _: seen.append(1),))
    client.start()
    deadline = time.monotonic() + 60
    while len(seen) < 10:
        assert time.monotonic() < deadline and client.is_alive()
        time.sleep(0.01)
    if stop == "sigterm":
        executed = _stopped(first)["executed"]
    else:
        first.kill()
        first.communicate(timeout=60)
        executed = len(seen)  # at least what it delivered; the job it was running is lost with it
    second, _ = _start_cli(port, cache)
    client.join(120)
    executed += _stopped(second)["executed"]
    assert not client.is_alive()
    results = out["results"]
    assert len(results) == len(values) == len(seen)
    assert [r.status for r in results] == expected(values)
    assert out["stats"]["resubmitted"] + out["stats"]["retried"] > 0  # the restart was felt
    if stop == "sigterm":
        assert executed == len(values)


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["term", "kill"])
def test_the_load_test_restarts_its_server_mid_load(tmp_path: Any, stop: str) -> None:
    """`bench/service_load.py --restart` at a tiny size: it restarts the server, checks its counts
    (its exit status), and leaves no server and no temporary directory behind."""
    import json
    import os
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "bench" / "service_load.py"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    args = ["--jobs", "150", "--concurrency", "16", "--workers", "1", "--restart", stop,
            "--max-seconds", "300"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(bench), *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["lost"] == report["wrong_verdicts"] == report["duplicated"] == 0
    assert report["executed_both"] == report["cache_rows"] == 150
    assert report["client"]["retried"] + report["client"]["resubmitted"] > 0  # the restart was felt
    assert not list(tmp_path.iterdir())  # cache file, server logs, the servers' scratch directories


def test_execrl_evaluate_through_the_service(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """`execrl evaluate --executor http --sandbox-url URL` writes the verdicts the local executor does."""
    import json

    from execrl.cli import main
    from execrl.data import humaneval

    rows = []
    for p in list(humaneval.load().values())[:6]:
        rows += [
            {"task_id": p.task_id, "completion": c} for c in (p.canonical_solution, "    return 1 / 0\n")
        ]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["evaluate", "--benchmark", "humaneval", "--samples", str(samples), "--k", "1"]
    with running_service() as (url, _):
        assert (
            main([*args, "--executor", "http", "--sandbox-url", url, "--out", str(tmp_path / "h.jsonl")]) == 0
        )
    assert main([*args, "--out", str(tmp_path / "local.jsonl")]) == 0
    assert "isolation" in capsys.readouterr().out
    got = [[json.loads(x)["status"] for x in open(tmp_path / f)] for f in ("h.jsonl", "local.jsonl")]
    assert got[0] == got[1] == ["passed", "runtime_error"] * 6


def test_execrl_train_scores_through_the_service(tmp_path: Any) -> None:
    """`execrl train --executor http --executor-address URL`: the rewards' programs run on the service."""
    from execrl.cli import main
    from tinymodel import make_tiny_model, write_rl_tasks

    model = make_tiny_model(tmp_path / "model")
    data = write_rl_tasks(tmp_path / "tasks.jsonl", test_tasks=2)
    args = ["train", "--model", model, "--data", data, "--out", str(tmp_path / "out"), "--prompts-per-step", "2",
            "--samples-per-prompt", "2", "--max-new-tokens", "8", "--max-steps", "1", "--eval-every", "0",
            "--eval-split", "none", "--report-to", "none"]  # fmt: skip
    with running_service() as (url, service):
        assert main([*args, "--executor", "http", "--executor-address", url]) == 0
        assert service.executed + service.cached > 0
    assert (tmp_path / "out" / "log.jsonl").exists()


@pytest.mark.parametrize(
    ("argv", "field"), [(["--executor", "slurm"], "executor"), (["--executor", "http"], "executor_address")]
)
def test_train_config_names_a_bad_executor(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], argv: list[str], field: str
) -> None:
    """A wrong executor, or http without its URL, fails before anything is written."""
    from execrl.cli import main

    out = tmp_path / "out"
    assert main(["train", "--model", "m", "--out", str(out), *argv]) == 2
    assert field in capsys.readouterr().err
    assert not out.exists()


def test_finished_ids_are_forgotten_after_retain_more() -> None:
    """The server remembers the last `retain` finished ids; an older one reads as unknown."""
    with running_service(retain=1) as (url, _):
        for job_id, value in (("a", 0), ("b", 2)):
            assert post(url, "/v1/jobs", submit_body([(job_id, job(value))], wait=10)).json()["pending"] == []
        answer = post(url, "/v1/results", {"ids": ["a", "b"]}).json()
        assert answer["unknown"] == ["a"] and list(answer["results"]) == ["b"]


def test_an_unreachable_service_gives_sandbox_errors_not_verdicts() -> None:
    """After its retries the client reports `sandbox_error` for every job, and does not raise."""
    sock = bind("127.0.0.1", 0)  # a port nobody serves: bound, then closed
    port = sock.getsockname()[1]
    sock.close()
    with HTTPExecutor(f"http://127.0.0.1:{port}", retries=2, backoff=0.01, cache=False) as ex:
        results = ex.run([job(0), job(1)])
    assert [r.status for r in results] == [Status.SANDBOX_ERROR] * 2
    assert "3 tries" in results[0].detail


def test_a_dead_server_in_the_list_fails_over_to_the_next() -> None:
    """With several servers, batches whose server is unreachable move to the next one; every job
    still gets its verdict."""
    sock = bind("127.0.0.1", 0)
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    values = list(range(12))
    with (
        running_service() as (url, _),
        HTTPExecutor([dead, url], batch_size=1, retries=1, backoff=0.01) as ex,
    ):
        ex._prefix = "t"  # batch ids t-0 ... t-11, so the batches that start at `dead` are known
        assert [r.status for r in ex.run([job(v) for v in values])] == expected(values)
        assert ex.stats["failovers"] == sum(ex.order(f"t-{i}")[0] == dead for i in values) > 0


def test_batches_spread_over_the_servers() -> None:
    """Rendezvous hashing: each server comes first for about its share of batch ids, and a batch id
    always maps to the same order."""
    with HTTPExecutor(["http://a:1", "http://b:1", "http://c:1"]) as ex:
        firsts = [ex.order(f"batch-{i}")[0] for i in range(300)]
        assert all(70 <= firsts.count(u) <= 130 for u in ex.urls)
        assert ex.order("batch-7") == ex.order("batch-7")


def test_execrl_rewards_through_the_service(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """`execrl rewards --executor http` scores the samples on the service."""
    import json

    from execrl.cli import main
    from execrl.data import humaneval

    p = next(iter(humaneval.load().values()))
    samples = tmp_path / "samples.jsonl"
    rows = [{"task_id": p.task_id, "completion": c} for c in (p.canonical_solution, "    return None\n")]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["rewards", "--benchmark", "humaneval", "--samples", str(samples), "--reward", "binary"]
    with running_service() as (url, service):
        assert main([*args, "--executor", "http", "--sandbox-url", url]) == 0
        assert service.executed == 2
