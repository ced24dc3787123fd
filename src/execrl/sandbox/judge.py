"""Run a job's test suite in the trusted runner and decide the verdict.

`run_job` is the runner's entry point (called by the fork-server for each job). It compiles
the program, runs every test of the suite against the candidate process (runner.py), compares on
plain data, and returns an `ExecutionResult`. The job's status is the status of its first test
that did not pass (so a program that fails its first test by a wrong answer and crashes on the
second is `failed`), `syntax_error` when it does not compile, `passed` when every test passed.
"""

from __future__ import annotations

import ast
import builtins
import copy
import importlib
import marshal
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import CodeType
from typing import Any

from execrl.sandbox.candidate import FILENAME
from execrl.sandbox.remote import UntrustedComparison
from execrl.sandbox.runner import (
    Candidate,
    CandidateError,
    CandidateGone,
    Context,
    Link,
    exception_class,
)
from execrl.types import AssertTests, CallTests, ErrorInfo, ExecutionResult, IOTests, Job, Status, TestRecord

HEAD = 200  # characters of expected/actual output kept in a test record
_HINTS = {
    "memory_exceeded": Status.MEMORY_EXCEEDED,
    "no_result": Status.NO_RESULT,
    "output_exceeded": Status.OUTPUT_EXCEEDED,
}


class _Lines:
    """Maps program line numbers to completion line numbers (1-based; None in the prompt)."""

    def __init__(self, job: Job) -> None:
        self.offset = job.program[: job.completion_start].count("\n")
        self.source = job.program.splitlines()

    def map(self, line: int | None) -> int | None:
        if line is None or line - self.offset < 1:
            return None
        return line - self.offset

    def error(self, payload: dict[str, Any]) -> ErrorInfo:
        frames = [int(x) for x in payload.get("frames", []) if isinstance(x, int)]
        tb = tuple(
            (mapped, self.source[f - 1].strip() if 0 < f <= len(self.source) else "")
            for f in frames
            if (mapped := self.map(f)) is not None
        )
        return ErrorInfo(
            type=str(payload.get("type", "Exception")),
            message=str(payload.get("message", "")),
            line=tb[-1][0] if tb else None,
            traceback=tb,
        )


def run_job(job: Job, ctx: Context, prepared: Plan | None = None) -> ExecutionResult:
    lines = _Lines(job)
    t0 = time.monotonic()
    tests = job.tests
    n_total = count_tests(tests)
    try:
        code = compile(job.program, FILENAME, "exec", dont_inherit=True)
    except SyntaxError as e:
        err = ErrorInfo(type=type(e).__name__, message=str(e.msg), line=lines.map(e.lineno))
        return ExecutionResult(Status.SYNTAX_ERROR, 0, n_total, error=err, wall_time=time.monotonic() - t0)
    except (ValueError, RecursionError, MemoryError, OverflowError) as e:  # null bytes, too deeply nested
        err = ErrorInfo(type=type(e).__name__, message=str(e))
        return ExecutionResult(Status.SYNTAX_ERROR, 0, n_total, error=err, wall_time=time.monotonic() - t0)

    ctx.code_fd = os.memfd_create("program")
    os.write(ctx.code_fd, marshal.dumps(code))
    try:
        return _run_suite(job, ctx, prepared, lines, t0)
    finally:
        os.close(ctx.code_fd)


def _run_suite(job: Job, ctx: Context, prepared: Plan | None, lines: _Lines, t0: float) -> ExecutionResult:
    tests = job.tests
    notes: list[str] = []
    if isinstance(tests, IOTests):
        records, cpu, rss = _run_io(job, tests, ctx, lines)
    else:
        p = prepared if prepared is not None else plan(tests)
        link = Link(job, ctx, sum(u.is_test for u in p.units))
        ns: dict[str, Any] = {"__name__": "__test__", "__builtins__": builtins}
        try:
            records = _run_units(link, p.units, ns, p.bind, lines)
        finally:
            link.finish_candidate()
        cpu, rss = link.cpu_total, link.max_rss_kb
        notes = sorted(link.notes)
    return _summarize(records, cpu, time.monotonic() - t0, rss / 1024, notes)


