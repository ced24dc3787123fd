"""APIBench scoring: AST sub-tree matching of generated calls, accuracy and hallucination rate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from execrl.data.apibench import Problem
from execrl.data.jsonl import DataError
from execrl.eval.apibench import ApiCall, ast_match, extract_api_call, parse_call, read_api_database, score

SENTIMENT = "pipeline('sentiment-analysis', model='distilbert-base-uncased-finetuned-sst-2-english')"
BERT = "AutoModel.from_pretrained('bert-base-uncased')"
NER = "pipeline('ner', model='dslim/bert-base-NER')"
DATABASE = [SENTIMENT, BERT, NER]
RESNET = "torch.hub.load(repo_or_dir='pytorch/vision', model='resnet18', pretrained=True)"


def answer(call: str) -> str:
    """A Gorilla-format answer."""
    return (
        f"<<<domain>>>: Natural Language Processing\n<<<api_call>>>: {call}\n"
        "<<<api_provider>>>: Hugging Face Transformers\n<<<explanation>>>: Load the model.\n"
        "<<<code>>>: from transformers import pipeline"
    )


def test_extract_api_call_takes_the_api_call_part() -> None:
    assert extract_api_call(answer(BERT)) == BERT
    assert extract_api_call("<<<api_call>>>: `hub.load('x')`, <<<api_provider>>>: TF") == "hub.load('x')"
    assert (
        extract_api_call("model = AutoModel.from_pretrained('b')") == "model = AutoModel.from_pretrained('b')"
    )


def test_parse_call_keeps_dotted_function_and_argument_subtrees() -> None:
    call = parse_call(BERT)
    assert isinstance(call, ApiCall) and call.function == "AutoModel.from_pretrained" and len(call.args) == 1
    assert parse_call("not a call") is None


def test_exact_answer_matches_its_api() -> None:
    assert ast_match(answer(SENTIMENT), DATABASE) == (SENTIMENT, False)


def test_quote_style_keywords_and_order_do_not_matter() -> None:
    """Gorilla compares argument values only: `model=` given positionally still matches."""
    generated = answer('pipeline("sentiment-analysis", "distilbert-base-uncased-finetuned-sst-2-english")')
    assert ast_match(generated, DATABASE) == (SENTIMENT, False)
    generated = answer(
        "torch.hub.load(pretrained=True, model='resnet18', repo_or_dir='pytorch/vision', force_reload=False)"
    )
    assert ast_match(generated, [RESNET]) == (RESNET, False)


def test_a_nested_call_in_code_matches() -> None:
    generated = "Here you go:\nmodel = AutoModel.from_pretrained(\"bert-base-uncased\").to('cuda')"
    assert ast_match(generated, DATABASE) == (BERT, False)


def test_a_missing_or_different_argument_is_no_match() -> None:
    assert ast_match(answer("pipeline('sentiment-analysis')"), DATABASE) == (None, True)
    assert ast_match(answer("AutoModel.from_pretrained('bert-base-uncased-whatever')"), DATABASE) == (
        None,
        True,
    )
    assert ast_match(answer("AutoModel.from_pretrained('bert-large-cased')"), DATABASE) == (None, True)


def test_a_different_function_is_no_match() -> None:
    assert ast_match(answer("transformers.AutoModel.from_pretrained('bert-base-uncased')"), DATABASE) == (
        None,
        True,
    )
    assert ast_match(answer("BertModel.from_pretrained('bert-base-uncased')"), DATABASE) == (None, True)


def test_garbage_and_empty_answers_are_hallucinations() -> None:
    assert ast_match("I don't know.", DATABASE) == (None, True)
    assert ast_match("", DATABASE) == (None, True)
    assert ast_match("<<<api_call>>>: pipeline('ner', model='dslim/bert-base-NER'", DATABASE) == (None, True)


def test_a_broken_line_does_not_hide_a_good_one() -> None:
    generated = "from transformers import (\nner = pipeline('ner', model='dslim/bert-base-NER'),"
    assert ast_match(generated, DATABASE) == (NER, False)


def test_reference_without_arguments_matches_on_the_function() -> None:
    assert ast_match("m = models.resnet50()", ["models.resnet50()"]) == ("models.resnet50()", False)


def rows() -> list[Problem]:
    hf = "Hugging Face Transformers"
    return [
        Problem("1", "Classify sentiment.", SENTIMENT, hf, domain="Text Classification"),
        Problem("2", "Embed text.", BERT, hf, domain="Feature Extraction"),
        Problem("3", "Find entities.", NER, hf, domain="Token Classification"),
        Problem("4", "Classify images.", RESNET, "PyTorch", domain="Classification"),
    ]


def test_score_counts_correct_wrong_and_hallucinated() -> None:
    """Row 1 correct; row 2 calls the NER API (a real API of the provider, wrong for the
    question: neither correct nor a hallucination); row 3 invents a model (hallucination); row 4
    correct. accuracy = 2/4, hallucination_rate = 1/4."""
    outputs = [
        answer(SENTIMENT),
        answer(NER),
        answer("pipeline('ner', model='my-imaginary-ner')"),
        "<<<api_call>>>: torch.hub.load('pytorch/vision', 'resnet18', pretrained=True)",
    ]
    assert score(rows(), outputs) == {"accuracy": 0.5, "hallucination_rate": 0.25, "n": 4}


def test_database_is_per_provider() -> None:
    """The ResNet call is in the PyTorch database only: answering it to a Hugging Face question
    is a hallucination there."""
    result = score(rows()[:1] + rows()[3:], [answer(RESNET), answer(RESNET)])
    assert result == {"accuracy": 0.5, "hallucination_rate": 0.5, "n": 2}


def test_given_api_database_replaces_the_rows_calls() -> None:
    outputs = [answer(NER)] * 4
    database = {"Hugging Face Transformers": [SENTIMENT, BERT], "PyTorch": [RESNET]}
    assert score(rows(), outputs, api_database=database) == {
        "accuracy": 0.25,
        "hallucination_rate": 0.75,
        "n": 4,
    }
    with pytest.raises(DataError, match=r"no API database for provider\(s\) 'PyTorch'"):
        score(rows(), outputs, api_database={"Hugging Face Transformers": DATABASE})


def test_score_checks_lengths_and_handles_nothing() -> None:
    with pytest.raises(DataError, match="4 rows but 1 outputs"):
        score(rows(), ["x"])
    assert score([], []) == {"accuracy": 0.0, "hallucination_rate": 0.0, "n": 0}


def test_read_api_database(tmp_path: Path) -> None:
    path = tmp_path / "huggingface_api.jsonl"
    api_rows = [{"domain": "d", "api_call": SENTIMENT}, {"domain": "d", "api_call": BERT}, {"api_call": BERT}]
    path.write_text("".join(json.dumps(r) + "\n" for r in api_rows))
    assert read_api_database(path) == [SENTIMENT, BERT]
    path.write_text(json.dumps({"domain": "d"}) + "\n")
    with pytest.raises(DataError, match=r':1: missing field "api_call"'):
        read_api_database(path)
