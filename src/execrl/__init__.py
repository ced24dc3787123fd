"""execrl: train code language models from the execution of the programs they write.

The public API is small: the sandbox (`LocalExecutor`, `Job`, test suites, `Limits`), its typed
results (`ExecutionResult`, `Status`), and pass@k. Importing execrl never imports torch.
"""

from execrl.types import (
    AssertTests,
    CallCase,
    CallTests,
    ErrorInfo,
    ExecutionResult,
    IOCase,
    IOTests,
    Isolation,
    Job,
    Limits,
    Status,
    TestRecord,
)

__version__ = "0.1.0"

__all__ = [
    "AssertTests",
    "CallCase",
    "CallTests",
    "ErrorInfo",
    "ExecutionResult",
    "IOCase",
    "IOTests",
    "Isolation",
    "Job",
    "Limits",
    "LocalExecutor",
    "Status",
    "TestRecord",
    "estimate_pass_at_k",
]


def __getattr__(name: str) -> object:
    # Lazy so that `import execrl` stays cheap and never starts processes.
    if name == "LocalExecutor":
        from execrl.sandbox.executor import LocalExecutor

        return LocalExecutor
    if name == "estimate_pass_at_k":
        from execrl.eval.passk import estimate_pass_at_k

        return estimate_pass_at_k
    raise AttributeError(name)
