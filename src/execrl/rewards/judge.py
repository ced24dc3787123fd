"""An LLM judge: yes/no questions about an instruction and the code written for it -> a score.

RLAIF (Dutta et al. 2024, arXiv 2406.20060) asks a larger LLM several binary questions about each
generated program and turns the answers into scores that a reward model then learns. Here:

* Questions are data (`Questions`, a YAML file; `judge_questions.yaml` beside this module is the
  default: the paper's eight properties, each with a weight). Each question is rendered on its own
  into `template` with `{instruction}`, `{code}` and `{question}`, as one user message.
* Per question, P(yes): from log-probabilities where the backend gives them — the first answer
  token's alternatives, P(yes) = p_yes / (p_yes + p_no), where p_yes sums the probabilities of the
  tokens whose text, stripped of spaces and punctuation and lower-cased, is one of `answers.yes`
  (likewise p_no). OpenAI-compatible APIs: `logprobs`/`top_logprobs` (the 10 likeliest tokens);
  a local HF model: its next-token distribution over the whole vocabulary. Where a backend gives no
  log-probabilities, or none of the listed tokens is among them, `k` answers are sampled
  (temperature 1) and P(yes) = yes answers / (yes + no answers); answers that are neither are
  left out, and a question with none is unanswered (P = None, counted as 0 in the score).
* Score = Σ weight · P(yes), or with `count=True` the paper's count: Σ weight · [P(yes) > 1/2].

`judge(...)` answers a list of (instruction, code) items: each distinct prompt is asked once,
through `concurrency` bounded threads (OpenAI-compatible) or batches (HF), and each answer is
stored in an SQLite cache keyed by (judge, rendered prompt) — the rendered prompt is the question,
instruction and code in the template — chunk by chunk (`chunk` prompts, 64 by default), so an
interrupted run resumes where it stopped and loses at most one chunk. Retries on 429/5xx are the
OpenAI client's (`execrl.generation.openai`). An unreachable judge is a `GenerationError` before
anything is asked. The cache key does not hold the sampling fallback's `k`.

Limits: P(yes) reads only the first answer token ("Yes, because ..." counts, "The answer is yes"
does not); with an API, tokens outside the top 10 are invisible.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import string
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from execrl.data.jsonl import DataError, PathLike
from execrl.generation import GenerationError, Message

__all__ = [
    "Answer",
    "HFJudge",
    "JudgeBackend",
    "JudgeCache",
    "JudgeReward",
    "Judgement",
    "OpenAIJudge",
    "Question",
    "Questions",
    "judge",
    "judge_samples",
    "load_questions",
    "sample_items",
    "score",
]

DEFAULT_QUESTIONS = os.path.join(os.path.dirname(__file__), "judge_questions.yaml")
TOP_LOGPROBS = 10


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    weight: float = 1.0
    truth: str = ""
    """The ground-truth fact it can be checked against (see `execrl.eval.judge_reliability`)."""


@dataclass(frozen=True)
class Questions:
    questions: tuple[Question, ...]
    template: str
    yes: tuple[str, ...] = ("yes",)
    no: tuple[str, ...] = ("no",)

    def render(self, question: Question, instruction: str, code: str) -> list[Message]:
        text = self.template.format(instruction=instruction, code=code, question=question.text)
        return [{"role": "user", "content": text}]

    def word(self, text: str) -> str | None:
        """The answer word ("yes" or "no") of an answer token or text (its first word), else None."""
        words = text.strip().split()
        first = words[0].strip(string.punctuation).lower() if words else ""
        if first in self.yes:
            return "yes"
        if first in self.no:
            return "no"
        return None


def load_questions(path: PathLike | None = None) -> Questions:
    """The questions of a YAML file (the shipped default when `path` is None)."""
    import yaml

    where = os.fspath(path) if path is not None else DEFAULT_QUESTIONS
    try:
        with open(where, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise DataError(f"{where}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise DataError(f"{where}: not valid YAML: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list) or not data["questions"]:
        raise DataError(f"{where}: expected a mapping with a non-empty 'questions' list")
    template = data.get("template")
    if not isinstance(template, str) or not all(
        f"{{{k}}}" in template for k in ("instruction", "code", "question")
    ):
        raise DataError(
            f"{where}: 'template' must be a string with {{instruction}}, {{code}} and {{question}}"
        )
    try:
        template.format(instruction="", code="", question="")
    except (KeyError, IndexError, ValueError) as e:
        raise DataError(
            f"{where}: 'template' has a placeholder other than these three ({e!r}); write {{{{ for a brace"
        ) from None
    questions = []
    for i, q in enumerate(data["questions"]):
        if not isinstance(q, dict) or not isinstance(q.get("id"), str) or not isinstance(q.get("text"), str):
            raise DataError(f"{where}: questions[{i}] needs a string 'id' and a string 'text'")
        weight = q.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
            raise DataError(f"{where}: questions[{i}].weight must be a number, got {weight!r}")
        questions.append(Question(q["id"], q["text"].strip(), float(weight), str(q.get("truth") or "")))
    if len({q.id for q in questions}) != len(questions):
        raise DataError(f"{where}: question ids must be distinct")
    answers = data.get("answers") or {}
    yes = tuple(str(w).lower() for w in answers.get("yes", ["yes"]))
    no = tuple(str(w).lower() for w in answers.get("no", ["no"]))
    return Questions(tuple(questions), template, yes, no)


@dataclass(frozen=True)
class Answer:
    """One question's answer: P(yes) (None: unanswered), how it was obtained, the judge's raw text."""

    p_yes: float | None
    method: str  # "logprobs" | "samples"
    raw: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps({"p_yes": self.p_yes, "method": self.method, "raw": list(self.raw)})

    @classmethod
    def from_json(cls, text: str) -> Answer:
        d = json.loads(text)
        return cls(d["p_yes"], d["method"], tuple(d["raw"]))


def _ratio(p_yes: float, p_no: float) -> float | None:
    return p_yes / (p_yes + p_no) if p_yes + p_no > 0 else None


class JudgeBackend(Protocol):
    name: str
    """Identifies the judge in the cache key (backend, model)."""

    def answer(self, prompts: Sequence[list[Message]], questions: Questions) -> list[Answer]: ...


class OpenAIJudge:
    """A judge behind an OpenAI-compatible API (`execrl serve`, vLLM, OpenAI, ...)."""

    def __init__(
        self,
        api_base: str,
        model: str,
        *,
        api_key_env: str | None = None,
        concurrency: int = 8,
        max_retries: int = 5,
        samples: int = 5,
        timeout: float = 60.0,
    ) -> None:
        from execrl.generation.openai import OpenAIGenerator

        self.client = OpenAIGenerator(
            api_base,
            model,
            api_key_env=api_key_env,
            concurrency=concurrency,
            max_retries=max_retries,
            timeout=timeout,
        )
        self.name = f"openai:{self.client.api_base}:{model}"
        self.samples = samples
        self.concurrency = concurrency
        self._logprobs = True  # cleared when the server refuses them

    def close(self) -> None:
        self.client.close()

    def check(self) -> None:
        """Raise GenerationError when the API cannot be reached at all (no retries)."""
        import httpx

        try:
            httpx.get(self.client.api_base + "/models", timeout=10.0)
        except httpx.TransportError as e:
            raise GenerationError(
                f"cannot reach the judge at {self.client.api_base}: {type(e).__name__}"
            ) from None

    def answer(self, prompts: Sequence[list[Message]], questions: Questions) -> list[Answer]:
        if len(prompts) <= 1:
            return [self._one(p, questions) for p in prompts]
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="judge")
        try:
            futures = [pool.submit(self._one, p, questions) for p in prompts]
            wait(futures, return_when=FIRST_EXCEPTION)
            return [f.result() for f in futures]  # the first failure raises; the rest are cancelled
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # requests in flight end; none starts

    def _one(self, messages: list[Message], questions: Questions) -> Answer:
        body: dict[str, Any] = {
            "model": self.client.model,
            "messages": messages,
            "max_tokens": 1,
            "temperature": 0,
        }
        if self._logprobs:
            try:
                data = self.client.post(
                    "/chat/completions", body | {"logprobs": True, "top_logprobs": TOP_LOGPROBS}
                )
            except GenerationError as e:
                if "logprobs" not in str(e) or "returned 400" not in str(e):
                    raise
                self._logprobs = False  # a server without logprobs: sample from now on
            else:
                answer = self._from_logprobs(data, questions)
                if answer is not None:
                    return answer
        data = self.client.post(
            "/chat/completions", body | {"max_tokens": 3, "temperature": 1.0, "n": self.samples}
        )
        texts = [((c.get("message") or {}).get("content") or "") for c in data.get("choices") or []]
        words = [questions.word(t) for t in texts]
        return Answer(_ratio(words.count("yes"), words.count("no")), "samples", tuple(texts))

    @staticmethod
    def _from_logprobs(data: dict[str, Any], questions: Questions) -> Answer | None:
        try:
            choice = data["choices"][0]
            first = choice["logprobs"]["content"][0]
            top = first["top_logprobs"]
            text = (choice.get("message") or {}).get("content") or first["token"]
        except (KeyError, IndexError, TypeError):
            return None
        sums = {"yes": 0.0, "no": 0.0}
        for alt in top:
            word = questions.word(str(alt.get("token", "")))
            if word is not None:
                sums[word] += math.exp(float(alt["logprob"]))
        p = _ratio(sums["yes"], sums["no"])
        return Answer(p, "logprobs", (str(text),)) if p is not None else None


class HFJudge:
    """A judge that is a local HF causal LM: next-token probabilities after the rendered prompt
    (through the model's chat template; a model without one gets the message text and a newline)."""

    def __init__(
        self, model: str, *, batch_size: int = 8, device: str | None = None, dtype: str | None = None
    ) -> None:
        from execrl.generation.hf import HFGenerator

        self.generator = HFGenerator(model, device=device, dtype=dtype)
        self.name = f"hf:{os.path.abspath(model)}"
        self.batch_size = batch_size
        self._ids: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[list[int], list[int]]] = {}

    def _answer_ids(self, questions: Questions) -> tuple[list[int], list[int]]:
        """The vocabulary ids whose text is a yes word, and a no word."""
        key = (questions.yes, questions.no)
        if key not in self._ids:
            tokenizer = self.generator.tokenizer
            yes: list[int] = []
            no: list[int] = []
            for i in range(len(tokenizer)):
                word = questions.word(str(tokenizer.decode([i])))
                if word == "yes":
                    yes.append(i)
                elif word == "no":
                    no.append(i)
            self._ids[key] = (yes, no)
        return self._ids[key]

    def answer(self, prompts: Sequence[list[Message]], questions: Questions) -> list[Answer]:
        import torch

        yes, no = self._answer_ids(questions)
        tokenizer, model = self.generator.tokenizer, self.generator.model
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        out: list[Answer] = []
        chat = bool(getattr(tokenizer, "chat_template", None))
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            # a model without a chat template (a base model) reads the question as plain text
            ids = [self.generator.encode(p if chat else p[-1]["content"] + "\n") for p in batch]
            width = max(len(x) for x in ids)
            x = torch.tensor([[pad] * (width - len(r)) + r for r in ids], device=self.generator.device)
            mask = torch.tensor(
                [[0] * (width - len(r)) + [1] * len(r) for r in ids], device=self.generator.device
            )
            positions = (mask.cumsum(-1) - 1).clamp(min=0)  # as `generate` does under left padding
            with torch.no_grad():
                logits = model(input_ids=x, attention_mask=mask, position_ids=positions).logits[:, -1].float()
            probs = torch.softmax(logits, dim=-1)
            for row in range(len(ids)):
                p = _ratio(float(probs[row, yes].sum()), float(probs[row, no].sum()))
                top = tokenizer.decode([int(probs[row].argmax())])
                out.append(Answer(p, "logprobs", (str(top),)))
        return out


