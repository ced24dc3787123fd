"""`execrl filtration analyze`: the table, the plot, the JSON last line, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from execrl.cli import main

os.environ["HF_HUB_OFFLINE"] = "1"

# The br example of test_filtration.py (R² 64/91 with 3 bins, derived there); prompt 7 is an int.
ROWS = [
    {"prompt_id": "p", "reward": 0.5, "score": 0.4},
    {"prompt_id": "q", "reward": 0.2, "score": 0.0},
    {"prompt_id": "p", "reward": 0.9, "score": 1.0},
    {"prompt_id": 7, "reward": 0.5, "score": 1.0},
    {"prompt_id": "q", "reward": 0.2, "score": 1.0},
    {"prompt_id": "p", "reward": 0.1, "score": 0},
]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def scores_file(tmp_path: Path) -> Path:
    return write(tmp_path / "scores.jsonl", [json.dumps(r) for r in ROWS])


def test_table_and_json_last_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["filtration", "analyze", "--scores", str(scores_file(tmp_path)), "--bins", "3",
               "--strategies", "none,br,bw,top", "--threshold", "0.5"])  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    result = json.loads(out[-1])
    assert list(result) == ["none", "br", "bw", "top"]
    assert result["br"] == pytest.approx(64 / 91, abs=1e-12)
    assert out[0].split()[:5] == ["strategy", "R²", "slope", "kept", "points"]
    br_row = next(line for line in out if line.startswith("br "))
    assert "1.000 (6/6)" in br_row and br_row.split()[5] == "3"
    # top >= 0.5 keeps p's 0.5 and 0.9 and prompt 7: 3 of 6
    assert "0.500 (3/6)" in next(line for line in out if line.startswith("top "))


def test_undefined_r2_is_null(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path / "s.jsonl", [json.dumps({"prompt_id": 1, "reward": r, "score": 1}) for r in (0, 1)]
    )
    assert main(["filtration", "analyze", "--scores", str(path), "--strategies", "none,bon"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert json.loads(out[-1]) == {"none": None, "bon": None}  # constant score; one point
    assert "undefined" in out[1] and "undefined" in out[2]


def test_plot_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "r2.png"
    assert main(["filtration", "analyze", "--scores", str(scores_file(tmp_path)), "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r2.png", "scores.jsonl"]  # no temporary left


@pytest.mark.parametrize(
    ("lines", "line_no", "message"),
    [
        (['{"prompt_id": 1, "score": 0}'], 1, 'missing field "reward"'),
        (['{"prompt_id": 1, "reward": 0.5, "score": 1}', '{"reward": 1, "score": 0}'], 2, '"prompt_id"'),
        (['{"prompt_id": 1, "reward": "high", "score": 0}'], 1, "must be an integer or a number"),
        (['{"prompt_id": 1, "reward": true, "score": 0}'], 1, "got a boolean"),
        (['{"prompt_id": 1, "reward": 0, "score": NaN}'], 1, '"score" must be a finite number'),
        (['{"prompt_id": 1, "reward": -Infinity, "score": 0}'], 1, '"reward" must be a finite number'),
        (['{"prompt_id": 1, "reward": 1e999, "score": 0}'], 1, "finite"),
        (['{"prompt_id": 1, "reward": 1' + "0" * 400 + ', "score": 0}'], 1, "integer too large"),
        (['{"prompt_id": 1, "reward": 1' + "0" * 5000 + ', "score": 0}'], 1, "too many digits"),
        (['{"prompt_id": 1.5, "reward": 1, "score": 0}'], 1, '"prompt_id" must be a string or an integer'),
        (
            ['{"prompt_id": 1, "reward": 1, "score": 0}', "", '{"prompt_id": 1, "reward": '],
            3,
            "malformed JSON",
        ),
        (["[1, 2]"], 1, "expected a JSON object"),
    ],
)
def test_bad_rows_exit_2_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str], line_no: int, message: str
) -> None:
    path = write(tmp_path / "bad.jsonl", lines)
    plot = tmp_path / "r2.png"
    assert main(["filtration", "analyze", "--scores", str(path), "--plot", str(plot)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1
    assert f"{path}:{line_no}:" in err and message in err
    assert not plot.exists()


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "empty.jsonl", ["", "  "])
    assert main(["filtration", "analyze", "--scores", str(path)]) == 2
    assert f"{path}: no rows" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategies", "none,best"], "unknown strategy 'best'"),
        (["--strategies", "top"], "needs --threshold"),
        (["--strategies", "top-bottom", "--threshold", "1"], "needs --low-threshold"),
        (["--strategies", "top-bottom", "--threshold", "1", "--low-threshold", "1"], "must be below"),
        (["--strategies", "pow-k"], "needs --pow-k"),
        (["--strategies", "top", "--threshold", "nan"], "--threshold must be a finite number"),
        (["--plot", "r2.txt"], "a plot must end in"),
        (["--plot", "no/such/dir/r2.png"], "directory does not exist"),
    ],
)
def test_bad_options_exit_2_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    missing = tmp_path / "not-there.jsonl"  # options are checked first: the file is never opened
    assert main(["filtration", "analyze", "--scores", str(missing), *extra]) == 2
    assert message in capsys.readouterr().err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filtration", "analyze", "--scores", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_command_line_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "execrl.cli", "filtration", "analyze", "--scores", str(scores_file(tmp_path)),
         "--bins", "3", "--strategies", "br"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["br"] == pytest.approx(64 / 91, abs=1e-12)
