"""cp: files and directories between containers and the host, docker's rules, and never outside the container."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import Cshell, cshell_argv, cshell_env, wait_for
from test_lifecycle import ok, refused

pytestmark = pytest.mark.kernel


def sh(cshell: Cshell, name: str, script: str) -> str:
    return ok(cshell("exec", name, "sh", "-c", script))


@pytest.fixture
def web(cshell: Cshell) -> str:
    ok(cshell("run", "-d", "--name", "web", "busybox", "sleep", "1000"))
    return "web"


def test_cp_a_file_both_ways(cshell: Cshell, web: str, tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("from the host\n")
    f.chmod(0o640)
    os.chown(f, 1234, 5678)
    ok(cshell("cp", str(f), "web:/tmp/"))  # into an existing directory, under its own name
    assert sh(cshell, web, "cat /tmp/f.txt; stat -c '%a %u:%g' /tmp/f.txt") == "from the host\n640 0:0\n"
    ok(cshell("cp", str(f), "web:/tmp/renamed"))  # a new name
    assert sh(cshell, web, "cat /tmp/renamed") == "from the host\n"
    ok(cshell("cp", "-a", str(f), "web:/tmp/kept"))  # -a keeps the owner
    assert sh(cshell, web, "stat -c '%u:%g' /tmp/kept") == "1234:5678\n"
    f.write_text("again\n")
    ok(cshell("cp", str(f), "web:/tmp/renamed"))  # an existing file is overwritten
    assert sh(cshell, web, "cat /tmp/renamed") == "again\n"

    sh(cshell, web, "echo inside > /made; chown 42:43 /made; chmod 604 /made")
    ok(cshell("cp", "web:/made", str(tmp_path)))
    out = tmp_path / "made"
    assert out.read_text() == "inside\n" and oct(out.stat().st_mode & 0o777) == "0o604"
    assert (out.stat().st_uid, out.stat().st_gid) == (os.getuid(), os.getgid())  # the user running cp
    ok(cshell("cp", "-a", "web:/made", str(tmp_path / "made-a")))
    assert ((tmp_path / "made-a").stat().st_uid, (tmp_path / "made-a").stat().st_gid) == (42, 43)
    hostname = sh(cshell, web, "hostname")
    ok(cshell("cp", "web:/etc/hostname", str(tmp_path / "h")))  # a bind mount of the container's: seen
    assert (tmp_path / "h").read_text() == hostname
    ok(cshell("rm", "-f", web))


def test_cp_directories_follow_dockers_rules(cshell: Cshell, web: str, tmp_path: Path) -> None:
    d = tmp_path / "d"
    (d / "a").mkdir(parents=True)
    (d / "a" / "b").write_text("b\n")
    (d / "link").symlink_to("a/b")
    ok(cshell("cp", str(d), "web:/new"))  # a missing DEST is made as the copy
    assert sh(cshell, web, "cat /new/a/b; readlink /new/link") == "b\na/b\n"
    ok(cshell("cp", str(d), "web:/new"))  # now it exists: d goes inside it
    assert sh(cshell, web, "ls /new") == "a\nd\nlink\n"
    sh(cshell, web, "mkdir /only")
    ok(cshell("cp", f"{d}/.", "web:/only"))  # DIR/. : what is inside
    assert sh(cshell, web, "ls /only") == "a\nlink\n"

    ok(cshell("cp", "web:/new/a", str(tmp_path / "out")))
    assert (tmp_path / "out" / "b").read_text() == "b\n"
    ok(cshell("cp", "web:/new/a", str(tmp_path / "out")))
    assert (tmp_path / "out" / "a" / "b").read_text() == "b\n"
    ok(cshell("cp", "web:/new/link", str(tmp_path / "l")))  # a link stays a link
    assert os.readlink(tmp_path / "l") == "a/b"
    ok(cshell("cp", "-L", "web:/new/link", str(tmp_path / "l2")))  # -L: what it points to
    assert (tmp_path / "l2").read_text() == "b\n" and not (tmp_path / "l2").is_symlink()

    # bad destinations: one line and a hint, nothing made
    (tmp_path / "file").write_text("x")
    refused(cshell("cp", "web:/new", str(tmp_path / "file")), "directory")
    assert (tmp_path / "file").read_text() == "x"
    refused(cshell("cp", str(d / "a" / "b"), "web:/nosuchdir/"), "no such directory")
    refused(cshell("cp", "web:/new/a/b", str(tmp_path / "nosuchdir") + "/"), "no such directory")
    refused(cshell("cp", "web:/new/a/b/", str(tmp_path)), "not a directory")
    assert not (tmp_path / "nosuchdir").exists() and cshell("exec", web, "test", "-e", "/nosuchdir").returncode == 1
    ok(cshell("rm", "-f", web))


def test_cp_bad_input_is_refused(cshell: Cshell, web: str, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    refused(cshell("cp", str(tmp_path / "f"), str(tmp_path / "g")), "at least one container")
    refused(cshell("cp", "web:/etc/hostname", "web:/tmp/x"), "between containers")
    refused(cshell("cp", "web:/nosuch", str(tmp_path)), "no such container:path")
    refused(cshell("cp", "nosuch:/etc", str(tmp_path)), "no such container")
    refused(cshell("cp", "web:/etc/hostname", "/no/such/dir/f"), "does not exist")
    refused(cshell("cp", str(tmp_path / "missing"), "web:/tmp"), "no such file")
    refused(cshell("cp", "-", "web:/etc/hostname", input=""), "must be a directory")
    refused(cshell("cp", "web:/etc"), status=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
    ok(cshell("run", "-d", "--read-only", "--name", "ro", "busybox", "sleep", "1000"))
    refused(cshell("cp", str(tmp_path / "f"), "ro:/tmp"), "read-only")
    ok(cshell("rm", "-f", web, "ro"))


def test_cp_tar_streams(cshell: Cshell, web: str, state_root: Path, tmp_path: Path) -> None:
    out = subprocess.run([*cshell_argv(), "--root", str(state_root), "cp", "web:/etc", "-"],
                         capture_output=True, env=cshell_env(), timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        names = tar.getnames()
    assert names[0] == "etc" and "etc/passwd" in names, names[:5]

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"streamed\n"
        info = tarfile.TarInfo("in/file")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    proc = subprocess.run([*cshell_argv(), "--root", str(state_root), "cp", "-", "web:/tmp"],
                          input=buf.getvalue(), capture_output=True, env=cshell_env(), timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert sh(cshell, web, "cat /tmp/in/file") == "streamed\n"

    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo("../../escape")
        tar.addfile(info, io.BytesIO(b""))
    proc = subprocess.run([*cshell_argv(), "--root", str(state_root), "cp", "-", "web:/tmp"],
                          input=evil.getvalue(), capture_output=True, env=cshell_env(), timeout=60, check=False)
    assert proc.returncode == 1 and b"climbs out" in proc.stderr, proc.stderr
    ok(cshell("rm", "-f", web))


def test_cp_works_on_a_stopped_container(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    ok(cshell("run", "--name", "s", "-v", "data:/data", "busybox", "sh", "-c", "echo made > /made; echo vol > /data/v"))
    cid = ok(cshell("inspect", "-f", "{{.Id}}", "s")).strip()
    ok(cshell("cp", "s:/made", str(tmp_path / "made")))
    assert (tmp_path / "made").read_text() == "made\n"
    ok(cshell("cp", "s:/data/v", str(tmp_path / "v")))  # its volume too
    assert (tmp_path / "v").read_text() == "vol\n"
    (tmp_path / "in").write_text("while stopped\n")
    ok(cshell("cp", str(tmp_path / "in"), "s:/in"))
    assert (state_root / "containers" / cid / "rw" / "in").read_text() == "while stopped\n"  # in its rw layer
    ok(cshell("start", "s"))
    ok(cshell("wait", "s"))
    ok(cshell("rm", "-v", "s"))


def test_cp_never_leaves_the_container_cve_2018_15664(cshell: Cshell, tmp_path: Path) -> None:
    """The container swaps /w/d between a directory and a symlink to / as fast as it can while
    cp reads and writes through /w/d: whatever it finds must be the container's, never the host's."""
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "secret").write_text("HOST SECRET\n")
    swap = (f"mkdir -p {host} /w/d{host}; echo container > {host}/secret; echo inside > /w/d{host}/secret; "
            "while :; do mv /w/d /w/real; ln -s / /w/d; rm /w/d; mv /w/real /w/d; done")
    ok(cshell("run", "-d", "--name", "racer", "busybox", "sh", "-c", swap))
    assert wait_for(lambda: cshell("exec", "racer", "test", "-e", "/w/real").returncode == 0
                    or cshell("exec", "racer", "test", "-L", "/w/d").returncode == 0, timeout=5)
    (tmp_path / "payload").write_text("PAYLOAD\n")
    seen = set()
    for i in range(25):
        got = tmp_path / f"got{i}"
        proc = cshell("cp", f"racer:/w/d{host}/secret", str(got))
        assert "Traceback" not in proc.stderr
        if proc.returncode == 0:
            seen.add(got.read_text())
        cshell("cp", str(tmp_path / "payload"), f"racer:/w/d{host}/written{i}")
    assert seen <= {"container\n", "inside\n"}, [repr(s) for s in seen]
    assert sorted(p.name for p in host.iterdir()) == ["secret"], list(host.iterdir())
    assert (host / "secret").read_text() == "HOST SECRET\n"
    ok(cshell("rm", "-f", "racer"))
