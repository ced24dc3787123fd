"""Policy filtration (PF-PPO): which of a prompt's samples PPO trains on, and R² to choose a strategy.

- `strategies`: per-prompt weights (none, bon, br, bw, top, top-random, top-bottom, pow-k) and
  verl's batch-level resampling variant; pure functions of one prompt's rewards.
- `r2`: the R² of a strategy — how linearly the reward predicts the actual score on the samples it
  keeps — with the exact definition in its docstring.
- `analyze`: reading `{"prompt_id", "reward", "score"}` files, the table and plot of
  `execrl filtration analyze`.

Nothing here imports torch; matplotlib is imported only to draw a plot.
"""

from execrl.filtration.r2 import Fit, ScoredSample, r_squared, strategy_weights
from execrl.filtration.strategies import BATCH_METHODS, STRATEGIES, batch_resample, ranks, weights

__all__ = [
    "BATCH_METHODS",
    "STRATEGIES",
    "Fit",
    "ScoredSample",
    "batch_resample",
    "r_squared",
    "ranks",
    "strategy_weights",
    "weights",
]
