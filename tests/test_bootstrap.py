"""image bootstrap: busybox from busybox-static; debian:bookworm and python:3.11-slim from
Debian packages (mmdebstrap), cached in /var/cache/cshell/bootstrap after the first build.

The Debian images are marked slow: the first run on a machine builds them (about a
minute in all); every later run, like a later state root, only copies the cached tar.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cshell, run_cshell

from cshell.engine import trace
from cshell.engine.image import archive, bootstrap, mmdebstrap

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chroot, mknod and security.* xattrs need root")
CAP = b"\x01\x00\x00\x02\x80\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"  # setuid+net_raw
MMDEBSTRAP_TIMEOUT = 900


def ok(proc) -> str:  # noqa: ANN001 - CompletedProcess
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def image_config(cshell: Cshell, ref: str) -> dict:
    return json.loads(ok(cshell("inspect", "-f", "{{json .Config}}", ref)))


@pytest.fixture
def other_root() -> Iterator[Path]:
    """A second fresh state root: what the next test (or student) starts from."""
    path = Path(tempfile.mkdtemp(prefix="cshell-test-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- the layer tar made from mmdebstrap's tar ---------------------------------------------------


def _member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644,
            uid: int = 0, gid: int = 0, linkname: str = "", pax: dict | None = None) -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.linkname = kind, mode, uid, gid, linkname
    info.size, info.mtime, info.uname = len(data), 1700000000.5, "root"
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3
    info.pax_headers = pax or {}
    return info, data


def mmdebstrap_like_tar(path: Path) -> Path:
    """What mmdebstrap writes: /dev first (with device nodes), then ./ sorted by name."""
    cap = CAP.decode("utf-8", "surrogateescape")
    members = [
        _member("./dev/", tarfile.DIRTYPE, mode=0o755),
        _member("./dev/null", tarfile.CHRTYPE, mode=0o666),
        _member("./dev/fd", tarfile.SYMTYPE, linkname="/proc/self/fd"),
        _member("./dev/pts/", tarfile.DIRTYPE, mode=0o755),
        _member("./", tarfile.DIRTYPE, mode=0o755),
        _member("./bin", tarfile.SYMTYPE, linkname="usr/bin"),
        _member("./etc/", tarfile.DIRTYPE, mode=0o755),
        _member("./etc/hostname", data=b"buildhost\n"),
        _member("./etc/resolv.conf", data=b"nameserver 10.0.0.1\n"),
        _member("./etc/shadow", data=b"root:*:1::::::\n", mode=0o640, gid=42),
        _member("./usr/", tarfile.DIRTYPE, mode=0o755),
        _member("./usr/bin/", tarfile.DIRTYPE, mode=0o755),
        _member("./usr/bin/perl", data=b"#!perl\n", mode=0o755),
        _member("./usr/bin/perl5.36.0", tarfile.LNKTYPE, linkname="./usr/bin/perl", mode=0o755),
        _member("./usr/bin/ping", data=b"ELF", mode=0o755,
                pax={"SCHILY.xattr.security.capability": cap, "SCHILY.xattr.user.junk": "x"}),
        _member("./usr/bin/su", data=b"ELF", mode=0o4755),
        _member("./var/", tarfile.DIRTYPE, mode=0o755),
        _member("./var/mail/", tarfile.DIRTYPE, mode=0o2775, gid=8),
    ]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def test_pack_layer_cleans_mmdebstrap_tar(tmp_path: Path) -> None:
    src = mmdebstrap_like_tar(tmp_path / "rootfs.tar")
    digest, size = bootstrap.pack_layer(src, tmp_path / "layer.tar", "packing")
    data = (tmp_path / "layer.tar").read_bytes()
    assert size == len(data) and digest == "sha256:" + hashlib.sha256(data).hexdigest()
    with tarfile.open(tmp_path / "layer.tar") as tar:
        members = {m.name: m for m in tar}
        names = list(members)
        assert names == ["bin", "dev", "etc", "etc/shadow", "usr", "usr/bin", "usr/bin/perl",
                         "usr/bin/perl5.36.0", "usr/bin/ping", "usr/bin/su", "var", "var/mail"]
        assert members["dev"].isdir()  # kept, empty: the runtime mounts its own /dev
        assert members["etc/shadow"].gid == 42 and members["etc/shadow"].mode == 0o640
        assert members["usr/bin/su"].mode == 0o4755 and members["var/mail"].mode == 0o2775
        assert members["usr/bin/perl5.36.0"].islnk() and members["usr/bin/perl5.36.0"].linkname == "usr/bin/perl"
        assert members["bin"].issym() and members["bin"].linkname == "usr/bin"
        ping = members["usr/bin/ping"]
        assert ping.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == CAP
        assert not any("user.junk" in key for key in ping.pax_headers)
        assert all(m.uname == "" and m.mtime == 1700000000 for m in members.values())
        assert tar.extractfile("usr/bin/perl").read() == b"#!perl\n"
    again = bootstrap.pack_layer(src, tmp_path / "layer2.tar", "packing")
    assert again == (digest, size)  # deterministic: the same rootfs, the same diff id


@needs_root
def test_unpacked_layer_keeps_capabilities_and_modes(tmp_path: Path) -> None:
    src = mmdebstrap_like_tar(tmp_path / "rootfs.tar")
    bootstrap.pack_layer(src, tmp_path / "layer.tar", "packing")
    diff = tmp_path / "diff"
    archive.unpack_layer(tmp_path / "layer.tar", diff)
    assert os.getxattr(diff / "usr/bin/ping", "security.capability") == CAP
    assert (diff / "usr/bin/su").stat().st_mode & 0o7777 == 0o4755
    assert (diff / "etc/shadow").stat().st_gid == 42
    assert (diff / "usr/bin/perl").stat().st_ino == (diff / "usr/bin/perl5.36.0").stat().st_ino
    assert list((diff / "dev").iterdir()) == []
    assert not (diff / "etc/resolv.conf").exists()


# -- mmdebstrap's mirror and progress --------------------------------------------------------------


def test_mirror_lines_from_the_hosts_apt_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("# nothing here\ndeb [arch=amd64] http://old.example/debian bullseye main\n")
    (tmp_path / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n")
    (tmp_path / "sources.list.d/off.sources").write_text(
        "Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n")
    (tmp_path / "sources.list.d/extra.list.disabled").write_text("deb http://nope.example bookworm main\n")
    monkeypatch.setattr(mmdebstrap, "APT_SOURCES", tmp_path)
    assert mmdebstrap.mirror_lines("bookworm") == [
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
        "deb http://mirror.example/debian-security bookworm-security main",
    ]
    assert mmdebstrap.mirror_lines("trixie") == []  # none for it: mmdebstrap's default mirror


def test_progress_parsed_from_mmdebstrap_terminal_output() -> None:
    events: list[tuple[str, str]] = []
    trace.set_listener(lambda kind, text: events.append((kind, text)))
    trace.set_explain(True)
    try:
        parser = mmdebstrap._Parser("debian:bookworm")
        parser.feed(b"\x1b[32mI: running apt-get update...\x1b[0m\n")
        parser.feed(b"\x1b[2Kdownloading:  52.45 [=====>    ]\r\x1b[2Kdownl")  # a bar split across reads
        parser.feed(b"oading: 100.00 [==========]\r\x1b[2Kdone\n")
        parser.feed(b"\x1b[31mE: cannot reach the mirror\x1b[0m\n")
    finally:
        trace.set_explain(False)
        trace.set_listener(None)
    assert events == [
        ("step", "mmdebstrap: running apt-get update..."),
        ("progress", "debian:bookworm: downloading\t52.45\t100"),
        ("progress", "debian:bookworm: downloading\t99.9\t100"),  # 100 only once, when done
        ("progress", "debian:bookworm: downloading\t100\t100"),
        ("step", "mmdebstrap: cannot reach the mirror"),
    ]
    assert parser.errors == ["cannot reach the mirror"]


def test_recipes_and_references() -> None:
    assert bootstrap.recipe_for("busybox").name == "busybox:latest"
    assert bootstrap.recipe_for("python:3.11").name == "python:3.11-slim"
    assert bootstrap.recipe_for("debian:12").name == "debian:bookworm"
    assert not bootstrap.can_bootstrap("debian:sid") and not bootstrap.can_bootstrap("Bad Name")
    debian, python = bootstrap.RECIPES["debian:bookworm"], bootstrap.RECIPES["python:3.11-slim"]
    assert debian.key([]) != debian.key(["deb http://mirror.example/debian bookworm main"])
    assert debian.key([]) != python.key([])


# -- busybox (fast) -----------------------------------------------------------------------------


def test_bootstrap_busybox(cshell: Cshell) -> None:
    out = ok(cshell("image", "bootstrap", "busybox"))
    assert out.startswith("Built busybox:latest ")
    labels = image_config(cshell, "busybox")["Labels"]
    assert labels["org.cshell.source"] == "bootstrap"
    image_id = ok(cshell("images", "-q")).split()
    assert len(image_id) == 1

    again = ok(cshell("image", "bootstrap", "busybox"))
    assert "already here" in again and image_id[0] in again
    assert "Built busybox:latest" in ok(cshell("image", "bootstrap", "--force", "busybox"))


def test_bootstrap_unknown_name_is_one_line(cshell: Cshell) -> None:
    proc = cshell("image", "bootstrap", "alpine:3.19")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "error: no local recipe for alpine:3.19"
    assert lines[1].startswith("hint:") and "python:3.11-slim" in lines[1]


@pytest.mark.kernel
def test_missing_busybox_is_built_on_first_use(cshell: Cshell) -> None:
    proc = cshell("run", "--rm", "busybox", "echo", "hi")
    assert ok(proc) == "hi\n"
    notes = [line for line in proc.stderr.splitlines() if "not here yet" in line]
    assert len(notes) == 1 and "busybox-static" in notes[0]


# -- Debian stand-ins (slow the first time on a machine, cached after) ---------------------------------


def check_second_root_uses_cache(other_root: Path, ref: str) -> None:
    started = time.monotonic()
    out = ok(run_cshell(other_root, "image", "bootstrap", ref, timeout=MMDEBSTRAP_TIMEOUT))
    took = time.monotonic() - started
    assert "from the cached root filesystem" in out, out
    assert took < 15, f"a cached bootstrap took {took:.1f}s"


def check_cache_record(recipe: str, *packages: str) -> dict:
    slug = recipe.replace(":", "-")
    record = json.loads((bootstrap.CACHE / f"{slug}.json").read_text())
    assert (bootstrap.CACHE / f"{slug}.tar").stat().st_size == record["size"]
    assert record["key"] == bootstrap.RECIPES[recipe].key(record["mirrors"])
    for package in packages:
        assert record["packages"][package]  # its Debian version
    return record


@pytest.mark.slow
@pytest.mark.kernel
def test_bootstrap_debian_bookworm(cshell: Cshell, other_root: Path) -> None:
    proc = cshell("image", "bootstrap", "debian:bookworm", timeout=MMDEBSTRAP_TIMEOUT)
    ok(proc)
    assert "debian:bookworm is a local stand-in built from Debian packages" in proc.stderr
    config = image_config(cshell, "debian:bookworm")
    assert config["Labels"]["org.cshell.source"] == "bootstrap"
    assert config["Cmd"] == ["bash"]
    check_cache_record("debian:bookworm", "base-files", "apt")

    version = ok(cshell("run", "--rm", "debian:bookworm", "cat", "/etc/debian_version")).strip()
    assert version.startswith("12."), version
    # No device nodes came from the image: /dev is the runtime's tmpfs; shadow keeps its group.
    listing = ok(cshell("run", "--rm", "debian:bookworm", "sh", "-c",
                        "stat -c '%G %a' /etc/shadow; test -u /usr/bin/passwd && echo setuid"))
    assert listing.split("\n")[:2] == ["shadow 640", "setuid"]

    check_second_root_uses_cache(other_root, "debian:bookworm")


@pytest.mark.slow
@pytest.mark.kernel
def test_bootstrap_python_slim(cshell: Cshell, other_root: Path) -> None:
    proc = cshell("image", "bootstrap", "python:3.11-slim", timeout=MMDEBSTRAP_TIMEOUT)
    ok(proc)
    assert "python:3.11-slim is a local stand-in built from Debian packages, not Docker Hub's image" in proc.stderr
    config = image_config(cshell, "python:3.11-slim")
    assert config["Labels"]["org.cshell.source"] == "bootstrap"
    assert config["Cmd"] == ["python3"]
    assert "PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in config["Env"]
    check_cache_record("python:3.11-slim", "python3.11", "python3-pip", "python3-venv")

    version = ok(cshell("run", "--rm", "python:3.11-slim", "python", "-c", "import sys; print(sys.version)"))
    assert version.startswith("3.11."), version
    assert "python 3.11" in ok(cshell("run", "--rm", "python:3.11-slim", "pip", "--version"))
    # pip may install as root, as in Docker Hub's image (no EXTERNALLY-MANAGED marker).
    script = ("test ! -e /usr/lib/python3.11/EXTERNALLY-MANAGED && mkdir /app && cd /app && "
              "printf 'from setuptools import setup\\nsetup(name=\"demo\", version=\"1\")\\n' > setup.py && "
              "pip install -q --no-index --no-build-isolation . 2>/dev/null && pip show demo | head -2")
    assert "Name: demo" in ok(cshell("run", "--rm", "python:3.11-slim", "sh", "-c", script, timeout=120))

    check_second_root_uses_cache(other_root, "python:3.11-slim")


@pytest.mark.slow
@pytest.mark.kernel
def test_missing_python_image_is_bootstrapped_by_run(cshell: Cshell) -> None:
    """python:3.11 (Docker's full image) is answered by the slim stand-in's recipe."""
    proc = cshell("run", "--rm", "python:3.11", "python", "-V", timeout=MMDEBSTRAP_TIMEOUT)
    assert ok(proc).startswith("Python 3.11.")
    notes = [line for line in proc.stderr.splitlines() if "not here yet" in line]
    assert len(notes) == 1 and "local stand-in" in notes[0], proc.stderr
