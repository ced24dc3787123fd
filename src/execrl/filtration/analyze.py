"""`execrl filtration analyze`: R² of each filtration strategy on a file of scored samples.

Input: JSON Lines, one row per sample, `{"prompt_id": ..., "reward": ..., "score": ...}` —
`prompt_id` a string or an integer (several rows per prompt, in any order: a prompt's samples are
ranked in file order), `reward` what filtration ranks by (e.g. a reward model's score), `score`
the actual quality (e.g. the unit-test pass rate). Both numbers must be finite. Every problem is a
`DataError` naming file and line, raised before anything is written.

Output: one `Fit` per strategy (`r2.py`), a text table, and optionally a plot (points and fitted
line per strategy; matplotlib with the Agg backend, imported only when a plot is asked for).
"""

from __future__ import annotations

import math
import os
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

from execrl.data.jsonl import DataError, PathLike, Row, read_jsonl
from execrl.filtration.r2 import Fit, ScoredSample, r_squared
from execrl.filtration.strategies import STRATEGIES

__all__ = ["PLOT_FORMATS", "analyze", "check_options", "check_plot", "plot", "read_scores", "table"]

PLOT_FORMATS = (".png", ".pdf", ".svg")


def _number(row: Row, name: str) -> float:
    value = row.get(name, (int, float))
    try:
        x = float(value)
    except OverflowError:
        x = math.inf
    if not math.isfinite(x):
        shown = repr(value) if isinstance(value, float) else "an integer too large for a float"
        raise row.error(f'field "{name}" must be a finite number, got {shown}')
    return x


def read_scores(path: PathLike) -> list[ScoredSample]:
    """The file's samples in file order; `DataError` for a bad row or an empty file."""
    name = os.fspath(path)
    out = []
    for line, data in read_jsonl(path):
        row = Row(name, line, data)
        out.append(
            ScoredSample(row.get("prompt_id", (str, int)), _number(row, "reward"), _number(row, "score"))
        )
    if not out:
        raise DataError(f"{name}: no rows")
    return out


def check_options(
    strategies: Sequence[str],
    *,
    bins: int = 10,
    threshold: float | None = None,
    low_threshold: float | None = None,
    k: float | None = None,
) -> None:
    """`ValueError` naming the first unknown strategy or missing option (before any file is read)."""
    if bins < 1:
        raise ValueError(f"--bins must be at least 1, got {bins}")
    if not strategies:
        raise ValueError("no strategy given")
    for flag, value in (("--threshold", threshold), ("--low-threshold", low_threshold)):
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{flag} must be a finite number, got {value}")
    for s in strategies:
        if s not in STRATEGIES:
            raise ValueError(f"unknown strategy {s!r}; expected some of {', '.join(STRATEGIES)}")
        if s in ("top", "top-random", "top-bottom") and threshold is None:
            raise ValueError(f"strategy {s!r} needs --threshold")
        if s == "top-bottom":
            if low_threshold is None:
                raise ValueError("strategy 'top-bottom' needs --low-threshold")
            assert threshold is not None
            if not low_threshold < threshold:
                raise ValueError(f"--low-threshold ({low_threshold}) must be below --threshold ({threshold})")
        if s == "pow-k" and (k is None or not (math.isfinite(k) and k >= 0)):
            raise ValueError("strategy 'pow-k' needs --pow-k K, a number >= 0")


def analyze(
    samples: Sequence[ScoredSample],
    strategies: Sequence[str],
    *,
    bins: int = 10,
    threshold: float | None = None,
    low_threshold: float | None = None,
    k: float | None = None,
    seed: int = 0,
) -> list[Fit]:
    """One `Fit` per strategy, in the order given. Random strategies (`top-random`) draw from
    `random.Random(seed)`, fresh for each strategy."""
    check_options(strategies, bins=bins, threshold=threshold, low_threshold=low_threshold, k=k)
    return [
        r_squared(
            samples, s, bins, threshold=threshold, low_threshold=low_threshold, k=k, rng=random.Random(seed)
        )  # fmt: skip
        for s in strategies
    ]


def table(fits: Sequence[Fit]) -> str:
    """A fixed-width table: strategy, R², slope (R² alone does not say whether reward and score
    rise together), kept fraction (kept/total), number of points, and the note of a degenerate case."""
    rows = [("strategy", "R²", "slope", "kept", "points", "note")]
    for f in fits:
        r2 = "undefined" if f.r2 is None else f"{f.r2:.4f}"
        slope = "-" if f.slope is None else f"{f.slope:.4g}"
        kept = f"{f.kept_fraction:.3f} ({f.kept}/{f.total})"
        rows.append((f.strategy, r2, slope, kept, str(len(f.points)), f.note))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join(
        ("  ".join(cell.ljust(width) for cell, width in zip(r, widths)) + "  " + r[5]).rstrip() for r in rows
    )


def check_plot(path: PathLike) -> None:
    """`DataError` unless `path` can take a plot: a known suffix, in a directory that exists."""
    target = Path(path)
    if target.suffix.lower() not in PLOT_FORMATS:
        raise DataError(f"{path}: a plot must end in {', '.join(PLOT_FORMATS)}")
    if not target.parent.resolve().is_dir():
        raise DataError(f"{path}: the output directory does not exist")


def plot(fits: Sequence[Fit], path: PathLike) -> None:
    """Points and fitted line per strategy, one panel each, written atomically to `path` (the
    format follows its suffix: .png, .pdf, .svg)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DataError("--plot needs matplotlib: pip install 'execrl[train]'") from None
    target = Path(path)
    cols = min(4, len(fits))
    rows = -(-len(fits) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(fits) :]:
        ax.set_visible(False)
    for ax, f in zip(axes.flat, fits):
        xs, ys = [p[0] for p in f.points], [p[1] for p in f.points]
        ax.scatter(xs, ys, s=18)
        if f.slope is not None and f.intercept is not None and xs:
            lo, hi = min(xs), max(xs)
            ax.plot([lo, hi], [f.intercept + f.slope * lo, f.intercept + f.slope * hi], color="C1")
        r2 = "undefined" if f.r2 is None else f"{f.r2:.3f}"
        ax.set_title(f"{f.strategy}: R² = {r2}", fontsize=10)
        ax.set_xlabel("mean reward")
        ax.set_ylabel("mean score")
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, format=target.suffix.lower().lstrip("."))
        os.replace(tmp, target)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
