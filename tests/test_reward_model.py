"""Reward models: the Bradley–Terry loss by hand, pairs from execution, `execrl rm train` / `score`."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from execrl.cli import main
from execrl.data import builtin
from execrl.trainers.reward_model import Pair, bradley_terry_loss, execution_pairs, split_pairs
from tinymodel import make_tiny_model

GOOD, BAD = "    return x + y\n", "    pass\n"
PAIRS = [{"prompt": f"def add(x{i}, y):\n", "chosen": GOOD, "rejected": BAD} for i in range(8)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rm_train(model: str, out: Path, *extra: str, pairs: Path | None = None) -> int:
    source = ["--pairs", str(pairs)] if pairs is not None else []
    return main(["rm", "train", "--model", model, "--out", str(out), "--batch-size", "2", "--lr", "1e-2",
                 *source, *extra])  # fmt: skip


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------------------------------------
# The loss


def test_bradley_terry_loss_matches_hand_values() -> None:
    """−log σ(d − m) with d = r_c − r_r:
    d = 1:  log(1 + e^−1) = 0.313262;  d = 0: log 2 = 0.693147 (a tie is not accurate);
    d = −2: log(1 + e^2) = 2.126928;   d = 1 with margin 1: log 2."""
    chosen, rejected = torch.tensor([1.0, 0.5, -1.0]), torch.tensor([0.0, 0.5, 1.0])
    losses, acc = bradley_terry_loss(chosen, rejected)
    assert losses.tolist() == pytest.approx([0.313262, 0.693147, 2.126928], abs=1e-6)
    assert acc.tolist() == [1.0, 0.0, 0.0]
    losses, _ = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([1.0]), margin=1.0)
    assert float(losses[0]) == pytest.approx(math.log(2), abs=1e-6)


def test_bradley_terry_loss_is_finite_for_large_gaps() -> None:
    losses, _ = bradley_terry_loss(torch.tensor([-200.0, 200.0]), torch.tensor([200.0, -200.0]))
    assert losses.tolist() == pytest.approx([400.0, 0.0], abs=1e-4)


# ---------------------------------------------------------------------------------------------
# Pairs


def test_execution_pairs_rank_passed_then_pass_ratio() -> None:
    """Task a: p (passed), h (half the tests), z (none), h again (a duplicate), s (sandbox error):
    pairs p>h, p>z, h>z; the duplicate and the sandbox error take no part. Task b: two equal
    failures give no pair."""
    samples = [("a", "p"), ("a", "h"), ("a", "z"), ("a", "h"), ("a", "s"), ("b", "x"), ("b", "y")]
    outcomes = [(True, 1.0), (False, 0.5), (False, 0.0), (False, 0.5), None, (False, 0.0), (False, 0.0)]
    assert execution_pairs(samples, outcomes, cap=0, seed=0) == [("a", 0, 1), ("a", 0, 2), ("a", 1, 2)]


def test_execution_pairs_cap_is_a_seeded_draw() -> None:
    samples = [("a", str(i)) for i in range(6)]
    outcomes: list[Any] = [(i % 2 == 0, float(i % 2 == 0)) for i in range(6)]  # 3 pass, 3 fail: 9 pairs
    first = execution_pairs(samples, outcomes, cap=4, seed=1)
    assert len(first) == 4 and first == execution_pairs(samples, outcomes, cap=4, seed=1)
    assert all(outcomes[c] > outcomes[r] for _, c, r in first)
    assert {p for s in range(20) for p in execution_pairs(samples, outcomes, cap=4, seed=s)} == set(
        execution_pairs(samples, outcomes, cap=0, seed=0)
    )


def test_split_holds_out_whole_prompts() -> None:
    pairs = [Pair(f"p{g}", "c", "r", f"p{g}", i) for i, g in enumerate([0, 0, 1, 2, 2, 3, 4, 5, 6, 7])]
    train, held = split_pairs(pairs, 0.25, seed=0)
    assert len({p.group for p in held}) == 2  # ceil(0.25 * 8)
    assert not {p.group for p in held} & {p.group for p in train}
    assert len(train) + len(held) == len(pairs)
    assert split_pairs(pairs, 0.25, seed=0) == (train, held)
    assert split_pairs(pairs, 0.0, seed=0) == (pairs, [])


# ---------------------------------------------------------------------------------------------
# execrl rm train / score


def test_rm_learns_pairs_and_saves_a_standard_sequence_classifier(model_dir: str, tmp_path: Path) -> None:
    """The RM ranks the held-out chosen above the rejected after training, and the saved directory
    is an `AutoModelForSequenceClassification` whose scores (read at the last non-pad token, right
    padding, batches of mixed lengths) equal `RewardModel.scores`."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from execrl.rewards.model import RewardModel

    out = tmp_path / "rm"
    pairs = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    assert rm_train(model_dir, out, "--max-steps", "30", "--eval-fraction", "0.25", pairs=pairs) == 0
    log = rows(out / "log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 31))
    assert log[-1]["loss"] < log[0]["loss"]
    report = json.loads((out / "report.json").read_text())
    assert report["heldout"]["pairs"] == 2 and report["heldout"]["accuracy"] == 1.0
    assert set(report["heldout"]["distribution"]) == {"edges", "chosen", "rejected"}
    assert (out / "report.md").exists() and rows(out / "eval.jsonl")[-1]["step"] == 30

    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert type(hf).__name__ == "LlamaForSequenceClassification" and hf.config.num_labels == 1
    tok = AutoTokenizer.from_pretrained(out)
    texts = ["def add(x, y):\n" + GOOD, "def add(x, y):\n" + BAD + "# a longer tail of tokens\n"]
    one_by_one = []
    with torch.no_grad():
        for t in texts:
            ids = tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            one_by_one.append(float(hf(input_ids=torch.tensor([ids])).logits[0, 0]))
    rm = RewardModel(str(out))
    assert rm.scores(["def add(x, y):\n"] * 2, [GOOD, texts[1].removeprefix("def add(x, y):\n")]) == (
        pytest.approx(one_by_one, abs=1e-5)
    )
    assert one_by_one[0] > one_by_one[1]


def test_rm_resume_reaches_the_uninterrupted_weights(model_dir: str, tmp_path: Path) -> None:
    pairs = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    full, cut = tmp_path / "full", tmp_path / "cut"
    args = ("--max-steps", "6", "--save-every", "3", "--grad-accum", "2", "--eval-every", "2")
    assert rm_train(model_dir, full, *args, pairs=pairs) == 0
    cut.mkdir()
    shutil.copytree(full / "checkpoint-3", cut / "checkpoint-3")
    for name in ("log.jsonl", "eval.jsonl"):
        shutil.copy(full / name, cut / name)  # rows after step 3 must be dropped on resume
    assert rm_train(model_dir, cut, *args, pairs=pairs) == 2  # needs --resume
    assert rm_train(model_dir, cut, *args, "--resume", pairs=pairs) == 0
    a, b = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in rows(cut / "log.jsonl")] == list(range(1, 7))
    assert [r["step"] for r in rows(cut / "eval.jsonl")] == [2, 4, 6]


