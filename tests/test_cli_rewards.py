"""`execrl rewards`: one row per sample in order, the summary table, bad input, one execution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from execrl.cli import main
from execrl.data import humaneval
from execrl.types import ExecutionResult, Status

os.environ["HF_HUB_OFFLINE"] = "1"
HE = humaneval.load()
T2 = "HumanEval/2"  # truncate_number: 3 tests

# completion, status, binary, pass_ratio, coarse, adaptive, penalty (scope, line, text of the line)
SAMPLES: list[tuple[str, str, float, float, float, float, tuple[str, int | None, str | None]]] = [
    (HE[T2].canonical_solution, "passed", 1.0, 1.0, 1.0, 1.0, ("none", None, None)),
    ("    return 0.5\n", "failed", 0.0, 1 / 3, -0.3, -0.3 + 1.3 / 3, ("none", None, None)),
    ("    return int(number\n", "syntax_error", 0.0, 0.0, -1.0, -1.0, ("global", None, None)),
    ("    x = [1]\n    return x[5]\n", "runtime_error", 0.0, 0.0, -0.6, -0.6, ("line", 2, "    return x[5]")),
    ("    for i in range(3)\n        pass\n    return 0.5\n", "syntax_error", 0.0, 0.0, -1.0, -1.0, ("line", 1, "    for i in range(3)")),
    ("    import sys\n    sys.exit(0)\n", "no_result", 0.0, 0.0, -0.6, -0.6, ("none", None, None)),
    ("    return number % 1.0\n\t  x = 1\n", "syntax_error", 0.0, 0.0, -1.0, -1.0, ("none", None, None)),
]  # fmt: skip
KIND_COLUMN = {"binary": 2, "pass_ratio": 3, "coarse": 4, "adaptive": 5, "rltf": 5}


def write_samples(path: Path) -> Path:
    rows = [{"task_id": T2, "completion": c} for c, *_ in SAMPLES]
    rows.insert(3, {"task_id": "HumanEval/0", "completion": HE["HumanEval/0"].canonical_solution})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    samples = write_samples(tmp_path / "s.jsonl")
    out = tmp_path / "r.jsonl"
    args = [
        "rewards",
        "--benchmark",
        "humaneval",
        "--samples",
        str(samples),
        "--reward",
        kind,
        "--out",
        str(out),
    ]
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return rows, capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("kind", list(KIND_COLUMN))
def test_each_kind_gives_the_documented_reward(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    rows, out = run(tmp_path, kind, capsys)
    extra = rows.pop(3)
    assert extra == {"task_id": "HumanEval/0", "sample_index": 0, "status": "passed", "reward": 1.0} | (
        {"penalty": {"scope": "none", "line": None, "start": None, "end": None, "value": 0.0}}
        if kind == "rltf"
        else {}
    )
    assert [r["sample_index"] for r in rows] == list(range(len(SAMPLES)))
    assert [r["status"] for r in rows] == [s[1] for s in SAMPLES]
    assert [r["reward"] for r in rows] == pytest.approx([s[KIND_COLUMN[kind]] for s in SAMPLES])
    assert all(("penalty" in r) == (kind == "rltf") for r in rows)
    summary = json.loads(out[-1])
    assert summary["reward"] == kind and summary["samples"] == len(SAMPLES) + 1 and summary["null"] == 0


def test_rltf_penalty_locates_the_line_in_the_completion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows, out = run(tmp_path, "rltf", capsys)
    del rows[3]
    for (completion, *_, (scope, line, text)), row in zip(SAMPLES, rows):
        p = row["penalty"]
        assert (p["scope"], p["line"]) == (scope, line), (completion, p)
        assert p["value"] == (0.0 if scope == "none" else 0.3)
        if text is not None:
            assert completion[p["start"] : p["end"]] == text
        else:
            assert p["start"] is None and p["end"] is None
    summary = json.loads(out[-1])
    assert summary["scopes"] == {"global": 1, "line": 2, "none": 5}
    assert summary["statuses"] == {
        "passed": 2,
        "syntax_error": 3,
        "failed": 1,
        "runtime_error": 1,
        "no_result": 1,
    }
    table = "\n".join(out)
    assert "whitespace 1" in table and "unexpected end 1" in table


class HalfBroken:
    """The real executor, counting its runs, with every odd-numbered result a sandbox_error."""

    runs: list[int] = []

    def __init__(self, **kwargs: Any) -> None:
        from execrl import LocalExecutor

        self.inner = LocalExecutor(workers=1, cache=False)

    @property
    def isolation(self) -> Any:
        return self.inner.isolation

    def run(self, jobs: list[Any], progress: Any = None) -> list[ExecutionResult]:
        HalfBroken.runs.append(len(jobs))
        results = self.inner.run(jobs)
        return [ExecutionResult.sandbox_error("stub") if i % 2 else r for i, r in enumerate(results)]

    def close(self) -> None:
        self.inner.close()


def test_sandbox_errors_get_null_and_samples_run_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("execrl.eval.evaluate.LocalExecutor", HalfBroken)
    HalfBroken.runs = []
    rows, out = run(tmp_path, "rltf", capsys)
    assert HalfBroken.runs == [len(SAMPLES) + 1]  # one execution of each sample, by evaluate
    for i, row in enumerate(rows):
        assert (row["status"] == Status.SANDBOX_ERROR.value) == bool(i % 2)
        if i % 2:
            assert row["reward"] is None and row["penalty"] is None
    assert json.loads(out[-1])["null"] == len(rows) // 2


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ('{"task_id": "HumanEval/0", "completion": ""}\n', ["--reward", "rlhf"], "--reward must be one of binary, pass_ratio, coarse, adaptive, rltf"),
        ('{"task_id": "HumanEval/999", "completion": ""}\n', ["--reward", "rltf"], "s.jsonl:1: task_id 'HumanEval/999' is not in the humaneval data"),
        ('{"task_id": "HumanEval/0", "completion": ""}\n{"task_id": 1,\n', ["--reward", "rltf"], "s.jsonl:2: malformed JSON"),
        (None, ["--reward", "rltf"], "no such file"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str | None, extra: list[str], message: str
) -> None:
    samples = tmp_path / "s.jsonl"
    if rows is not None:
        samples.write_text(rows)
    out = tmp_path / "out.jsonl"
    assert (
        main(["rewards", "--benchmark", "humaneval", "--samples", str(samples), "--out", str(out), *extra])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_out_directory_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples = write_samples(tmp_path / "s.jsonl")
    args = ["rewards", "--benchmark", "humaneval", "--samples", str(samples), "--reward", "coarse"]
    assert main([*args, "--out", str(tmp_path / "no" / "r.jsonl")]) == 2
    assert "output directory does not exist" in capsys.readouterr().err


def test_rewards_never_imports_torch(tmp_path: Path) -> None:
    samples = write_samples(tmp_path / "s.jsonl")
    code = (
        "import sys, execrl.cli\n"
        f"rc = execrl.cli.main(['rewards', '--benchmark', 'humaneval', '--samples', {str(samples)!r}, '--reward', 'rltf'])\n"
        "assert rc == 0, rc\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_table_bins_many_distinct_rewards_and_counts_nulls() -> None:
    """20 samples passing 0..19 of 20 tests, the first lost to a sandbox error: pass ratios
    0.05..0.95 in five bins of width 0.18, highest first, and one null."""
    from execrl.data.jsonl import Sample
    from execrl.eval.evaluate import Evaluation
    from execrl.eval.rewards import reward_report
    from execrl.types import AssertTests, Job

    n = 20
    samples = [Sample(task_id=f"t{i}", completion="x = 1\n", line=i + 1) for i in range(n)]
    results = [ExecutionResult.sandbox_error("lost")] + [
        ExecutionResult(Status.FAILED, i, n) for i in range(1, n)
    ]
    jobs = [Job("x = 1\n", AssertTests()) for _ in range(n)]
    report = reward_report(Evaluation("demo", samples, [0] * n, results, 1.0, jobs=jobs), "pass_ratio")
    table = report.table().splitlines()
    bins = [line.split() for line in table if ".." in line]
    assert [(b[0], b[2], int(b[3])) for b in bins] == [
        ("+0.77", "+0.95", 4),
        ("+0.59", "+0.77", 4),
        ("+0.41", "+0.59", 3),
        ("+0.23", "+0.41", 4),
        ("+0.05", "+0.23", 4),
    ]
    assert any(line.split()[:2] == ["null", "1"] for line in table)
    assert report.summary() | {"statuses": None} == {
        "reward": "pass_ratio",
        "samples": 20,
        "mean": 0.5,
        "min": 0.05,
        "max": 0.95,
        "null": 1,
        "statuses": None,
    }
