"""Legitimate programs the sandbox must still pass: the confinement must not break ordinary code.

Every test runs a correct program against a correct test suite on the shared session executor and
expects `passed`. Tests marked `xfail(strict=True, reason="BUG: ...")` are known false negatives.
"""

from __future__ import annotations

import textwrap

import pytest

from conftest import run_one
from execrl import AssertTests, CallCase, CallTests, IOCase, IOTests, LocalExecutor, Status


def prog(src: str) -> str:
    return textwrap.dedent(src).lstrip("\n")


def check_passed(r: object) -> None:
    assert getattr(r, "status", None) is Status.PASSED, r


# module -> (program defining f(), test statement, trusted setup)
STDLIB: dict[str, tuple[str, str, str]] = {
    "math": (
        "import math\ndef f():\n    return math.gcd(12, 18), math.isqrt(17), round(math.pi, 5)\n",
        "assert f() == (6, 4, 3.14159)",
        "",
    ),
    "re": (
        "import re\ndef f():\n    return re.findall(r'\\d+', 'a1b22c333'), re.sub('[aeiou]', '', 'sandbox')\n",
        "assert f() == (['1', '22', '333'], 'sndbx')",
        "",
    ),
    "collections": (
        prog("""
            from collections import Counter, OrderedDict, defaultdict, deque, namedtuple
            def f():
                d = defaultdict(list)
                d["k"].append(1)
                q = deque([1, 2, 3], maxlen=2)
                P = namedtuple("P", "x y")
                return Counter("abracadabra").most_common(1), dict(d), list(q), P(1, 2), OrderedDict(a=1)
        """),
        "assert f() == ([('a', 5)], {'k': [1]}, [2, 3], (1, 2), {'a': 1})",
        "",
    ),
    "itertools": (
        "import itertools\ndef f():\n    return list(itertools.accumulate(range(5))), "
        "len(list(itertools.permutations(range(5), 3)))\n",
        "assert f() == ([0, 1, 3, 6, 10], 60)",
        "",
    ),
    "functools": (
        prog("""
            import functools
            @functools.lru_cache(maxsize=None)
            def fib(n):
                return n if n < 2 else fib(n - 1) + fib(n - 2)
            def f():
                return fib(90), functools.reduce(lambda a, b: a * b, range(1, 11))
        """),
        "assert f() == (2880067194370816120, 3628800)",
        "",
    ),
    "heapq": (
        "import heapq\ndef f():\n    h = [5, 1, 4, 2, 3]\n    heapq.heapify(h)\n"
        "    return [heapq.heappop(h) for _ in range(3)], heapq.nlargest(2, [5, 1, 4])\n",
        "assert f() == ([1, 2, 3], [5, 4])",
        "",
    ),
    "bisect": (
        "import bisect\ndef f():\n    a = [1, 2, 4, 4, 8]\n    bisect.insort(a, 3)\n"
        "    return bisect.bisect_left(a, 4), bisect.bisect_right(a, 4), a\n",
        "assert f() == (3, 5, [1, 2, 3, 4, 4, 8])",
        "",
    ),
    "datetime": (
        "import datetime\ndef f():\n    d = datetime.date(2024, 3, 1)\n"
        "    return (d - datetime.date(2024, 2, 1)).days, d.weekday(), d.isoformat()\n",
        "assert f() == (29, 4, '2024-03-01')",
        "",
    ),
    "fractions": (
        "from fractions import Fraction\ndef f():\n    return str(Fraction(1, 3) + Fraction(1, 6))\n",
        "assert f() == '1/2'",
        "",
    ),
    "decimal": (
        "from decimal import Decimal, getcontext\ndef f():\n    getcontext().prec = 50\n"
        "    return str(Decimal(1) / Decimal(7))[:12], str(Decimal('0.1') + Decimal('0.2'))\n",
        "assert f() == ('0.1428571428', '0.3')",
        "",
    ),
    "statistics": (
        "import statistics\ndef f():\n    return statistics.median([1, 3, 2, 4]), statistics.mean([1, 2, 3, 4])\n",
        "assert f() == (2.5, 2.5)",
        "",
    ),
    "json": (
        "import json\ndef f():\n    return json.loads(json.dumps({'a': [1, 2.5, None, True]}))\n",
        "assert f() == {'a': [1, 2.5, None, True]}",
        "",
    ),
    "random": (
        "import random\ndef f():\n    return random.Random(42).sample(range(100), 5)\n",
        "assert f() == random.Random(42).sample(range(100), 5)",
        "import random",
    ),
    "string": (
        "import string\ndef f():\n    return string.ascii_lowercase[:5], string.capwords('hello sandbox world')\n",
        "assert f() == ('abcde', 'Hello Sandbox World')",
        "",
    ),
    "typing": (
        prog("""
            from typing import Dict, List, NamedTuple, Optional
            class Pair(NamedTuple):
                a: int
                b: int
            def f(xs: List[int]) -> Optional[Dict[str, int]]:
                return {"sum": sum(xs), "pair": sum(Pair(1, 2))} if xs else None
        """),
        "assert f([1, 2]) == {'sum': 3, 'pair': 3} and f([]) is None",
        "",
    ),
    "dataclasses": (
        prog("""
            from dataclasses import asdict, dataclass, field
            @dataclass(order=True)
            class Item:
                price: float
                name: str = field(compare=False)
            def f():
                items = sorted([Item(3.5, "b"), Item(1.25, "a")])
                return [asdict(i) for i in items]
        """),
        "assert f() == [{'price': 1.25, 'name': 'a'}, {'price': 3.5, 'name': 'b'}]",
        "",
    ),
    "hashlib": (
        "import hashlib\ndef f():\n    return hashlib.sha256(b'abc').hexdigest(), hashlib.md5(b'').hexdigest()\n",
        "assert f() == (hashlib.sha256(b'abc').hexdigest(), hashlib.md5(b'').hexdigest())",
        "import hashlib",
    ),
}


