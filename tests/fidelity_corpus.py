"""A differential corpus: legitimate programs, and wrong ones, in the shapes benchmark tests use.

Each case is a `Job` that `tests/test_sandbox_fidelity.py` runs through the sandbox and through
plain Python in one process (`plain_python.run_plain`); status, error type and error line must
agree. The shapes follow what HumanEval, MBPP and APPS tests do with a program: call its functions
(builtin names included), build its objects and change their attributes, pass types and classes as
values, catch its exceptions, iterate its generators, call the functions it returns, read its
globals after a call, and run stdin/stdout programs whose work ends after the module returns
(threads, `atexit`). Every legitimate shape comes with wrong variants (a wrong value, a crash at a
known line, a wrong type) so that agreement is checked on failures too, not only on passes.
"""

from __future__ import annotations

import textwrap

from execrl.types import AssertTests, CallCase, CallTests, IOCase, IOTests, Job, Limits

LIMITS = Limits(timeout=2.0)


def _p(src: str) -> str:
    return textwrap.dedent(src).lstrip("\n")


def mbpp(program: str, *tests: str, setup: str = "") -> Job:
    return Job(program=_p(program), tests=AssertTests(setup=setup, tests=tests), limits=LIMITS)


def humaneval(prompt: str, completion: str, check: str, entry: str) -> Job:
    program = _p(prompt) + completion
    tests = AssertTests(setup=_p(check), check="check", entry_point=entry)
    return Job(program=program, tests=tests, limits=LIMITS, completion_start=len(_p(prompt)))


def stdio(program: str, *cases: tuple[str, str]) -> Job:
    tests = IOTests(cases=tuple(IOCase(i, o) for i, o in cases))
    return Job(program=_p(program), tests=tests, limits=LIMITS, main=True)


def call(program: str, fn: str, *cases: tuple[tuple, object]) -> Job:
    tests = CallTests(fn_name=fn, cases=tuple(CallCase(args=a, expected=e) for a, e in cases))
    return Job(program=_p(program), tests=tests, limits=LIMITS)


CASES: dict[str, Job] = {}


def case(name: str, job: Job) -> None:
    assert name not in CASES, name
    CASES[name] = job


# ---------------------------------------------------------------------------------------------
# 1. Functions whose name is a builtin (MBPP: `def sum`, `def max`, `def filter`, `def input`).

BUILTIN_NAMED = {
    "sum": ("def sum(a, b):\n    return a + b\n", "assert sum(2, 3) == 5", "assert sum(-1, 1) == 0"),
    "max": (
        "def max(xs):\n    best = xs[0]\n    for x in xs:\n        if x > best:\n            best = x\n    return best\n",
        "assert max([3, 9, 2]) == 9",
        "assert max([-5]) == -5",
    ),
    "min": (
        "def min(a, b, c):\n    return a if a <= b and a <= c else b if b <= c else c\n",
        "assert min(3, 1, 2) == 1",
        "assert min(0, 0, 1) == 0",
    ),
    "filter": (
        "def filter(xs, k):\n    return [x for x in xs if x % k == 0]\n",
        "assert filter([1, 2, 3, 4], 2) == [2, 4]",
        "assert filter([], 3) == []",
    ),
    "input": (
        "def input(s):\n    return s.strip().split(',')\n",
        "assert input(' a,b ') == ['a', 'b']",
        "assert input('x') == ['x']",
    ),
    "len": (
        "def len(s):\n    n = 0\n    for _ in s:\n        n += 2\n    return n\n",
        "assert len('abc') == 6",
        "assert len([]) == 0",
    ),
    "round": ("def round(x):\n    return int(x + 0.5)\n", "assert round(2.5) == 3", "assert round(0.4) == 0"),
    "pow": (
        "def pow(a, b):\n    r = 1\n    for _ in range(b):\n        r *= a\n    return r\n",
        "assert pow(2, 10) == 1024",
        "assert pow(5, 0) == 1",
    ),
    "sorted": (
        "def sorted(xs):\n    return list(reversed(__builtins__['sorted'](xs) if isinstance(__builtins__, dict) else __import__('builtins').sorted(xs)))\n",
        "assert sorted([1, 3, 2]) == [3, 2, 1]",
        "assert sorted([]) == []",
    ),
    "divmod": (
        "def divmod(a, b):\n    return a // b, a % b, a / b\n",
        "assert divmod(7, 2) == (3, 1, 3.5)",
        "assert divmod(9, 3) == (3, 0, 3.0)",
    ),
    "reversed": (
        "def reversed(s):\n    return s[::-1]\n",
        "assert reversed('abc') == 'cba'",
        "assert reversed([1, 2]) == [2, 1]",
    ),
    "any": (
        "def any(xs, k):\n    return k in xs\n",
        "assert any([1, 2], 2) == True",
        "assert any([], 1) == False",
    ),
    "zip": (
        "def zip(a, b):\n    return [x + y for x, y in __import__('builtins').zip(a, b)]\n",
        "assert zip([1, 2], [3, 4]) == [4, 6]",
        "assert zip([], []) == []",
    ),
    "hex": ("def hex(n):\n    return format(n, 'X')\n", "assert hex(255) == 'FF'", "assert hex(0) == '0'"),
    "ord": (
        "def ord(c):\n    return 'abcdefghijklmnopqrstuvwxyz'.index(c) + 1\n",
        "assert ord('a') == 1",
        "assert ord('z') == 26",
    ),
}
for name, (program, t1, t2) in BUILTIN_NAMED.items():
    case(f"builtin_named_{name}", mbpp(program, t1, t2))
    # wrong: the same function returning a wrong value (an off-by-one in its result)
    wrong = (
        program.replace("return ", "return 1 + 0 * 0 + ", 1)
        if "return a + b" not in program
        else program.replace("a + b", "a - b")
    )
    case(f"builtin_named_{name}_wrong", mbpp(wrong, t1, t2))
    # crash: the function raises at its first line
    lines = program.split("\n")
    crash = lines[0] + "\n    raise ValueError('no')\n" + "\n".join(lines[1:])
    case(f"builtin_named_{name}_crash", mbpp(crash, t1, t2))

