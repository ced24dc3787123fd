"""--data by hub name: downloaded once through `datasets`, cached as JSONL, read by the normal loader."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from execrl.data import DataError, hub, mbpp


def test_local_paths_and_none_pass_through(tmp_path: Path) -> None:
    """A path that exists, a file name, and None are never sent to the hub."""
    f = tmp_path / "x.jsonl"
    f.write_text("")
    assert hub.resolve(str(f)) == str(f)
    assert hub.resolve("missing.jsonl") == "missing.jsonl"
    assert hub.resolve(None) is None


def test_hub_name_is_downloaded_once_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows `datasets` returns become a JSONL file that the benchmark loader reads."""
    calls: list[tuple[str, str]] = []
    rows = [{"task_id": 2, "text": "t", "code": "", "test_list": ["assert f() == 1"], "test_setup_code": ""}]

    def load_dataset(name: str, split: str) -> list[dict[str, object]]:
        calls.append((name, split))
        return rows

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = hub.resolve("org/mbpp:validation")
    assert path is not None and [json.loads(line) for line in Path(path).read_text().splitlines()] == rows
    assert list(mbpp.load(path)) == ["2"]
    assert hub.resolve("org/mbpp:validation") == path and calls == [("org/mbpp", "validation")]


def test_hub_failure_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A download error (no network, unknown name) is a one-line DataError naming the dataset."""

    def load_dataset(name: str, split: str) -> None:
        raise ConnectionError("Couldn't reach the hub\nlong details")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(DataError, match="org/nope: cannot load it from the dataset hub") as e:
        hub.resolve("org/nope")
    assert "\n" not in str(e.value)