@pytest.mark.parametrize("module", sorted(STDLIB))
def test_stdlib_module(executor: LocalExecutor, module: str) -> None:
    """Common standard-library modules work inside the sandbox."""
    program, test, setup = STDLIB[module]
    check_passed(run_one(executor, program, AssertTests(setup=setup, tests=(test,))))


def test_numpy(executor: LocalExecutor) -> None:
    """A third-party C extension from the environment (numpy) imports and computes."""
    pytest.importorskip("numpy")
    program = "import numpy as np\ndef f():\n    a = np.arange(12).reshape(3, 4)\n    return int(a.sum()), a.T.shape\n"
    check_passed(run_one(executor, program, AssertTests(tests=("assert f() == (66, (4, 3))",))))


def test_recursion_depth_800(executor: LocalExecutor) -> None:
    """Recursion 800 deep within the default recursion limit."""
    program = "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
    check_passed(run_one(executor, program, AssertTests(tests=("assert depth(800) == 800",))))


def test_recursion_with_raised_limit(executor: LocalExecutor) -> None:
    """sys.setrecursionlimit raised for a 20000-deep recursion (competitive-programming style)."""
    program = "import sys\nsys.setrecursionlimit(100000)\ndef depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
    check_passed(run_one(executor, program, AssertTests(tests=("assert depth(20000) == 20000",))))


def test_allocate_200_mb(executor: LocalExecutor) -> None:
    """A 200 MB allocation, touched, within the default memory limit."""
    program = "def f():\n    b = bytearray(200 << 20)\n    b[::4096] = b'x' * len(b[::4096])\n    return b.count(b'x')\n"
    check_passed(run_one(executor, program, AssertTests(tests=("assert f() == (200 << 20) // 4096",))))


