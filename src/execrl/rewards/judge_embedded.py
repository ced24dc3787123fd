"""RLAIF's judge on the embedded default: a sibling of the embedded model that answers the eight
yes/no questions, fine-tuned with `execrl sft` on labels from execution and AST facts.

RLAIF (Dutta et al. 2024) asks GPT-3.5 eight yes/no questions about a small model's API code. The
embedded default has no larger model; the honest stand-in is a *learned, imperfect* judge of its
own: a sibling of `runs/embedded/model` (same backbone; its tokenizer gains the answer words `yes`
and `no` as single tokens, and its positions grow to 512 so a rendered question fits), fine-tuned
on judge-format examples — the chat message `execrl judge` renders from `judge_questions.yaml`
(instruction, the whole program, one question) and the one-word answer — so `execrl judge
--judge-model DIR` and `execrl serve --model DIR` (then `execrl judge --api-base`) ask it exactly
what it learnt.

Programs (the built-in suite's `api` tasks; the *train* split for training, *validation* for the
held-out accuracy): the reference solution, corrupted variants of it (`variants`: an import
dropped or misspelt, the API swapped for a sibling function, its arguments changed, a syntax
error, an undefined name, a constant changed, the final `return` dropped), and samples of the
embedded policy. Each runs in the sandbox against the task's tests; labels are facts, never
guesses:

| question | fact (`program_facts`) |
|---|---|
| imports | no ImportError/ModuleNotFoundError and no NameError on a module name (None after a syntax error) |
| syntax | the program is not a `syntax_error` |
| complete | `solve`'s body ends in a `return` or `raise` (AST; None when it does not parse) |
| undefined | no NameError/UnboundLocalError (None after a syntax error) |
| bugs, logic | every test passed (the suite has one fact for both) |
| api | the program calls the recorded function (as `builtin.calls_api`; None when it does not parse) |
| arguments | a call of it has the same arguments (AST text) as the reference solution's call (None: no parse) |
| (none) | `executable`: runs to completion without an error (`eval/executability.execution_verdict`), the metric, no question |

A question of another questions file gets no examples unless its id is one of these. The held-out
report (`heldout_accuracy`) gives per question the judge's agreement (P(yes) > 1/2 against the
fact), the share of "yes" facts (so the majority-class baseline is max(yes, 1 − yes)) and n.

Limits: the facts are as good as the built-in tests; `bugs` and `logic` share one fact. By default
the judge is the embedded model's size, because a larger model trained from scratch would not fit
the demo's ten minutes on two cores; `larger_sibling` builds the larger backbone the method asks
for (256 hidden x 6 layers: ~35 CPU-minutes with the judge's fine-tuning, docs/rlaif.md), and
`train_judge(backbone=...)` fine-tunes it instead.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "QUESTION_FACTS",
    "Labeled",
    "auc",
    "heldout_accuracy",
    "label",
    "larger_sibling",
    "prepare_sibling",
    "program_facts",
    "sft_rows",
    "train_judge",
    "variants",
]

QUESTION_FACTS = {
    "imports": "imports",
    "syntax": "syntax",
    "complete": "complete",
    "undefined": "undefined",
    "bugs": "passed",
    "logic": "passed",
    "api": "api",
    "arguments": "arguments",
}
ANSWER_TOKENS = ("yes", "no")
MAX_POSITIONS = 512
# a sibling function of the same module for the wrong-API variant (same call shape where possible)
SIBLINGS = {
    "math.gcd": "math.lcm",
    "statistics.median": "statistics.mean",
    "heapq.nlargest": "heapq.nsmallest",
    "bisect.bisect_left": "bisect.bisect_right",
    "itertools.combinations": "itertools.permutations",
    "re.findall": "re.split",
    "textwrap.wrap": "textwrap.fill",
}


@dataclass(frozen=True)
class Labeled:
    """One program of a task with its facts (None: not known for this program)."""

    task_id: str
    instruction: str
    program: str
    source: str  # "reference", a variant's name, or "policy"
    facts: dict[str, bool | None]


# ---------------------------------------------------------------------------------------------
# Programs: the reference and its corruptions.


def variants(problem: Any) -> list[tuple[str, str]]:
    """(name, whole program) for the reference and each corruption that applies, distinct programs."""
    api = problem.api_call
    program = problem.header + problem.solution
    body = problem.solution.rstrip("\n").split("\n")
    out = [("reference", program)]
    imp = f"import {api.module}\n"
    out.append(("no_import", program.replace(imp, "", 1)))
    out.append(("bad_import", program.replace(imp, f"import {api.module}s\n", 1)))
    name = f"{api.module}.{api.function}"
    if name in SIBLINGS:
        out.append(("wrong_api", program.replace(name + "(", SIBLINGS[name] + "(", 1)))
    if (changed := _changed_arguments(program, name)) is not None:
        out.append(("wrong_args", changed))
    out.append(("syntax", problem.header + "\n".join(body[:-1] + [body[-1] + ")"]) + "\n"))
    out.append(("undefined", problem.header + "    n = size\n" + problem.solution))
    if len(body) > 1:
        out.append(("incomplete", problem.header + "\n".join(body[:-1]) + "\n"))
    changed_body, n = re.subn(r"(?<![\w.\[])(\d+)(?![\w.])", lambda m: str(int(m.group(1)) + 1),
                              problem.solution, count=1)  # fmt: skip
    if n:
        out.append(("constant", problem.header + changed_body))
    seen: set[str] = set()
    return [(k, p) for k, p in out if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]


def _changed_arguments(program: str, name: str) -> str | None:
    """`program` with the first argument of its first `name(...)` call changed (an int + 1, else
    `arg[1:]`); None when there is no such call with an argument."""
    from execrl.data.builtin import _dotted

    tree = ast.parse(program)
    call = next((n for n in ast.walk(tree) if isinstance(n, ast.Call) and _dotted(n.func) == name and n.args),
                None)  # fmt: skip
    if call is None:
        return None
    whole, first = ast.get_source_segment(program, call), ast.get_source_segment(program, call.args[0])
    if whole is None or first is None:
        return None
    arg = call.args[0]
    new = str(arg.value + 1) if isinstance(arg, ast.Constant) and type(arg.value) is int else f"{first}[1:]"
    head = whole[: whole.index("(") + 1]
    return program.replace(whole, head + whole[len(head) :].replace(first, new, 1), 1)


def _module_name(message: str) -> bool:
    m = re.search(r"name '(\w+)' is not defined", message)
    return bool(m) and m.group(1) in sys.stdlib_module_names  # type: ignore[union-attr]


def _complete(program: str) -> bool | None:
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return None
    solve = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "solve"), None)
    return solve is not None and isinstance(solve.body[-1], ast.Return | ast.Raise)


def _api_arguments(program: str, api: Any) -> set[str] | None:
    """The argument lists (AST text) of every call of the recorded function; None: no parse."""
    from execrl.data.builtin import _dotted

    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return None
    want = f"{api.module}.{api.function}"
    return {
        ", ".join([*(ast.unparse(a) for a in n.args), *(ast.unparse(k) for k in n.keywords)])
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and _dotted(n.func) == want
    }


def program_facts(problem: Any, program: str, result: Any) -> dict[str, bool | None]:
    """The facts of the module docstring's table for `program` and its execution `result`."""
    from execrl.eval.executability import execution_verdict
    from execrl.types import Status

    if result.status is Status.SANDBOX_ERROR:
        return {}
    parsed = result.status is not Status.SYNTAX_ERROR
    error = result.error if result.status is Status.RUNTIME_ERROR else None
    kind = error.type if error is not None else None
    calls = _api_arguments(program, problem.api_call)
    reference = _api_arguments(problem.header + problem.solution, problem.api_call) or set()
    missing_module = kind == "NameError" and _module_name(error.message) if error is not None else False
    return {
        "syntax": parsed,
        "imports": None if not parsed else not (kind in ("ImportError", "ModuleNotFoundError") or missing_module),
        "undefined": None if not parsed else kind not in ("NameError", "UnboundLocalError"),
        "complete": _complete(program),
        "passed": result.passed,
        "executable": execution_verdict(result).executable,
        "api": None if calls is None else bool(calls),
        "arguments": None if calls is None else bool(calls & reference),
    }  # fmt: skip


