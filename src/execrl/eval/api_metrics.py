"""API-call metrics of a samples file: `execrl evaluate --benchmark apibench` and the built-in API tasks.

APIBench (`evaluate_apibench`), one row per sample:

* `ast_match`: the answer calls the question's reference API with its argument values;
  `hallucination`: it calls no API of the database (`execrl.eval.apibench`, Gorilla's AST
  sub-tree metric; the database is `--api-db`, Gorilla's `*_api.jsonl`, else the reference calls
  of the data's rows of the same provider). Gorilla evaluates one provider per run against its own
  API file; pass the API file that matches the data.
* `rouge_l`, `codebleu` (`execrl.eval.similarity`, the `rouge-score` and `codebleu` packages) on
  `compared = {"prediction": ..., "reference": ...}`: the answer's `api_call` part
  (`extract_api_call`: the text after `<<<api_call>>>:` up to its last `)`, or the whole answer
  when it has no `api_call` marker) against the row's reference `api_call` field. Both strings are
  always present, so every row is scored on the same kind of text: one call against one call.
* `executable` (True / False / None) and `executable_reason`: the dry run of
  `execrl.eval.executability` on the answer's `<<<code>>>` part (else its `api_call` part).
  Identical plans are checked once; plans that import the same libraries share a sandbox job
  (`group_size` at most), so a heavy library is imported once per job, not once per sample.

The summary: `n`, `ast_accuracy`, `hallucination_rate`, `rouge_l` and `codebleu` (means),
`executable_rate` (executable / samples with a verdict), `executable_decided` (samples with a
verdict), `not_installed` (verdict None because a library is missing here).

Built-in suite (`builtin_api_rows`): for the samples of `api` tasks, `executable` is real
execution (`execution_verdict`: the program ran to completion without an error) and `ast_match`
is `builtin.calls_api` (the program calls the recorded standard-library function).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from execrl.data import DataError, apibench, builtin, hub
from execrl.data.jsonl import PathLike, Sample, read_rows
from execrl.eval import executability, similarity
from execrl.eval.apibench import extract_api_call, match, read_api_database
from execrl.sandbox.executor import LocalExecutor
from execrl.types import ExecutionResult, Isolation, Limits

__all__ = [
    "ApiEvaluation",
    "ApiRow",
    "builtin_api_rows",
    "evaluate_apibench",
    "read_answers",
    "summarize_builtin",
]


@dataclass(frozen=True)
class ApiRow:
    task_id: str
    sample_index: int
    provider: str
    ast_match: bool
    hallucination: bool
    rouge_l: float
    codebleu: float
    compared: dict[str, str]
    executable: bool | None
    executable_reason: str


@dataclass
class ApiEvaluation:
    rows: list[ApiRow]
    seconds: float
    isolation: Isolation | None = None
    database_size: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        n = len(self.rows)
        decided = [r.executable for r in self.rows if r.executable is not None]
        missing = sum(
            1 for r in self.rows if r.executable is None and r.executable_reason.startswith("not installed")
        )

        def mean(values: Sequence[float]) -> float:
            return sum(values) / len(values) if values else 0.0

        return {
            "n": n,
            "ast_accuracy": mean([r.ast_match for r in self.rows]),
            "hallucination_rate": mean([r.hallucination for r in self.rows]),
            "rouge_l": mean([r.rouge_l for r in self.rows]),
            "codebleu": mean([r.codebleu for r in self.rows]),
            "executable_rate": mean(decided),
            "executable_decided": len(decided),
            "not_installed": missing,
        }

    def table(self) -> str:
        s = self.summary()
        tasks = len({r.task_id for r in self.rows})
        lines = [f"benchmark   apibench: {tasks} tasks, {s['n']} samples, {self.seconds:.1f}s"]
        if self.isolation is not None:
            lines.append(f"isolation   {', '.join(self.isolation.layers())}")
        lines.append("")
        lines.append(
            f"{'provider':<28}{'samples':>8}{'AST acc':>9}{'halluc.':>9}{'ROUGE-L':>9}{'CodeBLEU':>9}{'exec.':>8}"
        )
        by: dict[str, list[ApiRow]] = {}
        for r in self.rows:
            by.setdefault(r.provider, []).append(r)
        for provider, rows in [*sorted(by.items()), ("all", self.rows)]:
            part = ApiEvaluation(rows, 0.0).summary()
            exe = f"{part['executable_rate']:.1%}" if part["executable_decided"] else "-"
            lines.append(
                f"{provider[:27]:<28}{part['n']:>8}{part['ast_accuracy']:>9.1%}{part['hallucination_rate']:>9.1%}"
                f"{part['rouge_l']:>9.3f}{part['codebleu']:>9.3f}{exe:>8}"
            )
        reasons = Counter(r.executable_reason.split(":")[0] for r in self.rows if r.executable is not True)
        if reasons:
            lines.append("")
            lines.append(
                "not executable or undecided: " + ", ".join(f"{k} {c}" for k, c in reasons.most_common(8))
            )
        return "\n".join(lines)

    def dict_rows(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.rows]


def read_answers(path: PathLike) -> list[Sample]:
    """Samples rows `{"task_id", "completion"}`, or Gorilla's own answer files `{"question_id",
    "text"}` (what its `get_llm_responses.py` writes), row by row."""
    out = []
    for row in read_rows(path):
        if "task_id" not in row.data and "question_id" in row.data:
            out.append(Sample(row.ident("question_id"), row.text("text"), row.line))
        else:
            out.append(Sample(row.ident("task_id"), row.text("completion"), row.line))
    return out


def _databases(problems: dict[str, apibench.Problem], api_db: PathLike | None) -> dict[str, list[str]]:
    if api_db is not None:
        calls = read_api_database(api_db)
        return {p.provider: calls for p in problems.values()}
    out: dict[str, list[str]] = {}
    for p in problems.values():
        db = out.setdefault(p.provider, [])
        if p.api_call not in db:
            db.append(p.api_call)
    return out


def evaluate_apibench(
    samples: PathLike,
    *,
    data: PathLike | None,
    api_db: PathLike | None = None,
    limits: Limits = executability.DRY_RUN_LIMITS,
    workers: int | None = None,
    executor: LocalExecutor | None = None,
    allow_unsafe: bool = False,
    progress: bool = False,
    group_size: int = 32,
) -> ApiEvaluation:
    """Every metric of the module docstring for each sample of `samples` (rows `task_id`, `completion`)."""
    rows = read_answers(samples)
    if not rows:
        raise DataError(f"{os.fspath(samples)}: no samples")
    problems = apibench.load(hub.resolve(os.fspath(data)) if data is not None else None)
    for s in rows:
        if s.task_id not in problems:
            raise DataError(
                f"{os.fspath(samples)}:{s.line}: task_id {s.task_id!r} is not in the apibench data"
            )
    databases = _databases(problems, api_db)
    t0 = time.monotonic()
    verdicts: list[executability.Verdict | None] = []
    plans: dict[executability.Plan, list[int]] = {}  # distinct plans -> the samples that have them
    for i, s in enumerate(rows):
        verdict, plan = executability.static_check(executability.answer_code(s.completion))
        verdicts.append(verdict)
        if plan is not None:
            plans.setdefault(plan, []).append(i)
    # plans importing the same libraries share a job (and so one import of them), up to group_size
    groups: dict[tuple[str, ...], list[executability.Plan]] = {}
    for plan in plans:
        groups.setdefault(plan.libraries(), []).append(plan)
    chunks = [g[k : k + group_size] for g in groups.values() for k in range(0, len(g), group_size)]
    jobs = [executability.dry_run_job(chunk, limits) for chunk in chunks]
    results, isolation = _run(jobs, workers, executor, allow_unsafe, progress)
    for chunk, result in zip(chunks, results):
        for plan, verdict in zip(chunk, executability.dry_run_verdicts(result, len(chunk))):
            for i in plans[plan]:
                verdicts[i] = verdict
    seen: Counter[str] = Counter()
    out = []
    for s, verdict in zip(rows, verdicts):
        problem = problems[s.task_id]
        correct, hallucinated = match(problem, s.completion, databases[problem.provider])
        prediction = extract_api_call(s.completion)
        assert verdict is not None
        out.append(
            ApiRow(
                task_id=s.task_id,
                sample_index=seen[s.task_id],
                provider=problem.provider,
                ast_match=correct,
                hallucination=hallucinated,
                rouge_l=similarity.rouge_l(prediction, problem.api_call),
                codebleu=similarity.codebleu(prediction, problem.api_call),
                compared={"prediction": prediction, "reference": problem.api_call},
                executable=verdict.executable,
                executable_reason=verdict.reason,
            )
        )
        seen[s.task_id] += 1
    sizes = {k: len(v) for k, v in databases.items()}
    return ApiEvaluation(out, time.monotonic() - t0, isolation, sizes)


def _run(
    jobs: list[Any], workers: int | None, executor: LocalExecutor | None, allow_unsafe: bool, progress: bool
) -> tuple[list[ExecutionResult], Isolation | None]:
    if not jobs:
        return [], None
    own = executor is None
    ex = executor or LocalExecutor(workers=workers, allow_unsafe=allow_unsafe)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="dry run", file=sys.stderr, disable=None)
    try:
        results = ex.run(jobs, progress=(lambda _: bar.update()) if bar is not None else None)
        return results, ex.isolation
    finally:
        if bar is not None:
            bar.close()
        if own:
            ex.close()


def builtin_api_rows(
    problems: dict[str, builtin.Problem],
    samples: Sequence[Sample],
    results: Sequence[ExecutionResult],
    programs: Sequence[str],
) -> list[dict[str, Any] | None]:
    """Per sample: `{"executable", "executable_reason", "ast_match"}` for API tasks, None for others."""
    out: list[dict[str, Any] | None] = []
    for s, r, program in zip(samples, results, programs, strict=True):
        p = problems[s.task_id]
        if p.kind != "api" or p.api_call is None:
            out.append(None)
            continue
        verdict = executability.execution_verdict(r)
        out.append(
            {
                "executable": verdict.executable,
                "executable_reason": verdict.reason,
                "ast_match": builtin.calls_api(program, p.api_call),
            }
        )
    return out


def summarize_builtin(rows: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """`api_samples`, `api_executable_rate` (over samples with a verdict), `api_ast_match_rate`."""
    api = [r for r in rows if r is not None]
    decided = [r["executable"] for r in api if r["executable"] is not None]
    return {
        "api_samples": len(api),
        "api_executable_rate": sum(decided) / len(decided) if decided else 0.0,
        "api_ast_match_rate": sum(r["ast_match"] for r in api) / len(api) if api else 0.0,
    }
