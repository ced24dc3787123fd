"""Collect the noisy-judge runs (noisy_judge.py) into one JSON: per run, the judge's verdicts over the
first and last 10 steps and the held-out metrics.

    python docs/experiments/rlaif-noise/summarize.py [--plot noise.png] runs/noise/flip0.1 ... > noise.json

Each RUN is a noisy_judge.py OUT; its stdout must be in RUN.log (the RESULT and SAMPLED lines).
Prints {"runs": [...], "by_flip": {flip: mean and std over the seeds of greedy and sampled
executability, and of the judge's precision over the first and last 10 steps}}; `--plot` draws
held-out executability (greedy and sampled) against the flip share, one dot per seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

import yaml


def window(rows: list[dict[str, int]]) -> dict[str, float]:
    n = {k: sum(r[k] for r in rows) for k in ("programs", "run", "approved", "approved_run")}
    return {
        "run": round(n["run"] / n["programs"], 3),  # the share of the policy's programs that run
        "admitted": round(n["approved"] / n["programs"], 3),  # the share the judge approves
        "precision": round(n["approved_run"] / max(1, n["approved"]), 3),  # of those, the share that run
    }


def summarize(run: str) -> dict[str, Any]:
    with open(f"{run}/verdicts.jsonl", encoding="utf-8") as f:
        verdicts = [json.loads(line) for line in f]
    with open(f"{run}/rl_config.yaml", encoding="utf-8") as f:
        seed = int(yaml.safe_load(f)["seed"])
    flip = float(run.rsplit("/", 1)[-1].removeprefix("flip").split("-")[0])
    out: dict[str, Any] = {"run": run, "flip": flip, "seed": seed, "steps": len(verdicts),
                           "first_10": window(verdicts[:10]), "last_10": window(verdicts[-10:])}  # fmt: skip
    with open(f"{run}.log", encoding="utf-8") as f:
        for line in f:
            if line.startswith(("RESULT ", "SAMPLED ")):
                kind, _, metrics = line.split(" ", 2)
                out["greedy" if kind == "RESULT" else "sampled"] = json.loads(metrics)
    with open(f"{run}/eval.jsonl", encoding="utf-8") as f:
        out["greedy_pass@1_curve"] = [(r["step"], round(r["pass@1"], 3)) for r in map(json.loads, f)]
    return out


def by_flip(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def stats(values: list[float]) -> list[float]:
        return [
            round(statistics.mean(values), 3),
            round(statistics.stdev(values) if len(values) > 1 else 0.0, 3),
        ]

    out: dict[str, Any] = {}
    for flip in sorted({r["flip"] for r in runs}):
        rs = [r for r in runs if r["flip"] == flip]
        out[str(flip)] = {
            "seeds": sorted(r["seed"] for r in rs),
            "greedy_executable": stats([r["greedy"]["executable"] for r in rs]),
            "sampled_executable": stats([r["sampled"]["executable"] for r in rs]),
            "sampled_api_match": stats([r["sampled"]["api_match"] for r in rs]),
            "precision_first_10": stats([r["first_10"]["precision"] for r in rs]),
            "precision_last_10": stats([r["last_10"]["precision"] for r in rs]),
            "run_first_10": stats([r["first_10"]["run"] for r in rs]),
            "run_last_10": stats([r["last_10"]["run"] for r in rs]),
        }
    return out


def plot(runs: list[dict[str, Any]], path: str, sft: dict[str, float], points: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = by_flip(runs)
    xs = [float(f) for f in means]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("greedy", "sampled")):
        ax.scatter([r["flip"] for r in runs], [r[key]["executable"] for r in runs], s=14, label="seeds")
        ax.plot(xs, [means[f][f"{key}_executable"][0] for f in means], label="mean")
        ax.axhline(sft[key], color="grey", ls="--", label="SFT")
        ax.axhline(sft[key] + 0.045, color="green", ls=":", label="SFT + 4.5 points")
        for point in points:  # LABEL:X:GREEDY:SAMPLED, e.g. a learned judge at 1 - its AUC
            label, x, greedy, sampled = point.split(":")
            y = float(greedy if key == "greedy" else sampled)
            ax.scatter([float(x)], [y], marker="x", s=40, label=label)
        ax.set(xlabel="error share of the judge (within-task AUC = 1 - share)",
               ylabel="held-out executable", title=key, ylim=(0.2, 1.0))  # fmt: skip
    axes[0].legend(fontsize=7)
    fig.suptitle("self-imitation of what a judge of known error rate approves (68 steps)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--plot", default=None)
    ap.add_argument("--point", action="append", default=[], help="LABEL:X:GREEDY:SAMPLED, drawn as a cross")
    ap.add_argument("--sft-greedy", type=float, default=0.926)  # runs/bench-rlaif-large, measured there
    ap.add_argument("--sft-sampled", type=float, default=0.573)
    args = ap.parse_args()
    runs = [summarize(r.rstrip("/")) for r in args.runs]
    if args.plot:
        plot(runs, args.plot, {"greedy": args.sft_greedy, "sampled": args.sft_sampled}, args.point)
    print(json.dumps({"runs": runs, "by_flip": by_flip(runs)}, indent=1))
