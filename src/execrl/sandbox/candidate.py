"""The candidate process: the only place where model-written code runs.

Forked by the test runner, it confines itself (`confine`) before touching the program, then either
serves calls from the runner (`serve`: assertion and call-based tests) or runs the program as
`__main__` on a stdin file (`run_main`: stdin/stdout tests). Nothing it says is trusted: the runner
only accepts plain data from it (see wire.py) and judges on that. It holds no file descriptor of
the fork-server's beyond its own two pipes, cannot create processes, open sockets, signal anyone
but itself (seccomp), reach a network (network namespace) or write outside its job directory
(Landlock, applied to the whole fork-server), when those layers are available.

Exit codes the runner interprets: 0 normal end, CONFINE_FAILED when a layer the probe reported
as available failed to apply (a sandbox error: the program never ran).
"""

from __future__ import annotations

import os
import resource
import signal
import sys
from dataclasses import dataclass
from types import CodeType, TracebackType
from typing import Any

from execrl.sandbox import namespaces, wire
from execrl.sandbox.seccomp import SeccompFilter
from execrl.types import Limits

CONFINE_FAILED = 121
FILENAME = "<candidate>"
RPC_IN, RPC_OUT = 3, 4  # fixed descriptor numbers inside the candidate


@dataclass
class Confinement:
    """Per-candidate layers prepared once by the fork-server (which applied the shared ones —
    namespaces, Landlock, no-new-privs, dropped capabilities, scrubbed environment — to itself)."""

    seccomp: SeccompFilter | None = None
    nproc: int | None = None  # only set when the sandbox runs under its own uid


