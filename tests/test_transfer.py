"""save, load, export, import: round trips, hostile archives, and interop with skopeo and umoci."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Cshell, cshell_argv, cshell_env, run_cshell, wait_for

from cshell.engine.image.store import Image, Store
from cshell.engine.state import StateRoot

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="cshell's image commands run as root")
pytestmark = needs_root


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def fails(proc: subprocess.CompletedProcess, status: int = 1) -> str:
    """A clean failure: exit ``status`` (1; a refused `run`: 125, as docker), `error: ...` and `hint: ...`
    lines, no traceback."""
    assert proc.returncode == status, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(("error:", "hint:"))]
    assert [ln.split(":")[0] for ln in lines] == ["error", "hint"], proc.stderr
    return lines[0]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_image(root: Path, ref: str, files: dict[str, bytes]) -> Image:
    """A one-layer image written straight into the store (no container, no unpacking)."""
    store = Store(StateRoot(root).ensure())
    layer_tar = tar_of(files)
    layer = store.layer_from_blob(store.put_blob(layer_tar), len(layer_tar), None, unpack=False)
    config = {"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
              "config": {"Cmd": ["sh"]}, "history": [{"created_by": "test"}]}
    return store.write_image(config, [layer], ref)


@pytest.fixture
def other_root() -> Iterator[Path]:
    """A second, fresh state root: where archives are loaded."""
    path = Path(tempfile.mkdtemp(prefix="cshell-test-load-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def in_root(root: Path) -> Cshell:
    return lambda *args, **kw: run_cshell(root, *args, **kw)


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}  # type: ignore[union-attr]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under the state root, with the content of index.json: 'unchanged' means equal."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.name == "index.json" else None)
            for p in root.rglob("*") if p.name != "lock"}


# -- save ---------------------------------------------------------------------------------------------


def test_save_writes_docker_archive_and_oci_layout(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    image = make_image(state_root, "app:v1", {"hello.txt": b"hello\n"})
    ok(cshell("tag", "app:v1", "app:v2"))
    out = tmp_path / "app.tar"
    ok(cshell("save", "-o", str(out), "app:v1", "app:v2"))
    files = members(out)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert [m["digest"] for m in index["manifests"]] == [image.manifest_digest] * 2
    assert [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]] == ["app:v1", "app:v2"]
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["app:v1", "app:v2"]
    manifest = json.loads(files["manifest.json"])  # one image, both its names
    assert manifest == [{"Config": f"blobs/sha256/{image.id[7:]}", "RepoTags": ["app:v1", "app:v2"],
                         "Layers": [f"blobs/sha256/{image.layers[0].diff_id[7:]}"]}]
    for name, data in files.items():  # every blob is named by its content
        if name.startswith("blobs/sha256/"):
            assert sha(data) == "sha256:" + name.rsplit("/", 1)[1]
    assert {n for n in files if n.startswith("blobs/")} == {
        f"blobs/sha256/{d[7:]}" for d in (image.id, image.manifest_digest, image.layers[0].diff_id)}
    again = tmp_path / "again.tar"
    ok(cshell("save", "-o", str(again), "app:v1", "app:v2"))
    assert again.read_bytes() == out.read_bytes()  # reproducible


def test_save_bare_name_id_and_formats(cshell: Cshell, state_root: Path, tmp_path: Path,
                                       other_root: Path) -> None:
    image = make_image(state_root, "app:v1", {"a": b"a"})
    ok(cshell("tag", "app:v1", "app:v2"))
    make_image(state_root, "other:v1", {"b": b"b"})
    ok(cshell("save", "-o", str(tmp_path / "all.tar"), "app"))  # a bare name: every tag of it
    assert json.loads(members(tmp_path / "all.tar")["manifest.json"])[0]["RepoTags"] == ["app:v1", "app:v2"]
    ok(cshell("save", "-o", str(tmp_path / "id.tar"), image.short_id))  # by id: no name
    assert json.loads(members(tmp_path / "id.tar")["manifest.json"])[0]["RepoTags"] is None
    assert "Loaded image ID: " + image.id in ok(in_root(other_root)("load", "-i", str(tmp_path / "id.tar")))

    ok(cshell("save", "--format", "oci", "-o", str(tmp_path / "oci.tar"), "app:v1"))
    assert "manifest.json" not in members(tmp_path / "oci.tar")
    ok(cshell("save", "--format", "docker", "-o", str(tmp_path / "docker.tar"), "app:v1"))
    legacy = members(tmp_path / "docker.tar")
    assert f"{image.id[7:]}.json" in legacy and "index.json" not in legacy
    assert json.loads(legacy["repositories"]) == {"app": {"v1": image.layers[0].chain_id[7:]}}
    assert any(n.endswith("/layer.tar") for n in legacy)
    for name in ("oci.tar", "docker.tar"):
        assert "Loaded image: app:v1" in ok(in_root(other_root)("load", "-i", str(tmp_path / name)))
        assert Store(StateRoot(other_root)).get_local("app:v1").id == image.id

    assert "unknown format" in fails(cshell("save", "--format", "zip", "-o", str(tmp_path / "x.tar"), "app"))
    assert "no such image" in fails(cshell("save", "-o", str(tmp_path / "x.tar"), "nothere"))
    assert not (tmp_path / "x.tar").exists()


def test_save_and_load_through_pipes(state_root: Path, other_root: Path) -> None:
    image = make_image(state_root, "app:v1", {"a": b"a"})
    saved = subprocess.run([*cshell_argv(), "--root", str(state_root), "save", "app:v1"], capture_output=True,
                           env=cshell_env(), stdin=subprocess.DEVNULL, check=True).stdout
    assert saved[257:262] == b"ustar"  # a tar went to stdout
    loaded = subprocess.run([*cshell_argv(), "--root", str(other_root), "load"], input=gzip.compress(saved),
                            capture_output=True, env=cshell_env(), check=True)
    assert loaded.stdout.decode() == "Loaded image: app:v1\n"
    assert Store(StateRoot(other_root)).get_local("app:v1").id == image.id


def test_save_refuses_a_terminal(state_root: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    make_image(state_root, "app:v1", {"a": b"a"})
    child = pexpect.spawn(cshell_argv()[0], [*cshell_argv()[1:], "--root", str(state_root), "save", "app:v1"],
                          env=cshell_env(), timeout=30)
    child.expect("cowardly refusing to save a tar to a terminal")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1


def test_help_teaches_the_formats(cshell: Cshell) -> None:
    text = ok(cshell("help", "save"))
    assert "manifest.json" in text and "index.json" in text and "blobs/sha256" in text
    text = ok(cshell("help", "load"))
    assert "sha256" in text and "size" in text and "symlink" in text
    assert "mount namespace" in ok(cshell("help", "export"))
    assert "layer" in ok(cshell("help", "import"))


# -- load: what the store gets -------------------------------------------------------------------------


def test_load_keeps_ids_and_moves_names(cshell: Cshell, state_root: Path, tmp_path: Path, other_root: Path) -> None:
    image = make_image(state_root, "app:v1", {"a": b"new"})
    ok(cshell("save", "-o", str(tmp_path / "app.tar"), "app:v1"))
    old = make_image(other_root, "app:v1", {"a": b"old"})
    out = ok(in_root(other_root)("load", "-i", str(tmp_path / "app.tar")))
    assert out.splitlines() == [f"The image app:v1 already exists, renaming the old one with ID {old.id} "
                                "to empty string", "Loaded image: app:v1"]
    store = Store(StateRoot(other_root))
    assert store.get_local("app:v1").manifest_digest == image.manifest_digest
    assert store.find(old.id) is not None and store.find(old.id).refs == []  # kept, untagged
    assert not list((other_root / "images/blobs/sha256").glob(".ingest-*"))
    assert not list((other_root / "images").glob(".load-*"))
    ok(in_root(other_root)("load", "-i", str(tmp_path / "app.tar")))  # loading again changes nothing
    assert Store(StateRoot(other_root)).get_local("app:v1").manifest_digest == image.manifest_digest


def oci_archive(path: Path, layer: bytes, *, compress: bool = False, ref_name: str = "made:v1",
                config_extra: dict | None = None) -> Path:
    """An OCI layout tar written by hand (the way other tools write them)."""
    blob = gzip.compress(layer) if compress else layer
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}, **(config_extra or {})}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else ""),
                    "digest": sha(blob), "size": len(blob)}]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": ref_name}}]}).encode()
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index,
             **{f"blobs/sha256/{sha(b)[7:]}": b for b in (config, manifest, blob)}}
    path.write_bytes(tar_of(files, dirs=("blobs", "blobs/sha256")))
    return path


def test_load_gzip_layers_stored_uncompressed(cshell: Cshell, tmp_path: Path, state_root: Path) -> None:
    layer = tar_of({"f": b"x" * 10000})
    out = ok(cshell("load", "-i", str(oci_archive(tmp_path / "gz.tar", layer, compress=True))))
    assert out == "Loaded image: made:v1\n"
    image = Store(StateRoot(state_root)).get_local("made:v1")
    assert [layer.diff_id for layer in image.layers] == [sha(layer)]
    assert (state_root / "images/blobs/sha256" / sha(layer)[7:]).read_bytes() == layer
    assert not (state_root / "images/blobs/sha256" / sha(gzip.compress(layer))[7:]).exists()

    out = ok(cshell("load", "-i", str(oci_archive(tmp_path / "bare.tar", layer, ref_name="latest"))))
    assert out.startswith("Loaded image ID: sha256:")  # a bare tag names no image, as with docker


def test_load_zstd_without_a_module_is_a_clear_error(cshell: Cshell, tmp_path: Path, state_root: Path) -> None:
    try:
        import zstandard  # noqa: F401
        pytest.skip("a zstd module is installed")
    except ImportError:
        pass
    zstd_blob = bytes.fromhex("28b52ffd") + b"\0" * 60  # the frame magic is all it takes to be sniffed
    path = tmp_path / "zstd.tar"
    oci_archive(path, tar_of({"f": b"x"}))
    files = members(path)
    manifest_name = next(n for n, d in files.items() if _is_manifest(d))
    manifest = json.loads(files[manifest_name])
    manifest["layers"][0].update(digest=sha(zstd_blob), size=len(zstd_blob),
                                 mediaType="application/vnd.oci.image.layer.v1.tar+zstd")
    del files[manifest_name]
    new_manifest = json.dumps(manifest).encode()
    files[f"blobs/sha256/{sha(new_manifest)[7:]}"] = new_manifest
    files[f"blobs/sha256/{sha(zstd_blob)[7:]}"] = zstd_blob
    index = json.loads(files["index.json"])
    index["manifests"][0].update(digest=sha(new_manifest), size=len(new_manifest))
    files["index.json"] = json.dumps(index).encode()
    path.write_bytes(tar_of(files))
    assert "zstd" in fails(cshell("load", "-i", str(path)))


# -- load: hostile archives ----------------------------------------------------------------------------

Members = list[tuple[tarfile.TarInfo, bytes]]


def read_members(path: Path) -> Members:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]


def write_members(path: Path, items: Members) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in items:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    path.write_bytes(buf.getvalue())
    return path


def entry(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    return info, data


def _blob_of(items: Members, predicate: Callable[[bytes], bool]) -> int:
    return next(i for i, (m, d) in enumerate(items) if m.name.startswith("blobs/sha256/") and predicate(d))


def _is_layer(d: bytes) -> bool:
    return len(d) >= 512 and d[257:262] == b"ustar"


def _is_manifest(d: bytes) -> bool:
    return b'"layers": [' in d  # (a config has "type": "layers")


def _edit_json(name: str, change: Callable[[object], object]) -> Callable[[Members], Members]:
    def edit(items: Members) -> Members:
        return [(m, json.dumps(change(json.loads(d))).encode() if m.name == name else d) for m, d in items]
    return edit


def _drop(predicate: Callable[[bytes], bool]) -> Callable[[Members], Members]:
    def edit(items: Members) -> Members:
        i = _blob_of(items, predicate)
        return items[:i] + items[i + 1:]
    return edit


def _flip_byte(items: Members) -> Members:
    i = _blob_of(items, _is_layer)
    data = bytearray(items[i][1])
    data[600] ^= 0xFF  # same size, other content: only the sha256 can tell
    return items[:i] + [(items[i][0], bytes(data))] + items[i + 1:]


def _grow(items: Members) -> Members:
    i = _blob_of(items, _is_layer)
    return items[:i] + [(items[i][0], items[i][1] + b"\0" * 512)] + items[i + 1:]


def _bad_digest(digest: str) -> Callable[[Members], Members]:
    def change(index: dict) -> dict:
        index["manifests"][0]["digest"] = digest
        return index
    return _edit_json("index.json", change)


def _huge_index(items: Members) -> Members:
    return [(m, d + b" " * (5 << 20) if m.name == "index.json" else d) for m, d in items]


HOSTILE: dict[str, tuple[Callable[[Members], Members], str]] = {
    "dot-dot entry": (lambda items: [*items, entry("../escaped")], "'..'"),
    "dot-dot inside": (lambda items: [*items, entry("blobs/../../escaped")], "'..'"),
    "absolute path": (lambda items: [*items, entry("/tmp/cshell-escaped")], "absolute"),
    "symlink member": (lambda items: [*items, entry("evil", b"", tarfile.SYMTYPE, "/etc/shadow")], "symlink"),
    "symlink that climbs": (lambda items: [*items, entry("a/evil", b"", tarfile.SYMTYPE, "../../x")], "outside"),
    "symlink to nothing": (lambda items: [*items, entry("evil", b"", tarfile.SYMTYPE, "nothere")], "symlink"),
    "symlink loop": (lambda items: [*items, entry("l1", b"", tarfile.SYMTYPE, "l2"),
                                    entry("l2", b"", tarfile.SYMTYPE, "l1")], "loop"),
    "hardlink member": (lambda items: [*items, entry("evil", b"", tarfile.LNKTYPE, "oci-layout")], "hardlink"),
    "device member": (lambda items: [*items, entry("dev", b"", tarfile.CHRTYPE)], "not a regular file"),
    "index points at a missing manifest": (_drop(_is_manifest), "missing"),
    "manifest points at a missing layer": (_drop(_is_layer), "missing"),
    "layer content does not match its digest": (_flip_byte, "does not match"),
    "layer size does not match its descriptor": (_grow, "bytes"),
    "non-hex digest": (_bad_digest("sha256:" + "Z" * 64), "invalid digest"),
    "digest that climbs": (_bad_digest("sha256:../../../../etc/passwd"), "invalid digest"),
    "oversized index.json": (_huge_index, "MiB"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_archive_leaves_the_store_unchanged(case: str, cshell: Cshell, state_root: Path,
                                                    tmp_path: Path, other_root: Path) -> None:
    make_image(state_root, "here:v1", {"x": b"already here"})
    make_image(other_root, "app:v1", {"big": os.urandom(4096)})
    good = tmp_path / "good.tar"
    ok(in_root(other_root)("save", "-o", str(good), "app:v1"))
    edit, words = HOSTILE[case]
    bad = write_members(tmp_path / "bad.tar", edit(read_members(good)))
    before = snapshot(state_root)
    error = fails(cshell("load", "-i", str(bad)))
    assert words in error, error
    assert snapshot(state_root) == before  # same index.json, no new blob, no temp file, no layer dir
    assert not Path("/tmp/cshell-escaped").exists()
    ok(cshell("load", "-i", str(good)))  # the good one still loads: the store is intact


def test_hostile_docker_archives(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    make_image(state_root, "here:v1", {"x": b"x"})
    layer = tar_of({"f": b"content"})
    config = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}).encode()
    cases = {
        "wrong diff_id": ({"manifest.json": json.dumps([{"Config": "c.json", "RepoTags": ["d:v1"],
                                                         "Layers": ["l/layer.tar"]}]).encode(),
                           "c.json": json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha(b"other")]}}).encode(),
                           "l/layer.tar": layer}, "diff_id"),
        "config named by another digest": ({"manifest.json": json.dumps([{
            "Config": f"{'a' * 64}.json", "RepoTags": ["d:v1"], "Layers": ["l/layer.tar"]}]).encode(),
            f"{'a' * 64}.json": config, "l/layer.tar": layer}, "does not match"),
        "layer path climbs": ({"manifest.json": json.dumps([{"Config": "c.json", "RepoTags": ["d:v1"],
                                                             "Layers": ["../l/layer.tar"]}]).encode(),
                               "c.json": config}, "'..'"),
        "missing layer": ({"manifest.json": json.dumps([{"Config": "c.json", "RepoTags": ["d:v1"],
                                                         "Layers": ["l/layer.tar"]}]).encode(),
                           "c.json": config}, "missing"),
        "not json": ({"manifest.json": b"[{"}, "not valid JSON"),
        "no index at all": ({"hello": b"x"}, "neither index.json"),
    }
    before = snapshot(state_root)
    for name, (files, words) in cases.items():
        path = tmp_path / "d.tar"
        path.write_bytes(tar_of(files))
        assert words in fails(cshell("load", "-i", str(path))), name
        assert snapshot(state_root) == before, name
    (tmp_path / "junk").write_bytes(b"not a tar at all" * 100)
    assert "not a tar archive" in fails(cshell("load", "-i", str(tmp_path / "junk")))
    assert "no such file" in fails(cshell("load", "-i", str(tmp_path / "nothere.tar")))

    good = {"manifest.json": json.dumps([{"Config": "c.json", "RepoTags": ["docker.io/library/d:v1"],
                                          "Layers": ["l/layer.tar"]}]).encode(), "c.json": config,
            "l/layer.tar": gzip.compress(layer)}  # old docker: names are not digests, layers may be gzip
    (tmp_path / "good.tar").write_bytes(tar_of(good))
    assert ok(cshell("load", "-i", str(tmp_path / "good.tar"))) == "Loaded image: d:v1\n"
    assert Store(StateRoot(state_root)).get_local("d:v1").id == sha(config)


# -- real containers: save/load/run, export/import ---------------------------------------------------


@pytest.mark.kernel
def test_save_load_into_fresh_root_then_run(cshell: Cshell, tmp_path: Path, other_root: Path) -> None:
    ok(cshell("run", "--name", "maker", "busybox", "sh", "-c", "echo made-here > /made.txt"))
    image_id = ok(cshell("commit", "maker", "app:v1")).strip()
    ok(cshell("rm", "maker"))
    ok(cshell("tag", "app:v1", "app:also"))
    archive = tmp_path / "app.tar"
    ok(cshell("save", "-o", str(archive), "app:v1", "app:also"))
    fresh = in_root(other_root)
    assert ok(fresh("load", "-i", str(archive))).splitlines() == ["Loaded image: app:v1", "Loaded image: app:also"]
    assert ok(fresh("images", "-q")).split() == [image_id.removeprefix("sha256:")[:12]]
    assert ok(fresh("run", "--rm", "app:also", "cat", "/made.txt")) == "made-here\n"
    assert ok(cshell("run", "--rm", "app:v1", "cat", "/made.txt")) == "made-here\n"


def tar_names(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar}


def tar_file(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.extractfile(name).read()  # type: ignore[union-attr]


@pytest.mark.kernel
def test_export_running_and_stopped_then_import(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    ok(cshell("run", "-d", "--name", "live", "busybox", "sh", "-c",
              "echo written > /data.txt; rm /bin/vi; ln -s /etc/shadow /link; sleep 300"))
    assert wait_for(lambda: cshell("exec", "live", "test", "-L", "/link").returncode == 0)
    def our_mounts() -> list[str]:  # other sessions may mount meanwhile: look at ours only
        return [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines() if str(state_root) in ln]

    mounts_before = our_mounts()
    for state in ("running", "stopped"):
        if state == "stopped":
            ok(cshell("stop", "-t", "0", "live"))
        out = tmp_path / f"{state}.tar"
        ok(cshell("export", "-o", str(out), "live"))
        data = out.read_bytes()
        names = tar_names(data)
        assert "bin/busybox" in names and names["bin/busybox"].isreg(), state
        assert tar_file(data, "data.txt") == b"written\n", state
        assert "bin/vi" not in names, state  # the whiteout hides it, as in the container
        assert names["link"].issym() and names["link"].linkname == "/etc/shadow", state
        assert names["proc"].isdir() and not [n for n in names if n.startswith(("proc/", "sys/", "dev/"))], state
        assert names["etc/hosts"].size == 0, state  # the init layer's placeholder, as docker
        assert our_mounts() == mounts_before, state
    assert tar_names((tmp_path / "running.tar").read_bytes()).keys() == tar_names(data).keys()

    piped = subprocess.run([*cshell_argv(), "--root", str(state_root), "export", "live"], capture_output=True,
                           env=cshell_env(), stdin=subprocess.DEVNULL, timeout=60)
    assert piped.returncode == 0 and tar_file(piped.stdout, "data.txt") == b"written\n"

    image_id = ok(cshell("import", "-c", 'CMD ["cat", "/data.txt"]', "-m", "flat", str(tmp_path / "stopped.tar"),
                         "flat:v1")).strip()
    assert image_id.startswith("sha256:")
    assert ok(cshell("run", "--rm", "flat:v1")) == "written\n"
    image = Store(StateRoot(state_root)).get_local("flat:v1")
    assert len(image.layers) == 1 and image.history[0]["comment"] == "flat"
    gz = tmp_path / "stopped.tar.gz"
    gz.write_bytes(gzip.compress((tmp_path / "stopped.tar").read_bytes()))
    ok(cshell("import", str(gz), "flat:gz"))
    assert ok(cshell("run", "--rm", "flat:gz", "/bin/cat", "/data.txt")) == "written\n"
    assert Store(StateRoot(state_root)).get_local("flat:gz").history[0]["comment"] == f"Imported from {gz}"
    ok(cshell("rm", "live"))


@pytest.mark.kernel
def test_export_refuses_a_terminal_and_unknown_containers(cshell: Cshell, state_root: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    ok(cshell("run", "--name", "done", "busybox", "true"))
    child = pexpect.spawn(cshell_argv()[0], [*cshell_argv()[1:], "--root", str(state_root), "export", "done"],
                          env=cshell_env(), timeout=30)
    child.expect("cowardly refusing to export a tar to a terminal")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "no such container" in fails(cshell("export", "-o", "/tmp/never.tar", "nothere"))
    ok(cshell("rm", "done"))


# -- interop: skopeo and umoci read what we write, we load what they write -----------------------


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name}; `make deps` does it)")
    return path


def run_tool(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{argv}: {proc.stderr}"
    return proc.stdout


def test_skopeo_reads_our_store_and_our_archives(cshell: Cshell, state_root: Path, tmp_path: Path,
                                                 other_root: Path) -> None:
    skopeo = tool("skopeo")
    app = make_image(state_root, "app:latest", {"a": b"app"})
    other = make_image(state_root, "other:latest", {"b": b"other"})  # two `latest`s in one index
    layout = state_root / "images"
    for image, ref in ((app, "app:latest"), (other, "other:latest")):
        info = json.loads(run_tool(skopeo, "inspect", f"oci:{layout}:{ref}"))
        assert info["Digest"] == image.manifest_digest
        assert info["Layers"] == [layer.diff_id for layer in image.layers]

    ok(cshell("save", "-o", str(tmp_path / "saved.tar"), "app:latest"))
    for transport in ("docker-archive", "oci-archive"):
        info = json.loads(run_tool(skopeo, "inspect", f"{transport}:{tmp_path / 'saved.tar'}"))
        assert info["Layers"] == [layer.diff_id for layer in app.layers], transport

    copied = tmp_path / "copied.tar"  # skopeo would gzip the layers for an oci: target otherwise
    run_tool(skopeo, "copy", "-q", "--dest-oci-accept-uncompressed-layers",
             f"oci:{layout}:other:latest",
             f"oci-archive:{copied}:other:latest")
    assert json.loads(run_tool(skopeo, "inspect", f"oci-archive:{copied}"))["Layers"] == \
        [layer.diff_id for layer in other.layers]
    assert ok(in_root(other_root)("load", "-i", str(copied))) == "Loaded image: other:latest\n"
    assert Store(StateRoot(other_root)).get_local("other:latest").id == other.id

    docker_copy = tmp_path / "docker-copy.tar"
    run_tool(skopeo, "copy", "-q", f"docker-archive:{tmp_path / 'saved.tar'}", f"docker-archive:{docker_copy}:app:copy")
    assert ok(in_root(other_root)("load", "-i", str(docker_copy))) == "Loaded image: app:copy\n"
    assert Store(StateRoot(other_root)).get_local("app:copy").id == app.id


@pytest.mark.kernel
def test_skopeo_layout_loads_and_runs(cshell: Cshell, tmp_path: Path, other_root: Path) -> None:
    skopeo = tool("skopeo")
    ok(cshell("run", "--name", "maker", "busybox", "sh", "-c", "echo via-skopeo > /m.txt"))
    ok(cshell("commit", "maker", "app:v1"))
    ok(cshell("rm", "maker"))
    ok(cshell("save", "-o", str(tmp_path / "ours.tar"), "app:v1"))
    layout = tmp_path / "layout"
    # skopeo recompresses the layers with gzip and names the image by a bare ref.name.
    run_tool(skopeo, "copy", "-q", "--dest-compress", f"oci-archive:{tmp_path / 'ours.tar'}", f"oci:{layout}:foo")
    subprocess.run(["tar", "-C", str(layout), "-cf", str(tmp_path / "layout.tar"), "."], check=True)
    out = ok(in_root(other_root)("load", "-i", str(tmp_path / "layout.tar")))
    assert out.startswith("Loaded image ID: sha256:")
    image_id = out.split()[-1]
    assert ok(in_root(other_root)("run", "--rm", image_id, "cat", "/m.txt")) == "via-skopeo\n"


@pytest.mark.kernel
def test_umoci_image_loads_and_runs(cshell: Cshell, tmp_path: Path) -> None:
    umoci = tool("umoci")
    busybox = shutil.which("busybox", path="/bin:/usr/bin")
    if busybox is None:
        pytest.skip("busybox-static is not installed")
    layout, bundle = tmp_path / "layout", tmp_path / "bundle"
    run_tool(umoci, "init", "--layout", str(layout))
    run_tool(umoci, "new", "--image", f"{layout}:tiny")
    run_tool(umoci, "unpack", "--image", f"{layout}:tiny", str(bundle))
    (bundle / "rootfs/bin").mkdir(parents=True)
    shutil.copy(busybox, bundle / "rootfs/bin/busybox")
    (bundle / "rootfs/greeting").write_text("from umoci\n")
    run_tool(umoci, "repack", "--image", f"{layout}:tiny", str(bundle))
    run_tool(umoci, "config", "--image", f"{layout}:tiny", "--config.cmd", "/bin/busybox",
             "--config.cmd", "cat", "--config.cmd", "/greeting")
    subprocess.run(["tar", "-C", str(layout), "-cf", str(tmp_path / "umoci.tar"), "."], check=True)
    out = ok(cshell("load", "-i", str(tmp_path / "umoci.tar")))
    assert out.startswith("Loaded image ID: sha256:")  # umoci's ref.name is a bare tag
    image_id = out.split()[-1]
    ok(cshell("tag", image_id, "tiny:umoci"))
    assert ok(cshell("run", "--rm", "tiny:umoci")) == "from umoci\n"
