"""Fork-server housekeeping that the sandbox tests cannot reach on a kernel with mount namespaces."""

from __future__ import annotations

import os
from pathlib import Path

from execrl.sandbox.zygote import _empty


def test_empty_removes_deep_and_unreadable_trees(tmp_path: Path) -> None:
    """A 3000-deep tree and a chmod-0 directory are removed without recursion or long paths."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for _ in range(3000):
            os.mkdir("d")
            os.chdir("d")
    finally:
        os.chdir(cwd)
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "file").write_text("x")
    locked.chmod(0)
    (tmp_path / "link").symlink_to("/etc")
    _empty(str(tmp_path))
    assert os.listdir(tmp_path) == []
    assert os.path.isdir("/etc")
