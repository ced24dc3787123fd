"""Gorilla APIBench rows: loading, the instruction split, prompts, and the absence of jobs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from execrl import Limits
from execrl.data import apibench
from execrl.data.jsonl import DataError

HF_ROW: dict[str, Any] = {
    "code": (
        "###Instruction: Our app should tell whether a movie review is positive or negative.\n"
        "###Output: <<<domain>>>: Natural Language Processing Text Classification\n"
        "<<<api_call>>>: pipeline('sentiment-analysis', model='distilbert-base-uncased-finetuned-sst-2-english')\n"
        "<<<api_provider>>>: Hugging Face Transformers\n<<<explanation>>>: 1. Import pipeline...\n"
        "<<<code>>>: from transformers import pipeline\n"
    ),
    "api_call": "pipeline('sentiment-analysis', model='distilbert-base-uncased-finetuned-sst-2-english')",
    "provider": "Hugging Face Transformers",
    "api_data": {
        "domain": "Natural Language Processing Text Classification",
        "framework": "Hugging Face Transformers",
        "functionality": "Sentiment analysis",
        "api_name": "distilbert-base-uncased-finetuned-sst-2-english",
        "api_call": "pipeline('sentiment-analysis', model='distilbert-base-uncased-finetuned-sst-2-english')",
        "api_arguments": ["text"],
        "python_environment_requirements": ["transformers"],
    },
}
TORCH_ROW: dict[str, Any] = {
    "code": "###Instruction: Classify images into 1000 categories.\n###Output: <<<domain>>>: Classification ...",
    "provider": "PyTorch",
    "api_data": {
        "domain": "Classification",
        "framework": "PyTorch",
        "api_name": "resnet18",
        "api_call": "torch.hub.load(repo_or_dir='pytorch/vision', model='resnet18', pretrained=True)",
        "api_arguments": {"repo_or_dir": "pytorch/vision", "model": "resnet18", "pretrained": "True"},
    },
}


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def problems(tmp_path: Path) -> dict[str, apibench.Problem]:
    return apibench.load(write_jsonl(tmp_path / "huggingface_eval.json", [HF_ROW, TORCH_ROW]))


def test_load_splits_instruction_and_numbers_rows_from_one(problems: dict[str, apibench.Problem]) -> None:
    assert list(problems) == ["1", "2"]
    hf = problems["1"]
    assert hf.instruction == "Our app should tell whether a movie review is positive or negative."
    assert hf.reference_output.startswith("<<<domain>>>: Natural Language Processing")
    assert (hf.provider, hf.domain, hf.api_name) == (
        "Hugging Face Transformers",
        "Natural Language Processing Text Classification",
        "distilbert-base-uncased-finetuned-sst-2-english",
    )
    assert json.loads(hf.api_arguments) == ["text"]


def test_api_call_falls_back_to_api_data(problems: dict[str, apibench.Problem]) -> None:
    torch = problems["2"]
    assert torch.api_call == TORCH_ROW["api_data"]["api_call"] and torch.provider == "PyTorch"


def test_explicit_question_id_is_the_task_id(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [{**HF_ROW, "question_id": 7}])
    assert list(apibench.load(path)) == ["7"]


def test_split_code_without_markers_is_all_instruction() -> None:
    assert apibench.split_code("  Translate this sentence.  ") == ("Translate this sentence.", "")
    assert apibench.split_code("###Instruction: Do it.") == ("Do it.", "")


def test_bad_rows_name_file_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [HF_ROW, {k: v for k, v in HF_ROW.items() if k != "code"}])
    with pytest.raises(DataError) as e:
        apibench.load(path)
    assert str(e.value) == f'{path}:2: missing field "code"'
    no_call = {**TORCH_ROW, "api_data": {"domain": "x"}}
    with pytest.raises(DataError, match=r':1: missing field "api_call"'):
        apibench.load(write_jsonl(tmp_path / "q.jsonl", [no_call]))
    with pytest.raises(DataError, match=r':1: field "api_data" must be an object, got an array'):
        apibench.load(write_jsonl(tmp_path / "q.jsonl", [{**HF_ROW, "api_data": []}]))


def test_make_job_says_there_are_no_execution_tests(problems: dict[str, apibench.Problem]) -> None:
    with pytest.raises(DataError, match=r"^apibench has no execution tests; use execrl.eval.apibench$"):
        apibench.make_job(problems["1"], "pipeline('x')", Limits())


def test_completion_prompt_is_gorillas_training_format(problems: dict[str, apibench.Problem]) -> None:
    assert apibench.prompt(problems["1"], chat=False) == (
        "###Instruction: Our app should tell whether a movie review is positive or negative.\n###Output:"
    )
    raw = " <<<domain>>>: NLP\n<<<api_call>>>: pipeline('x')\n###Instruction: next question"
    assert apibench.completion_from_output(problems["1"], raw, chat=False) == (
        " <<<domain>>>: NLP\n<<<api_call>>>: pipeline('x')\n"
    )


def test_chat_prompt_asks_for_gorillas_answer_format(problems: dict[str, apibench.Problem]) -> None:
    [message] = apibench.prompt(problems["2"], chat=True)
    assert message["content"].startswith("Classify images into 1000 categories.\n")
    assert "<<<api_call>>>: $API_CALL" in message["content"] and "PyTorch" in message["content"]
    assert apibench.completion_from_output(problems["2"], "anything ###Instruction", chat=True) == (
        "anything ###Instruction"
    )


def test_metadata_is_provider_and_domain(problems: dict[str, apibench.Problem]) -> None:
    assert apibench.metadata(problems["2"]) == {"provider": "PyTorch", "domain": "Classification"}
