"""The LLM judge (`execrl judge`, RLAIF): questions as data, P(yes) from log-probabilities or from
sampled answers, weighted scores, retries, the on-disk cache, and reliability against the truth.

HTTP backends run against real loopback servers: `Judge`, a stub OpenAI-compatible server that
answers from a function (logprobs, 429s, 500s), and `execrl serve` with the tiny model."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json
import math
import socket
import string
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from apibench_rows import HF_INVENTED, HF_WRONG_API, NER_ROW, ROWS, reference_answer, write_jsonl
from execrl.cli import main
from execrl.data.jsonl import DataError
from execrl.eval import judge_reliability
from execrl.generation import GenerationError
from execrl.rewards import judge
from tinymodel import make_tiny_model

Reply = tuple[int, dict[str, Any]]


class Judge:
    """A stub judge API: `reply(body) -> (status, payload)`; records bodies and peak concurrency."""

    def __init__(self, reply: Callable[[dict[str, Any]], Reply]) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = self.peak = 0
        lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": []})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    stub.bodies.append(body)
                    stub.in_flight += 1
                    stub.peak = max(stub.peak, stub.in_flight)
                try:
                    status, payload = reply(body)
                    threading.Event().wait(0.01)
                finally:
                    with lock:
                        stub.in_flight -= 1
                self._send(status, payload)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[Callable[[Callable[[dict[str, Any]], Reply]], Judge]]:
    started: list[Judge] = []

    def start(reply: Callable[[dict[str, Any]], Reply]) -> Judge:
        started.append(Judge(reply))
        return started[-1]

    yield start
    for s in started:
        s.close()


def logprobs_reply(yes: float, no: float, other: float = -5.0) -> dict[str, Any]:
    """A chat completion whose first token's alternatives are " Yes" (yes), "no" (no) and "Maybe"."""
    top = [
        {"token": " Yes", "logprob": yes},
        {"token": "no", "logprob": no},
        {"token": "Maybe", "logprob": other},
    ]
    token = max(top, key=lambda t: t["logprob"])
    content = [{"token": token["token"], "logprob": token["logprob"], "top_logprobs": top}]
    message = {"role": "assistant", "content": token["token"]}
    return {"choices": [{"index": 0, "message": message, "logprobs": {"content": content}}]}


def samples_reply(texts: list[str]) -> dict[str, Any]:
    choices = [{"index": i, "message": {"role": "assistant", "content": t}} for i, t in enumerate(texts)]
    return {"choices": choices}


QUESTIONS = judge.load_questions()
ITEM = ("Return the sum.", "def f(xs):\n    return sum(xs)\n")


def test_default_questions_are_the_papers_eight() -> None:
    ids = [q.id for q in QUESTIONS.questions]
    assert ids == ["imports", "syntax", "complete", "undefined", "bugs", "logic", "api", "arguments"]
    assert all(q.weight == 1.0 for q in QUESTIONS.questions)
    [message] = QUESTIONS.render(QUESTIONS.questions[1], *ITEM)
    assert "Return the sum." in message["content"] and "return sum(xs)" in message["content"]
    assert "Is the code free of syntax errors?" in message["content"]


def test_answer_words() -> None:
    assert [QUESTIONS.word(t) for t in (" Yes", "yes.", "NO,", "No because", "maybe", "")] == [
        "yes",
        "yes",
        "no",
        "no",
        None,
        None,
    ]


def test_bad_questions_files_are_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text("template: 'no placeholders'\nquestions: [{id: a, text: b}]\n")
    with pytest.raises(DataError, match=r"'template' must be a string with \{instruction\}"):
        judge.load_questions(path)
    path.write_text("template: '{instruction}{code}{question} {\"k\": 1}'\nquestions: [{id: a, text: b}]\n")
    with pytest.raises(DataError, match="a placeholder other than these three"):
        judge.load_questions(path)
    path.write_text("template: '{instruction}{code}{question}'\nquestions: [{id: a, text: b, weight: x}]\n")
    with pytest.raises(DataError, match=r"questions\[0\].weight must be a number"):
        judge.load_questions(path)


