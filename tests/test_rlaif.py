"""RLAIF from judge to policy: the embedded judge's examples and facts, the sibling trained on them
(asked locally and through `execrl serve`), reward-model pairs from judge scores, and `--reward
judge`. Real parts throughout: the sandbox, tiny models, a loopback server."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json
import math
import threading
from pathlib import Path
from typing import Any

import pytest

from execrl.cli import main
from execrl.data import DataError, builtin
from execrl.rewards import judge
from execrl.rewards import judge_embedded as je
from execrl.trainers.reward_pairs import judge_pairs
from tinymodel import make_tiny_model, write_rl_tasks

QUESTIONS = judge.load_questions()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-rlaif") / "model")


@pytest.fixture(scope="module")
def api_tasks() -> list[Any]:
    """Two train-split API tasks whose API has a sibling function (so every variant applies)."""
    tasks = [p for p in builtin.load().values() if p.kind == "api" and p.split == "train"]
    return [p for p in tasks if f"{p.api_call.module}.{p.api_call.function}" in je.SIBLINGS][:2]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------------------------------------
# The embedded judge's data


TARGET = {"no_import": "imports", "bad_import": "imports", "syntax": "syntax", "undefined": "undefined",
          "incomplete": "complete", "wrong_api": "api", "wrong_args": "arguments"}  # fmt: skip


def test_each_corruption_falsifies_the_fact_it_targets(api_tasks: list[Any]) -> None:
    """Run in the sandbox: the reference makes every fact true; each corruption makes its own
    fact false (a `bad_import` is a ModuleNotFoundError, `no_import` a NameError on the module)."""
    problems = {p.task_id: p for p in api_tasks}
    programs = [(p.task_id, prog, name) for p in api_tasks for name, prog in je.variants(p)]
    labeled = je.label(problems, programs, workers=1)
    assert len(labeled) == len(programs)
    for item in labeled:
        if item.source == "reference":
            assert all(item.facts.values()), item.facts
        elif item.source in TARGET:
            assert item.facts[TARGET[item.source]] is False, (item.source, item.facts)
    assert {x.source for x in labeled} >= set(TARGET) | {"reference", "constant"}


def test_executable_fact_is_the_metrics_verdict(api_tasks: list[Any]) -> None:
    """`executable` (no question; the metric) is true for a program that runs and fails its tests
    (a changed constant, a missing return) and false for a syntax error or a NameError."""
    problems = {p.task_id: p for p in api_tasks}
    programs = [(p.task_id, prog, name) for p in api_tasks for name, prog in je.variants(p)]
    seen = set()
    for item in je.label(problems, programs, workers=1):
        if item.source in ("reference", "constant", "incomplete"):
            assert item.facts["executable"] is True, (item.source, item.facts)
            seen.add(item.source)
        elif item.source in ("syntax", "undefined", "no_import", "bad_import"):
            assert item.facts["executable"] is False, (item.source, item.facts)
            seen.add(item.source)
    assert {"reference", "constant", "syntax", "undefined"} <= seen, seen  # both verdicts were checked


def test_sft_rows_are_the_judges_own_prompts_with_the_fact_as_answer(api_tasks: list[Any]) -> None:
    """A syntax error leaves imports, undefined and complete unknown: those questions get no row."""
    p = api_tasks[0]
    facts = {"syntax": False, "imports": None, "undefined": None, "complete": None, "passed": False,
             "api": None, "arguments": None}  # fmt: skip
    broken = je.Labeled(p.task_id, p.instruction, p.header + "    return (\n", "syntax", facts)
    rows = je.sft_rows([broken], QUESTIONS)
    asked = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in rows}
    expected = {q.id for q in QUESTIONS.questions if je.QUESTION_FACTS[q.id] in ("syntax", "passed")}
    assert len(rows) == len(expected) == 3  # syntax, bugs, logic
    for q in QUESTIONS.questions:
        [message] = QUESTIONS.render(q, p.instruction, broken.program)
        assert (message["content"] in asked) == (q.id in expected)
    assert set(asked.values()) == {"no"}


def test_trained_sibling_answers_locally_and_through_execrl_serve(
    tiny: str, api_tasks: list[Any], tmp_path: Path
) -> None:
    """The sibling has `yes` and `no` as single tokens; after SFT on judge rows it answers every
    question by log-probabilities; `execrl serve` in front of it gives the same P(yes) over HTTP
    (its top-10 alternatives hold the answer words), and the held-out report has a row per fact."""
    from execrl.generation.hf import HFGenerator
    from execrl.generation.server import make_server
    from execrl.trainers.sft import SFTConfig
    from execrl.trainers.sft import train as sft_train

    base = je.prepare_sibling(
        tiny, str(tmp_path / "base"), positions=2048
    )  # the tiny vocabulary: long prompts
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    assert [
        len(tok("yes", add_special_tokens=False)["input_ids"]),
        len(tok("no", add_special_tokens=False)["input_ids"]),
    ] == [1, 1]
    problems = {p.task_id: p for p in api_tasks}
    labeled = je.label(
        problems, [(p.task_id, prog, n) for p in api_tasks for n, prog in je.variants(p)], workers=1
    )
    data = write_jsonl(tmp_path / "rows.jsonl", je.sft_rows(labeled, QUESTIONS))
    out = tmp_path / "judge"
    sft_train(SFTConfig(model=base, data=str(data), out=str(out), max_steps=4, batch_size=8, lr=1e-2,
                        max_length=2048, log_every=1))  # fmt: skip
    local = judge.HFJudge(str(out))
    messages = [QUESTIONS.render(q, labeled[0].instruction, labeled[0].program) for q in QUESTIONS.questions]
    answers = local.answer(messages, QUESTIONS)
    assert all(a.p_yes is not None and a.method == "logprobs" for a in answers)
    srv = make_server(HFGenerator(str(out)), "127.0.0.1", 0, model_name="judge")
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        remote = judge.OpenAIJudge(srv.url, "judge", max_retries=0).answer(messages[:2], QUESTIONS)
    finally:
        srv.shutdown()
        srv.server_close()
    for a, b in zip(answers, remote):
        assert b.method == "logprobs" and b.p_yes is not None and a.p_yes is not None
        assert math.isclose(a.p_yes, b.p_yes, rel_tol=1e-3)
    report = je.heldout_accuracy(str(out), labeled[:3], QUESTIONS)
    assert set(report) == set(QUESTION_IDS) and all(0 <= r["accuracy"] <= 1 for r in report.values())
    assert all(r["auc"] is None or 0 <= r["auc"] <= 1 for r in report.values())


def test_larger_sibling_is_larger_shares_the_tokenizer_and_is_reused(tiny: str, tmp_path: Path) -> None:
    """The judge's backbone: wider and deeper than the policy, the policy's tokenizer unchanged,
    trained (a log row per step); asked again with the same settings it is not retrained, with
    other settings it is."""
    from transformers import AutoConfig, AutoTokenizer

    out = str(tmp_path / "sibling")
    assert je.larger_sibling(tiny, out, hidden_size=48, layers=3, heads=2, steps=2, batch_size=4) == out
    small, large = AutoConfig.from_pretrained(tiny), AutoConfig.from_pretrained(out)
    assert (large.hidden_size, large.num_hidden_layers) == (48, 3)
    assert large.hidden_size > small.hidden_size and large.num_hidden_layers > small.num_hidden_layers
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(tiny).get_vocab()
    with open(os.path.join(out, "log.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2]
    weights = os.path.join(out, "model.safetensors")
    before = os.stat(weights).st_mtime_ns
    je.larger_sibling(tiny, out, hidden_size=48, layers=3, heads=2, steps=2, batch_size=4)
    assert os.stat(weights).st_mtime_ns == before
    je.larger_sibling(tiny, out, hidden_size=48, layers=3, heads=2, steps=3, batch_size=4)
    assert os.stat(weights).st_mtime_ns != before


def test_judge_is_fine_tuned_from_the_backbone_and_not_mistaken_for_the_policys(
    tiny: str, tmp_path: Path
) -> None:
    """`train_judge(backbone=...)` fine-tunes the larger sibling (its shape, plus the answer words),
    and a judge trained from the policy's own model in the same directory is not reused as one."""
    from transformers import AutoConfig

    sibling = je.larger_sibling(tiny, str(tmp_path / "sibling"), hidden_size=48, layers=3, heads=2, steps=1,
                                batch_size=4)  # fmt: skip
    out = str(tmp_path / "judge")
    kw: dict[str, Any] = dict(steps=1, samples=0, tasks=1, batch_size=4, workers=1, max_length=2048)
    je.train_judge(tiny, out, **kw)
    assert AutoConfig.from_pretrained(out).hidden_size == AutoConfig.from_pretrained(tiny).hidden_size
    je.train_judge(tiny, out, backbone=sibling, **kw)
    config = AutoConfig.from_pretrained(out)
    assert (config.hidden_size, config.num_hidden_layers) == (48, 3)
    assert config.vocab_size == AutoConfig.from_pretrained(sibling).vocab_size + len(je.ANSWER_TOKENS)


