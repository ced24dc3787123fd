"""`execrl.filtration`: strategy weights and R² against values worked out by hand.

The R² tests derive every expected number in their docstrings; the last test compares with an
independent brute-force implementation (written differently on purpose: explicit rank positions,
bins found by counting edges, a float least-squares fit) on random synthetic files.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction as F

import pytest

from execrl.filtration import strategies as S
from execrl.filtration.r2 import ScoredSample, bin_points, fit_line, r_squared, strategy_weights

# ---------------------------------------------------------------- ranking and the paper's four


def test_ranks_best_first_ties_in_file_order():
    # rewards 0.5, 0.9, 0.5, 0.9: the two 0.9s first (index 1 before 3), then the 0.5s (0 before 2)
    assert S.ranks([0.5, 0.9, 0.5, 0.9]) == [1, 3, 0, 2]


def test_paper_weights_over_ranks_n4():
    rewards = [0.2, 0.8, 0.5, 0.1]  # ranks: 1 (0.8), 2 (0.5), 0 (0.2), 3 (0.1)
    assert S.none(rewards) == [F(1, 4)] * 4
    assert S.bon(rewards) == [0, 1, 0, 0]
    # br: best 1/2, every other 1/(2·3) = 1/6
    assert S.br(rewards) == [F(1, 6), F(1, 2), F(1, 6), F(1, 6)]
    # bw: best (index 1) and worst (index 3) 1/2 each
    assert S.bw(rewards) == [0, F(1, 2), 0, F(1, 2)]


def test_one_sample_gets_everything():
    for strategy in (S.none, S.bon, S.br, S.bw):
        assert strategy([-3.0]) == [1]


def test_two_samples():
    assert S.br([0.0, 1.0]) == [F(1, 2), F(1, 2)]  # 1/(2(N-1)) = 1/2
    assert S.bw([0.0, 1.0]) == [F(1, 2), F(1, 2)]  # best and worst are the two samples
    assert S.bon([0.0, 1.0]) == [0, 1]


def test_all_tied_ranks_follow_file_order():
    rewards = [0.3] * 4
    assert S.bon(rewards) == [1, 0, 0, 0]
    assert S.bw(rewards) == [F(1, 2), 0, 0, F(1, 2)]
    assert S.br(rewards) == [F(1, 2), F(1, 6), F(1, 6), F(1, 6)]


def test_no_samples_no_weights():
    for name in ("none", "bon", "br", "bw"):
        assert S.weights(name, []) == []


def test_nan_reward_is_refused():
    with pytest.raises(ValueError, match="finite"):
        S.bon([0.1, math.nan])


# ---------------------------------------------------------------- threshold variants and pow-k


def test_top_shares_equally_above_threshold():
    # >= 0.5: indices 1 (0.5) and 2 (0.9) share 1
    assert S.top([0.1, 0.5, 0.9], threshold=0.5) == [0, F(1, 2), F(1, 2)]
    assert S.top([0.1, 0.2], threshold=0.5) == [0, 0]  # nothing kept


def test_top_random_half_and_half_and_seeded():
    rewards = [0.1, 1.0, 0.2, 0.3]
    w = S.top_random(rewards, 1.0, random.Random(0))
    # index 1 is the top side (1/2); exactly one of 0, 2, 3 gets the other 1/2
    assert w[1] == F(1, 2)
    assert sorted(w[i] for i in (0, 2, 3)) == [0, 0, F(1, 2)]
    assert S.top_random(rewards, 1.0, random.Random(0)) == w  # same seed, same draw
    # nothing at the threshold: the random one takes all; nothing below: the top side takes all
    assert sum(S.top_random([0.1, 0.2], 1.0, random.Random(1))) == 1
    assert S.top_random([1.0, 2.0], 1.0, random.Random(1)) == [F(1, 2), F(1, 2)]


def test_top_bottom_sides_and_disjointness():
    # top >= 1: indices 0, 3 share 1/2; bottom <= 0: index 1 alone gets 1/2; 0.5 is in neither
    assert S.top_bottom([1.0, 0.0, 0.5, 1.0], 1.0, 0.0) == [F(1, 4), F(1, 2), 0, F(1, 4)]
    assert S.top_bottom([0.5, 0.6], 1.0, 0.0) == [0, 0]
    with pytest.raises(ValueError, match="below"):
        S.top_bottom([0.5], 0.5, 0.5)


def test_pow_k():
    # |r|^2 of (-1, 2, 0, 1): 1, 4, 0, 1, total 6
    assert S.pow_k([-1.0, 2.0, 0.0, 1.0], 2) == [F(1, 6), F(4, 6), 0, F(1, 6)]
    assert S.pow_k([0.0, 0.0], 3) == [F(1, 2), F(1, 2)]  # nothing to prefer: uniform
    assert S.pow_k([1.0, 3.0], 0) == [F(1, 2), F(1, 2)]  # k = 0 is no filtration
    w = S.pow_k([1e-3, 1e300], 50)  # no overflow; the small one underflows to 0
    assert w == [0, 1] and sum(w) == 1


def test_dispatch_names_missing_option():
    with pytest.raises(ValueError, match="threshold"):
        S.weights("top", [1.0])
    with pytest.raises(ValueError, match="rng"):
        S.weights("top-random", [1.0], threshold=0.5)
    with pytest.raises(ValueError, match="unknown strategy"):
        S.weights("best", [1.0])


# ---------------------------------------------------------------- the batch-level variant (verl)


def test_batch_weights_like_verl():
    rewards = [1.0, -2.0, 0.5, 1.0]
    assert S.batch_weights(rewards, "pow", power=2.0) == [1.0, 4.0, 0.25, 1.0]
    assert S.batch_weights(rewards, "max_min") == [1.0, 1.0, 0.0, 1.0]  # both 1.0s are the max
    assert S.batch_weights(rewards, "max_random") == [0.4, 0.1, 0.1, 0.4]


def test_batch_resample_draws_b_with_replacement_from_kept():
    rewards = [0.0, 1.0, 0.5, 0.5, 0.5, 0.5]
    counts = S.batch_resample(rewards, "max_min", random.Random(0))
    assert sum(counts) == len(rewards)
    # the middle samples have weight 1e-8 against 2: drawn with probability ~3e-8 each time
    assert counts[2:] == [0, 0, 0, 0]
    assert counts == S.batch_resample(rewards, "max_min", random.Random(0))


# ---------------------------------------------------------------- R², by hand


def samples(rows: list[tuple[object, float, float]]) -> list[ScoredSample]:
    return [ScoredSample(p, r, s) for p, r, s in rows]  # type: ignore[arg-type]


def test_r2_one_prompt_none_three_bins():
    """One prompt, rewards 0, 1, 2 with scores 0, 2, 1; none gives 1/3 each, W = 1.

    Midpoints 1/6, 1/2, 5/6 → bins ⌊3·mid⌋ = 0, 1, 2: points (0,0), (1,2), (2,1).
    x̄ = 1, ȳ = 1; Sxx = 2, Syy = 2, Sxy = (-1)(-1) + 0 + (1)(0) = 1.
    R² = Sxy²/(Sxx·Syy) = 1/4; slope 1/2, intercept 1 - 1/2 = 1/2."""
    fit = r_squared(samples([("a", 0.0, 0.0), ("a", 1.0, 2.0), ("a", 2.0, 1.0)]), "none", bins=3)
    assert fit.points == ((0.0, 0.0), (1.0, 2.0), (2.0, 1.0))
    assert fit.r2 == 0.25 and fit.slope == 0.5 and fit.intercept == 0.5
    assert (fit.kept, fit.total, fit.note) == (3, 3, "")


BR_ROWS = [
    ("p", 0.5, 0.4),  # row 0
    ("q", 0.2, 0.0),  # row 1
    ("p", 0.9, 1.0),  # row 2
    (7, 0.5, 1.0),  # row 3: a prompt with one sample (an integer id)
    ("q", 0.2, 1.0),  # row 4: ties with row 1
    ("p", 0.1, 0.0),  # row 5
]


def test_r2_br_ties_unequal_n_single_sample_prompt_and_exact_edges():
    """br over prompts p (N=3), q (N=2, tied), 7 (N=1); B = 3.

    Weights: p: row 2 is best → 1/2, rows 0 and 5 → 1/(2·2) = 1/4; q: N = 2 → 1/2, 1/2;
    7: N = 1 → 1. W = 3, so the bin is ⌊3·mid/3⌋ = ⌊mid⌋.
    Ascending, ties in file order: row 5 (0.1, w 1/4), row 1 (0.2, 1/2), row 4 (0.2, 1/2),
    row 0 (0.5, 1/4), row 3 (0.5, 1), row 2 (0.9, 1/2).
    Midpoints c + w/2: 1/8, 1/2, 1 (exactly on the edge: upper bin), 11/8, 2 (edge), 11/4
    → bins 0, 0, 1, 1, 2, 2.
    Points: bin 0 (Σw 3/4): reward (0.1/4 + 0.2/2)/(3/4) = 1/6, score 0;
            bin 1 (Σw 3/4): reward (0.2/2 + 0.5/4)/(3/4) = 3/10, score (1/2 + 0.4/4)/(3/4) = 4/5;
            bin 2 (Σw 3/2): reward (0.5 + 0.9/2)/(3/2) = 19/30, score 1.
    x̄ = 11/30, dx = -1/5, -1/15, 4/15, Sxx = 26/225; ȳ = 3/5, dy = -3/5, 1/5, 2/5, Syy = 14/25;
    Sxy = 3/25 - 1/75 + 8/75 = 16/75.
    R² = (16/75)² / (26/225 · 14/25) = 256/364 = 64/91; slope = (16/75)/(26/225) = 24/13;
    intercept = 3/5 - 24/13 · 11/30 = -1/13.
    (0.1, 0.2, ... are not exact binary fractions: compared to 1e-12.)"""
    fit = r_squared(samples(BR_ROWS), "br", bins=3)
    expected_points = [(1 / 6, 0.0), (3 / 10, 4 / 5), (19 / 30, 1.0)]
    assert len(fit.points) == 3
    for got, want in zip(fit.points, expected_points):
        assert got == pytest.approx(want, abs=1e-12)
    assert fit.r2 == pytest.approx(64 / 91, abs=1e-12)
    assert fit.slope == pytest.approx(24 / 13, abs=1e-12)
    assert fit.intercept == pytest.approx(-1 / 13, abs=1e-12)
    assert (fit.kept, fit.total) == (6, 6)


def test_weights_grouped_per_prompt_in_file_order():
    w = strategy_weights(samples(BR_ROWS), "bon")
    # p: row 2 best; q: rows 1 and 4 tie → row 1 (file order); 7: row 3
    assert w == [0, 1, 1, 1, 0, 0]


def test_int_and_string_prompt_ids_are_different_prompts():
    w = strategy_weights(samples([(1, 0.0, 0.0), ("1", 1.0, 1.0)]), "bon")
    assert w == [1, 1]  # two prompts of one sample each, not one prompt of two


def test_bin_edges_are_exact_where_floats_are_not():
    """One prompt of 12 samples with rewards 0..11, none (1/12 each, W = 1), B = 8.

    Sample k's midpoint is (2k+1)/24, its bin ⌊8(2k+1)/24⌋ = ⌊(2k+1)/3⌋: 0, 1, 1, 2, 3, 3, 4,
    5, 5, 6, 7, 7. Sample 7 lies exactly on the edge 15/3 = 5 → bin 5, with sample 8. In floats,
    7·(1/12) + 1/24 times 8 is 4.999999999999999, which would put it in bin 4 with sample 6.
    Points' mean rewards: 0, 1.5, 3, 4.5, 6, 7.5, 9, 10.5."""
    c = 0.0
    for _ in range(7):
        c += 1 / 12
    assert math.floor(8 * (c + 1 / 24)) == 4  # the float trap this test is about
    rows = [("a", float(k), float(k % 2)) for k in range(12)]
    fit = r_squared(samples(rows), "none", bins=8)
    assert [x for x, _ in fit.points] == [0.0, 1.5, 3.0, 4.5, 6.0, 7.5, 9.0, 10.5]


