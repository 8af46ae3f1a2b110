"""The front door: global options, one-shot commands, `-c "A; B"` and `--script FILE`."""

from __future__ import annotations

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