def test_p_yes_from_logprobs_after_429_and_500(stub: Callable[..., Judge]) -> None:
    """The first request gets 429, the second 500; then P(yes) = e^-0.2 / (e^-0.2 + e^-1.8).
    "Maybe" is neither answer and is left out."""
    calls = iter(range(1000))

    def reply(body: dict[str, Any]) -> Reply:
        n = next(calls)
        if n == 0:
            return 429, {"error": {"message": "slow down"}}
        if n == 1:
            return 500, {"error": {"message": "boom"}}
        assert (
            body["logprobs"] is True
            and body["top_logprobs"] == judge.TOP_LOGPROBS
            and body["max_tokens"] == 1
        )
        return 200, logprobs_reply(-0.2, -1.8)

    server = stub(reply)
    backend = judge.OpenAIJudge(server.url, "judge-model", max_retries=3)
    [answer] = backend.answer([QUESTIONS.render(QUESTIONS.questions[0], *ITEM)], QUESTIONS)
    expected = math.exp(-0.2) / (math.exp(-0.2) + math.exp(-1.8))
    assert answer.method == "logprobs" and answer.raw == (" Yes",)
    assert answer.p_yes is not None and math.isclose(answer.p_yes, expected)
    assert len(server.bodies) == 3


def test_without_logprobs_k_answers_are_sampled(stub: Callable[..., Judge]) -> None:
    """A server that refuses logprobs (400) is sampled from: 2 yes, 1 no, 1 neither -> 2/3."""

    def reply(body: dict[str, Any]) -> Reply:
        if body.get("logprobs"):
            return 400, {"error": {"message": "logprobs is not supported by this server"}}
        assert body["n"] == 4 and body["temperature"] == 1.0
        return 200, samples_reply(["Yes", "no.", "Yes, it is", "Perhaps"])

    server = stub(reply)
    backend = judge.OpenAIJudge(server.url, "m", samples=4, max_retries=0)
    answers = backend.answer([QUESTIONS.render(q, *ITEM) for q in QUESTIONS.questions[:2]], QUESTIONS)
    assert [(a.p_yes, a.method) for a in answers] == [(2 / 3, "samples")] * 2
    assert answers[0].raw == ("Yes", "no.", "Yes, it is", "Perhaps")
    assert sum(1 for b in server.bodies if b.get("logprobs")) <= 2  # learnt once per thread at most


def test_no_answer_word_among_logprobs_falls_back_to_samples(stub: Callable[..., Judge]) -> None:
    def reply(body: dict[str, Any]) -> Reply:
        if body.get("logprobs"):
            top = [{"token": "Sure", "logprob": -0.1}]
            content = [{"token": "Sure", "logprob": -0.1, "top_logprobs": top}]
            return 200, {
                "choices": [{"index": 0, "message": {"content": "Sure"}, "logprobs": {"content": content}}]
            }
        return 200, samples_reply(["maybe"] * body["n"])

    server = stub(reply)
    [answer] = judge.OpenAIJudge(server.url, "m").answer(
        [QUESTIONS.render(QUESTIONS.questions[0], *ITEM)], QUESTIONS
    )
    assert answer == judge.Answer(None, "samples", ("maybe",) * 5)


def test_score_is_the_weighted_sum_or_the_count() -> None:
    questions = judge.Questions(
        (judge.Question("a", "A?", 2.0), judge.Question("b", "B?", 1.0), judge.Question("c", "C?", 0.5)),
        "{instruction}{code}{question}",
    )
    answers = {
        "a": judge.Answer(0.75, "logprobs", ()),
        "b": judge.Answer(0.25, "logprobs", ()),
        "c": judge.Answer(None, "samples", ()),
    }
    assert judge.score(answers, questions) == 2.0 * 0.75 + 1.0 * 0.25
    assert judge.score(answers, questions, count=True) == 2.0


