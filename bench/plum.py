"""PLUM on the embedded model: preference rounds labelled by synthesized tests vs the SFT start.

    python bench/plum.py [--seeds 0,1,2] [--minutes 10] [--model runs/embedded/model]
                         [--runs kto,dpo,kto-offpolicy,kto-groundtruth] [--set FIELD=VALUE ...]
                         [--tasks 0] [--folds 2]
    python bench/plum.py --minutes 0.2 --seeds 1      # smoke: the pipeline end to end, ~2 minutes

Stages (each written under `--out`):
1. Tasks: `--tasks` train-split function/api tasks (a seeded choice; 0, the default: all 1,880) and the whole test split
   (testgen/embedded.py `write_tasks`); held-out = the test split (446 tasks whose operation pairs
   never occur in training), greedy pass@1, scored by the sandbox.
2. Test writers: with `--folds K` (default 2), cross-fitting (`cross_fitted_tests`): the tasks
   split into K folds, and fold k's tests written by a sibling of the embedded model fine-tuned on
   the test-writing examples of the validation split and of the other folds, and the train split's
   references (`train_writer(holdout=fold k)`, `--writer-steps`), so no writer is asked about a task
   whose tests it learned. `--folds 1`: one writer that learns the tests of the train tasks that are
   not PLUM's (none when PLUM takes them all). Writer 0 is the off-policy runs' "other model".
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
   - `kto-groundtruth-labelled` (not in the default list): ground-truth labels on the prompts that
     have a valid synthesized test only, so `kto` vs it is the synthesized labels' noise and
     `kto-groundtruth-labelled` vs `kto-groundtruth` the tasks they leave out.
   - `nll`, `kto-alone`, `dpo-alone` (not in the default list): the recipe's ablation (docs/plum.md,
     "Rounds over every task"): the passing programs' NLL alone, and KTO / DPO without it (lr 1e-5).
   - `kto-unbalanced`, `kto-unbalanced-sft`, `kto-sft`, `dpo-sft` (not in the default list): the
     ablation of the collapse under the earlier recipe (docs/plum.md: run with `--set` for its
     settings, lr 1e-5, 64 prompts x 8 samples per round, 1 epoch, no NLL): without KTO's desirable
     weight per round (`kto_balance`), and with the passing programs' NLL (`sft_coef` 1).
5. bench-plum.json (quality, every run's curve, mean and spread of the gain per run kind) and
   bench-plum.png (held-out greedy pass@1 per round, per run).

Runs train seed by seed (every run of seed 0, then of seed 1, ...), so a bench cut short has whole
seeds; `--runs kto,dpo,nll:0` trains `nll` on seed 0 only (`name:0+2`: seeds 0 and 2).
Stages 2-3 are kept in `<out>/stages.json` and reused by a bench started again with the same sizes.
Each finished run writes `<out>/<run>-seed<s>/run.json`; a bench started again with the same
`--out` keeps those runs and trains only the others (a run cut mid-way resumes from its last
checkpoint, as `execrl prefer --resume`).

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
from execrl.testgen.embedded import (
    cross_fitted_tests,
    sample_solutions,
    synthesize_and_validate,
    train_writer,
    write_tasks,
)
from execrl.trainers.prefer import train
from execrl.trainers.prefer_config import PreferConfig

RUNS: dict[str, dict[str, Any]] = {
    "kto": {"algo": "kto"},
    "dpo": {"algo": "dpo"},
    "kto-offpolicy": {"algo": "kto", "samples": "OFFPOLICY"},
    "kto-groundtruth": {"algo": "kto", "ground_truth_tests": True, "tests": None},
    # ground-truth labels on the synthesized tests' prompts only: label noise vs task coverage
    "kto-groundtruth-labelled": {
        "algo": "kto",
        "ground_truth_tests": True,
        "tests": None,
        "data": "LABELLED",
    },
    # the collapse's ablation (docs/plum.md): KTO's class balance (on in the recipe), the passing programs' NLL
    "kto-unbalanced": {"algo": "kto", "kto_balance": False},
    "kto-unbalanced-sft": {"algo": "kto", "kto_balance": False, "sft_coef": 1.0},
    "kto-sft": {"algo": "kto", "sft_coef": 1.0},
    "dpo-sft": {"algo": "dpo", "sft_coef": 1.0},
    # the recipe's ablation (docs/plum.md, "Rounds over every task"): the NLL alone (KTO's terms
    # weighted 0: what the preference loss adds), and KTO / DPO alone (no NLL) at the lr they survive longest
    "nll": {"algo": "kto", "desirable_weight": 0.0, "undesirable_weight": 0.0, "kto_balance": False},
    "kto-alone": {"algo": "kto", "sft_coef": 0.0, "lr": 1e-5},
    "dpo-alone": {"algo": "dpo", "sft_coef": 0.0, "lr": 1e-5},
}
SMOKE = dict(prompts_per_round=8, samples_per_prompt=4, eval_limit=16, max_new_tokens=96)


def run_plan(runs: str, seeds: list[int]) -> list[tuple[str, int]]:
    """(run, seed) in the order they train: seed by seed, each seed's runs in `runs` order, so a bench
    cut short has every run of its first seeds. A run written `name:1+2` trains those seeds only."""
    plan = []
    for seed in seeds:
        for spec in runs.split(","):
            name, _, only = spec.partition(":")
            if not only or seed in {int(x) for x in only.split("+")}:
                plan.append((name, seed))
    return plan


def tests_and_samples(
    args: argparse.Namespace, train_tasks: str, held: list[str], n: int
) -> tuple[dict, str]:
    """Stages 2-3: the writers, their validated tests (validation's quality summary), and the
    off-policy samples (writer 0's, `n` per task); the false-pass rate judged on 4 SFT samples per task."""
    own = sample_solutions(args.model, train_tasks, os.path.join(args.out, "sft-samples.jsonl"), n=4)
    if args.folds > 1:  # every writer learns the tests of the other folds' tasks, none of its own
        quality = cross_fitted_tests(args.model, train_tasks, args.out, folds=args.folds, steps=args.writer_steps,
                                     n=args.synth_n, solutions=own, **ADEQUACY)  # fmt: skip
        writer = quality["writers"][0]
    else:
        writer = train_writer(args.model, os.path.join(args.out, "writer"), steps=args.writer_steps,
                              batch_size=8 if args.smoke else 32, holdout=held)  # fmt: skip
        quality = synthesize_and_validate(
            writer, train_tasks, args.out, n=args.synth_n, solutions=own, **ADEQUACY
        )
    other = sample_solutions(writer, train_tasks, os.path.join(args.out, "writer-samples.jsonl"), n=n, seed=1)
    return quality, other


def labelled_tasks(tests_path: str, all_tasks: str, out: str) -> str:
    """The tasks of `all_tasks` that have a valid synthesized test, and the test split, written to
    `out`: the `kto-groundtruth-labelled` run's data (ground-truth labels on the same prompts)."""
    from execrl.data import builtin

    with open(tests_path) as f:
        valid = {row["task_id"] for row in map(json.loads, f) if row["valid"]}
    problems = builtin.load(all_tasks).values()
    builtin.write_jsonl(out, (p for p in problems if p.task_id in valid or p.split == "test"))
    return out


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
    ap.add_argument("--tasks", type=int, default=0, help="train tasks that get synthesized tests (0: all)")
    ap.add_argument("--folds", type=int, default=2,
                    help="cross-fitted test writers (1: one writer, which learns the other train tasks' tests)")  # fmt: skip
    ap.add_argument("--writer-steps", type=int, default=300)
    ap.add_argument("--synth-n", type=int, default=SYNTH_N, help="test-writer samples per task")
    ap.add_argument("--smoke", action="store_true", help="tiny stages: check the pipeline in ~2 minutes")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a recipe field for every run that does not set it itself, e.g. --set lr=3e-5")  # fmt: skip
    args = ap.parse_args()
    overrides = {k: v for k, _, v in (a.partition("=") for a in args.set)}  # typed by PreferConfig.load
    plan = run_plan(args.runs, [int(s) for s in args.seeds.split(",")])
    unknown = sorted({n for n, _ in plan if n not in RUNS})
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
    n = int(overrides.get("samples_per_prompt", recipe().get("samples_per_prompt", 8)))
    key = {"model": args.model, "tasks": args.tasks, "folds": args.folds, "writer_steps": args.writer_steps,
           "synth_n": args.synth_n, "smoke": args.smoke, "offpolicy_samples": n}  # fmt: skip
    saved = os.path.join(args.out, "stages.json")
    stages = json.load(open(saved)) if os.path.isfile(saved) else {}
    if stages.get("key") == key:  # stages 2-3 of an earlier bench with the same sizes: reused
        quality, other = stages["quality"], stages["other"]
        print(f"tests and samples: kept from {saved}", flush=True)
    else:
        quality, other = tests_and_samples(args, train_tasks, held, n)
        with open(saved + ".tmp", "w") as f:
            json.dump({"key": key, "quality": quality, "other": other}, f, indent=1)
        os.replace(saved + ".tmp", saved)
    labelled = labelled_tasks(
        quality["tests_path"], all_tasks, os.path.join(args.out, "tasks-labelled.jsonl")
    )
    fp = quality.get("false_pass") or {}
    print(f"synthesized tests: {quality['tests']}, valid {quality['valid']} ({quality['valid_rate']:.1%}); "
          f"false pass {fp.get('count')} of {fp.get('pass_valid')} (rate {fp.get('rate')}), "
          f"false fail {fp.get('false_fail')}", flush=True)  # fmt: skip

    if not quality["valid"]:  # nothing to label with: only the ground-truth runs can run
        skipped = sorted({n for n, _ in plan if not RUNS[n].get("ground_truth_tests") or RUNS[n].get("data")})
        if skipped:
            print(f"no synthesized test is valid: skipping {', '.join(skipped)}", flush=True)
        plan = [(n, seed) for n, seed in plan if n not in skipped]
    names = list(dict.fromkeys(n for n, _ in plan))
    results = []
    for name, seed in plan:
        out = os.path.join(args.out, f"{name}-seed{seed}")
        kind = {k: {"OFFPOLICY": other, "LABELLED": labelled}.get(v, v) if isinstance(v, str) else v
                for k, v in RUNS[name].items()}  # fmt: skip
        base = dict(model=args.model, out=out, data=all_tasks, tests=quality["tests_path"], seed=seed,
                    rounds=10_000, max_minutes=args.minutes, resume=True)  # fmt: skip
        # a run's own fields (what it compares) win over --set, which wins over the recipe
        cfg = PreferConfig.load(overrides={**recipe(), **overrides, **base, **kind})
        done = os.path.join(out, "run.json")
        if os.path.isfile(done):  # a finished run of an earlier, interrupted bench: kept as it is
            with open(done) as f:
                results.append(json.load(f))
            print(f"{name} seed {seed}: kept from {done}", flush=True)
            continue
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
        with open(done + ".tmp", "w") as f:
            json.dump(run, f, indent=1)
        os.replace(done + ".tmp", done)
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
