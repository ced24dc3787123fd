"""The wire between processes: length-prefixed JSON frames, and plain-data encoding of values.

Values cross from the candidate process to the trusted test runner only as *plain data*: None,
bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset. The encoder reads
builtin subclasses through the base type's own slots (`int.__int__`, `str.__str__`, `dict.items`…),
so an `int` subclass whose `__eq__` always returns True arrives as the plain `int` it wraps. Any
other object becomes a remote reference (`["r", id, type_name]`) that the runner can call, read,
set and iterate, and whose comparisons the runner decides (`remote.Remote`). Values of the
standard library's value types (`range`, `deque`, `Fraction`, `Decimal`, dates, dict views,
`Counter`, `OrderedDict`, `defaultdict`, namedtuples) cross by value, rebuilt on the far side from
plain numbers and strings. The decoder builds only exact builtin or standard-library types and is
safe on hostile input (it is `json.loads` plus a bounded tree walk).

Encoding: JSON scalars stand for themselves; every container is a list whose first item is a tag:
`["l", ...]` list, `["t", ...]` tuple, `["s", ...]` set, `["f", ...]` frozenset,
`["d", k0, v0, k1, v1, ...]` dict, `["b", hex]` bytes, `["ba", hex]` bytearray, `["c", re, im]`
complex, `["r", id, type_name]` remote reference, `["fn", id]` a runner-side callable, `["g", name]`
a global of the program (the runner's handle on `f`, `Node`, ...), `["B", name]` an object of the
`builtins` module (a type such as `int`, or a function such as `len`), which each process resolves
to its *own* pristine builtin — so `remove_type(data, int)` gets the real `int` on the far side, and
a program that returns `str` hands the runner the runner's `str`, never an object of the program's.
"""

from __future__ import annotations

import builtins
import json
import os
import select
import struct
import time
from collections import Counter, OrderedDict, defaultdict, deque, namedtuple
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as daytime
from decimal import Decimal
from fractions import Fraction
from typing import Any

MAX_FRAME = 64 << 20  # a candidate cannot make the runner allocate more than this per message
MAX_DEPTH = 200
_HEADER = struct.Struct(">I")


class WireError(Exception):
    """The peer broke the protocol (closed early, sent garbage, or exceeded a bound)."""


class PeerTimeout(WireError):
    """No complete frame arrived before the deadline."""


class PeerClosed(WireError):
    """The peer closed its end (typically: the process died)."""


