"""Does a judge trained on more of the policy's own programs rank them better? (issue 19)

    python docs/experiments/rlaif-judge/policy_judge.py --samples 8 --out /tmp/judge-p8 \
        [--baseline runs/embedded/judge] [--hidden 256 --layers 6 --heads 8 --sibling-steps 400] [--steps 800]

Trains the judge as `execrl.rewards.judge_embedded.train_judge` does (800 steps of 32 balanced rows,
lr 1e-3, cosine; `--hidden`: on a larger backbone, `judge_embedded.larger_sibling`, trained from
scratch on the embedded model's SFT data first) but with `--samples` programs of the embedded policy per train api task beside the
corruptions (the shipped judge has one), then asks it -- and the `--baseline` judge, on the same
programs -- the eight questions about held-out programs: the corruptions and 8 policy samples
(T=0.8) of each of the 40 first validation api tasks. Reported per judge: per question the AUC
against its own fact on all held-out programs and on the policy's alone, and on the policy's
programs what a reward needs: the summed score's AUC against "runs without an error" and against
"passes", over all pairs and over the pairs of one task's samples only (what PPO's advantages and
reward-ranked replay use), and how often the judge's favourite of a task's 8 samples runs / passes against all 8.
Writes OUT/policy-judge.json and OUT/judge/.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from typing import Any

from execrl.rewards import judge
from execrl.rewards import judge_embedded as je

MODEL = "runs/embedded/model"


def measure(judge_dir: str, heldout: list[je.Labeled], executable: list[bool]) -> dict[str, Any]:
    questions = judge.load_questions()
    judged = judge.judge([(x.instruction, x.program) for x in heldout], judge.HFJudge(judge_dir, batch_size=16),
                         questions)  # fmt: skip
    out: dict[str, Any] = {"questions": {}}
    policy = [i for i, x in enumerate(heldout) if x.source == "policy"]
    for q in questions.questions:
        fact = je.QUESTION_FACTS[q.id]
        row = {}
        for name, idx in (("all", range(len(heldout))), ("policy", policy)):
            known = [(judged[i].answers[q.id].p_yes or 0.0, heldout[i].facts.get(fact)) for i in idx]
            known = [(p, t) for p, t in known if t is not None]
            row[name] = je.auc([p for p, t in known if t], [p for p, t in known if not t])
        out["questions"][q.id] = row
    score = {i: judged[i].score for i in policy}
    for name, truth in (("executable", executable), ("passed", [heldout[i].facts["passed"] for i in policy])):
        t = dict(zip(policy, truth))
        out[f"score_auc_{name}"] = je.auc(
            [score[i] for i in policy if t[i]], [score[i] for i in policy if not t[i]]
        )
        by_task: dict[str, list[int]] = defaultdict(list)
        for i in policy:
            by_task[heldout[i].task_id].append(i)
        # within a task: the pairs a reward ranks for PPO's advantages and for replay
        pairs = [(score[i] > score[j]) + 0.5 * (score[i] == score[j])
                 for v in by_task.values() for i in v for j in v if t[i] and not t[j]]  # fmt: skip
        out[f"within_task_auc_{name}"] = sum(pairs) / len(pairs) if pairs else None
        out[f"within_task_pairs_{name}"] = len(pairs)
        best = [max(v, key=lambda i: score[i]) for v in by_task.values()]
        out[f"best_{name}"] = sum(t[i] for i in best) / len(best)
        out[f"all_{name}"] = sum(t.values()) / len(t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--baseline", default="runs/embedded/judge")
    ap.add_argument("--hidden", type=int, default=0, help="a larger backbone (judge_embedded.larger_sibling) "
                    "of this width; 0: the embedded model itself")  # fmt: skip
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--sibling-steps", type=int, default=400)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t = time.perf_counter()
    backbone = None
    if args.hidden:
        backbone = je.larger_sibling(MODEL, os.path.join(args.out, "sibling"), hidden_size=args.hidden,
                                     layers=args.layers, heads=args.heads, steps=args.sibling_steps)  # fmt: skip
    sibling_minutes = (time.perf_counter() - t) / 60
    judge_dir = je.train_judge(MODEL, os.path.join(args.out, "judge"), steps=args.steps, samples=args.samples,
                               backbone=backbone)  # fmt: skip
    minutes = (time.perf_counter() - t) / 60 - sibling_minutes
    problems, programs = je.split_programs("validation", MODEL, samples=8, seed=1, tasks=40)
    heldout = je.label(problems, programs)
    executable = [bool(x.facts["executable"]) for x in heldout if x.source == "policy"]
    report = {"samples": args.samples, "steps": args.steps, "train_minutes": minutes,
              "backbone": {"hidden": args.hidden, "layers": args.layers, "heads": args.heads,
                           "steps": args.sibling_steps, "minutes": sibling_minutes} if args.hidden else None,
              "heldout_programs": len(heldout), "heldout_policy": len(executable),
              "judges": {"trained": measure(judge_dir, heldout, executable)}}  # fmt: skip
    if args.baseline and os.path.isdir(args.baseline):
        report["judges"]["baseline"] = measure(args.baseline, heldout, executable)
    for name, r in report["judges"].items():
        print(name, json.dumps({k: v for k, v in r.items() if k != "questions"}))
        print(
            "   ",
            {
                q: (v["all"] and round(v["all"], 2), v["policy"] and round(v["policy"], 2))
                for q, v in r["questions"].items()
            },
        )
    with open(os.path.join(args.out, "policy-judge.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
