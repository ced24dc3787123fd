"""Typed values that flow through execrl: jobs for the sandbox and the results it returns.

A `Job` is one program plus one test suite plus limits. The sandbox turns it into an
`ExecutionResult`: exactly one `Status`, a `TestRecord` per test, and, for syntax and runtime
errors, an `ErrorInfo` whose `line` is counted in the *completion* (what the model wrote), not in
the prompt or the harness. Everything here is plain data: it round-trips through `to_dict` /
`from_dict` (JSON) so results can be cached, logged and shipped to remote executors.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


class Status(str, enum.Enum):
    """Outcome of a job or of a single test. Exactly one per result."""

    PASSED = "passed"
    FAILED = "failed"  # wrong answer or failed assertion
    SYNTAX_ERROR = "syntax_error"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    MEMORY_EXCEEDED = "memory_exceeded"
    OUTPUT_EXCEEDED = "output_exceeded"
    NO_RESULT = "no_result"  # the program ended (exit, os._exit, killed itself) before tests reported
    SANDBOX_ERROR = "sandbox_error"  # our infrastructure failed; never the program's fault

    def __str__(self) -> str:
        return self.value


# ---------------------------------------------------------------------------------------------
# Test suites: three kinds.


@dataclass(frozen=True)
class AssertTests:
    """Assertion tests (HumanEval `check(candidate)`, MBPP `assert` lines).

    `setup` runs first in the trusted test process (imports, helpers, `def check(...)`). Each entry
    of `tests` is one test: Python statements run in the same namespace after `setup`. Names the
    tests use that they do not define themselves resolve to the candidate program's globals through
    a proxy (calls cross the process boundary; values come back as plain builtin data).

    `check` / `entry_point`: HumanEval style. When `check` names a function defined by `setup`, the
    statements of its body become the tests (one per top-level statement containing an `assert`),
    run with `candidate` bound to the program's `entry_point`. Set `tests=()` then.

    `helpers`: trusted source run in the test process before `setup` (e.g. helper functions that a
    HumanEval prompt defines and its test calls, like `poly` or `encode_cyclic`), so the candidate
    cannot redefine what the test uses to judge it.
    """

    setup: str = ""
    tests: tuple[str, ...] = ()
    check: str | None = None
    entry_point: str | None = None
    helpers: str = ""
    kind: Literal["assert"] = "assert"


@dataclass(frozen=True)
class IOCase:
    input: str
    output: str


@dataclass(frozen=True)
class IOTests:
    """stdin/stdout cases (APPS, CodeContests, LiveCodeBench). The program runs once per case.

    Outputs are compared after normalizing trailing whitespace on each line and trailing blank
    lines; if both sides parse as the same number of numeric tokens, tokens are compared with
    `float_tol` relative/absolute tolerance (as APPS does)."""

    cases: tuple[IOCase, ...]
    float_tol: float = 1e-6
    kind: Literal["io"] = "io"


@dataclass(frozen=True)
class CallCase:
    args: tuple[Any, ...]
    expected: Any


@dataclass(frozen=True)
class CallTests:
    """Call-based cases (APPS `fn_name`, LeetCode style): `fn_name(*args) == expected`.

    If the program defines `class Solution`, `fn_name` is looked up as a method of `Solution()`.
    The comparison runs in the trusted process on plain data; a 1-tuple/list result is unwrapped
    and tuples compare equal to lists, as APPS's checker does."""

    fn_name: str
    cases: tuple[CallCase, ...]
    float_tol: float = 1e-6
    kind: Literal["call"] = "call"


TestSuite = AssertTests | IOTests | CallTests


@dataclass(frozen=True)
class Limits:
    """Resource limits for one job. Time limits are judged on CPU time, with a wall-clock backstop."""

    timeout: float = 3.0
    """CPU seconds for loading the program and for each test (each stdin/stdout case runs afresh)."""
    max_timeouts: int = 2
    """After this many tests time out, the remaining tests are reported as timeouts without running
    (a program that loops forever would otherwise cost `timeout` per test)."""
    wall_factor: float = 2.0
    """Wall-clock backstop = timeout * wall_factor + 1 s (sleeping programs, starved CPUs)."""
    memory_mb: int = 2048
    """Address-space limit of the candidate process (RLIMIT_AS)."""
    output_mb: int = 16
    """Largest file the program may write, stdout included (RLIMIT_FSIZE)."""
    open_files: int = 64
    """RLIMIT_NOFILE for the candidate process."""
    disk_mb: int = 256
    """Size of the job's private tmpfs (a fresh one per job) where a mount namespace is allowed."""


