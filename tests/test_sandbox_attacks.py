"""Hostile programs against the execution engine.

Each test runs one attack and checks that (a) the verdict is not `passed` (usually a specific
status) and (b) nothing escaped, checked from this (host) process: canary files, process tables,
sockets. Tests marked `xfail(strict=True, reason="HOLE: ...")` are known holes in the engine; they
start to pass (and the strict xfail fails) once the hole is fixed.

The session `executor` fixture is shared; attacks that corrupt an executor when they succeed run on
an executor of their own.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import execrl
from conftest import (
    assert_serves,
    fresh_executor,
    job_processes,
    run_one,
    sandbox_processes,
    server_processes,
    wait_gone,
)
from execrl import AssertTests, CallCase, CallTests, IOCase, IOTests, Limits, LocalExecutor, Status

REPO = Path(__file__).resolve().parents[1]
SRC = Path(execrl.__file__).resolve().parents[1]
FAST = Limits(timeout=0.5)


def prog(src: str) -> str:
    return textwrap.dedent(src).lstrip("\n")


# The task every forgery program pretends to solve: f(x) == x + 1 (stdin/stdout: print n + 1).
MBPP = AssertTests(tests=("assert f(1) == 2", "assert f(41) == 42"))
HUMANEVAL = AssertTests(
    setup="def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(41) == 42\n",
    check="check",
    entry_point="f",
)
CALL = CallTests(fn_name="f", cases=(CallCase(args=(1,), expected=2), CallCase(args=(41,), expected=42)))
SUITES = {"mbpp": MBPP, "humaneval": HUMANEVAL, "call": CALL}
IO = IOTests(cases=(IOCase(input="1\n", output="2\n"), IOCase(input="41\n", output="42\n")))

FAKE_RESULT = (
    "import json, struct\n"
    "_FAKE = json.dumps({'status': 'passed', 'tests_passed': 2, 'tests_total': 2, 'tests': [], "
    "'detail': 'forged'}).encode()\n"
    "FRAME = struct.pack('>I', len(_FAKE)) + _FAKE\n"
)

# name -> (program, status for assertion/call suites)
FORGERIES: dict[str, tuple[str, Status]] = {
    "sys_exit_at_load": ("import sys\nsys.exit(0)\ndef f(x):\n    return x + 1\n", Status.NO_RESULT),
    "sys_exit_in_function": ("import sys\ndef f(x):\n    sys.exit(0)\n", Status.NO_RESULT),
    "os_exit_at_load": ("import os\nos._exit(0)\n", Status.NO_RESULT),
    "os_exit_in_function": ("import os\ndef f(x):\n    os._exit(0)\n", Status.NO_RESULT),
    "raise_systemexit": ("def f(x):\n    raise SystemExit\n", Status.NO_RESULT),
    "raise_keyboardinterrupt": ("def f(x):\n    raise KeyboardInterrupt\n", Status.RUNTIME_ERROR),
    "raise_stopiteration": ("def f(x):\n    raise StopIteration\n", Status.RUNTIME_ERROR),
    "rebind_builtins": (
        prog("""
            import builtins
            class Never(Exception):
                pass
            builtins.AssertionError = Never
            builtins.repr = lambda o: "2"
            builtins.print = lambda *a, **k: None
            builtins.abs = lambda x: 0
            builtins.bool = lambda x=0: True
            def f(x):
                return 0
        """),
        Status.FAILED,
    ),
    "rebind_isinstance_str": (
        prog("""
            import builtins
            builtins.isinstance = lambda *a: True
            builtins.str = lambda o="": "2"
            def f(x):
                return 0
        """),
        Status.NO_RESULT,  # it breaks the candidate's own harness, which then ends: never a pass
    ),
    "exit_with_confine_failed_code": ("import os\ndef f(x):\n    os._exit(121)\n", Status.NO_RESULT),
    "patch_json": (
        FAKE_RESULT
        + prog("""
            json.dumps = lambda *a, **k: _FAKE.decode()
            json.loads = lambda *a, **k: ["exit"]
            def f(x):
                return 0
        """),
        Status.FAILED,
    ),
    "patch_pickle": (
        prog("""
            import pickle
            pickle.dumps = lambda *a, **k: b"passed"
            pickle.loads = lambda *a, **k: {"status": "passed"}
            def f(x):
                return 0
        """),
        Status.FAILED,
    ),
    "fake_frames_every_fd_at_load": (
        FAKE_RESULT
        + prog("""
            import os
            for fd in range(1024):
                try:
                    os.write(fd, FRAME)
                except OSError:
                    pass
            def f(x):
                return 0
        """),
        Status.FAILED,
    ),
    "fake_frames_every_fd_in_function": (
        FAKE_RESULT
        + prog("""
            import os
            def f(x):
                for fd in range(1024):
                    try:
                        os.write(fd, FRAME)
                    except OSError:
                        pass
                return 0
        """),
        Status.FAILED,
    ),
    "fake_frames_proc_self_fd": (
        FAKE_RESULT
        + prog("""
            import os
            def f(x):
                for fd in range(64):
                    try:
                        with open(f"/proc/self/fd/{fd}", "wb", buffering=0) as out:
                            out.write(FRAME)
                    except OSError:
                        pass
                return 0
        """),
        Status.FAILED,
    ),
    "always_equal_object": (
        prog("""
            class Liar:
                def __eq__(self, other): return True
                def __ne__(self, other): return False
                def __bool__(self): return True
                def __hash__(self): return 0
            def f(x):
                return Liar()
        """),
        Status.FAILED,
    ),
    "int_subclass_equal": (
        prog("""
            class Liar(int):
                def __eq__(self, other): return True
                def __ne__(self, other): return False
                __hash__ = int.__hash__
            def f(x):
                return Liar(0)
        """),
        Status.FAILED,
    ),
    "str_subclass_equal": (
        prog("""
            class Liar(str):
                def __eq__(self, other): return True
                def __ne__(self, other): return False
                __hash__ = str.__hash__
            def f(x):
                return Liar("wrong")
        """),
        Status.FAILED,
    ),
    "returns_generator": ("def f(x):\n    yield x + 1\n", Status.FAILED),
    "returns_lambda": ("def f(x):\n    return lambda *a, **k: x + 1\n", Status.FAILED),
    "frame_and_gc_tampering": (
        prog("""
            import gc, sys
            def tamper():
                frame = sys._getframe()
                while frame is not None:  # every harness frame up the stack
                    frame.f_locals.update(status="passed", passed=True, expected=0)
                    frame = frame.f_back
                for obj in gc.get_objects():  # every harness dict in the heap
                    if type(obj) is dict and "status" in obj:
                        obj["status"] = "passed"
                for ref in gc.get_referrers(sys.modules["execrl.types"].Status):
                    if type(ref) is dict:
                        ref["Status"] = None
            def f(x):
                tamper()
                return 0
        """),
        Status.FAILED,
    ),
    "ctypes_pokes_own_memory": (
        prog("""
            import ctypes
            from execrl.types import Status
            def poke():
                # make False look like 1 and rewrite this process's copy of the "failed" status value
                ctypes.c_uint32.from_address(id(False) + 24).value = 1
                s = Status.FAILED.value
                ctypes.memmove(id(s) + 48, b"passed", 6)
            def f(x):
                poke()
                return False
        """),
        Status.FAILED,
    ),
}


EXIT_121 = (
    "HOLE: an exception escaping candidate.serve, or os._exit(121), reads as 'could not be confined' "
    "(sandbox_error: not cached, retried, 'never the program's fault')"
)
FORGERY_HOLES: dict[str, str] = {}


def _forgery_params() -> list[object]:
    out: list[object] = []
    for attack in sorted(FORGERIES):
        for suite in sorted(SUITES):
            hole = FORGERY_HOLES.get(attack)
            marks = [pytest.mark.xfail(strict=True, reason=hole)] if hole else []
            out.append(pytest.param(attack, suite, marks=marks, id=f"{attack}-{suite}"))
    return out


@pytest.mark.parametrize(("attack", "suite"), _forgery_params())
def test_verdict_forgery(executor: LocalExecutor, attack: str, suite: str) -> None:
    """Forgery: exits, rebound builtins, patched serializers, fake frames, lying objects, tampering."""
    program, status = FORGERIES[attack]
    r = run_one(executor, program, SUITES[suite], limits=FAST)
    assert r.status is status, r


def test_float_subclass_lying_in_arithmetic(executor: LocalExecutor) -> None:
    """Forgery: a float subclass lying in __sub__/__abs__/__lt__ against a tolerance test."""
    program = prog("""
        class Liar(float):
            def __sub__(self, other): return Liar(0.0)
            def __rsub__(self, other): return Liar(0.0)
            def __abs__(self): return 0.0
            def __lt__(self, other): return True
            def __eq__(self, other): return True
            __hash__ = float.__hash__
        def f(x):
            return Liar(-1e9)
    """)
    r = run_one(executor, program, AssertTests(tests=("assert abs(f(1) - 2.5) < 1e-6",)))
    assert r.status is Status.FAILED, r


def test_float_subclass_lying_call_based(executor: LocalExecutor) -> None:
    """Forgery: the same lying float against a call-based float comparison (math.isclose)."""
    program = prog("""
        class Liar(float):
            def __eq__(self, other): return True
            def __sub__(self, other): return Liar(0.0)
            def __abs__(self): return 0.0
            def __le__(self, other): return True
            __hash__ = float.__hash__
        def f(x):
            return Liar(-1e9)
    """)
    tests = CallTests(fn_name="f", cases=(CallCase(args=(1,), expected=2.5),))
    r = run_one(executor, program, tests)
    assert r.status is Status.FAILED, r


def test_list_subclass_lying(executor: LocalExecutor) -> None:
    """Forgery: a list subclass overriding __eq__/__len__/__iter__ over empty storage."""
    program = prog("""
        class Liar(list):
            def __eq__(self, other): return True
            def __ne__(self, other): return False
            def __len__(self): return 3
            def __iter__(self): return iter([0, 1, 2])
        def f(n):
            return Liar()
    """)
    r = run_one(executor, program, AssertTests(tests=("assert f(3) == [0, 1, 2]",)))
    assert r.status is Status.FAILED, r


def test_redefined_trusted_helper_loses(executor: LocalExecutor) -> None:
    """Forgery: the program redefines the helper the test judges with (HumanEval `poly`)."""
    tests = AssertTests(
        helpers="def poly(xs, x):\n    return sum(c * x**i for i, c in enumerate(xs))\n",
        setup="def check(candidate):\n    assert abs(poly([1, 2], candidate([1, 2]))) < 1e-6\n",
        check="check",
        entry_point="find_zero",
    )
    program = "def poly(xs, x):\n    return 0\ndef find_zero(xs):\n    return 123.0\n"
    r = run_one(executor, program, tests)
    assert r.status is Status.FAILED, r


# ---------------------------------------------------------------------------------------------
# Forgery on stdin/stdout suites.

IO_FORGERIES: dict[str, tuple[str, Status]] = {
    "sys_exit": ("import sys\nsys.exit(0)\n", Status.FAILED),
    "os_exit": ("import os\nos._exit(0)\n", Status.FAILED),  # a clean exit is judged on its (empty) output
    "exit_with_confine_failed_code": ("import os\nos._exit(121)\n", Status.NO_RESULT),
    "raise_systemexit": ("raise SystemExit(0)\n", Status.FAILED),
    "raise_keyboardinterrupt": ("raise KeyboardInterrupt\n", Status.RUNTIME_ERROR),
    "rebind_builtins": (
        "import builtins\nbuiltins.print = lambda *a, **k: None\nbuiltins.input = lambda *a: '2'\nprint(0)\n",
        Status.FAILED,
    ),
    "patch_json": (FAKE_RESULT + "json.dumps = lambda *a, **k: _FAKE.decode()\nprint(0)\n", Status.FAILED),
    "fake_frames_every_fd": (
        FAKE_RESULT + "import os\nfor fd in range(1024):\n    try:\n        os.write(fd, FRAME)\n"
        "    except OSError:\n        pass\n",
        Status.FAILED,
    ),
    "fake_done_frame": (
        "import json, os, struct\nd = json.dumps(['done']).encode()\nos.write(4, struct.pack('>I', len(d)) + d)\n"
        "print('wrong')\n",
        Status.FAILED,
    ),
    # atexit handlers run after the program, as in Python (issue 15): one that spins forever is
    # the program's timeout, as it would hang plain Python; it never reaches a verdict of its own.
    "atexit_spin": (
        "import atexit\natexit.register(lambda: [0 for _ in iter(int, 1)])\nprint(0)\n",
        Status.TIMEOUT,
    ),
}


@pytest.mark.parametrize(
    "attack",
    [pytest.param(a) for a, (p, _) in sorted(IO_FORGERIES.items())],
)
def test_io_verdict_forgery(executor: LocalExecutor, attack: str) -> None:
    """Forgery on a stdin/stdout suite: exits, rebound builtins, patched json, fake frames."""
    program, status = IO_FORGERIES[attack]
    r = run_one(executor, program, IO, main=True, limits=FAST)
    assert r.status is status, r


IO_MEMORY_SEARCH = prog("""
    import gc, sys
    def outputs():
        frame = sys._getframe()
        while frame is not None:  # the harness frames this process was forked in
            for value in frame.f_locals.values():
                if isinstance(getattr(value, "output", None), str):
                    yield value.output
            frame = frame.f_back
        for obj in gc.get_objects():  # and the heap
            if type(obj).__name__ == "IOCase":
                yield obj.output
    sys.stdin.read()
    print(next(outputs(), "nothing"))
