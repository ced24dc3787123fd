"""The fork-server: a warm Python process that runs jobs one at a time, forking a fresh candidate.

Started by the executor with a scrubbed environment (no variable of the parent's), it pays once
for what every job shares, and confines *itself* with it, so every process it forks inherits it:
a user + network + PID + mount namespace (no network inside; a private size-capped tmpfs as the
job directory), Landlock (read the Python installation, write only the job directory), no new
privileges, no capabilities, no environment secrets. Per job it only forks the candidate process
(rlimits + seccomp applied there, see candidate.py) and runs the trusted tests itself (judge.py).
After each job it kills everything the job started — inside its own PID namespace it is PID 1,
so `kill(-1)` reaches every process the job left behind — and empties the job directory.

Measured on a 2-core VM where a copy-on-write page fault costs ~7 µs: forking a runner per job as
well as a candidate doubled the cost of a job, which is why the runner is the fork-server itself.
Trusted test code therefore runs in a long-lived process: it gets a fresh namespace per job, but
a test that mutates imported modules (e.g. seeds the global `random`) affects later jobs of the
same fork-server.

Protocol (wire.py frames): first it sends `{"hello": Isolation}`; then for each `Job` dict it
reads, it sends one `ExecutionResult` dict.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import sys
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from execrl.sandbox import judge, namespaces, wire
from execrl.sandbox.candidate import Confinement
from execrl.sandbox.runner import Context
from execrl.types import ExecutionResult, IOTests, Isolation, Job

JOBS_IN, RESULTS_OUT = 0, 1
PRELOAD = (
    "abc array ast bisect calendar cmath collections contextlib copy dataclasses datetime decimal enum "
    "fractions functools hashlib heapq io itertools json math numbers operator queue random re statistics "
    "string struct textwrap threading time typing unicodedata"
).split()


def _try_in_child(fn: Callable[[], None]) -> bool:
    """Run `fn` in a forked child; True when it returned without raising."""
    pid = os.fork()
    if pid == 0:
        try:
            fn()
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _read_paths() -> list[str]:
    paths = [
        "/usr",
        "/lib",
        "/lib64",
        "/lib32",
        "/bin",
        "/sbin",
        "/etc/localtime",
        "/etc/ssl",
        "/etc/mime.types",
    ]
    paths += [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    paths += [p for p in sys.path if p and os.path.isabs(p)]
    paths += ["/dev/urandom", "/dev/random", "/dev/zero"]
    seen: list[str] = []
    for p in paths:
        if os.path.exists(p) and p not in seen:
            seen.append(p)
    return seen


def setup(cfg: dict[str, Any]) -> tuple[Isolation, Confinement, bool]:
    """Enter and apply the shared layers; prepare the per-candidate ones.

    Returns (isolation in force, what each candidate applies, whether we are PID 1)."""
    notes: list[str] = []
    iso = Isolation(fork_server=True, scrubbed_env=True, rlimits=True)
    pid1 = False
    scratch = cfg["scratch"]
    want = set(cfg.get("layers", ["namespaces", "seccomp", "landlock"]))
    ns = namespaces
    if "namespaces" in want:
        attempts = [
            (ns.CLONE_NEWNET | ns.CLONE_NEWPID | ns.CLONE_NEWNS, "user+net+pid+mount"),
            (ns.CLONE_NEWNET | ns.CLONE_NEWNS, "user+net+mount"),
            (ns.CLONE_NEWNET, "user+net"),
        ]
        for flags, name in attempts:
            if _try_in_child(lambda f=flags: ns.enter_user_namespace(f)):  # type: ignore[misc]
                ns.enter_user_namespace(flags)
                iso = replace(
                    iso,
                    user_namespace=True,
                    net_namespace=True,
                    pid_namespace=bool(flags & ns.CLONE_NEWPID),
                    mount_namespace=bool(flags & ns.CLONE_NEWNS),
                )
                break
            notes.append(f"namespaces {name}: not permitted")
        if iso.mount_namespace:
            try:
                ns.mount_private_tmpfs(scratch, int(cfg.get("tmpfs_mb", 512)))
            except OSError as e:
                notes.append(f"tmpfs for job directories: {e}")
        if iso.pid_namespace:
            pid = os.fork()  # the child is PID 1 of the new namespace and becomes the server
            if pid:
                _, status = os.waitpid(pid, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            pid1 = True
            ns.set_parent_death_signal(signal.SIGKILL)

    conf = Confinement()
    if "seccomp" in want:
        from execrl.sandbox import seccomp

        try:
            filt = seccomp.SeccompFilter.build(allow_processes=False)
            if _try_in_child(lambda: filt.install(os.getpid())):
                conf.seccomp = filt
                iso = replace(iso, seccomp=True)
            else:
                notes.append("seccomp: installing the filter failed")
        except seccomp.SeccompUnsupported as e:
            notes.append(f"seccomp: {e}")

    # From here on the fork-server confines itself; its children inherit all of it.
    try:
        ns.set_no_new_privs()
        iso = replace(iso, no_new_privs=True)
    except OSError as e:
        notes.append(f"no_new_privs: {e}")
    if "landlock" in want:
        from execrl.sandbox import landlock

        if landlock.abi_version() > 0:
            policy = landlock.LandlockPolicy(_read_paths(), write_paths=["/dev/null", scratch])
            try:
                iso = replace(iso, landlock=policy.restrict())
            except OSError as e:
                notes.append(f"landlock: {e}")
            policy.close()
        else:
            notes.append("landlock: not supported by this kernel")
    try:
        ns.drop_capabilities()
        iso = replace(iso, dropped_capabilities=True)
    except OSError as e:
        notes.append(f"capabilities: {e}")
    try:
        ns.set_dumpable(False)  # candidates cannot ptrace us or open /proc/<us>/mem
    except OSError as e:
        notes.append(f"dumpable: {e}")
    if not iso.pid_namespace and conf.seccomp is None:
        notes.append("no PID namespace and no seccomp: a job's processes are killed by process group only")
    return replace(iso, notes=tuple(notes)), conf, pid1


def _rmtree(path: str) -> None:
    def fix(func: Any, p: str, _exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=fix)


def _kill_job(candidates: list[int], pid1: bool) -> None:
    """Nothing a job started may outlive it."""
    if pid1:
        try:
            os.kill(-1, signal.SIGKILL)  # every process in our PID namespace but us
        except ProcessLookupError:
            pass
    for pid in candidates:  # each candidate leads its own process group
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    while True:  # reap orphans reparented to us (PID 1) and anything not yet reaped
        try:
            pid, _ = os.waitpid(-1, 0 if pid1 else os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break


def _empty(jobdir: str) -> None:
    for entry in os.scandir(jobdir):
        if entry.is_dir(follow_symlinks=False):
            _rmtree(entry.path)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


class PlanCache:
    """Compiled test plans by suite, reused across jobs that share tests."""

    def __init__(self, max_items: int = 4096) -> None:
        self.plans: OrderedDict[str, judge.Plan | None] = OrderedDict()
        self.max_items = max_items

    def get(self, tests_dict: dict[str, Any], job: Job) -> judge.Plan | None:
        if isinstance(job.tests, IOTests):
            return None
        key = json.dumps(tests_dict, sort_keys=True, default=repr)
        if key in self.plans:
            self.plans.move_to_end(key)
            return self.plans[key]
        try:
            p: judge.Plan | None = judge.plan(job.tests)
        except Exception:
            p = None  # run_job plans it again and reports the problem
        self.plans[key] = p
        if len(self.plans) > self.max_items:
            self.plans.popitem(last=False)
        return p


def run_one(
    job_dict: dict[str, Any], conf: Confinement, jobdir: str, pid1: bool, plans: PlanCache
) -> dict[str, Any]:
    job = Job.from_dict(job_dict)
    ctx = Context(confinement=conf, jobdir=jobdir)
    try:
        result = judge.run_job(job, ctx, plans.get(job_dict["tests"], job)).to_dict()
    except Exception as e:
        detail = f"runner: {type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"
        result = ExecutionResult.sandbox_error(detail).to_dict()
    finally:
        _kill_job(ctx.spawned, pid1)
        _empty(jobdir)
    return result


def serve(cfg: dict[str, Any]) -> None:
    sys.set_int_max_str_digits(0)
    for name in PRELOAD:
        __import__(name)
    jobdir = cfg["scratch"]
    os.makedirs(jobdir, exist_ok=True)
    iso, conf, pid1 = setup(cfg)
    os.chdir(jobdir)
    os.environ.clear()
    os.environ.update(cfg.get("env", {}), HOME=jobdir, TMPDIR=jobdir)
    plans = PlanCache()
    gc.collect()
    gc.freeze()  # keep the warm heap shared with forked children (no copy-on-write from GC)
    wire.send(RESULTS_OUT, {"hello": asdict(iso)})
    while True:
        try:
            job = wire.recv(JOBS_IN)
        except wire.WireError:
            return  # the executor hung up
        try:
            result = run_one(job, conf, jobdir, pid1, plans)
        except Exception as e:
            result = ExecutionResult.sandbox_error(f"fork-server: {type(e).__name__}: {e}").to_dict()
        wire.send(RESULTS_OUT, result)


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
