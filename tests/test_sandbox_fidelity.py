"""Differential test: every case of `fidelity_corpus` gets the verdict plain Python gives it.

Each job runs through the sandbox and through plain Python in one process (`plain_python`); the
status, the error type and the error line (in the completion) of the first test that does not pass
must agree. The corpus holds legitimate programs of every shape benchmark tests use and wrong
variants of them, so a disagreement is either a legitimate program the sandbox fails or a wrong one
it misjudges. The attacks that must still fail, next to these shapes, are in `test_sandbox_attacks.py`
(section "Fidelity").
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from execrl import LocalExecutor
from fidelity_corpus import CASES, DIFFERENCES
from plain_python import run_plain

NAMES = sorted(CASES)
AGREE = [n for n in NAMES if n not in DIFFERENCES]


@pytest.fixture(scope="module")
def verdicts(executor: LocalExecutor) -> dict[str, tuple[tuple, tuple, str]]:
    """Both verdicts of every case, computed once: the sandbox in one batch, plain Python two at a time."""
    results = executor.run([CASES[n] for n in NAMES])
    with ThreadPoolExecutor(2) as pool:
        plain = list(pool.map(lambda n: run_plain(CASES[n]), NAMES))
    out = {}
    for name, r, p in zip(NAMES, results, plain):
        ours = (r.status.value, r.error.type if r.error else None, r.error.line if r.error else None)
        why = " ".join([r.detail, *(f"{t.error.type}: {t.error.message}" for t in r.tests if t.error)])
        out[name] = (ours, tuple(p), why)
    return out


def test_corpus_is_large_and_varied() -> None:
    """At least 150 cases, with function, stdin/stdout and call-based suites among them."""
    kinds = {CASES[n].tests.kind for n in NAMES}
    assert len(NAMES) >= 150 and kinds == {"assert", "io", "call"}


@pytest.mark.parametrize("name", AGREE)
def test_sandbox_agrees_with_plain_python(verdicts: dict[str, tuple[tuple, tuple, str]], name: str) -> None:
    """(status, error type, error line) from the sandbox equal plain Python's."""
    ours, plain, _ = verdicts[name]
    if (plain[0] == "failed" or plain[0] == "timeout") and ours[0] == plain[0] and plain[1] is None:
        ours = (ours[0], None, ours[2])  # a wrong stdout or a timeout: no error type from plain Python
    assert ours == plain, f"{name}: sandbox {ours} != plain Python {plain}"


@pytest.mark.parametrize("name", sorted(DIFFERENCES))
def test_documented_difference(verdicts: dict[str, tuple[tuple, tuple, str]], name: str) -> None:
    """Where the sandbox differs from one process on purpose, it gives the documented verdict and says why."""
    ours, plain, why = verdicts[name]
    status, words = DIFFERENCES[name]
    assert ours[0] == status and words in why and ours != plain, (name, ours, plain, why)


def test_cache_key_changes_with_the_harness_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """A result cached by an older harness is never reused: the version is part of the job's key."""
    import execrl.sandbox as sandbox

    job = CASES[NAMES[0]]
    before = job.key()
    monkeypatch.setattr(sandbox, "HARNESS_VERSION", sandbox.HARNESS_VERSION + "-next")
    assert job.key() != before