def count_tests(tests: AssertTests | IOTests | CallTests) -> int:
    if isinstance(tests, (IOTests, CallTests)):
        return len(tests.cases)
    n = len(tests.tests)
    if tests.check:
        try:
            tree = ast.parse(tests.setup)
        except SyntaxError:
            return n
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == tests.check:
                n += sum(any(isinstance(x, ast.Assert) for x in ast.walk(stmt)) for stmt in node.body)
    return n


def _summarize(
    records: list[TestRecord], cpu: float, wall: float, rss_mb: float, notes: list[str] | None = None
) -> ExecutionResult:
    passed = sum(r.status is Status.PASSED for r in records)
    first_bad = next((r for r in records if r.status is not Status.PASSED), None)
    status = Status.PASSED if first_bad is None else first_bad.status
    error = first_bad.error if first_bad is not None else None
    untrusted = sum(r.error is not None and r.error.type == "UntrustedComparison" for r in records)
    notes = list(notes or [])
    if untrusted:
        notes.insert(
            0,
            f"{untrusted} test(s) compared the program's objects in a way only the program's own __eq__ "
            "or ordering could decide (see the tests' errors); they are counted as failed (docs/sandbox.md)",
        )
    detail = "; ".join(notes)
    return ExecutionResult(
        status, passed, len(records), tuple(records), error, cpu, wall, rss_mb, detail=detail
    )


# ---------------------------------------------------------------------------------------------
# Assertion and call-based suites: a list of units, run in this process against the candidate.


@dataclass(frozen=True)
class Unit:
    """One statement group run in the test namespace. `calls`: the plain names it calls, innermost
    first (the order Python finishes the calls in)."""

    is_test: bool
    run: Callable[[dict[str, Any]], Any]
    calls: tuple[str, ...] = ()


Prepare = Callable[[Unit], None]  # run before each unit (after the candidate is up)
Binder = Callable[[Link, dict[str, Any]], Prepare | None]


@dataclass
class Plan:
    """A suite compiled for running. Pure (nothing executed), so the fork-server caches it across
    jobs that share tests — every sample of a task — and each runner inherits it by fork."""

    units: list[Unit]
    bind: Binder


def _exec_unit(code: CodeType) -> Callable[[dict[str, Any]], Any]:
    return lambda ns: exec(code, ns)


def _names_loaded(trees: Iterable[ast.AST]) -> set[str]:
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                names.add(node.id)
    return names - set(dir(builtins))


