"""Extracting a runnable Python program from a chatty model output (in the spirit of evalplus).

Scope: `extract_code(text, entry_point)` picks the code out of markdown fences and prose and keeps
the top-level statements a test harness needs. Steps:

1. Candidates: the fenced blocks tagged python/py/python3 (or untagged), then other fenced blocks,
   then the raw text. An unclosed final fence (a truncated generation) still counts as a block.
2. In each candidate, find the runs of consecutive lines that parse: starting at each unindented
   line, the text is cut just before the line of the first syntax error until what is left parses.
3. Clean each run: with `definitions_only=True` (the default) keep only imports, function and
   class definitions and assignments; drop prints, asserts, `if __name__ == "__main__":` blocks
   and bare expressions. When `entry_point` is defined at the top level, keep only the imports
   and the definitions and assignments it reaches through names (its dependencies, evalplus
   style), so example calls such as `result = f(3)` do not run at import time.
   With `definitions_only=False` (stdin/stdout programs) every statement is kept except bare
   names/constants (prose such as `Sure`) and annotations without value (`Note: ...`).
4. Pick the first cleaned run, in candidate order, that defines `entry_point` (a `def` or
   `class` of that name at any depth, so a `Solution` method counts); otherwise the longest
   cleaned run of the first candidate group (python blocks, other blocks, raw text) that has one.

The kept text is sliced from the original lines (comments and formatting survive), not
re-generated with `ast.unparse`; trailing whitespace is reduced to one newline. A line holding
several `;`-separated statements is kept whole if any of them is kept. Top-level calls such as
`sys.setrecursionlimit(...)` are dropped with `definitions_only=True`.

Deviations from evalplus: no tree-sitter (runs are found with `ast`), and, like evalplus, one run
is returned: a helper defined in an earlier fenced block than the entry point is not pulled in.
"""

from __future__ import annotations

import ast
import re
import textwrap

__all__ = ["PYTHON_LANGS", "clean", "extract_code", "fenced_blocks", "parseable_prefix"]

PYTHON_LANGS = frozenset({"", "python", "py", "python3", "py3", "pycon", "ipython"})

_FENCE_OPEN = re.compile(r"^[ \t]*```+[ \t]*([\w+.#-]*)[^`]*$")
_FENCE_CLOSE = re.compile(r"^[ \t]*```+[ \t]*$")
_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_ASSIGNMENTS = (ast.Assign, ast.AnnAssign, ast.AugAssign)


def fenced_blocks(text: str, *, dedent: bool = True) -> list[tuple[str, str]]:
    """The markdown code blocks of `text` as `(language, code)`, in order; language lower-cased
    ("" when untagged); code dedented unless `dedent=False` (fences inside list items are
    indented, but a function body continuation must keep its indentation)."""
    strip = textwrap.dedent if dedent else str
    blocks: list[tuple[str, str]] = []
    lang: str | None = None
    body: list[str] = []
    for line in text.splitlines(keepends=True):
        if lang is None:
            m = _FENCE_OPEN.match(line.rstrip("\r\n"))
            if m:
                lang, body = m.group(1).lower(), []
        elif _FENCE_CLOSE.match(line.rstrip("\r\n")):
            blocks.append((lang, strip("".join(body))))
            lang = None
        else:
            body.append(line)
    if lang is not None and body:  # unclosed final fence: a generation cut at max tokens
        blocks.append((lang, strip("".join(body))))
    return blocks


