"""The rw-layer walk behind commit and layer diff: descriptor-based, never following links."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from cshell.engine.image import diff
from cshell.errors import RuntimeFailure


def test_walk_is_ordered_and_does_not_follow_symlinks(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "f").write_text("x")
    (tmp_path / "a").symlink_to("/etc")  # on the host this would be the host's /etc
    walked = [(w.entry.path, w.entry.kind) for w in diff.walk_upper(tmp_path)]
    assert walked == [("a", "file"), ("b", "file"), ("b/f", "file")]


def test_whiteouts_and_opaque_dirs_become_oci_names(tmp_path: Path) -> None:
    os.mknod(tmp_path / "gone", 0o600 | 0o020000, os.makedev(0, 0))
    (tmp_path / "fresh").mkdir()
    os.setxattr(tmp_path / "fresh", "trusted.overlay.opaque", b"y")
    buf = io.BytesIO()
    diff.write_layer_tar(tmp_path, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        assert sorted(tar.getnames()) == [".wh.gone", "fresh", "fresh/.wh..wh..opq"]


def test_a_too_deep_tree_is_an_error_not_a_crash(tmp_path: Path) -> None:
    deep = tmp_path
    for _ in range(diff.MAX_DEPTH + 5):
        deep = deep / "d"
        deep.mkdir()
    with pytest.raises(RuntimeFailure):
        list(diff.walk_upper(tmp_path))


def test_exists_in_does_not_follow_a_symlinked_parent(tmp_path: Path) -> None:
    (tmp_path / "etc").symlink_to("/etc")
    assert not diff.exists_in(tmp_path, "etc/passwd")  # would be the host's /etc/passwd
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").touch()
    assert diff.exists_in(tmp_path, "real/f")
