"""PLUM on the embedded model: preference rounds labelled by synthesized tests vs the SFT start.

    python bench/plum.py [--seeds 0,1,2] [--minutes 10] [--model runs/embedded/model]
                         [--runs kto,dpo,kto-offpolicy,kto-groundtruth] [--set FIELD=VALUE ...]
                         [--tasks 512]
    python bench/plum.py --minutes 0.2 --seeds 1      # smoke: the pipeline end to end, ~2 minutes

Stages (each written under `--out`):
1. Tasks: `--tasks` train-split function/api tasks (a seeded choice) and the whole test split
   (testgen/embedded.py `write_tasks`); held-out = the test split (446 tasks whose operation pairs
   never occur in training), greedy pass@1, scored by the sandbox.
2. Test writer: a sibling of the embedded model fine-tuned on the test-writing examples of the
   validation split and of the train tasks that are not PLUM's, and the train split's references
   (`train_writer(holdout=...)`, `--writer-steps`).
3. Synthesized tests (`execrl tests synthesize`, `--synth-n` per task) validated against the
   references with the task-level rules (`execrl tests validate --min-tests 2 --adequacy`,
   `execrl.demo_plum.ADEQUACY`), with the false-pass rate judged on the SFT start's own
   samples: test synthesis quality (validity, reasons, adequacy, false-pass and false-fail rates).
4. Runs, each `--minutes` of training (sampling, labelling and updates; evaluation excluded) from
   the SFT start, `--seeds` seeds, `recipes/plum.yaml`'s settings (`execrl.demo_plum.PLUM`) (`--set` overrides them):
   - `kto`, `dpo`: PLUM-KTO and PLUM-DPO, on-policy, synthesized and validated tests;
   - `kto-offpolicy`: the same KTO on the writer sibling's samples (another model's programs);
   - `kto-groundtruth`: the same on-policy KTO labelled by the benchmark's own tests.
   `kto` vs `kto-offpolicy` is the paper's on- vs off-policy comparison, `kto` vs `kto-groundtruth`
   synthesized vs ground-truth tests, at equal training time.
   - `kto-unbalanced`, `kto-unbalanced-sft`, `kto-sft`, `dpo-sft` (not in the default list): the
     ablation of the collapse (docs/plum.md): without KTO's recommended desirable weight per round
     (`kto_balance`, on in the recipe), and with the passing programs' NLL in the loss (`sft_coef` 1).
5. bench-plum.json (quality, every run's curve, mean and spread of the gain per run kind) and
   bench-plum.png (held-out greedy pass@1 per round, per run).

Run it on an otherwise idle machine: it measures what `--minutes` buy. `--smoke` (implied by
`--minutes` under 1) shrinks every stage (a few writer/SFT steps, 16 tasks, 16 held-out tasks, small rounds) to check the pipeline,
not to measure anything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

from execrl.demo_plum import ADEQUACY, PLUM, SYNTH_N
from execrl.embedded import EmbeddedConfig
from execrl.embedded import train as train_embedded
from execrl.testgen.embedded import sample_solutions, synthesize_and_validate, train_writer, write_tasks
from execrl.trainers.prefer import train
from execrl.trainers.prefer_config import PreferConfig

RUNS = {
    "kto": {"algo": "kto"},
    "dpo": {"algo": "dpo"},
    "kto-offpolicy": {"algo": "kto", "samples": "OFFPOLICY"},
    "kto-groundtruth": {"algo": "kto", "ground_truth_tests": True, "tests": None},
    # the collapse's ablation (docs/plum.md): KTO's class balance (on in the recipe), the passing programs' NLL
    "kto-unbalanced": {"algo": "kto", "kto_balance": False},
    "kto-unbalanced-sft": {"algo": "kto", "kto_balance": False, "sft_coef": 1.0},
    "kto-sft": {"algo": "kto", "sft_coef": 1.0},
    "dpo-sft": {"algo": "dpo", "sft_coef": 1.0},
}
SMOKE = dict(prompts_per_round=8, samples_per_prompt=4, eval_limit=16, max_new_tokens=96)


def recipe() -> dict[str, Any]:
    """recipes/plum.yaml's settings (execrl.demo_plum.PLUM, which `execrl demo --method plum` runs)."""
    return dict(PLUM)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--runs", default="kto,dpo,kto-offpolicy,kto-groundtruth")
    ap.add_argument("--model", default="runs/embedded/model")
    ap.add_argument("--out", default="runs/bench-plum")
    ap.add_argument("--tasks", type=int, default=512, help="train tasks that get synthesized tests")
    ap.add_argument("--writer-steps", type=int, default=300)
    ap.add_argument("--synth-n", type=int, default=SYNTH_N, help="test-writer samples per task")
    ap.add_argument("--smoke", action="store_true", help="tiny stages: check the pipeline in ~2 minutes")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a PreferConfig field for every run, e.g. --set lr=3e-5")  # fmt: skip
    args = ap.parse_args()
    overrides = {k: v for k, _, v in (a.partition("=") for a in args.set)}  # typed by PreferConfig.load
    unknown = [n for n in args.runs.split(",") if n not in RUNS]
    if unknown:
        ap.error(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")
    t_start = time.perf_counter()
    args.smoke = args.smoke or args.minutes < 1  # under a minute of training measures nothing
    if args.smoke:
        args.tasks, args.writer_steps, args.synth_n = 16, 5, 2
        overrides = {**SMOKE, **overrides}
        if not os.path.isdir(args.model):  # a barely trained embedded model: the pipeline, not a result
            args.model = train_embedded(
                EmbeddedConfig(out=os.path.join(args.out, "embedded"), max_steps=5, batch_size=8)
            )
    elif not os.path.isdir(args.model):
        train_embedded(EmbeddedConfig(out=os.path.dirname(args.model)))
    os.makedirs(args.out, exist_ok=True)

    train_tasks, all_tasks = write_tasks(args.out, args.tasks)
    held = [json.loads(line)["task_id"] for line in open(train_tasks)]
    writer = train_writer(args.model, os.path.join(args.out, "writer"), steps=args.writer_steps,
                          batch_size=8 if args.smoke else 32, holdout=held)  # fmt: skip
    n = int(overrides.get("samples_per_prompt", recipe().get("samples_per_prompt", 8)))
    own = sample_solutions(args.model, train_tasks, os.path.join(args.out, "sft-samples.jsonl"), n=4)
    other = sample_solutions(writer, train_tasks, os.path.join(args.out, "writer-samples.jsonl"), n=n, seed=1)
    quality = synthesize_and_validate(
        writer, train_tasks, args.out, n=args.synth_n, solutions=own, **ADEQUACY
    )
    fp = quality.get("false_pass") or {}
    print(f"synthesized tests: {quality['tests']}, valid {quality['valid']} ({quality['valid_rate']:.1%}); "
          f"false pass {fp.get('count')} of {fp.get('pass_valid')} (rate {fp.get('rate')}), "
          f"false fail {fp.get('false_fail')}", flush=True)  # fmt: skip

    names = args.runs.split(",")
    if not quality["valid"]:  # nothing to label with: only the ground-truth runs can run
        skipped = [n for n in names if not RUNS[n].get("ground_truth_tests")]
        print(f"no synthesized test is valid: skipping {', '.join(skipped)}", flush=True)
        names = [n for n in names if n not in skipped]
    results = []
    for name in names:
        for seed in [int(s) for s in args.seeds.split(",")]:
            out = os.path.join(args.out, f"{name}-seed{seed}")
            kind = {k: (other if v == "OFFPOLICY" else v) for k, v in RUNS[name].items()}
            base = dict(model=args.model, out=out, data=all_tasks, tests=quality["tests_path"], seed=seed,
                        rounds=10_000, max_minutes=args.minutes)  # fmt: skip
            cfg = PreferConfig.load(overrides={**recipe(), **base, **kind, **overrides})
            t0 = time.perf_counter()
            summary = train(cfg)
            with open(os.path.join(out, "rounds.jsonl")) as f:
                rounds = [json.loads(line) for line in f]
            evals = summary["eval"]
            run = {"run": name, "seed": seed, "before": evals[0]["pass@1"], "after": evals[-1]["pass@1"],
                   "best": max(e["pass@1"] for e in evals), "rounds": len(rounds), "steps": summary["steps"],
                   "pairs": [r["pairs"] for r in rounds], "examples": [r["examples"] for r in rounds],
                   "train_pass_rate": [r["pass_rate"] for r in rounds],
                   "train_minutes": summary["train_seconds"] / 60, "wall_minutes": (time.perf_counter() - t0) / 60,
                   "curve": [(e["round"], e["pass@1"]) for e in evals]}  # fmt: skip
            results.append(run)
            print(f"{name} seed {seed}: held-out greedy pass@1 {run['before']:.3f} -> {run['after']:.3f} "
                  f"({100 * (run['after'] - run['before']):+.1f} points) in {run['rounds']} rounds, "
                  f"{run['steps']} steps, {run['train_minutes']:.1f} min training", flush=True)  # fmt: skip

    summary_rows = {}
    for name in names:
        gains = [100 * (r["after"] - r["before"]) for r in results if r["run"] == name]
        spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
        summary_rows[name] = {"gain_mean": statistics.mean(gains), "gain_std": spread, "seeds": len(gains)}
        print(f"{name}: gain {statistics.mean(gains):+.1f} ± {spread:.1f} points over {len(gains)} seeds")
    report = {"minutes": args.minutes, "tasks": args.tasks, "writer_steps": args.writer_steps,
              "synth_n": args.synth_n, "smoke": args.smoke, "settings": {**recipe(), **overrides},
              "test_quality": quality, "runs": results, "summary": summary_rows,
              "total_minutes": (time.perf_counter() - t_start) / 60}  # fmt: skip
    with open(os.path.join(args.out, "bench-plum.json"), "w") as f:
        json.dump(report, f, indent=1)
    _plot(results, os.path.join(args.out, "bench-plum.png"))
    print(f"wrote {args.out}/bench-plum.json and bench-plum.png")


def _plot(results: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colors: dict[str, Any] = {}
    for r in results:
        color = colors.setdefault(r["run"], f"C{len(colors)}")
        xs, ys = zip(*r["curve"])
        ax.plot(xs, ys, marker="o", color=color, alpha=0.8, label=r["run"] if r["seed"] == min(
            x["seed"] for x in results if x["run"] == r["run"]) else None)  # fmt: skip
    ax.set(xlabel="round", ylabel="held-out greedy pass@1", title="PLUM on the embedded model (2 CPU cores)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
