"""Metric sinks for trainers: a JSONL file always, TensorBoard and wandb when asked.

`Tracker(out, reporters, config)` writes `out/log.jsonl` (one JSON object per step, every metric)
and `out/eval.jsonl` (one per evaluation). On resume, rows after the checkpoint's step are cut, so
the files hold exactly one curve. TensorBoard event files go to `out/tensorboard/`; a missing
`tensorboard` or `wandb` package is an error naming the extra to install, raised before training.
Only the main process creates a tracker.

`RunProgress` decides what a trainer's progress bar counts, so that it never promises a step
count a time-bounded run will not reach.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from execrl.data.jsonl import DataError

__all__ = ["RunProgress", "Tracker", "require"]

_EXTRA = {"tensorboard": "execrl[train]", "wandb": "execrl[wandb]"}


@dataclass(frozen=True)
class RunProgress:
    """What the progress bar of a run bounded by `max_steps` and, optionally, `max_minutes` shows.

    Without a time budget the bar counts steps out of `max_steps` (its ETA is true: the run takes
    every step). With one, the run ends at whichever bound comes first, so the bar counts the
    budget spent in percent, the larger fraction of the two (as the lr schedule does), and the text
    says the step reached and the training minutes out of the budget, never "step n/max_steps":
    a run of 10,000 steps or 7 minutes must not show an ETA for 10,000 steps. `train_seconds`
    excludes evaluations, like `max_minutes`.
    """

    max_steps: int
    max_minutes: float = 0.0

    @property
    def timed(self) -> bool:
        return self.max_minutes > 0

    @property
    def total(self) -> int:
        """The bar's total: steps, or 100 (percent of the budget)."""
        return 100 if self.timed else self.max_steps

    @property
    def unit(self) -> str:
        return "%" if self.timed else "step"

    def position(self, step: int, train_seconds: float) -> float:
        """The bar's count after `step` steps and `train_seconds` of training."""
        if not self.timed:
            return step
        spent = max(step / self.max_steps, train_seconds / (self.max_minutes * 60))
        return round(100 * min(spent, 1.0), 1)

    def describe(self, step: int, train_seconds: float, **metrics: float) -> str:
        """The text beside the bar: for a timed run, the step reached and the training minutes
        spent of the budget; then `metrics` (name=value, 3 decimals)."""
        parts = (
            [f"step {step}, {train_seconds / 60:.1f}/{self.max_minutes:g} min of training"]
            if self.timed
            else []
        )
        return ", ".join(parts + [f"{k}={v:.3f}" for k, v in metrics.items()])

    def tqdm_kwargs(self, step: int, train_seconds: float) -> dict[str, Any]:
        """Arguments for `tqdm(...)` for a run that starts (or resumes) at `step`."""
        kwargs: dict[str, Any] = {
            "total": self.total,
            "initial": self.position(step, train_seconds),
            "unit": self.unit,
        }
        if self.timed:
            kwargs["bar_format"] = "{desc}: {n:.0f}% of the budget |{bar}| [{elapsed}<{remaining}{postfix}]"
            kwargs["postfix"] = self.describe(step, train_seconds)
        return kwargs


def require(reporters: list[str]) -> dict[str, Any]:
    """The sink for each reporter (SummaryWriter class, wandb module); a missing package is a
    `DataError` naming the extra to install. Trainers call it before they write anything."""
    sinks: dict[str, Any] = {}
    for name in reporters:
        try:
            if name == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter

                sinks[name] = SummaryWriter
            elif name == "wandb":
                import wandb

                sinks[name] = wandb
        except ImportError:
            raise DataError(
                f"config: report_to includes {name}, which is not installed "
                f"(pip install '{_EXTRA[name]}', or --report-to none)"
            ) from None
    return sinks


def _cut(path: Path, step: int) -> None:
    """Keep the rows of `path` up to `step` (drop a half-written last line)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("step", 0) <= step:
            kept.append(line)
    path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")


class Tracker:
    def __init__(self, out: Path, reporters: list[str], config: dict[str, Any], start_step: int = 0) -> None:
        self.out = out
        self.tb: Any = None
        self.wandb: Any = None
        for name in ("log.jsonl", "eval.jsonl"):
            if start_step:
                _cut(out / name, start_step)
            else:
                (out / name).write_text("", encoding="utf-8")
        sinks = require(reporters)
        if "tensorboard" in sinks:
            self.tb = sinks["tensorboard"](str(out / "tensorboard"), purge_step=start_step or None)
        if "wandb" in sinks:
            self.wandb = sinks["wandb"].init(config=config, dir=str(out), resume="allow")

    def _write(self, name: str, row: dict[str, Any], prefix: str) -> None:
        with open(self.out / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        step = int(row["step"])
        scalars = {
            k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float)) and math.isfinite(v)
        }
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(f"{prefix}/{k}", v, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log({f"{prefix}/{k}": v for k, v in scalars.items()}, step=step)

    def log(self, row: dict[str, Any]) -> None:
        self._write("log.jsonl", row, "train")

    def log_eval(self, row: dict[str, Any]) -> None:
        self._write("eval.jsonl", row, "eval")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
