"""Which of the SFT policy's programs a judge- or RM-based rule would have the policy imitate (issue 19).

    python docs/experiments/rlaif-sil/selection_rules.py runs/bench-rlaif-large \
        [--rm rm --rm rm-debiased] > selection-rules.json

On the programs the RM learnt from (bench/rlaif.py's rm-data/: the SFT policy's 8 programs, T=0.7,
of each of the 443 train API tasks, their judge scores J.jsonl and executions truth.jsonl), for the
judge's summed score and each RM under the bench directory: the share of programs that run to
completion (passed or failed, as eval/executability.py) at each rank within a task (1 = the
score's favourite), and the share that run among the programs each admission rule would keep —
a task's top k, those at or above the task's mean score, those at or above a global quantile of the
score (`replay_admit: threshold`) — against all programs (what `replay_admit: random` imitates on
average); and the correlation of the score with the completion's length in tokens, over all programs
and within a task. Only the train split is read.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics

from execrl.data import builtin
from execrl.demo_rlaif import read_judging
from execrl.rewards.judge_embedded import within_task_auc
from execrl.rewards.model import RewardModel, prompt_text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bench")
    ap.add_argument("--rm", action="append", default=[], help="RM directories under the bench (default: rm)")
    args = ap.parse_args()
    samples, judged, truth = read_judging(os.path.join(args.bench, "rm-data"))
    runs = [t["status"] in ("passed", "failed") for t in truth]
    tasks = [s["task_id"] for s in samples]
    groups: dict[str, list[int]] = collections.defaultdict(list)
    for i, t in enumerate(tasks):
        groups[t].append(i)
    rm_one = RewardModel(os.path.join(args.bench, (args.rm or ["rm"])[0]))
    lengths = [len(rm_one.tokenizer(s["completion"])["input_ids"]) for s in samples]
    scores = {"judge": [j["score"] for j in judged]}
    problems = builtin.load()
    for name in args.rm or ["rm"]:
        rm = RewardModel(os.path.join(args.bench, name))
        prompts = [prompt_text(rm.tokenizer, builtin.prompt(problems[t], chat=False)) for t in tasks]
        scores[name] = rm.scores(prompts, [s["completion"] for s in samples])

    def share(sel: list[int]) -> dict[str, float]:
        return {"runs": sum(runs[i] for i in sel) / len(sel), "kept": len(sel) / len(samples)}

    def centred(values: list[float]) -> list[float]:
        means = {t: statistics.mean(values[i] for i in idx) for t, idx in groups.items()}
        return [v - means[t] for v, t in zip(values, tasks)]

    out = {"programs": len(samples), "tasks": len(groups), "all": share(list(range(len(samples))))}
    for name, sc in scores.items():
        by_rank: dict[int, list[bool]] = collections.defaultdict(list)
        for idx in groups.values():
            for r, i in enumerate(sorted(idx, key=lambda i: -sc[i])):
                by_rank[r + 1].append(runs[i])
        rules = {f"top-{k}": share([i for idx in groups.values() for i in sorted(idx, key=lambda i: -sc[i])[:k]])
                 for k in (1, 2, 4, 6, 7)}  # fmt: skip
        rules[">= task mean"] = share([i for idx in groups.values() for i in idx
                                       if sc[i] >= statistics.mean(sc[j] for j in idx)])  # fmt: skip
        ordered = sorted(sc)
        for q in (0.25, 0.5, 0.75):
            t = ordered[int(q * len(ordered))]
            rules[f">= quantile {q} ({t:.2f})"] = share([i for i in range(len(sc)) if sc[i] >= t])
        out[name] = {
            "runs_by_rank": [sum(v) / len(v) for _, v in sorted(by_rank.items())],
            "rules": rules,
            "within_task_auc_runs": within_task_auc(tasks, sc, runs),
            "corr_length": statistics.correlation(sc, [float(x) for x in lengths]),
            "corr_length_within_task": statistics.correlation(
                centred(sc), centred([float(x) for x in lengths])
            ),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