""")


def test_io_program_cannot_learn_expected_output(executor: LocalExecutor) -> None:
    """Information leak: an IO program searching its own memory (frames, gc) for the expected output."""
    tests = IOTests(cases=(IOCase(input="5\n", output="918273645\n"),))
    r = run_one(executor, IO_MEMORY_SEARCH, tests, main=True)
    assert r.status is Status.FAILED, r


def test_assert_program_cannot_read_its_tests(executor: LocalExecutor) -> None:
    """Information leak: a program reading the assertion tests from the job object in its memory."""
    program = prog("""
        import gc
        table = {}
        for obj in gc.get_objects():
            if type(obj).__name__ == "AssertTests":
                for src in obj.tests:
                    call, _, want = src[len("assert "):].partition(" == ")
                    table[int(call[2:-1])] = int(want)
        def f(x):
            return table.get(x, 0)
    """)
    tests = AssertTests(tests=("assert f(7) == 8675309", "assert f(8) == 1234567"))
    r = run_one(executor, program, tests)
    assert r.status is Status.FAILED, r


def test_call_program_cannot_read_expected_values(executor: LocalExecutor) -> None:
    """Information leak: a call-based program reading CallCase.expected from its memory."""
    program = prog("""
        import gc
        def f(*args):
            for obj in gc.get_objects():
                if type(obj).__name__ == "CallCase" and tuple(obj.args) == args:
                    return obj.expected
            return None
    """)
    tests = CallTests(fn_name="f", cases=(CallCase(args=(3,), expected=[31, 41, 59]),))
    r = run_one(executor, program, tests)
    assert r.status is Status.FAILED, r


# ---------------------------------------------------------------------------------------------
# Holes in how the runner judges.


def test_stopiteration_cannot_end_a_map_early(executor: LocalExecutor) -> None:
    """Forgery: raising StopIteration so `all(map(f, ...))` / `not any(map(f, ...))` hold vacuously."""
    tests = AssertTests(
        tests=("assert all(map(is_prime, [2, 3, 5]))", "assert not any(map(is_prime, [4, 6]))")
    )
    r = run_one(executor, "def is_prime(n):\n    raise StopIteration\n", tests)
    assert r.status is not Status.PASSED, r


def test_candidate_module_cannot_judge(executor: LocalExecutor) -> None:
    """Forgery: the test uses `math.isclose` without importing math; the program patches its own math."""
    program = "import math\nmath.isclose = lambda *a, **k: True\ndef area(r):\n    return -1.0\n"
    tests = AssertTests(tests=("assert math.isclose(area(2), 12.566, rel_tol=0.001)",))
    r = run_one(executor, program, tests)
    assert r.status is not Status.PASSED, r


NAMES_INJECTION = prog("""
    import sys
    _candidate = sys.modules["execrl.sandbox.candidate"]
    _handle = _candidate._Server.handle
    def handle(self, msg):  # answer the runner's "names" query with names it did not ask for
        reply = _handle(self, msg)
        if msg[0] == "names":
            reply[1]["abs"] = "callable"
        return reply
    _candidate._Server.handle = handle
    def abs(x):
        return 0.0
    def f(x):
        return -1.0
