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
from execrl.sandbox.runner import Candidate, CandidateError, CandidateGone, Context, Link
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
    if isinstance(tests, IOTests):
        records, cpu, rss = _run_io(job, tests, ctx, lines)
    else:
        p = prepared if prepared is not None else plan(tests)
        link = Link(job, ctx, sum(1 for is_test, _ in p.units if is_test))
        ns: dict[str, Any] = {"__name__": "__test__", "__builtins__": builtins}
        try:
            records = _run_units(link, p.units, ns, p.bind, lines)
        finally:
            link.finish_candidate()
        cpu, rss = link.cpu_total, link.max_rss_kb
    return _summarize(records, cpu, time.monotonic() - t0, rss / 1024)


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


def _summarize(records: list[TestRecord], cpu: float, wall: float, rss_mb: float) -> ExecutionResult:
    passed = sum(r.status is Status.PASSED for r in records)
    first_bad = next((r for r in records if r.status is not Status.PASSED), None)
    status = Status.PASSED if first_bad is None else first_bad.status
    error = first_bad.error if first_bad is not None else None
    return ExecutionResult(status, passed, len(records), tuple(records), error, cpu, wall, rss_mb)


# ---------------------------------------------------------------------------------------------
# Assertion and call-based suites: a list of units, run in this process against the candidate.

Unit = tuple[bool, Callable[[dict[str, Any]], Any]]  # (counts as a test, run it in the namespace)
Binder = Callable[[Link, dict[str, Any]], None]


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
            units.append((is_test, _exec_unit(compile(mod, "<test>", "exec", dont_inherit=True))))
    for src in t.tests:
        tree = ast.parse(src)
        trees.append(tree)
        units.append((True, _exec_unit(compile(tree, "<test>", "exec", dont_inherit=True))))
    entry = t.entry_point
    query = sorted(_names_loaded(trees) | ({entry} if entry else set()))

    def bind(link: Link, ns: dict[str, Any]) -> None:
        """Bind the candidate's globals that the tests use, then run the trusted code over them."""
        kinds = _kinds(link.request(["names", query]), query)
        for name, kind in kinds.items():
            if kind == "module":  # the runner's own module, never the candidate's (possibly patched) one
                try:
                    ns[name] = importlib.import_module(name)
                except ImportError:
                    pass
            elif kind == "callable":
                ns[name] = link.global_proxy(name)
            else:
                ns[name] = link.request(["get", ["g", name]])
        if candidate_param is not None and entry is not None:
            ns[candidate_param] = link.global_proxy(entry) if entry in kinds else _missing(entry)
        exec(trusted, ns)

    return Plan(units, bind)


def _kinds(reply: Any, query: list[str]) -> dict[str, str]:
    """The candidate's answer to "which of these names do you define?", keeping only names we asked
    about (never e.g. `abs` or `set`, which would shadow the runner's builtins) and known kinds."""
    if not isinstance(reply, dict):
        raise CandidateGone(Status.FAILED, "the candidate broke the protocol")
    asked = set(query)
    return {n: k for n, k in reply.items() if n in asked and k in ("callable", "value", "module")}


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

    return Plan([(True, case_unit(c.args, c.expected)) for c in t.cases], bind)


def _run_units(
    link: Link, units: list[Unit], ns: dict[str, Any], bind: Binder, lines: _Lines
) -> list[TestRecord]:
    records: list[TestRecord] = []
    bound = False
    carried: TestRecord | None = None  # a failed setup statement is charged to the next test
    if not any(is_test for is_test, _ in units):
        units = [*units, (True, lambda ns: None)]  # no tests: the verdict is whether the program loads
    for is_test, run in units:
        start = time.monotonic()
        status, error, cpu = Status.PASSED, None, 0.0
        try:
            link.begin()
            if not bound:
                bind(link, ns)
                bound = True
            run(ns)
        except AssertionError as e:
            status, error = Status.FAILED, ErrorInfo("AssertionError", _head(str(e), 1000))
        except CandidateError as e:
            status, error = (
                _HINTS.get(str(e.payload.get("hint")), Status.RUNTIME_ERROR),
                lines.error(e.payload),
            )
        except CandidateGone as g:
            status, error = g.status, ErrorInfo(_GONE_TYPES.get(g.status, "Error"), g.message)
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
        if not is_test:
            if status is not Status.PASSED and carried is None:
                carried = record
            continue
        if carried is not None and status is Status.PASSED:
            record = carried
        carried = None
        records.append(record)
    return records


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
                )
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