def test_concurrency_is_bounded_and_the_cache_resumes(stub: Callable[..., Judge], tmp_path: Path) -> None:
    """12 items x 8 questions = 96 prompts through 3 threads; a second run asks nothing."""
    server = stub(lambda body: (200, logprobs_reply(-0.1, -2.5)))
    backend = judge.OpenAIJudge(server.url, "m", concurrency=3)
    items = [(f"task {i}", f"x = {i}") for i in range(12)]
    cache = judge.JudgeCache(tmp_path / "c.sqlite")
    first = judge.judge(items, backend, QUESTIONS, cache=cache, chunk=40)
    assert len(server.bodies) == 96 and server.peak <= 3
    again = judge.judge(items, backend, QUESTIONS, cache=cache)
    assert len(server.bodies) == 96
    assert [j.row() for j in again] == [j.row() for j in first]
    cache.close()


def test_unreachable_judge_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    samples = write_jsonl(tmp_path / "s.jsonl", [{"task_id": "1", "completion": HF_WRONG_API}])
    data = write_jsonl(tmp_path / "eval.json", ROWS)
    args = ["judge", "--api-base", f"http://127.0.0.1:{port}/v1", "--judge", "m", "--benchmark", "apibench"]
    code = main([*args, "--data", str(data), "--samples", str(samples), "--out", str(tmp_path / "j.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot reach the judge" in err
    assert not (tmp_path / "j.jsonl").exists()


def test_judge_cli_with_truth(
    stub: Callable[..., Judge], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stub says yes (P = 0.9) to everything about the reference answer and no (P = 0.2)
    about anything else. Against `execrl evaluate`'s facts, the api question agrees on 3 of 3
    samples (the reference matches, the wrong API and the invented model do not)."""

    def reply(body: dict[str, Any]) -> Reply:
        good = "distilbert-base-uncased-finetuned-sst-2-english" in body["messages"][0]["content"]
        p = 0.9 if good else 0.2
        return 200, logprobs_reply(math.log(p), math.log(1 - p))

    server = stub(reply)
    data = write_jsonl(tmp_path / "eval.json", [*ROWS, NER_ROW])
    answers = [reference_answer(ROWS[0]), HF_WRONG_API, HF_INVENTED]
    samples = write_jsonl(tmp_path / "s.jsonl", [{"task_id": "1", "completion": a} for a in answers])
    truth = tmp_path / "r.jsonl"
    common = ["--benchmark", "apibench", "--data", str(data), "--samples", str(samples)]
    assert main(["evaluate", *common, "--out", str(truth)]) == 0
    out = tmp_path / "j.jsonl"
    args = [
        "judge",
        "--api-base",
        server.url,
        "--judge",
        "m",
        *common,
        "--out",
        str(out),
        "--truth",
        str(truth),
    ]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task_id"] for r in rows] == ["1", "1", "1"] and [r["sample_index"] for r in rows] == [0, 1, 2]
    assert math.isclose(rows[0]["score"], 8 * 0.9) and math.isclose(rows[1]["score"], 8 * 0.2)
    assert set(rows[0]["p_yes"]) == {q.id for q in QUESTIONS.questions} and rows[0]["answers"]["api"] == [
        " Yes"
    ]
    api = summary["reliability"]["questions"]["api"]
    assert api == {"truth": "api", "n": 3, "agreement": 1.0}
    assert summary["reliability"]["r2"] == 1.0 and summary["n"] == 3
    assert os.path.exists(str(out) + ".cache.sqlite")


def test_reliability_by_hand() -> None:
    """Two samples pass every test (truth 1), two pass none (truth 0); the judge scores them 7, 6,
    2 and 5. Two bins of two samples: points (3.5, 0) and (6.5, 1), a perfect line: R² = 1. Four
    bins: points (2, 0), (5, 0), (6, 1), (7, 1): x̄ = 5, ȳ = 1/2, Sxx = 14, Sxy = 3, Syy = 1, so
    R² = Sxy² / (Sxx·Syy) = 9/14. The "bugs" question (truth: passed) says yes, yes, no, yes:
    it agrees on 3 of 4."""
    truth = [
        {"task_id": "a", "status": "passed", "passed": True, "tests_passed": 2, "tests_total": 2},
        {"task_id": "b", "status": "passed", "passed": True, "tests_passed": 2, "tests_total": 2},
        {"task_id": "c", "status": "failed", "passed": False, "tests_passed": 0, "tests_total": 2},
        {"task_id": "d", "status": "failed", "passed": False, "tests_passed": 0, "tests_total": 2},
    ]
    judged = [
        {"task_id": t, "score": s, "p_yes": {"bugs": p}}
        for t, s, p in zip("abcd", (7.0, 6.0, 2.0, 5.0), (0.9, 0.8, 0.1, 0.7))
    ]
    result = judge_reliability.reliability(judged, truth, {"bugs": "passed"}, bins=2)
    assert result["questions"]["bugs"] == {"truth": "passed", "n": 4, "agreement": 0.75}
    assert result["r2"] == 1.0
    result = judge_reliability.reliability(judged, truth, {"bugs": "passed"}, bins=4)
    assert math.isclose(result["r2"], 9 / 14)
    with pytest.raises(DataError, match="not the judged samples"):
        judge_reliability.reliability(judged[::-1], truth, {"bugs": "passed"})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-judge"))


def test_hf_judge_and_execrl_serve_read_the_same_distribution(tiny: str) -> None:
    """The answer words are the two likeliest whole words among the tiny model's first tokens after
    the rendered prompt (it knows no "yes"; most of its likeliest tokens are partial UTF-8). The local judge sums their probabilities over the whole
    vocabulary, the API judge over `execrl serve`'s top 10; each equals p_yes / (p_yes + p_no)
    computed here from the model's logits."""
    import torch

    from execrl.generation.server import make_server

    hf = judge.HFJudge(tiny)
    messages = QUESTIONS.render(QUESTIONS.questions[0], *ITEM)
    with torch.no_grad():
        logits = hf.generator.model(torch.tensor([hf.generator.encode(messages)])).logits[0, -1]
    probs = torch.softmax(logits.float(), -1)
    ranked = probs.argsort(descending=True).tolist()
    top = ranked[: judge.TOP_LOGPROBS]
    texts = {i: hf.generator.tokenizer.decode([i]) for i in range(len(hf.generator.tokenizer))}
    words: list[str] = []
    for i in ranked:
        candidate = texts[i].strip().strip(string.punctuation).lower()
        if candidate.isalnum() and candidate not in words:
            words.append(candidate)
    assert any(texts[i].strip().lower() == words[0] for i in top)
    questions = judge.Questions(QUESTIONS.questions[:1], QUESTIONS.template, (words[0],), (words[1],))

    def expected(ids: list[int]) -> float:
        p = {w: sum(float(probs[i]) for i in ids if questions.word(texts[i]) == w) for w in ("yes", "no")}
        return p["yes"] / (p["yes"] + p["no"])

    [local] = hf.answer([messages], questions)
    srv = make_server(hf.generator, "127.0.0.1", 0, model_name="tiny")
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        [remote] = judge.OpenAIJudge(srv.url, "tiny", max_retries=0).answer([messages], questions)
    finally:
        srv.shutdown()
        srv.server_close()
    assert local.p_yes is not None and math.isclose(local.p_yes, expected(list(texts)), rel_tol=1e-5)
    assert remote.p_yes is not None and remote.method == "logprobs"
    assert math.isclose(remote.p_yes, expected(top), rel_tol=1e-4)


def test_hf_judge_batches_like_single_prompts(tiny: str) -> None:
    """Left padding does not change a prompt's P(yes): batch of 3 == one at a time."""
    hf = judge.HFJudge(tiny, batch_size=3)
    questions = judge.Questions(QUESTIONS.questions[:3], QUESTIONS.template, ("def",), ("return",))
    prompts = [questions.render(q, *ITEM) for q in questions.questions]
    batched = hf.answer(prompts, questions)
    single = [hf.answer([p], questions)[0] for p in prompts]
    for a, b in zip(batched, single):
        assert (a.p_yes is None) == (b.p_yes is None)
        if a.p_yes is not None and b.p_yes is not None:
            assert math.isclose(a.p_yes, b.p_yes, rel_tol=1e-4)


def test_generation_errors_are_not_swallowed(stub: Callable[..., Judge]) -> None:
    server = stub(lambda body: (401, {"error": {"message": "bad key"}}))
    with pytest.raises(GenerationError, match="401: bad key"):
        judge.OpenAIJudge(server.url, "m").answer(
            [QUESTIONS.render(QUESTIONS.questions[0], *ITEM)], QUESTIONS
        )


def test_an_interrupted_run_resumes_from_the_cache(stub: Callable[..., Judge], tmp_path: Path) -> None:
    """The judge fails for good after the first chunk (8 of 16 prompts): that chunk is stored, and
    the re-run asks only the other 8."""
    broken = threading.Event()

    def reply(body: dict[str, Any]) -> Reply:
        return (503, {"error": {"message": "down"}}) if broken.is_set() else (200, logprobs_reply(-0.1, -3.0))

    server = stub(reply)
    backend = judge.OpenAIJudge(server.url, "m", concurrency=1, max_retries=0)
    cache = judge.JudgeCache(tmp_path / "c.sqlite")
    items = [("a", "x = 1"), ("b", "x = 2")]

    def break_after_first_chunk(n: int) -> None:
        broken.set()

    with pytest.raises(GenerationError, match="503"):
        judge.judge(items, backend, QUESTIONS, cache=cache, chunk=8, progress=break_after_first_chunk)
    asked = len(server.bodies)
    assert asked >= 9  # 8 answered, then the failure (a request already in flight may follow)
    broken.clear()
    judged = judge.judge(items, backend, QUESTIONS, cache=cache, chunk=8)
    assert len(server.bodies) == asked + 8 and all(not j.unanswered for j in judged)
    cache.close()


def test_judge_reward_has_the_reward_signature(stub: Callable[..., Judge]) -> None:
    """P(yes) = 0.75 for every question: normalized score 0.75; a judge that answers nothing
    gives None (not applicable), never 0."""
    server = stub(lambda body: (200, logprobs_reply(math.log(0.75), math.log(0.25))))
    reward = judge.JudgeReward(judge.OpenAIJudge(server.url, "m"))
    scores = reward(["x = 1", "y = 2"], instruction=["Set x.", "Set y."], task_id=["1", "2"])
    assert all(s is not None and math.isclose(s, 0.75) for s in scores)
    silent = stub(lambda body: (200, samples_reply(["hmm"] * body.get("n", 1))))
    assert judge.JudgeReward(judge.OpenAIJudge(silent.url, "m"))(["x"], instruction=["i"]) == [None]


def test_judge_cli_with_a_local_model_on_builtin_tasks(
    tiny: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--judge-model`: the builtin item is the instruction and the whole program; the tiny model
    has no yes/no token, so every question is unanswered and the score is 0."""
    from execrl.data import builtin

    task = next(p for p in builtin.generate(0, 30).values() if p.kind == "api")
    data = tmp_path / "b.jsonl"
    builtin.write_jsonl(data, [task])
    samples = write_jsonl(tmp_path / "s.jsonl", [{"task_id": task.task_id, "completion": task.solution}])
    out = tmp_path / "j.jsonl"
    args = [
        "judge",
        "--judge-model",
        tiny,
        "--benchmark",
        "builtin",
        "--data",
        str(data),
        "--samples",
        str(samples),
    ]
    assert main([*args, "--out", str(out)]) == 0
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["score"] == 0.0 and len(row["unanswered"]) == 8 and row["method"]["bugs"] == "logprobs"
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["judge"].startswith("hf:") and summary["unanswered"] == 8
    items = judge.sample_items("builtin", data, samples)[1]
    assert items == [(task.instruction, task.header + task.solution)]