class JudgeCache:
    """Answers on disk, keyed by (judge, rendered prompt); safe across the judge's threads."""

    def __init__(self, path: PathLike) -> None:
        self._db = sqlite3.connect(os.fspath(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()
        self._lock = threading.Lock()

    @staticmethod
    def key(judge: str, messages: list[Message]) -> str:
        return hashlib.sha256(json.dumps([judge, messages], sort_keys=True).encode()).hexdigest()

    def get(self, key: str) -> Answer | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        return Answer.from_json(row[0]) if row else None

    def put(self, key: str, answer: Answer) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, answer.to_json()))
            self._db.commit()

    def close(self) -> None:
        self._db.close()


@dataclass
class Judgement:
    """One item's answers, per question id, and its score."""

    answers: dict[str, Answer]
    score: float
    unanswered: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "p_yes": {q: a.p_yes for q, a in self.answers.items()},
            "method": {q: a.method for q, a in self.answers.items()},
            "answers": {q: list(a.raw) for q, a in self.answers.items()},
            "unanswered": self.unanswered,
        }


def score(answers: dict[str, Answer], questions: Questions, *, count: bool = False) -> float:
    """Σ weight · P(yes) (unanswered: 0), or with `count` Σ weight · [P(yes) > 1/2]."""
    total = 0.0
    for q in questions.questions:
        p = answers[q.id].p_yes
        if p is not None:
            total += q.weight * (float(p > 0.5) if count else p)
    return total


