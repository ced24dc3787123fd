"""Could weighting the judge's eight questions make a better reward (issue 19)? The within-task AUC
(runs vs not) of each question's P(yes) and of sums over subsets of the questions, on the SFT
policy's programs that the RM learnt from (bench/rlaif.py's rm-data: J.jsonl and truth.jsonl).

    python docs/experiments/rlaif-drift/question_subsets.py runs/bench-rlaif-large/rm-data

Every subset of the eight (255) is tried; prints the sum of all, each question, and the best five
subsets.
"""

from __future__ import annotations

import itertools
import json
import sys

from execrl.demo_rlaif import read_judging
from execrl.rewards.judge_embedded import within_task_auc


def main() -> None:
    _, judged, truth = read_judging(sys.argv[1])
    tasks = [j["task_id"] for j in judged]
    runs = [t["status"] in ("passed", "failed") for t in truth]
    questions = list(judged[0]["p_yes"])
    report = {"all": within_task_auc(tasks, [j["score"] for j in judged], runs)}
    subsets = {}
    for k in range(1, len(questions) + 1):
        for combo in itertools.combinations(questions, k):
            subsets[",".join(combo)] = within_task_auc(
                tasks, [sum(j["p_yes"][q] for q in combo) for j in judged], runs
            )
    report["each"] = {q: subsets[q] for q in questions}
    report["best_subsets"] = dict(sorted(subsets.items(), key=lambda kv: -kv[1])[:5])
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
