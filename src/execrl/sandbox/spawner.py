"""The spawner: a clean process that forks every candidate.

A candidate is a fork, so it holds a copy of its parent's memory. If the runner forked it, a
program could walk `gc.get_objects()` or the stack to the test it is judged by, or to the
expected output of a stdin/stdout case, and print it. So the fork-server forks this spawner at
start-up, before it reads any job: the spawner's memory holds warm imports and nothing of any job.
The spawner confines itself once with the layers every candidate shares (Landlock, no new
privileges, no capabilities), then forks a candidate per request.

Requests come over a SOCK_SEQPACKET socket with the candidate's descriptors attached
(SCM_RIGHTS): stdin, stdout, stderr (memfds), the two RPC pipe ends and a memfd holding the
marshalled program — all created by the runner, so no path games (symlinks, FIFOs) can redirect
them. The spawner is the candidates' parent, so it reaps them and reports exit status and rusage.

    ["spawn", limits_dict, main, name, cpu_hard] + 6 fds  ->  pid
    ["wait", pid, grace_seconds]                          ->  [status, cpu_seconds, max_rss_kb]
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from execrl.sandbox import candidate as cand
from execrl.sandbox import namespaces
from execrl.types import Limits

_BUF = 1 << 16


class SpawnerGone(BaseException):
    """The spawner died or broke the protocol: the fork-server restarts it (a sandbox error).
    A BaseException, so test code that catches Exception cannot turn it into a verdict."""


class Spawner:
    """The fork-server's handle on its spawner process."""

    def __init__(self, conf: cand.Confinement, jobdir: str, confine_self: Callable[[], None]) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                mine.close()
                namespaces.set_name(b"execrl-spawner")  # /proc/<pid>/comm, so tools can tell it apart
                namespaces.set_parent_death_signal(signal.SIGKILL)
                confine_self()  # first: Landlock needs the O_PATH descriptors closed below
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1):
                    os.dup2(null, fd)
                keep = theirs.fileno()
                for fd in range(3, 1 << 10):
                    if fd != keep:
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                gc.collect()
                gc.freeze()
                _serve(theirs, conf, jobdir)
            finally:
                os._exit(0)
        theirs.close()
        self.sock, self.pid = mine, pid

    def _call(self, request: list[Any], fds: list[int] = ()) -> Any:  # type: ignore[assignment]
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode()], list(fds))
            data = self.sock.recv(_BUF)
        except OSError as e:
            raise SpawnerGone(f"spawner: {e}") from None
        if not data:
            raise SpawnerGone("the spawner ended")
        reply = json.loads(data)
        if isinstance(reply, dict) and "error" in reply:
            raise SpawnerGone(f"spawner: {reply['error']}")
        return reply

    def spawn(self, limits: Limits, *, main: bool, name: str, cpu_hard: int, fds: list[int]) -> int:
        pid = self._call(["spawn", _limits_dict(limits), main, name, cpu_hard], fds)
        return int(pid)

    def wait(self, pid: int, grace: float = 0.0) -> tuple[int, float, int]:
        """Reap `pid`, killing it if it has not exited within `grace` seconds."""
        status, cpu, rss = self._call(["wait", pid, grace])
        return int(status), float(cpu), int(rss)

    def stop(self) -> None:
        self.sock.close()
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _limits_dict(limits: Limits) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(limits)


def _serve(sock: socket.socket, conf: cand.Confinement, jobdir: str) -> None:
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, _BUF, 8)
        except OSError:
            return
        if not data:
            return
        request = json.loads(data)
        try:
            if request[0] == "spawn":
                reply: Any = _spawn(request, fds, conf, jobdir)
            elif request[0] == "wait":
                reply = _wait(int(request[1]), float(request[2]))
            else:
                reply = {"error": f"unknown request {request[0]!r}"}
        except Exception as e:
            reply = {"error": f"{type(e).__name__}: {e}"}
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(json.dumps(reply).encode())


def _spawn(request: list[Any], fds: list[int], conf: cand.Confinement, jobdir: str) -> int:
    _, limits, main, name, cpu_hard = request
    if len(fds) != 6:
        raise ValueError(f"expected 6 descriptors, got {len(fds)}")
    pid = os.fork()
    if pid == 0:
        try:
            code = cand.confine(conf, Limits(**limits), jobdir, fds, int(cpu_hard))
            if main:
                cand.run_main(code)
            cand.serve(code, name)
        finally:
            os._exit(cand.HARNESS_FAILED)
    return pid


def _wait(pid: int, grace: float) -> list[Any]:
    deadline = time.monotonic() + grace
    while True:
        done, status, ru = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() >= deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status, ru = os.wait4(pid, 0)
            break
        time.sleep(0.0005)
    return [status, ru.ru_utime + ru.ru_stime, ru.ru_maxrss]
