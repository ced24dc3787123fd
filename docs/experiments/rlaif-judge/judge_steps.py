"""How many SFT steps the embedded judge needs before it tells programs apart (issue 19).

    python docs/experiments/rlaif-judge/judge_steps.py --steps 800 --batch-size 32 --out /tmp/judge-e1
    python docs/experiments/rlaif-judge/judge_steps.py --steps 800 --batch-size 32 \
        --questions docs/experiments/rlaif-judge/compact-questions.yaml --out /tmp/judge-e2
    python docs/experiments/rlaif-judge/judge_steps.py --steps 2000 --batch-size 16 --out /tmp/judge-e3

Trains the judge exactly as `execrl.rewards.judge_embedded.train_judge` does (the train split's api
tasks: every corruption of each reference and one policy sample, labelled by execution and AST
facts; balanced rows; lr 1e-3, cosine, 5% warm-up), with the given steps, batch size and questions
file, then asks it the eight questions about the 390 programs of 40 validation api tasks. Per
question: accuracy (P(yes) > 1/2 against the fact), the majority baseline and the AUC
(`judge_embedded.auc`); and the AUC of the summed score against "passed the tests" on the policy's
own programs among them. Writes OUT/heldout.json and OUT/judge/ (log.jsonl has the loss per step).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from execrl.rewards import judge
from execrl.rewards import judge_embedded as je
from execrl.trainers.sft import SFTConfig, train

MODEL = "runs/embedded/model"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--questions", default=None, help="a questions YAML (default: the shipped eight)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t = time.perf_counter()
    problems, programs = je.split_programs("train", MODEL, samples=1, seed=0)
    train_set = je.label(problems, programs)
    problems, programs = je.split_programs("validation", MODEL, samples=1, seed=0, tasks=40)
    heldout = je.label(problems, programs)
    print(
        f"labelled {len(train_set)} train and {len(heldout)} held-out programs in {time.perf_counter() - t:.0f} s"
    )
    questions = judge.load_questions(args.questions)
    data = os.path.join(args.out, "data.jsonl")
    with open(data, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in je.sft_rows(train_set, questions, balance=True, seed=0))
    base = je.prepare_sibling(MODEL, os.path.join(args.out, "base"))
    t = time.perf_counter()
    train(SFTConfig(model=base, data=data, out=os.path.join(args.out, "judge"), max_steps=args.steps,
                    batch_size=args.batch_size, lr=args.lr, warmup_ratio=0.05, schedule="cosine",
                    max_length=je.MAX_POSITIONS, seed=0, log_every=10))  # fmt: skip
    print(f"trained in {time.perf_counter() - t:.0f} s")
    backend = judge.HFJudge(os.path.join(args.out, "judge"), batch_size=16)
    judged = judge.judge([(x.instruction, x.program) for x in heldout], backend, questions)
    report = {}
    for q in questions.questions:
        fact = je.QUESTION_FACTS[q.id]
        known = [(j.answers[q.id].p_yes or 0.0, x.facts[fact]) for j, x in zip(judged, heldout)
                 if x.facts.get(fact) is not None]  # fmt: skip
        yes = sum(t for _, t in known) / len(known)
        report[q.id] = {"n": len(known), "acc": sum((p > 0.5) == t for p, t in known) / len(known),
                        "maj": max(yes, 1 - yes),
                        "auc": je.auc([p for p, t in known if t], [p for p, t in known if not t])}  # fmt: skip
        r = report[q.id]
        print(f"{q.id:10s} n={r['n']:4d} acc={r['acc']:.3f} maj={r['maj']:.3f} auc={r['auc']:.3f}")
    policy = [(sum(j.answers[q.id].p_yes or 0.0 for q in questions.questions), x.facts["passed"])
              for j, x in zip(judged, heldout) if x.source == "policy"]  # fmt: skip
    score_auc = je.auc([s for s, t in policy if t], [s for s, t in policy if not t])
    print(
        f"policy programs: score AUC against passing {score_auc} ({sum(t for _, t in policy)} of {len(policy)} pass)"
    )
    with open(os.path.join(args.out, "heldout.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
