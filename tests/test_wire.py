"""The plain-data wire: what crosses from the candidate is only ever exact builtin data."""

from __future__ import annotations

import math
import os

import pytest

from execrl.sandbox import wire


def roundtrip(v: object) -> object:
    refs: list[object] = []
    enc = wire.encode(v, lambda o: (refs.append(o), ["r", len(refs) - 1, type(o).__name__])[1])
    return wire.decode(enc, lambda m: ("ref", m[1]))


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -(2**200), 1.5, "ünïcode", b"\x00\xff", bytearray(b"ab"), 1 + 2j, [1, [2]], (1, (2,)),
     {"a": [1], (1, 2): {3}}, {1, 2}, frozenset({3}), {"nested": {"k": ()}}],
)  # fmt: skip
def test_plain_values_roundtrip_exactly(value: object) -> None:
    """Every plain value comes back equal and of the exact same type."""
    back = roundtrip(value)
    assert back == value and type(back) is type(value)


def test_special_floats_survive() -> None:
    """NaN, infinities and -0.0 keep their identity through JSON."""
    back = roundtrip([math.nan, math.inf, -math.inf, -0.0])
    assert isinstance(back, list)
    assert math.isnan(back[0]) and back[1:3] == [math.inf, -math.inf] and math.copysign(1, back[3]) == -1


def test_subclass_with_lying_eq_arrives_as_plain_int() -> None:
    """An int subclass whose __eq__ is always True becomes the plain int it wraps."""

    class Liar(int):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = int.__hash__

    back = roundtrip(Liar(3))
    assert type(back) is int and back == 3 and back != 4


def test_str_and_list_subclasses_are_read_through_base_slots() -> None:
    """Overridden __str__/__iter__ of builtin subclasses are not consulted."""

    class S(str):
        def __str__(self) -> str:
            return "forged"

    class L(list):  # type: ignore[type-arg]
        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter([99])

    assert roundtrip(S("real")) == "real"
    assert roundtrip(L([1, 2])) == [1, 2]


def test_other_objects_become_references() -> None:
    """Arbitrary objects are never serialized by value."""

    class Obj:
        def __eq__(self, other: object) -> bool:
            return True

    assert roundtrip(Obj()) == ("ref", 0)


@pytest.mark.parametrize(
    "frame",
    [["x"], ["d", 1], ["zz", 1], [1, 2], {"a": 1}, ["b", "nothex"], ["s", ["l", 1]], ["c", "1", 2], []],
)
def test_decoder_rejects_malformed_values(frame: object) -> None:
    """Hostile frames raise WireError instead of producing objects or crashing."""
    with pytest.raises(wire.WireError):
        wire.decode(frame, lambda m: None)


def test_decoder_bounds_depth() -> None:
    """A deeply nested frame is refused, not a RecursionError in the trusted process."""
    deep: list = ["l"]
    for _ in range(wire.MAX_DEPTH + 5):
        deep = ["l", deep]
    with pytest.raises(wire.WireError):
        wire.decode(deep, lambda m: None)


def test_oversized_frame_is_refused() -> None:
    """A frame header announcing more than the bound is rejected before allocating."""
    r, w = os.pipe()
    os.write(w, (wire.MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(wire.WireError):
        wire.recv(r, deadline=None)
    os.close(r)
    os.close(w)


def test_hash_flooding_set_is_refused() -> None:
    """Many distinct ints sharing one hash (k*(2**61-1)) would make the trusted side quadratic."""
    flood = ["s", *[k * (2**61 - 1) for k in range(1, 2000)]]
    with pytest.raises(wire.WireError, match="colliding"):
        wire.decode(flood, lambda m: None)


def test_large_honest_set_is_accepted() -> None:
    """Ordinary big sets and dicts decode fine."""
    assert len(roundtrip(set(range(5000)))) == 5000  # type: ignore[arg-type]
    assert roundtrip({str(i): i for i in range(5000)}) == {str(i): i for i in range(5000)}
