"""How the bench's judge scores the SFT policy's own programs (issue 19): the 3,544 programs the RM
learnt from (443 train api tasks x 8, T=0.7), their judge scores (rm-data/J.jsonl) and executions
(rm-data/truth.jsonl, the tests' results), both written by bench/rlaif.py's shared stage.

    python docs/experiments/bench-rlaif/judge_on_policy.py runs/bench-rlaif/rm-data

Prints the execution statuses; the AUC (`judge_embedded.auc`) of the summed score against "runs
to completion" (passed or failed, as `eval/executability.py`) and against "passes"; the same for
each question's P(yes); the score's AUC over the pairs of one task's samples only (what PPO's
group advantages and reward-ranked replay see); and how often the judge's favourite of a task's samples runs and passes,
against all samples.
"""

from __future__ import annotations

import collections
import json
import sys

from execrl.demo_rlaif import read_judging
from execrl.rewards.judge_embedded import auc, within_task_auc


def split_auc(values: list[float], truth: list[bool]) -> float | None:
    return auc([v for v, t in zip(values, truth) if t], [v for v, t in zip(values, truth) if not t])


def main() -> None:
    _, judged, truth = read_judging(sys.argv[1])
    runs = [t["status"] in ("passed", "failed") for t in truth]
    passes = [t["status"] == "passed" for t in truth]
    scores = [j["score"] for j in judged]
    report = {
        "statuses": collections.Counter(t["status"] for t in truth),
        "score_auc_executable": split_auc(scores, runs),
        "score_auc_passed": split_auc(scores, passes),
        "question_auc_executable": {
            q: split_auc([j["p_yes"][q] for j in judged], runs) for q in judged[0]["p_yes"]
        },
    }
    by_task: dict[str, list[int]] = collections.defaultdict(list)
    for i, j in enumerate(judged):
        by_task[j["task_id"]].append(i)
    best = [max(idx, key=lambda i: scores[i]) for idx in by_task.values()]
    for name, truth_of in (("executable", runs), ("passed", passes)):
        report[f"best_{name}"] = sum(truth_of[i] for i in best) / len(best)
        report[f"all_{name}"] = sum(truth_of) / len(truth_of)
        # pairs of one task's samples only: the order PPO's group advantages and replay use
        report[f"within_task_auc_{name}"] = within_task_auc([j["task_id"] for j in judged], scores, truth_of)
        report[f"within_task_pairs_{name}"] = sum(
            sum(truth_of[i] for i in idx) * sum(not truth_of[i] for i in idx) for idx in by_task.values()
        )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
