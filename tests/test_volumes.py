"""Volumes, bind mounts and tmpfs on real busybox containers (as root).

-v /test makes ROOT/volumes/<64 hex>/_data; -v NAME:/x a named volume; -v /host:/x a
bind mount. Every mount is made inside the container's mount namespace before
pivot_root, so the host's mount table never shows it, and every target is
resolved inside the container root, so a symlink cannot send a mount (or a
mkdir) onto a host path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import Cshell

pytestmark = pytest.mark.kernel

RUN = ("run", "--rm", "--net", "none")


def ok(proc) -> str:  # noqa: ANN001 - CompletedProcess
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def fails(proc) -> list[str]:  # noqa: ANN001
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.lstrip().startswith("…")]
    assert lines[0].startswith("error: ") and lines[-1].startswith("hint: "), lines
    return lines


def mounts_of(cshell: Cshell, name: str) -> list[dict]:
    return json.loads(ok(cshell("inspect", "-f", "{{json .Mounts}}", name)))


def volume_names(state_root: Path) -> set[str]:
    d = state_root / "volumes"
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def host_mountinfo() -> str:
    return Path("/proc/self/mountinfo").read_text()


def test_anonymous_volume_holds_what_is_written_and_host_never_sees_it(cshell: Cshell, state_root: Path) -> None:
    ok(cshell("run", "-d", "--net", "none", "--name", "v", "-v", "/test", "busybox", "sleep", "1000"))
    m = mounts_of(cshell, "v")
    assert len(m) == 1 and m[0]["Type"] == "volume" and m[0]["Destination"] == "/test" and m[0]["RW"] is True
    assert re.fullmatch(r"[0-9a-f]{64}", m[0]["Name"])
    data = state_root / "volumes" / m[0]["Name"] / "_data"
    assert m[0]["Source"] == str(data)
    ok(cshell("exec", "v", "sh", "-c", "echo hi > /test/f"))
    assert (data / "f").read_text() == "hi\n"
    inside = ok(cshell("exec", "v", "cat", "/proc/self/mountinfo"))
    assert " /test " in inside and "nosuid,nodev" in inside.split(" /test ")[1].splitlines()[0]
    assert str(data) not in host_mountinfo() and state_root.name not in host_mountinfo()
    rw = next((state_root / "containers").iterdir()) / "rw"
    assert sorted(p.name for p in (rw / "test").iterdir()) == []  # the mount point only

    # commit keeps the empty mount point, never the volume's file
    ok(cshell("commit", "v", "snap:vol"))
    assert ok(cshell(*RUN, "snap:vol", "ls", "-A", "/test")) == ""
    ok(cshell("rm", "-f", "v"))  # plain rm keeps the anonymous volume
    assert m[0]["Name"] in volume_names(state_root)
    assert m[0]["Name"] in ok(cshell("volume", "prune"))
    assert volume_names(state_root) == set()


def test_host_bind_shows_host_files_and_writes_through(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    host = tmp_path / "home"
    host.mkdir()
    (host / "hello.txt").write_text("from the host\n")
    out = ok(cshell(*RUN, "-v", f"{host}:/test", "busybox", "sh", "-c",
                    "cat /test/hello.txt; echo back > /test/new; grep -c ' /test ' /proc/self/mountinfo"))
    assert out == "from the host\n1\n"
    assert (host / "new").read_text() == "back\n"
    assert str(host) not in host_mountinfo()
    assert volume_names(state_root) == set()


def test_copydata_for_a_new_volume_not_for_a_bind(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    image_etc = set(ok(cshell(*RUN, "busybox", "ls", "-A", "/etc")).split())
    ok(cshell("run", "--net", "none", "--name", "c", "-v", "/etc", "busybox", "true"))
    data = Path(mounts_of(cshell, "c")[0]["Source"])
    assert {"group", "passwd"} <= {p.name for p in data.iterdir()} <= image_etc | {"hosts", "hostname", "resolv.conf"}
    ok(cshell("rm", "-v", "c"))  # rm -v removes the anonymous volume
    assert volume_names(state_root) == set()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "passwd" not in ok(cshell(*RUN, "-v", f"{empty}:/etc", "busybox", "ls", "-A", "/etc"))
    assert list(empty.iterdir()) == []  # nothing copied into a host directory


def test_copydata_once_per_container_create(cshell: Cshell, state_root: Path) -> None:
    """docker copies the image's content into a new volume at create, once: a volume the
    user emptied stays empty through stop and start (ours copies at the first start)."""
    ok(cshell("run", "-d", "--net", "none", "--name", "c", "-v", "/etc", "busybox", "sleep", "1000"))
    data = Path(mounts_of(cshell, "c")[0]["Source"])
    assert "passwd" in {p.name for p in data.iterdir()}
    ok(cshell("exec", "c", "sh", "-c", "rm -rf /etc/* /etc/.[!.]*"))  # the user empties it
    assert list(data.iterdir()) == []
    ok(cshell("stop", "-t", "0", "c"))
    ok(cshell("start", "c"))
    assert ok(cshell("exec", "c", "ls", "-A", "/etc")) == "" and list(data.iterdir()) == []
    ok(cshell("rm", "-f", "-v", "c"))
    # a new container is a new create: its new volume gets the image's content again
    assert "passwd" in ok(cshell(*RUN, "-v", "/etc", "busybox", "ls", "/etc")).split()


def test_named_volume_outlives_containers_and_ro_tmpfs(cshell: Cshell, state_root: Path) -> None:
    ok(cshell(*RUN, "-v", "data:/d", "busybox", "sh", "-c", "echo keep > /d/k"))
    ok(cshell(*RUN, "-v", "/anon", "busybox", "touch", "/anon/x"))
    assert volume_names(state_root) == {"data"}  # --rm took the anonymous volume, not the named one
    assert ok(cshell(*RUN, "--mount", "type=volume,source=data,target=/e", "busybox", "cat", "/e/k")) == "keep\n"
    ro = cshell(*RUN, "-v", "data:/d:ro", "busybox", "sh", "-c", "cat /d/k; echo x > /d/k")
    assert ro.stdout == "keep\n" and "Read-only file system" in ro.stderr
    tmp = ok(cshell(*RUN, "--tmpfs", "/run:size=1m", "busybox", "grep", " /run ", "/proc/self/mountinfo"))
    assert "tmpfs" in tmp and "size=1024k" in tmp and "noexec" in tmp
    ok(cshell("run", "-d", "--net", "none", "--name", "user", "-v", "data:/d", "busybox", "sleep", "1000"))
    assert "in use by container" in fails(cshell("volume", "rm", "data"))[0]
    assert "data" in ok(cshell("volume", "ls"))
    ok(cshell("rm", "-f", "user"))
    ok(cshell("volume", "rm", "data"))
    assert volume_names(state_root) == set()


def test_symlinked_target_stays_inside_the_root(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    ok(cshell("run", "--net", "none", "--name", "s", "busybox", "ln", "-s", f"{outside}/sub", "/esc"))
    ok(cshell("commit", "s", "esc:1"))
    out = ok(cshell(*RUN, "-v", "/esc", "esc:1", "sh", "-c", "echo in > /esc/f; ls /esc"))
    assert "f" in out.split()
    assert not outside.exists()  # neither the mkdir nor the mount reached the host path
    ok(cshell("run", "--net", "none", "--name", "r", "busybox", "ln", "-s", "../../../../../etc", "/up"))
    ok(cshell("commit", "r", "up:1"))
    mi = ok(cshell(*RUN, "-v", "/up", "up:1", "sh", "-c", "ls /etc | grep -c passwd; grep ' /etc ' /proc/self/mountinfo"))
    assert mi.startswith("1\n") and "volumes" in mi  # the volume covers the container's /etc


@pytest.mark.parametrize(("spec", "words"), [
    ("-v", ":/x"), ("-v", "/x:relative"), ("-v", "bad name:/x"), ("-v", "/"), ("-v", "a:/x:rx"),
    ("--mount", "type=bind,source=/nonexistent-cshell,target=/x"), ("--mount", "type=nfs,target=/x"),
    ("--tmpfs", "/x:size=lots"), ("-v", "/proc/x"),
])
def test_bad_specs_are_one_line_errors_and_change_nothing(cshell: Cshell, state_root: Path, spec: str,
                                                         words: str) -> None:
    fails(cshell("run", "--net", "none", spec, words, "busybox", "true"))
    assert volume_names(state_root) == set()
    assert not (state_root / "containers").is_dir() or not any((state_root / "containers").iterdir())


def test_relative_source_is_a_named_volume(cshell: Cshell, state_root: Path) -> None:
    ok(cshell(*RUN, "-v", "relative:/x", "busybox", "true"))
    assert volume_names(state_root) == {"relative"}
    ok(cshell("volume", "prune", "-a"))


def test_bind_demo_shows_the_inode_switch(cshell: Cshell, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (b / "own").touch()
    out = ok(cshell("bind", str(a), str(b)))
    ia, ib = str(a.stat().st_ino), str(b.stat().st_ino)
    rows = [line.split() for line in out.splitlines() if line.startswith(str(tmp_path))]
    assert [r[-3] for r in rows[:4]] == [ia, ib, ia, ib], out
    assert "never showed it" in out
    assert str(b) not in host_mountinfo()
    assert 'got "Read-only file system"' in ok(cshell("bind", "--ro", str(a), str(b)))
    assert list(a.iterdir()) == []


def test_bind_into_a_running_container(cshell: Cshell, tmp_path: Path) -> None:
    (tmp_path / "h.txt").write_text("host\n")
    ok(cshell("run", "-d", "--net", "none", "--name", "live", "busybox", "sleep", "1000"))
    out = ok(cshell("bind", str(tmp_path), "/mnt/x", "--in", "live"))
    assert "never showed it" in out
    assert ok(cshell("exec", "live", "cat", "/mnt/x/h.txt")) == "host\n"
    assert " /mnt/x " not in host_mountinfo()
    ok(cshell("unbind", "/mnt/x", "--in", "live"))
    assert ok(cshell("exec", "live", "ls", "-A", "/mnt/x")) == ""
    ok(cshell("rm", "-f", "live"))


def test_whereis_reports_a_volume(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--net", "none", "--name", "w", "-v", "/test", "busybox", "sleep", "1000"))
    out = ok(cshell("layer", "whereis", "w", "/test/f"))
    assert "volume" in out and "/_data/f" in out
    ok(cshell("rm", "-f", "-v", "w"))

