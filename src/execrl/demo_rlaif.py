"""`execrl demo --method rlaif`: RLAIF end to end on the embedded default, on a laptop's CPU.

The built-in suite's `api` tasks (a standard-library call recorded in `api_call`) play APIBench.

1. The sandbox check (as the other demos: eval/hostile.py).
2. The embedded model (embedded.py): reused from `runs/embedded/model`, or trained (~2 minutes).
3. The embedded judge (rewards/judge_embedded.py): a sibling of the SFT model fine-tuned for
   `judge_steps` steps on judge-format examples of the train split's api tasks, labelled by
   execution and AST facts; its per-question accuracy on `judge_eval_tasks` validation api tasks.
4. The judge's scores of the SFT policy's own programs (`judge_policy`): `samples` samples of
   each of `rm_tasks` train api tasks, asked the eight questions (`execrl judge`, J.jsonl); the
   judge's reliability against the programs' execution (agreement per question, R²).
5. A reward model on those scores (`execrl rm train --judgements`, pairs by score gap), then PPO
   against it for `minutes` minutes on the train api tasks (`RLAIF`); the tests only measure.
6. Held-out metrics on the test split's api tasks before and after (`api_metrics`): executability
   rate, API-call match, ROUGE-L, CodeBLEU and pass@1, greedy; `out/report.md` and `report.png`.

Budget on 2 idle cores (estimates, each stage's size is an argument): sandbox ~0.3 min, judge data
+ training ~2 min, judge accuracy ~0.5 min, judging the policy ~1 min, RM ~1 min, PPO `minutes`
(3 by default), evaluations ~1 min: under 10 minutes with the embedded model already trained.
Everything here is shared with bench/rlaif.py, which compares the arms over seeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Sequence
from typing import Any

from execrl.data.jsonl import DataError

__all__ = ["RLAIF", "api_metrics", "judge_policy", "rm_from_judge", "run", "score_api", "write_api_tasks"]

# The paper's PPO with a KL penalty (its natural reading; TRL's PPO), scaled down to the embedded
# model as demo_pfppo.PFPPO; no replay (it would train on the tests' verdicts). Not tuned.
# The embedded judge's SFT steps (32 rows each, lr 1e-3): below ~500 its answer loss sits at ln 2 (it
# learnt the prior only: 150 steps answered "yes" to everything); 800 is the first setting whose
# held-out AUC is well above chance on most questions (docs/rlaif.md, "The embedded judge").
JUDGE_STEPS = 800
# The reward model's data: the SFT policy's programs for every train api task (443) x 8, paired
# when their judge scores are 0.5 apart. The first setting (200 tasks x 4, gap 1.0) made 73 pairs:
# the policy's samples of a task are often the same program, and the RM of so few pairs was
# exploited within 40 PPO steps (docs/rlaif.md, "Demo").
RM_TASKS, RM_SAMPLES, SCORE_GAP = 443, 8, 0.5

RLAIF = dict(algo="ppo", reward="rm", lr=5e-5, warmup_steps=5, schedule="wsd", temperature=0.7,
             prompts_per_step=16, samples_per_prompt=4, kl_coef=0.05, max_new_tokens=160)  # fmt: skip


def write_api_tasks(path: str) -> str:
    """The built-in suite's api tasks of every split as a data file for `execrl train --data`."""
    from execrl.data import builtin

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    builtin.write_jsonl(path, [p for p in builtin.load().values() if p.kind == "api"])
    return path


