"""The primitive operations the built-in suite (`execrl.data.builtin`) composes into tasks.

An `Op` maps a value of one type to another (`takes` → `gives`); a *final* op returns the task's
answer. Its `code` lines use `{v}` (input variable), `{o}` (output variable) and `{k}` (the op's
parameter, drawn from `ks`); a final op's lines `return` the answer. API ops record the
standard-library call their solution must make (`ApiCall`), and the import it needs.

Types, with the variable each is held in: `ints` (`xs: list[int]`), `str` (`s: str`), `strs`
(`words: list[str]`), `dict` (`d: dict[str, int]`) and `date` (`s: str`, an ISO date).
Every final op handles empty input the way its phrase says, so the reference never raises.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

__all__ = ["OPS", "TYPES", "ApiCall", "Op", "random_input"]


@dataclass(frozen=True)
class ApiCall:
    """The standard-library call a solution must make: `module.function(args)`."""

    module: str
    function: str
    args: str


@dataclass(frozen=True)
class Op:
    name: str
    takes: str
    gives: str  # for a final op: the return annotation
    phrase: str
    code: tuple[str, ...]
    ks: tuple[Any, ...] = ()
    final: bool = False
    api: ApiCall | None = None


TYPES: dict[str, tuple[str, str, str]] = {
    # type: (variable, annotation, what the instruction calls it)
    "ints": ("xs", "list[int]", "a list of integers"),
    "str": ("s", "str", "a string"),
    "strs": ("words", "list[str]", "a list of words"),
    "dict": ("d", "dict[str, int]", "a dict from words to integers"),
    "date": ("s", "str", "a date string"),
}


def _a(name: str, takes: str, gives: str, phrase: str, *code: str, ks: tuple[Any, ...] = ()) -> Op:
    return Op(name, takes, gives, phrase, code, ks)


def _f(
    name: str,
    takes: str,
    ret: str,
    phrase: str,
    *code: str,
    ks: tuple[Any, ...] = (),
    api: ApiCall | None = None,
) -> Op:
    return Op(name, takes, ret, phrase, code, ks, final=True, api=api)


_CHARS = ("'a'", "'e'", "'o'", "'s'")
_OPS = [
    # list[int] -> list[int]: filters, maps, index/slice ops
    _a("filter_even", "ints", "ints", "keep the even numbers", "{o} = [x for x in {v} if x % 2 == 0]"),
    _a("filter_odd", "ints", "ints", "keep the odd numbers", "{o} = [x for x in {v} if x % 2 == 1]"),
    _a("filter_positive", "ints", "ints", "keep the positive numbers", "{o} = [x for x in {v} if x > 0]"),
    _a(
        "filter_gt",
        "ints",
        "ints",
        "keep the numbers greater than {k}",
        "{o} = [x for x in {v} if x > {k}]",
        ks=(2, 3, 5),
    ),
    _a(
        "filter_multiple",
        "ints",
        "ints",
        "keep the multiples of {k}",
        "{o} = [x for x in {v} if x % {k} == 0]",
        ks=(3, 4),
    ),
    _a("map_square", "ints", "ints", "square each number", "{o} = [x * x for x in {v}]"),
    _a("map_double", "ints", "ints", "double each number", "{o} = [2 * x for x in {v}]"),
    _a("map_add", "ints", "ints", "add {k} to each number", "{o} = [x + {k} for x in {v}]", ks=(1, 3, 10)),
    _a("map_abs", "ints", "ints", "take the absolute value of each number", "{o} = [abs(x) for x in {v}]"),
    _a(
        "map_mod",
        "ints",
        "ints",
        "replace each number by its remainder modulo {k}",
        "{o} = [x % {k} for x in {v}]",
        ks=(3, 5),
    ),
    _a("slice_tail", "ints", "ints", "drop the first number", "{o} = {v}[1:]"),
    _a("slice_head", "ints", "ints", "keep the first {k} numbers", "{o} = {v}[:{k}]", ks=(2, 3, 4)),
    _a("reverse", "ints", "ints", "reverse the list", "{o} = {v}[::-1]"),
    _a("sort", "ints", "ints", "sort it ascending", "{o} = sorted({v})"),
    _a(
        "dedupe",
        "ints",
        "ints",
        "drop repeated numbers, keeping first occurrences",
        "{o} = list(dict.fromkeys({v}))",
    ),
    # list[int] -> answer: aggregators, index ops, dict counting
    _f("sum", "ints", "int", "their sum", "return sum({v})"),
    _f("max", "ints", "int", "the largest (0 if none)", "if not {v}:", "    return 0", "return max({v})"),
    _f("min", "ints", "int", "the smallest (0 if none)", "if not {v}:", "    return 0", "return min({v})"),
    _f(
        "mean",
        "ints",
        "float",
        "their mean rounded to 2 decimals (0.0 if none)",
        "if not {v}:",
        "    return 0.0",
        "return round(sum({v}) / len({v}), 2)",
    ),
    _f("count", "ints", "int", "how many there are", "return len({v})"),
    _f(
        "product",
        "ints",
        "int",
        "their product (1 if none)",
        "p = 1",
        "for x in {v}:",
        "    p *= x",
        "return p",
    ),
    _f("first", "ints", "int", "the first one (-1 if none)", "if not {v}:", "    return -1", "return {v}[0]"),
    _f("last", "ints", "int", "the last one (-1 if none)", "if not {v}:", "    return -1", "return {v}[-1]"),
    _f(
        "at_index",
        "ints",
        "int",
        "the one at index {k} (-1 if too short)",
        "if len({v}) <= {k}:",
        "    return -1",
        "return {v}[{k}]",
        ks=(1, 2),
    ),
    _f(
        "spread",
        "ints",
        "int",
        "the largest minus the smallest (0 if none)",
        "if not {v}:",
        "    return 0",
        "return max({v}) - min({v})",
    ),
    _f("join", "ints", "str", "them joined by commas as a string", 'return ",".join(str(x) for x in {v})'),
    _f(
        "count_dict",
        "ints",
        "dict[int, int]",
        "a dict mapping each to its count",
        "counts = {{}}",
        "for x in {v}:",
        "    counts[x] = counts.get(x, 0) + 1",
        "return counts",
    ),
    # str -> str / list[str]
    _a("lower", "str", "str", "lowercase it", "{o} = {v}.lower()"),
    _a("upper", "str", "str", "uppercase it", "{o} = {v}.upper()"),
    _a("strip", "str", "str", "strip surrounding spaces", "{o} = {v}.strip()"),
    _a("reverse_str", "str", "str", "reverse it", "{o} = {v}[::-1]"),
    _a(
        "drop_vowels",
        "str",
        "str",
        "remove the vowels (aeiouAEIOU)",
        '{o} = "".join(c for c in {v} if c not in "aeiouAEIOU")',
    ),
    _a("drop_digits", "str", "str", "remove the digits", '{o} = "".join(c for c in {v} if not c.isdigit())'),
    _a("split", "str", "strs", "split it into words", "{o} = {v}.split()"),
    # str -> answer
    _f("length", "str", "int", "its length", "return len({v})"),
    _f("count_char", "str", "int", "how many times {k} occurs", "return {v}.count({k})", ks=_CHARS),
    _f("palindrome", "str", "bool", "whether it reads the same backwards", "return {v} == {v}[::-1]"),
    _f(
        "char_at",
        "str",
        "str",
        "its character at index {k} ('' if too short)",
        "if len({v}) <= {k}:",
        '    return ""',
        "return {v}[{k}]",
        ks=(0, 2, 4),
    ),
    _f(
        "vowels",
        "str",
        "int",
        "how many vowels (aeiouAEIOU) it has",
        'return sum(1 for c in {v} if c in "aeiouAEIOU")',
    ),
    # list[str] -> list[str] / list[int]
    _a(
        "words_longer",
        "strs",
        "strs",
        "keep the words longer than {k} letters",
        "{o} = [w for w in {v} if len(w) > {k}]",
        ks=(2, 3, 4),
    ),
    _a(
        "words_starting",
        "strs",
        "strs",
        "keep the words starting with {k}",
        "{o} = [w for w in {v} if w.startswith({k})]",
        ks=("'a'", "'b'", "'c'"),
    ),
    _a("words_upper", "strs", "strs", "uppercase each word", "{o} = [w.upper() for w in {v}]"),
    _a("words_reverse", "strs", "strs", "reverse each word", "{o} = [w[::-1] for w in {v}]"),
    _a("words_sort", "strs", "strs", "sort them alphabetically", "{o} = sorted({v})"),
    _a("words_len", "strs", "ints", "replace each word by its length", "{o} = [len(w) for w in {v}]"),
    # list[str] -> answer
    _f("words_join", "strs", "str", "them joined by '-'", 'return "-".join({v})'),
    _f("words_count", "strs", "int", "how many words there are", "return len({v})"),
    _f(
        "words_longest",
        "strs",
        "str",
        "the longest word (first on ties, '' if none)",
        "if not {v}:",
        '    return ""',
        "return max({v}, key=len)",
    ),
    _f(
        "words_first",
        "strs",
        "str",
        "the first word ('' if none)",
        "if not {v}:",
        '    return ""',
        "return {v}[0]",
    ),
    _f(
        "words_counts",
        "strs",
        "dict[str, int]",
        "a dict mapping each word to its count",
        "counts = {{}}",
        "for w in {v}:",
        "    counts[w] = counts.get(w, 0) + 1",
        "return counts",
    ),
    _f(
        "words_initials",
        "strs",
        "str",
        "the string of their first letters",
        'return "".join(w[0] for w in {v})',
    ),
    # dict[str, int] -> dict / list[int]
    _a(
        "dict_gt",
        "dict",
        "dict",
        "keep the entries whose value is greater than {k}",
        "{o} = {{key: n for key, n in {v}.items() if n > {k}}}",
        ks=(0, 3),
    ),
    _a(
        "dict_long_keys",
        "dict",
        "dict",
        "keep the entries whose key is longer than {k} letters",
        "{o} = {{key: n for key, n in {v}.items() if len(key) > {k}}}",
        ks=(3, 4),
    ),
    _a("dict_double", "dict", "dict", "double every value", "{o} = {{key: 2 * n for key, n in {v}.items()}}"),
    _a("dict_values", "dict", "ints", "take the list of values", "{o} = list({v}.values())"),
    # dict -> answer
    _f("dict_sum", "dict", "int", "the sum of the values", "return sum({v}.values())"),
    _f(
        "dict_argmax",
        "dict",
        "str",
        "the key with the largest value ('' if empty, first on ties)",
        "if not {v}:",
        '    return ""',
        "return max({v}, key={v}.get)",
    ),
    _f("dict_keys", "dict", "list[str]", "the sorted list of keys", "return sorted({v})"),
    _f("dict_len", "dict", "int", "the number of entries", "return len({v})"),
    # date str -> date str
    _a("date_strip", "date", "date", "strip surrounding spaces", "{o} = {v}.strip()"),
    _a("date_dashes", "date", "date", "replace '/' by '-'", '{o} = {v}.replace("/", "-")'),
    # API ops (final): the solution must call the recorded standard-library function
    _f(
        "gcd",
        "ints",
        "int",
        "the gcd of all of them using math.gcd (0 if none)",
        "g = 0",
        "for x in {v}:",
        "    g = math.gcd(g, x)",
        "return g",
        api=ApiCall("math", "gcd", "g, x"),
    ),
    _f(
        "median",
        "ints",
        "float",
        "their median using statistics.median (0 if none)",
        "if not {v}:",
        "    return 0",
        "return statistics.median({v})",
        api=ApiCall("statistics", "median", "xs"),
    ),
    _f(
        "nlargest",
        "ints",
        "list[int]",
        "the {k} largest, largest first, using heapq.nlargest",
        "return heapq.nlargest({k}, {v})",
        ks=(2, 3),
        api=ApiCall("heapq", "nlargest", "k, xs"),
    ),
    _f(
        "bisect",
        "ints",
        "int",
        "how many are smaller than {k}, using bisect.bisect_left on the sorted list",
        "return bisect.bisect_left(sorted({v}), {k})",
        ks=(0, 5, 10),
        api=ApiCall("bisect", "bisect_left", "sorted(xs), k"),
    ),
    _f(
        "pairs",
        "ints",
        "int",
        "how many pairs (i < j) sum to {k}, using itertools.combinations",
        "pairs = itertools.combinations({v}, 2)",
        "return sum(1 for a, b in pairs if a + b == {k})",
        ks=(6, 10),
        api=ApiCall("itertools", "combinations", "xs, 2"),
    ),
    _f(
        "mode",
        "ints",
        "int",
        "the most frequent one using collections.Counter.most_common (0 if none)",
        "if not {v}:",
        "    return 0",
        "return collections.Counter({v}).most_common(1)[0][0]",
        api=ApiCall("collections", "Counter.most_common", "1"),
    ),
    _f(
        "digit_sum",
        "str",
        "int",
        "the sum of the numbers in it found with re.findall",
        'nums = re.findall(r"[0-9]+", {v})',
        "return sum(int(n) for n in nums)",
        api=ApiCall("re", "findall", "pattern, s"),
    ),
    _f(
        "wrap",
        "str",
        "int",
        "how many lines textwrap.wrap gives at width {k}",
        "return len(textwrap.wrap({v}, {k}))",
        ks=(6, 10),
        api=ApiCall("textwrap", "wrap", "s, width"),
    ),
    _f(
        "capwords",
        "str",
        "str",
        "it with each word capitalized by string.capwords",
        "return string.capwords({v})",
        api=ApiCall("string", "capwords", "s"),
    ),
    _f(
        "common_word",
        "strs",
        "str",
        "the most frequent word using collections.Counter.most_common ('' if none)",
        "if not {v}:",
        '    return ""',
        "return collections.Counter({v}).most_common(1)[0][0]",
        api=ApiCall("collections", "Counter.most_common", "1"),
    ),
    _f(
        "weekday",
        "date",
        "int",
        "its weekday (Monday is 0) using datetime.date.fromisoformat",
        "day = datetime.date.fromisoformat({v})",
        "return day.weekday()",
        api=ApiCall("datetime", "date.fromisoformat", "s"),
    ),
    _f(
        "year_day",
        "date",
        "int",
        "its day of the year using datetime.date.fromisoformat",
        "day = datetime.date.fromisoformat({v})",
        "return day.timetuple().tm_yday",
        api=ApiCall("datetime", "date.fromisoformat", "s"),
    ),
]
OPS: dict[str, Op] = {op.name: op for op in _OPS}

_WORDS = ("apple", "bee", "cat", "code", "banana", "axe", "cab", "ant", "berry", "cod", "dog", "level")


def random_input(rng: random.Random, type_: str, empty: bool = False) -> Any:
    """A random value of `type_` (small, so a failing test prints readably); `empty`: its empty one."""
    if type_ == "ints":
        return [] if empty else [rng.randint(-5, 12) for _ in range(rng.randint(1, 7))]
    if type_ == "strs":
        return [] if empty else [rng.choice(_WORDS) for _ in range(rng.randint(1, 6))]
    if type_ == "str":
        if empty:
            return ""
        parts = [rng.choice((*_WORDS, "Hello", "Ana", "12", "7", "noon")) for _ in range(rng.randint(1, 4))]
        text = " ".join(parts)
        return f" {text} " if rng.random() < 0.3 else text
    if type_ == "dict":
        return {} if empty else {w: rng.randint(-3, 9) for w in rng.sample(_WORDS, rng.randint(1, 5))}
    if type_ == "date":
        day = f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        return f" {day}" if empty else day.replace("-", "/") if rng.random() < 0.3 else day
    raise ValueError(f"unknown type {type_!r}")