# A builtin-named function used inside the test around another function of the program.
case(
    "builtin_named_wrapper_helper",
    mbpp(
        "def abs(x):\n    return 0\ndef f(x):\n    return x * 2\n",
        "assert abs(f(3) - 6) < 1e-9",
        "assert abs(f(-1)) == 2",
    ),
)
case(
    "builtin_named_set_around_subject",
    mbpp(
        "def similar(a, b):\n    return tuple(x for x in a if x in b)\n",
        "assert set(similar((3, 4, 5, 6), (5, 7, 4, 10))) == set((4, 5))",
    ),
)
case(
    "builtin_named_as_helper_of_program",
    mbpp(
        "def max(a, b):\n    return a if a > b else b\ndef best(xs):\n    r = xs[0]\n    for x in xs:\n        r = max(r, x)\n    return r\n",
        "assert best([1, 5, 2]) == 5",
        "assert max(2, 3) == 3",
    ),
)
case(
    "builtin_named_value_in_test",
    mbpp(
        "def count(xs):\n    return len(xs)\n",
        "assert count([1, 2]) == len([0, 0])",
        "assert count('abc') == sum([1, 1, 1])",
    ),
)

# ---------------------------------------------------------------------------------------------
# 2. Objects of the program built and changed by the tests.

TREE = """
class Node:
    def __init__(self, data):
        self.data = data
        self.left = None
        self.right = None

def max_height(node):
    if node is None:
        return 0
    return 1 + max(max_height(node.left), max_height(node.right))

def count_nodes(node):
    return 0 if node is None else 1 + count_nodes(node.left) + count_nodes(node.right)
"""
TREE_SETUP = """
root = Node(1)
root.left = Node(2)
root.right = Node(3)
root.left.left = Node(4)
root1 = Node(1)
"""
case(
    "tree_setup_attrs",
    mbpp(
        TREE,
        "assert max_height(root) == 3",
        "assert max_height(root1) == 1",
        "assert count_nodes(root) == 4",
        setup=TREE_SETUP,
    ),
)
case(
    "tree_setup_attrs_wrong",
    mbpp(
        TREE.replace("return 1 + max(", "return 2 + max("), "assert max_height(root) == 3", setup=TREE_SETUP
    ),
)
case(
    "tree_setup_attrs_crash",
    mbpp(
        TREE.replace("node.left), max_height(node.right)", "node.lft), max_height(node.right)"),
        "assert max_height(root) == 3",
        setup=TREE_SETUP,
    ),
)
case(
    "tree_attr_read_back",
    mbpp(TREE, "assert root.left.left.data == 4", "assert root.right.left is None", setup=TREE_SETUP),
)
case(
    "tree_attr_delete",
    mbpp(TREE, "del root.left.left\nassert not hasattr(root.left, 'left')", setup=TREE_SETUP),
)

LINKED = """
class ListNode:
    def __init__(self, val=0, next=None):
        self.val = val
        self.next = next

def reverse(head):
    prev = None
    while head:
        head.next, prev, head = prev, head, head.next
    return prev

def to_list(head):
    out = []
    while head:
        out.append(head.val)
        head = head.next
    return out
"""
case(
    "linked_list_roundtrip",
    mbpp(LINKED, "assert to_list(reverse(ListNode(1, ListNode(2, ListNode(3))))) == [3, 2, 1]"),
)
case(
    "linked_list_mutate_in_test",
    mbpp(LINKED, "h = ListNode(1)\nh.next = ListNode(5)\nh.next.val = 7\nassert to_list(h) == [1, 7]"),
)
case(
    "linked_list_wrong",
    mbpp(
        LINKED.replace("out.append(head.val)", "out.insert(0, head.val)"),
        "assert to_list(reverse(ListNode(1, ListNode(2)))) == [2, 1]",
    ),
)
case("linked_list_attr_error", mbpp(LINKED, "assert reverse(ListNode(1)).value == 1"))

CLASSES = """
class Stack:
    def __init__(self):
        self.items = []
    def push(self, x):
        self.items.append(x)
        return self
    def pop(self):
        return self.items.pop()
    def __len__(self):
        return len(self.items)
    def __bool__(self):
        return bool(self.items)
    def __iter__(self):
        return iter(self.items)
    def __getitem__(self, i):
        return self.items[i]
    def __setitem__(self, i, v):
        self.items[i] = v
    def __contains__(self, x):
        return x in self.items
    def __repr__(self):
        return f"Stack({self.items})"
    def __str__(self):
        return "<" + ",".join(map(str, self.items)) + ">"
"""
case(
    "object_methods", mbpp(CLASSES, "s = Stack()\ns.push(1).push(2)\nassert s.pop() == 2\nassert len(s) == 1")
)
case(
    "object_len_bool",
    mbpp(CLASSES, "assert not Stack()", "assert len(Stack().push(3)) == 1", "assert Stack().push(0)"),
)
case("object_items", mbpp(CLASSES, "s = Stack().push(1).push(2)\ns[0] = 9\nassert s[0] == 9 and s[-1] == 2"))
case(
    "object_iter_contains",
    mbpp(CLASSES, "s = Stack().push(4).push(5)\nassert list(s) == [4, 5]\nassert 5 in s\nassert 6 not in s"),
)
case(
    "object_str_repr",
    mbpp(
        CLASSES,
        "assert str(Stack().push(1).push(2)) == '<1,2>'",
        "assert repr(Stack()) == 'Stack([])'",
        "assert f'{Stack().push(3)}' == '<3>'",
    ),
)
case("object_pop_empty_crash", mbpp(CLASSES, "Stack().pop()"))
case(
    "object_items_wrong",
    mbpp(
        CLASSES.replace("self.items[i] = v", "self.items[i] = v + 1"),
        "s = Stack().push(1)\ns[0] = 9\nassert s[0] == 9",
    ),
)
case(
    "object_passed_back",
    mbpp(
        "class Acc:\n    def __init__(self):\n        self.total = 0\ndef add(acc, x):\n    acc.total += x\n    return acc\n",
        "a = Acc()\nadd(add(a, 2), 3)\nassert a.total == 5",
    ),
)
case(
    "object_attr_set_then_method",
    mbpp(
        "class Rect:\n    def __init__(self):\n        self.w = self.h = 0\n    def area(self):\n        return self.w * self.h\n",
        "r = Rect()\nr.w = 3\nr.h = 4\nassert r.area() == 12",
    ),
)
case(
    "object_attr_set_then_method_wrong",
    mbpp(
        "class Rect:\n    def __init__(self):\n        self.w = self.h = 0\n    def area(self):\n        return self.w + self.h\n",
        "r = Rect()\nr.w = 3\nr.h = 4\nassert r.area() == 12",
    ),
)
case(
    "object_dict_attr",
    mbpp("class P:\n    def __init__(self, x):\n        self.x = x\n", "assert P(3).__dict__ == {'x': 3}"),
)
case(
    "object_property",
    mbpp(
        "class C:\n    def __init__(self, r):\n        self.r = r\n    @property\n    def d(self):\n        return 2 * self.r\n",
        "c = C(2)\nc.r = 5\nassert c.d == 10",
    ),
)
case(
    "object_slots",
    mbpp(
        "class V:\n    __slots__ = ('x', 'y')\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n",
        "v = V(1, 2)\nv.x = 5\nassert (v.x, v.y) == (5, 2)",
    ),
)
case(
    "object_setattr_slots_error",
    mbpp(
        "class V:\n    __slots__ = ('x',)\n    def __init__(self, x):\n        self.x = x\n",
        "v = V(1)\nv.z = 5",
    ),
)

