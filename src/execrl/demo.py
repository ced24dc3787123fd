"""`make demo`: the main job on the embedded default, on a laptop's CPU.

1. The sandbox check: HumanEval's canonical solutions pass, and hostile variants (sys.exit(0)
   before the tests, an always-equal object, a fork bomb, ...) never do (eval/hostile.py).
2. The embedded model: trained from scratch on the built-in suite (embedded.py, ~2 minutes), or
   reused from `runs/embedded/model` when it is already there.
3. Held-out pass@1 (greedy) and pass@10 (10 samples at temperature 0.8) on the suite's test split,
   before and after:
4. GRPO with unit-test rewards (trainers/rl.py) for `minutes` minutes of training; with
   `method="rltf"` (`execrl demo --method rltf`, default out runs/demo-rltf) RLTF's loop with its
   coarse, adaptive and fine-grained feedback instead (trainers/rltf.py, `RLTF` below).
5. `out/report.md` with the numbers and `out/report.png`: held-out pass@1 and mean reward over
   training steps. The run directory `out/<method>` holds log.jsonl, eval.jsonl and the final model.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DemoResult", "run"]

EMBEDDED = "runs/embedded"
# bench/rl.py measured these (docs/experiments/rl-embedded.md) and imports them; the demo runs GRPO with them
GRPO = dict(algo="grpo", lr=1e-4, warmup_steps=5, schedule="wsd", temperature=0.7, reward="pass_ratio",
            prompts_per_step=32, samples_per_prompt=4, replay_size=4096, replay_batch=32, replay_steps=8,
            replay_weighting="failing", max_new_tokens=160)  # fmt: skip
# RLTF's loop (trainers/rltf.py) with the paper's settings scaled to the embedded model
# (docs/rltf.md): 4 samples at T=0.6, top-p 0.95 + 1 greedy per problem (paper: 20 + 1), a buffer
# of 8 refreshes' samples (paper: 6,400), refreshed every 4 optimizer steps of 32 (paper: 50),
# each followed by a supervised step on references (the paper alternates them). Not tuned: the lr,
# warmup and schedule are GRPO's. recipes/rltf.yaml is the same settings (a test keeps them equal).
RLTF = dict(algo="rltf", reward="rltf", lr=1e-4, warmup_steps=5, schedule="wsd", temperature=0.6, top_p=0.95,
            prompts_per_step=32, samples_per_prompt=4, rltf_buffer_size=1024, rltf_refresh_every=4,
            rltf_batch=32, rltf_sft_every=1, max_new_tokens=160)  # fmt: skip
METHODS = {"grpo": GRPO, "rltf": RLTF}


def default_out(method: str) -> str:
    return "runs/demo" if method == "grpo" else f"runs/demo-{method}"


@dataclass
class DemoResult:
    hostile_passed: int
    canonical_pass: float
    before: dict[str, float]
    after: dict[str, float]
    steps: int
    train_seconds: float
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def heldout(
    model_dir: str, workers: int | None = None, seed: int = 0, progress: bool = False
) -> dict[str, float]:
    """Greedy pass@1 and T=0.8 pass@1 / pass@10 of a checkpoint on the built-in test split;
    `progress`: bars of samples generated and executed on stderr."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from execrl.data import builtin
    from execrl.eval.policy import evaluate_policy
    from execrl.generation.hf import encode_prompt
    from execrl.rewards.execution import ExecutionReward
    from execrl.types import Limits

    problems = builtin.load()
    ids = [t for t, p in problems.items() if p.split == "test"]
    lm = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    prompts = {t: encode_prompt(tok, builtin.prompt(problems[t], chat=False)) for t in ids}
    reward = ExecutionReward("builtin", problems=problems, limits=Limits(timeout=1.0), workers=workers)
    try:
        common: dict[str, Any] = dict(max_new_tokens=160, stop=builtin.STOP, seed=seed)
        label = (lambda name: name) if progress else (lambda name: "")
        greedy = evaluate_policy(lm, tok, reward, ids, prompts, progress=label("greedy"), **common)
        sampled = evaluate_policy(
            lm,
            tok,
            reward,
            ids,
            prompts,
            n=10,
            temperature=0.8,
            ks=(1, 10),
            progress=label("T=0.8"),
            **common,
        )
    finally:
        reward.close()
    return {
        "greedy_pass@1": greedy["pass@1"],
        "pass@1": sampled["pass@1"],
        "pass@10": sampled["pass@10"],
        "tasks": len(ids),
    }


