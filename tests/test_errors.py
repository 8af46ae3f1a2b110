"""Every failure reaches the user as one `error:` line and a `hint:` line, exit 1,
no traceback, and nothing half-created (the leak check covers the kernel side)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cshell, run_cshell

pytestmark = pytest.mark.kernel

NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def contents(root: Path) -> list[str]:
    containers = root / "containers"
    return sorted(p.name for p in containers.iterdir()) if containers.is_dir() else []


def assert_error(proc: subprocess.CompletedProcess, *needles: str, status: int = 1) -> str:
    """One error line, a hint right after it, exit ``status`` (docker's: 1, or 125 for a flag
    its parser refuses and for a refused `run`), no traceback; returns the error line."""
    assert proc.returncode == status, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    i = errors[0]
    assert i + 1 < len(lines) and lines[i + 1].startswith("hint: ") and len(lines[i + 1]) > 7, proc.stderr
    assert not lines[i + 2:], f"more after the hint: {lines[i + 2:]}"
    for needle in needles:
        assert needle.lower() in lines[i].lower(), f"{needle!r} not in {lines[i]!r}"
    return lines[i]


def hint_of(proc: subprocess.CompletedProcess) -> str:
    return next(line for line in proc.stderr.splitlines() if line.startswith("hint: "))


@pytest.fixture
def check(cshell: Cshell, state_root: Path):  # noqa: ANN201
    """check(args, needles...): the command fails cleanly and changes no container."""
    def run(args: list[str], *needles: str, status: int = 1) -> subprocess.CompletedProcess:
        before = contents(state_root)
        proc = cshell(*args)
        assert_error(proc, *needles, status=status)
        assert contents(state_root) == before, "a failing command changed the containers"
        return proc
    return run


def test_unknown_command_suggests(check) -> None:  # noqa: ANN001
    proc = check(["psx"], "unknown command", "psx")
    assert "`ps`" in hint_of(proc)


def test_unknown_flag(check) -> None:  # noqa: ANN001
    check(["ps", "--bogus"], "unknown flag", "--bogus", status=125)  # docker's flag parser: 125
    proc = check(["run", "--detatch", "busybox", "true"], "unknown flag", "--detatch", status=125)
    assert "--detach" in hint_of(proc)
    check(["run", "--name"], "--name needs a value", status=125)
    check(["run"], "needs IMAGE")  # a missing argument: 1, as docker


@pytest.mark.parametrize("args", [["inspect", "nope"], ["exec", "nope", "true"], ["rm", "nope"],
                                  ["logs", "nope"], ["stop", "nope"], ["start", "nope"]])
def test_unknown_container(check, args: list[str]) -> None:  # noqa: ANN001
    check(args, "no such container", "nope")


def test_rm_acts_on_each_name(cshell: Cshell) -> None:
    """docker rm a nope: removes a, reports nope on its own line, exits 1 (-f: 0)."""
    assert cshell("run", "--name", "gone", "busybox", "true").returncode == 0
    proc = cshell("rm", "gone", "nope")
    assert_error(proc, "nope")
    assert proc.stdout == "gone\n"
    assert cshell("inspect", "gone").returncode == 1
    forced = cshell("rm", "-f", "nope")
    assert forced.returncode == 0 and "nope" in forced.stderr


def test_unknown_image(check) -> None:  # noqa: ANN001
    check(["run", "nosuchimage", "true"], "no such image", "nosuchimage", status=125)
    check(["run", "bad image", "true"], "invalid image name", status=125)


def test_name_in_use(check, cshell: Cshell) -> None:  # noqa: ANN001
    assert cshell("run", "--name", "a", "busybox", "true").returncode == 0
    proc = check(["run", "--name", "a", "busybox", "true"], "already in use", '"a"', status=125)
    assert "rm -f a" in hint_of(proc)
    assert cshell("rm", "a").returncode == 0


def test_command_not_found_in_image(check, state_root: Path) -> None:  # noqa: ANN001
    check(["run", "busybox", "nosuchcmd"], "nosuchcmd", status=127)  # docker's: not found
    check(["run", "-d", "--name", "x", "busybox", "/no/such/file"], "/no/such/file", status=127)
    check(["run", "--rm", "busybox", "/etc/passwd"], "permission denied", status=126)  # cannot execute
    assert contents(state_root) == []


def test_invalid_name(check) -> None:  # noqa: ANN001
    check(["run", "--name", "bad name!", "busybox", "true"], "invalid container name", status=125)
    check(["run", "--name=-x", "busybox", "true"], "invalid container name", status=125)


def test_exec_into_stopped_container(check, cshell: Cshell) -> None:  # noqa: ANN001
    assert cshell("run", "--name", "a", "busybox", "true").returncode == 0
    proc = check(["exec", "a", "true"], "not running")
    assert "start a" in hint_of(proc)
    check(["exec", "a", "nosuchcmd"], "not running")
    check(["ns", "join", "a", "--", "true"], "not running")
    assert cshell("rm", "a").returncode == 0


def test_exec_unknown_command_in_running_container(check, cshell: Cshell) -> None:  # noqa: ANN001
    assert cshell("run", "-d", "--name", "a", "busybox", "sleep", "100").returncode == 0
    check(["exec", "a", "nosuchcmd"], "nosuchcmd", status=126)  # docker exec: 126 for any start failure
    assert cshell("rm", "-f", "a").returncode == 0


def test_ns_errors(check) -> None:  # noqa: ANN001
    proc = check(["ns", "join", "host", "--ns", "foo", "--", "true"], "unknown namespace kind", "foo")
    assert "net" in hint_of(proc)
    check(["ns", "ls", "nosuch"], "nosuch")
    check(["ns", "ls", "999999999"], "999999999")
    check(["ns"], "sub-command")


def test_bad_stop_time_and_template(check, cshell: Cshell) -> None:  # noqa: ANN001
    assert cshell("run", "--name", "a", "busybox", "true").returncode == 0
    check(["stop", "-t", "soon", "a"], "invalid time")
    check(["inspect", "-f", "{{.Nope}}", "a"], "Nope")
    assert cshell("rm", "a").returncode == 0


def test_not_root(state_root: Path) -> None:
    for args in (["ps"], ["run", "busybox", "true"], ["ns", "ls"]):
        proc = run_cshell(state_root, *args, prefix=NOBODY)
        assert_error(proc, "root", status=125 if args[0] == "run" else 1)
        assert "sudo" in hint_of(proc)
    assert contents(state_root) == []
    helped = run_cshell(state_root, "help", prefix=NOBODY)
    assert helped.returncode == 0 and "run" in helped.stdout and not helped.stderr
    assert run_cshell(state_root, "help", "run", prefix=NOBODY).returncode == 0


@pytest.fixture
def overlay_root() -> Iterator[Path]:
    """A state root inside an overlayfs mount: overlayfs cannot be an overlay's upper dir."""
    base = Path(tempfile.mkdtemp(prefix="cshell-ovl-", dir="/tmp"))
    for d in ("lower", "upper", "work", "merged"):
        (base / d).mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={base}/lower,upperdir={base}/upper,workdir={base}/work", str(base / "merged")],
                   check=True)
    try:
        yield base / "merged" / "root"
    finally:
        subprocess.run(["umount", str(base / "merged")], check=True)
        shutil.rmtree(base)


def test_state_root_on_overlayfs(overlay_root: Path) -> None:
    proc = run_cshell(overlay_root, "run", "busybox", "true")
    line = assert_error(proc, "overlay", status=125)
    assert "--root" in hint_of(proc), line
    assert contents(overlay_root) == []