def _sample(model: str, problems: dict[str, Any], ids: list[str], *, n: int, temperature: float,
            seed: int) -> list[str]:  # fmt: skip
    """One completion per entry of `ids` repeated `n` times (greedy when temperature is 0)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from execrl.data import builtin
    from execrl.generation.hf import encode_prompt
    from execrl.trainers.rollout import SampleParams, sample

    lm = AutoModelForCausalLM.from_pretrained(model)
    tok = AutoTokenizer.from_pretrained(model)
    rows = [t for t in ids for _ in range(n)]
    prompts = {t: encode_prompt(tok, builtin.prompt(problems[t], chat=False)) for t in ids}
    params = SampleParams(temperature=temperature, max_new_tokens=160, stop=builtin.STOP)
    r = sample(lm, tok, [prompts[t] for t in rows], params, torch.Generator().manual_seed(seed))
    return [builtin.completion_from_output(problems[t], text, chat=False) for t, text in zip(rows, r.texts)]


def api_metrics(
    model: str, *, split: str = "test", limit: int = 0, workers: int | None = None, runs: int = 1,
    temperature: float = 0.0, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """`score_api` of the programs of `model` for the api tasks of `split` (the first `limit`; 0:
    all): greedy by default; with `temperature` > 0, `runs` sampled programs per task (seeded by
    `seed`) and every metric the mean over all of them, i.e. over the runs (the paper reports
    executability as the mean of 3 inference runs)."""
    from execrl.data import builtin

    if temperature <= 0 and runs != 1:
        raise ValueError(
            f"api_metrics: runs={runs} greedy runs would all be the same program; sample (temperature > 0)"
        )
    problems = builtin.load()
    ids = [t for t, p in problems.items() if p.kind == "api" and p.split == split]
    ids = ids[:limit] if limit else ids
    completions = _sample(model, problems, ids, n=runs, temperature=temperature, seed=seed)
    return score_api(problems, [t for t in ids for _ in range(runs)], completions, workers=workers)


def score_api(
    problems: dict[str, Any], ids: list[str], completions: list[str], *, workers: int | None = None
) -> dict[str, Any]:
    """The completions of api tasks `ids` run in the sandbox: `executable` (runs to completion
    without an error, eval/executability.py; over those with a verdict), `api_match` (calls the
    recorded function), `rouge_l` and `codebleu` (the completion against the reference solution,
    both function bodies; eval/similarity.py), `pass@1`; all means over the entries of `ids` (a task
    repeated once per run counts once per run); `tasks` counts the distinct tasks, `programs` the
    entries."""
    from execrl.eval import executability, similarity
    from execrl.rewards.execution import ExecutionReward
    from execrl.types import Limits

    reward = ExecutionReward("builtin", problems=problems, limits=Limits(timeout=1.0), workers=workers)
    try:
        scored = reward.score(ids, completions)
    finally:
        reward.close()
    verdicts = [executability.execution_verdict(s.result).executable for s in scored]
    decided = [v for v in verdicts if v is not None]
    n = len(ids)
    return {
        "tasks": len(set(ids)),
        "programs": n,
        "executable": sum(decided) / len(decided) if decided else 0.0,
        "api_match": sum(_calls_api(problems[t], c) for t, c in zip(ids, completions)) / n,
        "rouge_l": sum(similarity.rouge_l(c, problems[t].solution) for t, c in zip(ids, completions)) / n,
        "codebleu": sum(similarity.codebleu(c, problems[t].solution) for t, c in zip(ids, completions)) / n,
        "pass@1": sum(s.result.passed for s in scored) / n,
    }


def _calls_api(problem: Any, completion: str) -> bool:
    from execrl.data import builtin

    return problem.api_call is not None and builtin.calls_api(problem.header + completion, problem.api_call)


def judge_policy(
    model: str, judge_dir: str, out: str, *, tasks: int = 200, samples: int = 4, seed: int = 0,
    workers: int | None = None, policies: Sequence[str] = (), policy_samples: int = 2,
) -> dict[str, Any]:  # fmt: skip
    """`samples` programs (T=0.7) of `model` for `tasks` train api tasks (a seeded draw), and
    `policy_samples` of each of `policies` (other checkpoints) for the same tasks, judged by
    `judge_dir` (out/samples.jsonl, out/J.jsonl) and executed for the judge's reliability
    (out/truth.jsonl). Returns {"samples", "judgements", "summary", "reliability", "pass_rate"}."""
    from execrl.data import builtin
    from execrl.data.jsonl import Sample
    from execrl.eval import judge_reliability
    from execrl.eval.api_metrics import builtin_api_rows
    from execrl.eval.evaluate import write_jsonl_atomic
    from execrl.rewards import judge
    from execrl.rewards.execution import ExecutionReward
    from execrl.types import Limits

    os.makedirs(out, exist_ok=True)
    problems = builtin.load()
    pool = [t for t, p in problems.items() if p.kind == "api" and p.split == "train"]
    ids = sorted(random.Random(seed).sample(pool, min(tasks, len(pool))), key=pool.index)
    completions = _sample(model, problems, ids, n=samples, temperature=0.7, seed=seed)
    rows = [t for t in ids for _ in range(samples)]
    for policy in policies:
        completions += _sample(policy, problems, ids, n=policy_samples, temperature=0.7, seed=seed)
        rows += [t for t in ids for _ in range(policy_samples)]
    samples_path, j_path = os.path.join(out, "samples.jsonl"), os.path.join(out, "J.jsonl")
    write_jsonl_atomic(samples_path, [{"task_id": t, "completion": c} for t, c in zip(rows, completions)])
    questions = judge.load_questions()
    cache = judge.JudgeCache(os.path.join(out, "judge.cache.sqlite"))
    try:
        judged, summary = judge.judge_samples("builtin", samples_path, judge.HFJudge(judge_dir, batch_size=16),
                                              questions, cache=cache)  # fmt: skip
    finally:
        cache.close()
    write_jsonl_atomic(j_path, judged)
    reward = ExecutionReward("builtin", problems=problems, limits=Limits(timeout=1.0), workers=workers)
    try:
        scored = reward.score(rows, completions)
    finally:
        reward.close()
    results = [s.result for s in scored]
    samples_read = [Sample(t, c, i + 1) for i, (t, c) in enumerate(zip(rows, completions))]
    programs = [problems[t].header + c for t, c in zip(rows, completions)]
    api = builtin_api_rows(problems, samples_read, results, programs)
    truth = [{"task_id": t, **r.to_dict(), **(a or {})} for t, r, a in zip(rows, results, api)]
    write_jsonl_atomic(os.path.join(out, "truth.jsonl"), truth)
    reliability = judge_reliability.reliability(judged, truth, {q.id: q.truth for q in questions.questions})
    return {"samples": samples_path, "judgements": j_path, "summary": summary, "reliability": reliability,
            "pass_rate": sum(r.passed for r in results) / len(results)}  # fmt: skip


def read_judging(data_dir: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """What `judge_policy` wrote in `data_dir`: the rows of samples.jsonl, J.jsonl and truth.jsonl,
    one per program in the same order (a `DataError` names the file that does not line up)."""
    from execrl.data.jsonl import read_jsonl

    files = ("samples.jsonl", "J.jsonl", "truth.jsonl")
    samples, judged, truth = ([row for _, row in read_jsonl(os.path.join(data_dir, n))] for n in files)
    for name, rows in zip(files[1:], (judged, truth)):
        if [r.get("task_id") for r in rows] != [r.get("task_id") for r in samples]:
            raise DataError(f"{os.path.join(data_dir, name)}: its rows' task ids differ from samples.jsonl's")
    return samples, judged, truth


def debias_length(model: str, samples: str, judgements: str, out: str) -> dict[str, Any]:
    """The judge's scores with their length trend removed, for an RM that cannot learn "longer is
    better" (measured on a 256 x 6 embedded judge: its score correlates 0.81 with the program's
    length in tokens, 0.71 within a task, and self-imitation of its RM's approval grows the programs
    and breaks them, docs/rlaif.md).

    Within each task, the slope b of score on completion length (tokens of `model`'s tokenizer,
    pooled over the tasks' centred values) is fitted once; each row's score becomes score − b ×
    length (its `score_raw` kept). Pairs are drawn within a task, so a length difference alone no
    longer decides one. Writes `out` (J.jsonl's rows) and returns the slope and the within-task
    correlation of score and length before and after."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    with open(samples) as f:
        lengths = [len(tok(json.loads(line)["completion"])["input_ids"]) for line in f]
    with open(judgements) as f:
        rows = [json.loads(line) for line in f]
    if len(rows) != len(lengths):
        raise DataError(f"{judgements}: {len(rows)} judgements for {len(lengths)} samples in {samples}")
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r.get("score") is not None:
            groups.setdefault(r["task_id"], []).append(i)
    ds, dl = [], []
    for idx in groups.values():
        ms = sum(rows[i]["score"] for i in idx) / len(idx)
        ml = sum(lengths[i] for i in idx) / len(idx)
        ds += [rows[i]["score"] - ms for i in idx]
        dl += [lengths[i] - ml for i in idx]
    slope = sum(a * b for a, b in zip(ds, dl)) / (sum(b * b for b in dl) or 1.0)

    def corr(xs: list[float], ys: list[float]) -> float:
        sx, sy = sum(x * x for x in xs) ** 0.5, sum(y * y for y in ys) ** 0.5
        return sum(x * y for x, y in zip(xs, ys)) / (sx * sy) if sx and sy else 0.0

    for i, r in enumerate(rows):
        if r.get("score") is not None:
            r["score_raw"], r["score"] = r["score"], r["score"] - slope * lengths[i]
    with open(out, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return {"slope_per_token": slope, "within_task_corr_before": corr(ds, dl),
            "within_task_corr_after": corr([a - slope * b for a, b in zip(ds, dl)], dl)}  # fmt: skip


def rm_from_judge(model: str, samples: str, judgements: str, out: str, *, steps: int = 150, score_gap: float = 1.0,
                  seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """A Bradley–Terry reward model on the SFT backbone from judge-score pairs (`score_gap` apart,
    at most 4 per task, 20% of tasks held out); its report.json."""
    from execrl.trainers.reward_model import RMConfig
    from execrl.trainers.reward_model import train as rm_train

    shutil.rmtree(out, ignore_errors=True)
    cfg = RMConfig(model=model, out=out, samples=samples, judgements=judgements, score_gap=score_gap, max_steps=steps,
                   batch_size=16, lr=5e-4, warmup_ratio=0.05, max_length=256, pairs_per_prompt=4,
                   eval_fraction=0.2, seed=seed, log_every=10)  # fmt: skip
    rm_train(cfg)
    with open(os.path.join(out, "report.json")) as f:
        report: dict[str, Any] = json.load(f)
    return report


def train_and_check_judge(model: str, out: str, *, steps: int, eval_tasks: int, train_tasks: int = 0,
                          samples: int = 1, sibling: dict[str, int] | None = None, seed: int = 0,
                          workers: int | None = None, start: str | None = None, lr: float = 1e-3,
                          policies: Sequence[str] = (), policy_samples: int = 2) -> dict[str, Any]:  # fmt: skip
    """The embedded judge and its held-out accuracy per question on `eval_tasks` validation api
    tasks (out/judge-heldout.json). The judge lives beside the model (`judge/` next to
    `runs/embedded/model`, as PLUM's test writer): trained once on the first `train_tasks` train api
    tasks (0: all) with `samples` policy programs per task, reused by every demo and bench run of
    the same model and settings. `sibling` ({"hidden_size", "layers", "heads", "steps"}): the judge
    is fine-tuned from `judge_embedded.larger_sibling` of those settings (`sibling-HxL/` beside the
    model) instead of the model itself, and lives in `judge-HxL-pS/`. `start` (a judge directory):
    that judge trained further instead, at `lr`, on its kind of examples plus `policy_samples`
    programs per task of each of `policies` (checkpoints after RL: the programs a moved policy
    writes); it lives in `judge-relabel-<hash of the settings>/` beside the model."""
    from execrl.rewards import judge_embedded as je

    home = os.path.dirname(os.path.abspath(model))
    backbone, name = None, "judge" if samples == 1 else f"judge-p{samples}"
    if sibling is not None and start is None:  # a judge trained further needs no new backbone
        shape = f"{sibling['hidden_size']}x{sibling['layers']}"
        backbone = je.larger_sibling(model, os.path.join(home, f"sibling-{shape}"), seed=seed, **sibling)
        name = f"judge-{shape}-p{samples}"
    if start is not None:
        backbone = start
        settings = json.dumps([os.path.abspath(start), steps, lr, samples, train_tasks, seed,
                               sorted(os.path.abspath(p) for p in policies), policy_samples])  # fmt: skip
        name = "judge-relabel-" + hashlib.sha256(settings.encode()).hexdigest()[:8]
    judge_dir = je.train_judge(model, os.path.join(home, name), steps=steps, samples=samples, tasks=train_tasks,
                               seed=seed, workers=workers, backbone=backbone, lr=lr, policies=policies,
                               policy_samples=policy_samples)  # fmt: skip
    problems, programs = je.split_programs("validation", model, samples=1, seed=seed, tasks=eval_tasks)
    labeled = je.label(problems, programs, workers=workers)
    accuracy = je.heldout_accuracy(judge_dir, labeled)
    with open(os.path.join(out, "judge-heldout.json"), "w") as f:
        json.dump({"programs": len(labeled), "per_question": accuracy}, f, indent=1)
    return {"judge": judge_dir, "programs": len(labeled), "accuracy": accuracy}


def run(out: str = "runs/demo-rlaif", minutes: float = 3.0, workers: int | None = None,
        progress: Any = print, judge_steps: int = JUDGE_STEPS, judge_tasks: int = 0, judge_eval_tasks: int = 40,
        rm_tasks: int = RM_TASKS, rm_samples: int = RM_SAMPLES, rm_steps: int = 150, score_gap: float = SCORE_GAP,
        eval_limit: int = 0,
        model: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The demo; `model` replaces the embedded default (smoke runs use a smaller one and small
    stages: `judge_tasks` train api tasks for the judge's examples, 0: all 443)."""
    from execrl.demo import policy_model, sandbox_check
    from execrl.trainers.rl import train
    from execrl.trainers.rl_config import RLConfig

    t_start = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    fooled, _ = sandbox_check(out, workers, progress, 7)
    model = policy_model(model, progress, 7)
    stages: dict[str, float] = {}
    t = time.perf_counter()
    progress(f"[3/7] embedded judge: {judge_steps} SFT steps on judge examples of the train api tasks")
    jd = train_and_check_judge(model, out, steps=judge_steps, eval_tasks=judge_eval_tasks, train_tasks=judge_tasks,
                               workers=workers)  # fmt: skip
    stages["judge"] = time.perf_counter() - t
    progress(
        "      held-out accuracy: " + ", ".join(f"{q} {a['accuracy']:.2f}" for q, a in jd["accuracy"].items())
    )
    t = time.perf_counter()
    progress(f"[4/7] the judge scores the SFT policy's programs ({rm_tasks} train api tasks x {rm_samples})")
    jp = judge_policy(model, jd["judge"], os.path.join(out, "rm-data"), tasks=rm_tasks, samples=rm_samples,
                      workers=workers)  # fmt: skip
    stages["judging"] = time.perf_counter() - t
    progress(
        f"      mean score {jp['summary']['score']:.2f} of 8; R² against the tests {_r2_text(jp['reliability'])}"
    )
    t = time.perf_counter()
    progress(f"[5/7] reward model on the judge's scores (pairs by score gap {score_gap:g})")
    rm_dir = os.path.join(out, "rm")
    try:
        rm = rm_from_judge(
            model, jp["samples"], jp["judgements"], rm_dir, steps=rm_steps, score_gap=score_gap
        )
    except DataError as e:  # the judge told no two programs of a task apart: nothing to learn
        scores = [r["score"] for r in _rows(jp["judgements"])]
        why = (f"no reward model: {e}. The judge's scores span {min(scores):.3f}-{max(scores):.3f} of 8; a judge "
               "that cannot tell programs apart gives PPO nothing to learn, so the demo stops here")  # fmt: skip
        progress("      " + why)
        result = {"hostile_passed": fooled, "judge_accuracy": jd["accuracy"], "judge_programs": jd["programs"],
                  "judging": {k: jp[k] for k in ("summary", "reliability", "pass_rate")}, "stopped": why,
                  "before": None, "after": None, "stages": stages, "seconds": time.perf_counter() - t_start}  # fmt: skip
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.join(out, "report.md"), "w") as f:
            f.write("\n".join(["# execrl demo: RLAIF on the embedded model (stopped)", "", *_judge_lines(result),
                                "", f"**Stopped**: {why}.", ""]))  # fmt: skip
        return result
    stages["rm"] = time.perf_counter() - t
    t = time.perf_counter()
    progress("[6/7] held-out api metrics of the SFT model")
    before = api_metrics(model, limit=eval_limit, workers=workers)
    progress(f"[7/7] PPO against the reward model, {minutes:g} minutes, then the same metrics")
    data = write_api_tasks(os.path.join(out, "api-tasks.jsonl"))
    run_dir = os.path.join(out, "ppo")
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = RLConfig(model=model, out=run_dir, data=data, rm=rm_dir, max_steps=10_000, max_minutes=minutes,
                   eval_every=20, eval_limit=eval_limit, workers=workers or 0, report_to="tensorboard",
                   **RLAIF)  # type: ignore[arg-type]  # fmt: skip
    summary = train(cfg)
    after = api_metrics(run_dir, limit=eval_limit, workers=workers)
    stages["ppo+eval"] = time.perf_counter() - t
    progress("      " + ", ".join(f"{k} {before[k]:.3f} -> {after[k]:.3f}" for k in METRICS))
    result = {"hostile_passed": fooled, "judge_accuracy": jd["accuracy"], "judge_programs": jd["programs"],
              "judging": {k: jp[k] for k in ("summary", "reliability", "pass_rate")}, "rm": rm,
              "score_gap": score_gap, "before": before, "after": after, "steps": summary["steps"],
              "train_seconds": summary["train_seconds"], "stages": stages,
              "seconds": time.perf_counter() - t_start}  # fmt: skip
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    _report(out, run_dir, result, cfg)
    return result


METRICS = ("executable", "api_match", "rouge_l", "codebleu", "pass@1")


def _r2_text(reliability: dict[str, Any]) -> str:
    r2 = reliability.get("r2")
    return f"{r2:.3f}" if isinstance(r2, int | float) else "undefined"


def _rows(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f]


def _judge_lines(r: dict[str, Any]) -> list[str]:
    """The sandbox line and the judge's table of the report."""
    agreement = r["judging"]["reliability"]["questions"]
    lines = [
        f"Sandbox: hostile variants passed: {r['hostile_passed']} (must be 0).",
        "",
        f"Judge: the embedded sibling fine-tuned on judge examples (docs/rlaif.md). Held-out accuracy on "
        f"{r['judge_programs']} programs of validation api tasks (answer P(yes) > 1/2 against the fact; "
        "majority: always giving the commoner answer; AUC: how often P(yes) ranks a program with a true fact "
        "above one with a false fact, 0.5 is chance), and its agreement with the tests on the SFT policy's "
        "programs it then judged:",
        "",
        "| question | fact | held-out accuracy | majority | held-out AUC | agreement on policy programs |",
        "|---|---|---|---|---|---|",
    ]
    for q, a in r["judge_accuracy"].items():
        agree, auc = agreement.get(q, {}).get("agreement"), a.get("auc")
        shown = f"{agree:.2f}" if isinstance(agree, int | float) else "–"
        ordered = f"{auc:.2f}" if isinstance(auc, int | float) else "–"
        lines.append(
            f"| {q} | {a['fact']} | {a['accuracy']:.2f} (n {a['n']}) | {a['majority']:.2f} | {ordered} | {shown} |"
        )
    return lines


def _report(out: str, run_dir: str, r: dict[str, Any], cfg: Any) -> None:
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        log = [json.loads(line) for line in f]
    held = r["rm"]["heldout"]
    lines = ["# execrl demo: RLAIF on the embedded model", "", *_judge_lines(r)]
    rm_line = (
        f"held-out pair accuracy {held['accuracy']:.3f} on {held['pairs']} pairs"
        if held
        else "no held-out pairs"
    )
    lines += [
        "",
        f"Judging: {r['judging']['summary']['n']} programs of the SFT policy (train api tasks; {r['judging']['pass_rate']:.1%} pass "
        f"their tests), mean score {r['judging']['summary']['score']:.2f} of 8; R² of score against the tests "
        f"{_r2_text(r['judging']['reliability'])}. Reward model: {r['rm']['train_pairs']} training pairs (judge scores at least "
        f"{r['score_gap']:g} apart), {rm_line}.",
        "",
        f"PPO against the RM (the tests only measure): {r['steps']} steps in {r['train_seconds'] / 60:.1f} min "
        f"({cfg.prompts_per_step} prompts x {cfg.samples_per_prompt} samples, lr {cfg.lr:g}, KL {cfg.kl_coef:g}).",
        "",
        f"| held-out api tasks ({r['before']['tasks']}, test split, greedy) | SFT | after RLAIF | change |",
        "|---|---|---|---|",
    ]
    for k in METRICS:
        lines.append(
            f"| {k} | {r['before'][k]:.3f} | {r['after'][k]:.3f} | {100 * (r['after'][k] - r['before'][k]):+.1f} points |"
        )
    lines += ["", "![metrics and training curves](report.png)", "",
              "Stage times: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in r["stages"].items())
              + f". Total demo time: {r['seconds'] / 60:.1f} min.", ""]  # fmt: skip
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = range(len(METRICS))
    axes[0].bar([i - 0.2 for i in x], [r["before"][k] for k in METRICS], width=0.4, label="SFT")
    axes[0].bar([i + 0.2 for i in x], [r["after"][k] for k in METRICS], width=0.4, label="RLAIF")
    axes[0].set_xticks(list(x), METRICS)
    axes[0].set(ylim=(0, 1), title="held-out api tasks")
    axes[0].legend()
    axes[1].plot([row["step"] for row in log], [row["pass_rate"] for row in log], label="train pass rate")
    ax2 = axes[1].twinx()
    ax2.plot(
        [row["step"] for row in log],
        [row["reward"] for row in log],
        color="gray",
        alpha=0.6,
        label="RM reward",
    )
    ax2.set_ylabel("mean RM reward")
    axes[1].set(xlabel="PPO step", ylim=(0, 1), title="PPO against the judge's RM")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "report.png"), dpi=120)
    plt.close(fig)