BAD_PAIRS = {
    "missing_field": ('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n', ":2:",
                      'missing field "rejected"'),
    "not_a_string": ('{"prompt": "a", "chosen": 1, "rejected": "c"}\n', ":1:", 'field "chosen" must be'),
    "malformed": ('{"prompt": "a", "chosen": "b", "rejected": "c"\n', ":1:", "malformed JSON"),
    "empty": ("", ":", "no pairs"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_PAIRS))
def test_bad_pairs_exit_2_naming_the_line_and_write_nothing(
    case: str, model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, where, what = BAD_PAIRS[case]
    data = tmp_path / "pairs.jsonl"
    data.write_text(content)
    capsys.readouterr()
    assert rm_train(model_dir, tmp_path / "out", pairs=data) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{data}{where}" in err[0] and what in err[0], err
    assert not (tmp_path / "out").exists()


def test_rm_config_needs_exactly_one_source(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rm_train(model_dir, tmp_path / "out") == 2
    assert "'pairs' is required" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _execution_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Built-in tasks with a reference (passes) and two wrong completions each, the results rows
    as `execrl evaluate --out` writes them, and the data file."""
    suite = builtin.generate(seed=0, size=40)
    tasks = [p for p in suite.values() if p.kind == "function"][:6]
    data = tmp_path / "tasks.jsonl"
    builtin.write_jsonl(data, tasks)
    samples, results = [], []
    for p in tasks:
        for completion, passed, done in (
            (p.solution, True, 3),
            ("    return None\n", False, 0),
            ("    pass\n", False, 1),
        ):
            samples.append({"task_id": p.task_id, "completion": completion})
            results.append({"task_id": p.task_id, "status": "passed" if passed else "failed", "passed": passed,
                            "tests_passed": done, "tests_total": 3})  # fmt: skip
    return write_jsonl(tmp_path / "s.jsonl", samples), write_jsonl(tmp_path / "r.jsonl", results), data


def test_rm_trains_on_execution_pairs_and_scores_a_samples_file(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples, results, data = _execution_files(tmp_path)
    out = tmp_path / "rm"
    assert rm_train(model_dir, out, "--samples", str(samples), "--results", str(results), "--data", str(data),
                    "--max-steps", "3", "--pairs-per-prompt", "2") == 0  # fmt: skip
    assert (
        json.loads((out / "report.json").read_text())["train_pairs"]
        + json.loads((out / "report.json").read_text())["heldout"]["pairs"]
        == 12
    )  # 6 tasks x min(3 pairs, cap 2)
    scored = tmp_path / "scores.jsonl"
    capsys.readouterr()
    assert main(["rm", "score", "--rm", str(out), "--benchmark", "builtin", "--data", str(data),
                 "--samples", str(samples), "--out", str(scored)]) == 0  # fmt: skip
    got = rows(scored)
    assert len(got) == 18 and [r["sample_index"] for r in got[:3]] == [0, 1, 2]
    assert all(math.isfinite(r["reward"]) for r in got)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["samples"] == 18


def test_results_out_of_order_are_an_error(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples, results, data = _execution_files(tmp_path)
    lines = results.read_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]  # task 0's last row and task 1's first row swapped
    results.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert rm_train(model_dir, tmp_path / "out", "--samples", str(samples), "--results", str(results),
                    "--data", str(data)) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert f"{results}:3:" in err and "samples' order" in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# execrl train --reward rm


@pytest.fixture(scope="module")
def tiny_rm(model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    from execrl.trainers.reward_model import RMConfig, train

    tmp = tmp_path_factory.mktemp("rm")
    pairs = write_jsonl(tmp / "pairs.jsonl", PAIRS)
    return train(RMConfig(model=model_dir, out=str(tmp / "rm"), pairs=str(pairs), max_steps=2, lr=1e-2,
                          batch_size=4))["out"]  # fmt: skip


def test_rm_step_reward_scores_with_the_model_and_executes_to_measure(tiny_rm: str, tmp_path: Path) -> None:
    """`build_reward` for reward rm: rewards are the RM's scores of prompt + completion; the
    results are the tests' (the reference passes, `pass` fails) and `execution` is the tests' reward."""
    from execrl.rewards.model import RewardModel
    from execrl.trainers.rewarding import build_reward
    from execrl.trainers.rl_config import RLConfig
    from execrl.types import Limits

    suite = builtin.generate(seed=0, size=40)
    p = next(p for p in suite.values() if p.kind == "function")
    cfg = RLConfig(model="m", out=str(tmp_path), reward="rm", rm=tiny_rm)
    reward = build_reward(cfg, {p.task_id: p}, Limits(timeout=1.0), 1, None, None)
    try:
        scored = reward.score([p.task_id] * 2, [p.solution, BAD])
        assert [s.result.passed for s in scored] == [True, False]
        prompt = builtin.prompt(p, chat=False)
        assert [s.reward for s in scored] == pytest.approx(
            RewardModel(tiny_rm).scores([prompt] * 2, [p.solution, BAD]), abs=1e-6
        )
        assert reward.execution.kind == "binary"
    finally:
        reward.close()


def test_ppo_steps_against_a_reward_model(model_dir: str, tiny_rm: str, tmp_path: Path) -> None:
    """Two PPO steps of the tiny policy against the tiny RM (with BR filtration over 3 samples):
    the logged reward is the RM's (not a 0/1 test outcome), pass rate is still measured, and the
    policy's weights changed."""
    from execrl.trainers.rl import train
    from execrl.trainers.rl_config import RLConfig
    from tinymodel import write_rl_tasks

    data = write_rl_tasks(tmp_path / "tasks.jsonl", test_tasks=1)
    out = tmp_path / "ppo"
    cfg = RLConfig(model=model_dir, out=str(out), data=data, algo="ppo", reward="rm", rm=tiny_rm,
                   filtration="br", prompts_per_step=2, samples_per_prompt=3, max_new_tokens=8, max_steps=2,
                   lr=1e-3, eval_every=0, report_to="none", workers=1)  # fmt: skip
    summary = train(cfg)
    assert summary["steps"] == 2
    log = rows(out / "log.jsonl")
    assert all(0.0 <= r["pass_rate"] <= 1.0 and math.isfinite(r["reward"]) for r in log)
    assert any(r["reward"] not in (0.0, 1.0) for r in log)
    assert log[0]["filtration/kept_fraction"] == 1.0  # BR over 3 keeps every sample (the best at 1/2)
    before, after = load_file(Path(model_dir) / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before if k in after)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reward": "rm"}, "field 'rm' (the reward model directory) is required"),
        ({"rm": "dir"}, "field 'rm' is only read with reward 'rm'"),
        (
            {"reward": "rm", "rm": "dir", "replay_size": 8},
            "field 'replay_admit' must be 'best', 'threshold' or 'random' with reward 'rm'",
        ),
    ],
)
def test_rm_config_errors_name_the_field(fields: dict[str, Any], message: str) -> None:
    from execrl.data import DataError
    from execrl.trainers.rl_config import RLConfig

    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RLConfig(model="m", out="o", **fields)


