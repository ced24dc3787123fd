"""Three-minute PPO probes on the built-in suite's API tasks (issue 19): which reward and which loop
keep or lose the SFT model's held-out API metrics.

    python docs/experiments/rlaif-probes/probe.py OUT '{"reward": "pass_ratio"}'
    python docs/experiments/rlaif-probes/probe.py OUT '{"reward": "pass_ratio", "replay_size": 4096,
        "replay_batch": 32, "replay_steps": 8, "replay_weighting": "failing", "lr": 1e-4}'
    python docs/experiments/rlaif-probes/probe.py OUT '{"reward": "rm", "replay_size": 4096,
        "replay_batch": 32, "replay_steps": 8, "replay_admit": "best", "lr": 1e-4}'

PPO with `execrl.demo_rlaif.RLAIF`'s settings (16 prompts x 4, lr 5e-5, KL 0.05, no replay) and the
JSON's overrides, from `runs/embedded/model`, for 3 minutes of training on the train split's API
tasks; reward `rm` reads the demo's reward model (`runs/demo-rlaif/rm`, written by `execrl demo
--method rlaif`, and `runs/demo-rlaif/api-tasks.jsonl`). Then `demo_rlaif.api_metrics` on the 81
test-split API tasks, greedy; the last line is `RESULT <steps> <metrics JSON>`. One seed each: a
probe, not the bench. Results of 2026-12-07 in probes.json.

With `"sampled": N` in the JSON (not an RLConfig field), also the metrics of N sampled programs per
task at T=0.7 (the mean of N inference runs, as the paper reports executability), of the final model
and of every checkpoint the run saved (give "save_every"): lines `SAMPLED <step> <metrics JSON>`.
"""

from __future__ import annotations

import glob
import json
import os
import sys

from execrl.demo_rlaif import RLAIF, api_metrics
from execrl.trainers.rl import train
from execrl.trainers.rl_config import RLConfig


def main() -> None:
    out, extra = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    sampled = int(extra.pop("sampled", 0))
    rm = {"rm": "runs/demo-rlaif/rm"} if extra.get("reward", RLAIF["reward"]) == "rm" else {}
    cfg = RLConfig.load(overrides={**RLAIF, **rm, "model": "runs/embedded/model", "out": out,
                                   "data": "runs/demo-rlaif/api-tasks.jsonl", "max_steps": 10_000, "max_minutes": 3,
                                   "eval_every": 0, "report_to": "none", **extra})  # fmt: skip
    summary = train(cfg)
    print("RESULT", summary["steps"], json.dumps(api_metrics(out)), flush=True)
    if sampled:
        ckpts = sorted(glob.glob(os.path.join(out, "checkpoint-*")), key=lambda p: int(p.rsplit("-", 1)[1]))
        for step, model in [(int(p.rsplit("-", 1)[1]), p) for p in ckpts] + [(summary["steps"], out)]:
            print("SAMPLED", step, json.dumps(api_metrics(model, runs=sampled, temperature=0.7)), flush=True)


if __name__ == "__main__":
    main()