def test_bins_equal_weight_and_top_bin_clamped():
    # B = 1: every kept sample in one bin → one point → undefined
    fit = r_squared(samples(BR_ROWS), "none", bins=1)
    assert len(fit.points) == 1 and fit.r2 is None and "one point" in fit.note
    # more bins than samples: each sample alone
    assert len(r_squared(samples(BR_ROWS), "none", bins=100).points) == 6


def test_degenerate_constant_score_is_undefined():
    fit = r_squared(samples([("a", 0.0, 1.0), ("a", 1.0, 1.0), ("b", 2.0, 1.0)]), "none", bins=3)
    assert fit.r2 is None and "SS_tot = 0" in fit.note
    assert fit.slope == 0.0 and fit.intercept == 1.0


def test_degenerate_equal_rewards_across_bins_is_zero():
    # all rewards 1.0, scores 0 and 1: two bins with the same mean reward, different scores
    fit = r_squared(samples([("a", 1.0, 0.0), ("a", 1.0, 1.0)]), "none", bins=2)
    assert fit.points == ((1.0, 0.0), (1.0, 1.0))
    assert fit.r2 == 0.0 and fit.slope == 0.0 and fit.intercept == 0.5


def test_nothing_kept():
    fit = r_squared(samples([("a", 0.1, 0.0), ("a", 0.2, 1.0)]), "top", threshold=5.0)
    assert fit.r2 is None and fit.slope is None and fit.points == () and fit.kept == 0


