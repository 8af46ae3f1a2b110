"""Image references, chain ids, and unpacking hostile layer tars safely."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from cshell.engine.image import archive
from cshell.engine.image.store import chain_ids, normalize_ref, sha256
from cshell.errors import RuntimeFailure, UsageError

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking chroots, mknods and sets trusted.* xattrs: needs root")


# -- references and chain ids -------------------------------------------------------------------


@pytest.mark.parametrize("ref, normal", [
    ("busybox", "busybox:latest"),
    ("busybox:1.36", "busybox:1.36"),
    ("library/busybox", "library/busybox:latest"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("localhost:5000/app:v2", "localhost:5000/app:v2"),
    ("app@sha256:" + "a" * 64, "app@sha256:" + "a" * 64),
])
def test_normalize_ref(ref: str, normal: str) -> None:
    assert normalize_ref(ref) == normal


@pytest.mark.parametrize("ref", ["", " busybox", "busybox ", "bad image", "a\tb"])
def test_normalize_ref_rejects(ref: str) -> None:
    with pytest.raises(UsageError):
        normalize_ref(ref)


def test_chain_ids() -> None:
    a, b, c = (sha256(x) for x in (b"a", b"b", b"c"))
    assert chain_ids([]) == []
    assert chain_ids([a]) == [a]
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert chain_ids([a, b, c]) == [a, ab, abc]
    assert chain_ids([b, a])[1] != ab  # order matters: the same layers stacked differently


# -- tar helpers ---------------------------------------------------------------------------------


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644,
           linkname: str = "", major: int = 0, minor: int = 0) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.size = kind, mode, linkname, len(data)
    info.devmajor, info.devminor = major, minor
    return info, data


def make_tar(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture
def unpack(tmp_path: Path):  # noqa: ANN201
    """unpack(*members) -> the diff directory (tmp_path/box/diffN); the tar is tmp_path/layer.tar."""
    box = tmp_path / "box"
    box.mkdir()

    count = iter(range(100))

    def go(*members: tuple[tarfile.TarInfo, bytes]) -> Path:
        blob = make_tar(tmp_path / "layer.tar", *members)
        dest = box / f"diff{next(count)}"  # a fresh, empty directory each time, as the store does
        archive.unpack_layer(blob, dest)
        return dest
    return go


def outside(tmp_path: Path) -> set[str]:
    """Everything in tmp_path except the tar itself and the layer's own directory."""
    return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
            if p.name != "layer.tar" and not str(p.relative_to(tmp_path)).startswith("box/diff")}


# -- ordinary layers --------------------------------------------------------------------------------