def confine(
    c: Confinement, limits: Limits, jobdir: str, stdin_path: str | None, rpc: tuple[int, int], cpu_hard: int
) -> None:
    """Apply the per-process layers to the calling (freshly forked) process.

    `cpu_hard` caps the process's whole CPU time; the runner re-arms the soft limit per test.
    Exits CONFINE_FAILED on any failure, before the program runs."""
    try:
        os.setpgid(0, 0)  # its own group, so the fork-server can kill it and anything it started
        namespaces.set_parent_death_signal(signal.SIGKILL)
        # Descriptors: 0 stdin, 1 stdout, 2 stderr (files in the job dir), 3/4 the RPC pipes.
        fd_in = os.open(stdin_path or os.devnull, os.O_RDONLY)
        fd_out = os.open(os.path.join(jobdir, "stdout"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        fd_err = os.open(os.path.join(jobdir, "stderr"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        r, w = os.dup(rpc[0]), os.dup(rpc[1])  # dup first: the targets may overlap the sources
        for src, dst in ((fd_in, 0), (fd_out, 1), (fd_err, 2), (r, RPC_IN), (w, RPC_OUT)):
            os.dup2(src, dst)
        os.closerange(RPC_OUT + 1, 1 << 16)
        for res, value in (
            (resource.RLIMIT_AS, limits.memory_mb << 20),
            (resource.RLIMIT_FSIZE, limits.output_mb << 20),
            (resource.RLIMIT_NOFILE, limits.open_files),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.setrlimit(res, (value, value))
        resource.setrlimit(resource.RLIMIT_CPU, (max(1, cpu_hard - 1), cpu_hard))
        if c.nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (c.nproc, c.nproc))
        if c.seccomp is not None:
            c.seccomp.install(os.getpid())
    except BaseException as e:  # never run the program half-confined
        try:
            os.write(2, f"confinement failed: {type(e).__name__}: {e}\n".encode())
        finally:
            os._exit(CONFINE_FAILED)
    sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1 << 16)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)
    sys.argv = ["solution.py"]


# ---------------------------------------------------------------------------------------------
# Errors, reported as plain data. Lines are program lines; the runner maps them to the completion.


def error_payload(e: BaseException) -> dict[str, Any]:
    frames: list[int] = []
    tb: TracebackType | None = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            frames.append(tb.tb_lineno)
        tb = tb.tb_next
    if isinstance(e, MemoryError):
        hint = "memory_exceeded"
    elif isinstance(e, SystemExit):
        hint = "no_result"
    elif isinstance(e, OSError) and e.errno == 27:  # EFBIG: RLIMIT_FSIZE with SIGXFSZ ignored
        hint = "output_exceeded"
    else:
        hint = "runtime_error"
    try:
        message = str(e)[:2000]
    except BaseException:
        message = "<unprintable>"
    return {"type": type(e).__name__[:200], "message": message, "frames": frames[-20:], "hint": hint}


# ---------------------------------------------------------------------------------------------
# Serving calls (assertion and call-based tests).


class _RunnerFunction:
    """A callable living in the runner (e.g. a `key=` lambda a test passes in)."""

    def __init__(self, fid: int, call: Any) -> None:
        self._fid, self._call = fid, call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self._fid, args, kwargs)


class _Server:
    def __init__(self, namespace: dict[str, Any]) -> None:
        self.ns = namespace
        self.refs: dict[int, Any] = {}

    def remote(self, obj: Any) -> list[Any]:
        rid = id(obj)
        self.refs[rid] = obj
        try:
            name = type(obj).__name__[:100]
        except BaseException:
            name = "object"
        return ["r", rid, name]

    def resolve(self, marker: list[Any]) -> Any:
        if marker[0] == "r":
            return self.refs[marker[1]]
        return _RunnerFunction(marker[1], self.callback)

    def enc(self, v: Any) -> Any:
        return wire.encode(v, self.remote)

    def dec(self, v: Any) -> Any:
        return wire.decode(v, self.resolve)

    def callback(self, fid: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        wire.send(RPC_OUT, ["cb", fid, self.enc(list(args)), self.enc(kwargs)])
        reply = wire.recv(RPC_IN)
        if reply[0] == "ok":
            return self.dec(reply[1])
        raise RuntimeError(f"a test-side function raised {reply[1]}")

    def target(self, t: list[Any]) -> Any:
        return self.ns[t[1]] if t[0] == "g" else self.refs[t[1]]

    def handle(self, msg: list[Any]) -> list[Any]:
        op = msg[0]
        if op == "names":
            return [
                "ok",
                {n: ("callable" if callable(self.ns[n]) else "value") for n in msg[1] if n in self.ns},
            ]
        if op == "get":
            return ["ok", self.enc(self.target(msg[1]))]
        if op == "getattr":
            return ["ok", self.enc(getattr(self.target(msg[1]), msg[2]))]
        if op == "call":
            fn, args, kwargs = self.target(msg[1]), self.dec(msg[2]), self.dec(msg[3])
            result = fn(*args, **kwargs)
            # Report mutable arguments back so in-place mutation is visible to the test.
            after = [self.enc(a) if isinstance(a, (list, dict, set, bytearray)) else None for a in args]
            return ["ok", self.enc(result), after]
        if op == "iter":
            return ["ok", self.remote(iter(self.target(msg[1])))]
        if op == "next":
            try:
                return ["ok", self.enc(next(self.target(msg[1])))]
            except StopIteration:
                return ["stop"]
        raise ValueError(f"unknown op {op!r}")


def serve(code: CodeType, name: str) -> None:
    """Run the program, then answer the runner's requests until it hangs up. Never returns."""
    ns: dict[str, Any] = {"__name__": name, "__builtins__": __builtins__}
    try:
        exec(code, ns)
    except BaseException as e:
        _flush()
        wire.send(RPC_OUT, ["err", error_payload(e)])
        os._exit(0)
    server = _Server(ns)
    wire.send(RPC_OUT, ["ready"])
    while True:
        try:
            msg = wire.recv(RPC_IN)
        except wire.WireError:
            break
        if msg[0] == "exit":
            break
        try:
            reply = server.handle(msg)
        except BaseException as e:
            reply = ["err", error_payload(e)]
        _flush()
        try:
            wire.send(RPC_OUT, reply)
        except (ValueError, TypeError, RecursionError, OverflowError) as e:
            wire.send(RPC_OUT, ["err", error_payload(e)])
    _flush()
    os._exit(0)


def run_main(code: CodeType) -> None:
    """stdin/stdout mode: run the program as __main__, report how it ended. Never returns."""
    ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    outcome: list[Any] = ["done"]
    try:
        exec(code, ns)
    except SystemExit:
        pass
    except BaseException as e:
        outcome = ["err", error_payload(e)]
    try:
        _flush()
    except BaseException as e:
        outcome = ["err", error_payload(e)]
    wire.send(RPC_OUT, outcome)
    os._exit(0)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError as e:
            if e.errno == 27:
                raise
        except BaseException:
            pass