def _parse(source: str) -> ast.Module | int:
    """The module, or the 1-based line to cut before when `source` does not parse."""
    try:
        return ast.parse(source)
    except SyntaxError as e:
        return e.lineno or 1
    except (ValueError, RecursionError, MemoryError):  # pathological input: halve it
        return max(1, source.count("\n") // 2)


def _prefix(lines: list[str]) -> tuple[int, ast.Module]:
    """The largest `n` found by cutting at syntax errors such that `lines[:n]` parses."""
    n = len(lines)
    while True:
        tree = _parse("".join(lines[:n]))
        if isinstance(tree, ast.Module):
            return n, tree
        n = min(tree - 1, n - 1)
        if n <= 0:
            return 0, ast.Module(body=[], type_ignores=[])


def parseable_prefix(code: str) -> str:
    """The longest prefix of `code`, cut at line boundaries before syntax errors, that parses."""
    lines = code.replace("\x00", "\n").splitlines(keepends=True)
    n, _ = _prefix(lines)
    return "".join(lines[:n])


def _names_used(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _names_bound(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _keep(node: ast.stmt, definitions_only: bool) -> bool:
    if isinstance(node, ast.AnnAssign) and node.value is None:
        return False  # `Note: blah` prose parses as an annotation
    if definitions_only:
        return isinstance(node, _DEFINITIONS + _ASSIGNMENTS)
    return not (isinstance(node, ast.Expr) and isinstance(node.value, (ast.Name, ast.Constant)))


def _reachable(nodes: list[ast.stmt], entry_point: str) -> list[ast.stmt]:
    """Imports plus the statements that bind names reachable from `entry_point`."""
    wanted = {entry_point}
    chosen: set[int] = set()
    changed = True
    while changed:
        changed = False
        for i, node in enumerate(nodes):
            if i not in chosen and _names_bound(node) & wanted:
                chosen.add(i)
                wanted |= _names_used(node)
                changed = True
    return [n for i, n in enumerate(nodes) if i in chosen or isinstance(n, (ast.Import, ast.ImportFrom))]


def _first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _clean_tree(lines: list[str], tree: ast.Module, entry_point: str | None, definitions_only: bool) -> str:
    kept = [n for n in tree.body if _keep(n, definitions_only)]
    if definitions_only and entry_point and any(entry_point in _names_bound(n) for n in kept):
        kept = _reachable(kept, entry_point)
    keep_lines: set[int] = set()
    for node in kept:
        keep_lines.update(range(_first_line(node), (node.end_lineno or node.lineno) + 1))
    drop_lines: set[int] = set()
    for node in tree.body:
        drop_lines.update(range(_first_line(node), (node.end_lineno or node.lineno) + 1))
    drop_lines -= keep_lines
    out = "".join(line for i, line in enumerate(lines, 1) if i not in drop_lines).rstrip()
    return out + "\n" if out else ""


def clean(code: str, *, entry_point: str | None = None, definitions_only: bool = True) -> str:
    """Step 2-3 for code that starts at its first line: cut at the first syntax error, then drop
    the top-level statements that `definitions_only` excludes (see the module docstring)."""
    lines = code.replace("\x00", "\n").splitlines(keepends=True)
    n, tree = _prefix(lines)
    return _clean_tree(lines[:n], tree, entry_point, definitions_only)


def _runs(text: str, entry_point: str | None, definitions_only: bool) -> list[str]:
    """The cleaned parseable runs of `text`, in order (empty ones left out)."""
    lines = text.replace("\x00", "\n").splitlines(keepends=True)
    runs: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip() or lines[i][:1] in (" ", "\t"):
            i += 1  # blank lines are not worth a run; an indented line cannot start a module
            continue
        n, tree = _prefix(lines[i:])
        if n == 0:
            i += 1
            continue
        code = _clean_tree(lines[i : i + n], tree, entry_point, definitions_only)
        if code:
            runs.append(code)
        i += n
    return runs


def _defines(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(
        isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == name
        for n in ast.walk(tree)
    )


def extract_code(text: str, entry_point: str | None = None, *, definitions_only: bool = True) -> str:
    """The program in a model output (see the module docstring); "" when nothing parses."""
    blocks = fenced_blocks(text)
    groups = [
        [code for lang, code in blocks if lang in PYTHON_LANGS],
        [code for lang, code in blocks if lang not in PYTHON_LANGS],
        [text],
    ]
    fallback = ""
    for group in groups:  # cleaned lazily: most outputs are settled by their python blocks
        runs = [run for block in group for run in _runs(block, entry_point, definitions_only)]
        if entry_point:
            for run in runs:
                if _defines(run, entry_point):
                    return run
        if runs and not fallback:
            fallback = max(runs, key=len)
            if not entry_point:
                return fallback
    return fallback
