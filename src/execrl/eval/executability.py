"""Executability: does model-written API code run? Real execution where running is cheap, a dry run where it is not.

Two definitions, one per kind of task (RLAIF, Dutta et al. 2024, reports an "executability rate"
without saying how it is decided; these are ours):

* **Built-in API tasks** (`execrl.data.builtin`, kind `api`): the program really runs in the
  sandbox against the task's asserts. It is *executable* when it runs to completion without an
  error: status `passed` or `failed` (an assertion about the answer failed, but every call
  returned). `syntax_error`, `runtime_error`, `timeout`, `memory_exceeded`, `output_exceeded` and
  `no_result` are not executable; `sandbox_error` is ours, not the program's: `None`.

* **APIBench answers** (`static_check`, `dry_run_job`, `dry_run_verdicts`): running `pipeline('ner', model=...)`
  would download a model, so the code is *dry-run*. It is executable when

  1. it is not empty and parses as Python (Python's own parser: a positional argument after keyword arguments,
     which Gorilla's tree-sitter metric tolerates, is a `SyntaxError` and never runs);
  2. no name is used that the code never binds (an import, assignment, `def`, parameter, loop
     or `with` target, ...) and that is not a builtin — a static, flow-insensitive check: a use
     before its binding is not caught, and code with a `from m import *` skips it;
  3. every import statement succeeds in the installed environment;
  4. every call whose function is a dotted name rooted at an imported (or builtin) name resolves
     attribute by attribute (`transformers.AutoModel.from_pretrained`, `torch.hub.load`), is
     callable, and its arguments bind to its signature (`inspect.signature(f).bind(...)` with a
     placeholder per positional argument and per keyword; `*args`/`**kwargs` in the call skip the
     binding). Callables without an introspectable signature pass step 4 after resolving. Calls
     on objects the code creates (`classifier(text)`, `model.eval()`) are not checked: that would
     need the model.

  Steps 1–2 are decided here, on the text. Steps 3–4 import and introspect libraries chosen by
  the model, so they run in the sandbox: the *program* is `PROBE` (our probe functions; the
  model's own statements never run, only its import statements, re-rendered from the AST by
  `ast.unparse`), and the *tests* are the checker, which runs in the trusted runner, calls the
  probes through the sandbox's proxies, gets plain data back and asserts on it. The verdict is the
  sandbox's: the checker's assertion passes or fails in the runner. The candidate process runs
  only the probe and the library code the imports load — no statement of the model's — and each
  plan's imports bind names in a namespace of their own, so they cannot rebind the probe. Several
  plans may share one job (one candidate process, so a heavy library is imported once for all of
  them); a library's import-time side effects then reach the later plans of that job. Nothing is downloaded: no model call ever runs, the sandbox has no network,
  and `HF_HUB_OFFLINE`/`TRANSFORMERS_OFFLINE`/`HF_DATASETS_OFFLINE` are set before any import.

  A library that is not installed (an import fails with `ModuleNotFoundError` for a top-level
  package that `importlib.util.find_spec` cannot find) makes the verdict `None` with the reason
  `not installed: NAME` — neither executable nor a failure. An invented library looks the same as
  a real one that is missing here; the AST metric's hallucination flag tells them apart.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

from execrl.types import AssertTests, ExecutionResult, Job, Limits, Status, TestRecord

__all__ = [
    "DRY_RUN_LIMITS",
    "PROBE",
    "Verdict",
    "answer_code",
    "dry_run_job",
    "dry_run_verdicts",
    "execution_verdict",
    "static_check",
]

DRY_RUN_LIMITS = Limits(timeout=60.0, memory_mb=16384, max_timeouts=1)
"""Importing torch or transformers takes seconds of CPU and gigabytes of address space."""

RUNS_TO_COMPLETION = frozenset({Status.PASSED, Status.FAILED})


@dataclass(frozen=True)
class Verdict:
    """`executable`: True, False, or None (not decidable here: a library is not installed, or the
    sandbox failed); `reason` says why it is not True."""

    executable: bool | None
    reason: str = ""


def execution_verdict(result: ExecutionResult) -> Verdict:
    """Real execution: runs to completion without an error (`passed` or `failed`)."""
    if result.status is Status.SANDBOX_ERROR:
        return Verdict(None, f"sandbox error: {result.detail}")
    if result.status in RUNS_TO_COMPLETION:
        return Verdict(True)
    error = f": {result.error.type}: {result.error.message}" if result.error is not None else ""
    return Verdict(False, f"{result.status.value}{error}")


# ---------------------------------------------------------------------------------------------
# The dry run.

PROBE = '''
import builtins, importlib, importlib.util, inspect, os
os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
_spaces = {}


def execrl_import(statement, space):
    """("ok" | "missing" | "error", detail) of one import statement, run in namespace `space`."""
    try:
        exec(statement, _spaces.setdefault(space, {}))
        return ("ok", "")
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        try:
            found = bool(top) and importlib.util.find_spec(top) is not None
        except Exception:
            found = False
        if top and not found:
            return ("missing", top)
        return ("error", f"ModuleNotFoundError: {e}")
    except BaseException as e:
        return ("error", f"{type(e).__name__}: {e}")


def execrl_call(space, dotted, positional, keywords, starred):
    """("ok" | "undefined" | "no_attribute" | "not_callable" | "bad_arguments" | "error", detail)."""
    parts = dotted.split(".")
    names = _spaces.get(space, {})
    if parts[0] in names:
        obj = names[parts[0]]
    elif hasattr(builtins, parts[0]):
        obj = getattr(builtins, parts[0])
    else:
        return ("undefined", parts[0])
    for i in range(1, len(parts)):
        try:
            obj = getattr(obj, parts[i])
        except AttributeError:
            return ("no_attribute", ".".join(parts[: i + 1]))
        except BaseException as e:
            return ("error", f"{'.'.join(parts[: i + 1])}: {type(e).__name__}: {e}")
    if not callable(obj):
        return ("not_callable", dotted)
    if starred:
        return ("ok", "arguments not bound: the call unpacks *args or **kwargs")
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return ("ok", "no signature to bind against")
    try:
        signature.bind(*[None] * positional, **{k: None for k in keywords})
    except TypeError as e:
        return ("bad_arguments", f"{dotted}: {e}")
    return ("ok", "")
'''

# The checker: two tests per plan (`_I_` stands for its index in PLANS).
_INSTALLED = """
_results = [execrl_import(s, _I_) for s in PLANS[_I_][0]]
_missing = sorted({d for st, d in _results if st == "missing"})
assert not _missing, "not installed: " + ", ".join(_missing)
"""

_DRY_RUN = """
for _s in PLANS[_I_][0]:
    _st, _d = execrl_import(_s, _I_)
    assert _st == "ok", f"import failed: {_s}: {_d}"