# Equality of the program's objects.
POINT = """
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)
    def __hash__(self):
        return hash((self.x, self.y))
    def __lt__(self, other):
        return (self.x, self.y) < (other.x, other.y)

def mid(a, b):
    return Point((a.x + b.x) / 2, (a.y + b.y) / 2)
"""
case(
    "object_eq_structural",
    mbpp(
        POINT,
        "assert mid(Point(0, 0), Point(2, 4)) == Point(1.0, 2.0)",
        "assert mid(Point(0, 0), Point(2, 2)) != Point(5, 5)",
    ),
)
case(
    "object_eq_wrong",
    mbpp(POINT.replace("/ 2, (a.y", "/ 3, (a.y"), "assert mid(Point(0, 0), Point(3, 4)) == Point(1.5, 2.0)"),
)
case(
    "object_order",
    mbpp(
        POINT,
        "assert Point(1, 2) < Point(2, 0)",
        "assert sorted([Point(2, 1), Point(1, 1)])[0] == Point(1, 1)",
    ),
)
case("object_hash_in_set", mbpp(POINT, "assert len({Point(1, 1), Point(1, 1), Point(2, 2)}) == 2"))
case(
    "object_identity_default_eq",
    mbpp(
        "class Box:\n    pass\nB = Box()\ndef get():\n    return B\n",
        "assert get() is get()",
        "assert get() == get()",
        "assert get() != Box()",
    ),
)
case(
    "dataclass_eq",
    mbpp(
        "from dataclasses import dataclass\n@dataclass\nclass Item:\n    name: str\n    qty: int\ndef make(n):\n    return Item(n, len(n))\n",
        "assert make('ab') == Item('ab', 2)",
        "assert make('x').qty == 1",
    ),
)
case(
    "dataclass_eq_wrong",
    mbpp(
        "from dataclasses import dataclass\n@dataclass\nclass Item:\n    name: str\n    qty: int\ndef make(n):\n    return Item(n, len(n) + 1)\n",
        "assert make('ab') == Item('ab', 2)",
    ),
)
case(
    "namedtuple_result",
    mbpp(
        "from collections import namedtuple\nPair = namedtuple('Pair', 'a b')\ndef pair(x):\n    return Pair(x, x * x)\n",
        "assert pair(3) == (3, 9)",
        "assert pair(2).b == 4",
        "assert pair(1) == Pair(1, 1)",
    ),
)

# ---------------------------------------------------------------------------------------------
# 3. Types and classes as values.

REMOVE_TYPE = """
def remove_type(data, t):
    return [x for x in data if not isinstance(x, t)]
"""
case("type_builtin_int", mbpp(REMOVE_TYPE, "assert remove_type([1, 'a', 2.5, 3], int) == ['a', 2.5]"))
case(
    "type_builtin_str_float",
    mbpp(
        REMOVE_TYPE,
        "assert remove_type([1, 'a', 2.5], str) == [1, 2.5]",
        "assert remove_type([1, 'a', 2.5], float) == [1, 'a']",
    ),
)
case(
    "type_tuple_of_types",
    mbpp(REMOVE_TYPE, "assert remove_type([1, 'a', 2.5, None], (int, float)) == ['a', None]"),
)
case("type_none_type", mbpp(REMOVE_TYPE, "assert remove_type([1, None, 'x'], type(None)) == [1, 'x']"))
case("type_bool_is_int", mbpp(REMOVE_TYPE, "assert remove_type([True, 2, 'x'], int) == ['x']"))
case(
    "type_wrong",
    mbpp(REMOVE_TYPE.replace("not isinstance", "isinstance"), "assert remove_type([1, 'a'], int) == ['a']"),
)
case(
    "type_check_by_is",
    mbpp(
        "def kinds(xs):\n    return [type(x) is str for x in xs]\n", "assert kinds(['a', 1]) == [True, False]"
    ),
)
case(
    "type_returned",
    mbpp(
        "def kind(x):\n    return type(x)\n",
        "assert kind(1) == int",
        "assert kind('a') is str",
        "assert kind(None) is type(None)",
    ),
)
case("type_returned_wrong", mbpp("def kind(x):\n    return type(str(x))\n", "assert kind(1) == int"))
case(
    "type_constructor_param",
    mbpp(
        "def convert(xs, t):\n    return [t(x) for x in xs]\n",
        "assert convert(['1', '2'], int) == [1, 2]",
        "assert convert([1, 2], str) == ['1', '2']",
        "assert convert([1], float) == [1.0]",
    ),
)
case(
    "type_constructor_param_crash",
    mbpp("def convert(xs, t):\n    return [t(x) for x in xs]\n", "assert convert(['a'], int) == [1]"),
)
case(
    "builtin_function_as_key",
    mbpp(
        "def by(xs, key):\n    return sorted(xs, key=key)\n",
        "assert by(['ccc', 'a', 'bb'], len) == ['a', 'bb', 'ccc']",
        "assert by([-3, 1, -2], abs) == [1, -2, -3]",
    ),
)
case(
    "lambda_as_arg",
    mbpp(
        "def apply_all(fs, x):\n    return [f(x) for f in fs]\n",
        "assert apply_all([lambda v: v + 1, lambda v: v * 2], 5) == [6, 10]",
    ),
)
case(
    "program_class_as_value",
    mbpp(
        "class A:\n    pass\nclass B(A):\n    pass\ndef count_of(xs, cls):\n    return sum(isinstance(x, cls) for x in xs)\n",
        "assert count_of([A(), B(), B()], B) == 2",
        "assert count_of([A(), B()], A) == 2",
        "assert isinstance(B(), A)",
        "assert not isinstance(A(), B)",
        "assert isinstance(B(), (int, B))",
    ),
)
case(
    "program_class_factory",
    mbpp(
        "class Dog:\n    def speak(self):\n        return 'woof'\ndef make(cls):\n    return cls()\n",
        "assert make(Dog).speak() == 'woof'",
        "assert isinstance(make(Dog), Dog)",
    ),
)
case(
    "program_function_as_value",
    mbpp(
        "def double(x):\n    return 2 * x\ndef twice(f, x):\n    return f(f(x))\n",
        "assert twice(double, 3) == 12",
    ),
)

