"""verl's reward-function contract on execrl's sandbox (docs/integrations.md).

verl calls a custom reward function per sample as `compute_score(data_source, solution_str,
ground_truth, extra_info)` (`NaiveRewardManager`), or once per batch with the same fields as lists
(`BatchRewardManager`: `compute_score(data_sources=, solution_strs=, ground_truths=, extra_infos=)`).
Point `custom_reward_function.path` at this file (or a file that imports from it) and
`custom_reward_function.name` at `compute_score` or `compute_score_batch`.

`ground_truth` (see `execrl.rewards.labeled`): JSON tests (`{"inputs", "outputs", "fn_name"?}` or
`{"asserts", "setup"?}`), or a task id of a benchmark execrl knows, the benchmark named by
`extra_info["benchmark"]` or else by `data_source` when that is a benchmark name (`humaneval`,
`mbpp`, `builtin`, ...). Scores: `binary` (1.0 when every test passed) by default, `pass_ratio`
with `kind="pass_ratio"` (verl's `custom_reward_function.reward_kwargs`).

Sandbox errors. verl's contract is a float per sample, and there is no float that means "no
reward": 0.0 would train the policy away from code that may be right (the mistake this project was
built to avoid), and NaN would poison its group's advantages. The executor already retries a job
once after a sandbox error; if it fails again, `compute_score` raises `SandboxError` (the step
fails loudly, as an unreachable reward model would) unless the caller chose a value with
`on_sandbox_error=<float>` in `reward_kwargs`, in which case that value is returned and the sample is
counted (`details=True` returns `sandbox_error: 1.0` beside the score).

`details=True` returns verl's dict form, `{"score", "pass_ratio", "tests_passed", "tests_total",
"sandbox_error"}` (same keys for every sample), which verl logs as `reward_extra_info`.

The sandbox (a `LocalExecutor`) is created on first use in each process and reused; programs of one
batch call run in parallel on its workers (`EXECRL_WORKERS`, default the CPU count).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from typing import Any

from execrl.data import BENCHMARKS
from execrl.rewards.execution import Scored
from execrl.rewards.labeled import LabeledReward
from execrl.types import Limits

__all__ = ["SandboxError", "compute_score", "compute_score_batch"]


class SandboxError(RuntimeError):
    """The sandbox failed on a sample twice (never the program's fault): there is no reward to give."""


_rewards: dict[tuple[str, float], LabeledReward] = {}


def _reward(kind: str, timeout: float) -> LabeledReward:
    key = (kind, timeout)
    if key not in _rewards:
        workers = int(os.environ.get("EXECRL_WORKERS", "0")) or None
        _rewards[key] = LabeledReward(kind=kind, limits=Limits(timeout=timeout), workers=workers)
    return _rewards[key]


@atexit.register
def close() -> None:
    """Stop the sandbox workers (also run at exit)."""
    for reward in _rewards.values():
        reward.close()
    _rewards.clear()


def _benchmark(data_source: Any, extra_info: Any) -> str | None:
    if isinstance(extra_info, dict) and isinstance(extra_info.get("benchmark"), str):
        return str(extra_info["benchmark"])
    if isinstance(data_source, str) and data_source.strip().lower() in BENCHMARKS:
        return data_source
    return None


def _value(s: Scored, on_sandbox_error: float | None, details: bool) -> float | dict[str, float]:
    error = s.reward is None
    if error and on_sandbox_error is None:
        raise SandboxError(f"the sandbox failed on this sample twice: {s.result.detail or 'no detail'}")
    score = float(on_sandbox_error if error else s.reward)  # type: ignore[arg-type]
    if not details:
        return score
    return {
        "score": score,
        "pass_ratio": s.result.pass_ratio,
        "tests_passed": float(s.result.tests_passed),
        "tests_total": float(s.result.tests_total),
        "sandbox_error": float(error),
    }


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Any] | None = None,
    *,
    kind: str = "binary",
    timeout: float = 3.0,
    on_sandbox_error: float | None = None,
    details: bool = False,
    **_: Any,
) -> list[Any]:
    """Scores for a batch (verl's `BatchRewardManager`); all programs run as one sandbox batch."""
    infos = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    names = [_benchmark(d, e) for d, e in zip(data_sources, infos)]
    scored = _reward(kind, timeout).score(list(solution_strs), list(ground_truths), names)
    return [_value(s, on_sandbox_error, details) for s in scored]


def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Any = None,
    **kwargs: Any,
) -> Any:
    """The score of one sample (verl's `NaiveRewardManager`): a float, or a dict with `details=True`."""
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info], **kwargs)[0]
