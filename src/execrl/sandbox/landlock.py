"""Landlock filesystem/network/scope confinement for candidate processes (ctypes, no dependencies).

`LandlockPolicy` opens O_PATH descriptors for its paths once (in the fork-server); `restrict()` in a
forked child builds a ruleset from them and applies it to the calling thread, in a handful of syscalls.

What a restricted process gets, by ABI (all rights the ABI knows are handled, i.e. denied by default):
  * ABI 1-3: read/execute beneath read paths, everything beneath write paths, nothing elsewhere
    (REFER from ABI 2, TRUNCATE from ABI 3); ABI 5 adds IOCTL_DEV on devices opened afterwards.
  * ABI >= 4: every TCP bind() and connect() is refused (no network rule is ever added).
  * ABI >= 6: signals to processes outside the Landlock domain and connecting to abstract UNIX
    sockets created outside it are refused.

Limits -- what Landlock does NOT cover here:
  * File descriptors opened before restrict() (pipes, inherited sockets, these O_PATH fds) keep working.
  * Metadata: stat/access/readlink/chdir anywhere, and chmod/chown/utimes/setxattr on files
    outside the write paths are not access rights Landlock controls.
  * UDP, raw sockets and connecting to existing pathname UNIX sockets are not covered (the seccomp
    layer refuses socket() instead); below ABI 4/6 there is no network/scope confinement at all.
  * It binds only the calling thread: call restrict() before starting threads.
  * Missing paths are skipped (fail closed: they are simply not allowed).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
from collections.abc import Sequence

__all__ = ["LandlockPolicy", "abi_version"]

# Same numbers on every Linux architecture except alpha (unified syscall table since 5.1).
_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5
_NET_BIND_TCP = 1 << 0  # ABI 4
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
_SCOPE_SIGNAL = 1 << 1

# Rights that may be granted on a non-directory; anything else makes landlock_add_rule fail (EINVAL).
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_READ_RIGHTS = _FS_READ_FILE | _FS_READ_DIR | _FS_EXECUTE


def _fs_rights(abi: int) -> int:
    """All filesystem rights known to `abi`: bits 0-12 at ABI 1, REFER at 2, TRUNCATE at 3, IOCTL_DEV at 5."""
    top = {1: 13, 2: 14, 3: 15, 4: 15}.get(abi, 16)
    return (1 << top) - 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int

_abi: int | None = None


def _sys(nr: int, *args: object) -> int:
    """syscall(2) with ints widened to long (the libc wrapper is variadic); -1 means see errno."""
    return int(_syscall(ctypes.c_long(nr), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args)))


def abi_version() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable for any reason
    (not compiled in, disabled at boot, or the syscall refused by a container's seccomp profile)."""
    global _abi
    if _abi is None:
        if not sys.platform.startswith("linux"):
            _abi = 0
        else:
            _abi = max(_sys(_SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION), 0)
    return _abi


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _open_path(path: str) -> tuple[int, bool] | None:
    """An O_PATH fd and whether it is a directory; None if the path does not exist."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return fd, stat.S_ISDIR(os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise


class LandlockPolicy:
    """Read-only and read-write path sets, opened once and applied per process by `restrict()`.

    The O_PATH fds are inherited by forked children (a child may call `close()` after `restrict()`).
    """

    def __init__(self, read_paths: Sequence[str], write_paths: Sequence[str] = ()) -> None:
        self._read: list[tuple[int, bool]] = []
        self._write: list[tuple[int, bool]] = []
        try:
            for paths, into in ((read_paths, self._read), (write_paths, self._write)):
                for path in paths:
                    opened = _open_path(path)
                    if opened is not None:
                        into.append(opened)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the held O_PATH fds; the policy cannot be applied afterwards."""
        for fd, _ in self._read + self._write:
            os.close(fd)
        self._read.clear()
        self._write.clear()

    def restrict(self, extra_write: Sequence[str] = ()) -> int:
        """Confine the calling thread (and its future children) to this policy plus `extra_write`.

        Sets PR_SET_NO_NEW_PRIVS. Returns the ABI in force; raises OSError (EOPNOTSUPP when Landlock
        is unavailable). Irreversible on success; a failure before the last step leaves the process
        unrestricted, at worst with no_new_privs set.
        """
        abi = abi_version()
        if abi < 1:
            raise OSError(errno.EOPNOTSUPP, "Landlock is not available")
        fs = _fs_rights(abi)
        attr = _RulesetAttr(fs, 0, 0)
        size = 8
        if abi >= 4:
            attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
            size = 16
        if abi >= 6:
            attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
            size = 24
        ruleset = _check(_sys(_SYS_CREATE_RULESET, ctypes.byref(attr), size, 0), "landlock_create_ruleset")
        extra: list[tuple[int, bool]] = []
        try:
            for path in extra_write:
                opened = _open_path(path)
                if opened is not None:
                    extra.append(opened)
            rule = _PathBeneathAttr()
            for fd, is_dir in self._read:
                _add_rule(ruleset, rule, fd, _READ_RIGHTS & fs, is_dir)
            for fd, is_dir in self._write + extra:
                _add_rule(ruleset, rule, fd, fs, is_dir)
            _check(_prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
            _check(_sys(_SYS_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
        finally:
            os.close(ruleset)
            for fd, _ in extra:
                os.close(fd)
        return abi


def _add_rule(ruleset: int, rule: _PathBeneathAttr, fd: int, access: int, is_dir: bool) -> None:
    rule.allowed_access = access if is_dir else access & _FILE_RIGHTS
    rule.parent_fd = fd
    _check(_sys(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0), "landlock_add_rule")