def _names_defined(trees: Iterable[ast.AST]) -> set[str]:
    """Names the trusted code binds itself (anywhere): these never resolve to the program's."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                names.add(node.name)
    return names


def _calls(tree: ast.AST) -> tuple[str, ...]:
    """Names called as `name(...)`, innermost call first: in `set(f(x)) == set(y)`, f, set, set."""
    out: list[str] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            visit(child)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            out.append(node.func.id)

    visit(tree)
    return tuple(out)


def plan(tests: AssertTests | CallTests) -> Plan:
    return _assert_plan(tests) if isinstance(tests, AssertTests) else _call_plan(tests)


def _assert_plan(t: AssertTests) -> Plan:
    units: list[Unit] = []
    trusted = compile(t.helpers + "\n" + t.setup, "<test>", "exec", dont_inherit=True)
    trees: list[ast.AST] = [ast.parse(t.helpers), ast.parse(t.setup)]
    candidate_param: str | None = None
    if t.check:
        check = next((n for n in trees[1].body if isinstance(n, ast.FunctionDef) and n.name == t.check), None)  # type: ignore[attr-defined]
        if check is None:
            raise ValueError(f"the test code defines no function {t.check!r}")
        candidate_param = check.args.args[0].arg if check.args.args else None
        for stmt in check.body:
            is_test = any(isinstance(n, ast.Assert) for n in ast.walk(stmt))
            mod = ast.Module(body=[stmt], type_ignores=[])
            code = compile(mod, "<test>", "exec", dont_inherit=True)
            units.append(Unit(is_test, _exec_unit(code), _calls(stmt)))
    for src in t.tests:
        tree = ast.parse(src)
        trees.append(tree)
        units.append(Unit(True, _exec_unit(compile(tree, "<test>", "exec", dont_inherit=True)), _calls(tree)))
    entry = t.entry_point
    defined = _names_defined(trees)
    shadowable = {n for u in units for n in u.calls if hasattr(builtins, n)} - defined
    query = sorted(_names_loaded(trees) | ({entry} if entry else set()) | shadowable)

    def bind(link: Link, ns: dict[str, Any]) -> Prepare:
        """Bind the candidate's globals that the tests use, then run the trusted code over them."""
        kinds = _kinds(link.request(["names", query]), query)
        values: list[str] = []
        for name, kind in kinds.items():
            if name in shadowable and name != entry:
                continue  # a builtin name: bound per test, below
            if kind == "module":  # the runner's own module, never the candidate's (possibly patched) one
                try:
                    ns[name] = importlib.import_module(name)
                except ImportError:
                    pass
            elif isinstance(kind, list):  # one of the program's exception classes
                ns[name] = exception_class(kind[1], kind[2])
            elif kind in ("callable", "class"):
                ns[name] = link.global_proxy(name)
            else:
                ns[name] = link.request(["get", ["g", name]])
                if name not in defined:
                    values.append(name)
        if candidate_param is not None and entry is not None:
            ns[candidate_param] = link.global_proxy(entry) if entry in kinds else _missing(entry)
        exec(trusted, ns)
        program_fns = {n for n, k in kinds.items() if k not in ("module", "value")} - defined
        shadows = {n for n in shadowable if n in kinds and kinds[n] in ("callable", "class") and n != entry}

        def refresh() -> None:
            for name in values:
                ns[name] = link.request(["get", ["g", name]], after_call=False)

        if values:  # the program's globals the tests read, as they are after every call
            link.after_call = refresh

        def prepare(unit: Unit) -> None:
            """Before each test: the program's globals as they are now, and its builtin-named
            functions where the test is about them (`_subject`)."""
            refresh()
            subject = _subject(unit.calls, program_fns, shadows, candidate_param)
            for name in shadows:
                if name == subject:
                    ns[name] = link.global_proxy(name)
                else:
                    ns.pop(name, None)
                    if name in unit.calls:
                        link.notes.add(
                            f"the program defines {name}(), a builtin's name; a test that calls {name} around "
                            f"another of the program's functions used Python's {name}, not the program's"
                        )

        return prepare

    return Plan(units, bind)


def _subject(
    calls: tuple[str, ...], program_fns: set[str], shadows: set[str], param: str | None
) -> str | None:
    """The builtin-named function of the program that a test is about, if any.

    In one process, a program's `def sum(a, b)` shadows the builtin for the test too. Here it does
    so only for the test's *subject*: a test that calls none of the program's other functions
    (nor `candidate`) is about the first builtin-named program function it calls, innermost first
    (`assert sum(1, 2) == 3`, `assert set(filter(xs, 2)) == {...}` with the program's `filter`). Every
    other builtin name keeps its builtin meaning, so a program cannot redefine `abs`, `len`,
    `set`, `sorted` or `isinstance` to judge a test of its real function (`abs(f(x) - y) < 1e-6`)."""
    if any((c in program_fns and c not in shadows) or c == param for c in calls):
        return None
    return next((c for c in calls if c in shadows), None)


def _kinds(reply: Any, query: list[str]) -> dict[str, Any]:
    """The candidate's answer to "which of these names do you define?", keeping only names we asked
    about and known kinds (an exception class comes as ["exception", builtin base, qualnames])."""
    if not isinstance(reply, dict):
        raise CandidateGone(Status.FAILED, "the candidate broke the protocol")
    asked = set(query)
    out: dict[str, Any] = {}
    for n, k in reply.items():
        if n not in asked:
            continue
        if k in ("callable", "class", "value", "module") or (
            isinstance(k, list)
            and len(k) == 3
            and k[0] == "exception"
            and isinstance(k[1], str)
            and isinstance(k[2], list)
            and all(isinstance(c, str) for c in k[2])
        ):
            out[n] = k
    return out


def _missing(name: str) -> Callable[..., Any]:
    def missing(*args: Any, **kwargs: Any) -> Any:
        raise CandidateGone(Status.RUNTIME_ERROR, f"name {name!r} is not defined by the program")

    return missing


