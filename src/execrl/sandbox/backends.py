"""Pick an `Executor` backend by name: what `--executor` and `RLConfig.executor` choose.

    local  LocalExecutor on this machine (`workers` fork-servers)
    ray    RayExecutor on a Ray cluster (`address`: auto, ray://head:10001; None: a local cluster)
    http   HTTPExecutor on `execrl sandbox serve` (`address`: its URL, or several separated by commas;
           token from $EXECRL_SANDBOX_TOKEN)

Each backend's heavy dependency is imported only when it is chosen.
"""

from __future__ import annotations

from typing import Any

from execrl.data import DataError

BACKENDS = ("local", "ray", "http")


def make_executor(
    name: str, *, address: str | None = None, workers: int | None = None, allow_unsafe: bool = False
) -> Any:
    """A started-on-first-use executor; the caller closes it. `allow_unsafe` applies where the
    sandbox runs in this process's control (local, ray); the service decides for itself."""
    if name == "local":
        from execrl.sandbox.executor import LocalExecutor

        return LocalExecutor(workers, allow_unsafe=allow_unsafe)
    if name == "ray":
        try:
            from execrl.sandbox.ray import RayExecutor

            return RayExecutor(address or None, allow_unsafe=allow_unsafe)
        except (ImportError, ConnectionError) as e:  # no extra; no cluster at that address
            raise DataError(f"ray: {e}") from None
    if name == "http":
        if not address:
            raise DataError("the http executor needs the service's URL (--sandbox-url / executor_address)")
        from execrl.sandbox.http import HTTPExecutor

        return HTTPExecutor([u.strip() for u in address.split(",") if u.strip()])
    raise DataError(f"unknown executor {name!r}; choose from {', '.join(BACKENDS)}")