# ---------------------------------------------------------------------------------------------
# 4. Exceptions.

case(
    "raises_builtin_caught",
    mbpp(
        "def div(a, b):\n    if b == 0:\n        raise ZeroDivisionError('b is zero')\n    return a / b\n",
        "try:\n    div(1, 0)\n    assert False\nexcept ZeroDivisionError as e:\n    assert 'zero' in str(e)",
    ),
)
case(
    "raises_custom_caught",
    mbpp(
        "class InvalidAge(ValueError):\n    pass\ndef check(age):\n    if age < 0:\n        raise InvalidAge('negative')\n    return True\n",
        "try:\n    check(-1)\n    assert False\nexcept InvalidAge:\n    pass",
        "try:\n    check(-2)\nexcept ValueError as e:\n    assert str(e) == 'negative'",
        "assert check(3)",
    ),
)
case(
    "raises_custom_subclass_caught",
    mbpp(
        "class AppError(Exception):\n    pass\nclass NotFound(AppError):\n    pass\ndef find(d, k):\n    if k not in d:\n        raise NotFound(k)\n    return d[k]\n",
        "try:\n    find({}, 'x')\nexcept AppError as e:\n    assert type(e).__name__ == 'NotFound'",
    ),
)
case(
    "raises_custom_uncaught",
    mbpp(
        "class InvalidAge(ValueError):\n    pass\ndef check(age):\n    if age < 0:\n        raise InvalidAge('negative')\n    return True\n",
        "assert check(-1)",
    ),
)
case(
    "raises_not_caught_wrong_kind",
    mbpp("def parse(s):\n    return int(s)\n", "try:\n    parse('x')\nexcept KeyError:\n    pass"),
)
case(
    "raises_in_nested_call",
    mbpp(
        "def inner(x):\n    return [1, 2][x]\n\ndef outer(x):\n    y = x + 1\n    return inner(y)\n",
        "assert outer(0) == 2",
        "assert outer(5) == 1",
    ),
)
case("raises_in_lambda", mbpp("f = lambda x: 10 // x\n", "assert f(5) == 2", "assert f(0) == 0"))
case(
    "raises_in_comprehension",
    mbpp(
        "def inv(xs):\n    return [\n        1 / x\n        for x in xs\n    ]\n",
        "assert inv([1, 2]) == [1.0, 0.5]",
        "assert inv([0]) == []",
    ),
)
case(
    "raises_program_assert",
    mbpp(
        "def positive(x):\n    assert x > 0, 'must be positive'\n    return x\n",
        "assert positive(1) == 1",
        "assert positive(-1) == -1",
    ),
)
case("raises_recursion", mbpp("def down(n):\n    return down(n - 1)\n", "assert down(3) == 0"))
case(
    "raises_key_error_message",
    mbpp(
        "def get(d, k):\n    return d[k]\n",
        "try:\n    get({}, 'a')\nexcept KeyError as e:\n    assert e.args == ('a',)",
    ),
)
case(
    "raises_stop_iteration_explicit",
    mbpp(
        "def first(it):\n    return next(iter(it))\n",
        "try:\n    first([])\n    assert False\nexcept StopIteration:\n    pass",
    ),
)
case(
    "exception_at_import", mbpp("import math\nX = math.sqrt(-1)\ndef f():\n    return X\n", "assert f() == 0")
)
case("import_missing_module", mbpp("import not_a_module_xyz\ndef f():\n    return 1\n", "assert f() == 1"))
case("name_error_in_function", mbpp("def f(x):\n    return x + undefined_name\n", "assert f(1) == 1"))
case("wrong_arity_call", mbpp("def f(x):\n    return x\n", "assert f(1, 2) == 1"))
case("missing_function", mbpp("def g(x):\n    return x\n", "assert f(1) == 1"))
case("test_side_type_error", mbpp("def f(x):\n    x.sort()\n", "assert len(f([2, 1])) == 2"))
case("test_side_none_subscript", mbpp("def f(x):\n    pass\n", "assert f(1)[0] == 1"))
case("exit_in_function", mbpp("import sys\ndef f(x):\n    sys.exit(0)\n", "assert f(1) == 1"))
case("exit_at_import", mbpp("import sys\ndef f(x):\n    return x\nsys.exit(0)\n", "assert f(1) == 1"))
case("syntax_error_line", mbpp("def f(x):\n    return x +\n", "assert f(1) == 1"))
case("syntax_error_unclosed", mbpp("def f(x):\n    return (x\n\n", "assert f(1) == 1"))
case("syntax_error_indent", mbpp("def f(x):\nreturn x\n", "assert f(1) == 1"))
case("setup_failure_charged", mbpp("def f(x):\n    return x\n", "assert f(1) == 1", setup="y = f(1) / 0\n"))

# ---------------------------------------------------------------------------------------------
# 5. Generators, iterators, closures and functions returned by functions.

