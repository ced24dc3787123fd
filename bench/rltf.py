"""RLTF on the embedded model (issue 16): the paper's feedback ablation, RLTF's feedback in today's
best loop, and what the feedback costs over plain evaluation.

    python bench/rltf.py [--parts ablation,sft,rl-only,best] [--seeds 3] [--minutes 10] [--budget steps|time] [--jobs 1]
                         [--model runs/embedded/model] [--out runs/bench-rltf] [--eval-every 20]
                         [--eval-limit 0] [--set FIELD=VALUE ...]
    python bench/rltf.py --timing [--timing-samples 10000] [--workers N] [--repeats 3]

Parts (each run: held-out greedy pass@1 on the built-in suite's test split before and after,
`--minutes` of training, evaluation excluded; seeds 0 .. `--seeds` - 1):

The budget (bench/training_runs.py): `--budget steps`, the default, gives each run the steps that
`--minutes` buy on this machine when it is idle (STEPS_PER_10_MIN: RLTF's loop 4.2 s/step, 12
steps timed alone and 101 steps in 7.1 min in the demo; GRPO + replay 104-132 steps in 10 min in
bench/rl.py's three runs), so runs can share the machine (`--jobs`) and an interrupted bench
resumes; `--budget time` is the literal wall-clock budget, for an idle machine only.

(a) `ablation`: RLTF's own loop (trainers/rltf.py with `execrl.demo.RLTF`, = recipes/rltf.yaml),
    the paper's Table 4 on the embedded model: coarse feedback alone, coarse + adaptive, coarse +
    fine-grained, all three (`--reward coarse`, `adaptive`, `coarse+fine`, `rltf`). Besides the
    gain, each run reports the share of its held-out failures that are syntax errors and runtime
    errors (the fine-grained feedback is meant to lower them).
(sft) `sft`: RLTF's loop with its RL steps off (`pg_coef: 0`), the supervised steps on reference
    solutions alone on the same cadence: what the loop gains without any unit-test feedback.
(rl-only) `rl-only`: RLTF's loop without its supervised steps (`rltf_sft_every: 0`), coarse
    feedback against all three: the feedback's effect when nothing else trains the policy.
(b) `best`: today's best loop, GRPO + self-imitation replay with exactly bench/rl.py's settings
    (`execrl.demo.GRPO`, = recipes/grpo-replay-rltf.yaml but for the reward), with `--reward rltf`
    against its measured `pass_ratio`.

Writes bench-rltf.json (one row per run) and bench-rltf.png (gain per configuration, and the
held-out failure shares) under `--out`, and prints a table. Smoke test (a step or two per run; shorter completions so that a
barely trained `--model` does not write 160 tokens of noise every time):
`--minutes 0.2 --seeds 1 --eval-limit 16 --set max_new_tokens=32 --set prompts_per_step=8`.

`--timing`: the cost of RLTF's feedback. `execrl rewards --reward rltf` and `execrl evaluate` on
the same `--timing-samples` samples of the built-in suite (each train/test task's reference, and
variants of it that fail, raise, do not compile, or never close a bracket, so every penalty rule
runs), alternated `--repeats` times; prints each wall time and the overhead (target: at most
+10%). Writes bench-rltf-timing.json. Smoke test: `--timing --timing-samples 200 --repeats 1`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import training_runs
from execrl.demo import GRPO, RLTF
from execrl.embedded import EmbeddedConfig
from execrl.embedded import train as train_embedded

# steps that 10 minutes of training buy on this machine (2 cores) when nothing else runs (see above)
STEPS_PER_10_MIN = {"rltf": 140, "grpo": 115}

# (part, label, settings): the paper's names for its ablation rows
RUNS = [
    ("ablation", "coarse", {**RLTF, "reward": "coarse"}),
    ("ablation", "coarse+adaptive", {**RLTF, "reward": "adaptive"}),
    ("ablation", "coarse+fine", {**RLTF, "reward": "coarse+fine"}),
    ("ablation", "coarse+adaptive+fine", {**RLTF, "reward": "rltf"}),
    ("sft", "supervised steps alone", {**RLTF, "reward": "coarse", "pg_coef": 0.0}),
    ("rl-only", "coarse, no supervised steps", {**RLTF, "reward": "coarse", "rltf_sft_every": 0}),
    ("rl-only", "all three, no supervised steps", {**RLTF, "reward": "rltf", "rltf_sft_every": 0}),
    ("best", "grpo+replay pass_ratio", {**GRPO, "reward": "pass_ratio"}),
    ("best", "grpo+replay rltf", {**GRPO, "reward": "rltf"}),
]


PART_COLORS = {"ablation": "C0", "sft": "C4", "rl-only": "C5", "best": "C1"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="ablation,sft,rl-only,best")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default 3)")
    ap.add_argument("--minutes", type=float, default=10.0)
    training_runs.add_arguments(ap)  # --budget, --jobs (and --one LABEL:SEED, a run in this process)
    ap.add_argument("--model", default="runs/embedded/model")
    ap.add_argument("--out", default="runs/bench-rltf")
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--eval-limit", type=int, default=0, help="first N held-out tasks (0: all 446)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override an RLConfig field for every run")  # fmt: skip
    ap.add_argument(
        "--timing", action="store_true", help="time execrl rewards --reward rltf vs execrl evaluate"
    )
    ap.add_argument("--timing-samples", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0, help="sandbox workers (0: the CPU cores)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.timing:
        _timing(args)
        return
    overrides = {k: v for k, _, v in (a.partition("=") for a in args.set)}  # typed by RLConfig.load
    if not os.path.isdir(args.model):
        train_embedded(EmbeddedConfig(out=os.path.dirname(args.model)))
    training_runs.check(ap, args)
    if args.one:
        label, seed = args.one.rsplit(":", 1)
        part, settings = next((p, s) for p, lab, s in RUNS if lab == label)
        run = _run(args, part, label, settings, int(seed), overrides)
        training_runs.write_run(_run_json(args, args.one), run)
        return
    parts = args.parts.split(",")
    names = [f"{label}:{seed}" for part, label, _ in RUNS if part in parts for seed in range(args.seeds)]
    algo_of = {label: settings["algo"] for _, label, settings in RUNS}
    results = training_runs.run_all(
        __file__,
        args,
        names,
        lambda name: _run_json(args, name),
        lambda name: training_runs.budget(args, STEPS_PER_10_MIN[algo_of[name.rsplit(":", 1)[0]]]),
    )
    _dump(args, "bench-rltf.json", results)
    _summary(results)
    _plot(results, os.path.join(args.out, "bench-rltf.png"))


def _failure_shares(row: dict[str, Any]) -> dict[str, float]:
    """Shares of an evaluation's failing tasks that are syntax errors and runtime errors."""
    failed = row["tasks"] - round(row["pass@1"] * row["tasks"])
    return {
        kind: row.get(f"status/{kind}", 0) / failed if failed else 0.0
        for kind in ("syntax_error", "runtime_error")
    }


