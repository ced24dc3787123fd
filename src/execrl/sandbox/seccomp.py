"""A precompiled seccomp-BPF deny-list filter for confined candidate processes.

`SeccompFilter.build()` assembles the classic-BPF program once (in the fork-server); `install(pid)` in
each forked child only patches that child's pid into one instruction and makes two prctl calls.

Policy (default ALLOW, so CPython keeps working: threads, mmap, files, pipes, socketpair):
  * wrong audit arch (e.g. i386 `int 0x80` on x86_64) -> kill the process; x32 syscalls -> EPERM;
  * socket() -> EACCES for every family; a fixed list of kernel-attack-surface and escape syscalls
    (namespaces, mounts, ptrace, bpf, io_uring, keyrings, modules, clocks, ...) -> EPERM;
  * kill/tkill/tgkill/rt_sigqueueinfo/rt_tgsigqueueinfo only with first argument == pid (all 64 bits),
    and fcntl(F_SETOWN/F_SETOWN_EX) / ioctl(FIOSETOWN/SIOCSPGRP) -> EPERM, because a SIGIO owner is
    another way to signal an arbitrary process;
  * clone with any CLONE_NEW* namespace flag -> EPERM and clone3 -> ENOSYS, in both modes (clone3's
    flags live in memory that BPF cannot read; glibc then falls back to clone);
  * allow_processes=False: fork/vfork/setsid/setpgid -> EPERM, execve/execveat -> EACCES, clone
    without CLONE_THREAD -> EPERM.

Limits -- what this filter does NOT do:
  * It binds only the calling thread (flags 0, no TSYNC): install before any thread is started.
  * It is a deny list. It does not confine the filesystem (Landlock does), memory/CPU (rlimits), or
    already-open file descriptors: inherited sockets stay usable, as do UNIX socketpairs.
  * BPF sees registers, not memory: path, sockaddr and clone3 arguments cannot be inspected.
  * The pid constant is shared by the installer's descendants (allow_processes=True): they may signal
    the installing process but not themselves. tkill() of a non-main thread is refused (its first
    argument is a tid); pthread_kill/raise use tgkill(pid, tid, ...) and work.
  * Signals the kernel sends on the process's behalf otherwise (e.g. SIGCHLD to its parent on exit,
    PR_SET_PDEATHSIG) are not syscalls with a target argument and are not filtered.
  * Only x86_64 and little-endian aarch64 with a 64-bit interpreter are supported.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

__all__ = ["SeccompFilter", "SeccompUnsupported", "supported_arch"]

# Classic BPF opcodes (linux/bpf_common.h).
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JA = 0x05  # BPF_JMP | BPF_JA
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000

# struct seccomp_data offsets; args are u64 and both supported arches are little-endian.
_OFF_NR = 0
_OFF_ARCH = 4


def _arg_lo(i: int) -> int:
    return 16 + 8 * i


def _arg_hi(i: int) -> int:
    return 20 + 8 * i


_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_CLONE_THREAD = 0x00010000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (NEWTIME is clone3/unshare-only).
_CLONE_NEW_MASK = 0x7E020000
_X32_SYSCALL_BIT = 0x40000000
_F_SETOWN = 8
_F_SETOWN_EX = 15
_FIOSETOWN = 0x8901
_SIOCSPGRP = 0x8902
# Never a live pid (> PID_MAX_LIMIT) and positive, so an unpatched program matches no real target.
_PID_PLACEHOLDER = 0x7FFFFFFF

_ALWAYS_EPERM = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "ptrace", "process_vm_readv",
    "process_vm_writev", "kcmp", "pidfd_getfd", "pidfd_open", "pidfd_send_signal", "bpf", "perf_event_open",
    "keyctl", "add_key", "request_key", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module", "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "sethostname", "setdomainname", "iopl", "ioperm", "quotactl", "name_to_handle_at",
    "open_by_handle_at", "mknod", "mknodat", "fanotify_init", "vhangup", "move_mount", "open_tree",
    "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr",
)  # fmt: skip
_SIGNAL_CALLS = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")
_PROCESS_EPERM = ("fork", "vfork", "setsid", "setpgid")
_PROCESS_EACCES = ("execve", "execveat")

_X86_64_NR = {
    "socket": 41, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "setsid": 112,
    "setpgid": 109, "clone": 56, "clone3": 435, "kill": 62, "tkill": 200, "tgkill": 234,
    "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "unshare": 272, "setns": 308, "mount": 165,
    "umount2": 166, "pivot_root": 155, "chroot": 161, "ptrace": 101, "process_vm_readv": 310,
    "process_vm_writev": 311, "kcmp": 312, "pidfd_getfd": 438, "pidfd_open": 434,
    "pidfd_send_signal": 424, "bpf": 321, "perf_event_open": 298, "keyctl": 250, "add_key": 248,
    "request_key": 249, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "reboot": 169, "kexec_load": 246, "kexec_file_load": 320,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "swapon": 167, "swapoff": 168,
    "acct": 163, "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159,
    "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173, "quotactl": 179,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "mknod": 133, "mknodat": 259,
    "fanotify_init": 300, "vhangup": 153, "move_mount": 429, "open_tree": 428, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "fcntl": 72, "ioctl": 16,
}  # fmt: skip
# asm-generic numbering; aarch64 has no fork, vfork, mknod, iopl or ioperm.
_AARCH64_NR = {
    "socket": 198, "execve": 221, "execveat": 281, "setsid": 157, "setpgid": 154, "clone": 220,
    "clone3": 435, "kill": 129, "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138,
    "rt_tgsigqueueinfo": 240, "unshare": 97, "setns": 268, "mount": 40, "umount2": 39,
    "pivot_root": 41, "chroot": 51, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
    "kcmp": 272, "pidfd_getfd": 438, "pidfd_open": 434, "pidfd_send_signal": 424, "bpf": 280,
    "perf_event_open": 241, "keyctl": 219, "add_key": 217, "request_key": 218, "userfaultfd": 282,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "reboot": 142,
    "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
    "delete_module": 106, "swapon": 224, "swapoff": 225, "acct": 89, "settimeofday": 170,
    "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171, "sethostname": 161,
    "setdomainname": 162, "quotactl": 60, "name_to_handle_at": 264, "open_by_handle_at": 265,
    "mknodat": 33, "fanotify_init": 262, "vhangup": 58, "move_mount": 429, "open_tree": 428,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "fcntl": 25,
    "ioctl": 29,
}  # fmt: skip
# machine -> (AUDIT_ARCH_*, syscall table, has the x32 ABI)
_ARCHES: dict[str, tuple[int, dict[str, int], bool]] = {
    "x86_64": (0xC000003E, _X86_64_NR, True),
    "aarch64": (0xC00000B7, _AARCH64_NR, False),
}


class SeccompUnsupported(RuntimeError):
    """The running architecture/interpreter has no syscall table here."""


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int


def _machine() -> str:
    m = platform.machine()
    return "aarch64" if m == "arm64" else m


def supported_arch() -> bool:
    """True on Linux x86_64/aarch64 with a 64-bit interpreter (the audit arch the filter checks)."""
    return os.name == "posix" and _machine() in _ARCHES and ctypes.sizeof(ctypes.c_void_p) == 8


_Target = str | None  # a label, or None for the next instruction


class _Asm:
    """Forward-only classic-BPF assembler with symbolic jump targets."""

    def __init__(self) -> None:
        self._insns: list[tuple[int, _Target, _Target, int]] = []
        self._labels: dict[str, int] = {}
        self._ja_targets: dict[int, str] = {}

    def here(self) -> int:
        return len(self._insns)

    def label(self, name: str) -> None:
        self._labels[name] = self.here()

    def load(self, offset: int) -> None:
        self._insns.append((_LD_W_ABS, None, None, offset))

    def jump(self, op: int, k: int, jt: _Target, jf: _Target) -> None:
        self._insns.append((op, jt, jf, k))

    def goto(self, target: str) -> None:
        self._insns.append((_JA, None, None, 0))
        self._ja_targets[self.here() - 1] = target

    def ret(self, action: int) -> None:
        self._insns.append((_RET_K, None, None, action))

    def assemble(self) -> ctypes.Array[_SockFilter]:
        prog = (_SockFilter * len(self._insns))()
        for i, (code, jt, jf, k) in enumerate(self._insns):
            if code == _JA:
                k = self._offset(i, self._ja_targets[i], limit=0xFFFFFFFF)
            prog[i].code = code
            prog[i].jt = self._offset(i, jt)
            prog[i].jf = self._offset(i, jf)
            prog[i].k = k
        return prog

    def _offset(self, i: int, target: _Target, limit: int = 0xFF) -> int:
        if target is None:
            return 0
        off = self._labels[target] - (i + 1)
        if not 0 <= off <= limit:  # BPF jumps are forward-only and jt/jf are u8
            raise AssertionError(f"jump {i}->{target} out of range: {off}")
        return off


class SeccompFilter:
    """A prebuilt filter program; `install` is cheap and may be called once per forked child."""

    def __init__(self, prog: ctypes.Array[_SockFilter], pid_index: int, allow_processes: bool) -> None:
        self._prog = prog
        self._pid_index = pid_index
        self.allow_processes = allow_processes
        self._fprog = _SockFprog(len(prog), ctypes.cast(prog, ctypes.POINTER(_SockFilter)))

    def __len__(self) -> int:
        return len(self._prog)

    @classmethod
    def build(cls, *, allow_processes: bool) -> SeccompFilter:
        if not supported_arch():
            raise SeccompUnsupported(f"no seccomp syscall table for {platform.machine()!r}")
        audit_arch, nr, has_x32 = _ARCHES[_machine()]
        a = _Asm()
        eperm, eacces = f"ret{errno.EPERM}", f"ret{errno.EACCES}"

        a.load(_OFF_ARCH)
        a.jump(_JEQ_K, audit_arch, None, "kill")
        a.load(_OFF_NR)
        if has_x32:
            a.jump(_JGE_K, _X32_SYSCALL_BIT, eperm, None)
        # Arg-dependent syscalls first: the kernel's per-nr action cache cannot cover them, so they
        # walk the program on every call. Every other verdict depends only on nr and gets cached.
        a.jump(_JEQ_K, nr["ioctl"], "ioctl", None)
        a.jump(_JEQ_K, nr["fcntl"], "fcntl", None)
        a.jump(_JEQ_K, nr["clone"], "clone", None)
        for name in _SIGNAL_CALLS:
            a.jump(_JEQ_K, nr[name], "signal", None)
        denials: list[tuple[str, str]] = [("socket", eacces), ("clone3", f"ret{errno.ENOSYS}")]
        denials += [(name, eperm) for name in _ALWAYS_EPERM]
        if not allow_processes:
            denials += [(name, eperm) for name in _PROCESS_EPERM]
            denials += [(name, eacces) for name in _PROCESS_EACCES]
        for name, target in denials:
            if name in nr:  # syscalls missing on this arch cannot be called at all
                a.jump(_JEQ_K, nr[name], target, None)
        a.goto("allow")

        a.label("signal")  # allow only if args[0] == pid as a full 64-bit value
        a.load(_arg_lo(0))
        pid_index = a.here()
        a.jump(_JEQ_K, _PID_PLACEHOLDER, None, eperm)
        a.load(_arg_hi(0))
        a.jump(_JEQ_K, 0, "allow", eperm)
        # clone flags are an unsigned long whose defined bits are all in the low word. No namespace
        # flags ever (unshare is denied too); without allow_processes, threads only.
        a.label("clone")
        a.load(_arg_lo(0))
        if allow_processes:
            a.jump(_JSET_K, _CLONE_NEW_MASK, eperm, "allow")
        else:
            a.jump(_JSET_K, _CLONE_NEW_MASK, eperm, None)
            a.jump(_JSET_K, _CLONE_THREAD, "allow", eperm)
        # The kernel reads these commands as unsigned int, so the low word is the whole story.
        a.label("fcntl")
        a.load(_arg_lo(1))
        a.jump(_JEQ_K, _F_SETOWN, eperm, None)
        a.jump(_JEQ_K, _F_SETOWN_EX, eperm, "allow")
        a.label("ioctl")
        a.load(_arg_lo(1))
        a.jump(_JEQ_K, _FIOSETOWN, eperm, None)
        a.jump(_JEQ_K, _SIOCSPGRP, eperm, "allow")

        a.label("allow")
        a.ret(_RET_ALLOW)
        for err in (errno.EACCES, errno.ENOSYS, errno.EPERM):
            a.label(f"ret{err}")
            a.ret(_RET_ERRNO | err)
        a.label("kill")
        a.ret(_RET_KILL_PROCESS)
        return cls(a.assemble(), pid_index, allow_processes)

    def install(self, pid: int) -> None:
        """Set PR_SET_NO_NEW_PRIVS and install the filter in the calling thread.

        `pid` is the caller's own pid as seen in its pid namespace (os.getpid()); it becomes the only
        allowed first argument of the kill family. Raises ValueError for a non-positive pid, OSError
        if the kernel refuses. Irreversible on success.
        """
        if not 0 < pid <= 0x7FFFFFFF:
            raise ValueError(f"invalid pid {pid}")
        self._prog[self._pid_index].k = pid
        if _prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            _raise_errno("prctl(PR_SET_NO_NEW_PRIVS)")
        if _prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(self._fprog), 0, 0) != 0:
            _raise_errno("prctl(PR_SET_SECCOMP)")


def _raise_errno(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")
