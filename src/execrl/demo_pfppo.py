"""`execrl demo --method pf-ppo`: PF-PPO end to end on the embedded default, on a laptop's CPU.

1. The sandbox check (as the GRPO demo: eval/hostile.py).
2. The embedded model (embedded.py): reused from `runs/embedded/model`, or trained (~2 minutes).
3. A reward model from the SFT model's own programs (`rm_from_policy`): `rm_samples` samples of
   each of `rm_tasks` train-split tasks, executed, paired by outcome (passed over failed, higher
   pass ratio over lower; trainers/reward_model.py) and a Bradley–Terry head trained on the SFT
   backbone. The data is deliberately limited, so the RM is imperfect — the situation PF-PPO is
   for. Held-out pair accuracy (pairs of train tasks the RM never saw) goes in the report.
4. R² of each filtration strategy (`r2_of_policy`): 5 samples of each of `r2_tasks` validation
   tasks, RM reward against the tests' pass ratio (`execrl filtration collect` + `analyze`); the
   strategy with the highest R² (of none, bon, br, bw) is the one PPO uses, as the paper prescribes.
5. PPO against the RM with that filtration for `minutes` minutes (`PFPPO`); the tests only measure.
   Held-out greedy pass@1 on the test split before and after (the run's own evaluation).
6. `out/report.md` and `out/report.png` (R² points and lines; held-out pass@1, RM reward and
   training pass rate over the steps).

Everything here is shared with bench/pfppo.py, which runs the comparison of strategies over seeds.
The settings (`PFPPO`) are the paper's, scaled down to the embedded model; they are not tuned.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from typing import Any

__all__ = ["PFPPO", "r2_of_policy", "rm_config", "rm_from_policy", "run"]

# The paper's PPO (critic + GAE, KL-shaped reward, whitened advantages, N = 5 samples per prompt),
# scaled to the embedded model: lr and lengths as bench/rl.py's PPO, no replay (it would train on
# the tests' verdicts; with reward rm the tests only measure).
PFPPO = dict(algo="ppo", reward="rm", lr=5e-5, warmup_steps=5, schedule="wsd", temperature=0.7,
             prompts_per_step=16, samples_per_prompt=5, kl_coef=0.05, max_new_tokens=160)  # fmt: skip
STRATEGIES = ("none", "bon", "br", "bw")


def rm_from_policy(
    model: str,
    out: str,
    *,
    tasks: int = 2229,
    samples: int = 4,
    steps: int = 600,
    lr: float = 1e-4,
    seed: int = 0,
    workers: int | None = None,
    temperature: float = 0.7,
) -> dict[str, Any]:
    """Train a reward model on pairs of `model`'s own programs for `tasks` train-split tasks of the
    built-in suite (a seeded draw), `samples` each. Returns {"rm": directory, "report": the RM's
    report.json, "pairs_source": {...}}; writes out/samples.jsonl, out/results.jsonl, out/rm/."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from execrl.data import builtin
    from execrl.filtration.collect import sample_programs
    from execrl.rewards.execution import ExecutionReward
    from execrl.trainers.reward_model import train as rm_train
    from execrl.types import Limits

    os.makedirs(out, exist_ok=True)
    problems = builtin.load()
    train_ids = [t for t, p in problems.items() if p.split == "train"]
    ids = sorted(random.Random(seed).sample(train_ids, min(tasks, len(train_ids))), key=train_ids.index)
    tokenizer = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    rows, texts = sample_programs(lm, tokenizer, builtin, problems, ids, n=samples, temperature=temperature,
                                  max_new_tokens=160, seed=seed, progress=True)  # fmt: skip
    del lm
    reward = ExecutionReward("builtin", problems=problems, kind="pass_ratio", limits=Limits(timeout=1.0),
                             workers=workers)  # fmt: skip
    try:
        scored = reward.score(rows, texts)
    finally:
        reward.close()
    samples_path, results_path = os.path.join(out, "samples.jsonl"), os.path.join(out, "results.jsonl")
    with open(samples_path, "w") as fs, open(results_path, "w") as fr:
        for t, text, s in zip(rows, texts, scored):
            completion = builtin.completion_from_output(problems[t], text, chat=False)
            fs.write(json.dumps({"task_id": t, "completion": completion}) + "\n")
            r = s.result
            fr.write(json.dumps({"task_id": t, "status": r.status.value, "passed": r.passed,
                                 "tests_passed": r.tests_passed, "tests_total": r.tests_total}) + "\n")  # fmt: skip
    rm_dir = os.path.join(out, "rm")
    shutil.rmtree(rm_dir, ignore_errors=True)
    rm_train(rm_config(model, rm_dir, samples_path, results_path, steps=steps, lr=lr, seed=seed))
    with open(os.path.join(rm_dir, "report.json")) as f:
        report = json.load(f)
    source = {
        "tasks": len(ids),
        "samples": len(rows),
        "pass_rate": sum(s.result.passed for s in scored) / len(scored),
    }
    return {"rm": rm_dir, "report": report, "pairs_source": source}