def _call_plan(t: CallTests) -> Plan:
    def case_unit(args: tuple[Any, ...], expected: Any) -> Callable[[dict[str, Any]], Any]:
        def run(ns: dict[str, Any]) -> None:
            result = ns["__fn__"]()(*copy.deepcopy(args))  # the plan is shared: never let a call mutate it
            ns["__actual__"] = result
            if not _matches(result, expected, t.float_tol):
                raise AssertionError(f"expected {_head(repr(expected))}, got {_head(repr(result))}")

        return run

    def bind(link: Link, ns: dict[str, Any]) -> None:
        kinds = _kinds(link.request(["names", ["Solution", t.fn_name]]), ["Solution", t.fn_name])

        def resolve() -> Any:
            if "Solution" in kinds:  # LeetCode style: a method of Solution()
                return getattr(link.global_proxy("Solution")(), t.fn_name)
            if t.fn_name not in kinds:
                raise CandidateGone(Status.RUNTIME_ERROR, f"the program defines no function {t.fn_name!r}")
            return link.global_proxy(t.fn_name)

        ns["__fn__"] = resolve

    return Plan([Unit(True, case_unit(c.args, c.expected)) for c in t.cases], bind)


def _run_units(
    link: Link, units: list[Unit], ns: dict[str, Any], bind: Binder, lines: _Lines
) -> list[TestRecord]:
    records: list[TestRecord] = []
    prepare: Prepare | None = None
    bound = False
    carried: TestRecord | None = None  # a failed setup statement is charged to the next test
    if not any(u.is_test for u in units):
        units = [*units, Unit(True, lambda ns: None)]  # no tests: the verdict is whether the program loads
    for unit in units:
        start = time.monotonic()
        status, error, cpu = Status.PASSED, None, 0.0
        try:
            link.begin()
            if not bound:
                prepare = bind(link, ns)
                bound = True
            if prepare is not None:
                prepare(unit)
            unit.run(ns)
        except CandidateError as e:
            status, error = _program_error(e.payload, lines)
        except AssertionError as e:
            status, error = Status.FAILED, ErrorInfo("AssertionError", _head(str(e), 1000))
        except CandidateGone as g:
            status, error = g.status, ErrorInfo(_GONE_TYPES.get(g.status, "Error"), g.message)
        except UntrustedComparison as e:
            status, error = Status.FAILED, ErrorInfo("UntrustedComparison", _head(str(e), 1000))
        except Exception as e:  # the test itself raised, e.g. on a wrong-typed result: a wrong answer
            status, error = Status.FAILED, ErrorInfo(type(e).__name__, _head(str(e), 1000))
        try:
            cpu = link.end()
        except CandidateGone as g:
            status, error = g.status, ErrorInfo(_GONE_TYPES.get(g.status, "Error"), g.message)
        if status is Status.TIMEOUT:
            link.timeouts += 1
        record = TestRecord(status, cpu, time.monotonic() - start, error)
        actual = ns.pop("__actual__", None)
        if actual is not None:
            record = TestRecord(status, cpu, record.wall_time, error, actual_head=_head(repr(actual)))
        if not unit.is_test:
            if status is not Status.PASSED and carried is None:
                carried = record
            continue
        if carried is not None and status is Status.PASSED:
            record = carried
        carried = None
        records.append(record)
    return records


def _program_error(payload: dict[str, Any], lines: _Lines) -> tuple[Status, ErrorInfo]:
    """An exception raised in the candidate process, judged as one process would see it: a runtime
    error when its traceback enters the program's code (the program crashed, its own `assert`
    included); otherwise the error is the test's (a call with the wrong arguments, `len()` of a
    result that has none): a wrong answer, as for any exception the test raises itself."""
    error = lines.error(payload)
    hint = _HINTS.get(str(payload.get("hint")))
    if hint is not None:
        return hint, error
    frames = payload.get("frames")
    return (Status.RUNTIME_ERROR if frames else Status.FAILED), error