def send(fd: int, obj: Any, deadline: float | None = None) -> None:
    """Write one frame. With a deadline, never block past it (a peer that stops reading)."""
    data = json.dumps(obj, separators=(",", ":")).encode()
    buf = memoryview(_HEADER.pack(len(data)) + data)
    while buf:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                raise PeerTimeout("deadline exceeded while sending")
            n = os.write(fd, buf[: select.PIPE_BUF])  # at most PIPE_BUF: never blocks once writable
        else:
            n = os.write(fd, buf)
        buf = buf[n:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    while n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise PeerTimeout("deadline exceeded")
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise PeerClosed("peer closed the channel")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv(fd: int, deadline: float | None = None, max_frame: int = MAX_FRAME) -> Any:
    (size,) = _HEADER.unpack(_read_exact(fd, 4, deadline))
    if size > max_frame:
        raise WireError(f"frame of {size} bytes exceeds the {max_frame} byte bound")
    try:
        return json.loads(_read_exact(fd, size, deadline))
    except (ValueError, RecursionError) as e:
        raise WireError(f"malformed frame: {type(e).__name__}") from None


def _hashables(values: list[Any]) -> list[Any]:
    """Refuse hash flooding: many distinct keys sharing few hashes (e.g. ints k*(2**61-1)) would make
    building the set quadratic in the trusted process. Plain data hashes cheaply and honestly."""
    if len(values) > 64:
        distinct = len({hash(x) for x in values})
        if distinct * 4 < len(values):  # plain data sent as a set has no duplicates to explain it
            raise WireError("too many colliding hashes in a set or dict")
    return values


# ---------------------------------------------------------------------------------------------
# Encoding (runs in either process). `remote` registers a non-plain object and returns its id.

_int, _float, _str, _complex = int.__int__, float.__float__, str.__str__, complex
_list_iter, _tuple_iter, _set_iter, _fset_iter = (
    list.__iter__,
    tuple.__iter__,
    set.__iter__,
    frozenset.__iter__,
)
_dict_items = dict.items

# The builtins module's types and functions, captured at import: before any program runs (the
# candidate imports this module in its spawner), so a program that rebinds `builtins.int` cannot
# change what `["B", "int"]` means.
BUILTINS: dict[str, Any] = {
    name: obj
    for name, obj in vars(builtins).items()
    if not name.startswith("_") and (isinstance(obj, type) or type(obj) is type(len))
} | {"NoneType": type(None), "ellipsis": type(...), "NotImplementedType": type(NotImplemented)}
_BUILTIN_NAMES = {id(obj): name for name, obj in BUILTINS.items()}
BUILTIN_TYPES = {name: obj for name, obj in BUILTINS.items() if isinstance(obj, type)}
"""What the runner accepts back as `["B", name]`: types only. A builtin *function* named by the
program (`exec`, `open`, `getattr`) never becomes callable in the trusted process."""


BINARY_OPERATORS = (
    "add",
    "sub",
    "mul",
    "truediv",
    "floordiv",
    "mod",
    "pow",
    "matmul",
    "and",
    "or",
    "xor",
    "lshift",
    "rshift",
)
"""The binary operators a test may apply between two of the program's objects (`remote.Remote`)."""

_STDLIB_TYPES: tuple[type, ...] = (
    range,
    deque,
    Fraction,
    Decimal,
    timedelta,
    date,
    daytime,
    type({}.keys()),
    type({}.items()),
)


def _stdlib_value(v: Any, remote: Callable[[Any], Any], d: int) -> list[Any] | None:
    """Values of the standard library's value types, by value: a program that returns `range(3)`,
    `deque([1])`, `Fraction(1, 2)`, `Decimal("0.1")`, a `date` or `d.keys()` is compared as in one
    process. Read through the base type's own accessors and rebuilt on the other side from plain
    numbers and strings, so a subclass cannot smuggle behaviour across."""
    if not isinstance(v, _STDLIB_TYPES):
        return None
    if isinstance(v, range):
        return ["range", range.start.__get__(v), range.stop.__get__(v), range.step.__get__(v)]  # type: ignore[attr-defined]
    if isinstance(v, deque):
        maxlen = deque.maxlen.__get__(v)  # type: ignore[attr-defined]
        return ["deque", maxlen, *(encode(x, remote, d) for x in deque.__iter__(v))]
    if isinstance(v, Fraction):
        return ["frac", _int(Fraction.numerator.fget(v)), _int(Fraction.denominator.fget(v))]  # type: ignore[attr-defined]
    if isinstance(v, Decimal):
        return ["dec", _str(Decimal.__str__(v))]
    if isinstance(v, timedelta):
        parts = (timedelta.days, timedelta.seconds, timedelta.microseconds)
        return ["td", *(_int(p.__get__(v)) for p in parts)]  # type: ignore[attr-defined]
    if isinstance(v, (date, daytime)):
        if getattr(v, "tzinfo", None) is not None:
            return None  # a time zone is an object of its own: it stays a reference
        base: Any = datetime if isinstance(v, datetime) else date if isinstance(v, date) else daytime
        return [{datetime: "dt", date: "date", daytime: "time"}[base], _str(base.isoformat(v))]
    items: list[Any] = list(v)  # type: ignore[call-overload]
    return ["keys" if isinstance(v, type({}.keys())) else "items", *(encode(x, remote, d) for x in items)]


_namedtuples: dict[tuple[str, tuple[str, ...]], Any] = {}


def _namedtuple(name: str, fields: tuple[str, ...]) -> Any:
    """A namedtuple class of this process with the same name and fields (built from names only)."""
    key = (name, fields)
    if key not in _namedtuples:
        if len(fields) > 255 or not all(type(f) is str and f.isidentifier() for f in (name, *fields)):
            raise WireError("malformed namedtuple")
        if len(_namedtuples) > 1000:
            _namedtuples.clear()
        _namedtuples[key] = namedtuple(name, fields, rename=True)  # type: ignore[misc]
    return _namedtuples[key]


def _stdlib_decode(tag: str, v: list[Any], resolve: Callable[[list[Any]], Any], d: int) -> Any:
    try:
        if tag == "range" and len(v) == 4 and all(type(x) is int for x in v[1:]):
            return range(v[1], v[2], v[3])
        if tag == "deque" and len(v) >= 2 and (v[1] is None or type(v[1]) is int):
            return deque((decode(x, resolve, d) for x in v[2:]), v[1])
        if tag == "frac" and len(v) == 3 and all(type(x) is int for x in v[1:]):
            return Fraction(v[1], v[2])
        if tag in ("dec", "dt", "date", "time") and len(v) == 2 and type(v[1]) is str and len(v[1]) < 200:
            parse: dict[str, Callable[[str], Any]] = {
                "dec": Decimal,
                "dt": datetime.fromisoformat,
                "date": date.fromisoformat,
                "time": daytime.fromisoformat,
            }
            return parse[tag](v[1])
        if tag == "td" and len(v) == 4 and all(type(x) is int for x in v[1:]):
            return timedelta(days=v[1], seconds=v[2], microseconds=v[3])
        if (
            tag == "nt"
            and len(v) >= 3
            and type(v[1]) is str
            and type(v[2]) is list
            and len(v[2]) == len(v) - 3
        ):
            cls = _namedtuple(v[1], tuple(v[2]))
            return cls(*(decode(x, resolve, d) for x in v[3:]))
        if tag in ("ctr", "od", "dd") and len(v) >= 2 and len(v) % 2 == 0:
            keys = _hashables([decode(v[i], resolve, d) for i in range(2, len(v), 2)])
            values = [decode(v[i], resolve, d) for i in range(3, len(v), 2)]
            if tag == "ctr":
                return Counter(dict(zip(keys, values)))
            if tag == "od":
                return OrderedDict(zip(keys, values))
            factory = decode(v[1], resolve, d) if v[1] is not None else None
            return defaultdict(factory if callable(factory) else None, zip(keys, values))
        if tag == "keys":
            return dict.fromkeys(_hashables([decode(x, resolve, d) for x in v[1:]])).keys()
        if tag == "items":
            pairs = [decode(x, resolve, d) for x in v[1:]]
            if not all(type(p) is tuple and len(p) == 2 for p in pairs):
                raise WireError("malformed items")
            return dict(zip(_hashables([p[0] for p in pairs]), (p[1] for p in pairs))).items()
    except (ValueError, TypeError, ArithmeticError, ZeroDivisionError, OverflowError):
        raise WireError(f"malformed {tag}") from None
    raise WireError(f"malformed {tag}")


def encode(v: Any, remote: Callable[[Any], Any], depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply to encode")
    t = type(v)
    if v is None or t is bool or t is str or t is int or t is float:
        return v
    d = depth + 1
    if isinstance(v, int):  # bool cannot be subclassed, so this is int or an int subclass
        return _int(v)
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, complex):
        return ["c", complex.real.__get__(v), complex.imag.__get__(v)]  # type: ignore[attr-defined]
    if isinstance(v, list):
        return ["l", *(encode(x, remote, d) for x in _list_iter(v))]
    if isinstance(v, tuple):
        items = [encode(x, remote, d) for x in _tuple_iter(v)]
        fields = getattr(type(v), "_fields", None) if t is not tuple else None
        if isinstance(fields, tuple) and len(fields) == len(items) and all(type(f) is str for f in fields):
            return ["nt", _str(type(v).__name__)[:100], list(fields), *items]  # a namedtuple keeps its names
        return ["t", *items]
    if isinstance(v, dict):
        out: list[Any] = ["d"]
        if t is not dict and isinstance(v, (Counter, OrderedDict, defaultdict)):  # kept as what they are
            factory = v.default_factory if isinstance(v, defaultdict) else None
            tag = "ctr" if isinstance(v, Counter) else "od" if isinstance(v, OrderedDict) else "dd"
            out = [tag, encode(factory, remote, d)]
        for k, x in _dict_items(v):
            out.append(encode(k, remote, d))
            out.append(encode(x, remote, d))
        return out
    if isinstance(v, frozenset):
        return ["f", *(encode(x, remote, d) for x in _fset_iter(v))]
    if isinstance(v, set):
        return ["s", *(encode(x, remote, d) for x in _set_iter(v))]
    if isinstance(v, bytearray):
        return ["ba", bytearray.hex(v)]
    if isinstance(v, bytes):
        return ["b", bytes.hex(v)]
    value = _stdlib_value(v, remote, d)
    if value is not None:
        return value
    name = _BUILTIN_NAMES.get(id(v))
    if name is not None and BUILTINS[name] is v:
        return ["B", name]
    return remote(v)


def decode(v: Any, resolve: Callable[[list[Any]], Any], depth: int = 0) -> Any:
    """Build exact builtin values. `resolve` turns `["r", ...]` / `["fn", ...]` markers into objects."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    t = type(v)
    if v is None or t is bool or t is str or t is int or t is float:
        return v
    if t is not list or not v or type(v[0]) is not str:
        raise WireError("malformed value")
    tag, d = v[0], depth + 1
    if tag == "l":
        return [decode(x, resolve, d) for x in v[1:]]
    if tag == "t":
        return tuple(decode(x, resolve, d) for x in v[1:])
    try:
        if tag == "d":
            items = v[1:]
            if len(items) % 2:
                raise WireError("malformed dict")
            keys = _hashables([decode(items[i], resolve, d) for i in range(0, len(items), 2)])
            return dict(zip(keys, (decode(items[i], resolve, d) for i in range(1, len(items), 2))))
        if tag == "s":
            return set(_hashables([decode(x, resolve, d) for x in v[1:]]))
        if tag == "f":
            return frozenset(_hashables([decode(x, resolve, d) for x in v[1:]]))
    except TypeError:  # unhashable key or member
        raise WireError("unhashable value in a dict key or set") from None
    if tag in ("b", "ba") and len(v) == 2 and type(v[1]) is str:
        try:
            raw = bytes.fromhex(v[1])
        except ValueError:
            raise WireError("malformed bytes") from None
        return raw if tag == "b" else bytearray(raw)
    if tag == "c" and len(v) == 3 and all(type(x) in (int, float) for x in v[1:]):
        return complex(v[1], v[2])
    if tag in ("r", "fn", "g", "B"):
        return resolve(v)
    if tag in (
        "range",
        "deque",
        "frac",
        "dec",
        "dt",
        "date",
        "time",
        "td",
        "keys",
        "items",
        "nt",
        "ctr",
        "od",
        "dd",
    ):
        return _stdlib_decode(tag, v, resolve, d)
    raise WireError(f"unknown tag {tag!r}")