def rm_config(
    model: str, out: str, samples: str, results: str, *, steps: int, lr: float, seed: int = 0
) -> Any:
    """The RMConfig of `rm_from_policy`'s reward model (bench/pfppo_rm.py retrains it on the same
    samples): batches of 16 pairs, at most 4 pairs per task, a fifth of the tasks held out."""
    from execrl.trainers.reward_model import RMConfig

    return RMConfig(model=model, out=out, samples=samples, results=results, max_steps=steps, batch_size=16, lr=lr,
                    warmup_ratio=0.05, max_length=256, pairs_per_prompt=4, eval_fraction=0.2, seed=seed,
                    log_every=10)  # fmt: skip


def r2_of_policy(
    model: str,
    rm: str,
    out: str,
    *,
    tasks: int = 200,
    n: int = 5,
    seed: int = 0,
    workers: int | None = None,
    temperature: float = 0.7,
    strategies: tuple[str, ...] = STRATEGIES,
    quantile_strategies: bool = True,
) -> dict[str, Any]:
    """R² of each strategy on `n` samples of `tasks` validation-split tasks from `model`, scored by
    `rm`. With `quantile_strategies`, also top-bottom with the reward's 80th / 20th percentiles as
    thresholds. Returns {"r2": {name: R² or None}, "slope": {...}, "kept": {...}, "collect": summary,
    "fits": the Fit objects}; writes out (the scores file)."""
    from execrl.filtration import analyze
    from execrl.filtration.collect import collect

    summary = collect(model, rm, "builtin", out, n=n, split="validation", limit=tasks, temperature=temperature,
                      max_new_tokens=160, seed=seed, timeout=1.0, workers=workers, progress=True)  # fmt: skip
    scored = analyze.read_scores(out)
    fits = analyze.analyze(scored, list(strategies), bins=10, seed=seed)
    if quantile_strategies:
        rewards = sorted(s.reward for s in scored)
        hi, lo = rewards[int(0.8 * (len(rewards) - 1))], rewards[int(0.2 * (len(rewards) - 1))]
        if lo < hi:
            fits += analyze.analyze(
                scored, ["top-bottom"], bins=10, seed=seed, threshold=hi, low_threshold=lo
            )
    return {
        "r2": {f.strategy: f.r2 for f in fits},
        "slope": {f.strategy: f.slope for f in fits},
        "kept": {f.strategy: f.kept_fraction for f in fits},
        "collect": summary,
        "fits": fits,
    }


def best_strategy(r2: dict[str, float | None]) -> str:
    """The strategy of highest R² among none, bon, br, bw (br when none is defined)."""
    defined = {k: v for k, v in r2.items() if k in STRATEGIES and v is not None}
    return max(defined, key=lambda k: defined[k]) if defined else "br"


