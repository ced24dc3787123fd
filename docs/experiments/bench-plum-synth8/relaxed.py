"""The bench's tests validated without the task-level rules (reference only: `--min-tests 1`, no
adequacy), then the recipe's KTO run on them: more labelled tasks, more false passes
(docs/plum.md, "The bench with synthesized tests"). Needs a finished `bench/plum.py --out OUT`.

    python docs/experiments/bench-plum/relaxed.py runs/bench-plum [minutes]
"""

import json
import os
import sys

from execrl.demo_plum import PLUM
from execrl.eval.evaluate import write_jsonl_atomic
from execrl.testgen.validate import validate
from execrl.trainers.prefer import train
from execrl.trainers.prefer_config import PreferConfig

out = sys.argv[1]
minutes = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
tests = os.path.join(out, "V-relaxed.jsonl")
v = validate("builtin", os.path.join(out, "T.jsonl"), data=os.path.join(out, "train-tasks.jsonl"),
             solutions=os.path.join(out, "sft-samples.jsonl"))  # fmt: skip
rows = list(v.out_rows())
write_jsonl_atomic(tests, rows)
labelled = {r["task_id"] for r in rows if r["valid"]}
quality = {k: v.quality[k] for k in ("tests", "valid", "valid_rate", "reasons", "false_pass")}
print(json.dumps({"tasks_labelled": len(labelled), **quality}), flush=True)
base = {"model": "runs/embedded/model", "out": os.path.join(out, "kto-relaxed-seed0"), "tests": tests,
        "data": os.path.join(out, "tasks.jsonl"), "seed": 0, "rounds": 10_000, "max_minutes": minutes}  # fmt: skip
summary = train(PreferConfig.load(overrides={**PLUM, **base}))
evals = summary["eval"]
run = {"run": "kto-relaxed", "seed": 0, "before": evals[0]["pass@1"], "after": evals[-1]["pass@1"],
       "best": max(e["pass@1"] for e in evals), "steps": summary["steps"], "tasks_labelled": len(labelled),
       "test_quality": quality, "curve": [(e["round"], e["pass@1"]) for e in evals]}  # fmt: skip
with open(os.path.join(out, "kto-relaxed-seed0", "run.json"), "w") as f:
    json.dump(run, f, indent=1)
print(json.dumps(run))
