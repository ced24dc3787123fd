"""The runner's handles on the program's objects: `Remote` (an object the program returned or
built) and `RemoteGlobal` (one of its functions or classes, by name).

A test uses them as it would use the objects in one process — calls, attributes, items, `len`,
`str`, iteration, `isinstance` — each operation a request to the candidate process that comes back
as plain data or another handle. Comparisons are where a verdict is made, so they are decided
here, never by the program's own `__eq__`, `__lt__` or operators against test data
(docs/sandbox.md, "How tests see the program" and "Differences from plain Python").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from execrl.sandbox import wire

if TYPE_CHECKING:
    from execrl.sandbox.runner import Candidate, Link

__all__ = ["Remote", "RemoteGlobal", "UntrustedComparison"]


class UntrustedComparison(BaseException):
    """A test compared one of the program's objects in a way that only the program's own code could
    decide (its `__eq__` disagreeing with its attributes, or against test data). Plain Python
    would let the program judge itself; the sandbox reports this test as failed and says why."""


class Remote:
    """An object living in the candidate. Calls, attributes, items, `len`, `str` and iteration go
    over the wire and come back as plain data (or further references), as they would in one process.

    Comparisons are the exception, because they are where a verdict is made. `==` between two of
    the program's objects is true only when the program's own `__eq__` says so *and* the two have
    the same class and equal attributes (compared here, recursively); a class without `__eq__` is
    compared by identity, as in Python. When the program's `__eq__` and the attributes disagree, or
    one of its objects with an `__eq__` of its own meets test data, the test fails with an
    `UntrustedComparison` saying so: an object whose `__eq__` always returns True never passes."""

    __slots__ = ("_owner", "_rid", "_type")

    def __init__(self, owner: Candidate, rid: int, type_name: str) -> None:
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_rid", rid)
        object.__setattr__(self, "_type", type_name)

    def _op(self, op: str, *rest: Any) -> Any:
        link = self._owner.link
        if link is None or link.cand is not self._owner:
            raise self._owner.ended()
        return link.request([op, ["r", self._rid], *rest])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._op("call", args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name not in ("__name__", "__qualname__", "__doc__", "__dict__"):
            raise AttributeError(name)
        return self._op("getattr", name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._op("setattr", name, self._owner.encode(value))

    def __delattr__(self, name: str) -> None:
        self._op("delattr", name)

    def __getitem__(self, key: Any) -> Any:
        return self._op("getitem", self._owner.encode(key))

    def __setitem__(self, key: Any, value: Any) -> None:
        self._op("setitem", self._owner.encode(key), self._owner.encode(value))

    def __delitem__(self, key: Any) -> None:
        self._op("delitem", self._owner.encode(key))

    def __iter__(self) -> Remote:
        return self._op("iter")  # type: ignore[no-any-return]

    def __next__(self) -> Any:
        return self._op("next")

    def __len__(self) -> int:
        return int(self._op("len"))

    def __bool__(self) -> bool:
        return self._op("bool") is True

    def __contains__(self, item: Any) -> bool:
        # By iteration and this process's `==`, never by the program's `__contains__`: `x in obj`
        # must not hand test data to the program to judge.
        return any(x is item or x == item for x in self)

    def __str__(self) -> str:
        return str(self._op("str"))

    def __repr__(self) -> str:
        try:
            return str(self._op("repr"))
        except BaseException:
            return f"<candidate {self._type} object>"

    def __hash__(self) -> int:
        return int(self._op("hash"))

    def __eq__(self, other: Any) -> bool:
        return _equal_remote(self, other)

    def __ne__(self, other: Any) -> bool:
        return not _equal_remote(self, other)

    def __lt__(self, other: Any) -> bool:
        return _order(self, "lt", other)

    def __le__(self, other: Any) -> bool:
        return _order(self, "le", other)

    def __gt__(self, other: Any) -> bool:
        return _order(self, "gt", other)

    def __ge__(self, other: Any) -> bool:
        return _order(self, "ge", other)


def _binary(name: str, reflected: bool = False) -> Callable[[Remote, Any], Any]:
    """`a + b` between two of the program's objects, done by the program (a `Vector` sum). With
    test data on either side it is refused: `f(x) - 3.5` would hand an expected value to the
    program's `__sub__`, which could answer 0.0 to any test of the form `abs(f(x) - y) < tol`."""

    def op(self: Remote, other: Any) -> Any:
        if isinstance(other, Remote) and other._owner is self._owner:
            a, b = (other, self) if reflected else (self, other)
            return a._op("binop", name, ["r", b._rid])
        raise UntrustedComparison(
            f"a test applied {name} to the program's {self._type} object and test data "
            f"({type(other).__name__}); the sandbox never hands test data to the program's operators"
        )

    return op


