"""The front door: global options, one-shot commands, `-c "A; B"` and `--script FILE`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import Cshell

from cshell import __version__


def test_version_and_usage(cshell: Cshell) -> None:
    assert cshell("--version").stdout == f"cshell {__version__}\n"
    usage = cshell("--help")
    assert usage.returncode == 0 and "usage: cshell" in usage.stdout and "--script FILE" in usage.stdout


def test_unknown_global_option(cshell: Cshell) -> None:
    proc = cshell("--frobnicate", "ps")
    assert proc.returncode == 1 and "unknown option --frobnicate" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_lists_and_explains(cshell: Cshell) -> None:
    overview = cshell("help")
    assert overview.returncode == 0
    for name in ("run", "ps", "exec", "inspect", "ns"):
        assert name in overview.stdout
    one = cshell("help", "ns", "join")
    assert one.returncode == 0 and "setns" in one.stdout


def test_dash_c_stops_nothing_on_error_but_reports_last_status(cshell: Cshell) -> None:
    proc = cshell("-c", "explain off; help ps")
    assert proc.returncode == 0 and "explain is off" in proc.stdout
    bad = cshell("-c", "explain maybe; explain off")
    assert "error: explain takes on or off" in bad.stderr and "explain is off" in bad.stdout
    quotes = cshell("-c", "explain 'on")
    assert quotes.returncode == 1 and "error: cannot read the commands" in quotes.stderr


def test_script_missing_file(cshell: Cshell, tmp_path: Path) -> None:
    proc = cshell("--script", str(tmp_path / "nope.cs"))
    assert proc.returncode == 1 and "error: no such script" in proc.stderr


@pytest.mark.kernel
def test_script_runs_lines_skips_comments_stops_at_failure(cshell: Cshell, tmp_path: Path,
                                                          state_root: Path) -> None:
    script = tmp_path / "lesson.cs"
    script.write_text(
        "# a comment line is skipped\n"
        "\n"
        "run --rm busybox echo first\n"
        "   # an indented comment too\n"
        "run --rm busybox sh -c 'echo second; exit 3'\n"
        "run --rm busybox echo never\n"
    )
    proc = cshell("--script", str(script))
    assert proc.returncode != 0
    assert "first" in proc.stdout and "second" in proc.stdout and "never" not in proc.stdout
    assert "comment" not in proc.stdout
    assert f"error: {script}:5:" in proc.stderr and "status 3" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list((state_root / "containers").iterdir()) == []


@pytest.mark.kernel
def test_script_failing_command_exits_1(cshell: Cshell, tmp_path: Path) -> None:
    script = tmp_path / "bad.cs"
    script.write_text("run --rm busybox echo ok\npsx\nrun --rm busybox echo never\n")
    proc = cshell("--script", str(script))
    assert proc.returncode == 1
    assert "ok" not in proc.stdout and "never" not in proc.stdout  # checked whole before its first line runs
    assert f"error: {script}:2: unknown command 'psx'" in proc.stderr


@pytest.mark.kernel
def test_dash_c_quoted_semicolon_stays_in_the_command(cshell: Cshell) -> None:
    proc = cshell("-c", "run --rm busybox sh -c 'echo a; echo b'; run --rm busybox echo c")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "a\nb\nc\n"


# -- a user who is not root (issue #13: the `vagrant` user types `cshell`) ----------------------------


@pytest.fixture
def student(tmp_path: Path):  # noqa: ANN201 - (name, sudoers path)
    """A throw-away user and the cshell group's sudoers rule for this venv's cshell, as
    scripts/provision.sh writes it; all removed afterwards."""
    import shutil
    import subprocess

    from conftest import cshell_argv

    if os.geteuid() != 0 or not shutil.which("sudo") or not shutil.which("useradd"):
        pytest.skip("needs root, sudo and useradd (make test installs sudo)")
    name, group = "cshstudent", "cshelltest"
    subprocess.run(["userdel", name], capture_output=True, check=False)
    subprocess.run(["groupdel", group], capture_output=True, check=False)
    subprocess.run(["groupadd", "--system", group], check=True)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name], check=True)
    rule = Path(f"/etc/sudoers.d/{group}")
    program = os.path.realpath(cshell_argv()[0])
    rule.write_text(f"%{group} ALL=(root) NOPASSWD:SETENV: {program}\n")
    rule.chmod(0o440)
    try:
        yield name, group
    finally:
        rule.unlink(missing_ok=True)
        subprocess.run(["userdel", name], capture_output=True, check=False)
        subprocess.run(["groupdel", group], capture_output=True, check=False)


@pytest.mark.kernel
def test_a_member_of_the_group_types_plain_cshell(student, state_root: Path) -> None:  # noqa: ANN001
    import subprocess

    from conftest import cshell_argv, cshell_env

    name, group = student
    as_student = ["runuser", "-u", name, "--", *cshell_argv(), "--root", str(state_root)]
    outsider = subprocess.run([*as_student, "ps"], capture_output=True, text=True, env=cshell_env(), cwd="/")
    assert outsider.returncode == 1 and "Traceback" not in outsider.stderr
    assert "needs root" in outsider.stderr and "cshell group" in outsider.stderr, outsider.stderr
    assert outsider.stderr.count("error:") == 1
    subprocess.run(["usermod", "-aG", group, name], check=True)
    member = subprocess.run([*as_student, "run", "--rm", "busybox", "id", "-u"], capture_output=True, text=True,
                            env=cshell_env(), cwd="/")
    assert (member.returncode, member.stdout) == (0, "0\n"), member
    assert subprocess.run([*as_student, "help"], capture_output=True, text=True, env=cshell_env(),
                          cwd="/").returncode == 0