def judge(
    items: Sequence[tuple[str, str]],
    backend: JudgeBackend,
    questions: Questions,
    *,
    cache: JudgeCache | None = None,
    count: bool = False,
    chunk: int = 64,
    progress: Callable[[int], None] | None = None,
) -> list[Judgement]:
    """Every question about every (instruction, code) item; cached answers are not asked again.
    `progress(n)` is called with the number of prompts answered after each chunk."""
    prompts: dict[str, list[Message]] = {}
    keys: list[list[str]] = []
    for instruction, code in items:
        row = []
        for q in questions.questions:
            messages = questions.render(q, instruction, code)
            key = JudgeCache.key(backend.name, messages)
            prompts.setdefault(key, messages)
            row.append(key)
        keys.append(row)
    known: dict[str, Answer] = {}
    if cache is not None:
        for key in prompts:
            if (a := cache.get(key)) is not None:
                known[key] = a
    todo = [k for k in prompts if k not in known]
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        for key, answer in zip(part, backend.answer([prompts[k] for k in part], questions)):
            known[key] = answer
            if cache is not None:
                cache.put(key, answer)
        if progress is not None:
            progress(len(part))
    out = []
    for row in keys:
        answers = {q.id: known[k] for q, k in zip(questions.questions, row)}
        unanswered = [q for q, a in answers.items() if a.p_yes is None]
        out.append(Judgement(answers, score(answers, questions, count=count), unanswered))
    return out


