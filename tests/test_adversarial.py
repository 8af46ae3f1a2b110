"""The adversarial suite, outside the container: hostile images, tars, Dockerfiles and input.

Each case sets something up, attacks, and asserts the safe outcome on what can be
observed: nothing written outside the target (host paths checked), a one-line
error with a hint and no traceback, and nothing changed in the store (the state
root's files and index.json compared before and after).

A. images and tars, through `load` (OCI and docker archives crafted here with
   tarfile), `pull` (a real docker-registry; blobs with lying digests are planted
   in its storage) and `import`;
B. Dockerfiles and build contexts;
C. bad CLI and REPL input;
E. the shell's own fd count across 50 containers run in one process.
(D, faults: test_faults.py.)
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import os
import posixpath
import random
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cshell, run_cshell, shims_of, wait_for
from registryd import FaultProxy, Registry, put_blob, put_manifest, serve
from test_errors import assert_error

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="cshell's image commands run as root"),
              pytest.mark.usefixtures("client_config")]
kernel = pytest.mark.kernel

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "cat", "ls", "stat", "test", "echo", "touch", "readlink", "find", "mkdir")


# -- crafting tars and images --------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


Member = tuple[tarfile.TarInfo, bytes]


def m(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644, linkname: str = "",
      uid: int = 0, gid: int = 0, major: int = 0, minor: int = 0, pax: dict[str, str] | None = None) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.uid, info.gid, info.devmajor, info.devminor = uid, gid, major, minor
    if pax:
        info.pax_headers = pax
    return info, data


def layer(*members: Member, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def busybox_layer() -> bytes:
    """A runnable bottom layer: the host's static busybox and a few applet links."""
    members = [m("bin", tarfile.DIRTYPE, mode=0o755), m("bin/busybox", data=BUSYBOX.read_bytes(), mode=0o755)]
    members += [m(f"bin/{name}", tarfile.SYMTYPE, linkname="busybox") for name in APPLETS]
    return layer(*members)


def image_files(layers: list[bytes], ref: str = "evil:v1", compress: str = "",
                settings: dict | None = None) -> dict[str, bytes]:
    """The files of an OCI image layout (+ docker manifest.json) holding one image; ``settings``
    is the config's runtime part (default: Cmd sh)."""
    blobs = [gzip.compress(b, 1, mtime=0) if compress == "gzip" else bz2.compress(b) if compress == "bzip2" else b
             for b in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": settings or {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha(b) for b in layers]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER + ("+gzip" if compress == "gzip" else ""), "digest": sha(b),
                    "size": len(b)} for b in blobs]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": sha(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": ref}}]}).encode()
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index,
             "manifest.json": json.dumps([{"Config": f"blobs/sha256/{sha(config)[7:]}", "RepoTags": [ref],
                                           "Layers": [f"blobs/sha256/{sha(b)[7:]}" for b in blobs]}]).encode()}
    for blob in (config, manifest, *blobs):
        files[f"blobs/sha256/{sha(blob)[7:]}"] = blob
    return files


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def archive(path: Path, layers: list[bytes], ref: str = "evil:v1", compress: str = "",
            docker_only: bool = False, settings: dict | None = None) -> Path:
    files = image_files(layers, ref, compress, settings)
    if docker_only:  # the docker-archive way in: manifest.json, no index
        files = {k: v for k, v in files.items() if k not in ("oci-layout", "index.json")}
    return write_tar(path, files)


# -- outcomes ----------------------------------------------------------------------------------------


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


RUN_REFUSED = 125  # docker run's status when the daemon refuses the line: the command never started


def refused(proc: subprocess.CompletedProcess, *needles: str, status: int = 1) -> str:
    """One `error:` line and its hint, exit ``status`` (1; a refused `run`: 125, as docker),
    no traceback, no internal error."""
    assert "internal error" not in proc.stderr, proc.stderr
    return assert_error(proc, *needles, status=status)


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under the state root (the lock aside), with index.json's bytes."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes() if p.name in ("index.json", "repodigests.json") else None)
            for p in root.rglob("*") if p.name != "lock"}


SKELETON = {"images", "images/blobs", "images/blobs/sha256", "layers", "distribution", "distribution/downloads"}


def store_files(root: Path) -> dict[str, bytes | None]:
    """The store only (images/ and layers/), its empty skeleton aside: what a hostile image must not change."""
    return {k: v for k, v in snapshot(root).items() if k.split("/")[0] in ("images", "layers") and k not in SKELETON}


def layer_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "layers").iterdir() if p.is_dir()) if (root / "layers").is_dir() else []


def devices_in(path: Path) -> list[str]:
    """Character and block devices under path, overlay whiteouts (0:0) excepted."""
    found = []
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(top, name))
            if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and st.st_rdev != os.makedev(0, 0):
                found.append(os.path.join(top, name))
    return found


