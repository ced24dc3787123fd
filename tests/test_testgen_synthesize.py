"""`execrl tests synthesize`: prompts without hidden tests, replies cut into single deduplicated
tests with provenance, through a function generator, a scripted OpenAI-compatible server, and
`execrl serve` with the tiny model."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from execrl.cli import main
from execrl.data import builtin, humaneval
from execrl.generation import Completion, Prompt, SamplingParams
from execrl.testgen.synthesize import parse_tests, prompt, synthesize
from execrl.testgen.tasks import TaskSpec, spec
from execrl.types import IOCase

F = TaskSpec("t/0", "assert", "add", frozenset(), None, "", "def add(a, b):\n    '''Add two numbers.'''\n")
IO = TaskSpec("t/1", "io", None, frozenset(), None, "", "Read two integers and print their sum.")


class FunctionGenerator:
    """A `Generator` that answers with `fn(prompt, sample)`; records the prompts it saw."""

    def __init__(self, fn: Callable[[Prompt, int], str]) -> None:
        self.fn = fn
        self.prompts: list[Prompt] = []

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        self.prompts += prompts
        return [[Completion(self.fn(p, j)) for j in range(params.n)] for p in prompts]


def test_parse_fenced_asserts_one_per_statement() -> None:
    reply = (
        "Here are tests:\n```python\nassert add(1, 2) == 3\nassert add(-1, 1) == 0  # edge\n"
        "assert add(\n    2,\n    2,\n) == 4\nprint('done')\n```\nThey cover signs."
    )
    assert parse_tests(reply, F) == [
        "assert add(1, 2) == 3",
        "assert add(-1, 1) == 0",
        "assert add(2, 2) == 4",
    ]


def test_parse_skips_broken_and_truncated_lines_only() -> None:
    reply = "assert add(1, 2) == 3\nassert add(1, 2 == \nassert add(0, 0) == 0\nassert add(5, "
    assert parse_tests(reply, F) == ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]


def test_parse_takes_asserts_from_test_functions_and_drops_duplicates() -> None:
    reply = (
        "def test_add():\n    assert add(1, 2) == 3\n    assert add(1,2)==3\n"
        "assert (add(1, 2) == 3)\nassert add(1, 2) == 3, 'msg'\nassert add('a', 'b') == \"ab\""
    )
    # spacing and redundant parentheses are the same test; a message makes a different statement
    assert parse_tests(reply, F) == [
        "assert add(1, 2) == 3",
        "assert add(1, 2) == 3, 'msg'",
        "assert add('a', 'b') == 'ab'",
    ]


def test_parse_io_cases_as_json_lines() -> None:
    reply = '{"input": "1 2\\n", "output": "3\\n"}\nnot json\n{"input": "1 2\\n", "output": "3\\n"},\n{"input": 5}\n{"input": "0 0", "output": "0"}'
    assert parse_tests(reply, IO) == [IOCase("1 2\n", "3\n"), IOCase("0 0", "0")]


def test_prompts_show_no_hidden_test_and_no_reference() -> None:
    for p in list(humaneval.load().values())[:20]:
        task = spec("humaneval", p)
        for chat in (False, True):
            text = json.dumps(prompt(task, chat=chat))
            assert p.canonical_solution.strip() not in text
            assert "def check(" not in text and "candidate" not in text
    # The built-in suite's completion prompt is its test-writing training format.
    b = next(p for p in builtin.generate(seed=0, size=20).values() if p.kind == "function")
    [example] = builtin.test_writing_examples([b])
    sig = next(line for line in b.header.splitlines() if line.startswith("def "))
    assert prompt(spec("builtin", b), chat=False).startswith(b.header.split(sig)[0] + sig)
    assert example["prompt"].endswith("# Tests:\n") and prompt(spec("builtin", b), chat=False).endswith(
        "# Tests:\n"
    )
    assert b.tests[0] not in json.dumps(prompt(spec("builtin", b), chat=True))


def test_synthesize_pools_samples_dedupes_and_keeps_provenance() -> None:
    replies = {
        0: "assert add(1, 2) == 3\nassert add(2, 2) == 4",
        1: "assert add(1,  2) == 3\nassert add(0, 0) == 0",
    }
    gen = FunctionGenerator(
        lambda p, j: replies[j] if isinstance(p, str) and "add" in p else '{"input": "1 1", "output": "2"}'
    )
    rows = synthesize([F, IO], gen, SamplingParams(n=2), model="m", chat=False)
    assert rows == [
        {"task_id": "t/0", "test": "assert add(1, 2) == 3", "source": {"model": "m", "sample": 0}},
        {"task_id": "t/0", "test": "assert add(2, 2) == 4", "source": {"model": "m", "sample": 0}},
        {"task_id": "t/0", "test": "assert add(0, 0) == 0", "source": {"model": "m", "sample": 1}},
        {"task_id": "t/1", "test": {"input": "1 1", "output": "2"}, "source": {"model": "m", "sample": 0}},
    ]
    assert gen.prompts == [prompt(F, chat=False), prompt(IO, chat=False)]


# ---------------------------------------------------------------------------------------------
# The command line over HTTP: a scripted OpenAI-compatible server, then `execrl serve`.


class _Scripted:
    """Loopback completions API: every request gets `text` for each of its `n` choices."""

    def __init__(self, text: Callable[[dict[str, Any]], str]) -> None:
        bodies: list[dict[str, Any]] = []
        self.bodies = bodies

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = json.dumps({"data": [{"id": "m"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                bodies.append(body)
                choices = [
                    {
                        "index": i,
                        "text": text(body),
                        "message": {"role": "assistant", "content": text(body)},
                        "finish_reason": "stop",
                    }
                    for i in range(body.get("n", 1))
                ]
                data = json.dumps({"id": "x", "choices": choices, "usage": {"completion_tokens": 3}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[_Scripted]:
    def answer(body: dict[str, Any]) -> str:
        text = json.dumps(body.get("prompt") or body.get("messages"))
        name = "has_close_elements" if "has_close_elements" in text else "separate_paren_groups"
        return f"```python\nassert {name}([]) == []\nassert {name}([])==[]\n```"

    s = _Scripted(answer)
    yield s
    s.close()


def test_cli_openai_backend(scripted: _Scripted, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.jsonl"
    code = main(
        [
            "tests",
            "synthesize",
            "--model",
            "m",
            "--benchmark",
            "humaneval",
            "--limit",
            "2",
            "--n",
            "2",
            "--chat",
        ]
        + ["--backend", "openai", "--api-base", scripted.url, "--out", str(out)]
    )
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["task_id"], r["test"]) for r in rows] == [
        ("HumanEval/0", "assert has_close_elements([]) == []"),
        ("HumanEval/1", "assert separate_paren_groups([]) == []"),
    ]
    assert rows[0]["source"] == {"model": "m", "sample": 0}
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["tests"] == 2
    assert all("messages" in b for b in scripted.bodies)


def test_cli_unreachable_api_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.jsonl"
    code = main(
        ["tests", "synthesize", "--model", "m", "--benchmark", "humaneval", "--limit", "1"]
        + ["--backend", "openai", "--api-base", "http://127.0.0.1:9/v1", "--out", str(out)]
    )
    assert code == 2 and not out.exists()
    assert "cannot reach" in capsys.readouterr().err


def test_cli_against_execrl_serve_with_the_tiny_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real server path end to end; the tiny model writes no sensible tests, so this checks the
    plumbing: the run completes and every row it writes (if any) is one parseable assert."""
    from execrl.generation.hf import HFGenerator
    from execrl.generation.server import make_server
    from tinymodel import make_tiny_model

    srv = make_server(HFGenerator(make_tiny_model(tmp_path / "tiny")), "127.0.0.1", 0, model_name="tiny")
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        out = tmp_path / "t.jsonl"
        code = main(
            ["tests", "synthesize", "--model", "tiny", "--benchmark", "humaneval", "--limit", "2", "--n", "2"]
            + ["--max-new-tokens", "24", "--backend", "openai", "--api-base", srv.url, "--out", str(out)]
        )
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["tasks"] == 2 and summary["samples_per_task"] == 2
    for line in out.read_text().splitlines():
        assert json.loads(line)["test"].startswith("assert ")


def test_mbpp_plus_instruction_drops_the_shown_assert(tmp_path: Path) -> None:
    from execrl.data import mbpp_plus
    from jsonl_fixtures import write_jsonl
    from test_data_plus import MB_ROW

    p = mbpp_plus.load(write_jsonl(tmp_path / "mb.jsonl", [MB_ROW]))["Mbpp/2"]
    task = spec("mbpp_plus", p)
    assert "assert" not in task.instruction and "shared elements" in task.instruction
    assert task.instruction.endswith("def similar_elements(test_tup1, test_tup2):")
    assert "tuple(set(" not in json.dumps(prompt(task, chat=True))