def test_judge_relabelling_round_learns_the_moved_policies_programs(
    tiny: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train_judge(policies=...)`: `policy_samples` programs per task of each other checkpoint join
    the examples; a judge as the backbone is trained further (no answer words added twice); the
    same settings reuse the judge, other policies retrain it."""
    import shutil

    from transformers import AutoConfig

    moved = str(tmp_path / "moved")
    shutil.copytree(tiny, moved)
    kw: dict[str, Any] = dict(steps=1, samples=0, tasks=1, batch_size=4, workers=1, max_length=2048)
    first = je.train_judge(tiny, str(tmp_path / "judge"), **kw)
    calls: list[tuple[str, int, int]] = []
    real = je.policy_programs

    def spy(model: str, problems: Any, n: int, seed: int) -> list[tuple[str, str, str]]:
        calls.append((model, len(problems), n))
        return real(model, problems, n, seed)

    monkeypatch.setattr(je, "policy_programs", spy)
    out = str(tmp_path / "relabel")
    je.train_judge(tiny, out, backbone=first, policies=[moved], policy_samples=2, **kw)
    assert calls == [(tiny, 1, 0), (moved, 1, 2)]
    assert AutoConfig.from_pretrained(out).vocab_size == AutoConfig.from_pretrained(first).vocab_size
    weights = os.path.join(out, "model.safetensors")
    before = os.stat(weights).st_mtime_ns
    je.train_judge(tiny, out, backbone=first, policies=[moved], policy_samples=2, **kw)
    assert os.stat(weights).st_mtime_ns == before and len(calls) == 2
    je.train_judge(tiny, out, backbone=first, policies=[moved, tiny], policy_samples=2, **kw)
    assert os.stat(weights).st_mtime_ns != before


def test_judge_policy_scores_the_other_checkpoints_programs_too(tiny: str, tmp_path: Path) -> None:
    """RM data of a relabelling round: the model's `samples` programs per task, then
    `policy_samples` of each other checkpoint for the same tasks; every one judged and executed."""
    import shutil

    from execrl.demo_rlaif import judge_policy

    moved = str(tmp_path / "moved")
    shutil.copytree(tiny, moved)
    judge_dir = je.train_judge(tiny, str(tmp_path / "judge"), steps=1, samples=0, tasks=1, batch_size=4,
                               workers=1, max_length=2048)  # fmt: skip
    jp = judge_policy(tiny, judge_dir, str(tmp_path / "data"), tasks=2, samples=1, workers=1, policies=[moved],
                      policy_samples=2)  # fmt: skip
    with open(jp["samples"]) as f:
        tasks = [json.loads(line)["task_id"] for line in f]
    with open(jp["judgements"]) as f:
        judged = [json.loads(line) for line in f]
    with open(os.path.join(tmp_path, "data", "truth.jsonl")) as f:
        truth = [json.loads(line) for line in f]
    a, b = dict.fromkeys(tasks)
    assert tasks == [a, b, a, a, b, b]
    assert [j["task_id"] for j in judged] == tasks == [t["task_id"] for t in truth]


QUESTION_IDS = [q.id for q in QUESTIONS.questions]


# ---------------------------------------------------------------------------------------------
# Judge scores -> reward model


def test_debias_length_removes_the_within_task_length_trend(tiny: str, tmp_path: Path) -> None:
    """Scores = task offset + 0.5 per token + a length-free quality bit: after debias_length the
    score no longer follows length within a task, and the quality order within equal lengths stays."""
    from transformers import AutoTokenizer

    from execrl.demo_rlaif import debias_length

    tok = AutoTokenizer.from_pretrained(tiny)
    programs = ["    return 1\n", "    x = 1\n    return x\n", "    x = 1\n    y = x\n    return y\n"]
    samples, judged = [], []
    for t, offset in (("a", 0.0), ("b", 3.0)):
        for code in programs:
            for quality in (0.0, 1.0):
                length = len(tok(code)["input_ids"])
                samples.append({"task_id": t, "completion": code})
                judged.append(
                    {"task_id": t, "sample_index": len(judged), "score": offset + 0.5 * length + quality}
                )
    s_path, j_path = write_jsonl(tmp_path / "s.jsonl", samples), write_jsonl(tmp_path / "J.jsonl", judged)
    report = debias_length(tiny, str(s_path), str(j_path), str(tmp_path / "out.jsonl"))
    assert report["slope_per_token"] == pytest.approx(0.5)
    assert report["within_task_corr_before"] > 0.9 and abs(report["within_task_corr_after"]) < 1e-9
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["score_raw"] for r in rows] == [r["score"] for r in judged]
    residual = [r["score"] for r in rows]
    assert len({round(v, 9) for v in residual[:6:2]}) == 1 and all(b - a == pytest.approx(1.0)
                                                                  for a, b in zip(residual[::2], residual[1::2]))  # fmt: skip


def test_read_judging_returns_the_three_files_in_order_and_names_the_one_out_of_line(tmp_path: Path) -> None:
    from execrl.data import DataError
    from execrl.demo_rlaif import read_judging

    samples = [{"task_id": "a", "completion": "x"}, {"task_id": "b", "completion": "y"}]
    judged = [{"task_id": "a", "score": 1.0}, {"task_id": "b", "score": 2.0}]
    truth = [{"task_id": "a", "status": "passed"}, {"task_id": "b", "status": "failed"}]
    for name, rows in (("samples", samples), ("J", judged), ("truth", truth)):
        write_jsonl(tmp_path / f"{name}.jsonl", rows)
    assert read_judging(str(tmp_path)) == (samples, judged, truth)
    write_jsonl(tmp_path / "truth.jsonl", truth[::-1])
    with pytest.raises(DataError, match="truth.jsonl: its rows' task ids differ"):
        read_judging(str(tmp_path))


def test_debias_length_refuses_judgements_that_do_not_match_the_samples(tiny: str, tmp_path: Path) -> None:
    from execrl.data import DataError
    from execrl.demo_rlaif import debias_length

    s_path = write_jsonl(tmp_path / "s.jsonl", [{"task_id": "a", "completion": "x"}] * 2)
    j_path = write_jsonl(tmp_path / "J.jsonl", [{"task_id": "a", "score": 1.0}])
    with pytest.raises(DataError, match="1 judgements for 2 samples"):
        debias_length(tiny, str(s_path), str(j_path), str(tmp_path / "out.jsonl"))
    assert not (tmp_path / "out.jsonl").exists()


def test_judge_pairs_need_the_score_gap() -> None:
    """Task a: scores 7.5, 6.0, 7.0 with gap 1 -> 7.5 over 6.0 and 7.0 over 6.0 (1.0 >= 1); 7.5 vs
    7.0 is a near-tie, no pair. A None score (unanswered) and a repeated program take no part."""
    samples = [("a", "x"), ("a", "y"), ("a", "z"), ("a", "w"), ("a", "x"), ("b", "u")]
    scores = [7.5, 6.0, 7.0, None, 1.0, 3.0]
    assert judge_pairs(samples, scores, 1.0, 0, 0) == [("a", 0, 1), ("a", 2, 1)]


def test_rm_trains_on_judge_scores(tiny: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`execrl rm train --samples S --judgements J`: 4 tasks x (reference 7.0, `pass` 2.0, and
    `return None` 6.5, no pair with the reference at gap 1) = 8 pairs; J rows out of order exit 2."""
    suite = builtin.generate(seed=0, size=40)
    tasks = [p for p in suite.values() if p.kind == "function"][:4]
    data = tmp_path / "tasks.jsonl"
    builtin.write_jsonl(data, tasks)
    samples, judged = [], []
    for p in tasks:
        for completion, score in ((p.solution, 7.0), ("    pass\n", 2.0), ("    return None\n", 6.5)):
            samples.append({"task_id": p.task_id, "completion": completion})
            judged.append({"task_id": p.task_id, "score": score, "p_yes": {}, "unanswered": []})
    s, j = write_jsonl(tmp_path / "s.jsonl", samples), write_jsonl(tmp_path / "j.jsonl", judged)
    out = tmp_path / "rm"
    args = ["rm", "train", "--model", tiny, "--samples", str(s), "--data", str(data), "--batch-size", "2",
            "--max-steps", "2", "--eval-fraction", "0"]  # fmt: skip
    assert main([*args, "--out", str(out), "--judgements", str(j)]) == 0
    assert json.loads((out / "report.json").read_text())["train_pairs"] == 8
    write_jsonl(tmp_path / "bad.jsonl", judged[1:] + judged[:1])
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "rm2"), "--judgements", str(tmp_path / "bad.jsonl")]) == 2
    assert "samples' order" in capsys.readouterr().err and not (tmp_path / "rm2").exists()


# ---------------------------------------------------------------------------------------------
# --reward judge


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reward": "judge"}, "needs exactly one of field 'judge_model'"),
        ({"reward": "judge", "judge_model": "d", "judge_api_base": "http://x/v1"}, "needs exactly one of"),
        ({"reward": "judge", "judge_api_base": "http://x/v1"}, "field 'judge' (the judge's model name"),
        ({"judge_model": "d"}, "field 'judge_model' is only read with reward 'judge'"),
        (
            {"reward": "judge", "judge_model": "d", "judge": "n"},
            "field 'judge' is only read with judge_api_base",
        ),
        (
            {"reward": "judge", "judge_model": "d", "replay_size": 4},
            "'replay_admit' must be 'best', 'threshold' or 'random' with reward 'judge'",
        ),
        (
            {"reward": "judge", "judge_model": "d", "replay_size": 4, "replay_admit": "kept"},
            "'replay_admit' must be one of",
        ),
    ],
)
def test_judge_reward_config_errors_name_the_field(fields: dict[str, Any], message: str) -> None:
    from execrl.trainers.rl_config import RLConfig

    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RLConfig(model="m", out="o", **fields)


def word_questions(tmp_path: Path) -> Path:
    """Three of the default questions with answer words the tiny model knows ("def" / "return"),
    so its P(yes) is defined."""
    text = Path(judge.DEFAULT_QUESTIONS).read_text()
    head, _ = text.split("answers:")
    qs = "\n".join(
        f"  - id: q{i}\n    text: {q.text}\n    weight: {i + 1}"
        for i, q in enumerate(QUESTIONS.questions[:3])
    )
    path = tmp_path / "q.yaml"
    path.write_text(f'{head}answers:\n  "yes": ["def"]\n  "no": ["return"]\nquestions:\n{qs}\n')
    return path


def test_judge_step_reward_is_the_normalized_score_and_tests_measure(tiny: str, tmp_path: Path) -> None:
    """`build_reward` for reward judge: each reward is the judge's weighted P(yes) over the weights'
    sum, asked about (instruction, header + completion), cached on disk; the tests still run."""
    from execrl.trainers.rewarding import build_reward
    from execrl.trainers.rl_config import RLConfig
    from execrl.types import Limits

    p = next(p for p in builtin.generate(seed=0, size=40).values() if p.kind == "function")
    qpath = word_questions(tmp_path)
    cfg = RLConfig(
        model="m", out=str(tmp_path / "run"), reward="judge", judge_model=tiny, judge_questions=str(qpath)
    )
    reward = build_reward(cfg, {p.task_id: p}, Limits(timeout=1.0), 1, None, None)
    try:
        scored = reward.score([p.task_id] * 2, [p.solution, "    pass\n"])
    finally:
        reward.close()
    assert [s.result.passed for s in scored] == [True, False]
    questions = judge.load_questions(qpath)
    direct = judge.JudgeReward(judge.HFJudge(tiny), questions)(
        [p.header + p.solution, p.header + "    pass\n"], instruction=[p.instruction] * 2
    )
    assert [s.reward for s in scored] == pytest.approx(direct, abs=1e-5)
    assert (tmp_path / "run" / "judge.cache.sqlite").exists()


def test_ppo_steps_against_the_judge(tiny: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`execrl train --algo ppo --reward judge --judge-model DIR`: two steps; the logged reward is
    the judge's (in [0, 1], not only 0/1) and the pass rate is still measured."""
    data = write_rl_tasks(tmp_path / "tasks.jsonl", test_tasks=1)
    out = tmp_path / "ppo"
    assert main(["train", "--model", tiny, "--out", str(out), "--data", data, "--algo", "ppo",
                 "--reward", "judge", "--judge-model", tiny, "--judge-questions", str(word_questions(tmp_path)),
                 "--prompts-per-step", "2", "--samples-per-prompt", "2", "--max-new-tokens", "8",
                 "--max-steps", "2", "--eval-every", "0", "--report-to", "none", "--workers", "1"]) == 0  # fmt: skip
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(0.0 <= r["reward"] <= 1.0 and 0.0 <= r["pass_rate"] <= 1.0 for r in log)
    assert any(r["reward"] not in (0.0, 1.0) for r in log)


# ---------------------------------------------------------------------------------------------
# The recipe and the demo switch


RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "rlaif.yaml"


def test_the_rlaif_recipe_is_a_valid_config_with_the_demo_settings() -> None:
    """recipes/rlaif.yaml is the demo's PPO (`demo_rlaif.RLAIF`), against the RM; switched to the
    judge as the reward as its header says (`--reward judge --rm '' --judge-model DIR`), it is valid."""
    from execrl.demo_rlaif import RLAIF
    from execrl.trainers.rl_config import RLConfig

    cfg = RLConfig.load(RECIPE)
    assert {k: getattr(cfg, k) for k in RLAIF} == RLAIF and cfg.replay_size == 0
    judged = RLConfig.load(RECIPE, {"reward": "judge", "rm": "", "judge_model": "runs/rlaif/judge"})
    assert judged.reward == "judge" and not judged.rm


def test_demo_method_switch_runs_rlaif_with_its_defaults(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`execrl demo --method rlaif` runs demo_rlaif.run into runs/demo-rlaif for 3 minutes by
    default; the full run is smoke-tested by hand (docs/rlaif.md)."""
    from execrl import demo_rlaif

    calls: list[tuple[str, float]] = []

    def fake_run(out: str, minutes: float, workers: int | None = None) -> dict[str, Any]:
        calls.append((out, minutes))
        return {"before": {"executable": 0.5}, "after": {"executable": 0.6}, "hostile_passed": 0}

    monkeypatch.setattr(demo_rlaif, "run", fake_run)
    assert main(["demo", "--method", "rlaif"]) == 0
    assert main(["demo", "--method", "rlaif", "--minutes", "0.5", "--out", "x"]) == 0
    assert calls == [("runs/demo-rlaif", 3.0), ("x", 0.5)]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["after"]["executable"] == 0.6


def test_api_metrics_of_references_and_of_a_broken_program(api_tasks: list[Any]) -> None:
    """Each task's reference: executable, calls its API, ROUGE-L 1 and passes; `return (` is a
    syntax error: not executable, no API call, fails. Means over the two tasks: exactly 1/2."""
    from execrl.demo_rlaif import score_api
    from execrl.eval import similarity

    a, b = api_tasks
    problems = {p.task_id: p for p in api_tasks}
    m = score_api(problems, [a.task_id, b.task_id], [a.solution, "    return (\n"], workers=1)
    assert (m["tasks"], m["executable"], m["api_match"], m["pass@1"]) == (2, 0.5, 0.5, 0.5)
    assert m["rouge_l"] == pytest.approx((1.0 + similarity.rouge_l("    return (\n", b.solution)) / 2)
    assert m["codebleu"] == pytest.approx(
        (similarity.codebleu(a.solution, a.solution) + similarity.codebleu("    return (\n", b.solution)) / 2
    )


def test_api_metrics_count_each_run_of_a_task_once(api_tasks: list[Any]) -> None:
    """A task repeated once per sampled run: every metric is the mean over all the programs (two runs
    of `a`, one of them broken, and one of `b`: 2/3), `tasks` the distinct ones, `programs` all."""
    from execrl.demo_rlaif import score_api

    a, b = api_tasks
    problems = {p.task_id: p for p in api_tasks}
    m = score_api(
        problems, [a.task_id, a.task_id, b.task_id], [a.solution, "    return (\n", b.solution], workers=1
    )
    assert (m["tasks"], m["programs"]) == (2, 3)
    assert (m["executable"], m["api_match"], m["pass@1"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_sampled_api_metrics_measure_runs_programs_per_task(tiny: str) -> None:
    """`runs` sampled programs of each held-out task; greedy runs would repeat one program, so
    asking for several is an error, not a silent copy."""
    from execrl.demo_rlaif import api_metrics

    m = api_metrics(tiny, limit=2, runs=3, temperature=0.7, workers=1)
    assert (m["tasks"], m["programs"]) == (2, 6)
    assert (api_metrics(tiny, limit=2, workers=1)["programs"]) == 2
    with pytest.raises(ValueError, match="runs=3"):
        api_metrics(tiny, limit=2, runs=3, workers=1)


def test_balanced_rows_have_as_many_yes_as_no_per_question(api_tasks: list[Any]) -> None:
    """Three programs, syntax true for all three, passed for one: balanced, `syntax` (no "no")
    gets no row and `bugs`/`logic` one yes and one no each; unbalanced keeps all 3 + 3 + 3."""
    p = api_tasks[0]
    facts = [{"syntax": True, "passed": i == 0} for i in range(3)]
    labeled = [
        je.Labeled(p.task_id, p.instruction, p.header + f"    return {i}\n", "x", f)
        for i, f in enumerate(facts)
    ]
    by_q = {q.id: q for q in QUESTIONS.questions}

    def answers(rows: list[dict[str, Any]], qid: str) -> list[str]:
        text = by_q[qid].text
        return sorted(r["messages"][1]["content"] for r in rows if text in r["messages"][0]["content"])

    assert len(je.sft_rows(labeled, QUESTIONS)) == 9
    balanced = je.sft_rows(labeled, QUESTIONS, balance=True)
    assert answers(balanced, "syntax") == [] and len(balanced) == 4
    assert answers(balanced, "bugs") == answers(balanced, "logic") == ["no", "yes"]


@pytest.mark.parametrize(
    ("true", "false", "expected"),
    [
        ([0.9, 0.8], [0.1, 0.2], 1.0),  # every true fact above every false one
        ([0.1, 0.2], [0.9, 0.8], 0.0),  # inverted
        ([0.6, 0.6], [0.6], 0.5),  # all tied: half credit each
        ([0.9, 0.5], [0.5, 0.1], 0.875),  # (1 + 1) + (0.5 + 1) over 4 pairs
        ([0.7, 0.3, 0.5], [0.4], 2 / 3),  # 0.7 and 0.5 beat 0.4, 0.3 does not
        ([0.51] * 3, [0.52], 0.0),  # all above 1/2 (accuracy would call them all yes) but ordered wrong
    ],
)
def test_auc_is_the_share_of_true_false_pairs_ordered_right(
    true: list[float], false: list[float], expected: float
) -> None:
    assert je.auc(true, false) == pytest.approx(expected)


def test_within_task_auc_compares_a_task_s_programs_only() -> None:
    """Task a: 0.9 (true) above 0.2 (false), 1 win; task b: 0.1 (true) vs 0.5 and 0.1 (false), a loss
    and a tie. Pairs across tasks (a's 0.9 vs b's 0.5) do not count: (1 + 0 + 0.5) / 3. A task with
    one side only adds nothing; with no task of both sides it is undefined."""
    tasks = ["a", "a", "b", "b", "b", "c"]
    values = [0.9, 0.2, 0.1, 0.5, 0.1, 0.0]
    truth = [True, False, True, False, False, True]
    assert je.within_task_auc(tasks, values, truth) == pytest.approx(1.5 / 3)
    assert je.within_task_auc(["a", "b"], [0.9, 0.1], [True, False]) is None


@pytest.mark.parametrize(("true", "false"), [([], [0.3]), ([0.3], []), ([], [])])
def test_auc_is_undefined_when_one_side_is_empty(true: list[float], false: list[float]) -> None:
    assert je.auc(true, false) is None
