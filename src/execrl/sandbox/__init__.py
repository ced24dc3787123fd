"""The execution engine: run untrusted programs against tests, safely and fast.

`LocalExecutor` (executor.py) keeps one warm fork-server per worker (zygote.py). Each job forks a
trusted test runner that in turn forks the confined candidate process (runner.py, judge.py,
candidate.py); verdicts are
decided by the runner on plain data that crossed the process boundary. Isolation layers (namespaces,
seccomp, Landlock, rlimits) are probed once (probe.py) and recorded in every result.
"""

HARNESS_VERSION = "2"
"""Part of every cached result's key: bumped whenever a verdict may change (2: issue 15's fidelity
rules — builtin-named subjects, program objects, statuses of errors outside the program)."""
