"""The seccomp layer, tested adversarially: each test forks, installs the filter in the child only,
attempts one thing and reports the outcome over a pipe.
Signals aimed at other processes are always signal 0."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import math
import mmap
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from execrl.sandbox import seccomp
from execrl.sandbox.seccomp import SeccompFilter, SeccompUnsupported, supported_arch

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not supported_arch(),
    reason="seccomp filter supports only Linux x86_64/aarch64",
)

# Independent of the module's own tables on purpose.
_NR = {
    "x86_64": {"kill": 62, "tgkill": 234, "clone": 56, "clone3": 435, "getpid": 39},
    "aarch64": {"kill": 129, "tgkill": 131, "clone": 220, "clone3": 435, "getpid": 172},
}.get(platform.machine(), {})
_CLONE_NEWUSER = 0x10000000
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def raw_syscall(nr: int, *args: int) -> str:
    ret = _libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
    return f"errno:{ctypes.get_errno()}" if ret == -1 else "ok"


def in_child(fn: Callable[[], object], allow_processes: bool | None = False) -> str:
    """Run fn in a forked child under the filter (None: unfiltered baseline); return its outcome."""
    flt = None if allow_processes is None else SeccompFilter.build(allow_processes=allow_processes)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # never return into pytest from here
        try:
            os.close(r)
            try:
                if flt is not None:
                    flt.install(os.getpid())
                out = f"ok:{fn()}"
            except OSError as e:
                out = f"errno:{e.errno}"
            except BaseException as e:
                out = f"exc:{type(e).__name__}:{e}"
            os.write(w, out.encode()[:4096])
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child died: {status:#x}"
    return data


def test_socket_denied_for_every_family() -> None:
    def attempt() -> str:
        outcomes = []
        for family, kind in [
            (socket.AF_INET, socket.SOCK_STREAM),
            (socket.AF_INET6, socket.SOCK_DGRAM),
            (socket.AF_UNIX, socket.SOCK_STREAM),
            (socket.AF_NETLINK, socket.SOCK_RAW),
            (socket.AF_PACKET, socket.SOCK_RAW),
        ]:
            try:
                socket.socket(family, kind).close()
                outcomes.append("created")
            except OSError as e:
                outcomes.append(str(e.errno))
        return ",".join(outcomes)

    assert in_child(attempt) == "ok:" + ",".join([str(errno.EACCES)] * 5)


def test_socketpair_still_works() -> None:
    def attempt() -> bytes:
        a, b = socket.socketpair()
        a.sendall(b"ping")
        return b.recv(4)

    assert in_child(attempt) == "ok:b'ping'"


def test_fork_denied() -> None:
    def attempt() -> str:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        return "forked"

    assert in_child(attempt) == f"errno:{errno.EPERM}"


def test_threads_still_work() -> None:
    def attempt() -> int:
        results: list[int] = []
        threads = [threading.Thread(target=results.append, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(results)

    assert in_child(attempt) == "ok:6"


def test_subprocess_denied() -> None:
    def attempt() -> int:
        return subprocess.run([sys.executable, "-c", "pass"], check=False).returncode

    assert in_child(attempt) in (f"errno:{errno.EPERM}", f"errno:{errno.EACCES}")


@pytest.mark.parametrize("allow_processes", [False, True])
def test_clone3_reports_enosys(allow_processes: bool) -> None:
    # Unfiltered, clone3(NULL, 0) fails with EINVAL/EFAULT; ENOSYS is what makes glibc fall back to clone.
    attempt = lambda: raw_syscall(_NR["clone3"], 0, 0)  # noqa: E731
    assert in_child(attempt, allow_processes) == f"ok:errno:{errno.ENOSYS}"


@pytest.mark.parametrize("allow_processes", [False, True])
def test_clone_into_new_namespace_denied(allow_processes: bool) -> None:
    def attempt() -> str:
        # Fork-like raw clone (no new stack) asking for a user namespace.
        me = os.getpid()
        out = raw_syscall(_NR["clone"], _CLONE_NEWUSER | signal.SIGCHLD, 0, 0, 0, 0)
        if os.getpid() != me:  # the filter failed and this is the new process
            os._exit(0)
        return out

    assert in_child(attempt, allow_processes) == f"ok:errno:{errno.EPERM}"


def test_kill_parent_denied() -> None:
    attempt = lambda: os.kill(os.getppid(), 0)  # noqa: E731
    assert in_child(attempt, allow_processes=None) == "ok:None"  # baseline: permitted without filter
    assert in_child(attempt) == f"errno:{errno.EPERM}"


def test_kill_self_allowed_and_delivered() -> None:
    def attempt() -> list[int]:
        got: list[int] = []
        signal.signal(signal.SIGUSR1, lambda s, _f: got.append(s))
        os.kill(os.getpid(), 0)
        os.kill(os.getpid(), signal.SIGUSR1)
        signal.raise_signal(signal.SIGUSR1)
        return got

    assert in_child(attempt) == f"ok:{[signal.SIGUSR1.value] * 2}"


@pytest.mark.parametrize("target", ["zero", "minus_one", "group"])
def test_kill_broadcast_and_groups_denied(target: str) -> None:
    def attempt() -> None:
        pid = {"zero": 0, "minus_one": -1, "group": -os.getpgid(0)}[target]
        os.kill(pid, 0)

    assert in_child(attempt) == f"errno:{errno.EPERM}"


def test_kill_with_garbage_high_word_denied() -> None:
    # The kernel truncates the pid to int, so (1 << 32) | ppid signals the parent unless the filter
    # compares all 64 bits.
    attempt = lambda: raw_syscall(_NR["kill"], (1 << 32) | os.getppid(), 0)  # noqa: E731
    assert in_child(attempt, allow_processes=None) == "ok:ok"
    assert in_child(attempt) == f"ok:errno:{errno.EPERM}"


def test_kill_self_with_nonzero_high_word_denied() -> None:
    # The filter matches the full 64-bit value, not just what the kernel will use.
    attempt = lambda: raw_syscall(_NR["kill"], (1 << 32) | os.getpid(), 0)  # noqa: E731
    assert in_child(attempt) == f"ok:errno:{errno.EPERM}"


def test_tgkill_other_process_denied() -> None:
    attempt = lambda: raw_syscall(_NR["tgkill"], os.getppid(), os.getppid(), 0)  # noqa: E731
    assert in_child(attempt) == f"ok:errno:{errno.EPERM}"


def test_sigio_owner_denied() -> None:
    def attempt() -> int:
        r, _w = os.pipe()
        return fcntl.fcntl(r, fcntl.F_SETOWN, os.getppid())

    assert in_child(attempt) == f"errno:{errno.EPERM}"


def test_setsid_denied() -> None:
    assert in_child(os.setsid, allow_processes=None) == "ok:None"  # baseline
    assert in_child(os.setsid) == f"errno:{errno.EPERM}"


def test_unshare_denied() -> None:
    attempt = lambda: "ok" if _libc.unshare(_CLONE_NEWUSER) == 0 else f"errno:{ctypes.get_errno()}"  # noqa: E731
    assert in_child(attempt) == f"ok:errno:{errno.EPERM}"


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x32 ABI exists only on x86_64")
def test_x32_syscalls_denied() -> None:
    assert in_child(lambda: raw_syscall(0x40000000 | _NR["getpid"])) == f"ok:errno:{errno.EPERM}"


def test_fork_allowed_with_allow_processes() -> None:
    def attempt() -> int:
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        _, status = os.waitpid(pid, 0)
        return os.WEXITSTATUS(status)

    assert in_child(attempt, allow_processes=True) == "ok:7"


def test_normal_workload_still_works(tmp_path: Path) -> None:
    def attempt() -> str:
        data = json.loads(json.dumps({"x": [1, 2, 3]}))
        assert re.fullmatch(r"a+b", "aaab")
        assert math.isclose(math.sqrt(2) ** 2, 2.0)
        path = tmp_path / "out.txt"
        path.write_text("hello")
        with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
            m[0:1] = b"j"
        anon = mmap.mmap(-1, 1 << 20)
        anon[-1] = 1
        return f"{sum(data['x'])}:{path.read_text()}"

    assert in_child(attempt) == "ok:6:jello"


def test_install_rejects_nonpositive_pid() -> None:
    flt = SeccompFilter.build(allow_processes=False)
    for pid in (0, -1, 1 << 31):
        with pytest.raises(ValueError):
            flt.install(pid)


def test_unknown_arch_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seccomp.platform, "machine", lambda: "riscv64")
    assert not supported_arch()
    with pytest.raises(SeccompUnsupported):
        SeccompFilter.build(allow_processes=True)
