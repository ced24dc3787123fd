"""Which tasks an RL run trains and evaluates on, and which prompts each step draws.

Checked before `out` is touched: a split with no task, a task without tests (it cannot give a
reward) or a prompt too long for the model's context is a `DataError` naming it. A step's prompts
are a pure function of (seed, step): consecutive slices of one shuffle per pass over the tasks, so
a resumed run draws what the uninterrupted run would have.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from execrl.data import DataError
from execrl.types import Limits


def tasks(bench: Any, problems: dict[str, Any], split: str | None, what: str) -> list[str]:
    ids = [t for t, p in problems.items() if split is None or bench.metadata(p).get("split") == split]
    if not ids:
        raise DataError(f"config: field {what!r}: no {bench.NAME} task has split {split!r}")
    return ids


def _has_tests(job: Any) -> bool:
    t = job.tests
    return bool(getattr(t, "tests", None) or getattr(t, "cases", None) or getattr(t, "check", None))


def check_tasks(bench: Any, problems: dict[str, Any], ids: list[str], limits: Limits) -> None:
    for task_id in ids:
        if not _has_tests(bench.make_job(problems[task_id], "", limits)):
            raise DataError(f"{bench.NAME} task {task_id!r} has no tests: it cannot give a reward")


def check_lengths(tokenizer: Any, lm: Any, prompts: dict[str, list[int]], max_new: int) -> None:
    limit = getattr(lm.config, "max_position_embeddings", None)
    if limit is None:
        return
    for task_id, ids in prompts.items():
        if len(ids) + max_new > limit:
            raise DataError(
                f"task {task_id!r}: prompt of {len(ids)} tokens + max_new_tokens {max_new} exceeds "
                f"the model's context of {limit} tokens"
            )


def seed_of(*parts: object) -> int:
    """A generator seed from parts, the same in every process and run (unlike `hash`)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**62 - 1)


def _order(n: int, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(f"{seed}:prompts:{epoch}").shuffle(order)
    return order


def step_prompts(n_tasks: int, per_step: int, seed: int, step: int) -> list[int]:
    """Task indices of a step: consecutive slices of per-pass shuffles (a pure function of step)."""
    orders: dict[int, list[int]] = {}  # a step spans at most a few passes: shuffle each once
    out = []
    for pos in range(step * per_step, (step + 1) * per_step):
        epoch, i = divmod(pos, n_tasks)
        if epoch not in orders:
            orders[epoch] = _order(n_tasks, seed, epoch)
        out.append(orders[epoch][i])
    return out
