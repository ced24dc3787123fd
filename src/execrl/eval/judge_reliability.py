"""How reliable is an LLM judge? Its answers against facts that execution and the AST establish.

`execrl judge --truth RESULTS.jsonl` takes the rows `execrl evaluate --out` wrote for the same
samples (same order) and reports, per question that names a `truth` fact (judge_questions.yaml):

* agreement: the share of samples where the judge's answer (P(yes) > 1/2) equals the fact, over
  the samples where the fact is known;
* and, for the score as a whole, R² of the judge's score against the true score under PF-PPO's
  definition (`execrl.filtration.r2.r_squared`, strategy `none`, 10 bins: samples binned by score,
  one point per bin, R² of the least-squares line), where the true score is the unit-test pass
  ratio (`tests_passed / tests_total`) when the row has tests, else the AST match (0/1).

Facts of a row (None: not known for that row):

| fact | execution rows (builtin, humaneval, ...) | apibench rows |
|---|---|---|
| syntax | status is not `syntax_error` | the reason is not a syntax error |
| undefined | no `NameError`/`UnboundLocalError` (None after a syntax error) | no undefined name (None after a syntax error) |
| imports | no `ImportError`/`ModuleNotFoundError` (None after a syntax error) | imports succeeded in the dry run (None when a library is missing or the dry run did not reach them) |
| passed | every test passed | — |
| api, arguments | `ast_match` where present (builtin API tasks) | `ast_match` |
| executable | `executable` where present | `executable` |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from execrl.data.jsonl import DataError
from execrl.filtration.r2 import ScoredSample, r_squared

__all__ = ["reliability", "table", "true_score", "truth_facts"]


def truth_facts(row: dict[str, Any]) -> dict[str, bool | None]:
    facts: dict[str, bool | None] = {}
    if "executable_reason" in row and "status" not in row:  # apibench
        reason = str(row["executable_reason"])
        syntax = not reason.startswith("syntax error")
        facts["syntax"] = syntax
        facts["undefined"] = None if not syntax else not reason.startswith("undefined name")
        if row.get("executable") is True:
            facts["imports"] = True
        elif reason.startswith("import failed"):
            facts["imports"] = False
        elif reason.startswith(("no_attribute", "not_callable", "bad_arguments")):
            facts["imports"] = True  # the checks after the imports ran
        else:
            facts["imports"] = None
    elif "status" in row:
        status = row["status"]
        syntax = status != "syntax_error"
        error = (row.get("error") or {}).get("type") if status == "runtime_error" else None
        facts["syntax"] = syntax
        facts["undefined"] = None if not syntax else error not in ("NameError", "UnboundLocalError")
        facts["imports"] = None if not syntax else error not in ("ImportError", "ModuleNotFoundError")
        facts["passed"] = bool(row.get("passed"))
    if "ast_match" in row:
        facts["api"] = facts["arguments"] = bool(row["ast_match"])
    if "executable" in row:
        facts["executable"] = row["executable"]
    return facts


def true_score(row: dict[str, Any]) -> float | None:
    total = row.get("tests_total")
    if isinstance(total, int) and total > 0:
        return float(row.get("tests_passed", 0)) / total
    if "ast_match" in row:
        return float(bool(row["ast_match"]))
    return None


def reliability(
    judged: Sequence[dict[str, Any]],
    truth: Sequence[dict[str, Any]],
    truth_of: dict[str, str],
    *,
    bins: int = 10,
) -> dict[str, Any]:
    """`judged`: `execrl judge` rows; `truth`: `execrl evaluate` rows of the same samples, in order;
    `truth_of`: question id -> fact name. Agreement per question and the score's R²."""
    if len(judged) != len(truth):
        raise DataError(f"--truth has {len(truth)} rows for {len(judged)} judged samples")
    for j, t in zip(judged, truth):
        if j["task_id"] != t.get("task_id"):
            raise DataError(
                f"--truth rows are not the judged samples: {t.get('task_id')!r} != {j['task_id']!r}"
            )
    questions: dict[str, Any] = {}
    for qid, fact in truth_of.items():
        if not fact:
            continue
        pairs = [
            (p > 0.5, f)
            for j, t in zip(judged, truth)
            if (p := j["p_yes"].get(qid)) is not None and (f := truth_facts(t).get(fact)) is not None
        ]
        agree = sum(a == f for a, f in pairs)
        questions[qid] = {"truth": fact, "n": len(pairs), "agreement": agree / len(pairs) if pairs else None}
    samples = [
        ScoredSample(j["task_id"], float(j["score"]), s)
        for j, t in zip(judged, truth)
        if (s := true_score(t)) is not None
    ]
    fit = r_squared(samples, "none", bins)
    return {"questions": questions, "r2": fit.r2, "r2_note": fit.note, "r2_samples": len(samples)}


def table(result: dict[str, Any]) -> str:
    lines = [f"{'question':<14}{'truth':<12}{'samples':>8}{'agreement':>11}"]
    for qid, q in result["questions"].items():
        agreement = f"{q['agreement']:.1%}" if q["agreement"] is not None else "-"
        lines.append(f"{qid:<14}{q['truth']:<12}{q['n']:>8}{agreement:>11}")
    r2 = f"{result['r2']:.4f}" if result["r2"] is not None else "undefined"
    note = f" ({result['r2_note']})" if result["r2_note"] else ""
    lines.append(
        f"R² of score against the true score (PF-PPO bins, {result['r2_samples']} samples): {r2}{note}"
    )
    return "\n".join(lines)
