"""PLUM's on-policy labels and pairs (`execrl.trainers.preference_data`)."""

from __future__ import annotations

from execrl.data import humaneval
from execrl.sandbox.executor import LocalExecutor
from execrl.trainers.preference_data import Sample, dpo_pairs, kto_examples, label
from execrl.types import Limits

TESTS = {
    "HumanEval/0": [
        "assert has_close_elements([1.0, 2.8, 3.0], 0.3) == True",
        "assert has_close_elements([1.0, 2.0, 3.0], 0.5) == False",
    ]
}


def test_label_chosen_rejected_and_unlabelled(executor: LocalExecutor) -> None:
    problems = humaneval.load()
    right = problems["HumanEval/0"].canonical_solution
    samples = [
        Sample("HumanEval/0", right),
        Sample("HumanEval/0", "    return True\n"),  # passes the first test only
        Sample("HumanEval/0", "    while True:\n        pass\n"),  # times out
        Sample("HumanEval/0", "    return (\n"),  # syntax error
        Sample("HumanEval/1", "    return []\n"),  # no valid tests for this task
    ]
    labels = label("humaneval", problems, samples, TESTS, executor, Limits(timeout=0.3))
    assert labels == [True, False, False, False, None]


def test_dpo_pairs_need_both_kinds_and_are_capped_and_seeded() -> None:
    """Task a: chosen {0, 2} (sample 4 repeats sample 0's program), rejected {1, 3}: 4 combinations.
    Task b: only chosen, no pair. Task c: only unlabelled."""
    samples = [Sample("a", "x"), Sample("a", "y"), Sample("a", "z"), Sample("a", "w"), Sample("a", "x")]
    samples += [Sample("b", "x"), Sample("c", "x")]
    labels: list[bool | None] = [True, False, True, False, True, True, None]
    all_pairs = dpo_pairs(samples, labels, max_pairs=10)
    assert sorted(all_pairs) == [(0, 1), (0, 3), (2, 1), (2, 3)]
    two = dpo_pairs(samples, labels, max_pairs=2, seed=7)
    assert (
        len(two) == 2
        and set(two) <= set(all_pairs)
        and two == dpo_pairs(samples, labels, max_pairs=2, seed=7)
    )


def test_kto_examples_keep_every_labelled_distinct_sample() -> None:
    samples = [Sample("a", "x"), Sample("a", "y"), Sample("a", "x"), Sample("b", "x"), Sample("c", "z")]
    labels: list[bool | None] = [True, False, True, True, None]
    assert kto_examples(samples, labels) == [(0, True), (1, False), (3, True)]