def label(
    problems: dict[str, Any], programs: Sequence[tuple[str, str, str]], *, executor: Any = None,
    workers: int | None = None,
) -> list[Labeled]:  # fmt: skip
    """Run each (task_id, program, source) against its task's tests; the programs with their facts
    (a sandbox error leaves the program out)."""
    from execrl.sandbox.executor import LocalExecutor
    from execrl.types import AssertTests, Job, Limits

    jobs = []
    for task, program, _ in programs:
        p = problems[task]
        tests = AssertTests(setup=f"import {p.api_call.module}", tests=p.tests)
        jobs.append(Job(program=program, tests=tests, limits=Limits(timeout=2.0), completion_start=0))
    ex = executor or LocalExecutor(workers=workers)
    try:
        results = ex.run(jobs)
    finally:
        if executor is None:
            ex.close()
    out = []
    for (task, program, source), result in zip(programs, results):
        facts = program_facts(problems[task], program, result)
        if facts:
            out.append(Labeled(task, problems[task].instruction, program, source, facts))
    return out


def sft_rows(
    labeled: Sequence[Labeled], questions: Any, *, balance: bool = False, seed: int = 0
) -> list[dict[str, Any]]:
    """`execrl sft` chat rows: per program and per question whose fact is known, the message
    `execrl judge` renders and the answer word. With `balance`, per question the commoner answer's
    rows are cut (a seeded draw) to the rarer one's count, so the judge cannot do well by one
    answer (most facts are true for most programs: unbalanced, a 60-step judge answered "yes" to
    everything, docs/rlaif.md)."""
    import random

    by_question: dict[str, dict[bool, list[dict[str, Any]]]] = {}
    for item in labeled:
        for q in questions.questions:
            fact = item.facts.get(QUESTION_FACTS.get(q.id, ""))
            if fact is None:
                continue
            user = questions.render(q, item.instruction, item.program)
            row = {"messages": [*user, {"role": "assistant", "content": "yes" if fact else "no"}]}
            by_question.setdefault(q.id, {True: [], False: []})[fact].append(row)
    rows = []
    for qid, answers in by_question.items():
        if balance:
            n = min(len(answers[True]), len(answers[False]))
            for fact in (True, False):
                random.Random(f"{seed}:{qid}:{fact}").shuffle(answers[fact])
                answers[fact] = answers[fact][:n]
        rows += answers[True] + answers[False]
    random.Random(seed).shuffle(rows)
    return rows


