"""Extracting programs from chatty model outputs."""

from __future__ import annotations

import ast

from execrl.data.sanitize import clean, extract_code, fenced_blocks, parseable_prefix


def defined(code: str) -> list[str]:
    return [n.name for n in ast.parse(code).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]


def test_prefers_the_python_block_that_defines_the_entry_point() -> None:
    text = (
        "First a helper:\n```python\ndef helper(y):\n    return y\n\n\nclass Big:\n    pass\n```\n"
        "Then the answer:\n```python\ndef f(x):\n    return x\n```\n"
    )
    assert extract_code(text, "f") == "def f(x):\n    return x\n"


def test_without_entry_point_the_longest_block_wins() -> None:
    text = "```python\nx = 1\n```\n\n```python\ndef g():\n    return 2\n```\n"
    assert extract_code(text) == "def g():\n    return 2\n"


def test_untagged_and_other_language_blocks_are_used_when_no_python_block() -> None:
    assert extract_code("```\ndef f():\n    return 1\n```", "f") == "def f():\n    return 1\n"
    assert extract_code("```text\ndef f():\n    return 1\n```") == "def f():\n    return 1\n"


def test_raw_text_drops_prose_main_block_and_prints() -> None:
    text = (
        "Here is my solution:\nimport math\n\ndef f(x):\n    return math.sqrt(x)\n\n"
        'if __name__ == "__main__":\n    print(f(4))\nprint(f(9))\nThat\'s it! Let me know.'
    )
    assert extract_code(text, "f") == "import math\n\ndef f(x):\n    return math.sqrt(x)\n"


def test_prose_that_parses_as_python_is_dropped() -> None:
    text = "Sure\ndef f(x):\n    return x\nNote: f is the identity\nExample: f(3)\n"
    assert extract_code(text, "f") == "def f(x):\n    return x\n"


def test_unclosed_fence_from_a_truncated_generation() -> None:
    assert extract_code("```python\ndef f(x):\n    return x + 1\n", "f") == "def f(x):\n    return x + 1\n"


def test_truncates_at_the_first_line_that_breaks_parsing() -> None:
    text = "```python\ndef f(x):\n    return x\n\ndef g(y):\n    return (y +\n```"
    assert defined(extract_code(text)) == ["f"]


def test_entry_point_keeps_only_its_dependencies() -> None:
    text = (
        "```python\nimport os\nLIMIT = 10\n\ndef helper(v):\n    return min(v, LIMIT)\n\n"
        "def f(x):\n    return helper(x)\n\nresult = f(3)\nunused = 4\n```"
    )
    code = extract_code(text, "f")
    assert code == (
        "import os\nLIMIT = 10\n\ndef helper(v):\n    return min(v, LIMIT)\n\ndef f(x):\n    return helper(x)\n"
    )


def test_decorators_and_comments_survive() -> None:
    text = "```python\nimport functools\n\n# cached\n@functools.cache\ndef f(n):\n    return n  # same\n```"
    assert (
        extract_code(text, "f")
        == "import functools\n\n# cached\n@functools.cache\ndef f(n):\n    return n  # same\n"
    )


def test_class_method_counts_as_defining_the_entry_point() -> None:
    text = (
        "```python\ndef f():\n    pass\n```\n"
        "```python\nclass Solution:\n    def twoSum(self, a, t):\n        return [0, 1]\n```"
    )
    assert defined(extract_code(text, "twoSum")) == ["Solution"]


def test_stdin_programs_keep_their_top_level_code() -> None:
    text = "Sure\n```python\nimport sys\nn = int(input())\nprint(n * 2)\n```\nThis doubles n."
    assert extract_code(text, definitions_only=False) == "import sys\nn = int(input())\nprint(n * 2)\n"


def test_nothing_parseable_gives_empty_string() -> None:
    assert extract_code("I cannot solve this problem, sorry.") == ""


def test_fenced_blocks_reports_language_and_dedents() -> None:
    text = "1. Step:\n   ```Python\n   x = 1\n   ```\n```\ny = 2\n```"
    assert fenced_blocks(text) == [("python", "x = 1\n"), ("", "y = 2\n")]


def test_parseable_prefix_and_clean_start_at_the_first_line() -> None:
    assert parseable_prefix("x = 1\ny = (\nz = 3\n") == "x = 1\n"
    assert clean("def f():\n    return 1\nprint(f())\nassert f() == 1\n") == "def f():\n    return 1\n"


def test_null_bytes_and_huge_nesting_do_not_crash() -> None:
    assert extract_code("def f():\n    return 1\x00junk") == "def f():\n    return 1\n"
    assert extract_code("x = " + "(" * 500 + "1" + ")" * 500 + "\ndef f():\n    return 1\n", "f").startswith(
        "def f"
    )