@pytest.mark.parametrize("admit", ["best", "random", "threshold"])
def test_learned_rewards_accept_replay_that_never_reads_the_tests(admit: str) -> None:
    from execrl.trainers.rl_config import RLConfig

    extra = {"replay_threshold": 1.5} if admit == "threshold" else {}
    cfg = RLConfig(model="m", out="o", reward="rm", rm="dir", replay_size=8, replay_admit=admit, **extra)
    assert cfg.replay_admit == admit


@pytest.mark.parametrize(
    "fields", [{"replay_admit": "threshold"}, {"replay_admit": "best", "replay_threshold": 1.0}]
)
def test_replay_threshold_goes_with_threshold_admission_only(fields: dict[str, Any]) -> None:
    from execrl.data import DataError
    from execrl.trainers.rl_config import RLConfig

    with pytest.raises(DataError, match="replay_threshold"):
        RLConfig(model="m", out="o", reward="rm", rm="dir", replay_size=8, **fields)


def test_a_bad_rm_directory_fails_before_out_is_written(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tinymodel import write_rl_tasks

    data = write_rl_tasks(tmp_path / "tasks.jsonl", test_tasks=1)
    capsys.readouterr()
    code = main(["train", "--model", model_dir, "--out", str(tmp_path / "out"), "--data", data, "--algo", "ppo",
                 "--reward", "rm", "--rm", model_dir, "--max-steps", "1", "--report-to", "none"])  # fmt: skip
    assert code == 2
    assert "num_labels 1" in capsys.readouterr().err  # a causal LM is not a reward model
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# execrl filtration collect -> analyze


def test_collect_then_analyze_end_to_end(
    model_dir: str, tiny_rm: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """From a policy checkpoint to R² in two commands, on the built-in suite: rows carry the RM's
    reward and the pass ratio, n per task, and the same seed gives the same file."""
    from tinymodel import write_rl_tasks

    data = write_rl_tasks(tmp_path / "tasks.jsonl", test_tasks=2)
    scores = tmp_path / "scores.jsonl"
    args = ["filtration", "collect", "--model", model_dir, "--rm", tiny_rm, "--benchmark", "builtin", "--data", data,
            "--n", "3", "--split", "train", "--limit", "4", "--max-new-tokens", "8", "--workers", "1",
            "--timeout", "1"]  # fmt: skip
    assert main([*args, "--out", str(scores)]) == 0
    got = rows(scores)
    assert len(got) == 12 and [r["prompt_id"] for r in got[::3]] == list(
        dict.fromkeys(r["prompt_id"] for r in got)
    )
    assert all(math.isfinite(r["reward"]) and 0.0 <= r["score"] <= 1.0 for r in got)
    assert main([*args, "--out", str(tmp_path / "again.jsonl")]) == 0
    assert rows(tmp_path / "again.jsonl") == got
    capsys.readouterr()
    assert main(["filtration", "analyze", "--scores", str(scores), "--bins", "3"]) == 0
    assert set(json.loads(capsys.readouterr().out.strip().splitlines()[-1])) == {"none", "bon", "br", "bw"}


def test_collect_checks_inputs_before_writing(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing" / "s.jsonl"
    assert main(["filtration", "collect", "--model", model_dir, "--rm", model_dir, "--benchmark", "builtin",
                 "--out", str(out)]) == 2  # fmt: skip
    assert "output directory does not exist" in capsys.readouterr().err
    out = tmp_path / "s.jsonl"
    assert main(["filtration", "collect", "--model", model_dir, "--rm", model_dir, "--benchmark", "builtin",
                 "--split", "train", "--out", str(out)]) == 2  # fmt: skip
    assert "num_labels 1" in capsys.readouterr().err and not out.exists()


def test_the_pf_ppo_recipe_is_a_valid_config_with_the_demo_settings() -> None:
    from execrl.demo_pfppo import PFPPO
    from execrl.trainers.rl_config import RLConfig

    cfg = RLConfig.load(Path(__file__).resolve().parents[1] / "recipes" / "pf-ppo.yaml")
    assert {k: getattr(cfg, k) for k in PFPPO} == PFPPO
    assert cfg.filtration == "br" and cfg.replay_size == 0


def test_demo_picks_the_strategy_of_highest_r2() -> None:
    from execrl.demo_pfppo import best_strategy

    assert best_strategy({"none": 0.5, "bon": None, "br": 0.7, "bw": 0.6, "top-bottom": 0.99}) == "br"
    assert best_strategy({"none": None, "bon": None}) == "br"


def test_demo_method_switch_runs_pf_ppo_with_its_defaults(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`execrl demo --method pf-ppo` runs demo_pfppo.run into runs/demo-pf-ppo for 5 minutes by
    default (the GRPO demo stays the default method); the full run is smoke-tested by hand."""
    from execrl import demo_pfppo

    calls: list[tuple[str, float]] = []

    def fake_run(out: str, minutes: float, workers: int | None = None) -> dict[str, Any]:
        calls.append((out, minutes))
        return {"before": 0.1, "after": 0.2, "strategy": "br", "r2": {"br": 0.5}, "hostile_passed": 0}

    monkeypatch.setattr(demo_pfppo, "run", fake_run)
    assert main(["demo", "--method", "pf-ppo"]) == 0
    assert main(["demo", "--method", "pf-ppo", "--minutes", "0.5", "--out", "x"]) == 0
    assert calls == [("runs/demo-pf-ppo", 5.0), ("x", 0.5)]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["strategy"] == "br"


def test_bf16_on_a_cpu_is_refused_before_writing(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    pairs = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    assert rm_train(model_dir, tmp_path / "out", "--bf16", pairs=pairs) == 2
    assert "needs a GPU" in capsys.readouterr().err and not (tmp_path / "out").exists()