def test_fit_line_perfect_and_negative_slope():
    # y = 3 - 2x on three points: R² exactly 1
    assert fit_line([(F(0), F(3)), (F(1), F(1)), (F(2), F(-1))])[:3] == (1.0, -2.0, 3.0)


def test_bin_points_skips_zero_weights():
    pts = bin_points([5.0, 1.0, 2.0], [9.0, 0.0, 1.0], [F(0), F(1, 2), F(1, 2)], 2)
    assert pts == [(F(1), F(0)), (F(2), F(1))]


# ---------------------------------------------------------------- against a brute force


def brute_weights(rewards: list[float], strategy: str) -> list[float]:
    n = len(rewards)
    order = sorted(range(n), key=lambda i: (-rewards[i], i))
    pos = {i: p for p, i in enumerate(order)}  # rank position of each sample
    out = []
    for i in range(n):
        p = pos[i]
        if strategy == "none":
            out.append(1.0 / n)
        elif strategy == "bon":
            out.append(1.0 if p == 0 else 0.0)
        elif strategy == "br":
            out.append(1.0 if n == 1 else (0.5 if p == 0 else 0.5 / (n - 1)))
        else:  # bw
            out.append(1.0 if n == 1 else (0.5 if p in (0, n - 1) else 0.0))
    return out