def _run_dir(args: argparse.Namespace, label: str, seed: int) -> str:
    return os.path.join(args.out, f"{label.replace(' ', '-').replace('+', '_')}-seed{seed}")


def _run_json(args: argparse.Namespace, name: str) -> str:
    label, seed = name.rsplit(":", 1)
    return os.path.join(_run_dir(args, label, int(seed)), "run.json")


def _run(args: argparse.Namespace, part: str, label: str, settings: dict, seed: int, overrides: dict) -> dict:
    budget = training_runs.budget(args, STEPS_PER_10_MIN[settings["algo"]])
    base = dict(model=args.model, out=_run_dir(args, label, seed), seed=seed, eval_every=args.eval_every,
                eval_limit=args.eval_limit, report_to="none")  # fmt: skip
    trained = training_runs.train_run({**base, **settings, **overrides}, budget)
    cfg, summary, evals, log = trained["config"], trained["summary"], trained["eval"], trained["log"]
    run = {"part": part, "label": label, "reward": cfg.reward, "algo": cfg.algo, "seed": seed, "budget": budget,
           "before": evals[0]["pass@1"], "after": evals[-1]["pass@1"], "best": max(e["pass@1"] for e in evals),
           "failures_before": _failure_shares(evals[0]), "failures_after": _failure_shares(evals[-1]),
           "steps": summary["steps"], "train_minutes": summary["train_seconds"] / 60,
           "wall_minutes": trained["wall_minutes"],
           "seconds_per_step": summary["train_seconds"] / max(1, summary["steps"]),
           "curve": [(e["step"], e["pass@1"]) for e in evals],
           "reward_curve": [(r["step"], r["reward"]) for r in log]}  # fmt: skip
    run["gain"] = 100 * (run["after"] - run["before"])
    fa = run["failures_after"]
    print(f"{label} seed {seed}: held-out greedy pass@1 {run['before']:.3f} -> {run['after']:.3f} "
          f"({run['gain']:+.1f} points) in {run['steps']} steps, {run['train_minutes']:.1f} min; held-out failures: "
          f"{fa['syntax_error']:.1%} syntax, {fa['runtime_error']:.1%} runtime", flush=True)  # fmt: skip
    return run


