"""Faults: cshell killed (SIGKILL) in the middle of commit, build, pull, load and rm, and a full disk.

After each, the next start reconciles (leftovers are backdated past the grace
that protects another shell's work in progress): no half-written blob, no
half-unpacked layer, no half image in index.json, every blob that index.json
reaches present and hashing to its digest, and the state root usable again.
Partial downloads (*.part) may stay: the next pull resumes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import REPO, Cshell, cshell_argv, cshell_env, run_cshell, wait_for
from registryd import FaultProxy, Registry, serve
from test_adversarial import archive, busybox_layer, layer, m, ok, push_raw, refused

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="cshell runs as root"), pytest.mark.kernel,
              pytest.mark.usefixtures("client_config")]


# -- helpers --------------------------------------------------------------------------------------------


def start(root: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*cshell_argv(), "--root", str(root), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=cshell_env(), cwd=REPO)


def kill_when(proc: subprocess.Popen[bytes], predicate: Callable[[], object], timeout: float = 30) -> None:
    """SIGKILL the shell as soon as predicate() holds (it must hold before the shell finishes)."""
    try:
        assert wait_for(lambda: predicate() or proc.poll() is not None, timeout=timeout, interval=0.002)
        assert proc.poll() is None, "the operation finished before it could be interrupted"
    finally:
        proc.kill()
        proc.wait()


def ingesting(root: Path) -> Callable[[], bool]:
    blobs = root / "images" / "blobs" / "sha256"
    return lambda: blobs.is_dir() and any(p.stat().st_size > (1 << 20) for p in blobs.glob(".ingest-*")
                                          if p.exists())


def backdate(root: Path, seconds: float = 3600) -> None:
    """Make everything look an hour old: what a crash left is now past reconcile's grace."""
    when = time.time() - seconds
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (when, when), follow_symlinks=False)


def leftovers(root: Path) -> list[str]:
    found = [str(p) for p in root.glob("images/blobs/sha256/.ingest-*")]
    found += [str(p) for p in root.glob("layers/*.unpacking")]
    found += [str(p) for p in root.rglob(".*.tmp")]
    found += [str(p) for p in root.glob("containers/*") if not (p / "state.json").exists()]
    return found


def sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def assert_consistent(root: Path) -> None:
    """Every blob index.json reaches is there and hashes to its name; every unpacked layer is whole."""
    blobs = root / "images" / "blobs" / "sha256"
    index = json.loads((root / "images" / "index.json").read_text()) if (root / "images" / "index.json").exists() \
        else {"manifests": []}
    for entry in index["manifests"]:
        manifest_path = blobs / entry["digest"][7:]
        assert sha_file(manifest_path) == entry["digest"], f"manifest {entry['digest']} is damaged"
        manifest = json.loads(manifest_path.read_bytes())
        for desc in [manifest["config"], *manifest["layers"]]:
            path = blobs / desc["digest"][7:]
            assert path.exists(), f"{desc['digest']} is missing"
            assert sha_file(path) == desc["digest"] and path.stat().st_size == desc["size"], desc
    for d in (root / "layers").iterdir() if (root / "layers").is_dir() else []:
        assert (d / "diff").is_dir() and (d / "layer.json").exists(), f"half layer {d}"
    assert leftovers(root) == []


def reconcile(root: Path) -> None:
    backdate(root)
    ok(run_cshell(root, "ps", "-a"))  # any start reconciles


def index_of(root: Path) -> bytes:
    path = root / "images" / "index.json"
    return path.read_bytes() if path.exists() else b""


# == D. kill -9 in the middle ================================================================================


