"""Which task-level rule labels the most tasks at a false-pass rate we can trust? The bench's
synthesized tests (T.jsonl) validated twice: by the reference alone (per task: the SFT samples'
false passes under the task's reference-passing tests) and with adequacy at threshold 0 (per task:
trivial programs that survive, mutation score); then every rule (min tests, trivial programs
rejected, mutation-score threshold) scored offline: tasks labelled and their pooled false-pass rate.
Exact, because a task's tests are kept or dropped together. Needs a finished `bench/plum.py --out OUT`.

    python docs/experiments/plum-coverage/coverage.py runs/bench-plum
"""

import json
import os
import sys

from execrl.testgen.validate import validate

out = sys.argv[1]
common = dict(data=os.path.join(out, "train-tasks.jsonl"), solutions=os.path.join(out, "sft-samples.jsonl"))
ref = validate("builtin", os.path.join(out, "T.jsonl"), **common)
ad = validate("builtin", os.path.join(out, "T.jsonl"), adequacy=True, min_mutation_score=0.0, **common)
tasks = {}
for tid, d in ref.tasks.items():
    if not d.get("passing"):
        continue
    a = ad.tasks.get(tid, {})
    tasks[tid] = {"passing": d["passing"], "judged": d.get("judged", 0), "pass_valid": d.get("pass_valid", 0),
                  "false_pass": d.get("false_pass", 0), "trivial_passed": a.get("trivial_passed"),
                  "mutation_score": a.get("mutation_score")}  # fmt: skip
rows = []
for min_tests in (1, 2, 3):
    for trivial in (False, True):
        for threshold in (None, 0.0, 0.25, 0.5, 0.75):
            if threshold is not None and not trivial:
                continue
            kept = [d for d in tasks.values() if d["passing"] >= min_tests
                    and (not trivial or d["trivial_passed"] == [])
                    and (threshold is None or (d["mutation_score"] or 0.0) >= threshold)]  # fmt: skip
            pv = sum(d["pass_valid"] for d in kept)
            fp = sum(d["false_pass"] for d in kept)
            rows.append({"min_tests": min_tests, "trivial_rejected": trivial, "min_mutation_score": threshold,
                         "tasks": len(kept), "pass_valid": pv, "false_pass_rate": fp / pv if pv else None})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
with open(os.path.join(os.path.dirname(__file__), "coverage.json"), "w") as f:
    json.dump({"rules": rows, "tasks": tasks}, f)
