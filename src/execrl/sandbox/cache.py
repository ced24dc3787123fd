"""A content-addressed cache of execution results.

Key: `Job.key()`, a hash of (harness version, program, tests, limits). Value: the result, minus
nothing — a cached result is the same verdict, flagged `cached=True`. Sandbox errors are never
cached (they say nothing about the program). In memory by default, bounded (least recently used
evicted first); with `path`, also persisted in a SQLite file so reruns and other processes reuse it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import replace

from execrl.types import ExecutionResult, Status


class ResultCache:
    def __init__(self, path: str | None = None, max_items: int = 200_000) -> None:
        self.max_items = max_items
        self._mem: OrderedDict[str, ExecutionResult] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.hits = self.misses = 0

    def get(self, key: str) -> ExecutionResult | None:
        with self._lock:
            result = self._mem.get(key)
            if result is not None:
                self._mem.move_to_end(key)
            elif self._db is not None:
                row = self._db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    result = ExecutionResult.from_dict(json.loads(row[0]))
                    self._remember(key, result)
            if result is None:
                self.misses += 1
                return None
            self.hits += 1
            return replace(result, cached=True)

    def put(self, key: str, result: ExecutionResult) -> None:
        if result.status is Status.SANDBOX_ERROR:
            return
        result = replace(result, cached=False)
        with self._lock:
            self._remember(key, result)
            if self._db is not None:
                d = result.to_dict()
                d["isolation"] = None
                self._db.execute("INSERT OR REPLACE INTO results VALUES (?, ?)", (key, json.dumps(d)))

    def _remember(self, key: str, result: ExecutionResult) -> None:
        self._mem[key] = result
        self._mem.move_to_end(key)
        while len(self._mem) > self.max_items:
            self._mem.popitem(last=False)

    def __len__(self) -> int:
        return len(self._mem)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
