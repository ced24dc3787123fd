"""R²: how well a reward predicts the actual score on the samples a filtration strategy keeps.

PF-PPO (Shen & Zhang 2024, §4) picks the strategy whose kept samples show the most linear relation
between reward (e.g. a reward model's score) and actual score (e.g. the unit-test pass rate). The
paper groups "responses with similar rewards" without fixing how; our definition, exactly:

1. Per prompt, rank the samples by reward, highest first (ties: file order), and give them the
   strategy's weights over ranks (`strategies.py`): none 1/N each; bon (1, 0, …); br (1/2,
   1/(2(N−1)), …); bw (1/2, 0, …, 0, 1/2) — or any other strategy's weights.
2. Pool all samples of weight > 0 and sort them by reward, ascending (ties: file order). With W the
   total weight, and c the total weight of the samples before a sample of weight w, the sample's
   bin is min(B−1, ⌊B·(c + w/2)/W⌋): its weight's midpoint decides, so bins hold about equal weight.
3. Each non-empty bin is one point: (weighted mean reward, weighted mean score).
4. An ordinary (unweighted) least-squares line through the points; R² = 1 − SS_res/SS_tot with
   SS_tot = Σ(y − ȳ)² over the points.

Arithmetic is exact: weights are `Fraction`s, and rewards and scores enter as the exact values of
their floats, so step 2's floor is decided exactly — a sample whose midpoint lies exactly on a
bin edge goes to the upper bin, whatever the platform — and so are the tests for the degenerate
cases below. Only the results are rounded to floats.

Degenerate cases (never an exception):
- no sample kept, or one point only: R² is undefined (None), and so is the line with no point;
- SS_tot = 0 (every point has the same mean score): R² = 1 − 0/0 is undefined (None); the line is
  the horizontal one through the points;
- every point has the same mean reward but the scores differ (ties spanning bins): the fitted
  values, the projection onto the constant, are ȳ whatever line through (x̄, ȳ) is chosen, so
  R² = 0; we report the horizontal line (slope 0, intercept ȳ).
`Fit.note` says which case applied.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from execrl.filtration import strategies

__all__ = ["Fit", "ScoredSample", "bin_points", "fit_line", "r_squared", "strategy_weights"]

Point = tuple[Fraction, Fraction]


@dataclass(frozen=True)
class ScoredSample:
    """One sample: its prompt, its reward (what filtration ranks by) and its actual score."""

    prompt_id: str | int
    reward: float
    score: float


@dataclass(frozen=True)
class Fit:
    """A strategy's R² and what it was computed from."""

    strategy: str
    r2: float | None  # None where undefined (see `note`)
    slope: float | None  # None with no point at all
    intercept: float | None
    points: tuple[tuple[float, float], ...]  # (mean reward, mean score) per non-empty bin, ascending
    kept: int  # samples with weight > 0
    total: int  # samples in all
    note: str = ""  # why R² is undefined or 0 where a degenerate case applied

    @property
    def kept_fraction(self) -> float:
        return self.kept / self.total if self.total else 0.0


def strategy_weights(
    samples: Sequence[ScoredSample],
    strategy: str,
    *,
    threshold: float | None = None,
    low_threshold: float | None = None,
    k: float | None = None,
    rng: random.Random | None = None,
) -> list[Fraction]:
    """Step 1: each sample's weight (in the samples' order), the strategy applied per prompt to the
    prompt's rewards in file order. Random strategies draw from `rng` prompt by prompt, in the
    order of each prompt's first sample. `1` and `"1"` are different prompts."""
    groups: dict[tuple[type, str | int], list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault((type(s.prompt_id), s.prompt_id), []).append(i)
    out = [Fraction(0)] * len(samples)
    for rows in groups.values():
        ws = strategies.weights(
            strategy,
            [samples[i].reward for i in rows],
            threshold=threshold,
            low_threshold=low_threshold,
            k=k,
            rng=rng,
        )
        for i, w in zip(rows, ws):
            out[i] = w
    return out


def bin_points(
    rewards: Sequence[float], scores: Sequence[float], weights: Sequence[Fraction], bins: int
) -> list[Point]:
    """Steps 2–3: the exact (weighted mean reward, weighted mean score) of each non-empty bin,
    in ascending order of bin. Samples of weight 0 are left out."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    kept = sorted((i for i, w in enumerate(weights) if w > 0), key=lambda i: rewards[i])  # stable
    total = sum((weights[i] for i in kept), Fraction(0))
    sums: dict[int, list[Fraction]] = {}  # bin -> [Σw, Σw·reward, Σw·score]
    before = Fraction(0)
    for i in kept:
        w = weights[i]
        b = min(bins - 1, math.floor(bins * (before + w / 2) / total))
        acc = sums.setdefault(b, [Fraction(0), Fraction(0), Fraction(0)])
        acc[0] += w
        acc[1] += w * Fraction(rewards[i])
        acc[2] += w * Fraction(scores[i])
        before += w
    return [(acc[1] / acc[0], acc[2] / acc[0]) for _, acc in sorted(sums.items())]


def fit_line(points: Sequence[Point]) -> tuple[float | None, float | None, float | None, str]:
    """Step 4, exactly: (R², slope, intercept, note) of the least-squares line through `points`."""
    n = len(points)
    if n == 0:
        return None, None, None, "no sample kept"
    xbar = sum((x for x, _ in points), Fraction(0)) / n
    ybar = sum((y for _, y in points), Fraction(0)) / n
    sxx = sum(((x - xbar) ** 2 for x, _ in points), Fraction(0))
    syy = sum(((y - ybar) ** 2 for _, y in points), Fraction(0))  # SS_tot
    sxy = sum(((x - xbar) * (y - ybar) for x, y in points), Fraction(0))
    slope = sxy / sxx if sxx else Fraction(0)
    intercept = ybar - slope * xbar
    line = float(slope), float(intercept)
    if n == 1:
        return None, *line, "one point: R² is undefined"
    if syy == 0:
        return None, *line, "every point has the same mean score (SS_tot = 0): R² is undefined"
    if sxx == 0:
        return 0.0, *line, "every point has the same mean reward: the fit is the mean score, R² = 0"
    # SS_res = Syy - Sxy²/Sxx, so R² = 1 - SS_res/Syy = Sxy² / (Sxx·Syy)
    return float(sxy * sxy / (sxx * syy)), *line, ""


def r_squared(
    samples: Sequence[ScoredSample],
    strategy: str,
    bins: int = 10,
    *,
    threshold: float | None = None,
    low_threshold: float | None = None,
    k: float | None = None,
    rng: random.Random | None = None,
) -> Fit:
    """The strategy's R² on `samples` (in file order), by the definition in this module's docstring."""
    for s in samples:
        if not (math.isfinite(s.reward) and math.isfinite(s.score)):
            raise ValueError(f"prompt {s.prompt_id!r}: rewards and scores must be finite numbers")
    w = strategy_weights(samples, strategy, threshold=threshold, low_threshold=low_threshold, k=k, rng=rng)
    exact = bin_points([s.reward for s in samples], [s.score for s in samples], w, bins)
    r2, slope, intercept, note = fit_line(exact)
    return Fit(
        strategy=strategy,
        r2=r2,
        slope=slope,
        intercept=intercept,
        points=tuple((float(x), float(y)) for x, y in exact),
        kept=sum(1 for x in w if x > 0),
        total=len(samples),
        note=note,
    )
