"""APIBench metrics on Gorilla-format rows: AST match, hallucination, ROUGE-L, CodeBLEU,
executability (dry run in the sandbox), and `execrl evaluate --benchmark apibench`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from codebleu import calc_codebleu
from rouge_score import rouge_scorer

from apibench_rows import (
    HF_CALL,
    HF_INVENTED,
    HF_NER_CALL,
    HF_WRONG_API,
    NER_ROW,
    ROWS,
    TORCH_POSITIONAL_CALL,
    reference_answer,
    write_jsonl,
)
from execrl import LocalExecutor
from execrl.cli import main
from execrl.data import apibench
from execrl.eval import executability, similarity
from execrl.eval.apibench import match, parse_call

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def problems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, apibench.Problem]:
    path = write_jsonl(tmp_path_factory.mktemp("api") / "eval.json", [*ROWS, NER_ROW])
    return apibench.load(path)


@pytest.fixture(scope="module")
def ex() -> Iterator[LocalExecutor]:
    with LocalExecutor(workers=2, cache=False) as executor:
        yield executor


@pytest.mark.parametrize("index", range(len(ROWS)))
def test_every_reference_answer_matches_its_own_question(
    problems: dict[str, apibench.Problem], index: int
) -> None:
    """Gorilla's own answer (the `###Output:` part) is correct and is no hallucination, the
    TorchHub reference with a positional argument after keyword arguments included."""
    problem = problems[str(index + 1)]
    database = [p.api_call for p in problems.values() if p.provider == problem.provider]
    assert match(problem, reference_answer(ROWS[index]), database) == (True, False)
    assert match(problem, f"<<<api_call>>>: {problem.api_call}", database) == (True, False)


def test_positional_after_keyword_is_parsed_like_gorilla() -> None:
    call = parse_call(TORCH_POSITIONAL_CALL)
    assert call is not None and call.function == "torch.hub.load" and len(call.args) == 3


def test_a_real_but_wrong_api_is_neither_correct_nor_hallucinated(
    problems: dict[str, apibench.Problem],
) -> None:
    database = [HF_CALL, HF_NER_CALL]
    assert match(problems["1"], HF_WRONG_API, database) == (False, False)


def test_an_invented_model_name_is_a_hallucination(problems: dict[str, apibench.Problem]) -> None:
    database = [HF_CALL, HF_NER_CALL]
    assert match(problems["1"], HF_INVENTED, database) == (False, True)
    invented = "<<<api_call>>>: torch.hub.load(repo_or_dir='datvuthanh/hybridnets', 'hybridnets-xxl', pretrained=True)"
    assert match(problems["3"], invented, [TORCH_POSITIONAL_CALL]) == (False, True)


TF_USE_CALL = "hub.load('https://tfhub.dev/google/universal-sentence-encoder/4')"
TORCH_CALL = ROWS[1]["api_call"]
TF_CALL = ROWS[3]["api_call"]


@pytest.mark.parametrize(
    ("task", "answer", "database", "expected"),
    [
        # TorchHub: another real hub model (written positional-after-keyword), an invented one
        (
            "2",
            f"<<<api_call>>>: {TORCH_POSITIONAL_CALL}",
            [TORCH_CALL, TORCH_POSITIONAL_CALL],
            (False, False),
        ),
        (
            "2",
            "<<<api_call>>>: torch.hub.load('pytorch/vision', 'resnet1000', pretrained=True)",
            [TORCH_CALL],
            (False, True),
        ),
        (
            "2",
            "<<<api_call>>>: torch.hub.load('pytorch/vision', 'resnet18', pretrained=True)",
            [TORCH_CALL],
            (True, False),
        ),
        # TensorFlow Hub: the sentence encoder for an image question, an invented model URL
        ("4", f"<<<api_call>>>: {TF_USE_CALL}", [TF_CALL, TF_USE_CALL], (False, False)),
        (
            "4",
            "<<<api_call>>>: hub.KerasLayer('https://tfhub.dev/google/imagenet/mobilenet_v9/classification/5')",
            [TF_CALL, TF_USE_CALL],
            (False, True),
        ),
        ("4", f"<<<code>>>: model = tf.keras.Sequential([{TF_CALL}])", [TF_CALL], (True, False)),
    ],
)
def test_torchhub_and_tensorflow_hub_answers(
    problems: dict[str, apibench.Problem],
    task: str,
    answer: str,
    database: list[str],
    expected: tuple[bool, bool],
) -> None:
    assert match(problems[task], answer, database) == expected


@pytest.mark.parametrize(
    ("prediction", "reference"),
    [
        (HF_NER_CALL, HF_CALL),
        ("pipeline('sentiment-analysis', model='gorilla/imaginary-sentiment-xl')", HF_CALL),
        (
            TORCH_POSITIONAL_CALL,
            "torch.hub.load(repo_or_dir='pytorch/vision', model='resnet18', pretrained=True)",
        ),
        ("", HF_CALL),
    ],
)
def test_similarity_equals_the_reference_packages(prediction: str, reference: str) -> None:
    expected_rouge = rouge_scorer.RougeScorer(["rougeL"]).score(reference, prediction)["rougeL"].fmeasure
    assert similarity.rouge_l(prediction, reference) == expected_rouge
    expected_codebleu = calc_codebleu([reference], [prediction], lang="python")["codebleu"]
    assert similarity.codebleu(prediction, reference) == expected_codebleu


def test_answer_code_is_the_code_part_else_the_api_call() -> None:
    assert executability.answer_code(reference_answer(ROWS[1])).startswith("import torch\nmodel = torch.hub")
    assert executability.answer_code(f"<<<api_call>>>: {HF_CALL}") == HF_CALL
    assert executability.answer_code("<<<code>>>: ```python\nimport json\n```") == "import json"
    assert executability.answer_code("<<<code>>>: import json\n<<<explanation>>>: 1. x") == "import json"


def test_static_check_rejects_syntax_errors_and_undefined_names() -> None:
    verdict, plan = executability.static_check(f"import torch\nmodel = {TORCH_POSITIONAL_CALL}")
    assert plan is None and verdict is not None and verdict.executable is False
    assert "positional argument follows keyword argument" in verdict.reason
    verdict, plan = executability.static_check(f"classifier = {HF_CALL}\nclassifier(text)")
    assert verdict == executability.Verdict(False, "undefined name(s): pipeline, text")
    assert executability.static_check("  \n") == (executability.Verdict(False, "no code"), None)
    verdict, plan = executability.static_check(f"from transformers import *\nclassifier = {HF_CALL}")
    assert verdict is None and plan is not None  # a star import binds names we cannot list


def dry_run(ex: LocalExecutor, code: str) -> executability.Verdict:
    verdict, plan = executability.static_check(code)
    assert verdict is None and plan is not None
    [result] = ex.run([executability.dry_run_job([plan])])
    return executability.dry_run_verdicts(result, 1)[0]


@pytest.mark.parametrize(
    ("code", "executable", "reason"),
    [
        ("import json\nprint(json.dumps({'a': 1}, indent=2))", True, ""),
        (
            "import heapq\nheapq.nlargest(3)",
            False,
            "bad_arguments: heapq.nlargest: missing a required argument: 'iterable'",
        ),
        ("import json\njson.dumpz({'a': 1})", False, "no_attribute: json.dumpz"),
        ("from json import nothing", False, "import failed: from json import nothing: ImportError"),
        (
            "import tensorflow_hub as hub\nm = hub.KerasLayer('https://tfhub.dev/x/1')",
            None,
            "not installed: tensorflow_hub",
        ),
        ("import gorilla_magic", None, "not installed: gorilla_magic"),
    ],
)
def test_dry_run_in_the_sandbox(ex: LocalExecutor, code: str, executable: bool | None, reason: str) -> None:
    verdict = dry_run(ex, code)
    assert verdict.executable is executable and verdict.reason.startswith(reason)


def test_model_code_cannot_rebind_the_probe(ex: LocalExecutor) -> None:
    """An import that names a probe function binds it in the imports' own namespace: the checker
    still calls the real probe, and the missing library is still reported."""
    verdict = dry_run(ex, "from os import getcwd as execrl_import\nimport gorilla_magic")
    assert verdict == executability.Verdict(None, "not installed: gorilla_magic")


def test_statements_other_than_imports_never_run(ex: LocalExecutor) -> None:
    """`os._exit(0)` would end the process: it is resolved and bound, not called."""
    assert (
        dry_run(ex, "import os\nos._exit(0)\nimport gorilla_magic").reason == "not installed: gorilla_magic"
    )


def test_evaluate_apibench_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Reference answers of the four rows, a real but wrong API and an invented model for the
    HF question. The HF reference code calls `classifier(...)`, an object it made: not checked;
    transformers' `pipeline` resolves and binds. TorchHub's positional-after-keyword reference
    does not parse as Python; TensorFlow is not installed here."""
    data = write_jsonl(tmp_path / "eval.json", [*ROWS, NER_ROW])
    answers = [reference_answer(r) for r in ROWS] + [HF_WRONG_API, HF_INVENTED]
    samples = write_jsonl(
        tmp_path / "s.jsonl", [{"task_id": t, "completion": a} for t, a in zip("123411", answers)]
    )
    out = tmp_path / "r.jsonl"
    code = main(
        [
            "evaluate",
            "--benchmark",
            "apibench",
            "--data",
            str(data),
            "--samples",
            str(samples),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["ast_match"], r["hallucination"]) for r in rows] == [
        (True, False),
        (True, False),
        (True, False),
        (True, False),
        (False, False),
        (False, True),
    ]
    assert [r["executable"] for r in rows] == [True, True, False, None, True, True]
    assert rows[3]["executable_reason"].startswith("not installed: tensorflow")
    assert rows[4]["compared"] == {"prediction": HF_NER_CALL, "reference": HF_CALL}
    assert rows[0]["rouge_l"] == 1.0 and rows[4]["sample_index"] == 1
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    for r in rows:  # the reference packages on the compared strings
        prediction, reference = r["compared"]["prediction"], r["compared"]["reference"]
        assert r["rouge_l"] == scorer.score(reference, prediction)["rougeL"].fmeasure
        assert r["codebleu"] == calc_codebleu([reference], [prediction], lang="python")["codebleu"]
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == 6 and summary["ast_accuracy"] == 4 / 6 and summary["hallucination_rate"] == 1 / 6
    assert (
        summary["executable_rate"] == 4 / 5
        and summary["executable_decided"] == 5
        and summary["not_installed"] == 1
    )