case(
    "generator_list",
    mbpp("def gen(n):\n    for i in range(n):\n        yield i * i\n", "assert list(gen(4)) == [0, 1, 4, 9]"),
)
case(
    "generator_next",
    mbpp(
        "def gen():\n    yield 1\n    yield 2\n",
        "g = gen()\nassert next(g) == 1\nassert next(g) == 2",
        "g = gen()\nnext(g)\nnext(g)\nassert next(g, 'end') == 'end'",
    ),
)
case(
    "generator_crash_midway",
    mbpp("def gen(xs):\n    for x in xs:\n        yield 10 / x\n", "assert list(gen([1, 0])) == [10.0]"),
)
case(
    "generator_sum",
    mbpp("def evens(n):\n    return (i for i in range(n) if i % 2 == 0)\n", "assert sum(evens(10)) == 20"),
)
case(
    "generator_wrong",
    mbpp("def gen(n):\n    for i in range(n + 1):\n        yield i\n", "assert list(gen(3)) == [0, 1, 2]"),
)
case(
    "iterator_map_returned",
    mbpp("def to_int(xs):\n    return map(int, xs)\n", "assert list(to_int(['1', '2'])) == [1, 2]"),
)
case(
    "iterator_map_crash_lazy",
    mbpp("def to_int(xs):\n    return map(int, xs)\n", "assert list(to_int(['1', 'x'])) == [1]"),
)
case(
    "iterator_zip_returned",
    mbpp("def pairs(a, b):\n    return zip(a, b)\n", "assert dict(pairs('ab', [1, 2])) == {'a': 1, 'b': 2}"),
)
case(
    "iterator_custom",
    mbpp(
        "class Count:\n    def __init__(self, n):\n        self.i, self.n = 0, n\n    def __iter__(self):\n        return self\n    def __next__(self):\n        if self.i >= self.n:\n            raise StopIteration\n        self.i += 1\n        return self.i\n",
        "assert list(Count(3)) == [1, 2, 3]",
        "assert sum(Count(4)) == 10",
    ),
)
case(
    "closure_returned",
    mbpp(
        "def adder(k):\n    def add(x):\n        return x + k\n    return add\n",
        "assert adder(3)(4) == 7",
        "f = adder(10)\nassert [f(i) for i in range(2)] == [10, 11]",
    ),
)
case(
    "closure_state",
    mbpp(
        "def counter():\n    n = 0\n    def inc():\n        nonlocal n\n        n += 1\n        return n\n    return inc\n",
        "c = counter()\nc()\nc()\nassert c() == 3",
    ),
)
case("closure_crash", mbpp("def adder(k):\n    return lambda x: x + k\n", "assert adder('a')(1) == 2"))
case(
    "decorated_function",
    mbpp(
        "import functools\ndef twice(fn):\n    @functools.wraps(fn)\n    def w(*a):\n        return 2 * fn(*a)\n    return w\n@twice\ndef sq(x):\n    return x * x\n",
        "assert sq(3) == 18",
    ),
)
case(
    "range_returned",
    mbpp("def r(n):\n    return range(1, n)\n", "assert r(4) == range(1, 4)", "assert list(r(3)) == [1, 2]"),
)
case(
    "dict_keys_returned",
    mbpp(
        "def ks(d):\n    return d.keys()\n",
        "assert ks({'a': 1}) == {'a'}",
        "assert sorted(ks({'b': 1, 'a': 2})) == ['a', 'b']",
    ),
)
case("dict_items_returned", mbpp("def it(d):\n    return d.items()\n", "assert it({'a': 1}) == {('a', 1)}"))
case(
    "fraction_returned",
    mbpp(
        "from fractions import Fraction\ndef half(n):\n    return Fraction(n, 2)\n",
        "from fractions import Fraction\nassert half(3) == Fraction(3, 2)",
        "assert half(4) == 2",
    ),
)
case(
    "decimal_returned",
    mbpp(
        "from decimal import Decimal\ndef d(s):\n    return Decimal(s) * 2\n",
        "from decimal import Decimal\nassert d('0.1') == Decimal('0.2')",
    ),
)
case(
    "deque_returned",
    mbpp(
        "from collections import deque\ndef q(xs):\n    return deque(xs, maxlen=2)\n",
        "from collections import deque\nassert q([1, 2, 3]) == deque([2, 3])",
        "assert list(q('ab')) == ['a', 'b']",
    ),
)
case(
    "date_returned",
    mbpp(
        "import datetime\ndef nxt(y, m, d):\n    return datetime.date(y, m, d) + datetime.timedelta(days=1)\n",
        "import datetime\nassert nxt(2020, 2, 28) == datetime.date(2020, 2, 29)",
    ),
)
case(
    "counter_returned",
    mbpp(
        "from collections import Counter\ndef cnt(s):\n    return Counter(s)\n",
        "assert cnt('aab') == {'a': 2, 'b': 1}",
        "assert cnt('aab').most_common(1) == [('a', 2)]",
    ),
)
case(
    "set_frozenset_results",
    mbpp(
        "def uniq(xs):\n    return set(xs), frozenset(xs)\n",
        "assert uniq([1, 1, 2]) == ({1, 2}, frozenset({1, 2}))",
    ),
)
case(
    "float_close",
    mbpp(
        "import math\ndef area(r):\n    return math.pi * r * r\n",
        "import math\nassert math.isclose(area(2), 12.566370614359172)",
        "assert abs(area(1) - 3.14159) < 1e-4",
    ),
)
case(
    "float_close_wrong",
    mbpp(
        "def area(r):\n    return 3.14 * r * r\n",
        "import math\nassert math.isclose(area(2), 12.566370614359172, rel_tol=1e-6)",
    ),
)

# ---------------------------------------------------------------------------------------------
# 6. Module-level state, and globals read after a call.