# ---------------------------------------------------------------------------------------------
# The sibling and its training.


def prepare_sibling(model: str, out: str, positions: int = MAX_POSITIONS) -> str:
    """`model` with the answer words as single tokens (embeddings resized) and at least
    `positions` positions (RoPE: no new weights), saved to `out`."""
    from tokenizers import AddedToken
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.add_tokens([AddedToken(w, single_word=True) for w in ANSWER_TOKENS])
    lm = AutoModelForCausalLM.from_pretrained(model)
    lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    lm.config.max_position_embeddings = max(positions, lm.config.max_position_embeddings)
    lm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def larger_sibling(
    model: str, out: str, *, hidden_size: int = 256, layers: int = 6, heads: int = 8, steps: int = 400,
    batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
) -> str:  # fmt: skip
    """A larger sibling of the embedded `model`: its tokenizer, a Llama of `hidden_size` x `layers`
    (6.6M parameters at the defaults, 5.6x the embedded model's 1.2M), trained from scratch with
    `execrl sft` for `steps` on the embedded model's own SFT data (the train split's prompt ->
    reference pairs of the default suite, `embedded.write_sft_data`), saved to `out`. The judge's
    backbone: RLAIF asks a model larger than the policy. A finished sibling of the same settings is
    reused."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from execrl.embedded import llama_config, write_sft_data
    from execrl.trainers.sft import SFTConfig
    from execrl.trainers.sft import train as sft_train

    key = {"model": os.path.abspath(model), "hidden_size": hidden_size, "layers": layers, "heads": heads,
           "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed}  # fmt: skip
    if _finished(out, "sibling.yaml", key):
        return out
    import torch

    tokenizer = AutoTokenizer.from_pretrained(model)
    config = llama_config(
        tokenizer, hidden_size=hidden_size, layers=layers, heads=heads, positions=MAX_POSITIONS
    )
    torch.manual_seed(seed)
    base = out.rstrip("/") + "-init"
    AutoModelForCausalLM.from_config(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    data = out.rstrip("/") + "-sft.jsonl"
    write_sft_data(data, seed=0)
    sft_train(SFTConfig(model=base, data=data, out=out, max_steps=steps, batch_size=batch_size, lr=lr,
                        warmup_ratio=0.05, schedule="cosine", max_length=256, seed=seed, log_every=10))  # fmt: skip
    _stamp(out, "sibling.yaml", key)
    return out


def _finished(out: str, stamp: str, key: dict[str, Any]) -> bool:
    """Whether `out` holds a model trained with the settings `key` (written by `_stamp`)."""
    import yaml

    path = os.path.join(out, stamp)
    if not (os.path.isfile(path) and os.path.isfile(os.path.join(out, "model.safetensors"))):
        return False
    with open(path) as f:
        return bool(yaml.safe_load(f) == key)


def _stamp(out: str, stamp: str, key: dict[str, Any]) -> None:
    import yaml

    with open(os.path.join(out, stamp), "w") as f:
        yaml.safe_dump(key, f)


def policy_programs(model: str, problems: Sequence[Any], n: int, seed: int) -> list[tuple[str, str, str]]:
    """`n` sampled programs (header + completion, T=0.8) of `model` per problem."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from execrl.data import builtin
    from execrl.generation.hf import encode_prompt
    from execrl.trainers.rollout import SampleParams, sample

    if n == 0 or not problems:
        return []
    lm = AutoModelForCausalLM.from_pretrained(model)
    tok = AutoTokenizer.from_pretrained(model)
    chosen = [p for p in problems for _ in range(n)]
    prompts = [encode_prompt(tok, builtin.prompt(p, chat=False)) for p in chosen]
    params = SampleParams(temperature=0.8, max_new_tokens=160, stop=builtin.STOP)
    r = sample(lm, tok, prompts, params, torch.Generator().manual_seed(seed))
    return [
        (p.task_id, p.header + builtin.completion_from_output(p, text, chat=False), "policy")
        for p, text in zip(chosen, r.texts)
    ]


