"""The candidate process: the only place where model-written code runs.

Forked by the spawner (spawner.py) — a process that never saw a test — it confines itself
(`confine`) before touching the program, then either serves calls from the runner (`serve`:
assertion and call-based tests) or runs the program as `__main__` (`run_main`: stdin/stdout tests).
Its memory holds the spawner's warm imports and its own program, nothing else: no test code, no
expected output, no other job. Nothing it says is trusted: the runner only accepts plain data
from it (wire.py) and judges on that. Its descriptors are exactly 0-4, all created by the runner
(stdin, stdout and stderr are memfds, 3 and 4 its RPC pipes); it cannot create processes, open
sockets or signal anyone but itself (seccomp), reach a network (network namespace), or write
outside its job directory (Landlock and a read-only root, inherited from the spawner).

Protocol: the first frame is always `["confined"]`, sent before any program code runs. Exit code
CONFINE_FAILED before that frame means a layer failed to apply (a sandbox error: the program never
ran); after it, exit codes are the program's business.
"""

from __future__ import annotations

import marshal
import os
import resource
import signal
import sys
from dataclasses import dataclass
from types import CodeType, ModuleType, TracebackType
from typing import Any

from execrl.sandbox import namespaces, wire
from execrl.sandbox.seccomp import SeccompFilter
from execrl.types import Limits

CONFINE_FAILED = 121
HARNESS_FAILED = 122  # the harness itself broke after the program ran (e.g. it rebound builtins)
FILENAME = "<candidate>"
RPC_IN, RPC_OUT, CODE = 3, 4, 5  # fixed descriptor numbers inside the candidate
MAX_INT_DIGITS = 50_000


@dataclass
class Confinement:
    """Per-candidate layers, prepared once (the shared ones are applied to the spawner itself)."""

    seccomp: SeccompFilter | None = None
    nproc: int | None = None  # only set when the sandbox runs under its own uid


def confine(c: Confinement, limits: Limits, jobdir: str, fds: list[int], cpu_hard: int) -> CodeType:
    """Apply the per-process layers to the calling (freshly forked) process; return the program.

    `fds` are [stdin, stdout, stderr, rpc_in, rpc_out, code] from the runner. `cpu_hard` caps the
    process's whole CPU time; the runner re-arms the soft limit per test. Exits CONFINE_FAILED on
    any failure, before the program runs."""
    try:
        os.setpgid(0, 0)  # its own group, so it and anything it started can be killed together
        namespaces.set_parent_death_signal(signal.SIGKILL)
        dups = [os.dup(fd) for fd in fds]  # the targets 0-5 may overlap the sources
        for dst, src in enumerate(dups):
            os.dup2(src, dst)
        os.closerange(CODE + 1, 1 << 16)
        os.chdir(jobdir)
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
        code = marshal.loads(os.pread(CODE, os.fstat(CODE).st_size, 0))
        os.close(CODE)
        if c.seccomp is not None:
            c.seccomp.install(os.getpid())
        wire.send(RPC_OUT, ["confined"])
    except BaseException as e:  # never run the program half-confined
        try:
            os.write(2, f"confinement failed: {type(e).__name__}: {e}\n".encode())
        finally:
            os._exit(CONFINE_FAILED)
    sys.set_int_max_str_digits(MAX_INT_DIGITS)
    sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1 << 16)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)
    sys.argv = ["solution.py"]
    return code  # type: ignore[no-any-return]


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
    elif isinstance(e, OSError) and e.errno == 12:  # ENOMEM: mmap past RLIMIT_AS
        hint = "memory_exceeded"
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
            return ["ok", {n: _kind(self.ns[n]) for n in msg[1] if n in self.ns}]
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


def _kind(v: Any) -> str:
    if isinstance(v, ModuleType):
        return "module"
    return "callable" if callable(v) else "value"


def serve(code: CodeType, name: str) -> None:
    """Run the program, then answer the runner's requests until it hangs up. Never returns."""
    ns: dict[str, Any] = {"__name__": name, "__builtins__": __builtins__}
    try:
        exec(code, ns)
        _flush()
    except BaseException as e:
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
        try:
            _flush()
        except BaseException as e:  # EFBIG: output limit reached while the call printed
            reply = ["err", error_payload(e)]
        try:
            wire.send(RPC_OUT, reply)
        except (ValueError, TypeError, RecursionError, OverflowError) as e:
            wire.send(RPC_OUT, ["err", error_payload(e)])
    os._exit(0)


def run_main(code: CodeType) -> None:
    """stdin/stdout mode: run the program as __main__, report how it ended. Never returns."""
    ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    outcome: list[Any] = ["done"]
    try:
        exec(code, ns)
    except SystemExit as e:
        if e.code not in (None, 0):  # as judges do: a non-zero exit status is a runtime error
            outcome = ["err", error_payload(e) | {"hint": "runtime_error"}]
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