""")


@pytest.mark.parametrize("suite", ["mbpp", "humaneval"])
def test_names_reply_cannot_shadow_builtins(executor: LocalExecutor, suite: str) -> None:
    """Forgery: the program answers the 'names' query with `abs`, shadowing the test's builtin."""
    tests = {
        "mbpp": AssertTests(tests=("assert abs(f(1) - 2.5) < 1e-6",)),
        "humaneval": AssertTests(
            setup="def check(candidate):\n    assert abs(candidate(1) - 2.5) < 1e-6\n",
            check="check",
            entry_point="f",
        ),
    }[suite]
    r = run_one(executor, NAMES_INJECTION, tests)
    assert r.status is Status.FAILED, r


# ---------------------------------------------------------------------------------------------
# Fidelity (issue 15): what the sandbox now does as one process would, and the attack beside each
# that must still fail. The legitimate shapes are in tests/fidelity_corpus.py.

SHADOWING_ATTACKS = {
    # The program's builtin-named helpers would judge the test of its wrong `f`.
    "abs_zero": ("def abs(x):\n    return 0\ndef f(x):\n    return 0\n", "assert abs(f(1) - 2.5) < 1e-6"),
    "set_constant": (
        "def set(x):\n    return 0\ndef f(x):\n    return [9]\n",
        "assert set(f(1)) == set([2])",
    ),
    "sorted_constant": (
        "def sorted(x):\n    return []\ndef f(x):\n    return [9, 1]\n",
        "assert sorted(f(1)) == sorted([2, 3])",
    ),
    "isinstance_true": (
        "def isinstance(a, b):\n    return True\ndef f(x):\n    return 1\n",
        "assert isinstance(f(1), list)",
    ),
    "all_true": (
        "def all(x):\n    return True\ndef f(x):\n    return 0\n",
        "assert all(f(i) == i + 1 for i in range(3))",
    ),
    "len_three": ("def len(x):\n    return 3\ndef f(x):\n    return []\n", "assert len(f(1)) == 3"),
    # The subject is builtin-named itself: only it is the program's, its wrapper is Python's.
    "subject_and_wrapper": (
        "def set(x):\n    return 0\ndef sum(x):\n    return [0]\n",
        "assert set(sum([1, 2])) == set([3])",
    ),
}