case(
    "global_counter_after_call",
    mbpp(
        "counter = 0\ndef inc():\n    global counter\n    counter += 1\n    return counter\n",
        "inc()\ninc()\nassert counter == 2",
        setup="",
    ),
)
case(
    "global_counter_setup",
    mbpp(
        "counter = 0\ndef inc():\n    global counter\n    counter += 1\n",
        "assert counter == 2",
        setup="inc()\ninc()\n",
    ),
)
case(
    "global_list_mutated",
    mbpp(
        "log = []\ndef record(x):\n    log.append(x)\n",
        "assert log == [1, 2]",
        setup="record(1)\nrecord(2)\n",
    ),
)
case(
    "global_state_across_tests",
    mbpp(
        "calls = {'n': 0}\ndef f(x):\n    calls['n'] += 1\n    return x * calls['n']\n",
        "assert f(2) == 2",
        "assert f(2) == 4",
        "assert calls == {'n': 2}",
    ),
)
case(
    "global_state_across_tests_wrong",
    mbpp(
        "calls = {'n': 0}\ndef f(x):\n    calls['n'] += 2\n    return x * calls['n']\n",
        "assert f(2) == 2",
        "assert f(2) == 4",
    ),
)
case(
    "global_constant_used_by_test",
    mbpp("LIMIT = 10\ndef cap(x):\n    return min(x, LIMIT)\n", "assert cap(20) == LIMIT"),
)
case(
    "global_rebound_function",
    mbpp(
        "def f(x):\n    return x\ndef patch():\n    global f\n    f = lambda x: -x\n",
        "patch()\nassert f(3) == -3",
    ),
)
case(
    "memo_cache_global",
    mbpp(
        "memo = {}\ndef fib(n):\n    if n < 2:\n        return n\n    if n not in memo:\n        memo[n] = fib(n - 1) + fib(n - 2)\n    return memo[n]\n",
        "assert fib(30) == 832040",
        "assert len(memo) == 29",
    ),
)
case(
    "argument_mutated_in_place",
    mbpp("def sort_in_place(xs):\n    xs.sort()\n", "a = [3, 1, 2]\nsort_in_place(a)\nassert a == [1, 2, 3]"),
)
case(
    "argument_dict_mutated",
    mbpp("def add_key(d):\n    d['k'] = 1\n", "d = {}\nadd_key(d)\nassert d == {'k': 1}"),
)
case(
    "argument_mutated_wrong",
    mbpp(
        "def sort_in_place(xs):\n    xs = sorted(xs)\n",
        "a = [3, 1, 2]\nsort_in_place(a)\nassert a == [1, 2, 3]",
    ),
)
case(
    "test_helper_shadows_program",
    mbpp(
        "def helper():\n    return 1\ndef f():\n    return helper() + 1\n",
        "assert f() == 2\nassert helper() == 5",
        setup="def helper():\n    return 5\n",
    ),
)

# ---------------------------------------------------------------------------------------------
# 7. HumanEval-style: prompt + completion, check(candidate).

HE_PROMPT = 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n'
HE_CHECK = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n    x = candidate(5, 5)\n    assert x == 10\n"
case("he_pass", humaneval(HE_PROMPT, "    return a + b\n", HE_CHECK, "add"))
case("he_wrong", humaneval(HE_PROMPT, "    return a - b\n", HE_CHECK, "add"))
case("he_crash_line2", humaneval(HE_PROMPT, "    c = a + b\n    return c / 0\n", HE_CHECK, "add"))
case("he_syntax", humaneval(HE_PROMPT, "    return a +\n", HE_CHECK, "add"))
case(
    "he_helper_in_completion",
    humaneval(HE_PROMPT, "    return _h(a) + b\n\ndef _h(x):\n    return x[0]\n", HE_CHECK, "add"),
)
case(
    "he_builtin_entry",
    humaneval(
        'def sum(xs):\n    """Sum."""\n',
        "    t = 0\n    for x in xs:\n        t += x\n    return t\n",
        "def check(candidate):\n    assert candidate([1, 2]) == 3\n    assert sum([4]) == 4\n",
        "sum",
    ),
)
case(
    "he_abs_check",
    humaneval(
        'def mean(xs):\n    """Mean."""\n',
        "    return sum(xs) / len(xs)\n",
        "def check(candidate):\n    assert abs(candidate([1.0, 2.0]) - 1.5) < 1e-6\n",
        "mean",
    ),
)
case(
    "he_candidate_exception_test",
    humaneval(
        'def f(x):\n    """F."""\n',
        "    if x < 0:\n        raise ValueError(x)\n    return x\n",
        "def check(candidate):\n    try:\n        candidate(-1)\n        assert False\n    except ValueError:\n        pass\n    assert candidate(2) == 2\n",
        "f",
    ),
)

# ---------------------------------------------------------------------------------------------
# 8. Call-based tests (APPS fn_name, LeetCode `class Solution`).

case("call_fn", call("def solve(a, b):\n    return a * b\n", "solve", ((2, 3), 6), ((0, 5), 0)))
case("call_fn_wrong", call("def solve(a, b):\n    return a + b\n", "solve", ((2, 3), 6)))
case("call_fn_crash", call("def solve(a, b):\n    return a // b\n", "solve", ((2, 0), 0)))
case(
    "call_solution_class",
    call(
        "class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n        for i, n in enumerate(nums):\n            if target - n in seen:\n                return [seen[target - n], i]\n            seen[n] = i\n",
        "twoSum",
        (([2, 7, 11, 15], 9), [0, 1]),
        (([3, 3], 6), [0, 1]),
    ),
)
case(
    "call_solution_class_wrong",
    call(
        "class Solution:\n    def twoSum(self, nums, target):\n        return [0, 0]\n",
        "twoSum",
        (([2, 7], 9), [0, 1]),
    ),
)
case(
    "call_builtin_named_fn",
    call("def max(a, b):\n    return a if a > b else b\n", "max", ((1, 2), 2), ((5, 3), 5)),
)
case("call_tuple_result", call("def mm(xs):\n    return min(xs), max(xs)\n", "mm", (([3, 1, 2],), [1, 3])))
case(
    "call_mutates_arg",
    call("def push(xs):\n    xs.append(1)\n    return len(xs)\n", "push", (([],), 1), (([],), 1)),
)

# ---------------------------------------------------------------------------------------------
# 9. stdin/stdout programs (APPS, CodeContests, LiveCodeBench).

