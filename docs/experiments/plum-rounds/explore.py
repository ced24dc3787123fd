"""The ground-truth exploration of docs/plum.md ("Rounds over every task"): `execrl prefer` from the
embedded model, labelled by the built-in suite's own tests, on N train tasks, for M minutes,
with FIELD=VALUE overrides of the recipe (`execrl.demo_plum.PLUM`). The rows were run against
the recipe before 2026-12-07 (64 prompts x 8 samples per round, 1 epoch, lr 1e-5, no NLL, evaluations
every 2 rounds); every run's full settings are in ground-truth-explore.json ("config").

    python docs/experiments/plum-rounds/explore.py runs/px 0 6 prompts_per_round=0 samples_per_prompt=4 \
        epochs=3 sft_coef=10.0 lr=1e-4 eval_every=1
"""

import json
import sys

from execrl.demo_plum import PLUM
from execrl.testgen.embedded import write_tasks
from execrl.trainers.prefer import train
from execrl.trainers.prefer_config import PreferConfig

out, ntasks, minutes = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])  # ntasks 0 (or 2229): all 1,880
extra = dict(a.split("=", 1) for a in sys.argv[4:])
train_tasks, all_tasks = write_tasks(out, ntasks)
base = {
    "model": "runs/embedded/model",
    "out": out + "/run",
    "data": all_tasks,
    "tests": None,
    "ground_truth_tests": True,
    "seed": 0,
    "rounds": 10000,
    "max_minutes": minutes,
}
cfg = PreferConfig.load(overrides={**PLUM, **base, **extra})
s = train(cfg)
print(json.dumps([(e["round"], e["pass@1"]) for e in s["eval"]]), s["steps"])
