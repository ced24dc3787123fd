"""`execrl rewards`: what a reward gives each sample of a samples file, and how it is distributed.

    report = reward_report(evaluate("humaneval", "samples.jsonl"), "rltf")
    report.rows      # one per sample, in order: task_id, sample_index, status, reward[, penalty]
    report.table()   # rewards, statuses and scopes; report.summary() is the same as a dict

The samples are executed once, by `evaluate` (the same jobs, limits and result rows as `execrl
evaluate`); the rewards are computed from its results, so the command costs what `evaluate` does.

Kinds: `binary` and `pass_ratio` (rewards/execution.py), `coarse` and `adaptive` (RLTF's scalars,
rewards/rltf.py), and `rltf`: the adaptive scalar plus the fine-grained penalty, reported as
`{"scope", "line", "start", "end", "value"}` with `line` 1-based and `start`/`end` character
offsets of that line (without its line break) in the sample's `completion`. `reward` and
`penalty` are null after a sandbox_error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from execrl.data import DataError
from execrl.eval.evaluate import Evaluation
from execrl.rewards import rltf
from execrl.rewards.execution import reward_of
from execrl.types import Status

__all__ = ["KINDS", "RewardReport", "reward_report"]

KINDS = ("binary", "pass_ratio", "coarse", "adaptive", "rltf")


@dataclass
class RewardReport:
    kind: str
    evaluation: Evaluation
    rows: list[dict[str, Any]]
    rules: Counter[tuple[str, str]]  # rltf: (scope, rule) -> how often that rule decided

    def summary(self) -> dict[str, Any]:
        rewards = [r["reward"] for r in self.rows if r["reward"] is not None]
        out: dict[str, Any] = {
            "reward": self.kind,
            "samples": len(self.rows),
            "mean": round(sum(rewards) / len(rewards), 6) if rewards else None,
            "min": round(min(rewards), 6) if rewards else None,
            "max": round(max(rewards), 6) if rewards else None,
            "null": len(self.rows) - len(rewards),
            "statuses": dict(Counter(r["status"] for r in self.rows).most_common()),
        }
        if self.kind == "rltf":
            scopes = Counter(r["penalty"]["scope"] for r in self.rows if r["penalty"] is not None)
            out["scopes"] = {s: scopes.get(s, 0) for s in ("global", "line", "none")}
        return out

    def table(self) -> str:
        ev, s = self.evaluation, self.summary()
        n = len(self.rows)
        tasks = len({row["task_id"] for row in self.rows})
        name = self.kind + (" (adaptive + fine-grained penalty)" if self.kind == "rltf" else "")
        mean = f"mean {s['mean']:.3f}" if s["mean"] is not None else "no reward"
        lines = [
            f"benchmark   {ev.benchmark}: {tasks} tasks, {n} samples, {ev.seconds:.1f}s",
            f"reward      {name}: {mean}, {s['null']} null (sandbox errors)",
            "",
            f"{'reward':<17}{'samples':>9}{'share':>9}",
        ]
        values = Counter(round(r["reward"], 3) for r in self.rows if r["reward"] is not None)
        if len(values) <= 12:
            shown = [(f"{v:+.3f}", c) for v, c in sorted(values.items(), reverse=True)]
        else:  # many distinct values (pass ratios): five equal-width bins, highest first
            lo, width = s["min"], (s["max"] - s["min"]) / 5
            bins = Counter(min(int((v - lo) / width), 4) for v in values.elements())
            shown = [
                (f"{lo + b * width:+.2f} .. {lo + (b + 1) * width:+.2f}", bins[b]) for b in range(4, -1, -1)
            ]
        if s["null"]:
            shown.append(("null", s["null"]))
        lines += [f"{label:<17}{c:>9}{c / n:>9.1%}" for label, c in shown]
        lines += ["", f"{'status':<17}{'samples':>9}{'mean reward':>13}"]
        for status in Status:
            got = [r["reward"] for r in self.rows if r["status"] == status.value]
            if got:
                scored = [x for x in got if x is not None]
                avg = f"{sum(scored) / len(scored):>13.3f}" if scored else f"{'null':>13}"
                lines.append(f"{status.value:<17}{len(got):>9}{avg}")
        if self.kind == "rltf":
            lines += ["", f"{'penalty scope':<17}{'samples':>9}   decided by"]
            for scope in ("global", "line", "none"):
                rules = ", ".join(f"{rule} {c}" for (sc, rule), c in self.rules.most_common() if sc == scope)
                lines.append(f"{scope:<17}{s['scopes'][scope]:>9}   {rules}".rstrip())
        return "\n".join(lines)


def _num(x: float) -> str:
    return f"{round(x, 2) or 0.0:+.2f}"  # never "-0.00"


def reward_report(ev: Evaluation, kind: str) -> RewardReport:
    """Each sample's reward of `kind` from `ev`'s results (nothing is executed again)."""
    if kind not in KINDS:
        raise DataError(f"--reward must be one of {', '.join(KINDS)}, got {kind!r}")
    rows: list[dict[str, Any]] = []
    rules: Counter[tuple[str, str]] = Counter()
    for i, (sample, index, result) in enumerate(zip(ev.samples, ev.sample_index, ev.results)):
        row: dict[str, Any] = {
            "task_id": sample.task_id,
            "sample_index": index,
            "status": result.status.value,
        }
        if kind in ("binary", "pass_ratio"):
            row["reward"] = reward_of(result, kind)
        else:
            row["reward"] = rltf.scalar(result, "coarse" if kind == "coarse" else "adaptive")
        if kind == "rltf":
            job = ev.jobs[i]
            code = job.program[job.completion_start :]
            p = rltf.locate(rltf.penalty(result, code), code, sample.completion)
            row["penalty"] = p.to_dict() if p is not None else None
            if p is not None:
                rules[p.scope, p.rule] += 1
        rows.append(row)
    return RewardReport(kind, ev, rows, rules)
