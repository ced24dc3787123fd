"""Programs with the fine-grained scope RLTF's rules give them, and the harvester of their messages.

`SYNTAX` maps a case name to (program, expected scope, expected line in the program or None) for
programs that do not compile. The program is the whole completion (`completion_start=0`).
`MESSAGES` (rltf_messages.json) holds what each CPython 3.8–3.13 says about each of them
(`[type, message, lineno]`), harvested by running this file with each interpreter:

    for v in 3.8.18 3.9.18 3.10.13 3.11.7 3.12.1 3.13.0; do
        /root/.pyenv/versions/$v/bin/python tests/rltf_cases.py; done

so the tests check every wording without needing those interpreters.
"""

from __future__ import annotations

import json
import os
import sys

G, L, N = "global", "line", "none"

SYNTAX: dict[str, tuple[str, str, int | None]] = {
    # The program ends early: every token is blamed.
    "unclosed_paren": ("def f(x):\n    return g(x\n", G, None),
    "unclosed_bracket": ("def f(x):\n    return [x,\n", G, None),
    "unclosed_brace": ("def f(x):\n    return {x:\n", G, None),
    "unclosed_paren_swallows_rest": (
        "def f(x):\n    y = (x +\n    return y\n\ndef g():\n    return 1\n",
        G,
        None,
    ),
    "unclosed_no_newline": ("print((1", G, None),
    "unclosed_dict_lines": ("d = {\n    'a': 1,\n    'b': 2,\n", G, None),
    "unclosed_def_args": ("def f(a, b", G, None),
    "unclosed_call_arg": ("x = max(1,", G, None),
    "backslash_at_eof": ("def f(x):\n    return x + \\\n", G, None),
    "indent_eof_def": ("def f(x):\n", G, None),
    "indent_eof_if": ("def f(x):\n    if x:\n", G, None),
    "indent_eof_for": ("def f(x):\n    for i in x:\n", G, None),
    "indent_eof_comment_after": ("def f(x):\n    if x:\n        # todo\n", G, None),
    "indent_eof_blank_lines": ("def f(x):\n    while x:\n\n\n", G, None),
    "indent_eof_header_comment": ("def f(x):\n    if x:  # check it\n", G, None),
    "indent_eof_header_comment_quote": ("def f(x):\n    if x:  # it's 'x'\n", G, None),
    "indent_eof_dict_slice_header": ("def f(d):\n    for k in d['a:b']:\n", G, None),
    "indent_eof_class": ("class A:\n", G, None),
    "indent_eof_with": ("with open('x') as f:\n", G, None),
    "indent_eof_try": ("try:\n", G, None),
    "indent_eof_except": ("try:\n    x = 1\nexcept ValueError:\n", G, None),
    "indent_eof_elif": ("if x:\n    y = 1\nelif y:\n", G, None),
    "indent_eof_else": ("def f(x):\n    if x:\n        return 1\n    else:\n", G, None),
    "indent_eof_finally": ("try:\n    x = 1\nfinally:\n", G, None),
    "indent_eof_match": ("match x:\n", G, None),
    "indent_eof_case": ("match x:\n    case 1:\n", G, None),
    "indent_eof_async_def": ("async def f():\n", G, None),
    "try_without_except_at_eof": ("def f(x):\n    try:\n        return x\n", G, None),
    "invalid_last_line": ("def f(x):\n    return x +\n", G, None),
    "invalid_last_line_no_newline": ("def f(x):\n    return x +", G, None),
    "invalid_last_line_then_comment": ("def f(x):\n    return x +\n# trailing\n\n", G, None),
    "invalid_last_line_then_blanks": ("def f(x):\n    return x *\n\n   \n", G, None),
    "invalid_lambda_at_eof": ("f = lambda x:\n", G, None),
    "invalid_attribute_at_eof": ("x = a.\n", G, None),
    "invalid_for_at_eof": ("for x in\n", G, None),
    "invalid_ternary_at_eof": ("y = 1 if x else\n", G, None),
    "forgot_comma_last_line": ("def f(x):\n    return [x y]\n", G, None),
    "expected_colon_last_line": ("def f(x)\n", G, None),
    "expected_colon_if_last_line": ("def f(x):\n    if x\n", G, None),
    "unterminated_last_line": ("def f(x):\n    return 'abc\n", G, None),
    "unterminated_no_newline": ("def f(x):\n    return 'abc", G, None),
    "unterminated_double_quote": ('x = "abc\n', G, None),
    "unterminated_bytes": ("x = b'abc\n", G, None),
    "too_deep_to_parse": ("x = " + "-" * 100000 + "1\n", G, None),
    # Other syntax errors: the reported line.
    "indent_expected_mid": ("def f(x):\n    if x:\n    return 1\n", L, 3),
    "invalid_mid": ("def f(x):\n    return x +\n\ndef g():\n    return 1\n", L, 2),
    "forgot_comma_mid": ("def f(x):\n    y = [x y]\n    return y\n", L, 2),
    "unterminated_mid": ("def f(x):\n    s = 'abc\n    return s\n", L, 2),
    "unexpected_indent": ("def f(x):\n    y = 1\n        return y\n", L, 3),
    "expected_colon_mid": ("def f(x)\n    return x\n", L, 1),
    "assign_in_if": ("if x = 1:\n    pass\n", L, 1),
    "return_outside": ("return 1\n", L, 1),
    "assign_to_call": ("def f(x):\n    f(x) = 1\n    return x\n", L, 2),
    "unmatched_close": ("def f(x):\n    return x)\n", L, 2),
    "mismatched_close": ("def f(x):\n    return (x]\n", L, 2),
    "nonlocal_at_module": ("nonlocal x\n", L, 1),
    "genexp_unparenthesized": ("f(x for x in y, 1)\n", L, 1),
    "positional_after_keyword": ("f(a=1, 2)\n", L, 1),
    "too_many_parentheses": ("x = " + "(" * 250 + "1" + ")" * 250 + "\n", L, 1),
    "delete_call": ("del f()\n", L, 1),
    "keyword_repeated": ("f(a=1, a=2)\n", L, 1),
    "invalid_character": ("x = 1 \u2013 2\n", L, 1),
    "leading_zero": ("x = 012\n", L, 1),
    "yield_outside": ("yield 1\n", L, 1),
    "await_outside": ("await f()\n", L, 1),
    "break_outside": ("break\n", L, 1),
    "global_after_assign": ("def f():\n    x = 1\n    global x\n", L, 3),
    "starred_alone": ("*a\n", L, 1),
    "fstring_unclosed_brace": ("def f(x):\n    return f'{x'\n", L, 2),
    "fstring_empty": ("x = f'{}'\n", L, 1),
    "print_statement": ("print 'a'\n", L, 1),
    # Ignored: no token is blamed.
    "tab_error": ("def f(x):\n        y = 1\n\treturn y\n", N, None),
    "unindent_mismatch": ("def f(x):\n        y = 1\n    return y\n", N, None),
    "triple_quote_eof": ("def f(x):\n    '''doc\n    return x\n", N, None),
    "triple_double_quote_eof": ('def f(x):\n    """doc\n', N, None),
    "triple_quote_no_newline": ("x = '''abc", N, None),
    "duplicate_argument": ("def f(x, x):\n    return x\n", N, None),
    "import_star_in_function": ("def f(x):\n    from os import *\n    return x\n", N, None),
    "null_byte": ("x = 1\x00\n", N, None),
}

MESSAGES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rltf_messages.json")


def harvest() -> dict[str, list[object]]:
    """What this interpreter's `compile` says about each case."""
    out: dict[str, list[object]] = {}
    for name, (source, _, _) in SYNTAX.items():
        try:
            compile(source, "<candidate>", "exec", dont_inherit=True)
            raise AssertionError(f"{name} compiles")
        except SyntaxError as e:
            out[name] = [type(e).__name__, str(e.msg), e.lineno]
        except (ValueError, MemoryError, RecursionError) as e:
            out[name] = [type(e).__name__, str(e), None]
    return out


if __name__ == "__main__":
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    data = {}
    if os.path.exists(MESSAGES_FILE):
        with open(MESSAGES_FILE, encoding="utf-8") as f:
            data = json.load(f)
    data[version] = harvest()
    with open(MESSAGES_FILE, "w", encoding="utf-8") as f:
        json.dump(dict(sorted(data.items())), f, indent=1, ensure_ascii=False)
        f.write("\n")