for _name in wire.BINARY_OPERATORS:
    setattr(Remote, f"__{_name}__", _binary(_name))
    setattr(Remote, f"__r{_name}__", _binary(_name, reflected=True))

_comparing: set[tuple[int, int]] = set()  # pairs under structural comparison (cyclic objects)


def _equal_remote(a: Remote, other: Any) -> bool:
    if other is a:
        return True
    if not isinstance(other, Remote) or other._owner is not a._owner:
        if a._op("defines", "eq"):
            raise UntrustedComparison(
                f"the program's {a._type} object was compared with test data ({type(other).__name__}); "
                "in one process its own __eq__ would decide, and the sandbox never lets the program "
                "judge a test"
            )
        return False  # object.__eq__: identity, as Python compares a class without __eq__
    key = (a._rid, other._rid)
    if key in _comparing:
        return True  # co-inductive: a cycle back to a pair being compared does not make them differ
    said, custom = a._op("compare", "eq", ["r", other._rid])
    if not custom or not said:
        return bool(said)  # no __eq__ of its own: identity (already False); or the program says no
    _comparing.add(key)
    try:
        (ta, _, sa), (tb, _, sb) = a._op("state"), other._op("state")
        same = ta == tb and sa is not None and sa == sb
    finally:
        _comparing.discard(key)
    if not same:
        raise UntrustedComparison(
            f"the program's {a._type}.__eq__ says two objects are equal but their attributes differ; "
            "the sandbox does not let the program's own __eq__ decide a test"
        )
    return True


def _order(a: Remote, op: str, other: Any) -> bool:
    if isinstance(other, Remote) and other._owner is a._owner:
        said, _ = a._op("compare", op, ["r", other._rid])
        return bool(said)  # two of the program's objects: no test data reaches the program
    raise UntrustedComparison(
        f"a test ordered the program's {a._type} object against test data ({type(other).__name__}); "
        "only the program's own comparison could decide it, and the sandbox does not run it"
    )


class RemoteGlobal:
    """A global of the program (function or class) by name: looked up in the program on each use,
    so a program that rebinds it is seen as in one process, and a candidate restarted after a crash
    is reached too. Passed back into the program it arrives as the program's own object, so
    `isinstance(x, Node)` inside the program and `f(Node)` work; `isinstance(obj, Node)` in a test
    asks the program."""

    def __init__(self, link: Link, name: str) -> None:
        self._link, self._name = link, name
        self.__name__ = self.__qualname__ = name

    def _op(self, op: str, *rest: Any) -> Any:
        return self._link.request([op, ["g", self._name], *rest])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._op("call", args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._op("getattr", name)

    def __instancecheck__(self, obj: Any) -> bool:
        cand = self._link.cand
        if isinstance(obj, Remote) and cand is not None and obj._owner is cand:
            return self._op("isinstance", ["r", obj._rid]) is True
        return False  # plain data never is an instance of a program class once it has crossed

    def __subclasscheck__(self, cls: Any) -> bool:
        return cls is self

    def __repr__(self) -> str:
        return f"<program global {self._name}>"