def _summary(results: list[dict]) -> None:
    print(f"\n{'configuration':<24} {'gain (points)':>18} {'syntax share':>13} {'runtime share':>14}")
    for label in dict.fromkeys(r["label"] for r in results):
        rows = [r for r in results if r["label"] == label]
        gains = [r["gain"] for r in rows]
        spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
        syntax = statistics.mean(r["failures_after"]["syntax_error"] for r in rows)
        runtime = statistics.mean(r["failures_after"]["runtime_error"] for r in rows)
        print(
            f"{label:<24} {statistics.mean(gains):>+10.1f} ± {spread:<5.1f} {syntax:>13.1%} {runtime:>14.1%}"
        )


def _dump(args: argparse.Namespace, name: str, obj: object) -> None:
    with open(os.path.join(args.out, name), "w") as f:
        json.dump(obj, f, indent=1)


def _plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(r["label"] for r in results))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, label in enumerate(labels):
        rows = [r for r in results if r["label"] == label]
        gains = [r["gain"] for r in rows]
        axes[0].bar(i, statistics.mean(gains), color=PART_COLORS[rows[0]["part"]], alpha=0.7)
        axes[0].scatter([i] * len(gains), gains, color="k", s=12, zorder=3)
        for j, kind in enumerate(("syntax_error", "runtime_error")):
            share = statistics.mean(r["failures_after"][kind] for r in rows)
            axes[1].bar(
                i + (j - 0.5) * 0.4, share, width=0.4, color=f"C{2 + j}", label=kind if i == 0 else None
            )
    start = results[0]["failures_before"] if results else {}
    for j, kind in enumerate(("syntax_error", "runtime_error")):
        if kind in start:
            axes[1].axhline(start[kind], color=f"C{2 + j}", ls="--", lw=1)
    for ax in axes:
        ax.set_xticks(range(len(labels)), labels, rotation=25, ha="right", fontsize=8)
    axes[0].set(ylabel="held-out greedy pass@1 gain (points)",
                title="RLTF's loop: blue, supervised only: purple, no supervised: brown; GRPO: orange")  # fmt: skip
    axes[1].set(ylabel="share of held-out failures", title="failures after training (dashed: start)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# --timing: execrl rewards --reward rltf against execrl evaluate on the same samples.


def _variants(indent: str) -> list[str]:
    """Completions to put after a reference's own text: none, a wrong answer first, an exception,
    a syntax error on a middle line, a bracket never closed (global)."""
    return ["", f"{indent}return None\n", f"{indent}1 / 0\n", f"{indent}x = = 1\n", f"{indent}x = (\n"]


def write_timing_samples(path: str, n: int) -> int:
    from execrl.data import builtin

    problems = list(builtin.load().values())
    rows = []
    while len(rows) < n:
        for p in problems:
            first = next((line for line in p.solution.splitlines() if line.strip()), "")
            indent = first[: len(first) - len(first.lstrip())]
            for prefix in _variants(indent):
                rows.append({"task_id": p.task_id, "completion": prefix + p.solution})
            if len(rows) >= n:
                break
    with open(path, "w", encoding="utf-8") as f:
        for row in rows[:n]:
            f.write(json.dumps(row) + "\n")
    return min(n, len(rows))


def _timing(args: argparse.Namespace) -> None:
    samples = os.path.join(args.out, "timing-samples.jsonl")
    n = write_timing_samples(samples, args.timing_samples)
    common = ["--benchmark", "builtin", "--samples", samples, "--timeout", "1"]
    if args.workers:
        common += ["--workers", str(args.workers)]
    commands = {
        "evaluate": [
            "evaluate",
            *common,
            "--k",
            "1",
            "--out",
            os.path.join(args.out, "timing-results.jsonl"),
        ],
        "rewards": [
            "rewards",
            *common,
            "--reward",
            "rltf",
            "--out",
            os.path.join(args.out, "timing-rewards.jsonl"),
        ],
    }
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    times: dict[str, list[float]] = {k: [] for k in commands}
    for r in range(args.repeats):
        for name in list(commands)[:: 1 if r % 2 == 0 else -1]:  # alternate the order
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "execrl.cli", *commands[name]], check=True, env=env,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            times[name].append(time.perf_counter() - t0)
            print(f"{name}: {times[name][-1]:.1f} s", flush=True)
    ev, rw = statistics.median(times["evaluate"]), statistics.median(times["rewards"])
    overhead = 100 * (rw / ev - 1)
    verdict = "meets" if overhead <= 10 else "MISSES"
    print(f"{n} samples: execrl evaluate {ev:.1f} s, execrl rewards --reward rltf {rw:.1f} s (medians of "
          f"{args.repeats}): {overhead:+.1f}% — {verdict} the +10% target")  # fmt: skip
    _dump(args, "bench-rltf-timing.json", {"samples": n, "seconds": times, "overhead_percent": overhead})


if __name__ == "__main__":
    main()
