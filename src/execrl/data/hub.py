"""Benchmark data by hub name: `--data openai_humaneval` or `--data codeparrot/apps:test`.

A `--data` value that is not a local file but looks like a dataset id is downloaded once with the
`datasets` library (optional extra: `pip install 'execrl[hub]'`) and written as JSONL under
`~/.cache/execrl/datasets/`, which the benchmark's own loader then reads: one loader per format,
whatever the source. Offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set, or no network) this is a
one-line DataError, never a hang or a traceback. `name:split` picks a split (default: test).
"""

from __future__ import annotations

import json
import os
import re

from execrl.data.jsonl import DataError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?(:[\w.-]+)?$")


def cache_dir() -> str:
    return os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "execrl", "datasets"
    )


def resolve(data: str | None) -> str | None:
    """`data` itself when it is None or a local path; else the path of a JSONL copy of the dataset."""
    if (
        data is None
        or os.path.exists(data)
        or not _HUB_ID.match(data)
        or data.endswith((".jsonl", ".json", ".gz"))
    ):
        return data
    name, _, split = data.partition(":")
    split = split or "test"
    path = os.path.join(cache_dir(), f"{name.replace('/', '__')}-{split}.jsonl")
    if os.path.exists(path):
        return path
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise DataError(f"{data}: no such file, and the dataset hub is offline (HF_HUB_OFFLINE is set)")
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"{data}: no such file; to download it from the hub, pip install 'execrl[hub]'"
        ) from None
    try:
        rows = datasets.load_dataset(name, split=split)
    except Exception as e:  # network errors, unknown names and splits all surface here
        raise DataError(
            f"{data}: cannot load it from the dataset hub ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from None
    os.makedirs(cache_dir(), exist_ok=True)
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)
    return path