def split_programs(split: str, model: str, *, samples: int, seed: int, tasks: int = 0, policies: Sequence[str] = (),
                   policy_samples: int = 2) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:  # fmt: skip
    """(the built-in suite's problems, every variant and `samples` policy programs of the api
    tasks of `split`, and `policy_samples` of each other checkpoint in `policies`; the first `tasks`
    of them when `tasks` > 0)."""
    from execrl.data import builtin

    problems = builtin.load()
    chosen = [p for p in problems.values() if p.kind == "api" and p.split == split]
    chosen = chosen[:tasks] if tasks else chosen
    programs = [(p.task_id, prog, name) for p in chosen for name, prog in variants(p)]
    programs += policy_programs(model, chosen, samples, seed)
    for policy in policies:
        programs += policy_programs(policy, chosen, policy_samples, seed)
    return problems, programs


def train_judge(
    model: str, out: str, *, steps: int = 800, samples: int = 1, lr: float = 1e-3, batch_size: int = 32,
    tasks: int = 0, seed: int = 0, workers: int | None = None, balance: bool = True, backbone: str | None = None,
    max_length: int = MAX_POSITIONS, policies: Sequence[str] = (), policy_samples: int = 2,
) -> str:  # fmt: skip
    """The judge directory `out`: the sibling of `model` fine-tuned for `steps` on the train
    split's judge examples (`samples` policy programs per task beside the variants; `tasks` > 0
    keeps the first `tasks` api tasks; `balance`: as many yes as no rows per question, see
    `sft_rows`; `backbone`: the model fine-tuned into the judge, `model` itself when None, e.g.
    `larger_sibling(model, ...)` or a judge to train further; `max_length`: the judge's positions
    and the longest example, in tokens). The policy programs are `model`'s, plus `policy_samples`
    per task of each of `policies` (other checkpoints, e.g. policies after RL, whose programs the
    judge should also know; labelled by execution as the rest). A finished judge of the same
    settings is reused."""
    from execrl.rewards.judge import load_questions
    from execrl.trainers.sft import SFTConfig
    from execrl.trainers.sft import train as sft_train

    key = {"model": os.path.abspath(model), "steps": steps, "samples": samples, "tasks": tasks, "seed": seed,
           "balance": balance}  # fmt: skip
    if max_length != MAX_POSITIONS:
        key["max_length"] = max_length
    if (lr, batch_size) != (1e-3, 32):  # keys of judges trained before these were part of it stay valid
        key["lr"], key["batch_size"] = lr, batch_size
    if backbone is not None:
        key["backbone"] = os.path.abspath(backbone)
    if policies:
        key["policies"] = [os.path.abspath(p) for p in policies]
        key["policy_samples"] = policy_samples
    if _finished(out, "judge.yaml", key):
        return out
    problems, programs = split_programs("train", model, samples=samples, seed=seed, tasks=tasks, policies=policies,
                                        policy_samples=policy_samples)  # fmt: skip
    labeled = label(problems, programs, workers=workers)
    rows = sft_rows(labeled, load_questions(), balance=balance, seed=seed)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    base, data = out.rstrip("/") + "-base", out.rstrip("/") + "-data.jsonl"
    prepare_sibling(backbone or model, base, positions=max_length)
    with open(data, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    sft_train(SFTConfig(model=base, data=data, out=out, max_steps=steps, batch_size=batch_size, lr=lr,
                        warmup_ratio=0.05, schedule="cosine", max_length=max_length, seed=seed,
                        log_every=10))  # fmt: skip
    _stamp(out, "judge.yaml", key)
    return out


def auc(true: Sequence[float], false: Sequence[float]) -> float | None:
    """The chance that a program whose fact is true gets a higher P(yes) than one whose fact is
    false, ties counted half (the ROC AUC, Mann–Whitney); None when either side is empty. 1/2 is a
    judge that cannot tell them apart, whatever its threshold: a reward needs the order, not the
    1/2 cut that `accuracy` uses."""
    if not true or not false:
        return None
    wins = sum((t > f) + 0.5 * (t == f) for t in true for f in false)
    return wins / (len(true) * len(false))


def within_task_auc(tasks: Sequence[str], values: Sequence[float], truth: Sequence[bool]) -> float | None:
    """`auc` over the pairs of one task's programs only (a true-fact program against a false-fact one
    of the same task): the order a reward gives PPO's group advantages and reward-ranked replay,
    which compare a task's samples with each other. None when no task has both sides."""
    groups: dict[str, list[tuple[float, bool]]] = {}
    for t, v, y in zip(tasks, values, truth, strict=True):
        groups.setdefault(t, []).append((v, y))
    wins = pairs = 0.0
    for rows in groups.values():
        true, false = [v for v, y in rows if y], [v for v, y in rows if not y]
        wins += sum((a > b) + 0.5 * (a == b) for a in true for b in false)
        pairs += len(true) * len(false)
    return wins / pairs if pairs else None


def heldout_accuracy(
    judge_dir: str, labeled: Sequence[Labeled], questions: Any = None, *, batch_size: int = 16
) -> dict[str, dict[str, Any]]:
    """Per question with a fact: {"n", "accuracy" (P(yes) > 1/2 agrees with the fact), "yes_rate"
    (share of true facts), "majority" (max(yes_rate, 1 − yes_rate)), "auc" (`auc`: how well P(yes)
    orders true above false facts; None when all facts agree), "fact"} on `labeled`."""
    from execrl.rewards import judge

    questions = questions or judge.load_questions()
    backend = judge.HFJudge(judge_dir, batch_size=batch_size)
    judged = judge.judge([(x.instruction, x.program) for x in labeled], backend, questions)
    report: dict[str, dict[str, Any]] = {}
    for q in questions.questions:
        fact = QUESTION_FACTS.get(q.id)
        pairs = [(j.answers[q.id].p_yes, x.facts.get(fact)) for j, x in zip(judged, labeled) if fact]
        known = [(p, t) for p, t in pairs if t is not None]
        if not known:
            continue
        yes = sum(t for _, t in known) / len(known)
        agree = sum(((p or 0.0) > 0.5) == t for p, t in known) / len(known)
        ordered = auc([p or 0.0 for p, t in known if t], [p or 0.0 for p, t in known if not t])
        report[q.id] = {"fact": fact, "n": len(known), "accuracy": agree, "yes_rate": yes,
                        "majority": max(yes, 1 - yes), "auc": ordered}  # fmt: skip
    return report
