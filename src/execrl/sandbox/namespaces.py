"""Linux process confinement primitives: namespaces, capabilities, prctl flags, private tmpfs.

Thin ctypes wrappers, each one syscall or a short fixed sequence. They raise OSError with the
kernel's errno; callers (the fork-server and the probe) decide what to do when a layer is missing.
Linux only. Nothing here reads or writes paths outside /proc/self and the given mount point.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38

_CAP_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def enter_user_namespace(flags: int = 0) -> None:
    """Unshare a user namespace (plus `flags`) and become root inside it.

    Inside, uid 0 maps to our own outside uid: mapping to `nobody` instead would lock the sandbox out
    of a Python installed under a private home directory (pyenv under /root). Capabilities gained
    inside are confined to the namespace, and the candidate drops them all anyway."""
    uid, gid = os.getuid(), os.getgid()
    unshare(CLONE_NEWUSER | flags)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1\n")
    _write("/proc/self/gid_map", f"0 {gid} 1\n")


def make_mounts_private() -> None:
    """In a fresh mount namespace: stop mount events propagating to or from the host."""
    _check(
        _libc.mount(None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None), "mount --make-rprivate /"
    )


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def make_root_readonly() -> None:
    """Every mount of this namespace becomes read-only (mount_setattr, AT_RECURSIVE): no file
    outside a tmpfs mounted afterwards can be written, renamed, chmod-ed or touched."""
    attr = _MountAttr(1, 0, 0, 0)  # MOUNT_ATTR_RDONLY
    ret = _libc.syscall(
        442, -100, b"/", 0x8000, ctypes.byref(attr), ctypes.sizeof(attr)
    )  # AT_FDCWD, AT_RECURSIVE
    _check(ret, "mount_setattr(/, RDONLY, AT_RECURSIVE)")


def mount_tmpfs(path: str, size_mb: int) -> None:
    opts = f"size={size_mb}m,mode=0755".encode()
    _check(
        _libc.mount(b"tmpfs", path.encode(), b"tmpfs", ctypes.c_ulong(MS_NOSUID | MS_NODEV), opts),
        f"mount tmpfs on {path}",
    )


def unmount(path: str) -> None:
    _check(_libc.umount2(path.encode(), 2), f"umount {path}")  # MNT_DETACH


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_dumpable(flag: bool) -> None:
    """Non-dumpable processes cannot be ptraced or have /proc/PID/{mem,fd} opened by peers."""
    prctl(PR_SET_DUMPABLE, int(flag))


def set_name(name: bytes) -> None:
    """The process name shown in /proc/<pid>/comm (PR_SET_NAME, at most 15 bytes)."""
    buf = ctypes.create_string_buffer(name[:15])
    _check(_libc.prctl(15, buf, 0, 0, 0), "prctl(PR_SET_NAME)")


def set_parent_death_signal(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_capabilities() -> None:
    """Clear the effective, permitted and inheritable capability sets of the calling thread."""
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")
