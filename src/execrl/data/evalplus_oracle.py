"""The trusted judge of HumanEval+ / MBPP+ tests, run in the sandbox's test process.

`execrl.data.evalplus` ships this file's *source* as the `helpers` of an `AssertTests` suite, so
it runs in the trusted runner, never in the candidate's process, and needs nothing but the
standard library (it must also run on Python 3.10). The suite's setup builds a `PlusTask` (the
canonical solution executed in a namespace of its own, and the inputs); each test is
`plus_judge(PLUS_TASK, <entry_point>, i)`, which calls the reference and then the candidate on
deep copies of input `i` and compares the two results.

The comparison follows evalplus 0.3 (`evalplus/eval/__init__.py`, `_special_oracle.py`):

* exact `==`; if that fails and `atol != 0`, the types must be the same, sequences the same
  length, and the values close as `numpy.allclose(out, exp, rtol=1e-7, atol=atol)` would find
  them (here in plain Python, element by element; no broadcasting); `atol == 0` becomes 1e-6 when
  the expected value is a float or a non-empty list/tuple of floats;
* HumanEval/32 `find_zero`: `abs(poly(xs, out)) <= atol` instead of comparing with the reference;
* MBPP+: `are_equivalent` (Mbpp/164) always passes; `sum_div` (Mbpp/295) also passes on 0;
  `surface_Area` (Mbpp/581) and `digit_distance_nums` (Mbpp/558) also accept the alternative
  oracle's answer; set comparison for the tasks in `PLUS_SET_EQ`; for `PLUS_NOT_NONE` (regex
  tasks returning match objects) only whether the result is None counts;
* MBPP+ inputs are converted from JSON as evalplus's `mbpp_deserialize_inputs` does (lists to
  tuples, sets or complex numbers for the tasks whose functions take those).

Deviation: evalplus computes the expected outputs once, ahead of time; here the reference runs
once per test of every job (its output stays in this process). Its prints are swallowed: the
test process's stdout is the sandbox's protocol channel.
"""

from __future__ import annotations

import contextlib as _contextlib
import copy as _copy
import io as _io
import json as _json
import math as _math
from collections.abc import Callable, Iterator
from typing import Any

PLUS_NOT_NONE = ("check_str", "text_match_three", "text_starta_endb")
PLUS_SET_EQ = (
    "similar_elements",  # Mbpp/2
    "find_char_long",  # Mbpp/7
    "common_in_nested_lists",  # Mbpp/111
    "extract_singly",  # Mbpp/140
    "larg_nnum",  # Mbpp/232
    "intersection_array",  # Mbpp/249
    "find_dissimilar",  # Mbpp/579
    "Diff",  # Mbpp/769
)


@_contextlib.contextmanager
def _quiet() -> Iterator[None]:
    sink = _io.StringIO()
    with _contextlib.redirect_stdout(sink), _contextlib.redirect_stderr(sink):
        yield


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


# Mbpp task number -> how one input (a list of arguments) is rebuilt from JSON.
_EACH_ARG_TUPLE = {2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616}
_EACH_ARG_TUPLE |= {630, 726, 740, 744, 809}
_EACH_ARG_LIST_OF_TUPLES = {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780}
_EACH_ARG_TUPLE_OF_TUPLES = {259, 401, 445}
_FIRST_ARG_TUPLE = {250, 405, 446, 617, 720, 763, 808}
_FIRST_ARG_LIST_OF_TUPLES = {75, 413, 444, 753}
_SECOND_ARG_TUPLE = {106, 750}
_ALL_TUPLES = {580, 615, 791}


def _mbpp_input(n: int, inp: list[Any]) -> Any:
    if n in _EACH_ARG_TUPLE:
        return [tuple(a) for a in inp]
    if n in _EACH_ARG_LIST_OF_TUPLES:
        return [[tuple(x) for x in a] for a in inp]
    if n in _EACH_ARG_TUPLE_OF_TUPLES:
        return [tuple(tuple(x) for x in a) for a in inp]
    if n in _FIRST_ARG_LIST_OF_TUPLES:
        return [[tuple(x) for x in inp[0]], inp[1]]
    if n in _SECOND_ARG_TUPLE:
        return [inp[0], tuple(inp[1])]
    if n in _FIRST_ARG_TUPLE:
        return [tuple(inp[0]), inp[1]]
    if n in _ALL_TUPLES:
        return _tuples(inp)
    if n == 115:  # evalplus turns an empty list into {} (a dict), kept for fidelity
        return [[set(x) if isinstance(x, list) and x else {} for x in inp[0]]]
    if n == 124:
        return (float(inp[0]), complex(inp[1]))
    if n == 252:
        return [complex(inp[0])]
    if n == 278:
        return [tuple(tuple(x) if isinstance(x, list) else x for x in inp[0])]
    if n == 307:
        return [tuple(inp[0]), inp[1], inp[2]]
    if n == 722:
        return [{k: tuple(v) for k, v in inp[0].items()}, *inp[1:]]
    return inp


