"""RLAIF on the embedded model (issue 19): SFT vs RLAIF (judge -> RM -> PPO) vs PPO on the judge
directly vs PPO on execution (the oracle), on the built-in suite's API tasks.

    python bench/rlaif.py [--arms sft,rlaif,judge,oracle,rlaif-sil,sil-random] [--seeds 0,1,2] [--minutes 10] [--budget steps|time]
                          [--model runs/embedded/model] [--out runs/bench-rlaif] [--judge-steps 800]
                          [--judge-tasks 0] [--judge-eval-tasks 40] [--judge-samples 1]
                          [--judge-hidden 0 --judge-layers 6 --judge-heads 8 --judge-sibling-steps 400]
                          [--judge-start DIR --judge-lr 1e-3 --judge-policies P,... --judge-policy-samples 2]
                          [--rm-tasks 443] [--rm-samples 8] [--rm-steps 150] [--score-gap 0.5]
                          [--rm-policies P,... --rm-policy-samples 1] [--rm-debias-length]
                          [--sil-quantile 0.75] [--eval-limit 0] [--eval-runs 3] [--eval-temperature 0.7]
                          [--set FIELD=VALUE ...]

Shared stages, once per bench (seed 0) and reused when their outputs exist (execrl.demo_rlaif):
the embedded judge (by default the demo's: the policy's own model fine-tuned on corruptions and 1
policy program per task; `--judge-hidden 256` fine-tunes a larger sibling trained from scratch,
`--judge-samples 8` adds more policy programs; `--judge-start DIR` trains that judge further, adding
`--judge-policy-samples` programs per task of each of `--judge-policies`, checkpoints after RL: a
relabelling round) and its held-out accuracy per question; the SFT policy's programs for
`--rm-tasks` train API tasks x `--rm-samples` (and `--rm-policy-samples` of each of `--rm-policies`),
judged (J.jsonl) and executed (the judge's agreement and R²); the reward model on the judge's
scores (pairs by score gap; `--rm-debias-length`: on the scores with their within-task length trend
removed, in rm-debiased/).

Arms, each from the SFT checkpoint with `execrl.demo_rlaif.RLAIF`'s PPO, per seed, trained on the
train split's API tasks: `rlaif` (reward rm: the RM of the judge's scores), `judge` (reward judge:
the embedded judge's normalised score, cached), `oracle` (reward pass_ratio: the tests). `sft` is
the starting checkpoint itself (no training, one row for every seed). Two more arms keep the
judge -> RM pipeline and drop PPO's gradient (`pg_coef: 0`), training only on a replay buffer
(SIL_REPLAY unless `--set` says otherwise): `rlaif-sil` imitates the samples whose RM score reaches
a fixed threshold (`replay_admit: threshold`, as ReST's filtered improve step), the
`--sil-quantile` of the RM's scores of the SFT policy's programs it learnt from (train split; the
RM's favourite of a prompt's samples runs less often than an average one, its level separates
better: docs/rlaif.md), and `sil-random`, its ablation, one sample of each prompt drawn at
random (`replay_admit: random`: the RM's scores are computed and never read) — what imitating the
policy's own samples does with no feedback at all, so that `feedback_gain` (rlaif-sil minus
sil-random) is what the AI feedback adds. Every arm is measured on the
test split's API tasks (`api_metrics`): executability rate, API-call match, ROUGE-L, CodeBLEU,
pass@1, twice: greedy (`metrics`), and as the mean of `--eval-runs` sampled runs at
`--eval-temperature` (`sampled`; the paper reports executability as the mean of 3 inference runs;
0 runs: greedy only). Also reported, for both: how much of the oracle's executability gain RLAIF
recovers (gain_rlaif / gain_oracle) and whether RLAIF reaches SFT + 4.5 points (the paper's gain).
The same target and share are reported for `rlaif-sil`. A kept run (below) whose report lacks
the sampled metrics gets them from its final model.

With a replay buffer (`--set replay_size=N`: self-imitation, today's best loop on the embedded
model, docs/experiments/rl-embedded.md) the learned-reward arms admit each prompt's
highest-reward samples (`replay_admit: best`, never the tests) and the oracle the passing ones.

The budget. `--budget time` stops each run after `--minutes` of training wall time (only honest on
an idle machine). `--budget steps` (the default) gives each arm the steps that `--minutes` buy on
an idle 2-core machine (`STEPS_PER_10_MIN`): for the default settings (no replay) ESTIMATED, not
measured -- from PF-PPO's PPO against an RM (135 steps of 80 samples in 5 min: 2.2 s/step, so ~270
steps of 64) and, for the judge arm, that plus an estimated 2 s/step for 8 questions x 64 programs
through the judge. Measured with `--budget time` on an idle machine WITH the replay settings of the
results in docs/rlaif.md (2026-12-07): 166-171 steps in 10 minutes for rlaif, 194-201 for oracle,
96-97 for judge. With a step budget a run checkpoints every 20 steps and an interrupted bench
resumes: a finished run's run.json with the same budget is kept and not rerun. The SFT model is
measured once per weights and evaluation settings (`sft-metrics.json`, keyed by the weights' SHA-256).

Writes bench-rlaif.json and bench-rlaif.png under `--out` and prints a table. Smoke test (numbers
mean nothing): `--minutes 0.1 --seeds 0 --judge-steps 4 --judge-tasks 4 --judge-eval-tasks 2 --rm-tasks 8
--rm-steps 2 --score-gap 0.005 --eval-limit 8 --set max_new_tokens=32 --set prompts_per_step=4`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import time
from typing import Any

from execrl.data import DataError
from execrl.demo_rlaif import (
    JUDGE_STEPS,
    METRICS,
    RLAIF,
    RM_SAMPLES,
    RM_TASKS,
    SCORE_GAP,
    api_metrics,
    debias_length,
    judge_policy,
    rm_from_judge,
    train_and_check_judge,
    write_api_tasks,
)
from execrl.embedded import EmbeddedConfig
from execrl.embedded import train as train_embedded
from execrl.trainers.rl import train
from execrl.trainers.rl_config import RLConfig
from execrl.trainers.sft import latest_checkpoint

# steps that 10 minutes of training buy on an idle 2-core machine: ESTIMATES (module docstring)
STEPS_PER_10_MIN = {"rlaif": 270, "judge": 150, "oracle": 270, "rlaif-sil": 170, "sil-random": 170}
ARMS = ("sft", "rlaif", "judge", "oracle", "rlaif-sil", "sil-random")
RLAIF_ARMS = ("rlaif", "rlaif-sil")  # judge -> RM -> policy: measured against the paper's gain
# the self-imitation arms' buffer unless --set says otherwise (today's best loop, docs/experiments/rl-embedded.md)
SIL_REPLAY = dict(replay_size=4096, replay_batch=32, replay_steps=8)
PAPER_GAIN = 4.5  # executability points over the fine-tuned baseline (Dutta et al. 2024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--budget", choices=("steps", "time"), default="steps")
    ap.add_argument("--model", default="runs/embedded/model")
    ap.add_argument("--out", default="runs/bench-rlaif")
    ap.add_argument("--judge-steps", type=int, default=JUDGE_STEPS)
    ap.add_argument(
        "--judge-tasks", type=int, default=0, help="train api tasks for the judge's examples (0: all)"
    )
    ap.add_argument("--judge-eval-tasks", type=int, default=40)
    ap.add_argument("--judge-samples", type=int, default=1, help="policy programs per train api task in the "
                    "judge's examples (beside the corruptions)")  # fmt: skip
    ap.add_argument("--judge-hidden", type=int, default=0, help="fine-tune the judge from a larger sibling of "
                    "this width (judge_embedded.larger_sibling); 0: from the policy's own model")  # fmt: skip
    ap.add_argument("--judge-layers", type=int, default=6)
    ap.add_argument("--judge-heads", type=int, default=8)
    ap.add_argument("--judge-sibling-steps", type=int, default=400)
    ap.add_argument(
        "--judge-start", default=None, help="a judge directory to train further (a relabelling round)"
    )
    ap.add_argument("--judge-lr", type=float, default=1e-3)
    ap.add_argument("--judge-policies", default="", help="comma-separated checkpoints whose train-task "
                    "programs join the judge's examples (with --judge-start)")  # fmt: skip
    ap.add_argument("--judge-policy-samples", type=int, default=2)
    ap.add_argument("--rm-policies", default="", help="comma-separated checkpoints whose programs the judge "
                    "also scores for the RM's data")  # fmt: skip
    ap.add_argument("--rm-policy-samples", type=int, default=1)
    ap.add_argument(
        "--rm-debias-length",
        action="store_true",
        help="the RM learns the judge's scores with "
        "their within-task length trend removed (demo_rlaif.debias_length; in rm-debiased/)",
    )
    ap.add_argument("--rm-tasks", type=int, default=RM_TASKS)
    ap.add_argument("--rm-samples", type=int, default=RM_SAMPLES)
    ap.add_argument("--rm-steps", type=int, default=150)
    ap.add_argument(
        "--score-gap", type=float, default=SCORE_GAP, help="RM pairs: judge scores at least this far apart"
    )
    ap.add_argument("--sil-quantile", type=float, default=0.75, help="rlaif-sil admits the samples whose RM "
                    "score reaches this quantile of its scores of the SFT policy's programs (0.75: 1 in 4 at "
                    "the start, as sil-random's one sample of each prompt's 4)")  # fmt: skip
    ap.add_argument("--eval-limit", type=int, default=0, help="held-out API tasks (0: all 81)")
    ap.add_argument("--eval-runs", type=int, default=3, help="sampled programs per held-out task for the "
                    "sampled metrics (the paper: the mean of 3 inference runs); 0: greedy only")  # fmt: skip
    ap.add_argument(
        "--eval-temperature", type=float, default=0.7, help="their temperature (the RL's sampling)"
    )
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override an RLConfig field for every run, e.g. --set lr=1e-4")  # fmt: skip
    args = ap.parse_args()
    overrides = {k: v for k, _, v in (a.partition("=") for a in args.set)}  # typed by RLConfig.load
    arms = [a for a in args.arms.split(",") if a]
    if unknown := [a for a in arms if a not in ARMS]:
        ap.error(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    if not os.path.isdir(args.model):
        train_embedded(EmbeddedConfig(out=os.path.dirname(args.model)))
    os.makedirs(args.out, exist_ok=True)

    t0 = time.perf_counter()
    shared = _shared(args)
    print(f"shared stages: {(time.perf_counter() - t0) / 60:.1f} min; judge held-out accuracy "
          + ", ".join(f"{q} {a['accuracy']:.2f} (majority {a['majority']:.2f})" for q, a in shared["judge"]["accuracy"].items()),
          flush=True)  # fmt: skip
    sft, sft_sampled = _sft_metrics(args)
    print("sft: " + _metrics_line(sft) + (f"; sampled: {_metrics_line(sft_sampled)}" if sft_sampled else ""),
          flush=True)  # fmt: skip
    results = (
        [{"arm": "sft", "seed": s, "metrics": sft, "sampled": sft_sampled, "steps": 0} for s in _seeds(args)]
        if "sft" in arms
        else []
    )
    for arm in [a for a in arms if a != "sft"]:
        for seed in _seeds(args):
            results.append(_run(args, arm, seed, shared, overrides))
    summary = _summary(results, sft, "metrics")
    sampled = _summary(results, sft_sampled, "sampled") if sft_sampled else None
    report = {"minutes": args.minutes, "budget": args.budget, "settings": RLAIF, "overrides": overrides,
              "steps_per_10_min": STEPS_PER_10_MIN, "judge": shared["judge"]["accuracy"],
              "judge_settings": shared["judge"]["settings"],
              "judging": shared["judging"], "rm": shared["rm"], "sil_threshold": shared["sil_threshold"],
              "sft": sft, "sft_sampled": sft_sampled,
              "eval_sampling": {"runs": args.eval_runs, "temperature": args.eval_temperature},
              "runs": results, "summary": summary, "summary_sampled": sampled}  # fmt: skip
    with open(os.path.join(args.out, "bench-rlaif.json"), "w") as f:
        json.dump(report, f, indent=1)
    _plot(results, os.path.join(args.out, "bench-rlaif.png"))
    print(f"wrote {args.out}/bench-rlaif.json and bench-rlaif.png")


def _sft_metrics(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The SFT model's greedy and sampled metrics, measured once per model and evaluation settings:
    kept in OUT/sft-metrics.json under the SHA-256 of its weight files (every shard), so a rerun that only adds arms or
    seeds does not measure it again (about 3 minutes), and a retrained model is measured anew."""
    digest = hashlib.sha256()
    files = sorted(n for n in os.listdir(args.model) if n.endswith((".safetensors", ".bin")))  # shards too
    if not files:
        raise SystemExit(f"bench/rlaif.py: no weights (*.safetensors, *.bin) in --model {args.model}")
    for name in files:
        digest.update(name.encode())
        with open(os.path.join(args.model, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    weights = digest.hexdigest()
    key = {"weights": weights, "eval_limit": args.eval_limit, "eval_runs": args.eval_runs,
           "eval_temperature": args.eval_temperature}  # fmt: skip
    path = os.path.join(args.out, "sft-metrics.json")
    if os.path.exists(path):
        with open(path) as f:
            kept = json.load(f)
        if kept.get("key") == key:
            print("sft: measured before with these weights and settings (sft-metrics.json)", flush=True)
            return kept["greedy"], kept["sampled"]
    greedy = api_metrics(args.model, limit=args.eval_limit, workers=args.workers)
    sampled = _sampled(args, args.model)
    with open(path + ".tmp", "w") as f:
        json.dump({"key": key, "greedy": greedy, "sampled": sampled}, f, indent=1)
    os.replace(path + ".tmp", path)
    return greedy, sampled


def _sampled(args: argparse.Namespace, model: str) -> dict[str, Any] | None:
    """The held-out metrics as the mean of `--eval-runs` sampled runs (None with 0 runs)."""
    if not args.eval_runs:
        return None
    return api_metrics(model, limit=args.eval_limit, workers=args.workers, runs=args.eval_runs,
                       temperature=args.eval_temperature)  # fmt: skip


def _seeds(args: argparse.Namespace) -> list[int]:
    return [int(s) for s in args.seeds.split(",") if s]


def _shared(args: argparse.Namespace) -> dict[str, Any]:
    """The judge, its scores of the SFT policy's programs and the RM of those scores (reused)."""
    sibling = (dict(hidden_size=args.judge_hidden, layers=args.judge_layers, heads=args.judge_heads,
                    steps=args.judge_sibling_steps) if args.judge_hidden else None)  # fmt: skip
    policies = [p for p in args.judge_policies.split(",") if p]
    if policies and not args.judge_start:
        raise SystemExit("bench/rlaif.py: --judge-policies needs --judge-start (the judge to train further)")
    judge = train_and_check_judge(args.model, args.out, steps=args.judge_steps, eval_tasks=args.judge_eval_tasks,
                                  train_tasks=args.judge_tasks, samples=args.judge_samples, sibling=sibling,
                                  workers=args.workers, start=args.judge_start, lr=args.judge_lr,
                                  policies=policies, policy_samples=args.judge_policy_samples)  # fmt: skip
    judge["settings"] = {"steps": args.judge_steps, "samples": args.judge_samples, "sibling": sibling,
                         "start": args.judge_start, "lr": args.judge_lr, "policies": policies,
                         "policy_samples": args.judge_policy_samples}  # fmt: skip
    data_dir = os.path.join(args.out, "rm-data")
    rm_dir = os.path.join(args.out, "rm-debiased" if args.rm_debias_length else "rm")
    done = os.path.join(data_dir, "judging.json")
    if os.path.isfile(done):
        with open(done) as f:
            judging = json.load(f)
    else:
        jp = judge_policy(args.model, judge["judge"], data_dir, tasks=args.rm_tasks, samples=args.rm_samples,
                          workers=args.workers, policies=[p for p in args.rm_policies.split(",") if p],
                          policy_samples=args.rm_policy_samples)  # fmt: skip
        judging = {k: jp[k] for k in ("samples", "judgements", "summary", "reliability", "pass_rate")}
        with open(done, "w") as f:
            json.dump(judging, f, indent=1)
    report = os.path.join(rm_dir, "report.json")
    if os.path.isfile(report) and os.path.isfile(os.path.join(rm_dir, "model.safetensors")):
        with open(report) as f:
            rm = json.load(f)
    else:
        judgements, debias = judging["judgements"], None
        if args.rm_debias_length:
            judgements = os.path.join(data_dir, "J-debiased.jsonl")
            debias = debias_length(args.model, judging["samples"], judging["judgements"], judgements)
        try:
            rm = rm_from_judge(args.model, judging["samples"], judgements, rm_dir, steps=args.rm_steps,
                               score_gap=args.score_gap)  # fmt: skip
            if debias is not None:
                rm["debias_length"] = debias
                with open(report, "w") as f:
                    json.dump(rm, f, indent=1)
        except DataError as e:  # a judge that tells no programs apart: the RLAIF arm cannot exist
            raise SystemExit(f"bench/rlaif.py: no reward model from the judge's scores: {e}") from None
    sil = _sil_threshold(args, data_dir, rm_dir) if "rlaif-sil" in args.arms.split(",") else None
    return {"judge": judge, "judging": judging, "rm": rm, "rm_dir": rm_dir, "sil_threshold": sil,
            "data": write_api_tasks(os.path.join(args.out, "api-tasks.jsonl"))}  # fmt: skip


def _sil_threshold(args: argparse.Namespace, data_dir: str, rm_dir: str) -> dict[str, Any]:
    """rlaif-sil's admission threshold: the `--sil-quantile` of the RM's scores of the programs it
    learnt from (the SFT policy's, train split; cached beside the RM)."""
    path = os.path.join(rm_dir, "sil-threshold.json")
    if os.path.isfile(path):
        with open(path) as f:
            done: dict[str, Any] = json.load(f)
        if done["quantile"] == args.sil_quantile:
            return done
    from execrl.data import builtin
    from execrl.rewards.model import RewardModel, prompt_text

    problems = builtin.load()
    with open(os.path.join(data_dir, "samples.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    rm = RewardModel(rm_dir)
    scores = sorted(rm.scores([prompt_text(rm.tokenizer, builtin.prompt(problems[r["task_id"]], chat=False))
                               for r in rows], [r["completion"] for r in rows]))  # fmt: skip
    threshold = scores[min(len(scores) - 1, int(args.sil_quantile * len(scores)))]
    done = {"quantile": args.sil_quantile, "threshold": threshold, "programs": len(scores)}
    with open(path, "w") as f:
        json.dump(done, f, indent=1)
    return done


def _budget(args: argparse.Namespace, arm: str) -> dict[str, Any]:
    if args.budget == "time":
        return {"minutes": args.minutes}
    return {"steps": max(1, round(STEPS_PER_10_MIN[arm] * args.minutes / 10))}


def _run(args: argparse.Namespace, arm: str, seed: int, shared: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    out = os.path.join(args.out, f"{arm}-seed{seed}")
    budget = _budget(args, arm)
    path = os.path.join(out, "run.json")
    if os.path.isfile(path):
        with open(path) as f:
            done: dict[str, Any] = json.load(f)
        if done.get("budget") == budget:
            print(f"{arm} seed {seed}: done before ({path}), kept", flush=True)
            want = {"runs": args.eval_runs, "temperature": args.eval_temperature}
            if args.eval_runs and done.get("eval_sampling") != want:
                if not os.path.isfile(os.path.join(out, "config.json")):
                    raise SystemExit(f"bench/rlaif.py: {path} has no sampled metrics and {out} no final model to "
                                     "measure them on; remove the run to train it again")  # fmt: skip
                done["sampled"], done["eval_sampling"] = _sampled(args, out), want
                with open(path, "w") as f:
                    json.dump(done, f, indent=1)
                print(f"{arm} seed {seed}: sampled: {_metrics_line(done['sampled'])}", flush=True)
            return done
    limits = (dict(max_steps=10_000, max_minutes=args.minutes) if "minutes" in budget
              else dict(max_steps=budget["steps"], max_minutes=0))  # fmt: skip
    reward: dict[str, Any] = {
        "rlaif": {"reward": "rm", "rm": shared["rm_dir"], "replay_admit": "best"},
        "judge": {"reward": "judge", "judge_model": shared["judge"]["judge"], "replay_admit": "best",
                  "judge_cache": os.path.join(args.out, "judge-reward.cache.sqlite")},
        "oracle": {"reward": "pass_ratio", "replay_admit": "passed"},
        "rlaif-sil": {"reward": "rm", "rm": shared["rm_dir"], "replay_admit": "threshold",
                      "replay_threshold": (shared["sil_threshold"] or {}).get("threshold"), "pg_coef": 0.0,
                      **SIL_REPLAY},
        "sil-random": {"reward": "rm", "rm": shared["rm_dir"], "replay_admit": "random", "pg_coef": 0.0,
                       **SIL_REPLAY},
    }[arm]  # fmt: skip
    resume = "steps" in budget and latest_checkpoint(out) is not None
    base = dict(model=args.model, out=out, data=shared["data"], seed=seed, **limits, eval_every=args.eval_every,
                eval_limit=args.eval_limit, report_to="none", workers=args.workers or 0,
                save_every=20 if "steps" in budget else 0, resume=resume)  # fmt: skip
    cfg = RLConfig.load(overrides={**RLAIF, **reward, **base, **overrides})
    t_run = time.perf_counter()
    summary = train(cfg)
    metrics = api_metrics(out, limit=args.eval_limit, workers=args.workers)
    sampled = _sampled(args, out)
    with open(os.path.join(out, "log.jsonl")) as f:
        log = [json.loads(line) for line in f]
    run = {"arm": arm, "seed": seed, "budget": budget, "metrics": metrics, "sampled": sampled,
           "eval_sampling": {"runs": args.eval_runs, "temperature": args.eval_temperature} if sampled else None,
           "steps": summary["steps"],
           "train_minutes": summary["train_seconds"] / 60, "wall_minutes": (time.perf_counter() - t_run) / 60,
           "reward_curve": [(r["step"], r["reward"]) for r in log],
           "pass_rate_curve": [(r["step"], r["pass_rate"]) for r in log]}  # fmt: skip
    with open(path, "w") as f:
        json.dump(run, f, indent=1)
    print(f"{arm} seed {seed}: {_metrics_line(metrics)} in {run['steps']} steps, {run['train_minutes']:.1f} min"
          + (f"; sampled: {_metrics_line(sampled)}" if sampled else ""), flush=True)  # fmt: skip
    return run


def _metrics_line(m: dict[str, Any]) -> str:
    return ", ".join(f"{k} {m[k]:.3f}" for k in METRICS)


def _summary(results: list[dict[str, Any]], sft: dict[str, Any], key: str) -> dict[str, Any]:
    """Per arm and metric of the runs' `key` ("metrics": greedy, "sampled"): the mean and the gain
    over `sft` in points (mean and std over seeds)."""
    print(f"held-out, {'greedy' if key == 'metrics' else 'mean of the sampled runs'}:")
    out: dict[str, Any] = {}
    for arm in dict.fromkeys(r["arm"] for r in results):
        rows = [r[key] for r in results if r["arm"] == arm]
        out[arm] = {}
        for k in METRICS:
            gains = [100 * (m[k] - sft[k]) for m in rows]
            out[arm][k] = {"mean": statistics.mean(m[k] for m in rows), "gain_mean": statistics.mean(gains),
                           "gain_std": statistics.stdev(gains) if len(gains) > 1 else 0.0}  # fmt: skip
        print(f"{arm:<10} " + ", ".join(f"{k} {out[arm][k]['mean']:.3f} ({out[arm][k]['gain_mean']:+.1f} ± "
                                       f"{out[arm][k]['gain_std']:.1f})" for k in METRICS))  # fmt: skip
    g_oracle = out["oracle"]["executable"]["gain_mean"] if "oracle" in out else None
    for arm in [a for a in RLAIF_ARMS if a in out]:
        g = out[arm]["executable"]["gain_mean"]
        suffix = "" if arm == "rlaif" else "_" + arm.replace("-", "_")
        out["paper_target_met" + suffix] = g >= PAPER_GAIN
        if g_oracle is not None:
            out["oracle_gain_recovered" + suffix] = g / g_oracle if g_oracle > 0 else None
        print(f"{arm} executability gain {g:+.1f} points (target +{PAPER_GAIN}); oracle "
              + (f"{g_oracle:+.1f}; recovered {out.get('oracle_gain_recovered' + suffix)}" if g_oracle is not None
                 else "not run"))  # fmt: skip
    if "rlaif-sil" in out and "sil-random" in out:  # what the AI feedback adds over imitating any own sample
        out["feedback_gain"] = {k: out["rlaif-sil"][k]["gain_mean"] - out["sil-random"][k]["gain_mean"]
                                for k in METRICS}  # fmt: skip
        print(
            "rlaif-sil over sil-random (the RM's choice vs a random sample), points: "
            + ", ".join(f"{k} {v:+.1f}" for k, v in out["feedback_gain"].items())
        )
    return out


def _plot(results: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(dict.fromkeys(r["arm"] for r in results))
    keys = ["metrics"] + (["sampled"] if all(r.get("sampled") for r in results) else [])
    fig, axes = plt.subplots(
        len(keys), len(METRICS), figsize=(3 * len(METRICS), 3.5 * len(keys)), squeeze=False
    )
    for row, key in zip(axes, keys):
        for ax, k in zip(row, METRICS):
            for i, arm in enumerate(arms):
                values = [r[key][k] for r in results if r["arm"] == arm]
                ax.scatter([i] * len(values), values, s=12)
                ax.bar(i, statistics.mean(values), alpha=0.3)
            ax.set_xticks(range(len(arms)), arms, rotation=30)
            ax.set(title=f"{k} ({'greedy' if key == 'metrics' else 'sampled'})", ylim=(0, 1))
    fig.suptitle("held-out API tasks (test split); greedy, and the mean of sampled runs; dots: seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