case("io_plain", stdio("n = int(input())\nprint(n * 2)\n", ("3\n", "6\n"), ("0\n", "0\n")))
case("io_wrong", stdio("n = int(input())\nprint(n * 3)\n", ("3\n", "6\n")))
case("io_crash_line", stdio("n = int(input())\nxs = [1, 2]\nprint(xs[n])\n", ("1\n", "2\n"), ("5\n", "0\n")))
case(
    "io_thread_main",
    stdio(
        "import sys, threading\ndef main():\n    n = int(sys.stdin.readline())\n    print(sum(range(n + 1)))\nthreading.stack_size(1 << 26)\nsys.setrecursionlimit(10 ** 5)\nthreading.Thread(target=main).start()\n",
        ("4\n", "10\n"),
        ("10\n", "55\n"),
    ),
)
case(
    "io_thread_deep_recursion",
    stdio(
        "import sys, threading\ndef depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\ndef main():\n    print(depth(int(input())))\nsys.setrecursionlimit(1 << 20)\nthreading.stack_size(1 << 27)\nt = threading.Thread(target=main)\nt.start()\n",
        ("20000\n", "20000\n"),
    ),
)
case(
    "io_thread_wrong",
    stdio(
        "import threading\ndef main():\n    print(int(input()) + 1)\nthreading.Thread(target=main).start()\n",
        ("4\n", "4\n"),
    ),
)
case(
    "io_thread_crash",
    stdio(
        "import threading\ndef main():\n    print(1 // int(input()))\nthreading.Thread(target=main).start()\n",
        ("0\n", "0\n"),
    ),
)
case(
    "io_thread_joined",
    stdio(
        "import threading\nout = []\ndef work(i):\n    out.append(i * i)\nts = [threading.Thread(target=work, args=(i,)) for i in range(4)]\nfor t in ts:\n    t.start()\nfor t in ts:\n    t.join()\nprint(sorted(out))\n",
        ("", "[0, 1, 4, 9]\n"),
    ),
)
case(
    "io_atexit_print",
    stdio("import atexit\natexit.register(lambda: print('bye'))\nprint('hi')\n", ("", "hi\nbye\n")),
)
case(
    "io_atexit_order",
    stdio(
        "import atexit\natexit.register(print, 'first registered')\natexit.register(print, 'second registered')\n",
        ("", "second registered\nfirst registered\n"),
    ),
)
case(
    "io_atexit_after_exit",
    stdio(
        "import atexit, sys\natexit.register(lambda: print('cleanup'))\nprint('x')\nsys.exit(0)\n",
        ("", "x\ncleanup\n"),
    ),
)
case(
    "io_atexit_crash_ignored",
    stdio("import atexit\natexit.register(lambda: 1 / 0)\nprint('ok')\n", ("", "ok\n")),
)
case(
    "io_exit_zero",
    stdio("import sys\nprint(int(input()) + 1)\nsys.exit(0)\nprint('never')\n", ("1\n", "2\n")),
)
case("io_exit_nonzero", stdio("import sys\nprint(1)\nsys.exit(3)\n", ("", "1\n")))
case("io_exit_message", stdio("import sys\nsys.exit('bad input')\n", ("", "")))
case(
    "io_read_all",
    stdio("import sys\ndata = sys.stdin.read().split()\nprint(sum(map(int, data)))\n", ("1 2\n3\n", "6\n")),
)
case(
    "io_input_loop_eof",
    stdio(
        "total = 0\nwhile True:\n    try:\n        line = input()\n    except EOFError:\n        break\n    total += int(line)\nprint(total)\n",
        ("1\n2\n3\n", "6\n"),
    ),
)
case("io_eof_uncaught", stdio("a = input()\nb = input()\nprint(a + b)\n", ("x\n", "x\n")))
case(
    "io_main_guard",
    stdio(
        "def main():\n    print(input()[::-1])\nif __name__ == '__main__':\n    main()\n", ("abc\n", "cba\n")
    ),
)
case("io_print_end_sep", stdio("print(1, 2, sep='-', end='')\nprint()\nprint(*[3, 4])\n", ("", "1-2\n3 4\n")))
case(
    "io_stdout_write",
    stdio("import sys\nsys.stdout.write('a\\n')\nsys.stdout.write(str(2) + '\\n')\n", ("", "a\n2\n")),
)
case("io_float_output", stdio("print(10 / 3)\n", ("", "3.3333333333\n")))
case("io_stderr_ignored", stdio("import sys\nprint('err', file=sys.stderr)\nprint('out')\n", ("", "out\n")))
case("io_syntax", stdio("print('a'\n", ("", "a\n")))
case("io_recursion_error", stdio("def f(n):\n    return f(n + 1)\nf(0)\n", ("", "")))
case(
    "io_daemon_thread_lost",
    stdio(
        "import threading, time\ndef late():\n    time.sleep(0.5)\n    print('late')\nthreading.Thread(target=late, daemon=True).start()\nprint('early')\n",
        ("", "early\n"),
    ),
)
case(
    "io_timer_thread",
    stdio("import threading\nthreading.Timer(0.05, lambda: print('tick')).start()\n", ("", "tick\n")),
)
case("io_exception_after_output", stdio("print('partial')\nraise RuntimeError('boom')\n", ("", "partial\n")))
case("io_keyboard_interrupt_like", stdio("raise KeyboardInterrupt\n", ("", "")))

VECTOR = "class V:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n    def __add__(self, o):\n        return V(self.x + o.x, self.y + o.y)\n    def __mul__(self, k):\n        return V(self.x * k, self.y * k)\n    def __eq__(self, o):\n        return (self.x, self.y) == (o.x, o.y)\n"
case(
    "operator_between_program_objects",
    mbpp(VECTOR, "assert V(1, 2) + V(3, 4) == V(4, 6)", "assert (V(1, 1) + V(0, 1)).y == 2"),
)
case("operator_with_test_data", mbpp(VECTOR, "assert (V(1, 2) * 3).x == 3"))