@needs_root
def test_unpack_files_dirs_links(unpack, tmp_path: Path) -> None:  # noqa: ANN001
    diff = unpack(
        member("bin", tarfile.DIRTYPE, mode=0o755),
        member("bin/tool", data=b"#!/bin/sh\n", mode=0o755),
        member("bin/alias", tarfile.SYMTYPE, linkname="tool"),
        member("bin/hard", tarfile.LNKTYPE, linkname="bin/tool", mode=0o755),  # as tar records it
        member("etc/conf", data=b"k=v\n", mode=0o600),  # parent not listed first
        member("run/fifo", tarfile.FIFOTYPE),
        member("etc/conf", data=b"k=2\n", mode=0o640),  # a later entry replaces an earlier one
    )
    assert (diff / "bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE((diff / "bin/tool").stat().st_mode) == 0o755
    assert os.readlink(diff / "bin/alias") == "tool"
    assert (diff / "bin/hard").stat().st_ino == (diff / "bin/tool").stat().st_ino
    assert (diff / "etc/conf").read_bytes() == b"k=2\n"
    assert stat.S_IMODE((diff / "etc/conf").stat().st_mode) == 0o640
    assert stat.S_ISFIFO((diff / "run/fifo").lstat().st_mode)
    assert outside(tmp_path) == {"box"}


@needs_root
def test_tar_directory_round_trip_is_deterministic(unpack, tmp_path: Path) -> None:  # noqa: ANN001
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d/f").write_text("x")
    (src / "l").symlink_to("d/f")
    first, second = archive.tar_directory(src), archive.tar_directory(src)
    assert first == second
    blob = tmp_path / "rt.tar"
    blob.write_bytes(first)
    archive.unpack_layer(blob, tmp_path / "rt" / "diff")
    assert (tmp_path / "rt/diff/d/f").read_text() == "x" and os.readlink(tmp_path / "rt/diff/l") == "d/f"


# -- hostile layers ------------------------------------------------------------------------------------


@needs_root
def test_dot_dot_is_refused(unpack, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(RuntimeFailure) as e:
        unpack(member("ok", data=b"1"), member("../escaped", data=b"pwned"))
    assert "climbs out" in e.value.message and e.value.hint
    with pytest.raises(RuntimeFailure):
        unpack(member("a/../../escaped2", data=b"pwned"))
    assert "escaped" not in " ".join(outside(tmp_path))


@needs_root
def test_absolute_names_stay_inside(unpack, tmp_path: Path) -> None:  # noqa: ANN001
    target = tmp_path / "abs-target"
    diff = unpack(member(str(target), data=b"inside"), member("/etc/cshell-test-file", data=b"x"))
    assert not target.exists() and not Path("/etc/cshell-test-file").exists()
    assert (diff / str(target).lstrip("/")).read_bytes() == b"inside"
    assert (diff / "etc/cshell-test-file").read_bytes() == b"x"


@needs_root
def test_hardlink_outside_is_refused(unpack, tmp_path: Path) -> None:  # noqa: ANN001
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    with pytest.raises(RuntimeFailure):
        unpack(member("stolen", tarfile.LNKTYPE, linkname="../secret"))
    # An absolute link target is resolved inside the layer (where it does not exist), never on the host.
    with pytest.raises(RuntimeFailure):
        unpack(member("stolen", tarfile.LNKTYPE, linkname=str(secret)))
    assert secret.stat().st_nlink == 1 and secret.read_text() == "host secret"


@needs_root
def test_write_through_symlink_stays_inside(unpack, tmp_path: Path) -> None:  # noqa: ANN001
    victim = tmp_path / "victim"
    victim.mkdir()
    try:
        diff = unpack(member("link", tarfile.SYMTYPE, linkname=str(victim)),
                      member("link/pwned", data=b"pwned"))
    except RuntimeFailure:
        diff = None  # refusing is fine too; what matters is the host
    assert list(victim.iterdir()) == []
    if diff is not None:
        assert os.readlink(diff / "link") == str(victim)
    # Followed in the unpacker's chroot, an absolute or climbing link lands in the layer itself.
    diff = unpack(member("inner", tarfile.DIRTYPE, mode=0o755),
                  member("abs", tarfile.SYMTYPE, linkname="/inner"),
                  member("up", tarfile.SYMTYPE, linkname="../../../../inner"),
                  member("abs/a", data=b"a"), member("up/b", data=b"b"))
    assert sorted(p.name for p in (diff / "inner").iterdir()) == ["a", "b"]
    assert list(victim.iterdir()) == [] and outside(tmp_path) == {"box", "victim"}


@needs_root
def test_whiteouts_become_overlay_whiteouts(unpack) -> None:  # noqa: ANN001
    diff = unpack(
        member("etc", tarfile.DIRTYPE, mode=0o755),
        member("etc/.wh.passwd"),
        member(".wh.tmp"),
        member("var/cache", tarfile.DIRTYPE, mode=0o755),
        member("var/cache/.wh..wh..opq"),
        member("var/cache/new", data=b"n"),
    )
    for hidden in (diff / "etc/passwd", diff / "tmp"):
        st = hidden.lstat()
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0), hidden
    assert not (diff / "etc/.wh.passwd").exists() and not (diff / ".wh.tmp").exists()
    assert os.getxattr(diff / "var/cache", "trusted.overlay.opaque") == b"y"
    assert not (diff / "var/cache/.wh..wh..opq").exists()
    assert (diff / "var/cache/new").read_bytes() == b"n"


@needs_root
def test_invalid_whiteout_is_refused(unpack) -> None:  # noqa: ANN001
    with pytest.raises(RuntimeFailure):
        unpack(member("etc/.wh..wh.x"))


@needs_root
def test_device_nodes_are_skipped(unpack) -> None:  # noqa: ANN001
    diff = unpack(
        member("dev", tarfile.DIRTYPE, mode=0o755),
        member("dev/sda", tarfile.BLKTYPE, major=8, minor=0, mode=0o666),
        member("dev/mem", tarfile.CHRTYPE, major=1, minor=1, mode=0o666),
        member("dev/ok", data=b"plain file"),
    )
    assert sorted(p.name for p in (diff / "dev").iterdir()) == ["ok"]


@needs_root
def test_damaged_tar_is_an_error(tmp_path: Path) -> None:
    blob = tmp_path / "junk.tar"
    blob.write_bytes(b"this is not a tar archive at all" * 40)
    with pytest.raises(RuntimeFailure) as e:
        archive.unpack_layer(blob, tmp_path / "x" / "diff")
    assert "cannot unpack layer" in e.value.message


@needs_root
def test_setuid_bits_are_kept_as_docker_keeps_them(unpack) -> None:  # noqa: ANN001
    """The stated policy (help load): setuid/setgid survive, like su and passwd in real images."""
    diff = unpack(member("bin/su", data=b"#!/bin/sh\n", mode=0o4755), member("bin/wall", data=b"x", mode=0o2755))
    assert (diff / "bin/su").stat().st_mode & 0o7777 == 0o4755
    assert (diff / "bin/wall").stat().st_mode & 0o7777 == 0o2755


@needs_root
def test_oversized_headers_fail_cleanly(tmp_path: Path) -> None:
    """A PAX header promising gigabytes, or a 10,000-character name: an error, nothing outside."""
    huge = tarfile.TarInfo("big")
    huge.size = 1 << 40  # a terabyte announced, a few bytes given
    blob = tmp_path / "huge.tar"
    blob.write_bytes(huge.tobuf(tarfile.GNU_FORMAT) + b"x" * 512)
    with pytest.raises(RuntimeFailure):
        archive.unpack_layer(blob, tmp_path / "a" / "diff")

    long_name = make_tar(tmp_path / "long.tar", member("d/" + "n" * 10_000, data=b"x"))
    with pytest.raises(RuntimeFailure) as e:
        archive.unpack_layer(long_name, tmp_path / "b" / "diff")
    assert "cannot unpack layer" in e.value.message
    assert {p.name for p in tmp_path.iterdir()} <= {"huge.tar", "long.tar", "a", "b"}