for _name, _positional, _keywords, _starred in PLANS[_I_][1]:
    _st, _d = execrl_call(_I_, _name, _positional, _keywords, _starred)
    assert _st == "ok", f"{_st}: {_d}"
"""


@dataclass(frozen=True)
class Plan:
    """What the sandbox checks: import statements (re-rendered) and calls rooted at imported or
    builtin names: (dotted function, positional count, keyword names, whether it unpacks)."""

    imports: tuple[str, ...]
    calls: tuple[tuple[str, int, tuple[str, ...], bool], ...]

    def libraries(self) -> tuple[str, ...]:
        """The top-level packages the imports name, sorted (plans are grouped by them)."""
        tops: set[str] = set()
        for statement in self.imports:
            node = ast.parse(statement).body[0]
            if isinstance(node, ast.Import):
                tops.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                tops.add((node.module or "").split(".")[0])
        return tuple(sorted(tops))


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base is not None else None
    return None


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the code binds anywhere (flow-insensitive)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
    return bound


_MODULE_NAMES = {"__name__", "__file__", "__doc__", "__builtins__", "__spec__", "__package__"}


def static_check(code: str) -> tuple[Verdict | None, Plan | None]:
    """Steps 1–2 of the dry run: (a final verdict, None) when the code does not parse or uses an
    undefined name, else (None, the plan for the sandbox). Empty code is not executable."""
    if not code.strip():
        return Verdict(False, "no code"), None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        return Verdict(False, f"syntax error: {type(e).__name__}: {e}"), None
    bound = _bound_names(tree)
    star = any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in ast.walk(tree))
    undefined = (
        []
        if star
        else sorted(
            {
                n.id
                for n in ast.walk(tree)
                if isinstance(n, ast.Name)
                and isinstance(n.ctx, ast.Load)
                and n.id not in bound
                and n.id not in _MODULE_NAMES
                and not hasattr(builtins, n.id)
            }
        )
    )
    if undefined:
        return Verdict(False, f"undefined name(s): {', '.join(undefined)}"), None
    imports: list[str] = []
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            imports.append(ast.unparse(node))
            imported.update((a.asname or a.name).split(".")[0] for a in node.names)
    assigned = bound - imported  # a name rebound by assignment is a local object: not checked
    calls: list[tuple[str, int, tuple[str, ...], bool]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or (name := _dotted(node.func)) is None:
            continue
        root = name.split(".")[0]
        if root in assigned or (root not in imported and not hasattr(builtins, root)):
            continue
        starred = any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords
        )
        keywords = tuple(k.arg for k in node.keywords if k.arg is not None)
        call = (name, len(node.args), keywords, starred)
        if call not in calls:
            calls.append(call)
    return None, Plan(tuple(imports), tuple(calls))


def dry_run_job(plans: Sequence[Plan], limits: Limits = DRY_RUN_LIMITS) -> Job:
    """One sandbox job checking steps 3–4 of several plans: the probe is the program, the checker
    is the tests, two per plan (every library is installed; imports, attributes and signatures).
    Plans share the candidate process, so a library is imported once for all of them (each plan
    binds its imports in a namespace of its own); a candidate that dies is restarted for the next
    test, and no timeout skips the tests after it."""
    setup = f"PLANS = {[(p.imports, p.calls) for p in plans]!r}\n"
    tests = []
    for i in range(len(plans)):
        tests += [_INSTALLED.replace("_I_", str(i)), _DRY_RUN.replace("_I_", str(i))]
    limits = dataclasses.replace(limits, max_timeouts=max(limits.max_timeouts, len(tests)))
    return Job(PROBE, AssertTests(setup=setup, tests=tuple(tests)), limits=limits)


def dry_run_verdicts(result: ExecutionResult, n: int) -> list[Verdict]:
    """The verdict of each of the `n` plans of a `dry_run_job`'s result (see the module docstring)."""
    if result.status is Status.SANDBOX_ERROR or len(result.tests) != 2 * n:
        return [Verdict(None, f"sandbox error: {result.detail or result.status.value}")] * n
    return [_verdict(result.tests[2 * i], result.tests[2 * i + 1]) for i in range(n)]