def test_scratch_file_in_cwd(executor: LocalExecutor) -> None:
    """Writing a file in the working directory and reading it back."""
    program = prog("""
        import os
        def f(text):
            with open("scratch.txt", "w") as out:
                out.write(text)
            with open("scratch.txt") as back:
                data = back.read()
            os.remove("scratch.txt")
            return data
    """)
    check_passed(
        run_one(executor, program, AssertTests(tests=("assert f('hello\\nworld') == 'hello\\nworld'",)))
    )


def test_tempfile(executor: LocalExecutor) -> None:
    """tempfile: a temporary directory, a named temporary file and an anonymous one."""
    program = prog("""
        import os, tempfile
        def f():
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "x")
                with open(path, "w") as out:
                    out.write("in dir")
                with open(path) as back:
                    a = back.read()
            with tempfile.NamedTemporaryFile("w+") as named:
                named.write("named")
                named.seek(0)
                b = named.read()
            with tempfile.TemporaryFile() as anon:
                anon.write(b"anon")
                anon.seek(0)
                c = anon.read()
            return a, b, c
    """)
    check_passed(
        run_one(executor, program, AssertTests(tests=("assert f() == ('in dir', 'named', b'anon')",)))
    )


def test_lots_of_printing(executor: LocalExecutor) -> None:
    """Printing about 4 MB (below the output limit) while computing the answer."""
    program = "def f(n):\n    for i in range(n):\n        print('line', i, 'x' * 30)\n    return n\n"
    check_passed(run_one(executor, program, AssertTests(tests=("assert f(100000) == 100000",))))


def test_stderr_writes(executor: LocalExecutor) -> None:
    """Writing to stderr (debug output) does not affect the verdict."""
    program = "import sys\ndef f(x):\n    print('debug', x, file=sys.stderr)\n    return x + 1\n"
    check_passed(run_one(executor, program, AssertTests(tests=("assert f(1) == 2",))))


def test_threads_that_join(executor: LocalExecutor) -> None:
    """Threads and a thread pool that finish before the function returns."""
    program = prog("""
        import threading
        from concurrent.futures import ThreadPoolExecutor
        def f(n):
            out = []
            lock = threading.Lock()
            def work(i):
                with lock:
                    out.append(i * i)
            threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            with ThreadPoolExecutor(max_workers=4) as pool:
                total = sum(pool.map(lambda i: i * i, range(n)))
            return sorted(out), total
    """)
    check_passed(
        run_one(executor, program, AssertTests(tests=("assert f(8) == ([i * i for i in range(8)], 140)",)))
    )


def test_program_class_used_inside(executor: LocalExecutor) -> None:
    """A class defined by the program and used only inside it (plain data crosses)."""
    program = prog("""
        class Stack:
            def __init__(self):
                self.items = []
            def push(self, x):
                self.items.append(x)
            def pop(self):
                return self.items.pop()
        def reverse(xs):
            s = Stack()
            for x in xs:
                s.push(x)
            return [s.pop() for _ in xs]
    """)
    check_passed(run_one(executor, program, AssertTests(tests=("assert reverse([1, 2, 3]) == [3, 2, 1]",))))


def test_program_object_methods_called_by_test(executor: LocalExecutor) -> None:
    """A test instantiating the program's class and calling its methods (MBPP style)."""
    program = "class Counter:\n    def __init__(self):\n        self.n = 0\n    def inc(self):\n        self.n += 1\n        return self.n\n"
    test = "c = Counter()\nc.inc()\nassert c.inc() == 2"
    check_passed(run_one(executor, program, AssertTests(tests=(test,))))