@pytest.fixture
def host_victim() -> Iterator[Path]:
    """A host directory an attack aims at: it must stay empty."""
    path = Path(tempfile.mkdtemp(prefix="cshell-adv-victim-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def cs(root: Path, *args: str, **kw) -> subprocess.CompletedProcess:  # noqa: ANN003
    return run_cshell(root, *args, **kw)


# == A. malicious images and tars ========================================================================

# Layers that must be refused when they arrive (load, pull, import), with the words of the refusal.
# Each is the second layer on top of a runnable busybox layer.
HOSTILE_LAYERS: dict[str, tuple[list[Member], str]] = {
    "dot-dot name": ([m("../../../../tmp/cshell-adv-escaped", data=b"pwn")], "climbs out"),
    "dot-dot after an absolute start": ([m("/../tmp/cshell-adv-escaped", data=b"pwn")], "climbs out"),
    "dot-dot in the middle": ([m("usr/../../tmp/cshell-adv-escaped", data=b"pwn")], "climbs out"),
    "symlink then write through it": ([m("evil", tarfile.SYMTYPE, linkname="/tmp"),
                                       m("evil/cshell-adv-escaped", data=b"pwn")], "through the symlink"),
    "hardlink climbing out": ([m("stolen", tarfile.LNKTYPE, linkname="../../../../etc/passwd")], "climbs out"),
    "hardlink to an absolute host path": ([m("stolen", tarfile.LNKTYPE, linkname="/etc/passwd")],
                                          "not a file earlier in this layer"),
    "hardlink to a file of a lower layer": ([m("sh-copy", tarfile.LNKTYPE, linkname="bin/busybox")],
                                            "not a file earlier in this layer"),
    "whiteout of '..'": ([m("etc/.wh...")], "invalid whiteout"),
    "empty whiteout": ([m(".wh.")], "invalid whiteout"),
    "whiteout of a whiteout": ([m(".wh..wh.x")], "invalid whiteout"),
    "whiteout name used as a directory": ([m("a/.wh.b/c", data=b"x")], "whiteout name"),
    "opaque marker used as a directory": ([m("a/.wh..wh..opq/c", data=b"x")], "whiteout name"),
    "owner past uid_t": ([m("big-owner", data=b"x", uid=1 << 33, gid=1 << 33)], "owner"),
    "owner -1 (chown's 'unchanged')": ([m("minus-one", data=b"x", uid=(1 << 32) - 1)], "owner"),
    "10,000-deep directory": ([m("/".join(["d"] * 10_000), tarfile.DIRTYPE, mode=0o755)], "deep"),
    "64 KiB name": ([m("n" * 65536, data=b"x")], "longer than Linux allows"),
    "sparse file of a terabyte": ([m("sparse", data=f"1\n{(1 << 40) - 1}\n1\n".encode().ljust(512, b"\0") + b"x",
                                     pax={"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                          "GNU.sparse.name": "sparse", "GNU.sparse.realsize": str(1 << 40)})],
                                   "CSHELL_MAX_LAYER_BYTES"),
    # Entries that would fail at every `run` (unpacking them cannot succeed): refused as containerd's apply
    # refuses them (mkdir of a parent that is a file: ENOTDIR; a link to what is no longer there: ENOENT).
    "whiteout of '.'": ([m(".wh..")], "invalid whiteout"),
    "entry under a file of the same layer": ([m("f", data=b"f"), m("f/x", data=b"x")], "is a file"),
    "whiteout under a file of the same layer": ([m("f", data=b"f"), m("f/.wh.x")], "is a file"),
    "opaque marker under a file of the same layer": ([m("f", data=b"f"), m("f/.wh..wh..opq")], "is a file"),
    "hardlink to itself": ([m("a", data=b"a"), m("a", tarfile.LNKTYPE, linkname="a")], "itself"),
    "hardlink into a directory a file replaced": ([m("d/f", data=b"f"), m("d", data=b"a file now"),
                                                   m("l", tarfile.LNKTYPE, linkname="d/f")],
                                                  "not a file earlier in this layer"),
}


@pytest.mark.parametrize("case", list(HOSTILE_LAYERS))
def test_hostile_layer_is_refused_by_load(case: str, cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    """Refused when it arrives (as docker load refuses it), not at the first run: the store is unchanged."""
    members, words = HOSTILE_LAYERS[case]
    good = archive(tmp_path / "good.tar", [busybox_layer()], ref="good:v1")
    ok(cshell("load", "-i", str(good)))
    before = store_files(state_root)
    bad = archive(tmp_path / "bad.tar", [busybox_layer(), layer(*members)])
    error = refused(cshell("load", "-i", str(bad)), words)
    assert "layer" in error
    assert store_files(state_root) == before, "a refused archive changed the store"
    assert not Path("/tmp/cshell-adv-escaped").exists()
    assert os.stat("/etc/passwd").st_nlink == 1
    assert "evil:v1" not in ok(cshell("images"))


def test_hostile_layer_in_a_docker_archive_and_gzip(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    """The docker-archive way in (manifest.json, gzip layers) meets the same checks."""
    bad = archive(tmp_path / "bad.tar", [busybox_layer(), layer(m("../escaped", data=b"x"))],
                  compress="gzip", docker_only=True)
    refused(cshell("load", "-i", str(bad)), "climbs out")
    assert store_files(state_root) == {}


def test_hostile_layer_is_refused_by_import(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    (tmp_path / "rootfs.tar").write_bytes(layer(m("etc", tarfile.DIRTYPE, mode=0o755),
                                                m("etc/../../cshell-adv-escaped", data=b"pwn")))
    refused(cshell("import", str(tmp_path / "rootfs.tar"), "flat:v1"), "climbs out")
    (tmp_path / "link.tar.gz").write_bytes(gzip.compress(layer(m("x", tarfile.LNKTYPE, linkname="/etc/shadow"))))
    refused(cshell("import", str(tmp_path / "link.tar.gz"), "flat:v1"), "hard link")
    assert store_files(state_root) == {}
    assert os.stat("/etc/shadow").st_nlink == 1 and not Path("/cshell-adv-escaped").exists()


@kernel
def test_absolute_names_land_inside_the_layer(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    """As docker: a leading / is dropped (moby cleans the name), never written on the host."""
    target = "/etc/cshell-adv-absolute"
    bad = archive(tmp_path / "abs.tar", [busybox_layer(), layer(m(target, data=b"inside\n"))])
    ok(cshell("load", "-i", str(bad)))
    assert ok(cshell("run", "--rm", "evil:v1", "cat", target)) == "inside\n"
    assert not Path(target).exists()


@kernel
def test_two_layer_symlink_attack_stays_in_the_container(cshell: Cshell, state_root: Path, tmp_path: Path,
                                                         host_victim: Path) -> None:
    """Layer 2 makes a dir->/ symlink and a link to a host directory, layer 3 writes through both.
    Each layer is unpacked into its own empty directory, so layer 3's writes make real
    directories there, which overlayfs puts above layer 2's links."""
    links = layer(m("rootlink", tarfile.SYMTYPE, linkname="/"), m("victim", tarfile.SYMTYPE, linkname=str(host_victim)))
    writes = layer(m("rootlink/etc/cshell-adv-pwned", data=b"one\n"), m("victim/pwned", data=b"two\n"))
    ok(cshell("load", "-i", str(archive(tmp_path / "two.tar", [busybox_layer(), links, writes]))))
    out = ok(cshell("run", "--rm", "evil:v1", "sh", "-c",
                    "cat /rootlink/etc/cshell-adv-pwned /victim/pwned; test -e /etc/cshell-adv-pwned || echo absent"))
    assert out == "one\ntwo\nabsent\n"
    assert not Path("/etc/cshell-adv-pwned").exists()
    assert list(host_victim.iterdir()) == []
    for d in layer_dirs(state_root):  # every layer directory holds only its own entries
        assert not (d / "diff" / "etc" / "passwd").exists()


@kernel
def test_device_nodes_in_a_layer_never_become_devices(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    """A block device of the host's disk and /dev/mem in a layer: not created anywhere (runtime notes 1.8)."""
    devices = layer(m("hostdisk", tarfile.BLKTYPE, mode=0o666, major=8, minor=0),
                    m("mem", tarfile.CHRTYPE, mode=0o666, major=1, minor=1),
                    m("kmsg", tarfile.CHRTYPE, mode=0o666, major=1, minor=11),
                    m("plain", data=b"file\n"))
    ok(cshell("load", "-i", str(archive(tmp_path / "dev.tar", [busybox_layer(), devices]))))
    out = ok(cshell("run", "--rm", "evil:v1", "sh", "-c",
                    "for f in /hostdisk /mem /kmsg; do test -e $f && echo $f; done; cat /plain"))
    assert out == "file\n"
    assert devices_in(state_root / "layers") == []


@kernel
def test_setuid_and_large_ids_are_kept_as_docker_keeps_them(cshell: Cshell, state_root: Path,
                                                            tmp_path: Path) -> None:
    special = layer(m("su", data=b"#!/bin/sh\n", mode=0o4755), m("wall", data=b"x", mode=0o2755),
                    m("nobody-file", data=b"x", uid=4294967294, gid=4294967294), m("sticky", tarfile.DIRTYPE,
                                                                                      mode=0o1777))
    ok(cshell("load", "-i", str(archive(tmp_path / "suid.tar", [busybox_layer(), special]))))
    out = ok(cshell("run", "--rm", "evil:v1", "stat", "-c", "%n %a %u:%g", "/su", "/wall", "/nobody-file",
                    "/sticky"))
    assert out.split("\n")[:4] == ["/su 4755 0:0", "/wall 2755 0:0", "/nobody-file 644 4294967294:4294967294",
                                   "/sticky 1777 0:0"]


@kernel
def test_whiteouts_hide_the_lower_layers(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    """The well-formed edge cases work: an opaque directory and a whiteout, from a loaded image."""
    lower = layer(m("d/old", data=b"old"), m("gone", data=b"g"), m("keep", data=b"k\n"))
    upper = layer(m("d", tarfile.DIRTYPE, mode=0o755), m("d/.wh..wh..opq"), m("d/new", data=b"new"), m(".wh.gone"))
    ok(cshell("load", "-i", str(archive(tmp_path / "wh.tar", [busybox_layer(), lower, upper]))))
    assert ok(cshell("run", "--rm", "evil:v1", "sh", "-c", "ls /d; test -e /gone || echo nogone; cat /keep")) \
        == "new\nnogone\nk\n"


# Same-layer combinations the OCI spec gives a meaning to (or containerd applies: the later entry wins):
# accepted, and the container sees what the spec says. Each layer sits on LOWER_LAYER (/x, /d/old).
# "Whiteout files MUST only apply to resources in lower/parent layers. Files that are present in the
# same layer as a whiteout file can only be hidden by whiteout files in subsequent layers." (layer.md)
LOWER_LAYER = [m("x", data=b"lower x\n"), m("d", tarfile.DIRTYPE, mode=0o755), m("d/old", data=b"old\n")]
SAME_LAYER: dict[str, tuple[list[Member], str, str]] = {
    "file, then its whiteout": ([m("x", data=b"upper x\n"), m(".wh.x")], "cat /x", "upper x\n"),
    "whiteout, then the file": ([m(".wh.x"), m("x", data=b"upper x\n")], "cat /x", "upper x\n"),
    "directory, then its whiteout": ([m("d", tarfile.DIRTYPE, mode=0o755), m("d/new", data=b"n"), m(".wh.d")],
                                     "ls /d", "new\n"),
    "whiteout, then the directory": ([m(".wh.d"), m("d", tarfile.DIRTYPE, mode=0o755), m("d/new", data=b"n")],
                                     "ls /d", "new\n"),
    "whiteout, then a file under it": ([m(".wh.d"), m("d/new", data=b"n")], "ls /d", "new\n"),
    "opaque marker among entries": ([m("d/new", data=b"n"), m("d/.wh..wh..opq"), m("d/.wh.new")],
                                    "ls /d", "new\n"),
    "the same whiteout twice": ([m(".wh.x"), m(".wh.x")], "test -e /x || echo gone", "gone\n"),
    "hardlink to a symlink": ([m("t", data=b"t\n", mode=0o400), m("s", tarfile.SYMTYPE, linkname="t"),
                               m("l", tarfile.LNKTYPE, linkname="s", mode=0o777)],
                              "readlink /l; stat -c %a /t", "t\n400\n"),
    "hardlink to a dangling symlink": ([m("s", tarfile.SYMTYPE, linkname="nowhere"),
                                        m("l", tarfile.LNKTYPE, linkname="s")], "readlink /l", "nowhere\n"),
    "hardlink to a device node": ([m("mem", tarfile.CHRTYPE, mode=0o666, major=1, minor=1),
                                   m("l", tarfile.LNKTYPE, linkname="mem")],
                                  "test -e /mem || test -e /l || echo neither", "neither\n"),
    "directory replaced by a file": ([m("d", tarfile.DIRTYPE, mode=0o755), m("d/new", data=b"n"),
                                      m("d", data=b"a file\n")], "cat /d", "a file\n"),
    "file replaced by a directory": ([m("x", data=b"upper x\n"), m("x", tarfile.DIRTYPE, mode=0o755),
                                      m("x/in", data=b"i")], "ls /x", "in\n"),
    "symlink replaced by a directory": ([m("s", tarfile.SYMTYPE, linkname="/"), m("s", tarfile.DIRTYPE, mode=0o755),
                                         m("s/in", data=b"i")], "ls /s", "in\n"),
}


@kernel
@pytest.mark.parametrize("case", list(SAME_LAYER))
def test_same_layer_entries_are_applied_as_the_spec_says(case: str, cshell: Cshell, state_root: Path,
                                                         tmp_path: Path) -> None:
    """Accepted by load and unpacked at run, with the spec's meaning; never accepted and then failing."""
    members, command, expected = SAME_LAYER[case]
    ok(cshell("load", "-i", str(archive(tmp_path / "same.tar", [busybox_layer(), layer(*LOWER_LAYER),
                                                                  layer(*members)]))))
    assert ok(cshell("run", "--rm", "evil:v1", "sh", "-c", command)) == expected


def random_layer(rng: random.Random) -> bytes:
    """A few entries over a handful of names, kinds and orders: whiteouts, opaque markers,
    links and replacements collide far more often than in any real layer."""
    names = ["a", "b", "d", "d/a", "d/b", "d/e", "d/e/a", "s", "s/a"]
    members = []
    for _ in range(rng.randint(1, 7)):
        name = rng.choice(names)
        kind = rng.choice(["file", "dir", "symlink", "hardlink", "whiteout", "opaque", "fifo", "device"])
        parent, base = posixpath.split(name)
        if kind == "whiteout":
            members.append(m(posixpath.join(parent, ".wh." + base)))
        elif kind == "opaque":
            members.append(m(posixpath.join(name, ".wh..wh..opq")))
        elif kind == "dir":
            members.append(m(name, tarfile.DIRTYPE, mode=0o755))
        elif kind == "symlink":
            members.append(m(name, tarfile.SYMTYPE, linkname=rng.choice(["a", "/", "d", "nowhere", "../d"])))
        elif kind == "hardlink":
            members.append(m(name, tarfile.LNKTYPE, linkname=rng.choice(names), mode=0o777))
        elif kind == "fifo":
            members.append(m(name, tarfile.FIFOTYPE))
        elif kind == "device":
            members.append(m(name, tarfile.CHRTYPE, major=1, minor=3))
        else:
            members.append(m(name, data=b"x", mode=0o400))
    return layer(*members)


def test_a_layer_the_check_accepts_always_unpacks(tmp_path: Path) -> None:
    """The check at the store's door and the unpacker agree: 400 layers of colliding entries,
    each either refused by check_layer (a one-line reason) or unpacked without an error."""
    from cshell.engine.image.archive import check_layer, unpack_layer
    from cshell.errors import RuntimeFailure

    rng = random.Random(12)
    accepted = 0
    for i in range(400):
        blob = tmp_path / f"{i}.tar"
        blob.write_bytes(random_layer(rng))
        try:
            check_layer(blob, str(i))
        except RuntimeFailure as e:
            assert "\n" not in e.message and "Errno" not in e.message and e.hint, e.message
            continue
        accepted += 1
        try:
            unpack_layer(blob, tmp_path / f"{i}.diff")
        except RuntimeFailure as e:
            with tarfile.open(blob) as tar:
                listing = [(t.name, t.type, t.linkname) for t in tar]
            pytest.fail(f"accepted, then failed to unpack: {e.message}\n{listing}")
        shutil.rmtree(tmp_path / f"{i}.diff")
    assert accepted > 100  # the refusals are not everything


def test_decompression_bomb_is_refused_by_load(cshell: Cshell, state_root: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A 64 MiB layer (of zeros: a 64 KiB gzip) against an 8 MiB bound: refused while it inflates."""
    bomb = layer(m("zeros", data=b"\0" * (64 << 20)))
    path = archive(tmp_path / "bomb.tar", [busybox_layer(), bomb], compress="gzip")
    assert path.stat().st_size < (3 << 20)
    monkeypatch.setenv("CSHELL_MAX_LAYER_BYTES", str(8 << 20))
    error = refused(cshell("load", "-i", str(path)), "CSHELL_MAX_LAYER_BYTES", "decompression bomb")
    assert "8 MiB" in error
    assert store_files(state_root) == {}
    monkeypatch.setenv("CSHELL_MAX_LAYER_BYTES", str(128 << 20))  # raised: the same archive loads
    ok(cshell("load", "-i", str(path)))


def test_ratio_bomb_is_refused_with_the_default_bounds(cshell: Cshell, state_root: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """bzip2 turns a few hundred bytes into 200 MiB: past 1000:1 once past 128 MiB. Also piped (a spool)."""
    monkeypatch.delenv("CSHELL_MAX_LAYER_BYTES", raising=False)
    bomb = bz2.compress(layer(m("zeros", data=b"\0" * (200 << 20))))
    assert len(bomb) < 4096
    path = tmp_path / "bomb.tar.bz2"
    path.write_bytes(bomb)
    error = refused(cshell("import", str(path), "bomb:v1"), "CSHELL_MAX_LAYER_RATIO", "decompression bomb")
    assert "times" in error
    assert not list((state_root / "images" / "blobs" / "sha256").glob(".ingest-*"))
    assert "bomb" not in ok(cshell("images"))
    # The same, as an image archive on stdin: load spools it decompressed first; the spool is bounded too.
    refused(run_piped(state_root, "load", bomb), "decompression bomb")


def run_piped(root: Path, command: str, data: bytes) -> subprocess.CompletedProcess:
    from conftest import cshell_argv, cshell_env

    proc = subprocess.run([*cshell_argv(), "--root", str(root), command], input=data, capture_output=True,
                          timeout=60, env=cshell_env())
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                       proc.stderr.decode(errors="replace"))


# -- A through a real registry --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    yield from serve("open")


def push_raw(registry: Registry, repo: str, layers: list[bytes], compress: str = "") -> dict[str, bytes]:
    """Push an image blob by blob with the registry API (digests honest): returns its files."""
    files = image_files(layers, compress=compress)
    index = json.loads(files["index.json"])
    manifest_digest = index["manifests"][0]["digest"]
    manifest = files[f"blobs/sha256/{manifest_digest[7:]}"]
    for name, data in files.items():
        if name.startswith("blobs/") and name != f"blobs/sha256/{manifest_digest[7:]}":
            put_blob(registry, repo, data, "sha256:" + name.rsplit("/", 1)[1])
    put_manifest(registry, repo, "v1", manifest, OCI_MANIFEST)
    return {"manifest": manifest, "config": files[next(n for n in files if n.startswith("blobs/") and
                                                      b'"rootfs"' in files[n])]}


def stored_blob(registry: Registry, digest: str) -> Path:
    """Where docker-registry keeps a blob's bytes (it never re-hashes them when it serves them)."""
    hexd = digest[7:]
    return registry.dir / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"


def pull_refused(root: Path, ref: str, *needles: str, hostile_blob: bytes | None = None) -> str:
    """The pull fails cleanly, the store is as it was, and the hostile blob is not kept to resume
    (a good layer's .part may stay: the next pull resumes it)."""
    before = store_files(root)
    error = refused(cs(root, "pull", ref), *needles)
    assert store_files(root) == before, "a refused pull changed the store"
    if hostile_blob is not None:
        assert not (root / "distribution" / "downloads" / f"{sha(hostile_blob)[7:]}.part").exists(), \
            "hostile bytes kept for a resume"
    return error


def test_pull_refuses_a_config_whose_digest_lies(registry: Registry, state_root: Path) -> None:
    pushed = push_raw(registry, "adv/config-lies", [busybox_layer()])
    config = json.loads(pushed["config"])
    stored_blob(registry, sha(pushed["config"])).write_bytes(  # same size, other content
        json.dumps({**config, "os": "linuz"}).encode())
    pull_refused(state_root, f"{registry.host}/adv/config-lies:v1", "config", "does not match its digest")


def test_pull_refuses_a_manifest_whose_digest_lies(registry: Registry, state_root: Path) -> None:
    pushed = push_raw(registry, "adv/manifest-lies", [busybox_layer()])
    path = stored_blob(registry, sha(pushed["manifest"]))
    path.write_bytes(pushed["manifest"].replace(b'"schemaVersion": 2', b'"schemaVersion":  2'))
    pull_refused(state_root, f"{registry.host}/adv/manifest-lies:v1", "hashes to", "registry says")


def test_pull_refuses_a_layer_whose_blob_lies(registry: Registry, state_root: Path) -> None:
    """The registry serves other bytes for a layer digest (no proxy: the lie is in its storage)."""
    evil = layer(m("payload", data=b"A" * 5000))
    push_raw(registry, "adv/layer-lies", [busybox_layer(), evil])
    stored_blob(registry, sha(evil)).write_bytes(layer(m("payload", data=b"B" * 5000)))
    pull_refused(state_root, f"{registry.host}/adv/layer-lies:v1", "does not match its digest", hostile_blob=evil)


def test_pull_refuses_a_hostile_layer_with_honest_digests(registry: Registry, state_root: Path) -> None:
    """Every digest matches; the layer's entries are what is hostile."""
    evil = layer(m("../../cshell-adv-escaped", data=b"x"))
    push_raw(registry, "adv/traversal", [busybox_layer(), evil], compress="gzip")
    pull_refused(state_root, f"{registry.host}/adv/traversal:v1", "climbs out", hostile_blob=gzip.compress(evil, 1, mtime=0))
    assert not Path("/cshell-adv-escaped").exists()


def test_pull_refuses_a_decompression_bomb(registry: Registry, state_root: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = layer(m("zeros", data=b"\0" * (48 << 20)))
    push_raw(registry, "adv/bomb", [busybox_layer(), bomb], compress="gzip")
    monkeypatch.setenv("CSHELL_MAX_LAYER_BYTES", str(16 << 20))
    pull_refused(state_root, f"{registry.host}/adv/bomb:v1", "CSHELL_MAX_LAYER_BYTES", "decompression bomb",
                 hostile_blob=gzip.compress(bomb, 1, mtime=0))




def push_lying_size(registry: Registry, repo: str, top: bytes, delta: int) -> bytes:
    """Push [busybox, top] honestly, then a hand-written manifest whose descriptor for ``top``
    says ``delta`` bytes more (or fewer) than the blob has. Returns the manifest."""
    pushed = push_raw(registry, repo, [busybox_layer(), top])
    manifest = json.loads(pushed["manifest"])
    manifest["layers"][-1]["size"] += delta
    data = json.dumps(manifest).encode()
    put_manifest(registry, repo, "v1", data, OCI_MANIFEST)
    return data


@pytest.mark.parametrize("delta", [-1000, 1000, 1], ids=["blob-longer", "blob-shorter", "one-byte-short"])
def test_pull_refuses_a_layer_whose_size_lies(registry: Registry, state_root: Path, delta: int) -> None:
    """The registry serves more (or fewer) bytes than the descriptor says: the digest error, at once
    (not a resumable cut connection), and no .part kept for a blob that can never verify."""
    top = layer(m("payload", data=os.urandom(64 << 10)))
    push_lying_size(registry, f"adv/size{delta}", top, delta)
    error = pull_refused(state_root, f"{registry.host}/adv/size{delta}:v1", "does not match its digest",
                         str(len(top) + delta), hostile_blob=top)
    assert sha(top)[7:19] in error and "Errno" not in error
    # the same twice: nothing was kept that a second pull would resume into the same failure
    pull_refused(state_root, f"{registry.host}/adv/size{delta}:v1", "does not match its digest", hostile_blob=top)



def test_pull_refuses_a_config_whose_size_lies(registry: Registry, state_root: Path) -> None:
    pushed = push_raw(registry, "adv/config-size", [busybox_layer()])
    manifest = json.loads(pushed["manifest"])
    manifest["config"]["size"] -= 7  # the registry serves 7 bytes more than this says
    put_manifest(registry, "adv/config-size", "v1", json.dumps(manifest).encode(), OCI_MANIFEST)
    error = pull_refused(state_root, f"{registry.host}/adv/config-size:v1", "config", "does not match its digest")
    assert f"{len(pushed['config'])} bytes, not the {len(pushed['config']) - 7}" in error

def test_pull_reads_no_more_than_the_descriptor_says(registry: Registry, state_root: Path) -> None:
    """A server that sends a layer with no length and then bytes without end (the proxy stops at
    256 MiB): the pull stops reading at the descriptor's size, refuses it, and keeps nothing."""
    top = layer(m("payload", data=os.urandom(64 << 10)))
    push_raw(registry, "adv/endless", [busybox_layer(), top])
    proxy = FaultProxy(registry.host, endless=True)
    try:
        pull_refused(state_root, f"{proxy.host}/adv/endless:v1", "does not match its digest", "longer than",
                     hostile_blob=top)
        assert proxy.sent < (32 << 20), f"the pull read {proxy.sent} bytes of a {len(top)}-byte layer"
    finally:
        proxy.stop()

@kernel
def test_pull_of_same_layer_whiteouts_runs(registry: Registry, cshell: Cshell, state_root: Path) -> None:
    """Through a real registry (gzip blobs): accepted, stored, and the container sees the spec's result."""
    members, command, expected = SAME_LAYER["directory, then its whiteout"]
    file_first, _, _ = SAME_LAYER["file, then its whiteout"]
    push_raw(registry, "adv/same-layer", [busybox_layer(), layer(*LOWER_LAYER), layer(*members, *file_first)],
             compress="gzip")
    ok(cshell("pull", f"{registry.host}/adv/same-layer:v1"))
    assert ok(cshell("run", "--rm", f"{registry.host}/adv/same-layer:v1", "sh", "-c", f"{command}; cat /x")) \
        == expected + "upper x\n"


def test_layer_that_cannot_unpack_is_refused_by_pull_and_import(registry: Registry, cshell: Cshell,
                                                                 state_root: Path, tmp_path: Path) -> None:
    """A file and then an entry under it: refused at the door by pull and import, the store unchanged."""
    members, words = HOSTILE_LAYERS["whiteout under a file of the same layer"]
    evil = layer(*members)
    push_raw(registry, "adv/under-a-file", [busybox_layer(), evil])
    error = pull_refused(state_root, f"{registry.host}/adv/under-a-file:v1", words, hostile_blob=evil)
    assert "f/.wh.x" in error and "layer" in error
    (tmp_path / "flat.tar").write_bytes(evil)
    refused(cshell("import", str(tmp_path / "flat.tar"), "flat:v1"), words, "f/.wh.x")
    assert store_files(state_root) == {}

# == B. malicious Dockerfiles and build contexts =========================================================


def context(tmp_path: Path, dockerfile: str, files: dict[str, bytes | str] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return ctx


def build_refused(cshell: Cshell, state_root: Path, ctx: Path, *needles: str) -> str:
    """The build fails at a line, with one error and a hint; no image, no container left behind."""
    error = refused(cshell("build", "-t", "adv-built", str(ctx)), *needles)
    assert error.startswith("error: Dockerfile:"), error
    assert "adv-built" not in ok(cshell("images"))
    assert not list((state_root / "containers").iterdir()), "a build step's container was left"
    assert not list((state_root / "layers").glob("*.unpacking")) and not list(
        (state_root / "images" / "blobs" / "sha256").glob(".ingest-*"))
    return error


@kernel
def test_copy_of_a_host_absolute_path_reads_the_context(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    """COPY /etc/shadow means the context's etc/shadow (docker: sources are relative to the context)."""
    ctx = context(tmp_path, "FROM busybox\nCOPY /etc/shadow /stolen\n")
    build_refused(cshell, state_root, ctx, "etc/shadow", "not found in build context")
    (ctx / "etc").mkdir()
    (ctx / "etc" / "shadow").write_text("the context's own file\n")
    ok(cshell("build", "-t", "adv-built", str(ctx)))
    assert ok(cshell("run", "--rm", "adv-built", "cat", "/stolen")) == "the context's own file\n"


@kernel
def test_symlink_inside_a_copied_directory_is_copied_as_a_link(cshell: Cshell, state_root: Path,
                                                               tmp_path: Path) -> None:
    """docker copies the link itself, never the host file it points at."""
    ctx = context(tmp_path, "FROM busybox\nCOPY dir /d\n", {"dir/plain": "p\n"})
    (ctx / "dir" / "shadow").symlink_to("/etc/shadow")
    (ctx / "dir" / "up").symlink_to("../../../../../../etc")
    ok(cshell("build", "-t", "adv-built", str(ctx)))
    out = ok(cshell("run", "--rm", "adv-built", "sh", "-c",
                    "readlink /d/shadow; readlink /d/up; cat /d/shadow 2>/dev/null || echo no-host-shadow; ls /d/up/passwd"))
    assert out == "/etc/shadow\n../../../../../../etc\nno-host-shadow\n/d/up/passwd\n"
    shadow_line = Path("/etc/shadow").read_text().splitlines()[0]
    for blob in (state_root / "images" / "blobs" / "sha256").iterdir():
        assert shadow_line.encode() not in blob.read_bytes(), "the host's /etc/shadow reached the store"


def hostile_tar(*members: Member, compress: bool = True) -> bytes:
    data = layer(*members)
    return gzip.compress(data, mtime=0) if compress else data


@kernel
@pytest.mark.parametrize("members, needle", [
    ([m("evil", tarfile.SYMTYPE, linkname="VICTIM"), m("evil/pwned", data=b"pwn")], "/x/evil"),
    ([m("up", tarfile.SYMTYPE, linkname="../../../../../../../VICTIM"), m("up/pwned", data=b"pwn")], "/x/up"),
    ([m("stolen", tarfile.LNKTYPE, linkname="/etc/shadow")], "stolen"),
    ([m("a/../../../../VICTIM/pwned", data=b"pwn")], "the archive is unsafe"),
], ids=["symlink-to-host-dir", "climbing-symlink", "hardlink-to-etc-shadow", "dot-dot"])
def test_add_of_a_hostile_tar(cshell: Cshell, state_root: Path, tmp_path: Path, host_victim: Path,
                              members: list[Member], needle: str) -> None:
    """ADD extracts a context tar inside the image's root (a chroot): links resolve there or are refused."""
    fixed = []
    for info, data in members:
        info.name = info.name.replace("VICTIM", str(host_victim).lstrip("/"))
        info.linkname = info.linkname.replace("VICTIM", str(host_victim))
        fixed.append((info, data))
    shadow_links = os.stat("/etc/shadow").st_nlink
    ctx = context(tmp_path, "FROM busybox\nADD evil.tar.gz /x/\n", {"evil.tar.gz": hostile_tar(*fixed)})
    proc = cshell("build", "-t", "adv-built", str(ctx))
    if proc.returncode == 0:  # extracted, but only inside the image: check where the bytes went
        out = ok(cshell("run", "--rm", "adv-built", "sh", "-c", f"cat {host_victim}/pwned /x/up/pwned 2>/dev/null"))
        assert "pwn" in out
    else:
        build_refused(cshell, state_root, ctx, needle)
    assert list(host_victim.iterdir()) == []
    assert os.stat("/etc/shadow").st_nlink == shadow_links


@kernel
@pytest.mark.parametrize("link", ["/", "../../../../../.."], ids=["to-root", "climbing"])
def test_workdir_and_copy_through_an_image_symlink_stay_in_the_root(cshell: Cshell, state_root: Path,
                                                                    tmp_path: Path, host_victim: Path,
                                                                    link: str) -> None:
    """The base image has /escape -> / (or ../../..): WORKDIR, COPY and RUN through it land in the image."""
    base = layer(m("escape", tarfile.SYMTYPE, linkname=link))
    ok(cshell("load", "-i", str(archive(tmp_path / "base.tar", [busybox_layer(), base], ref="adv-base:v1"))))
    target = f"/escape{host_victim}"
    ctx = context(tmp_path, f"FROM adv-base:v1\nCOPY a.txt {target}/\nWORKDIR {target}/w\nRUN touch made-by-run\n",
                  {"a.txt": "a\n"})
    ok(cshell("build", "-t", "adv-built", str(ctx)))
    out = ok(cshell("run", "--rm", "adv-built", "sh", "-c", f"ls {host_victim} {host_victim}/w; pwd"))
    assert out.split() == [f"{host_victim}:", "a.txt", "w", f"{host_victim}/w:", "made-by-run", f"{host_victim}/w"]
    assert list(host_victim.iterdir()) == []


@kernel
def test_add_of_a_decompression_bomb(cshell: Cshell, state_root: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = gzip.compress(layer(m("zeros", data=b"\0" * (32 << 20))), mtime=0)
    ctx = context(tmp_path, "FROM busybox\nADD bomb.tar.gz /b/\n", {"bomb.tar.gz": bomb})
    monkeypatch.setenv("CSHELL_MAX_LAYER_BYTES", str(4 << 20))
    build_refused(cshell, state_root, ctx, "CSHELL_MAX_LAYER_BYTES", "decompression bomb")


@kernel
@pytest.mark.parametrize("dockerfile, needle", [
    ("FROM busybox\nRUN echo " + "a" * (1 << 20) + "\n", "argument list too long"),
    ("FROM busybox\nFOO bar\n", "unknown instruction"),
    ("FROM busybox\nCOPY [\"a.txt\", \n", "COPY"),
    ("FROM busybox\nCOPY ../../../etc/shadow /\n", "outside the build context"),
], ids=["1MB-RUN-line", "unknown-instruction", "unterminated-COPY-array", "dockerignore-reinclude-outside"])
def test_bad_dockerfiles(cshell: Cshell, state_root: Path, tmp_path: Path, dockerfile: str, needle: str) -> None:
    ctx = context(tmp_path, dockerfile, {"a.txt": "a", ".dockerignore": "*\n!../../../etc/shadow\n!Dockerfile\n"})
    build_refused(cshell, state_root, ctx, needle)


@kernel
def test_long_line_and_unterminated_json_do_what_docker_does(cshell: Cshell, state_root: Path,
                                                             tmp_path: Path) -> None:
    """A 1 MB LABEL is fine; CMD ["sh", "-c" is not JSON, so docker takes it as a shell command."""
    ctx = context(tmp_path, "FROM busybox\nLABEL big=" + "b" * (1 << 20) + "\nCMD [\"sh\", \"-c\"\n")
    ok(cshell("build", "-t", "adv-built", str(ctx)))
    inspect = json.loads(ok(cshell("inspect", "adv-built")))[0]
    assert len(inspect["Config"]["Labels"]["big"]) == 1 << 20
    assert inspect["Config"]["Cmd"] == ["/bin/sh", "-c", '["sh", "-c"']


@kernel
def test_dockerignore_cannot_hide_the_dockerfile_or_reach_out(cshell: Cshell, state_root: Path,
                                                               tmp_path: Path) -> None:
    """Excluding Dockerfile and .dockerignore does not stop the build (docker sends them anyway),
    and neither of them, nor an excluded file, reaches the image through COPY ."""
    ctx = context(tmp_path, "FROM busybox\nCOPY . /ctx/\n", {"kept.txt": "k", "secret.key": "s",
                                                             ".dockerignore": "Dockerfile\n.dockerignore\n*.key\n"})
    ok(cshell("build", "-t", "adv-built", str(ctx)))
    assert sorted(ok(cshell("run", "--rm", "adv-built", "ls", "-A", "/ctx")).split()) == ["kept.txt"]


# == C. bad CLI and REPL input ===========================================================================
# (unknown commands and flags, unknown containers and images: test_errors.py)

IMG = ("busybox", "true")
BAD_INPUT: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "-p not a port": (["run", "-p", "abc", *IMG], ("invalid port spec",)),
    "-p port too big": (["run", "-p", "70000:80", *IMG], ("between 1 and 65535",)),
    "-p unknown protocol": (["run", "-p", "80:80/sctpx", *IMG], ("protocol",)),
    "-v empty source": (["run", "-v", ":/x", *IMG], ("invalid spec",)),
    "-v relative target": (["run", "-v", "/tmp:relative", *IMG], ("must be absolute",)),
    "-v unknown mode": (["run", "-v", "/tmp:/b:zz", *IMG], ("invalid mode",)),
    "--memory unit": (["run", "--memory", "12q", *IMG], ("--memory",)),
    "--memory negative": (["run", "--memory", "-1", *IMG], ("--memory",)),
    "--cpus word": (["run", "--cpus", "abc", *IMG], ("--cpus",)),
    "--pids-limit word": (["run", "--pids-limit", "x", *IMG], ("--pids-limit",)),
    "name with a slash": (["run", "--name", "a/b", *IMG], ("invalid container name",)),
    "name of dots": (["run", "--name", "..", *IMG], ("invalid container name",)),
    "tag needs a source": (["tag"], ("needs",)),
    "commit needs a container": (["commit"], ("needs",)),
    "exec needs a container": (["exec"], ("needs",)),
    "cgroup set needs a container": (["cgroup", "set"], ("needs",)),
    "uppercase image name": (["pull", "UPPER/Case"], ("invalid image name",)),
    "two tags": (["tag", "busybox", "bad:tag:x"], ("invalid image name",)),
    "-c unterminated quote": (["-c", 'run --rm "busybox true'], ("quot",)),
    # hostnames: RFC 1123 labels (letters, digits, inner hyphens) joined by dots, at most 64 in all
    "-h with a newline": (["run", "-h", "a\n1.2.3.4 evil", *IMG], ("invalid hostname format", "\\n")),
    "-h with a space": (["run", "-h", "a b", *IMG], ("invalid hostname format", "'a b'")),
    "-h with an underscore": (["run", "-h", "a_b", *IMG], ("invalid hostname format",)),
    "-h label starting with a hyphen": (["run", "-h", "a.-b", *IMG], ("invalid hostname format",)),
    "-h label ending with a hyphen": (["run", "-h", "a-", *IMG], ("invalid hostname format",)),
    "-h empty label": (["run", "-h", "a..b", *IMG], ("invalid hostname format",)),
    "-h label of 64": (["run", "-h", "a" * 64, *IMG], ("invalid hostname format", "63")),
    "-h of 65 characters": (["run", "-h", "a" * 40 + "." + "b" * 24, *IMG], ("invalid hostname format", "64")),
    "--domainname with a space": (["run", "--domainname", "example com", *IMG], ("invalid domainname format",)),
    "--domainname with a slash": (["run", "--domainname", "a/b", *IMG], ("invalid domainname format",)),
    # environment variables: docker's messages
    "-e empty key": (["run", "-e", "=x", *IMG], ("invalid environment variable: =x",)),
    "-e empty key, no value": (["run", "-e", "=", *IMG], ("invalid environment variable: =",)),
    "--env-file missing": (["run", "--env-file", "/nonexistent-cshell-env", *IMG],
                           ("/nonexistent-cshell-env", "no such file")),
    "--env-file a directory": (["run", "--env-file", "/tmp", *IMG], ("/tmp", "directory")),
    # mount options that belong to another kind of mount
    "-v nocopy on a bind": (["run", "-v", "/tmp:/b:nocopy", *IMG], ("invalid volume specification", "nocopy", "bind")),
    "-v mode on an anonymous volume": (["run", "-v", "/b:ro", *IMG], ("invalid volume specification", "'/b:ro'")),
    "--mount volume-nocopy on a bind": (["run", "--mount", "type=bind,source=/tmp,target=/b,volume-nocopy", *IMG],
                                        ("cannot mix 'volume-*' options with mount type 'bind'",)),
    "--mount tmpfs-size on a bind": (["run", "--mount", "type=bind,source=/tmp,target=/b,tmpfs-size=1m", *IMG],
                                     ("cannot mix 'tmpfs-*' options with mount type 'bind'",)),
    "--mount tmpfs-size on a volume": (["run", "--mount", "type=volume,source=v,target=/b,tmpfs-size=1m", *IMG],
                                       ("cannot mix 'tmpfs-*' options with mount type 'volume'",)),
    "--mount volume-nocopy on a tmpfs": (["run", "--mount", "type=tmpfs,target=/b,volume-nocopy", *IMG],
                                         ("cannot mix 'volume-*' options with mount type 'tmpfs'",)),
    "--mount source on a tmpfs": (["run", "--mount", "type=tmpfs,source=x,target=/b", *IMG],
                                  ('invalid mount config for type "tmpfs"', "source")),
    "--mount readonly anonymous volume": (["run", "--mount", "type=volume,target=/b,readonly", *IMG],
                                          ("anonymous", "read")),
}


def state_of(root: Path) -> dict[str, bytes | None]:
    """Everything under the state root that a refused command must leave as it was, read once
    the root's shims are gone: an exited container's shim drops the unused bridge after `run`
    has returned, and that is not the refused command's doing."""
    wait_for(lambda: not shims_of(root), timeout=10)
    return {k: v for k, v in snapshot(root).items() if not k.endswith("/log")}


@kernel
@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_and_changes_nothing(case: str, cshell: Cshell, state_root: Path) -> None:
    ok(cshell("run", "--name", "keep", "busybox", "true"))  # a state root with something in it
    before = state_of(state_root)
    args, needles = BAD_INPUT[case]
    refused(cshell(*args), *needles, status=RUN_REFUSED if args[0] == "run" else 1)
    assert state_of(state_root) == before, f"{case}: the refused command changed the state root"
    ok(cshell("rm", "keep"))


# --env-file lines docker refuses (its words), and files that cannot be read as text
BAD_ENV_FILES: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "space in the key": (b"OK=1\nKEY X=1\n", ("variable 'KEY X' contains whitespaces", "line 2")),
    "tab in a bare key": (b"\tKEY\tY\n", ("variable 'KEY\\tY' contains whitespaces",)),
    "empty key": (b"=x\n", ("no variable name on line '=x'",)),
    "NUL in a value": (b"A=b\0c\n", ("NUL",)),
    "NUL in a key": (b"A\0B=c\n", ("NUL",)),
    "not UTF-8": (b"A=\xff\xfe\n", ("invalid utf8", "line 1")),
}


@kernel
@pytest.mark.parametrize("case", list(BAD_ENV_FILES))
def test_bad_env_file_is_one_line_and_changes_nothing(case: str, cshell: Cshell, state_root: Path,
                                                      tmp_path: Path) -> None:
    ok(cshell("run", "--name", "keep", "busybox", "true"))
    before = state_of(state_root)
    data, needles = BAD_ENV_FILES[case]
    env_file = tmp_path / "bad.env"
    env_file.write_bytes(data)
    error = refused(cshell("run", "--env-file", str(env_file), *IMG), *needles, status=RUN_REFUSED)
    assert str(env_file) in error  # which file
    assert state_of(state_root) == before, f"{case}: the refused run changed the state root"
    ok(cshell("rm", "keep"))


@kernel
def test_nul_in_an_environment_variable_is_refused_by_the_engine(runtime, state_root: Path) -> None:  # noqa: ANN001
    """argv cannot carry a NUL, but the library and the REPL can: the engine refuses it."""
    from cshell.engine.container.containers import RunOptions
    from cshell.errors import UsageError

    for env in (["A=b\0c"], ["A\0B=c"]):
        with pytest.raises(UsageError, match="NUL") as info:
            runtime.create(RunOptions(image="busybox", cmd=["true"], env=env))
        assert "\0" not in info.value.message and info.value.hint  # one printable line, and a hint
    assert runtime.list(all=True) == []


@kernel
def test_an_image_whose_env_execve_refuses_is_refused_at_run(cshell: Cshell, state_root: Path,
                                                             tmp_path: Path) -> None:
    """An image made elsewhere with an ENV entry that has no name: one line naming the image,
    nothing created (before, the container exited 1 without a word)."""
    path = archive(tmp_path / "env.tar", [busybox_layer()], ref="badenv:v1",
                   settings={"Cmd": ["true"], "Env": ["PATH=/bin", "=x"]})
    ok(cshell("load", "-i", str(path)))
    before = snapshot(state_root)
    refused(cshell("run", "badenv:v1"), "image badenv:v1", "invalid environment variable: =x", status=RUN_REFUSED)
    assert snapshot(state_root) == before
    assert ok(cshell("run", "--rm", "-e", "X=1", "busybox", "true")) == ""


@kernel
def test_exec_refuses_what_run_refuses(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    ok(cshell("run", "-d", "--name", "live", "busybox", "sleep", "100"))
    refused(cshell("exec", "-e", "=x", "live", "true"), "invalid environment variable: =x")
    env_file = tmp_path / "bad.env"
    env_file.write_text("KEY X=1\n")
    refused(cshell("exec", "--env-file", str(env_file), "live", "true"), "contains whitespaces")
    ok(cshell("rm", "-f", "live"))


@kernel
def test_nocopy_on_a_bind_makes_no_host_directory(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    """-v creates a missing host directory, but not for a spec it refuses."""
    host = tmp_path / "never-made"
    refused(cshell("run", "-v", f"{host}:/b:nocopy", *IMG), "nocopy", status=RUN_REFUSED)
    assert not host.exists()
    assert not (state_root / "containers").is_dir() or not any((state_root / "containers").iterdir())


@kernel
def test_rm_and_rmi_of_what_is_running(cshell: Cshell, state_root: Path) -> None:
    """rm of a running container without -f, rmi of the image it runs: refused, nothing stops or goes."""
    ok(cshell("run", "-d", "--name", "live", "busybox", "sleep", "100"))
    before = state_of(state_root)
    error = refused(cshell("rm", "live"), "live")
    assert "-f" in next(ln for ln in cshell("rm", "live").stderr.splitlines() if ln.startswith("hint:"))
    assert "running" in error.lower()
    refused(cshell("rmi", "busybox"), "used by a container")
    assert state_of(state_root) == before
    assert json.loads(ok(cshell("inspect", "live")))[0]["State"]["Running"] is True
    ok(cshell("rm", "-f", "live"))


@kernel
def test_a_300_character_name_works_as_docker_allows_it(cshell: Cshell, state_root: Path) -> None:
    name = "n" * 300
    ok(cshell("run", "--name", name, "busybox", "true"))
    assert json.loads(ok(cshell("inspect", name)))[0]["Name"].lstrip("/") == name
    ok(cshell("rm", name))
    assert not list((state_root / "containers").iterdir())


@kernel
def test_repl_lines_fail_alone_and_the_rest_runs(cshell: Cshell, state_root: Path) -> None:
    """-c runs every line (as the REPL does): a bad one prints its error, the next still runs;
    the status is the last line's, as with sh -c."""
    proc = cshell("-c", "frobnicate; run --name after busybox true; ps --bogus; rm after")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 2 and "frobnicate" in errors[0] and "--bogus" in errors[1]
    assert not list((state_root / "containers").iterdir())  # `rm after` ran: the line after the errors


# == E. the shell's own file descriptors =================================================================


@kernel
def test_fifty_containers_leave_the_fd_count_alone(runtime, state_root: Path) -> None:  # noqa: ANN001
    from cshell.engine.container.containers import RunOptions

    def one(i: int) -> None:
        c, code = runtime.run(RunOptions(image="busybox", cmd=["true"], name=f"fd{i}"))
        assert code == 0
        runtime.remove(c)

    one(0)  # the first run imports and caches what every later run uses
    before = sorted(os.listdir("/proc/self/fd"))
    for i in range(1, 51):
        one(i)
    after = sorted(os.listdir("/proc/self/fd"))
    assert len(after) <= len(before), f"fds grew from {len(before)} to {len(after)}: " + \
        str({fd: os.readlink(f"/proc/self/fd/{fd}") for fd in set(after) - set(before) if fd.isdigit()})
    assert runtime.list(all=True) == []
