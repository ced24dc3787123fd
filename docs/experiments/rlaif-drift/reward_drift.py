"""Which reward loses the order first as PPO moves the policy (issue 19): the RM, the judge, or both.

    python docs/experiments/rlaif-drift/reward_drift.py --rm runs/bench-rlaif-large/rm \
        --judge runs/embedded/judge-256x6-p8 --tasks 120 --samples 8 \
        runs/embedded/model runs/bench-rlaif-large/rlaif-seed0 ... > drift.json

For each policy: `--samples` programs (T=0.7) of `--tasks` train-split API tasks (a seeded draw,
the same tasks for every policy), executed in the sandbox, scored by the reward model (the prompt as
the RL trainer gives it) and by the judge (normalised score, as `--reward judge`). Reports the share
that runs to completion and passes, the mean RM and judge scores, and each score's AUC against
"runs" over all pairs and within a task (what PPO's advantages see). One JSON object per policy.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import tempfile

from execrl.data import builtin
from execrl.demo_rlaif import _sample
from execrl.rewards import judge
from execrl.rewards.execution import ExecutionReward
from execrl.rewards.judge_embedded import auc, within_task_auc
from execrl.rewards.model import RewardModel, prompt_text
from execrl.types import Limits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("policies", nargs="+")
    ap.add_argument("--rm", required=True)
    ap.add_argument("--judge", required=True)
    ap.add_argument("--tasks", type=int, default=120)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    problems = builtin.load()
    pool = [t for t, p in problems.items() if p.kind == "api" and p.split == "train"]
    ids = sorted(random.Random(args.seed).sample(pool, min(args.tasks, len(pool))), key=pool.index)
    rm = RewardModel(args.rm)
    backend = judge.HFJudge(args.judge, batch_size=16)
    questions = judge.load_questions()
    scale = sum(q.weight for q in questions.questions)
    reward = ExecutionReward("builtin", problems=problems, limits=Limits(timeout=1.0))
    try:
        for policy in args.policies:
            completions = _sample(policy, problems, ids, n=args.samples, temperature=0.7, seed=args.seed)
            rows = [t for t in ids for _ in range(args.samples)]
            results = [s.result for s in reward.score(rows, completions)]
            runs = [r.status.value in ("passed", "failed") for r in results]
            prompts = [prompt_text(rm.tokenizer, builtin.prompt(problems[t], chat=False)) for t in rows]
            rm_scores = rm.scores(prompts, completions)
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "cache.sqlite")
                cache = judge.JudgeCache(path)
                try:
                    judged = judge.judge([(problems[t].instruction, problems[t].header + c)
                                          for t, c in zip(rows, completions)], backend, questions, cache=cache)  # fmt: skip
                finally:
                    cache.close()
            j_scores = [j.score / scale for j in judged]
            row = {
                "policy": policy, "programs": len(rows), "runs": sum(runs) / len(runs),
                "passes": sum(r.passed for r in results) / len(results),
                "rm_mean": sum(rm_scores) / len(rm_scores), "judge_mean": sum(j_scores) / len(j_scores),
                "rm_auc": auc([v for v, y in zip(rm_scores, runs) if y], [v for v, y in zip(rm_scores, runs) if not y]),
                "judge_auc": auc([v for v, y in zip(j_scores, runs) if y], [v for v, y in zip(j_scores, runs) if not y]),
                "rm_auc_within": within_task_auc(rows, rm_scores, runs),
                "judge_auc_within": within_task_auc(rows, j_scores, runs),
                "statuses": collections.Counter(r.status.value for r in results),
            }  # fmt: skip
            print(json.dumps(row), flush=True)
    finally:
        reward.close()


if __name__ == "__main__":
    main()