def _is_default_embedded(model: str) -> bool:
    """Whether `model` is a finished embedded model of the default recipe (same steps and seed)."""
    import yaml

    from execrl.embedded import EmbeddedConfig

    try:
        with open(os.path.join(model, "sft_config.yaml")) as f:
            saved = yaml.safe_load(f)
    except OSError:
        return False
    default = EmbeddedConfig()
    return (
        os.path.isfile(os.path.join(model, "model.safetensors"))
        and saved.get("max_steps") == default.max_steps
        and saved.get("seed") == default.seed
    )


def sandbox_check(out: str, workers: int | None, progress: Any, stages: int) -> tuple[int, float]:
    """Every demo's stage 1: HumanEval's canonical solutions and hostile variants through the
    sandbox. Returns (hostile variants that passed: must be 0, canonical pass rate)."""
    from execrl.eval import hostile

    progress(f"[1/{stages}] sandbox check: HumanEval canonical solutions and hostile variants")
    ev = hostile.run(os.path.join(out, "sandbox"), workers=workers)
    tricks = set(hostile.HOSTILE.values())
    fooled = sum(r.passed for s, r in zip(ev.samples, ev.results) if s.completion in tricks)
    canonical = [r.passed for s, r in zip(ev.samples, ev.results) if s.completion not in tricks]
    rate = sum(canonical) / len(canonical)
    progress(f"      canonical pass rate {rate:.3f}, hostile variants passed: {fooled}")
    return fooled, rate


def policy_model(model: str | None, progress: Any, stages: int) -> str:
    """Every demo's stage 2: `model` when given, else the embedded default, reused when a finished
    one of the default recipe is there, trained from scratch otherwise."""
    from execrl.embedded import EmbeddedConfig
    from execrl.embedded import train as train_embedded

    if model is not None:
        progress(f"[2/{stages}] policy: {model}")
        return model
    model = os.path.join(EMBEDDED, "model")
    if _is_default_embedded(model):
        progress(f"[2/{stages}] embedded model: reusing {model}")
        return model
    progress(f"[2/{stages}] embedded model: training from scratch on the built-in suite (~2 min)")
    return train_embedded(EmbeddedConfig(out=EMBEDDED))


def run(
    out: str = "runs/demo",
    minutes: float = 7.0,
    workers: int | None = None,
    progress: Any = print,
    method: str = "grpo",
) -> DemoResult:
    """The GRPO or RLTF demo (`method`); `execrl demo --method plum` and `--method pf-ppo` run
    demo_plum.run and demo_pfppo.run instead."""
    from execrl.trainers.rl import train
    from execrl.trainers.rl_config import RLConfig

    t_start = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    fooled, canonical_rate = sandbox_check(out, workers, progress, 5)
    model = policy_model(None, progress, 5)
    progress("[3/5] held-out evaluation of the SFT model (446 unseen-composition tasks)")
    before = heldout(model, workers, progress=True)
    progress(f"      greedy pass@1 {before['greedy_pass@1']:.3f}, pass@10 {before['pass@10']:.3f}")

    name = method.upper()
    progress(f"[4/5] {name} with unit-test rewards, {minutes:g} minutes")
    run_dir = os.path.join(out, method)
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = RLConfig(model=model, out=run_dir, max_steps=10_000, max_minutes=minutes, eval_every=20,
                   report_to="tensorboard", **METHODS[method])  # type: ignore[arg-type]  # fmt: skip
    summary = train(cfg)
    progress(f"[5/5] held-out evaluation after {name}")
    after = heldout(run_dir, workers, progress=True)
    progress(f"      greedy pass@1 {after['greedy_pass@1']:.3f}, pass@10 {after['pass@10']:.3f}")
    result = DemoResult(fooled, canonical_rate, before, after, summary["steps"],
                        summary["train_seconds"], time.perf_counter() - t_start)  # fmt: skip
    _report(out, run_dir, result, cfg)
    return result