def test_kill_during_commit(cshell: Cshell, state_root: Path) -> None:
    """The container stays as it was (running, not frozen); no half blob, no image."""
    ok(cshell("run", "-d", "--name", "live", "busybox", "sh", "-c",
              "dd if=/dev/urandom of=/big bs=1M count=256 2>/dev/null; touch /ready; exec sleep 1000"))
    assert wait_for(lambda: cshell("exec", "live", "cat", "/ready").returncode == 0, timeout=60, interval=0.2)
    before = index_of(state_root)
    kill_when(start(state_root, "commit", "live", "half:v1"), ingesting(state_root))
    reconcile(state_root)
    assert index_of(state_root) == before and "half" not in ok(cshell("images"))
    assert_consistent(state_root)
    assert ok(cshell("exec", "live", "echo", "still-running")) == "still-running\n"  # thawed, answers
    ok(cshell("commit", "live", "whole:v1"))  # and can be committed now
    assert_consistent(state_root)
    ok(cshell("rm", "-f", "live"))


def test_kill_during_build(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    """Killed while the RUN step's layer is being written: no image, no step container, no half blob."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN dd if=/dev/urandom of=/big bs=1M count=256 2>/dev/null\n")
    ok(cshell("images"))  # busybox is made first, so the kill lands in the step
    ok(cshell("run", "--rm", "busybox", "true"))
    before = index_of(state_root)
    kill_when(start(state_root, "build", "-t", "half", str(ctx)), ingesting(state_root), timeout=60)
    reconcile(state_root)
    assert index_of(state_root) == before
    assert not list((state_root / "containers").iterdir()), "the killed build's step container is still there"
    assert_consistent(state_root)
    ok(cshell("run", "--rm", "busybox", "true"))


def test_kill_during_load(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    path = archive(tmp_path / "big.tar", [busybox_layer(), layer(m("big", data=os.urandom(200 << 20)))],
                   ref="big:v1")
    kill_when(start(state_root, "load", "-i", str(path)), ingesting(state_root))
    reconcile(state_root)
    assert index_of(state_root) in (b"",) or "big" not in ok(cshell("images"))
    assert_consistent(state_root)
    ok(cshell("load", "-i", str(path)))  # the same archive loads whole now
    assert_consistent(state_root)


def test_kill_during_rm(cshell: Cshell, state_root: Path) -> None:
    """rm -f killed while deleting a big rw layer: the next start finishes or keeps a removable container."""
    ok(cshell("run", "--name", "many", "busybox", "sh", "-c",
              "mkdir /m && cd /m && for i in $(seq 1 4000); do mkdir d$i; echo $i > d$i/f; done"))
    rw = next((state_root / "containers").iterdir()) / "rw"
    proc = start(state_root, "rm", "-f", "many")
    kill_when(proc, lambda: not (rw / "m" / "d1").exists(), timeout=30)  # deleting has begun
    reconcile(state_root)
    if list((state_root / "containers").iterdir()):  # still listed: it can be removed
        ok(cshell("rm", "-f", "many"))
    assert not list((state_root / "containers").iterdir())
    assert leftovers(state_root) == []
    ok(cshell("run", "--rm", "--name", "many", "busybox", "true"))  # the name is free again

@pytest.mark.parametrize("delay", [0.0, 0.03, 0.08, 0.3])
def test_kill_during_run(cshell: Cshell, state_root: Path, delay: float) -> None:
    """The shell killed DELAY s into an attached `run`: as with docker's CLI, the container
    either never existed or lives on under its shim; either way `rm -f` leaves nothing."""
    ok(cshell("image", "bootstrap", "busybox"))
    proc = start(state_root, "run", "--name", "victim", "-p", "4999:80", "busybox", "sleep", "1000")
    time.sleep(delay)
    proc.kill()
    proc.wait()
    reconcile(state_root)
    listed = ok(cshell("ps", "-a"))
    if "victim" in listed:
        ok(cshell("rm", "-f", "victim"))
    assert not list((state_root / "containers").iterdir())
    assert leftovers(state_root) == []
    ok(cshell("run", "--rm", "--name", "victim", "-p", "4999:80", "busybox", "true"))  # name and port free


# -- pull through a proxy that stalls mid-layer ---------------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    yield from serve("open")


def test_kill_during_pull_then_resume(registry: Registry, cshell: Cshell, state_root: Path) -> None:
    big = layer(m("big", data=os.urandom(8 << 20)))
    push_raw(registry, "faults/app", [busybox_layer(), big])
    proxy = FaultProxy(registry.host, stall=True)
    try:
        ref = f"{proxy.host}/faults/app:v1"
        parts = state_root / "distribution" / "downloads"
        kill_when(start(state_root, "pull", ref),
                  lambda: parts.is_dir() and any(p.stat().st_size > (1 << 20) for p in parts.glob("*.part")))
        reconcile(state_root)
        assert "faults/app" not in ok(cshell("images"))
        assert_consistent(state_root)
        assert list(parts.glob("*.part")), "the partial download should stay, to be resumed"
        proxy.stall = False
        proxy.release.set()
        out = ok(cshell("pull", ref))
        assert "Pull complete" in out
        assert any(r.startswith("bytes=") for _, path, r in proxy.requests[-4:] if "/blobs/" in path), \
            "the second pull did not resume with a Range request"
        assert not list(parts.glob("*.part"))
        assert_consistent(state_root)
    finally:
        proxy.stop()


# == disk full: a 16 MB tmpfs as the state root ===================================================================


@pytest.fixture
def small_root() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="cshell-full-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(base)], check=True)
    root = base / "root"
    try:
        yield root
    finally:
        from conftest import _remove_leftovers

        _remove_leftovers(root)
        subprocess.run(["umount", "-l", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def assert_full_refused(proc: subprocess.CompletedProcess) -> None:
    refused(proc, "no space left on device")


def test_disk_full_during_commit(small_root: Path) -> None:
    ok(run_cshell(small_root, "run", "--name", "big", "busybox", "sh", "-c",
                  "dd if=/dev/urandom of=/f bs=1M count=8 2>/dev/null; true"))
    before = index_of(small_root)
    assert_full_refused(run_cshell(small_root, "commit", "big", "big:v1"))
    assert index_of(small_root) == before
    assert leftovers(small_root) == []
    assert_consistent(small_root)
    ok(run_cshell(small_root, "rm", "big"))
    assert ok(run_cshell(small_root, "run", "--rm", "busybox", "echo", "usable")) == "usable\n"


def test_disk_full_during_load(small_root: Path, tmp_path: Path) -> None:
    ok(run_cshell(small_root, "images"))
    path = archive(tmp_path / "big.tar", [busybox_layer(), layer(m("big", data=os.urandom(20 << 20)))])
    assert_full_refused(run_cshell(small_root, "load", "-i", str(path)))
    assert leftovers(small_root) == []
    assert "evil" not in ok(run_cshell(small_root, "images"))
    assert_consistent(small_root)
    assert ok(run_cshell(small_root, "run", "--rm", "busybox", "echo", "usable")) == "usable\n"


def test_disk_full_during_pull(registry: Registry, small_root: Path) -> None:
    push_raw(registry, "faults/full", [busybox_layer(), layer(m("big", data=os.urandom(20 << 20)))])
    assert_full_refused(run_cshell(small_root, "pull", f"{registry.host}/faults/full:v1"))
    assert leftovers(small_root) == []
    assert "faults/full" not in ok(run_cshell(small_root, "images"))
    assert_consistent(small_root)
    shutil.rmtree(small_root / "distribution" / "downloads", ignore_errors=True)  # the partial download
    assert ok(run_cshell(small_root, "run", "--rm", "busybox", "echo", "usable")) == "usable\n"


def test_container_that_fills_the_disk_keeps_its_shim(small_root: Path) -> None:
    """The container fills the state root's disk, then writes more: the shim lives on, `run`
    prints everything and exits with the container's code, and `inspect` says the log is cut."""
    ok(run_cshell(small_root, "image", "bootstrap", "busybox"))
    script = "echo before; dd if=/dev/zero of=/fill bs=64k 2>/dev/null; echo after-full; seq 1 100000; exit 3"
    proc = run_cshell(small_root, "run", "--name", "filler", "busybox", "sh", "-c", script)
    assert proc.returncode == 3, proc
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["before", "after-full"] and lines[-1] == "100000" and len(lines) == 100002
    assert "log cut short" in proc.stderr and "disk was full" in proc.stderr, proc.stderr
    state = json.loads(next((small_root / "containers").iterdir()).joinpath("state.json").read_text())
    assert (state["status"], state["exit_code"]) == ("exited", 3)
    note = ok(run_cshell(small_root, "inspect", "--format", "{{.State.LogError}}", "filler"))
    assert "disk was full" in note and "bytes of output were not written" in note
    logs = run_cshell(small_root, "logs", "filler")
    assert logs.returncode == 0 and logs.stdout.startswith("before\n") and "log cut short" in logs.stderr
    ok(run_cshell(small_root, "rm", "filler"))
    assert ok(run_cshell(small_root, "run", "--rm", "busybox", "echo", "usable")) == "usable\n"


def _unpackers(root: Path) -> list[int]:
    """Processes chroot'ed into one of the state root's layer directories (the unpacking child)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/root").startswith(str(root / "layers")):
                    found.append(int(entry))
    return found


def test_kill_during_unpack_takes_the_unpacker_along(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    """The shell killed while a layer unpacks: its unpacking child dies with it (it would
    otherwise write on for minutes), and the next start removes the half layer at once."""
    files = [m(f"big/f{i}", data=os.urandom(4 << 20)) for i in range(60)]
    path = archive(tmp_path / "big.tar", [busybox_layer(), layer(*files)], ref="big:v1")
    ok(cshell("load", "-i", str(path)))
    unpacking = state_root / "layers"
    kill_when(start(state_root, "run", "--rm", "big:v1", "true"),
              lambda: any(unpacking.glob("*.unpacking/diff/big/f1")), timeout=60)
    assert wait_for(lambda: not _unpackers(state_root), timeout=2), "the unpacker outlived its shell"
    assert list(unpacking.glob("*.unpacking"))
    time.sleep(1.1)  # past the grace that protects a partial in its first second
    ok(cshell("ps", "-a"))  # no backdating: the maker is gone, so it goes now
    assert not list(unpacking.glob("*.unpacking"))
    assert ok(cshell("run", "--rm", "big:v1", "sh", "-c", "ls /big | wc -l")).strip() == "60"


def test_killed_commit_is_reported_and_repaired_at_once(cshell: Cshell, state_root: Path) -> None:
    ok(cshell("run", "-d", "--name", "live", "busybox", "sh", "-c",
              "dd if=/dev/urandom of=/big bs=1M count=256 2>/dev/null; touch /ready; exec sleep 1000"))
    assert wait_for(lambda: cshell("exec", "live", "cat", "/ready").returncode == 0, timeout=60, interval=0.2)
    kill_when(start(state_root, "commit", "live", "half:v1"), ingesting(state_root))
    time.sleep(1.1)
    check = cshell("system", "check")
    assert check.returncode == 1, check
    assert "left by an interrupted commit" in check.stdout and "MB" in check.stdout, check.stdout
    assert list((state_root / "images" / "blobs" / "sha256").glob(".ingest-commit-*"))
    ok(cshell("system", "check", "--repair"))
    assert leftovers(state_root) == []
    kill_when(start(state_root, "commit", "live", "half:v2"), ingesting(state_root))
    time.sleep(1.1)
    pruned = ok(cshell("system", "prune", "-f"))
    assert "interrupted" in pruned or "commit" in pruned, pruned
    assert leftovers(state_root) == []
    ok(cshell("rm", "-f", "live"))


# == inodes exhausted: a tmpfs with room for bytes but for few files =================================================


@pytest.fixture
def few_inodes() -> Iterator[Path]:
    """A 64 MB tmpfs that holds at most 600 files and directories: ENOSPC with most blocks free."""
    base = Path(tempfile.mkdtemp(prefix="cshell-few-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,nr_inodes=600", "tmpfs", str(base)], check=True)
    root = base / "root"
    try:
        yield root
    finally:
        from conftest import _remove_leftovers

        _remove_leftovers(root)
        subprocess.run(["umount", "-l", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def many_files(n: int) -> bytes:
    return layer(m("many", tarfile.DIRTYPE, mode=0o755), *(m(f"many/f{i}", data=b"x") for i in range(n)))


def assert_out_of_inodes(proc: subprocess.CompletedProcess, status: int = 1) -> str:
    """The words say the disk ran out of inodes: not blocks, not a damaged layer, no errno."""
    error = refused(proc, "no space left", "(inodes", status=status)
    assert "damaged" not in proc.stderr and "hostile" not in proc.stderr and "Errno" not in proc.stderr, proc.stderr
    return error


def use_up_inodes(root: Path) -> Path:
    """Empty files beside the state root until the tmpfs takes no more: inodes gone, blocks free."""
    filler = root.parent / "filler"
    filler.mkdir()
    i = 0
    while True:
        try:
            (filler / str(i)).touch()
        except OSError:
            break
        i += 1
    st = os.statvfs(root)
    assert st.f_favail == 0 and st.f_bavail > st.f_blocks // 2
    return filler


def test_inodes_run_out_while_a_layer_unpacks(few_inodes: Path, tmp_path: Path) -> None:
    """load stores 3 blobs; the first run unpacks 1000 files and runs out: words, no half layer."""
    ok(run_cshell(few_inodes, "load", "-i", str(archive(tmp_path / "small.tar", [busybox_layer()], ref="small:v1"))))
    ok(run_cshell(few_inodes, "load", "-i", str(archive(tmp_path / "many.tar", [busybox_layer(), many_files(1000)],
                                                        ref="many:v1"))))
    assert ok(run_cshell(few_inodes, "run", "--rm", "small:v1", "echo", "usable")) == "usable\n"
    error = assert_out_of_inodes(run_cshell(few_inodes, "run", "--rm", "many:v1", "true"), status=125)
    assert str(few_inodes) in error
    assert leftovers(few_inodes) == [] and not list((few_inodes / "containers").iterdir())
    assert_consistent(few_inodes)
    assert ok(run_cshell(few_inodes, "run", "--rm", "small:v1", "echo", "usable")) == "usable\n"


def test_inodes_run_out_during_load_and_pull(registry: Registry, few_inodes: Path, tmp_path: Path) -> None:
    ok(run_cshell(few_inodes, "images"))  # the state root exists; then nothing more fits
    push_raw(registry, "faults/inodes", [busybox_layer(), many_files(10)])
    filler = use_up_inodes(few_inodes)
    before = index_of(few_inodes)
    assert_out_of_inodes(run_cshell(few_inodes, "load", "-i", str(archive(tmp_path / "a.tar", [busybox_layer()]))))
    assert_out_of_inodes(run_cshell(few_inodes, "pull", f"{registry.host}/faults/inodes:v1"))
    assert index_of(few_inodes) == before and leftovers(few_inodes) == []
    shutil.rmtree(filler)
    ok(run_cshell(few_inodes, "pull", f"{registry.host}/faults/inodes:v1"))
    assert_consistent(few_inodes)


def test_blocks_run_out_is_said_as_blocks(small_root: Path, tmp_path: Path) -> None:
    ok(run_cshell(small_root, "images"))
    path = archive(tmp_path / "big.tar", [busybox_layer(), layer(m("big", data=os.urandom(20 << 20)))])
    error = refused(run_cshell(small_root, "load", "-i", str(path)), "no space left on device", "(blocks")
    assert "inodes" not in error


def test_temp_files_of_a_killed_writer_go_at_the_next_start(cshell: Cshell, state_root: Path) -> None:
    """A shell killed between atomic_write's write and its rename (the seccomp cache, a state
    file) leaves .NAME.PID.tmp; the next start removes it once PID is gone, and only then."""
    ok(cshell("run", "--name", "t", "busybox", "true"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    cdir = next((state_root / "containers").iterdir())
    orphans = [state_root / "seccomp" / f".profile.{dead.pid}.tmp", cdir / f".state.json.{dead.pid}.tmp"]
    live = cdir / f".state.json.{os.getpid()}.tmp"
    for path in [*orphans, live]:
        path.parent.mkdir(exist_ok=True)
        path.write_text("half")
    ok(cshell("ps", "-a"))
    assert not any(p.exists() for p in orphans)
    assert live.exists()
    live.unlink()
    ok(cshell("rm", "t"))