@pytest.mark.parametrize("attack", sorted(SHADOWING_ATTACKS))
def test_builtin_named_helper_cannot_judge(executor: LocalExecutor, attack: str) -> None:
    """Forgery: a program defines a builtin's name that the test uses to judge another function."""
    program, test = SHADOWING_ATTACKS[attack]
    r = run_one(executor, program, AssertTests(tests=(test,)))
    assert r.status is not Status.PASSED, r


REMOTE_ATTACKS = {
    "always_equal_vs_program_object": (
        "class P:\n    def __init__(self, x):\n        self.x = x\n    def __eq__(self, o):\n        return True\n"
        "def f():\n    return P(99)\n",
        "assert f() == P(1)",
    ),
    "always_equal_vs_data": (
        "class Liar:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\ndef f():\n    return Liar()\n",
        "assert f() == [1, 2]",
    ),
    "always_equal_in_list": (
        "class Liar:\n    def __eq__(self, o):\n        return True\ndef f():\n    return [Liar(), Liar()]\n",
        "assert f() == [1, 2]",
    ),
    "never_unequal": (
        "class Liar:\n    def __eq__(self, o):\n        return True\n    def __ne__(self, o):\n        return False\n"
        "def f():\n    return Liar()\n",
        "assert not (f() != 'x')",
    ),
    "contains_everything": (
        "class Bag:\n    def __contains__(self, x):\n        return True\n    def __iter__(self):\n        return iter([])\n"
        "def f():\n    return Bag()\n",
        "assert 3 in f()",
    ),
    "ordering_lies": (
        "class Big:\n    def __lt__(self, o):\n        return True\n    def __gt__(self, o):\n        return True\n"
        "def f():\n    return Big()\n",
        "assert 5 > f()",
    ),
    "str_subclass_from_str": (
        "class S(str):\n    def __eq__(self, o):\n        return True\n    __hash__ = str.__hash__\n"
        "class O:\n    def __str__(self):\n        return S('nope')\ndef f():\n    return O()\n",
        "assert str(f()) == 'yes'",
    ),
    "operator_answers_zero": (
        "class Z:\n    def __sub__(self, o):\n        return 0.0\n    def __rsub__(self, o):\n        return 0.0\n"
        "def f(x):\n    return Z()\n",
        "assert abs(f(1) - 2.5) < 1e-6",
    ),
    "builtin_function_smuggled": ("def f():\n    return eval\n", "assert f()('1 + 1') == 2"),
    "namedtuple_fields_lie": (
        "class T(tuple):\n    _fields = ('a', 'b')\ndef f():\n    return T((1,))\n",
        "assert f() == (1, 2)",
    ),
    "exception_args_objects": (
        "class Liar:\n    def __eq__(self, o):\n        return True\ndef f():\n    raise ValueError(Liar())\n",
        "try:\n    f()\nexcept ValueError as e:\n    assert e.args[0] == 'expected'",
    ),
}


@pytest.mark.parametrize("attack", sorted(REMOTE_ATTACKS))
def test_program_objects_cannot_judge(executor: LocalExecutor, attack: str) -> None:
    """Forgery: objects that travel as references (not plain data) cannot make a comparison pass."""
    program, test = REMOTE_ATTACKS[attack]
    r = run_one(executor, program, AssertTests(tests=(test,)))
    assert r.status is not Status.PASSED, r


def test_untrusted_comparison_is_explained(executor: LocalExecutor) -> None:
    """A comparison only the program's own __eq__ could decide fails with a reason, not silently."""
    program, test = REMOTE_ATTACKS["always_equal_vs_program_object"]
    r = run_one(executor, program, AssertTests(tests=(test,)))
    assert r.error is not None and r.error.type == "UntrustedComparison" and "__eq__" in r.detail, r


def test_program_type_passed_by_the_test_is_the_programs(executor: LocalExecutor) -> None:
    """Legit next to the attacks: a class of the program, passed by the test, is the program's own."""
    program = "class A:\n    pass\ndef make(cls):\n    return isinstance(cls(), A)\n"
    r = run_one(executor, program, AssertTests(tests=("assert make(A) is True",)))
    assert r.status is Status.PASSED, r


def test_thread_that_never_ends_is_a_timeout(executor: LocalExecutor) -> None:
    """Resource: a non-daemon thread that spins after the module returns is joined, and times out."""
    program = (
        "import threading\nprint(2)\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()\n"
    )
    r = run_one(executor, program, IO, main=True, limits=FAST)
    assert r.status is Status.TIMEOUT and r.tests[0].cpu_time > 0.4, r


def test_sleeping_thread_hits_the_wall_backstop(executor: LocalExecutor) -> None:
    """Resource: a non-daemon thread that sleeps forever cannot hold the job past the wall backstop."""
    program = "import threading, time\nprint(2)\nthreading.Thread(target=time.sleep, args=(3600,)).start()\n"
    start = time.monotonic()
    r = run_one(executor, program, IOTests(cases=(IOCase("1\n", "2\n"),)), main=True, limits=FAST)
    assert r.status is Status.TIMEOUT and time.monotonic() - start < 10, r


def test_timeout_reports_cpu_used(executor: LocalExecutor) -> None:
    """A test stopped at its CPU limit reports the CPU it used, not 0.0."""
    r = run_one(executor, "def f(x):\n    while True:\n        pass\n", MBPP, limits=FAST)
    assert r.status is Status.TIMEOUT and r.tests[0].cpu_time >= 0.45, r