def test_api_db_decides_hallucination(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With Gorilla's API file holding only the sentiment API, the NER answer is a hallucination."""
    data = write_jsonl(tmp_path / "eval.json", [*ROWS, NER_ROW])
    db = write_jsonl(tmp_path / "huggingface_api.jsonl", [{"domain": "d", "api_call": HF_CALL}])
    samples = write_jsonl(
        tmp_path / "s.jsonl", [{"task_id": "1", "completion": f"<<<api_call>>>: {HF_NER_CALL}"}]
    )
    args = [
        "evaluate",
        "--benchmark",
        "apibench",
        "--data",
        str(data),
        "--api-db",
        str(db),
        "--samples",
        str(samples),
    ]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["hallucination_rate"] == 1.0 and summary["executable_rate"] == 0.0


def test_builtin_api_tasks_executability_is_real_execution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reference runs (and calls the API); a wrong answer still runs to completion
    (executable, no API call); a ZeroDivisionError and a syntax error do not run."""
    from execrl.data import builtin

    api = [p for p in builtin.generate(0, 60).values() if p.kind == "api"][:1]
    data = tmp_path / "builtin.jsonl"
    builtin.write_jsonl(data, api)
    task = api[0].task_id
    completions = [api[0].solution, "    return 12345\n", "    return 1 / 0\n", "    return (\n"]
    samples = write_jsonl(tmp_path / "s.jsonl", [{"task_id": task, "completion": c} for c in completions])
    out = tmp_path / "r.jsonl"
    args = [
        "evaluate",
        "--benchmark",
        "builtin",
        "--data",
        str(data),
        "--samples",
        str(samples),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["status"], r["executable"], r["ast_match"]) for r in rows] == [
        ("passed", True, True),
        ("failed", True, False),
        ("runtime_error", False, False),
        ("syntax_error", False, False),
    ]
    assert rows[2]["executable_reason"].startswith("runtime_error: ZeroDivisionError")
    *table, last = capsys.readouterr().out.strip().splitlines()
    assert set(json.loads(last)) == {"pass@1"}  # the last line stays pass@k only
    assert {"api_samples 4", "api_executable_rate 0.5000", "api_ast_match_rate 0.2500"} <= {
        " ".join(line.split()) for line in table
    }


def test_plans_in_one_job_keep_their_own_names(ex: LocalExecutor) -> None:
    """Three plans share a candidate: the second calls `json.dumps` without importing json; the
    first plan's import does not lend it the name. Verdicts equal those of separate jobs."""
    plans = [
        executability.Plan(("import json",), (("json.dumps", 1, ("indent",), False),)),
        executability.Plan((), (("json.dumps", 1, (), False),)),
        executability.Plan(("import gorilla_magic",), ()),
    ]
    [result] = ex.run([executability.dry_run_job(plans)])
    grouped = executability.dry_run_verdicts(result, 3)
    assert grouped == [
        executability.Verdict(True),
        executability.Verdict(False, "undefined: json"),
        executability.Verdict(None, "not installed: gorilla_magic"),
    ]
    alone = [
        executability.dry_run_verdicts(r, 1)[0]
        for r in ex.run([executability.dry_run_job([p]) for p in plans])
    ]
    assert alone == grouped
    assert plans[0].libraries() == ("json",) and plans[1].libraries() == ()


def test_gorillas_own_answer_files_are_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows `{"question_id", "text"}` (Gorilla's get_llm_responses.py) are samples too."""
    data = write_jsonl(tmp_path / "eval.json", [*ROWS, NER_ROW])
    answers = write_jsonl(
        tmp_path / "responses.jsonl",
        [{"question_id": 1, "text": f"<<<api_call>>>: {HF_CALL}"}, {"question_id": 1, "text": HF_INVENTED}],
    )
    assert main(["evaluate", "--benchmark", "apibench", "--data", str(data), "--samples", str(answers)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == 2 and summary["ast_accuracy"] == 0.5 and summary["hallucination_rate"] == 0.5
