"""JSONL reading: line numbers, gzip, and one-line errors that name file, line and field."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from execrl.data.jsonl import DataError, read_jsonl, read_samples


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_line_numbers_are_one_based_and_skip_blank_lines(tmp_path: Path) -> None:
    p = write(tmp_path / "a.jsonl", '{"a": 1}\n\n   \n{"a": 2}\n')
    assert list(read_jsonl(p)) == [(1, {"a": 1}), (4, {"a": 2})]


def test_gzip_is_read_transparently(tmp_path: Path) -> None:
    p = write(tmp_path / "a.jsonl.gz", gzip.compress(b'{"a": 1}\n{"a": 2}\n'))
    assert [row["a"] for _, row in read_jsonl(p)] == [1, 2]


def test_last_line_without_newline_and_bom_are_read(tmp_path: Path) -> None:
    p = write(tmp_path / "a.jsonl", '\ufeff{"a": 1}\n{"a": 2}')
    assert [row["a"] for _, row in read_jsonl(p)] == [1, 2]


def test_malformed_json_names_file_line_and_column(tmp_path: Path) -> None:
    p = write(tmp_path / "samples.jsonl", '{"a": 1}\n\n{"task_id": "x" "completion": 1}\n')
    with pytest.raises(DataError) as e:
        list(read_jsonl(p))
    assert str(e.value) == f"{p}:3: malformed JSON (Expecting ',' delimiter: column 17)"


def test_integer_beyond_the_digit_limit_is_malformed_json(tmp_path: Path) -> None:
    # json.loads raises a plain ValueError (not JSONDecodeError) past 4300 digits: it was a traceback
    p = write(tmp_path / "big.jsonl", '{"a": 1}\n{"a": 1' + "0" * 5000 + "}\n")
    with pytest.raises(DataError, match=r"big\.jsonl:2: malformed JSON \(a number with too many digits\)$"):
        list(read_jsonl(p))


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    with pytest.raises(DataError, match=r"x\.jsonl: no such file$"):
        list(read_jsonl(p))


def test_non_utf8_line_is_named(tmp_path: Path) -> None:
    p = write(tmp_path / "a.jsonl", b'{"a": 1}\n{"a": "\xff"}\n')
    with pytest.raises(DataError, match=r"a\.jsonl:2: not valid UTF-8"):
        list(read_jsonl(p))


def test_row_that_is_not_an_object_is_rejected(tmp_path: Path) -> None:
    p = write(tmp_path / "a.jsonl", '{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"a\.jsonl:2: expected a JSON object, got an array"):
        list(read_jsonl(p))


def test_corrupt_gzip_is_a_data_error(tmp_path: Path) -> None:
    p = write(tmp_path / "a.jsonl.gz", b'{"a": 1}\n')
    with pytest.raises(DataError, match=r"a\.jsonl\.gz:1: corrupt gzip data"):
        list(read_jsonl(p))


def test_error_messages_are_one_line(tmp_path: Path) -> None:
    p = write(tmp_path / "a.jsonl", '{"a": \n')
    with pytest.raises(DataError) as e:
        list(read_jsonl(p))
    assert "\n" not in str(e.value)


def test_read_samples_converts_integer_task_ids(tmp_path: Path) -> None:
    rows = [{"task_id": 11, "completion": "x = 1"}, {"task_id": "HumanEval/0", "completion": "", "extra": 1}]
    p = write(tmp_path / "s.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    samples = read_samples(p)
    assert [(s.task_id, s.completion, s.line) for s in samples] == [
        ("11", "x = 1", 1),
        ("HumanEval/0", "", 2),
    ]


def test_read_samples_missing_completion(tmp_path: Path) -> None:
    p = write(tmp_path / "samples.jsonl", '{"task_id": "a", "completion": ""}\n' * 4 + '{"task_id": "a"}\n')
    with pytest.raises(DataError) as e:
        read_samples(p)
    assert str(e.value) == f'{p}:5: missing field "completion"'


def test_read_samples_wrong_type(tmp_path: Path) -> None:
    p = write(tmp_path / "s.jsonl", '{"task_id": true, "completion": "x"}\n')
    with pytest.raises(
        DataError, match=r's\.jsonl:1: field "task_id" must be a string or an integer, got a boolean'
    ):
        read_samples(p)