def _settings(cfg: Any, log: list[dict[str, Any]]) -> str:
    """The method's own settings, and for RLTF what its feedback did over the run."""
    if cfg.algo != "rltf":
        return (f"self-imitation from a buffer of up to {cfg.replay_size} passing programs, {cfg.replay_steps} replay "
                f"steps of {cfg.replay_batch} per step, tasks drawn {cfg.replay_weighting}")  # fmt: skip
    scopes = {s: sum(row.get(f"rltf/scope_{s}", 0) for row in log) for s in ("global", "line", "none")}
    n = sum(row["samples"] for row in log)
    syntax = sum(row["rltf/syntax_error_share"] * row["samples"] for row in log) / max(1, n)
    runtime = sum(row["rltf/runtime_error_share"] * row["samples"] for row in log) / max(1, n)
    return (f"top-p {cfg.top_p:g} + a greedy baseline per problem; online buffer of {cfg.rltf_buffer_size} samples, "
            f"{cfg.rltf_refresh_every} REINFORCE steps of {cfg.rltf_batch} per refresh"
            + (f", a supervised step on references after every {cfg.rltf_sft_every}" if cfg.rltf_sft_every else "")
            + f". Over {n} training samples: {syntax:.1%} syntax errors, {runtime:.1%} runtime errors; fine-grained "
            f"scopes global {scopes['global']}, line {scopes['line']}, none {scopes['none']}")  # fmt: skip


def _report(out: str, run_dir: str, r: DemoResult, cfg: Any) -> None:
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        log = [json.loads(line) for line in f]
    with open(os.path.join(run_dir, "eval.jsonl")) as f:
        evals = [json.loads(line) for line in f]
    phases = {
        k.split("/")[1]: sum(row[k] for row in log) / len(log) for k in log[0] if k.startswith("seconds/")
    }
    name = cfg.algo.upper()
    lines = [
        f"# execrl demo: {name} on the embedded model",
        "",
        f"Sandbox: HumanEval canonical solutions pass {r.canonical_pass:.1%}; hostile variants passed: {r.hostile_passed} (must be 0).",
        "",
        f"{name}: {r.steps} steps in {r.train_seconds / 60:.1f} min of training ({cfg.prompts_per_step} prompts x "
        f"{cfg.samples_per_prompt} samples per step, lr {cfg.lr:g} ({cfg.schedule}), temperature {cfg.temperature:g}, reward {cfg.reward}; "
        + _settings(cfg, log)
        + ").",
        "Per step: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()) + ".",
        "",
        f"| held-out (446 tasks, unseen compositions) | SFT start | after {name} | change |",
        "|---|---|---|---|",
    ]
    for key, name in (
        ("greedy_pass@1", "greedy pass@1"),
        ("pass@1", "pass@1 (T=0.8)"),
        ("pass@10", "pass@10 (T=0.8)"),
    ):
        lines.append(
            f"| {name} | {r.before[key]:.3f} | {r.after[key]:.3f} | {100 * (r.after[key] - r.before[key]):+.1f} points |"
        )
    lines += ["", "![held-out pass@1 and reward over training](report.png)", "",
              f"Total demo time: {r.seconds / 60:.1f} min. Logs: `{run_dir}/log.jsonl`, `{run_dir}/eval.jsonl`, "
              f"TensorBoard: `tensorboard --logdir {run_dir}/tensorboard`.", ""]  # fmt: skip
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(
        [e["step"] for e in evals], [e["pass@1"] for e in evals], marker="o", label="held-out greedy pass@1"
    )
    ax.plot(
        [row["step"] for row in log],
        [row["reward"] for row in log],
        alpha=0.6,
        label=f"mean reward ({cfg.reward})",
    )
    if cfg.algo == "rltf":  # its rewards lie in [-1, 1]; the greedy baseline's is the reference line
        ax.plot([row["step"] for row in log], [row["rltf/greedy_reward"] for row in log], alpha=0.6,
                label="greedy baseline's reward")  # fmt: skip
    ax.set(xlabel=f"{name} step", ylim=(-1 if cfg.algo == "rltf" else 0, 1),
           title=f"{name} on the embedded model (2 CPU cores)")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "report.png"), dpi=120)
    plt.close(fig)