def run(out: str = "runs/demo-pf-ppo", minutes: float = 5.0, workers: int | None = None,
        progress: Any = print, rm_tasks: int = 2229, rm_steps: int = 600, r2_tasks: int = 200,
        eval_limit: int = 0, model: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The demo; `model` replaces the embedded default (tests and smoke runs use a smaller one)."""
    from execrl.demo import policy_model, sandbox_check
    from execrl.trainers.rl import train
    from execrl.trainers.rl_config import RLConfig

    t_start = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    fooled, _ = sandbox_check(out, workers, progress, 6)
    model = policy_model(model, progress, 6)
    progress(f"[3/6] reward model from the SFT model's own programs ({rm_tasks} train tasks x 4)")
    rm = rm_from_policy(model, os.path.join(out, "rm-data"), tasks=rm_tasks, steps=rm_steps, workers=workers)
    held = rm["report"]["heldout"]
    if held:
        progress(f"      held-out pair accuracy {held['accuracy']:.3f} ({held['pairs']} pairs)")
    progress(f"[4/6] R² of the filtration strategies ({r2_tasks} validation tasks x 5 samples)")
    r2 = r2_of_policy(model, rm["rm"], os.path.join(out, "scores.jsonl"), tasks=r2_tasks, workers=workers)
    strategy = best_strategy(r2["r2"])
    progress("      " + ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} undefined" for k, v in r2["r2"].items())
             + f" -> {strategy}")  # fmt: skip
    progress(f"[5/6] PPO against the reward model, filtration {strategy}, {minutes:g} minutes")
    run_dir = os.path.join(out, "ppo")
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = RLConfig(model=model, out=run_dir, rm=rm["rm"], filtration=strategy, max_steps=10_000,
                   max_minutes=minutes, eval_every=20, eval_limit=eval_limit, workers=workers or 0,
                   report_to="tensorboard", **PFPPO)  # type: ignore[arg-type]  # fmt: skip
    summary = train(cfg)
    evals = summary["eval"]
    before, after = evals[0]["pass@1"], evals[-1]["pass@1"]
    progress(f"[6/6] held-out greedy pass@1 {before:.3f} -> {after:.3f}")
    result = {"hostile_passed": fooled, "rm": rm["report"], "r2": r2["r2"], "slope": r2["slope"],
              "kept": r2["kept"], "strategy": strategy, "before": before, "after": after,
              "steps": summary["steps"], "train_seconds": summary["train_seconds"],
              "seconds": time.perf_counter() - t_start, "eval_tasks": evals[0]["tasks"]}  # fmt: skip
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    _report(out, run_dir, result, r2["fits"], cfg)
    return result


def _report(out: str, run_dir: str, r: dict[str, Any], fits: list[Any], cfg: Any) -> None:
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        log = [json.loads(line) for line in f]
    with open(os.path.join(run_dir, "eval.jsonl")) as f:
        evals = [json.loads(line) for line in f]
    held = r["rm"]["heldout"]
    rm_line = (
        f"held-out pair accuracy **{held['accuracy']:.3f}** on {held['pairs']} pairs of "
        f"{r['rm']['heldout_prompts']} unseen train tasks"
        if held
        else "no held-out pairs"
    )
    lines = [
        "# execrl demo: PF-PPO on the embedded model",
        "",
        f"Sandbox: hostile variants passed: {r['hostile_passed']} (must be 0).",
        "",
        f"Reward model: Bradley–Terry head on the SFT model, {r['rm']['train_pairs']} training pairs of its own "
        f"programs (passed over failed, higher pass ratio over lower); {rm_line}.",
        "",
        "R² of RM reward against the tests' pass ratio on the SFT policy's samples (validation tasks, 5 each):",
        "",
        "| strategy | R² | slope | kept |",
        "|---|---|---|---|",
    ]
    for name, value in r["r2"].items():
        shown = f"{value:.3f}" if value is not None else "undefined"
        slope = r["slope"][name]
        lines.append(f"| {name} | {shown} | {slope:.3f} | {r['kept'][name]:.2f} |" if slope is not None
                     else f"| {name} | {shown} | – | {r['kept'][name]:.2f} |")  # fmt: skip
    lines += [
        "",
        f"PPO against the RM (the tests only measure) with filtration **{r['strategy']}** (highest R² of none, bon, br, bw): "
        f"{r['steps']} step{'s' if r['steps'] != 1 else ''} in {r['train_seconds'] / 60:.1f} min ({cfg.prompts_per_step} prompts x "
        f"{cfg.samples_per_prompt} samples, lr {cfg.lr:g} ({cfg.schedule}), KL {cfg.kl_coef:g}, "
        f"temperature {cfg.temperature:g}).",
        "",
        f"| held-out greedy pass@1 ({r['eval_tasks']} test tasks) | SFT start | after PF-PPO | change |",
        "|---|---|---|---|",
        f"| | {r['before']:.3f} | {r['after']:.3f} | {100 * (r['after'] - r['before']):+.1f} points |",
        "",
        "![R² and training curves](report.png)",
        "",
        f"Total demo time: {r['seconds'] / 60:.1f} min. Logs: `{run_dir}/log.jsonl`, `{run_dir}/eval.jsonl`.",
        "",
    ]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for fit in fits:
        if fit.points:
            xs, ys = zip(*fit.points)
            label = f"{fit.strategy} (R² {fit.r2:.2f})" if fit.r2 is not None else fit.strategy
            (dots,) = axes[0].plot(xs, ys, marker="o", linestyle="none", label=label)
            if fit.slope is not None and fit.intercept is not None:
                line = [fit.intercept + fit.slope * x for x in xs]
                axes[0].plot(xs, line, alpha=0.5, color=dots.get_color())
    axes[0].set(xlabel="RM reward (bin mean)", ylabel="pass ratio (bin mean)", title="R² per strategy")
    axes[0].legend(fontsize=7)
    axes[1].plot(
        [e["step"] for e in evals], [e["pass@1"] for e in evals], marker="o", label="held-out greedy pass@1"
    )
    axes[1].plot(
        [row["step"] for row in log], [row["pass_rate"] for row in log], alpha=0.6, label="train pass rate"
    )
    ax2 = axes[1].twinx()
    ax2.plot(
        [row["step"] for row in log],
        [row["reward"] for row in log],
        color="gray",
        alpha=0.5,
        label="RM reward",
    )
    ax2.set_ylabel("mean RM reward")
    axes[1].set(xlabel="PPO step", ylim=(0, 1), title=f"PF-PPO ({r['strategy']}) on the embedded model")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "report.png"), dpi=120)
    plt.close(fig)