# return expression -> test on f()
VALUES: dict[str, tuple[str, str]] = {
    "big_int": ("10**5000", "assert f() == 10**5000"),
    "negative_big_int": ("-(3**20000)", "assert f() == -(3**20000)"),
    "float": ("0.1 + 0.2", "assert f() == 0.1 + 0.2"),
    "nan": ("float('nan')", "assert math.isnan(f())"),
    "inf": ("(float('inf'), float('-inf'))", "assert f() == (math.inf, -math.inf)"),
    "negative_zero": ("-0.0", "assert f() == 0.0 and math.copysign(1.0, f()) == -1.0"),
    "complex": ("complex(1.5, -2)", "assert f() == 1.5 - 2j"),
    "bytes": ("bytes(range(256))", "assert f() == bytes(range(256)) and type(f()) is bytes"),
    "bytearray": ("bytearray(b'ab')", "assert f() == bytearray(b'ab') and type(f()) is bytearray"),
    "set": ("{1, 2, 3}", "assert f() == {3, 2, 1} and type(f()) is set"),
    "frozenset": ("frozenset({'a', 'b'})", "assert f() == frozenset('ab') and type(f()) is frozenset"),
    "nested_dict": (
        "{'a': {'b': [1, (2, 3)], 'c': None}, 1: True, (1, 2): frozenset({1})}",
        "assert f() == {'a': {'b': [1, (2, 3)], 'c': None}, 1: True, (1, 2): frozenset({1})}",
    ),
    "tuple_vs_list": ("(1, [2, (3,)])", "assert f() == (1, [2, (3,)]) and f() != [1, [2, (3,)]]"),
    "bool_and_none": (
        "(True, False, None)",
        "r = f()\nassert r[0] is True and r[1] is False and r[2] is None",
    ),
    "unicode": ("'héllo ✓ \\x00 \\U0001F600'", "assert f() == 'héllo ✓ \\x00 \\U0001F600'"),
}


@pytest.mark.parametrize("value", sorted(VALUES))
def test_return_value_round_trip(executor: LocalExecutor, value: str) -> None:
    """Big ints, floats, NaN/inf/-0.0, complex, bytes, sets, frozensets, nested containers compare."""
    expr, test = VALUES[value]
    check_passed(
        run_one(executor, f"def f():\n    return {expr}\n", AssertTests(setup="import math", tests=(test,)))
    )


def test_mutating_list_argument(executor: LocalExecutor) -> None:
    """A function that mutates its list (and dict) argument in place; the test observes it."""
    program = "def f(a, d):\n    a.append(4)\n    a.sort(reverse=True)\n    d['k'] = 1\n"
    test = "x = [1, 3, 2]\nd = {}\nf(x, d)\nassert x == [4, 3, 2, 1] and d == {'k': 1}"
    check_passed(run_one(executor, program, AssertTests(tests=(test,))))


def test_generator_consumed_by_test(executor: LocalExecutor) -> None:
    """A generator returned to a HumanEval check and consumed there."""
    tests = AssertTests(
        setup="def check(candidate):\n    assert list(candidate(3)) == [0, 1, 2]\n"
        "    assert next(iter(candidate(5))) == 0\n    assert sum(candidate(4)) == 6\n",
        check="check",
        entry_point="count",
    )
    check_passed(run_one(executor, "def count(n):\n    yield from range(n)\n", tests))


def test_test_passes_a_lambda(executor: LocalExecutor) -> None:
    """A test passing a lambda (and a key function) to the candidate."""
    program = "def apply(fn, x):\n    return fn(x)\ndef sort_by(xs, key):\n    return sorted(xs, key=key)\n"
    tests = ("assert apply(lambda x: x + 1, 2) == 3", "assert sort_by([3, 1, 2], lambda v: -v) == [3, 2, 1]")
    check_passed(run_one(executor, program, AssertTests(tests=tests)))


def test_test_catches_candidate_valueerror(executor: LocalExecutor) -> None:
    """`except ValueError` in a test catches the candidate's ValueError."""
    program = "def sqrt(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x ** 0.5\n"
    test = "try:\n    sqrt(-1)\nexcept ValueError as e:\n    assert 'negative' in str(e)\nelse:\n    raise AssertionError('no error')"
    check_passed(run_one(executor, program, AssertTests(tests=(test, "assert sqrt(4) == 2.0"))))


