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
import signal
import sys
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from execrl.sandbox import judge, namespaces, wire
from execrl.sandbox.candidate import MAX_INT_DIGITS, Confinement
from execrl.sandbox.runner import Context
from execrl.sandbox.spawner import Spawner, SpawnerGone
from execrl.types import ExecutionResult, IOTests, Isolation, Job, Limits

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


@dataclass
class Server:
    """The fork-server's state: what is in force, where jobs run, and its spawner."""

    isolation: Isolation
    conf: Confinement
    pid1: bool
    scratch: str
    jobdir: str
    fresh_tmpfs: bool  # a new tmpfs per job (mount namespace), else the directory is emptied
    confine_spawner: Callable[[], None]
    spawner: Spawner | None = None

    def start_spawner(self) -> Spawner:
        if self.spawner is not None:
            self.spawner.stop()
        self.spawner = Spawner(self.conf, self.jobdir, self.confine_spawner)
        return self.spawner


def setup(cfg: dict[str, Any]) -> Server:
    """Enter the shared layers, probe the per-process ones, start the spawner."""
    notes: list[str] = []
    iso = Isolation(fork_server=True, scrubbed_env=True, rlimits=True)
    pid1 = fresh = False
    scratch = cfg["scratch"]
    jobdir = os.path.join(scratch, "job")
    os.makedirs(jobdir, exist_ok=True)
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
                ns.make_mounts_private()
                try:
                    ns.make_root_readonly()
                    iso = replace(iso, readonly_root=True)
                except OSError as e:
                    notes.append(f"read-only root: {e}")
                ns.mount_tmpfs(jobdir, int(cfg.get("tmpfs_mb", 256)))
                fresh = True
            except OSError as e:
                notes.append(f"tmpfs job directory: {e}")
        if iso.pid_namespace:
            pid = os.fork()  # the child is PID 1 of the new namespace and becomes the server
            if pid:
                _, status = os.waitpid(pid, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            pid1 = True
            ns.set_parent_death_signal(signal.SIGKILL)
    if not iso.readonly_root:
        notes.append(
            "no read-only root: metadata (chmod, utime, xattr) of files outside the job directory is not protected"
        )

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

    # Layers the spawner applies to itself once, so every candidate inherits them.
    steps: list[Callable[[], None]] = []
    if _try_in_child(ns.set_no_new_privs):
        steps.append(ns.set_no_new_privs)
        iso = replace(iso, no_new_privs=True)
    if "landlock" in want:
        from execrl.sandbox import landlock

        if landlock.abi_version() > 0:
            policy = landlock.LandlockPolicy(_read_paths(), write_paths=["/dev/null", scratch])

            def restrict() -> None:
                policy.restrict()

            if _try_in_child(restrict):
                steps.append(restrict)
                iso = replace(iso, landlock=landlock.abi_version())
            else:
                notes.append("landlock: restrict_self failed")
        else:
            notes.append("landlock: not supported by this kernel")
    if _try_in_child(ns.drop_capabilities):
        steps.append(ns.drop_capabilities)
        iso = replace(iso, dropped_capabilities=True)
    try:
        ns.set_dumpable(False)  # candidates cannot ptrace us or open /proc/<us>/mem
    except OSError as e:
        notes.append(f"dumpable: {e}")
    if not iso.pid_namespace and conf.seccomp is None:
        notes.append("no PID namespace and no seccomp: a job's processes are killed by process group only")

    def confine_spawner() -> None:
        for step in steps:
            step()

    iso = replace(iso, notes=tuple(notes))
    return Server(iso, conf, pid1, scratch, jobdir, fresh, confine_spawner)


def _empty(jobdir: str) -> None:
    """Remove everything under `jobdir` without recursion or long paths (a job may leave a
    3000-deep tree of chmod-0 directories). Raises OSError if anything is left."""
    top = os.open(jobdir, os.O_RDONLY | os.O_DIRECTORY)
    stack: list[tuple[int, str | None]] = [(top, None)]  # (directory fd, entry being descended into)
    try:
        while stack:
            fd, _ = stack[-1]
            sub = None
            for entry in os.scandir(fd):
                if entry.is_dir(follow_symlinks=False):
                    sub = entry.name
                    break
                os.unlink(entry.name, dir_fd=fd)
            if sub is None:
                stack.pop()
                if stack:
                    os.close(fd)
                    parent, name = stack[-1][0], stack[-1][1]
                    os.rmdir(name or "", dir_fd=parent)
                    stack[-1] = (parent, None)
                continue
            try:
                os.chmod(sub, 0o700, dir_fd=fd, follow_symlinks=False)
            except (OSError, NotImplementedError):
                os.chmod(sub, 0o700, dir_fd=fd)
            child = os.open(sub, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            stack[-1] = (fd, sub)
            stack.append((child, None))
    finally:
        for fd, _ in stack:
            if fd != top:
                os.close(fd)
        os.close(top)
    if os.listdir(jobdir):
        raise OSError(f"could not empty {jobdir}")


def fresh_jobdir(server: Server, limits: Limits) -> None:
    if server.fresh_tmpfs:  # O(1) whatever the job left, and sized for this job
        namespaces.unmount(server.jobdir)
        namespaces.mount_tmpfs(server.jobdir, limits.disk_mb)
    else:
        _empty(server.jobdir)


def _kill_job(server: Server, ctx: Context) -> None:
    """Nothing a job started may outlive it."""
    spawner = server.spawner
    for pid in list(ctx.spawned):  # each candidate leads its own process group
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if spawner is not None:
            spawner.wait(pid, 0.0)
    if server.conf.seccomp is None and server.pid1:
        os.kill(-1, signal.SIGKILL)  # a process may have left its group: every process but us
        server.spawner = None
    while True:  # reap orphans reparented to us
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        if server.spawner is not None and pid == server.spawner.pid:
            server.spawner = None
    if server.spawner is None:
        server.start_spawner()


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


def run_one(job_dict: dict[str, Any], server: Server, plans: PlanCache) -> dict[str, Any]:
    job = Job.from_dict(job_dict)
    fresh_jobdir(server, job.limits)
    assert server.spawner is not None
    ctx = Context(spawner=server.spawner, jobdir=server.jobdir)
    try:
        result = judge.run_job(job, ctx, plans.get(job_dict["tests"], job)).to_dict()
    except SpawnerGone as e:
        server.spawner = None
        result = ExecutionResult.sandbox_error(str(e)).to_dict()
    except Exception as e:
        detail = f"runner: {type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"
        result = ExecutionResult.sandbox_error(detail).to_dict()
    finally:
        try:
            _kill_job(server, ctx)
        except SpawnerGone:
            server.start_spawner()
    return result


def serve(cfg: dict[str, Any]) -> None:
    # Jobs and results move off fds 0/1, so trusted test code that prints cannot corrupt them.
    jobs_in, results_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    sys.set_int_max_str_digits(MAX_INT_DIGITS)
    for name in PRELOAD:
        __import__(name)
    server = setup(cfg)
    os.chdir(server.jobdir)
    os.environ.clear()
    os.environ.update(cfg.get("env", {}), HOME=server.jobdir, TMPDIR=server.jobdir)
    plans = PlanCache()
    gc.collect()
    gc.freeze()  # keep the warm heap shared with forked children (no copy-on-write from GC)
    server.start_spawner()  # before any job is read: candidates are copies of a process that saw none
    wire.send(results_out, {"hello": asdict(server.isolation)})
    while True:
        try:
            job = wire.recv(jobs_in)
        except wire.WireError:
            return  # the executor hung up
        try:
            result = run_one(job, server, plans)
        except Exception as e:  # e.g. the job directory could not be renewed: start afresh
            result = ExecutionResult.sandbox_error(f"fork-server: {type(e).__name__}: {e}").to_dict()
            wire.send(results_out, result)
            return
        wire.send(results_out, result)


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
