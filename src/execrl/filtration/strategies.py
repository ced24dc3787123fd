"""Policy filtration strategies (PF-PPO, Shen & Zhang 2024, arXiv 2409.06957) as pure functions.

A strategy takes one prompt's rewards — a list of floats in file (or sampling) order — and returns
one weight per sample, in the same order. PPO then trains on the samples of weight > 0, each
weighted by its weight; `execrl filtration analyze` measures, with R² (`r2.py`), how reliable the
reward is on the samples a strategy keeps.

Ranking: samples are ranked by reward, highest first; equal rewards keep file order (the ranking is
a stable sort), so of two tied samples the earlier one has the better rank. The paper's weights are
over ranks (best first), for N samples:

| strategy | weights over ranks | N = 1 | N = 2 |
|---|---|---|---|
| `none` | 1/N each | (1) | (1/2, 1/2) |
| `bon` (best-of-N) | (1, 0, …, 0) | (1) | (1, 0) |
| `br` (best-random) | (1/2, 1/(2(N−1)), …, 1/(2(N−1))) | (1) | (1/2, 1/2) |
| `bw` (best-worst) | (1/2, 0, …, 0, 1/2) | (1) | (1/2, 1/2) |

BR's weights are the expectation of "the best sample, plus one of the others drawn uniformly";
with N = 1 there is no other, and the single sample gets everything (no division by N − 1 = 0).
Ties are ranked, not shared: with all rewards tied, `bon` keeps the first sample of the file and
`bw` the first and the last.

The threshold variants are ours to define (the paper names them without a formula). They take the
place of BR/BW's "best" and "other" halves by reward thresholds; the top side keeps 1/2 of the
prompt's weight and the other side 1/2, each split equally among its samples; when one side is
empty the other takes all of it, and when both are empty the prompt keeps nothing (all weights 0):

- `top(threshold)`: the top side is every sample with reward >= `threshold`; there is no other side,
  so the top samples share 1 equally (nothing at or above the threshold: all 0).
- `top-random(threshold, rng)`: top side as above; the other side is one sample drawn uniformly
  (with `rng`) from those with reward < `threshold`.
- `top-bottom(threshold, low_threshold)`: top side as above; the other side is every sample with
  reward <= `low_threshold`, which must be < `threshold` so the sides are disjoint.

`pow-k(k)`: weights proportional to |reward|^k (k >= 0), normalised to sum to 1; when every
|reward|^k is 0 (all rewards 0, k > 0) no sample is preferred and each gets 1/N. Computed as
(|r|/max|r|)^k so that a large k cannot overflow.

Weights are exact `Fraction`s summing to exactly 1 (or all 0): R²'s bins (`r2.py`) compare
cumulative weights with bin edges, and with floats 1/3 + 1/3 + 1/3 need not be 1, so a sample that
lies exactly on an edge could fall on either side. `float(w)` gives a tensor's value. (pow-k's
powers are computed in floating point, then normalised exactly.)

Batch-level resampling (`batch_resample`): verl's `use_pf_ppo` (`compute_pf_ppo_reweight_data`)
does not filter per prompt. It pools the whole batch, gives each sample a weight — `pow`:
|r|^power; `max_min`: 1 if the reward equals the batch's maximum or minimum, else 0;
`max_random`: 0.4 at the batch's maximum, 0.1 elsewhere — adds 1e-8 (so every sample can be
drawn), and draws B samples with replacement. We reproduce that as a documented variant, not as
the paper's per-prompt rule: it returns how many times each sample was drawn.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from fractions import Fraction

__all__ = [
    "BATCH_METHODS",
    "STRATEGIES",
    "batch_resample",
    "batch_weights",
    "bon",
    "br",
    "bw",
    "none",
    "pow_k",
    "ranks",
    "top",
    "top_bottom",
    "top_random",
    "weights",
]

STRATEGIES = ("none", "bon", "br", "bw", "top", "top-random", "top-bottom", "pow-k")
BATCH_METHODS = ("pow", "max_min", "max_random")

Weights = list[Fraction]


def _check(rewards: Sequence[float]) -> None:
    for i, r in enumerate(rewards):
        if not math.isfinite(r):
            raise ValueError(f"reward {i} is {r!r}: rewards must be finite numbers")


def ranks(rewards: Sequence[float]) -> list[int]:
    """Sample indices ordered best first: by reward, highest first; ties in file order."""
    _check(rewards)
    return sorted(range(len(rewards)), key=lambda i: -rewards[i])  # sorted is stable


def _over_ranks(rewards: Sequence[float], by_rank: Sequence[Fraction]) -> Weights:
    """Weights given best first → weights in the input's order."""
    out = [Fraction(0)] * len(rewards)
    for rank, i in enumerate(ranks(rewards)):
        out[i] = by_rank[rank]
    return out


def none(rewards: Sequence[float]) -> Weights:
    """Every sample 1/N (no filtration)."""
    _check(rewards)
    if not rewards:
        return []
    return [Fraction(1, len(rewards))] * len(rewards)


def bon(rewards: Sequence[float]) -> Weights:
    """Best-of-N: (1, 0, …, 0) over ranks."""
    n = len(rewards)
    return _over_ranks(rewards, [Fraction(1)] + [Fraction(0)] * (n - 1)) if n else []


def br(rewards: Sequence[float]) -> Weights:
    """Best-random: (1/2, 1/(2(N−1)), …) over ranks; N = 1: (1)."""
    n = len(rewards)
    if n <= 1:
        return _over_ranks(rewards, [Fraction(1)] * n)
    return _over_ranks(rewards, [Fraction(1, 2)] + [Fraction(1, 2 * (n - 1))] * (n - 1))


