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

import builtins as builtins_module
import json
import marshal
import operator
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
    base, classes = _exception_lineage(type(e))
    try:
        args = wire.encode(tuple(e.args)[:20], _refuse) if isinstance(e.args, tuple) else None
        if args is not None and len(json.dumps(args)) > 4000:
            args = None
    except BaseException:
        args = None  # not plain data: the message alone goes
    return {
        "args": args,
        "type": type(e).__name__[:200],
        "message": message,
        "frames": frames[-20:],
        "hint": hint,
        "base": base,
        "classes": classes,
    }


def _refuse(obj: Any) -> Any:
    raise TypeError("not plain data")


def _exception_lineage(cls: type) -> tuple[str, list[str]]:
    """(the builtin exception the class derives from, the program's classes on the way, most
    derived first, by qualified name): lets a test's `except ValueError` or `except MyError` catch
    what the program raised, as it would in one process."""
    classes: list[str] = []
    for c in cls.__mro__:
        if c.__module__ == "builtins" and getattr(builtins_module, c.__name__, None) is c:
            return c.__name__, classes[:20]
        classes.append(str(getattr(c, "__qualname__", c.__name__))[:200])
    return "Exception", classes[:20]


# ---------------------------------------------------------------------------------------------
# Serving calls (assertion and call-based tests).


class _RunnerFunction:
    """A callable living in the runner (e.g. a `key=` lambda a test passes in)."""

    def __init__(self, fid: int, call: Any) -> None:
        self._fid, self._call = fid, call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self._fid, args, kwargs)


class _Server:
    """Answers the runner's requests on the program's namespace. Everything it sends back is
    plain data or a reference; nothing the runner sends here is expected output (the runner keeps
    comparisons to itself — see remote.Remote)."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.ns = namespace
        self.refs: dict[int, Any] = {}

    def remote(self, obj: Any) -> Any:
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(obj, numpy.generic):  # np.int64(6) is the 6 it holds
            return self.enc(obj.item())
        rid = id(obj)
        self.refs[rid] = obj
        try:
            name = type(obj).__name__[:100]
        except BaseException:
            name = "object"
        return ["r", rid, name]

    def resolve(self, marker: list[Any]) -> Any:
        tag = marker[0]
        if tag == "r":
            return self.refs[marker[1]]
        if tag == "g":
            return self.ns[marker[1]]
        if tag == "B":
            return wire.BUILTINS[marker[1]]
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
        if op == "call":
            fn, args, kwargs = self.target(msg[1]), self.dec(msg[2]), self.dec(msg[3])
            result = fn(*args, **kwargs)
            # Report mutable arguments back so in-place mutation is visible to the test.
            after = [self.enc(a) if isinstance(a, (list, dict, set, bytearray)) else None for a in args]
            return ["ok", self.enc(result), after]
        obj = self.target(msg[1])
        if op in ("get", "getattr", "getitem"):
            if op == "getattr":
                obj = getattr(obj, msg[2])
            elif op == "getitem":
                obj = obj[self.dec(msg[2])]
            return ["ok", self.enc(obj)]
        if op == "setattr":
            setattr(obj, msg[2], self.dec(msg[3]))
        elif op == "delattr":
            delattr(obj, msg[2])
        elif op == "setitem":
            obj[self.dec(msg[2])] = self.dec(msg[3])
        elif op == "delitem":
            del obj[self.dec(msg[2])]
        elif op == "iter":
            return ["ok", self.enc(iter(obj))]
        elif op == "next":
            try:
                return ["ok", self.enc(next(obj))]
            except StopIteration:
                return ["stop"]
        elif op in _UNARY:
            return ["ok", _UNARY[op](obj)]
        elif op == "isinstance":  # the program's class checks one of the program's objects
            return ["ok", isinstance(self.target(msg[2]), obj) if msg[2][0] == "r" else False]
        elif op == "compare":  # two of the program's own objects: `a == b`, `a < b`, ...
            other = self.target(msg[3])
            return ["ok", bool(_COMPARE[msg[2]](obj, other)), _defines(obj, _DUNDER[msg[2]])]
        elif op == "binop":  # two of the program's own objects: `a + b`, ...
            return ["ok", self.enc(getattr(operator, _BINOPS[msg[2]])(obj, self.target(msg[3])))]
        elif op == "defines":  # does the object's class define this operator itself?
            return ["ok", _defines(obj, _DUNDER[msg[2]])]
        elif op == "state":  # what structural equality compares: the class and the attributes
            return ["ok", self.enc(_state(obj))]
        else:
            raise ValueError(f"unknown op {op!r}")
        return ["ok", None]


_UNARY = {
    "len": lambda o: operator.index(len(o)),
    "bool": lambda o: bool(o),
    "str": lambda o: str.__str__(str(o)),
    "repr": lambda o: str.__str__(repr(o)),
    "hash": lambda o: int(hash(o)),
}
_COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}
_BINOPS = {name: name + "_" if name in ("and", "or") else name for name in wire.BINARY_OPERATORS}
_DUNDER = {k: f"__{k}__" for k in _COMPARE} | {"contains": "__contains__"}


def _defines(obj: Any, dunder: str) -> bool:
    """True when the object's class (not `object`) implements `dunder`."""
    impl = getattr(type(obj), dunder, None)
    return impl is not None and impl is not getattr(object, dunder, None)


def _state(obj: Any) -> list[Any]:
    """[id of the class, class qualname, attributes]: `vars(obj)`, or its slots, or None."""
    cls = type(obj)
    attrs: dict[str, Any] | None = None
    d = getattr(obj, "__dict__", None)
    if isinstance(d, dict):
        attrs = dict(d)
    slots = [s for c in cls.__mro__ for s in c.__dict__.get("__slots__", ()) if isinstance(s, str)]
    if slots:
        attrs = attrs or {}
        for name in slots:
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                attrs[name] = getattr(obj, name)
    return [id(cls), cls.__qualname__, attrs]


def _kind(v: Any) -> Any:
    if isinstance(v, ModuleType):
        return "module"
    if isinstance(v, type):
        if issubclass(v, BaseException):
            base, classes = _exception_lineage(v)
            return ["exception", base, classes]
        return "class"
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
    """stdin/stdout mode: run the program as __main__, then shut down as the interpreter does
    (wait for non-daemon threads, run `atexit` handlers), and report how it ended. Never returns."""
    ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    outcome: list[Any] = ["done"]
    try:
        exec(code, ns)
    except SystemExit as e:
        if e.code not in (None, 0):  # as judges do: a non-zero exit status is a runtime error
            outcome = ["err", error_payload(e) | {"hint": "runtime_error"}]
    except BaseException as e:
        outcome = ["err", error_payload(e)]
    _shutdown()
    try:
        _flush()
    except BaseException as e:
        outcome = ["err", error_payload(e)]
    wire.send(RPC_OUT, outcome)
    os._exit(0)


def _shutdown() -> None:
    """What `Py_FinalizeEx` does before the process ends, in its order: join the non-daemon threads
    (the `threading.Thread(target=main).start()` idiom for deep recursion does all its work there),
    then run the `atexit` handlers. Their own errors are printed and ignored, as Python does."""
    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            threading._shutdown()  # type: ignore[attr-defined]
        except BaseException:
            pass
    try:
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        pass


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError as e:
            if e.errno == 27:
                raise
        except BaseException:
            pass
