"""The Landlock layer, tested adversarially: each test forks, restricts the child only, attempts one
thing and reports the outcome over a pipe.
Signals aimed at other processes are always signal 0."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from execrl.sandbox.landlock import LandlockPolicy, abi_version

pytestmark = pytest.mark.skipif(abi_version() < 1, reason="Landlock is not available on this kernel")

DENIED = f"errno:{errno.EACCES}"


def in_child(
    fn: Callable[[], object],
    read: Sequence[Path] = (),
    write: Sequence[Path] = (),
    extra_write: Sequence[Path] = (),
) -> str:
    """Run fn in a forked child after restrict(); return its outcome as text."""
    policy = LandlockPolicy([str(p) for p in read], [str(p) for p in write])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # never return into pytest from here
        try:
            os.close(r)
            try:
                policy.restrict([str(p) for p in extra_write])
                out = f"ok:{fn()}"
            except OSError as e:
                out = f"errno:{e.errno}"
            except BaseException as e:
                out = f"exc:{type(e).__name__}:{e}"
            os.write(w, out.encode()[:4096])
        finally:
            os._exit(0)
    os.close(w)
    policy.close()
    with os.fdopen(r, "rb") as f:
        data = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child died: {status:#x}"
    return data


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("ro", "rw", "outside")}
    for p in paths.values():
        p.mkdir()
        (p / "file.txt").write_text(p.name)
    paths["secret"] = tmp_path / "secret.txt"
    paths["secret"].write_text("secret")
    return paths


def test_write_inside_write_dir_allowed(tree: dict[str, Path]) -> None:
    target = tree["rw"] / "sub" / "new.txt"

    def attempt() -> str:
        target.parent.mkdir()
        target.write_text("x")
        (tree["rw"] / "file.txt").unlink()
        return target.read_text()

    assert in_child(attempt, read=[tree["ro"]], write=[tree["rw"]]) == "ok:x"


def test_write_outside_write_dir_denied(tree: dict[str, Path]) -> None:
    attempt = lambda: (tree["outside"] / "new.txt").write_text("x")  # noqa: E731
    assert in_child(attempt, read=[tree["ro"]], write=[tree["rw"]]) == DENIED
    assert not (tree["outside"] / "new.txt").exists()


def test_write_into_read_only_path_denied(tree: dict[str, Path]) -> None:
    attempt = lambda: open(tree["ro"] / "file.txt", "a").close()  # noqa: E731
    assert in_child(attempt, read=[tree["ro"]], write=[tree["rw"]]) == DENIED


@pytest.mark.skipif(abi_version() < 3, reason="truncation is a Landlock right from ABI 3")
def test_truncate_read_only_file_denied(tree: dict[str, Path]) -> None:
    attempt = lambda: os.truncate(tree["ro"] / "file.txt", 0)  # noqa: E731
    assert in_child(attempt, read=[tree["ro"]]) == DENIED
    assert (tree["ro"] / "file.txt").read_text() == "ro"


def test_read_allowed_path(tree: dict[str, Path]) -> None:
    def attempt() -> str:
        return ",".join(os.listdir(tree["ro"])) + ":" + (tree["ro"] / "file.txt").read_text()

    assert in_child(attempt, read=[tree["ro"]]) == "ok:file.txt:ro"


def test_read_unlisted_path_denied(tree: dict[str, Path]) -> None:
    attempt = lambda: tree["secret"].read_text()  # noqa: E731
    assert in_child(attempt, read=[tree["ro"]], write=[tree["rw"]]) == DENIED


def test_unlink_outside_denied(tree: dict[str, Path]) -> None:
    attempt = lambda: os.unlink(tree["outside"] / "file.txt")  # noqa: E731
    assert in_child(attempt, read=[tree["ro"], tree["outside"]], write=[tree["rw"]]) == DENIED
    assert (tree["outside"] / "file.txt").exists()


def test_file_rules_get_only_file_rights(tree: dict[str, Path]) -> None:
    # A non-directory rule with directory rights would make landlock_add_rule fail with EINVAL.
    def attempt() -> str:
        tree["secret"].write_text("overwritten")
        try:
            (tree["rw"] / "file.txt").write_text("x")
        except PermissionError:
            return "sibling denied"
        return "sibling written"

    assert in_child(attempt, read=[tree["ro"] / "file.txt"], write=[tree["secret"]]) == "ok:sibling denied"
    assert tree["secret"].read_text() == "overwritten"


def test_extra_write_opened_per_call(tree: dict[str, Path]) -> None:
    attempt = lambda: (tree["outside"] / "new.txt").write_text("x")  # noqa: E731
    assert in_child(attempt, read=[tree["ro"]], extra_write=[tree["outside"]]) == "ok:1"


def test_missing_paths_are_skipped(tree: dict[str, Path]) -> None:
    missing = tree["ro"] / "does-not-exist"
    attempt = lambda: tree["secret"].read_text()  # noqa: E731
    assert in_child(attempt, read=[missing], write=[missing], extra_write=[missing]) == DENIED


@pytest.mark.skipif(abi_version() < 4, reason="TCP restrictions need Landlock ABI 4")
def test_tcp_connect_denied() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def attempt() -> str:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                return "connected"

        assert in_child(attempt) == DENIED


@pytest.mark.skipif(abi_version() < 4, reason="TCP restrictions need Landlock ABI 4")
def test_tcp_bind_denied() -> None:
    def attempt() -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return "bound"

    assert in_child(attempt) == DENIED


@pytest.mark.skipif(abi_version() < 6, reason="signal scoping needs Landlock ABI 6")
def test_signal_parent_denied() -> None:
    assert in_child(lambda: os.kill(os.getppid(), 0)) == f"errno:{errno.EPERM}"
    assert in_child(lambda: os.kill(os.getpid(), 0)) == "ok:None"


def test_restrict_returns_abi_in_force(tree: dict[str, Path]) -> None:
    policy = LandlockPolicy([str(tree["ro"])])
    pid = os.fork()
    if pid == 0:  # the ABI travels back as the exit code
        code = 255
        try:
            code = policy.restrict()
        finally:
            os._exit(code)
    policy.close()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == abi_version() >= 1
