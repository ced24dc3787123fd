"""Prompts, stop strings, output post-processing and metadata of HumanEval, MBPP and APPS.

The post-processing tests feed realistic raw outputs (chatty, fenced, unfenced, trailing junk)
and check the completion that `make_job(..., sanitize=False)` would run; a few of them run that
job in the real sandbox to show the right program is judged.
"""

from __future__ import annotations

import pytest

from execrl import Limits, LocalExecutor, Status
from execrl.data import BENCHMARKS, apps, humaneval, mbpp
from execrl.types import CallCase, CallTests, IOCase, IOTests

# ---------------------------------------------------------------------------------------------
# Fixtures.

HE = humaneval.Problem(
    task_id="Toy/0",
    prompt=(
        "from typing import List\n\n\ndef double(x: int) -> int:\n    return 2 * x\n\n\n"
        'def quad(xs: List[int]) -> List[int]:\n    """Return 4 * x for each x.\n'
        '    >>> quad([1])\n    [4]\n    """\n'
    ),
    entry_point="quad",
    test="\n\ndef check(candidate):\n    assert candidate([1, 2]) == [4, 8]\n    assert candidate([]) == []\n",
)
MB = mbpp.Problem(
    task_id="2",
    prompt="Write a function to find the shared elements from the given two lists.",
    test_list=(
        "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
        "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))",
    ),
)
APPS_IO = apps.Problem(
    task_id="10",
    question="Print the sum of two integers.",
    tests=IOTests(cases=(IOCase("1 2\n", "3\n"), IOCase("5 7\n", "12\n"))),
    difficulty="introductory",
)
APPS_CALL = apps.Problem(
    task_id="20",
    question="Add two numbers.",
    tests=CallTests(fn_name="add", cases=(CallCase((1, 2), 3),)),
    starter_code="class Solution:\n    def add(self, a, b):\n        ",
    difficulty="interview",
)


@pytest.fixture(scope="module")
def ex(executor: LocalExecutor) -> LocalExecutor:
    return executor  # the session's sandbox (tests/conftest.py)


def test_every_benchmark_has_prompt_stop_postprocess_and_metadata() -> None:
    for module in BENCHMARKS.values():
        assert isinstance(module.STOP, tuple) and all(isinstance(s, str) and s for s in module.STOP)
        assert (
            callable(module.prompt) and callable(module.completion_from_output) and callable(module.metadata)
        )


# ---------------------------------------------------------------------------------------------
# HumanEval.


def test_humaneval_completion_prompt_is_the_prompt_and_stop_is_codex() -> None:
    assert humaneval.prompt(HE, chat=False) == HE.prompt
    assert humaneval.STOP == ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def test_humaneval_chat_prompt_asks_for_one_block_with_the_signature() -> None:
    [message] = humaneval.prompt(HE, chat=True)
    assert message["role"] == "user"
    assert "single fenced Python code block" in message["content"]
    assert "```python\n" + HE.prompt.strip() + "\n```" in message["content"]


def test_humaneval_completion_output_is_cut_at_the_first_stop() -> None:
    raw = "    return [double(double(x)) for x in xs]\n\n\ndef main():\n    print(quad([3]))\n"
    assert (
        humaneval.completion_from_output(HE, raw, chat=False)
        == "    return [double(double(x)) for x in xs]\n\n"
    )
    raw = "    return [4 * x for x in xs]\n\nif __name__ == '__main__':\n    quad([1])"
    assert humaneval.completion_from_output(HE, raw, chat=False) == "    return [4 * x for x in xs]\n"


CHATTY = (
    "Sure! Here is the completed function:\n\n"
    "```python\nfrom typing import List\n\n\ndef quad(xs: List[int]) -> List[int]:\n"
    '    """Multiply by four."""\n    return [double(double(x)) for x in xs]\n\n\nprint(quad([1, 2]))\n```\n\n'
    "It uses `double` twice. Let me know if you need anything else!"
)
UNFENCED = (
    "Here's my solution.\n\ndef quad(xs):\n    return [4 * x for x in xs]\n\nExample:\n>>> quad([1])\n[4]\n"
)
BODY_ONLY = "The body is:\n```python\n    return [x * 4 for x in xs]\n```"
WRONG = "```python\ndef quad(xs):\n    return xs\n```"


