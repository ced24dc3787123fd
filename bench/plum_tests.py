"""How far synthesized tests can be trusted to label programs: validation with and without the
task-level rules, measured against the hidden tests on a policy's own samples.

    python bench/plum_tests.py --data runs/demo-plum/train-tasks.jsonl --tests runs/demo-plum/T.jsonl \\
        --solutions runs/diag/sft-samples.jsonl [--min-tests 3] [--min-mutation-score 0.5] [--out D]

`--solutions` are `{"task_id", "completion"}` rows (e.g. `testgen.embedded.sample_solutions` of
the SFT start, the programs PLUM's first round labels). For each setting — reference-only
validation (`execrl tests validate`'s default), then `--min-tests`, then `--adequacy` — it prints
validity, the tasks left with tests, the share of the solutions passing every valid test
("chosen"), the false-pass rate (chosen but failing the hidden tests) and, per kind of valid
test, how many there are: a test whose call has an empty argument (`solve([])`), a test whose
expected value is one a trivial program returns (0, -1, [], '', None, True/False), and which
trivial programs pass all the tests of a task. Writes `--out`/plum-tests.json.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
from collections import Counter
from typing import Any

from execrl.testgen.validate import Validation, validate

_TRIVIAL_VALUES = (None, 0, -1, 1, 0.0, "", False, True)


def kind_of(test: str) -> str:
    """The kind of a valid test, "empty-input", "trivial-expected" or "other": a static guess at why a test is weak."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return "other"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and any(
            isinstance(a, (ast.List, ast.Dict, ast.Tuple, ast.Set))
            and not getattr(a, "elts", getattr(a, "keys", 1))
            or isinstance(a, ast.Constant)
            and a.value == ""
            for a in node.args
        ):
            return "empty-input"
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and len(node.comparators) == 1:
            c = node.comparators[0]
            if isinstance(c, ast.Constant) and any(
                c.value == t and type(c.value) is type(t) for t in _TRIVIAL_VALUES
            ):
                return "trivial-expected"
            if isinstance(c, (ast.List, ast.Dict, ast.Tuple)) and not getattr(
                c, "elts", getattr(c, "keys", 1)
            ):
                return "trivial-expected"
            if isinstance(c, ast.UnaryOp) and isinstance(c.operand, ast.Constant) and c.operand.value == 1:
                return "trivial-expected"
    return "other"


def summarize(name: str, v: Validation) -> dict[str, Any]:
    q = v.quality
    fp = q.get("false_pass") or {}
    valid_rows = [r for r, ok in zip(v.rows, v.valid) if ok]
    tasks = {r.task_id for r in valid_rows}
    kinds = Counter(kind_of(r.test) for r in valid_rows if isinstance(r.test, str))
    per_task = Counter(Counter(r.task_id for r in valid_rows).values())
    trivial = Counter(n for d in v.tasks.values() for n in d.get("trivial_passed", ()))
    scores = [d["mutation_score"] for d in v.tasks.values() if "mutation_score" in d]
    out = {
        "setting": name,
        "tests": q["tests"],
        "valid": q["valid"],
        "valid_rate": q["valid_rate"],
        "reasons": q["reasons"],
        "tasks_with_valid_tests": len(tasks),
        "valid_tests_per_task": dict(sorted(per_task.items())),
        "valid_test_kinds": dict(kinds),
        "judged": fp.get("judged"),
        "chosen": fp.get("pass_valid"),
        "chosen_rate": fp["pass_valid"] / fp["judged"] if fp.get("judged") else None,
        "false_pass": fp.get("count"),
        "false_pass_rate": fp.get("rate"),
        "false_fail": fp.get("false_fail"),
        "trivial_passing_all_tests_of_a_task": dict(trivial),
        "mutation_score_mean": sum(scores) / len(scores) if scores else None,
        "tasks_judged_for_adequacy": len(scores),
    }
    print(f"== {name}")
    for k, x in out.items():
        if k != "setting":
            print(f"  {k:<38}{x}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmark", default="builtin")
    ap.add_argument("--data", required=True)
    ap.add_argument("--tests", required=True)
    ap.add_argument("--solutions", required=True)
    ap.add_argument("--min-tests", type=int, default=3)
    ap.add_argument("--min-mutation-score", type=float, default=0.5)
    ap.add_argument("--max-mutants", type=int, default=24)
    ap.add_argument("--out", default="runs/plum-tests")
    args = ap.parse_args()
    common = dict(data=args.data, solutions=args.solutions)
    settings = [
        ("reference only (default)", {}),
        (f"min_tests={args.min_tests}", {"min_tests": args.min_tests}),
        ("adequacy (min_tests=1)", {"adequacy": True, "max_mutants": args.max_mutants,
                                    "min_mutation_score": args.min_mutation_score}),
        (f"adequacy + min_tests={args.min_tests}", {"min_tests": args.min_tests, "adequacy": True,
                                                    "max_mutants": args.max_mutants,
                                                    "min_mutation_score": args.min_mutation_score}),
    ]  # fmt: skip
    results = [summarize(name, validate(args.benchmark, args.tests, **common, **kw)) for name, kw in settings]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "plum-tests.json"), "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=1)
    print(f"wrote {args.out}/plum-tests.json")


if __name__ == "__main__":
    main()
