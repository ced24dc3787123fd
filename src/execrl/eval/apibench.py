"""Gorilla APIBench scoring: AST sub-tree matching of generated API calls (Patil et al. 2023).

Idea (Gorilla's `eval-scripts/ast_eval_*.py`): parse the API call out of the model's answer,
then look for the reference call's sub-tree in its AST: the same function, with every argument
value the reference gives. An answer is *correct* when it contains the reference call of its
question; it is a *hallucination* when it contains no call of any API in the provider's
database. (An answer that calls a real API, but the wrong one, is neither: Gorilla's "error".)

`extract_api_call(text)` takes the answer's `api_call` part as Gorilla does: the text after the
first "api_call" up to "api_provider", from after its ":" to its last ")"; without "api_call"
the whole text. `parse_call(source)` reads a reference call; `ast_match(generated, database)`
returns the first database API the answer matches (None and `hallucinated=True` when none
does); `score(rows, outputs)` gives accuracy and hallucination rate.

Matching rule: a call in the answer (any call node, nested ones included) matches a reference
call when its function, written as a dotted name (`AutoModel.from_pretrained`,
`torch.hub.load`), is the same, and each argument value of the reference (positional or keyword)
equals, as an AST (`ast.dump`: `'x'` and `"x"` are the same constant), some argument value of
the call. Keyword names and argument order are ignored, as Gorilla compares values only.

Deviations from Gorilla's scripts, which we do not have here (we implement the idea):

* Python's `ast` first, tree-sitter (the `rlaif` extra) where `ast` fails. An answer that does not
  parse as a whole is parsed line by line (a trailing comma stripped), so one bad line does not
  hide the call; the calls tree-sitter finds in the whole text and in each line `ast` rejects are
  added. Gorilla parses with tree-sitter alone, which tolerates what Python rejects: about one
  TorchHub reference in ten passes a positional argument after keyword arguments
  (`torch.hub.load(repo_or_dir='pytorch/vision', 'resnet18', pretrained=True)`), and such a call
  must match its own question and must not count as a hallucination. A tree-sitter argument is
  compared as its `ast.dump` when its text parses as an expression, else as its text.
* Argument values are compared as sub-trees, not as substrings of the call's text: Gorilla
  accepts `model='bert-base-uncased-finetuned'` for a reference `'bert-base-uncased'` and is
  sensitive to quote style; we are neither.
* Gorilla compares only the first call in the answer whose function matches (and, when none
  matches, mistakenly checks the last sub-tree it visited); we accept any matching call.
* A reference call without arguments matches on its function alone (Gorilla skips such APIs, so
  an answer calling one is always a hallucination).
* *Correct* means matching the question's own reference call. Gorilla's scripts count an
  answer correct when the database API it matches has the question's `domain`, which also
  accepts another API of the same domain.
* The database: the `api_call`s of Gorilla's `*_api.jsonl` files when given (`read_api_database`),
  else the reference calls of the loaded rows of the same provider.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from execrl.data.apibench import Problem
from execrl.data.jsonl import DataError, PathLike, read_rows

__all__ = [
    "ApiCall",
    "ast_match",
    "extract_api_call",
    "match",
    "parse_call",
    "read_api_database",
    "score",
]


@dataclass(frozen=True)
class ApiCall:
    """A call reduced to what matching compares: its dotted function name and argument sub-trees."""

    function: str
    args: tuple[str, ...]  # ast.dump of each positional and keyword value, in source order


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base is not None else None
    return None


def _api_call(node: ast.Call) -> ApiCall | None:
    function = _dotted(node.func)
    if function is None:
        return None
    values = [*node.args, *(k.value for k in node.keywords)]
    return ApiCall(function, tuple(ast.dump(v) for v in values))


def _parse(source: str) -> tuple[list[ast.Module], list[str]]:
    """(trees, rejected lines): the whole source as one tree, or else each line that parses on its
    own (trailing comma removed) and the lines that do not."""
    for text in (source, source.strip().rstrip(",")):
        try:
            return [ast.parse(text)], []
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            pass
    trees, rejected = [], []
    for line in source.splitlines():
        try:
            trees.append(ast.parse(line.strip().rstrip(",")))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            rejected.append(line)
    return trees, rejected


def _ast_calls(tree: ast.AST) -> list[ApiCall]:
    return [c for node in ast.walk(tree) if isinstance(node, ast.Call) and (c := _api_call(node)) is not None]


def _calls(source: str) -> list[ApiCall]:
    """Every call in `source`, outermost first: `ast` where it parses, tree-sitter elsewhere."""
    trees, rejected = _parse(source)
    calls = [c for tree in trees for c in _ast_calls(tree)]
    if len(trees) == 1 and not rejected:
        return calls
    for text in (source, *rejected):
        for call in _tree_sitter_calls(text):
            if call not in calls:
                calls.append(call)
    return calls


@functools.lru_cache(maxsize=1)
def _tree_sitter_parser() -> Any:
    try:
        import tree_sitter
        import tree_sitter_python
    except ImportError as e:
        raise DataError(
            f"apibench: parsing code that Python rejects needs tree-sitter ({e}); pip install 'execrl[rlaif]'"
        ) from None
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_python.language()))


def _ts_dotted(node: Any) -> str | None:
    if node.type == "identifier":
        return str(node.text.decode())
    if node.type == "attribute":
        base = _ts_dotted(node.child_by_field_name("object"))
        attr = node.child_by_field_name("attribute")
        return f"{base}.{attr.text.decode()}" if base is not None and attr is not None else None
    return None


def _ts_value(text: str) -> str:
    try:
        return ast.dump(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "text:" + text.strip()


def _tree_sitter_calls(source: str) -> list[ApiCall]:
    """The calls tree-sitter finds in `source` (error-tolerant), outermost first."""
    tree = _tree_sitter_parser().parse(source.encode("utf-8", "replace"))
    calls: list[ApiCall] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "call":
            function = _ts_dotted(node.child_by_field_name("function"))
            arguments = node.child_by_field_name("arguments")
            if function is not None and arguments is not None and arguments.type == "argument_list":
                values = []
                for arg in arguments.named_children:
                    if arg.type == "comment":
                        continue
                    if arg.type == "keyword_argument":
                        arg = arg.child_by_field_name("value")
                    if arg is not None:
                        values.append(_ts_value(arg.text.decode("utf-8", "replace")))
                calls.append(ApiCall(function, tuple(values)))
        stack.extend(reversed(node.children))
    return calls


@functools.lru_cache(maxsize=65536)
def parse_call(source: str) -> ApiCall | None:
    """The first call in a reference `api_call` string (outermost first), or None."""
    calls = _calls(source)
    return calls[0] if calls else None


def extract_api_call(text: str) -> str:
    """The `api_call` part of a Gorilla-format answer (see the module docstring)."""
    _, sep, rest = text.partition("api_call")
    if not sep:
        return text
    segment = rest.split("api_provider", 1)[0]
    colon = segment.find(":")
    segment = segment[colon + 1 :] if colon >= 0 else segment
    close = segment.rfind(")")
    segment = segment[: close + 1] if close >= 0 else segment
    return segment.strip().strip("`").strip()


def _matches(call: ApiCall, reference: ApiCall) -> bool:
    if call.function != reference.function:
        return False
    available = list(call.args)
    for arg in reference.args:
        if arg not in available:
            return False
        available.remove(arg)
    return True


def _contains(calls: Sequence[ApiCall], reference: str) -> bool:
    ref = parse_call(reference)
    return ref is not None and any(_matches(c, ref) for c in calls)


def ast_match(generated_code: str, api_database: Sequence[str]) -> tuple[str | None, bool]:
    """(the first API of `api_database` that the answer calls, hallucinated): hallucinated is
    True exactly when the answer matches no API of the database."""
    calls = _calls(extract_api_call(generated_code))
    for api in api_database:
        if _contains(calls, api):
            return api, False
    return None, True


def match(row: Problem, output: str, api_database: Sequence[str]) -> tuple[bool, bool]:
    """(correct, hallucinated) of one answer: it calls the question's reference API with its
    argument values; it calls no API of `api_database` (the reference call counts as one)."""
    calls = _calls(extract_api_call(output))
    if _contains(calls, row.api_call):
        return True, False
    return False, not any(_contains(calls, api) for api in api_database)


def read_api_database(path: PathLike) -> list[str]:
    """The `api_call` of each row of a Gorilla API file (`huggingface_api.jsonl`, ...)."""
    calls: list[str] = []
    for row in read_rows(path):
        call = row.text("api_call").strip()
        if call and call not in calls:
            calls.append(call)
    return calls


def score(
    rows: Sequence[Problem],
    outputs: Sequence[str],
    *,
    api_database: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, float | int]:
    """Accuracy and hallucination rate of `outputs[i]` answering `rows[i]`.

    `api_database` maps a provider to its API calls; by default each provider's database is the
    reference calls of the given rows of that provider."""
    if len(rows) != len(outputs):
        raise DataError(f"apibench: {len(rows)} rows but {len(outputs)} outputs")
    databases: dict[str, list[str]] = {}
    for row in rows:
        db = databases.setdefault(row.provider, [])
        if row.api_call not in db:
            db.append(row.api_call)
    if api_database is not None:
        missing = sorted(set(databases) - set(api_database))
        if missing:
            raise DataError(f"apibench: no API database for provider(s) {', '.join(map(repr, missing))}")
        databases = {provider: list(calls) for provider, calls in api_database.items()}
    correct = hallucinated = 0
    for row, output in zip(rows, outputs, strict=True):
        is_correct, is_hallucinated = match(row, output, databases[row.provider])
        correct += is_correct
        hallucinated += is_hallucinated
    n = len(rows)
    return {
        "accuracy": correct / n if n else 0.0,
        "hallucination_rate": hallucinated / n if n else 0.0,
        "n": n,
    }