def test_argument_mutation_does_not_leak_into_next_job(executor: LocalExecutor) -> None:
    """Cross-job contamination: a job sorts its (cached) argument; the next job's identity f passes."""
    tests = CallTests(fn_name="sort_me", cases=(CallCase(args=([3, 1, 2, 907],), expected=[1, 2, 3, 907]),))
    first = run_one(executor, "def sort_me(a):\n    a.sort()\n    return a\n", tests)
    assert first.passed, first
    second = run_one(executor, "def sort_me(a):\n    return a\n", tests)
    assert second.status is Status.FAILED, second


def test_result_pipe_cannot_be_reached_through_a_job_file_symlink() -> None:
    """Forgery: test 1 plants stderr -> /proc/self/fd/1; the re-forked candidate writes a fake result."""
    program = FAKE_RESULT + prog("""
        import os, stat
        def f(x):
            try:
                os.unlink("stderr")
            except OSError:
                pass
            os.symlink("/proc/self/fd/1", "stderr")
            os._exit(0)
        if stat.S_ISFIFO(os.fstat(2).st_mode):
            os.write(2, FRAME)
    """)
    ex = fresh_executor()  # a forged frame desynchronises the executor: keep it away from the others
    try:
        r = run_one(ex, program, MBPP, limits=FAST)
    finally:
        ex.close()
    assert r.status is not Status.PASSED and "forged" not in r.detail, r


# ---------------------------------------------------------------------------------------------
# Files outside the job directory.


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "canary.txt"
    path.write_text("canary")
    path.chmod(0o644)
    yield path
    path.parent.chmod(0o755)


FILE_ATTACKS = {
    "unlink": "os.unlink(P)",
    "reload_os_unlink": "importlib.reload(os).unlink(P)",
    "posix_unlink": "posix.unlink(P)",
    "rmtree": "shutil.rmtree(D)",
    "rename": "os.rename(P, P + '.moved')",
    "rename_into_jobdir": "os.rename(P, 'stolen')",
    "overwrite": "open(P, 'w').write('pwned')",
    "append": "open(P, 'a').write('pwned')",
    "truncate": "os.truncate(P, 0)",
    "hardlink_then_write": "os.link(P, 'link'); open('link', 'a').write('pwned')",
    "symlink_then_write": "os.symlink(P, 'sym'); open('sym', 'a').write('pwned')",
    "create_beside": "open(D + '/new.txt', 'w').write('pwned')",
    "mkdir_beside": "os.mkdir(D + '/newdir')",
    "chdir_and_write": "os.chdir(D); open('new.txt', 'w').write('pwned')",
}


@pytest.mark.parametrize("attack", sorted(FILE_ATTACKS))
def test_file_outside_jobdir_untouched(executor: LocalExecutor, canary: Path, attack: str) -> None:
    """Escape: delete/overwrite/rename/link/create files beside a canary outside the job directory."""
    program = prog(f"""
        import importlib, os, posix, shutil
        P, D = {str(canary)!r}, {str(canary.parent)!r}
        def f():
            {FILE_ATTACKS[attack]}
            return 0
    """)
    r = run_one(executor, program, AssertTests(tests=("assert f() == 1",)))
    assert r.status in (Status.RUNTIME_ERROR, Status.FAILED), r
    assert canary.read_text() == "canary"
    assert sorted(p.name for p in canary.parent.iterdir()) == ["canary.txt"]


@pytest.mark.parametrize("where", ["tmp", "repo", "src", "root"])
def test_cannot_create_file_elsewhere(executor: LocalExecutor, where: str) -> None:
    """Escape: create a file in /tmp, the repository, the package's source tree, or / (after chdir)."""
    name = f".execrl-canary-{uuid.uuid4().hex}"
    target = {"tmp": Path(tempfile.gettempdir()), "repo": REPO, "src": SRC, "root": Path("/")}[where] / name
    program = prog(f"""
        import os
        def f():
            os.chdir({str(target.parent)!r})
            with open({name!r}, "w") as out:
                out.write("pwned")
            return 0
    """)
    try:
        r = run_one(executor, program, AssertTests(tests=("assert f() == 1",)))
        assert r.status is Status.RUNTIME_ERROR, r
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)


METADATA_ATTACKS = {
    "chmod": "os.chmod(P, 0o777)",
    "utime": "os.utime(P, (0, 0))",
    "setxattr": "os.setxattr(P, 'user.execrl', b'pwned')",
}


def _metadata(path: Path) -> tuple[int, int, list[str]]:
    st = path.stat()
    try:
        xattrs = sorted(os.listxattr(path))
    except OSError:
        xattrs = []
    return st.st_mode, st.st_mtime_ns, xattrs


@pytest.mark.parametrize("attack", sorted(METADATA_ATTACKS))
def test_metadata_outside_jobdir_untouched(executor: LocalExecutor, canary: Path, attack: str) -> None:
    """Escape: chmod / utime / setxattr on a host file outside the job directory."""
    before = _metadata(canary)
    program = f"import os\nP = {str(canary)!r}\ndef f():\n    {METADATA_ATTACKS[attack]}\n    return 0\n"
    r = run_one(executor, program, AssertTests(tests=("assert f() == 1",)))
    assert r.status is not Status.PASSED, r
    assert _metadata(canary) == before


# ---------------------------------------------------------------------------------------------
# Secrets and host state the program must not read.