def brute_r2(rows: list[tuple[object, float, float]], strategy: str, bins: int) -> float | None:
    by_prompt: dict[object, list[int]] = {}
    for i, (p, _, _) in enumerate(rows):
        by_prompt.setdefault((type(p), p), []).append(i)
    w = [0.0] * len(rows)
    exact = [F(0)] * len(rows)
    for idx in by_prompt.values():
        for i, x in zip(idx, brute_weights([rows[i][1] for i in idx], strategy)):
            w[i] = x
            n = len(idx)
            # the same weights as exact fractions (the bins must not depend on float rounding)
            exact[i] = F(round(x * 2 * max(n - 1, 1) * n), 2 * max(n - 1, 1) * n)
    pool = sorted((i for i in range(len(rows)) if w[i] > 0), key=lambda i: (rows[i][1], i))
    total = sum(exact[i] for i in pool)
    edges = [F(j, bins) * total for j in range(1, bins)]
    members: dict[int, list[int]] = {}
    running = F(0)
    for i in pool:
        mid = running + exact[i] / 2
        members.setdefault(sum(1 for e in edges if e <= mid), []).append(i)
        running += exact[i]
    xs, ys = [], []
    for b in sorted(members):
        sw = sum(w[i] for i in members[b])
        xs.append(sum(w[i] * rows[i][1] for i in members[b]) / sw)
        ys.append(sum(w[i] * rows[i][2] for i in members[b]) / sw)
    if len(xs) < 2:
        return None
    ybar = sum(ys) / len(ys)
    ss_tot = sum((y - ybar) ** 2 for y in ys)
    if ss_tot == 0:
        return None
    xbar = sum(xs) / len(xs)
    sxx = sum((x - xbar) ** 2 for x in xs)
    flat = max(xs) - min(xs) < 1e-12  # every point at one reward: the fit is the mean
    slope = 0.0 if flat else sum((x - xbar) * (y - ybar) for x, y in zip(xs, ys)) / sxx
    ss_res = sum((y - (ybar + slope * (x - xbar))) ** 2 for x, y in zip(xs, ys))
    return 1 - ss_res / ss_tot


def synthetic(rng: random.Random) -> list[tuple[object, float, float]]:
    rows: list[tuple[object, float, float]] = []
    for p in range(rng.randint(1, 12)):
        pid: object = p if p % 2 else f"task/{p}"
        for _ in range(rng.randint(1, 6)):
            reward = round(rng.uniform(-1, 1), 1)  # one decimal: plenty of ties
            rows.append((pid, reward, rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) + rng.random() * 0.1))
    rng.shuffle(rows)  # prompts interleaved in the file
    return rows


def test_r2_matches_brute_force_on_random_files():
    rng = random.Random(17)
    checked = 0
    for _ in range(150):
        rows = synthetic(rng)
        bins = rng.randint(1, 12)
        for strategy in ("none", "bon", "br", "bw"):
            want = brute_r2(rows, strategy, bins)
            got = r_squared(samples(rows), strategy, bins).r2
            if want is None:
                assert got is None
            else:
                assert got is not None and abs(got - want) < 1e-9, (rows, strategy, bins)
                checked += 1
    assert checked > 300  # most cases are not degenerate