class JudgeReward:
    """The judge as a reward in TRL's signature: `reward(completions, *, instruction, **columns)
    -> list[float | None]`, the score of each (instruction, completion), divided by the sum of the
    weights when `normalize` (so it lies in [0, 1]); None where no question was answered."""

    def __init__(
        self,
        backend: JudgeBackend,
        questions: Questions | None = None,
        *,
        cache: JudgeCache | None = None,
        count: bool = False,
        normalize: bool = True,
    ) -> None:
        self.backend = backend
        self.questions = questions or load_questions()
        self.cache = cache
        self.count = count
        self.scale = sum(q.weight for q in self.questions.questions) if normalize else 1.0

    def __call__(
        self, completions: Sequence[str], *, instruction: Sequence[str], **columns: Any
    ) -> list[float | None]:
        if len(instruction) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(instruction)} instructions")
        judged = judge(
            list(zip(instruction, completions)),
            self.backend,
            self.questions,
            cache=self.cache,
            count=self.count,
        )
        n = len(self.questions.questions)
        return [None if len(j.unanswered) == n else j.score / (self.scale or 1.0) for j in judged]


# ---------------------------------------------------------------------------------------------
# Samples files: what `execrl judge` asks about.


def sample_items(
    benchmark: str, data: PathLike | None, samples: PathLike
) -> tuple[list[Any], list[tuple[str, str]]]:
    """(samples, (instruction, code) per sample). apibench: the question and the answer's code part
    (`executability.answer_code`); builtin: the instruction and the whole program (header +
    completion); any other benchmark: its completion-style prompt and the completion."""
    from execrl.data import get_benchmark, hub, read_samples

    bench = get_benchmark(benchmark)
    if bench.NAME == "apibench":
        from execrl.eval.api_metrics import read_answers

        rows = read_answers(samples)
    else:
        rows = read_samples(samples)
    if not rows:
        raise DataError(f"{os.fspath(samples)}: no samples")
    problems = bench.load(hub.resolve(os.fspath(data)) if data is not None else None)
    items = []
    for s in rows:
        p = problems.get(s.task_id)
        if p is None:
            raise DataError(
                f"{os.fspath(samples)}:{s.line}: task_id {s.task_id!r} is not in the {bench.NAME} data"
            )
        if bench.NAME == "apibench":
            from execrl.eval.executability import answer_code

            items.append((p.instruction, answer_code(s.completion)))
        elif bench.NAME == "builtin":
            items.append((p.instruction, p.header + s.completion))
        else:
            prompt = bench.prompt(p, chat=False)
            items.append((prompt if isinstance(prompt, str) else prompt[-1]["content"], s.completion))
    return rows, items


def judge_samples(
    benchmark: str,
    samples: PathLike,
    backend: JudgeBackend,
    questions: Questions,
    *,
    data: PathLike | None = None,
    cache: JudgeCache | None = None,
    count: bool = False,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`execrl judge` as a function: (one row per sample, in order; the summary)."""
    import sys
    from collections import Counter

    rows, items = sample_items(benchmark, data, samples)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(items) * len(questions.questions), unit="question", file=sys.stderr, disable=None
        )
    try:
        judged = judge(
            items, backend, questions, cache=cache, count=count, progress=bar.update if bar else None
        )
    finally:
        if bar is not None:
            bar.close()
    seen: Counter[str] = Counter()
    out = []
    for s, j in zip(rows, judged):
        out.append({"task_id": s.task_id, "sample_index": seen[s.task_id], **j.row()})
        seen[s.task_id] += 1
    n = len(out)
    p_yes: dict[str, float | None] = {}
    for q in questions.questions:
        known = [p for j in judged if (p := j.answers[q.id].p_yes) is not None]
        p_yes[q.id] = sum(known) / len(known) if known else None
    summary = {
        "n": n,
        "score": sum(r["score"] for r in out) / n if n else 0.0,
        "max_score": sum(q.weight for q in questions.questions),
        "p_yes": p_yes,
        "unanswered": sum(len(j.unanswered) for j in judged),
        "judge": backend.name,
    }
    return out, summary
