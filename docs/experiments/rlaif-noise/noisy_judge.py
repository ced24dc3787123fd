"""How good must the AI feedback be? Self-imitation of what a judge of *known* error rate approves (issue 19).

    python docs/experiments/rlaif-noise/noisy_judge.py OUT --flip 0.2 [--seed 0] [--steps 68] [--sampled 8]

The loop of the self-imitation probes in docs/rlaif.md ("Self-imitation of what the RM approves"):
from runs/embedded/model, on the train split's API tasks, no policy gradient (`pg_coef: 0`), a
replay buffer of 4,096 (32 programs x 8 extra optimizer steps per step), lr 1e-4, 16 prompts x 4
samples at T=0.7, 68 steps. What enters the buffer is what a *synthetic judge* approves: it
approves a program that runs (RLTF's coarse reward >= -0.3: it passed, or ran and failed a test)
and rejects one that does not, except that a fixed share `--flip` of programs get the opposite
verdict. Which ones is a hash of (task, program): a program always gets the same verdict, as from
a deterministic judge, but the errors follow nothing the policy could learn to produce (no
length, no API, no wording), so this is the *best case* for a judge of that accuracy. A program's
verdict is right with probability 1 - flip; the judge's within-task AUC, runs vs not, is 1 - flip.

The learned judges in docs/rlaif.md order the SFT policy's programs at a within-task AUC of
0.55-0.79; their errors are systematic (length, the task's shape). This says what a judge of the
same AUC whose errors cannot be exploited would do, which separates "the judge is too weak" from
"the policy exploits the judge".

Writes OUT/ (the run), OUT/verdicts.jsonl (per step: programs, how many run, how many the judge
approved, how many of those run) and prints `RESULT <steps> <greedy metrics>` and
`SAMPLED <steps> <metrics of --sampled programs per task at T=0.7>` (the held-out 81 test-split
API tasks), as docs/experiments/rlaif-probes/probe.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import execrl.trainers.rl as rl_loop
from execrl.demo_rlaif import RLAIF, api_metrics
from execrl.trainers.rl_config import RLConfig

RUNS = -0.3  # RLTF's coarse reward: 1 passed, -0.3 ran and failed a test, lower: did not run


@dataclass
class Verdict:
    reward: float
    result: Any


class NoisyJudge:
    """A `StepReward` approving (+1) the programs that run and rejecting (-1) the rest, with the
    verdict of a `flip` share of (task, program) pairs reversed, chosen by a hash."""

    def __init__(self, inner: Any, flip: float, seed: int, log: str) -> None:
        self.inner, self.flip, self.seed, self.log = inner, flip, seed, log

    @property
    def execution(self) -> Any:
        return self.inner.execution

    def _flipped(self, task: str, program: str) -> bool:
        digest = hashlib.sha256(f"{self.seed}\0{task}\0{program}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.flip

    def score(self, task_ids: list[str], completions: list[Any]) -> list[Any]:
        out, counts = [], {"programs": 0, "run": 0, "approved": 0, "approved_run": 0}
        for task, text, s in zip(task_ids, completions, self.inner.score(task_ids, completions)):
            if s.reward is None:  # sandbox_error: no verdict
                out.append(s)
                continue
            runs = s.reward >= RUNS
            approve = runs != self._flipped(task, str(text))
            counts["programs"] += 1
            counts["run"] += runs
            counts["approved"] += approve
            counts["approved_run"] += approve and runs
            out.append(Verdict(1.0 if approve else -1.0, s.result))
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(counts) + "\n")
        return out

    def close(self) -> None:
        self.inner.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--flip", type=float, required=True, help="share of programs given the wrong verdict")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=68)
    ap.add_argument("--sampled", type=int, default=8)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    log = os.path.join(args.out, "verdicts.jsonl")
    open(log, "w").close()
    build = rl_loop.build_reward
    rl_loop.build_reward = lambda *a, **k: NoisyJudge(build(*a, **k), args.flip, args.seed, log)  # type: ignore[assignment]
    cfg = RLConfig.load(overrides={**RLAIF, "reward": "coarse", "model": "runs/embedded/model", "out": args.out,
                                   "data": "runs/bench-rlaif-large/api-tasks.jsonl", "pg_coef": 0.0,
                                   "replay_size": 4096, "replay_batch": 32, "replay_steps": 8, "lr": 1e-4,
                                   "replay_admit": "threshold", "replay_threshold": 0.0,
                                   "max_steps": args.steps, "max_minutes": 0, "eval_every": 20,
                                   "seed": args.seed, "report_to": "none"})  # fmt: skip
    summary = rl_loop.train(cfg)
    print("RESULT", summary["steps"], json.dumps(api_metrics(args.out)), flush=True)
    if args.sampled:
        sampled = api_metrics(args.out, runs=args.sampled, temperature=0.7)
        print("SAMPLED", summary["steps"], json.dumps(sampled), flush=True)


if __name__ == "__main__":
    main()
