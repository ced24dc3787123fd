"""`make demo` until the training issues land: HumanEval's canonical solutions and hostile
variants through the sandbox, with the verdict table.

Every task's canonical solution must pass; each hostile variant uses one trick that fools
common harnesses (an object whose `__eq__` is always True, `sys.exit(0)` before the tests, an
`int` subclass that equals anything, rebinding `AssertionError`, a fork bomb, deleting files,
an infinite loop with signals ignored) and must never pass.
"""

from __future__ import annotations

import json
import os

from execrl.data import humaneval
from execrl.eval.evaluate import Evaluation, evaluate

HOSTILE = {
    "always_equal": "    class E:\n        def __eq__(self, other): return True\n        def __ne__(self, other): return False\n    return E()\n",
    "exit_early": "    import sys\n    sys.exit(0)\n",
    "int_subclass": "    class I(int):\n        def __eq__(self, other): return True\n    return I(0)\n",
    "rebind_assert": "    import builtins\n    builtins.AssertionError = type('Nope', (Exception,), {})\n    return None\n",
    "fork_bomb": "    import os\n    while True:\n        os.fork()\n",
    "delete_files": "    import shutil, os\n    shutil.rmtree(os.path.expanduser('~'), ignore_errors=True)\n    return None\n",
    "spin_ignoring_signals": "    import signal\n    for s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT):\n        signal.signal(s, signal.SIG_IGN)\n    while True:\n        pass\n",
}


def write_samples(path: str, hostile_every: int = 8) -> int:
    """Canonical solutions for all tasks, plus one hostile variant for every `hostile_every`-th task."""
    rows = []
    tricks = list(HOSTILE.values())
    for i, p in enumerate(humaneval.load().values()):
        rows.append({"task_id": p.task_id, "completion": p.canonical_solution})
        if i % hostile_every == 0:
            rows.append({"task_id": p.task_id, "completion": tricks[(i // hostile_every) % len(tricks)]})
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return len(rows)


def run(out_dir: str = "runs/demo", workers: int | None = None) -> Evaluation:
    os.makedirs(out_dir, exist_ok=True)
    samples = os.path.join(out_dir, "samples.jsonl")
    write_samples(samples)
    ev = evaluate("humaneval", samples, workers=workers, progress=True)
    ev.write_jsonl(os.path.join(out_dir, "results.jsonl"))
    return ev