def _verdict(installed: TestRecord, dry_run: TestRecord) -> Verdict:
    if installed.status is Status.PASSED and dry_run.status is Status.PASSED:
        return Verdict(True)
    if installed.status is Status.FAILED and installed.error is not None:
        return Verdict(None, installed.error.message)
    record = dry_run if installed.status is Status.PASSED else installed
    if record.status is Status.FAILED and record.error is not None:
        return Verdict(False, record.error.message)
    # the probe (our code) died: an import that exhausts the limits is the environment's doing
    detail = f": {record.error.type}: {record.error.message}" if record.error is not None else ""
    return Verdict(None, f"the dry run could not finish ({record.status.value}{detail})")


_NEXT_MARKER = re.compile(r"<<<\w+>>>")


def answer_code(text: str) -> str:
    """The code a Gorilla-format answer is dry-run on: its `<<<code>>>` part (up to the next
    `<<<...>>>` marker, fences removed) when it has one, else its `api_call` part
    (`execrl.eval.apibench.extract_api_call`)."""
    from execrl.eval.apibench import extract_api_call

    _, sep, rest = text.partition("<<<code>>>")
    if sep:
        code = _NEXT_MARKER.split(rest, maxsplit=1)[0].lstrip(":").strip()
        if code.startswith("```"):
            code = code.split("\n", 1)[1] if "\n" in code else ""
            code = code.rsplit("```", 1)[0]
        return code.strip()
    return extract_api_call(text)
