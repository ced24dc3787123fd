"""Metric sinks for trainers: a JSONL file always, TensorBoard and wandb when asked.

`Tracker(out, reporters, config)` writes `out/log.jsonl` (one JSON object per step, every metric)
and `out/eval.jsonl` (one per evaluation). On resume, rows after the checkpoint's step are cut, so
the files hold exactly one curve. TensorBoard event files go to `out/tensorboard/`; a missing
`tensorboard` or `wandb` package is an error naming the extra to install, raised before training.
Only the main process creates a tracker.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from execrl.data.jsonl import DataError

__all__ = ["Tracker", "require"]

_EXTRA = {"tensorboard": "execrl[train]", "wandb": "execrl[wandb]"}


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