_GONE_TYPES = {
    Status.TIMEOUT: "Timeout",
    Status.OUTPUT_EXCEEDED: "OutputLimitExceeded",
    Status.NO_RESULT: "NoResult",
    Status.RUNTIME_ERROR: "RuntimeError",
    Status.MEMORY_EXCEEDED: "MemoryError",
    Status.FAILED: "ProtocolError",
    Status.SANDBOX_ERROR: "SandboxError",
}


def _head(text: str, n: int = HEAD) -> str:
    return text if len(text) <= n else text[:n] + "…"


def _matches(actual: Any, expected: Any, tol: float) -> bool:
    """APPS-style equality on plain data: tuples equal lists, floats within `tol`, and a result
    equal to the only element of a one-element expected list counts."""
    if _equal(actual, expected, tol):
        return True
    return isinstance(expected, list) and len(expected) == 1 and _equal(actual, expected[0], tol)


def _equal(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, tuple):
        a = list(a)
    if isinstance(b, tuple):
        b = list(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k], tol) for k in a)
    numbers = (int, float)
    if type(a) in numbers and type(b) in numbers and (type(a) is float or type(b) is float):
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    return bool(a == b)


# ---------------------------------------------------------------------------------------------
# stdin/stdout suites: a fresh candidate per case; outputs compared here.


def _normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def output_matches(actual: str, expected: str, tol: float) -> bool:
    a, e = _normalize(actual), _normalize(expected)
    if a == e:
        return True
    at, et = a.split(), e.split()
    if len(at) != len(et) or not at:
        return False
    for x, y in zip(at, et):
        if x == y:
            continue
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            return False
        if not math.isclose(fx, fy, rel_tol=tol, abs_tol=tol):
            return False
    return True


def _run_io(job: Job, t: IOTests, ctx: Context, lines: _Lines) -> tuple[list[TestRecord], float, int]:
    records: list[TestRecord] = []
    cpu_total, rss = 0.0, 0
    limit = job.limits.output_mb << 20
    timeouts = 0
    for case in t.cases:
        start = time.monotonic()
        if timeouts >= job.limits.max_timeouts:
            skipped = ErrorInfo("Timeout", f"not run: {timeouts} tests already timed out")
            records.append(TestRecord(Status.TIMEOUT, 0.0, 0.0, skipped, expected_head=_head(case.output)))
            continue
        cand = Candidate(job, ctx, main=True, stdin_data=case.input, cpu_budget=job.limits.timeout)
        cpu0, deadline = cand.arm(job.limits.timeout)
        status = Status.PASSED
        error: ErrorInfo | None = None
        try:
            outcome = cand.recv(deadline, cpu0)
            if isinstance(outcome, list) and outcome and outcome[0] == "err" and isinstance(outcome[1], dict):
                status, error = (
                    _HINTS.get(str(outcome[1].get("hint")), Status.RUNTIME_ERROR),
                    lines.error(outcome[1]),
                )  # whole-program runs: any uncaught exception is the program's crash
            elif outcome != ["done"]:
                status, error = Status.FAILED, ErrorInfo("ProtocolError", "the candidate broke the protocol")
            cand.reap()
        except CandidateGone as g:
            clean_exit = (
                cand.status is not None and os.WIFEXITED(cand.status) and os.WEXITSTATUS(cand.status) == 0
            )
            if not (
                g.status is Status.NO_RESULT and clean_exit
            ):  # os._exit(0) after printing: judge the output
                status, error = g.status, ErrorInfo(_GONE_TYPES.get(g.status, "Error"), g.message)
        actual = cand.output(limit)
        cand.close()
        cpu = cand.cpu_final
        rss = max(rss, cand.max_rss_kb)
        cpu_total += cpu
        if status is Status.PASSED and cpu > job.limits.timeout:
            status, error = (
                Status.TIMEOUT,
                ErrorInfo("Timeout", f"CPU time limit of {job.limits.timeout:g}s exceeded"),
            )
        if status is Status.PASSED and not output_matches(actual, case.output, t.float_tol):
            status = Status.FAILED
        timeouts += status is Status.TIMEOUT
        records.append(
            TestRecord(
                status,
                cpu,
                time.monotonic() - start,
                error,
                expected_head=_head(case.output),
                actual_head=_head(actual),
            )
        )
    return records, cpu_total, rss
