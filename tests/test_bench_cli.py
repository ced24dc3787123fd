"""`execrl bench`: generate → execute → samples/results/summary/report, resume, and bad input.

One tiny random model (tests/tinymodel.py) serves every test; the HumanEval run is made once per
module and shared by the tests that read its output directory.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import contextlib
import io
import json
import socket
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from execrl.cli import main
from execrl.data import humaneval
from execrl.eval import bench
from execrl.generation import Completion, Prompt, SamplingParams
from tinymodel import make_tiny_model

SMALL = [
    "--limit",
    "2",
    "--n",
    "2",
    "--max-new-tokens",
    "16",
    "--batch-size",
    "2",
    "--k",
    "1,2",
    "--workers",
    "1",
]
FILES = ("config.json", "samples.jsonl", "results.jsonl", "summary.json", "report.md", "report.png")


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def without_run(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary less this invocation's own counts and timings."""
    return {k: v for k, v in summary.items() if k != "run"}


def bench_args(model: str, out: Path, *extra: str) -> list[str]:
    return ["bench", "--model", model, "--benchmark", "humaneval", "--out", str(out), *SMALL, *extra]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def first_run(tiny: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One HumanEval bench run: (its --out, what it wrote on stderr)."""
    out = tmp_path_factory.mktemp("humaneval") / "out"
    err = io.StringIO()  # a module fixture cannot use capsys
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(bench_args(tiny, out)) == 0, err.getvalue()
    return out, err.getvalue()


def test_bench_writes_every_file(first_run: tuple[Path, str]) -> None:
    """samples/results/summary/report(.png), 2 tasks × 2 samples, and a progress bar on stderr."""
    out, err = first_run
    for name in FILES:
        assert (out / name).is_file(), name
    samples = rows(out / "samples.jsonl")
    ids = list(humaneval.load())[:2]
    assert [s["task_id"] for s in samples] == [ids[0], ids[0], ids[1], ids[1]]
    assert {"completion", "raw", "finish_reason", "num_tokens"} <= samples[0].keys()
    results = rows(out / "results.jsonl")
    assert [(r["task_id"], r["sample_index"]) for r in results] == [(i, j) for i in ids for j in range(2)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"] == 2 and summary["samples"] == 4 and summary["run"]["generated"] == 4
    assert set(summary["pass_at_k"]) == {"pass@1", "pass@2"}
    assert sum(summary["status"].values()) == 4
    assert summary["status"] == dict(Counter(r["status"] for r in results))
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "pass@1" in report and "report.png" in report
    assert "generate" in err and "sample" in err  # the generation progress bar


def test_evaluate_on_the_saved_samples_agrees(
    first_run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`execrl evaluate` on samples.jsonl gives summary.json's pass@k exactly."""
    out, _ = first_run
    summary = json.loads((out / "summary.json").read_text())
    args = ["evaluate", "--benchmark", "humaneval", "--samples", str(out / "samples.jsonl"), "--k", "1,2"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == summary["pass_at_k"]


def test_rerun_resumes_without_generating(
    tiny: str, first_run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The same command again: samples.jsonl untouched, nothing generated, the same summary."""
    out, _ = first_run
    before = json.loads((out / "summary.json").read_text())
    stat = (out / "samples.jsonl").stat()
    assert main(bench_args(tiny, out)) == 0
    assert (out / "samples.jsonl").stat().st_mtime_ns == stat.st_mtime_ns
    assert len(rows(out / "samples.jsonl")) == 4
    after = json.loads((out / "summary.json").read_text())
    assert after["run"]["generated"] == 0
    assert without_run(after) == without_run(before)
    assert "generate" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--temperature", "0.5"], "holds a run with temperature=0.8, this one asks for 0.5"),
        (["--n", "1"], "n may grow on resume but not shrink"),
        (["--chat"], "holds a run with chat=False"),
    ],
)
def test_resume_with_other_settings_is_refused(
    tiny: str,
    first_run: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    out, _ = first_run
    before = (out / "samples.jsonl").read_bytes()
    assert main(bench_args(tiny, out, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert (out / "samples.jsonl").read_bytes() == before


def test_interrupted_write_is_completed_with_the_same_samples(
    tiny: str, first_run: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A samples file cut mid-line (an interrupted run) resumes to the uninterrupted run's samples."""
    out, _ = first_run
    copy = tmp_path / "out"
    copy.mkdir()
    for name in ("config.json", "samples.jsonl"):
        (copy / name).write_bytes((out / name).read_bytes())
    full = (out / "samples.jsonl").read_text()
    lines = full.splitlines(keepends=True)
    (copy / "samples.jsonl").write_text("".join(lines[:3]) + lines[3][:20])  # task 2 half done
    assert main(bench_args(tiny, copy)) == 0
    assert "dropped an incomplete last line" in capsys.readouterr().err
    assert (copy / "samples.jsonl").read_text() == full
    assert json.loads((copy / "summary.json").read_text())["run"]["generated"] == 1


def test_more_tasks_and_samples_on_resume(
    tiny: str, first_run: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--limit and --n may grow on resume: only the new samples are generated, the old rows stay."""
    out, _ = first_run
    copy = tmp_path / "out"
    copy.mkdir()
    for name in ("config.json", "samples.jsonl"):
        (copy / name).write_bytes((out / name).read_bytes())
    old = rows(out / "samples.jsonl")
    assert main([*bench_args(tiny, copy), "--limit", "3", "--n", "3"]) == 0
    new = rows(copy / "samples.jsonl")
    assert new[:4] == old and len(new) == 9
    summary = json.loads((copy / "summary.json").read_text())
    assert summary["run"]["generated"] == 5 and summary["tasks"] == 3 and summary["n"] == 3


def test_http_backend_against_execrl_serve(
    tiny: str, first_run: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--backend openai against the server for the same model draws the same completions."""
    from execrl.generation.hf import HFGenerator
    from execrl.generation.server import make_server

    srv = make_server(HFGenerator(tiny), "127.0.0.1", 0, model_name="tiny")
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        out = tmp_path / "http"
        args = bench_args("tiny", out, "--backend", "openai", "--api-base", srv.url)
        assert main(args) == 0, capsys.readouterr().err
    finally:
        srv.shutdown()
        srv.server_close()
    local = [r["completion"] for r in rows(first_run[0] / "samples.jsonl")]
    assert [r["completion"] for r in rows(out / "samples.jsonl")] == local
    assert json.loads((out / "summary.json").read_text())["samples"] == 4


class Scripted:
    """A generator answering each APPS prompt with a fixed program."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.calls = 0

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        self.calls += 1
        out = []
        for p in prompts:
            assert isinstance(p, str)
            text = next(a for q, a in self.answers.items() if q in p)
            out.append([Completion(text)] * params.n)
        return out


def apps_file(path: Path, *, break_line: int | None = None) -> Path:
    io_sum = json.dumps({"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]})
    io_mul = json.dumps({"inputs": ["2 5\n"], "outputs": ["10\n"]})
    data = [
        {
            "problem_id": 1,
            "question": "Add two numbers.",
            "input_output": io_sum,
            "difficulty": "introductory",
        },
        {
            "problem_id": 2,
            "question": "Multiply two numbers.",
            "input_output": io_mul,
            "difficulty": "interview",
        },
        {
            "problem_id": 3,
            "question": "Add them again.",
            "input_output": io_sum,
            "difficulty": "introductory",
        },
    ]
    if break_line is not None:
        del data[break_line - 1]["question"]
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return path


def test_apps_breakdown_by_difficulty(tmp_path: Path) -> None:
    """summary["by"]["difficulty"] holds pass@k per difficulty; statuses are counted."""
    good = "a, b = map(int, input().split())\nprint(a + b)\n"
    generator = Scripted({"Add two": good, "Multiply": good, "Add them": "print(("})
    cfg = bench.BenchConfig(
        model="scripted", benchmark="apps", data=str(apps_file(tmp_path / "apps.jsonl")),
        out=str(tmp_path / "out"), n=2, k=[1], workers=1,
    )  # fmt: skip
    summary = bench.run(cfg, generator=generator, progress=False)
    assert summary["by"]["difficulty"] == {"interview": {"pass@1": 0.0}, "introductory": {"pass@1": 0.5}}
    assert summary["tasks_by"]["difficulty"] == {"interview": 1, "introductory": 2}
    assert summary["status"] == {"passed": 2, "failed": 2, "syntax_error": 2}
    assert summary["pass_at_k"] == {"pass@1": pytest.approx(1 / 3)}
    assert "| introductory | 2 | 0.5000 |" in (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "out" / "report.png").is_file()
    assert bench.run(cfg, generator=generator, progress=False)["run"]["generated"] == 0
    assert generator.calls == 1


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "case", ["unknown benchmark", "not a model", "bad data file", "unreachable API", "n is 0"]
)
def test_bad_input_is_one_line_and_exit_2(
    tiny: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    """Each bad input: exit code 2, one line on stderr naming the problem, no output directory."""
    out = tmp_path / "out"
    model, benchmark, extra = tiny, "humaneval", ["--n", "1", "--limit", "1", "--max-new-tokens", "4"]
    if case == "unknown benchmark":
        benchmark, message = "nope", "unknown benchmark 'nope'; valid names:"
    elif case == "not a model":
        (tmp_path / "notamodel").mkdir()
        (tmp_path / "notamodel" / "README").write_text("hello")
        model, message = str(tmp_path / "notamodel"), "is not a Hugging Face model directory: no config.json"
    elif case == "bad data file":
        benchmark = "apps"
        extra += ["--data", str(apps_file(tmp_path / "apps.jsonl", break_line=2))]
        message = 'apps.jsonl:2: missing field "question"'
    elif case == "unreachable API":
        url = f"http://127.0.0.1:{closed_port()}/v1"
        model, extra = "tiny", [*extra, "--backend", "openai", "--api-base", url]
        message = f"cannot reach the API at {url}"
    else:
        extra, message = ["--n", "0"], "--n must be at least 1, got 0"
    args = ["bench", "--model", model, "--benchmark", benchmark, "--out", str(out), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_serve_is_delegated_and_listed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`execrl serve` runs the server's own parser; `execrl --help` lists it."""
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "serve" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0 and "--dtype" in capsys.readouterr().out
    assert main(["serve", "--model", str(tmp_path / "missing"), "--port", "0"]) == 2
    assert "execrl serve:" in capsys.readouterr().err