# Values of other libraries and of the standard library that tests compare.
case(
    "numpy_scalar_result",
    mbpp(
        "import numpy as np\ndef total(xs):\n    return np.sum(xs)\ndef mean(xs):\n    return np.array(xs).mean()\n",
        "assert total([1, 2, 3]) == 6",
        "assert mean([1, 2]) == 1.5",
    ),
)
case(
    "numpy_scalar_wrong",
    mbpp("import numpy as np\ndef total(xs):\n    return np.prod(xs)\n", "assert total([1, 2, 3, 4]) == 10"),
)
case(
    "enum_member_result",
    mbpp(
        "from enum import Enum\nclass Color(Enum):\n    RED = 1\n    BLUE = 2\ndef pick(x):\n    return Color.RED if x else Color.BLUE\n",
        "assert pick(1) == Color.RED",
        "assert pick(0).value == 2",
        "assert pick(0) != Color.RED",
    ),
)
case(
    "enum_member_wrong",
    mbpp(
        "from enum import Enum\nclass Color(Enum):\n    RED = 1\n    BLUE = 2\ndef pick(x):\n    return Color.BLUE\n",
        "assert pick(1) == Color.RED",
    ),
)
case(
    "re_match_result",
    mbpp(
        "import re\ndef num(s):\n    return re.search(r'\\d+', s)\n",
        "assert num('ab12').group() == '12'",
        "assert num('ab') is None",
    ),
)
case(
    "big_int_result",
    mbpp(
        "import math\ndef f(n):\n    return math.factorial(n)\n",
        "assert f(3000) % 10 ** 6 == 0 and f(3000) > 10 ** 9000",
    ),
)
case("bytes_result", mbpp("def enc(s):\n    return s.encode()[::-1]\n", "assert enc('ab') == b'ba'"))
case(
    "complex_result",
    mbpp("import cmath\ndef polar(z):\n    return cmath.polar(z)\n", "assert polar(1) == (1.0, 0.0)"),
)
case("nan_result", mbpp("def f():\n    return float('nan')\n", "assert f() != f()"))
case("inf_result", mbpp("def f():\n    return float('inf')\n", "assert f() > 10 ** 300"))
case(
    "linked_nodes_result",
    mbpp(
        "class Node:\n    def __init__(self, v, nxt=None):\n        self.v, self.nxt = v, nxt\ndef mk(n):\n    h = None\n    for i in range(n):\n        h = Node(i, h)\n    return h\n",
        "h = mk(3)\nassert h.nxt.nxt.v == 0 and h.nxt.nxt.nxt is None",
    ),
)
case(
    "deeply_nested_result",
    mbpp(
        "def f(n):\n    r = []\n    for _ in range(n):\n        r = [r]\n    return r\n",
        "assert len(f(300)) == 1",
    ),
)
case(
    "test_object_passed_in",
    mbpp(
        "def area(r):\n    return r.w * r.h\n", "assert area(R()) == 6", setup="class R:\n    w, h = 2, 3\n"
    ),
)

# ---------------------------------------------------------------------------------------------
# 10. Wrong programs of common MBPP shapes (mutants): status, error type and line must agree too.

MUTANTS = {
    "mut_off_by_one": (
        "def first_n(xs, n):\n    return xs[:n + 1]\n",
        "assert first_n([1, 2, 3], 2) == [1, 2]",
    ),
    "mut_index_error": ("def last(xs):\n    return xs[len(xs)]\n", "assert last([1, 2]) == 2"),
    "mut_type_error_inside": ("def join(xs):\n    return ''.join(xs)\n", "assert join([1, 2]) == '12'"),
    "mut_none_return": ("def double(x):\n    x * 2\n", "assert double(2) == 4"),
    "mut_none_into_len": (
        "def evens(xs):\n    [x for x in xs if x % 2 == 0]\n",
        "assert len(evens([1, 2, 4])) == 2",
    ),
    "mut_none_into_set": (
        "def common(a, b):\n    r = set(a) & set(b)\n",
        "assert set(common([1, 2], [2])) == {2}",
    ),
    "mut_str_vs_int": ("def count(s):\n    return str(len(s))\n", "assert count('ab') == 2"),
    "mut_float_vs_int": ("def avg(xs):\n    return sum(xs) // len(xs)\n", "assert avg([1, 2]) == 1.5"),
    "mut_zero_div": ("def avg(xs):\n    return sum(xs) / len(xs)\n", "assert avg([]) == 0"),
    "mut_attr_error": ("def up(s):\n    return s.upper()\n", "assert up(5) == '5'"),
    "mut_unbound_local": ("def f(x):\n    if x > 0:\n        y = 1\n    return y\n", "assert f(-1) == 0"),
    "mut_infinite_loop": ("def f(x):\n    while x > 0:\n        pass\n    return x\n", "assert f(1) == 1"),
    "mut_deep_line": (
        "def a(x):\n    return b(x) + 1\n\ndef b(x):\n    return c(x) * 2\n\ndef c(x):\n    return {}[x]\n",
        "assert a(1) == 3",
    ),
    "mut_wrong_tuple": ("def swap(a, b):\n    return a, b\n", "assert swap(1, 2) == (2, 1)"),
    "mut_list_vs_tuple": ("def pair(a, b):\n    return [a, b]\n", "assert pair(1, 2) == (1, 2)"),
    "mut_bool_vs_str": (
        "def is_even(n):\n    return 'yes' if n % 2 == 0 else 'no'\n",
        "assert is_even(2) == True",
    ),
    "mut_exception_type_mismatch": ("def parse(s):\n    return int(s)\n", "assert parse('1.5') == 1"),
    "mut_overflow": ("import math\ndef big(x):\n    return math.exp(x)\n", "assert big(1000) > 0"),
    "mut_recursion_no_base": ("def fact(n):\n    return n * fact(n - 1)\n", "assert fact(3) == 6"),
    "mut_partial_pass": (
        "def sq(x):\n    return x * x if x < 3 else x\n",
        "assert sq(2) == 4",
        "assert sq(3) == 9",
    ),
}
for name, (program, *tests) in MUTANTS.items():
    case(name, mbpp(program, *tests))

# ---------------------------------------------------------------------------------------------
# Where the sandbox differs from one process on purpose (README, Isolation): the verdict it gives
# instead, and the words of the result's `detail` or the test's error that say why.

DIFFERENCES: dict[str, tuple[str, str]] = {
    # The program's `abs` would judge the test of its own `f`; the test keeps Python's `abs`.
    "builtin_named_wrapper_helper": ("passed", "used Python's abs, not the program's"),
    # A StopIteration raised by the program is its error, never the silent end of a test's loop.
    "raises_stop_iteration_explicit": ("runtime_error", "StopIteration"),
    # Test code never runs in the program's process: the test's `helper` does not replace the
    # program's own, which the program's `f` keeps calling.
    "test_helper_shadows_program": ("passed", ""),
    # Values cross as plain data at most 200 levels deep.
    "deeply_nested_result": ("failed", "nested too deeply"),
    # Objects of classes the *test* defines stay in the test's process.
    "test_object_passed_in": ("failed", "cannot cross into the candidate process"),
    # An operator between a program object and test data would hand test data to the program.
    "operator_with_test_data": ("failed", "never hands test data to the program's operators"),
}