def test_humaneval_chat_output_becomes_a_redefinition_after_the_prompt() -> None:
    completion = humaneval.completion_from_output(HE, CHATTY, chat=True)
    assert completion.startswith("from typing import List\n\n\ndef quad(")
    assert "print(" not in completion and "Let me know" not in completion
    program = HE.prompt + completion
    compile(program, "<program>", "exec")


def test_humaneval_chat_output_without_fences_and_with_prose() -> None:
    completion = humaneval.completion_from_output(HE, UNFENCED, chat=True)
    assert completion == "def quad(xs):\n    return [4 * x for x in xs]\n"


def test_humaneval_chat_output_with_only_the_body_continues_the_prompt() -> None:
    assert humaneval.completion_from_output(HE, BODY_ONLY, chat=True) == "    return [x * 4 for x in xs]\n"


def test_humaneval_chat_output_on_a_prompt_without_docstring_still_parses() -> None:
    bare = humaneval.Problem("Toy/1", "def f(x):\n    # return x + 1\n", "f", test="")
    completion = humaneval.completion_from_output(
        bare, "```python\ndef f(x):\n    return x + 1\n```", chat=True
    )
    compile(bare.prompt + completion, "<program>", "exec")


def test_humaneval_chat_completions_run_the_models_function(ex: LocalExecutor) -> None:
    outputs = [CHATTY, UNFENCED, BODY_ONLY, WRONG]
    jobs = [
        humaneval.make_job(HE, humaneval.completion_from_output(HE, o, chat=True), Limits()) for o in outputs
    ]
    results = ex.run(jobs)
    assert [r.status for r in results] == [Status.PASSED, Status.PASSED, Status.PASSED, Status.FAILED]


def test_humaneval_metadata_is_empty() -> None:
    assert humaneval.metadata(HE) == {}


# ---------------------------------------------------------------------------------------------
# MBPP.


def test_mbpp_completion_prompt_is_a_docstring_with_the_first_test() -> None:
    assert mbpp.prompt(MB, chat=False) == f'"""\n{MB.prompt}\n{MB.test_list[0]}\n"""\n'


def test_mbpp_chat_prompt_shows_the_task_and_only_the_first_test() -> None:
    [message] = mbpp.prompt(MB, chat=True)
    assert message["content"].startswith("You are an expert Python programmer, and here is your task: Write")
    assert MB.test_list[0] in message["content"] and MB.test_list[1] not in message["content"]
    assert "single fenced Python code block" in message["content"]


def test_mbpp_entry_point_is_the_first_non_builtin_call() -> None:
    assert mbpp.entry_point(MB.test_list[0]) == "similar_elements"
    assert mbpp.entry_point("assert math.isclose(area(2), 12.56, rel_tol=0.001)") == "area"
    assert mbpp.entry_point("assert 1 == 1") is None
    assert mbpp.entry_point("assert (") is None


def test_mbpp_completion_output_is_cut_before_asserts_and_closing_quotes() -> None:
    code = "def similar_elements(a, b):\n    return tuple(set(a) & set(b))"  # the cut takes the newline
    assert (
        mbpp.completion_from_output(MB, code + "\nassert similar_elements((1,), (1,)) == (1,)\n", chat=False)
        == code
    )
    assert mbpp.completion_from_output(MB, code + '\n"""\nWrite another function', chat=False) == code
    assert mbpp.completion_from_output(MB, code + "\nprint(similar_elements((1,), (1,)))", chat=False) == code


MB_CHAT = (
    "Here is a function that does that:\n\n```python\ndef similar_elements(a, b):\n"
    "    return tuple(set(a) & set(b))\n\n# Test\nprint(similar_elements((3, 4), (4, 5)))\n"
    "assert similar_elements((1,), (1,)) == (1,)\n```\nThe set intersection gives the shared elements."
)


