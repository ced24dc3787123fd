"""Shared fixtures for the sandbox tests: one warm executor per session, plus host-side process checks.

Starting a `LocalExecutor` costs about half a second, so the sandbox test files share the session
`executor` fixture (one worker, no result cache). Tests that must not share it (a fresh environment,
an attack that may corrupt the executor's state) start their own with `fresh_executor()`.

Process checks look only at this test process's descendants whose command line is the fork-server's
(candidates are forks of it and keep its command line), so executors of other test runs on the same
machine are never counted.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from execrl import ExecutionResult, Job, LocalExecutor
from execrl.types import AssertTests, TestSuite

ZYGOTE_MARKER = b"execrl.sandbox.zygote"


def fresh_executor() -> LocalExecutor:
    """A started executor of its own (the caller closes it); skips where no sandbox layer works."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the sandbox runs on Linux only")
    ex = LocalExecutor(workers=1, cache=False)
    try:
        iso = ex.isolation
    except Exception as e:  # SandboxUnavailable, or a fork-server that cannot start here
        ex.close()
        pytest.skip(f"no sandbox on this machine: {e}")
    if not iso.any_confinement:
        ex.close()
        pytest.skip("no confinement layer available")
    return ex


@pytest.fixture(scope="session")
def executor() -> Iterator[LocalExecutor]:
    ex = fresh_executor()
    try:
        yield ex
    finally:
        ex.close()


def run_one(executor: LocalExecutor, program: str, tests: TestSuite, **job_kwargs: Any) -> ExecutionResult:
    """Run one job and return its result."""
    [result] = executor.run([Job(program=program, tests=tests, **job_kwargs)])
    return result


def assert_serves(executor: LocalExecutor) -> None:
    """The executor still judges a correct and a wrong program correctly."""
    good = run_one(executor, "def g(x):\n    return x * 2\n", AssertTests(tests=("assert g(21) == 42",)))
    assert good.passed, good
    bad = run_one(executor, "def g(x):\n    return x\n", AssertTests(tests=("assert g(21) == 42",)))
    assert bad.status.value == "failed", bad


# ---------------------------------------------------------------------------------------------
# Host-side process inspection.


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1])


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _inner_pid(pid: int) -> int | None:
    """The pid in the innermost PID namespace (NSpid's last value)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return None


def descendants(root: int) -> set[int]:
    """Live (non-zombie) processes below `root`."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None and st[0] != "Z":
                children.setdefault(st[1], []).append(int(name))
    out: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def sandbox_processes() -> set[int]:
    """Every fork-server and job process started from this test process."""
    return {pid for pid in descendants(os.getpid()) if ZYGOTE_MARKER in _cmdline(pid)}


def server_processes() -> set[int]:
    """The fork-servers themselves: the executor's direct children, PID 1 of their namespaces, and
    their spawners (named execrl-spawner)."""
    me = os.getpid()
    out = set()
    for pid in sandbox_processes():
        st = _stat(pid)
        if st is not None and (st[1] == me or _inner_pid(pid) == 1 or _comm(pid) == "execrl-spawner"):
            out.add(pid)
    return out


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def job_processes() -> set[int]:
    """Processes a job left behind (anything of ours with the fork-server's command line that is not
    a fork-server). Empty between jobs."""
    return sandbox_processes() - server_processes()


def wait_gone(pids: set[int], within: float = 5.0) -> set[int]:
    """The subset of `pids` still alive (not zombies) after waiting up to `within` seconds."""
    end = time.monotonic() + within
    alive = set(pids)
    while alive and time.monotonic() < end:
        alive = {p for p in alive if (st := _stat(p)) is not None and st[0] != "Z"}
        if alive:
            time.sleep(0.05)
    return alive