def plus_deserialize(dataset: str, task_id: str, inputs: list[Any]) -> list[Any]:
    """Inputs as the functions take them (MBPP+ only: JSON has no tuples, sets or complex)."""
    if dataset != "mbpp":
        return inputs
    try:
        n = int(task_id.rsplit("/", 1)[-1])
    except ValueError:
        return inputs
    return [_mbpp_input(n, inp) for inp in inputs]


def _poly(xs: list[Any], x: float) -> float:
    return sum(coeff * _math.pow(x, i) for i, coeff in enumerate(xs))


def _surface_area(base_edge: float, height: float) -> int:
    slant_height = _math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 2 * base_edge * slant_height)


def _digit_distance_nums(num1: int, num2: int) -> int:
    a, b = str(num1), str(num2)
    width = max(len(a), len(b))
    return sum(abs(int(x) - int(y)) for x, y in zip(a.zfill(width), b.zfill(width)))


def _is_floats(x: Any) -> bool:
    if isinstance(x, float):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, float) for i in x)


def _close(a: Any, b: Any, atol: float, rtol: float) -> bool:
    """numpy.isclose on two plain values, element by element for equal-length sequences."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y, atol, rtol) for x, y in zip(a, b))
    numbers = (int, float, complex)  # bool is an int, as numpy treats it
    if not isinstance(a, numbers) or not isinstance(b, numbers):
        return False
    if a == b:
        return True  # equal infinities
    try:
        if _math.isinf(abs(a)) or _math.isinf(abs(b)):
            return False  # an infinity is close only to itself
        return bool(abs(a - b) <= atol + rtol * abs(b))  # False for NaN
    except OverflowError:  # ints beyond float range
        return False


def plus_check_output(inp: Any, out: Any, exp: Any, atol: float, dataset: str, entry_point: str) -> bool:
    """evalplus's verdict on one output `out` against the reference's `exp` (see module doc)."""
    exact = out == exp
    if dataset == "mbpp":
        if entry_point == "are_equivalent":
            exact = True
        elif entry_point == "sum_div":
            exact = exact or out == 0
        elif entry_point == "surface_Area":
            exact = exact or abs(out - _surface_area(*inp)) <= atol
        elif entry_point == "digit_distance_nums":
            exact = exact or out == _digit_distance_nums(*inp)
        elif entry_point in PLUS_SET_EQ:
            exact = set(out) == set(exp)
        elif entry_point in PLUS_NOT_NONE:
            exact = out == exp if isinstance(out, bool) else exp == (out is not None)
    if dataset == "humaneval" and entry_point == "find_zero":
        return bool(abs(_poly(inp[0], out)) <= atol)  # inp is [xs]
    if atol == 0 and _is_floats(exp):
        atol = 1e-6
    if exact or atol == 0:
        return bool(exact)
    if type(out) is not type(exp):
        return False
    if isinstance(exp, (list, tuple)) and len(out) != len(exp):
        return False
    return _close(out, exp, atol, 1e-7)


class PlusTask:
    """One task's reference function and inputs, built by the suite's setup."""

    def __init__(
        self,
        dataset: str,
        task_id: str,
        entry_point: str,
        atol: float,
        reference_source: str,
        inputs_json: str,
    ) -> None:
        self.dataset, self.entry_point, self.atol = dataset, entry_point, atol
        self.inputs = plus_deserialize(dataset, task_id, _json.loads(inputs_json))
        namespace: dict[str, Any] = {"__name__": "__reference__"}
        with _quiet():
            exec(compile(reference_source, "<reference>", "exec", dont_inherit=True), namespace)
        self.reference: Callable[..., Any] = namespace[entry_point]


def _head(value: Any, n: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= n else text[:n] + "…"


def plus_judge(task: PlusTask, candidate: Callable[..., Any], index: int) -> None:
    """One test: the candidate's output on input `index` must agree with the reference's."""
    inp = task.inputs[index]
    with _quiet():
        expected = task.reference(*_copy.deepcopy(inp))
    if task.dataset == "mbpp" and task.entry_point in PLUS_NOT_NONE:
        expected = expected is not None
    out = candidate(*_copy.deepcopy(inp))
    try:
        ok = plus_check_output(inp, out, expected, task.atol, task.dataset, task.entry_point)
    except Exception as e:  # e.g. set() of an unhashable output: a wrong answer
        raise AssertionError(f"input #{index}: cannot compare {_head(out)} ({type(e).__name__}: {e})")
    if not ok:
        raise AssertionError(f"input #{index}: expected {_head(expected)}, got {_head(out)}")