def test_mbpp_chat_output_keeps_the_function_only() -> None:
    completion = mbpp.completion_from_output(MB, MB_CHAT, chat=True)
    assert completion.startswith("def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n")
    assert "print(" not in completion and "assert" not in completion and "intersection" not in completion


def test_mbpp_completions_run(ex: LocalExecutor) -> None:
    good_raw = "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\nassert False\n"
    jobs = [
        mbpp.make_job(MB, mbpp.completion_from_output(MB, good_raw, chat=False), Limits()),
        mbpp.make_job(MB, mbpp.completion_from_output(MB, MB_CHAT, chat=True), Limits()),
        mbpp.make_job(MB, mbpp.completion_from_output(MB, MB_CHAT.replace("&", "|"), chat=True), Limits()),
    ]
    assert [r.status for r in ex.run(jobs)] == [Status.PASSED, Status.PASSED, Status.FAILED]


def test_mbpp_metadata_is_empty() -> None:
    assert mbpp.metadata(MB) == {}


# ---------------------------------------------------------------------------------------------
# APPS.


def test_apps_completion_prompt_follows_the_apps_paper() -> None:
    assert apps.prompt(APPS_IO, chat=False) == (
        "\nQUESTION:\nPrint the sum of two integers.\nUse Standard Input format\nANSWER:\n"
    )
    assert apps.prompt(APPS_CALL, chat=False) == (
        "\nQUESTION:\nAdd two numbers.\nclass Solution:\n    def add(self, a, b):\n        "
        "\nUse Call-Based format\nANSWER:\n"
    )
    assert apps.STOP == ()


def test_apps_chat_prompt_states_the_io_convention_and_starter_code() -> None:
    [io_message] = apps.prompt(APPS_IO, chat=True)
    assert (
        "standard input" in io_message["content"]
        and "single fenced Python code block" in io_message["content"]
    )
    [call_message] = apps.prompt(APPS_CALL, chat=True)
    assert "```python\nclass Solution:\n    def add(self, a, b):\n```" in call_message["content"]
    assert "`add`" in call_message["content"]


APPS_CHAT = (
    "We read both numbers and print their sum.\n\n```python\nimport sys\n\n"
    "def main():\n    a, b = map(int, sys.stdin.read().split())\n    print(a + b)\n\n"
    'if __name__ == "__main__":\n    main()\n```\nTime complexity: O(1).'
)


def test_apps_chat_output_keeps_top_level_code_of_stdin_programs() -> None:
    completion = apps.completion_from_output(APPS_IO, APPS_CHAT, chat=True)
    assert completion.startswith("import sys\n") and completion.rstrip().endswith("main()")
    assert "Time complexity" not in completion


def test_apps_call_based_chat_output_keeps_the_class() -> None:
    raw = "```python\nclass Solution:\n    def add(self, a, b):\n        return a + b\n\nprint(Solution().add(1, 2))\n```"
    assert apps.completion_from_output(APPS_CALL, raw, chat=True) == (
        "class Solution:\n    def add(self, a, b):\n        return a + b\n"
    )


def test_apps_completion_output_is_kept_whole() -> None:
    raw = "a, b = map(int, input().split())\nprint(a + b)\n"
    assert apps.completion_from_output(APPS_IO, raw, chat=False) == raw


def test_apps_completions_run(ex: LocalExecutor) -> None:
    jobs = [
        apps.make_job(APPS_IO, apps.completion_from_output(APPS_IO, APPS_CHAT, chat=True), Limits()),
        apps.make_job(
            APPS_IO,
            apps.completion_from_output(APPS_IO, APPS_CHAT.replace("a + b", "a * b"), chat=True),
            Limits(),
        ),
    ]
    assert [r.status for r in ex.run(jobs)] == [Status.PASSED, Status.FAILED]


def test_apps_metadata_is_the_difficulty() -> None:
    assert apps.metadata(APPS_IO) == {"difficulty": "introductory"}