def test_humaneval_with_trusted_helper(executor: LocalExecutor) -> None:
    """HumanEval style: the prompt's helper is trusted (helpers=) and the program uses its own copy."""
    helper = "def poly(xs, x):\n    return sum(c * x**i for i, c in enumerate(xs))\n"
    program = helper + prog("""
        def find_zero(xs):
            lo, hi = -1e6, 1e6
            for _ in range(200):
                mid = (lo + hi) / 2
                if (poly(xs, lo) > 0) == (poly(xs, mid) > 0):
                    lo = mid
                else:
                    hi = mid
            return lo
    """)
    tests = AssertTests(
        helpers=helper,
        setup="def check(candidate):\n    assert abs(poly([1, 2], candidate([1, 2]))) < 1e-6\n",
        check="check",
        entry_point="find_zero",
    )
    check_passed(run_one(executor, program, tests, completion_start=len(helper)))


def test_io_read_all_with_tolerance(executor: LocalExecutor) -> None:
    """stdin/stdout: read all input with sys.stdin.read(); float output compared within tolerance."""
    program = "import sys\ndata = sys.stdin.read().split()\nn = int(data[0])\nprint(sum(map(float, data[1 : n + 1])) / n)\n"
    tests = IOTests(
        cases=(
            IOCase(input="3\n1 2 2\n", output="1.6666667\n"),
            IOCase(input="2\n0.1 0.2\n", output="0.15\n"),
        )
    )
    check_passed(run_one(executor, program, tests, main=True))


def test_io_input_loop_and_exit(executor: LocalExecutor) -> None:
    """stdin/stdout: input() in a loop, trailing whitespace, and sys.exit(0) at the end."""
    program = prog("""
        import sys
        t = int(input())
        for _ in range(t):
            a, b = map(int, input().split())
            print(a + b, " ")
        sys.exit(0)
    """)
    tests = IOTests(cases=(IOCase(input="2\n1 2\n10 20\n", output="3\n30\n\n"),))
    check_passed(run_one(executor, program, tests, main=True))


def test_io_flush_then_os_exit(executor: LocalExecutor) -> None:
    """stdin/stdout: print the answer, flush, then os._exit(0) (a fast-exit idiom)."""
    program = "import os, sys\nprint(int(input()) + 1)\nsys.stdout.flush()\nos._exit(0)\n"
    tests = IOTests(cases=(IOCase(input="1\n", output="2\n"),))
    check_passed(run_one(executor, program, tests, main=True))


def test_solution_class_call_based(executor: LocalExecutor) -> None:
    """Call-based LeetCode style: a `Solution` class method, list and tuple results."""
    program = prog("""
        from typing import List
        class Solution:
            def twoSum(self, nums: List[int], target: int) -> List[int]:
                seen = {}
                for i, x in enumerate(nums):
                    if target - x in seen:
                        return [seen[target - x], i]
                    seen[x] = i
                return []
    """)
    tests = CallTests(
        fn_name="twoSum",
        cases=(
            CallCase(args=([2, 7, 11, 15], 9), expected=[0, 1]),
            CallCase(args=([3, 3], 6), expected=(0, 1)),
        ),
    )
    check_passed(run_one(executor, program, tests))


def test_call_based_function_with_float_tolerance(executor: LocalExecutor) -> None:
    """Call-based APPS style: a plain function, a float within tolerance, a 1-element list unwrapped."""
    program = "def area(r):\n    return 3.14159265 * r * r\ndef one(x):\n    return x\n"
    tests = CallTests(fn_name="area", cases=(CallCase(args=(2,), expected=12.5663706),))
    check_passed(run_one(executor, program, tests))
    tests = CallTests(fn_name="one", cases=(CallCase(args=(5,), expected=[5]),))
    check_passed(run_one(executor, program, tests))


def test_cpu_bound_within_limit(executor: LocalExecutor) -> None:
    """A CPU-bound computation well inside its time limit is not a timeout."""
    program = "def f(n):\n    return sum(i * i % 7 for i in range(n))\n"
    r = run_one(
        executor, program, AssertTests(tests=("assert f(200000) == sum(i * i % 7 for i in range(200000))",))
    )
    check_passed(r)