@dataclass(frozen=True)
class Job:
    """One program and its tests.

    `program` is the full Python source to run. `completion_start` is the character offset in
    `program` where the model's completion starts (for HumanEval, `len(prompt)`): error lines are
    reported relative to it. `main` sets `__name__ == "__main__"` for the program (stdin/stdout
    programs expect it; HumanEval's harness does not)."""

    program: str
    tests: TestSuite
    limits: Limits = field(default_factory=Limits)
    completion_start: int = 0
    main: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        t = dict(d["tests"])
        kind = t.pop("kind")
        tests: TestSuite
        if kind == "assert":
            t["tests"] = tuple(t.get("tests", ()))
            tests = AssertTests(**t)
        elif kind == "io":
            tests = IOTests(cases=tuple(IOCase(**c) for c in t["cases"]), float_tol=t.get("float_tol", 1e-6))
        elif kind == "call":
            tests = CallTests(
                fn_name=t["fn_name"],
                cases=tuple(CallCase(args=tuple(c["args"]), expected=c["expected"]) for c in t["cases"]),
                float_tol=t.get("float_tol", 1e-6),
            )
        else:
            raise ValueError(f"unknown test kind {kind!r}")
        return cls(
            program=d["program"],
            tests=tests,
            limits=Limits(**d.get("limits", {})),
            completion_start=d.get("completion_start", 0),
            main=d.get("main", False),
        )

    def key(self) -> str:
        """Content address of (program, tests, limits, harness version): the result cache's key."""
        from execrl.sandbox import HARNESS_VERSION

        blob = json.dumps([HARNESS_VERSION, self.to_dict()], sort_keys=True, default=repr)
        return hashlib.sha256(blob.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Results.


@dataclass(frozen=True)
class ErrorInfo:
    """A syntax or runtime error, located in the completion.

    `line` is 1-based in the completion text, or None when the error is not in the completion
    (in the prompt, the tests or a library). `traceback` holds only the candidate's own frames,
    innermost last, as (line in completion, source line) pairs."""

    type: str
    message: str
    line: int | None = None
    traceback: tuple[tuple[int, str], ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ErrorInfo:
        return cls(
            type=d["type"],
            message=d["message"],
            line=d.get("line"),
            traceback=tuple((int(a), str(b)) for a, b in d.get("traceback", ())),
        )


@dataclass(frozen=True)
class TestRecord:
    """One test's outcome. `expected_head` / `actual_head`: first bytes of stdout for IO tests."""

    status: Status
    cpu_time: float = 0.0
    wall_time: float = 0.0
    error: ErrorInfo | None = None
    expected_head: str | None = None
    actual_head: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TestRecord:
        return cls(
            status=Status(d["status"]),
            cpu_time=d.get("cpu_time", 0.0),
            wall_time=d.get("wall_time", 0.0),
            error=ErrorInfo.from_dict(d["error"]) if d.get("error") else None,
            expected_head=d.get("expected_head"),
            actual_head=d.get("actual_head"),
        )


@dataclass(frozen=True)
class Isolation:
    """Which isolation layers were active for a run (probed once per executor)."""

    fork_server: bool = True
    scrubbed_env: bool = True
    rlimits: bool = False
    user_namespace: bool = False
    net_namespace: bool = False
    pid_namespace: bool = False
    mount_namespace: bool = False
    readonly_root: bool = False  # every mount read-only but the job's tmpfs
    seccomp: bool = False
    landlock: int = 0  # Landlock ABI version in force, 0 = off
    no_new_privs: bool = False
    dropped_capabilities: bool = False
    notes: tuple[str, ...] = ()

    def layers(self) -> list[str]:
        names = [k for k, v in asdict(self).items() if k != "notes" and v]
        return [f"landlock(abi {self.landlock})" if n == "landlock" else n for n in names]

    @property
    def any_confinement(self) -> bool:
        """True when at least one layer beyond rlimits keeps the program off network and files."""
        return self.seccomp or self.landlock > 0 or self.net_namespace

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Isolation:
        d = dict(d)
        d["notes"] = tuple(d.get("notes", ()))
        return cls(**d)


@dataclass(frozen=True)
class ExecutionResult:
    """The verdict for one job, decided by trusted code outside the candidate's process."""

    status: Status
    tests_passed: int
    tests_total: int
    tests: tuple[TestRecord, ...] = ()
    error: ErrorInfo | None = None
    cpu_time: float = 0.0
    wall_time: float = 0.0
    max_rss_mb: float = 0.0
    isolation: Isolation | None = None
    cached: bool = False
    detail: str = ""  # free-form note from the harness (e.g. why a sandbox_error happened)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    @property
    def pass_ratio(self) -> float:
        return self.tests_passed / self.tests_total if self.tests_total else float(self.passed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["passed"] = self.passed
        for t in d["tests"]:
            t["status"] = t["status"].value if isinstance(t["status"], Status) else t["status"]
        if self.isolation is not None:
            d["isolation"] = self.isolation.layers()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExecutionResult:
        iso = d.get("isolation")
        return cls(
            status=Status(d["status"]),
            tests_passed=d["tests_passed"],
            tests_total=d["tests_total"],
            tests=tuple(TestRecord.from_dict(t) for t in d.get("tests", ())),
            error=ErrorInfo.from_dict(d["error"]) if d.get("error") else None,
            cpu_time=d.get("cpu_time", 0.0),
            wall_time=d.get("wall_time", 0.0),
            max_rss_mb=d.get("max_rss_mb", 0.0),
            isolation=Isolation.from_dict(iso) if isinstance(iso, dict) else None,
            cached=d.get("cached", False),
            detail=d.get("detail", ""),
        )

    @classmethod
    def sandbox_error(cls, detail: str, isolation: Isolation | None = None) -> ExecutionResult:
        return cls(Status.SANDBOX_ERROR, 0, 0, isolation=isolation, detail=detail)