def bw(rewards: Sequence[float]) -> Weights:
    """Best-worst: (1/2, 0, …, 0, 1/2) over ranks; N = 1: (1); N = 2: (1/2, 1/2)."""
    n = len(rewards)
    if n <= 1:
        return _over_ranks(rewards, [Fraction(1)] * n)
    return _over_ranks(rewards, [Fraction(1, 2)] + [Fraction(0)] * (n - 2) + [Fraction(1, 2)])


def _two_sides(n: int, top_side: Sequence[int], other_side: Sequence[int]) -> Weights:
    """1/2 to each non-empty side (all of it to a side alone), split equally within a side."""
    out = [Fraction(0)] * n
    sides = [s for s in (top_side, other_side) if s]
    for side in sides:
        for i in side:
            out[i] = Fraction(1, len(sides) * len(side))
    return out


def top(rewards: Sequence[float], threshold: float) -> Weights:
    """The samples with reward >= `threshold` share 1 equally; all 0 if there is none."""
    _check(rewards)
    return _two_sides(len(rewards), [i for i, r in enumerate(rewards) if r >= threshold], [])


def top_random(rewards: Sequence[float], threshold: float, rng: random.Random) -> Weights:
    """1/2 shared by the samples with reward >= `threshold`, 1/2 to one drawn uniformly (with
    `rng`) from the rest; a side that is empty leaves all to the other. `rng` draws once when
    some reward is below `threshold`, and not at all otherwise."""
    _check(rewards)
    above = [i for i, r in enumerate(rewards) if r >= threshold]
    below = [i for i, r in enumerate(rewards) if r < threshold]
    return _two_sides(len(rewards), above, [rng.choice(below)] if below else [])


def top_bottom(rewards: Sequence[float], threshold: float, low_threshold: float) -> Weights:
    """1/2 shared by the samples with reward >= `threshold`, 1/2 by those with reward <=
    `low_threshold` (< `threshold`); a side that is empty leaves all to the other."""
    _check(rewards)
    if not low_threshold < threshold:
        raise ValueError(f"low_threshold ({low_threshold}) must be below threshold ({threshold})")
    above = [i for i, r in enumerate(rewards) if r >= threshold]
    below = [i for i, r in enumerate(rewards) if r <= low_threshold]
    return _two_sides(len(rewards), above, below)


def pow_k(rewards: Sequence[float], k: float) -> Weights:
    """Weights ∝ |reward|^k, normalised; 1/N each when every |reward|^k is 0."""
    _check(rewards)
    if not (math.isfinite(k) and k >= 0):
        raise ValueError(f"pow-k needs a finite k >= 0, got {k!r}")
    scale = max((abs(r) for r in rewards), default=0.0)
    if scale == 0.0:
        return none(rewards)
    powers = [Fraction((abs(r) / scale) ** k) for r in rewards]  # the largest is exactly 1
    total = sum(powers, Fraction(0))
    return [p / total for p in powers]


def weights(
    strategy: str,
    rewards: Sequence[float],
    *,
    threshold: float | None = None,
    low_threshold: float | None = None,
    k: float | None = None,
    rng: random.Random | None = None,
) -> Weights:
    """One prompt's weights under `strategy` (one of `STRATEGIES`), with the options it needs:
    `threshold` (top, top-random, top-bottom), `low_threshold` (top-bottom), `k` (pow-k),
    `rng` (top-random). A missing option is a `ValueError` naming it."""

    def need(name: str, value: object) -> None:
        if value is None:
            raise ValueError(f"strategy {strategy!r} needs {name}")

    if strategy == "none":
        return none(rewards)
    if strategy == "bon":
        return bon(rewards)
    if strategy == "br":
        return br(rewards)
    if strategy == "bw":
        return bw(rewards)
    if strategy in ("top", "top-random", "top-bottom"):
        need("threshold", threshold)
        assert threshold is not None
        if strategy == "top":
            return top(rewards, threshold)
        if strategy == "top-random":
            need("rng", rng)
            assert rng is not None
            return top_random(rewards, threshold, rng)
        need("low_threshold", low_threshold)
        assert low_threshold is not None
        return top_bottom(rewards, threshold, low_threshold)
    if strategy == "pow-k":
        need("k", k)
        assert k is not None
        return pow_k(rewards, k)
    raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")


# ---------------------------------------------------------------------------------------------
# The batch-level variant (verl's `use_pf_ppo`).


def batch_weights(rewards: Sequence[float], method: str, power: float = 2.0) -> list[float]:
    """verl's unnormalised resampling weights over a whole batch, before its 1e-8 floor."""
    _check(rewards)
    if method == "pow":
        return [abs(r) ** power for r in rewards]
    if not rewards:
        return []
    hi, lo = max(rewards), min(rewards)
    if method == "max_min":
        return [1.0 if r in (hi, lo) else 0.0 for r in rewards]
    if method == "max_random":
        return [0.4 if r == hi else 0.1 for r in rewards]
    raise ValueError(f"unknown batch method {method!r}; expected one of {', '.join(BATCH_METHODS)}")


def batch_resample(
    rewards: Sequence[float], method: str, rng: random.Random, power: float = 2.0
) -> list[int]:
    """How many times each sample is drawn when B = len(rewards) samples are drawn with
    replacement in proportion to `batch_weights(...) + 1e-8` (verl's floor). Sums to B."""
    w = [x + 1e-8 for x in batch_weights(rewards, method, power)]
    counts = [0] * len(rewards)
    for i in rng.choices(range(len(rewards)), weights=w, k=len(rewards)):
        counts[i] += 1
    return counts
