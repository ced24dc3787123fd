"""The wire between processes: length-prefixed JSON frames, and plain-data encoding of values.

Values cross from the candidate process to the trusted test runner only as *plain data*: None,
bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset. The encoder reads
builtin subclasses through the base type's own slots (`int.__int__`, `str.__str__`, `dict.items`…),
so an `int` subclass whose `__eq__` always returns True arrives as the plain `int` it wraps. Any
other object becomes a remote reference (`["r", id, type_name]`) that the runner can call or
iterate but that never compares equal to anything but itself. The decoder builds only exact
builtin types and is safe on hostile input (it is `json.loads` plus a bounded tree walk).

Encoding: JSON scalars stand for themselves; every container is a list whose first item is a tag:
`["l", ...]` list, `["t", ...]` tuple, `["s", ...]` set, `["f", ...]` frozenset,
`["d", k0, v0, k1, v1, ...]` dict, `["b", hex]` bytes, `["ba", hex]` bytearray, `["c", re, im]`
complex, `["r", id, type_name]` remote reference, `["fn", id]` a runner-side callable.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from collections.abc import Callable
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
        return ["t", *(encode(x, remote, d) for x in _tuple_iter(v))]
    if isinstance(v, dict):
        out: list[Any] = ["d"]
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
    if tag in ("r", "fn"):
        return resolve(v)
    raise WireError(f"unknown tag {tag!r}")