def test_environment_secret_invisible(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exfiltration: a secret in the executor's environment, via os.environ and /proc/*/environ."""
    monkeypatch.setenv("EXECRL_TEST_SECRET", "s3cr3t")
    program = prog(f"""
        import os
        def leaks():
            found = [k for k, v in os.environ.items() if "s3cr3t" in v or "s3cr3t" in k]
            for pid in ("self", "1", str(os.getppid()), "{os.getpid()}", "thread-self"):
                try:
                    with open(f"/proc/{{pid}}/environ", "rb") as fh:
                        if b"s3cr3t" in fh.read():
                            found.append(pid)
                except OSError:
                    pass
            return found
    """)
    ex = fresh_executor()  # started after the secret was set
    try:
        r = run_one(ex, program, AssertTests(tests=("assert leaks() == []",)))
    finally:
        ex.close()
    assert r.status is Status.PASSED, r


def test_host_files_unreadable(executor: LocalExecutor, tmp_path: Path) -> None:
    """Exfiltration: read a secret file, /etc/shadow, ~/.ssh and repository files outside sys.path."""
    secret = tmp_path / "secret.txt"
    secret.write_text("t0p-s3cret")
    paths = [
        str(secret),
        "/etc/shadow",
        os.path.expanduser("~/.ssh/id_rsa"),
        os.path.expanduser("~/.bash_history"),
        str(REPO / "pyproject.toml"),
        str(REPO / ".git" / "config"),
        str(Path(__file__)),
        str(tmp_path),
        str(REPO),
        os.path.expanduser("~"),
        "/",
    ]
    program = prog("""
        import os
        def readable(paths):
            out = []
            for p in paths:
                try:
                    if os.path.isdir(p):
                        os.listdir(p)
                    else:
                        with open(p, "rb") as fh:
                            fh.read(1)
                    out.append(p)
                except OSError:
                    pass
            return out
    """)
    r = run_one(executor, program, AssertTests(tests=(f"assert readable({paths!r}) == []",)))
    assert r.status is Status.PASSED, r


def test_ptrace_and_process_vm_readv_denied(executor: LocalExecutor) -> None:
    """Escape: ptrace(ATTACH/SEIZE), process_vm_readv and /proc/<parent>/mem on the trusted runner."""
    program = prog("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        class IOVec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
        def attempts():
            parent = os.getppid()
            out = [libc.ptrace(16, parent, 0, 0), libc.ptrace(0x4206, parent, 0, 0)]
            buf = ctypes.create_string_buffer(64)
            local = IOVec(ctypes.cast(buf, ctypes.c_void_p), 64)
            remote = IOVec(id(out), 64)  # same address in the parent: we are its fork
            out.append(libc.process_vm_readv(parent, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))
            try:
                with open(f"/proc/{parent}/mem", "rb") as fh:
                    fh.seek(id(out))
                    fh.read(8)
                out.append(0)
            except OSError:
                out.append(-1)
            return out
    """)
    r = run_one(executor, program, AssertTests(tests=("assert attempts() == [-1, -1, -1, -1]",)))
    assert r.status is Status.PASSED, r


def test_other_processes_fds_unreachable(executor: LocalExecutor) -> None:
    """Escape: open /proc/<pid>/fd/N of the runner (its result pipe) and of the host test process."""
    program = prog(f"""
        import os
        def opened():
            me = int(os.readlink("/proc/self"))  # the host pid: readlink is not confined
            out = []
            for pid in [*range(max(2, me - 64), me), {os.getpid()}]:
                for fd in range(8):
                    try:
                        os.close(os.open(f"/proc/{{pid}}/fd/{{fd}}", os.O_WRONLY))
                        out.append((pid, fd))
                    except OSError:
                        pass
            return out
    """)
    r = run_one(executor, program, AssertTests(tests=("assert opened() == []",)))
    assert r.status is Status.PASSED, r


# ---------------------------------------------------------------------------------------------
# Signals: the executor survives and keeps serving.

KILLS = {
    "kill_parent": "os.kill(os.getppid(), signal.SIGKILL)",
    "kill_pid1": "os.kill(1, signal.SIGKILL)",
    "killpg_0": "os.killpg(0, signal.SIGKILL)",
    "kill_minus_1": "os.kill(-1, signal.SIGKILL)",
    "kill_parent_group": "os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)",
}


@pytest.mark.parametrize("attack", sorted(KILLS))
def test_kill_attack_leaves_executor_serving(executor: LocalExecutor, attack: str) -> None:
    """Escape: SIGKILL the parent, PID 1, the process group, everyone; the fork-server lives on."""
    iso = executor.isolation
    if not (iso.seccomp or iso.pid_namespace):
        pytest.skip("without seccomp or a PID namespace this would signal host processes")
    servers = server_processes()
    program = f"import os, signal\ndef f():\n    {KILLS[attack]}\n    return 0\n"
    r = run_one(executor, program, AssertTests(tests=("assert f() == 1",)))
    assert r.status in (Status.RUNTIME_ERROR, Status.FAILED), r
    assert server_processes() == servers
    assert_serves(executor)


# ---------------------------------------------------------------------------------------------
# Processes: nothing a job starts outlives it.

SPAWNS = {
    "fork_loop": "for _ in range(20):\n        if os.fork() == 0:\n            time.sleep(100)\n            os._exit(0)",
    "multiprocessing": "multiprocessing.Process(target=time.sleep, args=(100,)).start()",
    "subprocess_popen": "subprocess.Popen(['sleep', '100'])",
    "os_system": "os.system('sleep 100 &')",
    "posix_spawn": "os.posix_spawn('/bin/sleep', ['sleep', '100'], {})",
}


@pytest.mark.parametrize("attack", sorted(SPAWNS))
def test_spawned_processes_do_not_survive(executor: LocalExecutor, attack: str) -> None:
    """Escape: fork loop, multiprocessing, subprocess, os.system, posix_spawn; nothing survives the job."""
    program = f"import multiprocessing, os, subprocess, time\ndef f():\n    {SPAWNS[attack]}\n    return 0\n"
    r = run_one(executor, program, AssertTests(tests=("assert f() == 1",)))
    assert r.status in (Status.RUNTIME_ERROR, Status.FAILED), r
    assert job_processes() == set()


def test_double_fork_survivor(executor: LocalExecutor, tmp_path: Path) -> None:
    """Escape: setsid + double fork, the grandchild writing a canary after 1 s."""
    canary = tmp_path / "survivor.txt"
    program = prog(f"""
        import os, time
        def f():
            try:
                if os.fork() == 0:
                    os.setsid()
                    if os.fork() == 0:
                        time.sleep(1)
                        open({str(canary)!r}, "w").write("alive")
                    os._exit(0)
            except OSError:
                pass
            import threading
            def late():
                time.sleep(1)
                open({str(canary)!r}, "w").write("alive")
            threading.Thread(target=late).start()
            return 0
    """)
    r = run_one(executor, program, AssertTests(tests=("assert f() == 1",)))
    assert r.status is Status.FAILED, r
    time.sleep(2)
    assert not canary.exists()
    assert job_processes() == set()


def test_spinning_thread_after_return(executor: LocalExecutor) -> None:
    """Resource: a non-daemon thread spinning forever after the function returned."""
    program = prog("""
        import threading
        def f(x):
            threading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()
            return 0
    """)
    r = run_one(executor, program, MBPP, limits=FAST)
    assert r.status is Status.FAILED, r
    assert job_processes() == set()


def test_atexit_spin(executor: LocalExecutor) -> None:
    """Resource: an atexit handler that spins forever."""
    program = "import atexit\natexit.register(lambda: [0 for _ in iter(int, 1)])\ndef f(x):\n    return 0\n"
    r = run_one(executor, program, MBPP, limits=FAST)
    assert r.status is Status.FAILED, r


# ---------------------------------------------------------------------------------------------
# Network.


def test_tcp_connect_to_host_listener(executor: LocalExecutor) -> None:
    """Escape: TCP connect to a real listening socket on the host's loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        port = server.getsockname()[1]
        program = prog(f"""
            import socket
            def f():
                socket.create_connection(("127.0.0.1", {port}), timeout=0.5).sendall(b"pwned")
                return 0
        """)
        r = run_one(executor, program, AssertTests(tests=("assert f() == 1",)))
        assert r.status is Status.RUNTIME_ERROR, r
        with pytest.raises(BlockingIOError):
            server.accept()


def test_udp_sendto_host(executor: LocalExecutor) -> None:
    """Escape: UDP datagram to a socket bound on the host's loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.setblocking(False)
        port = server.getsockname()[1]
        program = prog(f"""
            import socket
            def f():
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"pwned", ("127.0.0.1", {port}))
                return 0
        """)
        r = run_one(executor, program, AssertTests(tests=("assert f() == 1",)))
        assert r.status is Status.RUNTIME_ERROR, r
        with pytest.raises(BlockingIOError):
            server.recv(64)


def test_unix_socket_to_host_listener(executor: LocalExecutor) -> None:
    """Escape: connect to a pathname UNIX socket the host listens on."""
    tmp = tempfile.mkdtemp(prefix="execrl-sock-")
    path = os.path.join(tmp, "s")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(path)
            server.listen(8)
            server.setblocking(False)
            program = prog(f"""
                import socket
                def f():
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect({path!r})
                    s.sendall(b"pwned")
                    return 0
            """)
            r = run_one(executor, program, AssertTests(tests=("assert f() == 1",)))
            assert r.status is Status.RUNTIME_ERROR, r
            with pytest.raises(BlockingIOError):
                server.accept()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_abstract_unix_socket(executor: LocalExecutor) -> None:
    """Escape: bind/connect an abstract UNIX socket (a channel that bypasses the filesystem)."""
    name = f"\0execrl-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(name)
        server.listen(8)
        server.setblocking(False)
        program = prog(f"""
            import socket
            def f():
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.bind({name + "-mine"!r})
                s.connect({name!r})
                return 0
        """)
        r = run_one(executor, program, AssertTests(tests=("assert f() == 1",)))
        assert r.status is Status.RUNTIME_ERROR, r
        with pytest.raises(BlockingIOError):
            server.accept()


# ---------------------------------------------------------------------------------------------
# Time.

TIME_ATTACKS = {
    "busy_loop": "while True:\n        pass",
    "ignore_sigxcpu_sigterm": "signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n    "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n    while True:\n        pass",
    "sleep_loop": "while True:\n        time.sleep(0.05)",
    "raise_cpu_rlimit": "soft, hard = resource.getrlimit(resource.RLIMIT_CPU)\n    "
    "resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))\n    while True:\n        pass",
    "swallow_alarms": "signal.signal(signal.SIGALRM, lambda *a: None)\n    "
    "signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)\n    while True:\n        pass",
}


@pytest.mark.parametrize("attack", sorted(TIME_ATTACKS))
def test_time_limit(executor: LocalExecutor, attack: str) -> None:
    """Resource: infinite loops, ignored SIGXCPU/SIGTERM, sleeping, raised RLIMIT_CPU, alarm tricks."""
    program = f"import resource, signal, time\ndef f(x):\n    {TIME_ATTACKS[attack]}\n"
    r = run_one(executor, program, AssertTests(tests=("assert f(1) == 2",)), limits=FAST)
    assert r.status is Status.TIMEOUT, r


def test_time_limit_at_load(executor: LocalExecutor) -> None:
    """Resource: an infinite loop while the program loads."""
    r = run_one(executor, "while True:\n    pass\n", MBPP, limits=FAST)
    assert r.status is Status.TIMEOUT, r


def test_faulthandler_exit(executor: LocalExecutor) -> None:
    """Forgery: faulthandler.dump_traceback_later(exit=True) ending the process mid-test."""
    program = prog("""
        import faulthandler, time
        def f(x):
            faulthandler.dump_traceback_later(0.05, exit=True)
            time.sleep(5)
    """)
    r = run_one(executor, program, AssertTests(tests=("assert f(1) == 2",)), limits=FAST)
    assert r.status in (Status.NO_RESULT, Status.RUNTIME_ERROR), r


# ---------------------------------------------------------------------------------------------
# Memory, output, disk, stack.

SMALL_MEMORY = Limits(timeout=2.0, memory_mb=256)
MEMORY_ATTACKS = {
    "huge_bytearray": "x = bytearray(10**10)",
    "growing_list": "x = []\n    while True:\n        x.append(bytearray(10**6))",
    "raise_as_rlimit": "try:\n        resource.setrlimit(resource.RLIMIT_AS, (-1, -1))\n"
    "    except (ValueError, OSError):\n        pass\n    x = bytearray(1 << 30)",
}


@pytest.mark.parametrize("attack", sorted(MEMORY_ATTACKS))
def test_memory_limit(executor: LocalExecutor, attack: str) -> None:
    """Resource: huge allocation, a growing list, raising RLIMIT_AS first."""
    program = f"import resource\ndef f(x):\n    {MEMORY_ATTACKS[attack]}\n    return x\n"
    r = run_one(executor, program, AssertTests(tests=("assert f(1) == 2",)), limits=SMALL_MEMORY)
    assert r.status is Status.MEMORY_EXCEEDED, r


def test_huge_mmap(executor: LocalExecutor) -> None:
    """Resource: an anonymous mmap far beyond the address-space limit."""
    program = "import mmap\ndef f(x):\n    m = mmap.mmap(-1, 1 << 40)\n    m[-1] = 1\n    return x + 1\n"
    r = run_one(executor, program, AssertTests(tests=("assert f(1) == 2",)), limits=SMALL_MEMORY)
    assert r.status in (Status.MEMORY_EXCEEDED, Status.RUNTIME_ERROR), r


OUTPUT_ATTACKS = {
    "stdout_in_function": ("def f(x):\n    while True:\n        print('x' * 10000)\n", MBPP, False),
    "stderr_in_function": (
        "import sys\ndef f(x):\n    while True:\n        sys.stderr.write('x' * 10000)\n",
        MBPP,
        False,
    ),
    "stdout_at_load": ("while True:\n    print('x' * 10000)\n", MBPP, False),
    "stdout_io": ("while True:\n    print('x' * 10000)\n", IO, True),
}


FLUSH_BUG = (
    "BUG: EFBIG from candidate._flush() in serve's loop escapes serve -> exit 121 -> sandbox_error "
    "instead of output_exceeded"
)


@pytest.mark.parametrize(
    "attack",
    [pytest.param(a) for a, (_, _, main) in sorted(OUTPUT_ATTACKS.items())],
)
def test_output_limit(executor: LocalExecutor, attack: str) -> None:
    """Resource: unbounded printing to stdout/stderr."""
    program, tests, main = OUTPUT_ATTACKS[attack]
    r = run_one(executor, program, tests, main=main, limits=Limits(timeout=2.0, output_mb=1))
    assert r.status is Status.OUTPUT_EXCEEDED, r


CLEAN_DIR = AssertTests(tests=("assert listing() == []",))  # stdio are memfds, not files
LISTING = "import os\ndef listing():\n    return sorted(os.listdir('.'))\n"


def test_disk_flood_cleaned_before_next_job(executor: LocalExecutor) -> None:
    """Resource: many files in the job directory; the next job starts in a clean directory."""
    program = prog("""
        import os
        def f(x):
            os.makedirs("sub/deeper")
            try:
                for i in range(3000):
                    with open(f"f{i}", "wb") as out:
                        out.write(b"x" * 16384)
                    open(f"sub/deeper/e{i}", "w").close()
                os.symlink("/etc", "link")
                os.chmod("f0", 0)
            except OSError:
                pass
            return 0
    """)
    r = run_one(executor, program, AssertTests(tests=("assert f(1) == 2",)), limits=Limits(timeout=3.0))
    assert r.status is Status.FAILED, r
    after = run_one(executor, LISTING, CLEAN_DIR)
    assert after.passed, after


def test_unreadable_directory_does_not_break_cleanup() -> None:
    """Denial of service: a non-empty directory chmod-ed to 0 in the job directory."""
    program = prog("""
        import os
        def f(x):
            os.makedirs("sub", exist_ok=True)
            os.chmod("sub", 0o700)
            open("sub/file", "w").close()
            os.chmod("sub", 0)
            return 0
    """)
    ex = fresh_executor()  # when the bug is there the next job sees the leftover directory
    try:
        r = run_one(ex, program, AssertTests(tests=("assert f(1) == 2",)))
        after = run_one(ex, LISTING, CLEAN_DIR)
    finally:
        ex.close()
    assert r.status is Status.FAILED and after.passed, (r, after)


def test_deep_directory_does_not_poison_the_fork_server() -> None:
    """Denial of service: a 3000-level directory tree left in the job directory."""
    program = prog("""
        import os
        def f(x):
            for _ in range(3000):
                os.mkdir("d")
                os.chdir("d")
            return 0
    """)
    ex = fresh_executor()  # when the hole is open the fork-server answers sandbox_error forever
    try:
        r = run_one(ex, program, MBPP)
        assert r.status is not Status.PASSED, r
        after = run_one(ex, LISTING, CLEAN_DIR)
    finally:
        ex.close()
    assert after.passed, after


def test_unbounded_recursion_segfault(executor: LocalExecutor) -> None:
    """Resource: sys.setrecursionlimit(10**9) and infinite recursion overflows the C stack."""
    program = "import sys\nsys.setrecursionlimit(10**9)\ndef f(x):\n    return list(map(f, [x + 1]))\n"
    r = run_one(executor, program, AssertTests(tests=("assert f(1) == 2",)))
    assert r.status is Status.RUNTIME_ERROR, r
    assert_serves(executor)


def test_ctypes_segfault(executor: LocalExecutor) -> None:
    """Resource: dereferencing NULL through ctypes kills only the candidate."""
    program = "import ctypes\ndef f(x):\n    return ctypes.c_long.from_address(8).value\n"
    r = run_one(executor, program, MBPP)
    assert r.status is Status.RUNTIME_ERROR, r
    assert_serves(executor)


# ---------------------------------------------------------------------------------------------
# After all of the above.


def test_zz_executor_still_serves(executor: LocalExecutor) -> None:
    """After every attack above, the shared executor still judges programs correctly."""
    assert_serves(executor)
    assert job_processes() == set()


def test_zz_no_process_left_after_close() -> None:
    """After close(), no process with the fork-server's command line is left."""
    before = sandbox_processes()
    ex = fresh_executor()
    run_one(ex, "import time\ndef f(x):\n    time.sleep(0.1)\n    return x + 1\n", MBPP)
    mine = sandbox_processes() - before
    assert mine, "the executor's fork-server was not found"
    ex.close()
    assert wait_gone(mine) == set()
